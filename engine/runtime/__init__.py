"""Inference runtimes behind one protocol (:class:`engine.runtime.base.Runtime`) and one factory.

Backends (``--backend``):

``onnxruntime`` (default)
    ONNX Runtime on the CPU, or its CUDA provider where ``onnxruntime-gpu`` is installed
    and a GPU is present. Part of the plain ``pip install parttrack``.
``tensorrt``
    A TensorRT engine built from the bundle's ONNX on the user's GPU and cached in
    ``~/.cache/parttrack/engines`` (``parttrack compile`` builds it ahead of time).
    Needs ``pip install 'parttrack[tensorrt]'`` and an NVIDIA GPU.
``torch``
    The reference: the bundle's torch network (``weights.npz`` + ``config.json``).
    Needs ``pip install 'parttrack[train]'``.
``auto``
    TensorRT when tensorrt and a CUDA GPU are present, else ONNX Runtime (CUDA provider if
    present, else CPU); if TensorRT is present but cannot start, ONNX Runtime with the reason
    in the announced line. torch is never chosen automatically.

Nothing here imports torch, TensorRT or onnxruntime at module import; each backend is
imported inside its branch and a missing one raises
:class:`engine.errors.BackendUnavailable` naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from parttrack.engine.bundle import Bundle, load_bundle
from parttrack.engine.errors import BackendUnavailable, ParttrackError
from parttrack.engine.runtime.base import Runtime
from parttrack.engine.runtime.devices import cuda_gpus
from parttrack.engine.runtime.edits import EditedRuntime

__all__ = ["BACKENDS", "EditedRuntime", "Runtime", "available_backends", "backend_status", "create_runtime", "parse_device"]

#: Backend names in the order ``auto`` prefers them (torch is never auto-selected).
BACKENDS = ("tensorrt", "onnxruntime", "torch")

_EXTRA = {
    "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu for CUDA; never both)",
    "tensorrt": "pip install 'parttrack[tensorrt]'",
    "torch": "pip install 'parttrack[train]'",
}


def parse_device(device: str | None) -> tuple[str | None, int]:
    """Split ``"cpu"``, ``"cuda"``, ``"cuda:1"`` (or None = let the backend choose).

    Returns:
        (kind, index): kind ``"cpu"``, ``"cuda"`` or None; index the CUDA ordinal (0 default).

    Raises:
        ParttrackError: for anything else.
    """
    if device is None or device == "auto":
        return None, 0
    text = str(device).strip().lower()
    if text == "cpu":
        return "cpu", 0
    if text in ("cuda", "gpu"):
        return "cuda", 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return "cuda", int(text[5:])
    raise ParttrackError(f"unknown device {device!r}", "use cpu, cuda or cuda:N")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _ort_providers() -> list[str]:
    if not _has_module("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def backend_status() -> dict[str, str | None]:
    """For every backend, None when it can run here, else the reason it cannot.

    Checks only what is cheap and torch-free: installed packages (without importing torch)
    and the CUDA driver's device list.
    """
    status: dict[str, str | None] = {}
    gpus = cuda_gpus()
    if not _has_module("tensorrt"):
        status["tensorrt"] = f"tensorrt is not installed ({_EXTRA['tensorrt']})"
    elif not gpus:
        status["tensorrt"] = "no NVIDIA GPU (CUDA driver reports no device)"
    elif not (_has_module("torch") or _has_module("cupy")):
        status["tensorrt"] = f"needs torch or cupy for GPU buffers ({_EXTRA['tensorrt']})"
    else:
        status["tensorrt"] = None
    status["onnxruntime"] = None if _has_module("onnxruntime") else f"onnxruntime is not installed ({_EXTRA['onnxruntime']})"
    status["torch"] = None if _has_module("torch") else f"torch is not installed ({_EXTRA['torch']})"
    return status


def available_backends() -> tuple[str, ...]:
    """Names of the backends that can run on this machine, in ``auto``'s order of preference."""
    status = backend_status()
    return tuple(name for name in BACKENDS if status[name] is None)


def _resolve(bundle_or_path: Bundle | str | Path) -> Bundle:
    if isinstance(bundle_or_path, Bundle):
        return bundle_or_path
    return load_bundle(bundle_or_path)


