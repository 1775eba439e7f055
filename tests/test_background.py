"""engine.background: the static background with a subject that stays in one place taken out."""

import numpy as np
import pytest
import torch

from parttrack.engine import losses as L
from parttrack.engine.background import estimate_background
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
