"""The viewer's learn mode (the Qt side of :mod:`tracker.learn`): countdown → record a clip
from the running source → train on it in a child process while the live view goes on →
load the new bundle off the GUI thread → swap it into the live view.

:class:`LearnController` is a small state machine driven by one ``QTimer`` on the GUI thread;
each tick only polls (the clip recorder's length, the run folder's ``log.csv`` tail, the
newest snapshot, the loader thread), so nothing here blocks the GUI. :class:`LearnPanel` is the
dock that shows it: phase, step, loss, ETA and the newest mask snapshot.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from PyQt6 import QtCore, QtGui, QtWidgets
from PyQt6.QtCore import Qt

from parttrack.tracker import learn
from parttrack.tracker.learn import ClipRecorder, LearnSettings, TrainingJob, TrainingProgress

log = logging.getLogger(__name__)

#: What the subject should do while the clip is recorded.
MOVE_HINT = "move every part of the subject, slowly, through its whole range (keep the camera still)"

#: Phases of :class:`LearnController`, in order.
PHASES = ("idle", "countdown", "recording", "training", "loading", "done", "failed")


def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); ``?`` for None."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LearnPanel(QtWidgets.QDockWidget):
    """The learn dock: a headline, a detail line, a progress bar and the newest snapshot."""

    def __init__(self, parent=None) -> None:
        super().__init__("Learn", parent)
        self.setObjectName("learn_panel")
        self.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        body = QtWidgets.QWidget(self)
        lay = QtWidgets.QVBoxLayout(body)
        self.headline = QtWidgets.QLabel("")
        font = self.headline.font()
        font.setBold(True)
        self.headline.setFont(font)
        self.headline.setWordWrap(True)
        self.detail = QtWidgets.QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.snapshot = QtWidgets.QLabel()
        self.snapshot.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.snapshot.setMinimumWidth(240)
        self.snapshot_caption = QtWidgets.QLabel("")
        self.snapshot_caption.setWordWrap(True)
        self.stop_button = QtWidgets.QPushButton("Stop")
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for w in (self.headline, self.detail, self.bar, self.stop_button, self.snapshot_caption, self.snapshot):
            lay.addWidget(w)
        lay.addStretch(1)
        self.setWidget(body)
        self._snapshot_path: Path | None = None

    def show_state(self, headline: str, detail: str = "", fraction: float | None = None,
                   button: str | None = None) -> None:
        self.headline.setText(headline)
        self.detail.setText(detail)
        self.bar.setVisible(fraction is not None)
        if fraction is not None:
            self.bar.setValue(int(round(1000 * min(1.0, max(0.0, fraction)))))
        self.stop_button.setVisible(button is not None)
        if button is not None:
            self.stop_button.setText(button)

    def show_snapshot(self, path: Path | None, caption: str = "") -> bool:
        """Show a snapshot PNG scaled to the dock's width; False when it cannot be read yet
        (being written): the previous one stays."""
        if path is None or path == self._snapshot_path:
            return False
        image = QtGui.QImage(str(path))
        if image.isNull():
            return False
        width = max(240, self.snapshot.width())
        pixmap = QtGui.QPixmap.fromImage(image).scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
        self.snapshot.setPixmap(pixmap)
        self.snapshot.setMinimumHeight(pixmap.height())
        self.snapshot_caption.setText(caption)
        self._snapshot_path = path
        return True

    @property
    def snapshot_path(self) -> Path | None:
        return self._snapshot_path


class LearnController(QtCore.QObject):
    """Runs one learning run at a time for a :class:`ui.viewer.ViewerWindow`.

    Args:
        window: the viewer (its ``worker`` records the clip; :meth:`ViewerWindow.swap_model`
            takes the result).
        settings: :class:`tracker.learn.LearnSettings`.
        make_runtime: ``path -> Runtime`` for the new bundle (runs on a loader thread).
        tick_ms: polling interval.

    Signals:
        phase_changed(str), model_ready(object: Path of the published bundle).

    Attributes:
        phase: one of :data:`PHASES`.
        folder: the current run's folder (None before the first run).
        progress: the last :class:`TrainingProgress` read.
        frames_while_training: frames the window showed while the child trained (its
            ``displayed`` count since training started) — the test of a live view that goes on.
        training_frame_counts: ``frames_while_training`` at every tick of the training phase.
        progress_reads: how many progress reads found a new step.
        max_tick_lag_ms: the largest lateness of the polling timer while training (how long
            the GUI thread was busy), for the record.
        message: the last headline (for the status bar, the terminal and tests).
    """

    phase_changed = QtCore.pyqtSignal(str)
    model_ready = QtCore.pyqtSignal(object)

    def __init__(self, window, settings: LearnSettings, make_runtime, tick_ms: int = 200) -> None:
        super().__init__(window)
        self.window, self.settings, self.make_runtime = window, settings, make_runtime
        self.phase = "idle"
        self.folder: Path | None = None
        self.recorder: ClipRecorder | None = None
        self.job: TrainingJob | None = None
        self.progress = TrainingProgress()
        self.result = None
        self.bundle: Path | None = None
        self.message = ""
        self.frames_while_training = 0
        self.training_frame_counts: list[int] = []
        self.progress_reads = 0
        self.max_tick_lag_ms = 0.0
        self._phase_t0 = 0.0
        self._displayed_at_training = 0
        self._last_step = -1
        self._loaded: tuple | None = None
        self._loader: threading.Thread | None = None
        self._tick_ms = int(tick_ms)
        self._last_tick = None
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(self._tick_ms)
        self.timer.timeout.connect(self.tick)
        self.panel = LearnPanel(window)
        self.panel.stop_button.clicked.connect(self.toggle)
        self.panel.hide()

    # -- control ------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.phase in ("countdown", "recording", "training", "loading")

    def toggle(self) -> None:
        """The Learn key: start a run; during the countdown cancel it; while recording end
        the clip now and train on it; while training stop early (the bundle is still made)."""
        if self.phase == "countdown":
            self._fail("learning cancelled", "", phase="idle")
        elif self.phase == "recording":
            self._end_recording()
        elif self.phase == "training":
            self.stop_training()
        elif self.phase == "loading":
            pass
        else:
            self.start()

    def start(self) -> bool:
        """Begin a run on the window's running source; False (with a message) when it cannot."""
        missing = learn.training_dependency_missing()
        if missing:
            self._fail(missing, learn.TRAIN_EXTRA_HINT)
            return False
        w = self.window
        if w.worker is None or not w.worker_running or w.info is None:
            self._fail("nothing to learn from: open a camera (C) or a file (O) first", "")
            return False
        try:
            self.folder = learn.new_run_folder(w.info.name, self.settings.root)
        except OSError as exc:
            self._fail(f"cannot create a folder for the learning run: {exc}",
                       "choose a writable folder with --learn-dir DIR")
            return False
        self.recorder = ClipRecorder(self.folder / "clip.mp4", self.settings.seconds)
        self.job, self.result, self.bundle = None, None, None
        self.progress, self._last_step, self.progress_reads = TrainingProgress(), -1, 0
        self.frames_while_training, self.max_tick_lag_ms = 0, 0.0
        self.training_frame_counts = []
        if w.actions_by_name["pause"].isChecked():
            w.set_paused(False)
        self._set_phase("countdown")
        self.timer.start()
        self.tick()
        return True

    def stop_training(self) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            self._show("stopping training…", "the model is written from the weights trained so far")

    def shutdown(self, timeout_s: float = 20.0) -> None:
        """The window closes: end the recording; stop training (writing the bundle, waiting
        up to ``timeout_s``), then kill the child if it is still running."""
        self.timer.stop()
        w = self.window
        if self.recorder is not None and w.worker is not None:
            w.worker.stop_clip()
        if self.job is not None and self.job.running:
            self.job.stop()
            if not self.job.wait(timeout_s):
                self.job.kill()
            res = self.job.result()
            if res is not None:
                print(f"parttrack: {res.message}", file=sys.stderr)

    # -- the state machine ----------------------------------------------------------------
    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        self._phase_t0 = time.monotonic()
        self.panel.show()
        self.phase_changed.emit(phase)

    def _show(self, headline: str, detail: str = "", fraction: float | None = None,
              button: str | None = None) -> None:
        if headline != self.message:
            self.window.statusBar().showMessage(headline)
        self.message = headline
        self.panel.show_state(headline, detail, fraction, button)

    def _fail(self, message: str, hint: str, phase: str = "failed") -> None:
        self.timer.stop()
        w = self.window
        if self.recorder is not None and w.worker is not None:
            w.worker.stop_clip()
            self.recorder.close()
        self.window.view.set_message("")
        self._set_phase(phase)
        self._show(message, hint)
        if phase == "failed":
            print(f"parttrack: error: {message}", file=sys.stderr)
            if hint:
                print(f"parttrack: hint: {hint}", file=sys.stderr)

    def tick(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None and self.phase == "training":
            self.max_tick_lag_ms = max(self.max_tick_lag_ms, (now - self._last_tick) * 1e3 - self._tick_ms)
        self._last_tick = now
        getattr(self, f"_tick_{self.phase}", lambda: None)()

    def _tick_countdown(self) -> None:
        left = self.settings.countdown_s - (time.monotonic() - self._phase_t0)
        if left > 0:
            self.window.view.set_message(f"Recording in {int(left) + 1}…\n{MOVE_HINT}")
            self._show(f"get ready: recording starts in {int(left) + 1} s", MOVE_HINT, button="Cancel (T)")
            return
        w = self.window
        if w.worker is None or not w.worker_running:
            self._fail("the source stopped before the recording started", "open it again and press T")
            return
        w.worker.clip_error = None
        w.worker.start_clip(self.recorder)
        self._set_phase("recording")
        self._tick_recording()

    def _tick_recording(self) -> None:
        r, w = self.recorder, self.window
        error = w.worker.clip_error if w.worker is not None else None
        if error:
            self._fail(error, "check the disk space and the learn folder (--learn-dir)")
            return
        source_gone = w.worker is None or not w.worker_running
        if r.full or source_gone:
            self._end_recording()
            return
        s = self.settings
        w.view.set_message("")
        self._show(f"● recording {r.elapsed_s:.0f} s of {s.seconds:.0f} s ({r.frames} frames)", MOVE_HINT,
                   r.elapsed_s / s.seconds, button="Train on it now (T)")

    def _end_recording(self) -> None:
        w = self.window
        if w.worker is not None:
            w.worker.stop_clip()
        clip = self.recorder.close()
        if clip is None or self.recorder.frames < learn.MIN_CLIP_FRAMES:
            self._fail(f"the clip has {self.recorder.frames} frames; learning needs at least "
                       f"{learn.MIN_CLIP_FRAMES}", "record longer (--learn-seconds) with the source playing")
            return
        model = getattr(self.window, "model_path", None)
        init = model if model is not None and (Path(model) / "weights.npz").is_file() else None
        self.job = TrainingJob(clip, self.folder, self.settings, init=init)
        try:
            self.job.start()
        except OSError as exc:
            self._fail(f"cannot start the training process: {exc}", "")
            return
        print(f"parttrack: recorded {self.recorder.frames} frames to {clip}; training in a child process "
              f"(log {self.job.log_path})", file=sys.stderr)
        self._displayed_at_training = w.displayed
        self._set_phase("training")
        self._tick_training()

    def _tick_training(self) -> None:
        job = self.job
        p = job.progress()
        self.progress = p
        if p.step != self._last_step:
            self._last_step = p.step
            self.progress_reads += 1
        self.frames_while_training = self.window.displayed - self._displayed_at_training
        self.training_frame_counts.append(self.frames_while_training)
        if p.snapshot is not None:
            self.panel.show_snapshot(p.snapshot, f"masks at step {p.snapshot.stem.split('_')[-1].lstrip('0') or 0}: "
                                     "frame · parts · reconstruction")
        res = job.result()
        if res is None:
            self._show_training(p)
            return
        self.result = res
        if res.bundle is None:
            self._fail(res.message, "")
            return
        self.bundle = res.bundle
        print(f"parttrack: {res.message}", file=sys.stderr)
        self._set_phase("loading")
        self._show("loading the new model…", str(res.bundle))
        self._loaded = None
        self._loader = threading.Thread(target=self._load, args=(res.bundle,), name="learn-load", daemon=True)
        self._loader.start()

    def _show_training(self, p: TrainingProgress) -> None:
        s = self.settings
        if p.step == 0:
            self._show("training: starting…", f"clip {self.recorder.path} ({self.recorder.frames} frames)",
                       0.0, button="Stop training (T)")
            return
        budget = []
        if s.steps is not None:
            budget.append(p.step / s.steps)
        if s.minutes is not None:
            budget.append(p.elapsed_s / (s.minutes * 60))
        total = f" / {s.steps}" if s.steps is not None else ""
        loss = f" · loss {p.loss:.3f}" if p.loss is not None else ""
        head = "stopping training…" if self.job.stop_requested else f"training: step {p.step}{total}{loss}"
        warn = "".join(f"\n⚠ {f}" for f in p.findings)
        self._show(head, f"{format_duration(p.elapsed_s)} elapsed · ETA {format_duration(p.eta_s)} · "
                         f"live view: {self.frames_while_training} frames while training{warn}",
                   max(budget) if budget else None, button="Stop training (T)")

    def _load(self, path: Path) -> None:
        try:
            self._loaded = (path, self.make_runtime(path), None)
        except Exception as exc:  # a broken bundle: report it, keep the old model
            self._loaded = (path, None, exc)

    def _tick_loading(self) -> None:
        if self._loaded is None:
            return
        path, runtime, exc = self._loaded
        if runtime is None:
            msg = getattr(exc, "message", None) or str(exc)
            self._fail(f"the new model {path} does not load: {msg}", "")
            return
        self.timer.stop()
        self.window.swap_model(runtime, path)
        self._set_phase("done")
        k = len(runtime.meta.part_names)
        how = " (stopped early)" if self.result is not None and self.result.stopped_early else ""
        self._show(f"new model in use{how}: {path}",
                   f"{k} parts. Click a part in the legend to name it; "
                   f"`parttrack --model {path}` uses it again, `parttrack label {path}` edits it.")
        print(f"parttrack: new model in use: {path}")
        self.model_ready.emit(path)
