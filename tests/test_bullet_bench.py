"""scripts/bullet_bench.py: the pybullet-rendered held-out videos and their ground truth
(skipped where pybullet, which only that script needs, is not installed)."""

import numpy as np
import pytest

from tests.scripts import load_script

pytest.importorskip("pybullet")


@pytest.mark.parametrize("subject", ["kuka", "laikago", "humanoid"])
def test_rendered_ground_truth_is_consistent(subject):
    bench = load_script("bullet_bench")
    v = bench.render(subject, figure_seed=0, motion_seed=0, frames=4)
    parts = bench.SUBJECTS[subject]["parts"]
    assert v.frames.shape == (4, 256, 256, 3) and v.part_names == tuple(parts)
    assert len(v.joint_pairs) == len(parts) - 1                 # a tree: one joint per non-root part
    for t in range(4):
        ids = set(np.unique(v.labels[t]).tolist())
        assert 0 in ids and len(ids - {0}) >= len(parts) - 2     # (nearly) every part is seen
        for i in ids - {0}:          # a part's centre lies near its pixels (unless it is mostly hidden)
            ys, xs = np.nonzero(v.labels[t] == i)
            if len(xs) < 150:
                continue
            cx, cy = v.centres[t, i - 1]
            assert xs.min() - 12 <= cx <= xs.max() + 12 and ys.min() - 12 <= cy <= ys.max() + 12
    # the subject moves: its labels change from frame to frame
    assert (v.labels[0] != v.labels[3]).mean() > 0.001
    again = bench.render(subject, figure_seed=0, motion_seed=0, frames=2)
    np.testing.assert_array_equal(again.labels, v.labels[:2])    # deterministic for a seed
