"""Bundle metadata and validation: every way a bundle can be broken gives a BundleError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from parttrack.engine.bundle import (
    CONFIG_FILE,
    FORMAT_VERSION,
    METADATA_KEY,
    BundleMeta,
    load_bundle,
    read_onnx_meta,
    trained_with_moving_camera,
    write_onnx_meta,
)
from parttrack.engine.errors import BundleError

ROOT = Path(__file__).resolve().parents[1]


def _graph_model(k: int, size: int = 16) -> onnx.ModelProto:
    """A minimal graph with the bundle's I/O signature (uniform masks, zero transforms)."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    masks = helper.make_tensor_value_info("masks", TensorProto.FLOAT, ["N", k + 1, 4, 4])
    transforms = helper.make_tensor_value_info("transforms", TensorProto.FLOAT, ["N", k, 6])
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Reshape", ["z", "col"], ["zc"]),
        helper.make_node("Add", ["zc", "mask_const"], ["masks"]),
        helper.make_node("Add", ["zc3", "tf_const"], ["transforms"]),
        helper.make_node("Reshape", ["z", "col3"], ["zc3"]),
    ]
    inits = [
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("col", TensorProto.INT64, [4], [-1, 1, 1, 1]),
        helper.make_tensor("col3", TensorProto.INT64, [3], [-1, 1, 1]),
        helper.make_tensor("mask_const", TensorProto.FLOAT, [k + 1, 4, 4], [1.0 / (k + 1)] * ((k + 1) * 16)),
        helper.make_tensor("tf_const", TensorProto.FLOAT, [k, 6], [0.2, 0.2, 0.0, 1.0, 0.0, 0.0] * k),
    ]
    graph = helper.make_graph(nodes, "g", [image], [masks, transforms], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _write_bundle(path, k=3, meta_k=None, version=FORMAT_VERSION, files=("weights.npz", "config.json")):
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph_model(k), str(path / "model.onnx"))
    meta = BundleMeta(num_parts=meta_k or k, input_size=16, mask_size=(4, 4))
    if meta_k is None:
        write_onnx_meta(path / "model.onnx", meta)
    else:  # bypass the write-time check to simulate a bundle edited by hand
        model = onnx.load(str(path / "model.onnx"))
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, meta.to_json()
        onnx.save(model, str(path / "model.onnx"))
    if version != FORMAT_VERSION:
        model = onnx.load(str(path / "model.onnx"))
        data = json.loads(model.metadata_props[0].value)
        data["format_version"] = version
        model.metadata_props[0].value = json.dumps(data)
        onnx.save(model, str(path / "model.onnx"))
    for f in files:
        if f.endswith(".npz"):
            np.savez(path / f, w=np.zeros(3, np.float32))
        else:
            (path / f).write_text("{}")
    return path


def test_round_trip(tmp_path):
    bundle = load_bundle(_write_bundle(tmp_path / "b"))
    assert bundle.meta.num_parts == 3
    assert bundle.meta.part_names == ("part1", "part2", "part3")
    assert len(set(bundle.meta.part_colors)) == 3


def test_rename_parts_round_trip(tmp_path):
    b = load_bundle(_write_bundle(tmp_path / "b"))
    write_onnx_meta(b.onnx_path, b.meta.with_names({2: "left arm"}))
    assert read_onnx_meta(b.onnx_path).part_names == ("part1", "left arm", "part3")
    with pytest.raises(BundleError, match="no part 7"):
        b.meta.with_names({7: "tail"})


