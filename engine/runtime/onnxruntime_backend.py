"""ONNX Runtime backend: the default runtime, CPU (and the CUDA provider where present).

Session settings (ONNX Runtime "Threading" and "Graph optimizations" docs), measured with
``parttrack bench`` on the shared 2-core machine: all graph optimisations (``extended``, i.e.
without the NCHWc layout transformer, was 1.8× slower at batch 1 in an interleaved run); ``intra_op_num_threads`` = usable
cores // worker processes; ``inter_op_num_threads`` = 1 with sequential execution (the graph
is a chain; parallel execution only adds scheduling); intra-op spinning OFF by default —
with other work on the cores (video decoding, the Kalman filter, other processes) spinning
threads made batch 1 2–4× slower (``spin=True`` turns it on for an otherwise idle machine).

Precision: ``fp32`` runs ``model.onnx``; ``int8`` runs the bundle's optional
``model.int8.onnx`` (QDQ static quantisation, :mod:`engine.quantize`), which must have been
made from the same graph (checked by fingerprint). Never chosen silently.
"""

from __future__ import annotations

import numpy as np

from parttrack.engine.bundle import Bundle, read_onnx_meta
from parttrack.engine.errors import BackendUnavailable, BundleError, ParttrackError
from parttrack.engine.runtime.base import check_images
from parttrack.engine.runtime.devices import threads_per_worker
from parttrack.engine.runtime.files import INT8_FILE, INT8_SOURCE_KEY, onnx_fingerprint
from parttrack.engine.types import PartOutput

PRECISIONS = ("fp32", "int8")


class OnnxRuntimeBackend:
    """Runs the bundle's ONNX graph with ONNX Runtime.

    Args:
        bundle: the validated bundle.
        device_kind: ``"cpu"``, ``"cuda"`` or None (CUDA provider if available, else CPU;
            always CPU for int8).
        device_index: CUDA ordinal when on CUDA.
        threads: intra-op threads; None = usable cores // ``workers``.
        workers: processes sharing this machine's cores.
        precision: ``fp32`` (None) or ``int8`` (CPU only; needs ``model.int8.onnx``).
        spin: let intra-op threads spin-wait between runs (lower latency when the cores are
            otherwise idle; costs CPU that other stages could use).
        optimization: ONNX Runtime graph optimisation level: ``all`` (default), ``extended``,
            ``basic`` or ``none``.

    Raises:
        BackendUnavailable: CUDA asked for but the CUDA provider is not installed/usable.
        BundleError: int8 asked for but no (or a stale) ``model.int8.onnx``.
        ParttrackError: unknown precision or optimisation level.
    """

    name = "onnxruntime"

    def __init__(self, bundle: Bundle, device_kind: str | None = None, device_index: int = 0,
                 threads: int | None = None, workers: int = 1, precision: str | None = None,
                 spin: bool = False, optimization: str = "all") -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - onnxruntime is a core dependency
            raise BackendUnavailable("onnxruntime is not installed", "pip install onnxruntime") from None
        self._ort = ort
        self.meta = bundle.meta
        self.precision = precision or "fp32"
        if self.precision not in PRECISIONS:
            raise ParttrackError(f"ONNX Runtime cannot run precision {self.precision!r}",
                                 f"use one of {', '.join(PRECISIONS)}")
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                  "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if optimization not in levels:
            raise ParttrackError(f"unknown optimisation level {optimization!r}", f"use one of {', '.join(levels)}")

        available = ort.get_available_providers()
        use_cuda = device_kind == "cuda" or (device_kind is None and self.precision == "fp32"
                                             and "CUDAExecutionProvider" in available)
        if use_cuda and "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(
                "ONNX Runtime has no CUDA provider here (available: " + ", ".join(available) + ")",
                "pip uninstall onnxruntime && pip install onnxruntime-gpu (never both), or use --device cpu")
        if use_cuda and self.precision == "int8":
            raise ParttrackError("int8 is a CPU option of the onnxruntime backend",
                                 "on a GPU use --backend tensorrt, or --precision fp32")
        self.model_path = bundle.onnx_path if self.precision == "fp32" else self._int8_path(bundle)

        self.threads = threads or threads_per_worker(workers)
        self.spin = bool(spin)
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[optimization]
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3  # errors only; provider choice is reported by describe()
        providers: list = ["CPUExecutionProvider"]
        if use_cuda:
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_index}))
        try:
            self._session = ort.InferenceSession(str(self.model_path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BundleError(f"{self.model_path}: ONNX Runtime cannot load the model ({exc})",
                              "re-export the bundle with this version of parttrack") from None
        self.providers = tuple(self._session.get_providers())
        if use_cuda and self.providers[0] != "CUDAExecutionProvider":
            raise BackendUnavailable(
                f"ONNX Runtime could not start its CUDA provider on cuda:{device_index} "
                f"(session providers: {', '.join(self.providers)})",
                "check the NVIDIA driver and CUDA/cuDNN libraries onnxruntime-gpu needs, or use --device cpu")
        self.device = f"cuda:{device_index}" if use_cuda else "cpu"
        self._outputs = ["masks", "transforms"]

    @staticmethod
    def _int8_path(bundle: Bundle):
        path = bundle.path / INT8_FILE
        hint = "make it with `parttrack compile --int8 --model <bundle>` (or use --precision fp32)"
        if not path.is_file():
            raise BundleError(f"bundle {bundle.path} has no {INT8_FILE} (the optional int8 model)", hint)
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        int8_meta = read_onnx_meta(path)
        if int8_meta.num_parts != bundle.meta.num_parts or int8_meta.input_size != bundle.meta.input_size:
            raise BundleError(f"{path}: K / input size differ from model.onnx", hint)
        if props.get(INT8_SOURCE_KEY) != onnx_fingerprint(bundle.onnx_path):
            raise BundleError(f"{path} was made from a different model.onnx (the model was re-exported "
                              "or retrained since)", hint)
        return path

    def infer(self, images: np.ndarray) -> PartOutput:
        """Run a batch: ``(N, S, S, 3)`` uint8 RGB → :class:`engine.types.PartOutput` (N entries).

        Raises:
            ValueError: wrong dtype or shape.
        """
        images = check_images(images, self.meta.input_size)
        masks, transforms = self._session.run(self._outputs, {"image": images})
        return PartOutput(np.asarray(masks, dtype=np.float32), np.asarray(transforms, dtype=np.float32))

    def describe(self) -> str:
        """E.g. ``onnxruntime 1.23.2 on cpu (CPUExecutionProvider, fp32, 2 threads, no spinning)``."""
        return (f"onnxruntime {self._ort.__version__} on {self.device} ({self.providers[0]}, {self.precision}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, "
                f"{'spinning' if self.spin else 'no spinning'})")
