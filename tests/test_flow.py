"""Optical flow for training pairs (engine.flow) and the motion-layer flow loss (engine.losses)."""

import numpy as np
import pytest
import torch

from parttrack.engine import losses as L
from parttrack.engine.flow import PairFlow, forward_backward, to_gray
from parttrack.engine.warp import identity


def _textured(seed=0, size=128):
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def test_flow_conventions_shift_right_and_down():
    """Content moved by (+3, +2) px: flow x = +3, y = +2 px, i.e. (2·3/S, 2·2/S) normalised."""
    src = _textured()
    tgt = np.roll(np.roll(src, 3, axis=1), 2, axis=0)
    pf = PairFlow((32, 32), "medium")
    flow, weight = pf(src[None], tgt[None])
    assert flow.shape == (1, 2, 32, 32) and weight.shape == (1, 32, 32)
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(np.median(flow[0, 0][inner]), 2 * 3 / 128, atol=0.2 * 2 / 128)
    np.testing.assert_allclose(np.median(flow[0, 1][inner]), 2 * 2 / 128, atol=0.2 * 2 / 128)
    assert weight[0][inner].mean() > 0.9


def test_forward_backward_trusts_a_shift_and_not_what_it_hides():
    """Content shifted by +4 px in x: trusted where the shifted content is seen again; the
    source's last columns leave the frame and the target's first columns are new (np.roll wraps
    them to unrelated content), so neither column band passes the check."""
    import cv2

    src = _textured(2)
    tgt = np.roll(src, 4, axis=1)
    flow, trusted = forward_backward(cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM), src, tgt)
    assert flow.shape == (128, 128, 2) and flow.dtype == np.float32 and trusted.shape == (128, 128)
    inner = (slice(8, -8), slice(8, -12))
    np.testing.assert_allclose(np.median(flow[..., 0][inner]), 4.0, atol=0.2)
    assert trusted[inner].mean() > 0.95
    assert trusted[:, -3:].mean() < 0.5                     # flows out of the frame: never trusted


def test_flow_cache_matches_direct():
    frames = np.stack([_textured(0), np.roll(_textured(0), 2, axis=1), _textured(1)])
    pf = PairFlow((32, 32), "fast")
    a = pf.for_pairs(frames, np.array([0, 1]), np.array([1, 0]))
    b = pf.for_pairs(frames, np.array([0, 1]), np.array([1, 0]))   # from the cache
    c = pf(frames[[0, 1]], frames[[1, 0]])
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(x, z, atol=1e-6)


def test_to_gray_shape():
    assert to_gray(np.zeros((3, 8, 10, 3), np.uint8)).shape == (3, 8, 10)


def test_unknown_preset():
    with pytest.raises(ValueError):
        PairFlow((8, 8), "slowest")


def test_part_flows_of_a_translation():
    rel = identity(1, 1)
    rel[..., 0, 2] = 0.1
    f = L.part_flows(rel, 4, 4)
    assert f.shape == (1, 1, 2, 4, 4)
    torch.testing.assert_close(f[0, 0, 0], torch.full((4, 4), 0.1))
    torch.testing.assert_close(f[0, 0, 1], torch.zeros(4, 4))


def _scene():
    """Left half static (background), right half moving by +0.2 in x (part 1)."""
    h = w = 8
    masks = torch.zeros(1, 3, h, w)
    masks[0, 0, :, :4] = 1
    masks[0, 1, :, 4:] = 1
    rel = identity(1, 2)
    rel[0, 0, 0, 2] = 0.2      # part 1 moves right
    rel[0, 1, 1, 2] = -0.3     # part 2 moves up (unused by the masks)
    flow = torch.zeros(1, 2, h, w)
    flow[0, 0, :, 4:] = 0.2
    return masks, rel, flow, torch.ones(1, h, w)


