"""Overlay drawing (tracker.overlay): masks where the labels are, axes at the pose angle, toggles."""

import numpy as np
import pytest

from parttrack.tracker.core import JointPositions, PartPoses
from parttrack.tracker.overlay import OverlayStyle, axis_directions, blend_labels, draw_overlay

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
GREY = 100
NOTHING = OverlayStyle(show_masks=False, show_axes=False, show_skeleton=False, show_legend=False,
                       show_hud=False)


def gray(h=120, w=160):
    return np.full((h, w, 3), GREY, dtype=np.uint8)


def poses(xy, angle, scale, visible=None):
    k = len(xy)
    return PartPoses(0, 0.0, np.asarray(xy, float), np.asarray(angle, float), np.asarray(scale, float),
                     np.full(k, 100.0), np.ones(k, bool) if visible is None else np.asarray(visible),
                     np.ones(k))


def near(pixel, color, tol=40):
    return int(np.abs(pixel.astype(int) - np.array(color)).max()) <= tol


def test_masks_colour_only_where_labels_are():
    img = gray()
    labels = np.zeros((120, 160), np.uint8)
    labels[10:50, 10:60] = 1
    labels[60:100, 80:150] = 2
    style = OverlayStyle(mask_opacity=0.5, show_outlines=False, show_legend=False)
    out = draw_overlay(img, labels, colors=(RED, BLUE), style=style)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (img == GREY).all(), "input must not be modified"
    expect1 = np.round(0.5 * GREY + 0.5 * np.array(RED))
    expect2 = np.round(0.5 * GREY + 0.5 * np.array(BLUE))
    assert np.abs(out[10:50, 10:60].astype(int) - expect1).max() <= 1
    assert np.abs(out[60:100, 80:150].astype(int) - expect2).max() <= 1
    assert (out[labels == 0] == GREY).all()


@pytest.mark.parametrize("opacity", [0.0, 0.3, 1.0])
def test_mask_opacity(opacity):
    labels = np.ones((8, 8), np.uint8)
    out = blend_labels(gray(8, 8), labels, [GREEN], opacity, outlines=False)
    expect = np.round((1 - opacity) * GREY + opacity * np.array(GREEN))
    assert np.abs(out.astype(int) - expect).max() <= 1


def test_outlines_mark_part_boundaries():
    labels = np.zeros((40, 40), np.uint8)
    labels[10:30, 10:30] = 1
    out = blend_labels(gray(40, 40), labels, [RED], 0.2, outlines=True)
    assert tuple(out[10, 20]) == RED  # on the boundary: full colour
    assert not near(out[20, 20], RED, tol=20)  # inside: blended only
    assert tuple(out[0, 0]) == (GREY,) * 3


def test_labels_of_another_size_are_resized():
    labels = np.zeros((12, 16), np.uint8)
    labels[:6] = 1  # top half
    out = draw_overlay(gray(), labels, colors=(RED,), style=OverlayStyle(show_outlines=False,
                                                                          show_legend=False))
    assert out[30, 80, 0] > GREY + 50 and tuple(out[100, 80]) == (GREY,) * 3


def test_axis_directions_convention():
    d1, d2 = axis_directions(np.array([0.0, 90.0, 30.0]))
    np.testing.assert_allclose(d1[0], [1, 0], atol=1e-12)
    np.testing.assert_allclose(d2[0], [0, 1], atol=1e-12)  # second axis points down at 0°
    np.testing.assert_allclose(d1[1], [0, -1], atol=1e-12)  # 90° CCW on screen = up
    np.testing.assert_allclose(d1[2], [np.cos(np.pi / 6), -np.sin(np.pi / 6)], atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 135.0, -60.0, 180.0])
def test_axes_drawn_at_the_pose_angle(angle):
    cx, cy, length = 80.0, 60.0, 45.0
    p = poses([[cx, cy]], [angle], [[length, 10.0]])
    style = OverlayStyle(show_legend=False, line_thickness=3)
    out = draw_overlay(gray(), poses=p, colors=(GREEN,), style=style)
    a = np.deg2rad(angle)
    along = [(cx + t * np.cos(a), cy - t * np.sin(a)) for t in np.linspace(10, 30, 6)]
    for x, y in along:
        assert near(out[int(round(y)), int(round(x))], GREEN), (angle, x, y, out[int(round(y)), int(round(x))])
    # the mirrored direction (clockwise instead of counter-clockwise) and the back side are empty
    for sign_y, sign_x in ((1, 1), (-1, -1)):
        if angle in (0.0, 180.0) and sign_x == 1:
            continue  # mirror of a horizontal axis is the axis itself
        x, y = cx + sign_x * 25 * np.cos(a), cy + sign_y * sign_x * 25 * np.sin(a)
        assert not near(out[int(round(y)), int(round(x))], GREEN, tol=60), (angle, x, y)


def test_axis_length_is_gain_times_scale():
    p = poses([[40.0, 60.0]], [0.0], [[15.0, 2.0]])
    for gain, inside, outside in ((2.0, 68.0, 76.0), (1.0, 52.0, 60.0)):
        style = OverlayStyle(show_legend=False, line_thickness=3, axis_gain=gain)
        out = draw_overlay(gray(), poses=p, colors=(GREEN,), style=style)
        assert near(out[60, int(inside)], GREEN), gain
        assert not near(out[60, int(outside)], GREEN, tol=60), gain


def test_second_axis_is_first_turned_clockwise_on_screen():
    p = poses([[80.0, 60.0]], [0.0], [[10.0, 40.0]])
    out = draw_overlay(gray(), poses=p, colors=(BLUE,), style=OverlayStyle(show_legend=False, line_thickness=3))
    assert near(out[90, 80], BLUE)  # straight down, 30 px below the centre
    assert not near(out[30, 80], BLUE, tol=60)


