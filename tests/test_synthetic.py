"""Synthetic articulated-figure generator: determinism, ground-truth consistency, file I/O."""

import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.engine.synthetic import JOINTS, PART_NAMES, GroundTruth, load_ground_truth, render_video


@pytest.fixture(scope="module")
def video():
    return render_video(40, size=96, figure_seed=3, motion_seed=1)


def test_shapes_and_dtypes(video):
    t, p, j = 40, len(PART_NAMES), len(JOINTS)
    assert video.frames.shape == (t, 96, 96, 3) and video.frames.dtype == np.uint8
    assert video.labels.shape == (t, 96, 96) and video.labels.dtype == np.uint8
    assert video.centres.shape == (t, p, 2) and video.angles_deg.shape == (t, p)
    assert video.joints.shape == (t, j, 2) and video.joint_pairs.shape == (j, 2)
    assert set(np.unique(video.labels)) <= set(range(p + 1))
    assert np.all(video.joint_pairs[:, 0] < video.joint_pairs[:, 1])
    assert np.all((video.angles_deg > -180) & (video.angles_deg <= 180))
    np.testing.assert_allclose(np.diff(video.times_s), 1 / 25.0)


def test_deterministic_and_seeds_matter(video):
    again = render_video(40, size=96, figure_seed=3, motion_seed=1)
    np.testing.assert_array_equal(again.frames, video.frames)
    np.testing.assert_array_equal(again.labels, video.labels)
    new_motion = render_video(40, size=96, figure_seed=3, motion_seed=2)
    assert not np.allclose(new_motion.centres, video.centres)
    # Same figure: same part sizes and (static) background far from the figure.
    np.testing.assert_allclose(new_motion.scales[0], video.scales[0])
    other_figure = render_video(40, size=96, figure_seed=4, motion_seed=1)
    assert not np.allclose(other_figure.scales[0], video.scales[0])


def test_label_centroid_near_part_centre(video):
    """Each part's label region's centroid lies near its GT centre when mostly unoccluded."""
    checked = 0
    for f in range(0, 40, 5):
        for i in range(len(PART_NAMES)):
            ys, xs = np.nonzero(video.labels[f] == i + 1)
            full_area = 4 * video.scales[f, i, 0] * video.scales[f, i, 1]
            if len(xs) < 0.8 * full_area:
                continue  # occluded or cut by the frame edge
            err = np.hypot(xs.mean() - video.centres[f, i, 0], ys.mean() - video.centres[f, i, 1])
            assert err < 0.25 * video.scales[f, i, 0] + 1.0, (f, PART_NAMES[i], err)
            checked += 1
    assert checked > 30


def test_angle_points_along_part(video):
    """The principal axis of a visible limb's label region follows angles_deg (mod 180)."""
    for f in (0, 20, 39):
        for name in ("upper_leg_l", "lower_leg_r", "torso"):
            i = PART_NAMES.index(name)
            ys, xs = np.nonzero(video.labels[f] == i + 1)
            if len(xs) < 0.8 * 4 * np.prod(video.scales[f, i]):
                continue
            cov = np.cov(np.stack([xs, -ys]))   # y up, so the angle is CCW on screen
            evals, evecs = np.linalg.eigh(cov)
            axis = np.degrees(np.arctan2(evecs[1, -1], evecs[0, -1]))
            diff = (axis - video.angles_deg[f, i] + 90) % 180 - 90
            assert abs(diff) < 8, (f, name, axis, video.angles_deg[f, i])


def test_joints_lie_where_two_parts_meet(video):
    """Each joint is inside both of its parts' shapes (in each part's own frame) and on the
    figure's foreground in the label map."""
    for f in range(0, 40, 4):
        lab = video.labels[f]
        for j, (a, b) in enumerate(video.joint_pairs):
            p = video.joints[f, j]
            for pid in (a, b):
                i = pid - 1
                phi = np.radians(video.angles_deg[f, i])
                d = np.array([np.cos(phi), -np.sin(phi)])          # y down, CCW on screen
                rel = p - video.centres[f, i]
                along, across = rel @ d, rel @ np.array([-d[1], d[0]])
                hl, hw = video.scales[f, i]
                assert abs(along) < hl - 1.0 and abs(across) < hw, (f, JOINTS[j][0], pid)
            x, y = np.round(p).astype(int)
            if 0 <= x < 96 and 0 <= y < 96:
                assert lab[y, x] != 0, (f, JOINTS[j][0])  # one of the two, or an occluder


def test_background_is_static(video):
    bg = np.all(video.labels == 0, axis=0)
    diff = np.abs(video.frames[0].astype(int) - video.frames[-1].astype(int))[bg]
    assert diff.mean() < 4.0  # only the per-frame sensor noise


def test_non_square_size():
    v = render_video(3, size=(160, 96))
    assert v.frames.shape == (3, 96, 160, 3)
    assert (v.labels > 0).mean() > 0.03


