"""The one composition (tracker.pipeline.track_file) and the sinks (tracker.sinks), with a
fake colour-key runtime on a generated two-part video."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.tracker.core import Track
from parttrack.tracker.io import JOINTS_COLUMNS, TRACKS_COLUMNS, read_joints_csv, read_label_png, read_tracks_csv
from parttrack.tracker.pipeline import (
    FrameBatch,
    OnlineTracker,
    Sink,
    TrackingInterrupted,
    VideoInfo,
    VideoTracks,
    track_file,
)
from parttrack.tracker.progress import Progress
from parttrack.tracker.results import TrackOptions
from parttrack.tracker.sinks import BaseSink, JointsCSVSink, LabelPNGSink, OverlaySink, TracksCSVSink
from parttrack.tracker.sources import open_source
from tests.fakes import ColorKeyRuntime, flat_parts_frames
from tests.videos import write_video

N = 14


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, _ = flat_parts_frames(N, 96, 128, seed=1)
    return write_video(tmp_path_factory.mktemp("clip") / "hinge.mp4", frames)


class Recorder(BaseSink):
    """Records what a sink is told, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.frames = 0

    def __enter__(self):
        self.calls.append("enter")
        return self

    def begin(self, info):
        assert isinstance(info, VideoInfo)
        self.calls.append("begin")

    def write_batch(self, batch):
        assert isinstance(batch, FrameBatch)
        self.frames += len(batch)
        self.calls.append("batch")

    def end(self, result):
        self.calls.append("end complete" if result.complete else "end partial")

    def close(self):
        self.calls.append("close")


@pytest.mark.parametrize("smoother", ["offline", "online", "none"])
def test_track_file_returns_the_tracks_as_arrays(clip, smoother):
    rec = Recorder()
    assert isinstance(rec, Sink)
    res = track_file(clip, ColorKeyRuntime(), TrackOptions(smoother=smoother, batch_size=4), sinks=[rec])
    assert isinstance(res, VideoTracks) and res.complete and res.input_complete and len(res) == N
    k = 2
    assert res.time_s.shape == (N,) and res.time_s.dtype == np.float64 and np.all(np.diff(res.time_s) > 0)
    for name in ("x", "y", "angle_deg", "area_px", "confidence"):
        assert getattr(res, name).shape == (N, k) and getattr(res, name).dtype == np.float64, name
    assert res.scale.shape == (N, k, 2) and res.visible.shape == (N, k) and res.visible.dtype == bool
    j = len(res.joint_pairs)
    assert res.joint_xy.shape == (N, j, 2) and len(res.joints) == N
    assert res.info.width == 128 and res.info.height == 96 and res.info.smoother.name == smoother
    assert isinstance(res.raw, Track) and res.raw.xy.shape == (N, k, 2)
    if smoother == "none":
        np.testing.assert_array_equal(res.track.xy, res.raw.xy)
    assert rec.calls == ["enter", "begin"] + ["batch"] * 4 + ["end complete", "close"] and rec.frames == N


def test_online_tracker_and_track_file_agree_causally(clip):
    """The live path runs the same stages: frame by frame with the causal smoother it gives
    the poses track_file gives with smoother=online (up to the letterbox-inner decode)."""
    res = track_file(clip, ColorKeyRuntime(), TrackOptions(smoother="online"))
    live = OnlineTracker(ColorKeyRuntime(), 96, 128, labels=False, skeleton=False)
    with open_source(clip) as src:
        xy = np.stack([live.step(f).smoothed.xy for f in src])
    assert xy.shape == res.track.xy.shape
    assert np.nanmax(np.abs(xy - res.track.xy)) < 2.0  # px (decoded at full vs inner size)


def test_sinks_write_fixed_columns(clip, tmp_path):
    sinks = [TracksCSVSink(tmp_path / "raw.csv", raw=True), TracksCSVSink(tmp_path / "tracks.csv"),
             JointsCSVSink(tmp_path / "joints.csv"), LabelPNGSink(tmp_path / "masks"),
             OverlaySink(tmp_path / "overlay.mp4")]
    res = track_file(clip, ColorKeyRuntime(), TrackOptions(batch_size=5), sinks=sinks)
    for name in ("raw.csv", "tracks.csv"):
        assert (tmp_path / name).read_text().splitlines()[0] == ",".join(TRACKS_COLUMNS)
    assert (tmp_path / "joints.csv").read_text().splitlines()[0] == ",".join(JOINTS_COLUMNS)
    track, names = read_tracks_csv(tmp_path / "tracks.csv")
    np.testing.assert_allclose(track.xy, res.track.xy, atol=1e-3)
    raw, _ = read_tracks_csv(tmp_path / "raw.csv")
    np.testing.assert_allclose(raw.xy, res.raw.xy, atol=1e-3)
    assert len(read_joints_csv(tmp_path / "joints.csv")) == (N if len(res.joint_pairs) else 0)
    pngs = sorted((tmp_path / "masks").glob("*.png"))
    assert len(pngs) == N and read_label_png(pngs[0]).shape == (96, 128)
    assert (tmp_path / "overlay.mp4").stat().st_size > 0
    assert not (tmp_path / "overlay.mp4.masks.tmp").exists()


