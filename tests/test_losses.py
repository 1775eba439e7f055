"""Each loss is zero (or minimal) on an ideal input and positive on a bad one (engine.losses)."""

from __future__ import annotations

import math

import pytest
import torch

from parttrack.engine import losses as L
from parttrack.engine.warp import compose, random_warps, tuple_to_matrix


def _img(seed=0, n=2, h=16):
    return torch.rand(n, 3, h, h, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_reconstruction_zero_iff_equal():
    a, b = _img(0), _img(1)
    assert L.reconstruction_loss(a, a).item() < 1e-6
    assert L.reconstruction_loss(a, b).item() > 0.1
    # each term alone detects a difference; a weight of 0 switches a term off
    for w in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        assert L.reconstruction_loss(a, b, *w).item() > 0
    assert L.reconstruction_loss(a, b, 0, 0, 0).item() == 0


def test_ssim_distance_properties():
    a = _img(2)
    assert L.ssim_distance(a, a).item() < 1e-6
    assert L.ssim_distance(a, -a).item() > L.ssim_distance(a, a * 0.9).item()


def test_pyramid_halves():
    sizes = [p.shape[-1] for p in L.pyramid(_img(h=32), 3)]
    assert sizes == [32, 16, 8]


def _masks(fg_slot_area: float):
    """K=2 masks: part 1 owns a 4×4 block, part 2 a 2×8 bar, rest background."""
    m = torch.zeros(1, 3, 16, 16)
    m[0, 0] = 1
    m[0, 0, 2:6, 2:6], m[0, 1, 2:6, 2:6] = 0, 1
    m[0, 0, 10:12, 4:12], m[0, 2, 10:12, 4:12] = 0, 1
    return m


def test_background_loss_prefers_background():
    m = _masks(0)
    all_bg = torch.zeros_like(m)
    all_bg[:, 0] = 1
    assert L.background_loss(all_bg).item() == 0
    assert L.background_loss(m).item() > 0


def test_background_subtraction_loss_rewards_telling_changed_from_unchanged_pixels():
    m = _masks(0)                                        # parts own rows 2-5 × cols 2-5 and a bar
    changed = (m[:, 0] < 0.5).float()                    # exactly the parts' pixels
    sure = (m * 2 - 1) * 30                              # depth logits of near-certain masks
    assert L.background_subtraction_loss(sure, changed).item() == pytest.approx(0.0, abs=1e-6)
    # Every pixel on one side costs about the same (½ · 30 nats) although only 1/8 changed...
    all_bg, all_fg = torch.zeros_like(m), torch.zeros_like(m)
    all_bg[:, 0], all_fg[:, 1] = 30, 30
    assert L.background_subtraction_loss(all_bg, changed).item() == pytest.approx(15 - 0.5 * math.log(2), rel=1e-3)
    assert L.background_subtraction_loss(all_fg, changed).item() == pytest.approx(15, rel=1e-3)
    # ...and even a saturated all-background model gets a full-size gradient back (M_0 − 1 = −1
    # per changed pixel, spread over them), unlike a penalty on the masks.
    d = all_bg.clone().requires_grad_(True)
    L.background_subtraction_loss(d, changed).backward()
    g = d.grad[0, 0]
    assert (g[changed[0] > 0] > 0).all()
    assert g[changed[0] > 0].sum().item() == pytest.approx(0.5, rel=1e-3)


def test_background_subtraction_loss_leaves_ignored_pixels_out_of_both_classes():
    """``ignore``: whatever the masks do on the ignored pixels, the loss is the one of the other
    pixels alone (zero for certain masks that match them)."""
    m = _masks(0)
    changed = (m[:, 0] < 0.5).float()
    sure = (m * 2 - 1) * 30
    ignore = torch.zeros_like(changed)
    ignore[0, 10:12, :] = 1                              # two rows the map cannot tell
    wrong = sure.clone()
    wrong[0, :, 10:12, :] = sure[0, :, 10:12, :].flip(0)  # the masks say the opposite there
    assert L.background_subtraction_loss(wrong, changed).item() > 1.0
    assert L.background_subtraction_loss(wrong, changed, ignore=ignore).item() == pytest.approx(0.0, abs=1e-6)
    d = torch.randn_like(m).requires_grad_(True)
    L.background_subtraction_loss(d, changed, ignore=ignore).backward()
    assert d.grad[0, :, 10:12, :].abs().max().item() == 0.0
    for soft in (False, True):
        keep = ignore[0] == 0
        whole = L.background_subtraction_loss(d[..., keep.all(1), :], changed[..., keep.all(1), :], soft=soft)
        assert L.background_subtraction_loss(d, changed, ignore=ignore, soft=soft).item() == \
            pytest.approx(whole.item(), rel=1e-5)


def test_soft_background_subtraction_loss_matches_the_binary_one_and_is_lowest_at_the_share():
    m = _masks(0)
    changed = (m[:, 0] < 0.5).float()
    d = torch.randn_like(m)
    assert L.background_subtraction_loss(d, changed, soft=True).item() == \
        pytest.approx(L.background_subtraction_loss(d, changed).item(), rel=1e-5)
    # A soft map: the parts' pixels fully changed, two rows changed by a quarter. The best foreground
    # probability of every pixel is its share, whatever the class sizes.
    share = changed.clone()
    share[0, 10:12, :] = 0.25

    def loss(logit):
        depth = torch.stack([torch.zeros_like(logit)] + [logit - math.log(m.shape[1] - 1)] * (m.shape[1] - 1), 1)
        return L.background_subtraction_loss(depth, share, soft=True)   # 1 − M_0 = sigmoid(logit)

    target = torch.logit(share.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)
    g = torch.autograd.grad(loss(target), target)[0]
    g_off = torch.autograd.grad(loss(target + 0.3), target)[0]
    assert g.abs().max().item() < 0.01 * g_off[share == 0.25].abs().min().item()
    with torch.no_grad():
        assert loss(target).item() < loss(target + 0.3).item()
        assert loss(target).item() < loss(target - 0.3).item()


def test_transformation_losses_zero_for_matching_moments():
    m = _masks(0)
    centroid, cov, _ = L.mask_moments(m)
    # A = R(θ)·diag(s) with A Aᵀ = Σ: eigen-decomposition of each covariance
    tfs = []
    for k in range(2):
        evals, evecs = torch.linalg.eigh(cov[0, k].double())
        s = evals.clamp_min(0).sqrt()
        th = math.atan2(evecs[1, 0].item(), evecs[0, 0].item())
        tfs.append([s[0].item(), s[1].item(), math.sin(th), math.cos(th), *centroid[0, k].tolist()])
    good = torch.tensor([tfs], dtype=torch.float32)
    t_loss, c_loss = L.transformation_losses(good, m)
    assert t_loss.item() < 1e-5 and c_loss.item() < 1e-4
    bad = good.clone()
    bad[..., 4] += 0.3
    bad[..., 0] *= 2
    t_bad, c_bad = L.transformation_losses(bad, m)
    assert t_bad.item() > 0.2 and c_bad.item() > 1e-3


def test_equivariance_loss():
    tf = torch.tensor([[[0.2, 0.1, 0.0, 1.0, 0.1, -0.3], [0.3, 0.3, 0.6, 0.8, -0.2, 0.2]]])
    wm = random_warps(1, generator=torch.Generator().manual_seed(3))
    m = compose(wm[:, None].expand(-1, 2, -1, -1), tuple_to_matrix(tf))
    # back to a 6-tuple: s = column norms of A, θ from the first column
    sx, sy = m[..., :2, 0].norm(dim=-1), m[..., :2, 1].norm(dim=-1)
    warped = torch.stack([sx, sy, m[..., 1, 0] / sx, m[..., 0, 0] / sx, m[..., 0, 2], m[..., 1, 2]], -1)
    assert L.equivariance_loss(wm, tf, warped).item() < 1e-5
    assert L.equivariance_loss(wm, tf, tf).item() > 1e-3


def test_concentration_loss_prefers_compact_masks():
    compact = _masks(0)
    spread = compact.clone()
    spread[0, 1, 14, 14], spread[0, 0, 14, 14] = 1, 0   # a far-away pixel joins part 1
    assert L.concentration_loss(compact).item() < L.concentration_loss(spread).item()


def test_mask_entropy_loss_is_zero_on_hard_masks_and_one_on_uniform_ones():
    hard = _masks(0)
    assert L.mask_entropy_loss(hard).item() < 1e-4
    uniform = torch.full_like(hard, 1.0 / hard.shape[1])
    assert abs(L.mask_entropy_loss(uniform).item() - 1.0) < 1e-5
    soft = 0.7 * hard + 0.3 * uniform
    assert 0.1 < L.mask_entropy_loss(soft).item() < 1.0


def test_assemble_picks_slot_images():
    m = _masks(0)
    parts = torch.stack([torch.full((3, 16, 16), v) for v in (-1.0, 0.0, 1.0)])[None]
    out = L.assemble(m, parts)
    assert out[0, :, 3, 3].tolist() == [0.0] * 3 and out[0, :, 11, 5].tolist() == [1.0] * 3
    assert out[0, :, 0, 0].tolist() == [-1.0] * 3


def test_part_usage_counts_only_where_asked():
    """A part parked on pixels outside ``where`` (the scenery) counts as unused there."""
    from parttrack.engine.losses import part_usage_loss

    masks = torch.zeros(1, 3, 4, 4)
    masks[0, 0] = 1.0
    masks[0, 0, :, :2] = 0.0
    masks[0, 1, :, 0] = 1.0          # part 1 on the moving column 0
    masks[0, 2, :, 1] = 1.0          # part 2 on the static column 1
    moving = torch.zeros(1, 4, 4)
    moving[0, :, 0] = 1.0
    assert part_usage_loss(masks, 0.3).item() == 0.0
    assert part_usage_loss(masks, 0.3, moving).item() > 0.3


def _textured_background(h: int = 48, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, h, w, generator=g) * 1.2 - 0.6)          # [-0.6, 0.6]: no clipping at gain 1.3


