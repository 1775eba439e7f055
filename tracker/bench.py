"""``parttrack bench``'s report: the inference benchmarks of :mod:`engine.bench` plus the
whole tracking pipeline on a video (decode, letterbox, infer, smooth, write CSV —
:func:`tracker.offline.track_video`), with the machine they ran on. Numbers, never assertions.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from parttrack.engine.bench import bench_runtimes, machine_info
from parttrack.engine.bundle import Bundle, load_bundle
from parttrack.engine.runtime import create_runtime
from parttrack.engine.video import VideoWriter


def make_bench_video(path: str | Path, source: str | Path | None, size: tuple[int, int] = (640, 480),
                     frames: int = 300, fps: int = 25) -> Path:
    """Write an H.264 test video of ``size`` (w, h): the frames of ``source`` resized (looped to
    ``frames``), or a moving pattern when there is no source. For pipeline timing only."""
    import av
    import cv2

    w, h = size
    images = []
    if source is not None and Path(source).is_file():
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                images.append(cv2.resize(frame.to_ndarray(format="rgb24"), (w, h), interpolation=cv2.INTER_LINEAR))
    if not images:
        yy, xx = np.mgrid[0:h, 0:w]
        images = [np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, (xx + yy) % 256], -1).astype(np.uint8)
                  for i in range(50)]
    path = Path(path)
    with VideoWriter(path, w, h, fps, crf=23, preset="medium", timestamps=False) as out:  # x264's defaults
        for i in range(frames):
            out.write(images[i % len(images)])
    return path


def _count_frames(video: Path) -> int:
    import av

    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def bench_pipeline(bundle: Bundle | str | Path, video: str | Path | None = None, backend: str = "auto",
                   device=None, threads=None, repeats: int = 3) -> dict:
    """Frames/s of the whole offline pipeline (decode, letterbox, infer, smooth, write CSV) —
    without ``tracks.png``, whose cost per video is reported as ``plot_s`` (one more run with it) —
    :func:`tracker.offline.track_video` on ``video`` (default: a 640×480, 300-frame clip made from the
    bundle's ``clip.mp4``), writing into a temporary folder; best and median of ``repeats`` runs.

    Returns:
        ``{"video", "frames", "width", "height", "runs_s", "median_fps", "best_fps", "runtime"}``
        or ``{"error": ...}`` when the tracking pipeline is not available.
    """
    try:
        from parttrack.tracker.offline import TrackOptions, track_video
    except ImportError as exc:
        return {"error": f"tracking pipeline not available ({exc})"}
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    runtime = create_runtime(bundle, backend=backend, device=device, threads=threads, announce=False)
    with tempfile.TemporaryDirectory(prefix="parttrack-bench-") as tmp:
        clip = Path(video) if video else make_bench_video(Path(tmp) / "bench_640x480.mp4", bundle.path / "clip.mp4")
        n = _count_frames(clip)
        import av

        with av.open(str(clip)) as container:
            width, height = container.streams.video[0].width, container.streams.video[0].height
        # The per-frame figure leaves out tracks.png, a fixed cost per video timed on its own below.
        options = TrackOptions(plot=False)
        runs = []
        for i in range(max(1, repeats) + 1):
            out = Path(tmp) / f"run{i}"
            opts = options if i < max(1, repeats) else TrackOptions()
            t0 = time.perf_counter()
            result = track_video(clip, out, opts, runtime=runtime)
            runs.append(time.perf_counter() - t0)
            status = getattr(result, "status", "done")
            if status != "done":
                return {"error": f"track_video ended with status {status!r}: {getattr(result, 'error', '')}"}
        with_plot = runs.pop()
    runs_arr = np.array(runs)
    return {"video": str(video) if video else f"generated {width}x{height} clip", "frames": n, "width": width,
            "height": height, "batch_size": getattr(options, "batch_size", None),
            "runs_s": [round(r, 4) for r in runs], "median_fps": float(n / np.median(runs_arr)),
            "plot_s": round(max(0.0, with_plot - float(np.median(runs_arr))), 3),
            "best_fps": float(n / runs_arr.min()), "runtime": runtime.describe()}


def run_bench(bundle: Bundle | str | Path, backends=None, precisions=None, batches=(1, 8), device=None,
              threads=None, workers=1, calls=200, video=None, pipeline=True, options=None) -> dict:
    """Everything ``parttrack bench`` reports, as one JSON-able dict:
    ``machine`` (:func:`machine_info`), ``model`` (path, K, input size), ``runtimes``
    (:func:`bench_runtimes`) and ``pipeline`` (:func:`bench_pipeline`, when asked)."""
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    report = {
        "machine": machine_info(),
        "model": {"path": str(bundle.path), "num_parts": bundle.meta.num_parts, "input_size": bundle.meta.input_size,
                  "mask_size": list(bundle.meta.mask_size)},
        "runtimes": bench_runtimes(bundle, backends, precisions, batches, device, threads, workers, calls, video,
                                   options),
    }
    if pipeline:
        report["pipeline"] = bench_pipeline(bundle, video, device=device, threads=threads)
    return report


def format_report(report: dict) -> str:
    """The human-readable table ``parttrack bench`` prints."""
    m = report["machine"]
    load = f" (load average {', '.join(str(v) for v in m['load_average'])})" if m.get("load_average") else ""
    lines = [f"machine: {m['machine']}{load}",
             f"model:   {report['model']['path']} (K={report['model']['num_parts']}, "
             f"{report['model']['input_size']}x{report['model']['input_size']} input)", ""]
    lines.append(f"{'backend':<13}{'precision':<10}{'batch':>6}{'frames/s':>10}{'median ms':>11}"
                 f"{'p10-p90 ms':>17}{'cpu ms':>8}{'calls':>7}")
    for row in report["runtimes"]:
        if "error" in row:
            lines.append(f"{row['backend']:<13}{row['precision'] or '-':<10}  unavailable: {row['error']}")
            continue
        for r in row["results"]:
            spread = f"{r['p10_ms']:.2f}-{r['p90_ms']:.2f}"
            lines.append(f"{row['backend']:<13}{row['precision'] or '-':<10}{r['batch']:>6}{r['fps']:>10.0f}"
                         f"{r['median_ms']:>11.3f}{spread:>17}{r['cpu_ms']:>8.2f}{r['calls']:>7}")
        lines.append(f"  {row['runtime']}")
    if "pipeline" in report:
        p = report["pipeline"]
        lines.append("")
        if "error" in p:
            lines.append(f"pipeline: {p['error']}")
        else:
            lines.append(f"pipeline (track_video, {p['video']}, {p['frames']} frames {p['width']}x{p['height']}, "
                         f"batch {p['batch_size']}): "
                         f"{p['median_fps']:.0f} frames/s median, {p['best_fps']:.0f} best of {len(p['runs_s'])} "
                         f"[{p['runtime']}]")
            if "plot_s" in p:
                lines.append(f"  + tracks.png: {p['plot_s']:.2f} s per video (not in the frames/s above)")
    return "\n".join(lines)


def to_json(report: dict) -> str:
    """``--json`` output (stable keys, indented)."""
    return json.dumps(report, indent=2, sort_keys=True)
