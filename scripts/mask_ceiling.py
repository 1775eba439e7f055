"""The ceiling of the quality metrics set by the mask resolution alone.

The ground-truth label maps of generated videos are area-averaged onto a mask grid of the
model input (as a perfect network would output them), resampled back to the source frame the
way inference does (bilinear, or the guided filter with the frame: ``--refine``), labelled with
:func:`parttrack.engine.types.part_labels` and scored with :func:`parttrack.engine.evaluate.evaluate_prediction`.
What a model scores below this is the training's doing, not the resolution's.

    python scripts/mask_ceiling.py --plans humanoid quadruped robot_arm --sides 32 64 128
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from parttrack.engine.evaluate import evaluate_prediction, masks_to_source, source_sampling_maps
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.refine import MaskRefiner
from parttrack.engine.synthetic import render_video
from parttrack.engine.types import part_labels


def ceiling(video, side: int, input_size: int = 128, refine: bool = False) -> dict:
    """Metrics of the ground truth seen through ``side``×``side`` masks (square frames: the
    letterbox is a plain resize, so area-averaging the one-hot labels straight to the mask grid
    is what a perfect network would output)."""
    gt = video.ground_truth
    t, h, w = gt.labels.shape
    if h != w:
        raise ValueError("square generated frames only")
    lb = Letterbox.fit(h, w, input_size)
    maps = source_sampling_maps(lb, side, side)
    refiner = MaskRefiner((h, w), (side, side), lb) if refine else None
    ids = np.arange(gt.num_parts + 1)[:, None, None]
    labels = np.zeros_like(gt.labels)
    for i in range(t):
        onehot = (gt.labels[i][None] == ids).astype(np.float32)
        m = np.stack([cv2.resize(o, (side, side), interpolation=cv2.INTER_AREA) for o in onehot])
        src = refiner(m, video.frames[i]).to_source() if refiner else masks_to_source(m, maps)
        labels[i] = part_labels(src)
    return evaluate_prediction(labels, gt.centres, gt, num_parts=gt.num_parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", nargs="+", default=["humanoid", "quadruped", "robot_arm"])
    ap.add_argument("--sides", nargs="+", type=int, default=[32, 64, 128])
    ap.add_argument("--size", type=int, default=256, help="generated frame side (default 256, as the sweeps)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--figure-seed", type=int, default=101)
    args = ap.parse_args()
    print("| plan | mask side | resampling | part IoU | foreground IoU |\n| --- | --- | --- | --- | --- |")
    for plan in args.plans:
        video = render_video(args.frames, size=args.size, figure_seed=args.figure_seed, plan=plan, motion_seed=1234,
                             light=0.15, crf=23)
        for side in args.sides:
            for refine in (False, True):
                r = ceiling(video, side, refine=refine)
                print(f"| {plan} | {side} | {'guided' if refine else 'bilinear'} | {r['part_iou']:.3f} | "
                      f"{r['foreground_iou']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
