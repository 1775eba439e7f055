"""A video file played in the live viewer: seekable, looping, with **source frame indices**.

:class:`FilePlayback` is a :class:`tracker.sources.VideoSource` (so the capture plumbing of
:mod:`tracker.capture` reads it like any source) that adds what a player needs:

* ``Frame.index`` is the frame's index *in the file* (counted from the first frame, or, after
  a seek, from the timestamp: ``round((t - t_first) × average rate)``), so a recording made
  with ``loop`` or after seeking names the source video's frames;
* ``Frame.time_s`` is the **play clock**: it never goes backwards (each frame advances it by
  the file's own frame interval, or by the nominal one across a loop or a seek), so the Kalman
  filter and the real-time pacing of :class:`tracker.capture.FrameGrabber` see a steady stream;
* :meth:`FilePlayback.seek` (any thread) jumps to a frame index; the frame already handed out
  before the seek is reported by :meth:`FilePlayback.is_stale`, so a consumer can skip it, and
  :attr:`FilePlayback.seeks` counts seeks (a consumer resets its filters when it changes).

Opening validates the file exactly as :class:`tracker.sources.FileSource` does (same errors).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from parttrack.tracker.core import Frame
from parttrack.tracker.sources import CameraSource, FileSource, VideoSource


class FilePlayback(VideoSource):
    """A seekable, optionally looping video file (see the module docstring).

    Raises:
        InputError: as :class:`tracker.sources.FileSource`.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        probe = FileSource(path, threaded=False)  # validates (missing, empty, corrupt…)
        try:
            self.path, self.name = probe.path, probe.name
            self.width, self.height, self.fps = probe.width, probe.height, probe.fps
            self.frame_count = probe.frame_count
        finally:
            probe.close()
        self.loop = loop
        self._lock = threading.Lock()
        self._seek_to: int | None = None
        self._last: Frame | None = None
        self._stale: Frame | None = None
        self._generation: dict[int, int] = {}  # id(frame) → seeks when its decoding began
        self.seeks = 0
        self._container = None

    # -- control (any thread) -------------------------------------------------------------
    def seek(self, index: int) -> None:
        """Continue at frame ``index`` (clamped to the file); takes effect at the next frame."""
        with self._lock:
            self._seek_to = max(0, int(index))
            self._stale = self._last
            self.seeks += 1

    def is_stale(self, frame: Frame) -> bool:
        """True for a frame decoded before the latest :meth:`seek` took effect: the one handed
        out just before it, or one whose decoding had begun when the seek came (skip it)."""
        if frame is None:
            return False
        with self._lock:
            gen = self._generation.get(id(frame))
            return frame is self._stale or (gen is not None and gen < self.seeks)

    # -- decoding ---------------------------------------------------------------------------
    def _open(self):
        import av

        self.close()
        self._container = av.open(str(self.path), "r")
        stream = self._container.streams.video[0]
        return stream

    def __iter__(self) -> Iterator[Frame]:
        import av

        dt = 1.0 / self.fps if self.fps else 0.04
        clock: float | None = None  # the play clock (s), see the module docstring
        t_first: float | None = None  # file time of frame 0
        prev_t: float | None = None  # file time of the previous decoded frame
        index: int | None = 0  # index of the next decoded frame (None: from its timestamp)
        target: int | None = None  # a seek's frame, decoded up to from the keyframe before it
        fresh = True  # the next frame follows a start, a loop or a seek
        stream = self._open()
        try:
            while True:
                sought = False
                for vf in self._container.decode(stream):
                    with self._lock:
                        seek_to, self._seek_to = self._seek_to, None
                        generation = self.seeks
                    if seek_to is not None:
                        target = min(seek_to, self.frame_count - 1) if self.frame_count else seek_to
                        if t_first is None:
                            stream, index = self._open(), 0
                        else:
                            pts = int((t_first + target * dt) / stream.time_base)
                            self._container.seek(max(0, pts), stream=stream, backward=True, any_frame=False)
                            index = None
                        fresh, sought = True, True
                        break
                    t = float(vf.time) if vf.time is not None else (prev_t + dt if prev_t is not None else 0.0)
                    if t_first is None:
                        t_first = t
                    if index is None:
                        index = max(0, int(round((t - t_first) / dt)))
                    if target is not None and index < target:
                        index, prev_t = index + 1, t
                        continue
                    target = None
                    step = dt if fresh or prev_t is None or t <= prev_t else t - prev_t
                    clock = 0.0 if clock is None else clock + step
                    fresh, prev_t = False, t
                    frame = Frame(vf.to_ndarray(format="rgb24"), index, clock)
                    with self._lock:
                        if len(self._generation) > 64:
                            self._generation.clear()
                        self._generation[id(frame)] = generation
                        self._last = frame
                    yield frame
                    index += 1
                if sought:
                    continue
                target = None  # the end of the file (a seek past it ends here too)
                if not self.loop:
                    return
                stream, index, prev_t, fresh = self._open(), 0, None, True
        except av.error.FFmpegError as exc:
            self.error = f"decoding stopped: {exc.strerror or exc}"

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def open_for_viewing(spec, *, loop: bool = False) -> VideoSource:
    """What the viewer plays: a video file → :class:`FilePlayback` (seekable, source frame
    indices); a camera index, an image folder or a glob → :func:`tracker.sources.open_source`."""
    from parttrack.tracker.sources import IMAGE_EXTENSIONS, open_source

    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return open_source(int(spec))
    if is_stream_spec(spec):
        return StreamSource(str(spec))
    p = Path(spec)
    if p.is_dir() or not p.exists() or p.suffix.lower() in IMAGE_EXTENSIONS:
        return open_source(spec, loop=loop, threaded=False)  # its own errors (missing file…)
    return FilePlayback(p, loop=loop)


def is_stream_spec(spec) -> bool:
    """A stream URL (``rtsp://``, ``http://``…) or a capture device path (``/dev/video2``)."""
    text = str(spec)
    return "://" in text or text.startswith("/dev/")


class StreamSource(CameraSource):
    """A live stream or capture device opened by URL or path with OpenCV
    (``cv2.VideoCapture(url)``): a camera in every other respect (frames dropped when slow,
    ``time_s`` on the monotonic clock). ``path`` is the URL, which reopens it.

    Raises:
        InputError: it does not open or delivers no frame.
    """

    def __init__(self, url: str) -> None:
        self.index = self.path = str(url)  # messages say "camera <url> disconnected"
        self.name = Path(self.path.split("?")[0].rstrip("/")).name or "stream"
        self._open_capture(self.path, f"{self.path} could not be opened as a camera or stream",
                           "check the URL or device path (and that nothing else uses it), "
                           "or pass a camera index such as --camera 0")
