"""Live capture plumbing (Qt-free): a reader thread per source and a one-frame mailbox, so
tracking always takes the newest frame and latency stays bounded by one inference.

* :class:`FrameGrabber` reads a :class:`tracker.sources.VideoSource` on its own thread. A
  camera is read as fast as it delivers; a file is paced by its own timestamps
  (``realtime``) or read only as fast as it is consumed (``realtime=False``: every frame
  taken, none dropped).
* Frames go into a :class:`LatestSlot` holding **one** item: a newer frame replaces an
  unconsumed one (counted as dropped) — frames are never queued. A :class:`StreamEnd` follows
  the last frame (``error`` set when the source failed or stopped early).

Used by the live viewer's worker (:mod:`ui.worker`); nothing here imports Qt.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

from parttrack.engine.errors import InputError, ParttrackError

log = logging.getLogger(__name__)

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


def spec_of(source):
    """What reopens ``source``: its camera index (int) for a camera, else its file path (or None)."""
    if hasattr(source, "index") and getattr(source, "is_live", False) and getattr(source, "path", None) is None:
        return int(source.index)  # a stream opened by URL/device path (tracker.playback) has a path
    return getattr(source, "path", None)
