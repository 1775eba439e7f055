"""engine.refine: guided-filter mask upsampling lands mask edges on the frame's edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from parttrack.engine.preprocess import Letterbox
from parttrack.engine.refine import MaskRefiner, RefinedMasks, refine_masks


def _disc_scene(h: int, w: int, seed: int = 0):
    """A bright disc on a dark blocky texture: frame (h, w, 3) uint8, true disc (h, w) bool,
    the distance of each pixel centre to the disc centre, the centre and radius (px)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 70, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    frame = cv2.resize(tex, (w, h), interpolation=cv2.INTER_NEAREST)
    cx, cy, r = 0.47 * w, 0.52 * h, 0.3 * min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(xx - cx, yy - cy)
    disc = dist < r
    frame[disc] = (220, 200, 180)
    frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
    return frame, disc, dist, (cx, cy), r


def _two_slots(fg: np.ndarray) -> np.ndarray:
    fg = fg.astype(np.float32)
    return np.stack([1.0 - fg, fg]).astype(np.float32)


def _bilinear(masks: np.ndarray, size_hw) -> np.ndarray:
    h, w = size_hw
    return np.moveaxis(cv2.resize(np.ascontiguousarray(np.moveaxis(masks, 0, -1)), (w, h),
                                  interpolation=cv2.INTER_LINEAR), -1, 0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _boundary_error(pred: np.ndarray, dist: np.ndarray, r: float) -> np.ndarray:
    """|distance to the true circle| of the pixel centres on the predicted region's outline.
    A perfect pixel-discretised disc scores up to √2/2 + ½ ≈ 1.2 px."""
    inner = cv2.erode(pred.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return np.abs(dist[pred & ~inner] - r)


def test_soft_masks_snap_to_the_outline():
    h = w = 256
    frame, disc, dist, _, r = _disc_scene(h, w)
    soft = cv2.resize(disc.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)  # 8 px per mask px
    masks = _two_slots(soft)
    out = refine_masks(masks, frame)
    assert out.shape == (2, h, w) and out.dtype == np.float32
    pred, base = out[1] >= 0.5, _bilinear(masks, (h, w))[1] >= 0.5
    assert _iou(pred, disc) > 0.998 > _iou(base, disc) + 0.005
    err, base_err = _boundary_error(pred, dist, r), _boundary_error(base, dist, r)
    assert err.max() <= 1.5 < base_err.max()
    assert err.mean() <= 0.7 < base_err.mean()


def test_blocky_masks_move_onto_the_outline():
    h = w = 256
    frame, disc, dist, _, r = _disc_scene(h, w, seed=1)
    blocky = cv2.resize(disc.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA) > 0.5
    masks = _two_slots(blocky)
    base = _bilinear(masks, (h, w))[1] >= 0.5
    pred = refine_masks(masks, frame, radius=8.0, downsample=1)[1] >= 0.5  # window ±1 mask px
    assert _iou(pred, disc) > 0.995 > _iou(base, disc) + 0.03
    assert _boundary_error(pred, dist, r).max() <= 1.5 < _boundary_error(base, dist, r).max()


def test_letterboxed_masks_at_640x480():
    h, w = 480, 640
    frame, disc, dist, (cx, cy), r = _disc_scene(h, w, seed=2)
    lb = Letterbox.fit(h, w, 128)
    # Soft 32x32 masks of the model input: disc coverage of each mask pixel (4x4 subsamples).
    sub = (np.arange(128) + 0.5) / 128 * 2 - 1
    nx, ny = np.meshgrid(sub, sub)
    src = lb.norm_to_source(np.stack([nx, ny], -1))
    cover = (np.hypot(src[..., 0] - cx, src[..., 1] - cy) < r).astype(np.float32)
    soft = cover.reshape(32, 4, 32, 4).mean(axis=(1, 3))
    masks = _two_slots(soft)
    refiner = MaskRefiner((h, w), (32, 32), lb)
    assert refiner.downsample == 4 and refiner.radius_cells == 2
    refined = refiner(masks, frame)
    assert isinstance(refined, RefinedMasks) and refined.masks.shape == (2, 120, 160)
    full = refined.to_source()
    assert full.shape == (2, h, w) and full.dtype == np.float32
    pred = full[1] >= 0.5
    assert _iou(pred, disc) > 0.99
    # 4-px work cells: edges to within a pixel on average, 2.5 px at worst (bilinear
    # upsampling of the same masks: 1.4 px on average, 4.1 px at worst).
    err = _boundary_error(pred, dist, r)
    assert err.mean() <= 1.0 and err.max() <= 2.5
    for step in (1, 2):
        labels = refined.labels(step)
        assert labels.shape == (h, w) and labels.dtype == np.uint8
        assert _iou(labels == 1, disc) > 0.99
    assert refined.labels(None).shape == (120, 160)
    with pytest.raises(ValueError):
        refined.labels(0)
    area = refined.area_px()
    assert area.shape == (1,) and area.dtype == np.float64
    assert area[0] == pytest.approx(disc.sum(), rel=0.02)


def test_many_slots_sum_to_one_and_stay_non_negative():
    rng = np.random.default_rng(3)
    k1, h, w = 11, 96, 128
    logits = rng.normal(0, 2, (k1, 16, 16)).astype(np.float32)
    masks = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = refine_masks(masks.astype(np.float32), frame, downsample=2)
    assert out.shape == (k1, h, w) and out.dtype == np.float32
    assert out.min() >= 0.0
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)


def test_uniform_frame_leaves_masks_bilinear():
    """With no edges in the guide the filter falls back to smoothing: the outline stays where
    bilinear upsampling puts it (no edge to move to)."""
    h = w = 128
    frame = np.full((h, w, 3), 90, np.uint8)
    fg = np.zeros((16, 16), np.float32)
    fg[4:12, 5:11] = 1.0
    masks = _two_slots(fg)
    pred = refine_masks(masks, frame, downsample=1)[1] >= 0.5
    base = _bilinear(masks, (h, w))[1] >= 0.5
    assert _iou(pred, base) > 0.97


@pytest.mark.parametrize("masks_shape, frame_shape, frame_dtype, kwargs", [
    ((2, 32), (64, 64, 3), np.uint8, {}),               # masks not 3-D
    ((2, 32, 32), (64, 64), np.uint8, {}),              # frame not 3-channel
    ((2, 32, 32), (64, 64, 4), np.uint8, {}),
    ((2, 32, 32), (64, 64, 3), np.float32, {}),         # frame not uint8
    ((2, 32, 32), (64, 64, 3), np.uint8, {"eps": 0.0}),
    ((2, 32, 32), (64, 64, 3), np.uint8, {"radius": -1.0}),
    ((2, 32, 32), (64, 64, 3), np.uint8, {"downsample": 0}),
    ((2, 32, 32), (64, 64, 3), np.uint8, {"downsample": 1.5}),
])
def test_bad_inputs_raise(masks_shape, frame_shape, frame_dtype, kwargs):
    masks = np.full(masks_shape, 0.5, np.float32)
    frame = np.zeros(frame_shape, frame_dtype)
    with pytest.raises(ValueError):
        refine_masks(masks, frame, **kwargs)


def test_refiner_checks_its_geometry():
    refiner = MaskRefiner((48, 64), (16, 16), Letterbox.fit(48, 64, 64))
    with pytest.raises(ValueError, match="masks must be"):
        refiner(np.zeros((3, 8, 8), np.float32), np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="frame must be"):
        refiner(np.zeros((3, 16, 16), np.float32), np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ValueError, match="letterbox"):
        MaskRefiner((48, 64), (16, 16), Letterbox.fit(64, 64, 64))
    with pytest.raises(ValueError):
        RefinedMasks(np.zeros((2, 8, 8), np.float64), (16, 16))


def test_label_grid_matches_part_labels_of_the_resampled_masks():
    rng = np.random.default_rng(3)
    raw = rng.random((6, 12, 16)).astype(np.float32)
    raw[2] = raw[3]  # ties go to the first slot, as in part_labels
    masks = RefinedMasks(raw / raw.sum(0, keepdims=True), (48, 64))
    from parttrack.engine.types import part_labels

    up = _bilinear(masks.masks, (24, 32))
    expected = cv2.resize(part_labels(up), (64, 48), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(masks.labels(step=2), expected)


def test_guide_at_another_resolution():
    h = w = 256
    frame, disc, dist, _, r = _disc_scene(h, w)
    masks = _two_slots(cv2.resize(disc.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA))
    refiner = MaskRefiner((h, w), (32, 32), downsample=2)
    half = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    pred = refiner(masks, half).to_source()[1] >= 0.5
    base = _bilinear(masks, (h, w))[1] >= 0.5
    assert _iou(pred, disc) > _iou(base, disc)
    quantised = refiner(np.rint(masks * 255).astype(np.uint8), half).to_source()
    np.testing.assert_allclose(quantised, refiner(masks, half).to_source(), atol=0.02)
