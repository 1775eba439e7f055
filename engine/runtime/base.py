"""The protocol every inference runtime implements (ONNX Runtime, TensorRT, torch).

A runtime is built by :func:`engine.runtime.create_runtime` (the one factory) from a
:class:`engine.bundle.Bundle`; it never imports torch unless it *is* the torch runtime.
Helpers every backend shares (input checks) live here too, so no backend imports another.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from parttrack.engine.bundle import BundleMeta
from parttrack.engine.types import PartOutput


@runtime_checkable
class Runtime(Protocol):
    """Runs the bundle's inference graph.

    Attributes:
        name: backend name: ``"onnxruntime"``, ``"tensorrt"`` or ``"torch"``.
        device: where it runs, e.g. ``"cpu"``, ``"cuda:0"``.
        meta: the bundle's metadata (K, input size, part names...).
    """

    name: str
    device: str
    meta: BundleMeta

    def infer(self, images: np.ndarray) -> PartOutput:
        """Run a batch.

        Args:
            images: ``(N, S, S, 3)`` uint8 RGB, letterboxed model inputs
                (:class:`engine.preprocess.Letterbox`), S = ``meta.input_size``.

        Returns:
            :class:`engine.types.PartOutput` with N entries.
        """
        ...

    def describe(self) -> str:
        """One line for the terminal, e.g. ``onnxruntime 1.23 (CPUExecutionProvider, 2 threads)``."""
        ...


def check_images(images: np.ndarray, size: int) -> np.ndarray:
    """Validate a model-input batch and return it C-contiguous.

    Args:
        images: ``(N, S, S, 3)`` uint8 RGB, ``S = size``.

    Raises:
        ValueError: wrong dtype or shape (the message gives expected and actual).
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(f"images must be a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.shape[0] < 1:
        raise ValueError(f"images must be (N, {size}, {size}, 3) with N >= 1, got {images.shape}")
    return np.ascontiguousarray(images)