def test_illumination_gain_is_one_on_an_unchanged_frame():
    bg = _textured_background()
    gain = L.illumination_gain(bg[None].repeat(2, 1, 1, 1), bg)
    assert gain.shape == (2, 1, 48, 64)
    assert torch.allclose(gain, torch.ones_like(gain), atol=1e-3)


def test_illumination_gain_recovers_gain_and_gradient_despite_a_moving_subject():
    bg = _textured_background()
    h, w = bg.shape[-2:]
    xs = torch.linspace(-1, 1, w).view(1, 1, w).expand(1, h, w)
    true_gain = 1.2 * torch.exp(0.1 * xs)                                # global gain and a left-right gradient
    lit = ((bg + 1) * 0.5 + 0.02) * true_gain - 0.02                     # exact in the log-grey model
    frame = (lit * 2 - 1).clone()
    frame[:, 10:30, 20:36] = 0.9                                          # the subject: a bright blob, an outlier
    gain = L.illumination_gain(frame[None], bg)[0]
    # the fit uses the grey level (mean over RGB), so compare on the scenery pixels only
    scenery = torch.ones(h, w, dtype=torch.bool)
    scenery[10:30, 20:36] = False
    err = (gain[0] - true_gain[0]).abs()[scenery]
    assert err.median() < 0.03 and err.max() < 0.15
    # on the same frame without the light change the gain stays near 1: the blob does not bias it
    still = bg.clone()
    still[:, 10:30, 20:36] = 0.9
    g0 = L.illumination_gain(still[None], bg)[0, 0]
    assert (g0 - 1).abs().max() < 0.05


