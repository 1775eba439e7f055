"""The one video writer: RGB frames → an H.264 file with PyAV, used by the overlay video
(:mod:`tracker.sinks`), the generated test figures (:func:`engine.synthetic.write_video`) and
everything else that encodes video.

Frames are ``(H, W, 3)`` uint8 RGB; times are seconds. The stream is yuv420p, libx264 (MPEG-4
Part 2 where libx264 is missing from the installed FFmpeg).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from parttrack.engine.errors import OutputError


class VideoWriter:
    """Encode RGB frames to a video file with PyAV (context manager; closing finalises the
    container, so an interrupted run still leaves a playable file).

    Odd widths/heights are padded by one pixel (edge-replicated) because yuv420p needs even
    sizes.

    Args:
        path: output file (``.mp4``).
        width, height: frame size in pixels.
        fps: nominal frame rate (the codec's rate; default 25).
        codec: ``"libx264"`` (default; falls back to ``"mpeg4"`` when unavailable).
        crf: libx264 constant rate factor (quality; lower = better).
        preset: libx264 speed/size preset.
        timestamps: True: each frame carries its presentation time (``write(image, time_s)``,
            millisecond time base, made strictly increasing); False: frames are evenly spaced
            at ``fps`` in the muxer's own time base (``time_s`` must not be given).
        mpeg4_bits_per_pixel: with the MPEG-4 fallback, a constant bit rate of this many bits
            per pixel and frame (at least 2 Mbit/s); None: the codec's default rate.

    Raises:
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float | None = None,
                 codec: str = "libx264", crf: int = 23, *, preset: str = "veryfast", timestamps: bool = True,
                 mpeg4_bits_per_pixel: float | None = None) -> None:
        import av

        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.timestamps = timestamps
        self._pad = (self.height % 2, self.width % 2)
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
        if codec not in av.codecs_available:
            codec = "mpeg4"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(f"cannot create {self.path}: {getattr(exc, 'strerror', None) or exc}",
                              "choose an output folder you can write to and check free disk space") from None
        options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        self._stream = self._container.add_stream(codec, rate=rate, options=options)
        self._stream.width = self.width + self._pad[1]
        self._stream.height = self.height + self._pad[0]
        self._stream.pix_fmt = "yuv420p"
        if codec != "libx264" and mpeg4_bits_per_pixel is not None:
            self._stream.bit_rate = int(max(2e6, mpeg4_bits_per_pixel * self._stream.width * self._stream.height
                                            * float(rate)))
        if timestamps:
            self._stream.time_base = self._stream.codec_context.time_base = Fraction(1, 1000)
        self._rate = rate
        self._last_pts = -1
        self.frames = 0

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Encode one ``(height, width, 3)`` uint8 RGB frame shown at ``time_s`` seconds
        (default: frame count / fps).

        Raises:
            ValueError: another shape or dtype; a ``time_s`` for a writer without timestamps.
        """
        import av

        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"frame must be ({self.height}, {self.width}, 3) uint8, got {image.shape} {image.dtype}")
        if any(self._pad):
            import cv2

            image = cv2.copyMakeBorder(image, 0, self._pad[0], 0, self._pad[1], cv2.BORDER_REPLICATE)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self.timestamps:
            if time_s is None:
                time_s = self.frames / float(self._rate)
            pts = max(int(round(time_s * 1000)), self._last_pts + 1)
            self._last_pts = pts
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
        elif time_s is not None:
            raise ValueError("this VideoWriter spaces frames evenly (timestamps=False): pass no time_s")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (idempotent)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
