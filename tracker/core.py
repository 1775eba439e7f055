"""Data carried between the tracking stages (imports only numpy).

Conventions used by every stage and every exported file — source-video pixels (x right,
y down), angles in degrees counter-clockwise on screen in (-180, 180], time in seconds from the
stream's timestamps, part ids 1..K, ``(H, W, 3)`` uint8 RGB images — are stated once, in
README.md, section "Conventions: coordinates, angles, time"; :data:`CONVENTIONS` is the copy
written into every ``track.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The conventions written into every ``track.json`` (README.md, "Conventions").
CONVENTIONS = {
    "xy": "source-video pixels, x right, y down, centre of the top-left pixel at (0, 0)",
    "angle_deg": "direction of the part's first axis, degrees in (-180, 180], counter-clockwise on screen from +x",
    "scale": "lengths of the part's two axes in source pixels (columns of A = R(theta) diag(s_x, s_y))",
    "time_s": "seconds from the video stream's presentation timestamps",
    "part": "part ids 1..K (0 = background in label maps)",
    "joint_offsets": "joint in each part's local frame: pixels along the part's first and second axis",
    "visible": "1 = measured in this frame; 0 = mask too small, pose predicted by the Kalman filter",
}


def _check(name: str, arr: np.ndarray, shape: tuple, dtype=None) -> None:
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if dtype is not None and arr.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype)}, got {arr.dtype}")


@dataclass(frozen=True)
class Frame:
    """One decoded video frame.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        index: 0-based position in the stream (decode order of presented frames).
        time_s: presentation time in seconds from the stream's timestamps.
    """

    image: np.ndarray
    index: int
    time_s: float

    def __post_init__(self) -> None:
        _check("Frame.image", self.image, (None, None, 3), np.uint8)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class PartPoses:
    """The poses of all K parts in one frame (source-video pixels; see module docstring).

    Attributes:
        index: frame index.
        time_s: frame time in seconds.
        xy: ``(K, 2)`` float64 part centres.
        angle_deg: ``(K,)`` float64 in (-180, 180], counter-clockwise on screen.
        scale: ``(K, 2)`` float64 axis lengths in pixels (scale_x, scale_y), see module doc.
        area_px: ``(K,)`` float64 mask area in source pixels.
        visible: ``(K,)`` bool, False when the part's mask is too small (pose predicted).
        confidence: ``(K,)`` float64 in [0, 1].
    """

    index: int
    time_s: float
    xy: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    area_px: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray

    def __post_init__(self) -> None:
        k = self.xy.shape[0] if self.xy.ndim == 2 else -1
        _check("PartPoses.xy", self.xy, (None, 2))
        _check("PartPoses.angle_deg", self.angle_deg, (k,))
        _check("PartPoses.scale", self.scale, (k, 2))
        _check("PartPoses.area_px", self.area_px, (k,))
        _check("PartPoses.visible", self.visible, (k,), np.bool_)
        _check("PartPoses.confidence", self.confidence, (k,))

    @property
    def num_parts(self) -> int:
        return int(self.xy.shape[0])


@dataclass(frozen=True)
class PoseBatch:
    """The poses of N frames from one inference batch, stacked, with the diagnostics pose
    extraction computes on the way (:meth:`tracker.poses.PoseExtractor.compute`). Source-video
    pixels throughout (module docstring).

    Attributes:
        xy: ``(N, K, 2)`` float64 part centres.
        angle_deg: ``(N, K)`` float64 in (-180, 180], counter-clockwise on screen.
        scale: ``(N, K, 2)`` float64 axis lengths in pixels.
        area_px: ``(N, K)`` float64 mask areas in source pixels.
        visible: ``(N, K)`` bool.
        confidence: ``(N, K)`` float64 in [0, 1].
        centroid: ``(N, K, 2)`` float64 mask centroids.
        cov: ``(N, K, 2, 2)`` float64 mask covariances (px²).
        t_xy: ``(N, K, 2)`` float64 the transforms' translations.
        A: ``(N, K, 2, 2)`` float64 the transforms' matrices, columns = the part's axes (px).
        labels: ``(N, h', w')`` uint8 hard label map of the mask pixels that lie on the source
            frame (0 = background; their source coordinates are the extractor's ``grid_x``,
            ``grid_y``).
    """

    xy: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    area_px: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray
    centroid: np.ndarray
    cov: np.ndarray
    t_xy: np.ndarray
    A: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        n, k = self.xy.shape[:2] if self.xy.ndim == 3 else (-1, -1)
        _check("PoseBatch.xy", self.xy, (None, None, 2))
        for name in ("angle_deg", "area_px", "confidence"):
            _check(f"PoseBatch.{name}", getattr(self, name), (n, k))
        _check("PoseBatch.visible", self.visible, (n, k), np.bool_)
        for name in ("scale", "centroid", "t_xy"):
            _check(f"PoseBatch.{name}", getattr(self, name), (n, k, 2))
        _check("PoseBatch.cov", self.cov, (n, k, 2, 2))
        _check("PoseBatch.A", self.A, (n, k, 2, 2))
        _check("PoseBatch.labels", self.labels, (n, None, None), np.uint8)

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def num_parts(self) -> int:
        return int(self.xy.shape[1])

    def pose(self, i: int, index: int, time_s: float) -> PartPoses:
        """Frame ``i`` of the batch as :class:`PartPoses` with its frame index and time."""
        return PartPoses(int(index), float(time_s), self.xy[i], self.angle_deg[i], self.scale[i], self.area_px[i],
                         self.visible[i], self.confidence[i])

    def poses(self, indices, times_s) -> list[PartPoses]:
        """Every frame as :class:`PartPoses`.

        Raises:
            ValueError: ``indices`` or ``times_s`` not of length N.
        """
        n = len(self)
        if len(indices) != n or len(times_s) != n:
            raise ValueError(f"got {n} frames of poses but {len(indices)} indices and {len(times_s)} times")
        return [self.pose(i, indices[i], times_s[i]) for i in range(n)]


@dataclass(frozen=True)
class JointPositions:
    """Joint positions in one frame.

    Attributes:
        index, time_s: the frame.
        pairs: ``(J, 2)`` int64 1-based part ids (part_a < part_b) each joint links.
        xy: ``(J, 2)`` float64 joint positions in source-video pixels.
    """

    index: int
    time_s: float
    pairs: np.ndarray
    xy: np.ndarray

    def __post_init__(self) -> None:
        _check("JointPositions.pairs", self.pairs, (None, 2))
        _check("JointPositions.xy", self.xy, (self.pairs.shape[0], 2))


@dataclass(frozen=True)
class Track:
    """Part poses over T frames (stacked :class:`PartPoses`).

    Attributes:
        index: ``(T,)`` int64 frame indices.
        time_s: ``(T,)`` float64 seconds, non-decreasing.
        xy: ``(T, K, 2)`` float64; angle_deg ``(T, K)``; scale ``(T, K, 2)``;
        area_px ``(T, K)``; visible ``(T, K)`` bool; confidence ``(T, K)``.
    """

    index: np.ndarray
    time_s: np.ndarray
    xy: np.ndarray
    angle_deg: np.ndarray
    scale: np.ndarray
    area_px: np.ndarray
    visible: np.ndarray
    confidence: np.ndarray

    def __post_init__(self) -> None:
        t = self.index.shape[0]
        k = self.xy.shape[1] if self.xy.ndim == 3 else -1
        _check("Track.time_s", self.time_s, (t,))
        _check("Track.xy", self.xy, (t, None, 2))
        _check("Track.angle_deg", self.angle_deg, (t, k))
        _check("Track.scale", self.scale, (t, k, 2))
        _check("Track.area_px", self.area_px, (t, k))
        _check("Track.visible", self.visible, (t, k), np.bool_)
        _check("Track.confidence", self.confidence, (t, k))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def num_parts(self) -> int:
        return int(self.xy.shape[1])

    @classmethod
    def from_poses(cls, poses: list[PartPoses]) -> "Track":
        """Stack per-frame poses (at least one)."""
        if not poses:
            raise ValueError("Track.from_poses needs at least one PartPoses")
        return cls(
            index=np.array([p.index for p in poses], dtype=np.int64),
            time_s=np.array([p.time_s for p in poses], dtype=np.float64),
            xy=np.stack([p.xy for p in poses]).astype(np.float64),
            angle_deg=np.stack([p.angle_deg for p in poses]).astype(np.float64),
            scale=np.stack([p.scale for p in poses]).astype(np.float64),
            area_px=np.stack([p.area_px for p in poses]).astype(np.float64),
            visible=np.stack([p.visible for p in poses]),
            confidence=np.stack([p.confidence for p in poses]).astype(np.float64),
        )

    def poses(self, t: int) -> PartPoses:
        """The :class:`PartPoses` of row ``t``."""
        return PartPoses(int(self.index[t]), float(self.time_s[t]), self.xy[t], self.angle_deg[t],
                         self.scale[t], self.area_px[t], self.visible[t], self.confidence[t])
