"""Benchmarks behind ``parttrack bench``: inference speed of every backend, and the whole
tracking pipeline on a video. Numbers, never assertions: the SPEC's speed budgets are checked
by reading this report, together with the machine line it prints.

Latency is wall-clock time of one ``runtime.infer(batch)`` call (``time.perf_counter``) after
warm-up, on the same real letterboxed frames each time; frames/s = batch / median latency.
The spread is reported as the 10th–90th percentile range, and the process CPU time per call
beside it. Other processes on the machine change these numbers (the load average is
printed): run it on a quiet machine, and more than once.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine.bundle import Bundle, load_bundle
from engine.errors import ParttrackError
from engine.runtime import backend_status, create_runtime
from engine.runtime.devices import cpu_features, cpu_model, cuda_gpus, machine_line, usable_cpus
from engine.runtime.files import INT8_FILE


@dataclass(frozen=True)
class LatencyStats:
    """Timing of repeated ``infer`` calls on one batch size.

    Attributes:
        batch: frames per call.
        calls: timed calls (after warm-up).
        median_ms, p10_ms, p90_ms, min_ms: latency of one call in milliseconds.
        fps: frames per second at the median latency (batch / median).
        cpu_ms: median CPU time of the whole process per call (all threads; ``time.process_time``)
            — less sensitive than wall time to other load on the machine; with one thread it
            approximates the latency on an idle machine. NaN when not measured.
    """

    batch: int
    calls: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    fps: float
    cpu_ms: float = float("nan")


def latency_stats(seconds: np.ndarray, batch: int, cpu_seconds: np.ndarray | None = None) -> LatencyStats:
    """Summarise per-call wall times (seconds, shape (calls,)) of batches of ``batch`` frames
    (and optionally the per-call process CPU times)."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.ndim != 1 or len(ms) == 0:
        raise ValueError(f"need a non-empty 1-D array of call times, got shape {ms.shape}")
    median = float(np.median(ms))
    cpu = float(np.median(np.asarray(cpu_seconds)) * 1e3) if cpu_seconds is not None else float("nan")
    return LatencyStats(batch=int(batch), calls=len(ms), median_ms=median,
                        p10_ms=float(np.percentile(ms, 10)), p90_ms=float(np.percentile(ms, 90)),
                        min_ms=float(ms.min()), fps=float(batch * 1e3 / median) if median > 0 else float("inf"),
                        cpu_ms=cpu)


def time_infer(runtime, images: np.ndarray, calls: int = 200, warmup: int = 10, max_seconds: float = 10.0
               ) -> LatencyStats:
    """Time ``runtime.infer(images)``: ``warmup`` untimed calls, then up to ``calls`` timed
    calls (fewer if ``max_seconds`` of timed calls have passed, at least 5).

    Args:
        runtime: an :class:`engine.runtime.base.Runtime`.
        images: ``(N, S, S, 3)`` uint8 batch.
    """
    for _ in range(warmup):
        runtime.infer(images)
    times, cpu = [], []
    start = time.perf_counter()
    while len(times) < calls and (len(times) < 5 or time.perf_counter() - start < max_seconds):
        c0, t0 = time.process_time(), time.perf_counter()
        runtime.infer(images)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return latency_stats(np.array(times), len(images), np.array(cpu))


