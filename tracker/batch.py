"""Batch tracking of recorded videos: many videos, one result folder each, resumable, in
parallel.

:func:`run_batch` plans the batch (:func:`tracker.results.plan_batch`: find the videos, skip
the folders already done) and hands the rest to a :class:`Scheduler`, which runs
:func:`tracker.offline.track_video` on each: :class:`InProcess` (``workers=1``) or
:class:`ProcessPool` (spawned processes, each loading the model once and getting
``cores // workers`` inference threads). :func:`tracker.ray_batch.run_batch_ray` plans the
same way and schedules on a Ray cluster through the same interface. Per-video and overall
progress bars (tqdm, :mod:`tracker.progress`); a failing video is recorded and the others go on.

Signals: worker processes die with their parent. On Ctrl-C (or SIGTERM/SIGHUP turned into
:class:`KeyboardInterrupt` by :func:`interrupt_on_signals`) the pool asks each busy worker to
stop (SIGINT: it writes what it has, see :mod:`tracker.offline`), waits at most
:data:`STOP_GRACE_S` and kills what is left before returning; an idle worker exits at once.
Workers ignore the terminal's Ctrl-C themselves (the parent decides) and, on Linux, are killed
by the kernel if the parent dies without cleaning up (``PR_SET_PDEATHSIG``): nothing is written
after the parent is gone (a killed worker's staging folder is removed by the next run).

The names a batch caller needs are importable from here too: :class:`TrackOptions`,
:class:`VideoResult`, :func:`track_video`, :func:`discover_videos`, :func:`output_dirs`,
:func:`failure_lines`, :func:`summarize` (their homes are :mod:`tracker.results` and
:mod:`tracker.offline`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Protocol

from parttrack.engine.errors import ParttrackError
from parttrack.tracker.offline import track_video
from parttrack.tracker.progress import Progress, TqdmProgress, frame_bar, videos_bar
from parttrack.tracker.progress import log as _default_log
from parttrack.tracker.results import (
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
           "failure_lines", "interrupt_on_signals", "output_dirs", "run_batch", "summarize", "track_video"]

#: Seconds the pool waits, after an interrupt, for busy workers to write what they have.
STOP_GRACE_S = 10.0


@contextlib.contextmanager
def interrupt_on_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` in the main thread
    like Ctrl-C does, so a terminated batch stops its workers and keeps what is finished (the
    CLI exits 130 either way). Does nothing outside the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {n: signal.signal(getattr(signal, n), signal.default_int_handler) for n in names}
    try:
        yield
    finally:
        for n, h in previous.items():
            signal.signal(getattr(signal, n), h)


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
                                             TqdmProgress(1, not self.progress), log=self.log)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # reported per video, the batch goes on
                    results[i] = failure_result(videos[i], dirs[i], exc)
                overall.update(1)
        finally:
            overall.close()


# -- worker processes -------------------------------------------------------------------------
_WORKER: dict = {}


def _worker_signal(signum, frame) -> None:
    """A worker's handler of SIGINT/SIGTERM/SIGHUP (sent by the parent's pool): a busy worker
    stops its video like Ctrl-C (what was processed is written), an idle one exits quietly."""
    if _WORKER.get("busy"):
        _WORKER["busy"] = False  # a second signal while finishing exits at once
        raise KeyboardInterrupt
    os._exit(130)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (prctl
    PR_SET_PDEATHSIG); elsewhere nothing (the parent's pool still stops its workers)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        if os.getppid() == 1:  # the parent is already gone
            os._exit(130)
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        pass


def _worker_init(options: TrackOptions, workers: int, runtime_factory, queue) -> None:
    _die_with_parent()
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _worker_signal)
    # the terminal's Ctrl-C goes to the whole process group: the parent decides what stops
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
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
        _WORKER["busy"] = True
        return track_video(video, out_dir, options, _WORKER["runtime"], progress)
    except KeyboardInterrupt:
        return VideoResult(video, out_dir, "interrupted")
    except Exception as exc:
        progress.finish()
        return failure_result(video, out_dir, exc)
    finally:
        _WORKER["busy"] = False


class ProcessPool:
    """:class:`Scheduler` over ``workers`` spawned processes, each building its runtime once
    with ``runtime_factory(options, workers)`` (picklable); per-worker progress comes back
    through a queue and is drawn as one tqdm bar per worker. On :class:`KeyboardInterrupt` the
    workers are stopped (see the module docstring) before it is re-raised."""

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
        queue = ctx.Queue()  # handed to the workers when they are spawned (no manager process)
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
        futures: dict = {}
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
            stop_pool(pool, futures)
            raise
        finally:
            stop.set()
            thread.join(timeout=2)
            for bar in list(bars.values()):
                bar.close()
            overall.close()
            queue.close()
            queue.cancel_join_thread()


def stop_pool(pool, futures, grace_s: float = STOP_GRACE_S) -> None:
    """Stop a :class:`concurrent.futures.ProcessPoolExecutor` of :func:`_worker_track` workers
    now: cancel what has not started, send SIGINT to every worker (busy ones write what they
    have, idle ones exit), wait up to ``grace_s`` seconds, SIGKILL the rest and reap them.
    A second Ctrl-C while waiting skips the wait."""
    import concurrent.futures as cf

    procs = list(getattr(pool, "_processes", {}).values())  # the executor's worker processes
    for fut in futures:
        fut.cancel()
    for p in procs:
        with contextlib.suppress(OSError, ValueError):
            if p.is_alive():
                os.kill(p.pid, signal.SIGINT)
    try:
        running = [f for f in futures if not f.done()]
        if running:
            cf.wait(running, timeout=grace_s)
        for p in procs:
            p.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            with contextlib.suppress(OSError, ValueError):
                if p.is_alive():
                    p.kill()
        for p in procs:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                p.join(timeout=2)
        pool.shutdown(wait=False, cancel_futures=True)
