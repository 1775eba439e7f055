"""Pose extraction on known masks and transforms (letterboxed non-square sources)."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.preprocess import Letterbox
from parttrack.engine.types import PartOutput
from parttrack.tracker.poses import PoseConfig, PoseExtractor, labels_at_source, poses_from_output
from tests.fakes import transforms_from_poses

SRC_H, SRC_W, S, M = 120, 160, 64, 64  # 4:3 source: letterbox pads top and bottom


def ellipse_masks(parts, lb: Letterbox, mask=M, soft=0.95):
    """Masks (1, K+1, m, m) with each part an ellipse (cx, cy, a, b, angle_deg CCW) given in
    source pixels, evaluated at the mask pixel centres mapped to the source."""
    k = len(parts)
    cols = (2 * np.arange(mask) + 1) / mask - 1
    grid = np.stack(np.meshgrid(cols, cols), -1)  # (m, m, 2) normalised, [..., 0] = x
    src = lb.norm_to_source(grid)
    lab = np.zeros((mask, mask), np.int64)
    for i, (cx, cy, a, b, ang) in enumerate(parts):
        d1 = np.array([np.cos(np.radians(ang)), -np.sin(np.radians(ang))])
        d2 = np.array([np.sin(np.radians(ang)), np.cos(np.radians(ang))])
        rel = src - [cx, cy]
        inside = (rel @ d1 / a) ** 2 + (rel @ d2 / b) ** 2 <= 1.0
        lab[inside] = i + 1
    m = np.full((k + 1, mask, mask), (1 - soft) / k, np.float32)
    m[lab, np.arange(mask)[:, None], np.arange(mask)[None, :]] = soft
    return m[None], lab


def make_output(parts, lb, axes_scale=0.5, transform_angles=None, centre_offset=(0.0, 0.0)):
    masks, lab = ellipse_masks(parts, lb)
    p = np.asarray(parts, np.float64)
    angles = p[:, 4] if transform_angles is None else np.asarray(transform_angles, np.float64)
    tf = transforms_from_poses(p[:, :2] + centre_offset, angles, p[:, 2:4] * axes_scale, lb)
    return PartOutput(masks, tf[None]), lab


@pytest.fixture
def lb():
    return Letterbox.fit(SRC_H, SRC_W, S)


PARTS = [(50.0, 60.0, 30.0, 10.0, 30.0), (115.0, 40.0, 14.0, 14.0, -100.0)]


def test_centre_angle_scale_area_from_known_masks(lb):
    out, _ = make_output(PARTS, lb)
    (p,) = poses_from_output(out, lb, [7], [0.28])
    assert p.index == 7 and p.time_s == pytest.approx(0.28)
    np.testing.assert_allclose(p.xy, [[50, 60], [115, 40]], atol=0.6)  # centroid (mask px = 2.5 src px)
    np.testing.assert_allclose(p.angle_deg, [30, -100], atol=1e-4)  # from the transform, CCW on screen
    # transform axes are half the semi-axes here (A Aᵀ = Σ for a uniform ellipse)
    np.testing.assert_allclose(p.scale, [[15, 5], [7, 7]], rtol=1e-3)
    np.testing.assert_allclose(p.area_px, [np.pi * 30 * 10, np.pi * 14 * 14], rtol=0.08)
    assert p.visible.all()
    assert (p.confidence > 0.75).all()


def test_geometry_from_mask_covariance(lb):
    out, _ = make_output(PARTS[:1], lb, transform_angles=[35.0])  # transform slightly off
    ex = PoseExtractor(lb, (M, M), PoseConfig(geometry="mask"))
    (p,) = ex(out, [0], [0.0])
    # principal axis of the mask (30°), signed like the transform; std of a uniform ellipse = a/2
    assert p.angle_deg[0] == pytest.approx(30.0, abs=2.0)
    np.testing.assert_allclose(p.scale[0], [15.0, 5.0], rtol=0.08)


def test_mask_geometry_keeps_the_transform_direction(lb):
    """The covariance cannot tell 30° from −150°: the transform's direction decides."""
    out, _ = make_output(PARTS[:1], lb, transform_angles=[-150.0 + 3])
    (p,) = PoseExtractor(lb, (M, M), PoseConfig(geometry="mask"))(out, [0], [0.0])
    assert p.angle_deg[0] == pytest.approx(-150.0, abs=2.0)


def test_position_from_transform(lb):
    out, _ = make_output(PARTS, lb, centre_offset=(3.0, -2.0))
    (p,) = PoseExtractor(lb, (M, M), PoseConfig(position="transform"))(out, [0], [0.0])
    np.testing.assert_allclose(p.xy, [[53, 58], [118, 38]], atol=1e-3)