def test_flow_loss_zero_on_ideal_assignment():
    masks, rel, flow, weight = _scene()
    assert L.flow_loss(masks, rel, flow, weight).item() < 1e-6


def test_flow_loss_positive_on_wrong_assignment_and_gradient_points_right():
    masks, rel, flow, weight = _scene()
    wrong = masks[:, [0, 2, 1]]                      # moving pixels on the part that moves up
    assert L.flow_loss(wrong, rel, flow, weight).item() > 0.1
    on_bg = torch.zeros_like(masks)
    on_bg[:, 0] = 1                                  # everything on the (static) background slot
    assert L.flow_loss(on_bg, rel, flow, weight).item() > 0.05
    logits = torch.zeros(1, 3, 8, 8, requires_grad=True)
    L.flow_loss(torch.softmax(logits, 1), rel, flow, weight).backward()
    g = logits.grad[0]
    assert (g[1, :, 4:] < g[0, :, 4:]).all() and (g[1, :, 4:] < g[2, :, 4:]).all()   # moving pixels → part 1
    assert (g[0, :, :4] < g[1, :, :4]).all()                                        # static pixels → background


def test_flow_loss_ignores_untrusted_pixels():
    masks, rel, flow, weight = _scene()
    flow[0, 0, :, :4] = 5.0            # garbage flow on the left…
    weight[0, :, :4] = 0.0             # …that the consistency check rejected
    assert L.flow_loss(masks, rel, flow, weight).item() < 1e-6


@pytest.mark.parametrize("term", ["flow", "motion_layers"])
def test_trainer_with_a_flow_loss_logs_it(tmp_path, term):
    import csv

    from parttrack.engine.model import NetConfig
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import TrainConfig, Trainer

    frames = render_video(12, 32, figure_seed=1, motion_seed=1).frames
    tc = TrainConfig.from_dict({"steps": 2, "batch": 2, "snapshot_every": 100, "checkpoint_every": 100,
                                "weights": {term: 10.0}})
    tr = Trainer(frames, NetConfig(num_parts=3, input_size=32), tc, tmp_path)
    terms = tr.train_step()
    assert terms[term] > 0 and np.isfinite(terms["total"])
    tr.run(progress=False)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert float(rows[-1][term]) > 0


def test_global_affine_residual_removes_a_camera_pan():
    from parttrack.engine.flow import global_affine_residual

    h = w = 64
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([0.02 * xs + 3.0, -0.01 * ys + 1.0], -1)          # camera: zoom-ish affine + pan
    flow[20:30, 20:30] += (4.0, -2.0)                                   # the subject moves on its own
    res = global_affine_residual(flow, np.ones((h, w), bool))
    assert np.median(res) < 0.05
    assert res[22:28, 22:28].min() > 3.5


def _panning_subject(flutter_frame: int | None = None) -> np.ndarray:
    """(12, 96, 96) uint8: a textured scene the camera pans over 2 px per frame and a textured 24×24
    subject (rows 36–60, columns 30 + t … 54 + t in frame t) moving 3 px per frame in the scene; with
    ``flutter_frame``, in that frame only the 32×32 patch at rows and columns 56–88 shows the scene
    shifted by 6 px."""
    scene = _textured(0, 160)
    blob = _textured(1, 24)
    frames = []
    for t in range(12):
        x0 = 10 + 2 * t                                                  # the camera pans 2 px per frame
        f = scene[20:116, x0:x0 + 96].copy()
        if t == flutter_frame:
            f[56:88, 56:88] = scene[20 + 56:20 + 88, x0 + 50:x0 + 82]
        bx = 30 + 3 * t - 2 * t                                          # the subject moves 3 px per frame in the scene
        f[36:60, bx:bx + 24] = blob
        frames.append(f)
    return np.stack(frames)


