"""Video sources: real decoding, timestamps, odd formats and every bad-input case."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.tracker.sources import open_source, read_frames
from tests.videos import moving_square, write_video

CLIP = Path(__file__).resolve().parent.parent / "trained" / "bbb" / "clip.mp4"


def test_shipped_clip_decodes_with_stream_times():
    frames, times = read_frames(CLIP)
    assert frames.shape == (132, 270, 480, 3) and frames.dtype == np.uint8
    assert np.allclose(np.diff(times), 0.04, atol=1e-6)


def test_resize_during_decode_keeps_source_size():
    with open_source(CLIP, size=(128, 72)) as src:
        frame = next(iter(src))
        assert (src.width, src.height) == (480, 270)
        assert frame.image.shape == (72, 128, 3)


def test_variable_frame_rate_times_come_from_timestamps(tmp_path):
    times = np.array([0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5])
    path = write_video(tmp_path / "vfr.mkv", moving_square(len(times)), times)
    _, got = read_frames(path)
    assert np.allclose(got, times, atol=2e-3)


def test_odd_width_video(tmp_path):
    path = write_video(tmp_path / "odd.mkv", moving_square(5, 31, 47), codec="ffv1", pix_fmt="yuv444p")
    frames, _ = read_frames(path)
    assert frames.shape == (5, 31, 47, 3)


def test_grayscale_video_becomes_rgb(tmp_path):
    gray = moving_square(4)[..., 0]
    path = write_video(tmp_path / "gray.mkv", gray, codec="ffv1", pix_fmt="gray", src_format="gray")
    frames, _ = read_frames(path)
    assert frames.shape == (4, 48, 64, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1])


def test_4k_video(tmp_path):
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, 1000:1100, 2000:2100] = 255
    path = write_video(tmp_path / "uhd.mp4", big)
    with open_source(path, size=(640, 360)) as src:
        assert (src.width, src.height) == (3840, 2160)
        assert [f.image.shape for f in src] == [(360, 640, 3)] * 2


def test_rgba_and_gray_image_folder(tmp_path):
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2] = 255  # BGRA red
    rgba[..., 3] = 128
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    cv2.imwrite(str(tmp_path / "b.png"), np.full((20, 30), 77, np.uint8))
    with open_source(tmp_path, fps=10) as src:
        frames = list(src)
    assert [f.image.shape for f in frames] == [(20, 30, 3)] * 2
    assert tuple(frames[0].image[0, 0]) == (255, 0, 0)
    assert frames[1].time_s == pytest.approx(0.1)


def test_loop_keeps_time_increasing(tmp_path):
    path = write_video(tmp_path / "short.mp4", moving_square(5))
    with open_source(path, loop=True) as src:
        frames = [f for _, f in zip(range(12), src)]
    times = [f.time_s for f in frames]
    assert [f.index for f in frames] == list(range(12))
    assert all(b > a for a, b in zip(times, times[1:]))


def _bad(tmp_path: Path, kind: str):
    if kind == "missing":
        return tmp_path / "nope.mp4"
    if kind == "empty":
        p = tmp_path / "empty.mp4"
        p.write_bytes(b"")
        return p
    if kind == "text":
        p = tmp_path / "notes.mp4"
        p.write_text("not a video")
        return p
    if kind == "truncated":
        p = tmp_path / "cut.mp4"
        p.write_bytes(CLIP.read_bytes()[:4000])
        return p
    if kind == "no-images":
        (tmp_path / "folder").mkdir()
        return tmp_path / "folder"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind,words", [
    ("missing", "does not exist"),
    ("empty", "empty"),
    ("text", "not a readable video"),
    ("truncated", "not a readable video"),
    ("no-images", "no images"),
])
def test_bad_files_raise_input_error_with_hint(tmp_path, kind, words):
    with pytest.raises(InputError) as info:
        open_source(_bad(tmp_path, kind))
    assert words in info.value.message and info.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    p = write_video(tmp_path / "locked.mp4", moving_square(3))
    p.chmod(0)
    with pytest.raises(InputError, match="not readable"):
        open_source(p)


def test_camera_that_does_not_open():
    with pytest.raises(InputError, match="camera 57 could not be opened") as info:
        open_source(57)
    assert "--video" in info.value.hint


def test_corrupt_middle_keeps_decoded_frames(tmp_path):
    # Matroska with damaged bytes after the first frames: the good frames stay.
    path = write_video(tmp_path / "ok.mkv", moving_square(40), codec="mpeg4")
    data = bytearray(path.read_bytes())
    cut = tmp_path / "damaged.mkv"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    with open_source(cut) as src:
        frames = list(src)
    assert 0 < len(frames) < 40
