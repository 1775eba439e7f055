"""The tracking pipeline: the stages composed once, run over a recorded file
(:func:`track_file`) or frame by frame, causally (:class:`OnlineTracker`).

The data path, in one reading::

    source (tracker.sources)  →  Stages.prepare (letterbox, engine.preprocess)
      →  runtime.infer (engine.runtime: PartOutput)  →  Stages.measure (tracker.poses: PoseBatch)
      →  smoother (tracker.kalman.Smoother)  →  skeleton (tracker.skeleton)  →  sinks (tracker.sinks)

:func:`track_file` is that path over a whole file, returning a :class:`VideoTracks` (the tracks
as arrays); the batch and Ray paths run it through :func:`tracker.offline.track_video` with the
file sinks of a result folder, and the Python API calls it directly. :class:`OnlineTracker`
runs the same :class:`Stages` and the smoother's causal filter one frame at a time (the live
viewer, recording). Coordinates, angles and times follow :mod:`tracker.core`'s conventions.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from parttrack.engine.errors import InputError, ParttrackError
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.types import PartOutput
from parttrack.tracker.core import Frame, JointPositions, PartPoses, PoseBatch, Track
from parttrack.tracker.io import TRACKS_COLUMNS, printable
from parttrack.tracker.kalman import KalmanFactory, Smoother, make_factory
from parttrack.tracker.poses import PoseConfig, PoseExtractor, SourceLabeler, check_finite, labels_at_source
from parttrack.tracker.progress import Progress
from parttrack.tracker.results import TrackOptions
from parttrack.tracker.skeleton import ContactAccumulator, OnlineSkeleton, Skeleton, skeleton_from_track
from parttrack.tracker.sources import open_scaled, open_source


class Stages:
    """The per-video stages between a source frame and its poses, for one model and one
    source frame size: letterboxing and pose extraction.

    Args:
        meta: the runtime's model metadata (:class:`engine.bundle.BundleMeta`: ``input_size``,
            ``mask_size``, ``num_parts``, and the crop the model was trained on).
        src_h, src_w: source frame size in pixels.
        pose_config: :class:`tracker.poses.PoseConfig`.
    """

    def __init__(self, meta, src_h: int, src_w: int, pose_config: PoseConfig | None = None) -> None:
        self.meta = meta
        self.num_parts = int(meta.num_parts)
        self.letterbox = meta.letterbox(src_h, src_w)
        self.extractor = PoseExtractor(self.letterbox, meta.mask_size, pose_config or PoseConfig())

    def prepare(self, images) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB frames (source size, or the letterbox's decode size) →
        ``(N, S, S, 3)`` uint8 letterboxed model input."""
        return np.stack([self.letterbox.apply(image) for image in images])

    def measure(self, out: PartOutput, model="the model", first_frame: int = 0) -> PoseBatch:
        """Network output → :class:`tracker.core.PoseBatch` (source pixels).

        Raises:
            BundleError: non-finite output (:func:`tracker.poses.check_finite`).
            ParttrackError: a K other than the model's.
        """
        check_finite(out, model, first_frame)
        if out.num_parts != self.num_parts:
            raise ParttrackError(f"the runtime returned K={out.num_parts} parts but the bundle says {self.num_parts}")
        return self.extractor.compute(out)


def crop_warnings(meta, src_h: int, src_w: int) -> list[str]:
    """What to tell the user about the model's crop (:attr:`engine.bundle.BundleMeta.crop`) on
    frames of ``src_h × src_w``: a model trained on a crop sees whole frames of another aspect
    ratio, where the subject is smaller than it learnt it. Empty otherwise."""
    crop = getattr(meta, "crop", None)
    if crop is None or meta.crop_for(src_h, src_w) is not None:
        return []
    fw, fh = meta.crop_frame
    return [f"the model was trained on a crop ({','.join(map(str, crop))}) of {fw}x{fh} frames; this video is "
            f"{src_w}x{src_h}, so the model sees whole frames and the subject is smaller than it learnt it: "
            "train a model on footage like this video"]


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class VideoInfo:
    """What the sinks are told before the first frame of a file.

    Attributes:
        video: the file.
        width, height: source frame size in pixels.
        fps: the container's nominal frame rate (None when it does not say; times come from
            the timestamps, never from this).
        frames_declared: frames the container declares (0 when it does not say).
        part_names, part_colors: the model's K names and RGB colours (index i ↔ part id i+1).
        letterbox: the source → model input mapping (:class:`engine.preprocess.Letterbox`).
        mask_size: ``(h, w)`` of the network's masks.
        smoother: the :class:`tracker.kalman.Smoother` in use.
    """

    video: Path
    width: int
    height: int
    fps: float | None
    frames_declared: int
    part_names: tuple[str, ...]
    part_colors: tuple[tuple[int, int, int], ...]
    letterbox: Letterbox
    mask_size: tuple[int, int]
    smoother: Smoother

    @property
    def num_parts(self) -> int:
        return len(self.part_names)


