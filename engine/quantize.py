"""Optional int8 copy of a bundle's model for CPUs with VNNI (static QDQ quantisation).

:func:`quantize_bundle` writes ``model.int8.onnx`` next to ``model.onnx`` with ONNX Runtime's
static quantiser (``onnxruntime.quantization.quantize_static``, QDQ format: uint8
activations, int8 per-channel weights — the U8S8 form ONNX Runtime runs with VNNI kernels on
x86), calibrated on real letterboxed frames. The int8 model is used only when asked for
(``--precision int8``); :func:`compare_outputs` measures what it costs against fp32.

The int8 file carries the bundle's metadata plus the fingerprint of the graph it was made
from (:data:`engine.runtime.files.INT8_SOURCE_KEY`), so a stale copy is refused after the
model is re-exported (``parttrack label`` renames keep it valid).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from parttrack.engine.bundle import METADATA_KEY, Bundle, load_bundle
from parttrack.engine.errors import InputError, OutputError
from parttrack.engine.runtime.files import INT8_FILE, INT8_SOURCE_KEY, onnx_fingerprint
from parttrack.engine.types import PartOutput

#: Calibration methods accepted by :func:`quantize_bundle` (onnxruntime CalibrationMethod).
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class _FrameReader:
    """onnxruntime CalibrationDataReader over (T, S, S, 3) uint8 frames, in batches."""

    def __init__(self, frames: np.ndarray, batch: int) -> None:
        self._batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
        self._i = 0

    def get_next(self):
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return {"image": np.ascontiguousarray(self._batches[self._i - 1])}

    def rewind(self) -> None:
        self._i = 0


def quantize_bundle(bundle: Bundle | str | Path, frames: np.ndarray, *, method: str = "minmax",
                    per_channel: bool = True, exclude_outputs: bool = True, batch: int = 8,
                    out_name: str = INT8_FILE) -> Path:
    """Write the int8 (QDQ) model of a bundle, calibrated on ``frames``.

    Args:
        bundle: the bundle (or its folder).
        frames: ``(T, S, S, 3)`` uint8 RGB letterboxed model inputs
            (:class:`engine.preprocess.Letterbox`), real footage of the kind the model will
            see; a few dozen frames suffice.
        method: activation-range calibration: ``minmax`` (default), ``entropy`` or
            ``percentile`` (99.999 %).
        per_channel: per-output-channel weight scales (more accurate, same speed).
        exclude_outputs: keep everything after the last weighted layers in float32, those
            layers included (mask logits, softmax over slots, transform head): they decide
            mask boundaries and poses, and cost little.
        batch: calibration batch size.
        out_name: file name inside the bundle.

    Returns:
        The written path (``<bundle>/model.int8.onnx``).

    Raises:
        InputError: frames of the wrong shape/dtype or fewer than 4.
        OutputError: the bundle folder is not writable.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    s = bundle.meta.input_size
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (s, s, 3):
        raise InputError(f"calibration frames must be (T, {s}, {s}, 3) uint8, got {frames.shape} {frames.dtype}")
    if len(frames) < 4:
        raise InputError(f"need at least 4 calibration frames, got {len(frames)}",
                         "pass a longer video to calibrate on")
    if method not in CALIBRATION_METHODS:
        raise InputError(f"unknown calibration method {method!r}", f"use one of {', '.join(CALIBRATION_METHODS)}")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    source = onnx.load(str(bundle.onnx_path))
    out = bundle.path / out_name
    with tempfile.TemporaryDirectory(prefix="parttrack-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(bundle.onnx_path), str(pre), skip_symbolic_shape=True)
        excluded = _output_tail(onnx.load(str(pre))) if exclude_outputs else []
        q_tmp = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre), str(q_tmp), _FrameReader(frames, batch), quant_format=QuantFormat.QDQ,
            per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded, calibrate_method=methods[method],
            extra_options={"CalibPercentile": 99.999} if method == "percentile" else None)
        model = onnx.load(str(q_tmp))
    del model.metadata_props[:]
    props = {p.key: p.value for p in source.metadata_props}
    for key, value in ((METADATA_KEY, props[METADATA_KEY]), (INT8_SOURCE_KEY, onnx_fingerprint(source))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        tmp_out = out.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp_out))
        tmp_out.replace(out)
    except OSError as exc:
        raise OutputError(f"cannot write {out} ({exc.strerror or exc})", "check the bundle folder's permissions") from None
    return out