def test_moving_pixels_find_the_subject_under_a_camera_pan():
    from parttrack.engine.flow import moving_pixels

    gray = _panning_subject()
    share = moving_pixels(gray, (24, 24), gaps=(2, 4))
    assert share.shape == (12, 24, 24) and share.dtype == np.float32
    t = 6
    bx = 30 + t
    on = share[t, 36 // 4:60 // 4, bx // 4 + 1:(bx + 24) // 4 - 1]
    off = np.ones((24, 24), bool)
    off[36 // 4 - 2:60 // 4 + 2, bx // 4 - 2:(bx + 24) // 4 + 2] = False
    assert on.mean() > 0.6
    assert share[t][off].mean() < 0.1


def _two_layer_flow(n=2, size=16):
    """Left half translates right, right half rotates about the centre: (N, 2, s, s) flow."""
    ys, xs = np.mgrid[0:size, 0:size]
    x, y = (xs + 0.5) * 2 / size - 1, (ys + 0.5) * 2 / size - 1
    left = xs < size // 2
    fx = np.where(left, 0.1, -0.2 * y)
    fy = np.where(left, 0.0, 0.2 * x)
    return np.broadcast_to(np.stack([fx, fy]), (n, 2, size, size)).copy(), left


def test_motion_residual_zero_for_parts_on_the_motion_layers_and_large_across_them():
    from parttrack.engine.flow import motion_residual

    flow, left = _two_layer_flow()
    weight = np.ones((2, 16, 16))
    right_layers = np.zeros((2, 3, 16, 16))
    right_layers[:, 1], right_layers[:, 2] = left, ~left
    assert motion_residual(right_layers, flow, weight) < 1e-6
    top = np.arange(16)[:, None] < 8
    across = np.zeros((2, 3, 16, 16))
    across[:, 1], across[:, 2] = top, ~top               # each part straddles both layers
    assert motion_residual(across, flow, weight) > 0.15       # 0.22
    one = np.zeros((2, 3, 16, 16))
    one[:, 1] = 1.0                                      # a single part: one affine for two motions
    assert motion_residual(one, flow, weight) > 0.3                # 0.36
    untrusted = weight.copy()
    untrusted[:, :, :8] = 0                              # only the rotating layer is trusted: one affine explains it
    assert motion_residual(one, flow, untrusted) < 1e-6


def test_motion_residual_nan_without_motion_and_rejects_bad_shapes():
    from parttrack.engine.flow import motion_residual

    masks = np.zeros((1, 3, 8, 8))
    masks[:, 1] = 1.0
    assert np.isnan(motion_residual(masks, np.zeros((1, 2, 8, 8)), np.ones((1, 8, 8))))
    with pytest.raises(ValueError):
        motion_residual(masks, np.zeros((1, 2, 4, 4)), np.ones((1, 4, 4)))


def test_layer_merge_costs_tell_a_split_rigid_body_from_two_motions():
    from parttrack.engine.flow import layer_merge_costs

    flow, left = _two_layer_flow()
    weight = np.ones((2, 16, 16))
    top = np.arange(16)[:, None] < 8
    masks = np.zeros((2, 5, 16, 16))
    masks[:, 1], masks[:, 2] = left & top, left & ~top  # the rotating layer, split in two
    masks[:, 3] = ~left                                 # the other layer, whole
    share, excess, cost = layer_merge_costs(masks, flow, weight)
    assert np.allclose(share[:3], [0.25, 0.25, 0.5]) and share[3] == 0
    assert cost[0, 1] < 1e-6 and cost[1, 0] < 1e-6      # one rigid body: no cost to move together
    assert cost[2, 0] > 0.1 and cost[0, 2] > 0.1        # two motions
    assert np.isnan(cost[:, 3]).all()                   # the empty part
    assert np.all(excess[:3] < 1e-6)
    masks[:, 2], masks[:, 3] = 0, ~left | (left & ~top)  # part 3 now straddles both layers
    _, excess, _ = layer_merge_costs(masks, flow, weight)
    assert excess[2] > 0.05 and excess[0] < 1e-6


def test_camera_motion_recovers_an_affine_and_follows_the_warp_convention():
    """A flow field made by a known affine map of normalised coordinates gives that map back
    (the subject's own motion left out as an outlier); on a real pair of frames (a textured
    scene moved by (+3, +2) px, then turned 2° about the centre), ``warp(source, M)`` lands on the target."""
    import cv2

    from parttrack.engine.flow import camera_motion
    from parttrack.engine.warp import warp

    h = w = 32
    m = np.array([[1.03, -0.02, 0.05], [0.01, 0.98, -0.04]], np.float32)
    uy, ux = np.meshgrid((np.arange(h) + 0.5) * 2 / h - 1, (np.arange(w) + 0.5) * 2 / w - 1, indexing="ij")
    flow = np.stack([m[0, 0] * ux + m[0, 1] * uy + m[0, 2] - ux, m[1, 0] * ux + m[1, 1] * uy + m[1, 2] - uy])
    flow[:, 10:16, 10:16] += 0.3                                      # a subject moving on its own
    got = camera_motion(flow[None].astype(np.float32), np.ones((1, h, w), np.float32))
    np.testing.assert_allclose(got[0], m, atol=1e-4)
    untrusted = camera_motion(flow[None].astype(np.float32), np.zeros((1, h, w), np.float32))
    np.testing.assert_allclose(untrusted[0], [[1, 0, 0], [0, 1, 0]])

    src = _textured(3)
    moved = np.roll(np.roll(src, 3, axis=1), 2, axis=0)
    tgt = cv2.warpAffine(moved, cv2.getRotationMatrix2D((63.5, 63.5), 2.0, 1.0), (128, 128),
                         borderMode=cv2.BORDER_REFLECT)
    flow, weight = PairFlow((32, 32), "medium")(src[None], tgt[None])
    cam = torch.from_numpy(camera_motion(flow, weight))
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]   # noqa: E731
    inner = (slice(12, -12), slice(12, -12))
    err = (warp(as_tensor(src), cam, padding_mode="border") - as_tensor(tgt))[0, 0][inner].abs().mean()
    still = (as_tensor(src) - as_tensor(tgt))[0, 0][inner].abs().mean()
    assert err < 0.25 * still


def test_moving_camera_training_moves_the_background_slot(tmp_path):
    """With a moving camera the background slot follows the camera (``camera_background``,
    the default) and needs each pair's flow; the paper's unmoved slot without it; a static
    camera needs neither."""
    from parttrack.engine.model import NetConfig
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import TrainConfig, Trainer

    frames = render_video(12, 32, figure_seed=1, motion_seed=1, pan=(30.0, 0.0)).frames
    net = NetConfig(num_parts=3, input_size=32)
    common = {"steps": 2, "batch": 2, "snapshot_every": 100, "checkpoint_every": 100}
    moving = Trainer(frames, net, TrainConfig.from_dict({**common, "static_background": False}), tmp_path / "m")
    still = Trainer(frames, net, TrainConfig.from_dict({**common, "static_background": False,
                                                        "camera_background": False}), tmp_path / "s")
    static = Trainer(frames, net, TrainConfig.from_dict(common), tmp_path / "c")
    assert moving.moves_background and moving.pair_flow is not None
    assert not still.moves_background and still.pair_flow is None
    assert not static.moves_background and static.pair_flow is None
    for tr in (moving, still):
        tr.rng = np.random.default_rng(0)
        torch.manual_seed(0)
        src, tgt = tr.sample_pairs()
        with torch.no_grad():
            terms = tr.losses(src, tgt)[1]
        assert np.isfinite(terms["rec_target"])
    moving.run(progress=False)
    assert moving.step == 2


def test_moving_pixels_with_two_votes_ignore_scenery_that_moves_in_one_comparison_only():
    """A patch of the scenery that jumps in one frame only (a flutter, a flow error) moves in one
    of frame t's comparisons: ``min_votes=1`` calls it moving, ``min_votes=2`` does not; the
    subject, which moves against every neighbour, is found either way."""
    from parttrack.engine.flow import moving_pixels

    gray = _panning_subject(flutter_frame=8)
    one, two = (moving_pixels(gray, (24, 24), gaps=(2, 4), min_votes=v, indices=np.array([6])) for v in (1, 2))
    patch = np.s_[0, 60 // 4:84 // 4, 60 // 4:84 // 4]
    subject = np.s_[0, 36 // 4:60 // 4, 36 // 4 + 1:60 // 4 - 1]
    assert one[patch].mean() > 0.4                                       # 0.61
    assert two[patch].mean() < 0.1                                       # 0.00
    assert one[subject].mean() > 0.6 and two[subject].mean() > 0.6
    with pytest.raises(ValueError, match="min_votes"):
        moving_pixels(gray, (24, 24), min_votes=0)


def test_moving_pixel_levels_gives_each_vote_counts_map_from_one_flow():
    """One pass, several vote counts: each map is the one :func:`moving_pixels` gives for that
    count, and a map that asks for more votes lies inside one that asks for fewer."""
    from parttrack.engine.flow import moving_pixel_levels, moving_pixels

    gray = _panning_subject(flutter_frame=8)
    idx = np.array([4, 6])
    levels = moving_pixel_levels(gray, (24, 24), gaps=(2, 4), min_votes=(2, 1), indices=idx)
    assert levels.shape == (2, 2, 24, 24) and levels.dtype == np.float32
    for i, votes in enumerate((2, 1)):
        np.testing.assert_array_equal(levels[i], moving_pixels(gray, (24, 24), gaps=(2, 4), min_votes=votes,
                                                               indices=idx))
    assert (levels[0] <= levels[1]).all() and levels[1].sum() > levels[0].sum()
    with pytest.raises(ValueError, match="min_votes"):
        moving_pixel_levels(gray, (24, 24), min_votes=())


def test_moving_unsure_leaves_pixels_that_move_in_one_comparison_out_of_the_change_prior(tmp_path, monkeypatch):
    """``moving_unsure``: the trainer keeps the one-vote map beside the two-vote one, and the
    change prior neither pulls its extra pixels to the foreground nor pushes them to the
    background."""
    from parttrack.engine.model import NetConfig
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import TrainConfig, Trainer

    frames = render_video(16, 32, figure_seed=1, motion_seed=1, pan=(30.0, 0.0)).frames
    net = NetConfig(num_parts=3, input_size=32)
    common = {"steps": 1, "batch": 2, "snapshot_every": 100, "checkpoint_every": 100,
              "static_background": False, "moving_votes": 2}
    plain = Trainer(frames, net, TrainConfig.from_dict(common), tmp_path / "p")
    unsure = Trainer(frames, net, TrainConfig.from_dict({**common, "moving_unsure": True}), tmp_path / "u")
    assert plain.moving_any is None
    torch.testing.assert_close(unsure.moving, plain.moving)
    assert (unsure.moving_any >= unsure.moving).all() and unsure.moving_any.sum() > unsure.moving.sum()
    seen = []
    real = L.background_subtraction_loss

    def spy(depth, changed, **kw):
        seen.append(kw.get("ignore"))
        return real(depth, changed, **kw)

    monkeypatch.setattr(L, "background_subtraction_loss", spy)
    for tr in (plain, unsure):
        tr.rng = np.random.default_rng(0)
        torch.manual_seed(0)
        src, tgt = tr.sample_pairs()
        with torch.no_grad():
            tr.losses(src, tgt)
    assert seen[0] is None
    ignored = seen[1]
    assert ignored is not None and ignored.sum() > 0 and set(ignored.unique().tolist()) <= {0.0, 1.0}
