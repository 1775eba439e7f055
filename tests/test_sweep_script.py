"""scripts/sweep_train.py: how the label-free motion residual's ranking of runs is counted."""

import pytest

from tests.scripts import load_script

pytest.importorskip("scipy")


def _sweep():
    return load_script("sweep_train")


def test_residual_ordering_counts_pairs_on_the_same_video_only():
    rows = [  # video A: the residual orders all 3 pairs right; video B: its one pair wrong
        {"plan": "humanoid", "seed": 0, "part_iou": 0.50, "motion_residual": 0.10},
        {"plan": "humanoid", "seed": 0, "part_iou": 0.40, "motion_residual": 0.20},
        {"plan": "humanoid", "seed": 0, "part_iou": 0.42, "motion_residual": 0.15},
        {"plan": "robot_arm", "seed": 0, "part_iou": 0.30, "motion_residual": 0.30},
        {"plan": "robot_arm", "seed": 0, "part_iou": 0.20, "motion_residual": 0.10},
        {"plan": "robot_arm", "seed": 1, "part_iou": 0.90, "motion_residual": 0.90},   # alone: no pair
    ]
    table = _sweep().residual_ordering(rows).splitlines()
    assert table[2] == "| humanoid | 0 | 3 | -1.00 | 3/3 | 2/2 |"       # 0.50 vs 0.42 differ by ≥ 0.05, as 0.50 vs 0.40
    assert table[3] == "| robot_arm | 0 | 2 | +nan | 0/1 | 0/1 |"
    assert table[-1] == "| all | | 6 | | 3/4 | 2/3 |"
