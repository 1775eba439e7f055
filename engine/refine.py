"""Edge-aware upsampling of soft part masks to the source frame.

The network's masks (``(K+1, h, w)`` float32, softmax over the slots, slot 0 = background;
see :class:`engine.types.PartOutput`) cover the letterboxed model input at a coarse grid
(32×32 for a 128×128 input: one mask pixel is ~20 source pixels of a 640×480 frame).
Resampled bilinearly they give blurry or blocky outlines. Here they are resampled with the
frame as the guide:

1. the masks are resampled bilinearly onto a *work grid* (the source frame reduced by an
   integer factor ``downsample``), through the letterbox geometry of
   :mod:`engine.preprocess`;
2. every slot is smoothed by the guided filter (He, Sun & Tang, "Guided Image Filtering",
   ECCV 2010 / TPAMI 2013) with the RGB frame (area-reduced to the work grid, scaled to
   [0, 1]) as the colour guide: within each ``(2r+1)²`` window the output is a linear
   function of the guide's colour, so a mask edge moves onto the nearest colour edge of the
   frame. The filter is OpenCV's ``cv2.ximgproc.guidedFilter`` / ``createGuidedFilter``
   (opencv-contrib; box filters, cost independent of the radius);
3. the slots are clipped at 0 and renormalised to sum to 1 per pixel;
4. (:meth:`RefinedMasks.to_source`) bilinear resampling from the work grid to the source
   frame, which keeps the slots non-negative and summing to 1.

Coordinates: source pixels with pixel centres at integers, x right, y down; the work cell
``(u, v)`` has its centre at source ``((u + 0.5)·W/w_work − 0.5, (v + 0.5)·H/h_work − 0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from parttrack.engine.preprocess import Letterbox
from parttrack.engine.types import part_labels

#: Work-grid target: about this many work cells per mask pixel (sets the automatic
#: ``downsample``: the work grid never needs to be much finer than the mask's detail).
CELLS_PER_MASK_PX = 5.0
#: Default guided-filter radius, in mask pixels (0.4 mask px = 8 source px at 640×480 with
#: 32×32 masks of a 128 input): wide enough to span a bilinear edge's misplacement, narrow
#: enough not to copy the texture of the surroundings into a thin limb.
RADIUS_MASK_PX = 0.4
#: Default regularisation ε of the guided filter, for a guide in [0, 1] (variance units):
#: colour edges whose local variance is well above ε steer the mask; weaker texture does not.
EPS = 0.01


def _require_guided_filter():
    if not hasattr(cv2, "ximgproc"):
        raise ImportError(
            "engine.refine needs OpenCV's contrib modules (cv2.ximgproc); install "
            "opencv-contrib-python-headless in place of opencv-python-headless "
            "(`pip uninstall opencv-python-headless && pip install opencv-contrib-python-headless`; "
            "never both)")
    return cv2.ximgproc


@dataclass(frozen=True)
class RefinedMasks:
    """Soft masks refined on the work grid of one source frame.

    Attributes:
        masks: ``(K+1, h_work, w_work)`` float32, non-negative, slots summing to 1 per cell
            (slot 0 = background).
        src_size: ``(H, W)`` of the source frame in pixels.

    Raises:
        ValueError: masks not 3-D float32, or a work grid larger than the source.
    """

    masks: np.ndarray
    src_size: tuple[int, int]

    def __post_init__(self) -> None:
        m = self.masks
        if m.ndim != 3 or m.dtype != np.float32:
            raise ValueError(f"masks must be (K+1, h_work, w_work) float32, got {m.shape} {m.dtype}")
        h, w = (int(v) for v in self.src_size)
        object.__setattr__(self, "src_size", (h, w))
        if m.shape[1] > h or m.shape[2] > w:
            raise ValueError(f"work grid {m.shape[1:]} is larger than the source {self.src_size}")

    @property
    def cell_area_px(self) -> float:
        """Source pixels covered by one work cell."""
        return self.src_size[0] * self.src_size[1] / float(self.masks.shape[1] * self.masks.shape[2])

    def to_source(self) -> np.ndarray:
        """``(K+1, H, W)`` float32 masks on the source grid (bilinear from the work grid;
        non-negative, slots summing to 1 up to float rounding)."""
        h, w = self.src_size
        if self.masks.shape[1:] == (h, w):
            return self.masks.copy()
        hwc = np.ascontiguousarray(np.moveaxis(self.masks, 0, -1))
        up = cv2.resize(hwc, (w, h), interpolation=cv2.INTER_LINEAR)
        if up.ndim == 2:
            up = up[..., None]
        return np.ascontiguousarray(np.moveaxis(up, -1, 0))

    def labels(self, step: int | None = 1) -> np.ndarray:
        """The part label map (:func:`engine.types.part_labels`): uint8, 0 background, 1..K.

        Args:
            step: source pixels per label cell. 1: ``(H, W)``, the arg-max of the bilinearly
                resampled masks at every source pixel; ``s > 1``: taken on a grid ``s`` times
                coarser (but at most as coarse as the work grid) and enlarged to ``(H, W)`` by
                nearest neighbour — edges land to within ``s/2`` px at a fraction of the cost;
                None: ``(h_work, w_work)``, the arg-max on the work grid.

        Raises:
            ValueError: ``step < 1``.
        """
        if step is None:
            return part_labels(self.masks)
        if int(step) != step or step < 1:
            raise ValueError(f"step must be an integer >= 1 or None, got {step}")
        h, w = self.src_size
        lh, lw = math.ceil(h / step), math.ceil(w / step)
        if lh <= self.masks.shape[1] or lw <= self.masks.shape[2]:
            labels = part_labels(self.masks)
        else:
            labels = _planar_labels(self.masks, (lh, lw))
        if labels.shape != (h, w):
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
        return labels

    def area_px(self) -> np.ndarray:
        """``(K,)`` float64 area of each part's hard label region in source pixels (work
        cells counted by :meth:`labels` on the work grid × :attr:`cell_area_px`)."""
        k1 = self.masks.shape[0]
        counts = np.bincount(part_labels(self.masks).ravel(), minlength=k1)[1:]
        return counts.astype(np.float64) * self.cell_area_px


def _planar_labels(masks: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """:func:`engine.types.part_labels` of ``masks`` ``(K+1, h, w)`` resampled bilinearly to
    ``size_hw``, one slot plane at a time (a running maximum: several times faster than the
    arg-max over a ``(H, W, K+1)`` array; the same labels, first slot on ties)."""
    lh, lw = size_hw
    if masks.shape[0] == 1:
        return np.zeros((lh, lw), np.uint8)

    def up(k: int) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(masks[k]), (lw, lh), interpolation=cv2.INTER_LINEAR)

    best = up(1)
    total = best.copy()
    labels = np.ones((lh, lw), np.uint8)
    for k in range(2, masks.shape[0]):
        p = up(k)
        labels[p > best] = k
        np.maximum(best, p, out=best)
        total += p
    labels[up(0) >= total] = 0
    return labels


def _source_to_mask(letterbox: Letterbox | None, src_hw: tuple[int, int],
                    mask_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """``(ax, bx, ay, by)``: mask px = a·source px + b per axis (pixel centres at integers)."""
    (src_h, src_w), (h, w) = src_hw, mask_hw
    if letterbox is None:  # the masks cover exactly the source frame
        return w / src_w, 0.5 * w / src_w - 0.5, h / src_h, 0.5 * h / src_h - 0.5
    if (letterbox.src_h, letterbox.src_w) != (src_h, src_w):
        raise ValueError(f"letterbox is for a {letterbox.src_w}x{letterbox.src_h} source, "
                         f"the frame is {src_w}x{src_h}")
    origin = letterbox.source_to_norm(np.array([0.0, 0.0]))
    step = letterbox.source_to_norm(np.array([1.0, 1.0])) - origin
    # mask px = ((norm + 1) * size - 1) / 2   (align_corners=False, engine.types)
    return (step[0] * w / 2.0, ((origin[0] + 1.0) * w - 1.0) / 2.0,
            step[1] * h / 2.0, ((origin[1] + 1.0) * h - 1.0) / 2.0)


class MaskRefiner:
    """Guided-filter upsampling of one video's masks (geometry and settings fixed).

    Args:
        src_size: ``(H, W)`` of the source frames in pixels.
        mask_size: ``(h, w)`` of the masks.
        letterbox: the frames' :class:`engine.preprocess.Letterbox` (the masks cover the
            letterboxed model input); None = the masks cover exactly the source frame.
        downsample: integer reduction of the source to the work grid (1 = refine at full
            resolution); None = about :data:`CELLS_PER_MASK_PX` work cells per mask pixel.
        radius: guided-filter window radius in source pixels (the window is ``2r+1`` work
            cells wide, ``r`` = radius / downsample rounded, at least 1); None =
            :data:`RADIUS_MASK_PX` mask pixels.
        eps: guided-filter regularisation for the [0, 1]-scaled RGB guide (> 0).

    Raises:
        ValueError: non-positive sizes, ``downsample < 1``, ``radius <= 0``, ``eps <= 0``,
            or a letterbox for another source size.
        ImportError: OpenCV without the contrib modules (``cv2.ximgproc``).
    """

    def __init__(self, src_size: tuple[int, int], mask_size: tuple[int, int],
                 letterbox: Letterbox | None = None, *, downsample: int | None = None,
                 radius: float | None = None, eps: float = EPS) -> None:
        self._ximgproc = _require_guided_filter()
        src_h, src_w = (int(v) for v in src_size)
        h, w = (int(v) for v in mask_size)
        if min(src_h, src_w, h, w) <= 0:
            raise ValueError(f"sizes must be positive, got source {src_size}, masks {mask_size}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        ax, bx, ay, by = _source_to_mask(letterbox, (src_h, src_w), (h, w))
        src_px_per_mask_px = 1.0 / max(ax, ay)
        if downsample is None:
            downsample = max(1, int(src_px_per_mask_px / CELLS_PER_MASK_PX))
        if int(downsample) != downsample or downsample < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
        if radius is None:
            radius = RADIUS_MASK_PX * src_px_per_mask_px
        if not radius > 0:
            raise ValueError(f"radius must be > 0 source pixels, got {radius}")
        self.src_size = (src_h, src_w)
        self.mask_size = (h, w)
        self.downsample = int(downsample)
        self.radius = float(radius)
        self.eps = float(eps)
        self.work_size = (math.ceil(src_h / self.downsample), math.ceil(src_w / self.downsample))
        self.radius_cells = max(1, int(round(self.radius / self.downsample)))
        wh, ww = self.work_size
        cx, cy = src_w / ww, src_h / wh  # source px per work cell
        # work cell (u, v) -> source ((u + 0.5) cx - 0.5, ...) -> mask px (inverse map for warpAffine)
        self._work_to_mask = np.array([[ax * cx, 0.0, ax * (0.5 * cx - 0.5) + bx],
                                       [0.0, ay * cy, ay * (0.5 * cy - 0.5) + by]])

    def __call__(self, masks: np.ndarray, frame: np.ndarray) -> RefinedMasks:
        """Refine one frame's masks.

        Args:
            masks: ``(K+1, h, w)`` soft masks of this frame (slot 0 = background), float, or
                uint8 holding ``round(255·M)``.
            frame: the guide, ``(H', W', 3)`` uint8 RGB (the project's frame order; the colour
                guide treats the three channels alike, so BGR gives the same result): the
                source frame's whole field of view (no letterbox padding) at any resolution
                — the source frame itself (``(H, W, 3)``), or e.g. the frame the batch path
                decodes at the letterbox's inner size. It is area-reduced (or, when coarser,
                bilinearly enlarged) to the work grid; a guide coarser than the work grid
                places edges only as precisely as its own pixels.

        Returns:
            :class:`RefinedMasks` on the work grid.

        Raises:
            ValueError: shapes or dtypes other than the above, or a frame of another aspect
                ratio than the source.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[1:] != self.mask_size or masks.shape[0] < 1:
            raise ValueError(f"masks must be (K+1, {self.mask_size[0]}, {self.mask_size[1]}), got {masks.shape}")
        if masks.dtype == np.uint8:
            masks = masks.astype(np.float32) * np.float32(1.0 / 255.0)
        if not np.issubdtype(masks.dtype, np.floating):
            raise ValueError(f"masks must be float or uint8, got {masks.dtype}")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < 1:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        (fh, fw), (sh, sw) = frame.shape[:2], self.src_size
        if abs(fh * sw - fw * sh) > sh * sw * (1.0 / min(fh, fw) + 0.01):
            raise ValueError(f"frame must be an image of the whole {sw}x{sh} source (same aspect ratio), "
                             f"got {fw}x{fh}")
        k1 = masks.shape[0]
        wh, ww = self.work_size
        hwc = np.ascontiguousarray(np.moveaxis(masks, 0, -1), dtype=np.float32)
        p = cv2.warpAffine(hwc, self._work_to_mask, (ww, wh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE).reshape(wh, ww, k1)
        guide = frame
        if frame.shape[:2] != (wh, ww):
            finer = frame.shape[0] >= wh and frame.shape[1] >= ww
            guide = cv2.resize(frame, (ww, wh), interpolation=cv2.INTER_AREA if finer else cv2.INTER_LINEAR)
        guide = guide.astype(np.float32) * np.float32(1.0 / 255.0)
        gf = self._ximgproc.createGuidedFilter(guide, self.radius_cells, self.eps)
        q = gf.filter(p).reshape(wh, ww, k1)
        np.maximum(q, 0.0, out=q)
        total = q.sum(axis=-1, keepdims=True)
        empty = total[..., 0] <= 1e-6  # filtered to nothing: keep the bilinear masks there
        q /= np.maximum(total, 1e-6)
        if empty.any():
            q[empty] = p[empty]
        return RefinedMasks(np.ascontiguousarray(np.moveaxis(q, -1, 0)), self.src_size)


def refine_masks(masks: np.ndarray, frame: np.ndarray, letterbox: Letterbox | None = None, *,
                 radius: float | None = None, eps: float = EPS,
                 downsample: int | None = None) -> np.ndarray:
    """Upsample one frame's soft masks to the source frame with the frame as the guide.

    One-shot form of :class:`MaskRefiner` followed by :meth:`RefinedMasks.to_source` (build a
    :class:`MaskRefiner` once per video in loops, and use :meth:`RefinedMasks.labels` /
    :meth:`RefinedMasks.area_px` where no full-resolution float masks are needed).

    Args:
        masks: ``(K+1, h, w)`` float32 softmax masks (slot 0 = background).
        frame: ``(H, W, 3)`` uint8 RGB source frame.
        letterbox: the frame's letterbox (masks cover the model input); None = the masks
            cover exactly the frame.
        radius, eps, downsample: see :class:`MaskRefiner`.

    Returns:
        ``(K+1, H, W)`` float32, non-negative, slots summing to 1 per pixel.

    Raises:
        ValueError: bad shapes, dtypes or settings (see :class:`MaskRefiner`).
        ImportError: OpenCV without the contrib modules.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (K+1, h, w), got shape {masks.shape}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got shape {frame.shape}")
    refiner = MaskRefiner(frame.shape[:2], masks.shape[1:], letterbox, downsample=downsample,
                          radius=radius, eps=eps)
    return refiner(masks, frame).to_source()
