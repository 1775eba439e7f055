"""Learn mode, Qt-free: record a clip of the subject from a live source, train on it in a
**child process**, and publish the new bundle — what ``parttrack --camera 0 --learn`` and the
viewer's Learn key run (the window side is :mod:`ui.learn`).

One learning run lives in one folder (default under the user's data folder,
:func:`learned_models_dir`)::

    <root>/<source>-<YYYYmmdd-HHMMSS>/
        clip.mp4        the recorded frames (H.264, the source's size and timestamps)
        run/            the trainer's run folder: config.json, checkpoint.pt, log.csv, snapshots/
        train.log       the child's stdout and stderr
        model/          the bundle, published (renamed from model.partial/) only once the child
                        has written it completely and it loads (:func:`engine.bundle.load_bundle`)

The child is ``python -m tracker.cli train clip.mp4 -o model.partial --run-dir run
--no-progress --bundle-on-stop --shots …`` (:class:`TrainingJob`; ``--shots``: a recording is one
take, so a "cut" the footage check finds in it is a sudden change — a light switched on, the
camera knocked — and the whole clip is kept, each part of it with its own background); its progress is read from the run
folder as it appears (``log.csv`` rows, ``snapshots/step_XXXXXX.png``), never from a pipe, so
the parent never blocks on it. Stopping early sends SIGINT (Ctrl-Break on Windows): the
trainer saves a checkpoint and, with ``--bundle-on-stop``, the child writes the bundle from the
weights trained so far. A run stopped or failed before the bundle is complete leaves no
``model/`` folder (the partial one is left for inspection).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np

from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE

#: Fewest frames a clip needs (engine.train.MIN_FRAMES, repeated here so that checking it does
#: not import torch into the viewer).
MIN_CLIP_FRAMES = 8

#: How the install hint reads when torch is missing.
TRAIN_EXTRA_HINT = "install the train extra: pip install 'parttrack[train]'"


def training_dependency_missing() -> str | None:
    """None when training can run here (torch importable), else what is missing (a sentence)."""
    if importlib.util.find_spec("torch") is None:
        return "learning needs torch, which is not installed"
    return None


def user_data_dir() -> Path:
    """parttrack's per-user data folder: ``platformdirs.user_data_path("parttrack")`` when
    platformdirs is installed, else ``%LOCALAPPDATA%\\parttrack`` (Windows),
    ``~/Library/Application Support/parttrack`` (macOS) or ``$XDG_DATA_HOME/parttrack``
    (default ``~/.local/share/parttrack``, the XDG base-directory rule) elsewhere."""
    try:
        import platformdirs
    except ImportError:
        platformdirs = None
    if platformdirs is not None:
        return Path(platformdirs.user_data_path("parttrack", appauthor=False))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "parttrack"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "parttrack"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "parttrack"


def learned_models_dir() -> Path:
    """Where learning runs go by default: ``user_data_dir() / "learned"``."""
    return user_data_dir() / "learned"


@dataclass(frozen=True)
class LearnSettings:
    """What one learning run does.

    Attributes:
        seconds: length of the recorded clip in source seconds.
        countdown_s: seconds of "get ready" before recording starts.
        minutes: training time budget (None: ``steps`` only).
        steps: training step limit (None: ``minutes`` only).
        parts: K, the number of parts to learn.
        size: model input side in pixels (multiple of 16).
        snapshot_every: training steps between mask snapshots (what the window shows).
        threads: torch CPU threads of the child (None: all cores but one, at least one, so
            the live view keeps a core).
        device: ``cpu``, ``cuda`` or ``auto`` (cuda when torch sees a GPU).
        root: folder of learning runs (None: :func:`learned_models_dir`).
        warm_start: start from the weights of the model in use when its network fits
            (``parttrack train --init … --init-optional``); otherwise, and when False, from
            `parttrack train`'s default start (the shipped ``trained/prior`` when its network
            fits, else random weights). Measured on generated videos, 500 warm-started steps
            beat 1,500 from scratch (docs/training_sweep.md).
    """

    seconds: float = 60.0
    countdown_s: float = 3.0
    minutes: float | None = 20.0
    steps: int | None = None
    parts: int = 10
    size: int = DEFAULT_INPUT_SIZE
    snapshot_every: int = 50
    threads: int | None = None
    device: str = "auto"
    root: Path | None = None
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"the clip length must be positive, got {self.seconds} s")
        if self.minutes is None and self.steps is None:
            raise ValueError("learning needs a time budget (minutes) or a step limit")
        if self.minutes is not None and not self.minutes > 0 or self.steps is not None and self.steps < 1:
            raise ValueError("the learning budget (minutes, steps) must be positive")
        if self.size % 16 or self.size < 16:
            raise ValueError(f"the model input size must be a multiple of 16, got {self.size}")
        if self.parts < 1:
            raise ValueError(f"learning needs at least one part, got {self.parts}")

    @property
    def child_threads(self) -> int:
        return self.threads or max(1, (os.cpu_count() or 2) - 1)


def new_run_folder(source_name: str, root: str | Path | None = None) -> Path:
    """A fresh ``<root>/<source>-<date>-<time>[-n]/`` folder (created)."""
    root = Path(root) if root is not None else learned_models_dir()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source_name) or "subject"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = root / (f"{safe}-{stamp}" + (f"-{n}" if n else ""))
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise OSError(f"cannot create a new run folder under {root}")


class ClipRecorder:
    """Records frames (``tracker.core.Frame``, RGB) to an H.264 mp4 until ``seconds`` of source
    time are recorded. Not thread-safe: one thread writes (the viewer's tracking worker).

    Timestamps are the frames' own, shifted to start at 0 (dropped frames leave gaps; the
    trainer samples frame pairs, so the rate does not matter). A frame whose timestamp goes
    back (a file source looping or seeked) continues the clip one frame interval (the last one
    seen) after the previous frame, so the clip's time always runs forward and ``seconds``
    counts recorded time. Odd sizes lose their last row/column (H.264 in yuv420p needs even
    sides).

    Raises:
        OSError: the file cannot be created.
    """

    def __init__(self, path: str | Path, seconds: float) -> None:
        self.path = Path(path)
        self.seconds = float(seconds)
        self.frames = 0
        self.elapsed_s = 0.0
        self._t0: float | None = None
        self._last_t = 0.0
        self._last_dt = 1 / 30
        self._last_pts = -1
        self._out = None
        self._stream = None
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def full(self) -> bool:
        """True once ``seconds`` are recorded."""
        return self.elapsed_s >= self.seconds

    def write(self, frame) -> bool:
        """Append one frame; False (nothing written) once the clip is full or closed."""
        import av

        if self.full or self._out is False:
            return False
        image = frame.image
        h, w, _ = image.shape
        h2, w2 = h - h % 2, w - w % 2
        if self._out is None:
            self._out = av.open(str(self.path), "w")
            stream = self._out.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
            stream.options = {"preset": "ultrafast", "crf": "18"}
            self._stream, self._t0 = stream, float(frame.time_s)
        t = float(frame.time_s) - self._t0
        if self.frames and t <= self._last_t:       # the source went back: continue after the last frame
            self._t0 -= self._last_t + self._last_dt - t
            t = self._last_t + self._last_dt
        elif self.frames:
            self._last_dt = t - self._last_t
        self._last_t = t
        pts = max(int(round(t * 1000)), self._last_pts + 1)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h2, :w2]), format="rgb24")
        vf.pts, vf.time_base = pts, Fraction(1, 1000)
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self._last_pts = pts
        self.frames += 1
        self.elapsed_s = max(self.elapsed_s, t + (1 / 30 if self.frames == 1 else 0.0))
        return True

    def close(self) -> Path | None:
        """Finish the file; returns its path, None when no frame was written. Idempotent."""
        out, self._out = self._out, False
        if out is None or out is False:
            return self.path if self.frames and out is False else None
        for packet in self._stream.encode():
            out.mux(packet)
        out.close()
        return self.path


#: How the training command prefixes the footage check's findings on stderr (tracker/cli/train.py).
FOOTAGE_PREFIX = "parttrack: footage:"


@dataclass(frozen=True)
class TrainingProgress:
    """What the window shows while the child trains.

    Attributes:
        step: last logged optimiser step (0 before the first).
        elapsed_s: training time the trainer logged for it (s).
        loss: its total loss (None before the first step).
        total_steps: the step limit (None: time budget only).
        eta_s: estimated seconds left (None until the rate is known).
        snapshot: the newest mask snapshot PNG (None before the first).
        findings: the footage check's findings the child printed (``engine.footage``: shot
            cuts, a moving camera, a small subject), without the ``parttrack: footage:`` prefix.
    """

    step: int = 0
    elapsed_s: float = 0.0
    loss: float | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    snapshot: Path | None = None
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainingResult:
    """How the child ended: ``bundle`` set on success, else ``message`` says why not."""

    returncode: int
    bundle: Path | None
    stopped_early: bool
    message: str


class TrainingJob:
    """One training child process over a recorded clip (see the module docstring).

    Args:
        clip: the recorded video.
        folder: the learning run's folder (``run/``, ``train.log``, ``model/`` go there).
        settings: :class:`LearnSettings`.
        python: the interpreter to run (default: this one).
    """

    def __init__(self, clip: str | Path, folder: str | Path, settings: LearnSettings,
                 python: str | None = None, init: str | Path | None = None) -> None:
        self.clip, self.folder, self.settings = Path(clip), Path(folder), settings
        self.init = Path(init) if init is not None and settings.warm_start else None
        self.python = python or sys.executable
        self.run_dir = self.folder / "run"
        self.partial = self.folder / "model.partial"
        self.bundle = self.folder / "model"
        self.log_path = self.folder / "train.log"
        self.proc: subprocess.Popen | None = None
        self.stop_requested = False
        self.started_at: float | None = None
        self._log_offset = 0
        self._log_rest = b""
        self._header: list[str] | None = None
        self._last_row: dict[str, str] | None = None
        self._result: TrainingResult | None = None
        self._findings: tuple[str, ...] = ()
        self._findings_done = False

    def command(self) -> list[str]:
        s = self.settings
        cmd = [self.python, "-m", "parttrack", "train", str(self.clip), "-o", str(self.partial),
               "--run-dir", str(self.run_dir), "--no-progress", "--bundle-on-stop", "--shots",
               "--parts", str(s.parts), "--size", str(s.size), "--snapshot-every", str(s.snapshot_every),
               "--threads", str(s.child_threads), "--device", s.device]
        if s.minutes is not None:
            cmd += ["--minutes", repr(float(s.minutes))]
        else:
            cmd += ["--minutes", "1e9"]
        if s.steps is not None:
            cmd += ["--steps", str(int(s.steps))]
        if self.init is not None:
            cmd += ["--init", str(self.init), "--init-optional"]
        return cmd

    def start(self) -> None:
        """Start the child (returns at once)."""
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # a checkout runs without being installed
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        kw: dict = {}
        if sys.platform == "win32":
            kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # Ctrl-Break reaches it alone
        else:
            kw["start_new_session"] = True  # the terminal's Ctrl-C goes to the viewer, which stops it
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(self.folder), **kw)
        self.started_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Ask the child to stop early and write the bundle from its weights so far (once)."""
        if not self.running or self.stop_requested:
            return
        self.stop_requested = True
        if sys.platform == "win32":
            self.proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """End the child at once (no bundle)."""
        if self.running:
            self.proc.kill()
            self.proc.wait(5)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the child to end; True when it has."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    # -- progress -----------------------------------------------------------------------
    def _read_log(self) -> None:
        path = self.run_dir / "log.csv"
        try:
            with open(path, "rb") as fh:
                fh.seek(self._log_offset)
                data = fh.read()
        except OSError:
            return
        self._log_offset += len(data)
        data = self._log_rest + data
        lines = data.split(b"\n")
        self._log_rest = lines.pop()  # an incomplete last line waits for the next read
        for row in csv.reader(io.StringIO(b"\n".join(lines).decode("utf-8", "replace"))):
            if not row:
                continue
            if self._header is None:
                self._header = row
            elif len(row) == len(self._header):
                self._last_row = dict(zip(self._header, row))

    def progress(self) -> TrainingProgress:
        """The newest progress found in the run folder (cheap: reads only what was appended)."""
        self._read_log()
        s = self.settings
        step, elapsed, loss = 0, 0.0, None
        if self._last_row is not None:
            try:
                step = int(self._last_row["step"])
                elapsed = float(self._last_row["elapsed_s"])
                loss = float(self._last_row["total"])
            except (KeyError, ValueError):
                pass
        eta = None
        if step > 0 and elapsed > 0:
            left = []
            if s.steps is not None:
                left.append(max(0, s.steps - step) * elapsed / step)
            if s.minutes is not None:
                left.append(max(0.0, s.minutes * 60 - elapsed))
            eta = min(left) if left else None
        snaps = sorted((self.run_dir / "snapshots").glob("step_*.png")) if (self.run_dir / "snapshots").is_dir() else []
        return TrainingProgress(step, elapsed, loss, s.steps, eta, snaps[-1] if snaps else None, self.findings())

    def findings(self) -> tuple[str, ...]:
        """The footage findings in the child's output so far (read until training starts)."""
        if self._findings_done:
            return self._findings
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return self._findings
        head, started, _ = text.partition("parttrack: training K=")  # printed after the check
        self._findings = tuple(line.split(FOOTAGE_PREFIX, 1)[1].strip() for line in head.splitlines()
                               if FOOTAGE_PREFIX in line)
        self._findings_done = bool(started)
        return self._findings

    # -- the end ------------------------------------------------------------------------
    def result(self) -> TrainingResult | None:
        """None while the child runs; then (once computed) how it ended. On success the bundle
        is validated and published as ``model/``."""
        if self._result is not None or self.proc is None or self.proc.poll() is None:
            return self._result
        self.log_file.close()
        code = self.proc.returncode
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        stopped = "stopped early" in text
        if code == 0:
            from parttrack.engine.bundle import load_bundle
            from parttrack.engine.errors import BundleError

            try:
                load_bundle(self.partial)
                if self.bundle.exists():
                    shutil.rmtree(self.bundle)
                self.partial.replace(self.bundle)
            except (BundleError, OSError) as exc:
                self._result = TrainingResult(code, None, stopped, f"the trained bundle is not usable: {exc}")
            else:
                how = "stopped early" if stopped else "finished"
                self._result = TrainingResult(code, self.bundle, stopped, f"training {how}; new model {self.bundle}")
            return self._result
        errors = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "parttrack: error:" in line]
        if self.stop_requested and code in (130, -int(signal.SIGINT)):
            why = "training was stopped before its first step; no model was written"
        elif errors:
            why = f"training failed: {errors[-1]}"
        else:
            tail = " | ".join(text.strip().splitlines()[-3:])
            why = f"training failed (exit status {code}){': ' + tail if tail else ''}"
        self._result = TrainingResult(code, None, stopped, f"{why} (log: {self.log_path})")
        return self._result