@dataclass(frozen=True, eq=False)
class FrameBatch:
    """One inference batch on its way through :func:`track_file` (what sinks get per batch).

    Attributes:
        frames: the N decoded frames (:class:`tracker.core.Frame`, at the letterbox's inner
            size — not the source size — as :func:`tracker.sources.open_scaled` decodes them).
        output: the network's :class:`engine.types.PartOutput` (N frames).
        poses: the measured :class:`tracker.core.PoseBatch` (source pixels).
        index: ``(N,)`` int64 frame indices; time_s: ``(N,)`` float64 seconds.
        smoothed: the causal smoother's N :class:`PartPoses`, or None when the smoother is not
            causal (its poses exist only once the whole file is read).
    """

    frames: list[Frame]
    output: PartOutput
    poses: PoseBatch
    index: np.ndarray
    time_s: np.ndarray
    smoothed: list[PartPoses] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    @cached_property
    def raw(self) -> list[PartPoses]:
        """The N unsmoothed :class:`PartPoses` (made on first use)."""
        return [self.poses.pose(i, self.index[i], self.time_s[i]) for i in range(len(self.frames))]


@dataclass(frozen=True, eq=False)
class VideoTracks:
    """The tracks of one file (what :func:`track_file` returns). Source-video pixels, degrees
    and seconds (:mod:`tracker.core`); T frames, K parts, J joints.

    Attributes:
        info: :class:`VideoInfo` (size, fps, part names and colours, letterbox, smoother).
        track: the smoothed poses (:class:`tracker.core.Track`: index, time_s, xy, angle_deg,
            scale, area_px, visible, confidence arrays).
        raw: the unsmoothed poses, same shapes.
        skeleton: the :class:`tracker.skeleton.Skeleton` fitted on ``track``.
        joints: T :class:`tracker.core.JointPositions` (the skeleton's J joints per frame).
        complete: False when tracking was interrupted (the frames read so far are tracked).
        input_complete: False when the file ended before the frames its container declares
            or its decoding failed part-way.
        decode_error: the decoder's error, if decoding stopped on one.
        warnings: one-line messages about the input (truncated, damaged).
        runtime: the runtime's description.
    """

    info: VideoInfo
    track: Track
    raw: Track
    skeleton: Skeleton
    joints: list[JointPositions]
    complete: bool = True
    input_complete: bool = True
    decode_error: str | None = None
    warnings: tuple[str, ...] = ()
    runtime: str = ""

    def __len__(self) -> int:
        return len(self.track)

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.info.part_names

    @property
    def frame(self) -> np.ndarray:
        """``(T,)`` int64 frame indices in the source video."""
        return self.track.index

    @property
    def time_s(self) -> np.ndarray:
        """``(T,)`` float64 seconds from the stream's timestamps."""
        return self.track.time_s

    @property
    def xy(self) -> np.ndarray:
        """``(T, K, 2)`` float64 part centres, source px (NaN: no pose)."""
        return self.track.xy

    @property
    def x(self) -> np.ndarray:
        """``(T, K)`` float64 part centres, source px (NaN: no pose)."""
        return self.track.xy[..., 0]

    @property
    def y(self) -> np.ndarray:
        """``(T, K)`` float64 part centres, source px, y down."""
        return self.track.xy[..., 1]

    @property
    def angle_deg(self) -> np.ndarray:
        """``(T, K)`` float64 degrees in (-180, 180], counter-clockwise on screen from +x."""
        return self.track.angle_deg

    @property
    def scale(self) -> np.ndarray:
        """``(T, K, 2)`` float64 lengths of the part's two axes, source px."""
        return self.track.scale

    @property
    def area_px(self) -> np.ndarray:
        """``(T, K)`` float64 mask areas in source pixels."""
        return self.track.area_px

    @property
    def visible(self) -> np.ndarray:
        """``(T, K)`` bool: measured in that frame (else predicted)."""
        return self.track.visible

    @property
    def confidence(self) -> np.ndarray:
        """``(T, K)`` float64 in [0, 1]."""
        return self.track.confidence

    @property
    def joint_pairs(self) -> np.ndarray:
        """``(J, 2)`` int64 part ids (a < b) each joint links."""
        return self.skeleton.edges

    @property
    def joint_xy(self) -> np.ndarray:
        """``(T, J, 2)`` float64 joint positions, source px."""
        return self.skeleton.joint_xy(self.track.xy, self.track.angle_deg)

    def to_dataframe(self):
        """The smoothed tracks as a pandas DataFrame in ``tracks.csv``'s columns and row order
        (one row per frame × part, ordered by frame then part id;
        :data:`tracker.io.TRACKS_COLUMNS`).

        Raises:
            ImportError: pandas is not installed (``pip install pandas``).
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("VideoTracks.to_dataframe needs pandas: pip install pandas "
                              "(or pip install 'parttrack[formats]')") from None
        t, k = self.x.shape
        cols = {
            "frame": np.repeat(self.frame, k), "time_s": np.repeat(self.time_s, k),
            "part": np.tile(np.arange(1, k + 1), t), "part_name": np.tile(np.array(self.part_names, object), t),
            "x": self.x.ravel(), "y": self.y.ravel(), "angle_deg": self.angle_deg.ravel(),
            "scale_x": self.scale[..., 0].ravel(), "scale_y": self.scale[..., 1].ravel(),
            "area_px": self.area_px.ravel(), "visible": self.visible.ravel().astype(np.int64),
            "confidence": self.confidence.ravel(),
        }
        missing = [c for c in TRACKS_COLUMNS if c not in cols]
        if missing:  # the CSV schema grew: this method must be taught the new columns
            raise RuntimeError(f"VideoTracks.to_dataframe does not know the CSV columns {missing}")
        return pd.DataFrame({c: cols[c] for c in TRACKS_COLUMNS})


@runtime_checkable
class Sink(Protocol):
    """Where :func:`track_file` delivers results (the file writers are in :mod:`tracker.sinks`).

    A sink is a context manager (``close`` on exit, also after an error); :func:`track_file`
    enters it, calls :meth:`begin` once, :meth:`write_batch` per inference batch in frame
    order and :meth:`end` once with the result — also when interrupted (``result.complete``
    False: a sink writes what it can of a partial result or nothing).
    """

    def __enter__(self): ...

    def __exit__(self, *exc) -> None: ...

    def begin(self, info: VideoInfo) -> None: ...

    def write_batch(self, batch: FrameBatch) -> None: ...

    def end(self, result: VideoTracks) -> None: ...


class TrackingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a :class:`tracker.progress.Progress` raising KeyboardInterrupt) during
    :func:`track_file`, raised after the sinks got the partial result (``result``)."""

    def __init__(self, result: VideoTracks | None) -> None:
        super().__init__()
        self.result = result


