"""Write a model bundle folder (see :mod:`engine.bundle` for the layout).

Plain functions: :func:`export_onnx` writes the inference graph of a :class:`engine.model.PartNet`
(input ``image`` (N, S, S, 3) uint8, outputs ``masks`` and ``transforms``, dynamic batch, one file
without external data), :func:`export_bundle` writes ONNX + metadata + ``weights.npz`` +
``config.json`` + ``NOTES.md`` and checks ONNX Runtime against torch on a random batch.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from parttrack.engine.bundle import CONFIG_FILE, NOTES_FILE, ONNX_FILE, WEIGHTS_FILE, BundleMeta, write_onnx_meta
from parttrack.engine.errors import OutputError
from parttrack.engine.model import PartNet, count_macs, state_dict_numpy

#: Largest |ORT − torch| accepted by :func:`check_onnx` (masks and transforms, float32).
ONNX_TOLERANCE = 1e-4


def export_onnx(net: PartNet, path: str | Path, opset: int = 18) -> Path:
    """Export ``net.forward`` to ``path`` (single file, dynamic batch dimension).

    Uses the dynamo exporter of torch ≥ 2.9 (needs ``onnxscript``); the network is put in eval
    mode and copied to the CPU first.
    """
    path = Path(path)
    net = net.eval().cpu()
    s = net.config.input_size
    example = (torch.zeros(2, s, s, 3, dtype=torch.uint8),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter logs one warning per missing torchvision op; this network uses none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, example, str(path), input_names=["image"], output_names=["masks", "transforms"],
                          dynamic_shapes={"image": {0: batch}}, external_data=False, opset_version=opset,
                          dynamo=True, verbose=False)
    return path


def check_onnx(net: PartNet, onnx_path: str | Path, batch: int = 2, seed: int = 0) -> float:
    """Max |ORT − torch| over both outputs on a random uint8 batch (CPU, float32).

    Raises:
        AssertionError: if the difference exceeds :data:`ONNX_TOLERANCE`.
    """
    import onnxruntime as ort

    s = net.config.input_size
    img = np.random.default_rng(seed).integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    masks, tfs = sess.run(["masks", "transforms"], {"image": img})
    with torch.no_grad():
        tm, tt = net.eval()(torch.from_numpy(img))
    diff = max(float(np.abs(masks - tm.numpy()).max()), float(np.abs(tfs - tt.numpy()).max()))
    if diff > ONNX_TOLERANCE:
        raise AssertionError(f"ONNX Runtime and torch disagree by {diff:.2e} (> {ONNX_TOLERANCE})")
    return diff


def export_bundle(net: PartNet, config: dict, meta: BundleMeta, out_dir: str | Path, notes: str = "") -> Path:
    """Write a complete bundle folder.

    Args:
        net: the trained network (any mode/device; exported on CPU in eval mode).
        config: the full configuration (must contain ``network``, the :class:`NetConfig` dict);
            written to ``config.json``.
        meta: metadata for the ONNX file. ``num_parts``, ``input_size`` and ``mask_size`` are
            overwritten from the network; ``extra`` gains ``mmac_per_frame``, ``parameters``
            and ``onnx_max_abs_diff``.
        out_dir: bundle folder (created; existing bundle files are replaced).
        notes: Markdown text for ``NOTES.md`` (training record, measured quality).

    Returns:
        The bundle folder.

    Raises:
        OutputError: the folder cannot be created or written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the bundle folder {out} ({exc.strerror})",
                          "choose a writable output folder with -o") from None
    net = net.eval().cpu()
    cfg = net.config
    params = int(sum(p.numel() for p in net.parameters()))
    extra = dict(meta.extra)
    extra.update(mmac_per_frame=round(count_macs(cfg) / 1e6, 2), parameters=params)
    meta = replace(meta, num_parts=cfg.num_parts, input_size=cfg.input_size, mask_size=cfg.mask_size,
                   normalisation={"scale": 2 / 255.0, "mean": [0.5] * 3, "std": [0.5] * 3,
                                  "note": "graph computes x*2/255-1 from uint8 RGB"},
                   extra=extra)
    try:
        onnx_path = export_onnx(net, out / ONNX_FILE)
        extra["onnx_max_abs_diff"] = check_onnx(net, onnx_path)
        meta = replace(meta, extra=extra)
        write_onnx_meta(onnx_path, meta)
        np.savez(out / WEIGHTS_FILE, **state_dict_numpy(net))
        full = dict(config)
        full["network"] = cfg.to_dict()
        (out / CONFIG_FILE).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
        (out / NOTES_FILE).write_text(notes if notes.endswith("\n") else notes + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write the bundle into {out} ({exc.strerror or exc})",
                          "check free disk space and permissions") from None
    return out
