"""The live viewer's tracking worker: a ``QObject`` moved to a ``QThread`` that takes the
newest frame from a :class:`tracker.capture.FrameGrabber`, runs inference + online Kalman
smoothing (:meth:`tracker.pipeline.OnlineTracker.step`), writes the smoothed poses to the
recording CSV if one is open, and announces the result with ``frame_ready``. The GUI collects
only the newest result (:meth:`TrackingWorker.latest`), so a busy GUI never builds up a
backlog of signals either.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PyQt6 import QtCore

from parttrack.engine.errors import ParttrackError
from parttrack.tracker.capture import FrameGrabber, LatestSlot, SourceInfo, StreamEnd, spec_of

log = logging.getLogger(__name__)


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



def without_parts(poses, hidden):
    """``poses`` (``tracker.core.PartPoses``) with the parts in ``hidden`` (1-based ids)
    emptied: centre, angle, scale NaN, area 0, not visible, confidence 0 — so they are not
    drawn, and a recording keeps its K rows per frame (readable as any tracks CSV) without
    their data."""
    if not hidden or poses is None:
        return poses
    idx = np.array([i - 1 for i in hidden if 1 <= i <= poses.num_parts], np.int64)
    if idx.size == 0:
        return poses
    xy, angle, scale = poses.xy.copy(), poses.angle_deg.copy(), poses.scale.copy()
    area, visible, conf = poses.area_px.copy(), poses.visible.copy(), poses.confidence.copy()
    xy[idx], angle[idx], scale[idx] = np.nan, np.nan, np.nan
    area[idx], visible[idx], conf[idx] = 0.0, False, 0.0
    return replace(poses, xy=xy, angle_deg=angle, scale=scale, area_px=area, visible=visible, confidence=conf)


def default_tracker(runtime, src_h: int, src_w: int):
    """The worker's default tracker: :class:`tracker.pipeline.OnlineTracker` on ``runtime``."""
    from parttrack.tracker.pipeline import OnlineTracker

    return OnlineTracker(runtime, src_h, src_w)



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
        self.make_tracker = make_tracker or default_tracker
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
        self._clip = None
        self.clip_error: str | None = None
        self._next_runtime = None
        self._reset = False
        self._step = False
        self.hidden_parts: frozenset[int] = frozenset()  # 1-based ids not recorded (set by the window)
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

    def start_clip(self, recorder) -> None:
        """Append every frame taken from now on (before tracking) to ``recorder`` (a
        ``tracker.learn.ClipRecorder``) until it is full or :meth:`stop_clip`."""
        with self._rec_lock:
            self._clip = recorder

    def stop_clip(self):
        """Stop appending to the clip; returns the recorder (not closed) or None."""
        with self._rec_lock:
            clip, self._clip = self._clip, None
        return clip

    @property
    def seekable(self) -> bool:
        """The source can seek (a video file played by :class:`tracker.playback.FilePlayback`)."""
        return hasattr(getattr(self, "source", None), "seek")

    def seek(self, index: int) -> None:
        """Continue at source frame ``index`` (files only); the smoother starts afresh there."""
        if not self.seekable:
            return
        self.source.seek(index)
        self.slot.take(timeout=0)  # a frame read before the seek
        self._reset = True

    def step(self, index: int) -> None:
        """While paused: show source frame ``index`` (one frame tracked, then paused again)."""
        if not self.seekable:
            return
        self.seek(index)
        self._step = True
        if self.grabber is not None:
            self.grabber.set_paused(False)

    def swap_runtime(self, runtime) -> None:
        """Track with ``runtime`` from the next frame on (the tracker is rebuilt on the
        worker thread; callers close any recording first, as K may change)."""
        with self._rec_lock:
            self._next_runtime = runtime

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
            from parttrack.tracker.playback import open_for_viewing

            src = open_for_viewing(src, loop=self.loop)
            self._source_arg = src
        self.source = src
        self.info = SourceInfo(src.name, int(src.width), int(src.height), src.fps,
                               bool(getattr(src, "is_live", False)), spec_of(src))
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
        with self._rec_lock:
            runtime, self._next_runtime = self._next_runtime, None
            clip = self._clip
        if runtime is not None:
            self.runtime = runtime
        if runtime is not None or self._reset:
            self._reset = False
            self.tracker = self.make_tracker(self.runtime, frame.height, frame.width)
        if clip is not None:
            try:
                if not clip.write(frame):
                    self.stop_clip()
            except Exception as exc:  # a full disk, an encoder error: the learn panel reports it
                self.stop_clip()
                self.clip_error = f"recording the learning clip to {clip.path} failed: {exc}"
        tracked = self.tracker.step(frame)
        with self._rec_lock:
            if self._recorder is not None:
                try:
                    self._recorder.write(without_parts(tracked.smoothed, self.hidden_parts))
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
        stale = getattr(self.source, "is_stale", lambda frame: False)
        while not self._stop.is_set():
            if self._paused.is_set() and not self._step:
                self._stop.wait(0.05)
                continue
            item = self.slot.take(timeout=0.1)
            if item is None:
                continue
            if not isinstance(item, StreamEnd) and stale(item.frame):
                continue
            if self._step and self._paused.is_set():
                self._step = False
                if self.grabber is not None:
                    self.grabber.set_paused(True)
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
