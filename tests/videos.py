"""Small video files written with PyAV for tests (only under tmp_path)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: np.ndarray, times_s=None, *, codec: str = "libx264",
                pix_fmt: str = "yuv420p", fps: int = 25, src_format: str = "rgb24") -> Path:
    """Encode ``frames`` ((T, H, W, 3) uint8 RGB, or (T, H, W) gray with src_format="gray")
    with optional per-frame presentation times (seconds) for variable frame rate."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1], frames.shape[2]
        stream.pix_fmt = pix_fmt
        if times_s is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=src_format)
            if times_s is not None:
                vf.pts, vf.time_base = int(round(times_s[i] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def moving_square(n: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """(n, h, w, 3) uint8 RGB: a bright square moving right over a dark gradient."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[..., 2] = np.linspace(20, 80, w, dtype=np.uint8)[None, None, :]
    for i in range(n):
        x = 4 + 2 * i
        frames[i, h // 3: h // 3 + 12, x: x + 12] = (230, 200, 40)
    return frames
