"""Batch tracking on a Ray cluster: the same per-video job as :func:`tracker.batch.run_batch`,
scheduled by :class:`RayScheduler` (a :class:`tracker.batch.Scheduler`).

``parttrack track PATHS... -o OUT --ray [ADDRESS]`` calls :func:`run_batch_ray`. Each video is
one call of :func:`tracker.offline.track_video` (the job — :func:`tracker.pipeline.track_file`
with the result folder's sinks —, its result folder and its ``done.json`` marker are exactly
those of the local batch) on a **Ray actor**: a worker process that loads
the model once (``create_runtime`` in its constructor) and then tracks one video after
another. Actors are used rather than plain tasks because Ray does not reuse a task's worker
process after a GPU task (``max_calls=1`` for ``num_gpus > 0``), which would reload the model —
and rebuild or reload a TensorRT engine — for every video.

Scheduling (Ray Core: ``ray.remote`` actor classes, ``.options(num_cpus=, num_gpus=)``,
``ray.wait``; docs.ray.io "Actors", "Resources", "ray.wait"):

* **CPU workers**: each actor reserves ``cpus_per_worker`` logical CPUs (default
  ``options.threads`` or 1: with many videos, more single-threaded workers beat fewer
  multi-threaded ones, see :data:`DEFAULT_CPUS_PER_WORKER`) and runs that many inference
  threads; as many actors as the live nodes have room for
  (``floor(node CPUs / cpus_per_worker)`` summed over nodes), at most one per pending video,
  at most ``workers``.
* **GPU workers** when the cluster reports GPUs and ``options.device`` is not ``cpu``: each
  actor reserves ``gpus_per_worker`` GPUs (default 1; a fraction shares a GPU) and
  ``cpus_per_worker`` CPUs for decoding (default 2); Ray sets ``CUDA_VISIBLE_DEVICES`` for
  the actor, so the runtime is built with ``device="cuda:0"`` and ``options.backend``
  (``auto`` picks TensorRT where it is installed on the node, else ONNX Runtime's CUDA
  provider).
* Videos are handed out one at a time to whichever actor is free (``ray.wait`` over the
  in-flight calls), so long and short videos balance; the terminal shows a tqdm bar over
  finished videos.

Resuming and failures: folders whose ``done.json`` matches the options are skipped by the
driver before any Ray work (a rerun with everything done does not even start Ray). A video
that fails is returned with status ``failed`` (error and hint) and the others go on; an actor
that dies (out of memory, a crash in a native library, a lost node) fails only the video it
was tracking and is replaced. Ctrl-C asks the running calls to stop (checked between frame
batches through ``ray.get_runtime_context().is_canceled()``), so each writes what it has
processed without ``done.json`` — exactly as the local batch — then the actors are killed and
:class:`KeyboardInterrupt` is raised.

Storage: paths (videos, output folder, ``options.model``) are resolved to absolute paths on
the driver and used as they are on every node, so on a multi-node cluster the inputs, the
output folder and the model bundle must be on storage mounted at the same path on every node
(see docs/ray.md). Without ``options.model`` each node uses the model shipped in its own
parttrack installation.

``ray`` is an optional dependency (``pip install 'parttrack[ray]'``); importing this module
does not import it, :func:`run_batch_ray` raises :class:`engine.errors.BackendUnavailable`
naming the extra when it is missing.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

from parttrack.engine import errors
from parttrack.engine.errors import BackendUnavailable, InputError, OutputError, ParttrackError
from parttrack.tracker.offline import track_video
from parttrack.tracker.progress import Progress, videos_bar
from parttrack.tracker.progress import log as _default_log
from parttrack.tracker.results import TrackOptions, VideoResult, failure_result, plan_batch

#: Logical CPUs (= inference threads) per worker when neither ``cpus_per_worker`` nor
#: ``options.threads`` says. CPU workers: 1 — on the 2-core machine two 1-thread workers tracked
#: ~20 % more frames/s than one 2-thread worker, both as local processes and as Ray actors
#: (decoding, poses and smoothing are single-threaded per video; scripts/bench_batch.py).
#: GPU workers: 2, for decoding and the CPU side of the pipeline next to the GPU.
DEFAULT_CPUS_PER_WORKER = 1
DEFAULT_CPUS_PER_GPU_WORKER = 2
#: Object store of a local Ray instance we start (bytes): only small results travel.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 ** 2
#: Seconds Ctrl-C waits for running videos to write what they have before killing the actors.
CANCEL_GRACE_S = 20.0

_RAY_HINT = "pip install 'parttrack[ray]' (the same Ray version as the cluster)"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("Ray is not installed (needed for --ray)", _RAY_HINT) from None
    return ray


# ------------------------------------------------------------------------------ the actor
class _CancelCheck(Progress):
    """Progress sink that turns a Ray cancellation into :class:`KeyboardInterrupt` between
    frame batches, so :func:`track_video` writes what it has (without ``done.json``)."""

    def __init__(self) -> None:
        import ray

        ctx = ray.get_runtime_context()
        # RuntimeContext.is_canceled() for sync actors is recent (ray-project/ray PR #58914,
        # late 2025; present in 2.60). Without it a running video is not interrupted: it
        # finishes within CANCEL_GRACE_S or its actor is killed (no done.json either way).
        self._is_canceled = getattr(ctx, "is_canceled", None)

    def advance(self, n: int) -> None:
        if self._is_canceled is not None and self._is_canceled():
            raise KeyboardInterrupt


def _error_fields(exc: BaseException) -> tuple[str, str, str | None]:
    """(class name, message, hint) of an exception, picklable without its traceback."""
    if isinstance(exc, ParttrackError):
        return type(exc).__name__, exc.message, exc.hint
    return type(exc).__name__, f"{type(exc).__name__}: {exc}", None


class VideoWorker:
    """The body of one Ray actor: holds a runtime and tracks videos with it.

    Built by :func:`run_batch_ray` as ``ray.remote(VideoWorker).options(...)``; importable on
    every node from ``tracker.ray_batch`` (parttrack must be installed there).

    Args:
        options: :class:`tracker.results.TrackOptions` with ``threads`` and ``device`` already
            set for this actor's reservation.
        runtime_factory: ``f(options, workers) -> Runtime`` (picklable), or None for
            :func:`engine.runtime.create_runtime` on ``options.model``.
    """

    def __init__(self, options: TrackOptions, runtime_factory=None) -> None:
        self.options = options
        self.error: tuple[str, str, str | None] | None = None
        self.runtime = None
        self.node = _node_name()
        try:
            if runtime_factory is not None:
                self.runtime = runtime_factory(options, 1)
            else:
                self.runtime = options.make_runtime(1, announce=False)
        except Exception as exc:  # reported to the driver by ready()
            self.error = _error_fields(exc)

    def ready(self) -> tuple[bool, str, str | None, str | None]:
        """``(ok, runtime description or error class, error message, hint)``."""
        if self.error is not None:
            name, message, hint = self.error
            return False, name, f"{message} (on Ray node {self.node})", hint
        return True, self.runtime.describe(), None, None

    def track(self, video: Path, out_dir: Path) -> VideoResult:
        """:func:`tracker.offline.track_video` on this actor's runtime; never raises for a bad
        video (status ``failed`` with error and hint) and returns status ``interrupted`` when
        the call was cancelled."""
        try:
            return track_video(video, out_dir, self.options, self.runtime, _CancelCheck())
        except KeyboardInterrupt:
            return VideoResult(video, out_dir, "interrupted")
        except InputError as exc:
            if not Path(video).exists():
                return VideoResult(video, out_dir, "failed", error=f"{video} does not exist on Ray node {self.node}",
                                   hint="inputs, outputs and the model must be on storage mounted at the same "
                                        "path on every node (docs/ray.md)")
            return failure_result(video, out_dir, exc)
        except OutputError as exc:
            return VideoResult(video, out_dir, "failed", error=f"{exc.message} (on Ray node {self.node})",
                               hint=f"{exc.hint}; on a cluster the output folder must be shared by every node")
        except Exception as exc:  # reported per video, the batch goes on
            return failure_result(video, out_dir, exc)


def _node_name() -> str:
    import socket

    return socket.gethostname()


# ------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, and what each reserves.

    Attributes:
        workers: number of actors.
        cpus: logical CPUs reserved per actor (= its inference threads).
        gpus: GPUs reserved per actor (0 = CPU workers).
        device: the device the actor's runtime is built for (``cpu`` or ``cuda:0``).
    """

    workers: int
    cpus: float
    gpus: float
    device: str

    def describe(self) -> str:
        res = f"{self.cpus:g} CPU" + (f" + {self.gpus:g} GPU" if self.gpus else "")
        return f"{self.workers} Ray worker{'s' if self.workers != 1 else ''} × ({res})"