def machine_info() -> dict:
    """The machine the numbers belong to (CPU model, usable cores, ISA features, GPUs,
    library versions) plus :func:`engine.runtime.devices.machine_line`."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = []
    info = {"machine": machine_line(), "load_average": load, "cpu": cpu_model(), "cores": usable_cpus(), "cpu_features": list(cpu_features()),
            "gpus": [{"index": g.index, "name": g.name, "compute_capability": list(g.compute_capability)}
                     for g in cuda_gpus()],
            "python": platform.python_version(), "platform": platform.platform()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def sample_frames(bundle: Bundle, count: int, video: str | Path | None = None) -> np.ndarray:
    """``(count, S, S, 3)`` uint8 letterboxed model inputs: from ``video`` (or the bundle's
    ``clip.mp4`` when present), repeated to fill ``count``; seeded noise if there is no video."""
    from engine.preprocess import Letterbox

    s = bundle.meta.input_size
    source = Path(video) if video else bundle.path / "clip.mp4"
    if source.is_file():
        import av

        frames = []
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) >= count:
                    break
        if frames:
            lb = Letterbox.fit(frames[0].shape[0], frames[0].shape[1], s)
            boxed = np.stack([lb.apply(f) for f in frames])
            return boxed[np.arange(count) % len(boxed)]
    return np.random.default_rng(0).integers(0, 256, (count, s, s, 3), dtype=np.uint8)


def _configurations(bundle: Bundle, backends, precisions) -> list[tuple[str, str | None]]:
    status = backend_status()
    names = list(backends) if backends else [n for n in ("onnxruntime", "tensorrt", "torch") if status[n] is None]
    configs = []
    for name in names:
        if name == "onnxruntime":
            wanted = list(precisions) if precisions else ["fp32"] + (["int8"] if (bundle.path / INT8_FILE).is_file() else [])
            configs += [(name, p) for p in wanted]
        else:
            configs.append((name, None))
    return configs


def bench_runtimes(bundle: Bundle | str | Path, backends=None, precisions=None, batches=(1, 8), device=None,
                   threads=None, workers=1, calls=200, video=None, options=None) -> list[dict]:
    """Time each backend (and each ONNX Runtime precision) at each batch size.

    Args:
        bundle: the bundle (or its folder).
        backends: names to run; None = every backend available here.
        precisions: ONNX Runtime precisions; None = fp32, plus int8 when the bundle has
            ``model.int8.onnx``.
        batches: batch sizes.
        device, threads, workers: as :func:`engine.runtime.create_runtime`.
        calls: timed calls per batch size (fewer past 10 s).
        video: where the input frames come from (default: the bundle's ``clip.mp4``).
        options: extra keyword options for ONNX Runtime (e.g. ``{"spin": True}``).

    Returns:
        One dict per (backend, precision): ``backend``, ``precision``, ``runtime``
        (describe()), ``results`` (list of :class:`LatencyStats` dicts), or ``error`` when the
        backend could not be built here.
    """
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    frames = sample_frames(bundle, max(batches), video)
    rows = []
    for name, precision in _configurations(bundle, backends, precisions):
        row = {"backend": name, "precision": precision}
        try:
            extra = dict(options or {}) if name == "onnxruntime" else {}
            rt = create_runtime(bundle, backend=name, device=device, threads=threads, workers=workers,
                                precision=precision, announce=False, **extra)
        except ParttrackError as exc:
            rows.append({**row, "error": exc.message + (f" ({exc.hint})" if exc.hint else "")})
            continue
        row.update(precision=getattr(rt, "precision", precision), runtime=rt.describe(), device=rt.device)
        row["results"] = [asdict(time_infer(rt, frames[:b], calls=calls)) for b in batches]
        rows.append(row)
    return rows


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
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(images[i % len(images)], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _count_frames(video: Path) -> int:
    import av

    with av.open(str(video)) as container:
        return sum(1 for _ in container.decode(video=0))


def bench_pipeline(bundle: Bundle | str | Path, video: str | Path | None = None, backend: str = "auto",
                   device=None, threads=None, repeats: int = 3) -> dict:
    """Frames/s of the whole offline pipeline (decode, letterbox, infer, smooth, write CSV) —
    ``tracker.batch.track_video`` on ``video`` (default: a 640×480, 300-frame clip made from the
    bundle's ``clip.mp4``), writing into a temporary folder; best and median of ``repeats`` runs.

    ``tracker`` is imported here, lazily: the only place ``engine`` reaches up to it, for the
    benchmark alone.

    Returns:
        ``{"video", "frames", "width", "height", "runs_s", "median_fps", "best_fps", "runtime"}``
        or ``{"error": ...}`` when the tracking pipeline is not available.
    """
    try:
        from tracker.batch import TrackOptions, track_video
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
        options = TrackOptions()
        runs = []
        for i in range(max(1, repeats)):
            out = Path(tmp) / f"run{i}"
            t0 = time.perf_counter()
            result = track_video(clip, out, options, runtime=runtime)
            runs.append(time.perf_counter() - t0)
            status = getattr(result, "status", "done")
            if status != "done":
                return {"error": f"track_video ended with status {status!r}: {getattr(result, 'error', '')}"}
    runs_arr = np.array(runs)
    return {"video": str(video) if video else f"generated {width}x{height} clip", "frames": n, "width": width,
            "height": height, "batch_size": getattr(options, "batch_size", None),
            "runs_s": [round(r, 4) for r in runs], "median_fps": float(n / np.median(runs_arr)),
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
    return "\n".join(lines)


def to_json(report: dict) -> str:
    """``--json`` output (stable keys, indented)."""
    return json.dumps(report, indent=2, sort_keys=True)
