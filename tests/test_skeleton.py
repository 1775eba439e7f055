"""Skeleton: adjacency from touching masks, joints as the point moving rigidly with both parts."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.tracker.core import PartPoses, Track
from parttrack.tracker.skeleton import (
    ContactAccumulator,
    JointAccumulator,
    OnlineSkeleton,
    Skeleton,
    fit_skeleton,
    rotations,
    skeleton_from_track,
)


def hinge_track(n=80, noise=0.0, seed=0, relative_motion=True):
    """Two parts hinged at a moving pivot. Part 1's centre is 40 px from the pivot along its
    −first axis; part 2's is 30 px along its first axis and 5 px along its second axis."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 25.0
    pivot = np.stack([200 + 30 * np.sin(t), 150 + 20 * np.cos(0.7 * t)], -1)
    a1 = 20 * np.sin(0.5 * t)
    a2 = a1 + (70 * np.sin(2.1 * t) if relative_motion else 15.0)
    r1, r2 = rotations(a1), rotations(a2)
    c1 = pivot - np.einsum("nij,j->ni", r1, [-40.0, 0.0])  # pivot = c1 + R1 (-40, 0)... so c1 = pivot - R1 u1
    c2 = pivot - np.einsum("nij,j->ni", r2, [-30.0, -5.0])
    xy = np.stack([c1, c2], 1) + rng.normal(0, noise, (n, 2, 2))
    ang = np.stack([a1, a2], 1) + rng.normal(0, noise * 0.3, (n, 2))
    track = Track(np.arange(n), t, xy, ang, np.full((n, 2, 2), 10.0), np.full((n, 2), 100.0),
                  np.ones((n, 2), bool), np.ones((n, 2)))
    return track, pivot


def test_rotation_columns_are_the_part_axes():
    r = rotations(np.array([0.0, 90.0]))
    np.testing.assert_allclose(r[0], np.eye(2), atol=1e-12)
    np.testing.assert_allclose(r[1][:, 0], [0, -1], atol=1e-12)  # 90° CCW on screen points up (y down)
    np.testing.assert_allclose(r[1][:, 1], [1, 0], atol=1e-12)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_joint_recovers_a_known_hinge(noise):
    track, pivot = hinge_track(noise=noise)
    sk = skeleton_from_track(track, edges=[(1, 2)])
    np.testing.assert_allclose(sk.offsets[0], [[-40, 0], [-30, -5]], atol=0.05 + 0.5 * noise)
    err = np.linalg.norm(sk.joint_xy(track.xy, track.angle_deg)[:, 0] - pivot, axis=-1)
    assert err.max() < 0.05 + 3.5 * noise  # per-frame pose noise moves the joint too
    assert sk.residual_px[0] < 0.01 + 1.5 * noise


def test_joint_not_at_the_hinge_has_a_large_residual():
    track, _ = hinge_track()
    rng = np.random.default_rng(1)
    wild = Track(track.index, track.time_s, track.xy + rng.normal(0, 0, track.xy.shape),
                 track.angle_deg * np.array([1.0, 0.0]), track.scale, track.area_px, track.visible, track.confidence)
    # part 2 no longer rotates with the hinge: no point moves rigidly with both
    sk = skeleton_from_track(wild, edges=[(1, 2)])
    assert sk.residual_px[0] > 5.0


def test_degenerate_hinge_uses_the_contact_prior():
    """Without relative rotation the joint is ambiguous; the mean contact point decides."""
    track, pivot = hinge_track(relative_motion=False)
    contacts = ContactAccumulator(2, np.arange(400.0), np.arange(300.0))
    # contacts exactly at the pivot: label maps with parts 1 | 2 touching at the pivot pixel
    for i in range(len(track)):
        lab = np.zeros((300, 400), np.uint8)
        x, y = int(round(pivot[i, 0])), int(round(pivot[i, 1]))
        lab[y, x - 1], lab[y, x] = 1, 2
        contacts.add(lab[None], track.xy[i:i + 1], track.angle_deg[i:i + 1], track.visible[i:i + 1])
    acc = JointAccumulator(2)
    acc.add(track.xy, track.angle_deg, track.visible)
    sk = fit_skeleton(contacts, acc)
    assert sk.edges.tolist() == [[1, 2]]
    err = np.linalg.norm(sk.joint_xy(track.xy, track.angle_deg)[:, 0] - pivot, axis=-1)
    assert err.max() < 1.5  # contact points were rounded to pixels