@pytest.mark.parametrize("case,words", [
    ("missing-folder", "does not exist"),
    ("missing-weights", "missing weights.npz"),
    ("k-mismatch", "K=5"),
    ("old-version", "format version 0"),
    ("no-metadata", "no parttrack metadata"),
    ("not-onnx", "cannot read the ONNX model"),
])
def test_broken_bundles(tmp_path, case, words):
    path = tmp_path / "b"
    if case == "missing-weights":
        _write_bundle(path, files=("config.json",))
    elif case == "k-mismatch":
        _write_bundle(path, k=3, meta_k=5)
    elif case == "old-version":
        _write_bundle(path, version=0)
    elif case == "no-metadata":
        _write_bundle(path)
        model = onnx.load(str(path / "model.onnx"))
        del model.metadata_props[:]
        onnx.save(model, str(path / "model.onnx"))
    elif case == "not-onnx":
        _write_bundle(path)
        (path / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(BundleError, match=words) as info:
        load_bundle(path)
    assert info.value.message


def test_expect_parts(tmp_path):
    with pytest.raises(BundleError, match="expected 4"):
        load_bundle(_write_bundle(tmp_path / "b"), expect_parts=4)


def test_meta_validation():
    with pytest.raises(BundleError, match="2 part names"):
        BundleMeta(num_parts=3, input_size=16, mask_size=(4, 4), part_names=("a", "b"))
    with pytest.raises(BundleError, match="skeleton edge"):
        BundleMeta(num_parts=3, input_size=16, mask_size=(4, 4), skeleton_edges=((1, 4),))


# ------------------------------------------------------------------ part edits (drop / merge)
def test_part_edits_round_trip_and_default(tmp_path):
    from parttrack.engine.scenery import PartEdits

    b = load_bundle(_write_bundle(tmp_path / "b"))
    assert b.meta.dropped_parts == () and b.meta.merged_parts == () and not b.meta.part_edits
    write_onnx_meta(b.onnx_path, b.meta.with_edits(PartEdits(dropped=(3,), merged=((1, 2),))))
    meta = load_bundle(tmp_path / "b").meta
    assert meta.dropped_parts == (3,) and meta.merged_parts == ((1, 2),)
    assert meta.part_edits == PartEdits((3,), ((1, 2),))
    with pytest.raises(BundleError, match="no part 4"):
        meta.with_edits(PartEdits(dropped=(4,)))


def test_metadata_without_edit_keys_still_loads():
    data = json.loads(BundleMeta(num_parts=3, input_size=16, mask_size=(4, 4)).to_json())
    del data["dropped_parts"], data["merged_parts"]
    assert BundleMeta.from_json(json.dumps(data)).part_edits.removed == ()


@pytest.mark.parametrize("dropped, merged", [((4,), ()), ((0,), ()), ((), ((1, 1),)), ((2,), ((1, 2),))])
def test_invalid_edits_in_metadata(dropped, merged):
    with pytest.raises(BundleError, match="part edits"):
        BundleMeta(num_parts=3, input_size=16, mask_size=(4, 4), dropped_parts=dropped, merged_parts=merged)


def test_label_drop_and_merge_round_trip(tmp_path, capsys):
    from parttrack.tracker.cli import main

    path = _write_bundle(tmp_path / "b", k=5)
    assert main(["label", str(path), "--drop", "3"]) == 0
    assert load_bundle(path).meta.dropped_parts == (3,)
    assert main(["label", str(path), "--drop", "4,5", "--merge", "1,2"]) == 0
    meta = load_bundle(path).meta
    assert meta.dropped_parts == (3, 4, 5) and meta.merged_parts == ((1, 2),)
    out = capsys.readouterr().out
    assert "(dropped: background)" in out and "(merged into 1)" in out
    assert main(["label", str(path), "--reset-edits", "--drop", "2"]) == 0
    meta = load_bundle(path).meta
    assert meta.dropped_parts == (2,) and meta.merged_parts == ()


@pytest.mark.parametrize("args, words", [
    (["--drop", "7"], ["no part 7", "1..3"]),
    (["--drop", "0"], ["no part 0"]),
    (["--drop", "x"], ["not a part id"]),
    (["--merge", "1"], ["not A,B"]),
    (["--merge", "2,2"], ["merged into itself"]),
    (["--merge", "1,2", "--merge", "3,2"], ["more than once"]),
    (["--drop", "2", "--merge", "1,2"], ["both dropped and merged"]),
])
def test_label_bad_edits_are_user_errors(tmp_path, capsys, args, words):
    from parttrack.tracker.cli import main

    path = _write_bundle(tmp_path / "b", k=3)
    assert main(["label", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert load_bundle(path).meta.part_edits.removed == ()  # nothing written


def test_label_bad_index_exit_status(tmp_path):
    from tests.test_cli import assert_user_error, run_cli

    proc = run_cli("label", str(_write_bundle(tmp_path / "b", k=3)), "--drop", "9")
    assert proc.returncode == 2
    assert_user_error(proc, "no part 9")


@pytest.mark.parametrize("content, expected", [
    ('{"network": {}, "training": {"static_background": false}}', True),
    ('{"network": {}, "training": {"static_background": true}}', False),
    ('{"network": {}}', None),                                     # written before the field existed
    ('{"training": {"static_background": "no"}}', None),
    ("not json", None),
    ("[1, 2]", None),
    (None, None),                                                  # no config.json
])
def test_trained_with_moving_camera(tmp_path, content, expected):
    if content is not None:
        (tmp_path / CONFIG_FILE).write_text(content)
    assert trained_with_moving_camera(tmp_path) is expected


def test_shipped_bundles_say_how_the_camera_was():
    assert load_bundle(ROOT / "trained" / "bbb").moving_camera is True
    assert load_bundle(ROOT / "trained" / "synth").moving_camera is False


def test_the_crop_is_checked_and_scaled_to_the_frame():
    meta = BundleMeta(num_parts=2, input_size=64, mask_size=(16, 16), crop=(100, 20, 200, 200), crop_frame=(640, 360))
    assert meta.crop_for(360, 640) == (100, 20, 200, 200)
    assert meta.crop_for(720, 1280) == (200, 40, 400, 400)        # same aspect ratio: scaled
    assert meta.crop_for(480, 640) is None                         # another one: whole frames
    lb = meta.letterbox(720, 1280)
    assert lb.box == (200, 40, 400, 400) and lb.size == 64 and lb.inner_size == (64, 64)
    assert BundleMeta.from_json(meta.to_json()) == meta
    plain = BundleMeta(num_parts=2, input_size=64, mask_size=(16, 16))
    assert plain.crop is None and plain.crop_for(360, 640) is None and plain.letterbox(360, 640).box is None
    for crop, frame in (((0, 0, 10, 10), None), ((600, 0, 100, 100), (640, 360)), ((0, 0, 0, 10), (640, 360)),
                        (("a", 0, 1, 1), (640, 360))):
        with pytest.raises(BundleError, match="crop"):
            BundleMeta(num_parts=2, input_size=64, mask_size=(16, 16), crop=crop, crop_frame=frame)
