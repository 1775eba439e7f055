"""Files a runtime derives from a bundle: the graph fingerprint, the optional int8 model,
and the per-user cache folder for TensorRT engines (never inside the bundle)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Optional statically quantised (QDQ, int8) copy of ``model.onnx`` inside a bundle,
#: written by :func:`engine.quantize.quantize_bundle` (``parttrack compile --int8``).
INT8_FILE = "model.int8.onnx"
#: metadata_props key of the int8 file holding the fingerprint of the graph it was made from.
INT8_SOURCE_KEY = "parttrack.int8_source"


def onnx_fingerprint(model_or_path) -> str:
    """SHA-256 (hex) of an ONNX model's *graph* (nodes, weights, input/output types), not its
    metadata — so renaming parts with ``parttrack label`` keeps cached engines and the int8
    model valid, while re-exporting or retraining invalidates them.

    Args:
        model_or_path: an ``onnx.ModelProto`` or a path to a ``.onnx`` file.
    """
    import onnx

    model = model_or_path if isinstance(model_or_path, onnx.ModelProto) else onnx.load(str(model_or_path))
    digest = hashlib.sha256(model.graph.SerializeToString(deterministic=True))
    for opset in model.opset_import:
        digest.update(f"{opset.domain}:{opset.version};".encode())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Per-user cache for built engines: ``$PARTTRACK_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/parttrack``, else ``~/.cache/parttrack``. Not created here."""
    if os.environ.get("PARTTRACK_CACHE_DIR"):
        return Path(os.environ["PARTTRACK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "parttrack"
