"""Parts that model the scenery, and folding parts into the background.

An unsupervised co-part model has K part slots whatever the subject; slots the subject does
not need often settle on the scenery: a patch of static background, a spread-out layer over
the whole frame, or nothing at all. :func:`detect_scenery` scores each part over a video of
the model's soft masks with four label-free tests on each part's *region* ``R_t`` (its
pixels in the hard label map of :func:`engine.types.part_labels`, the rule behind
``area_px``; soft masses would let the low probability floor that a softmax leaves on every
pixel dominate thin parts). Thresholds are in :class:`SceneryThresholds`.

* **never visible** — ``R_t`` covers at least ``min_area`` of the frame in fewer than
  ``min_visible`` of the frames;
* **static** — the region barely changes over the video: the pixels where ``R_t`` differs
  from its temporal median (the pixel-wise majority), relative to its size,
  ``Σ_t |R_t ⊖ med R| / Σ_t |R_t|``, is below ``max_static_change`` (a part that follows a
  moving subject scores near 1);
* **on the background** (needs the frames) — most of the region lies where the frame equals
  the static background, the temporal median of the frames (a moving subject is absent from
  the median): ``Σ_t |R_t ∩ {|frame_t − median| < background_tol}| / Σ_t |R_t|`` is at least
  ``min_on_background``. This is the usual static-camera background model (median
  background subtraction); with a moving camera it does not apply — pass no frames;
* **never moves** (needs a moving-pixel map, :func:`engine.flow.moving_pixels`) — less than
  ``min_moving`` of the region's mass lies on pixels that move relative to the camera; this
  test also holds with a moving camera;
* **spread** — the region is not one compact blob: the compactness ``|R| / (4π·√det Σ)``
  (its area over the area of the ellipse of its spatial covariance Σ; 1 for a filled
  ellipse, ≈ 0.95 for a filled rectangle, → 0 for pixels scattered over the frame) has a
  median over the frames where it is visible below ``min_compactness`` while its ellipse covers
  at least ``min_spread_extent`` of the frame (two small blobs moving together, such as a
  pair of ears, are not spread).

A part is flagged as scenery when any test fires. A part of the subject that never moves in
the whole video is indistinguishable from scenery by these tests and is flagged too.

Masks: ``(N, K+1, h, w)`` float32, softmax over the K+1 slots, slot 0 = background (the
``masks`` output of :class:`engine.types.PartOutput` stacked over a video). Part ids are
1-based (1..K), as in tracks.csv.

:class:`PartEdits` records which parts are dropped (folded into the background) and which are
merged into another; :func:`apply_part_edits` applies such a record to masks. The bundle
stores it in its metadata (:class:`engine.bundle.BundleMeta` ``dropped_parts`` /
``merged_parts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from parttrack.engine.types import part_labels


# --------------------------------------------------------------------------- edits
@dataclass(frozen=True)
class PartEdits:
    """Parts removed from a model's output, by 1-based part id.

    Attributes:
        dropped: parts whose mask mass goes to the background (slot 0); sorted, unique.
        merged: ``(into, part)`` pairs: ``part``'s mask mass goes to ``into``. Merges are
            applied before drops, so dropping ``into`` also drops what was merged into it.

    The slots of dropped and merged-away parts stay in the array (all zero), so part ids
    are unchanged.

    Raises:
        ValueError: an id < 1, a part merged into itself, a part merged away twice, a merge
            target that is itself merged away, or a part both dropped and merged away.
    """

    dropped: tuple[int, ...] = ()
    merged: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        dropped = tuple(sorted({int(p) for p in self.dropped}))
        merged = tuple((int(a), int(b)) for a, b in self.merged)
        object.__setattr__(self, "dropped", dropped)
        object.__setattr__(self, "merged", merged)
        ids = list(dropped) + [p for pair in merged for p in pair]
        if any(p < 1 for p in ids):
            raise ValueError(f"part ids are 1-based, got {min(ids)}")
        sources = [b for _, b in merged]
        for a, b in merged:
            if a == b:
                raise ValueError(f"part {a} cannot be merged into itself")
            if a in sources:
                raise ValueError(f"part {a} is merged into another part and cannot receive part {b}")
        dup = sorted({b for b in sources if sources.count(b) > 1})
        if dup:
            raise ValueError(f"part {dup[0]} is merged away more than once")
        both = sorted(set(sources) & set(dropped))
        if both:
            raise ValueError(f"part {both[0]} is both dropped and merged into another part")

    @property
    def removed(self) -> tuple[int, ...]:
        """Parts whose slot is empty after the edits (dropped or merged away), sorted."""
        return tuple(sorted(set(self.dropped) | {b for _, b in self.merged}))

    def __bool__(self) -> bool:
        return bool(self.dropped or self.merged)

    def check(self, num_parts: int) -> None:
        """Raise ValueError naming the first id outside ``1..num_parts``."""
        for p in list(self.dropped) + [q for pair in self.merged for q in pair]:
            if not 1 <= p <= num_parts:
                raise ValueError(f"there is no part {p}; the model has parts 1..{num_parts}")


def apply_part_edits(masks: np.ndarray, edits: PartEdits, axis: int = -3) -> np.ndarray:
    """Apply :class:`PartEdits` to soft masks.

    Args:
        masks: float ``(..., K+1, h, w)`` masks (any non-negative per-slot scores on one
            scale, e.g. softmax masks), slots along ``axis``; slot 0 = background.
        edits: the record; ids must be in 1..K.
        axis: the slot axis (default: third from last, as in ``(N, K+1, h, w)`` and
            ``(K+1, h, w)``).

    Returns:
        A new array of the same shape and dtype: each merged part's slot added to its target
        and zeroed, then each dropped part's slot added to slot 0 and zeroed. Per-pixel sums
        are unchanged. Without edits, ``masks`` itself is returned.

    Raises:
        ValueError: an id outside 1..K.
    """
    m = np.asarray(masks)
    k = m.shape[axis] - 1
    edits.check(k)
    if not edits:
        return masks
    out = np.moveaxis(m.copy(), axis, 0)
    for into, part in edits.merged:
        out[into] += out[part]
        out[part] = 0
    for part in edits.dropped:
        out[0] += out[part]
        out[part] = 0
    return np.moveaxis(out, 0, axis)


def fold_into_background(masks: np.ndarray, parts, axis: int = -3) -> np.ndarray:
    """Add the mask mass of ``parts`` (1-based ids) to the background slot and zero theirs.

    Same contract as :func:`apply_part_edits` with ``PartEdits(dropped=parts)``.
    """
    return apply_part_edits(masks, PartEdits(dropped=tuple(parts)), axis)


# --------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class SceneryThresholds:
    """Decision thresholds of :func:`detect_scenery` (fractions are of the frame / of the
    part's mask mass).

    Attributes:
        min_area: a part is visible in a frame when its region covers at least this
            fraction of the frame (0.002 ≈ 2 mask pixels of 32×32).
        min_visible: below this fraction of visible frames the part is "never visible".
        max_static_change: below this relative temporal change (see module docstring) the
            part is "static".
        background_tol: a mask pixel shows the static background when every channel of the
            frame (area-averaged to the mask grid, 0–255) is within this of the median.
        min_on_background: at or above this share of its region on background pixels the
            part is "on the background".
        min_compactness: below this median compactness, and with its covariance ellipse
            covering at least ``min_spread_extent`` of the frame (median over its visible
            frames), the part is "spread" (a low compactness alone also fits two small blobs
            that move together, such as a pair of ears).
        min_spread_extent: see ``min_compactness``.
        min_moving: with a moving-pixel map, below this share of its region on moving pixels
            the part "never moves".
    """

    min_area: float = 0.002
    min_visible: float = 0.05
    max_static_change: float = 0.05
    background_tol: float = 12.0
    min_on_background: float = 0.9
    min_compactness: float = 0.25
    min_spread_extent: float = 0.1
    min_moving: float = 0.1


@dataclass(frozen=True)
class ScenePart:
    """Scores of one part over a video.

    Attributes:
        part: 1-based part id.
        visible_frac: fraction of frames in which the part is visible.
        mean_area: mean area of its region as a fraction of the frame.
        change: relative temporal change of its region (0 = frozen; NaN if it never has a pixel).
        on_background: share of its region on static-background pixels (NaN without
            frames or without pixels).
        compactness: median compactness over its visible frames (NaN if never visible).
        scenery: whether any test flags it.
        reason: the tests that flagged it, "; "-separated ("" if none).
        on_moving: share of its region on moving pixels (NaN without a moving-pixel map or
            without pixels).
    """

    part: int
    visible_frac: float
    mean_area: float
    change: float
    on_background: float
    compactness: float
    scenery: bool
    reason: str
    on_moving: float = math.nan


def _frames_at_mask_grid(frames: np.ndarray, hw: tuple[int, int], letterbox) -> np.ndarray:
    import cv2

    h, w = hw
    out = np.empty((frames.shape[0], h, w, 3), np.float32)
    for i, f in enumerate(frames):
        if letterbox is not None:
            f = letterbox.apply(f)
        out[i] = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA)
    return out


def detect_scenery(masks: np.ndarray, frames: np.ndarray | None = None, *,
                   letterbox=None, thresholds: SceneryThresholds | None = None,
                   moving: np.ndarray | None = None, background: np.ndarray | None = None) -> list[ScenePart]:
    """Score each of the K parts of a video's masks and flag those that model the scenery.

    Args:
        masks: ``(N, K+1, h, w)`` float softmax masks of N frames (slot 0 = background).
        frames: optional ``(N, H, W, 3)`` uint8 frames (RGB or BGR) the masks were computed
            from; enables the "on the background" test (static camera).
        letterbox: the frames' :class:`engine.preprocess.Letterbox` when the masks cover the
            letterboxed model input; None = the masks cover exactly the frames.
        thresholds: see :class:`SceneryThresholds`.
        moving: optional ``(N, h, w)`` float in [0, 1] at the mask grid: the share of each mask
            pixel that moves relative to the camera (:func:`engine.flow.moving_pixels`);
            enables the "never moves" test, which also works with a moving camera.
        background: optional ``(H, W, 3)`` static background image of ``frames`` (same size
            and channel order, 0–255, e.g. :func:`engine.background.estimate_background`)
            for the "on the background" test; None: the frames' per-pixel temporal median
            (which shows a subject that stays in one place as background).

    Returns:
        K :class:`ScenePart` records, part 1..K in order.

    Raises:
        ValueError: masks not 4-D with at least one part, or frames of another length or
            not ``(N, H, W, 3)`` uint8.
    """
    th = thresholds or SceneryThresholds()
    m = np.asarray(masks)
    if m.ndim != 4 or m.shape[1] < 2 or m.shape[0] < 1:
        raise ValueError(f"masks must be (N, K+1, h, w) with K >= 1, got shape {m.shape}")
    n, k1, h, w = m.shape
    labels = part_labels(m, axis=1)  # (N, h, w) hard assignment, as for area_px
    parts = (labels[:, None] == np.arange(1, k1, dtype=np.uint8)[None, :, None, None])  # (N, K, h, w) bool
    mass = parts.sum(axis=(2, 3), dtype=np.float64)  # (N, K) mask pixels
    area = mass / (h * w)
    visible = area >= th.min_area
    visible_frac = visible.mean(axis=0)
    total = mass.sum(axis=0)  # (K,)

    majority = 2 * parts.sum(axis=0, dtype=np.int32) > n  # temporal median of a 0/1 mask
    dev = (parts != majority[None]).sum(axis=(0, 2, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        change = np.where(total > 0, dev / total, np.nan)

    on_bg = np.full(k1 - 1, np.nan)
    if frames is not None:
        f = np.asarray(frames)
        if f.ndim != 4 or f.shape[0] != n or f.shape[3] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be ({n}, H, W, 3) uint8 to match the masks, got {f.shape} {f.dtype}")
        small = _frames_at_mask_grid(f, (h, w), letterbox)
        if background is None:
            ref = np.median(small, axis=0)
        else:
            bg = np.asarray(background, np.float32)
            if bg.shape != f.shape[1:]:
                raise ValueError(f"background must be {f.shape[1:]} to match the frames, got {bg.shape}")
            ref = _frames_at_mask_grid(bg[None], (h, w), letterbox)[0]
        still = (np.abs(small - ref[None]).max(axis=-1) < th.background_tol)  # (N, h, w)
        bg_mass = (parts & still[:, None]).sum(axis=(0, 2, 3), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            on_bg = np.where(total > 0, bg_mass / total, np.nan)

    on_moving = np.full(k1 - 1, np.nan)
    if moving is not None:
        mv = np.asarray(moving, np.float32)
        if mv.shape != (n, h, w):
            raise ValueError(f"moving must be ({n}, {h}, {w}) to match the masks, got {mv.shape}")
        mv_mass = np.einsum("nkhw,nhw->k", parts.astype(np.float32), mv).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            on_moving = np.where(total > 0, mv_mass / total, np.nan)

    # Compactness per frame from the moments of the part's region (mask pixel units;
    # + 1/12: a pixel's own extent, Sheppard's correction).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    pf = parts.astype(np.float32)
    safe = np.maximum(mass, 1e-12)
    mx = np.einsum("nkhw,hw->nk", pf, xx) / safe
    my = np.einsum("nkhw,hw->nk", pf, yy) / safe
    sxx = np.einsum("nkhw,hw->nk", pf, xx * xx) / safe - mx * mx + 1.0 / 12.0
    syy = np.einsum("nkhw,hw->nk", pf, yy * yy) / safe - my * my + 1.0 / 12.0
    sxy = np.einsum("nkhw,hw->nk", pf, xx * yy) / safe - mx * my
    det = np.maximum(sxx * syy - sxy * sxy, 1e-12)
    ellipse = 4.0 * math.pi * np.sqrt(det)  # (N, K) area of the covariance ellipse, mask pixels
    comp = mass / ellipse

    out = []
    for j in range(k1 - 1):
        vis = visible[:, j]
        compactness = float(np.median(comp[vis, j])) if vis.any() else math.nan
        extent = float(np.median(ellipse[vis, j])) / (h * w) if vis.any() else math.nan
        reasons = []
        if visible_frac[j] < th.min_visible:
            reasons.append(f"never visible (≥ {th.min_area:.1%} of the frame in "
                           f"{visible_frac[j]:.0%} of frames)")
        else:
            if change[j] < th.max_static_change:
                reasons.append(f"static (temporal change {change[j]:.2f} < {th.max_static_change})")
            if on_moving[j] < th.min_moving:
                reasons.append(f"never moves ({on_moving[j]:.0%} of its mass on moving pixels)")
            if on_bg[j] >= th.min_on_background:
                reasons.append(f"on the static background ({on_bg[j]:.0%} of its mass)")
            if compactness < th.min_compactness and extent >= th.min_spread_extent:
                reasons.append(f"spread over the frame (compactness {compactness:.2f} < {th.min_compactness}, "
                               f"its ellipse covers {extent:.0%} of the frame)")
        out.append(ScenePart(part=j + 1, visible_frac=float(visible_frac[j]), mean_area=float(area[:, j].mean()),
                             change=float(change[j]), on_background=float(on_bg[j]),
                             compactness=compactness, scenery=bool(reasons), reason="; ".join(reasons),
                             on_moving=float(on_moving[j])))
    return out


def scenery_edits(scores: list[ScenePart], existing: PartEdits | None = None) -> PartEdits:
    """A :class:`PartEdits` that drops every part flagged in ``scores`` (added to
    ``existing``'s drops; a flagged part that ``existing`` merges away stays merged)."""
    existing = existing or PartEdits()
    merged_away = {b for _, b in existing.merged}
    drop = set(existing.dropped) | {s.part for s in scores if s.scenery and s.part not in merged_away}
    return PartEdits(dropped=tuple(drop), merged=existing.merged)
