"""The live viewer: a PyQt6 window over a camera or a video file (the only module importing Qt).

Threads (nothing but painting runs on the GUI thread):

* a **grabber** (Python thread, :class:`FrameGrabber`) reads the source. A camera is read as
  fast as it delivers; a file is paced by its own timestamps (``realtime``) or read only as
  fast as tracking consumes it (``realtime=False``: every frame is tracked, none dropped).
  Frames go into a :class:`LatestSlot` holding **one** frame: a newer frame replaces an
  unconsumed one (counted as dropped), so the latency stays bounded by one inference when
  inference is slower than the camera — frames are never queued.
* a **worker** (:class:`TrackingWorker`, moved to a ``QThread``) takes the newest frame,
  runs inference + online Kalman smoothing (``tracker.pipeline.OnlineTracker.step``),
  writes the smoothed poses to the recording CSV if one is open, and announces the result
  with ``frame_ready``. The GUI collects only the newest result (:meth:`TrackingWorker.latest`),
  so a busy GUI never builds up a backlog of signals either.
* the **GUI** (:class:`ViewerWindow`) draws the overlay with :func:`ui.overlay.draw_overlay`
  (the same code as the exported overlay video) at the size it is shown, and paints it
  letterboxed in :class:`VideoView`, keeping the video's aspect ratio at any window size.

A source that does not open or stops delivering (a camera unplugged) is reported in the
window (and on stderr) and the worker ends; the window stays usable (open another source).

Keyboard shortcuts are listed in :data:`SHORTCUTS` (shown by F1).
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PyQt6 import QtCore, QtGui, QtWidgets
from PyQt6.QtCore import Qt

from engine.errors import InputError, OutputError, ParttrackError
from ui.overlay import OverlayStyle, draw_overlay

log = logging.getLogger(__name__)

#: (key, what it does) — the viewer's keyboard shortcuts, for the help box and the README.
SHORTCUTS = (
    ("Space", "pause / resume (at the end of a file: play it again; after a camera error: retry)"),
    ("M", "show / hide part masks"),
    ("A", "show / hide part axes"),
    ("S", "show / hide the skeleton (centres and joints)"),
    ("L", "show / hide the legend"),
    ("H", "show / hide the frames/s · latency · backend readout"),
    ("+ / -", "mask opacity up / down"),
    ("R", "start / stop recording tracks to CSV"),
    ("P", "save a snapshot PNG of the view"),
    ("C", "pick a camera"),
    ("O", "open a video file"),
    ("F11", "full screen"),
    ("F1", "this help"),
    ("Q / Esc", "quit"),
)


# ============================================================================ plumbing
@dataclass(frozen=True)
class Grabbed:
    """A frame taken from the source, with the monotonic time it was taken."""

    frame: object  # tracker.core.Frame
    grabbed_at: float


@dataclass(frozen=True)
class StreamEnd:
    """The source ended (``error`` None) or failed (``error`` an exception)."""

    error: BaseException | None = None


class LatestSlot:
    """A thread-safe mailbox holding at most one item; the newest item wins.

    ``put`` replaces an item nobody took yet (counted in :attr:`dropped`) unless
    ``wait=True``, which blocks until the slot is empty (no frame dropped).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item = None
        self._full = False
        self._closed = False
        self.dropped = 0

    def put(self, item, *, wait: bool = False) -> bool:
        """Store ``item``; returns False if the slot was closed."""
        with self._cond:
            while wait and self._full and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify_all()
            return True

    def take(self, timeout: float | None = None):
        """The item (emptying the slot), or None after ``timeout`` seconds / when closed."""
        with self._cond:
            if not self._full and not self._closed:
                self._cond.wait(timeout)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """Wake every waiter; later puts are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class FrameGrabber:
    """Reads a :class:`tracker.sources.VideoSource` on its own thread into a :class:`LatestSlot`.

    Args:
        source: an opened source (the grabber closes it when it ends).
        slot: where frames go; a final :class:`StreamEnd` follows the last frame (after the
            last frame was taken, so it is never lost).
        realtime: for files, hand frames out at the pace of their timestamps (newest wins);
            False: wait for each frame to be taken (every frame tracked). Cameras are always
            read as fast as they deliver, newest wins.
    """

    def __init__(self, source, slot: LatestSlot, *, realtime: bool = True) -> None:
        self.source, self.slot = source, slot
        self.live = bool(getattr(source, "is_live", False))
        self.realtime = realtime
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._run, name=f"grab-{source.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._running.set()
        self.slot.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def set_paused(self, paused: bool) -> None:
        """Pause reading a file (its clock stops too). Cameras keep being read (and dropped),
        so that resuming shows a current image, not one buffered by the driver."""
        if paused and not self.live:
            self._running.clear()
        else:
            self._running.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        end = StreamEnd()
        clock0, media0 = None, None
        try:
            for frame in self.source:
                if self._stop.is_set():
                    return
                if not self._running.is_set():
                    t_pause = time.monotonic()
                    self._running.wait()
                    if clock0 is not None:
                        clock0 += time.monotonic() - t_pause
                    if self._stop.is_set():
                        return
                if self.live or not self.realtime:
                    ok = self.slot.put(Grabbed(frame, time.monotonic()), wait=not self.live)
                else:
                    if clock0 is None:
                        clock0, media0 = time.monotonic(), frame.time_s
                    due = clock0 + (frame.time_s - media0)
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                    ok = self.slot.put(Grabbed(frame, time.monotonic()))
                if not ok:
                    return
            if getattr(self.source, "error", None):
                end = StreamEnd(InputError(f"{self.source.name}: {self.source.error}",
                                           "the file is damaged after this point; re-encode it"))
        except ParttrackError as exc:
            end = StreamEnd(exc)
        except Exception as exc:  # a bug or an unexpected library error: keep the window alive
            log.error("reading %s failed:\n%s", self.source.name, traceback.format_exc())
            end = StreamEnd(exc)
        finally:
            try:
                self.source.close()
            except Exception:  # pragma: no cover - closing must not mask the real error
                pass
        self.slot.put(end, wait=True)


@dataclass(frozen=True)
class SourceInfo:
    """What the window needs to know about an opened source."""

    name: str
    width: int
    height: int
    fps: float | None
    is_live: bool
    spec: object  # camera index (int) or file path (Path) to reopen; None if unknown


@dataclass(frozen=True)
class ViewFrame:
    """One tracked frame on its way to the screen.

    Attributes:
        tracked: ``tracker.pipeline.TrackedFrame`` (frame, raw, smoothed, labels, joints).
        grabbed_at: monotonic time the frame was taken from the source (s).
        done_at: monotonic time tracking finished (s).
        step_ms: inference + smoothing time of this frame (ms).
    """

    tracked: object
    grabbed_at: float
    done_at: float
    step_ms: float


def _default_tracker(runtime, src_h: int, src_w: int):
    from tracker.pipeline import OnlineTracker

    return OnlineTracker(runtime, src_h, src_w)


def _spec_of(source):
    if hasattr(source, "index") and getattr(source, "is_live", False):
        return int(source.index)
    return getattr(source, "path", None)


class TrackingWorker(QtCore.QObject):
    """Capture + inference + online smoothing, off the GUI thread.

    Args:
        source: an opened ``VideoSource``, or a spec for :func:`tracker.sources.open_source`
            (camera index or path), opened on the worker thread.
        runtime: the inference runtime (``engine.runtime.Runtime``); ``.meta`` gives the part
            names and colours.
        make_tracker: ``(runtime, src_h, src_w) -> tracker`` with ``.step(Frame) ->
            TrackedFrame``; default ``tracker.pipeline.OnlineTracker``. Tests inject fakes here.
        loop: reopen files at the end (times keep increasing).
        realtime: see :class:`FrameGrabber`.
        max_frames: end after tracking this many frames (None: no limit).

    Signals:
        opened(SourceInfo), frame_ready() (collect with :meth:`latest`),
        failed(message, hint), ended(message), finished().
    """

    opened = QtCore.pyqtSignal(object)
    frame_ready = QtCore.pyqtSignal()
    failed = QtCore.pyqtSignal(str, str)
    ended = QtCore.pyqtSignal(str)
    finished = QtCore.pyqtSignal()

    def __init__(self, source, runtime, *, make_tracker=None, loop: bool = False, realtime: bool = True,
                 max_frames: int | None = None) -> None:
        super().__init__()
        self._source_arg = source
        self.runtime = runtime
        self.make_tracker = make_tracker or _default_tracker
        self.loop, self.realtime, self.max_frames = loop, realtime, max_frames
        self.tracker = None
        self.info: SourceInfo | None = None
        self.slot = LatestSlot()
        self.grabber: FrameGrabber | None = None
        self.processed = 0
        self.first_done_at: float | None = None
        self.last_done_at: float | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._result_lock = threading.Lock()
        self._result: ViewFrame | None = None
        self._announced = False
        self._recorder = None
        self._rec_lock = threading.Lock()
        self._done_times: collections.deque = collections.deque(maxlen=240)
        self.running = False

    # -- control (any thread) ----------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to end (returns at once; the loop ends within ~0.1 s)."""
        self._stop.set()
        self.slot.close()
        if self.grabber is not None:
            self.grabber.stop(timeout=0)

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._paused.set()
        else:
            self._paused.clear()
        if self.grabber is not None:
            self.grabber.set_paused(paused)

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def start_recording(self, writer) -> None:
        """Write every tracked frame's smoothed poses to ``writer`` (a
        ``tracker.io.TracksCSVWriter``) from now on; replaces (closes) a previous one."""
        with self._rec_lock:
            old, self._recorder = self._recorder, writer
        if old is not None:
            old.close()

    def stop_recording(self):
        """Close and return the current writer (None if not recording)."""
        with self._rec_lock:
            writer, self._recorder = self._recorder, None
        if writer is not None:
            writer.close()
        return writer

    @property
    def recording(self):
        return self._recorder

    def latest(self) -> ViewFrame | None:
        """The newest tracked frame not collected yet (older ones are skipped), or None."""
        with self._result_lock:
            vf, self._result, self._announced = self._result, None, False
            return vf

    @property
    def fps(self) -> float:
        """Frames tracked per second over the last ~2 s (0 until two frames)."""
        times = self._done_times.copy()  # atomic under the GIL (the worker appends)
        if len(times) < 2:
            return 0.0
        recent = [t for t in times if t >= times[-1] - 2.0]
        if len(recent) < 2:
            recent = times[-2:]
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    # -- the work -------------------------------------------------------------------------
    def prepare(self):
        """Open the source (if a spec was given) and build the tracker; returns SourceInfo.

        Raises:
            InputError: the source cannot be opened (see :func:`tracker.sources.open_source`).
        """
        src = self._source_arg
        if not hasattr(src, "__iter__") or isinstance(src, (str, Path)):
            from tracker.sources import open_source

            src = open_source(src, loop=self.loop, threaded=False)
            self._source_arg = src
        self.source = src
        self.info = SourceInfo(src.name, int(src.width), int(src.height), src.fps,
                               bool(getattr(src, "is_live", False)), _spec_of(src))
        self.tracker = self.make_tracker(self.runtime, self.info.height, self.info.width)
        return self.info

    def process_one(self, frame, grabbed_at: float | None = None) -> ViewFrame:
        """Track one frame: inference + smoothing, recording, and publish it as the latest.

        Args:
            frame: a ``tracker.core.Frame`` of the source's size.
            grabbed_at: monotonic time it was taken (default: now).

        Returns:
            The :class:`ViewFrame` (also available once through :meth:`latest`).
        """
        t0 = time.monotonic()
        tracked = self.tracker.step(frame)
        with self._rec_lock:
            if self._recorder is not None:
                try:
                    self._recorder.write(tracked.smoothed)
                except (OSError, ValueError) as exc:
                    writer, self._recorder = self._recorder, None
                    try:
                        writer.close()
                    except OSError:
                        pass
                    self.failed.emit(f"recording to {writer.path} stopped: {exc}",
                                     "check the disk space and the output folder")
        done = time.monotonic()
        vf = ViewFrame(tracked, t0 if grabbed_at is None else grabbed_at, done, (done - t0) * 1e3)
        self.processed += 1
        self._done_times.append(done)
        if self.first_done_at is None:
            self.first_done_at = done
        self.last_done_at = done
        with self._result_lock:
            self._result = vf
            announce = not self._announced
            self._announced = True
        if announce:
            self.frame_ready.emit()
        return vf

    @QtCore.pyqtSlot()
    def run(self) -> None:
        """The worker thread's loop (connected to ``QThread.started``)."""
        self.running = True
        try:
            self._run()
        except ParttrackError as exc:
            self.failed.emit(exc.message, exc.hint or "")
        except Exception as exc:  # a bug: report it, keep the window alive
            log.error("tracking failed:\n%s", traceback.format_exc())
            self.failed.emit(f"tracking failed: {exc.__class__.__name__}: {exc}",
                             "this is a bug; please report it with the traceback printed above")
        finally:  # the recording is closed by the window (it reports the saved file)
            if self.grabber is not None:
                self.grabber.stop()
            elif hasattr(self._source_arg, "close"):
                self._source_arg.close()
            self.running = False
            self.finished.emit()

    def _run(self) -> None:
        if self._stop.is_set():
            return
        info = self.prepare()
        if self._stop.is_set():  # stopped while the source was opening
            return
        self.opened.emit(info)
        self.grabber = FrameGrabber(self.source, self.slot, realtime=self.realtime)
        if self._paused.is_set():
            self.grabber.set_paused(True)
        self.grabber.start()
        while not self._stop.is_set():
            if self._paused.is_set():
                self._stop.wait(0.05)
                continue
            item = self.slot.take(timeout=0.1)
            if item is None:
                continue
            if isinstance(item, StreamEnd):
                if item.error is None:
                    self.ended.emit(f"end of {info.name} ({self.processed} frames tracked)")
                elif isinstance(item.error, ParttrackError):
                    self.failed.emit(item.error.message, item.error.hint or "")
                else:
                    self.failed.emit(f"reading {info.name} failed: {item.error}", "")
                return
            self.process_one(item.frame, item.grabbed_at)
            if self.max_frames is not None and self.processed >= self.max_frames:
                self.ended.emit(f"stopped after {self.processed} frames (--max-frames)")
                return


