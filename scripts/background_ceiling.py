"""How good is the training's background-subtraction map, and how good could it be?

The static-camera training steers the parts with the changed-pixel map ``|frame − lit static
background| > change_threshold`` (the change prior and the part-usage term). This script scores
that map against the generator's subject mask (IoU over all frames, at the input size and at
the reconstruction size, area-downsampled) for three background images:

- ``median``: the per-pixel temporal median (the training's static background by default);
- ``estimate``: :func:`parttrack.engine.background.estimate_background` (the option
  ``TrainConfig.estimate_background``, off by default: sweep L);
- ``true``: the generator's own background image — a ceiling only, never used to train.

Videos as in ``scripts/sweep_train.py`` (256×256 letterboxed to the input, 128 unless ``--input``,
300 training frames, light ±15 %, CRF 23, figure seed 100 + seed).

    python scripts/background_ceiling.py --plans humanoid quadruped robot_arm --seeds 0 1 2 3 4

``--scan T1 T2 …`` scores instead the median's and the true background's map at the reconstruction
size for each change threshold (``LossWeights.change_threshold``); ``--input 160`` letterboxes to
160 (the default input size) with 40-pixel masks.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from parttrack.engine import losses as L
from parttrack.engine.background import estimate_background
from parttrack.engine.synthetic import render_background, render_video
from parttrack.engine.train import prepare_frames

SIZE, FRAMES = 256, 300


def changed_iou(x: torch.Tensor, background: np.ndarray, subject: torch.Tensor, side: int,
                threshold: float) -> float:
    """IoU of the changed-pixel map at ``side``×``side`` with the subject (share > 0.5 there)."""
    b = torch.from_numpy(background).permute(2, 0, 1)[None] * (2.0 / 255.0) - 1.0
    if side != x.shape[-1]:
        x, b = F.interpolate(x, size=(side, side), mode="area"), F.interpolate(b, size=(side, side), mode="area")
        subject = F.interpolate(subject[:, None].float(), size=(side, side), mode="area")[:, 0] > 0.5
    changed = L.changed_pixels(x, b[0], threshold)
    return float((changed & subject).sum() / (changed | subject).sum())


def training_video(plan: str, seed: int, side: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor, np.ndarray]:
    """A sweep video's training frames at ``side``: uint8 frames ``(T, S, S, 3)``, the same in
    [-1, 1] ``(T, 3, S, S)``, the subject ``(T, S, S)`` bool, the median background ``(S, S, 3)``."""
    v = render_video(FRAMES, size=SIZE, figure_seed=100 + seed, plan=plan, light=0.15, crf=23)
    frames = prepare_frames(v.frames, side)
    subject = torch.from_numpy(v.labels > 0)[:, None].float()
    subject = F.interpolate(subject, size=(side, side), mode="area")[:, 0] > 0.5
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    median = np.median(frames[:: max(1, FRAMES // 64)], axis=0).astype(np.float32)
    return frames, x, subject, median


def true_background(seed: int, side: int) -> np.ndarray:
    """The generator's own background of figure seed 100 + ``seed`` at ``side``: ``(S, S, 3)``
    float32 in [0, 255] (a ceiling only, never used to train)."""
    return cv2.resize(render_background(SIZE, SIZE, 100 + seed), (side, side), interpolation=cv2.INTER_AREA)


def scan(plans: list[str], seeds: list[int], thresholds: list[float], side: int) -> None:
    """The map's IoU at the reconstruction size for each threshold, median and true background."""
    mask = side // 4
    print("| plan | seed | background | " + " | ".join(f"{t:g}" for t in thresholds) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in thresholds) + " |")
    for plan in plans:
        for seed in seeds:
            _, x, subject, median = training_video(plan, seed, side)
            true = true_background(seed, side)
            for name, bg in (("median", median), ("true", true)):
                cells = [changed_iou(x, bg, subject, mask, t) for t in thresholds]
                print(f"| {plan} | {seed} | {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plans", nargs="+", default=["humanoid", "quadruped", "robot_arm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--threshold", type=float, default=0.05)
    ap.add_argument("--input", type=int, default=128, help="model input side (masks: a quarter of it)")
    ap.add_argument("--scan", nargs="+", type=float, help="change thresholds to compare")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if a.scan:
        scan(a.plans, a.seeds, a.scan, a.input)
        return
    size, mask = a.input, a.input // 4
    print(f"| plan | seed | median ({size} / {mask} px) | estimate ({size} / {mask} px) | true background "
          f"({size} / {mask} px) | estimate s |")
    print("| --- | --- | --- | --- | --- | --- |")
    gains = []
    for plan in a.plans:
        for seed in a.seeds:
            frames, x, subject, median = training_video(plan, seed, size)
            t0 = time.perf_counter()
            estimate, _ = estimate_background(frames, a.threshold)
            dt = time.perf_counter() - t0
            true = true_background(seed, size)
            cells = []
            for bg in (median, estimate, true):
                cells.append([changed_iou(x, bg, subject, side, a.threshold) for side in (size, mask)])
            gains.append(cells[1][1] - cells[0][1])
            print(f"| {plan} | {seed} | " + " | ".join(f"{c[0]:.3f} / {c[1]:.3f}" for c in cells) + f" | {dt:.1f} |",
                  flush=True)
    print(f"\nestimate − median at {mask} px: median {statistics.median(gains):+.3f}, "
          f"worst {min(gains):+.3f}, better in {sum(g > 0 for g in gains)} of {len(gains)}")


if __name__ == "__main__":
    main()
