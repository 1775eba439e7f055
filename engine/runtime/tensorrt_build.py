"""TensorRT engine building and caching (no execution: :mod:`engine.runtime.tensorrt_backend`
runs the engines built here).

How an engine is built (TensorRT Python API, "The Build Phase"):

* **Strongly typed network** from an ONNX whose dtypes are already the wanted precision —
  the only form that works on both TensorRT 10 (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``)
  and 11 (always strongly typed; the FP16 builder flag is gone). For fp16 the float32 ONNX is
  converted first (:func:`fp16_onnx`: float tensors to float16, the uint8 input and float32
  outputs kept, Cast nodes inserted).
* **Precision**: ``fp16`` where the GPU has fast fp16 (:func:`has_fast_fp16`), else ``fp32``;
  ``--precision fp32`` forces fp32.
* **Dynamic batch**: one optimisation profile on ``image`` with min 1, opt ``opt_batch``, max
  ``max_batch`` (:func:`profile_shapes`).
* **Caches** (outside the bundle, :func:`engine.runtime.files.cache_dir` ``/engines``): the
  serialized engine, keyed by graph fingerprint, TensorRT version, GPU compute capability,
  precision and profile (:func:`engine_file_name`) — engines only load on the TensorRT version
  and GPU architecture that built them; and a timing cache per TensorRT version and GPU
  architecture, shared by all models (:func:`timing_cache_name`). Files are written
  atomically (temporary file, then rename).

:func:`plan_engine` decides the engine (and its cache file) without building;
:func:`build_engine` builds it. ``tensorrt`` is imported when needed
(:func:`import_tensorrt` raises :class:`engine.errors.BackendUnavailable` naming the extra).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from parttrack.engine.bundle import Bundle
from parttrack.engine.errors import BackendUnavailable, BundleError, ParttrackError
from parttrack.engine.runtime.devices import GpuInfo, cuda_gpus
from parttrack.engine.runtime.files import cache_dir, onnx_fingerprint

INSTALL_HINT = "pip install 'parttrack[tensorrt]'"
PRECISIONS = ("fp16", "fp32")
DEFAULT_MAX_BATCH = 32
DEFAULT_WORKSPACE = 1 << 30  # bytes of scratch memory the builder may use

# Architectures with full-rate fp16 arithmetic below Volta (sm53/sm62 Jetson, sm60 P100);
# from sm70 on, every GPU has tensor cores. sm61 (GTX 10xx) runs fp16 at 1/64 rate.
_FAST_FP16_BEFORE_VOLTA = {(5, 3), (6, 0), (6, 2)}


def has_fast_fp16(compute_capability: tuple[int, int]) -> bool:
    """Whether a GPU of this compute capability runs fp16 at least as fast as fp32."""
    return tuple(compute_capability) >= (7, 0) or tuple(compute_capability) in _FAST_FP16_BEFORE_VOLTA


def choose_precision(requested: str | None, compute_capability: tuple[int, int]) -> str:
    """The engine precision: ``requested`` if given, else fp16 on fast-fp16 GPUs, else fp32.

    Raises:
        ParttrackError: for a precision TensorRT is not built for here (e.g. ``int8``).
    """
    if requested is None:
        return "fp16" if has_fast_fp16(compute_capability) else "fp32"
    if requested not in PRECISIONS:
        raise ParttrackError(f"the tensorrt backend builds {' or '.join(PRECISIONS)} engines, not {requested!r}",
                             "int8 is an option of the onnxruntime backend on CPU")
    return requested


def profile_shapes(input_size: int, max_batch: int, opt_batch: int = 1) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of the ``image`` input for the optimisation profile:
    ``(B, S, S, 3)`` with B = 1, ``opt_batch``, ``max_batch``.

    Raises:
        ParttrackError: unless 1 ≤ opt_batch ≤ max_batch.
    """
    if not 1 <= opt_batch <= max_batch:
        raise ParttrackError(f"need 1 <= opt_batch <= max_batch, got opt_batch={opt_batch}, max_batch={max_batch}")
    s = int(input_size)
    return tuple((b, s, s, 3) for b in (1, int(opt_batch), int(max_batch)))


def engine_file_name(fingerprint: str, trt_version: str, compute_capability: tuple[int, int], precision: str,
                     max_batch: int, opt_batch: int = 1) -> str:
    """Cache file name of a serialized engine, e.g.
    ``3fa9c1d2e4b5a6f7-trt10.13.0.35-sm90-fp16-b1-32.engine``: graph fingerprint (first 16 hex),
    TensorRT version, GPU architecture, precision, opt/max batch."""
    major, minor = compute_capability
    return f"{fingerprint[:16]}-trt{trt_version}-sm{major}{minor}-{precision}-b{opt_batch}-{max_batch}.engine"


def timing_cache_name(trt_version: str, compute_capability: tuple[int, int]) -> str:
    """Timing-cache file name (one per TensorRT version and GPU architecture)."""
    major, minor = compute_capability
    return f"timing-trt{trt_version}-sm{major}{minor}.cache"


def fp16_onnx(model):
    """A float16 copy of a float32 ONNX model for a strongly typed fp16 engine.

    Float initializers and activations become float16; the uint8 ``image`` input and the
    float32 ``masks``/``transforms`` outputs keep their types (Cast nodes at the boundary).
    Uses ONNX Runtime's converter (``onnxruntime.transformers.float16.convert_float_to_float16``,
    ``keep_io_types=True``; ops in its default block list stay float32).

    Args:
        model: ``onnx.ModelProto`` (float32).

    Returns:
        A new ``onnx.ModelProto``.
    """
    import copy

    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True)
    # Repairs for the converter's output (seen with onnxruntime 1.31 on a U-Net whose two Resize
    # nodes share one scales initializer): one identical Cast per consumer, and Casts appended
    # after the nodes that read them.
    seen, unique = set(), []
    for node in converted.graph.node:
        key = node.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            unique.append(node)
    del converted.graph.node[:]
    converted.graph.node.extend(unique)
    _topological_sort(converted.graph)
    return converted


