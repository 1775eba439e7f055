"""``parttrack compile``: build a bundle's TensorRT engine ahead of time (cached in
``~/.cache/parttrack/engines``), or with ``--int8`` its optional CPU int8 model
(``model.int8.onnx``, calibrated on real frames, accuracy cost printed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("compile", help="build the TensorRT engine (or --int8: the CPU int8 model) ahead of time",
                       description="Build and cache the TensorRT engine of a model bundle for this GPU and "
                                   "TensorRT version, so the first run does not wait for it. With --int8, "
                                   "write the bundle's optional int8 model for ONNX Runtime on CPU instead "
                                   "(used only with --precision int8), and print what it costs in accuracy.")
    p.add_argument("--model", default=None, metavar="DIR", help="model bundle (default: the shipped trained/bbb)")
    p.add_argument("--device", default="cuda:0", help="GPU to build for (default cuda:0)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default=None,
                   help="engine precision (default: fp16 where the GPU has fast fp16, else fp32)")
    p.add_argument("--max-batch", type=int, default=32, metavar="N", help="largest batch per call (default 32)")
    p.add_argument("--opt-batch", type=int, default=1, metavar="N",
                   help="batch size TensorRT tunes for (default 1: lowest live latency)")
    p.add_argument("--force", action="store_true", help="rebuild even if a cached engine exists")
    g = p.add_argument_group("int8 model for CPU (ONNX Runtime)")
    g.add_argument("--int8", action="store_true", help="write model.int8.onnx instead of a TensorRT engine")
    g.add_argument("--calibrate", default=None, metavar="VIDEO",
                   help="real footage to calibrate on (default: the bundle's clip.mp4)")
    g.add_argument("--frames", type=int, default=64, metavar="N",
                   help="frames to read (half calibrate, half measure the accuracy cost; default 64)")
    g.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax",
                   help="activation-range calibration (default minmax)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from parttrack.engine.bundle import default_model_path, load_bundle
    from parttrack.engine.errors import InputError

    bundle = load_bundle(args.model or default_model_path())
    if args.int8:
        import numpy as np

        from parttrack.engine.quantize import build_int8
        from parttrack.tracker.sources import read_frames

        video = Path(args.calibrate) if args.calibrate else bundle.path / "clip.mp4"
        if not args.calibrate and not video.is_file():
            raise InputError(f"bundle {bundle.path} has no clip.mp4 to calibrate on",
                             "pass --calibrate VIDEO with footage like the model will see")
        frames, _ = read_frames(video, max_frames=args.frames)
        lb = bundle.meta.letterbox(frames.shape[1], frames.shape[2])
        path, cost = build_int8(bundle, np.stack([lb.apply(f) for f in frames]), method=args.method)
        print(f"wrote {path} (int8 QDQ, calibrated on {len(frames) // 2 + len(frames) % 2} frames of {video.name})")
        print("accuracy cost vs fp32 on the other " + f"{len(frames) // 2} frames: "
              + ", ".join(f"{k} {v:.4g}" for k, v in cost.items()))
        print("use it with --precision int8 (ONNX Runtime on CPU)")
        return 0

    from parttrack.engine.runtime import parse_device
    from parttrack.engine.runtime.tensorrt_backend import compile_engine

    kind, index = parse_device(args.device)
    if kind != "cuda":
        raise InputError(f"TensorRT engines are built for a GPU, not {args.device!r}",
                         "use --device cuda:N, or --int8 for the CPU model")
    path, built = compile_engine(bundle, device_index=index, precision=args.precision, max_batch=args.max_batch,
                                 opt_batch=args.opt_batch, force=args.force)
    print(f"{'built' if built else 'already cached'}: {path}")
    return 0