def test_confidence_drops_when_transform_disagrees_with_mask(lb):
    good, _ = make_output(PARTS[:1], lb)
    rotated, _ = make_output(PARTS[:1], lb, transform_angles=[120.0])  # axes across the mask
    shifted, _ = make_output(PARTS[:1], lb, centre_offset=(20.0, 0.0))
    ex = PoseExtractor(lb, (M, M))
    c = [ex(o, [0], [0.0])[0].confidence[0] for o in (good, rotated, shifted)]
    assert c[0] > 0.8 and c[1] < 0.6 * c[0] and c[2] < 0.5 * c[0]


def test_uncertain_masks_lower_confidence(lb):
    crisp, _ = make_output(PARTS[:1], lb)
    masks, _ = ellipse_masks(PARTS[:1], lb, soft=0.6)
    vague = PartOutput(masks, crisp.transforms)
    ex = PoseExtractor(lb, (M, M))
    # the certainty factor is the probability itself: p = 0.6 vs 0.95
    assert ex(vague, [0], [0.0])[0].confidence[0] < 0.7 * ex(crisp, [0], [0.0])[0].confidence[0]


def test_tiny_and_missing_parts_are_not_visible(lb):
    parts = [PARTS[0], (120.0, 90.0, 1.5, 1.5, 0.0), (10.0, 10.0, 0.1, 0.1, 0.0)]  # big, tiny, absent
    out, lab = make_output(parts, lb)
    assert (lab == 3).sum() == 0 and 0 < (lab == 2).sum() < 4
    (p,) = poses_from_output(out, lb, [0], [0.0])
    assert p.visible.tolist() == [True, False, False]
    assert p.area_px[2] == 0 and p.confidence[2] == 0
    # no pixels: not measured, no pose (the transform of an empty mask is not reported)
    assert np.isnan(p.xy[2]).all() and np.isnan(p.angle_deg[2]) and np.isnan(p.scale[2]).all()
    assert np.isfinite(p.xy[:2]).all()


def test_letterbox_padding_is_ignored(lb):
    out, _ = make_output(PARTS[:1], lb)
    m = out.masks.copy()
    m[0, :, :4, :] = 0.0  # rows of the padding band (4:3 in a square: 8 rows top at 64)
    m[0, 1, :4, :] = 1.0  # claim them for part 1
    (p,) = PoseExtractor(lb, (M, M))(PartOutput(m, out.transforms), [0], [0.0])
    np.testing.assert_allclose(p.xy[0], [50, 60], atol=0.6)
    np.testing.assert_allclose(p.area_px[0], np.pi * 300, rtol=0.08)


def test_batch_matches_single_frames(lb):
    a, _ = make_output(PARTS, lb)
    b, _ = make_output([(60.0, 70.0, 25.0, 8.0, 80.0), PARTS[1]], lb)
    batch = PartOutput(np.concatenate([a.masks, b.masks]), np.concatenate([a.transforms, b.transforms]))
    ex = PoseExtractor(lb, (M, M))
    both = ex(batch, [0, 1], [0.0, 0.04])
    one = ex(b, [1], [0.04])[0]
    np.testing.assert_allclose(both[1].xy, one.xy)
    np.testing.assert_allclose(both[1].confidence, one.confidence)


def test_errors(lb):
    out, _ = make_output(PARTS, lb)
    with pytest.raises(ValueError, match="built for"):
        PoseExtractor(lb, (32, 32))(out, [0], [0.0])
    with pytest.raises(ValueError, match="indices"):
        PoseExtractor(lb, (M, M))(out, [0, 1], [0.0])
    with pytest.raises(ValueError):
        PoseConfig(position="middle")


@pytest.mark.parametrize("smooth", [True, False])
def test_labels_at_source(lb, smooth):
    out, _ = make_output(PARTS, lb)
    labels = labels_at_source(out.masks[0], lb, smooth=smooth)
    assert labels.shape == (SRC_H, SRC_W) and labels.dtype == np.uint8
    assert labels[60, 50] == 1 and labels[40, 115] == 2 and labels[5, 5] == 0
    area = (labels == 1).sum()
    assert area == pytest.approx(np.pi * 300, rel=0.1)


def test_labels_at_source_from_label_map(lb):
    out, _ = make_output(PARTS, lb)
    small = out.masks[0].argmax(0).astype(np.uint8)
    soft = labels_at_source(out.masks[0], lb)
    from_map = labels_at_source(small, lb, smooth=True, num_parts=2)
    assert (soft == from_map).mean() > 0.97


