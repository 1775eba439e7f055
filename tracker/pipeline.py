"""The live tracking pipeline: frame → letterbox → network → part poses → Kalman filter →
label map and joints, one frame at a time (causal), for the Qt viewer and recording.

:class:`OnlineTracker` wires :mod:`tracker.poses`, :mod:`tracker.kalman` and
:mod:`tracker.skeleton` around an inference runtime (:class:`engine.runtime.base.Runtime`).
Recorded videos (offline smoothing, files) go through :mod:`tracker.offline` (one video) and
:mod:`tracker.batch` (many).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.preprocess import Letterbox
from engine.types import PartOutput
from tracker.core import Frame, JointPositions, PartPoses
from tracker.kalman import KalmanFactory
from tracker.poses import PoseConfig, PoseExtractor, SourceLabeler, check_finite, labels_at_source
from tracker.skeleton import OnlineSkeleton


@dataclass(frozen=True)
class TrackedFrame:
    """Everything the pipeline knows about one frame.

    Attributes:
        frame: the input :class:`tracker.core.Frame` (source resolution, RGB).
        raw: unsmoothed poses measured in this frame (source pixels).
        smoothed: Kalman-filtered poses (causal; same K; parts not visible are predicted).
        labels: ``(H, W)`` uint8 part label map at the source resolution (0 = background),
            or None when the tracker was built with ``labels=False``.
        joints: joint positions from the online skeleton (smoothed poses), or None until the
            skeleton is known (after ``skeleton_warmup`` frames unless the bundle has edges).
    """

    frame: Frame
    raw: PartPoses
    smoothed: PartPoses
    labels: np.ndarray | None
    joints: JointPositions | None


class OnlineTracker:
    """Causal per-frame tracking for live use.

    Args:
        runtime: an inference runtime (``infer``, ``meta``; :mod:`engine.runtime`).
        src_h, src_w: source frame size in pixels. Frames of another size reconfigure the
            tracker (and reset its filters and skeleton).
        factory: the smoother factory (``create_filter(num_parts, frame_size)``):
            :class:`tracker.kalman.KalmanFactory` (default) or
            :class:`tracker.kalman.NoFilterFactory`.
        pose_config: :class:`tracker.poses.PoseConfig`.
        labels: compute the source-resolution label map of every frame.
        smooth_labels: smooth rather than nearest-neighbour (blocky) label upsampling.
        refine_labels: with ``smooth_labels``, upsample edge-aware with the frame as the guide
            (:class:`tracker.poses.SourceLabeler`: outlines follow the subject's edges, a few
            ms per 640×480 frame) rather than bilinearly.
        skeleton: estimate the skeleton and joints online.
        skeleton_edges: fixed skeleton edges (1-based part pairs); default: the bundle's
            ``meta.skeleton_edges`` when present, else estimated from mask contacts.
        skeleton_warmup: frames before the first skeleton estimate (estimated edges only).

    Raises:
        ValueError: non-positive frame sizes.
    """

    def __init__(self, runtime, src_h: int, src_w: int, *, factory=None, pose_config: PoseConfig | None = None,
                 labels: bool = True, smooth_labels: bool = True, refine_labels: bool = True,
                 skeleton: bool = True, skeleton_edges=None, skeleton_warmup: int = 30) -> None:
        self.runtime = runtime
        self.meta = runtime.meta
        self.factory = factory if factory is not None else KalmanFactory()
        self.pose_config = pose_config or PoseConfig()
        self.want_labels, self.smooth_labels = labels, smooth_labels
        self.refine_labels = bool(refine_labels and smooth_labels)
        self.want_skeleton = skeleton
        edges = self.meta.skeleton_edges if skeleton_edges is None else skeleton_edges
        self.skeleton_edges = np.asarray(edges, np.int64).reshape(-1, 2)
        self.skeleton_warmup = int(skeleton_warmup)
        self._configure(int(src_h), int(src_w))

    # -- configuration -------------------------------------------------------------
    def _configure(self, src_h: int, src_w: int) -> None:
        self.src_h, self.src_w = src_h, src_w
        self.letterbox = Letterbox.fit(src_h, src_w, self.meta.input_size)
        self.extractor = PoseExtractor(self.letterbox, self.meta.mask_size, self.pose_config)
        self.labeler = None
        if self.want_labels and self.refine_labels:
            self.labeler = SourceLabeler(self.letterbox, self.meta.mask_size)
        self.reset()

    def reset(self) -> None:
        """Forget the filter state and the skeleton (after a seek or a source change)."""
        self.filter = self.factory.create_filter(self.num_parts, (self.src_h, self.src_w))
        self.skeleton = None
        if self.want_skeleton:
            self.skeleton = OnlineSkeleton(self.num_parts, self.extractor.grid_x, self.extractor.grid_y,
                                           edges=self.skeleton_edges if len(self.skeleton_edges) else None,
                                           warmup=self.skeleton_warmup)

    @property
    def num_parts(self) -> int:
        return int(self.meta.num_parts)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(self.meta.part_names)

    @property
    def part_colors(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(self.meta.part_colors)

    def describe(self) -> str:
        """The runtime's one-line description (backend in use)."""
        return self.runtime.describe()

    # -- processing ----------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB frame → ``(S, S, 3)`` letterboxed model input."""
        return self.letterbox.apply(image)

    def step(self, frame: Frame) -> TrackedFrame:
        """Track one frame (inference included)."""
        return self.step_batch([frame])[0]

    def step_batch(self, frames: list[Frame]) -> list[TrackedFrame]:
        """Track several frames in one inference call (same size, time order)."""
        if not frames:
            return []
        h, w = frames[0].height, frames[0].width
        if (h, w) != (self.src_h, self.src_w):
            self._configure(h, w)
        if any((f.height, f.width) != (h, w) for f in frames):
            raise ValueError("step_batch needs frames of one size")
        images = np.stack([self.prepare(f.image) for f in frames])
        return self.process(frames, self.runtime.infer(images))

    def process(self, frames: list[Frame], out: PartOutput) -> list[TrackedFrame]:
        """Turn network output for ``frames`` (inference run elsewhere, e.g. in a worker
        thread) into :class:`TrackedFrame` objects, updating the filter and the skeleton.

        Raises:
            ValueError: ``len(out) != len(frames)`` or a K other than the bundle's.
            BundleError: non-finite network output (:func:`tracker.poses.check_finite`).
        """
        if len(out) != len(frames):
            raise ValueError(f"{len(out)} outputs for {len(frames)} frames")
        if out.num_parts != self.num_parts:
            raise ValueError(f"the runtime returned K={out.num_parts} parts, the bundle says {self.num_parts}")
        check_finite(out, getattr(self.runtime, "describe", lambda: "the model")(), frames[0].index if frames else 0)
        if frames and (frames[0].height, frames[0].width) != (self.src_h, self.src_w):
            self._configure(frames[0].height, frames[0].width)
        poses = self.extractor.compute(out)
        result = []
        for i, frame in enumerate(frames):
            raw = poses.pose(i, frame.index, frame.time_s)
            smoothed = self.filter.update(raw)
            joints = self.skeleton.update(poses.labels[i], smoothed) if self.skeleton is not None else None
            labels = None
            if self.labeler is not None:
                labels = self.labeler(out.masks[i], frame.image)
            elif self.want_labels:
                labels = labels_at_source(out.masks[i], self.letterbox, smooth=self.smooth_labels)
            result.append(TrackedFrame(frame, raw, smoothed, labels, joints))
        return result
