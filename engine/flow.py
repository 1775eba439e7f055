"""Dense optical flow between the two frames of a training pair (motion evidence for training).

OpenCV's DIS optical flow (Kroeger et al., "Fast Optical Flow using Dense Inverse Search",
ECCV 2016; ``cv2.DISOpticalFlow``) on grayscale frames, with a forward–backward consistency
check (a pixel is trusted where the flow from the target back to the source returns it within
``1 px + 5 %`` of its displacement; occluded and unmatched pixels fail it).

Conventions: ``flow[..., 0]`` / ``flow[..., 1]`` is the displacement along x (right) / y (down)
of the content at source pixel ``u``: it is seen at ``u + flow(u)`` in the target. Returned at
the mask resolution ``(h, w)`` in **normalised model coordinates** (``[-1, 1]`` across the
frame, align_corners=False, as :mod:`engine.warp`): a displacement of ``d`` input pixels is
``2 d / S``.
"""

from __future__ import annotations

import cv2
import numpy as np

#: DIS presets by name (OpenCV's documented constants).
PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class PairFlow:
    """Flow and its validity for frame pairs, at the mask resolution.

    Args:
        size: (h, w) output resolution (the masks').
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (:data:`PRESETS`).

    Raises:
        ValueError: unknown preset.
    """

    def __init__(self, size: tuple[int, int], preset: str = "fast") -> None:
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; choose one of {', '.join(PRESETS)}")
        self.size = (int(size[0]), int(size[1]))
        self.dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def for_pairs(self, gray: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`__call__` for pairs of frame indices into ``gray`` ``(T, S, S)`` uint8, with
        each pair's result cached (a training video has at most T × (2·gap + 1) pairs, and
        each costs a few ms to measure but ~12 kB to keep at 32×32)."""
        flows, weights = [], []
        for i, j in zip(src.tolist(), tgt.tolist()):
            hit = self._cache.get((i, j))
            if hit is None:
                f, w = self(gray[i:i + 1], gray[j:j + 1])
                hit = self._cache[(i, j)] = (f[0], w[0])
            flows.append(hit[0])
            weights.append(hit[1])
        return np.stack(flows), np.stack(weights)

    def pixels(self, src_gray: np.ndarray, tgt_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution flow ``(H, W, 2)`` float32 in input pixels and validity ``(H, W)``
        bool (forward–backward check) of one pair of ``(H, W)`` uint8 grayscale frames."""
        return forward_backward(self.dis, src_gray, tgt_gray)

    def __call__(self, src_gray: np.ndarray, tgt_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow of a batch of pairs at the mask resolution.

        Args:
            src_gray, tgt_gray: ``(N, S, S)`` uint8 grayscale source / target frames.

        Returns:
            flow ``(N, 2, h, w)`` float32 in normalised coordinates (module docstring; the mean
            over the trusted input pixels of each mask pixel, 0 where none is trusted) and
            weight ``(N, h, w)`` float32 in [0, 1]: the share of trusted input pixels.
        """
        n, s_h, s_w = src_gray.shape
        h, w = self.size
        flow = np.zeros((n, 2, h, w), np.float32)
        weight = np.zeros((n, h, w), np.float32)
        scale = np.array([2.0 / s_w, 2.0 / s_h], np.float32)
        for i in range(n):
            f, v = self.pixels(src_gray[i], tgt_gray[i])
            vf = v.astype(np.float32)
            share = cv2.resize(vf, (w, h), interpolation=cv2.INTER_AREA)
            summed = cv2.resize(f * vf[..., None], (w, h), interpolation=cv2.INTER_AREA)
            flow[i] = (summed / np.maximum(share, 1e-6)[..., None] * scale).transpose(2, 0, 1)
            weight[i] = share
        return flow, weight


def forward_backward(dis: cv2.DISOpticalFlow, src_gray: np.ndarray, tgt_gray: np.ndarray,
                     abs_px: float = 1.0, rel: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """DIS flow from ``src_gray`` to ``tgt_gray`` and where it is trusted.

    A source pixel ``u`` is trusted where the backward flow at ``u + f(u)`` (sampled bilinearly)
    brings it back within ``abs_px + rel · |f(u)|`` input pixels, the usual forward–backward
    consistency test (occluded and unmatched pixels fail it); a pixel whose flow leaves the
    frame is never trusted.

    Args:
        dis: an OpenCV DIS optical-flow object.
        src_gray, tgt_gray: ``(H, W)`` uint8 grayscale frames.
        abs_px, rel: the tolerance's absolute (input pixels) and relative parts.

    Returns:
        flow ``(H, W, 2)`` float32 in input pixels (module docstring's convention) and
        ``(H, W)`` bool trusted pixels.
    """
    fwd = dis.calc(src_gray, tgt_gray, None)
    bwd = dis.calc(tgt_gray, src_gray, None)
    h, w = src_gray.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(bwd, xs + fwd[..., 0], ys + fwd[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(1e3, 1e3))
    err = np.hypot(*(fwd + back).transpose(2, 0, 1))
    return fwd, err < abs_px + rel * np.hypot(*fwd.transpose(2, 0, 1))


def to_gray(frames_rgb: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB → ``(T, H, W)`` uint8 luma (OpenCV's RGB2GRAY weights)."""
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames_rgb])