def test_invisible_parts_are_dashed_and_faded():
    kwargs = dict(colors=(GREEN,), style=OverlayStyle(show_legend=False, line_thickness=3))
    seen = draw_overlay(gray(), poses=poses([[80.0, 60.0]], [0.0], [[60.0, 5.0]]), **kwargs)
    lost = draw_overlay(gray(), poses=poses([[80.0, 60.0]], [0.0], [[60.0, 5.0]], visible=[False]), **kwargs)
    row_seen, row_lost = seen[60, 90:135], lost[60, 90:135]
    assert all(near(px, GREEN) for px in row_seen)
    assert not any(near(px, GREEN) for px in row_lost)  # faded colour, never the full one
    is_line = np.abs(row_lost.astype(int) - GREY).max(axis=1) > 30
    assert 0.2 < is_line.mean() < 0.9  # dashes: some pixels drawn, some gaps

    hidden = draw_overlay(gray(), poses=poses([[80.0, 60.0]], [0.0], [[60.0, 5.0]], visible=[False]),
                          colors=(GREEN,), style=OverlayStyle(show_legend=False, show_invisible=False))
    assert (hidden == GREY).all()


def test_skeleton_links_centres_through_joints():
    p = poses([[30.0, 60.0], [130.0, 60.0]], [90.0, 90.0], [[5.0, 5.0], [5.0, 5.0]])
    j = JointPositions(0, 0.0, np.array([[1, 2]]), np.array([[80.0, 30.0]]))
    style = OverlayStyle(show_legend=False, show_axes=False)
    out = draw_overlay(gray(), poses=p, joints=j, colors=(RED, BLUE), style=style)
    assert near(out[30, 80], (255, 255, 255))  # joint dot
    assert near(out[45, 55], (255, 255, 255), tol=70)  # midway centre 1 → joint
    assert near(out[45, 105], (255, 255, 255), tol=70)  # midway joint → centre 2
    assert tuple(out[100, 80]) == (GREY,) * 3
    off = draw_overlay(gray(), poses=p, joints=j, colors=(RED, BLUE),
                       style=OverlayStyle(show_legend=False, show_axes=False, show_skeleton=False))
    assert (off == GREY).all()
    # a joint of a part that is not visible is not drawn
    lost = poses([[30.0, 60.0], [130.0, 60.0]], [90.0, 90.0], [[5.0, 5.0], [5.0, 5.0]], visible=[True, False])
    hidden = draw_overlay(gray(), poses=lost, joints=j, colors=(RED, BLUE), style=style)
    assert (hidden == GREY).all()
    # without poses, joints are dots only
    dots = draw_overlay(gray(), joints=j, colors=(RED, BLUE), style=style)
    assert near(dots[30, 80], (255, 255, 255)) and tuple(dots[45, 55]) == (GREY,) * 3


def test_legend_shows_each_part_colour_top_right():
    out = draw_overlay(gray(240, 320), colors=(RED, GREEN, BLUE), names=("head", "arm", "leg"),
                       style=OverlayStyle(show_hud=False))
    corner = out[:120, 200:]
    for color in (RED, GREEN, BLUE):
        assert (np.abs(corner.astype(int) - color).max(axis=2) == 0).sum() > 20, color
    assert (out[150:, :] == GREY).all()


def test_hud_text_top_left():
    out = draw_overlay(gray(240, 320), hud=["30.0 frames/s", "latency 12 ms"], style=OverlayStyle())
    top_left = out[:60, :160]
    assert (top_left > 200).all(axis=2).sum() > 30  # white text
    assert (out[120:, 160:] == GREY).all()


def test_toggles_change_the_picture():
    labels = np.zeros((120, 160), np.uint8)
    labels[30:90, 40:120] = 1
    p = poses([[80.0, 60.0]], [45.0], [[40.0, 20.0]])
    j = JointPositions(0, 0.0, np.array([[1, 1]])[:0], np.zeros((0, 2)))
    full = draw_overlay(gray(), labels, p, j, colors=(RED,), names=("a",), hud=["x"])
    for field in ("show_masks", "show_axes", "show_legend", "show_hud"):
        style = OverlayStyle(**{field: False})
        other = draw_overlay(gray(), labels, p, j, colors=(RED,), names=("a",), hud=["x"], style=style)
        assert (other != full).any(), field
    nothing = draw_overlay(gray(), labels, p, j, colors=(RED,), names=("a",), hud=["x"], style=NOTHING)
    assert (nothing == GREY).all()


def test_scale_enlarges_and_keeps_geometry():
    p = poses([[40.0, 30.0]], [0.0], [[20.0, 5.0]])
    out = draw_overlay(gray(60, 80), poses=p, colors=(GREEN,), scale=2.0,
                       style=OverlayStyle(show_legend=False, line_thickness=3))
    assert out.shape == (120, 160, 3)
    # axis from (40,30) to (60,30) in source pixels → (80.5,60.5) to (120.5,60.5) at 2x
    assert near(out[61, 100], GREEN) and near(out[61, 115], GREEN)
    assert not near(out[61, 60], GREEN, tol=60)


def test_non_finite_poses_are_skipped():
    p = poses([[np.nan, 30.0]], [0.0], [[20.0, 5.0]])
    out = draw_overlay(gray(), poses=p, colors=(GREEN,), style=OverlayStyle(show_legend=False))
    assert (out == GREY).all()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="mask_opacity"):
        OverlayStyle(mask_opacity=1.5)
    with pytest.raises(ValueError, match="labels"):
        draw_overlay(gray(), labels=np.zeros((4, 4, 2), np.uint8))
