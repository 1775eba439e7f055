"""Quality gates of the shipped models (slow: run with ``pytest -m slow tests/test_quality.py``).

* ``trained/synth`` is scored on a freshly generated video of the same figure with new motion
  (``motion_seed`` never used in training) against the exact ground truth
  (:mod:`engine.evaluate`). The thresholds are the numbers measured when the bundle was
  trained (``trained/synth/NOTES.md``) minus a small margin, so a regression is caught.
* A short run of the default training recipe on small generated videos of two body plans must
  find the figure (foreground IoU) and split it into parts (part IoU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parttrack.engine.bundle import load_bundle
from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE

ROOT = Path(__file__).resolve().parent.parent
SYNTH = ROOT / "trained" / "synth"
BBB = ROOT / "trained" / "bbb"
#: Held-out motion for the gate (training used motion_seed 0).
HELD_OUT_MOTION_SEED = 1234
#: Brief training run of test_brief_default_training_finds_the_figure: steps, the generated figure
#: (a seed no training recipe was tuned on), and per body plan the (foreground IoU, part IoU) it must
#: reach on held-out motion — measured values in the comments, thresholds well below them.
BRIEF_STEPS = 600
BRIEF_FIGURE_SEED = 7
BRIEF_MIN = {"humanoid": (0.60, 0.30),     # measured 0.769 / 0.499 (2026-12-07, 2-core Xeon, fp32);
             "robot_arm": (0.60, 0.25)}    # 0.759 / 0.384 there; a collapse: foreground IoU < 0.5, part IoU < 0.1
# On the 2-core AMD EPYC (2026-12-08), where the default precision "auto" trains in bf16: humanoid
# 0.764 / 0.420, robot arm 0.782 / 0.327. The same run in fp32 there: humanoid 0.773 / 0.461 (training
# seeds 1 and 2 of the same setting: fp32 0.447, 0.532; bf16 0.479, 0.426 part IoU).


def _stored_gate() -> dict:
    return json.loads((SYNTH / "quality_gate.json").read_text())


@pytest.mark.slow
def test_shipped_synth_model_on_held_out_motion():
    from parttrack.engine.evaluate import evaluate_bundle
    from parttrack.engine.synthetic import render_video

    gate = _stored_gate()
    video = render_video(gate["frames"], gate["size"], figure_seed=gate["figure_seed"],
                         motion_seed=HELD_OUT_MOTION_SEED)
    res = evaluate_bundle(SYNTH, video, backend="onnxruntime")
    assert res["foreground_iou"] >= gate["min_foreground_iou"], res
    assert res["part_iou"] >= gate["min_part_iou"], res
    assert res["landmark_error_pct"] <= gate["max_landmark_error_pct"], res


@pytest.mark.slow
@pytest.mark.parametrize("bundle, input_size", [(SYNTH, DEFAULT_INPUT_SIZE), (BBB, 128)], ids=["synth", "bbb"])
def test_shipped_bundles_are_complete(bundle, input_size):
    """``trained/synth`` is the default recipe's (``engine.preprocess.DEFAULT_INPUT_SIZE``);
    ``trained/bbb`` was trained before that default and kept (its NOTES.md)."""
    b = load_bundle(bundle)
    assert b.meta.num_parts == 10 and b.meta.input_size == input_size
    assert len(set(b.meta.part_names)) == 10
    assert b.meta.extra["training_steps"] > 0
    assert (bundle / "NOTES.md").read_text().strip()


@pytest.mark.slow
@pytest.mark.parametrize("plan", sorted(BRIEF_MIN))
def test_brief_default_training_finds_the_figure(tmp_path, plan):
    """BRIEF_STEPS steps of `parttrack train`'s default recipe — ``TrainConfig()`` started from
    the shipped prior (``--init prior``) — on a generated figure must already find the figure
    and split it into parts, on held-out motion: the default has not collapsed (every pixel on
    the background slot, or one part holding the whole figure while the others sit on the
    scenery). 1 torch thread and seed 0, so the run is the same on every machine; thresholds in
    BRIEF_MIN."""
    import torch

    from parttrack.engine.evaluate import evaluate_prediction
    from parttrack.engine.model import NetConfig
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import TrainConfig, Trainer
    from parttrack.engine.types import part_labels
    from parttrack.tracker.cli.train import prior_bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(1)          # deterministic whatever the machine's core count
    train = render_video(300, 128, figure_seed=BRIEF_FIGURE_SEED, motion_seed=0, plan=plan)
    recipe = TrainConfig(steps=BRIEF_STEPS, minutes=None, snapshot_every=10 ** 6, checkpoint_every=10 ** 6)
    tr = Trainer(train.frames, NetConfig(), recipe, tmp_path / "run")
    tr.load_weights(prior_bundle())       # the start `parttrack train` uses by default
    try:
        tr.run(progress=False)
    finally:
        torch.set_num_threads(threads)
    test = render_video(60, 128, figure_seed=BRIEF_FIGURE_SEED, motion_seed=HELD_OUT_MOTION_SEED, plan=plan)
    with torch.no_grad():
        masks, tfs = tr.net.eval()(torch.from_numpy(test.frames))
    up = torch.nn.functional.interpolate(masks, size=(128, 128), mode="bilinear", align_corners=False)
    labels = part_labels(up.numpy(), axis=1)
    centres = (tfs[..., 4:].numpy() + 1) * 64 - 0.5
    res = evaluate_prediction(labels, centres, test.ground_truth, 10)
    print(plan, {k: round(res[k], 4) for k in ("part_iou", "foreground_iou", "landmark_error_pct")})
    min_fg, min_part = BRIEF_MIN[plan]
    assert res["foreground_iou"] >= min_fg, res
    assert res["part_iou"] >= min_part, res