class StopAfter(Progress):
    def __init__(self, frames: int) -> None:
        self.frames, self.seen = frames, 0

    def advance(self, n):
        self.seen += n
        if self.seen >= self.frames:
            raise KeyboardInterrupt


def test_an_interrupted_run_gives_the_sinks_the_partial_result(clip, tmp_path):
    rec = Recorder()
    sinks = [rec, TracksCSVSink(tmp_path / "tracks.csv"), OverlaySink(tmp_path / "overlay.mp4")]
    with pytest.raises(TrackingInterrupted) as info:
        track_file(clip, ColorKeyRuntime(), TrackOptions(batch_size=4), sinks=sinks, progress=StopAfter(8))
    res = info.value.result
    assert isinstance(info.value, KeyboardInterrupt) and not res.complete and len(res) == 8
    assert rec.calls[-2:] == ["end partial", "close"]
    assert len(read_tracks_csv(tmp_path / "tracks.csv")[0]) == 8
    assert not (tmp_path / "overlay.mp4").exists()


def test_track_file_errors(tmp_path):
    with pytest.raises(InputError):
        track_file(tmp_path / "missing.mp4", ColorKeyRuntime())


def test_a_model_trained_on_a_crop_sees_the_crop_and_reports_whole_frame_pixels(tmp_path):
    """A bundle's crop (``BundleMeta.crop``): the frames are cut to it before the model sees
    them, poses come back in the whole frame's pixels, and label maps are background outside."""
    from dataclasses import replace

    from tests.fakes import hinge_poses

    frames, _ = flat_parts_frames(N, 96, 128, seed=1)
    centres = hinge_poses(N, 96, 128, seed=1)[0]
    clip = write_video(tmp_path / "hinge.mp4", frames)
    crop = (14, 8, 96, 80)
    plain = ColorKeyRuntime()
    cropped = ColorKeyRuntime()
    cropped.meta = replace(cropped.meta, crop=crop, crop_frame=(128, 96))
    res = {}
    for name, rt in (("plain", plain), ("crop", cropped)):
        res[name] = track_file(clip, rt, TrackOptions(smoother="none"), sinks=[LabelPNGSink(tmp_path / name)])
    assert res["crop"].info.letterbox.box == crop and res["plain"].info.letterbox.box is None
    for name in ("plain", "crop"):       # source pixels both ways (the crop is 14, 8 px off the frame's corner)
        err = np.linalg.norm(res[name].track.xy - centres, axis=-1)
        assert np.nanmedian(err) < 3.5, name
    assert np.nanmedian(np.linalg.norm(res["crop"].track.xy - res["plain"].track.xy, axis=-1)) < 1.0
    labels = read_label_png(tmp_path / "crop" / "000003.png")
    x, y, w, h = crop
    outside = np.ones(labels.shape, bool)
    outside[y:y + h, x:x + w] = False
    assert labels.shape == (96, 128) and not labels[outside].any() and labels[~outside].any()
    same = read_label_png(tmp_path / "plain" / "000003.png")
    assert np.mean(labels[~outside] == same[~outside]) > 0.97


def test_a_crop_for_another_aspect_ratio_is_not_used_and_said(clip):
    from dataclasses import replace

    rt = ColorKeyRuntime()
    rt.meta = replace(rt.meta, crop=(10, 10, 100, 100), crop_frame=(200, 120))
    res = track_file(clip, rt, TrackOptions(smoother="none"))
    assert res.info.letterbox.box is None
    (line,) = res.warnings
    assert "trained on a crop (10,10,100,100) of 200x120 frames; this video is 128x96" in line
    rt.meta = replace(rt.meta, crop=(10, 10, 100, 75), crop_frame=(256, 192))  # same aspect ratio: scaled
    res = track_file(clip, rt, TrackOptions(smoother="none"))
    assert res.info.letterbox.box == (5, 5, 50, 38) and not res.warnings
