"""Shared test set-up: headless Qt, and the repository root on sys.path for ``tests.*``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    """Import torch's ONNX exporter (torch._dynamo, onnxscript) once, before any test starts a
    thread or a process pool. Imported lazily by the first ONNX export inside a test, it once
    crashed the whole run with a segmentation fault in a clean-clone CI (1 of 4 runs), after
    earlier tests had left worker threads behind; imported here, nothing else is running."""
    try:
        import torch._dynamo  # noqa: F401
        from torch.onnx._internal.exporter import _core  # noqa: F401
    except ImportError:     # the inference-only install: no torch, no export tests
        pass
