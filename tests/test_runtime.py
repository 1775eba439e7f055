"""Runtimes: one shared agreement test over every backend, the factory's choices and errors,
bundle rejection, int8, and the pure-Python parts of the TensorRT backend (with fakes)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from parttrack.engine.bundle import BundleMeta, load_bundle
from parttrack.engine.errors import BackendUnavailable, BundleError, ParttrackError
from parttrack.engine.runtime import BACKENDS, Runtime, backend_status, create_runtime, devices, parse_device
from parttrack.engine.runtime import tensorrt_backend as trtb
from parttrack.engine.runtime import tensorrt_build as trt_build
from parttrack.engine.runtime.files import INT8_FILE, onnx_fingerprint
from parttrack.engine.types import PartOutput
from tests.runtime_graphs import reference, set_raw_metadata, write_graph_bundle

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "trained" / "bbb" / "clip.mp4"

#: Largest |backend − torch| accepted, by the backend's precision: float32 engines differ only
#: by summation order; fp16 TensorRT engines by fp16 rounding through the network.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}


def _real_frames(size: int, count: int) -> np.ndarray:
    """``count`` letterboxed frames of the shipped Big Buck Bunny clip (noise if it is absent)."""
    from parttrack.engine.preprocess import Letterbox

    if not CLIP.is_file():
        return np.random.default_rng(7).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    import av

    frames = []
    with av.open(str(CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 20 == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    lb = Letterbox.fit(frames[0].shape[0], frames[0].shape[1], size)
    return np.stack([lb.apply(f) for f in frames])


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A real exported network (random weights, K=4, 32×32) with its torch weights."""
    pytest.importorskip("torch", reason="the torch reference needs the train extra")
    from tests.bundle_factory import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle", num_parts=4, input_size=32)


@pytest.fixture()
def graph_bundle(tmp_path) -> Path:
    """A hand-built ONNX graph bundle (no torch behind it), K=4, 16×16."""
    return write_graph_bundle(tmp_path / "graph", num_parts=4, input_size=16)


# -- the shared test: every backend agrees with the torch network ---------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_matches_torch_network(backend, tiny_bundle):
    reason = backend_status()[backend]
    if reason is not None:
        pytest.skip(f"{backend} unavailable here: {reason}")
    import torch

    from parttrack.engine.model import load_network

    bundle = load_bundle(tiny_bundle)
    net = load_network(bundle.config_path, bundle.weights_path)
    rt = create_runtime(bundle, backend=backend)
    assert isinstance(rt, Runtime) and rt.name == backend and rt.meta.num_parts == 4
    tol = TOLERANCE[getattr(rt, "precision", "fp32")]
    random = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    for images in (random, _real_frames(32, 5), random[:1]):  # random + real frames, batch 3, 5, 1
        out = rt.infer(images)
        with torch.no_grad():
            masks, transforms = net(torch.from_numpy(images))
        assert isinstance(out, PartOutput) and len(out) == len(images)
        assert out.masks.shape == tuple(masks.shape) and out.transforms.shape == (len(images), 4, 6)
        np.testing.assert_allclose(out.masks, masks.numpy(), atol=tol, rtol=0)
        np.testing.assert_allclose(out.transforms, transforms.numpy(), atol=tol, rtol=0)
        np.testing.assert_allclose(out.masks.sum(1), 1.0, atol=max(tol, 1e-5))


def test_onnxruntime_matches_numpy_on_hand_built_graph(graph_bundle):
    rt = create_runtime(graph_bundle, backend="onnxruntime", device="cpu")
    for n in (1, 4):  # dynamic batch
        images = np.random.default_rng(n).integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        out = rt.infer(images)
        masks, transforms = reference(images, 4)
        np.testing.assert_allclose(out.masks, masks, atol=1e-5)
        np.testing.assert_allclose(out.transforms, transforms, atol=1e-5)
    assert rt.device == "cpu" and "CPUExecutionProvider" in rt.describe()


