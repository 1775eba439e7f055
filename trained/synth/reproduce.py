"""Reproduce ``trained/synth``: train on a generated figure video, export, score on held-out motion.

    python trained/synth/reproduce.py --run-dir /tmp/synth_run            # train (6,000 steps, ≈ 20 min) + export
    python trained/synth/reproduce.py --run-dir /tmp/synth_run --export-only   # export a finished run

Training sees the frames only (figure_seed 0, motion_seed 0, 300 frames at 160×160, the default
input size ``engine.preprocess.DEFAULT_INPUT_SIZE``). The ground truth is used afterwards, to
measure (held-out video: motion_seed 1234) and to give the learned parts the names of the figure
parts they cover on the *training* video (the one-off naming step the method needs, done by
matching instead of by eye).

The recipe is `parttrack train`'s default: ``TrainConfig()`` with nothing changed but the step
count (6,000 steps ≈ the 20-minute budget at 160×160 on a quiet 2-core machine), the default
seed 0, and the default start, the shipped prior's weights (``--init``'s default,
``trained/prior``, trained on other figures, as ``parttrack train --init prior``; ``--init none``
starts from random weights); 2 torch threads (``--threads``; `parttrack train` takes torch's
choice, 2 here). Results vary with the seed and the thread count (which changes the
floating-point order): see "Training record" in NOTES.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from parttrack.engine.bundle import read_onnx_meta, write_onnx_meta  # noqa: E402
from parttrack.engine.evaluate import evaluate_bundle  # noqa: E402
from parttrack.engine.model import NetConfig  # noqa: E402
from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE  # noqa: E402
from parttrack.engine.synthetic import render_video  # noqa: E402
from parttrack.engine.train import TrainConfig, Trainer, write_trained_bundle  # noqa: E402

OUT = ROOT / "trained" / "synth"
PRIOR = ROOT / "trained" / "prior"     # `parttrack train`'s default starting weights (--init prior)
TRAIN = dict(n_frames=300, size=DEFAULT_INPUT_SIZE, figure_seed=0, motion_seed=0)
HELD_OUT_MOTION_SEED = 1234
NET = NetConfig(num_parts=10, input_size=DEFAULT_INPUT_SIZE, latent_stride=4)
TRAINING = TrainConfig.from_dict({"steps": 6000, "minutes": None, "seed": 0})   # the default recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--init", default=str(PRIOR), metavar="BUNDLE|none",
                    help="starting weights (default: trained/prior, as `parttrack train`; none: random weights); "
                         "with --export-only pass the run's --init again")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    init = None if args.init.lower() == "none" else Path(args.init)
    video = render_video(TRAIN["n_frames"], TRAIN["size"], figure_seed=TRAIN["figure_seed"],
                         motion_seed=TRAIN["motion_seed"])
    if args.export_only:
        cfg = json.loads((run / "config.json").read_text())
        net_cfg, tcfg = NetConfig.from_dict(cfg["network"]), TrainConfig.from_dict(cfg["training"])
        trainer = Trainer(video.frames, net_cfg, tcfg, run)
        ck = torch.load(run / "checkpoint.pt", weights_only=True)
        trainer.net.load_state_dict(ck["net"])
        trainer.step, trainer.elapsed_s = int(ck["step"]), float(ck["elapsed_s"])
        with open(run / "log.csv", newline="") as fh:   # the losses of the last logged step
            rows = list(csv.DictReader(fh))
        last = {k: float(v) for k, v in rows[-1].items() if k not in ("step", "elapsed_s")} if rows else {}
    else:
        trainer = Trainer(video.frames, NET, TRAINING, run)
        if init is not None:
            trainer.load_weights(init)
        last = trainer.run(progress=False)["last"]
    out = Path(args.out)
    record = ({"name": f"generated figure_seed={TRAIN['figure_seed']} motion_seed={TRAIN['motion_seed']}",
               "sha256": "", "frames": TRAIN["n_frames"]},)
    started = "" if init is None else f"\nStarted from the weights of {str(init.resolve()).replace(str(ROOT) + '/', '')} (warm start).\n"
    write_trained_bundle(trainer, out, record, notes_extra=started, last=last)
    notes = (out / "NOTES.md").read_text().replace(str(out), "trained/synth")
    (out / "NOTES.md").write_text(notes)

    # Names: the figure part each learned part covers most on the training video.
    train_res = evaluate_bundle(out, video)
    names = [f"extra{i + 1}" for i in range(NET.num_parts)]
    for gt_name, learned in train_res["assignment"].items():
        for pid in learned:
            names[pid - 1] = gt_name
    held = render_video(150, TRAIN["size"], figure_seed=TRAIN["figure_seed"], motion_seed=HELD_OUT_MOTION_SEED)
    res = evaluate_bundle(out, held)
    quality = {k: round(float(res[k]), 4) for k in ("part_iou", "foreground_iou", "landmark_error_pct",
                                                      "landmark_error_centroid_pct", "landmark_error_oracle_pct")}
    meta = read_onnx_meta(out / "model.onnx")
    extra = dict(meta.extra, held_out_quality=quality, held_out_motion_seed=HELD_OUT_MOTION_SEED)
    write_onnx_meta(out / "model.onnx", replace(meta, part_names=tuple(names), extra=extra))
    gate = {"frames": 150, "size": TRAIN["size"], "figure_seed": TRAIN["figure_seed"],
            "measured": quality, "target_part_iou": 0.6, "target_foreground_iou": 0.85,
            "min_part_iou": round(quality["part_iou"] - 0.05, 3),
            "min_foreground_iou": round(quality["foreground_iou"] - 0.05, 3),
            "max_landmark_error_pct": round(quality["landmark_error_pct"] * 1.2 + 0.5, 2)}
    (out / "quality_gate.json").write_text(json.dumps(gate, indent=2) + "\n")
    per_part = {k: round(v, 3) for k, v in res["part_iou_per_part"].items()}
    with open(out / "NOTES.md", "a") as fh:
        fh.write(f"""
## Held-out quality (generated video, same figure, new motion: motion_seed {HELD_OUT_MOTION_SEED}, 150 frames)

Measured with `engine.evaluate.evaluate_bundle` (ONNX Runtime, Hungarian matching):

- part IoU {quality['part_iou']:.3f} (target 0.6), per figure part: {per_part}
- foreground IoU {quality['foreground_iou']:.3f} (target 0.85)
- landmark error {quality['landmark_error_pct']:.2f} % of the image size (transform centres; mask
  centroids {quality['landmark_error_centroid_pct']:.2f} %; floor from the true part centres
  {quality['landmark_error_oracle_pct']:.2f} %)

Part names come from matching the learned parts to the figure's parts on the training video
(`extraN` = a learned part that matched none). Reproduce: `python trained/synth/reproduce.py
--run-dir DIR`. The slow test tests/test_quality.py re-scores this bundle on a freshly generated
held-out video against quality_gate.json.
""")
    print(json.dumps(quality), names)


if __name__ == "__main__":
    main()
