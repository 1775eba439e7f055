"""Batch tracking of recorded videos: many videos, one result folder each, resumable, in
parallel.

:func:`run_batch` plans the batch (:func:`tracker.results.plan_batch`: find the videos, skip
the folders already done) and hands the rest to a :class:`Scheduler`, which runs
:func:`tracker.offline.track_video` on each: :class:`InProcess` (``workers=1``) or
:class:`ProcessPool` (spawned processes, each loading the model once and getting
``cores // workers`` inference threads). :func:`tracker.ray_batch.run_batch_ray` plans the
same way and schedules on a Ray cluster through the same interface. Per-video and overall
progress bars (tqdm, :mod:`tracker.progress`); a failing video is recorded and the others go on.

The names a batch caller needs are importable from here too: :class:`TrackOptions`,
:class:`VideoResult`, :func:`track_video`, :func:`discover_videos`, :func:`output_dirs`,
:func:`failure_lines`, :func:`summarize` (their homes are :mod:`tracker.results` and
:mod:`tracker.offline`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from engine.errors import ParttrackError
from tracker.offline import track_video
from tracker.progress import Progress, TqdmProgress, frame_bar, videos_bar
from tracker.progress import log as _default_log
from tracker.results import (
    TrackOptions,
    VideoResult,
    discover_videos,
    failure_lines,
    failure_result,
    output_dirs,
    plan_batch,
    summarize,
)

__all__ = ["InProcess", "ProcessPool", "Scheduler", "TrackOptions", "VideoResult", "discover_videos",
           "failure_lines", "output_dirs", "run_batch", "summarize", "track_video"]


class Scheduler(Protocol):
    """Runs the videos of a planned batch (:func:`tracker.results.plan_batch`) that are still
    to do, with :func:`tracker.offline.track_video`, wherever it runs them.

    ``run(videos, dirs, todo, results)`` fills ``results[i]`` with a
    :class:`tracker.results.VideoResult` for every ``i`` in ``todo`` (``failed`` for a video
    that fails: never raises for one video); raises :class:`KeyboardInterrupt` on Ctrl-C after
    the running videos have written what they have.
    """

    def run(self, videos: list[Path], dirs: list[Path], todo: list[int], results: list[VideoResult | None]) -> None:
        ...


def _default_runtime(options: TrackOptions, workers: int):
    return options.make_runtime(workers)


def run_batch(paths, out_root, options: TrackOptions | None = None, workers: int = 1, *, runtime_factory=None,
              progress: bool = True, log=_default_log) -> list[VideoResult]:
    """Track every video under ``paths`` into ``out_root/<stem>/``.

    Args:
        paths: video files and/or folders (:func:`discover_videos`).
        out_root: the output folder (created).
        options: :class:`TrackOptions`.
        workers: local worker processes (spawned; each loads the model once and gets
            ``cores // workers`` inference threads).
        runtime_factory: ``f(options, workers) -> Runtime`` (picklable for workers > 1);
            default :func:`engine.runtime.create_runtime` on ``options.model``.
        progress: show tqdm bars (per video and overall).
        log: where one-line messages go (default: stderr).

    Returns:
        One :class:`VideoResult` per video, in input order. A failing video is reported in
        its result (status ``failed``) and the others go on.

    Raises:
        InputError: no videos / a path that does not exist.
        OutputError: ``out_root`` cannot be written.
        BundleError, BackendUnavailable: the model cannot be loaded (workers = 1).
        KeyboardInterrupt: Ctrl-C (finished videos stay done; the current ones keep what they
            processed, without done.json).
    """
    options = options or TrackOptions()
    if workers < 1:
        raise ParttrackError(f"--workers must be at least 1, got {workers}")
    videos, dirs, results, todo = plan_batch(paths, out_root, options, log)
    if todo:
        workers = min(workers, len(todo))
        factory = runtime_factory or _default_runtime
        scheduler: Scheduler
        if workers == 1:
            scheduler = InProcess(options, factory, progress, log)
        else:
            scheduler = ProcessPool(options, workers, factory, progress, log)
        scheduler.run(videos, dirs, todo, results)
    return [r for r in results if r is not None]


class InProcess:
    """:class:`Scheduler` tracking the videos one after another in this process, on one
    runtime built by ``runtime_factory(options, 1)``."""

    def __init__(self, options: TrackOptions, runtime_factory=_default_runtime, progress: bool = True,
                 log=_default_log) -> None:
        self.options, self.factory, self.progress, self.log = options, runtime_factory, progress, log

    def run(self, videos, dirs, todo, results) -> None:
        runtime = self.factory(self.options, 1)
        self.log(f"runtime: {runtime.describe()}")
        overall = videos_bar(len(todo), position=0, disable=not self.progress)
        try:
            for i in todo:
                try:
                    results[i] = track_video(videos[i], dirs[i], self.options, runtime,
                                             TqdmProgress(1, not self.progress))
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # reported per video, the batch goes on
                    results[i] = failure_result(videos[i], dirs[i], exc)
                overall.update(1)
        finally:
            overall.close()


# -- worker processes -------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_init(options: TrackOptions, workers: int, runtime_factory, queue) -> None:
    _WORKER["queue"] = queue
    try:
        _WORKER["runtime"] = runtime_factory(options, workers)
        queue.put((os.getpid(), "runtime", _WORKER["runtime"].describe()))
    except BaseException as exc:  # reported with each video of this worker
        _WORKER["error"] = exc


class _QueueProgress(Progress):
    """A worker's :class:`tracker.progress.Progress`: events go to the parent's queue."""

    def __init__(self, queue) -> None:
        self.queue, self.pid = queue, os.getpid()

    def start(self, name, total):
        self.queue.put((self.pid, "start", (name, total)))

    def advance(self, n):
        self.queue.put((self.pid, "advance", n))

    def finish(self):
        self.queue.put((self.pid, "finish", None))


def _worker_track(video: Path, out_dir: Path, options: TrackOptions) -> VideoResult:
    progress = _QueueProgress(_WORKER["queue"])
    if "error" in _WORKER:
        return failure_result(video, out_dir, _WORKER["error"])
    try:
        return track_video(video, out_dir, options, _WORKER["runtime"], progress)
    except KeyboardInterrupt:
        return VideoResult(video, out_dir, "interrupted")
    except Exception as exc:
        progress.finish()
        return failure_result(video, out_dir, exc)


class ProcessPool:
    """:class:`Scheduler` over ``workers`` spawned processes, each building its runtime once
    with ``runtime_factory(options, workers)`` (picklable); per-worker progress comes back
    through a manager queue and is drawn as one tqdm bar per worker."""

    def __init__(self, options: TrackOptions, workers: int, runtime_factory=_default_runtime, progress: bool = True,
                 log=_default_log) -> None:
        self.options, self.workers, self.factory = options, workers, runtime_factory
        self.progress, self.log = progress, log

    def run(self, videos, dirs, todo, results) -> None:
        import multiprocessing as mp
        import threading
        from concurrent.futures import ProcessPoolExecutor, as_completed

        options, workers, progress, log = self.options, self.workers, self.progress, self.log
        ctx = mp.get_context("spawn")
        manager = ctx.Manager()
        queue = manager.Queue()
        bars: dict[int, object] = {}
        slots: dict[int, int] = {}
        announced = []
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                try:
                    pid, kind, payload = queue.get(timeout=0.1)
                except Exception:  # queue.Empty, or the manager went away
                    continue
                if kind == "runtime":
                    if not announced:
                        announced.append(payload)
                        log(f"runtime: {payload} (×{workers} workers)")
                    continue
                slot = slots.setdefault(pid, len(slots) + 1)
                if kind == "start":
                    name, total = payload
                    if pid in bars:
                        bars[pid].close()
                    bars[pid] = frame_bar(name, total, slot, not progress)
                elif kind == "advance" and pid in bars:
                    bars[pid].update(payload)
                elif kind == "finish" and pid in bars:
                    bars[pid].close()
                    del bars[pid]

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        overall = videos_bar(len(todo), position=0, disable=not progress)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(options, workers, self.factory, queue))
        try:
            futures = {pool.submit(_worker_track, videos[i], dirs[i], options): i for i in todo}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:  # a worker that died (e.g. out of memory)
                    results[i] = failure_result(videos[i], dirs[i], exc)
                overall.update(1)
            pool.shutdown(wait=True)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            stop.set()
            thread.join(timeout=2)
            for bar in list(bars.values()):
                bar.close()
            overall.close()
            manager.shutdown()
