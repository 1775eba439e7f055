"""Letterbox: model input shape and the coordinate round trip to source pixels."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.preprocess import Letterbox


@pytest.mark.parametrize("h,w", [(270, 480), (480, 270), (144, 176), (31, 47), (2160, 3840), (128, 128)])
def test_round_trip_and_shape(h, w):
    lb = Letterbox.fit(h, w, 128)
    image = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    assert lb.apply(image).shape == (128, 128, 3)
    pts = np.array([[0.0, 0.0], [w - 1.0, h - 1.0], [w / 2, h / 3]])
    assert np.allclose(lb.norm_to_source(lb.source_to_norm(pts)), pts)


def test_corners_map_to_image_corners():
    lb = Letterbox.fit(270, 480, 128)  # full width, padded top and bottom
    left_edge = lb.norm_to_source(np.array([-1.0, 0.0]))
    right_edge = lb.norm_to_source(np.array([1.0, 0.0]))
    assert left_edge[0] == pytest.approx(-0.5) and right_edge[0] == pytest.approx(479.5)
    sx, sy = lb.norm_to_source_scale
    assert sx == pytest.approx(240.0) and sy == pytest.approx(240.0, rel=0.02)


def test_content_lands_where_the_mapping_says():
    h, w = 90, 160
    image = np.zeros((h, w, 3), np.uint8)
    image[40:50, 120:130] = 255  # a white square centred at (124.5, 44.5)
    lb = Letterbox.fit(h, w, 64)
    out = lb.apply(image)
    ys, xs = np.nonzero(out[..., 0] > 127)
    centre_model_px = np.array([xs.mean(), ys.mean()])
    centre_norm = (centre_model_px + 0.5) / 32.0 - 1.0
    assert np.allclose(lb.norm_to_source(centre_norm), [124.5, 44.5], atol=1.5)