def global_affine_fit(flow: np.ndarray, valid: np.ndarray, iterations: int = 3, inlier_mads: float = 3.0,
                      step: int = 4) -> np.ndarray:
    """The dominant (camera) motion of a flow field: ``coef`` ``(3, 2)`` with the predicted
    displacement ``[x, y, 1] @ coef`` at pixel ``(x, y)`` (pixels, module conventions).

    Least squares on the trusted pixels of a ``step``-subsampled grid, refitted
    ``iterations − 1`` times on the pixels within ``inlier_mads`` × 1.4826 × the median absolute
    residual (the moving subject falls out as outliers). Zero motion when fewer than 6 pixels
    are trusted.

    Args:
        flow: ``(H, W, 2)`` float32 displacement in pixels.
        valid: ``(H, W)`` bool, trusted pixels.
    """
    h, w = valid.shape
    ys, xs = np.mgrid[0:h:step, 0:w:step].astype(np.float64)
    sel = valid[::step, ::step]
    x = np.stack([xs[sel], ys[sel], np.ones(int(sel.sum()))], -1)
    f = flow[::step, ::step][sel].astype(np.float64)
    coef = np.zeros((3, 2))
    keep = np.ones(len(x), bool)
    for _ in range(max(1, iterations)):
        if keep.sum() < 6:
            break
        coef = np.linalg.lstsq(x[keep], f[keep], rcond=None)[0]
        res = np.hypot(*(f - x @ coef).T)
        keep = res <= inlier_mads * 1.4826 * np.median(res) + 0.05
    return coef


def camera_motion(flow: np.ndarray, weight: np.ndarray, min_weight: float = 0.5) -> np.ndarray:
    """The dominant (camera) motion of each pair as an affine map of normalised coordinates.

    :func:`global_affine_fit` on the mask pixels whose flow is trusted (``weight >
    min_weight``), at their centres, turned into the map ``M`` that takes a point ``u`` of the
    source frame to ``M·[u, 1] = u + flow(u)`` in the target: the convention of
    :func:`engine.warp.warp`, so ``warp(source_map, M)`` moves a map of the source frame's
    scenery to where the target frame shows it. Identity for a pair with too few trusted pixels.

    Args:
        flow: ``(N, 2, h, w)`` float32, normalised coordinates (:class:`PairFlow`).
        weight: ``(N, h, w)`` float32 in [0, 1], share of trusted input pixels.
        min_weight: mask pixels trusted above this share take part in the fit.

    Returns:
        ``(N, 2, 3)`` float32.
    """
    n, _, h, w = flow.shape
    out = np.zeros((n, 2, 3), np.float32)
    for i in range(n):
        c = global_affine_fit(flow[i].transpose(1, 2, 0), weight[i] > min_weight, step=1)   # index coords
        # u = (j + 0.5)·2/w − 1, so j = (u + 1)·w/2 − 0.5 (and the same for rows)
        ax, ay = c[0] * (w / 2.0), c[1] * (h / 2.0)
        t = c[0] * (w / 2.0 - 0.5) + c[1] * (h / 2.0 - 0.5) + c[2]
        out[i] = [[1.0 + ax[0], ay[0], t[0]], [ax[1], 1.0 + ay[1], t[1]]]
    return out


