"""engine.motion_init: motion clusters of a generated figure video."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.motion_init import motion_clusters
from parttrack.engine.synthetic import render_video
from parttrack.engine.train import prepare_frames


@pytest.fixture(scope="module")
def video():
    v = render_video(60, motion_seed=0, size=128, figure_seed=3, plan="humanoid", light=0.15)
    return v, prepare_frames(v.frames, 128)


def test_motion_clusters_cover_the_moving_figure_under_changing_light(video):
    v, frames = video
    med = np.median(frames, axis=0).astype(np.float32)
    targets, valid = motion_clusters(frames, med, 6, (32, 32))
    assert targets.shape == (60, 7, 32, 32) and targets.dtype == np.float32 and valid.dtype == bool
    np.testing.assert_allclose(targets.sum(1), 1.0, atol=1e-5)
    assert valid.all()
    fg_pred = targets[:, 0] < 0.5
    import cv2
    truth = np.stack([cv2.resize((m > 0).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA) > 0.5
                      for m in v.labels])
    inter = (fg_pred & truth).sum()
    assert inter / fg_pred.sum() > 0.75                     # on the figure, not on the lit scenery
    assert inter / truth.sum() > 0.35                       # and a good share of it (thin limbs are < 1/2 pixel)
    # every cluster is used, and each is compact: its pixels sit near each other
    lab = targets.argmax(1)
    for t in range(0, 60, 12):
        assert len(np.unique(lab[t][lab[t] > 0])) >= 5


def test_motion_clusters_without_motion_give_no_target():
    frames = np.full((4, 64, 64, 3), 90, np.uint8)
    targets, valid = motion_clusters(frames, frames[0].astype(np.float32), 3, (16, 16))
    assert not valid.any()
    np.testing.assert_allclose(targets[:, 0], 1.0)


def test_motion_clusters_reject_bad_shapes():
    with pytest.raises(ValueError):
        motion_clusters(np.zeros((4, 8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), 3, (4, 4))
    with pytest.raises(ValueError):
        motion_clusters(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.float32), 3, (4, 4))
