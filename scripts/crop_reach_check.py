"""How much of a subject the crop around its reach would cut, per crop width.

For generated videos (the sweep's figures: figure seed 100 + seed, training motion seed 0,
held-out motion seed 1234), the footage check's :attr:`FootageReport.subject_reach` of the
training frames is widened by each factor as :func:`parttrack.engine.footage.choose_crop` does,
and the share of the foreground pixels (the generator's label maps: measured here, never used to
train) of the training and the held-out frames that falls outside the crop is printed, with the
crop's enlargement (1.00: no crop).

    python scripts/crop_reach_check.py --scale 0.5 --frame 256x256 --seeds 0 1 2
    python scripts/crop_reach_check.py --frame 384x216 --factors 1.28 1.4 1.6
"""

from __future__ import annotations

import argparse

import numpy as np

from parttrack.engine.footage import check_footage, choose_crop
from parttrack.engine.synthetic import render_video


def outside_share(labels: np.ndarray, crop: tuple[int, int, int, int] | None) -> float:
    """Share of the foreground pixels of ``labels`` ``(T, H, W)`` outside ``crop`` (0 for None)."""
    fg = labels > 0
    if crop is None:
        return 0.0
    x, y, w, h = crop
    return float(1.0 - fg[:, y:y + h, x:x + w].sum() / max(1, fg.sum()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="figure scale (default 1)")
    p.add_argument("--frame", default="256x256", help="WxH (default 256x256)")
    p.add_argument("--plans", nargs="+", default=["humanoid", "quadruped", "robot_arm"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--factors", nargs="+", type=float, default=[1.28, 1.4, 1.5, 1.6])
    args = p.parse_args()
    fw, fh = (int(v) for v in args.frame.lower().split("x"))
    for plan in args.plans:
        for seed in args.seeds:
            kw = dict(size=(fw, fh), figure_seed=100 + seed, plan=plan, light=0.15, crf=23, scale=args.scale)
            train = render_video(300, motion_seed=0, **kw)
            held = render_video(150, motion_seed=1234, **kw)
            report = check_footage(train.frames, train.fps)
            cells = []
            for f in args.factors:
                crop = choose_crop([report], (fw, fh), reach_scale=f)
                zoom = max(fw, fh) / max(crop[2:]) if crop else 1.0
                cells.append(f"{f:g}: zoom {zoom:.2f}, cut {100 * outside_share(train.labels, crop):.2f} % "
                             f"training / {100 * outside_share(held.labels, crop):.2f} % held-out")
            print(f"{plan} s{seed} reach {report.subject_reach}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
