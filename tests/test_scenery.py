"""engine.scenery: a generated video with a known scenery part and a never-visible part."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.scenery import (
    PartEdits,
    SceneryThresholds,
    apply_part_edits,
    detect_scenery,
    fold_into_background,
    scenery_edits,
)
from parttrack.engine.synthetic import render_video

N, SIZE, MASK, PATCH = 48, 128, 32, 24


def _static_patch(labels: np.ndarray) -> tuple[int, int]:
    """Top-left (y, x) of a PATCH² square the figure never enters."""
    ever = (labels > 0).any(axis=0)
    for y in range(0, SIZE - PATCH, 4):
        for x in range(0, SIZE - PATCH, 4):
            if not ever[y:y + PATCH, x:x + PATCH].any():
                return y, x
    raise AssertionError("no free background patch")


def _video_with_scenery(plan: str, figure_seed: int):
    """Frames, soft masks (N, P+3, 32, 32) and the ids of the scenery and the empty part.

    Slots: 0 background, 1..P the figure's ground-truth parts, P+1 a static background
    patch, P+2 a part that is never visible. Masks are the area-averaged one-hot ground truth
    with a softmax-like floor on every slot."""
    v = render_video(N, size=SIZE, figure_seed=figure_seed, motion_seed=3, plan=plan)
    p = v.num_parts
    k1 = p + 3
    onehot = np.zeros((N, k1, SIZE, SIZE), np.float32)
    for k in range(p + 1):
        onehot[:, k] = v.labels == k
    y, x = _static_patch(v.labels)
    onehot[:, p + 1, y:y + PATCH, x:x + PATCH] = onehot[:, 0, y:y + PATCH, x:x + PATCH]
    onehot[:, 0, y:y + PATCH, x:x + PATCH] = 0
    f = SIZE // MASK
    masks = onehot.reshape(N, k1, MASK, f, MASK, f).mean(axis=(3, 5))
    masks = 0.97 * masks + 0.03 / k1
    masks[:, p + 2] *= 0.01
    masks /= masks.sum(axis=1, keepdims=True)
    return v.frames, masks.astype(np.float32), p + 1, p + 2


@pytest.mark.parametrize("plan, seed", [("humanoid", 0), ("quadruped", 1), ("robot_arm", 2)])
def test_flags_exactly_the_scenery_and_the_empty_part(plan, seed):
    frames, masks, scenery, empty = _video_with_scenery(plan, seed)
    scores = detect_scenery(masks, frames)
    assert [s.part for s in scores] == list(range(1, masks.shape[1]))
    assert {s.part for s in scores if s.scenery} == {scenery, empty}
    patch, never = scores[scenery - 1], scores[empty - 1]
    assert "static" in patch.reason and "background" in patch.reason
    assert patch.change < 0.01 and patch.on_background > 0.99
    assert never.reason.startswith("never visible") and never.visible_frac == 0.0
    for s in scores:
        assert s.scenery == bool(s.reason)


def test_without_frames_the_static_test_still_fires():
    _, masks, scenery, empty = _video_with_scenery("humanoid", 0)
    scores = detect_scenery(masks)
    assert {s.part for s in scores if s.scenery} == {scenery, empty}
    assert np.isnan(scores[0].on_background)


def test_a_part_scattered_over_the_frame_is_spread():
    rng = np.random.default_rng(0)
    n, k1 = 20, 3
    masks = np.full((n, k1, MASK, MASK), 0.01, np.float32)
    masks[:, 0] = 0.98
    masks[:, 1, 10:16, 12:18] = 0.98  # a compact blob that moves
    masks[:, 0, 10:16, 12:18] = 0.01
    for t in range(n):
        masks[t, 1] = np.roll(masks[t, 1], t, axis=1)
        masks[t, 0] = 1.0 - masks[t, 1] - masks[t, 2]
        pix = rng.choice(MASK * MASK, 40, replace=False)  # scattered pixels, new each frame
        ys, xs = np.unravel_index(pix, (MASK, MASK))
        masks[t, 2, ys, xs] = 0.9
        masks[t, 0, ys, xs] = 0.05
    masks /= masks.sum(axis=1, keepdims=True)
    scores = detect_scenery(masks, thresholds=SceneryThresholds())
    assert not scores[0].scenery and scores[0].compactness > 0.8
    assert scores[1].scenery and "spread" in scores[1].reason and scores[1].compactness < 0.25


def test_fold_and_merge_keep_the_pixel_sums():
    frames, masks, scenery, empty = _video_with_scenery("humanoid", 0)
    scores = detect_scenery(masks, frames)
    edits = scenery_edits(scores, PartEdits(merged=((3, 4),)))
    assert edits.dropped == (scenery, empty) and edits.merged == ((3, 4),)
    out = apply_part_edits(masks, edits)
    assert out.shape == masks.shape and out.dtype == masks.dtype
    np.testing.assert_allclose(out.sum(axis=1), masks.sum(axis=1), atol=1e-6)
    for part in (scenery, empty, 4):
        assert not out[:, part].any()
    np.testing.assert_allclose(out[:, 3], masks[:, 3] + masks[:, 4], atol=1e-6)
    np.testing.assert_allclose(out[:, 0], masks[:, 0] + masks[:, scenery] + masks[:, empty], atol=1e-6)
    folded = fold_into_background(masks[0], [scenery])  # one frame (K+1, h, w)
    np.testing.assert_allclose(folded[0], masks[0, 0] + masks[0, scenery], atol=1e-6)
    assert apply_part_edits(masks, PartEdits()) is masks
    hwc = np.moveaxis(masks[0], 0, -1)  # slots last
    np.testing.assert_allclose(fold_into_background(hwc, [2], axis=-1)[..., 0], hwc[..., 0] + hwc[..., 2])


@pytest.mark.parametrize("kwargs, words", [
    ({"dropped": (0,)}, "1-based"),
    ({"merged": ((2, 2),)}, "itself"),
    ({"merged": ((1, 2), (3, 2))}, "more than once"),
    ({"merged": ((1, 2), (2, 3))}, "cannot receive"),
    ({"dropped": (2,), "merged": ((1, 2),)}, "both dropped"),
])
def test_invalid_edits(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PartEdits(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="no part 5"):
        apply_part_edits(np.zeros((2, 4, 8, 8), np.float32), PartEdits(dropped=(5,)))
    with pytest.raises(ValueError, match=r"\(N, K\+1, h, w\)"):
        detect_scenery(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="frames must be"):
        detect_scenery(np.full((4, 2, 8, 8), 0.5, np.float32), np.zeros((3, 8, 8, 3), np.uint8))


def test_two_small_blobs_moving_together_are_not_spread():
    # a pair of ears: low compactness (two blobs) but a small ellipse, so not "spread"
    n = 20
    masks = np.zeros((n, 2, MASK, MASK), np.float32)
    masks[:, 0] = 1.0
    for t in range(n):
        for x0 in (4, 20):
            masks[t, 1, 4:7, x0 + t % 5:x0 + 2 + t % 5] = 1.0
    masks[:, 0] -= masks[:, 1]
    (score,) = detect_scenery(masks)
    assert score.compactness < 0.25 and not score.scenery


def test_a_part_that_never_moves_is_flagged_with_a_moving_pixel_map():
    rng = np.random.default_rng(3)
    n = 20
    masks = np.zeros((n, 3, MASK, MASK), np.float32)
    masks[:, 0] = 1.0
    moving = np.zeros((n, MASK, MASK), np.float32)
    for t in range(n):
        x = 4 + t % 8
        masks[t, 1, 10:16, x:x + 5] = 1.0                  # on the subject, which moves
        moving[t, 10:16, x:x + 5] = 1.0
        y = 20 + rng.integers(0, 4)                        # flickers over a still patch of scenery
        masks[t, 2, y:y + 4, 20:26] = 1.0
    masks[:, 0] -= masks[:, 1] + masks[:, 2]
    plain = detect_scenery(masks)
    assert not plain[1].scenery                             # not static, not spread: the other tests miss it
    scores = detect_scenery(masks, moving=moving)
    assert not scores[0].scenery and scores[0].on_moving > 0.9
    assert scores[1].scenery and "never moves" in scores[1].reason
    with pytest.raises(ValueError):
        detect_scenery(masks, moving=moving[:, :8])


def test_on_background_uses_the_given_background_image():
    # a subject that never leaves its place is in the frames' temporal median: against the
    # median its part looks like background; against the scene without it, it does not
    rng = np.random.default_rng(4)
    n, side = 12, 64
    scene = rng.integers(0, 256, (side, side, 3)).astype(np.float32)
    frames = np.repeat(scene[None], n, 0)
    frames[:, 16:48, 16:48] = (200.0, 40.0, 40.0)                 # the subject, always there
    frames = frames.astype(np.uint8)
    masks = np.zeros((n, 2, MASK, MASK), np.float32)
    masks[:, 0] = 1.0
    lo, hi = 16 * MASK // side, 48 * MASK // side
    masks[:, 1, lo:hi, lo:hi], masks[:, 0, lo:hi, lo:hi] = 1.0, 0.0
    (against_median,) = detect_scenery(masks, frames)
    (against_scene,) = detect_scenery(masks, frames, background=scene)
    assert against_median.on_background > 0.9
    assert against_scene.on_background < 0.1
    with pytest.raises(ValueError, match="background"):
        detect_scenery(masks, frames, background=scene[:32])
