"""Metrics of engine.evaluate: matching conventions, edge cases, and a bundle run end to end."""

import json
import warnings

import numpy as np
import pytest

from parttrack.engine.evaluate import (
    confusion,
    evaluate_bundle,
    evaluate_prediction,
    foreground_iou,
    landmark_error,
    part_iou,
    predict_video,
)
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.synthetic import load_ground_truth, render_video


@pytest.fixture(scope="module")
def video():
    return render_video(120, size=80, figure_seed=2, motion_seed=5)


def test_perfect_prediction(video):
    r = evaluate_prediction(video.labels, video.centres, video.ground_truth)
    assert r["part_iou"] == 1.0 and r["foreground_iou"] == 1.0
    assert all(v == 1.0 for v in r["part_iou_per_part"].values())
    assert r["assignment"]["head"] == [2]
    # True part centres predict the joints almost linearly: a small error (the metric's floor).
    assert r["landmark_error_pct"] < 1.0
    assert r["landmark_error_oracle_pct"] == pytest.approx(r["landmark_error_pct"])
    # Centres that ARE the joints are regressed exactly.
    assert landmark_error(video.joints, video.joints, 80) < 1e-6


def test_permuted_part_ids_still_score_one(video):
    rng = np.random.default_rng(0)
    perm = np.concatenate([[0], rng.permutation(10) + 1]).astype(np.uint8)   # keep 0 = background
    pred = perm[video.labels]
    centres = np.empty_like(video.centres)
    centres[:, perm[1:] - 1] = video.centres
    for matching in ("hungarian", "max_overlap"):
        r = evaluate_prediction(pred, centres, video.ground_truth, matching=matching)
        assert r["part_iou"] == 1.0 and r["foreground_iou"] == 1.0
        assert r["assignment"][video.part_names[0]] == [int(perm[1])]
    assert r["landmark_error_pct"] < 1.0


def test_all_background(video):
    pred = np.zeros_like(video.labels)
    r = evaluate_prediction(pred, np.zeros((len(video), 10, 2)), video.ground_truth)
    assert r["foreground_iou"] == 0.0 and r["part_iou"] == 0.0
    assert all(a == [] for a in r["assignment"].values())


def test_everything_foreground_one_part(video):
    pred = np.ones_like(video.labels)
    r = evaluate_prediction(pred, np.zeros((len(video), 1, 2)), video.ground_truth)
    fg = (video.labels > 0).mean()
    assert r["foreground_iou"] == pytest.approx(fg)
    torso = (video.labels == 1).sum() / video.labels.size
    assert r["part_iou"] == pytest.approx(torso / 10)  # one GT part matched, the rest 0


def test_split_part_hungarian_vs_max_overlap():
    """A GT part split into two learned parts: max-overlap merges them (IoU 1); the one-to-one
    Hungarian matching keeps only the larger piece."""
    gt = np.zeros((1, 4, 8), np.uint8)
    gt[0, :, :4] = 1
    gt[0, :, 4:] = 2
    pred = gt.copy()
    pred[0, :, 6:] = 3            # GT part 2 split into learned 2 (cols 4-5) and 3 (cols 6-7)
    conf = confusion(pred, gt, 3, 2)
    miou, per, assign = part_iou(conf, "max_overlap")
    assert miou == 1.0 and assign == [[1], [2, 3]]
    miou, per, assign = part_iou(conf, "hungarian")
    assert per[0] == 1.0 and per[1] == pytest.approx(0.5) and miou == pytest.approx(0.75)
    assert assign[0] == [1] and len(assign[1]) == 1


@pytest.mark.parametrize("pred_cols,gt_cols,expected", [
    ((0, 4), (0, 4), 1.0),        # identical
    ((0, 4), (2, 6), 2 / 6),      # half overlap: I=2, U=6
    ((0, 2), (4, 6), 0.0),        # disjoint
    ((0, 8), (0, 4), 0.5),        # prediction twice as large
])
def test_iou_values(pred_cols, gt_cols, expected):
    pred = np.zeros((2, 3, 8), np.uint8)
    gt = np.zeros_like(pred)
    pred[..., pred_cols[0]:pred_cols[1]] = 1
    gt[..., gt_cols[0]:gt_cols[1]] = 1
    miou, _, _ = part_iou(confusion(pred, gt, 1, 1))
    assert miou == pytest.approx(expected)
    assert foreground_iou(pred, gt) == pytest.approx(expected)


