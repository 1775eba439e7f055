"""Inference benchmarks behind ``parttrack bench``: the speed of every backend, and the
machine the numbers belong to. Numbers, never assertions: the speed budgets are checked by
reading the report, together with the machine line it prints. The end-to-end tracking
benchmark and the report itself are in :mod:`tracker.bench` (``engine`` imports no
``tracker``).

Latency is wall-clock time of one ``runtime.infer(batch)`` call (``time.perf_counter``) after
warm-up, on the same real letterboxed frames each time; frames/s = batch / median latency.
The spread is reported as the 10th–90th percentile range, and the process CPU time per call
beside it. Other processes on the machine change these numbers (the load average is
printed): run it on a quiet machine, and more than once.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from parttrack.engine.bundle import Bundle, load_bundle
from parttrack.engine.errors import ParttrackError
from parttrack.engine.runtime import backend_status, create_runtime
from parttrack.engine.runtime.devices import cpu_features, cpu_model, cuda_gpus, machine_line, usable_cpus
from parttrack.engine.runtime.files import INT8_FILE


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
    from parttrack.engine.preprocess import Letterbox

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
