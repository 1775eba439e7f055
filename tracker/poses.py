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
* **no pixels** — a part that holds no label pixel in a frame (e.g. a part dropped or merged
  away with ``parttrack label``, whose mask is all zero) was not measured: its centre, angle
  and scale are NaN, its area and confidence 0, and it is not visible.
* **confidence** in [0, 1]: how far the measurement can be trusted, the product of three
  factors, each 1 for an ideal part, computed over the part's label pixels ``R`` (``M`` the
  softmax masks, slot 0 the background):

  - *certainty* = ``mean_R(M_k / Σ_{j≥1} M_j) · mean_R(1 − M_0)``: how sure the network is
    that these pixels are this part (rather than another part) and that they are the subject
    (rather than the background); 1 for a one-hot mask;
  - *agreement* = ``BC²``, the squared Bhattacharyya coefficient (``exp(−2 D_B)``) of the two
    Gaussians the paper's transformation loss ties together, ``N(t, AAᵀ)`` of the transform
    and ``N(μ, Σ)`` of the mask (centroid, covariance): 1 when the transform's centre and axes
    match the mask, lower as the centre moves away (in units of the part's size) or the
    sizes/orientations differ (axes of a 3:1 part turned by 90°: 0.36); scale-invariant, so
    small and large parts are judged alike;
  - *compactness* = ``min(1, c / COMPACT_FULL)²`` with ``c = |R| / (4π√det Σ)`` the mask area
    over the area of its covariance ellipse (1 for a filled ellipse, ≈ 0.95 for a rectangle,
    small for a ring, a thin scatter, several blobs or a ragged region full of holes: the
    patterns of parts on the scenery).

  0 for a part without pixels. A compact, confidently segmented part whose transform follows
  it scores ≳ 0.7; a part spread over the scenery, or whose transform does not describe its
  mask, well below 0.5.

Everything is vectorised over the batch and the parts; the work is proportional to the mask
resolution (h × w), never to the source resolution (except :func:`labels_at_source` and
:class:`SourceLabeler`, which are only needed for label PNGs, overlays and the viewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from parttrack.engine.preprocess import Letterbox
from parttrack.engine.types import PartOutput, part_labels
from parttrack.tracker.core import PartPoses, PoseBatch

#: Compactness (area over the area of the ellipse of the mask covariance, ``|R| / (4π√det Σ)``;
#: 1 for a filled ellipse, ≈ 0.95 for a filled rectangle) at and above which the confidence's
#: compactness factor is 1; below it the factor falls as ``(c / COMPACT_FULL)²``.
COMPACT_FULL = 0.75


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
        bx, by, bw, bh = letterbox.region
        inx = np.nonzero((xs >= bx - 0.5) & (xs < bx + bw - 0.5))[0]
        iny = np.nonzero((ys >= by - 0.5) & (ys < by + bh - 0.5))[0]
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

        xy = centroid if cfg.position == "mask" else t_xy
        if cfg.geometry == "transform":
            ax1, ax2 = a1, a2
        else:
            ax1, ax2 = _mask_axes(cov, a1, a2)
        angle = np.degrees(np.arctan2(-ax1[..., 1], ax1[..., 0]))  # CCW on screen
        angle = np.where(angle <= -180.0, angle + 360.0, angle)
        scale = np.stack([np.hypot(ax1[..., 0], ax1[..., 1]), np.hypot(ax2[..., 0], ax2[..., 1])], -1)
        # A part without label pixels was not measured: no pose (NaN), area 0, confidence 0.
        missing = ~has_pixels
        if missing.any():
            xy = np.where(missing[..., None], np.nan, xy)
            angle = np.where(missing, np.nan, angle)
            scale = np.where(missing[..., None], np.nan, scale)

        # Confidence (module docstring): certainty × agreement × compactness.
        fg = 1.0 - m[:, 0, :].astype(np.float64)  # (N, P) foreground probability
        share = pmax / np.maximum(fg, 1e-12)  # the label's share of the foreground
        n_safe = np.maximum(counts, 1.0)
        certainty = (per_part(share) / n_safe) * (per_part(fg) / n_safe)
        aat = A @ np.swapaxes(A, -1, -2)
        agreement = _gaussian_affinity(t_xy, aat, centroid, cov) ** 2
        det_cov = np.maximum(sxx * syy - sxy * sxy, 1e-12)
        compactness = area / (4.0 * np.pi * np.sqrt(det_cov))
        compact = np.clip(compactness / COMPACT_FULL, 0.0, 1.0) ** 2
        confidence = np.where(has_pixels, np.clip(certainty, 0.0, 1.0) * agreement * compact, 0.0)
        return PoseBatch(xy=xy, angle_deg=angle, scale=scale, area_px=area, visible=visible, confidence=confidence,
                         centroid=centroid, cov=cov, t_xy=t_xy, A=A,
                         labels=labels.reshape(n, self.grid_y.size, self.grid_x.size).astype(np.uint8))


def _gaussian_affinity(mu0: np.ndarray, s0: np.ndarray, mu1: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of the 2-D Gaussians ``N(mu0, s0)`` and ``N(mu1, s1)``
    (means ``(..., 2)``, covariances ``(..., 2, 2)``): ``det(s0)^¼ det(s1)^¼ / det(s̄)^½ ·
    exp(−⅛ dᵀ s̄⁻¹ d)`` with ``s̄ = (s0 + s1)/2``, ``d = mu0 − mu1``. In [0, 1]; 1 exactly when the
    two Gaussians are equal; invariant to a common affine change of coordinates. 0 where a
    covariance is singular or a value is not finite."""
    def det(s):
        return s[..., 0, 0] * s[..., 1, 1] - s[..., 0, 1] * s[..., 1, 0]

    sb = 0.5 * (s0 + s1)
    d0, d1, db = det(s0), det(s1), det(sb)
    d = mu0 - mu1
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # dᵀ s̄⁻¹ d with the 2×2 inverse written out
        maha = (d[..., 0] ** 2 * sb[..., 1, 1] - 2.0 * d[..., 0] * d[..., 1] * sb[..., 0, 1]
                + d[..., 1] ** 2 * sb[..., 0, 0]) / db
        bc = (np.maximum(d0, 0.0) * np.maximum(d1, 0.0)) ** 0.25 / np.sqrt(db) * np.exp(-maha / 8.0)
    ok = (d0 > 0) & (d1 > 0) & (db > 0) & np.isfinite(bc)
    return np.where(ok, np.clip(bc, 0.0, 1.0), 0.0)


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


def check_finite(out: PartOutput, model="the model", first_frame: int = 0) -> None:
    """Stop on network output that cannot be trusted: any NaN or infinity in ``out.masks``
    ``(N, K+1, h, w)`` or ``out.transforms`` ``(N, K, 6)`` (a damaged ``model.onnx``, or a
    runtime fault). ``first_frame`` is the video frame of ``out``'s first entry.

    Raises:
        BundleError: naming ``model`` and the first bad frame.
    """
    masks, tf = np.asarray(out.masks), np.asarray(out.transforms)
    if np.isfinite(masks).all() and np.isfinite(tf).all():
        return
    from parttrack.engine.errors import BundleError

    bad = ~(np.isfinite(masks).reshape(len(masks), -1).all(1) & np.isfinite(tf).reshape(len(tf), -1).all(1))
    frame = first_frame + int(np.argmax(bad))
    raise BundleError(f"the model {model} produced NaN or infinite values (frame {frame}); its weights are "
                      "damaged or the runtime failed", "re-copy or re-export the bundle (parttrack compile), "
                      "or try another --backend")


def poses_from_output(out: PartOutput, letterbox: Letterbox, indices, times_s,
                      config: PoseConfig | None = None) -> list[PartPoses]:
    """One-shot form of :class:`PoseExtractor` (builds the grids each call; use the class in
    loops)."""
    return PoseExtractor(letterbox, out.masks.shape[2:], config)(out, indices, times_s)


# ------------------------------------------------------------------------------ label maps
#: Source pixels per label cell of :class:`SourceLabeler`'s refined label maps (edges placed to
#: within half of it; 1 costs several times more at 640×480).
LABEL_STEP = 2


class SourceLabeler:
    """Part label maps of one video's frames at the source resolution, for label PNGs,
    overlays and the viewer.

    With ``refine`` (default) the soft masks are upsampled edge-aware with the frame as the
    guide (:class:`engine.refine.MaskRefiner`: guided filter on a work grid, then
    :meth:`engine.refine.RefinedMasks.labels` with ``step``), so part outlines follow the
    subject's edges; otherwise (or when no guide is given) :func:`labels_at_source`'s smooth
    bilinear upsampling. With a crop (the letterbox's ``box``) only the crop is refined, as a
    frame of its own; the rest of the frame is background. Poses and ``area_px`` never depend
    on this (they come from the masks at mask resolution).

    Args:
        letterbox: the frames' :class:`engine.preprocess.Letterbox`.
        mask_size: ``(h, w)`` of the masks.
        refine: edge-aware refinement.
        step: label cells per source pixel side (see :meth:`engine.refine.RefinedMasks.labels`).
        guide_size: ``(w, h)`` of the guide images when they are coarser than the source (e.g.
            the letterbox's decode size in the batch path): the refiner's work grid is then made
            no finer than the guide (a finer grid would cost more and add nothing). None = the
            guides are source frames.

    Raises:
        ImportError: ``refine`` without OpenCV's contrib modules (see :mod:`engine.refine`).
    """

    def __init__(self, letterbox: Letterbox, mask_size: tuple[int, int], *, refine: bool = True,
                 step: int = LABEL_STEP, guide_size: tuple[int, int] | None = None) -> None:
        from parttrack.engine.refine import MaskRefiner

        self.letterbox, self.step = letterbox, int(step)
        self.refiner = None
        if refine:
            # Only the model's crop (the letterbox's box) can hold parts: refine it as a frame
            # of its own, the rest of the frame is background.
            inner = letterbox.box_letterbox
            src = (inner.src_h, inner.src_w)
            refiner = MaskRefiner(src, mask_size, inner)
            if guide_size is not None:
                f = src[1] / letterbox.src_w           # the guide of the crop is this share of it
                gw, gh = max(1, int(round(guide_size[0] * f))), max(1, int(round(guide_size[1] * f)))
                coarsest = max(1, min(src[1] // gw, src[0] // gh))
                if coarsest > refiner.downsample:
                    refiner = MaskRefiner(src, mask_size, inner, downsample=coarsest)
            self.refiner = refiner

    def __call__(self, masks: np.ndarray, guide: np.ndarray | None = None) -> np.ndarray:
        """The label map of one frame.

        Args:
            masks: ``(K+1, h, w)`` soft masks (float, or uint8 ``round(255·M)``), slot 0 =
                background.
            guide: ``(H', W', 3)`` uint8 RGB image of the whole source frame at any resolution
                (the source frame, or the batch path's frame at the letterbox's decode size);
                None = no refinement.

        Returns:
            ``(src_h, src_w)`` uint8 part ids, 0 = background.
        """
        lb = self.letterbox
        if self.refiner is None or guide is None:
            return labels_at_source(np.asarray(masks, np.float32), lb)
        return lb.paste_box(self.refiner(masks, lb.cut_box(guide)).labels(step=self.step), 0)


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
        ``(src_h, src_w)`` uint8: part id per pixel, 0 = background (also outside the
        letterbox's box, the model's crop).
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
        labels = cv2.warpAffine(src, M, size, flags=cv2.INTER_NEAREST | flags, borderMode=cv2.BORDER_REPLICATE)
        return letterbox.fill_outside(labels, 0)
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
    return letterbox.fill_outside(labels, 0)