def test_landmark_error_scale_and_split():
    rng = np.random.default_rng(1)
    t = 40
    centres = rng.uniform(0, 100, (t, 3, 2))
    joints = centres[:, :2] * 0.5 + 10
    noisy = joints + rng.normal(0, 1.0, joints.shape)
    err = landmark_error(centres, noisy, image_size=100)
    # Mean 2-D error of N(0, 1) noise per axis is sqrt(pi/2) ~ 1.25 px -> ~1.25 %.
    assert 0.9 < err < 1.8
    # Centres unrelated to the joints score much worse than related ones.
    assert landmark_error(rng.uniform(0, 100, (t, 3, 2)), joints, 100) > 5 * err
    with pytest.raises(ValueError):
        landmark_error(centres[:3], joints[:3], 100)
    with pytest.raises(ValueError):
        landmark_error(centres, joints[:-1], 100)


def test_nan_centres_are_tolerated(video):
    centres = video.joints.copy()
    centres[3, 0] = np.nan
    assert np.isfinite(landmark_error(centres, video.joints, 80))


def test_a_part_without_centres_scores_like_a_constant_one_and_warns_nothing(video):
    # a dropped part has no pixels, so no centre, in every frame: it is filled with 0
    centres = np.concatenate([video.joints, np.full_like(video.joints[:, :1], np.nan)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = landmark_error(centres, video.joints, 80)
    filled = np.concatenate([video.joints, np.zeros_like(video.joints[:, :1])], axis=1)
    assert err == pytest.approx(landmark_error(filled, video.joints, 80))


def test_shape_mismatch_raises(video):
    with pytest.raises(ValueError):
        evaluate_prediction(video.labels[:, :-1], video.centres, video.ground_truth)
    with pytest.raises(ValueError):
        part_iou(np.ones((2, 2)), "nearest")


# -- a bundle end to end, with a hand-built graph whose output is known exactly ------------
def _constant_bundle(path, k=3, s=32, mh=16, mw=16, crop=None, crop_frame=None):
    """A bundle whose masks do not depend on the image: slot 1 = left half of the model input,
    slot 2 = right half, slot 3 = the top quarter (lies in the letterbox padding of a 2:1
    source), slot 0 = nothing; transforms constant with t = (0.5, 0)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from parttrack.engine.bundle import BundleMeta, write_onnx_meta

    masks = np.zeros((1, k + 1, mh, mw), np.float32)
    masks[0, 1, :, : mw // 2] = 1
    masks[0, 2, :, mw // 2:] = 1
    masks[0, :, : mh // 4] = 0
    masks[0, 3, : mh // 4] = 1
    tf = np.tile(np.array([0.2, 0.1, 0.0, 1.0, 0.5, 0.0], np.float32), (1, k, 1))
    inits = [numpy_helper.from_array(masks, "m"), numpy_helper.from_array(tf, "t"),
             numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([k + 1, mh, mw], np.int64), "mrest"),
             numpy_helper.from_array(np.array([k, 6], np.int64), "trest")]
    nodes = [
        helper.make_node("Shape", ["image"], ["shp"]),
        helper.make_node("Gather", ["shp", "i0"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "mrest"], ["mshape"], axis=0),
        helper.make_node("Concat", ["n", "trest"], ["tshape"], axis=0),
        helper.make_node("Expand", ["m", "mshape"], ["masks"]),
        helper.make_node("Expand", ["t", "tshape"], ["transforms"]),
    ]
    graph = helper.make_graph(
        nodes, "constant",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", s, s, 3])],
        [helper.make_tensor_value_info("masks", TensorProto.FLOAT, ["N", k + 1, mh, mw]),
         helper.make_tensor_value_info("transforms", TensorProto.FLOAT, ["N", k, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    path.mkdir(parents=True)
    onnx.save(model, str(path / "model.onnx"))
    write_onnx_meta(path / "model.onnx", BundleMeta(num_parts=k, input_size=s, mask_size=(mh, mw), crop=crop,
                                                    crop_frame=crop_frame))
    np.savez(path / "weights.npz", none=np.zeros(1, np.float32))
    (path / "config.json").write_text("{}")
    return path


def test_predict_video_maps_masks_through_the_letterbox(tmp_path):
    from parttrack.engine.runtime import create_runtime

    bundle = _constant_bundle(tmp_path / "b")
    frames = np.zeros((3, 32, 64, 3), np.uint8)   # 2:1 source: padded 8 rows top and bottom
    pred = predict_video(create_runtime(bundle, backend="onnxruntime", threads=1), frames, batch_size=2)
    assert pred.labels.shape == (3, 32, 64)
    assert set(np.unique(pred.labels)) == {1, 2}          # slot 3 lives only in the padding
    assert np.all(pred.labels[:, :, :31] == 1) and np.all(pred.labels[:, :, 33:] == 2)
    lb = Letterbox.fit(32, 64, 32)
    np.testing.assert_allclose(pred.centres[0, 0], lb.norm_to_source(np.array([0.5, 0.0])))
    assert pred.centres[0, 0, 0] == pytest.approx(47.5)   # 3/4 of the width, pixel centres
    np.testing.assert_allclose(pred.centroids[0, 0], [15.5, 15.5], atol=0.6)


@pytest.mark.parametrize("refine", [False, True])
def test_predict_video_of_a_cropped_model_calls_outside_the_crop_background(tmp_path, refine):
    from parttrack.engine.runtime import create_runtime

    bundle = _constant_bundle(tmp_path / "b", crop=(16, 0, 32, 32), crop_frame=(64, 32))
    ys, xs = np.mgrid[0:32, 0:64]
    frames = np.repeat(((xs * 7 + ys * 3) % 256).astype(np.uint8)[None, ..., None], 2, axis=0).repeat(3, axis=-1)
    pred = predict_video(create_runtime(bundle, backend="onnxruntime", threads=1), frames, refine=refine)
    assert pred.labels.shape == (2, 32, 64)
    assert np.all(pred.labels[:, :, :16] == 0) and np.all(pred.labels[:, :, 48:] == 0)   # outside the crop
    assert np.all(pred.labels[:, 9:, 17:31] == 1) and np.all(pred.labels[:, 9:, 33:47] == 2)
    assert np.all(pred.labels[:, :7, 17:47] == 3)          # the crop is square: no padding, slot 3 is seen
    assert pred.centres[0, 0, 0] == pytest.approx(16 + 23.5)   # t = 0.5 → 3/4 of the crop's width


def test_evaluate_bundle_on_saved_video_and_cli(tmp_path, capsys):
    from parttrack.tracker.cli import main

    bundle = _constant_bundle(tmp_path / "b")
    v = render_video(8, size=(64, 32), figure_seed=0, motion_seed=1)
    vdir = v.save(tmp_path / "v")
    r = evaluate_bundle(bundle, vdir)
    assert r["frames"] == 8 and r["num_parts"] == 3
    assert 0.0 < r["foreground_iou"] < 0.5      # everything predicted foreground
    assert 0.0 < r["part_iou"] < 0.3
    assert r["runtime"].startswith("onnxruntime")
    # VIDEO_DIR after --size is the folder, not a second number
    assert main(["eval", str(bundle), "--generate", "--frames", "6", "--size", "64x32", str(tmp_path / "g"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 6 and (tmp_path / "g" / "ground_truth.npz").is_file()
    assert load_ground_truth(tmp_path / "g").labels.shape[1:] == (32, 64)
    with pytest.raises(SystemExit):
        main(["eval", str(bundle), "--generate", "--size", "64x", str(tmp_path / "h")])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    assert main(["eval", str(bundle)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["eval", str(bundle), str(tmp_path / "missing")]) == 2
