"""Batch tracking of recorded videos: one result folder per video, resumable, in parallel.

:func:`track_video` runs the whole pipeline on one video and writes its result folder::

    OUT/<video stem>/
        tracks.csv        smoothed part poses (tracker.io.TRACKS_COLUMNS)
        tracks_raw.csv    unsmoothed poses (--raw)
        joints.csv        joint positions (tracker.io.JOINTS_COLUMNS)
        track.json        video, model, backend, parts, skeleton, settings, conventions
        masks/000000.png  label maps at source resolution (--masks)
        overlay.mp4       parts, axes and skeleton drawn over the video (--overlay; videos
                          under 360 px high are drawn at an integer zoom ≥ 2 to stay legible)
        ae/, blender/     animation exports (--export)
        done.json         written last: the folder is complete

How it runs (the hot path is kept lean for throughput): frames are decoded with PyAV in
threaded mode and scaled to the letterbox's inner size straight from the decoder's YUV planes
(no full-resolution RGB frame is ever made; :class:`_ScaledFileSource`), padded to the model
input, inferred in batches, and
turned into poses from the low-resolution masks; source-resolution label maps are only made
for ``--masks``. Frames are streamed, never held: what is kept per frame is its K poses (and,
for ``--overlay``, its mask-resolution label map, in a temporary file). The offline smoother
(forward Kalman filter + RTS) runs once all frames are measured; the skeleton is fitted on the
whole video; the overlay is drawn in a second decoding pass with the final poses.

Interruption: rows are flushed as they are written; on Ctrl-C the frames processed so far are
smoothed and written (tracks, joints, track.json with ``"complete": false``), writers and the
video container are closed, and no ``done.json`` is written — a rerun redoes that video and
skips every folder that has its ``done.json`` (``force=True`` redoes them too).

:func:`run_batch` runs many videos: in this process (``workers=1``) or in a pool of spawned
processes, each loading the model once and getting ``cores // workers`` inference threads;
per-video and overall progress bars (tqdm); a failing video is recorded and the others go on.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError, OutputError, ParttrackError
from engine.preprocess import Letterbox
from tracker.core import PartPoses, Track
from tracker.io import JointsCSVWriter, TracksCSVWriter, VideoWriter, read_json, write_json, write_label_png
from tracker.kalman import KalmanNoise, make_factory
from tracker.poses import PoseConfig, PoseExtractor, labels_at_source
from tracker.skeleton import ContactAccumulator, skeleton_from_track
from tracker.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FileSource, open_source

DONE_FILE = "done.json"
INFO_FILE = "track.json"
TRACKS_FILE = "tracks.csv"
RAW_FILE = "tracks_raw.csv"
JOINTS_FILE = "joints.csv"
OVERLAY_FILE = "overlay.mp4"
MASKS_DIR = "masks"
ERROR_FILE = "error.txt"
_LABELS_TMP = ".labels.tmp"
_OUTPUTS = (TRACKS_FILE, RAW_FILE, JOINTS_FILE, INFO_FILE, OVERLAY_FILE, ERROR_FILE, _LABELS_TMP)

CONVENTIONS = {
    "xy": "source-video pixels, x right, y down, centre of the top-left pixel at (0, 0)",
    "angle_deg": "direction of the part's first axis, degrees in (-180, 180], counter-clockwise on screen from +x",
    "scale": "lengths of the part's two axes in source pixels (columns of A = R(theta) diag(s_x, s_y))",
    "time_s": "seconds from the video stream's presentation timestamps",
    "part": "part ids 1..K (0 = background in label maps)",
    "joint_offsets": "joint in each part's local frame: pixels along the part's first and second axis",
    "visible": "1 = measured in this frame; 0 = mask too small, pose predicted by the Kalman filter",
}


@dataclass(frozen=True)
class TrackOptions:
    """What to compute and write for each video.

    Attributes:
        model: bundle folder; None = :func:`engine.bundle.default_model_path`.
        backend, device, threads, precision: passed to :func:`engine.runtime.create_runtime`
            (precision None = the backend's default; ``"int8"`` = the bundle's model.int8.onnx).
        smoother: ``offline`` (forward filter + RTS; default), ``online`` (causal filter, as
            the live viewer) or ``none`` (raw poses in tracks.csv).
        raw: also write ``tracks_raw.csv``.
        masks: write label-map PNGs.
        overlay: write ``overlay.mp4``.
        exports: animation formats for :func:`tracker.animation.write_exports` (``"all"``…).
        force: redo videos that are already done.
        batch_size: frames per inference call.
        max_frames: stop after this many frames (benchmarks/tests); None = all.
        pose: :class:`tracker.poses.PoseConfig`.
        noise: :class:`tracker.kalman.KalmanNoise`.
        min_touch: skeleton adjacency threshold (fraction of frames two parts touch).
    """

    model: str | Path | None = None
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    precision: str | None = None
    smoother: str = "offline"
    raw: bool = False
    masks: bool = False
    overlay: bool = False
    exports: tuple[str, ...] = ()
    force: bool = False
    batch_size: int = 8
    max_frames: int | None = None
    pose: PoseConfig = field(default_factory=PoseConfig)
    noise: KalmanNoise = field(default_factory=KalmanNoise)
    min_touch: float = 0.2

    def __post_init__(self) -> None:
        make_factory(self.smoother)  # validates the name
        object.__setattr__(self, "exports", tuple(str(e) for e in self.exports))
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def model_path(self) -> Path:
        from engine.bundle import default_model_path

        return Path(self.model) if self.model is not None else default_model_path()

    def fingerprint(self) -> dict:
        """What decides the content of tracks/joints (a done folder with another fingerprint
        is redone)."""
        return {"model": str(self.model_path().resolve()), "smoother": self.smoother,
                "max_frames": self.max_frames, "pose": asdict(self.pose), "noise": asdict(self.noise),
                "min_touch": self.min_touch}

    def outputs(self) -> dict:
        return {"raw": self.raw, "masks": self.masks, "overlay": self.overlay}


@dataclass
class VideoResult:
    """The outcome of one video.

    Attributes:
        video: the input path. out_dir: its result folder.
        status: ``done``, ``skipped`` (already done), ``failed`` or ``interrupted``.
        frames: frames tracked. seconds: wall time of tracking (pass 1 + finishing).
        backend: the runtime's description. error/hint: for failures.
        warnings: e.g. a video whose decoding stopped early.
    """

    video: Path
    out_dir: Path
    status: str
    frames: int = 0
    seconds: float = 0.0
    backend: str = ""
    error: str | None = None
    hint: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------------------- discovery
def discover_videos(paths) -> list[Path]:
    """Video files from files and folders (a folder's videos, not recursive, sorted by name).

    Raises:
        InputError: a path does not exist, or no video was found at all.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.exists():
            found.append(p)
        else:
            raise InputError(f"{p} does not exist", "check the path (and its spelling)")
    unique = list(dict.fromkeys(f.resolve() for f in found))
    if not unique:
        raise InputError(f"no videos found in {', '.join(map(str, paths))}",
                         f"pass video files or folders containing {', '.join(VIDEO_EXTENSIONS)} files")
    return unique


def output_dirs(videos, out_root) -> list[Path]:
    """One result folder per video, named by the file stem; same stems get ``_<ext>`` then a
    number, deterministically (so a rerun maps each video to the same folder)."""
    out_root = Path(out_root)
    names: list[str] = []
    stems = [Path(v).stem for v in videos]
    for v, stem in zip(videos, stems):
        name = stem if stems.count(stem) == 1 else f"{stem}_{Path(v).suffix.lstrip('.').lower()}"
        base, i = name, 2
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return [out_root / n for n in names]


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` and check that files can be written in it.

    Raises:
        OutputError: it cannot be created or written (with a hint).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".parttrack-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {folder}: {exc.strerror or exc}",
                          "choose another folder with -o, or fix its permissions") from None
    return folder


def done_info(out_dir: str | Path) -> dict | None:
    """The ``done.json`` of a result folder, or None if it is not (validly) done."""
    path = Path(out_dir) / DONE_FILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except InputError:
        return None


def _done_status(out_dir: Path, options: TrackOptions) -> str:
    """``redo``, ``skip`` or ``exports`` (tracks are fine, only exports are missing)."""
    info = done_info(out_dir)
    if options.force or info is None or info.get("fingerprint") != options.fingerprint():
        return "redo"
    have = info.get("outputs", {})
    if any(v and not have.get(k) for k, v in options.outputs().items()):
        return "redo"
    if options.exports and not set(_export_formats(options.exports)) <= set(info.get("exports", [])):
        return "exports"
    return "skip"


def _export_formats(formats) -> tuple[str, ...]:
    from tracker.animation import _parse_formats

    return _parse_formats(list(formats))


# ------------------------------------------------------------------------------- one video
def _make_runtime(options: TrackOptions, workers: int = 1, announce: bool = False):
    from engine.runtime import create_runtime

    return create_runtime(options.model_path(), backend=options.backend, device=options.device,
                          threads=options.threads, workers=workers, announce=announce,
                          precision=options.precision)


def _clear_outputs(out_dir: Path) -> None:
    for name in (DONE_FILE,) + _OUTPUTS:
        p = out_dir / name
        if p.is_file():
            p.unlink()
    masks = out_dir / MASKS_DIR
    if masks.is_dir():
        for f in masks.glob("*.png"):
            f.unlink()


def _pad(small: np.ndarray, lb: Letterbox) -> np.ndarray:
    """A frame already scaled to ``lb.inner_size`` → the ``size × size`` model input (edge
    replication, as :meth:`engine.preprocess.Letterbox.apply`)."""
    w, h = lb.inner_size
    if small.shape[:2] != (h, w):  # the decoder could not scale (e.g. an image sequence)
        return lb.apply(small)
    left, top = int(lb.pad_x), int(lb.pad_y)
    right, bottom = lb.size - w - left, lb.size - h - top
    if left or top or right or bottom:
        return cv2.copyMakeBorder(small, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(small)


class _ScaledFileSource(FileSource):
    """:class:`tracker.sources.FileSource` whose scaled frames (``size``) come from the
    decoder's YUV 4:2:0 planes: each plane area-resized with OpenCV, then one small
    YUV→RGB conversion — ~0.6 ms instead of ~2.6 ms for swscale's combined convert+scale
    of a 640×480 frame (measured on the 2-core machine). Only for plain 8-bit yuv420p with
    even sizes in BT.601/unspecified limited range (what swscale assumes too, so the model
    sees the same colours); any other frame takes FileSource's own path."""

    _BT601 = (2, 5, 6)  # AVCOL_SPC_UNSPECIFIED, BT470BG, SMPTE170M
    _LIMITED = (0, 1)  # AVCOL_RANGE_UNSPECIFIED, MPEG

    def _to_image(self, frame) -> np.ndarray:
        size = self.size
        if (size is not None and frame.format.name == "yuv420p" and not (frame.width | frame.height) & 1
                and not (size[0] | size[1]) & 1 and frame.colorspace in self._BT601
                and frame.color_range in self._LIMITED):
            w, h = size
            hh, ww = frame.height, frame.width
            # (1.5 H, W) array holding the Y, U and V planes back to back; a chroma plane is
            # (H/2)·(W/2) values, not always a whole number of W-wide rows (e.g. H = 270)
            flat = frame.to_ndarray(format="yuv420p").ravel()
            ny, nc = hh * ww, (hh // 2) * (ww // 2)
            y = cv2.resize(flat[:ny].reshape(hh, ww), (w, h), interpolation=cv2.INTER_AREA)
            u = cv2.resize(flat[ny:ny + nc].reshape(hh // 2, ww // 2), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            v = cv2.resize(flat[ny + nc:ny + 2 * nc].reshape(hh // 2, ww // 2), (w // 2, h // 2),
                           interpolation=cv2.INTER_AREA)
            i420 = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
            return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
        return super()._to_image(frame)


def _open_scaled(video: Path, size: tuple[int, int]):
    """The pass-1 source: video files through :class:`_ScaledFileSource`, anything else
    through :func:`tracker.sources.open_source`."""
    if video.is_file() and video.suffix.lower() not in IMAGE_EXTENSIONS:  # open_source's file branch
        return _ScaledFileSource(video, size=size, threaded=True)
    return open_source(video, size=size, threaded=True)


class _Progress:
    """Progress sink interface (no-op): ``start(name, total)``, ``advance(n)``, ``finish()``."""

    def start(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def track_video(video: str | Path, out_dir: str | Path, options: TrackOptions | None = None, runtime=None,
                progress=None) -> VideoResult:
    """Track one video and write its result folder (see the module docstring).

    Args:
        video: a video file (anything :func:`tracker.sources.open_source` reads).
        out_dir: its result folder (created).
        options: :class:`TrackOptions`.
        runtime: an inference runtime to use (default: built from ``options``).
        progress: an object with ``start(name, total)``, ``advance(n)``, ``finish()``.

    Returns:
        :class:`VideoResult` (status ``done`` or ``skipped``).

    Raises:
        InputError: missing, unreadable, corrupt or empty video.
        OutputError: the result folder cannot be written.
        BundleError, BackendUnavailable: the model or backend cannot be used.
        KeyboardInterrupt: after writing what was processed (no done.json).
    """
    options = options or TrackOptions()
    video, out_dir = Path(video), Path(out_dir)
    progress = progress or _Progress()
    state = _done_status(out_dir, options)
    if state == "skip":
        info = done_info(out_dir) or {}
        return VideoResult(video, out_dir, "skipped", int(info.get("frames", 0)), 0.0, info.get("backend", ""))
    if state == "exports":
        info = done_info(out_dir) or {}
        _run_exports(out_dir, options, info)
        return VideoResult(video, out_dir, "done", int(info.get("frames", 0)), 0.0, info.get("backend", ""))
    return _VideoJob(video, out_dir, options, runtime, progress).run()


def _run_exports(out_dir: Path, options: TrackOptions, done: dict | None) -> list[str]:
    from tracker.animation import write_exports

    formats = _export_formats(options.exports)
    write_exports(out_dir, formats)
    if done is not None:  # record them in done.json (still written last)
        done = dict(done)
        done["exports"] = sorted(set(done.get("exports", [])) | set(formats))
        write_json(out_dir / DONE_FILE, done)
    return list(formats)


class _VideoJob:
    """One video through the pipeline (a class only to share state between the stages)."""

    def __init__(self, video: Path, out_dir: Path, options: TrackOptions, runtime, progress) -> None:
        self.video, self.out_dir, self.options, self.progress = video, out_dir, options, progress
        with open_source(video) as probe:  # raises InputError for missing/corrupt/empty videos
            self.src_h, self.src_w = probe.height, probe.width
            self.nominal_fps, self.frame_count = probe.fps, probe.frame_count
            self.is_live = probe.is_live
        if self.is_live:
            raise InputError(f"{video} is a camera; `parttrack track` needs recorded videos",
                             "use the live viewer: parttrack --camera N")
        self.runtime = runtime if runtime is not None else _make_runtime(options)
        self.meta = self.runtime.meta
        self.k = int(self.meta.num_parts)
        self.lb = Letterbox.fit(self.src_h, self.src_w, self.meta.input_size)
        self.extractor = PoseExtractor(self.lb, self.meta.mask_size, options.pose)
        self.contacts = ContactAccumulator(self.k, self.extractor.grid_x, self.extractor.grid_y)
        self.factory = make_factory(options.smoother, options.noise)
        self.chunks: list[dict] = []
        self.smoothed_chunks: list[PartPoses] = []
        self.frames = 0
        self.warnings: list[str] = []

    # -- pass 1: decode, infer, measure -------------------------------------------------
    def run(self) -> VideoResult:
        opts, out = self.options, self.out_dir
        check_writable(out)
        _clear_outputs(out)
        t0 = time.perf_counter()
        total = self.frame_count if opts.max_frames is None else min(self.frame_count or opts.max_frames, opts.max_frames)
        self.progress.start(self.video.name, total)
        interrupted = False
        writers = []
        try:
            raw_w = TracksCSVWriter(out / RAW_FILE, self.meta.part_names) if opts.raw else None
            stream_w = None
            online = None
            if opts.smoother != "offline":  # causal: tracks.csv can be written as we go
                stream_w = TracksCSVWriter(out / TRACKS_FILE, self.meta.part_names)
                online = self.factory.create_filter(self.k, (self.src_h, self.src_w))
            writers += [w for w in (raw_w, stream_w) if w is not None]
            if opts.masks:
                (out / MASKS_DIR).mkdir(exist_ok=True)
            labels_fh = open(out / _LABELS_TMP, "wb") if opts.overlay else None
            if labels_fh is not None:
                writers.append(labels_fh)
            try:
                self._pass1(raw_w, stream_w, online, labels_fh)
            except KeyboardInterrupt:
                interrupted = True
        except OSError as exc:
            raise OutputError(f"cannot write in {out}: {exc.strerror or exc}",
                              "check the output folder's permissions and free disk space") from None
        finally:
            for w in writers:
                w.close()
        if self.frames == 0 and not interrupted:
            raise InputError(f"{self.video}: no frames could be decoded",
                             "the file is empty or corrupt; re-encode it or pick another file")
        result = self._finish(t0, complete=not interrupted)
        self.progress.finish()
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _frames(self, src):
        opts = self.options
        batch = []
        for frame in src:
            batch.append(frame)
            if opts.max_frames is not None and self.frames + len(batch) >= opts.max_frames:
                break
            if len(batch) == opts.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _pass1(self, raw_w, stream_w, online, labels_fh) -> None:
        opts = self.options
        with _open_scaled(self.video, self.lb.inner_size) as src:
            for batch in self._frames(src):
                images = np.stack([_pad(f.image, self.lb) for f in batch])
                out = self.runtime.infer(images)
                if out.num_parts != self.k:
                    raise ParttrackError(f"the runtime returned K={out.num_parts} parts but the bundle says {self.k}")
                a = self.extractor.compute(out)
                self.contacts.add(a["labels"], a["xy"], a["angle_deg"], a["visible"])
                index = np.array([f.index for f in batch], np.int64)
                times = np.array([f.time_s for f in batch], np.float64)
                chunk = {"index": index, "time_s": times, "xy": a["xy"], "angle_deg": a["angle_deg"],
                         "scale": a["scale"], "area_px": a["area_px"], "visible": a["visible"],
                         "confidence": a["confidence"]}
                if raw_w is not None or online is not None:
                    for i in range(len(batch)):
                        p = PartPoses(int(index[i]), float(times[i]), a["xy"][i], a["angle_deg"][i], a["scale"][i],
                                      a["area_px"][i], a["visible"][i], a["confidence"][i])
                        if raw_w is not None:
                            raw_w.write(p)
                        if online is not None:
                            s = online.update(p)
                            stream_w.write(s)
                            self.smoothed_chunks.append(s)
                if self.options.masks:
                    for i in range(len(batch)):
                        labels = labels_at_source(out.masks[i], self.lb)
                        write_label_png(self.out_dir / MASKS_DIR / f"{int(index[i]):06d}.png", labels)
                if labels_fh is not None:
                    labels_fh.write(self._full_grid(a["labels"]).tobytes())
                self.chunks.append(chunk)
                self.frames += len(batch)
                self.progress.advance(len(batch))
            if src.error:
                self.warnings.append(f"{self.video.name}: {src.error}; the frames before it were tracked")
        if opts.overlay and labels_fh is not None:
            labels_fh.flush()

    def _full_grid(self, labels: np.ndarray) -> np.ndarray:
        """Cropped (N, h', w') label maps → (N, h, w) on the full mask grid (edge-replicated)."""
        h, w = self.meta.mask_size
        (r, c) = self.extractor.crop
        return np.pad(labels, ((0, 0), (r.start, h - r.stop), (c.start, w - c.stop)), mode="edge")

    # -- finishing: smoothing, skeleton, files -----------------------------------------------
    def _raw_track(self) -> Track:
        cat = {k: np.concatenate([c[k] for c in self.chunks]) for k in self.chunks[0]}
        return Track(**cat)

    def _finish(self, t0: float, complete: bool) -> VideoResult:
        opts, out = self.options, self.out_dir
        if self.frames == 0:  # interrupted before the first frame: nothing to write
            return VideoResult(self.video, out, "interrupted", 0, time.perf_counter() - t0, self.runtime.describe())
        raw = self._raw_track()
        size = (self.src_h, self.src_w)
        if opts.smoother == "offline":
            smoothed = self.factory.smooth(raw, size)
            with TracksCSVWriter(out / TRACKS_FILE, self.meta.part_names, flush=False) as w:
                w.write_track(smoothed)
        elif opts.smoother == "online":
            smoothed = Track.from_poses(self.smoothed_chunks)
        else:
            smoothed = raw
        edges = self.meta.skeleton_edges or None
        skeleton = skeleton_from_track(smoothed, self.contacts, edges=edges, min_touch=opts.min_touch)
        joints = skeleton.joints_track(smoothed)
        with JointsCSVWriter(out / JOINTS_FILE, skeleton.edges, flush=False) as w:
            for j in joints:
                w.write(j)
        seconds = time.perf_counter() - t0
        info = self._info(smoothed, skeleton, complete, seconds)
        write_json(out / INFO_FILE, info)
        status = "done" if complete else "interrupted"
        result = VideoResult(self.video, out, status, self.frames, seconds, self.runtime.describe(),
                             warnings=list(self.warnings))
        if not complete:
            (out / _LABELS_TMP).unlink(missing_ok=True)
            return result
        if opts.overlay:
            self._overlay(smoothed, joints)
        exports: list[str] = []
        if opts.exports:
            exports = _run_exports(out, opts, None)
        write_json(out / DONE_FILE, {
            "video": str(self.video), "frames": self.frames, "seconds": round(seconds, 3),
            "backend": self.runtime.describe(), "fingerprint": opts.fingerprint(), "outputs": opts.outputs(),
            "exports": exports, "warnings": self.warnings,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        result.seconds = time.perf_counter() - t0
        return result

    def _info(self, track: Track, skeleton, complete: bool, seconds: float) -> dict:
        times = track.time_s
        fps = self.nominal_fps
        if not fps and len(times) > 1:
            dt = float(np.median(np.diff(times)))
            fps = 1.0 / dt if dt > 0 else None
        duration = float(times[-1] - times[0]) + (1.0 / fps if fps else 0.0) if len(times) else 0.0
        try:
            from importlib.metadata import version

            ver = version("parttrack")
        except Exception:  # pragma: no cover - running from a checkout
            ver = "unknown"
        files = {"tracks": TRACKS_FILE, "joints": JOINTS_FILE}
        if self.options.raw:
            files["tracks_raw"] = RAW_FILE
        if self.options.masks:
            files["masks"] = f"{MASKS_DIR}/NNNNNN.png"
        if self.options.overlay:
            files["overlay"] = OVERLAY_FILE
        return {
            "parttrack_version": ver, "complete": complete,
            "video": str(self.video), "video_name": self.video.name,
            "width": self.src_w, "height": self.src_h, "fps": fps, "frame_count": self.frames,
            "duration_s": round(duration, 6), "first_time_s": float(times[0]) if len(times) else None,
            "model": str(self.options.model_path()), "backend": self.runtime.describe(),
            "runtime": getattr(self.runtime, "name", ""), "device": getattr(self.runtime, "device", ""),
            "num_parts": self.k, "part_names": list(self.meta.part_names),
            "part_colors": [list(c) for c in self.meta.part_colors],
            "skeleton_edges": skeleton.edges.tolist(), "skeleton": skeleton.to_json(self.meta.part_names),
            "smoother": self.options.smoother, "noise": asdict(self.options.noise), "pose": asdict(self.options.pose),
            "letterbox": {"input_size": self.lb.size, "scale": self.lb.scale, "pad_x": self.lb.pad_x,
                          "pad_y": self.lb.pad_y, "mask_size": list(self.meta.mask_size)},
            "seconds": round(seconds, 3), "files": files, "conventions": CONVENTIONS,
        }

    # -- pass 2: the overlay video -------------------------------------------------------------
    def _overlay(self, track: Track, joints) -> None:
        from ui.overlay import draw_overlay

        out = self.out_dir
        h, w = self.meta.mask_size
        tmp = out / _LABELS_TMP
        labels = np.memmap(tmp, dtype=np.uint8, mode="r", shape=(self.frames, h, w)) if self.frames else None
        colors, names = self.meta.part_colors, self.meta.part_names
        # small videos are drawn at 2× or more so the legend and axes stay legible
        zoom = max(1, int(np.ceil(360 / max(1, self.src_h))))
        try:
            with VideoWriter(out / OVERLAY_FILE, self.src_w * zoom, self.src_h * zoom, self.nominal_fps) as vw, \
                    open_source(self.video, threaded=True) as src:
                for t, frame in enumerate(src):
                    if t >= self.frames:
                        break
                    lab = labels_at_source(np.asarray(labels[t]), self.lb, smooth=True, num_parts=self.k)
                    image = draw_overlay(frame.image, lab, track.poses(t), joints[t], colors, names, scale=zoom)
                    vw.write(image, float(track.time_s[t]) - float(track.time_s[0]))
        finally:
            del labels
            if tmp.exists():
                tmp.unlink()


# ------------------------------------------------------------------------------- many videos
def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _TqdmProgress(_Progress):
    """A per-video tqdm bar at a given screen position."""

    def __init__(self, position: int = 1, disable: bool = False) -> None:
        self.position, self.disable, self.bar = position, disable, None

    def start(self, name: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=name[:28], unit="frame", position=self.position, leave=False,
                        disable=self.disable, dynamic_ncols=True)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _failure(video: Path, out_dir: Path, exc: BaseException) -> VideoResult:
    if isinstance(exc, ParttrackError):
        return VideoResult(video, out_dir, "failed", error=exc.message, hint=exc.hint)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ERROR_FILE).write_text(text, encoding="utf-8")
        hint = f"this looks like a bug; the traceback is in {out_dir / ERROR_FILE}"
    except OSError:
        hint = "this looks like a bug; please report it with the video"
    return VideoResult(video, out_dir, "failed", error=f"{type(exc).__name__}: {exc}", hint=hint)


def plan_batch(paths, out_root: str | Path, options: TrackOptions, log=_log):
    """The common start of every batch runner (local pool, Ray): find the videos, check the
    output root is writable, and mark the videos whose folder is already done as skipped.

    Returns:
        ``(videos, dirs, results, todo)``: video paths, their result folders, a list with a
        ``"skipped"`` :class:`VideoResult` for finished videos and None elsewhere, and the
        indices still to track.

    Raises:
        InputError: no videos found; OutputError: ``out_root`` cannot be written.
    """
    videos = discover_videos(paths)
    check_writable(out_root)
    dirs = output_dirs(videos, out_root)
    results: list[VideoResult | None] = [None] * len(videos)
    todo: list[int] = []
    for i, (v, d) in enumerate(zip(videos, dirs)):
        if _done_status(d, options) == "skip":
            info = done_info(d) or {}
            results[i] = VideoResult(v, d, "skipped", int(info.get("frames", 0)), 0.0, info.get("backend", ""))
        else:
            todo.append(i)
    skipped = len(videos) - len(todo)
    if skipped:
        log(f"parttrack: {skipped} of {len(videos)} videos already done in {out_root} (skipped; --force redoes them)")
    return videos, dirs, results, todo


def run_batch(paths, out_root, options: TrackOptions | None = None, workers: int = 1, *, runtime_factory=None,
              progress: bool = True, log=_log) -> list[VideoResult]:
    """Track every video under ``paths`` into ``out_root/<stem>/``.

    Args:
        paths: video files and/or folders (:func:`discover_videos`).
        out_root: the output folder (created).
        options: :class:`TrackOptions`.
        workers: local worker processes (spawned; each loads the model once and gets
            ``cores // workers`` inference threads).
        runtime_factory: ``f(options, workers) -> Runtime`` (picklable for workers > 1);
            default :func:`engine.runtime.create_runtime` on ``options.model``.
        progress: show tqdm bars (per video and overall).
        log: where one-line messages go (default: stderr).

    Returns:
        One :class:`VideoResult` per video, in input order. A failing video is reported in
        its result (status ``failed``) and the others go on.

    Raises:
        InputError: no videos / a path that does not exist.
        OutputError: ``out_root`` cannot be written.
        BundleError, BackendUnavailable: the model cannot be loaded (workers = 1).
        KeyboardInterrupt: Ctrl-C (finished videos stay done; the current ones keep what they
            processed, without done.json).
    """
    options = options or TrackOptions()
    if workers < 1:
        raise ParttrackError(f"--workers must be at least 1, got {workers}")
    videos, dirs, results, todo = plan_batch(paths, out_root, options, log)
    if todo:
        workers = min(workers, len(todo))
        if workers == 1:
            _run_local(videos, dirs, todo, results, options, runtime_factory, progress, log)
        else:
            _run_pool(videos, dirs, todo, results, options, workers, runtime_factory, progress, log)
    return [r for r in results if r is not None]


def _run_local(videos, dirs, todo, results, options, runtime_factory, progress, log) -> None:
    from tqdm import tqdm

    factory = runtime_factory or (lambda o, w: _make_runtime(o, w))
    runtime = factory(options, 1)
    log(f"runtime: {runtime.describe()}")
    overall = tqdm(total=len(todo), desc="videos", unit="video", position=0, disable=not progress, dynamic_ncols=True)
    try:
        for i in todo:
            try:
                results[i] = track_video(videos[i], dirs[i], options, runtime, _TqdmProgress(1, not progress))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per video, the batch goes on
                results[i] = _failure(videos[i], dirs[i], exc)
            overall.update(1)
    finally:
        overall.close()


# -- worker processes -------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(options: TrackOptions, workers: int, runtime_factory, queue) -> None:
    _WORKER["queue"] = queue
    try:
        factory = runtime_factory or (lambda o, w: _make_runtime(o, w))
        _WORKER["runtime"] = factory(options, workers)
        queue.put((os.getpid(), "runtime", _WORKER["runtime"].describe()))
    except BaseException as exc:  # noqa: BLE001 - reported with each video of this worker
        _WORKER["error"] = exc


class _QueueProgress(_Progress):
    def __init__(self, queue) -> None:
        self.queue, self.pid = queue, os.getpid()

    def start(self, name, total):
        self.queue.put((self.pid, "start", (name, total)))

    def advance(self, n):
        self.queue.put((self.pid, "advance", n))

    def finish(self):
        self.queue.put((self.pid, "finish", None))


def _worker_track(video: Path, out_dir: Path, options: TrackOptions) -> VideoResult:
    progress = _QueueProgress(_WORKER["queue"])
    if "error" in _WORKER:
        return _failure(video, out_dir, _WORKER["error"])
    try:
        return track_video(video, out_dir, options, _WORKER["runtime"], progress)
    except KeyboardInterrupt:
        return VideoResult(video, out_dir, "interrupted")
    except Exception as exc:  # noqa: BLE001
        progress.finish()
        return _failure(video, out_dir, exc)


def _run_pool(videos, dirs, todo, results, options, workers, runtime_factory, progress, log) -> None:
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    queue = manager.Queue()
    bars: dict[int, object] = {}
    slots: dict[int, int] = {}
    announced = []
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                pid, kind, payload = queue.get(timeout=0.1)
            except Exception:  # queue.Empty, or the manager went away
                continue
            if kind == "runtime":
                if not announced:
                    announced.append(payload)
                    log(f"runtime: {payload} (×{workers} workers)")
                continue
            slot = slots.setdefault(pid, len(slots) + 1)
            if kind == "start":
                name, total = payload
                if pid in bars:
                    bars[pid].close()
                bars[pid] = tqdm(total=total, desc=name[:28], unit="frame", position=slot, leave=False,
                                 disable=not progress, dynamic_ncols=True)
            elif kind == "advance" and pid in bars:
                bars[pid].update(payload)
            elif kind == "finish" and pid in bars:
                bars[pid].close()
                del bars[pid]

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    overall = tqdm(total=len(todo), desc="videos", unit="video", position=0, disable=not progress, dynamic_ncols=True)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(options, workers, runtime_factory, queue))
    try:
        futures = {pool.submit(_worker_track, videos[i], dirs[i], options): i for i in todo}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died (e.g. out of memory)
                results[i] = _failure(videos[i], dirs[i], exc)
            overall.update(1)
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        stop.set()
        thread.join(timeout=2)
        for bar in list(bars.values()):
            bar.close()
        overall.close()
        manager.shutdown()


# ------------------------------------------------------------------------------- summary
def failure_lines(results: list[VideoResult]) -> list[str]:
    """``error: <video>: <what went wrong>`` (+ ``hint: …``) for every failed video."""
    lines = []
    for r in results:
        if r.status == "failed":
            lines.append(f"error: {r.video}: {r.error}")
            if r.hint:
                lines.append(f"hint: {r.hint}")
    return lines


def summarize(results: list[VideoResult], out_root, elapsed_s: float) -> str:
    """A few lines for the end of a batch: counts, frames, frames/s, where the files are,
    warnings. Failures are reported by :func:`failure_lines` (the CLI prints them on stderr)."""
    done = [r for r in results if r.status == "done"]
    skipped = [r for r in results if r.status == "skipped"]
    failed = [r for r in results if r.status == "failed"]
    frames = sum(r.frames for r in done)
    track_s = sum(r.seconds for r in done)
    lines = [f"videos: {len(results)} ({len(done)} tracked, {len(skipped)} already done, {len(failed)} failed)",
             f"frames: {frames} tracked in {elapsed_s:.1f} s"
             + (f" ({frames / elapsed_s:.1f} frames/s overall, {frames / track_s:.1f} frames/s per video)"
                if frames and elapsed_s > 0 and track_s > 0 else ""),
             f"results: {Path(out_root)}/<video>/ (tracks.csv, joints.csv, track.json …)"]
    if len(done) <= 5:  # a short batch: say exactly where each file went
        for r in (r for r in done if Path(r.out_dir).is_dir()):
            entries = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(r.out_dir).iterdir())
            lines.append(f"  {r.out_dir}/: " + ", ".join(e for e in entries if e != "done.json"))
    for r in results:
        for w in r.warnings:
            lines.append(f"warning: {w}")
    return "\n".join(lines)