def _choose(backend: str, device_kind: str | None) -> str:
    if backend != "auto":
        if backend not in BACKENDS:
            raise ParttrackError(f"unknown backend {backend!r}", "use auto, " + ", ".join(BACKENDS))
        reason = backend_status()[backend]
        if reason is not None:
            raise BackendUnavailable(f"the {backend} backend is not available: {reason}", _EXTRA[backend])
        return backend
    status = backend_status()
    if device_kind != "cpu" and status["tensorrt"] is None:
        return "tensorrt"
    if status["onnxruntime"] is None:
        return "onnxruntime"
    raise BackendUnavailable("no inference backend is installed", _EXTRA["onnxruntime"])


def create_runtime(
    bundle_or_path: Bundle | str | Path,
    backend: str = "auto",
    device: str | None = None,
    threads: int | None = None,
    workers: int = 1,
    precision: str | None = None,
    announce: bool = True,
    **options,
) -> Runtime:
    """Build the runtime for a bundle.

    Args:
        bundle_or_path: a :class:`engine.bundle.Bundle`, a bundle folder or its ``model.onnx``.
        backend: ``auto``, ``onnxruntime``, ``tensorrt`` or ``torch`` (see module docstring).
        device: ``cpu``, ``cuda``, ``cuda:N`` or None (the backend's default: ``cuda:0`` for
            TensorRT; ONNX Runtime's CUDA provider when present, else ``cpu``).
        threads: CPU intra-op threads; None = usable cores // ``workers``.
        workers: number of processes that will each run a runtime on this machine (splits the
            cores between them).
        precision: None = the backend's documented default (ONNX Runtime and torch ``fp32``;
            TensorRT ``fp16`` where the GPU has fast fp16, else ``fp32``). ``int8`` (ONNX
            Runtime on CPU) runs the bundle's ``model.int8.onnx`` made by
            ``parttrack compile --int8`` (:mod:`engine.quantize`). Never lowered silently.
        announce: print ``runtime: <describe()>`` (backend, device, precision, threads) to
            stderr once built — the SPEC's "the runtime in use is always printed". False for
            callers that report it themselves (bench) or build many (worker processes).
        **options: keywords of the chosen backend (``spin``, ``optimization`` for ONNX Runtime;
            ``max_batch``, ``opt_batch``, ``cache_dir`` for TensorRT); an unknown one raises.

    Returns:
        A :class:`engine.runtime.base.Runtime`. When the bundle records part edits
        (``parttrack label --drop/--merge``), the backend wrapped in
        :class:`engine.runtime.edits.EditedRuntime`: its masks have the dropped parts folded
        into the background and the merged parts into their targets, and its ``meta`` has the
        skeleton edges edited to match; without edits, the backend itself.

    Raises:
        BackendUnavailable: the backend (or the device) is not installed/present; the hint
            names the extra to install.
        BundleError: the bundle is missing files, has bad metadata or a mismatched K.
        ParttrackError: unknown backend, device, precision or option.
    """
    device_kind, device_index = parse_device(device)
    if workers < 1:
        raise ParttrackError(f"workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ParttrackError(f"threads must be at least 1, got {threads}")
    bundle = _resolve(bundle_or_path)
    name = _choose(backend, device_kind)
    kwargs = dict(device_kind=device_kind, device_index=device_index, threads=threads, workers=workers,
                  precision=precision)
    skipped = ""
    if backend == "auto" and name == "tensorrt":
        # TensorRT can still fail to start (no CUDA build of torch, a driver problem...):
        # auto then falls back to ONNX Runtime and says why.
        try:
            runtime = _build("tensorrt", bundle, kwargs, options)
        except BackendUnavailable as exc:
            skipped = f" [tensorrt skipped: {exc.message}]"
            name = "onnxruntime"
        else:
            name = ""
    if name:
        runtime = _build(name, bundle, kwargs, options)
    if bundle.meta.part_edits:
        runtime = EditedRuntime(runtime)
    if announce:
        print(f"runtime: {runtime.describe()}{skipped}", file=sys.stderr)
    return runtime


def _build(name: str, bundle: Bundle, kwargs: dict, options: dict) -> Runtime:
    if name == "onnxruntime":
        from parttrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend as cls
    elif name == "tensorrt":
        from parttrack.engine.runtime.tensorrt_backend import TensorRTBackend as cls
    else:
        from parttrack.engine.runtime.torch_backend import TorchBackend as cls
    _check_options(cls, name, options)
    return cls(bundle, **kwargs, **options)


def _check_options(cls, name: str, options: dict) -> None:
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {
        "self", "bundle", "device_kind", "device_index", "threads", "workers", "precision"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ParttrackError(f"unknown option(s) {', '.join(unknown)} for the {name} backend",
                             f"it accepts: {', '.join(sorted(allowed)) or 'no extra options'}")