def _affine_field(coef: np.ndarray, h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([xs, ys, np.ones_like(xs)], -1) @ coef.astype(np.float32)         # (H, W, 2)


def global_affine_residual(flow: np.ndarray, valid: np.ndarray, iterations: int = 3,
                           inlier_mads: float = 3.0, step: int = 4) -> np.ndarray:
    """Flow left over after the dominant (camera) motion (:func:`global_affine_fit`):
    ``|flow − A·[x, y, 1]|`` per pixel. For a static camera ``A`` ≈ 0 and the residual is the
    flow's magnitude.

    Args:
        flow: ``(H, W, 2)`` float32 displacement in pixels (module conventions).
        valid: ``(H, W)`` bool, trusted pixels.

    Returns:
        ``(H, W)`` float32 residual magnitude in pixels, on every pixel (mask it with ``valid``
        where that matters).
    """
    pred = _affine_field(global_affine_fit(flow, valid, iterations, inlier_mads, step), *valid.shape)
    return np.hypot(flow[..., 0] - pred[..., 0], flow[..., 1] - pred[..., 1]).astype(np.float32)


def moving_pixel_levels(gray: np.ndarray, size: tuple[int, int], gaps: tuple[int, ...] = (3, 10, 25),
                        threshold_px: float = 1.0, threshold_grey: float = 10.0, preset: str = "fast",
                        progress=None, indices: np.ndarray | None = None,
                        shot_starts: tuple[int, ...] | list[int] = (),
                        min_votes: tuple[int, ...] = (1,)) -> np.ndarray:
    """Per frame and vote count, the share of each mask pixel that moves relative to the dominant motion.

    A pixel of frame t "moves" when, for at least one of the frames ``t ± g`` (``g`` in
    ``gaps``, those inside the video), its optical flow is trusted (forward–backward check,
    :meth:`PairFlow.pixels`) and differs from the frame's dominant affine motion
    (:func:`global_affine_residual`: the camera's) by more than ``threshold_px`` input pixels,
    and its grey level differs by more than ``threshold_grey`` from the other frame's at the
    place the camera motion alone would take it (DIS flow spreads a moving edge's motion into
    the flat surroundings; those pixels do not change). The moving subject's pixels move in
    some of those pairs; the scenery's do not, whatever the camera does (up to an affine
    motion). Occluded pixels fail the check and count as not moving. With ``shot_starts``, only
    frames of the same shot are compared (a frame just after a cut has nothing in common with the
    frames before it: every pixel would "move"). With ``min_votes`` > 1 a pixel must move in at
    least that many of those comparisons (at most as many as the frame has): one comparison can
    be fooled by a flow error on fine texture or by scenery that flutters (grass, leaves), two
    that agree rarely are, while a subject that moves does so against most of its neighbours.
    One map per entry of ``min_votes``, all from the same optical flow (:func:`moving_pixels`
    is one of them).

    Args:
        gray: ``(T, S, S)`` uint8 grayscale frames.
        size: ``(h, w)`` output (mask) resolution.
        gaps: frame distances compared.
        threshold_px: residual motion threshold in input pixels.
        threshold_grey: grey-level change threshold (0–255, after a 3×3 Gaussian blur).
        preset: DIS preset (:data:`PRESETS`).
        progress: optional callable ``progress(done, total)``.
        indices: only these frames (compared with their neighbours in ``gray``); None: all.
        shot_starts: first frame index of every shot after the first (shot cuts,
            :attr:`engine.footage.FootageReport.cut_frames`); empty: one shot.
        min_votes: for each map, the comparisons (frame pairs) in which a pixel must move, ≥ 1.

    Returns:
        ``(len(min_votes), T, h, w)`` (or ``(len(min_votes), len(indices), h, w)``) float32 in
        [0, 1]: the share of moving input pixels per mask pixel, one map per vote count.

    Raises:
        ValueError: bad shapes, an unknown preset, no ``min_votes`` or one < 1.
    """
    if gray.ndim != 3 or gray.dtype != np.uint8 or len(gray) < 2:
        raise ValueError(f"gray must be (T >= 2, S, S) uint8, got {gray.shape} {gray.dtype}")
    levels = [int(v) for v in min_votes]
    if not levels or min(levels) < 1:
        raise ValueError(f"min_votes must be one or more counts >= 1, got {min_votes}")
    pf = PairFlow(size, preset)
    t_n = len(gray)
    h, w = int(size[0]), int(size[1])
    todo = np.arange(t_n) if indices is None else np.asarray(indices, int)
    out = np.zeros((len(levels), len(todo), h, w), np.float32)
    s_h, s_w = gray.shape[1:]
    ys, xs = np.mgrid[0:s_h, 0:s_w].astype(np.float32)
    smooth = np.stack([cv2.GaussianBlur(g_, (3, 3), 0).astype(np.float32) for g_ in gray])
    starts = np.unique(np.concatenate([[0], np.asarray(shot_starts, np.int64)]))
    starts = starts[starts < t_n]
    shot = np.searchsorted(starts, todo, side="right") - 1
    first, last = starts[shot], np.append(starts[1:] - 1, t_n - 1)[shot]      # each frame's shot
    for n, t in enumerate(todo.tolist()):
        votes = np.zeros(gray.shape[1:], np.int32)
        pairs = 0
        for g in gaps:
            for other in (t + g, t - g):
                if first[n] <= other <= last[n]:
                    pairs += 1
                    flow, valid = pf.pixels(gray[t], gray[other])
                    cam = _affine_field(global_affine_fit(flow, valid), s_h, s_w)
                    residual = np.hypot(flow[..., 0] - cam[..., 0], flow[..., 1] - cam[..., 1])
                    seen = cv2.remap(smooth[other], xs + cam[..., 0], ys + cam[..., 1], cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
                    changed = np.abs(smooth[t] - seen) > threshold_grey
                    votes += valid & (residual > threshold_px) & changed
        for i, level in enumerate(levels):
            moving = votes >= max(1, min(level, pairs))
            out[i, n] = cv2.resize(moving.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        if progress is not None:
            progress(n + 1, len(todo))
    return out


def moving_pixels(gray: np.ndarray, size: tuple[int, int], gaps: tuple[int, ...] = (3, 10, 25),
                  threshold_px: float = 1.0, threshold_grey: float = 10.0, preset: str = "fast",
                  progress=None, indices: np.ndarray | None = None,
                  shot_starts: tuple[int, ...] | list[int] = (), min_votes: int = 1) -> np.ndarray:
    """:func:`moving_pixel_levels` with one vote count: ``(T, h, w)`` (or
    ``(len(indices), h, w)``) float32 in [0, 1], the share of moving input pixels per mask pixel
    where a pixel moves in at least ``min_votes`` of its frame comparisons. Raises ValueError
    as :func:`moving_pixel_levels`."""
    return moving_pixel_levels(gray, size, gaps, threshold_px, threshold_grey, preset, progress, indices,
                               shot_starts, (min_votes,))[0]


def motion_residual(masks: np.ndarray, flow: np.ndarray, weight: np.ndarray, ridge: float = 1e-6) -> float:
    """How much of the subject's measured motion the parts leave unexplained as affine motion layers.

    For every frame and part, one affine flow field ``[x, y, 1] · A`` is fitted to the measured
    flow by least squares weighted with the part's mask times the flow's trust (the motion
    model of a layer in Wang & Adelson, "Representing moving images with layers", 1994; the
    flow of a rigid or affinely moving part is exactly affine). The weighted squared residuals
    of all parts, summed, are divided by the weighted variance of the flow over the foreground
    (``1 − background mask``) about its per-frame mean: 0 when every part moves as one affine
    layer, about 1 when the parts explain no more than one translation of the whole subject.
    A label-free figure: parts that straddle two limbs moving differently raise it; compare it
    between runs on the same video (its level depends on the motion in the video).

    Args:
        masks: ``(N, K+1, h, w)`` float mask probabilities (slot 0 the background) of the
            source frames of N pairs.
        flow: ``(N, 2, h, w)`` float measured flow source → target at the same resolution
            (any consistent unit; :class:`PairFlow` gives normalised coordinates).
        weight: ``(N, h, w)`` float trust of each flow pixel in [0, 1] (:class:`PairFlow`).
        ridge: Tikhonov term on each fit's normal equations (parts with a near-empty mask).

    Returns:
        The ratio (≥ 0, float); NaN when the weighted foreground flow has no variance (no
        foreground, or no motion).

    Raises:
        ValueError: shapes that do not agree.
    """
    masks, flow, weight = _check_layers(masks, flow, weight)
    f, wp, resid = _layer_fits(masks, flow, weight, ridge)
    spread, _ = _foreground_spread(masks, weight, f)
    return float((wp * resid).sum()) / spread if spread > 1e-12 else float("nan")


def _check_layers(masks, flow, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    masks, flow, weight = (np.asarray(a, np.float64) for a in (masks, flow, weight))
    if masks.ndim != 4 or flow.shape != (len(masks), 2) + masks.shape[2:] or weight.shape != flow[:, 0].shape:
        raise ValueError(f"masks (N, K+1, h, w), flow (N, 2, h, w) and weight (N, h, w) must agree, got "
                         f"{masks.shape}, {flow.shape}, {weight.shape}")
    return masks, flow, weight


def _foreground_spread(masks: np.ndarray, weight: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """(the flow's summed squared deviation from its per-frame mean, weighted by foreground
    ``1 − M_0`` × trust; that weight's total) for flow ``f`` ``(N, P, 2)``."""
    n = len(masks)
    fg = (1.0 - masks[:, 0].reshape(n, -1)) * weight.reshape(n, -1)            # (N, P)
    mean = (fg[..., None] * f).sum(1) / np.maximum(fg.sum(1), 1e-12)[:, None]
    return float((fg * ((f - mean[:, None]) ** 2).sum(-1)).sum()), float(fg.sum())


def _layer_fits(masks: np.ndarray, flow: np.ndarray, weight: np.ndarray, ridge: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame and part, the affine flow fitted under the part's mask (weights mask × trust).

    Returns (flow ``(N, P, 2)``, weights ``(N, K, P)``, squared residuals ``(N, K, P)`` of every
    pixel p under part k's fit)."""
    n, k1, h, w = masks.shape
    ys, xs = np.mgrid[0:h, 0:w]
    design = np.stack([(xs + 0.5) * (2.0 / w) - 1.0, (ys + 0.5) * (2.0 / h) - 1.0, np.ones((h, w))], -1).reshape(-1, 3)
    f = flow.reshape(n, 2, -1).transpose(0, 2, 1)                              # (N, P, 2)
    wp = masks[:, 1:].reshape(n, k1 - 1, -1) * weight.reshape(n, 1, -1)        # (N, K, P)
    gram = np.einsum("nkp,pi,pj->nkij", wp, design, design) + ridge * np.eye(3)
    rhs = np.einsum("nkp,pi,npd->nkid", wp, design, f)
    coef = np.linalg.solve(gram, rhs)                                          # (N, K, 3, 2)
    resid = ((np.einsum("pi,nkid->nkpd", design, coef) - f[:, None]) ** 2).sum(-1)
    return f, wp, resid


def layer_merge_costs(masks: np.ndarray, flow: np.ndarray, weight: np.ndarray, ridge: float = 1e-6
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which parts move as one affine layer, and which leave the most motion unexplained.

    With the per-frame affine fits of :func:`motion_residual`: ``cost[i, j]`` is how much more
    residual part j's pixels would have under part i's fit than under their own, per unit of
    j's mask, divided by the foreground flow's variance (0 when j's pixels move exactly as i's
    do in every pair: i and j are one rigid body split in two, or both motionless); ``excess[k]``
    is part k's own residual summed over its pixels, as a share of the foreground flow's total
    variance (large for a part whose pixels follow two motions).

    Args:
        masks, flow, weight: as :func:`motion_residual`.
        ridge: as :func:`motion_residual`.

    Returns:
        (area ``(K,)`` share of the trusted mask mass of each part, ``excess`` ``(K,)``,
        ``cost`` ``(K, K)``) float64; NaN where a part has no mass or the flow no variance.

    Raises:
        ValueError: shapes that do not agree.
    """
    masks, flow, weight = _check_layers(masks, flow, weight)
    f, wp, resid = _layer_fits(masks, flow, weight, ridge)                     # resid[n, k, p]: p under k's fit
    total_var, fg_mass = _foreground_spread(masks, weight, f)
    var = total_var / max(fg_mass, 1e-12)
    mass = wp.sum((0, 2))                                                      # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = np.einsum("nkp,nkp->k", wp, resid)                               # (K,)
        under = np.einsum("njp,nip->ij", wp, resid)                            # (K_i, K_j): j's pixels, i's fit
        cost = (under - own[None, :]) / mass[None, :] / var
        excess = own / total_var
    if total_var <= 1e-12:
        cost[:], excess[:] = np.nan, np.nan
    cost[:, mass <= 1e-9] = np.nan
    return mass / max(float(mass.sum()), 1e-12), excess, cost


def residual_pairs(n_frames: int, shots: list[tuple[int, int]] | None = None, pairs: int = 48,
                   gap: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The frame pairs :func:`motion_residual` is measured on: ``pairs`` source frames evenly
    spread over the video, each with the frame ``gap`` later in its shot (``gap`` earlier near
    a shot's end); sources whose shot is too short for either are left out.

    Args:
        n_frames: T.
        shots: ``[(first, end), ...]`` frame ranges of the shots (None: one shot).
        pairs, gap: how many sources, and the frame distance.

    Returns:
        ``(src, tgt)`` int64 arrays of equal length.
    """
    src = np.unique(np.linspace(0, n_frames - 1, min(n_frames, pairs)).round().astype(np.int64))
    tgt = src.copy()
    for lo, hi in shots or [(0, n_frames)]:
        inside = (src >= lo) & (src < hi)
        ahead = src[inside] + gap
        tgt[inside] = np.where(ahead < hi, ahead, np.maximum(src[inside] - gap, lo))
    keep = tgt != src
    return src[keep], tgt[keep]