def _topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs
    (ONNX requires it; TensorRT's parser reads nodes in order). Stable: independent nodes keep
    their relative order.

    Raises:
        ValueError: if the graph has a cycle or reads a tensor nothing produces.
    """
    nodes = list(graph.node)
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    ordered, pending = [], nodes
    while pending:
        still = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                still.append(node)
        if len(still) == len(pending):
            produced = {o for node in nodes for o in node.output}
            missing = sorted({n for node in still for n in node.input} - available - produced)
            raise ValueError("ONNX graph cannot be ordered: " + (f"inputs {missing[:5]} are never produced"
                                                                  if missing else "it has a cycle"))
        pending = still
    del graph.node[:]
    graph.node.extend(ordered)


@dataclass(frozen=True)
class EnginePlan:
    """Everything that decides which engine a bundle needs on this GPU (and its cache file)."""

    onnx_path: Path
    fingerprint: str
    trt_version: str
    gpu: GpuInfo
    precision: str
    input_size: int
    max_batch: int
    opt_batch: int
    cache: Path

    @property
    def engine_path(self) -> Path:
        return self.cache / engine_file_name(self.fingerprint, self.trt_version, self.gpu.compute_capability,
                                             self.precision, self.max_batch, self.opt_batch)

    @property
    def timing_cache_path(self) -> Path:
        return self.cache / timing_cache_name(self.trt_version, self.gpu.compute_capability)


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailable("the tensorrt backend needs the tensorrt package", INSTALL_HINT) from None
    return trt


def _gpu(device_index: int) -> GpuInfo:
    gpus = cuda_gpus()
    if not gpus:
        raise BackendUnavailable("the tensorrt backend needs an NVIDIA GPU and none was found",
                                 "use --backend onnxruntime (CPU)")
    if device_index >= len(gpus):
        raise BackendUnavailable(f"there is no cuda:{device_index} (this machine has {len(gpus)} GPU(s))",
                                 f"use --device cuda:0 … cuda:{len(gpus) - 1}")
    return gpus[device_index]


def plan_engine(bundle: Bundle, device_index: int = 0, precision: str | None = None,
                max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int = 1, cache: str | Path | None = None,
                trt_version: str | None = None, gpu: GpuInfo | None = None) -> EnginePlan:
    """Decide the engine for ``bundle`` on GPU ``device_index`` (no building).

    ``trt_version`` and ``gpu`` default to the installed TensorRT and the CUDA driver's device.
    """
    profile_shapes(bundle.meta.input_size, max_batch, opt_batch)  # validates the batch sizes
    if trt_version is None:
        trt_version = import_tensorrt().__version__
    gpu = gpu or _gpu(device_index)
    return EnginePlan(
        onnx_path=bundle.onnx_path, fingerprint=onnx_fingerprint(bundle.onnx_path), trt_version=str(trt_version),
        gpu=gpu, precision=choose_precision(precision, gpu.compute_capability),
        input_size=bundle.meta.input_size, max_batch=int(max_batch), opt_batch=int(opt_batch),
        cache=Path(cache) if cache is not None else cache_dir() / "engines")


class TensorRTLogger:
    """A TensorRT logger at WARNING that also keeps the messages (for error reports)."""

    def __new__(cls, trt):
        class Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.messages: list[str] = []

            def log(self, severity, msg):
                if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR,
                                trt.ILogger.Severity.WARNING):
                    self.messages.append(str(msg))
                    print(f"tensorrt: {msg}", file=sys.stderr)

        return Logger()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_engine(plan: EnginePlan, workspace_bytes: int = DEFAULT_WORKSPACE) -> Path:
    """Build the engine of ``plan`` and write it (and the updated timing cache) to the cache.

    Returns:
        The engine file path.

    Raises:
        BackendUnavailable: tensorrt missing.
        BundleError: TensorRT cannot parse or build the ONNX graph (its messages included).
    """
    import onnx

    trt = import_tensorrt()
    logger = TensorRTLogger(trt)
    model = onnx.load(str(plan.onnx_path))
    if plan.precision == "fp16":
        model = fp16_onnx(model)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"{plan.onnx_path}: TensorRT cannot parse the graph ({errors})",
                          "use --backend onnxruntime, or report the TensorRT version and this message")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    profile = builder.create_optimization_profile()
    lo, opt, hi = profile_shapes(plan.input_size, plan.max_batch, plan.opt_batch)
    profile.set_shape("image", lo, opt, hi)
    config.add_optimization_profile(profile)
    timing = plan.timing_cache_path.read_bytes() if plan.timing_cache_path.is_file() else b""
    cache = config.create_timing_cache(timing)
    if not config.set_timing_cache(cache, False):  # mismatched/corrupt cache file: start afresh
        config.set_timing_cache(config.create_timing_cache(b""), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BundleError(f"{plan.onnx_path}: TensorRT could not build an engine "
                          f"({'; '.join(logger.messages[-3:]) or 'no message'})",
                          "use --backend onnxruntime, or try --precision fp32")
    _atomic_write(plan.engine_path, bytes(memoryview(serialized)))
    _atomic_write(plan.timing_cache_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return plan.engine_path
