"""`parttrack eval BUNDLE [VIDEO_DIR | --generate ...] [--json]`: score a model on a synthetic
articulated-figure video with exact ground truth (:mod:`engine.evaluate`).

``VIDEO_DIR`` is a folder written by :meth:`engine.synthetic.SyntheticVideo.save`
(``video.mp4`` + ``ground_truth.npz``). ``--generate`` renders one instead (held-out motion:
same ``--figure-seed`` as training, another ``--motion-seed``); with both, the generated video
is also saved into ``VIDEO_DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from parttrack.engine.errors import InputError, OutputError


def add_parser(sub):
    p = sub.add_parser("eval", help="score a model on a synthetic video with ground truth",
                       description="Part IoU (learned parts matched to ground-truth parts), "
                                   "foreground IoU and landmark regression error of a model bundle "
                                   "on a generated articulated-figure video.")
    p.add_argument("bundle", help="model bundle folder (e.g. trained/synth)")
    p.add_argument("video_dir", nargs="?", help="folder with video.mp4 + ground_truth.npz "
                                                "(with --generate: where to save the generated video)")
    p.add_argument("--generate", action="store_true", help="render a synthetic video to evaluate on")
    p.add_argument("--figure-seed", type=int, default=0, help="figure/background seed (default 0)")
    p.add_argument("--motion-seed", type=int, default=7, help="motion seed (default 7: held-out)")
    p.add_argument("--frames", type=int, default=200, help="frames to generate (default 200)")
    p.add_argument("--size", type=_frame_size, default=128, metavar="PX",
                   help="generated frame size: SIDE (e.g. 160) or WIDTHxHEIGHT (e.g. 256x144) (default 128)")
    p.add_argument("--fps", type=float, default=25.0, help="generated frame rate (default 25)")
    p.add_argument("--plan", default="humanoid", help="generated body plan: humanoid, quadruped or robot_arm "
                                                       "(default humanoid; use the plan the model was trained on)")
    p.add_argument("--scale", type=float, default=1.0, help="generated figure size relative to the default (default 1)")
    p.add_argument("--light", type=float, default=0.0, help="amplitude of a slowly changing light, e.g. 0.15 (default 0)")
    p.add_argument("--crf", type=int, default=None, help="round-trip the generated frames through H.264 at this CRF")
    p.add_argument("--matching", choices=("hungarian", "max_overlap"), default="hungarian",
                   help="how learned parts are matched to ground-truth parts (default hungarian)")
    p.add_argument("--backend", default="onnxruntime", help="auto|onnxruntime|tensorrt|torch (default onnxruntime)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the runtime")
    p.add_argument("--refine", action="store_true",
                   help="score the masks resampled with the frame as guide (as the label images and overlay "
                        "draw them) instead of bilinearly")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def _frame_size(text: str) -> int | tuple[int, int]:
    """``--size``: ``"160"`` → 160 (a square side), ``"256x144"`` → ``(256, 144)`` (width, height).
    One token, so that a ``VIDEO_DIR`` after it is not taken for a second number."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r} is not SIDE or WIDTHxHEIGHT (e.g. 160 or 256x144)")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def run(args) -> int:
    from parttrack.engine.evaluate import evaluate_bundle, format_report
    from parttrack.engine.synthetic import render_video

    if args.generate:
        if args.frames < 4:
            raise InputError(f"--frames {args.frames} is too few", "use at least 4 (landmark regression splits them in halves)")
        try:
            video = render_video(args.frames, size=args.size, figure_seed=args.figure_seed,
                                 motion_seed=args.motion_seed, fps=args.fps, plan=args.plan, scale=args.scale,
                                 light=args.light, crf=args.crf)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if args.video_dir:
            try:
                video.save(args.video_dir)
            except (OSError, ValueError) as exc:
                raise OutputError(f"cannot write the generated video to {args.video_dir} ({exc})") from None
        target = video
    elif args.video_dir:
        target = Path(args.video_dir)
    else:
        raise InputError("nothing to evaluate on", "pass VIDEO_DIR or --generate")
    result = evaluate_bundle(args.bundle, target, backend=args.backend, matching=args.matching, refine=args.refine,
                             threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0