def test_part_labels_decide_foreground_on_all_parts_together():
    from parttrack.engine.types import part_labels

    # Columns: the background outweighs each part but not both together (a joint) → the likelier
    # part; the background outweighs both together → background; a tie → background.
    masks = np.array([[0.4, 0.6, 0.5],
                      [0.35, 0.25, 0.2],
                      [0.25, 0.15, 0.3]], np.float32)[:, None, :]   # (K+1 = 3, 1, 3)
    assert part_labels(masks).tolist() == [[1, 0, 0]]
    assert part_labels(np.moveaxis(masks, 0, -1), axis=2).tolist() == [[1, 0, 0]]
    assert np.argmax(masks, axis=0).tolist() == [[0, 0, 0]]          # what a plain arg-max says
    assert part_labels(np.ones((1, 2, 2), np.float32)).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="slots"):
        part_labels(np.ones((257, 1, 1), np.float32))


def _masks_from_region(region: np.ndarray, soft: float = 0.95) -> np.ndarray:
    """(1, 2, m, m) masks: part 1 = ``region`` (bool (m, m)) with probability ``soft``."""
    m = np.where(region[None], [[[1 - soft]], [[soft]]], [[[soft]], [[1 - soft]]]).astype(np.float32)
    return m[None]


def _matching_transform(masks: np.ndarray, lb) -> np.ndarray:
    """The transform whose N(t, AAᵀ) equals the part's mask Gaussian (centroid, covariance)."""
    ex = PoseExtractor(lb, masks.shape[2:])
    pb = ex.compute(PartOutput(masks, np.tile(np.array([1, 1, 0, 1, 0, 0], np.float32), (1, 1, 1))))
    evals, evecs = np.linalg.eigh(pb.cov[0, 0])
    v = evecs[:, 1]
    angle = np.degrees(np.arctan2(-v[1], v[0]))  # CCW on screen
    return transforms_from_poses(pb.centroid[0], np.array([angle]), np.sqrt(evals[::-1])[None], lb)[None]


def _region_confidence(region: np.ndarray, lb, soft: float = 0.95) -> float:
    masks = _masks_from_region(region, soft)
    out = PartOutput(masks, _matching_transform(masks, lb))
    return float(PoseExtractor(lb, (M, M)).compute(out).confidence[0, 0])


def _grid(lb):
    yy, xx = np.mgrid[0:M, 0:M]
    return xx, yy


@pytest.mark.parametrize("soft", [0.95, 0.8])
def test_compact_part_whose_transform_agrees_scores_high(lb, soft):
    xx, yy = _grid(lb)
    ellipse = ((xx - 30) / 12.0) ** 2 + ((yy - 32) / 6.0) ** 2 <= 1
    c = _region_confidence(ellipse, lb, soft)
    assert c > 0.7 * soft / 0.95 and c > 0.55, c


def test_spread_or_ragged_parts_score_low(lb):
    xx, yy = _grid(lb)
    rng = np.random.default_rng(0)
    ellipse = ((xx - 30) / 12.0) ** 2 + ((yy - 32) / 6.0) ** 2 <= 1
    good = _region_confidence(ellipse, lb)
    r = np.hypot(xx - 32, yy - 32)
    cases = {
        "ring": (r >= 16) & (r < 18),  # a band around something (e.g. the grass round the subject)
        "scatter": (rng.random((M, M)) < 0.08) & (yy > 8) & (yy < 56),  # pixels all over the frame
        "two blobs": (np.hypot(xx - 12, yy - 20) < 4) | (np.hypot(xx - 50, yy - 44) < 4),
        "ragged": ellipse & (rng.random((M, M)) < 0.4),  # an ellipse with most pixels missing
    }
    for name, region in cases.items():
        c = _region_confidence(region, lb)
        assert c < 0.5 * good and c < 0.4, (name, c, good)


def test_confidence_is_zero_without_pixels_and_in_unit_range(lb):
    out, _ = make_output(PARTS + [(10.0, 10.0, 0.1, 0.1, 0.0)], lb)  # third part: no pixels
    pb = PoseExtractor(lb, (M, M)).compute(out)
    assert pb.confidence[0, 2] == 0 and ((pb.confidence >= 0) & (pb.confidence <= 1)).all()
    empty = PartOutput(np.stack([np.ones((M, M)), np.zeros((M, M))]).astype(np.float32)[None],
                       out.transforms[:, :1])
    assert PoseExtractor(lb, (M, M)).compute(empty).confidence[0, 0] == 0