def test_infer_rejects_wrong_images(graph_bundle):
    rt = create_runtime(graph_bundle, backend="onnxruntime")
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\).*\(2, 16, 8, 3\)"):
        rt.infer(np.zeros((2, 16, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        rt.infer(np.zeros((1, 16, 16, 3), np.float32))


# -- bundles the runtimes must refuse ----------------------------------------------------------
def test_onnx_without_metadata_is_rejected(graph_bundle):
    set_raw_metadata(graph_bundle / "model.onnx", None)
    with pytest.raises(BundleError, match="no parttrack metadata") as err:
        create_runtime(graph_bundle, backend="onnxruntime")
    assert "export" in err.value.hint


def test_onnx_with_mismatched_k_is_rejected(graph_bundle):
    wrong = BundleMeta(num_parts=5, input_size=16, mask_size=(8, 8))
    set_raw_metadata(graph_bundle / "model.onnx", wrong.to_json())
    with pytest.raises(BundleError, match=r"K=5.*4 transforms"):
        create_runtime(graph_bundle, backend="onnxruntime")


def test_onnx_with_wrong_input_size_is_rejected(graph_bundle):
    set_raw_metadata(graph_bundle / "model.onnx", BundleMeta(num_parts=4, input_size=32, mask_size=(8, 8)).to_json())
    with pytest.raises(BundleError, match="input size 32"):
        create_runtime(graph_bundle)


# -- the factory ---------------------------------------------------------------------------------
def test_unknown_backend_device_option(graph_bundle):
    with pytest.raises(ParttrackError, match="unknown backend 'openvino'"):
        create_runtime(graph_bundle, backend="openvino")
    with pytest.raises(ParttrackError, match="unknown device 'tpu'"):
        create_runtime(graph_bundle, device="tpu")
    with pytest.raises(ParttrackError, match="unknown option.*colour") as err:
        create_runtime(graph_bundle, backend="onnxruntime", colour=True)
    assert "spin" in err.value.hint
    with pytest.raises(ParttrackError, match="precision 'fp8'"):
        create_runtime(graph_bundle, backend="onnxruntime", precision="fp8")


def test_available_backends_in_auto_order():
    from parttrack.engine.runtime import available_backends

    names = available_backends()
    assert "onnxruntime" in names and list(names) == [b for b in BACKENDS if b in names]
    assert set(names) == {b for b, reason in backend_status().items() if reason is None}


def test_parse_device():
    assert parse_device(None) == (None, 0)
    assert parse_device("CPU") == ("cpu", 0)
    assert parse_device("cuda") == ("cuda", 0)
    assert parse_device("cuda:3") == ("cuda", 3)


@pytest.mark.parametrize("backend,extra", [("tensorrt", "parttrack[tensorrt]"), ("torch", "parttrack[train]")])
def test_unavailable_backend_names_the_extra(backend, extra, graph_bundle, monkeypatch):
    import parttrack.engine.runtime as rt_mod

    monkeypatch.setattr(rt_mod, "_has_module", lambda name: name == "onnxruntime")
    with pytest.raises(BackendUnavailable, match=f"{backend} backend is not available") as err:
        create_runtime(graph_bundle, backend=backend)
    assert extra in err.value.hint


def test_auto_choice(graph_bundle, monkeypatch):
    import parttrack.engine.runtime as rt_mod

    monkeypatch.setattr(rt_mod, "backend_status", lambda: {"tensorrt": "no GPU", "onnxruntime": None, "torch": None})
    rt = create_runtime(graph_bundle)  # auto
    assert rt.name == "onnxruntime"  # torch is never picked automatically
    monkeypatch.setattr(rt_mod, "backend_status", lambda: {"tensorrt": None, "onnxruntime": None, "torch": None})
    assert rt_mod._choose("auto", None) == "tensorrt"
    assert rt_mod._choose("auto", "cpu") == "onnxruntime"


def test_auto_falls_back_when_tensorrt_cannot_start(graph_bundle, monkeypatch, capsys):
    import parttrack.engine.runtime as rt_mod

    monkeypatch.setattr(rt_mod, "backend_status", lambda: {"tensorrt": None, "onnxruntime": None, "torch": None})
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt([]))
    monkeypatch.setattr(trt_build, "cuda_gpus", lambda: ())
    rt = create_runtime(graph_bundle, announce=True)
    assert rt.name == "onnxruntime"
    assert "[tensorrt skipped: the tensorrt backend needs an NVIDIA GPU" in capsys.readouterr().err
    with pytest.raises(BackendUnavailable):  # asked for by name: no fallback
        create_runtime(graph_bundle, backend="tensorrt")


def test_ort_cuda_without_provider_is_unavailable(graph_bundle):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(BackendUnavailable, match="no CUDA provider") as err:
        create_runtime(graph_bundle, backend="onnxruntime", device="cuda")
    assert "onnxruntime-gpu" in err.value.hint


def test_announce_prints_backend_and_device(graph_bundle, capsys):
    create_runtime(graph_bundle, backend="onnxruntime", announce=True)
    err = capsys.readouterr().err
    assert "runtime: onnxruntime" in err and "on cpu" in err


def test_threads_split_between_workers(graph_bundle):
    assert devices.threads_per_worker(1, cpus=2) == 2
    assert devices.threads_per_worker(2, cpus=2) == 1
    assert devices.threads_per_worker(3, cpus=2) == 1
    assert devices.threads_per_worker(2, cpus=16) == 8
    with pytest.raises(ValueError):
        devices.threads_per_worker(0)
    rt = create_runtime(graph_bundle, backend="onnxruntime", workers=devices.usable_cpus())
    assert rt.threads == 1 and "1 thread," in rt.describe()
    assert create_runtime(graph_bundle, backend="onnxruntime", threads=3).threads == 3


def test_inference_does_not_import_torch(graph_bundle):
    code = (
        "import sys, numpy as np\n"
        "from engine.runtime import create_runtime, available_backends\n"
        f"rt = create_runtime({str(graph_bundle)!r}, backend='auto', device='cpu')\n"
        "out = rt.infer(np.zeros((2, 16, 16, 3), np.uint8))\n"
        "available_backends()\n"
        "import engine.bench, engine.quantize, tracker.cli.bench, tracker.cli.compile\n"
        "print(rt.name, out.masks.shape, 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["onnxruntime", "(2,", "5,", "8,", "8)", "False"]


# -- int8 ----------------------------------------------------------------------------------------
def _calibration_frames(n: int = 16, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size // 4, size // 4, 3)).astype(np.uint8).repeat(4, 1).repeat(4, 2)


def test_int8_model_runs_close_to_fp32_and_only_when_asked(graph_bundle):
    from parttrack.engine.quantize import build_int8

    with pytest.raises(BundleError, match=INT8_FILE) as err:
        create_runtime(graph_bundle, backend="onnxruntime", precision="int8")
    assert "compile --int8" in err.value.hint
    # this graph's only weighted layers feed the outputs directly, so quantise them too
    path, cost = build_int8(graph_bundle, _calibration_frames(), exclude_outputs=False)
    assert path == graph_bundle / INT8_FILE
    assert create_runtime(graph_bundle, backend="onnxruntime").precision == "fp32"  # never silently int8
    q = create_runtime(graph_bundle, backend="onnxruntime", precision="int8")
    assert "int8" in q.describe() and q.meta.num_parts == 4
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the hand-built graph's accuracy cost, on held-out frames (measured 0.996 / 0.017 / 0.06)
    assert cost["label_agreement"] > 0.95 and cost["mask_max_abs"] < 0.1 and cost["transform_max_abs"] < 0.2


def test_int8_keeps_the_output_tail_in_float(graph_bundle):
    import onnx

    from parttrack.engine.quantize import _output_tail, quantize_bundle

    model = onnx.load(str(graph_bundle / "model.onnx"))
    tail = _output_tail(model)
    assert tail == ["conv_6", "gemm_9", "reshape_11", "softmax_7", "tanh_10"]  # heads and what follows
    path = quantize_bundle(graph_bundle, _calibration_frames())
    model = onnx.load(str(path))
    ops = {n.name: n for n in model.graph.node}
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert ops["conv_3"].input[1] == "w1_DequantizeLinear_Output"  # the body is quantised
    assert ops["conv_6"].input[1:] == ["w2", "b2"] and {"w2", "b2", "w3", "b3"} <= floats  # the heads are not
    assert ops["softmax_7"].input == ["logits"] and ops["softmax_7"].output == ["masks"]


def test_compare_outputs_metrics():
    from parttrack.engine.quantize import compare_outputs

    masks = np.zeros((1, 3, 2, 2), np.float32)
    masks[0, 0], masks[0, 1], masks[0, 2] = 0.8, 0.1, 0.1
    masks[0, :, 0, 0] = [0.33, 0.34, 0.33]  # a near-tie pixel
    other = masks.copy()
    other[0, :, 0, 0] = [0.34, 0.33, 0.33]  # flips the near-tie only
    th = np.radians(10.0)
    ref_t = np.array([[[0.2, 0.1, 0.0, 1.0, 0.0, 0.0]]], np.float32)
    new_t = np.array([[[0.22, 0.1, np.sin(th), np.cos(th), 0.1, 0.0]]], np.float32)
    c = compare_outputs(PartOutput(masks, np.repeat(ref_t, 2, 1)), PartOutput(other, np.repeat(new_t, 2, 1)), 64)
    assert c["label_agreement"] == pytest.approx(0.75) and c["label_agreement_confident"] == 1.0
    assert c["mask_max_abs"] == pytest.approx(0.01, abs=1e-6)
    assert c["centre_mean_px"] == pytest.approx(0.1 * 64 / 2) and c["angle_max_deg"] == pytest.approx(10.0, abs=1e-4)
    assert c["scale_mean_rel"] == pytest.approx(0.05, abs=1e-6)  # (0.1 + 0) / 2


def test_stale_int8_model_is_refused(graph_bundle, tmp_path):
    from parttrack.engine.quantize import quantize_bundle

    quantize_bundle(graph_bundle, _calibration_frames())
    # relabelling keeps it valid (metadata is not part of the fingerprint) ...
    from parttrack.engine.bundle import read_onnx_meta, write_onnx_meta

    write_onnx_meta(graph_bundle / "model.onnx", read_onnx_meta(graph_bundle / "model.onnx").with_names({1: "head"}))
    q = create_runtime(graph_bundle, backend="onnxruntime", precision="int8")
    assert q.meta.part_names[0] == "head"  # names come from model.onnx, the source of truth
    # ... re-exporting other weights does not
    other = write_graph_bundle(tmp_path / "other", num_parts=4, input_size=16, seed=1)
    (graph_bundle / "model.onnx").write_bytes((other / "model.onnx").read_bytes())
    with pytest.raises(BundleError, match="different model.onnx"):
        create_runtime(graph_bundle, backend="onnxruntime", precision="int8")


# -- TensorRT: pure-Python parts ---------------------------------------------------------------
def test_fast_fp16_and_precision_choice():
    assert trtb.has_fast_fp16((9, 0)) and trtb.has_fast_fp16((7, 5)) and trtb.has_fast_fp16((6, 0))
    assert not trtb.has_fast_fp16((6, 1)) and not trtb.has_fast_fp16((5, 2))
    assert trtb.choose_precision(None, (8, 6)) == "fp16"
    assert trtb.choose_precision(None, (6, 1)) == "fp32"
    assert trtb.choose_precision("fp32", (9, 0)) == "fp32"
    with pytest.raises(ParttrackError, match="int8"):
        trtb.choose_precision("int8", (9, 0))


def test_profile_shapes():
    assert trtb.profile_shapes(128, 32) == ((1, 128, 128, 3), (1, 128, 128, 3), (32, 128, 128, 3))
    assert trtb.profile_shapes(64, 16, 8)[1] == (8, 64, 64, 3)
    for bad in ((0, 1), (4, 8)):
        with pytest.raises(ParttrackError, match="opt_batch"):
            trtb.profile_shapes(64, *bad)


def test_engine_cache_key(graph_bundle, tmp_path):
    bundle = load_bundle(graph_bundle)
    h100 = devices.GpuInfo(0, "NVIDIA H100", (9, 0))
    plan = trtb.plan_engine(bundle, cache=tmp_path, trt_version="10.13.0", gpu=h100)
    assert plan.precision == "fp16" and plan.engine_path.parent == tmp_path
    name = plan.engine_path.name
    assert name.startswith(onnx_fingerprint(bundle.onnx_path)[:16]) and "trt10.13.0" in name and "sm90" in name
    assert plan.timing_cache_path.name == "timing-trt10.13.0-sm90.cache"
    other = {trtb.plan_engine(bundle, cache=tmp_path, trt_version=v, gpu=g, precision=p, max_batch=b).engine_path
             for v, g, p, b in [("11.0.0", h100, None, 32), ("10.13.0", devices.GpuInfo(0, "RTX", (8, 6)), None, 32),
                                ("10.13.0", h100, "fp32", 32), ("10.13.0", h100, None, 8)]}
    assert plan.engine_path not in other and len(other) == 4
    # relabelling parts does not invalidate the engine; a different graph does
    from parttrack.engine.bundle import write_onnx_meta

    write_onnx_meta(bundle.onnx_path, bundle.meta.with_names({2: "arm"}))
    assert trtb.plan_engine(load_bundle(graph_bundle), cache=tmp_path, trt_version="10.13.0",
                            gpu=h100).engine_path == plan.engine_path
    other_graph = write_graph_bundle(tmp_path / "g2", seed=5)
    assert trtb.plan_engine(load_bundle(other_graph), cache=tmp_path, trt_version="10.13.0",
                            gpu=h100).engine_path != plan.engine_path


def test_default_cache_dir_is_outside_the_bundle(monkeypatch, tmp_path):
    from parttrack.engine.runtime.files import cache_dir

    monkeypatch.delenv("PARTTRACK_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "parttrack"
    monkeypatch.setenv("PARTTRACK_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


@pytest.mark.parametrize("which", ["graph_bundle", "tiny_bundle"])
def test_fp16_onnx_conversion_keeps_io_types_and_accuracy(which, request):
    import onnx
    import onnxruntime as ort

    path = request.getfixturevalue(which) / "model.onnx"
    fp32 = onnx.load(str(path))
    model = trtb.fp16_onnx(fp32)
    onnx.checker.check_model(model)  # SSA and topological order (the U-Net needed repairs)
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io == {"image": onnx.TensorProto.UINT8, "masks": onnx.TensorProto.FLOAT,
                  "transforms": onnx.TensorProto.FLOAT}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    s = fp32.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    images = _real_frames(s, 3)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            ["masks", "transforms"], {"image": images})

    for half, full in zip(run(model), run(fp32)):
        np.testing.assert_allclose(half, full, atol=TOLERANCE["fp16"])


def test_topological_sort_repairs_order():
    import onnx

    from tests.runtime_graphs import make_graph

    model = make_graph()
    ref = [n.name for n in model.graph.node]
    shuffled = list(reversed(model.graph.node))
    del model.graph.node[:]
    model.graph.node.extend(shuffled)
    trt_build._topological_sort(model.graph)
    onnx.checker.check_model(model)
    assert [n.name for n in model.graph.node][:3] == ref[:3]
    model.graph.node[0].input[0] = "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        trt_build._topological_sort(model.graph)


class _FakeTRT(types.SimpleNamespace):
    """Records the builder calls :func:`build_engine` makes (TensorRT 10 Python API names)."""


def _fake_tensorrt(calls: list, parse_ok: bool = True, strongly_typed: bool = True):
    class Flag:
        STRONGLY_TYPED = 2

    class Severity:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    ILogger = type("ILogger", (), {"Severity": Severity, "__init__": lambda self: None})

    class Timing:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return memoryview(b"timing:" + self.data)

    class Config:
        def set_memory_pool_limit(self, pool, n):
            calls.append(("pool", pool, n))

        def add_optimization_profile(self, p):
            calls.append(("profile", p.shapes))

        def create_timing_cache(self, data):
            return Timing(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            calls.append(("timing", cache.data, ignore_mismatch))
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("network", flags))
            return "network"

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return memoryview(b"ENGINE")

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            import onnx

            model = onnx.load_from_string(data)
            calls.append(("parse", {t.data_type for t in model.graph.initializer}))
            return parse_ok

        def get_error(self, i):
            return "Unsupported op Foo"

    return _FakeTRT(__version__="10.99.0", Builder=Builder, OnnxParser=OnnxParser, ILogger=ILogger,
                    NetworkDefinitionCreationFlag=Flag if strongly_typed else types.SimpleNamespace(),
                    MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"))


def test_build_engine_with_fake_tensorrt(graph_bundle, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(calls))
    bundle = load_bundle(graph_bundle)
    plan = trtb.plan_engine(bundle, cache=tmp_path / "engines", max_batch=16, gpu=devices.GpuInfo(0, "X", (8, 9)))
    assert plan.trt_version == "10.99.0" and plan.precision == "fp16"
    path = trtb.build_engine(plan)
    assert path.read_bytes() == b"ENGINE" and path.parent == tmp_path / "engines"
    assert ("network", 1 << 2) in calls  # strongly typed
    parsed = next(c for c in calls if c[0] == "parse")[1]
    assert 10 in parsed  # float16 initializers: the graph was converted before parsing
    assert ("profile", ("image", (1, 16, 16, 3), (1, 16, 16, 3), (16, 16, 16, 3))) in calls
    assert ("timing", b"", False) in calls
    assert plan.timing_cache_path.read_bytes() == b"timing:"
    # a second build starts from the saved timing cache
    calls.clear()
    trtb.build_engine(plan)
    assert ("timing", b"timing:", False) in calls
    # TensorRT 11 without the flag: default network (always strongly typed)
    calls.clear()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(calls, strongly_typed=False))
    trtb.build_engine(trtb.plan_engine(bundle, cache=tmp_path / "e2", precision="fp32",
                                       gpu=devices.GpuInfo(0, "X", (8, 9))))
    assert ("network", 0) in calls and next(c for c in calls if c[0] == "parse")[1] == {1, 7}


def test_build_engine_parse_error_is_clear(graph_bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt([], parse_ok=False))
    plan = trtb.plan_engine(load_bundle(graph_bundle), cache=tmp_path, gpu=devices.GpuInfo(0, "X", (8, 9)))
    with pytest.raises(BundleError, match="cannot parse.*Unsupported op Foo"):
        trtb.build_engine(plan)
    assert not plan.engine_path.exists()


def test_tensorrt_without_gpu_is_unavailable(graph_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt([]))
    monkeypatch.setattr(trt_build, "cuda_gpus", lambda: ())
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU"):
        trtb.TensorRTBackend(load_bundle(graph_bundle))
    with pytest.raises(BackendUnavailable, match="GPUs only"):
        trtb.TensorRTBackend(load_bundle(graph_bundle), device_kind="cpu")


def test_machine_line_names_cpu_and_cores():
    line = devices.machine_line()
    assert devices.cpu_model() in line and f"{devices.usable_cpus()} cores" in line
    assert ("no GPU" in line) == (devices.cuda_gpus() == ())
    json.dumps(devices.cpu_features())
