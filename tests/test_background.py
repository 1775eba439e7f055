"""engine.background: the static background with a subject that stays in one place taken out."""

import numpy as np
import pytest
import torch

from parttrack.engine import losses as L
from parttrack.engine.background import estimate_background, fill_changed, temporal_mode
from parttrack.engine.synthetic import render_video


def _changed_iou(frames: np.ndarray, background: np.ndarray, subject: np.ndarray) -> float:
    """IoU of the background-subtraction map (as the training computes it) with the subject."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    b = torch.from_numpy(background).permute(2, 0, 1) * (2.0 / 255.0) - 1.0
    changed = L.changed_pixels(x, b, 0.05).numpy()
    return float((changed & subject).sum() / (changed | subject).sum())


@pytest.fixture(scope="module")
def quadruped():
    # a quadruped's body stays near the middle: the temporal median shows it as background
    return render_video(120, size=128, figure_seed=101, plan="quadruped", light=0.15, crf=23)


def test_subject_taken_out_of_the_background(quadruped):
    frames, subject = quadruped.frames, quadruped.labels > 0
    assert (subject.mean(0) > 0.5).mean() > 0.05          # the premise: covered in most frames
    median = np.median(frames, axis=0).astype(np.float32)
    estimate, info = estimate_background(frames)
    assert estimate.shape == median.shape and estimate.dtype == np.float32
    assert info["iterations"] == 2 and 0 < info["inpainted_share"] < 0.4
    before, after = _changed_iou(frames, median, subject), _changed_iou(frames, estimate, subject)
    assert after > before + 0.05, (before, after)


def test_no_iterations_is_the_median(quadruped):
    frames = quadruped.frames[:40]
    estimate, info = estimate_background(frames, iterations=0)
    np.testing.assert_array_equal(estimate, np.median(frames, axis=0).astype(np.float32))
    assert info["iterations"] == 0


def test_static_scene_is_left_alone():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
    frames = np.clip(scene + rng.normal(0, 1.5, (30, 64, 64, 3)), 0, 255).astype(np.uint8)
    estimate, info = estimate_background(frames)
    assert info["inpainted_share"] == 0.0
    assert np.abs(estimate - scene[0]).mean() < 1.5


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        estimate_background(np.zeros((5, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="T >= 2"):
        estimate_background(np.zeros((1, 8, 8, 3), np.uint8))


def test_fill_changed_fills_an_enclosed_middle_and_nothing_open():
    maps = torch.zeros(3, 16, 16)
    maps[0, 4:12, 4:12] = 1
    maps[0, 5:11, 5:11] = 0              # a ring: its middle is filled
    maps[1] = maps[0]
    maps[1, 4, 7] = 0                    # the ring broken by one pixel: the closing joins it
    maps[2, 0:8, 4] = maps[2, 0:8, 10] = 1
    maps[2, 7, 4:11] = 1                 # a U open to the border: nothing enclosed
    out = fill_changed(maps)
    assert out.dtype == torch.float32 and out.shape == maps.shape
    assert out[0, 4:12, 4:12].all() and out[0].sum() == 64
    assert out[1, 4:12, 4:12].all()
    assert not fill_changed(maps, close=0)[1, 6, 6]   # without the closing the broken ring stays open
    assert (out[2] >= maps[2]).all() and not out[2, 3, 7] and out[2].sum() <= maps[2].sum() + 8
    assert (out >= maps).all()


def test_fill_changed_lifts_the_map_on_a_subject_in_the_median(quadruped):
    """On the generated quadruped (body in the temporal median) the filled map overlaps the
    subject better than the plain map at the mask resolution (32 px)."""
    import torch.nn.functional as F

    x = torch.from_numpy(quadruped.frames).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    x = F.interpolate(x, size=(32, 32), mode="area")
    median = np.median(quadruped.frames, axis=0).astype(np.float32)
    b = F.interpolate(torch.from_numpy(median).permute(2, 0, 1)[None] * (2.0 / 255.0) - 1.0, size=(32, 32),
                      mode="area")[0]
    subject = F.interpolate(torch.from_numpy(quadruped.labels > 0)[:, None].float(), size=(32, 32),
                            mode="area")[:, 0] > 0.5
    plain = L.changed_pixels(x, b, 0.05)
    filled = fill_changed(plain.float()) > 0.5

    def iou(m):
        return float((m & subject).sum() / (m | subject).sum())

    assert iou(filled) > iou(plain) + 0.03


def test_fill_changed_bad_input():
    with pytest.raises(ValueError, match="N, h, w"):
        fill_changed(torch.zeros(16, 16))


def test_temporal_mode_finds_scenery_that_a_varied_subject_covers_in_most_frames():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    frames = np.repeat(scene[None], 40, 0)
    for t in range(28):                                   # 70 % of the frames: a textured subject on the left
        frames[t, :, :16] = rng.integers(0, 256, (32, 16, 3))
    light = np.linspace(0.9, 1.1, 40)[:, None, None, None]  # and a slow change of light
    frames = np.clip(frames * light, 0, 255).astype(np.uint8)
    mode = temporal_mode(frames)
    median = np.median(frames, 0)
    assert mode.shape == (32, 32, 3) and mode.dtype == np.float32
    assert np.abs(mode - scene)[:, :16].mean() < 3.0              # the scenery, up to the light
    assert np.abs(median - scene)[:, :16].mean() > 20.0           # the median shows the subject
    assert np.abs(mode - scene)[:, 16:].mean() < 3.0
    with pytest.raises(ValueError):
        temporal_mode(frames[0])
