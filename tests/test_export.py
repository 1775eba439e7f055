"""Bundle export round trip: export → load → same outputs in ONNX Runtime and torch."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from parttrack.engine.bundle import load_bundle
from parttrack.engine.errors import BundleError
from parttrack.engine.model import load_network
from parttrack.tracker.cli import main
from tests.bundle_factory import make_tiny_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("b") / "tiny", num_parts=3, input_size=32)


def test_bundle_round_trip(bundle):
    b = load_bundle(bundle)
    assert (b.meta.num_parts, b.meta.input_size, b.meta.mask_size) == (3, 32, (8, 8))
    net = load_network(b.config_path, b.weights_path)
    img = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)  # batch 5 ≠ export's 2
    sess = ort.InferenceSession(str(b.onnx_path), providers=["CPUExecutionProvider"])
    masks, tfs = sess.run(["masks", "transforms"], {"image": img})
    with torch.no_grad():
        tm, tt = net(torch.from_numpy(img))
    assert masks.shape == (5, 4, 8, 8) and tfs.shape == (5, 3, 6)
    assert masks.dtype == np.float32 and tfs.dtype == np.float32
    np.testing.assert_allclose(masks, tm.numpy(), atol=1e-4)
    np.testing.assert_allclose(tfs, tt.numpy(), atol=1e-4)
    np.testing.assert_allclose(masks.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.hypot(tfs[..., 2], tfs[..., 3]), 1.0, atol=1e-4)


def test_weights_have_no_pickle(bundle):
    with np.load(bundle / "weights.npz", allow_pickle=False) as data:
        assert all(data[k].dtype == np.float32 for k in data.files)


def test_mismatched_weights_raise(bundle, tmp_path):
    np.savez(tmp_path / "w.npz", foo=np.zeros(3, np.float32))
    with pytest.raises(BundleError):
        load_network(bundle / "config.json", tmp_path / "w.npz")


def test_label_renames_parts(bundle, tmp_path, capsys):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    assert main(["label", str(copy), "--name", "2=left arm", "--color", "1=ff8800"]) == 0
    meta = load_bundle(copy).meta
    assert meta.part_names == ("part1", "left arm", "part3")
    assert meta.part_colors[0] == (255, 136, 0)
    assert main(["label", str(copy), "--name", "9=x"]) == 2
    assert "left arm" in capsys.readouterr().out
