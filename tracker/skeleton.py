"""Skeleton: which parts are adjacent, and where the joint between two adjacent parts is.

**Adjacency** comes from where the part masks touch (:class:`ContactAccumulator`): in each
frame's label map (at mask resolution) every pair of 4-neighbouring pixels with two different
part labels is a contact between those parts. Parts a and b are adjacent when they touch in at
least ``min_touch`` of the frames in which both are visible; by default the adjacency is then
reduced to a maximum spanning tree (forest) on that touch fraction, because articulated bodies
are trees and spurious contacts (a hand passing over the torso) are weaker than real ones.
Edges stored in the model bundle (``BundleMeta.skeleton_edges``, set by ``parttrack label``)
take precedence when given.

**Joints** (:class:`JointAccumulator`): the joint between parts a and b is the point that moves
rigidly with both. With part poses (centre ``c``, angle ``φ``) and the rotation
``R(φ)`` whose columns are the part's axes in image coordinates (``d1 = (cos φ, −sin φ)``,
``d2 = (sin φ, cos φ)``; :mod:`tracker.core`), a point with fixed local coordinates
``u_a`` in part a and ``u_b`` in part b satisfies in every frame t::

    c_a(t) + R_a(t) u_a = c_b(t) + R_b(t) u_b

Stacking the frames where both parts are visible (weighted by the smaller confidence) gives a
linear least-squares problem in ``(u_a, u_b)`` ∈ R⁴, solved from accumulated normal equations
(so it runs online too). When the two parts hardly rotate relative to each other the problem
is degenerate along one direction; a small ridge term pulls the solution towards the mean
contact point of the two masks, which decides that direction. The joint's position in a
frame is the mean of its two predictions ``c_a + R_a u_a`` and ``c_b + R_b u_b``; the RMS of
their half-difference over the fit frames is the joint's residual (pixels; small for a real
hinge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parttrack.tracker.core import JointPositions, PartPoses, Track


def rotations(angle_deg: np.ndarray) -> np.ndarray:
    """``(..., 2, 2)`` matrices whose columns are a part's axes in image coordinates (x right,
    y down) for angles counter-clockwise on screen: ``[[cos, sin], [−sin, cos]]``."""
    a = np.radians(np.asarray(angle_deg, np.float64))
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)


def _pair_index(k: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(k, 1)
    return a, b  # 0-based part indices, a < b


# ---------------------------------------------------------------------------- adjacency
class ContactAccumulator:
    """Counts where part masks touch over a video.

    Args:
        num_parts: K.
        grid_x: ``(w,)`` source x coordinate of each label-map column (pixel centres).
        grid_y: ``(h,)`` source y coordinate of each label-map row.

    Attributes (after :meth:`add`), indexed by 0-based part indices:
        touch_frames: ``(K, K)`` frames in which both a and b were visible and touched.
        both_visible: ``(K, K)`` frames in which both were visible.
        contact_pixels: ``(K, K)`` touching pixel pairs summed over frames.
    """

    def __init__(self, num_parts: int, grid_x: np.ndarray, grid_y: np.ndarray) -> None:
        k = self.k = int(num_parts)
        self.grid_x = np.asarray(grid_x, np.float64)
        self.grid_y = np.asarray(grid_y, np.float64)
        self.touch_frames = np.zeros((k, k))
        self.both_visible = np.zeros((k, k))
        self.contact_pixels = np.zeros((k, k))
        # Σ over touching frames of the contact point in each part's local frame.
        self._local_a = np.zeros((k, k, 2))  # in part a (row index)
        self._local_n = np.zeros((k, k))
        self.frames = 0

    def add(self, labels: np.ndarray, xy: np.ndarray, angle_deg: np.ndarray, visible: np.ndarray) -> None:
        """Add N frames.

        Args:
            labels: ``(N, h, w)`` integer label maps (0 = background, i = part i) at the grid.
            xy: ``(N, K, 2)`` part centres (source px); angle_deg ``(N, K)``; visible ``(N, K)``.
        """
        k1 = self.k + 1
        labels = np.asarray(labels)
        n = labels.shape[0]
        gx, gy = np.broadcast_to(self.grid_x[None, :], labels.shape[1:]), np.broadcast_to(self.grid_y[:, None], labels.shape[1:])
        rot = rotations(angle_deg)  # (N, K, 2, 2)
        vis = np.asarray(visible, bool)
        both = vis[:, :, None] & vis[:, None, :]  # (N, K, K)
        self.both_visible += both.sum(0)
        self.frames += n
        lab = labels.astype(np.int64)
        base = (np.arange(n, dtype=np.int64) * (k1 * k1))[:, None, None]
        idx_parts, wx_parts, wy_parts = [], [], []
        for p, q, mx, my in ((lab[:, :, :-1], lab[:, :, 1:], 0.5 * (gx[:, :-1] + gx[:, 1:]), gy[:, :-1]),
                             (lab[:, :-1, :], lab[:, 1:, :], gx[:-1, :], 0.5 * (gy[:-1, :] + gy[1:, :]))):
            sel = (p != q) & (p > 0) & (q > 0)
            if not sel.any():
                continue
            pair = np.minimum(p, q) * k1 + np.maximum(p, q) + base
            idx_parts.append(pair[sel])
            wx_parts.append(np.broadcast_to(mx, sel.shape)[sel])
            wy_parts.append(np.broadcast_to(my, sel.shape)[sel])
        if not idx_parts:
            return
        idx = np.concatenate(idx_parts)
        size = n * k1 * k1
        cnt = np.bincount(idx, minlength=size).reshape(n, k1, k1)[:, 1:, 1:]
        sx = np.bincount(idx, np.concatenate(wx_parts), minlength=size).reshape(n, k1, k1)[:, 1:, 1:]
        sy = np.bincount(idx, np.concatenate(wy_parts), minlength=size).reshape(n, k1, k1)[:, 1:, 1:]
        touch = cnt > 0  # upper triangle only
        sym = touch | np.swapaxes(touch, 1, 2)
        self.touch_frames += (sym & both).sum(0)  # same frames as the denominator: a fraction ≤ 1
        self.contact_pixels += (cnt + np.swapaxes(cnt, 1, 2)).sum(0)
        f, ia, ib = np.nonzero(touch)
        point = np.stack([sx[f, ia, ib], sy[f, ia, ib]], -1) / cnt[f, ia, ib][:, None]
        xy = np.asarray(xy, np.float64)
        for u, v in ((ia, ib), (ib, ia)):
            local = np.einsum("mji,mj->mi", rot[f, u], point - xy[f, u])  # R_uᵀ (p − c_u)
            np.add.at(self._local_a, (u, v), local)
            np.add.at(self._local_n, (u, v), 1.0)

    def touch_fraction(self) -> np.ndarray:
        """``(K, K)`` fraction, in [0, 1], of the frames with both parts visible in which they
        touched (numerator and denominator count the same frames; 0 where never both visible)."""
        return np.where(self.both_visible > 0, self.touch_frames / np.maximum(self.both_visible, 1), 0.0)

    def contact_local(self) -> np.ndarray:
        """``(K, K, 2)`` mean contact point of parts (a, b) in part a's local frame (px)."""
        return self._local_a / np.maximum(self._local_n, 1)[..., None]

    def edges(self, min_touch: float = 0.2, tree: bool = True) -> np.ndarray:
        """Adjacent part pairs.

        Args:
            min_touch: minimum touch fraction (:meth:`touch_fraction`).
            tree: reduce to a maximum spanning forest on the touch fraction.

        Returns:
            ``(J, 2)`` int64 1-based part ids, a < b, strongest first.
        """
        frac = self.touch_fraction()
        a, b = _pair_index(self.k)
        w = frac[a, b]
        order = np.argsort(-w, kind="stable")
        keep = []
        parent = list(range(self.k))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for o in order:
            if w[o] < min_touch or w[o] <= 0:
                break
            i, j = int(a[o]), int(b[o])
            if tree:
                ri, rj = find(i), find(j)
                if ri == rj:
                    continue
                parent[ri] = rj
            keep.append((i + 1, j + 1))
        return np.array(keep, np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------- joints
class JointAccumulator:
    """Normal equations of the rigid-joint least squares for every pair of parts.

    Per pair (a, b) it keeps Σw, Σw·R_aᵀR_b, Σw·R_aᵀd, Σw·R_bᵀd and Σw·|d|² with
    ``d = c_b − c_a`` over the frames where both parts are visible (w = min confidence).
    """

    def __init__(self, num_parts: int) -> None:
        k = self.k = int(num_parts)
        self.sw = np.zeros((k, k))
        self.srel = np.zeros((k, k, 2, 2))
        self.sad = np.zeros((k, k, 2))
        self.sbd = np.zeros((k, k, 2))
        self.sdd = np.zeros((k, k))

    def add(self, xy: np.ndarray, angle_deg: np.ndarray, visible: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Add N frames of poses: xy ``(N, K, 2)``, angle_deg/visible/confidence ``(N, K)``.
        Poses of parts not visible are not read (they may be NaN)."""
        vis = np.asarray(visible, bool)
        xy = np.where(vis[..., None], np.asarray(xy, np.float64), 0.0)
        rot = rotations(np.where(vis, angle_deg, 0.0))  # (N, K, 2, 2)
        conf = np.ones(vis.shape) if confidence is None else np.clip(np.asarray(confidence, np.float64), 0, 1)
        w = np.where(vis[:, :, None] & vis[:, None, :], np.minimum(conf[:, :, None], conf[:, None, :]), 0.0)  # (N,K,K)
        d = xy[:, None, :, :] - xy[:, :, None, :]  # d[n, a, b] = c_b − c_a
        rt = np.swapaxes(rot, -1, -2)  # R_aᵀ
        rel = np.einsum("naij,nbjk->nabik", rt, rot)  # R_aᵀ R_b
        self.sw += w.sum(0)
        self.srel += np.einsum("nab,nabik->abik", w, rel)
        self.sad += np.einsum("nab,naij,nabj->abi", w, rt, d)
        self.sbd += np.einsum("nab,nbij,nabj->abi", w, rt, d)
        self.sdd += np.einsum("nab,nabj,nabj->ab", w, d, d)

    def solve(self, pairs: np.ndarray, prior: np.ndarray | None = None, ridge: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
        """Joint offsets for the given pairs.

        Args:
            pairs: ``(J, 2)`` 1-based part ids.
            prior: ``(J, 2, 2)`` prior local coordinates ``(u_a, u_b)`` (e.g. the mean contact
                point), pulled towards with weight ``ridge · Σw``; None = zeros (part centres).
            ridge: relative weight of the prior.

        A solution farther than 1.5× the parts' RMS centre distance from either centre is
        implausible for a joint between them (a near-degenerate system) and is replaced by the
        prior when one is given.

        Returns:
            ``(offsets (J, 2, 2), residual_px (J,))``: ``offsets[j] = (u_a, u_b)`` local
            coordinates of the joint in part a and part b (px along the part's axes); the RMS
            half-distance between the two predictions (NaN when the pair was never visible
            together).
        """
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        offsets = np.zeros((len(pairs), 2, 2))
        residual = np.full(len(pairs), np.nan)
        for j, (pa, pb) in enumerate(pairs):
            a, b = int(pa) - 1, int(pb) - 1
            sw = self.sw[a, b]
            if sw <= 0:
                if prior is not None:
                    offsets[j] = prior[j]
                continue
            m = np.zeros((4, 4))
            m[:2, :2] = np.eye(2) * sw
            m[2:, 2:] = np.eye(2) * sw
            m[:2, 2:] = -self.srel[a, b]
            m[2:, :2] = -self.srel[a, b].T
            rhs = np.concatenate([self.sad[a, b], -self.sbd[a, b]])
            lam = ridge * sw
            x0 = np.zeros(4) if prior is None else np.asarray(prior[j], np.float64).reshape(4)
            x = np.linalg.solve(m + lam * np.eye(4), rhs + lam * x0)
            # A hinge lies between its two parts: a solution farther from either centre than
            # 1.5× their RMS distance comes from a near-degenerate system (parts that hardly
            # rotate against each other, noisy angles) — use the contact point instead.
            reach = 1.5 * np.sqrt(self.sdd[a, b] / sw)
            if prior is not None and max(np.hypot(*x[:2]), np.hypot(*x[2:])) > reach:
                x = x0
            offsets[j] = x.reshape(2, 2)
            sq = x @ m @ x - 2 * x @ rhs + self.sdd[a, b]  # Σw |A x − d|²
            residual[j] = 0.5 * np.sqrt(max(sq, 0.0) / sw)
        return offsets, residual


# ---------------------------------------------------------------------------- the skeleton
@dataclass(frozen=True)
class Skeleton:
    """Adjacent part pairs and their joints.

    Attributes:
        edges: ``(J, 2)`` int64 1-based part ids (a < b).
        offsets: ``(J, 2, 2)`` float64 joint in part a's and part b's local frame
            (px along the part's first and second axis).
        touch: ``(J,)`` touch fraction of each edge (NaN for edges from the bundle).
        residual_px: ``(J,)`` RMS rigidity residual of each joint (px).
    """

    edges: np.ndarray
    offsets: np.ndarray
    touch: np.ndarray
    residual_px: np.ndarray

    def __post_init__(self) -> None:
        j = len(self.edges)
        if self.edges.shape != (j, 2) or self.offsets.shape != (j, 2, 2) or self.touch.shape != (j,) \
                or self.residual_px.shape != (j,):
            raise ValueError(f"Skeleton arrays disagree: edges {self.edges.shape}, offsets {self.offsets.shape}, "
                             f"touch {self.touch.shape}, residual {self.residual_px.shape}")

    @classmethod
    def empty(cls) -> "Skeleton":
        return cls(np.zeros((0, 2), np.int64), np.zeros((0, 2, 2)), np.zeros(0), np.zeros(0))

    def __len__(self) -> int:
        return len(self.edges)

    def joint_xy(self, xy: np.ndarray, angle_deg: np.ndarray) -> np.ndarray:
        """Joint positions ``(..., J, 2)`` for poses ``xy (..., K, 2)``, ``angle_deg (..., K)``."""
        if len(self.edges) == 0:
            return np.zeros(np.shape(angle_deg)[:-1] + (0, 2))
        rot = rotations(angle_deg)
        a, b = self.edges[:, 0] - 1, self.edges[:, 1] - 1
        pa = xy[..., a, :] + np.einsum("...jik,jk->...ji", rot[..., a, :, :], self.offsets[:, 0])
        pb = xy[..., b, :] + np.einsum("...jik,jk->...ji", rot[..., b, :, :], self.offsets[:, 1])
        return 0.5 * (pa + pb)

    def joints(self, poses: PartPoses) -> JointPositions:
        """The joints of one frame."""
        return JointPositions(poses.index, poses.time_s, self.edges.copy(), self.joint_xy(poses.xy, poses.angle_deg))

    def joints_track(self, track: Track) -> list[JointPositions]:
        """The joints of every frame of a track."""
        xy = self.joint_xy(track.xy, track.angle_deg)
        return [JointPositions(int(track.index[t]), float(track.time_s[t]), self.edges.copy(), xy[t])
                for t in range(len(track))]

    def to_json(self, part_names=()) -> list[dict]:
        """JSON-ready description (for track.json)."""
        out = []
        for j, (a, b) in enumerate(self.edges):
            item = {"joint": j + 1, "part_a": int(a), "part_b": int(b),
                    "offset_a_px": [round(float(v), 4) for v in self.offsets[j, 0]],
                    "offset_b_px": [round(float(v), 4) for v in self.offsets[j, 1]],
                    "touch_fraction": None if not np.isfinite(self.touch[j]) else round(float(self.touch[j]), 4),
                    "residual_px": None if not np.isfinite(self.residual_px[j]) else round(float(self.residual_px[j]), 4)}
            if part_names:
                item["name"] = f"{part_names[a - 1]}-{part_names[b - 1]}"
            out.append(item)
        return out

    @classmethod
    def from_json(cls, items: list[dict]) -> "Skeleton":
        if not items:
            return cls.empty()
        nan = float("nan")
        return cls(np.array([[d["part_a"], d["part_b"]] for d in items], np.int64),
                   np.array([[d["offset_a_px"], d["offset_b_px"]] for d in items], np.float64),
                   np.array([nan if d.get("touch_fraction") is None else d["touch_fraction"] for d in items]),
                   np.array([nan if d.get("residual_px") is None else d["residual_px"] for d in items]))


def fit_skeleton(contacts: ContactAccumulator | None, joints: JointAccumulator, *, edges=None,
                 min_touch: float = 0.2, tree: bool = True, ridge: float = 1e-4) -> Skeleton:
    """Choose the edges (given ``edges``, else from ``contacts``) and fit their joints.

    Args:
        contacts: contact statistics (may be None when ``edges`` is given).
        joints: accumulated pose statistics (:class:`JointAccumulator`).
        edges: ``(J, 2)`` 1-based pairs to use (e.g. the bundle's skeleton_edges), or None.
        min_touch, tree: adjacency selection (:meth:`ContactAccumulator.edges`).
        ridge: prior weight (:meth:`JointAccumulator.solve`).
    """
    if edges is not None and len(edges):
        pairs = np.sort(np.asarray(edges, np.int64).reshape(-1, 2), axis=1)
        touch = np.full(len(pairs), np.nan)
        if contacts is not None:
            touch = contacts.touch_fraction()[pairs[:, 0] - 1, pairs[:, 1] - 1]
    elif contacts is not None:
        pairs = contacts.edges(min_touch=min_touch, tree=tree)
        touch = contacts.touch_fraction()[pairs[:, 0] - 1, pairs[:, 1] - 1] if len(pairs) else np.zeros(0)
    else:
        return Skeleton.empty()
    if len(pairs) == 0:
        return Skeleton.empty()
    prior = None
    if contacts is not None:
        loc = contacts.contact_local()
        a, b = pairs[:, 0] - 1, pairs[:, 1] - 1
        prior = np.stack([loc[a, b], loc[b, a]], 1)
    offsets, residual = joints.solve(pairs, prior, ridge)
    return Skeleton(pairs, offsets, np.asarray(touch, np.float64), residual)


def skeleton_from_track(track: Track, contacts: ContactAccumulator | None = None, **kw) -> Skeleton:
    """Fit a skeleton to a whole (smoothed) track; see :func:`fit_skeleton` for ``kw``."""
    acc = JointAccumulator(track.num_parts)
    acc.add(track.xy, track.angle_deg, track.visible, track.confidence)
    return fit_skeleton(contacts, acc, **kw)


class OnlineSkeleton:
    """Skeleton estimation for live use: accumulates contacts and joint statistics frame by
    frame and refits every ``refit_every`` frames once ``warmup`` frames were seen (or
    immediately when ``edges`` are given, e.g. from the bundle).

    Args:
        num_parts: K.
        grid_x, grid_y: source coordinates of the label-map columns/rows.
        edges: fixed edges (1-based pairs) or None to estimate them.
        warmup: frames before the first fit.
        refit_every: frames between refits.
    """

    def __init__(self, num_parts: int, grid_x, grid_y, *, edges=None, warmup: int = 30, refit_every: int = 30,
                 min_touch: float = 0.2, tree: bool = True) -> None:
        self.contacts = ContactAccumulator(num_parts, grid_x, grid_y)
        self.acc = JointAccumulator(num_parts)
        self.edges = None if edges is None or not len(edges) else np.asarray(edges, np.int64)
        self.warmup, self.refit_every = int(warmup), int(refit_every)
        self.min_touch, self.tree = min_touch, tree
        self.skeleton: Skeleton | None = None
        self.frames = 0

    def update(self, labels_small: np.ndarray, poses: PartPoses) -> JointPositions | None:
        """Add one frame (its mask-resolution label map and its smoothed poses) and return
        its joints, or None before the first fit."""
        self.contacts.add(labels_small[None], poses.xy[None], poses.angle_deg[None], poses.visible[None])
        self.acc.add(poses.xy[None], poses.angle_deg[None], poses.visible[None], poses.confidence[None])
        self.frames += 1
        due = self.frames >= (1 if self.edges is not None else self.warmup)
        if due and (self.skeleton is None or self.frames % self.refit_every == 0):
            self.skeleton = fit_skeleton(self.contacts, self.acc, edges=self.edges, min_touch=self.min_touch,
                                         tree=self.tree)
        return None if self.skeleton is None else self.skeleton.joints(poses)
