"""Per-frame part poses from the network's masks and transforms.

For each frame and part k (1..K) this computes, in **source-video pixels** (conventions in
:mod:`tracker.core`):

* **area** — the number of mask pixels whose most likely slot is k (the hard label map, as in
  the exported label PNGs), times the source area one mask pixel covers. Pixels of the
  letterbox padding are not part of the source and are ignored everywhere.
* **centre** — by default the mask centroid (first moment of the part's probability over its
  own label pixels; restricting the moments to the hard label pixels replaces the paper's
  threshold ``M_k > 0.02``, which lets a faint probability floor over the whole frame pull
  the centroid); ``PoseConfig(position="transform")`` uses the transform's ``t`` instead.
* **orientation and scale** — the transform's axes: the columns of ``A = R(θ)·diag(s_x, s_y)``
  mapped to source pixels; angle of the first column, counter-clockwise on screen, and the
  lengths of both columns. ``PoseConfig(geometry="mask")`` takes them from the mask covariance
  instead (principal axes, square roots of the eigenvalues), with the axis order and sign
  taken from the transform so the angle does not flip by 180°.
* **cross-check** (the paper's transformation loss, Gao et al. 2021 §3.3: ``t_k`` ≈ mask
  centroid, ``A_k A_kᵀ`` ≈ mask covariance ``Σ_k``) — folded into the confidence.
* **visible** — area at least ``min_area_frac`` of the frame and at least
  ``min_mask_pixels`` mask pixels.
* **confidence** in [0, 1] = segmentation certainty × shape agreement × centre agreement:
  ``seg`` = mean probability of the part over its label pixels rescaled so that a uniform
  softmax gives 0 and a one-hot mask 1; ``shape`` = ``1 − ‖AAᵀ − Σ‖_F / (‖AAᵀ‖_F + ‖Σ‖_F)``;
  ``centre`` = ``exp(−d² / (2 (σ² + p²)))`` with d the distance between ``t`` and the mask
  centroid, σ² = trace(Σ)/2 and p one mask pixel. 0 for a part without pixels.

Everything is vectorised over the batch and the parts; the work is proportional to the mask
resolution (h × w), never to the source resolution (except :func:`labels_at_source`, which
is only needed for label PNGs and overlays).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.preprocess import Letterbox
from engine.types import PartOutput, part_labels
from tracker.core import PartPoses, PoseBatch


@dataclass(frozen=True)
class PoseConfig:
    """How poses are read from the network output.

    Attributes:
        position: ``"mask"`` (mask centroid; default) or ``"transform"`` (the transform's t).
        geometry: ``"transform"`` (angle/scale from the transform's axes; default) or
            ``"mask"`` (from the mask covariance, disambiguated by the transform).
        min_area_frac: a part is visible when its area is at least this fraction of the
            source frame's area …
        min_mask_pixels: … and it covers at least this many mask pixels.
    """

    position: str = "mask"
    geometry: str = "transform"
    min_area_frac: float = 0.0005
    min_mask_pixels: int = 4

    def __post_init__(self) -> None:
        if self.position not in ("mask", "transform"):
            raise ValueError(f"position must be 'mask' or 'transform', got {self.position!r}")
        if self.geometry not in ("mask", "transform"):
            raise ValueError(f"geometry must be 'mask' or 'transform', got {self.geometry!r}")
        if not 0 <= self.min_area_frac < 1 or self.min_mask_pixels < 1:
            raise ValueError("min_area_frac must be in [0, 1) and min_mask_pixels >= 1")


class PoseExtractor:
    """Turns :class:`engine.types.PartOutput` batches into :class:`tracker.core.PartPoses`.

    Precomputes, for a given letterbox and mask size, the crop of the mask grid that lies on
    the source frame and the source-pixel coordinates of its pixel centres.

    Args:
        letterbox: the :class:`engine.preprocess.Letterbox` the frames were prepared with.
        mask_size: ``(h, w)`` of the model's masks.
        config: :class:`PoseConfig`.
    """

    def __init__(self, letterbox: Letterbox, mask_size: tuple[int, int], config: PoseConfig | None = None) -> None:
        self.letterbox = letterbox
        self.config = config or PoseConfig()
        h, w = (int(v) for v in mask_size)
        self.mask_size = (h, w)
        # Source coordinates of every mask pixel centre (separable: x depends on the column only).
        cols = (2.0 * np.arange(w) + 1.0) / w - 1.0
        rows = (2.0 * np.arange(h) + 1.0) / h - 1.0
        xs = letterbox.norm_to_source(np.stack([cols, np.zeros(w)], -1))[:, 0]
        ys = letterbox.norm_to_source(np.stack([np.zeros(h), rows], -1))[:, 1]
        inx = np.nonzero((xs >= -0.5) & (xs < letterbox.src_w - 0.5))[0]
        iny = np.nonzero((ys >= -0.5) & (ys < letterbox.src_h - 0.5))[0]
        if inx.size == 0 or iny.size == 0:  # degenerate tiny masks: keep the whole grid
            inx, iny = np.arange(w), np.arange(h)
        self.crop = (slice(int(iny[0]), int(iny[-1]) + 1), slice(int(inx[0]), int(inx[-1]) + 1))
        self.grid_x, self.grid_y = xs[self.crop[1]], ys[self.crop[0]]
        gx, gy = np.meshgrid(self.grid_x, self.grid_y)
        gx, gy = gx.ravel(), gy.ravel()
        # Columns: 1, x, y, x², xy, y² (source px) — moments by one matrix product.
        self._basis = np.stack([np.ones_like(gx), gx, gy, gx * gx, gx * gy, gy * gy], -1).astype(np.float64)
        jx, jy = letterbox.norm_to_source_scale
        self.norm_px = np.array([jx, jy])  # source px per normalised unit along x, y
        self.pixel_wh = np.array([2.0 * jx / w, 2.0 * jy / h])  # one mask pixel in source px
        self.pixel_area = float(self.pixel_wh[0] * self.pixel_wh[1])
        src_area = float(letterbox.src_w * letterbox.src_h)
        self.min_area = max(self.config.min_area_frac * src_area, self.config.min_mask_pixels * self.pixel_area * 0.999)

    # ------------------------------------------------------------------------------
    def __call__(self, out: PartOutput, indices, times_s) -> list[PartPoses]:
        """Poses of every frame of a batch.

        Args:
            out: N frames of network output (masks at ``mask_size``).
            indices: N frame indices.
            times_s: N frame times in seconds.

        Returns:
            N :class:`PartPoses` (K parts each, source pixels).

        Raises:
            ValueError: masks of another size than ``mask_size`` or N mismatch.
        """
        n = len(out)
        if len(indices) != n or len(times_s) != n:
            raise ValueError(f"got {n} outputs but {len(indices)} indices and {len(times_s)} times")
        return self.compute(out).poses(indices, times_s)

    def compute(self, out: PartOutput) -> PoseBatch:
        """Like :meth:`__call__` but returns the whole batch as one
        :class:`tracker.core.PoseBatch` (stacked poses, the mask moments, the transforms in
        source px and the hard label maps on the source frame, whose source coordinates are
        :attr:`grid_x`, :attr:`grid_y`).

        Raises:
            ValueError: masks of another size than ``mask_size``.
        """
        masks, tf = out.masks, out.transforms
        n, k1, h, w = masks.shape
        k = k1 - 1
        if (h, w) != self.mask_size:
            raise ValueError(f"masks are {h}x{w} but this PoseExtractor was built for {self.mask_size}")
        cfg = self.config
        m = masks[:, :, self.crop[0], self.crop[1]].reshape(n, k1, -1)
        labels = part_labels(m, axis=1).astype(np.intp)  # (N, P) hard assignment
        pmax = np.take_along_axis(m, labels[:, None, :], axis=1)[:, 0, :].astype(np.float64)  # its probability
        flat = (labels + (np.arange(n) * k1)[:, None]).ravel()
        size = n * k1

        def per_part(weights=None) -> np.ndarray:  # Σ over each part's pixels → (N, K)
            return np.bincount(flat, None if weights is None else weights.ravel(), minlength=size).reshape(n, k1)[:, 1:]

        counts = per_part().astype(np.float64)  # mask pixels per part
        b = self._basis
        wsum = per_part(pmax)
        mom = [per_part(pmax * b[:, c]) for c in range(1, 6)]
        safe = np.maximum(wsum, 1e-12)
        cx, cy = mom[0] / safe, mom[1] / safe
        sxx = mom[2] / safe - cx * cx + self.pixel_wh[0] ** 2 / 12.0  # Sheppard's correction
        sxy = mom[3] / safe - cx * cy
        syy = mom[4] / safe - cy * cy + self.pixel_wh[1] ** 2 / 12.0
        cov = np.stack([np.stack([sxx, sxy], -1), np.stack([sxy, syy], -1)], -2)  # (N, K, 2, 2)
        centroid = np.stack([cx, cy], -1)

        # The transform in source pixels.
        tf = tf.astype(np.float64)
        s_x, s_y, sn, cs, t_x, t_y = (tf[..., i] for i in range(6))
        norm = np.maximum(np.hypot(sn, cs), 1e-12)
        sn, cs = sn / norm, cs / norm
        t_xy = self.letterbox.norm_to_source(np.stack([t_x, t_y], -1))
        jx, jy = self.norm_px
        a1 = np.stack([jx * cs * s_x, jy * sn * s_x], -1)  # first column of A, source px
        a2 = np.stack([-jx * sn * s_y, jy * cs * s_y], -1)  # second column
        A = np.stack([a1, a2], -1)  # (N, K, 2, 2) columns a1, a2

        area = counts * self.pixel_area
        has_pixels = wsum > 1e-9
        visible = (area >= self.min_area) & has_pixels

        if cfg.position == "mask":
            xy = np.where(has_pixels[..., None], centroid, t_xy)
        else:
            xy = t_xy
        if cfg.geometry == "transform":
            ax1, ax2 = a1, a2
        else:
            ax1, ax2 = _mask_axes(cov, a1, a2)
            ax1 = np.where(has_pixels[..., None], ax1, a1)
            ax2 = np.where(has_pixels[..., None], ax2, a2)
        angle = np.degrees(np.arctan2(-ax1[..., 1], ax1[..., 0]))  # CCW on screen
        angle = np.where(angle <= -180.0, angle + 360.0, angle)
        scale = np.stack([np.hypot(ax1[..., 0], ax1[..., 1]), np.hypot(ax2[..., 0], ax2[..., 1])], -1)

        # Confidence: segmentation certainty × shape agreement × centre agreement.
        mean_p = np.where(counts > 0, wsum / np.maximum(counts, 1), 0.0)
        floor = 1.0 / k1
        seg = np.clip((mean_p - floor) / (1.0 - floor), 0.0, 1.0)
        aat = A @ np.swapaxes(A, -1, -2)
        diff = np.linalg.norm((aat - cov).reshape(n, k, 4), axis=-1)
        tot = np.linalg.norm(aat.reshape(n, k, 4), axis=-1) + np.linalg.norm(cov.reshape(n, k, 4), axis=-1)
        shape = np.clip(1.0 - diff / np.maximum(tot, 1e-12), 0.0, 1.0)
        d2 = ((t_xy - centroid) ** 2).sum(-1)
        var = 0.5 * (sxx + syy) + float(self.pixel_wh @ self.pixel_wh) / 2.0
        centre = np.exp(-0.5 * d2 / var)
        confidence = np.where(has_pixels, seg * shape * centre, 0.0)
        return PoseBatch(xy=xy, angle_deg=angle, scale=scale, area_px=area, visible=visible, confidence=confidence,
                         centroid=centroid, cov=cov, t_xy=t_xy, A=A,
                         labels=labels.reshape(n, self.grid_y.size, self.grid_x.size).astype(np.uint8))


def _mask_axes(cov: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes of ``cov`` (…, 2, 2) as vectors of length √eigenvalue, assigned to the
    transform's axes (the eigenvector closer to ``a1``'s direction becomes the first axis) and
    signed to point the same way as the transform's axes."""
    evals, evecs = np.linalg.eigh(cov)  # ascending
    evals = np.maximum(evals, 0.0)
    v_small, v_big = evecs[..., :, 0], evecs[..., :, 1]
    u1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-12)
    big_first = np.abs((v_big * u1).sum(-1)) >= np.abs((v_small * u1).sum(-1))
    e1 = np.where(big_first[..., None], v_big, v_small)
    e2 = np.where(big_first[..., None], v_small, v_big)
    l1 = np.sqrt(np.where(big_first, evals[..., 1], evals[..., 0]))
    l2 = np.sqrt(np.where(big_first, evals[..., 0], evals[..., 1]))
    e1 = e1 * np.where((e1 * a1).sum(-1) < 0, -1.0, 1.0)[..., None]
    e2 = e2 * np.where((e2 * a2).sum(-1) < 0, -1.0, 1.0)[..., None]
    return e1 * l1[..., None], e2 * l2[..., None]


def poses_from_output(out: PartOutput, letterbox: Letterbox, indices, times_s,
                      config: PoseConfig | None = None) -> list[PartPoses]:
    """One-shot form of :class:`PoseExtractor` (builds the grids each call; use the class in
    loops)."""
    return PoseExtractor(letterbox, out.masks.shape[2:], config)(out, indices, times_s)


# ------------------------------------------------------------------------------ label maps
def _source_to_mask_affine(letterbox: Letterbox, mask_size: tuple[int, int]) -> np.ndarray:
    """2×3 affine mapping source pixel coordinates to mask pixel coordinates (both with pixel
    centres at integers)."""
    h, w = mask_size
    origin = letterbox.source_to_norm(np.array([0.0, 0.0]))
    ex = letterbox.source_to_norm(np.array([1.0, 0.0])) - origin
    ey = letterbox.source_to_norm(np.array([0.0, 1.0])) - origin
    # mask px = ((norm + 1) * size - 1) / 2
    return np.array([
        [ex[0] * w / 2.0, 0.0, ((origin[0] + 1.0) * w - 1.0) / 2.0],
        [0.0, ey[1] * h / 2.0, ((origin[1] + 1.0) * h - 1.0) / 2.0],
    ])


def labels_at_source(masks: np.ndarray, letterbox: Letterbox, *, smooth: bool = True,
                     num_parts: int | None = None, detail: float | None = 4.0) -> np.ndarray:
    """The part label map of one frame at the source resolution.

    Args:
        masks: ``(K+1, h, w)`` float32 softmax masks of one frame (slot 0 = background), or an
            ``(h, w)`` uint8 label map already at mask resolution.
        letterbox: the frame's :class:`engine.preprocess.Letterbox`.
        smooth: interpolate the probabilities (for a label map: its one-hot encoding)
            bilinearly and take the arg-max there (smooth part boundaries); False = arg-max at
            mask resolution, then nearest-neighbour upsampling (blocky).
        num_parts: K, needed only for a label-map input with ``smooth`` (default: its max).
        detail: with ``smooth``, the arg-max is taken on a grid with ``detail`` cells per mask
            pixel (at most the source grid) and upsampled to the source by nearest neighbour:
            boundaries are as smooth as the masks allow at a fraction of the cost (640×480,
            K = 10, 32² masks: ~1 ms instead of ~10 ms at full resolution). ``None`` = arg-max
            on the full source grid.

    Returns:
        ``(src_h, src_w)`` uint8: part id per pixel, 0 = background.
    """
    if masks.ndim == 2:
        hw = masks.shape
        src = np.ascontiguousarray(masks, dtype=np.uint8)
        if smooth:
            k = int(src.max()) if num_parts is None else int(num_parts)
            masks = (src[None] == np.arange(k + 1, dtype=np.uint8)[:, None, None]).astype(np.float32)
            src = None
    elif masks.ndim == 3:
        hw = masks.shape[1:]
        src = None
    else:
        raise ValueError(f"masks must be (K+1, h, w) or (h, w), got shape {masks.shape}")
    if masks.ndim == 3 and masks.shape[0] > 256:
        raise ValueError(f"label maps are uint8: at most 255 parts, got {masks.shape[0] - 1}")
    M = _source_to_mask_affine(letterbox, hw)
    size = (letterbox.src_w, letterbox.src_h)
    flags = cv2.WARP_INVERSE_MAP
    if not smooth:
        if src is None:
            src = part_labels(masks)
        return cv2.warpAffine(src, M, size, flags=cv2.INTER_NEAREST | flags, borderMode=cv2.BORDER_REPLICATE)
    # Work grid: s cells per source pixel (s <= 1); cell (u', v') has its centre at source
    # coordinate (u' + 0.5) / s − 0.5.
    s = 1.0
    if detail is not None:
        src_px_per_mask_px = 1.0 / max(abs(M[0, 0]), 1e-12)
        s = min(1.0, float(detail) / src_px_per_mask_px)
    work = (max(1, int(np.ceil(size[0] * s))), max(1, int(np.ceil(size[1] * s))))
    Mw = M.copy()
    if s < 1.0:
        Mw[:, :2] = M[:, :2] / s
        Mw[:, 2] = M[:, 2] + M[:, :2] @ np.array([0.5 / s - 0.5, 0.5 / s - 0.5])
    hwc = np.ascontiguousarray(np.moveaxis(masks, 0, -1), dtype=np.float32)
    up = cv2.warpAffine(hwc, Mw, work, flags=cv2.INTER_LINEAR | flags, borderMode=cv2.BORDER_REPLICATE)
    if up.ndim == 2:
        up = up[..., None]
    labels = part_labels(up, axis=2)
    if work != size:
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return labels
