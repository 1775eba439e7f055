"""``parttrack bench``: frames/s and latency of every available backend (batch 1 and a larger
batch) and of the whole tracking pipeline on a video, with the machine they ran on
(a thin layer over :func:`tracker.bench.run_bench`)."""

from __future__ import annotations

import argparse

BACKENDS = ("onnxruntime", "tensorrt", "torch")


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure inference and tracking speed on this machine",
                       description="Measure frames/s and latency (median, 10th-90th percentile) of each "
                                   "available inference backend at batch 1 and a larger batch, and of the "
                                   "whole tracking pipeline on a 640x480 video. Prints the machine "
                                   "(CPU model, cores, GPU). Numbers change with other load: repeat it.")
    p.add_argument("--model", default=None, metavar="DIR", help="model bundle (default: the shipped trained/bbb)")
    p.add_argument("--backend", action="append", choices=BACKENDS, default=None,
                   help="backend to measure (repeatable; default: every available one)")
    p.add_argument("--precision", action="append", choices=("fp32", "int8"), default=None,
                   help="ONNX Runtime precision (repeatable; default: fp32, plus int8 when the bundle "
                        "has model.int8.onnx)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8], metavar="N",
                   help="batch sizes (default: 1 8)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: each backend's choice)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads (default: usable cores // --workers)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="size threads as if N worker processes shared the machine (default 1)")
    p.add_argument("--spin", action="store_true", help="ONNX Runtime: let idle threads spin-wait")
    p.add_argument("--calls", type=int, default=200, metavar="N", help="timed calls per batch size (default 200)")
    p.add_argument("--video", default=None, metavar="FILE",
                   help="video for the pipeline run and input frames (default: a 640x480 clip made "
                        "from the bundle's clip.mp4)")
    p.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                   help="skip the end-to-end tracking measurement")
    p.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from parttrack.engine.bundle import default_model_path
    from parttrack.tracker.bench import format_report, run_bench, to_json

    if any(b < 1 for b in args.batch):
        from parttrack.engine.errors import ParttrackError

        raise ParttrackError(f"batch sizes must be at least 1, got {args.batch}")
    report = run_bench(args.model or default_model_path(), backends=args.backend, precisions=args.precision,
                       batches=tuple(args.batch), device=args.device, threads=args.threads, workers=args.workers,
                       calls=args.calls, video=args.video, pipeline=args.pipeline,
                       options={"spin": True} if args.spin else None)
    print(to_json(report) if args.json else format_report(report))
    return 0
