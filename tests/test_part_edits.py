"""A bundle's part edits (``parttrack label --drop/--merge``) reach every consumer of the
runtime's output: the dropped/merged part is never visible, has no pose, no skeleton edge,
no colour in the label maps and no export layer."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from parttrack.engine.bundle import load_bundle, write_onnx_meta
from parttrack.engine.runtime import create_runtime
from parttrack.engine.runtime.edits import EditedRuntime, edit_skeleton_edges
from parttrack.engine.scenery import PartEdits
from parttrack.tracker.io import read_joints_csv, read_label_png, read_tracks_csv
from parttrack.tracker.pipeline import OnlineTracker
from tests.fakes import FLAT_COLORS, ColorKeyRuntime, flat_parts_frames
from tests.videos import moving_square, write_video


@pytest.mark.parametrize("edges, edits, expected", [
    (((1, 2), (2, 3)), PartEdits(dropped=(2,)), ()),
    (((1, 2), (2, 3), (3, 4)), PartEdits(dropped=(1,)), ((2, 3), (3, 4))),
    (((1, 2), (2, 3), (3, 4)), PartEdits(merged=((2, 3),)), ((1, 2), (2, 4))),  # 3 → 2: (2,3) vanishes
    (((1, 3), (2, 3)), PartEdits(merged=((1, 2),)), ((1, 3),)),  # both become (1, 3): kept once
    (((1, 2),), PartEdits(), ((1, 2),)),
])
def test_skeleton_edges_follow_the_edits(edges, edits, expected):
    assert edit_skeleton_edges(edges, edits) == expected


def _three_colour_runtime():
    return ColorKeyRuntime(colors=FLAT_COLORS[:3])


def test_edited_runtime_folds_masks_and_keeps_the_type():
    rt = _three_colour_runtime()
    rt.meta = replace(rt.meta, skeleton_edges=((1, 2), (2, 3)), dropped_parts=(1,), merged_parts=((2, 3),))
    edited = EditedRuntime(rt)
    frames, _ = flat_parts_frames(3, 64, 64)
    images = np.ascontiguousarray(frames)
    raw, out = rt.infer(images), edited.infer(images)
    assert type(out) is type(raw) and out.masks.dtype == np.float32 and out.masks.shape == raw.masks.shape
    np.testing.assert_array_equal(out.masks[:, [1, 3]], 0.0)
    np.testing.assert_allclose(out.masks[:, 0], raw.masks[:, 0] + raw.masks[:, 1], atol=1e-6)
    np.testing.assert_allclose(out.masks[:, 2], raw.masks[:, 2] + raw.masks[:, 3], atol=1e-6)
    np.testing.assert_allclose(out.masks.sum(1), raw.masks.sum(1), atol=1e-6)
    np.testing.assert_array_equal(out.transforms, raw.transforms)
    assert edited.meta.skeleton_edges == () and edited.meta.num_parts == 3
    assert edited.name == rt.name and edited.calls == rt.calls  # other attributes: the backend's
    assert "dropped: 1" in edited.describe() and "merged: 3 into 2" in edited.describe()


def test_create_runtime_wraps_only_when_there_are_edits(tmp_path):
    from tests.bundle_factory import make_tiny_bundle

    path = make_tiny_bundle(tmp_path / "b", num_parts=3, input_size=32)
    assert not isinstance(create_runtime(path, backend="onnxruntime", announce=False), EditedRuntime)
    write_onnx_meta(path / "model.onnx", load_bundle(path).meta.with_edits(PartEdits(dropped=(2,))))
    rt = create_runtime(path, backend="onnxruntime", announce=False)
    assert isinstance(rt, EditedRuntime) and rt.edits.dropped == (2,)
    out = rt.infer(np.zeros((2, 32, 32, 3), np.uint8))
    assert (out.masks[:, 2] == 0).all()


def test_dropped_part_is_gone_from_the_live_pipeline():
    frames, _ = flat_parts_frames(8, 96, 128)
    rt = ColorKeyRuntime()  # two flat parts, both visible in every frame
    from parttrack.tracker.core import Frame

    seq = [Frame(f, i, i / 25.0) for i, f in enumerate(frames)]
    before = OnlineTracker(rt, 96, 128, skeleton_edges=((1, 2),)).step_batch(seq)
    assert all(t.raw.visible.all() for t in before) and all((t.labels == 1).any() for t in before)
    rt.meta = replace(rt.meta, skeleton_edges=((1, 2),), dropped_parts=(1,))
    tracker = OnlineTracker(EditedRuntime(rt), 96, 128)
    for t in tracker.step_batch(seq):
        for p in (t.raw, t.smoothed):
            assert not p.visible[0] and p.area_px[0] == 0 and p.confidence[0] == 0
            assert np.isnan(p.xy[0]).all() and np.isnan(p.angle_deg[0])
            assert p.visible[1]
        assert not (t.labels == 1).any() and (t.labels == 2).any()
        assert t.joints is None or len(t.joints.pairs) == 0


def test_label_drop_then_track_end_to_end(tmp_path):
    """`parttrack label --drop` on a copy of a bundle, then `parttrack track` on a video."""
    import shutil

    from parttrack.tracker.cli import main
    from tests.bundle_factory import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "orig", num_parts=3, input_size=32)
    meta = load_bundle(bundle).meta
    write_onnx_meta(bundle / "model.onnx", replace(meta, skeleton_edges=((1, 2), (2, 3))))
    video = write_video(tmp_path / "clip.mp4", moving_square(12, 48, 64))
    args = ["--no-progress", "--raw", "--masks", "--overlay", "--export", "all"]

    assert main(["track", str(video), "-o", str(tmp_path / "before"), "--model", str(bundle), *args]) == 0
    before, _ = read_tracks_csv(tmp_path / "before" / "clip" / "tracks.csv")
    drop = int(np.argmax(before.visible.mean(0))) + 1  # the part this random network uses most
    assert before.visible[:, drop - 1].any()

    copy = tmp_path / "edited"
    shutil.copytree(bundle, copy)
    assert main(["label", str(copy), "--drop", str(drop)]) == 0
    assert main(["track", str(video), "-o", str(tmp_path / "after"), "--model", str(copy), *args]) == 0
    out = tmp_path / "after" / "clip"

    for name in ("tracks.csv", "tracks_raw.csv"):
        track, _ = read_tracks_csv(out / name)
        j = drop - 1
        assert not track.visible[:, j].any() and (track.area_px[:, j] == 0).all()
        assert (track.confidence[:, j] == 0).all() and np.isnan(track.xy[:, j]).all()
    rows = [r for r in (out / "tracks.csv").read_text().splitlines()[1:] if r.split(",")[2] == str(drop)]
    assert rows and all(r.split(",")[4:6] == ["nan", "nan"] and r.split(",")[10] == "0" for r in rows)
    info = json.loads((out / "track.json").read_text())
    assert all(drop not in e for e in info["skeleton_edges"])
    for joint in read_joints_csv(out / "joints.csv"):
        assert drop not in np.asarray(joint.pairs)
    for png in sorted((out / "masks").glob("*.png")):
        assert not (read_label_png(png) == drop).any()
    assert (out / "overlay.mp4").stat().st_size > 0
    assert not list((out / "ae").glob(f"part{drop}_*.txt"))  # no After Effects layer for it
    assert list((out / "ae").glob("part*_*.txt"))  # the others are there


def test_relabelling_the_model_redoes_a_done_folder(tmp_path):
    """A result folder made before `parttrack label --drop` is stale afterwards."""
    from parttrack.tracker.cli import main
    from tests.bundle_factory import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "b", num_parts=3, input_size=32)
    video = write_video(tmp_path / "clip.mp4", moving_square(6, 48, 64))
    run = ["track", str(video), "-o", str(tmp_path / "out"), "--model", str(bundle), "--no-progress"]
    assert main(run) == 0
    first = (tmp_path / "out" / "clip" / "done.json").read_text()
    assert main(run) == 0 and (tmp_path / "out" / "clip" / "done.json").read_text() == first  # skipped
    assert main(["label", str(bundle), "--drop", "1"]) == 0
    assert main(run) == 0
    assert (tmp_path / "out" / "clip" / "done.json").read_text() != first  # redone
    track, _ = read_tracks_csv(tmp_path / "out" / "clip" / "tracks.csv")
    assert not track.visible[:, 0].any()