def plan_workers(nodes: list[dict], pending: int, options: TrackOptions, *, workers: int | None = None,
                 cpus_per_worker: float | None = None, gpus_per_worker: float | None = None) -> WorkerPlan:
    """Decide the actors for ``pending`` videos on a cluster whose live nodes offer ``nodes``.

    Args:
        nodes: per live node its total resources, e.g. ``{"CPU": 16.0, "GPU": 2.0}``
            (``ray.nodes()[i]["Resources"]``).
        pending: videos still to track (>= 1).
        options: the batch options (``device``, ``backend``, ``threads``).
        workers: at most this many actors (None = as many as fit).
        cpus_per_worker: logical CPUs (and inference threads) per actor; None =
            ``options.threads`` or :data:`DEFAULT_CPUS_PER_WORKER` (GPU workers:
            :data:`DEFAULT_CPUS_PER_GPU_WORKER`), clamped to the largest node.
        gpus_per_worker: GPUs per actor; None = 1 where the cluster has GPUs and
            ``options.device`` is not ``cpu``, else 0. 0 forces CPU workers.

    Returns:
        :class:`WorkerPlan`.

    Raises:
        ParttrackError: a GPU was asked for (device ``cuda``, backend ``tensorrt`` or
            ``gpus_per_worker > 0``) but the cluster has none, or nothing fits on any node.
    """
    from parttrack.engine.runtime import parse_device

    if workers is not None and workers < 1:
        raise ParttrackError(f"--workers must be at least 1, got {workers}")
    kind, _ = parse_device(options.device)
    total_gpus = sum(n.get("GPU", 0.0) for n in nodes)
    wants_gpu = kind == "cuda" or options.backend == "tensorrt" or (gpus_per_worker or 0) > 0
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if total_gpus > 0 and kind != "cpu" else 0.0
    if gpus_per_worker < 0:
        raise ParttrackError(f"GPUs per Ray worker must be >= 0, got {gpus_per_worker}")
    if wants_gpu and (gpus_per_worker == 0 or total_gpus == 0):
        raise ParttrackError(
            f"{'--device ' + str(options.device) if kind == 'cuda' else 'the tensorrt backend'} needs GPU workers, "
            f"but the Ray cluster reports {total_gpus:g} GPUs",
            "start the Ray nodes that have GPUs with `ray start ... --num-gpus N`, or track on CPU (--device cpu)")
    use = [n for n in nodes if n.get("GPU", 0.0) >= gpus_per_worker] if gpus_per_worker else list(nodes)
    node_cpus = [n.get("CPU", 0.0) for n in use]
    if not node_cpus or max(node_cpus) < 1:
        raise ParttrackError("the Ray cluster has no node with a free CPU"
                             + (f" and {gpus_per_worker:g} GPU" if gpus_per_worker else ""),
                             "check `ray status` on the head node")
    default = DEFAULT_CPUS_PER_GPU_WORKER if gpus_per_worker else DEFAULT_CPUS_PER_WORKER
    cpus = float(cpus_per_worker or options.threads or default)
    cpus = min(cpus, max(node_cpus))
    fit = 0
    for n in use:
        per_node = math.floor(n.get("CPU", 0.0) / cpus + 1e-9)
        if gpus_per_worker:
            per_node = min(per_node, math.floor(n.get("GPU", 0.0) / gpus_per_worker + 1e-9))
        fit += per_node
    count = max(1, min(fit, pending, workers or fit))
    return WorkerPlan(count, cpus, float(gpus_per_worker), "cuda:0" if gpus_per_worker else "cpu")