def test_save_decodes_and_round_trips(tmp_path, video):
    import av

    out = video.save(tmp_path / "clip")
    with av.open(str(out / "video.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == len(video)
    decoded = np.stack(frames)
    assert decoded.shape == video.frames.shape
    assert np.abs(decoded.astype(int) - video.frames.astype(int)).mean() < 6.0
    gt = load_ground_truth(out)
    assert isinstance(gt, GroundTruth)
    np.testing.assert_array_equal(gt.labels, video.labels)
    np.testing.assert_allclose(gt.joints, video.joints)
    assert gt.part_names == video.part_names and gt.fps == video.fps
    assert (gt.figure_seed, gt.motion_seed) == (3, 1)


def test_load_missing_raises(tmp_path):
    with pytest.raises(InputError):
        load_ground_truth(tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError):
        render_video(0)
    with pytest.raises(ValueError):
        render_video(2, size=(8, 8))


def test_mpeg4_fallback_decodes(tmp_path):
    import av

    from parttrack.engine.synthetic import write_video

    v = render_video(6, size=64)
    write_video(tmp_path / "a.mp4", v.frames, v.fps, codec="mpeg4")
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    assert frames.shape == v.frames.shape
    assert np.abs(frames.astype(int) - v.frames.astype(int)).mean() < 10.0
    with pytest.raises(ValueError):
        write_video(tmp_path / "b.mp4", v.frames[:, :63], v.fps)   # odd height


@pytest.mark.parametrize("plan", ["quadruped", "robot_arm"])
def test_other_body_plans(plan):
    from parttrack.engine.synthetic import FigureSpec

    spec = FigureSpec.from_seed(5, plan)
    v = render_video(20, size=96, figure_seed=5, motion_seed=1, plan=plan)
    p, j = spec.num_parts, len(spec.joints)
    assert v.plan == plan and v.part_names == spec.part_names
    assert v.centres.shape == (20, p, 2) and v.joints.shape == (20, j, 2)
    # Every part is seen, and each joint joins two parts whose shapes both contain it.
    assert set(np.unique(v.labels)) >= set(range(1, p + 1)) - {0}
    for f in (0, 10, 19):
        for jn, (a, b) in enumerate(v.joint_pairs):
            for pid in (a, b):
                i = pid - 1
                phi = np.radians(v.angles_deg[f, i])
                d = np.array([np.cos(phi), -np.sin(phi)])
                rel = v.joints[f, jn] - v.centres[f, i]
                along, across = rel @ d, rel @ np.array([-d[1], d[0]])
                assert abs(along) <= v.scales[f, i, 0] + 0.5 and abs(across) <= v.scales[f, i, 1] + 0.5, (plan, f, jn, pid)


def test_size_light_and_compression_options():
    base = render_video(30, size=96, figure_seed=2, motion_seed=1)
    small = render_video(30, size=96, figure_seed=2, motion_seed=1, scale=0.4)
    assert (small.labels > 0).mean() < 0.3 * (base.labels > 0).mean()
    lit = render_video(30, size=96, figure_seed=2, motion_seed=1, light=0.3)
    bg = np.all(base.labels == 0, axis=0)
    means = lit.frames[:, bg].reshape(30, -1).mean(1)
    assert np.ptp(means) > 5.0                          # the light changes over the clip
    np.testing.assert_array_equal(lit.labels, base.labels)
    comp = render_video(30, size=96, figure_seed=2, motion_seed=1, crf=35)
    err = np.abs(comp.frames.astype(int) - base.frames.astype(int)).mean()
    assert 0.5 < err < 12.0
    with pytest.raises(ValueError):
        render_video(2, plan="octopus")
    with pytest.raises(ValueError):
        render_video(2, size=(63, 64), crf=23)


def test_ground_truth_round_trips_plan(tmp_path):
    v = render_video(4, size=64, plan="robot_arm")
    gt = load_ground_truth(v.save(tmp_path / "arm"))
    assert gt.plan == "robot_arm" and gt.part_names == v.part_names


def test_camera_pan_and_zoom_move_scene_and_ground_truth_together(video):
    still = render_video(40, size=96, figure_seed=3, motion_seed=1, pan=(0.0, 0.0), zoom=0.0, cuts=())
    np.testing.assert_array_equal(still.frames, video.frames)          # the defaults change nothing
    assert still.cut_frames == () and np.all(still.camera == np.eye(2, 3))
    v = render_video(40, size=96, figure_seed=3, motion_seed=1, pan=(25.0, -10.0), zoom=0.2)
    t = v.times_s[-1]
    np.testing.assert_allclose(v.camera[-1, :, :2], np.exp(0.2 * t) * np.eye(2))
    np.testing.assert_allclose(v.scales[-1], video.scales[-1] * np.exp(0.2 * t))
    np.testing.assert_allclose(v.angles_deg, video.angles_deg)
    # the frame-0 view is the static camera's; later the scene point under a part centre moves with it
    np.testing.assert_allclose(v.centres[0], video.centres[0], atol=1e-9)
    expected = np.einsum("ij,nj->ni", v.camera[-1, :, :2], video.centres[-1]) + v.camera[-1, :, 2]
    np.testing.assert_allclose(v.centres[-1], expected)
    checked = 0
    for f in (5, 15, 25, 39):
        for i in range(len(PART_NAMES)):
            ys, xs = np.nonzero(v.labels[f] == i + 1)
            if len(xs) < 0.8 * 4 * np.prod(v.scales[f, i]):
                continue
            err = np.hypot(xs.mean() - v.centres[f, i, 0], ys.mean() - v.centres[f, i, 1])
            assert err < 0.25 * v.scales[f, i, 0] + 1.0, (f, PART_NAMES[i], err)
            checked += 1
    assert checked >= 8


def test_cuts_switch_figure_and_background():
    v = render_video(30, size=64, figure_seed=3, motion_seed=1, cuts=(10, 20))
    assert v.cut_frames == (10, 20) and v.shots.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    np.testing.assert_allclose(v.times_s, np.arange(30) / 25.0)
    first = render_video(10, size=64, figure_seed=3, motion_seed=1)
    np.testing.assert_array_equal(v.frames[:10], first.frames)
    second = render_video(10, size=64, figure_seed=4, motion_seed=1)
    np.testing.assert_array_equal(v.frames[10:20], second.frames)
    np.testing.assert_allclose(v.scales[10:20], second.scales)
    for bad in ((0,), (10, 10), (30,), (20, 10)):
        with pytest.raises(ValueError):
            render_video(30, size=64, cuts=bad)
