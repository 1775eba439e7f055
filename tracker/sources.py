"""Video sources: files (PyAV), cameras (OpenCV) and image folders/globs.

Every source yields :class:`tracker.core.Frame` objects: ``(H, W, 3)`` uint8 **RGB** images
(grayscale, RGBA, paletted and high-bit-depth input is converted), with ``time_s`` taken from
the stream's presentation timestamps (PyAV ``frame.time``), so variable frame rate video
gets its true times. Cameras have no stream clock: their ``time_s`` is the capture time on
the monotonic clock, relative to the first frame. Image sequences have no clock either:
``time_s = index / fps`` with a stated ``fps`` (default 25).

Errors a user can cause (missing, unreadable, corrupt or empty video; a camera that does not
open or disconnects; an empty image folder) raise :class:`engine.errors.InputError` with a
hint. A file whose decoding fails part-way ends the stream early: the frames decoded so far
are kept, and :attr:`VideoSource.error` says what happened.
"""

from __future__ import annotations

import glob as globmod
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from parttrack.engine.errors import InputError
from parttrack.tracker.core import Frame

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class VideoSource(ABC):
    """A stream of :class:`Frame` objects; a context manager and an iterator.

    Attributes:
        name: what to call it in messages and output folders (file stem, ``camera0``…).
        width, height: size of the *source* frames in pixels (before any ``size`` resize).
        fps: nominal frame rate (frames/s) or None when the stream does not say.
        frame_count: number of frames if known in advance, else None.
        is_live: True for cameras (frames are dropped, not queued, when consumers are slow).
        error: None, or a message if the stream ended early because of a decoding error.
    """

    name: str
    width: int
    height: int
    fps: float | None = None
    frame_count: int | None = None
    is_live: bool = False
    error: str | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None:
        """Release the underlying file/device (idempotent)."""

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _to_rgb(image: np.ndarray, bgr: bool) -> np.ndarray:
    """Any OpenCV image (gray, BGR, BGRA, 16-bit) → (H, W, 3) uint8 RGB."""
    if image.dtype != np.uint8:
        scale = 255.0 / (65535.0 if image.dtype == np.uint16 else max(float(image.max()), 1.0))
        image = np.clip(image.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(image)


class FileSource(VideoSource):
    """A video file decoded with PyAV.

    Args:
        path: the video file.
        loop: restart at the end (times keep increasing across loops).
        size: optional ``(w, h)``: frames are scaled to this size *during* colour conversion
            (PyAV ``to_ndarray(width=, height=)``), which is cheaper than decoding at full size
            and resizing. ``width``/``height`` still report the source size.
        threaded: let FFmpeg decode with frame+slice threads (``thread_type = "AUTO"``); best
            for batch throughput, adds latency for live display.

    Raises:
        InputError: missing, unreadable, not a video, corrupt, or without a decodable frame.
    """

    def __init__(self, path: str | Path, *, loop: bool = False, size: tuple[int, int] | None = None,
                 threaded: bool = True) -> None:
        import av

        self.path = Path(path)
        self.name = self.path.stem
        self.loop, self.size, self.threaded = loop, size, threaded
        if not self.path.exists():
            raise InputError(f"video {self.path} does not exist", "check the path (and its spelling)")
        if self.path.is_dir():
            raise InputError(f"{self.path} is a folder, not a video file",
                             "pass a video file, or use `parttrack track FOLDER -o OUT` for a folder of videos")
        if not os.access(self.path, os.R_OK):
            raise InputError(f"video {self.path} is not readable (permission denied)",
                             f"fix its permissions, e.g. chmod a+r '{self.path}'")
        if self.path.stat().st_size == 0:
            raise InputError(f"video {self.path} is empty (0 bytes)", "the file was not written completely; re-copy or re-record it")
        self._container = None
        self._open()
        stream = self._stream
        self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = int(stream.frames) or None
        try:  # decode one frame now so a corrupt or empty file fails here, not mid-pipeline
            self._frames = self._decode()
            self._first = next(self._frames)
        except StopIteration:
            self.close()
            raise InputError(f"video {self.path} contains no decodable frames",
                             "the file is empty or corrupt; re-encode it (e.g. with ffmpeg) or pick another file") from None
        except av.error.FFmpegError as exc:
            self.close()
            raise InputError(f"video {self.path} is corrupt: {exc.strerror or exc}",
                             "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) or pick another file") from None
        if self.width <= 0 or self.height <= 0:
            self.width, self.height = int(self._first.width), int(self._first.height)

    def _open(self) -> None:
        import av

        try:
            self._container = av.open(str(self.path), "r")
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InputError(f"{self.path} is not a readable video ({getattr(exc, 'strerror', None) or exc})",
                             "check that it is a video file (mp4, mov, avi, mkv, webm…) and not truncated") from None
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{self.path} has no video stream", "pass a file that contains video")
        self._stream = self._container.streams.video[0]
        if self.threaded:
            self._stream.thread_type = "AUTO"

    def _decode(self):
        return self._container.decode(self._stream)

    def _to_image(self, frame) -> np.ndarray:
        if self.size is not None:
            return frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1])
        return frame.to_ndarray(format="rgb24")

    def __iter__(self) -> Iterator[Frame]:
        import av

        index, offset, last_t = 0, 0.0, None
        first, dt = self._first, (1.0 / self.fps if self.fps else 0.04)
        while True:
            frames = self._frames if first is not None else self._decode()
            pending, first = first, None  # the frame decoded by __init__ comes first
            try:
                while True:
                    vf = pending if pending is not None else next(frames)
                    pending = None
                    t = vf.time
                    if t is None:  # no timestamp: continue from the previous one
                        t = (last_t - offset + dt) if last_t is not None else 0.0
                    t = float(t) + offset
                    if last_t is not None and t < last_t:  # out-of-order/duplicate pts: keep time monotone
                        t = last_t
                    last_t = t
                    yield Frame(self._to_image(vf), index, t)
                    index += 1
            except (StopIteration, av.error.EOFError):
                pass
            except av.error.FFmpegError as exc:
                self.error = f"decoding stopped at frame {index}: {exc.strerror or exc}"
                log.warning("%s: %s", self.path, self.error)
                return
            if not self.loop:
                return
            self._container.close()
            self._open()
            offset = (last_t if last_t is not None else 0.0) + dt

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class CameraSource(VideoSource):
    """A camera opened with OpenCV (``cv2.VideoCapture(index)``).

    ``time_s`` is the monotonic capture time relative to the first frame.

    Raises:
        InputError: when the camera does not open, or (while iterating) stops delivering frames.
    """

    is_live = True

    def __init__(self, index: int) -> None:
        self.index = int(index)
        self.name = f"camera{self.index}"
        try:  # OpenCV logs its own warnings for a missing device; our InputError says it better
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except AttributeError:  # pragma: no cover - older OpenCV
            pass
        self._open_capture(self.index, f"camera {self.index} could not be opened",
                           "check that it is connected and not used by another program, "
                           "try another index (--camera 1), or play a file with --video FILE")

    def _open_capture(self, target: int | str, message: str, hint: str) -> None:
        """Open ``cv2.VideoCapture(target)`` and read its first frame (size, rate).

        Raises:
            InputError: ``message`` / ``hint`` when it does not open or delivers no frame.
        """
        self._cap = cv2.VideoCapture(target)
        ok, image = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or image is None:
            self._cap.release()
            raise InputError(message, hint)
        self._first = image
        self.height, self.width = image.shape[:2]
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        t0 = time.monotonic()
        image, index = self._first, 0
        while True:
            if image is None:
                if self._cap is None:
                    return
                ok, image = self._cap.read()
                if not ok or image is None:
                    raise InputError(f"camera {self.index} disconnected after {index} frames",
                                     "reconnect it and start again")
            yield Frame(_to_rgb(image, bgr=True), index, time.monotonic() - t0)
            image, index = None, index + 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageSequenceSource(VideoSource):
    """A folder of images, or a glob pattern, in sorted order; ``time_s = index / fps``.

    Raises:
        InputError: no images match, or an image cannot be read.
    """

    def __init__(self, spec: str | Path, *, fps: float = 25.0, loop: bool = False) -> None:
        p = Path(spec)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            self.name = p.name
        else:
            files = sorted(Path(f) for f in globmod.glob(str(spec)) if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
            self.name = p.parent.name or "images"
        if not files:
            raise InputError(f"no images found in {spec}",
                             f"the folder/pattern must contain {', '.join(IMAGE_EXTENSIONS)} files; "
                             "for a folder of videos use `parttrack track FOLDER -o OUT`")
        self.files, self.fps, self.loop = files, float(fps), loop
        self.frame_count = len(files)
        first = self._read(files[0])
        self.height, self.width = first.shape[:2]

    def _read(self, f: Path) -> np.ndarray:
        image = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise InputError(f"image {f} cannot be read", "check that it is a valid image file")
        return _to_rgb(image, bgr=True)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            for f in self.files:
                image = self._read(f)
                if image.shape[:2] != (self.height, self.width):
                    image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
                yield Frame(image, index, index / self.fps)
                index += 1
            if not self.loop:
                return


def open_source(spec: str | Path | int, *, loop: bool = False, size: tuple[int, int] | None = None,
                threaded: bool = True, fps: float = 25.0) -> VideoSource:
    """Open a camera index, a video file, an image folder or a glob pattern.

    Args:
        spec: an int (or a string of digits) → camera; an existing folder or a pattern with
            ``*``/``?`` → image sequence; anything else → a video file.
        loop: restart files/sequences at the end.
        size: ``(w, h)`` to scale video-file frames during decoding (see :class:`FileSource`).
        threaded: multi-threaded decoding for files (batch); False for low latency.
        fps: frame rate assumed for image sequences.

    Raises:
        InputError: see the individual sources.
    """
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec))
    p = Path(spec)
    if p.is_dir() or (not p.exists() and any(c in str(spec) for c in "*?[")):
        return ImageSequenceSource(spec, fps=fps, loop=loop)
    if p.suffix.lower() in IMAGE_EXTENSIONS and p.exists():
        return ImageSequenceSource(spec, fps=fps, loop=loop)
    return FileSource(p, loop=loop, size=size, threaded=threaded)


