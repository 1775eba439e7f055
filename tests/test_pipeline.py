"""OnlineTracker with a fake runtime playing back a synthetic figure's ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.synthetic import render_video
from parttrack.engine.types import PartOutput
from parttrack.tracker.core import Frame, JointPositions, Track
from parttrack.tracker.kalman import KalmanFactory, NoFilterFactory
from parttrack.tracker.pipeline import OnlineTracker, TrackedFrame
from tests.fakes import REALISTIC_NOISE, ColorKeyRuntime, GroundTruthRuntime, flat_parts_frames


@pytest.fixture(scope="module")
def video():
    return render_video(40, size=(128, 96), figure_seed=0, motion_seed=3)


def frames_of(video, n=None):
    n = len(video) if n is None else n
    return [Frame(video.frames[i], i, float(video.times_s[i])) for i in range(n)]


def test_step_produces_tracked_frames(video):
    rt = GroundTruthRuntime(video, input_size=64, mask_size=(32, 32))
    tracker = OnlineTracker(rt, video.height, video.width, skeleton_warmup=10)
    out = [tracker.step(f) for f in frames_of(video, 15)]
    t = out[-1]
    assert isinstance(t, TrackedFrame) and t.frame.index == 14
    assert t.raw.num_parts == t.smoothed.num_parts == 10
    assert t.labels.shape == (96, 128) and t.labels.dtype == np.uint8
    gt = video.labels[14]
    assert ((t.labels > 0) == (gt > 0)).mean() > 0.95  # foreground where the figure is
    assert out[8].joints is None and isinstance(out[9].joints, JointPositions)
    assert tracker.part_names == video.part_names and len(tracker.part_colors) == 10
    assert "fake" in tracker.describe()
    vis = t.raw.visible
    err = np.linalg.norm(t.smoothed.xy - video.centres[14], axis=-1)[vis]
    assert np.median(err) < 3.0  # px, on a 128×96 frame with 4-px mask pixels


def test_step_batch_equals_single_steps(video):
    a = OnlineTracker(GroundTruthRuntime(video, 64, (32, 32)), video.height, video.width)
    b = OnlineTracker(GroundTruthRuntime(video, 64, (32, 32)), video.height, video.width)
    fr = frames_of(video, 12)
    one = [a.step(f) for f in fr]
    many = b.step_batch(fr[:5]) + b.step_batch(fr[5:])
    for x, y in zip(one, many):
        np.testing.assert_allclose(x.smoothed.xy, y.smoothed.xy)
        np.testing.assert_array_equal(x.labels, y.labels)


def test_no_filter_factory_passes_raw_poses(video):
    tracker = OnlineTracker(GroundTruthRuntime(video, 64, (32, 32), noise=REALISTIC_NOISE), video.height,
                            video.width, factory=NoFilterFactory(), labels=False, skeleton=False)
    for f in frames_of(video, 5):
        t = tracker.step(f)
        assert t.smoothed is t.raw and t.labels is None and t.joints is None


def test_frame_size_change_reconfigures():
    frames, _ = flat_parts_frames(6, 96, 128)
    tracker = OnlineTracker(ColorKeyRuntime(), 96, 128)
    tracker.step(Frame(frames[0], 0, 0.0))
    big = np.ascontiguousarray(np.repeat(np.repeat(frames[1], 2, 0), 2, 1))
    t = tracker.step(Frame(big, 1, 0.04))
    assert (tracker.src_h, tracker.src_w) == (192, 256) and t.labels.shape == (192, 256)
    np.testing.assert_allclose(t.smoothed.xy, t.raw.xy)  # filter was reset: first frame = measurement


def test_process_checks_its_input(video):
    tracker = OnlineTracker(GroundTruthRuntime(video, 64, (32, 32)), video.height, video.width)
    fr = frames_of(video, 2)
    out = tracker.runtime.infer(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="outputs for"):
        tracker.process(fr[:1], out)
    with pytest.raises(ValueError, match="K="):
        tracker.process(fr, PartOutput(out.masks[:, :5], out.transforms[:, :4]))


def test_bundle_skeleton_edges_give_joints_at_once(video):
    from dataclasses import replace

    rt = GroundTruthRuntime(video, 64, (32, 32))
    rt.meta = replace(rt.meta, skeleton_edges=tuple(map(tuple, video.joint_pairs.tolist())))
    t = OnlineTracker(rt, video.height, video.width).step(frames_of(video, 1)[0])
    assert t.joints is not None and t.joints.pairs.shape == (9, 2)


def _jitter(track: Track, mask):
    acc = track.xy[2:] - 2 * track.xy[1:-1] + track.xy[:-2]
    m3 = mask[2:] & mask[1:-1] & mask[:-2]
    return float(np.sqrt(np.mean(np.sum(acc ** 2, -1)[m3])))


def test_smoothing_lowers_jitter_without_losing_accuracy():
    """Quality gate on a generated figure with realistic per-frame noise (fake runtime): the
    centre jitter falls by ≥ 40 % and the error against the true centres does not grow."""
    video = render_video(100, size=(192, 144), figure_seed=1, motion_seed=5)
    rt = GroundTruthRuntime(video, input_size=64, mask_size=(32, 32), noise=REALISTIC_NOISE, seed=1)
    tracker = OnlineTracker(rt, video.height, video.width, labels=False, skeleton=False)
    res = [tracker.step(f) for f in frames_of(video)]
    raw = Track.from_poses([r.raw for r in res])
    online = Track.from_poses([r.smoothed for r in res])
    offline = KalmanFactory().smooth(raw, (video.height, video.width))
    mask = raw.visible

    def err(tr):
        return float(np.sqrt(np.mean(np.sum((tr.xy - video.centres) ** 2, -1)[mask])))

    j_raw = _jitter(raw, mask)
    assert _jitter(online, mask) <= 0.6 * j_raw
    assert _jitter(offline, mask) <= 0.6 * j_raw
    assert err(online) <= err(raw)
    assert err(offline) < err(online)