def _chain_labels(n_frames=10, with_ac=0):
    """Label maps where 1–2 and 2–3 touch every frame; 1–3 touch in ``with_ac`` frames."""
    labs = np.zeros((n_frames, 20, 30), np.uint8)
    labs[:, 5:15, 2:10] = 1
    labs[:, 5:15, 10:18] = 2
    labs[:, 5:15, 18:26] = 3
    labs[:with_ac, 15:17, 2:26] = 1  # a strip of part 1 under 2 and 3
    return labs


def _add(contacts, labs):
    n = len(labs)
    contacts.add(labs, np.zeros((n, contacts.k, 2)), np.zeros((n, contacts.k)), np.ones((n, contacts.k), bool))


def test_adjacency_from_touching_masks():
    c = ContactAccumulator(3, np.arange(30.0), np.arange(20.0))
    _add(c, _chain_labels(10, with_ac=0))
    np.testing.assert_allclose(c.touch_fraction(), [[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    assert c.edges().tolist() == [[1, 2], [2, 3]]


def test_tree_drops_the_weakest_edge_of_a_cycle():
    c = ContactAccumulator(3, np.arange(30.0), np.arange(20.0))
    _add(c, _chain_labels(10, with_ac=4))  # 1–3 touch in 40 % of the frames
    assert c.touch_fraction()[0, 2] == pytest.approx(0.4)
    assert sorted(map(tuple, c.edges(tree=True).tolist())) == [(1, 2), (2, 3)]
    assert sorted(map(tuple, c.edges(tree=False).tolist())) == [(1, 2), (1, 3), (2, 3)]
    assert sorted(map(tuple, c.edges(min_touch=0.5, tree=False).tolist())) == [(1, 2), (2, 3)]


def test_touch_fraction_counts_only_frames_with_both_visible():
    c = ContactAccumulator(2, np.arange(30.0), np.arange(20.0))
    labs = np.zeros((4, 20, 30), np.uint8)
    labs[:2, :, :10], labs[:2, :, 10:20] = 1, 2
    vis = np.array([[1, 1], [1, 1], [1, 0], [0, 1]], bool)
    c.add(labs, np.zeros((4, 2, 2)), np.zeros((4, 2)), vis)
    assert c.touch_fraction()[0, 1] == pytest.approx(1.0)


def test_skeleton_json_round_trip_and_joints():
    track, pivot = hinge_track()
    sk = skeleton_from_track(track, edges=[(2, 1)])
    assert sk.edges.tolist() == [[1, 2]]
    back = Skeleton.from_json(sk.to_json(("upper", "lower")))
    np.testing.assert_allclose(back.offsets, sk.offsets, atol=1e-4)
    assert sk.to_json(("upper", "lower"))[0]["name"] == "upper-lower"
    j = back.joints(track.poses(3))
    assert j.index == 3 and j.pairs.tolist() == [[1, 2]]
    np.testing.assert_allclose(j.xy[0], pivot[3], atol=0.05)
    frames = back.joints_track(track)
    assert len(frames) == len(track)
    assert Skeleton.from_json([]).joints(track.poses(0)).xy.shape == (0, 2)


def test_online_skeleton_warmup_and_bundle_edges():
    track, pivot = hinge_track()
    labs = np.zeros((20, 30), np.uint8)
    grid = (np.arange(30.0), np.arange(20.0))
    est = OnlineSkeleton(2, *grid, warmup=10)
    fixed = OnlineSkeleton(2, *grid, edges=[(1, 2)])
    out_est, out_fixed = [], []
    for i in range(40):
        p: PartPoses = track.poses(i)
        l2 = labs.copy()
        l2[:, :15], l2[:, 15:] = 1, 2
        out_est.append(est.update(l2, p))
        out_fixed.append(fixed.update(labs, p))
    assert out_est[8] is None and out_est[9] is not None
    assert out_fixed[0] is not None  # bundle edges: joints from the first frame
    np.testing.assert_allclose(out_fixed[-1].xy[0], pivot[39], atol=0.05)
    # (these label maps put the contact ~200 px from the hinge; the weak prior moves it a little)
    np.testing.assert_allclose(out_est[-1].xy[0], pivot[39], atol=0.5)


def test_skeleton_of_the_synthetic_figure():
    """Edges from mask contacts equal the figure's true joints; joint positions near the truth."""
    from parttrack.engine.synthetic import render_video
    from parttrack.tracker.poses import PoseConfig, PoseExtractor
    from tests.fakes import GroundTruthRuntime

    video = render_video(60, size=(160, 120), figure_seed=0, motion_seed=2)
    rt = GroundTruthRuntime(video, input_size=64, mask_size=(64, 64))
    ex = PoseExtractor(rt.letterbox, rt.meta.mask_size, PoseConfig(position="transform"))
    poses = ex.compute(rt.infer(np.zeros((60, 64, 64, 3), np.uint8)))
    contacts = ContactAccumulator(10, ex.grid_x, ex.grid_y)
    contacts.add(poses.labels, poses.xy, poses.angle_deg, poses.visible)
    track = Track(np.arange(60), video.times_s, poses.xy, poses.angle_deg, poses.scale,
                  poses.area_px, poses.visible, poses.confidence)
    sk = skeleton_from_track(track, contacts)
    assert sorted(map(tuple, sk.edges.tolist())) == sorted(map(tuple, video.joint_pairs.tolist()))
    jxy = sk.joint_xy(video.centres, video.angles_deg)
    for j, (a, b) in enumerate(sk.edges):
        gt = [i for i, p in enumerate(video.joint_pairs.tolist()) if p == [a, b]][0]
        assert np.linalg.norm(jxy[:, j] - video.joints[:, gt], axis=-1).max() < 1.0


def test_near_degenerate_pair_falls_back_to_the_contact_point():
    """Two parts whose angles swing together while their centres stay put (no hinge motion,
    poses not rigidly consistent — as on real footage with noisy angles): the least-squares
    joint lands far outside both parts; the contact point is used instead."""
    from parttrack.tracker.skeleton import JointAccumulator

    rng = np.random.default_rng(3)
    n = 200
    xy = np.zeros((n, 2, 2))
    xy[:, 1] = [40.0, 0.0]
    xy += rng.normal(0, 2.0, xy.shape)
    swing = np.linspace(-90, 90, n)
    angle = np.stack([swing, swing + rng.normal(0, 1.0, n)], 1)
    acc = JointAccumulator(2)
    acc.add(xy, angle, np.ones((n, 2), bool))
    pairs = np.array([[1, 2]])
    raw, _ = acc.solve(pairs, None)
    assert np.linalg.norm(raw[0, 0]) > 1.5 * 40  # the implausible solution this guards against
    prior = np.array([[[20.0, 0.0], [-20.0, 0.0]]])
    offsets, _ = acc.solve(pairs, prior)
    assert np.allclose(offsets, prior)


def test_touch_fraction_is_at_most_one_when_parts_touch_while_not_visible():
    """Touches in frames where a part is not visible (its small mask still borders the other)
    count in neither the numerator nor the denominator: the fraction stays ≤ 1."""
    c = ContactAccumulator(2, np.arange(30.0), np.arange(20.0))
    labs = np.zeros((5, 20, 30), np.uint8)
    labs[:, :, :10], labs[:, :, 10:12] = 1, 2  # they touch in every frame
    vis = np.array([[1, 1], [1, 0], [1, 0], [0, 1], [1, 0]], bool)  # both visible once only
    c.add(labs, np.zeros((5, 2, 2)), np.zeros((5, 2)), vis)
    frac = c.touch_fraction()
    assert frac[0, 1] == pytest.approx(1.0) and (frac <= 1.0).all()
    labs[0, :, 10:12] = 0  # the one frame with both visible has no touch
    c2 = ContactAccumulator(2, np.arange(30.0), np.arange(20.0))
    c2.add(labs, np.zeros((5, 2, 2)), np.zeros((5, 2)), vis)
    assert c2.touch_fraction()[0, 1] == 0.0