# ------------------------------------------------------------------------------ a file
def track_file(video: str | Path, runtime=None, options=None, *, sinks=(), progress=None) -> VideoTracks:
    """Track every frame of a recorded video: the whole data path, composed once.

    Frames are decoded scaled to the letterbox's decode size (:func:`tracker.sources.open_scaled`),
    letterboxed, inferred ``options.batch_size`` at a time, turned into poses
    (:class:`Stages`), smoothed (``options.smoother``: a causal smoother as the frames come, an
    offline one once all are read), the skeleton fitted on the smoothed track and its joints
    computed; each sink gets the batches as they come and the result at the end. Nothing
    but the poses (and what the sinks keep) is held per frame.

    Args:
        video: a video file (anything :func:`tracker.sources.open_source` reads).
        runtime: an inference runtime (:class:`engine.runtime.base.Runtime`); default
            ``options.make_runtime()``.
        options: :class:`tracker.results.TrackOptions`; used here: ``smoother``, ``noise``,
            ``pose``, ``batch_size``, ``max_frames``, ``min_touch`` (and ``model`` for the
            default runtime). Default: ``TrackOptions()``.
        sinks: :class:`Sink` objects, called in this order (e.g. :mod:`tracker.sinks`).
        progress: a :class:`tracker.progress.Progress` (default: none shown).

    Returns:
        :class:`VideoTracks` (T >= 1 frames).

    Raises:
        InputError: missing, unreadable, corrupt or empty video, or a camera.
        BundleError: non-finite network output; BackendUnavailable: see the runtime.
        TrackingInterrupted (a KeyboardInterrupt): interrupted after at least one frame, once
            the sinks got the partial result; a plain KeyboardInterrupt before the first frame.
    """
    options = options or TrackOptions()
    progress = progress or Progress()
    video = Path(video)
    src_h, src_w, fps, declared = probe_file(video)
    runtime = runtime if runtime is not None else options.make_runtime()
    meta = runtime.meta
    stages = Stages(meta, src_h, src_w, options.pose)
    k = stages.num_parts
    smoother = make_factory(options.smoother, options.noise)
    info = VideoInfo(video, src_w, src_h, fps, declared, tuple(meta.part_names), tuple(meta.part_colors),
                     stages.letterbox, tuple(meta.mask_size), smoother)
    contacts = ContactAccumulator(k, stages.extractor.grid_x, stages.extractor.grid_y)
    online = smoother.create_filter(k, (src_h, src_w)) if smoother.causal else None
    model = options.model_path()
    chunks: list[tuple[np.ndarray, ...]] = []  # per batch: index, time_s and the pose arrays of Track
    smoothed: list[PartPoses] = []
    frames = 0
    interrupted = False
    total = declared if options.max_frames is None else min(declared or options.max_frames, options.max_frames)
    progress.start(video.name, total)
    with contextlib.ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(sink)
        for sink in sinks:
            sink.begin(info)
        with open_scaled(video, stages.letterbox.decode_size) as src:
            try:
                for batch in _batches(src, options.batch_size, options.max_frames):
                    out = runtime.infer(stages.prepare([f.image for f in batch]))
                    poses = stages.measure(out, model, frames)
                    contacts.add(poses.labels, poses.xy, poses.angle_deg, poses.visible)
                    index = np.array([f.index for f in batch], np.int64)
                    times = np.array([f.time_s for f in batch], np.float64)
                    chunks.append((index, times, poses.xy, poses.angle_deg, poses.scale, poses.area_px,
                                   poses.visible, poses.confidence))
                    causal = None
                    if online is not None:  # a causal smoother runs as the frames come
                        causal = [online.update(p) for p in poses.poses(index, times)]
                        smoothed += causal
                    fb = FrameBatch(batch, out, poses, index, times, causal)
                    for sink in sinks:
                        sink.write_batch(fb)
                    frames += len(batch)
                    progress.advance(len(batch))
            except KeyboardInterrupt:
                interrupted = True
            error = None if interrupted else src.error  # an interrupted run reports no input problems
        if frames == 0:
            if interrupted:
                progress.finish()
                raise KeyboardInterrupt
            raise InputError(f"{video}: no frames could be decoded",
                             "the file is empty or corrupt; re-encode it or pick another file")
        warnings = [printable(f"{video.name}: {line}") for line in crop_warnings(meta, src_h, src_w)]
        if error:
            warnings.append(printable(f"{video.name}: {error}; the frames before it were tracked"))
        short = not interrupted and bool(declared and frames < declared
                                         and (options.max_frames is None or frames < options.max_frames))
        if short:
            warnings.append(printable(f"{video.name}: {frames} of the {declared} frames its container "
                                      "declares could be decoded (truncated or damaged file?); the "
                                      "decoded frames were tracked"))
        raw = Track(*(np.concatenate([c[i] for c in chunks]) for i in range(8)))
        track = Track.from_poses(smoothed) if online is not None else smoother.smooth(raw, (src_h, src_w))
        skeleton = skeleton_from_track(track, contacts, edges=meta.skeleton_edges or None, min_touch=options.min_touch)
        result = VideoTracks(info, track, raw, skeleton, skeleton.joints_track(track), complete=not interrupted,
                             input_complete=not short and error is None, decode_error=error,
                             warnings=tuple(warnings), runtime=runtime.describe())
        for sink in sinks:
            sink.end(result)
    progress.finish()
    if interrupted:
        raise TrackingInterrupted(result)
    return result


