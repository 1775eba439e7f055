"""Kalman smoothing on synthetic tracks: filterpy equivalence, constant velocity, outliers,
±180° wraps, misses and re-acquisition, RTS vs forward, timestamps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from parttrack.tracker.core import Track
from parttrack.tracker.kalman import SMOOTHERS as SMOOTHER_NAMES
from parttrack.tracker.kalman import (
    FrameFilter,
    KalmanFactory,
    KalmanNoise,
    NoFilterFactory,
    PoseFilter,
    Smoother,
    _measurements,
    filter_track,
    make_factory,
    smooth_track,
    wrap_deg,
)
from tests.kalman_reference import reference_offline, reference_online

FRAME = (480, 640)


def make_track(xy, angle=None, scale=None, visible=None, conf=None, times=None) -> Track:
    """Track from (T, K, 2) centres (other fields default)."""
    xy = np.asarray(xy, np.float64)
    t, k, _ = xy.shape
    return Track(
        index=np.arange(t), time_s=np.arange(t) / 30.0 if times is None else np.asarray(times, np.float64),
        xy=xy, angle_deg=np.zeros((t, k)) if angle is None else wrap_deg(angle),
        scale=np.full((t, k, 2), 20.0) if scale is None else np.asarray(scale, np.float64),
        area_px=np.full((t, k), 400.0), visible=np.ones((t, k), bool) if visible is None else np.asarray(visible),
        confidence=np.ones((t, k)) if conf is None else np.asarray(conf, np.float64),
    )


def run_online(track: Track, factory) -> Track:
    f = factory.create_filter(track.num_parts, FRAME)
    return Track.from_poses([f.update(track.poses(t)) for t in range(len(track))])


def run_offline(track: Track, factory) -> Track:
    return factory.smooth(track, FRAME)


SMOOTHERS = {"online": run_online, "offline": run_offline}


def random_track(t_len=60, k=3, seed=0, misses=True):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.02, 0.05, t_len)) - 0.02
    truth = 300 + np.cumsum(rng.normal(0, 3, (t_len, k, 2)), axis=0)
    xy = truth + rng.normal(0, 2, truth.shape)
    angle = 20 * np.sin(np.arange(t_len) / 7.0)[:, None] + rng.normal(0, 3, (t_len, k))
    scale = 20 * np.exp(rng.normal(0, 0.05, (t_len, k, 2)))
    visible = np.ones((t_len, k), bool)
    if misses:
        visible[10:14, 0] = False
        visible[30, 1] = False
    conf = rng.uniform(0.3, 1.0, (t_len, k))
    return make_track(xy, angle, scale, visible, conf, times)


NO_GATE = KalmanNoise(gate_sigma=None, reset_after_s=1e9)


def test_online_matches_filterpy():
    track = random_track()
    got = filter_track(track, NO_GATE, FRAME)
    ref = reference_online(track, NO_GATE, FRAME)
    mine = _measurements(got.xy, got.angle_deg, got.scale)
    ref_w = ref.copy()
    ref_w[..., 2] = wrap_deg(ref[..., 2])
    np.testing.assert_allclose(mine, ref_w, atol=1e-6)
    # and the frame-by-frame PoseFilter is the same computation
    stepped = run_online(track, KalmanFactory(NO_GATE))
    np.testing.assert_allclose(stepped.xy, got.xy, atol=1e-9)


def test_offline_matches_filterpy_rts():
    track = random_track()
    got = smooth_track(track, NO_GATE, FRAME)
    ref = reference_offline(track, NO_GATE, FRAME)
    mine = _measurements(got.xy, got.angle_deg, got.scale)
    ref[..., 2] = wrap_deg(ref[..., 2])
    np.testing.assert_allclose(mine, ref, atol=1e-6)


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_constant_velocity_is_followed(mode):
    t = np.arange(90) / 30.0
    xy = np.stack([100 + 120 * t, 200 - 60 * t], -1)[:, None, :]  # px/s
    angle = (10 + 45 * t)[:, None]
    out = SMOOTHERS[mode](make_track(xy, angle, times=t), KalmanFactory())
    np.testing.assert_allclose(out.xy[-30:], xy[-30:], atol=0.05)
    np.testing.assert_allclose(out.angle_deg[-30:], angle[-30:], atol=0.05)


@pytest.mark.parametrize("mode", SMOOTHERS)
@pytest.mark.parametrize("gate", [6.0, None])
def test_outlier_is_damped(mode, gate):
    t = np.arange(60) / 30.0
    xy = np.stack([200 + 50 * t, 200 + 0 * t], -1)[:, None, :]
    noisy = xy.copy()
    noisy[30, 0, 1] += 80.0  # one wild measurement
    out = SMOOTHERS[mode](make_track(noisy, times=t), KalmanFactory(gate_sigma=gate))
    err = np.abs(out.xy[:, 0, 1] - 200.0)
    # Rejected by the gate; without it, damped (online: the Kalman gain < 1; offline: RTS
    # also weighs the frames after it).
    limit = 2.0 if gate else {"online": 0.75 * 80, "offline": 0.5 * 80}[mode]
    assert err[30] < limit
    assert err[40:].max() < 3.0  # and forgotten soon after


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_wrap_through_180_is_continuous(mode):
    t = np.arange(60) / 30.0
    true = 150 + 30 * t * 2  # 150° → 270° (= −90°) at 60°/s
    rng = np.random.default_rng(1)
    meas = wrap_deg(true + rng.normal(0, 2, t.shape))
    track = make_track(np.full((60, 1, 2), 300.0), meas[:, None], times=t)
    out = SMOOTHERS[mode](track, KalmanFactory())
    a = out.angle_deg[:, 0]
    assert np.all((a > -180) & (a <= 180))
    steps = wrap_deg(np.diff(a))
    assert np.abs(steps).max() < 6.0  # no ±360° jump, no lurch
    assert np.abs(wrap_deg(a - true))[10:].max() < 6.0


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_missing_part_is_predicted_then_reacquired(mode):
    t = np.arange(80) / 30.0
    xy = np.stack([100 + 90 * t, 240 + 0 * t], -1)[:, None, :]
    meas = xy.copy()
    visible = np.ones((80, 1), bool)
    visible[40:48] = False
    meas[40:48] = 0.0  # garbage where the part is missing: must not be used
    out = SMOOTHERS[mode](make_track(meas, visible=visible, times=t), KalmanFactory())
    assert not out.visible[40:48].any() and out.visible[48:].all()
    gap_err = np.abs(out.xy[40:48, 0, 0] - xy[40:48, 0, 0])
    assert gap_err.max() < 12.0  # predicted along the motion (coasting, slowing down)
    assert np.all(np.diff(out.xy[38:50, 0, 0]) > 0)  # keeps moving forward through the gap
    np.testing.assert_allclose(out.xy[60:, 0], xy[60:, 0], atol=0.5)  # re-acquired


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_long_occlusion_resets_on_reacquisition(mode):
    t = np.arange(120) / 30.0
    xy = np.full((120, 1, 2), 100.0)
    xy[60:] = 400.0  # the part reappears far away after 2 s
    visible = np.ones((120, 1), bool)
    visible[30:60] = False
    out = SMOOTHERS[mode](make_track(xy, visible=visible, times=t), KalmanFactory())
    np.testing.assert_allclose(out.xy[60, 0], [400, 400], atol=1e-6)  # initialised from the measurement
    np.testing.assert_allclose(out.xy[:30, 0], 100.0, atol=1e-6)  # not smoothed across the reset


def test_rts_beats_forward_filter():
    rng = np.random.default_rng(3)
    t = np.arange(200) / 30.0
    truth = np.stack([320 + 150 * np.sin(1.3 * t), 240 + 100 * np.cos(0.9 * t)], -1)[:, None, :]
    meas = truth + rng.normal(0, 3.0, truth.shape)
    track = make_track(meas, times=t)
    fwd = filter_track(track, KalmanNoise(), FRAME)
    rts = smooth_track(track, KalmanNoise(), FRAME)
    rms = lambda a: float(np.sqrt(np.mean(np.sum((a.xy - truth) ** 2, -1))))  # noqa: E731
    raw_e, fwd_e, rts_e = rms(track), rms(fwd), rms(rts)
    assert rts_e < 0.8 * fwd_e and fwd_e < raw_e


def test_time_step_comes_from_timestamps():
    """Irregular sampling of a constant-velocity motion is followed only if dt is right."""
    rng = np.random.default_rng(4)
    times = np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 10], 100))
    xy = np.stack([100 + 100 * times, 100 + 50 * times], -1)[:, None, :]
    out = filter_track(make_track(xy, times=times), KalmanNoise(), FRAME)
    np.testing.assert_allclose(out.xy[-20:], xy[-20:], atol=0.05)


def test_confidence_weighting_trusts_confident_measurements_more():
    t = np.arange(40) / 30.0
    xy = np.full((40, 1, 2), 200.0)
    meas = xy.copy()
    meas[30, 0, 0] += 10.0
    low = np.ones((40, 1))
    low[30] = 0.1
    out_hi = filter_track(make_track(meas, times=t), KalmanNoise(gate_sigma=None), FRAME)
    out_lo = filter_track(make_track(meas, conf=low, times=t), KalmanNoise(gate_sigma=None), FRAME)
    assert abs(out_lo.xy[30, 0, 0] - 200) < 0.5 * abs(out_hi.xy[30, 0, 0] - 200)


def test_part_never_visible_has_no_pose():
    """A part never visible gets no invented pose (its tiny-mask measurement is not a pose)."""
    track = random_track(misses=False)
    vis = track.visible.copy()
    vis[:, 2] = False
    track = replace(track, visible=vis)
    for out in (filter_track(track, KalmanNoise(), FRAME), smooth_track(track, KalmanNoise(), FRAME),
                run_online(track, KalmanFactory())):
        assert np.isnan(out.xy[:, 2]).all() and np.isnan(out.angle_deg[:, 2]).all() and np.isnan(out.scale[:, 2]).all()
        assert not out.visible[:, 2].any() and np.isfinite(out.xy[:, :2]).all()


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_prediction_stays_in_the_frame_and_ends_after_the_horizon(mode):
    """A part last seen running fast towards the left edge: its predicted centre never leaves
    the frame, and after max_predict_s without a measurement it has no pose (NaN)."""
    t = np.arange(90) / 30.0
    xy = np.stack([200 - 1500 * t, 240 + 0 * t], -1)[:, None, :]  # 50 px per frame to the left
    visible = np.ones((90, 1), bool)
    visible[4:] = False  # lost at x = 50 px, for 2.9 s
    out = SMOOTHERS[mode](make_track(xy, visible=visible, times=t), KalmanFactory(max_predict_s=0.5))
    pred = out.xy[4:, 0]
    has = np.isfinite(pred[:, 0])
    assert has[:15].all() and not has[16:].any()  # 0.5 s = 15 frames at 30 fps
    assert (pred[has] >= 0).all() and (pred[has, 0] <= FRAME[1] - 1).all()
    assert not out.visible[4:].any() and np.isnan(out.angle_deg[20:]).all()


def test_offline_gap_is_bridged_from_both_ends():
    """Offline, a frame within max_predict_s of a visible frame before *or after* it keeps a
    pose, so a gap up to twice the horizon is bridged and only its middle is without one."""
    t = np.arange(100) / 25.0
    xy = np.stack([100 + 20 * t, 200 + 0 * t], -1)[:, None, :]
    visible = np.ones((100, 1), bool)
    visible[20:80] = False  # 2.4 s gap
    out = smooth_track(make_track(xy, visible=visible, times=t), KalmanNoise(max_predict_s=1.0), FRAME)
    has = np.isfinite(out.xy[:, 0, 0])
    assert has[:44].all() and has[56:].all() and not has[46:54].any()  # last seen t=0.76 s, next t=3.2 s
    with pytest.raises(ValueError):
        KalmanNoise(max_predict_s=-1)


def test_frames_before_first_detection_hold_the_first_value():
    track = random_track(misses=False)
    vis = track.visible.copy()
    vis[:5, 1] = False
    out = smooth_track(replace(track, visible=vis), KalmanNoise(), FRAME)
    np.testing.assert_allclose(out.xy[:5, 1], np.repeat(out.xy[5:6, 1], 5, axis=0))


def test_no_filter_factory_is_identity_and_factory_names():
    track = random_track()
    nf = NoFilterFactory()
    assert nf.smooth(track, FRAME) is track
    assert run_online(track, nf).xy.tolist() == track.xy.tolist()
    assert isinstance(make_factory("offline"), KalmanFactory)
    assert isinstance(make_factory("none"), NoFilterFactory)
    with pytest.raises(ValueError, match="smoother"):
        make_factory("median")
    with pytest.raises(ValueError):
        KalmanNoise(pos_meas=0)


def test_pose_filter_checks_k():
    f = PoseFilter(2, KalmanNoise(), FRAME)
    with pytest.raises(ValueError, match="K=2"):
        f.update(random_track(k=3).poses(0))


def test_online_filter_reset_forgets_state():
    track = random_track(misses=False)
    f = KalmanFactory().create_filter(track.num_parts, FRAME)
    for t in range(20):
        f.update(track.poses(t))
    f.reset()
    out = f.update(track.poses(30))
    np.testing.assert_allclose(out.xy, track.xy[30])  # first frame after reset = measurement


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_persistent_jump_is_followed_after_a_few_gated_frames(mode):
    t = np.arange(60) / 30.0
    xy = np.full((60, 1, 2), 100.0)
    xy[30:] = 300.0  # the part really moved (e.g. the tracker latched onto it late)
    out = SMOOTHERS[mode](make_track(xy, times=t), KalmanFactory())
    n = KalmanNoise().gate_reset_frames
    np.testing.assert_allclose(out.xy[30 + n + 1:, 0], 300.0, atol=1.0)


def test_angle_rate_is_limited():
    """A rotation near 180°/frame is ambiguous; the rate state stays within the limit."""
    t = np.arange(40) / 10.0
    angle = wrap_deg(170.0 * np.arange(40))[:, None]
    f = PoseFilter(1, KalmanNoise(), FRAME)
    for i in range(40):
        f.update(make_track(np.full((40, 1, 2), 50.0), angle, times=t).poses(i))
        assert abs(f.state[0, 2, 1]) <= KalmanNoise().max_angle_rate + 1e-9


@pytest.mark.parametrize("mode", SMOOTHERS)
def test_missing_measurements_may_be_nan(mode):
    """A part without mask pixels has NaN poses (tracker.poses): never read while it is not
    visible; a part never visible stays without a pose."""
    t = 20
    xy = np.stack([np.stack([np.linspace(100, 200, t), np.full(t, 50.0)], -1), np.full((t, 2), 80.0)], 1)
    visible = np.ones((t, 2), bool)
    visible[5:9, 0] = False  # part 1 occluded for a while
    visible[:, 1] = False  # part 2 never measured
    clean = make_track(xy, visible=visible)
    nan_xy, nan_scale, nan_angle = xy.copy(), np.full((t, 2, 2), 20.0), np.zeros((t, 2))
    for arr in (nan_xy, nan_scale, nan_angle):
        arr[~visible] = np.nan
    holes = make_track(nan_xy, angle=nan_angle, scale=nan_scale, visible=visible)
    a, b = SMOOTHERS[mode](clean, KalmanFactory()), SMOOTHERS[mode](holes, KalmanFactory())
    np.testing.assert_allclose(b.xy[:, 0], a.xy[:, 0])
    np.testing.assert_allclose(b.scale[:, 0], a.scale[:, 0])
    assert np.isfinite(b.xy[:, 0]).all() and np.isnan(b.xy[:, 1]).all() and np.isnan(b.angle_deg[:, 1]).all()


# ------------------------------------------------------------------ every Smoother implementation
@pytest.mark.parametrize("name", SMOOTHER_NAMES)
def test_every_smoother_implements_the_protocol(name):
    s = make_factory(name)
    assert isinstance(s, Smoother) and s.name == name and isinstance(s.causal, bool)
    assert isinstance(s.create_filter(3, FRAME), FrameFilter)


@pytest.mark.parametrize("name", SMOOTHER_NAMES)
def test_every_smoother_keeps_the_track_shape_and_passthrough_fields(name):
    track = random_track(40, k=3, seed=1)
    out = make_factory(name).smooth(track, FRAME)
    assert isinstance(out, Track) and len(out) == len(track) and out.num_parts == track.num_parts
    np.testing.assert_array_equal(out.index, track.index)
    np.testing.assert_array_equal(out.time_s, track.time_s)
    np.testing.assert_array_equal(out.visible, track.visible)
    np.testing.assert_array_equal(out.area_px, track.area_px)
    ok = np.isfinite(out.angle_deg)
    assert np.all((out.angle_deg[ok] > -180.0) & (out.angle_deg[ok] <= 180.0))


@pytest.mark.parametrize("name", SMOOTHER_NAMES)
def test_a_causal_smoother_equals_its_filter_frame_by_frame(name):
    s = make_factory(name)
    track = random_track(40, k=3, seed=2)
    stepped = run_online(track, s)
    whole = s.smooth(track, FRAME)
    if s.causal:
        np.testing.assert_allclose(whole.xy, stepped.xy, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(whole.angle_deg, stepped.angle_deg, atol=1e-9, equal_nan=True)
        # causal: the first frames do not depend on later ones
        head = s.smooth(Track(*(getattr(track, f)[:20] for f in ("index", "time_s", "xy", "angle_deg", "scale",
                                                                    "area_px", "visible", "confidence"))), FRAME)
        np.testing.assert_allclose(head.xy, whole.xy[:20], atol=1e-9, equal_nan=True)
    else:  # RTS uses later frames: it differs from the forward filter somewhere
        assert not np.allclose(whole.xy, stepped.xy, equal_nan=True)


@pytest.mark.parametrize("name", SMOOTHER_NAMES)
def test_every_smoothers_filter_resets(name):
    track = random_track(40, k=2, seed=3)
    f = make_factory(name).create_filter(2, FRAME)
    first = [f.update(track.poses(t)).xy for t in range(5)]
    f.reset()
    again = [f.update(track.poses(t)).xy for t in range(5)]
    for a, b in zip(first, again):
        np.testing.assert_allclose(a, b, equal_nan=True)
