"""Real, tiny model bundles for tests that need one (random-initialised network, exported).

``make_tiny_bundle(tmp_path / "b")`` takes a few seconds (ONNX export); the result is a valid
bundle for every runtime: ``model.onnx`` with metadata, ``weights.npz``, ``config.json``,
``NOTES.md``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from parttrack.engine.bundle import BundleMeta
from parttrack.engine.export import export_bundle
from parttrack.engine.model import NetConfig, build_network


def make_tiny_bundle(path: str | Path, num_parts: int = 4, input_size: int = 32, seed: int = 0) -> Path:
    """Export a random-initialised small :class:`engine.model.PartNet` to ``path``.

    Args:
        path: bundle folder to create.
        num_parts: K.
        input_size: S (multiple of 16); masks are ``S/4 × S/4``.
        seed: torch seed for the weights (same seed → same bundle outputs).

    Returns:
        The bundle folder.
    """
    torch.manual_seed(seed)
    cfg = NetConfig(num_parts=num_parts, input_size=input_size, latent_stride=4, widths=(8, 8, 16, 16),
                    latent_channels=4, decoder_hidden=8, head_hidden=8)
    net = build_network(cfg)
    meta = BundleMeta(num_parts=num_parts, input_size=input_size, mask_size=cfg.mask_size,
                      extra={"purpose": "test fixture (random weights)"})
    return export_bundle(net, {"network": cfg.to_dict(), "training": None}, meta, path,
                         notes="# Test bundle\n\nRandom weights, made by tests/bundle_factory.py.\n")