def test_cluster_loss_zero_for_permuted_one_hot_masks_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (2, 8, 8), generator=g)                    # K = 4 parts + background
    targets = torch.nn.functional.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    perm = torch.tensor([0, 3, 1, 4, 2])                                      # parts in another order
    masks = targets[:, perm]
    assert float(L.cluster_loss(masks, targets)) < 1e-4
    uniform = torch.full_like(targets, 0.2)
    assert float(L.cluster_loss(uniform, targets)) == pytest.approx(math.log(5), rel=1e-4)
    swapped_bg = targets[:, [1, 0, 2, 3, 4]]                                  # background slot is not permuted
    assert float(L.cluster_loss(swapped_bg, targets)) > 1.0
    # invalid frames do not count
    valid = torch.tensor([True, False])
    mixed = torch.stack([masks[0], uniform[1]])
    assert float(L.cluster_loss(mixed, targets, valid)) < 1e-4


def _square_depth(h: int, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """(1, K+1, h, h) depth logits: slot 0 flat at 0, part k high (6) inside its box (y0, y1, x0, x1)."""
    depth = torch.full((1, len(boxes) + 1, h, h), -6.0)
    depth[:, 0] = 0.0
    for k, (y0, y1, x0, x1) in enumerate(boxes, 1):
        depth[0, k, y0:y1, x0:x1] = 6.0
    return depth


def _moved_masks(depth_s: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """The trainer's retargeting of the source depth: each part slot warped by its ``rel``
    ``(K, 2, 3)``, the background slot kept, softmax over slots."""
    from parttrack.engine.warp import warp

    moved = warp(depth_s[0, 1:, None] + 20.0, rel)[:, 0] - 20.0
    return torch.softmax(torch.cat([depth_s[:, :1], moved[None]], 1), 1)


def test_mask_consistency_zero_when_target_masks_are_the_moved_source_masks():
    h = 32
    src = _square_depth(h, [(8, 16, 4, 10), (20, 28, 18, 26)])
    tgt = _square_depth(h, [(8, 16, 8, 14), (20, 28, 18, 26)])   # part 1 moved 4 px right, part 2 still
    shift = torch.tensor([[[1.0, 0.0, 8.0 / h], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    still = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    m_t = torch.softmax(tgt, 1)
    right = L.mask_consistency_loss(_moved_masks(src, shift), m_t).item()
    wrong = L.mask_consistency_loss(_moved_masks(src, still), m_t).item()
    assert right < 1e-3                      # only softmax tails differ, at the zero-padded border
    assert wrong > 0.02                      # part 1's 8×6 box disagrees on 2 × 8×4 of 1,024 pixels
    assert L.mask_consistency_loss(m_t, m_t).item() == 0.0
    with pytest.raises(ValueError, match="mask shapes differ"):
        L.mask_consistency_loss(m_t, m_t[:, :2])


def test_mask_equivariance_zero_when_the_masks_move_with_the_image():
    from parttrack.engine.warp import warp

    h = 32
    masks = torch.softmax(_square_depth(h, [(8, 16, 4, 10), (18, 28, 16, 26)]), 1).expand(2, -1, -1, -1)
    # a shift by 4 px and a turn by 10° with a small zoom, both within the trainer's warp range
    th = math.radians(10.0)
    wm = torch.tensor([[[1.0, 0.0, 8.0 / h], [0.0, 1.0, 0.0]],
                       [[1.05 * math.cos(th), -1.05 * math.sin(th), 0.05], [1.05 * math.sin(th), 1.05 * math.cos(th), 0.0]]])
    moved = warp(masks, wm, padding_mode="border")
    assert L.mask_equivariance_loss(moved, masks, wm).item() == pytest.approx(0.0, abs=1e-6)
    # a segmentation that stays where it was while the image moves
    still = L.mask_equivariance_loss(masks, masks, wm).item()
    assert still > 0.05
    # pixels that the warp brings in from outside the frame are not compared: a mask that differs
    # only there costs nothing
    outside = warp(torch.ones_like(masks[:, :1]), wm) <= 0.999
    assert outside[0].any()
    other = torch.where(outside, masks.flip(1), moved)
    assert L.mask_equivariance_loss(other, masks, wm).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="mask shapes differ"):
        L.mask_equivariance_loss(masks, masks[:, :2], wm)


def _two_layer_scene(h: int = 16, w: int = 16):
    """Left half rotates about its centre, right half translates; background (a border) still."""
    xs = (torch.arange(w, dtype=torch.float64) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=torch.float64) * 2 + 1) / h - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    left = (gx < 0).to(torch.float64)
    right = 1.0 - left
    fx = left * (-0.1 * (gy + 0.1)) + right * 0.08
    fy = left * (0.1 * (gx + 0.5)) + right * -0.03
    flow = torch.stack([fx, fy])[None]
    return left, right, flow


def test_motion_layer_loss_zero_on_true_layers_and_positive_when_parts_straddle():
    left, right, flow = _two_layer_scene()
    weight = torch.ones(1, 16, 16, dtype=torch.float64)
    bg = torch.full_like(left, 0.2)
    exact = torch.stack([bg, 0.8 * left, 0.8 * right])[None]
    assert float(L.motion_layer_loss(exact, flow, weight)) < 1e-3
    # Parts split top / bottom: each straddles the two motions.
    top = (torch.arange(16) < 8).to(torch.float64)[:, None].expand(16, 16)
    straddle = torch.stack([bg, 0.8 * top, 0.8 * (1 - top)])[None]
    assert float(L.motion_layer_loss(straddle, flow, weight)) > 0.01
    # Untrusted flow counts for nothing.
    assert float(L.motion_layer_loss(straddle, flow, torch.zeros_like(weight))) == 0.0


def test_motion_layer_loss_moves_pixels_to_the_part_that_explains_them_not_to_the_background():
    left, right, flow = _two_layer_scene()
    weight = torch.ones(1, 16, 16, dtype=torch.float64)
    # Part 1 on the left half plus one column of the right half; part 2 on the rest.
    stray = torch.zeros_like(left)
    stray[:, 8] = 1.0
    logits = torch.stack([torch.zeros_like(left), 4 * (left + stray), 4 * (right - stray)])[None].requires_grad_()
    L.motion_layer_loss(torch.softmax(logits, 1), flow, weight).backward()
    g = logits.grad[0]
    assert float(g[2, :, 8].mean()) < 0 < float(g[1, :, 8].mean())    # the stray column goes to part 2
    assert float(g.sum(0).abs().max()) < 1e-9                          # softmax: gradients sum to 0 per pixel
    # The background slot is held out: foreground mass only moves between parts.
    assert float(g[0].abs().max()) < 1e-9


def test_motion_layer_loss_rejects_bad_shapes():
    with pytest.raises(ValueError):
        L.motion_layer_loss(torch.ones(1, 3, 8, 8), torch.zeros(1, 2, 8, 4), torch.ones(1, 8, 8))
