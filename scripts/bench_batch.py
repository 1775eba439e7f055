"""Throughput of batch tracking: local worker processes vs a local Ray instance, and Ray's
start-up cost (a benchmark, not a test: the numbers depend on the machine and its load).

It renders N synthetic videos (:mod:`engine.synthetic`, W×H, F frames each) into a temporary
folder, then tracks all of them into a fresh output folder with each configuration:

* ``pool wW×tT``: :func:`tracker.batch.run_batch` with W spawned worker processes of T
  ONNX Runtime threads (W = 1 runs in this process);
* ``ray  wW×tT``: :func:`tracker.ray_batch.run_batch_ray` on an already started local Ray
  instance (W actors of T CPUs/threads), so the time excludes Ray's start;
* ``ray start``: ``ray.init()`` of a local instance (and ``ray.shutdown()``) alone, and
  ``ray e2e``: ``run_batch_ray`` starting and stopping its own instance (what
  ``parttrack track --ray`` costs on a single machine).

Each time is the wall time of the whole call (workers starting, the model loading in each,
decoding, inference, smoothing, writing CSVs). Reported: videos/s and frames/s over that wall
time, and "per-job f/s": frames / the summed time of the per-video jobs themselves (what one
worker sustains once it runs), with the CPU.

The model: ``--model DIR`` (a bundle), else the shipped ``trained/bbb`` if it has a model,
else a random-initialised network of the default size (K = 10, 128×128; needs torch, the
``train`` extra) exported to the temporary folder — the speed does not depend on the weights.

Usage: python scripts/bench_batch.py [--videos 8] [--frames 100] [--size 320x240]
       [--model DIR] [--repeat 1] [--configs pool:1x2,pool:2x1,ray:1x2,ray:2x1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from parttrack.engine.bundle import default_model_path  # noqa: E402
from parttrack.engine.runtime.devices import cpu_model  # noqa: E402
from parttrack.tracker.batch import TrackOptions, run_batch  # noqa: E402


def _quiet(msg: str) -> None:
    pass


def make_videos(folder: Path, n: int, frames: int, size: tuple[int, int]) -> list[Path]:
    from parttrack.engine.synthetic import render_video, write_video

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        v = render_video(frames, size=size, figure_seed=i % 3, motion_seed=i)
        paths.append(write_video(folder / f"video{i:02d}.mp4", v.frames, v.fps))
    return paths


def make_model(folder: Path) -> Path:
    import torch

    from parttrack.engine.bundle import BundleMeta
    from parttrack.engine.export import export_bundle
    from parttrack.engine.model import NetConfig, build_network

    torch.manual_seed(0)
    cfg = NetConfig()
    meta = BundleMeta(num_parts=cfg.num_parts, input_size=cfg.input_size, mask_size=cfg.mask_size,
                      extra={"purpose": "benchmark (random weights)"})
    return export_bundle(build_network(cfg), {"network": cfg.to_dict(), "training": None}, meta, folder,
                         notes="# Benchmark bundle\n\nRandom weights (scripts/bench_batch.py).\n")


def _rate(results, seconds: float) -> tuple[int, int, float, float, float]:
    """(videos, frames, videos/s, frames/s, frames/s inside one video's job)."""
    done = [r for r in results if r.status == "done"]
    bad = [r for r in results if r.status != "done"]
    if bad:
        raise SystemExit(f"bench: {len(bad)} video(s) did not finish: {bad[0].video}: {bad[0].error}")
    frames = sum(r.frames for r in done)
    return len(done), frames, len(done) / seconds, frames / seconds, frames / sum(r.seconds for r in done)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="320x240", help="WxH of the synthetic videos")
    ap.add_argument("--model", default=None, help="bundle folder (default: trained/bbb or a random network)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (the best is reported)")
    ap.add_argument("--configs", default="pool:1x2,pool:2x1,ray:1x2,ray:2x1",
                    help="comma-separated KIND:WORKERSxTHREADS (KIND pool or ray)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the Ray start-up and end-to-end runs")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # private local instances
    w, h = (int(x) for x in args.size.lower().split("x"))
    configs = []
    for item in args.configs.split(","):
        kind, wt = item.split(":")
        workers, threads = (int(x) for x in wt.split("x"))
        configs.append((kind, workers, threads))

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    model = Path(args.model) if args.model else default_model_path()
    if not (model / "model.onnx").is_file():
        print(f"bench: no model in {model}; exporting a random-initialised default-size network", file=sys.stderr)
        model = make_model(tmp / "model")
    t0 = time.perf_counter()
    videos = make_videos(tmp / "videos", args.videos, args.frames, (w, h))
    print(f"bench: {len(videos)} videos of {args.frames} frames at {w}x{h} rendered in "
          f"{time.perf_counter() - t0:.1f} s; model {model}", file=sys.stderr)

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}")
    rows = []
    run_id = 0

    def out_dir() -> Path:
        nonlocal run_id
        run_id += 1
        return tmp / f"out{run_id}"

    ray = None
    if any(kind == "ray" for kind, _, _ in configs) or not args.no_e2e:
        import ray

        from parttrack.tracker.ray_batch import run_batch_ray
    if not args.no_e2e:
        starts = []
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
            t1 = time.perf_counter()
            ray.shutdown()
            starts.append((t1 - t0, time.perf_counter() - t1))
        best = min(starts)
        print(f"ray start: ray.init() {best[0]:.2f} s, ray.shutdown() {best[1]:.2f} s (ray {ray.__version__})")

    for kind, workers, threads in configs:
        opts = TrackOptions(model=model, threads=threads)
        best = None
        for _ in range(max(1, args.repeat)):
            if kind == "pool":
                t0 = time.perf_counter()
                res = run_batch(videos, out_dir(), opts, workers=workers, progress=False, log=_quiet)
                seconds = time.perf_counter() - t0
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
                try:
                    t0 = time.perf_counter()
                    res = run_batch_ray(videos, out_dir(), opts, workers=workers, cpus_per_worker=threads,
                                        progress=False, log=_quiet)
                    seconds = time.perf_counter() - t0
                finally:
                    ray.shutdown()
            if best is None or seconds < best[0]:
                best = (seconds, res)
        seconds, res = best
        rows.append((f"{kind} w{workers}x t{threads}", seconds) + _rate(res, seconds))

    if not args.no_e2e:
        opts = TrackOptions(model=model, threads=configs[-1][2] if configs else None)
        t0 = time.perf_counter()
        res = run_batch_ray(videos, out_dir(), opts, num_cpus=os.cpu_count(), progress=False, log=_quiet)
        seconds = time.perf_counter() - t0
        rows.append(("ray e2e (incl. start)", seconds) + _rate(res, seconds))

    print(f"{'configuration':24s} {'wall s':>8s} {'videos':>7s} {'frames':>7s} {'videos/s':>9s} {'frames/s':>9s} "
          f"{'per-job f/s':>11s}")
    for name, seconds, n, frames, vps, fps, job_fps in rows:
        print(f"{name:24s} {seconds:8.2f} {n:7d} {frames:7d} {vps:9.3f} {fps:9.1f} {job_fps:11.1f}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
