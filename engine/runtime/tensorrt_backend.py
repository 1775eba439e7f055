"""TensorRT backend: runs an engine built from the bundle's ONNX on the user's NVIDIA GPU
(building and caching the engine: :mod:`engine.runtime.tensorrt_build`).

Install: ``pip install 'parttrack[tensorrt]'`` — the ``tensorrt`` wheels (TensorRT 10 or 11;
their ``-libs`` packages are fetched from NVIDIA's index) and torch (a CUDA build of
torch==2.13.0), whose CUDA tensors hold the device buffers and whose stream orders the
copies. Without torch, ``cupy`` (e.g. ``pip install cupy-cuda12x``) is used instead.

* The engine comes from the cache (:func:`engine.runtime.tensorrt_build.plan_engine`), built
  once when it is missing or stale (:func:`engine.runtime.tensorrt_build.build_engine`).
* **Precision** is always shown by :meth:`TensorRTBackend.describe`; batches above the
  engine's ``max_batch`` are run in chunks.
* **Run**: ``set_input_shape`` → ``set_tensor_address`` for every I/O tensor →
  ``execute_async_v3`` on a dedicated (non-default) CUDA stream, copies enqueued on that
  stream, then one synchronise.

Not verified on a GPU in this project's CI (no GPU there); the pure-Python parts are tested
with fakes in tests/test_runtime.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from parttrack.engine.bundle import Bundle
from parttrack.engine.errors import BackendUnavailable, BundleError
from parttrack.engine.runtime.base import check_images
from parttrack.engine.runtime.tensorrt_build import (  # the build API, re-exported for callers of this module
    DEFAULT_MAX_BATCH,
    DEFAULT_WORKSPACE,
    INSTALL_HINT,
    PRECISIONS,
    EnginePlan,
    TensorRTLogger,
    build_engine,
    choose_precision,
    engine_file_name,
    fp16_onnx,
    has_fast_fp16,
    import_tensorrt,
    plan_engine,
    profile_shapes,
    timing_cache_name,
)
from parttrack.engine.types import PartOutput

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_WORKSPACE", "INSTALL_HINT", "PRECISIONS", "EnginePlan", "TensorRTBackend",
           "build_engine", "choose_precision", "compile_engine", "engine_file_name", "fp16_onnx", "has_fast_fp16",
           "plan_engine", "profile_shapes", "timing_cache_name"]


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
        trt = import_tensorrt()
        self._trt = trt
        self.meta = bundle.meta
        self.plan = plan_engine(bundle, device_index, precision, max_batch, opt_batch, cache_dir)
        self.precision = self.plan.precision
        self.device = f"cuda:{device_index}"
        self._buf = _DeviceBuffers.select(device_index)
        self._logger = TensorRTLogger(trt)
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
