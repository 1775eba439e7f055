"""Where a sweep's part IoU goes: the foreground decision, or the split of the subject into parts?

For every trained run of one recipe of ``scripts/sweep_train.py`` (``RUNS/<plan>_s<seed>/bundle``),
on the sweep's held-out video of that run (the same figure, motion seed 1234), this scores:

- ``part``: part IoU as ``parttrack eval`` scores it (Hungarian matching, bilinear masks);
- ``part_gt_fg``: part IoU when the generator's foreground is given — every subject pixel takes
  its most likely learned part, every other pixel is background — so only the split of the
  subject into parts is scored (a diagnostic: the ground truth is used to measure only);
- ``fg``: foreground IoU, and the subject's pixels the model calls background (``missed``) and the
  background pixels it calls subject (``false_fg``), both as shares of the subject's pixels.

    python scripts/part_iou_breakdown.py /work/sweeps/U/runs/prior [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from sweep_train import VIDEO  # the sweep's videos (this script's folder is on sys.path)

from parttrack.engine.evaluate import confusion, foreground_iou, masks_to_source, part_iou, source_sampling_maps
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.runtime import create_runtime
from parttrack.engine.synthetic import PLANS, render_video
from parttrack.engine.types import part_labels


def breakdown(bundle: Path, plan: str, seed: int) -> dict:
    """The scores of the module docstring for one run's bundle on its held-out video."""
    video = render_video(VIDEO["test_frames"], size=VIDEO["size"], figure_seed=100 + seed, plan=plan,
                         light=VIDEO["light"], crf=VIDEO["crf"], motion_seed=VIDEO["test_motion_seed"])
    frames, gt = video.frames, video.ground_truth
    runtime = create_runtime(bundle, backend="onnxruntime", threads=1)
    t, h, w, _ = frames.shape
    lb = Letterbox.fit(h, w, runtime.meta.input_size)
    k = runtime.meta.num_parts
    labels = np.zeros((t, h, w), np.uint8)
    labels_gt_fg = np.zeros_like(labels)
    maps = None
    for start in range(0, t, 16):
        out = runtime.infer(np.stack([lb.apply(f) for f in frames[start:start + 16]]))
        maps = maps or source_sampling_maps(lb, *out.masks.shape[2:])
        for i, m in enumerate(out.masks):
            src = masks_to_source(m, maps)
            labels[start + i] = part_labels(src)
            labels_gt_fg[start + i] = np.where(gt.labels[start + i] > 0, src[1:].argmax(0) + 1, 0)
    subject, pred = gt.labels > 0, labels > 0
    n = subject.sum()
    return {"plan": plan, "seed": seed,
            "part": round(part_iou(confusion(labels, gt.labels, k, gt.num_parts))[0], 3),
            "part_gt_fg": round(part_iou(confusion(labels_gt_fg, gt.labels, k, gt.num_parts))[0], 3),
            "fg": round(foreground_iou(labels, gt.labels), 3),
            "missed": round(float((subject & ~pred).sum() / n), 3),
            "false_fg": round(float((pred & ~subject).sum() / n), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a sweep's runs folder of one recipe, e.g. sweeps/U/runs/prior")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rows = []
    for plan in PLANS:
        for run in sorted(Path(args.runs).glob(f"{plan}_s*")):
            if (run / "bundle" / "model.onnx").is_file():
                rows.append(breakdown(run / "bundle", plan, int(run.name.rsplit("_s", 1)[1])))
                print(rows[-1], flush=True)
    for key in ("part", "part_gt_fg", "fg", "missed", "false_fg"):
        values = [r[key] for r in rows]
        print(f"{key}: median {statistics.median(values):.3f}, min {min(values):.3f}, max {max(values):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
