"""Hand-built ONNX inference graphs (onnx.helper) with a numpy reference, for runtime tests
that must not depend on the torch network.

The graph has the bundle contract of :mod:`engine.bundle`: input ``image`` (N, S, S, 3)
uint8 RGB (N dynamic) → ``masks`` (N, K+1, S/2, S/2) float32 softmax over slots and
``transforms`` (N, K, 6) float32. Layers: x = image/255 (NCHW); f = relu(conv3x3(x) + b1)
(C channels); masks = softmax_k(conv1x1(avgpool2(f)) + b2); transforms = tanh(W3 · mean_hw(f)
+ b3) reshaped to (K, 6).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from parttrack.engine.bundle import BundleMeta, write_onnx_meta

HIDDEN = 8


def graph_weights(num_parts: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights of the test graph (fixed seed)."""
    rng = np.random.default_rng(seed)
    k = num_parts
    return {
        "w1": rng.normal(0, 0.5, (HIDDEN, 3, 3, 3)).astype(np.float32),
        "b1": rng.normal(0, 0.1, (HIDDEN,)).astype(np.float32),
        "w2": rng.normal(0, 0.8, (k + 1, HIDDEN, 1, 1)).astype(np.float32),
        "b2": rng.normal(0, 0.1, (k + 1,)).astype(np.float32),
        "w3": rng.normal(0, 0.8, (HIDDEN, 6 * k)).astype(np.float32),
        "b3": rng.normal(0, 0.1, (6 * k,)).astype(np.float32),
    }


def make_graph(num_parts: int = 4, input_size: int = 16, seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """The test inference graph as an ONNX model (no parttrack metadata yet)."""
    k, s = num_parts, input_size
    w = graph_weights(k, seed)
    inits = [numpy_helper.from_array(v, name) for name, v in w.items()]
    inits += [numpy_helper.from_array(np.array(1 / 255.0, np.float32), "inv255"),
              numpy_helper.from_array(np.array([-1, k, 6], np.int64), "tshape")]
    nodes = [
        helper.make_node("Cast", ["image"], ["imgf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["imgf", "inv255"], ["x_nhwc"]),
        helper.make_node("Transpose", ["x_nhwc"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["f"]),
        helper.make_node("AveragePool", ["f"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w2", "b2"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["logits"], ["masks"], axis=1),
        helper.make_node("ReduceMean", ["f"], ["g4"], axes=[2, 3], keepdims=0) if opset < 18 else
        helper.make_node("ReduceMean", ["f", "axes"], ["g4"], keepdims=0),
        helper.make_node("Gemm", ["g4", "w3", "b3"], ["t_flat"]),
        helper.make_node("Tanh", ["t_flat"], ["t_act"]),
        helper.make_node("Reshape", ["t_act", "tshape"], ["transforms"]),
    ]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    graph = helper.make_graph(
        nodes, "parttrack_test_graph",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", s, s, 3])],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT, ["N", k + 1, s // 2, s // 2]),
         helper.make_tensor_value_info("transforms", TensorProto.FLOAT, ["N", k, 6])],
        initializer=inits,
    )
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type.lower()}_{i}"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(images: np.ndarray, num_parts: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """numpy evaluation of :func:`make_graph` (float64 internally): (masks, transforms)."""
    w = {n: v.astype(np.float64) for n, v in graph_weights(num_parts, seed).items()}
    x = images.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # (N,3,H,W,3,3)
    f = np.einsum("nchwij,ocij->nohw", win, w["w1"]) + w["b1"][None, :, None, None]
    f = np.maximum(f, 0)
    p = f.reshape(n, HIDDEN, h // 2, 2, wd // 2, 2).mean(axis=(3, 5))
    logits = np.einsum("nchw,oc->nohw", p, w["w2"][:, :, 0, 0]) + w["b2"][None, :, None, None]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    masks = e / e.sum(axis=1, keepdims=True)
    t = np.tanh(f.mean(axis=(2, 3)) @ w["w3"] + w["b3"]).reshape(n, num_parts, 6)
    return masks.astype(np.float32), t.astype(np.float32)


def write_graph_bundle(path: Path, num_parts: int = 4, input_size: int = 16, seed: int = 0,
                       meta: BundleMeta | None = None) -> Path:
    """A bundle folder (model.onnx with metadata, placeholder weights.npz and config.json
    that mark it as a test graph — there is no torch network behind it)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(make_graph(num_parts, input_size, seed), str(path / "model.onnx"))
    meta = meta or BundleMeta(num_parts=num_parts, input_size=input_size,
                              mask_size=(input_size // 2, input_size // 2))
    write_onnx_meta(path / "model.onnx", meta)
    np.savez(path / "weights.npz", **graph_weights(num_parts, seed))
    (path / "config.json").write_text(json.dumps({"test_graph": True, "num_parts": num_parts,
                                                  "input_size": input_size, "seed": seed}))
    return path


def set_raw_metadata(onnx_path: Path, value: str | None) -> None:
    """Overwrite (or with None, remove) the ``parttrack`` metadata entry without any checks —
    for making broken files in tests."""
    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key != "parttrack"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "parttrack", value
    onnx.save(model, str(onnx_path))
