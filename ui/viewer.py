"""The live viewer: a PyQt6 window over a camera or a video file (with :mod:`ui.worker`, the
only modules importing Qt).

Threads (nothing but painting runs on the GUI thread):

* a **grabber** (:class:`tracker.capture.FrameGrabber`, a Python thread) reads the source
  into a one-frame :class:`tracker.capture.LatestSlot` (newest frame wins, so latency stays
  bounded by one inference; a file is paced by its timestamps or, with ``realtime=False``,
  read as fast as it is tracked);
* a **worker** (:class:`ui.worker.TrackingWorker`, moved to a ``QThread``) tracks the newest
  frame (``tracker.pipeline.OnlineTracker``), records it if asked and announces it with
  ``frame_ready``; the GUI collects only the newest result, so no backlog builds up;
* the **GUI** (:class:`ViewerWindow`) draws the overlay with :func:`tracker.overlay.draw_overlay`
  (the same code as the exported overlay video) at the size it is shown, and paints it
  letterboxed in :class:`VideoView`, keeping the video's aspect ratio at any window size.

A source that does not open or stops delivering (a camera unplugged) is reported in the
window (and on stderr) and the worker ends; the window stays usable (open another source).

Keyboard shortcuts are listed in :data:`SHORTCUTS` (shown by F1).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets
from PyQt6.QtCore import Qt

from parttrack.engine.errors import OutputError
from parttrack.tracker.capture import SourceInfo, spec_of
from parttrack.tracker.overlay import OverlayStyle, draw_overlay, legend_layout
from parttrack.ui.parts import PartsPanel
from parttrack.ui.worker import TrackingWorker, ViewFrame, without_parts

log = logging.getLogger(__name__)

#: (key, what it does) — the viewer's keyboard shortcuts, for the help box and the README.
SHORTCUTS = (
    ("Space", "pause / resume (at the end of a file: play it again; after a camera error: retry)"),
    ("← / →", "files: one frame back / forward (pauses); the seek bar below the video jumps"),
    ("M", "show / hide part masks"),
    ("A", "show / hide part axes"),
    ("S", "show / hide the skeleton (centres and joints)"),
    ("L", "show / hide the legend (click a part's name in it to rename the part)"),
    ("N", "parts panel: turn parts off (not drawn, not recorded), rename them (double-click)"),
    ("H", "show / hide the frames/s · latency · backend readout"),
    ("+ / -", "mask opacity up / down"),
    ("R", "start / stop recording tracks to CSV"),
    ("P", "save a snapshot PNG of the view"),
    ("T", "learn: record the subject, train a model on it, swap it in (again: stop early)"),
    ("C", "pick a camera"),
    ("O", "open a video file"),
    ("F11", "full screen"),
    ("F1", "this help"),
    ("Q / Esc", "quit"),
)


def crop_note(meta, src_h: int, src_w: int) -> str:
    """The status-bar note on the model's crop (:attr:`engine.bundle.BundleMeta.crop`) for
    frames of ``src_h × src_w``: where the model looks, or that its crop does not fit them;
    empty for a model of whole frames."""
    crop = getattr(meta, "crop", None)
    if crop is None:
        return ""
    box = meta.crop_for(src_h, src_w)
    if box is None:
        fw, fh = meta.crop_frame
        return f" · the model's crop is for {fw}×{fh} frames: it sees whole frames here"
    return " · model crop " + ",".join(map(str, box))


def default_make_runtime(path):
    """A runtime for a newly learnt bundle: ``engine.runtime.create_runtime(path)``."""
    from parttrack.engine.runtime import create_runtime

    return create_runtime(path, announce=True)


def to_qimage(image: np.ndarray) -> QtGui.QImage:
    """``(H, W, 3)`` uint8 RGB → an owning QImage (bytes-per-line given: odd widths are not
    4-byte aligned; ``.copy()`` detaches it from the numpy buffer)."""
    image = np.ascontiguousarray(image)
    h, w, _ = image.shape
    return QtGui.QImage(image.data, w, h, image.strides[0], QtGui.QImage.Format.Format_RGB888).copy()


def qimage_to_array(qimage: QtGui.QImage) -> np.ndarray:
    """A QImage (e.g. from ``widget.grab().toImage()``) → ``(H, W, 3)`` uint8 RGB copy."""
    img = qimage.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits().asarray(h * bpl), dtype=np.uint8).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


class VideoView(QtWidgets.QWidget):
    """Paints one image letterboxed (aspect ratio kept, black bars) and an optional message.

    Signals: ``resized()``; ``clicked(QPointF)``: a left click, in widget coordinates."""

    resized = QtCore.pyqtSignal()
    clicked = QtCore.pyqtSignal(QtCore.QPointF)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._image: QtGui.QImage | None = None
        self._message = ""
        self._aspect = 4 / 3
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_aspect(self, width: int, height: int) -> None:
        self._aspect = width / max(height, 1)
        self.updateGeometry()

    def target_rect(self) -> QtCore.QRect:
        """Where the video goes: the largest rectangle of the video's aspect ratio, centred."""
        w, h = self.width(), self.height()
        if w / max(h, 1) > self._aspect:
            tw, th = int(round(h * self._aspect)), h
        else:
            tw, th = w, int(round(w / self._aspect))
        return QtCore.QRect((w - tw) // 2, (h - th) // 2, max(tw, 1), max(th, 1))

    def set_image(self, image: QtGui.QImage | None) -> None:
        self._image = image
        self.update()

    def set_message(self, text: str) -> None:
        self._message = text
        self.update()

    @property
    def message(self) -> str:
        return self._message

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(960, int(round(960 / self._aspect)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(event.position())
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:
        p = QtGui.QPainter(self)
        p.fillRect(self.rect(), QtGui.QColor(0, 0, 0))
        if self._image is not None:
            p.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(self.target_rect(), self._image)
        if self._message:
            font = p.font()
            font.setPointSizeF(max(10.0, min(self.width(), self.height()) / 32))
            p.setFont(font)
            box = self.rect().adjusted(20, 0, -20, 0)
            flags = Qt.AlignmentFlag.AlignCenter.value | Qt.TextFlag.TextWordWrap.value
            text_rect = p.boundingRect(box, flags, self._message)
            band = QtCore.QRect(0, text_rect.top() - 12, self.width(), text_rect.height() + 24)
            p.fillRect(band, QtGui.QColor(0, 0, 0, 190))
            p.setPen(QtGui.QColor(255, 255, 255))
            p.drawText(box, flags, self._message)
        p.end()


class ViewerWindow(QtWidgets.QMainWindow):
    """The viewer's main window.

    Args:
        runtime: inference runtime (``engine.runtime.Runtime``); part names and colours come
            from ``runtime.meta``.
        source: an opened ``VideoSource``, a camera index or a file path; None = open one later
            (:meth:`open_camera`, :meth:`open_file`).
        make_tracker: see :class:`TrackingWorker` (tests inject fakes).
        loop, realtime, max_frames: see :class:`TrackingWorker`.
        style: initial :class:`tracker.overlay.OverlayStyle`.
        out_dir: where recordings and snapshots go (created when first needed).
        record: a CSV path to record tracks to from the first frame on.
        close_at_end: close the window when the stream ends (``--max-frames``).
        model_path: the bundle folder ``runtime`` was built from (renaming parts writes it).
        make_runtime: ``path -> Runtime`` for a newly learnt bundle (default
            ``engine.runtime.create_runtime(path)``); called off the GUI thread.
        learn_settings: :class:`tracker.learn.LearnSettings` of the Learn key (default: its defaults).
        learn: start learning as soon as the source opens (``--learn``).
    """

    def __init__(self, runtime, source=None, *, make_tracker=None, loop: bool = False,
                 realtime: bool = True, max_frames: int | None = None, style: OverlayStyle | None = None,
                 out_dir: str | Path = ".", record: str | Path | None = None,
                 close_at_end: bool = False, model_path: str | Path | None = None, make_runtime=None,
                 learn_settings=None, learn: bool = False) -> None:
        super().__init__()
        self.model_path = Path(model_path) if model_path is not None else None
        self._learn_at_open = bool(learn)
        self.runtime = runtime
        meta = runtime.meta
        self.part_names = tuple(meta.part_names)
        self.part_colors = tuple(tuple(c) for c in meta.part_colors)
        self.make_tracker = make_tracker
        self.loop, self.realtime, self.max_frames = loop, realtime, max_frames
        self.style = style or OverlayStyle()
        self.out_dir = Path(out_dir)
        self._record_at_start = Path(record) if record is not None else None
        self.close_at_end = close_at_end
        self.backend_line = self._backend_line(runtime)
        self.worker: TrackingWorker | None = None
        self.thread: QtCore.QThread | None = None
        self.info: SourceInfo | None = None
        self.last: ViewFrame | None = None
        self.rendered: np.ndarray | None = None
        self.ended = False
        self.displayed = 0
        self.last_error: tuple[str, str] | None = None
        self._latency_ms: float | None = None
        self._spec = None
        self._finished_workers = []

        self.setWindowTitle("parttrack")
        self.view = VideoView(self)
        self.view.resized.connect(self.render)
        self.view.clicked.connect(self._view_clicked)
        self._drawn: tuple = ((), None)   # the names and poses of the legend last drawn
        self.setCentralWidget(self.view)
        self._build_actions()
        from parttrack.tracker.learn import LearnSettings
        from parttrack.ui.learn import LearnController

        self.learner = LearnController(self, learn_settings or LearnSettings(),
                                       make_runtime or default_make_runtime)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.learner.panel)
        self.hidden_parts: frozenset[int] = frozenset()
        self.parts_panel = PartsPanel(self)
        self.parts_panel.set_parts(self.part_names, self.part_colors)
        self.parts_panel.toggled.connect(self.set_part_enabled)
        self.parts_panel.renamed.connect(self.rename_part)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.parts_panel)
        self.parts_panel.setVisible(False)
        self.statusBar().showMessage("no source: press C to pick a camera or O to open a file")
        if source is not None:
            self.open_source(source)

    # -- set-up -----------------------------------------------------------------------
    @staticmethod
    def _backend_line(runtime) -> str:
        try:
            text = runtime.describe()
        except Exception:  # describe() is informational only
            text = ""
        return text or f"{getattr(runtime, 'name', '?')} ({getattr(runtime, 'device', '?')})"

    def _build_actions(self) -> None:
        bar = self.addToolBar("controls")
        bar.setMovable(False)
        bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.actions_by_name: dict[str, QtGui.QAction] = {}

        def add(name, text, keys, slot, checkable=False, checked=False, in_bar=True):
            act = QtGui.QAction(text, self)
            act.setShortcuts([QtGui.QKeySequence(k) for k in keys])
            act.setToolTip(f"{text} ({' / '.join(keys)})")
            act.setCheckable(checkable)
            if checkable:
                act.setChecked(checked)
                act.toggled.connect(slot)
            else:
                act.triggered.connect(slot)
            self.addAction(act)  # shortcuts work even with the toolbar hidden
            if in_bar:
                bar.addAction(act)
            self.actions_by_name[name] = act
            return act

        s = self.style
        add("pause", "Pause", ["Space"], self.set_paused, checkable=True)
        bar.addSeparator()
        add("masks", "Masks", ["M"], lambda on: self.set_show("show_masks", on), True, s.show_masks)
        add("axes", "Axes", ["A"], lambda on: self.set_show("show_axes", on), True, s.show_axes)
        add("skeleton", "Skeleton", ["S"], lambda on: self.set_show("show_skeleton", on), True, s.show_skeleton)
        add("legend", "Legend", ["L"], lambda on: self.set_show("show_legend", on), True, s.show_legend)
        add("parts", "Parts", ["N"], self._toggle_parts_panel)
        add("hud", "Readout", ["H"], lambda on: self.set_show("show_hud", on), True, s.show_hud)
        self.opacity_slider = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(s.mask_opacity * 100)))
        self.opacity_slider.setFixedWidth(80)
        self.opacity_slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.opacity_slider.setToolTip("mask opacity (+ / -)")
        self.opacity_slider.valueChanged.connect(lambda v: self.set_opacity(v / 100))
        bar.addWidget(QtWidgets.QLabel(" Opacity "))
        bar.addWidget(self.opacity_slider)
        add("opacity_up", "Opacity +", ["+", "="], lambda: self.set_opacity(self.style.mask_opacity + 0.1), in_bar=False)
        add("opacity_down", "Opacity -", ["-"], lambda: self.set_opacity(self.style.mask_opacity - 0.1), in_bar=False)
        bar.addSeparator()
        add("record", "Record", ["R"], self._toggle_recording, checkable=True)
        add("snapshot", "Snapshot", ["P"], self._snapshot_clicked)
        add("learn", "Learn", ["T"], self.toggle_learning)
        bar.addSeparator()
        add("camera", "Camera", ["C"], self._pick_camera)
        add("open", "Open", ["O", "Ctrl+O"], self._pick_file)
        add("fullscreen", "Full screen", ["F11"], self._toggle_fullscreen, in_bar=False)
        add("help", "Keys", ["F1"], self._show_help)
        add("quit", "Quit", ["Q", "Esc", "Ctrl+Q"], self.close, in_bar=False)
        add("back", "Frame back", ["Left"], lambda: self.step_frame(-1), in_bar=False)
        add("forward", "Frame forward", ["Right"], lambda: self.step_frame(1), in_bar=False)
        self.seek_bar = QtWidgets.QSlider(Qt.Orientation.Horizontal)
        self.seek_bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.seek_bar.setToolTip("seek (← / → step one frame)")
        self.seek_bar.sliderReleased.connect(lambda: self.seek(self.seek_bar.value()))
        self.seek_bar.actionTriggered.connect(self._seek_bar_action)
        self.seek_label = QtWidgets.QLabel("")
        self.seek_toolbar = QtWidgets.QToolBar("seek", self)
        self.seek_toolbar.setMovable(False)
        self.seek_toolbar.addWidget(self.seek_bar)
        self.seek_toolbar.addWidget(self.seek_label)
        self.addToolBar(Qt.ToolBarArea.BottomToolBarArea, self.seek_toolbar)
        self.seek_toolbar.setVisible(False)

    def initial_size(self) -> QtCore.QSize:
        """The size hint, shrunk (keeping the video's aspect) to 85 % of the screen."""
        hint = self.sizeHint()
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            return hint
        avail = screen.availableGeometry()
        f = min(1.0, 0.85 * avail.width() / max(hint.width(), 1), 0.85 * avail.height() / max(hint.height(), 1))
        return QtCore.QSize(int(hint.width() * f), int(hint.height() * f))

    # -- sources -------------------------------------------------------------------------
    def open_source(self, source) -> None:
        """Stop the current worker (if any) and start tracking ``source`` (an opened
        ``VideoSource``, a camera index or a file path). Failures show in the window."""
        self.stop_worker()
        self.ended = False
        self.last = None
        self.rendered = None
        self.last_error = None
        self.view.set_image(None)
        self._latency_ms = None
        self._spec = source if isinstance(source, (int, str, Path)) else spec_of(source)
        if getattr(source, "width", None) and getattr(source, "height", None):
            self.view.set_aspect(source.width, source.height)  # known now: size the window for it
        name = getattr(source, "name", None) or (f"camera {source}" if isinstance(source, int) else str(source))
        self.view.set_message(f"opening {name}…")
        self.worker = TrackingWorker(source, self.runtime, make_tracker=self.make_tracker, loop=self.loop,
                                     realtime=self.realtime, max_frames=self.max_frames)
        self.thread = QtCore.QThread(self)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.opened.connect(self._on_opened)
        self.worker.frame_ready.connect(self._on_frame_ready)
        self.worker.failed.connect(self._on_failed)
        self.worker.hidden_parts = self.hidden_parts
        self.worker.ended.connect(self._on_ended)
        self.worker.finished.connect(self.thread.quit)
        if self.actions_by_name["pause"].isChecked():
            self.worker.set_paused(True)
        if self._record_at_start is not None:  # before the first frame, so none is missed
            path, self._record_at_start = self._record_at_start, None
            self.start_recording(path)
        self.thread.start()

    def open_camera(self, spec: int | str) -> None:
        """Open a camera index (or a stream URL / device path)."""
        self.open_source(int(spec) if isinstance(spec, int) or str(spec).isdigit() else str(spec))

    def open_file(self, path: str | Path) -> None:
        self.open_source(Path(path))

    def stop_worker(self, timeout_s: float = 5.0) -> bool:
        """Stop the worker and its thread, closing any recording; True when it has ended."""
        worker, thread = self.worker, self.thread
        if worker is None:
            return True
        self._stop_recording_quietly()
        worker.stop()
        ok = True
        if thread is not None:
            thread.quit()
            ok = thread.wait(int(timeout_s * 1000))
            if ok:
                thread.deleteLater()
            else:
                log.warning("the tracking thread did not stop within %.1f s", timeout_s)
                self._finished_workers.append((worker, thread))  # keep alive until it ends
        for sig in (worker.opened, worker.frame_ready, worker.failed, worker.ended):
            try:
                sig.disconnect()
            except TypeError:
                pass
        self.worker = self.thread = None
        return ok

    @property
    def worker_running(self) -> bool:
        return bool(self.thread is not None and self.thread.isRunning())

    def _pick_camera(self) -> None:
        """C: pick a camera by name (:func:`ui.cameras.list_cameras`), or type an index, a
        stream URL or a device path."""
        from parttrack.ui.cameras import parse_choice

        cameras = self.list_cameras()
        labels = [c.label() for c in cameras]
        current = next((i for i, c in enumerate(cameras) if c.spec == self._spec), 0)
        text, ok = QtWidgets.QInputDialog.getItem(
            self, "Camera", "camera (or type an index, a stream URL or a device path):", labels, current, True)
        choice = parse_choice(text, cameras) if ok else None
        if choice is not None:
            self.open_source(choice)

    def list_cameras(self):
        """The cameras the picker offers (tests replace it with fake devices)."""
        from parttrack.ui.cameras import list_cameras

        return list_cameras()

    def _pick_file(self) -> None:
        start = str(self._spec.parent) if isinstance(self._spec, Path) else str(Path.cwd())
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open video", start, "Videos (*.mp4 *.mov *.avi *.mkv *.webm *.m4v *.mpg *.mpeg);;All files (*)")
        if path:
            self.open_file(path)

    # -- worker signals (queued to the GUI thread; a stopped worker's late signals are ignored)
    def _from_old_worker(self) -> bool:
        sender = self.sender()
        return sender is not None and sender is not self.worker

    @QtCore.pyqtSlot(object)
    def _on_opened(self, info: SourceInfo) -> None:
        if self._from_old_worker():
            return
        self.info = info
        self.view.set_aspect(info.width, info.height)
        self.view.set_message("")
        fps = f", {info.fps:.3g} frames/s" if info.fps else ""
        self.setWindowTitle(f"parttrack — {info.name}")
        count = getattr(self.worker, "source", None) and getattr(self.worker.source, "frame_count", None)
        seekable = bool(self.worker is not None and self.worker.seekable and count)
        self.seek_toolbar.setVisible(seekable)
        if seekable:
            self.seek_bar.setRange(0, int(count) - 1)
        crop = crop_note(getattr(self.runtime, "meta", None), info.height, info.width)
        self.statusBar().showMessage(f"{info.name}: {info.width}×{info.height}{fps} · {self.backend_line}{crop}")
        if self._learn_at_open:
            self._learn_at_open = False
            self.learner.start()

    @QtCore.pyqtSlot()
    def _on_frame_ready(self) -> None:
        if self.worker is None or self._from_old_worker():
            return
        vf = self.worker.latest()
        if vf is None:
            return
        self.last = vf
        self.displayed += 1
        self.render()
        if self.seek_toolbar.isVisible() and not self.seek_bar.isSliderDown():
            index = vf.tracked.frame.index
            self.seek_bar.blockSignals(True)
            self.seek_bar.setValue(index)
            self.seek_bar.blockSignals(False)
            self.seek_label.setText(f" {index} / {self.seek_bar.maximum()} ")
        lat = (time.monotonic() - vf.grabbed_at) * 1e3
        self._latency_ms = lat if self._latency_ms is None else 0.9 * self._latency_ms + 0.1 * lat

    @QtCore.pyqtSlot(str, str)
    def _on_failed(self, message: str, hint: str) -> None:
        if self._from_old_worker():
            return
        self.last_error = (message, hint)
        text = message + (f"\n{hint}" if hint else "")
        self.view.set_message(text)
        self.statusBar().showMessage(message + (" — Space retries" if self._spec is not None else ""))
        print(f"parttrack: error: {message}", file=sys.stderr)
        if hint:
            print(f"parttrack: hint: {hint}", file=sys.stderr)
        self._stop_recording_quietly()

    @QtCore.pyqtSlot(str)
    def _on_ended(self, message: str) -> None:
        if self._from_old_worker():
            return
        self.ended = True
        self._stop_recording_quietly()
        self.statusBar().showMessage(f"{message} — Space plays it again, O opens another file")
        if self.close_at_end:
            QtCore.QTimer.singleShot(0, self.close)

    # -- display ----------------------------------------------------------------------------
    def hud_lines(self) -> list[str]:
        """The readout: frames/s, latency, backend, source position, recording state."""
        fps = self.worker.fps if self.worker is not None else 0.0
        lines = []
        lat = f"  latency {self._latency_ms:.0f} ms" if self._latency_ms is not None else ""
        lines.append(f"{fps:.1f} frames/s{lat}")
        lines.append(self.backend_line)
        if self.last is not None:
            f = self.last.tracked.frame
            lines.append(f"frame {f.index}  {f.time_s:.2f} s")
        w = self.worker
        if w is not None and w.recording is not None:
            lines.append(f"REC {w.recording.path.name} ({w.recording.rows // max(len(self.part_names), 1)} frames)")
        if self.actions_by_name["pause"].isChecked():
            lines.append("PAUSED")
        learner = getattr(self, "learner", None)
        if learner is not None and learner.phase == "recording" and learner.recorder is not None:
            r = learner.recorder
            lines.append(f"LEARN: recording {r.elapsed_s:.0f}/{r.seconds:.0f} s")
        elif learner is not None and learner.phase == "training":
            lines.append(f"LEARN: training step {learner.progress.step}")
        return lines

    def render_array(self, scale: float | None = None) -> np.ndarray | None:
        """Draw the overlay on the last tracked frame (``scale`` None = the size it is shown)."""
        if self.last is None:
            return None
        tf = self.last.tracked
        img = tf.frame.image
        h, w, _ = img.shape
        if scale is None:
            rect = self.view.target_rect()
            dpr = self.view.devicePixelRatioF()
            scale = max(0.05, min(rect.width() * dpr / w, rect.height() * dpr / h))
        colors, names = self.part_colors, self.part_names
        poses, labels = tf.smoothed, tf.labels
        if poses is not None and poses.num_parts != len(names):  # a frame of the model before a swap
            colors, names = (), ()
        elif self.hidden_parts:
            poses = without_parts(poses, self.hidden_parts)
            if labels is not None:
                labels = np.where(np.isin(labels, list(self.hidden_parts)), 0, labels).astype(np.uint8)
        self._drawn = (names, poses)
        return draw_overlay(img, labels=labels, poses=poses, joints=getattr(tf, "joints", None),
                            colors=colors, names=names, style=self.style,
                            hud=self.hud_lines(), scale=scale)

    def render(self) -> None:
        """Redraw the last frame (new frame, toggles, resize)."""
        out = self.render_array()
        if out is None:
            return
        self.rendered = out
        qimg = to_qimage(out)
        qimg.setDevicePixelRatio(self.view.devicePixelRatioF())
        self.view.set_image(qimg)

    # -- controls ---------------------------------------------------------------------------
    def set_show(self, field: str, on: bool) -> None:
        """Switch one :class:`OverlayStyle` flag (``show_masks``, ``show_axes``...)."""
        self.style = replace(self.style, **{field: bool(on)})
        name = {"show_masks": "masks", "show_axes": "axes", "show_skeleton": "skeleton",
                "show_legend": "legend", "show_hud": "hud"}.get(field)
        act = self.actions_by_name.get(name)
        if act is not None and act.isChecked() != bool(on):
            act.setChecked(bool(on))
        self.render()

    def set_opacity(self, value: float) -> None:
        value = float(min(1.0, max(0.0, round(value, 2))))
        self.style = replace(self.style, mask_opacity=value)
        if self.opacity_slider.value() != int(round(value * 100)):
            self.opacity_slider.setValue(int(round(value * 100)))
        self.statusBar().showMessage(f"mask opacity {value:.2f}", 1500)
        self.render()

    def set_paused(self, paused: bool) -> None:
        act = self.actions_by_name["pause"]
        failed = self.last_error is not None and not self.worker_running
        if (self.ended or failed) and self._spec is not None:  # Space: play again / retry
            act.blockSignals(True)
            act.setChecked(False)
            act.blockSignals(False)
            self.open_source(self._spec)
            return
        if act.isChecked() != bool(paused):
            act.setChecked(bool(paused))
            return
        if self.worker is not None:
            self.worker.set_paused(bool(paused))
        self.render()

    def seek(self, index: int) -> None:
        """Files: continue at source frame ``index`` (paused: show that frame)."""
        w = self.worker
        if w is None or not w.seekable:
            return
        index = max(0, min(int(index), self.seek_bar.maximum()))
        if self.actions_by_name["pause"].isChecked():
            w.step(index)
        else:
            w.seek(index)

    def step_frame(self, delta: int) -> None:
        """Files: pause and show the frame ``delta`` frames from the one shown (← / →)."""
        w = self.worker
        if w is None or not w.seekable:
            self.statusBar().showMessage("frame stepping works on video files", 2000)
            return
        if not self.actions_by_name["pause"].isChecked():
            self.set_paused(True)
        current = self.last.tracked.frame.index if self.last is not None else 0
        self.seek(current + int(delta))

    def _seek_bar_action(self, action: int) -> None:
        if action != QtWidgets.QAbstractSlider.SliderAction.SliderMove.value:  # page clicks, arrows
            QtCore.QTimer.singleShot(0, lambda: self.seek(self.seek_bar.sliderPosition()))

    def toggle_pause(self) -> None:
        self.actions_by_name["pause"].toggle()

    def start_recording(self, path: str | Path | None = None) -> Path | None:
        """Record tracks (smoothed poses, batch CSV format) to ``path`` (default
        ``OUT_DIR/<source>-<date>-<time>.tracks.csv``). Errors show in the window."""
        from parttrack.tracker.io import TracksCSVWriter

        if self.worker is None:
            self.statusBar().showMessage("nothing to record: open a camera (C) or a file (O) first")
            self._set_record_checked(False)
            return None
        if path is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            name = self.info.name if self.info is not None else "parttrack"
            path = self.out_dir / f"{name}-{stamp}.tracks.csv"
        try:
            writer = TracksCSVWriter(path, self.part_names)
        except OutputError as exc:
            self._on_failed(exc.message, exc.hint or "")
            self._set_record_checked(False)
            return None
        self.worker.start_recording(writer)
        self._set_record_checked(True)
        self.statusBar().showMessage(f"recording tracks to {writer.path}")
        print(f"parttrack: recording tracks to {writer.path}", file=sys.stderr)
        return writer.path

    def stop_recording(self) -> Path | None:
        """Stop recording; returns the CSV path (None if nothing was being recorded)."""
        writer = self.worker.stop_recording() if self.worker is not None else None
        self._set_record_checked(False)
        if writer is None:
            return None
        frames = writer.rows // max(len(self.part_names), 1)
        self.statusBar().showMessage(f"saved {frames} frames of tracks to {writer.path}")
        print(f"parttrack: saved {frames} frames of tracks to {writer.path}", file=sys.stderr)
        return writer.path

    def _stop_recording_quietly(self) -> None:
        if self.worker is not None and self.worker.recording is not None:
            self.stop_recording()

    def _set_record_checked(self, on: bool) -> None:
        act = self.actions_by_name["record"]
        act.blockSignals(True)
        act.setChecked(on)
        act.blockSignals(False)

    def _toggle_recording(self, on: bool) -> None:
        if on:
            self.start_recording()
        else:
            self.stop_recording()

    def save_snapshot(self, path: str | Path | None = None) -> Path | None:
        """Save the view as shown (overlay included) as PNG; default
        ``OUT_DIR/<source>-<frame>.png``. Returns the path, None when nothing is shown."""
        image = self.rendered
        if image is None:
            self.statusBar().showMessage("no frame to save yet")
            return None
        if path is None:
            index = self.last.tracked.frame.index if self.last is not None else 0
            name = self.info.name if self.info is not None else "parttrack"
            path = self.out_dir / f"{name}-{index:06d}.png"
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ok = cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        except (OSError, cv2.error) as exc:
            ok, why = False, str(exc)
        else:
            why = "cannot write the file"
        if not ok:
            self._on_failed(f"cannot save the snapshot {path}: {why}", "choose a writable folder with --out DIR")
            return None
        self.statusBar().showMessage(f"saved snapshot {path}")
        return path

    def _snapshot_clicked(self) -> None:
        self.save_snapshot()

    # -- parts ------------------------------------------------------------------------------
    def legend_rows(self) -> list[tuple[int, QtCore.QRectF]]:
        """The rows of the legend drawn on the video: ``(part id, rectangle in the view's
        widget coordinates)``; empty when no legend is shown."""
        if self.rendered is None:
            return []
        h, w, _ = self.rendered.shape
        names, poses = self._drawn
        r = self.view.target_rect()
        sx, sy = r.width() / w, r.height() / h
        return [(part, QtCore.QRectF(r.x() + x * sx, r.y() + y * sy, bw * sx, bh * sy))
                for part, (x, y, bw, bh) in legend_layout((h, w), names, poses, self.style)]

    def part_at(self, pos: QtCore.QPointF) -> int | None:
        """The part whose legend row is at ``pos`` (view widget coordinates), or None."""
        for part, rect in self.legend_rows():
            if rect.contains(pos):
                return part
        return None

    def _view_clicked(self, pos: QtCore.QPointF) -> None:
        part = self.part_at(pos)
        if part is not None:   # a click on a part's name in the legend: rename it in place
            self.parts_panel.edit(part)
            self.statusBar().showMessage(f"rename part {part}: type its name, Enter saves it in the model")

    def _toggle_parts_panel(self) -> None:
        self.parts_panel.setVisible(not self.parts_panel.isVisible())

    def set_part_enabled(self, part_id: int, on: bool) -> None:
        """Draw and record part ``part_id`` (1-based) or not (its recorded rows then carry no
        pose: see :func:`ui.worker.without_parts`)."""
        hidden = set(self.hidden_parts)
        (hidden.discard if on else hidden.add)(int(part_id))
        self.hidden_parts = frozenset(hidden)
        if self.worker is not None:
            self.worker.hidden_parts = self.hidden_parts
        item = self.parts_panel.item(part_id)
        if item is not None and (item.checkState() == Qt.CheckState.Checked) != bool(on):
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.render()

    def rename_part(self, part_id: int, name: str) -> Path | None:
        """Rename part ``part_id`` (1-based) in the view and in the bundle's metadata (as
        ``parttrack label --name``); returns the bundle written, None when there is none to
        write (the name then holds for this session only). Errors show in the status bar."""
        from parttrack.engine.bundle import load_bundle, write_onnx_meta
        from parttrack.engine.errors import ParttrackError

        names = list(self.part_names)
        if not 1 <= part_id <= len(names):
            return None
        names[part_id - 1] = str(name)
        self.part_names = tuple(names)
        item = self.parts_panel.item(part_id)
        if item is not None and item.text() != name:
            self.parts_panel.set_parts(self.part_names, self.part_colors, self.hidden_parts)
        self.render()
        if self.model_path is None:
            self.statusBar().showMessage(f"part {part_id} is now {name!r} (no model folder to save it in)")
            return None
        try:
            bundle = load_bundle(self.model_path)
            write_onnx_meta(bundle.onnx_path, bundle.meta.with_names({part_id: str(name)}))
        except (ParttrackError, OSError) as exc:
            msg = getattr(exc, "message", None) or str(exc)
            self.statusBar().showMessage(f"cannot save the name in {self.model_path}: {msg}")
            print(f"parttrack: error: cannot save the part name in {self.model_path}: {msg}", file=sys.stderr)
            return None
        self.statusBar().showMessage(f"part {part_id} is now {name!r}; saved in {bundle.path}")
        print(f"parttrack: part {part_id} renamed {name!r} in {bundle.path}", file=sys.stderr)
        return bundle.path

    # -- learning ---------------------------------------------------------------------------
    def toggle_learning(self) -> None:
        """The Learn key (see :meth:`ui.learn.LearnController.toggle`)."""
        self.learner.toggle()

    def swap_model(self, runtime, model_path: str | Path | None = None) -> None:
        """Track with ``runtime`` from the next frame on, without reopening the source. A
        recording of tracks is closed first (its columns belong to the old parts)."""
        self._stop_recording_quietly()
        self.runtime = runtime
        self.model_path = Path(model_path) if model_path is not None else None
        meta = runtime.meta
        self.part_names = tuple(meta.part_names)
        self.part_colors = tuple(tuple(c) for c in meta.part_colors)
        self.backend_line = self._backend_line(runtime)
        self.hidden_parts = frozenset()
        self.parts_panel.set_parts(self.part_names, self.part_colors)
        if self.worker is not None:
            self.worker.hidden_parts = self.hidden_parts
            self.worker.swap_runtime(runtime)
        self.statusBar().showMessage(f"now tracking with {model_path or 'the new model'} · {self.backend_line}")

    def _toggle_fullscreen(self) -> None:
        self.showNormal() if self.isFullScreen() else self.showFullScreen()

    def _show_help(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in SHORTCUTS)
        QtWidgets.QMessageBox.information(self, "parttrack keys", f"<table>{rows}</table>")

    # -- summary / closing ------------------------------------------------------------------
    def summary(self) -> str:
        """One line: frames tracked, frames/s, dropped frames, latency (for the terminal)."""
        w = self._stats_worker
        if w is None or w.processed == 0:
            return "viewer: no frames tracked"
        span = (w.last_done_at - w.first_done_at) if w.processed > 1 else 0.0
        rate = (w.processed - 1) / span if span > 0 else 0.0
        lat = f", latency ≈ {self._latency_ms:.0f} ms" if self._latency_ms is not None else ""
        return (f"viewer: {w.processed} frames tracked at {rate:.1f} frames/s, {w.dropped} dropped"
                f"{lat}; {self.backend_line}")

    @property
    def _stats_worker(self):
        return self.worker or getattr(self, "_last_worker", None)

    def closeEvent(self, event) -> None:
        self.learner.shutdown()
        self._last_worker = self.worker
        self.stop_worker()
        super().closeEvent(event)