# ------------------------------------------------------------------------------ connecting
def _connect(ray, address: str | None, num_cpus: int | None, log) -> bool:
    """Start or join Ray; True when this call started/joined it (and must shut it down)."""
    if ray.is_initialized():  # a driver that set Ray up itself (or a test fixture)
        return False
    target = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict = {"logging_level": logging.WARNING}
    if target == "local":
        kwargs.update(num_cpus=num_cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        # A private instance started for one command: no usage reports to Ray's servers
        # unless the user asked for them (RAY_USAGE_STATS_ENABLED=1).
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    t0 = time.perf_counter()
    try:
        ray.init(address=target, **kwargs)
    except ModuleNotFoundError as exc:  # ray:// needs the Ray Client's grpcio
        raise BackendUnavailable(f"connecting to {target} needs the Ray Client ({exc.name} is missing)",
                                 "pip install 'ray[client]' (the same Ray version as the cluster)") from None
    except (ConnectionError, TimeoutError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
        raise ParttrackError(f"cannot connect to the Ray cluster at {target}: {exc}",
                             "check the head address (`ray status` on the head node prints it), that this "
                             "machine can reach it, and that it runs the same Ray and Python versions") from None
    seconds = time.perf_counter() - t0
    res = ray.cluster_resources()
    what = f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs"
    if target == "local":
        log(f"ray: started a local Ray instance ({what}) in {seconds:.1f} s")
    else:
        log(f"ray: connected to {target} ({len(_live_nodes(ray))} nodes, {what}) in {seconds:.1f} s")
    return True


def _live_nodes(ray) -> list[dict]:
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", n.get("alive", False))]


def _raise_worker_error(name: str, message: str, hint: str | None) -> None:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, ParttrackError):
        raise cls(message, hint)
    raise ParttrackError(f"the Ray workers could not load the model: {message}",
                         hint or "check that parttrack and its backend are installed on every Ray node")


# ------------------------------------------------------------------------------ the batch
def run_batch_ray(videos, out_root, options: TrackOptions | None = None, address: str | None = None, *,
                  workers: int | None = None, cpus_per_worker: float | None = None,
                  gpus_per_worker: float | None = None, num_cpus: int | None = None, runtime_factory=None,
                  progress: bool = True, log=_default_log) -> list[VideoResult]:
    """Track every video under ``videos`` into ``out_root/<stem>/`` on a Ray cluster.

    Args:
        videos: video files and/or folders (:func:`tracker.results.discover_videos`).
        out_root: the output folder (created; on a cluster: shared by every node).
        options: :class:`tracker.results.TrackOptions` (the same as the local batch).
        address: the cluster: ``HOST:PORT`` of the head (from a node of the cluster),
            ``ray://HOST:10001`` (Ray Client, from outside; needs ``ray[client]``), ``auto``
            (the cluster started with ``ray start`` on this machine). None: ``$RAY_ADDRESS``
            if set, else a new local Ray instance on this machine. If Ray is already
            initialised in this process it is used as it is (and left running).
        workers: at most this many actors (None: as many as the cluster fits).
        cpus_per_worker: logical CPUs = inference threads per actor (see :func:`plan_workers`).
        gpus_per_worker: GPUs per actor (None: 1 where the cluster has GPUs; 0: CPU only).
        num_cpus: CPUs of a local instance started here (None: all cores).
        runtime_factory: ``f(options, workers) -> Runtime``, picklable and importable on the
            workers (tests); default :func:`engine.runtime.create_runtime` on ``options.model``.
        progress: show the tqdm bar over finished videos.
        log: where one-line messages go (default: stderr).

    Returns:
        One :class:`tracker.results.VideoResult` per video, in input order (status ``done``,
        ``skipped``, ``failed`` with error/hint, or ``interrupted``).

    Raises:
        BackendUnavailable: Ray (or, for ``ray://``, the Ray Client) is not installed.
        InputError: no videos / a path that does not exist (checked on the driver).
        OutputError: ``out_root`` cannot be written from the driver.
        ParttrackError: the cluster cannot be reached or has no room for a worker; a GPU
            was asked for on a cluster without one; BundleError/BackendUnavailable when no
            worker could load the model.
        KeyboardInterrupt: Ctrl-C (finished videos stay done; running ones keep what they
            processed, without done.json).
    """
    ray = _import_ray()
    options = options or TrackOptions()
    if options.model is not None:  # workers do not run in the driver's working directory
        options = replace(options, model=Path(options.model).resolve())
    out_root = Path(out_root).resolve()
    paths, dirs, results, todo = plan_batch(videos, out_root, options, log)
    if todo:
        started = _connect(ray, address, num_cpus, log)
        try:
            plan = plan_workers(_live_nodes(ray), len(todo), options, workers=workers,
                                cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
            log(f"ray: {plan.describe()} for {len(todo)} video{'s' if len(todo) != 1 else ''}")
            RayScheduler(ray, plan, options, runtime_factory, progress, log).run(paths, dirs, todo, results)
        finally:
            if started:
                ray.shutdown()
    return [r for r in results if r is not None]


class RayScheduler:
    """:class:`tracker.batch.Scheduler` on Ray actors: hands videos to free actors, collects
    results, replaces dead actors (built by :func:`run_batch_ray` once connected)."""

    def __init__(self, ray, plan: WorkerPlan, options: TrackOptions, runtime_factory, progress: bool, log) -> None:
        self.ray, self.plan, self.log, self.progress = ray, plan, log, progress
        self.actor_options = replace(options, threads=max(1, int(plan.cpus)), device=plan.device)
        self.cls = ray.remote(VideoWorker).options(num_cpus=plan.cpus, num_gpus=plan.gpus, max_restarts=0)
        self.factory = runtime_factory
        self.pending: dict = {}  # ObjectRef -> ("ready" | "track", actor, video index)
        self.actors: list = []
        self.idle: deque = deque()
        self.replacements = plan.workers  # dead actors we are willing to replace
        self.announced = False
        self.init_error: tuple[str, str, str | None] | None = None

    def _start_actor(self) -> None:
        actor = self.cls.remote(self.actor_options, self.factory)
        self.actors.append(actor)
        self.pending[actor.ready.remote()] = ("ready", actor, None)

    def _retire(self, actor) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # already dead
            pass

    def run(self, paths, dirs, todo, results) -> None:
        ray = self.ray
        queue = deque(todo)
        bar = videos_bar(len(todo), "videos (ray)", disable=not self.progress, file=sys.stderr)
        if self.log is _default_log and self.progress:  # print above the bar, not through it
            self.log = lambda msg: bar.write(msg, file=sys.stderr)
        frames = failed = 0
        t0 = time.perf_counter()
        try:
            for _ in range(self.plan.workers):
                self._start_actor()
            while True:
                while self.idle and queue:
                    actor, i = self.idle.popleft(), queue.popleft()
                    self.pending[actor.track.remote(paths[i], dirs[i])] = ("track", actor, i)
                if not self.pending:
                    break
                ready, _ = ray.wait(list(self.pending), num_returns=1)
                kind, actor, i = self.pending.pop(ready[0])
                if kind == "ready":
                    self._on_ready(ready[0], actor)
                else:
                    result = self._on_track(ready[0], actor, paths[i], dirs[i])
                    results[i] = result
                    frames += result.frames if result.status == "done" else 0
                    if result.status == "failed":
                        failed += 1
                        self.log(f"failed: {paths[i]}: {result.error}" + (f" (hint: {result.hint})" if result.hint else ""))
                    elapsed = max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix(frames=frames, fps=f"{frames / elapsed:.0f}", failed=failed, refresh=False)
                    bar.update(1)
                if not self.actors and queue:  # nothing left to run them on
                    if self.init_error is not None and not self.announced:
                        _raise_worker_error(*self.init_error)
                    for i in queue:
                        results[i] = VideoResult(paths[i], dirs[i], "failed",
                                                 error="no Ray worker was left to track it",
                                                 hint="the workers died or could not load the model; see the "
                                                      "messages above and `ray status`")
                        bar.update(1)
                    queue.clear()
        except KeyboardInterrupt:
            self._cancel(results, paths, dirs)
            raise
        finally:
            bar.close()
            for actor in list(self.actors):
                self._retire(actor)
        for i in todo:  # never drop a video silently
            if results[i] is None:
                results[i] = VideoResult(paths[i], dirs[i], "failed", error="it was not run (internal error)",
                                         hint="rerun the batch; finished videos are skipped")

    def _on_ready(self, ref, actor) -> None:
        ray = self.ray
        try:
            ok, text, message, hint = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the actor could not start (e.g. import error on the node)
            ok, text, message, hint = False, "ParttrackError", f"a Ray worker failed to start: {exc}", \
                "install parttrack (same version) on every Ray node"
        if ok:
            if not self.announced:
                self.log(f"runtime: {text} (×{self.plan.workers} Ray workers)")
                self.announced = True
            self.idle.append(actor)
            return
        self.init_error = (text, message, hint)
        self.log(f"ray: a worker could not load the model: {message}" + (f" (hint: {hint})" if hint else ""))
        self._retire(actor)

    def _on_track(self, ref, actor, video: Path, out_dir: Path) -> VideoResult:
        ray = self.ray
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._retire(actor)
            if self.replacements > 0:
                self.replacements -= 1
                self._start_actor()
                self.log(f"ray: the worker tracking {video.name} died; started a replacement")
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return VideoResult(video, out_dir, "failed", error=f"the Ray worker tracking it died ({reason})",
                               hint="often out of memory or a crash in a native library; the worker logs are "
                                    "in the Ray session's logs folder (`ray logs`); rerun to retry it")
        except ray.exceptions.RayError as exc:
            self.idle.append(actor)
            return failure_result(video, out_dir, exc)
        self.idle.append(actor)
        return result

    def _cancel(self, results, paths, dirs) -> None:
        """Ctrl-C: ask the running calls to stop and wait (briefly) for what they wrote."""
        ray = self.ray
        running = {ref: i for ref, (kind, _, i) in self.pending.items() if kind == "track"}
        if not running:
            return
        self.log(f"parttrack: interrupted; waiting up to {CANCEL_GRACE_S:.0f} s for {len(running)} running "
                 "video(s) to save what they have (Ctrl-C again to stop at once)")
        for ref in running:
            ray.cancel(ref)
        try:
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=CANCEL_GRACE_S)
        except KeyboardInterrupt:
            return
        for ref in done:
            i = running[ref]
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayError:
                results[i] = VideoResult(paths[i], dirs[i], "interrupted")
