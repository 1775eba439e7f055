"""Reproduce ``trained/prior``: the starting weights of `parttrack train` (a warm start).

    python trained/prior/reproduce.py --run-dir /tmp/prior_run            # train (6,000 steps) + export
    python trained/prior/reproduce.py --run-dir /tmp/prior_run --resume   # continue an interrupted run

One model is trained, without labels, on three generated videos of three body plans (a humanoid,
a quadruped and a robot arm; :mod:`engine.synthetic`), 300 frames each, joined as three shots
(each shot gets its own static background; no training pair straddles a join). The figures
(figure_seed 900) and their motion (motion_seed 7) are none of those the training sweep scores
(figure seeds 100–104, motion seeds 0 and 1234; ``scripts/sweep_train.py``), and the videos are
made the way the sweep's are: 256×256 letterboxed to 128×128, a slowly changing light (±15 %),
sensor noise, H.264 at CRF 23. The recipe is `parttrack train`'s default (``TrainConfig()``:
seed 0; nothing changed but the step count, and no warm start of its own); 1 torch thread by
default, so that the result does not depend on the machine's core count.

``--diverse`` builds sweep V's candidate instead (not shipped; docs/training_sweep.md, "Sweep V"):
nine videos — figure seeds 900, 901, 902 at figure scales 1.0, 0.7, 1.2 with motion seeds 7, 8, 9,
each in the three body plans — trained 6,000 more steps from ``--init`` (the shipped prior):

    python trained/prior/reproduce.py --run-dir /tmp/diverse_run --diverse --init trained/prior --out /tmp/diverse

Training sees the frames only; the generator's ground truth is not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from parttrack.engine.model import NetConfig  # noqa: E402
from parttrack.engine.synthetic import PLANS, render_video  # noqa: E402
from parttrack.engine.train import TrainConfig, Trainer, prepare_frames, write_trained_bundle  # noqa: E402

OUT = ROOT / "trained" / "prior"
VIDEO = dict(n_frames=300, size=256, light=0.15, crf=23)
#: (figure_seed, motion_seed, scale) of the shipped prior's videos, one per body plan
FIGURES = ((900, 7, 1.0),)
#: sweep V's nine-video candidate (``--diverse``)
DIVERSE_FIGURES = ((900, 7, 1.0), (901, 8, 0.7), (902, 9, 1.2))
NET = NetConfig()                       # the default network of `parttrack train`
STEPS = 6000
#: the recipe that made the shipped prior: `parttrack train`'s default of its time (the plain temporal
#: median as the static background), pinned so that later changes of the default do not change it
RECIPE = {"seed": 0, "estimate_background": False}
ABOUT = """
## What this bundle is for

The starting weights of `parttrack train` (`--init prior`, the default, whenever the network
fits: K = 10 parts, 128×128 input): a network that has already learned, without labels, to
split moving figures into compact parts that move rigidly, so that training on a new subject
adapts it instead of starting from random weights. It is not a model of any subject a user
will track. Made by `python trained/prior/reproduce.py --run-dir DIR` (the default recipe from random weights,
seed 0, 6,000 steps, 1 torch thread; generated videos only, no ground truth read).
What it changes, measured at equal steps on held-out motion of figures it never saw:
docs/training_sweep.md, "Sweep U".
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--diverse", action="store_true", help="sweep V's nine-video candidate (not shipped)")
    ap.add_argument("--init", help="a bundle to start from (default: random weights)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shots = [(fs, ms, scale, plan) for fs, ms, scale in (DIVERSE_FIGURES if args.diverse else FIGURES)
             for plan in PLANS]
    videos = [render_video(plan=plan, figure_seed=fs, motion_seed=ms, scale=scale, **VIDEO)
              for fs, ms, scale, plan in shots]
    frames = np.concatenate([prepare_frames(v.frames, NET.input_size) for v in videos])
    joins = tuple(int(i) for i in np.cumsum([len(v.frames) for v in videos])[:-1])
    tcfg = TrainConfig.from_dict({**RECIPE, "steps": args.steps, "minutes": None, "shot_starts": joins})
    trainer = Trainer(frames, NET, tcfg, Path(args.run_dir))
    if args.resume:
        trainer.load_checkpoint()
    elif args.init:
        trainer.load_weights(args.init)
    last = trainer.run(progress=True)["last"]
    record = tuple({"name": f"generated plan={plan} figure_seed={fs} motion_seed={ms}"
                            f"{'' if scale == 1.0 else f' scale={scale}'} ({VIDEO['size']}×{VIDEO['size']}, "
                            f"light ±15 %, CRF {VIDEO['crf']})", "sha256": "", "frames": len(v.frames)}
                   for (fs, ms, scale, plan), v in zip(shots, videos))
    out = write_trained_bundle(trainer, args.out, record, last=last)
    if not args.diverse:
        notes = (out / "NOTES.md").read_text().replace(str(Path(args.out)), "trained/prior")
        (out / "NOTES.md").write_text(notes + ABOUT)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
