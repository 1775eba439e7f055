"""TensorRT backend: an engine built from the bundle's ONNX on the user's NVIDIA GPU.

Install: ``pip install 'parttrack[tensorrt]'`` — the ``tensorrt`` wheels (TensorRT 10 or 11;
their ``-libs`` packages are fetched from NVIDIA's index) and torch (a CUDA build of
torch==2.13.0), whose CUDA tensors hold the device buffers and whose stream orders the
copies. Without torch, ``cupy`` (e.g. ``pip install cupy-cuda12x``) is used instead.

How it is built (TensorRT Python API, "The Build Phase", and NOTES.md):

* **Strongly typed network** from an ONNX whose dtypes are already the wanted precision —
  the only form that works on both TensorRT 10 (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``)
  and 11 (always strongly typed; the FP16 builder flag is gone). For fp16 the float32 ONNX is
  converted first (:func:`fp16_onnx`: float tensors to float16, the uint8 input and float32
  outputs kept, Cast nodes inserted).
* **Precision**: ``fp16`` where the GPU has fast fp16 (:func:`has_fast_fp16`), else ``fp32``;
  ``--precision fp32`` forces fp32. Always shown by :meth:`TensorRTBackend.describe`.
* **Dynamic batch**: one optimisation profile on ``image`` with min 1, opt ``opt_batch``, max
  ``max_batch`` (:func:`profile_shapes`); larger batches are run in chunks.
* **Caches** (outside the bundle, :func:`engine.runtime.files.cache_dir` ``/engines``): the
  serialized engine, keyed by graph fingerprint, TensorRT version, GPU compute capability,
  precision and profile (:func:`engine_file_name`) — engines only load on the TensorRT version
  and GPU architecture that built them; and a timing cache per TensorRT version and GPU
  architecture, shared by all models (:func:`timing_cache_name`).
* **Run**: ``set_input_shape`` → ``set_tensor_address`` for every I/O tensor →
  ``execute_async_v3`` on a dedicated (non-default) CUDA stream, copies enqueued on that
  stream, then one synchronise.

Not verified on a GPU in this project's CI (no GPU there); the pure-Python parts are tested
with fakes in tests/test_runtime.py.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.bundle import Bundle
from engine.errors import BackendUnavailable, BundleError, ParttrackError
from engine.runtime.base import check_images
from engine.runtime.devices import GpuInfo, cuda_gpus
from engine.runtime.files import cache_dir, onnx_fingerprint
from engine.types import PartOutput

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


def _import_tensorrt():
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
        trt_version = _import_tensorrt().__version__
    gpu = gpu or _gpu(device_index)
    return EnginePlan(
        onnx_path=bundle.onnx_path, fingerprint=onnx_fingerprint(bundle.onnx_path), trt_version=str(trt_version),
        gpu=gpu, precision=choose_precision(precision, gpu.compute_capability),
        input_size=bundle.meta.input_size, max_batch=int(max_batch), opt_batch=int(opt_batch),
        cache=Path(cache) if cache is not None else cache_dir() / "engines")


class _Logger:
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

    trt = _import_tensorrt()
    logger = _Logger(trt)
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


def compile_engine(bundle: Bundle, device_index: int = 0, precision: str | None = None,
                   max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int = 1, cache: str | Path | None = None,
                   force: bool = False) -> tuple[Path, bool]:
    """Build (or find) the cached engine for ``bundle`` — what ``parttrack compile`` runs.

    Returns:
        (engine path, built): ``built`` is False when a cached engine was already there.
    """
    plan = plan_engine(bundle, device_index, precision, max_batch, opt_batch, cache)
    if plan.engine_path.is_file() and not force:
        return plan.engine_path, False
    _DeviceBuffers.select(device_index)  # make the GPU current before TensorRT touches CUDA
    return build_engine(plan), True


class _DeviceBuffers:
    """Device memory and a CUDA stream through torch (preferred) or cupy."""

    @staticmethod
    def select(device_index: int) -> "_DeviceBuffers":
        try:
            import torch

            if torch.cuda.is_available():
                return _TorchBuffers(device_index)
        except ImportError:
            pass
        try:
            import cupy  # noqa: F401
        except ImportError:
            raise BackendUnavailable("the tensorrt backend needs a CUDA build of torch (or cupy) for GPU buffers",
                                     INSTALL_HINT) from None
        return _CupyBuffers(device_index)


class _TorchBuffers(_DeviceBuffers):
    def __init__(self, device_index: int) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda", device_index)
        torch.cuda.set_device(self.device)
        self.stream = torch.cuda.Stream(self.device)
        self._dtypes = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32,
                        np.dtype(np.float16): torch.float16, np.dtype(np.int32): torch.int32}

    @property
    def stream_handle(self) -> int:
        return int(self.stream.cuda_stream)

    def empty(self, shape, dtype):
        """(device tensor, pinned host tensor), both of ``shape``/``dtype``."""
        t = self._dtypes[np.dtype(dtype)]
        return (self.torch.empty(tuple(shape), dtype=t, device=self.device),
                self.torch.empty(tuple(shape), dtype=t, pin_memory=True))

    @staticmethod
    def ptr(device_array) -> int:
        return int(device_array.data_ptr())

    def upload(self, device_array, host: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            device_array[: len(host)].copy_(self.torch.from_numpy(host), non_blocking=True)

    def download(self, device_array, host_array, n: int) -> None:
        with self.torch.cuda.stream(self.stream):
            host_array[:n].copy_(device_array[:n], non_blocking=True)

    def synchronize(self) -> None:
        self.stream.synchronize()

    @staticmethod
    def to_numpy(host_array, n: int) -> np.ndarray:
        return host_array[:n].numpy().copy()


class _CupyBuffers(_DeviceBuffers):
    def __init__(self, device_index: int) -> None:
        import cupy

        self.cp = cupy
        cupy.cuda.Device(device_index).use()
        self.stream = cupy.cuda.Stream(non_blocking=True)

    @property
    def stream_handle(self) -> int:
        return int(self.stream.ptr)

    def empty(self, shape, dtype):
        host = self.cp.cuda.alloc_pinned_memory(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return self.cp.empty(tuple(shape), dtype=dtype), np.frombuffer(host, dtype, int(np.prod(shape))).reshape(shape)

    @staticmethod
    def ptr(device_array) -> int:
        return int(device_array.data.ptr)

    def upload(self, device_array, host: np.ndarray) -> None:
        device_array[: len(host)].set(host, stream=self.stream)

    def download(self, device_array, host_array, n: int) -> None:
        device_array[:n].get(stream=self.stream, out=host_array[:n])

    def synchronize(self) -> None:
        self.stream.synchronize()

    @staticmethod
    def to_numpy(host_array, n: int) -> np.ndarray:
        return np.array(host_array[:n], copy=True)


class TensorRTBackend:
    """Runs the bundle on an NVIDIA GPU with a cached TensorRT engine.

    Args:
        bundle: the validated bundle.
        device_kind: must be ``"cuda"`` or None.
        device_index: CUDA ordinal.
        threads, workers: unused (GPU); accepted for the common factory signature.
        precision: None (fp16 where fast, else fp32), ``fp16`` or ``fp32``.
        max_batch: largest batch one engine call takes (bigger inputs are chunked).
        opt_batch: the batch size TensorRT tunes kernels for (1: live latency).
        cache_dir: engine/timing cache folder (default ``~/.cache/parttrack/engines``).

    Raises:
        BackendUnavailable: no tensorrt, no GPU, or no torch/cupy for device buffers.
        BundleError: the graph cannot be parsed/built.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, device_kind: str | None = None, device_index: int = 0,
                 threads: int | None = None, workers: int = 1, precision: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int = 1, cache_dir: str | Path | None = None) -> None:
        if device_kind == "cpu":
            raise BackendUnavailable("TensorRT runs on NVIDIA GPUs only, not on the CPU",
                                     "use --backend onnxruntime for the CPU")
        trt = _import_tensorrt()
        self._trt = trt
        self.meta = bundle.meta
        self.plan = plan_engine(bundle, device_index, precision, max_batch, opt_batch, cache_dir)
        self.precision = self.plan.precision
        self.device = f"cuda:{device_index}"
        self._buf = _DeviceBuffers.select(device_index)
        self._logger = _Logger(trt)
        self._runtime = trt.Runtime(self._logger)
        path = self.plan.engine_path
        self.engine_built = not path.is_file()
        engine = None if self.engine_built else self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:  # missing, or a stale/corrupt cache file: (re)build it once
            print(f"tensorrt: building the {self.precision} engine for {self.plan.gpu.name} (once; cached as "
                  f"{path}; `parttrack compile` does this ahead of time)", file=sys.stderr)
            build_engine(self.plan)
            self.engine_built = True
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BundleError(f"TensorRT cannot load the engine it built ({path})",
                              "delete the cache folder and retry, or use --backend onnxruntime")
        self._engine = engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if self._inputs != ["image"] or sorted(self._outputs) != ["masks", "transforms"]:
            raise BundleError(f"engine {path} has inputs {self._inputs} and outputs {self._outputs}",
                              "delete the cache folder and retry")
        # Device buffers for the largest batch, allocated once; a batch of n uses their first n rows.
        s = self.meta.input_size
        self._max = self.plan.max_batch
        self._context.set_input_shape("image", (self._max, s, s, 3))
        self._dev, self._host = {}, {}
        for n in ["image", *self._outputs]:
            shape = (self._max, s, s, 3) if n == "image" else tuple(self._context.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            self._dev[n], self._host[n] = self._buf.empty(shape, dtype)
            self._context.set_tensor_address(n, self._buf.ptr(self._dev[n]))

    def _run_chunk(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(images)
        self._buf.upload(self._dev["image"], images)
        self._context.set_input_shape("image", images.shape)
        if not self._context.execute_async_v3(self._buf.stream_handle):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the tensorrt: messages above)")
        for name in self._outputs:
            self._buf.download(self._dev[name], self._host[name], n)
        self._buf.synchronize()
        masks = self._buf.to_numpy(self._host["masks"], n).astype(np.float32, copy=False)
        transforms = self._buf.to_numpy(self._host["transforms"], n).astype(np.float32, copy=False)
        return masks, transforms

    def infer(self, images: np.ndarray) -> PartOutput:
        """Run a batch: ``(N, S, S, 3)`` uint8 RGB → :class:`engine.types.PartOutput` (N entries);
        batches above ``max_batch`` run in chunks.

        Raises:
            ValueError: wrong dtype or shape.
        """
        images = check_images(images, self.meta.input_size)
        parts = [self._run_chunk(images[i:i + self._max]) for i in range(0, len(images), self._max)]
        if len(parts) == 1:
            return PartOutput(*parts[0])
        return PartOutput(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def describe(self) -> str:
        """E.g. ``tensorrt 10.13.0.35 on cuda:0 (NVIDIA H100, sm90, fp16, batch 1..32, engine cached)``."""
        g = self.plan.gpu
        state = "engine built now" if self.engine_built else "engine from cache"
        return (f"tensorrt {self.plan.trt_version} on {self.device} ({g.name}, {g.sm}, {self.precision}, "
                f"batch 1..{self._max}, {state}: {self.plan.engine_path})")
