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

A folder is *done* when its ``done.json`` exists and records the same input video
(:func:`video_fingerprint`: resolved path, size, modification time and a SHA-256 of its first
and last MiB), the same :meth:`TrackOptions.fingerprint` (model graph, precision, smoother,
pose and noise settings …) and at least the outputs asked for; otherwise it is redone and
:func:`check_done` says why. A folder that holds another video's result (another path *and*
other content) is never reused: :func:`claim_dirs` gives the new video the next free
``<stem>_N``.

Writing is transactional (:mod:`tracker.publish`): one writer per folder (a lock file ``OUT/.<name>.lock``; a second run
waits for the first), a video's files are written into a hidden sibling
``OUT/.<name>.partial-*`` and renamed into place only when complete, so an existing complete
result stays intact until its replacement is complete. An interrupted run publishes its
partial files (``track.json`` ``"complete": false``, no ``done.json``) only where there is no
complete result. Leftovers of a killed run are removed by the next run on that folder
(:func:`tracker.publish.recover_folder`). Writing the folder is :mod:`tracker.offline`'s job;
scheduling many videos is :mod:`tracker.batch`'s.
"""

from __future__ import annotations

import hashlib
import os
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from parttrack.engine.errors import InputError, OutputError, ParttrackError
from parttrack.tracker.io import printable, read_json
from parttrack.tracker.kalman import KalmanNoise, make_factory
from parttrack.tracker.poses import PoseConfig
from parttrack.tracker.progress import log as _default_log
from parttrack.tracker.sources import VIDEO_EXTENSIONS

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
        plot: write ``tracks.png`` (:mod:`tracker.plot`; a fixed cost per video, not per frame).
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
    plot: bool = True
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
        from parttrack.engine.bundle import default_model_path

        return Path(self.model) if self.model is not None else default_model_path()

    def fingerprint(self) -> dict:
        """What decides the content of tracks/joints (a done folder with another fingerprint
        is redone): the model (its path and the SHA-256 of its ``model.onnx``, which changes
        when it is retrained or relabelled, e.g. ``parttrack label --drop``), the precision
        (``int8`` runs another graph) and the settings. Backend, device, threads and batch size
        are not in it: every backend agrees within its stated tolerance."""
        return {"model": str(self.model_path().resolve()), "model_sha256": _model_digest(self.model_path()),
                "precision": self.precision, "smoother": self.smoother, "max_frames": self.max_frames,
                "pose": asdict(self.pose), "noise": asdict(self.noise), "min_touch": self.min_touch}

    def outputs(self) -> dict:
        return {"raw": self.raw, "masks": self.masks, "overlay": self.overlay, "plot": self.plot}

    def make_runtime(self, workers: int = 1, announce: bool = False):
        """The inference runtime these options ask for (:func:`engine.runtime.create_runtime`
        on :meth:`model_path`, ``cores // workers`` CPU threads unless ``threads`` says).

        Raises:
            BundleError, BackendUnavailable: the model or backend cannot be used here.
        """
        from parttrack.engine.runtime import create_runtime

        return create_runtime(self.model_path(), backend=self.backend, device=self.device, threads=self.threads,
                              workers=workers, announce=announce, precision=self.precision)


_DIGESTS: dict[tuple, str] = {}


def _model_digest(path: Path) -> str:
    """SHA-256 (hex) of a bundle's ``model.onnx`` (``path``: the bundle folder or the file);
    ``""`` when it cannot be read (the runtime then reports the missing bundle). Cached per
    (file, size, modification time), so a batch hashes the model once."""
    from parttrack.engine.bundle import ONNX_FILE

    onnx = path / ONNX_FILE if path.is_dir() else path
    try:
        st = onnx.stat()
        key = (str(onnx.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = hashlib.sha256(onnx.read_bytes()).hexdigest()
        return _DIGESTS[key]
    except OSError:
        return ""


#: Bytes hashed at each end of a video by :func:`video_fingerprint`.
VIDEO_HASH_BYTES = 1 << 20
_VIDEO_PRINTS: dict[tuple, dict] = {}


def video_fingerprint(video: str | Path) -> dict:
    """What identifies an input video: ``path`` (resolved, as text), ``size`` (bytes),
    ``mtime_ns`` and ``sha256_ends`` (SHA-256 hex of its first and last
    :data:`VIDEO_HASH_BYTES` bytes and its size; the whole file when it is shorter).

    Hashing the ends, not the whole file, keeps a rerun over hours of video at milliseconds
    per file; together with size and modification time it catches a replaced, re-encoded,
    truncated or appended file. An edit inside the file that keeps its size and resets its
    modification time is not caught (use ``--force``). Unreadable files give ``size`` -1
    and an empty hash (tracking them then reports the error)."""
    p = Path(video)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        if key in _VIDEO_PRINTS:  # a batch looks at each video several times
            return dict(_VIDEO_PRINTS[key])
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            h.update(fh.read(VIDEO_HASH_BYTES))
            if st.st_size > VIDEO_HASH_BYTES:
                fh.seek(max(VIDEO_HASH_BYTES, st.st_size - VIDEO_HASH_BYTES))
                h.update(fh.read(VIDEO_HASH_BYTES))
        h.update(str(st.st_size).encode())
        _VIDEO_PRINTS[key] = {"path": key[0], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                              "sha256_ends": h.hexdigest()}
        return dict(_VIDEO_PRINTS[key])
    except OSError:
        return {"path": str(p.absolute()), "size": -1, "mtime_ns": 0, "sha256_ends": ""}


def same_content(a: dict | None, b: dict | None) -> bool:
    """Whether two :func:`video_fingerprint` records are the same bytes (size and end hash;
    a copy or a moved file has another path and modification time but the same content)."""
    return bool(a and b and a.get("sha256_ends") and a.get("size") == b.get("size")
                and a.get("sha256_ends") == b.get("sha256_ends"))


@dataclass
class VideoResult:
    """The outcome of one video.

    Attributes:
        video: the input path. out_dir: its result folder.
        status: ``done``, ``skipped`` (already done), ``failed`` or ``interrupted``.
        frames: frames tracked. seconds: wall time of tracking (pass 1 + finishing).
        backend: the runtime's description. error/hint: for failures.
        warnings: e.g. a video whose decoding stopped early.
        input_complete: False when the video ended before the frames its container declares
            or its decoding failed part-way (the frames before were tracked).
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
    input_complete: bool = True

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


def check_done(out_dir: Path, options: TrackOptions, video: str | Path | None = None) -> tuple[str, str]:
    """What a (re)run must do with ``out_dir`` and why.

    Returns:
        ``(state, reason)``: state ``redo``, ``skip`` or ``exports`` (tracks are fine, only
        exports are missing); reason a short phrase for a redo of a done folder (e.g. ``"the
        video changed"``), ``""`` otherwise.
    """
    info = done_info(out_dir)
    if info is None:
        return "redo", ""
    if options.force:
        return "redo", "--force"
    if video is not None:
        now, then = video_fingerprint(video), info.get("input")
        if not isinstance(then, dict):
            return "redo", "its done.json records no input fingerprint"
        if then.get("path") != now["path"] and not same_content(then, now):
            return "redo", f"it holds the result of another video ({then.get('path')})"
        if not same_content(then, now) or (then.get("path") == now["path"] and then.get("mtime_ns") != now["mtime_ns"]):
            return "redo", "the video changed since it was tracked"
    old = info.get("fingerprint") or {}
    new = options.fingerprint()
    if old != new:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        what = "the model changed" if {"model", "model_sha256"} & set(changed) else f"options changed ({', '.join(changed)})"
        return "redo", what
    have = info.get("outputs", {})
    missing = [k for k, v in options.outputs().items() if v and not have.get(k)]
    if missing:
        return "redo", f"{', '.join(missing)} asked for"
    if options.exports and not set(export_formats(options.exports)) <= set(info.get("exports", [])):
        return "exports", ""
    return "skip", ""


def done_status(out_dir: Path, options: TrackOptions, video: str | Path | None = None) -> str:
    """:func:`check_done`'s state alone: ``redo``, ``skip`` or ``exports``."""
    return check_done(out_dir, options, video)[0]


def folder_owner(out_dir: Path) -> dict | None:
    """The input a result folder belongs to: done.json's ``input`` fingerprint, else (an
    interrupted folder) ``{"path": ...}`` from its track.json; None for a missing or empty
    folder."""
    info = done_info(out_dir)
    if info is not None and isinstance(info.get("input"), dict):
        return info["input"]
    track = Path(out_dir) / INFO_FILE
    if track.is_file():
        try:
            data = read_json(track)
        except InputError:
            return None
        if isinstance(data.get("input"), dict):
            return data["input"]
        if data.get("video"):
            return {"path": str(Path(data["video"]).resolve())}
    return None


def belongs_to(out_dir: Path, video: str | Path) -> bool:
    """Whether ``out_dir`` may hold ``video``'s result: it is free (missing or no recorded
    input), records the same path, or records the same content (a moved or copied file)."""
    owner = folder_owner(out_dir)
    if owner is None:
        return True
    now = video_fingerprint(video)
    return owner.get("path") == now["path"] or same_content(owner, now)


def claim_dirs(videos, dirs) -> list[Path]:
    """The result folders to use for ``videos``, given their default names ``dirs`` (from
    :func:`output_dirs`): a folder that already records a video's path is that video's (so a
    video keeps its folder whatever else is in the batch); otherwise its default folder unless
    that holds another video's result, then the next free ``<name>_N``. Two inputs with the
    same stem therefore never share a folder across runs."""
    dirs = [Path(d) for d in dirs]
    known: dict[str, Path] = {}  # recorded input path -> existing folder
    for parent in dict.fromkeys(d.parent for d in dirs):
        if parent.is_dir():
            for f in sorted(parent.iterdir()):
                if f.is_dir() and not f.name.startswith("."):
                    owner = folder_owner(f)
                    if owner and owner.get("path"):
                        known.setdefault(str(owner["path"]), f)
    chosen: list[Path | None] = [None] * len(dirs)
    taken: set[Path] = set()
    for i, v in enumerate(videos):  # folders that already record these videos
        f = known.get(video_fingerprint(v)["path"])
        if f is not None and f not in taken:
            chosen[i] = f
            taken.add(f)
    for i, (v, d) in enumerate(zip(videos, dirs)):
        if chosen[i] is not None:
            continue
        cand, n = d, 2
        while cand in taken or not belongs_to(cand, v):
            cand, n = d.with_name(f"{d.name}_{n}"), n + 1
        chosen[i] = cand
        taken.add(cand)
    return [c for c in chosen if c is not None]


def export_formats(formats) -> tuple[str, ...]:
    """:func:`tracker.animation.parse_formats` (imported when exports are asked for)."""
    from parttrack.tracker.animation import parse_formats

    return parse_formats(list(formats))


def skipped_result(video: Path, out_dir: Path, status: str = "skipped") -> VideoResult:
    """The result of a video whose folder is already done: frames and backend from its
    ``done.json`` (status ``skipped``, or ``done`` when only exports were added)."""
    info = done_info(out_dir) or {}
    return VideoResult(video, out_dir, status, int(info.get("frames", 0)), 0.0, info.get("backend", ""),
                       warnings=[str(w) for w in info.get("warnings", [])],
                       input_complete=bool(info.get("input_complete", True)))


def failure_result(video: Path, out_dir: Path, exc: BaseException) -> VideoResult:
    """A ``failed`` result for ``exc``: a :class:`engine.errors.ParttrackError` keeps its
    message and hint; anything else is a bug, its traceback written to ``out_dir/error.txt``."""
    if isinstance(exc, ParttrackError):
        return VideoResult(video, out_dir, "failed", error=exc.message, hint=exc.hint)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ERROR_FILE).write_text(text, encoding="utf-8", errors="backslashreplace")
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
    claimed = claim_dirs(videos, dirs)
    for v, d, c in zip(videos, dirs, claimed):
        if c != d and not belongs_to(d, v):
            log(f"parttrack: {d} holds the result of another video; {printable(v.name)} goes to {c}")
    dirs = claimed
    results: list[VideoResult | None] = [None] * len(videos)
    todo: list[int] = []
    for i, (v, d) in enumerate(zip(videos, dirs)):
        if done_status(d, options, v) == "skip":
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
            lines.append(printable(f"error: {r.video}: {r.error}"))
            if r.hint:
                lines.append(printable(f"hint: {r.hint}"))
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
    return printable("\n".join(lines))
