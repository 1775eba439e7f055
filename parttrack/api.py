"""parttrack's public Python API: load a model, track a file, track frame by frame, export.

A thin, typed layer over the stages the ``parttrack`` command uses (no second pipeline):
:func:`track_video` is :func:`tracker.pipeline.track_file` (the one composition of source →
runtime → poses → smoother → skeleton), :func:`track_to_folder` is
:func:`tracker.offline.track_video` (a ``parttrack track`` result folder), :class:`Tracker`
wraps :class:`tracker.pipeline.OnlineTracker` (the live viewer's causal path), and
:func:`export` is :func:`tracker.animation.write_exports`.

Conventions (README, "Conventions: coordinates, angles, time"): positions in the source
video's pixels, x right, y down, pixel centres at integers; angles in degrees in (-180, 180],
counter-clockwise on screen from +x; times in seconds from the stream's timestamps; part ids
1..K (0 = background in label maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parttrack.engine.bundle import Bundle, default_model_path, load_bundle
from parttrack.engine.runtime import create_runtime
from parttrack.tracker.core import Frame, PartPoses
from parttrack.tracker.kalman import make_factory
from parttrack.tracker.pipeline import OnlineTracker, VideoTracks, track_file
from parttrack.tracker.results import TrackOptions


@dataclass(frozen=True)
class Model:
    """A trained model bundle and the inference runtime built for it.

    Attributes:
        bundle: the :class:`engine.bundle.Bundle` (folder, metadata: K, input size, part names,
            colours, skeleton edges).
        runtime: its :class:`engine.runtime.base.Runtime` (``infer(images) -> PartOutput``).
    """

    bundle: Bundle
    runtime: object

    @property
    def path(self) -> Path:
        return Path(self.bundle.path)

    @property
    def num_parts(self) -> int:
        """K, the number of learned parts (ids 1..K)."""
        return int(self.bundle.meta.num_parts)

    @property
    def part_names(self) -> tuple[str, ...]:
        """K names, index i ↔ part id i + 1."""
        return tuple(self.runtime.meta.part_names)

    def describe(self) -> str:
        """The runtime in use (backend, device, precision, threads), one line."""
        return self.runtime.describe()


def load_model(model: str | Path | None = None, *, backend: str = "auto", device: str | None = None,
               threads: int | None = None, precision: str | None = None) -> Model:
    """Load a model bundle and build its inference runtime.

    Args:
        model: a bundle folder (``parttrack train -o …``) or its ``model.onnx``; None = the
            shipped default model.
        backend: ``auto`` (TensorRT with a CUDA GPU, else ONNX Runtime), ``onnxruntime``,
            ``tensorrt`` or ``torch``.
        device, threads, precision: see :func:`engine.runtime.create_runtime`.

    Returns:
        :class:`Model`. The runtime in use is printed to stderr once.

    Raises:
        BundleError: missing files, mismatched K or format version.
        BackendUnavailable: the backend (or its extra) is not installed or cannot run here.
    """
    bundle = load_bundle(default_model_path() if model is None else model)
    runtime = create_runtime(bundle, backend=backend, device=device, threads=threads, precision=precision)
    return Model(bundle, runtime)


def _model(model) -> Model:
    return model if isinstance(model, Model) else load_model(model)


#: The tracks of one video, in memory: the pipeline's own record
#: (:class:`tracker.pipeline.VideoTracks`: ``frame``, ``time_s``, ``xy``, ``x``, ``y``,
#: ``angle_deg``, ``scale``, ``area_px``, ``visible``, ``confidence``, ``joint_pairs``,
#: ``joint_xy`` arrays, ``part_names``, ``to_dataframe()``; the raw ``raw`` and smoothed
#: ``track``, the ``skeleton``, completeness and warnings).
Tracks = VideoTracks


def track_video(video: str | Path, model: Model | str | Path | None = None, *, smoother: str = "offline",
                max_frames: int | None = None, batch_size: int = 8) -> Tracks:
    """Track every frame of a recorded video, in memory (nothing is written).

    Args:
        video: a video file PyAV can decode.
        model: a :class:`Model`, a bundle folder, or None for the shipped default.
        smoother: ``offline`` (Kalman filter + RTS smoother, the default), ``online`` (the causal
            filter of live use) or ``none`` (raw poses).
        max_frames: stop after this many frames (None: all).
        batch_size: frames per inference call.

    Returns:
        :class:`Tracks`.

    Raises:
        InputError: missing, unreadable, corrupt or empty video.
        BundleError: the model is unusable or produced non-finite output.
        ValueError: an unknown smoother.
    """
    m = _model(model)
    options = TrackOptions(model=m.path, smoother=smoother, max_frames=max_frames, batch_size=batch_size)
    return track_file(video, m.runtime, options)


def track_to_folder(video: str | Path, out_dir: str | Path, model: Model | str | Path | None = None, *,
                    smoother: str = "offline", overlay: bool = False, masks: bool = False, raw: bool = False,
                    exports=(), force: bool = False):
    """Track a video into a ``parttrack track`` result folder (``tracks.csv``, ``joints.csv``,
    ``track.json``, ``tracks.png``; optionally ``overlay.mp4``, ``masks/``, ``tracks_raw.csv``
    and export formats). A folder already done with the same video, model and options is
    skipped; anything else is redone (README, "Result folders").

    Args:
        video: a video file. out_dir: its result folder.
        model: a :class:`Model`, a bundle folder, or None for the shipped default.
        smoother, overlay, masks, raw: as ``parttrack track``'s options.
        exports: format names or groups (``nwb``, ``dlc``, ``sleap``, ``bvh``, ``ae``,
            ``blender``, ``animation``, ``pose``, ``all``).
        force: redo a folder that is already done.

    Returns:
        :class:`tracker.offline.VideoResult` (``status``, ``frames``, ``out_dir``, ``warnings``).

    Raises:
        InputError, OutputError, BundleError: as :func:`tracker.offline.track_video`.
    """
    from parttrack.tracker.animation import parse_formats
    from parttrack.tracker.offline import track_video as track_into

    m = _model(model)
    options = TrackOptions(model=m.path, smoother=smoother, overlay=overlay, masks=masks, raw=raw,
                           exports=parse_formats(list(exports)) if exports else (), force=force)
    return track_into(video, out_dir, options, runtime=m.runtime)


def export(result_dir: str | Path, formats=("all",)) -> list[Path]:
    """Write export formats from a result folder (:func:`track_to_folder` / ``parttrack track``)
    into ``result_dir/<format>/``.

    Args:
        result_dir: the result folder.
        formats: names or groups as in :func:`track_to_folder`.

    Returns:
        the files written.

    Raises:
        InputError: not a result folder, an unknown format, or a pose format whose libraries
            are not installed (``pip install 'parttrack[formats]'``).
    """
    from parttrack.tracker.animation import parse_formats, write_exports

    return write_exports(result_dir, parse_formats(list(formats)))


class Tracker:
    """Frame-by-frame tracking for live use and closed-loop experiments: each frame is
    inferred, its part poses measured and filtered by the causal Kalman filter (the live
    viewer's path, :class:`tracker.pipeline.OnlineTracker`).

    Args:
        model: a :class:`Model`, a bundle folder, or None for the shipped default.
        smoother: ``online`` (causal Kalman filter, the default) or ``none``.
        labels: also compute each frame's label map at the source resolution (a few ms per
            frame; :attr:`last_labels`).
        fps: the frame rate assumed for frames given without a time (``time_s=None``).

    Raises:
        ValueError: an offline smoother (``offline`` needs the whole video: use
            :func:`track_video`) or a non-positive fps.
    """

    def __init__(self, model: Model | str | Path | None = None, *, smoother: str = "online", labels: bool = False,
                 fps: float = 30.0) -> None:
        factory = make_factory(smoother)
        if not factory.causal:
            raise ValueError(f"smoother {smoother!r} needs the whole video; use parttrack.track_video, "
                             "or smoother='online' / 'none' here")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.model = _model(model)
        self.fps = float(fps)
        self._factory, self._labels = factory, bool(labels)
        self._online: OnlineTracker | None = None
        self._index = 0
        self.last_labels: np.ndarray | None = None

    @property
    def part_names(self) -> tuple[str, ...]:
        return self.model.part_names

    def process(self, frame: np.ndarray, time_s: float | None = None) -> PartPoses:
        """Track one frame.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB image (convert OpenCV's BGR with
                ``frame[..., ::-1]``). A frame of another size than the previous one restarts
                the filters.
            time_s: its time in seconds (None: ``index / fps``); must not go backwards.

        Returns:
            the smoothed :class:`tracker.core.PartPoses` of the K parts (source px, degrees;
            ``visible`` False where a part's pose is predicted).

        Raises:
            ValueError: not an ``(H, W, 3)`` uint8 image.
            BundleError: non-finite network output.
        """
        image = np.asarray(frame)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"process() needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        h, w, _ = image.shape
        if self._online is None:
            self._online = OnlineTracker(self.model.runtime, h, w, factory=self._factory, labels=self._labels,
                                         skeleton=False)
        t = self._index / self.fps if time_s is None else float(time_s)
        out = self._online.step(Frame(np.ascontiguousarray(image), self._index, t))
        self._index += 1
        self.last_labels = out.labels
        return out.smoothed

    def reset(self) -> None:
        """Forget the filter state (after a cut or a jump in time)."""
        if self._online is not None:
            self._online.reset()
