"""`parttrack track PATH [PATH ...] -o OUT`: batch tracking of recorded videos
(:func:`tracker.batch.run_batch`; on a Ray cluster :func:`tracker.ray_batch.run_batch_ray`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

DESCRIPTION = """\
Track the parts of every video given (files, or folders of videos) and write one result
folder per video: OUT/<video>/tracks.csv (smoothed part poses), joints.csv, track.json, and on
request tracks_raw.csv, label-map PNGs, an overlay video and animation exports. A rerun skips
videos whose folder is complete (done.json) for the same video file, model and options, and
redoes the others (interrupted, or made from another video, model or options); --force redoes
all. A complete result is replaced only once its replacement is complete; one run at a time
writes a folder (a second one waits). A video that fails is reported at the end; the others are
still tracked.
Exit status: 0 all done; 1 all tracked, but some video ended before the frames its file
declares (truncated or damaged: see the warnings); 2 bad input (nothing tracked); 3 some
videos failed; 130 interrupted (Ctrl-C, SIGTERM, SIGHUP: finished videos stay done)."""


def add_parser(sub):
    from parttrack.tracker.kalman import SMOOTHERS

    p = sub.add_parser("track", help="track videos in batch (tracks, joints, overlays, exports)",
                       description=DESCRIPTION)
    # nargs="*" (checked in run) so that `--ray PATH …`, where argparse takes PATH as the
    # address, still parses and is put right.
    p.add_argument("paths", nargs="*", metavar="PATH", help="video files and/or folders of videos")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder (one sub-folder per video)")
    p.add_argument("--model", default=None, metavar="DIR",
                   help="model bundle folder (default: the shipped trained/bbb)")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"),
                   help="inference backend (default auto)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's choice)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (local) or Ray actors; CPU threads are split between them "
                        "(default: 1 locally, one per CPU on Ray)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="inference precision (default: the backend's; int8 = ONNX Runtime on CPU with the "
                        "bundle's model.int8.onnx from `parttrack compile --int8`)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads per worker (default: cores // workers)")
    p.add_argument("--smoother", default="offline", choices=SMOOTHERS,
                   help="offline: Kalman filter + RTS smoother (default); online: causal filter as in "
                        "the live viewer; none: raw poses")
    p.add_argument("--raw", action="store_true", help="also write the unsmoothed poses (tracks_raw.csv)")
    p.add_argument("--masks", action="store_true", help="write per-frame label-map PNGs (masks/NNNNNN.png)")
    p.add_argument("--overlay", action="store_true", help="write overlay.mp4 (parts, axes, skeleton)")
    p.add_argument("--no-plot", action="store_true", help="do not draw tracks.png (the picture of the tracks)")
    p.add_argument("--export", action="append", default=[], metavar="FORMAT",
                   help="export: ae, blender, nwb, dlc, sleap, bvh, or a group: animation (ae, blender, bvh), "
                        "pose (nwb, dlc, sleap; need `pip install 'parttrack[formats]'`), all (repeatable)")
    p.add_argument("--force", action="store_true", help="redo videos that are already done")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="frames per inference call (default 8)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="track at most N frames per video")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster (ADDRESS such as ray://head:10001 or auto; a local Ray "
                        "instance when omitted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from parttrack.tracker.batch import (
        TrackOptions,
        discover_videos,
        failure_lines,
        interrupt_on_signals,
        run_batch,
        summarize,
    )

    exports = tuple(args.export)
    if exports:
        from parttrack.tracker.animation import parse_formats

        exports = parse_formats(list(exports))  # unknown names fail now, not after tracking
    if args.batch_size < 1:
        from parttrack.engine.errors import ParttrackError

        raise ParttrackError(f"--batch-size must be at least 1, got {args.batch_size}")
    options = TrackOptions(model=args.model, backend=args.backend, device=args.device, smoother=args.smoother,
                           raw=args.raw, masks=args.masks, overlay=args.overlay, plot=not args.no_plot, exports=exports, force=args.force,
                           batch_size=args.batch_size, max_frames=args.max_frames, threads=args.threads,
                           precision=args.precision)
    if args.ray and Path(args.ray).exists():  # `--ray videos/ -o out`: argparse took the path as ADDRESS
        args.paths, args.ray = [args.ray, *args.paths], ""
    if not args.paths:
        from parttrack.engine.errors import ParttrackError

        raise ParttrackError("no videos given", "usage: parttrack track PATH [PATH ...] -o OUT")
    t0 = time.perf_counter()
    with interrupt_on_signals():
        if args.ray is not None:
            from parttrack.tracker.ray_batch import run_batch_ray

            results = run_batch_ray(discover_videos(args.paths), args.output, options, address=args.ray or None,
                                    workers=args.workers, progress=not args.no_progress)
        else:
            results = run_batch(args.paths, args.output, options, workers=args.workers or 1,
                                progress=not args.no_progress)
    print(summarize(results, args.output, time.perf_counter() - t0), file=sys.stdout)
    for line in failure_lines(results):
        print(f"parttrack: {line}", file=sys.stderr)
    return exit_status(results)


def exit_status(results) -> int:
    """The documented exit status of a batch (see DESCRIPTION): 2 when every video failed,
    3 when some did, 130 when one was interrupted, 1 when all were tracked but some video's
    input ended early (``VideoResult.input_complete``), 0 otherwise (other warnings, e.g. about
    the footage, do not change it)."""
    if results and all(r.status == "failed" for r in results):
        return 2
    if any(r.status == "failed" for r in results):
        return 3
    if any(r.status == "interrupted" for r in results):
        return 130
    return 1 if any(not r.input_complete for r in results) else 0
