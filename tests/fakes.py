"""Fake inference runtimes for testing the tracking pipeline without a model (the way
DeepLabCut-live tests its pipeline with a fake runner).

Both implement :class:`engine.runtime.base.Runtime` (``name``, ``device``, ``meta``,
``infer``, ``describe``):

* :class:`GroundTruthRuntime` plays back a synthetic video's ground truth
  (:mod:`engine.synthetic`): masks from the label maps and transforms from the true part
  poses, optionally with realistic per-frame noise (jittered mask boundaries, noisy transforms,
  dropped parts, rare outliers). It is sequential: the i-th image it is given is taken to be
  frame i of the video.
* :class:`ColorKeyRuntime` is stateless: it segments flat-coloured parts by colour (videos from
  :func:`flat_parts_frames`) and derives transforms from the mask moments; it can be built in
  any worker process (:func:`color_runtime_factory`), so batch tests can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from parttrack.engine.bundle import BundleMeta
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.types import PartOutput


# ------------------------------------------------------------------------------------ masks
def soft_masks_from_labels(labels: np.ndarray, num_parts: int, letterbox: Letterbox,
                           mask_size: tuple[int, int]) -> np.ndarray:
    """Clean soft masks ``(K+1, h, w)`` float32 (slots sum to 1) from a source-resolution label
    map ``(H, W)`` uint8: each slot's coverage, letterboxed like the frames and area-averaged
    to the mask size."""
    onehot = (labels[..., None] == np.arange(num_parts + 1, dtype=np.uint8)).astype(np.float32)
    sq = letterbox_channels(onehot, letterbox)
    h, w = mask_size
    small = resize_channels(sq, (w, h))
    small /= np.maximum(small.sum(-1, keepdims=True), 1e-6)
    return np.ascontiguousarray(np.moveaxis(small, -1, 0))


def resize_channels(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resize an ``(H, W, C)`` float32 image to ``size = (w, h)``, any C (OpenCV's
    INTER_AREA takes at most 4 channels at a time)."""
    w, h = size
    parts = [cv2.resize(np.ascontiguousarray(image[..., c:c + 4]), (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, -1)
             for c in range(0, image.shape[2], 4)]
    return np.concatenate(parts, axis=-1)


def letterbox_channels(image: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Letterbox an ``(H, W, C)`` float32 image of any channel count (the box cut out, area
    resize + edge replication, as :meth:`engine.preprocess.Letterbox.apply`)."""
    w, h = letterbox.inner_size
    small = resize_channels(letterbox.cut_box(image), (w, h))
    left, top = int(letterbox.pad_x), int(letterbox.pad_y)
    right, bottom = letterbox.size - w - left, letterbox.size - h - top
    return np.pad(small, ((top, bottom), (left, right), (0, 0)), mode="edge")


def jitter_masks(masks: np.ndarray, rng: np.random.Generator, shift_px: float, logit_std: float) -> np.ndarray:
    """Noisy copy of soft masks ``(K+1, h, w)``: every part slot is shifted by its own random
    sub-pixel offset (std ``shift_px`` mask pixels) and Gaussian noise of std ``logit_std``
    is added to the log-probabilities, then re-normalised (softmax)."""
    k1, h, w = masks.shape
    out = np.empty_like(masks)
    out[0] = masks[0]
    for k in range(1, k1):
        dx, dy = rng.normal(0.0, shift_px, 2) if shift_px > 0 else (0.0, 0.0)
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
        out[k] = cv2.warpAffine(masks[k], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    logits = np.log(np.maximum(out, 0.0) + 1e-3)
    if logit_std > 0:
        logits += rng.normal(0.0, logit_std, logits.shape)
    logits -= logits.max(axis=0, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=0, keepdims=True)).astype(np.float32)


def transforms_from_poses(centres: np.ndarray, angles_deg: np.ndarray, axes_px: np.ndarray,
                          letterbox: Letterbox) -> np.ndarray:
    """``(K, 6)`` float32 model transforms ``(s_x, s_y, sin θ, cos θ, t_x, t_y)`` for poses in
    source pixels (centres ``(K, 2)``, angles CCW on screen, axis lengths ``(K, 2)`` px)."""
    t = letterbox.source_to_norm(centres)
    jx, jy = letterbox.norm_to_source_scale
    theta = -np.radians(angles_deg)  # model frame: y down, θ from +x towards +y
    s = axes_px / np.array([jx, jy]).mean()
    return np.column_stack([s[:, 0], s[:, 1], np.sin(theta), np.cos(theta), t[:, 0], t[:, 1]]).astype(np.float32)


# ------------------------------------------------------------------------------------ noise
@dataclass(frozen=True)
class FakeNoise:
    """Per-frame noise of :class:`GroundTruthRuntime`.

    Attributes:
        mask_shift_px: std of each part mask's random shift, in mask pixels.
        mask_logit_std: std of Gaussian noise on mask log-probabilities.
        t_std_px: std of the transform centre noise, source pixels.
        angle_std_deg: std of the transform angle noise.
        scale_log_std: std of log-normal noise on the transform scales.
        drop_prob: probability that a part's mask is missing in a frame (merged into background).
        outlier_prob: probability of a wild transform (angle off by 60–180°, centre off by
            half the part length) for a part in a frame.
    """

    mask_shift_px: float = 0.0
    mask_logit_std: float = 0.0
    t_std_px: float = 0.0
    angle_std_deg: float = 0.0
    scale_log_std: float = 0.0
    drop_prob: float = 0.0
    outlier_prob: float = 0.0


#: A realistic level: what a decent segmentation network's frame-to-frame flicker looks like.
REALISTIC_NOISE = FakeNoise(mask_shift_px=0.35, mask_logit_std=0.5, t_std_px=2.0, angle_std_deg=4.0,
                            scale_log_std=0.05, drop_prob=0.01, outlier_prob=0.005)

#: Covariance axes ≈ this × half-extents (between an ellipse, 0.5, and a rectangle, 1/√3).
AXIS_FROM_HALF_EXTENT = 0.55


class GroundTruthRuntime:
    """Plays back a :class:`engine.synthetic.GroundTruth` as network output (sequentially).

    Args:
        gt: the ground truth (labels at source resolution, poses in source pixels).
        input_size: S of the pretend model.
        mask_size: ``(h, w)`` of the masks it returns.
        noise: :class:`FakeNoise` (default: none).
        seed: noise seed.

    ``infer(images)`` returns the next ``len(images)`` frames; :meth:`rewind` starts over.
    Raises IndexError when asked for more frames than the video has.
    """

    name = "fake-gt"
    device = "cpu"

    def __init__(self, gt, input_size: int = 64, mask_size: tuple[int, int] = (32, 32),
                 noise: FakeNoise | None = None, seed: int = 0) -> None:
        self.gt = gt
        self.noise = noise or FakeNoise()
        self.seed = seed
        k = int(gt.num_parts)
        self.meta = BundleMeta(num_parts=k, input_size=int(input_size), mask_size=tuple(mask_size),
                               part_names=tuple(gt.part_names))
        self.letterbox = Letterbox.fit(gt.height, gt.width, int(input_size))
        self.rewind()

    def rewind(self) -> None:
        self.cursor = 0
        self.rng = np.random.default_rng(self.seed)

    def describe(self) -> str:
        return f"fake ground-truth runtime ({self.noise})"

    def clean_output(self, i: int) -> PartOutput:
        """Noise-free output of frame ``i`` (batch of one)."""
        return self._frame(i, FakeNoise(), np.random.default_rng(0))

    def _frame(self, i: int, nz: FakeNoise, rng: np.random.Generator) -> PartOutput:
        gt, k = self.gt, self.meta.num_parts
        masks = soft_masks_from_labels(gt.labels[i], k, self.letterbox, self.meta.mask_size)
        if nz.mask_shift_px > 0 or nz.mask_logit_std > 0:
            masks = jitter_masks(masks, rng, nz.mask_shift_px, nz.mask_logit_std)
        if nz.drop_prob > 0:
            for p in np.nonzero(rng.random(k) < nz.drop_prob)[0]:
                masks[0] += masks[p + 1]
                masks[p + 1] = 0.0
        centres = gt.centres[i] + rng.normal(0, nz.t_std_px, (k, 2)) if nz.t_std_px else gt.centres[i].copy()
        angles = gt.angles_deg[i] + (rng.normal(0, nz.angle_std_deg, k) if nz.angle_std_deg else 0.0)
        axes = gt.scales[i] * AXIS_FROM_HALF_EXTENT
        if nz.scale_log_std:
            axes = axes * np.exp(rng.normal(0, nz.scale_log_std, (k, 2)))
        if nz.outlier_prob > 0:
            wild = rng.random(k) < nz.outlier_prob
            angles = np.where(wild, angles + rng.uniform(60, 180, k) * rng.choice([-1, 1], k), angles)
            centres = np.where(wild[:, None], centres + 0.5 * gt.scales[i][:, :1] * rng.normal(0, 1, (k, 2)), centres)
        tf = transforms_from_poses(centres, angles, axes, self.letterbox)
        return PartOutput(masks[None].astype(np.float32), tf[None])

    def infer(self, images: np.ndarray) -> PartOutput:
        s = self.meta.input_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, {s}, {s}, 3) uint8, got {images.shape} {images.dtype}")
        n = images.shape[0]
        if self.cursor + n > len(self.gt):
            raise IndexError(f"asked for frames {self.cursor}..{self.cursor + n - 1} of a {len(self.gt)}-frame video")
        outs = [self._frame(self.cursor + j, self.noise, self.rng) for j in range(n)]
        self.cursor += n
        return PartOutput(np.concatenate([o.masks for o in outs]), np.concatenate([o.transforms for o in outs]))


# ------------------------------------------------------------------------------ colour keyed
#: Flat part colours (RGB) used by :func:`flat_parts_frames` and :class:`ColorKeyRuntime`.
FLAT_COLORS = ((230, 40, 40), (40, 200, 60), (40, 80, 230), (230, 200, 30))
BACKGROUND = (30, 30, 30)


def hinge_poses(n: int, h: int, w: int, *, seed: int = 0, fps: float = 25.0):
    """Two rectangles ("upper" and "lower" arm) hinged at a point that drifts; the lower arm
    swings. Returns ``(centres (n, 2, 2), angles_deg (n, 2), half_extents (2, 2), hinge (n, 2))``
    in source pixels, angles CCW on screen, first axis along each arm away from the hinge."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    side = min(h, w)
    hinge = np.stack([w / 2 + 0.08 * side * np.sin(0.7 * t + rng.uniform(0, 6)),
                      h / 2 + 0.06 * side * np.cos(0.9 * t + rng.uniform(0, 6))], -1)
    a1 = 160 + 15 * np.sin(0.8 * t)  # upper arm points left-ish
    a2 = 20 + 50 * np.sin(1.7 * t + rng.uniform(0, 6))  # lower arm swings
    half = np.array([[0.18 * side, 0.06 * side], [0.16 * side, 0.05 * side]])
    centres = np.zeros((n, 2, 2))
    for i, (a, L) in enumerate(((a1, half[0, 0]), (a2, half[1, 0]))):
        d = np.stack([np.cos(np.radians(a)), -np.sin(np.radians(a))], -1)
        centres[:, i] = hinge + d * (L - 0.3 * half[i, 1])  # overlap a little at the hinge
    return centres, np.stack([a1, a2], -1), half, hinge


def flat_parts_frames(n: int = 20, h: int = 96, w: int = 128, *, seed: int = 0, fps: float = 25.0):
    """``(n, h, w, 3)`` uint8 RGB frames of :func:`hinge_poses` drawn as flat-coloured
    rectangles on a flat background, plus the poses (see :func:`hinge_poses`)."""
    centres, angles, half, hinge = hinge_poses(n, h, w, seed=seed, fps=fps)
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[:] = BACKGROUND
    for f in range(n):
        for i in range(2):
            box = ((float(centres[f, i, 0]), float(centres[f, i, 1])),
                   (float(2 * half[i, 0]), float(2 * half[i, 1])), float(-angles[f, i]))
            pts = cv2.boxPoints(box)
            cv2.fillConvexPoly(frames[f], np.round(pts * 16).astype(np.int32), FLAT_COLORS[i], cv2.LINE_8, 4)
    return frames, (centres, angles, half, hinge)


class ColorKeyRuntime:
    """Segments flat-coloured parts by colour (stateless).

    A pixel belongs to part i+1 when its colour is within ``tol`` (max abs RGB difference) of
    ``colors[i]``; transforms come from the mask moments (centre = centroid, axes = principal
    axes of the covariance, first axis = the major axis pointing to +x).

    Args:
        colors: K part colours (RGB).
        input_size: S; mask_size: (h, w) of the returned masks.
    """

    name = "fake-color"
    device = "cpu"

    def __init__(self, colors=FLAT_COLORS[:2], input_size: int = 64, mask_size: tuple[int, int] = (32, 32),
                 tol: int = 40) -> None:
        self.colors = np.asarray(colors, np.int16)
        self.tol = tol
        self.meta = BundleMeta(num_parts=len(self.colors), input_size=int(input_size), mask_size=tuple(mask_size))
        self.calls = 0

    def describe(self) -> str:
        return f"fake colour-key runtime (K={self.meta.num_parts})"

    def infer(self, images: np.ndarray) -> PartOutput:
        s, (h, w) = self.meta.input_size, self.meta.mask_size
        if images.ndim != 4 or images.shape[1:] != (s, s, 3) or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, {s}, {s}, 3) uint8, got {images.shape} {images.dtype}")
        self.calls += 1
        k = len(self.colors)
        masks, tfs = [], []
        ys, xs = np.mgrid[0:h, 0:w]
        nx, ny = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
        for img in images:
            small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
            lab = np.zeros((h, w), np.int64)
            for i, c in enumerate(self.colors):
                lab[np.abs(small - c).max(-1) <= self.tol] = i + 1
            m = (lab[None] == np.arange(k + 1)[:, None, None]).astype(np.float32)
            m = 0.9 * m + 0.1 / (k + 1)
            masks.append(m / m.sum(0, keepdims=True))
            tf = np.zeros((k, 6), np.float32)
            for i in range(k):
                sel = lab == i + 1
                if sel.sum() < 2:
                    tf[i] = (0.1, 0.1, 0.0, 1.0, 0.0, 0.0)
                    continue
                px, py = nx[sel], ny[sel]
                cov = np.cov(np.stack([px, py])) + np.eye(2) * (1.0 / w) ** 2 / 3
                ev, vec = np.linalg.eigh(cov)
                v = vec[:, 1] * (1 if vec[0, 1] >= 0 else -1)
                theta = np.arctan2(v[1], v[0])
                tf[i] = (np.sqrt(ev[1]), np.sqrt(ev[0]), np.sin(theta), np.cos(theta), px.mean(), py.mean())
            tfs.append(tf)
        return PartOutput(np.stack(masks).astype(np.float32), np.stack(tfs))


def color_runtime_factory(options=None, workers: int = 1) -> ColorKeyRuntime:
    """Picklable factory for batch tests (``run_batch(..., runtime_factory=...)``)."""
    return ColorKeyRuntime()


class FailingRuntime(ColorKeyRuntime):
    """Raises ``exc`` on the ``fail_at``-th call of ``infer`` (only that one), to test error
    handling and interruption mid-video."""

    def __init__(self, fail_at: int = 2, exc: BaseException | None = None, **kw) -> None:
        super().__init__(**kw)
        self.fail_at, self.exc = fail_at, exc or RuntimeError("boom")

    def infer(self, images):
        if self.calls + 1 == self.fail_at:
            self.calls += 1
            raise self.exc
        return super().infer(images)