def probe_file(video: str | Path) -> tuple[int, int, float | None, int]:
    """``(height, width, nominal fps or None, declared frame count or 0)`` of a recorded video.

    Raises:
        InputError: missing, unreadable, corrupt or empty video, or a camera.
    """
    with open_source(video) as probe:
        size, fps, count, is_live = (probe.height, probe.width), probe.fps, probe.frame_count, probe.is_live
    if is_live:
        raise InputError(f"{video} is a camera; `parttrack track` needs recorded videos",
                         "use the live viewer: parttrack --camera N")
    return size[0], size[1], fps, count


def _batches(frames, batch_size: int, max_frames: int | None):
    """Lists of up to ``batch_size`` frames from an iterable, at most ``max_frames`` in all."""
    batch: list = []
    n = 0
    for frame in frames:
        batch.append(frame)
        if max_frames is not None and n + len(batch) >= max_frames:
            break
        if len(batch) == batch_size:
            yield batch
            n += len(batch)
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------------------ live
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
        factory: a :class:`tracker.kalman.Smoother` (:func:`tracker.kalman.make_factory`);
            its causal filter (``create_filter``) runs frame by frame. Default:
            :class:`tracker.kalman.KalmanFactory`.
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
        self.stages = Stages(self.meta, src_h, src_w, self.pose_config)
        self.letterbox, self.extractor = self.stages.letterbox, self.stages.extractor
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