# ============================================================================ widgets
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
    """Paints one image letterboxed (aspect ratio kept, black bars) and an optional message."""

    resized = QtCore.pyqtSignal()

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

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt name)
        return QtCore.QSize(960, int(round(960 / self._aspect)))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.resized.emit()

    def paintEvent(self, event) -> None:  # noqa: N802
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
        style: initial :class:`ui.overlay.OverlayStyle`.
        out_dir: where recordings and snapshots go (created when first needed).
        record: a CSV path to record tracks to from the first frame on.
        close_at_end: close the window when the stream ends (``--max-frames``).
    """

    def __init__(self, runtime, source=None, *, make_tracker=None, loop: bool = False,
                 realtime: bool = True, max_frames: int | None = None, style: OverlayStyle | None = None,
                 out_dir: str | Path = ".", record: str | Path | None = None,
                 close_at_end: bool = False) -> None:
        super().__init__()
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
        self.setCentralWidget(self.view)
        self._build_actions()
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
        bar.addSeparator()
        add("camera", "Camera", ["C"], self._pick_camera)
        add("open", "Open", ["O", "Ctrl+O"], self._pick_file)
        add("fullscreen", "Full screen", ["F11"], self._toggle_fullscreen, in_bar=False)
        add("help", "Keys", ["F1"], self._show_help)
        add("quit", "Quit", ["Q", "Esc", "Ctrl+Q"], self.close, in_bar=False)

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
        self._spec = source if isinstance(source, (int, str, Path)) else _spec_of(source)
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
        self.worker.ended.connect(self._on_ended)
        self.worker.finished.connect(self.thread.quit)
        if self.actions_by_name["pause"].isChecked():
            self.worker.set_paused(True)
        if self._record_at_start is not None:  # before the first frame, so none is missed
            path, self._record_at_start = self._record_at_start, None
            self.start_recording(path)
        self.thread.start()

    def open_camera(self, index: int) -> None:
        self.open_source(int(index))

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
        current = self._spec if isinstance(self._spec, int) else 0
        index, ok = QtWidgets.QInputDialog.getInt(self, "Camera", "camera index (0 = first camera):",
                                                  current, 0, 63)
        if ok:
            self.open_camera(index)

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
        self.statusBar().showMessage(f"{info.name}: {info.width}×{info.height}{fps} · {self.backend_line}")

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
        return draw_overlay(img, labels=tf.labels, poses=tf.smoothed, joints=getattr(tf, "joints", None),
                            colors=self.part_colors, names=self.part_names, style=self.style,
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

    def toggle_pause(self) -> None:
        self.actions_by_name["pause"].toggle()

    def start_recording(self, path: str | Path | None = None) -> Path | None:
        """Record tracks (smoothed poses, batch CSV format) to ``path`` (default
        ``OUT_DIR/<source>-<date>-<time>.tracks.csv``). Errors show in the window."""
        from tracker.io import TracksCSVWriter

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

    def closeEvent(self, event) -> None:  # noqa: N802
        self._last_worker = self.worker
        self.stop_worker()
        super().closeEvent(event)
