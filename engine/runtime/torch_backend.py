"""torch backend: the reference runtime (CPU or CUDA), float32.

Runs the bundle's own torch network, ``engine.model.load_network(config.json, weights.npz)``,
whose ``forward`` is the graph exported to ``model.onnx`` — so the other backends are checked
against it. Needs the ``train`` extra (``pip install 'parttrack[train]'``).
"""

from __future__ import annotations

import numpy as np

from parttrack.engine.bundle import Bundle
from parttrack.engine.errors import BackendUnavailable, ParttrackError
from parttrack.engine.runtime.base import check_images
from parttrack.engine.runtime.devices import threads_per_worker
from parttrack.engine.types import PartOutput


class TorchBackend:
    """The bundle's torch network in eval mode under ``torch.inference_mode``.

    Args:
        bundle: the validated bundle (needs ``config.json`` and ``weights.npz``).
        device_kind: ``"cpu"`` (None) or ``"cuda"``.
        device_index: CUDA ordinal.
        threads: CPU threads (``torch.set_num_threads``, process-wide); None = usable cores //
            ``workers``.
        workers: processes sharing this machine's cores.
        precision: ``fp32`` (None); the reference runs in float32 only.

    Raises:
        BackendUnavailable: torch is not installed, or CUDA asked for and not available.
        BundleError: unreadable or mismatched ``config.json`` / ``weights.npz``.
    """

    name = "torch"

    def __init__(self, bundle: Bundle, device_kind: str | None = None, device_index: int = 0,
                 threads: int | None = None, workers: int = 1, precision: str | None = None) -> None:
        if (precision or "fp32") != "fp32":
            raise ParttrackError(f"the torch backend runs fp32 only, not {precision!r}",
                                 "use --backend tensorrt for fp16, onnxruntime for int8")
        try:
            import torch
        except ImportError:
            raise BackendUnavailable("the torch backend needs torch", "pip install 'parttrack[train]'") from None
        try:
            from parttrack.engine.model import load_network
        except ImportError as exc:  # pragma: no cover - shipped with the package
            raise BackendUnavailable(f"the torch network code cannot be imported ({exc})",
                                     "pip install 'parttrack[train]'") from None
        self._torch = torch
        self.meta = bundle.meta
        self.precision = "fp32"
        if device_kind == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailable("torch has no CUDA device here (CPU-only build or no GPU)",
                                         "install a CUDA build of torch==2.13.0, or use --device cpu")
            self.device = f"cuda:{device_index}"
        else:
            self.device = "cpu"
        self.threads = threads or threads_per_worker(workers)
        if self.device == "cpu":
            torch.set_num_threads(self.threads)
        self._net = load_network(bundle.config_path, bundle.weights_path).to(self.device).eval()

    def infer(self, images: np.ndarray) -> PartOutput:
        """Run a batch: ``(N, S, S, 3)`` uint8 RGB → :class:`engine.types.PartOutput` (N entries).

        Raises:
            ValueError: wrong dtype or shape.
        """
        torch = self._torch
        images = check_images(images, self.meta.input_size)
        with torch.inference_mode():
            masks, transforms = self._net(torch.from_numpy(images).to(self.device))
        return PartOutput(masks.float().cpu().numpy(), transforms.float().cpu().numpy())

    def describe(self) -> str:
        """E.g. ``torch 2.13.0+cpu on cpu (fp32, 2 threads)``."""
        where = f"{self.threads} threads" if self.device == "cpu" else self._torch.cuda.get_device_name(self.device)
        return f"torch {self._torch.__version__} on {self.device} (fp32, {where})"