def _output_tail(model) -> list[str]:
    """Names of the nodes between each graph output and the last weighted layers
    (Conv/Gemm/MatMul) before it, those layers included: the softmax over slots, the mask
    logits, the transform head and the mask-moment arithmetic stay float32."""
    producer = {o: n for n in model.graph.node for o in n.output}
    seen: set[str] = set()  # first output name of each visited node (node names may be empty)
    tail: set[str] = set()
    for out in model.graph.output:
        stack = [out.name]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.output[0] in seen:
                continue
            seen.add(node.output[0])
            if node.name:
                tail.add(node.name)
            if node.op_type not in ("Conv", "Gemm", "MatMul"):  # stop at the first weighted layer
                stack.extend(node.input)
    return sorted(tail)


def compare_outputs(reference: PartOutput, other: PartOutput, input_size: int) -> dict[str, float]:
    """How far ``other`` (e.g. int8) is from ``reference`` (fp32) on the same frames.

    Returns:
        ``mask_max_abs`` / ``mask_mean_abs`` (softmax probability), ``label_agreement``
        (fraction of mask pixels whose arg-max slot agrees), ``label_agreement_confident``
        (the same over pixels where the reference's two best slots differ by ≥ 0.1 — near-ties
        flip under any rounding and say little), ``centre_mean_px`` /
        ``centre_max_px`` (part centre ``t`` distance in model-input pixels),
        ``angle_mean_deg`` / ``angle_max_deg`` (rotation difference),
        ``scale_mean_rel`` (relative |Δs| of s_x, s_y), ``transform_max_abs`` (raw 6-tuple).
    """
    rm, om = reference.masks, other.masks
    rt, ot = reference.transforms.astype(np.float64), other.transforms.astype(np.float64)
    centre = np.linalg.norm(rt[..., 4:6] - ot[..., 4:6], axis=-1) * input_size / 2.0
    dang = np.degrees(np.abs(np.angle(np.exp(1j * (np.arctan2(rt[..., 2], rt[..., 3])
                                                    - np.arctan2(ot[..., 2], ot[..., 3]))))))
    scale = np.abs(rt[..., 0:2] - ot[..., 0:2]) / np.maximum(np.abs(rt[..., 0:2]), 1e-6)
    agree = rm.argmax(1) == om.argmax(1)
    top2 = np.sort(rm, axis=1)[:, -2:]
    confident = (top2[:, 1] - top2[:, 0]) >= 0.1
    return {
        "mask_max_abs": float(np.abs(rm - om).max()),
        "mask_mean_abs": float(np.abs(rm - om).mean()),
        "label_agreement": float(agree.mean()),
        "label_agreement_confident": float(agree[confident].mean()) if confident.any() else float("nan"),
        "centre_mean_px": float(centre.mean()),
        "centre_max_px": float(centre.max()),
        "angle_mean_deg": float(dang.mean()),
        "angle_max_deg": float(dang.max()),
        "scale_mean_rel": float(scale.mean()),
        "transform_max_abs": float(np.abs(rt - ot).max()),
    }


def build_int8(bundle: Bundle | str | Path, frames: np.ndarray, *, method: str = "minmax",
               per_channel: bool = True, exclude_outputs: bool = True) -> tuple[Path, dict[str, float]]:
    """Quantise on the even-indexed ``frames`` and measure the int8 model against fp32
    (:func:`compare_outputs`) on the odd-indexed ones (held out) — ``parttrack compile --int8``.

    Args:
        frames: ``(T, S, S, 3)`` uint8 letterboxed real frames, T ≥ 8.

    Returns:
        (path of ``model.int8.onnx``, accuracy-cost metrics).
    """
    from parttrack.engine.runtime import create_runtime

    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if len(frames) < 8:
        raise InputError(f"need at least 8 frames to calibrate and check int8, got {len(frames)}",
                         "pass a longer video")
    calib, held_out = frames[0::2], frames[1::2]
    path = quantize_bundle(bundle, calib, method=method, per_channel=per_channel, exclude_outputs=exclude_outputs)
    ref = create_runtime(bundle, backend="onnxruntime", device="cpu", precision="fp32", announce=False)
    q = create_runtime(bundle, backend="onnxruntime", device="cpu", precision="int8", announce=False)
    costs = [compare_outputs(ref.infer(held_out[i:i + 8]), q.infer(held_out[i:i + 8]), bundle.meta.input_size)
             for i in range(0, len(held_out), 8)]
    merged = {k: (max(c[k] for c in costs) if k.endswith("max_abs") or "_max_" in k
                  else float(np.nanmean([c[k] for c in costs]))) for k in costs[0]}
    return path, merged
