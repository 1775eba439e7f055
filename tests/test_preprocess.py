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


def test_a_box_maps_its_content_into_the_input_and_back():
    h, w = 90, 160
    image = np.zeros((h, w, 3), np.uint8)
    image[40:50, 120:130] = 255                      # a white square centred at (124.5, 44.5)
    box = (100, 20, 50, 50)
    lb = Letterbox.fit(h, w, 64, box)
    assert lb.region == box and lb.inner_size == (64, 64) and lb.inner_box == (0, 0, 64, 64)
    assert lb.decode_size == (205, 115)              # the whole frame at the box's scale (64 / 50)
    out = lb.apply(image)
    ys, xs = np.nonzero(out[..., 0] > 127)
    assert 8 <= len(xs) // 12 <= 16                  # 10 px → 12.8 px wide: the box is enlarged
    centre_norm = (np.array([xs.mean(), ys.mean()]) + 0.5) / 32.0 - 1.0
    assert np.allclose(lb.norm_to_source(centre_norm), [124.5, 44.5], atol=1.0)
    pts = np.array([[100.0, 20.0], [149.0, 69.0], [0.0, 0.0], [159.0, 89.0]])
    assert np.allclose(lb.norm_to_source(lb.source_to_norm(pts)), pts)
    n = lb.source_to_norm(pts)
    assert np.all(np.abs(n[:2]) < 1) and np.all(np.abs(n[2:]).max(1) > 1)  # the frame's corners are outside
    assert lb.norm_to_source_scale == pytest.approx((25.0, 25.0))


def test_a_box_is_cut_alike_from_the_frame_and_from_a_scaled_decode():
    h, w = 216, 384
    ys, xs = np.mgrid[0:h, 0:w]
    image = np.stack([xs * 255 // w, ys * 255 // h, (xs + ys) % 256], -1).astype(np.uint8)
    image[100:140, 200:260] = (255, 255, 255)
    lb = Letterbox.fit(h, w, 128, (120, 8, 200, 200))
    import cv2

    full = lb.apply(image).astype(int)
    decoded = lb.apply(cv2.resize(image, lb.decode_size, interpolation=cv2.INTER_AREA)).astype(int)
    assert np.median(np.abs(full - decoded)) <= 2


def test_fill_outside_and_bad_boxes():
    lb = Letterbox.fit(40, 60, 32, (10, 5, 20, 30))
    a = np.ones((2, 40, 60))
    lb.fill_outside(a, 0)
    assert a[:, 5:35, 10:30].min() == 1 and a.sum() == 2 * 20 * 30
    assert Letterbox.fit(40, 60, 32).fill_outside(np.ones((40, 60)), 0).min() == 1
    assert Letterbox.fit(40, 60, 32, (0, 0, 60, 40)).box is None      # the whole frame is no box
    with pytest.raises(ValueError, match="expected"):
        lb.fill_outside(np.ones((30, 60)), 0)
    for bad in ((50, 0, 20, 20), (0, 0, 0, 10), (-1, 0, 10, 10), (0, 30, 10, 20)):
        with pytest.raises(ValueError, match="not inside"):
            Letterbox.fit(40, 60, 32, bad)


def test_the_box_as_a_frame_of_its_own_maps_alike():
    lb = Letterbox.fit(216, 384, 128, (120, 8, 200, 180))
    inner = lb.box_letterbox
    assert (inner.src_h, inner.src_w, inner.box) == (180, 200, None)
    assert (inner.scale, inner.pad_x, inner.pad_y, inner.inner_size) == (lb.scale, lb.pad_x, lb.pad_y, lb.inner_size)
    n = np.array([[-0.9, 0.3], [0.5, -0.2]])
    assert np.allclose(inner.norm_to_source(n) + [120, 8], lb.norm_to_source(n))
    image = np.arange(216 * 384).reshape(216, 384)
    assert np.array_equal(lb.cut_box(image), image[8:188, 120:320])
    assert lb.cut_box(image[::2, ::2]).shape == (90, 100)       # at the image's scale
    pasted = lb.paste_box(lb.cut_box(image), -1)
    assert pasted.shape == image.shape and np.array_equal(pasted[8:188, 120:320], image[8:188, 120:320])
    assert (pasted == -1).sum() == 216 * 384 - 180 * 200
    with pytest.raises(ValueError, match="expected"):
        lb.paste_box(image, 0)
    whole = Letterbox.fit(216, 384, 128)
    assert whole.box_letterbox is whole and whole.cut_box(image) is image and whole.paste_box(image, 0) is image
