"""Result folders of the batch path: their layout, the options that make them, whether one
is done (resume), and the per-video results and summary text.

One folder per video, ``OUT/<video stem>/``::

    tracks.csv        smoothed part poses (tracker.io.TRACKS_COLUMNS)
    tracks_raw.csv    unsmoothed poses (--raw)
    joints.csv        joint positions (tracker.io.JOINTS_COLUMNS)
    track.json        video, model, backend, parts, skeleton, settings, conventions
    masks/000000.png  label maps at source resolution (--masks)
    overlay.mp4       parts, axes and skeleton drawn over the video (--overlay)
    ae/, blender/     animation exports (--export)
    done.json         written last: the folder is complete

A folder is *done* when its ``done.json`` exists and records the same
:meth:`TrackOptions.fingerprint` (model, smoother, pose and noise settings …) and at least the
outputs asked for; otherwise it is redone (:func:`done_status`). Writing the folder is
:mod:`tracker.offline`'s job; scheduling many videos is :mod:`tracker.batch`'s.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.errors import InputError, OutputError, ParttrackError
from tracker.io import read_json
from tracker.kalman import KalmanNoise, make_factory
from tracker.poses import PoseConfig
from tracker.progress import log as _default_log
from tracker.sources import VIDEO_EXTENSIONS

DONE_FILE = "done.json"
INFO_FILE = "track.json"
TRACKS_FILE = "tracks.csv"
RAW_FILE = "tracks_raw.csv"
JOINTS_FILE = "joints.csv"
OVERLAY_FILE = "overlay.mp4"
MASKS_DIR = "masks"
ERROR_FILE = "error.txt"
LABELS_TMP = ".labels.tmp"  # mask-resolution soft masks (uint8) kept for the overlay pass
OUTPUTS = (TRACKS_FILE, RAW_FILE, JOINTS_FILE, INFO_FILE, OVERLAY_FILE, ERROR_FILE, LABELS_TMP)

#: The conventions written into every ``track.json`` (the same as :mod:`tracker.core`'s).
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
        is redone): the model (its path and the SHA-256 of its ``model.onnx``, which changes
        when it is retrained or relabelled, e.g. ``parttrack label --drop``) and the settings."""
        return {"model": str(self.model_path().resolve()), "model_sha256": _model_digest(self.model_path()),
                "smoother": self.smoother, "max_frames": self.max_frames, "pose": asdict(self.pose),
                "noise": asdict(self.noise), "min_touch": self.min_touch}

    def outputs(self) -> dict:
        return {"raw": self.raw, "masks": self.masks, "overlay": self.overlay}

    def make_runtime(self, workers: int = 1, announce: bool = False):
        """The inference runtime these options ask for (:func:`engine.runtime.create_runtime`
        on :meth:`model_path`, ``cores // workers`` CPU threads unless ``threads`` says).

        Raises:
            BundleError, BackendUnavailable: the model or backend cannot be used here.
        """
        from engine.runtime import create_runtime

        return create_runtime(self.model_path(), backend=self.backend, device=self.device, threads=self.threads,
                              workers=workers, announce=announce, precision=self.precision)


def _model_digest(path: Path) -> str:
    """SHA-256 (hex) of a bundle's ``model.onnx`` (``path``: the bundle folder or the file);
    ``""`` when it cannot be read (the runtime then reports the missing bundle)."""
    import hashlib

    from engine.bundle import ONNX_FILE

    onnx = path / ONNX_FILE if path.is_dir() else path
    try:
        return hashlib.sha256(onnx.read_bytes()).hexdigest()
    except OSError:
        return ""


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


def done_status(out_dir: Path, options: TrackOptions) -> str:
    """What a (re)run must do with ``out_dir``: ``redo``, ``skip`` or ``exports`` (tracks are
    fine, only exports are missing)."""
    info = done_info(out_dir)
    if options.force or info is None or info.get("fingerprint") != options.fingerprint():
        return "redo"
    have = info.get("outputs", {})
    if any(v and not have.get(k) for k, v in options.outputs().items()):
        return "redo"
    if options.exports and not set(export_formats(options.exports)) <= set(info.get("exports", [])):
        return "exports"
    return "skip"


def export_formats(formats) -> tuple[str, ...]:
    """:func:`tracker.animation.parse_formats` (imported when exports are asked for)."""
    from tracker.animation import parse_formats

    return parse_formats(list(formats))


def clear_outputs(out_dir: Path) -> None:
    """Delete what a previous run wrote in ``out_dir`` (done.json first), before a redo."""
    for name in (DONE_FILE,) + OUTPUTS:
        p = out_dir / name
        if p.is_file():
            p.unlink()
    masks = out_dir / MASKS_DIR
    if masks.is_dir():
        for f in masks.glob("*.png"):
            f.unlink()


def skipped_result(video: Path, out_dir: Path, status: str = "skipped") -> VideoResult:
    """The result of a video whose folder is already done: frames and backend from its
    ``done.json`` (status ``skipped``, or ``done`` when only exports were added)."""
    info = done_info(out_dir) or {}
    return VideoResult(video, out_dir, status, int(info.get("frames", 0)), 0.0, info.get("backend", ""))


def failure_result(video: Path, out_dir: Path, exc: BaseException) -> VideoResult:
    """A ``failed`` result for ``exc``: a :class:`engine.errors.ParttrackError` keeps its
    message and hint; anything else is a bug, its traceback written to ``out_dir/error.txt``."""
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


def plan_batch(paths, out_root: str | Path, options: TrackOptions, log=_default_log):
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
        if done_status(d, options) == "skip":
            results[i] = skipped_result(v, d)
        else:
            todo.append(i)
    skipped = len(videos) - len(todo)
    if skipped:
        log(f"parttrack: {skipped} of {len(videos)} videos already done in {out_root} (skipped; --force redoes them)")
    return videos, dirs, results, todo


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