def read_frames(path: str | Path, max_frames: int | None = None,
                size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode a whole (short) video into memory.

    Args:
        path: video file, image folder or glob.
        max_frames: stop after this many frames.
        size: optional ``(w, h)`` to scale frames while decoding.

    Returns:
        ``frames`` ``(T, H, W, 3)`` uint8 RGB and ``times_s`` ``(T,)`` float64.

    Raises:
        InputError: as :func:`open_source`.
    """
    images, times = [], []
    with open_source(path, size=size) as src:
        if src.is_live:
            raise InputError("read_frames needs a file, not a camera")
        for frame in src:
            images.append(frame.image)
            times.append(frame.time_s)
            if max_frames is not None and len(images) >= max_frames:
                break
    return np.stack(images), np.asarray(times, dtype=np.float64)


class ScaledFileSource(FileSource):
    """:class:`FileSource` whose scaled frames (``size`` = (w, h)) come from the decoder's
    YUV 4:2:0 planes: each plane area-resized with OpenCV, then one small YUV→RGB
    conversion, several times cheaper than swscale's combined convert+scale (the batch
    path's decoder; timings in docs/performance.md). Only for plain 8-bit yuv420p with even
    sizes in BT.601/unspecified limited range (what swscale assumes too, so the model sees
    the same colours); any other frame takes FileSource's own path.

    Frames are ``(h, w, 3)`` uint8 RGB at ``size``; pad them to the model input with
    :meth:`engine.preprocess.Letterbox.apply`."""

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


def open_scaled(video: str | Path, size: tuple[int, int]) -> VideoSource:
    """A threaded source of ``video`` whose frames are scaled to ``size`` = (w, h) while
    decoding: video files through :class:`ScaledFileSource`, anything else through
    :func:`open_source`.

    Raises:
        InputError: as :func:`open_source`.
    """
    video = Path(video)
    if video.is_file() and video.suffix.lower() not in IMAGE_EXTENSIONS:  # open_source's file branch
        return ScaledFileSource(video, size=size, threaded=True)
    return open_source(video, size=size, threaded=True)
