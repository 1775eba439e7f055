"""Source-resolution label maps (label PNGs, overlay, viewer) follow the subject's outline:
masks refined with the frame as the guide (tracker.poses.SourceLabeler) land closer to a
generated figure's true outline than bilinear upsampling of the same masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from parttrack.engine.synthetic import render_video
from parttrack.tracker.core import Frame
from parttrack.tracker.io import read_label_png
from parttrack.tracker.offline import track_video
from parttrack.tracker.pipeline import OnlineTracker
from parttrack.tracker.poses import SourceLabeler, labels_at_source
from parttrack.tracker.results import TrackOptions
from tests.fakes import GroundTruthRuntime
from tests.videos import write_video

# 320×240 frames, a 128 model input with 32×32 masks: one mask pixel is 10 source pixels and
# the batch path's guide (the frame decoded at the letterbox's inner size) is 128×96.
W, H, INPUT, MASK, N = 320, 240, 128, (32, 32), 5


@pytest.fixture(scope="module")
def video():
    return render_video(N, (W, H), figure_seed=3, motion_seed=5)


def _outline(region: np.ndarray) -> np.ndarray:
    m = region.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def _edge_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distance (px) from each outline pixel of ``pred`` to the nearest outline pixel of ``truth``."""
    dist = cv2.distanceTransform((~_outline(truth)).astype(np.uint8), cv2.DIST_L2, 5)
    return dist[_outline(pred)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _scores(label_maps, video):
    err = np.concatenate([_edge_error(lab > 0, gt > 0) for lab, gt in zip(label_maps, video.labels)])
    iou = np.mean([_iou(lab > 0, gt > 0) for lab, gt in zip(label_maps, video.labels)])
    return float(err.mean()), float(np.percentile(err, 90)), float(iou)


def _bilinear(rt: GroundTruthRuntime):
    return [labels_at_source(rt.clean_output(i).masks[0], rt.letterbox) for i in range(N)]


def test_label_pngs_follow_the_generated_outline(tmp_path, video):
    clip = write_video(tmp_path / "figure.mp4", video.frames)
    rt = GroundTruthRuntime(video, input_size=INPUT, mask_size=MASK)  # the ideal coarse network
    track_video(clip, tmp_path / "out", TrackOptions(masks=True), runtime=rt)
    pngs = [read_label_png(tmp_path / "out" / "masks" / f"{i:06d}.png") for i in range(N)]
    assert all(p.shape == (H, W) for p in pngs)
    mean, p90, iou = _scores(pngs, video)
    base_mean, base_p90, base_iou = _scores(_bilinear(rt), video)
    assert mean <= 1.0 and p90 <= 2.0, (mean, p90)
    assert mean < base_mean - 0.1 and iou > base_iou, (mean, base_mean, iou, base_iou)


def test_live_labels_are_refined_with_the_source_frame(video):
    rt = GroundTruthRuntime(video, input_size=INPUT, mask_size=MASK)
    tracker = OnlineTracker(rt, H, W)
    out = tracker.step_batch([Frame(np.ascontiguousarray(f), i, i / 25.0) for i, f in enumerate(video.frames)])
    mean, p90, iou = _scores([t.labels for t in out], video)
    base_mean, _, base_iou = _scores(_bilinear(rt), video)
    assert mean <= 1.0 and p90 <= 2.0 and mean < base_mean - 0.1 and iou > base_iou

    rt.rewind()
    plain = OnlineTracker(rt, H, W, refine_labels=False).step_batch(
        [Frame(np.ascontiguousarray(f), i, i / 25.0) for i, f in enumerate(video.frames)])
    for a, b in zip(plain, _bilinear(rt)):
        np.testing.assert_array_equal(a.labels, b)


def test_labeler_takes_quantised_masks_and_guides_of_any_size(video):
    rt = GroundTruthRuntime(video, input_size=INPUT, mask_size=MASK)
    labeler = SourceLabeler(rt.letterbox, MASK)
    masks = rt.clean_output(0).masks[0]
    full = labeler(masks, video.frames[0])
    quantised = labeler(np.rint(masks * 255).astype(np.uint8), video.frames[0])
    assert full.shape == (H, W) and full.dtype == np.uint8
    assert (full == quantised).mean() > 0.999
    inner = cv2.resize(video.frames[0], rt.letterbox.inner_size, interpolation=cv2.INTER_AREA)
    assert labeler(masks, inner).shape == (H, W)
    np.testing.assert_array_equal(labeler(masks), labels_at_source(masks, rt.letterbox))  # no guide
    with pytest.raises(ValueError, match="aspect ratio"):
        labeler(masks, np.zeros((W, H, 3), np.uint8))


def test_a_cropped_model_is_refined_inside_its_crop_only(video):
    from parttrack.engine.preprocess import Letterbox
    from tests.fakes import soft_masks_from_labels

    ys, xs = np.nonzero((video.labels > 0).any(0))
    x0, y0 = max(0, xs.min() - 12), max(0, ys.min() - 12)
    box = (int(x0), int(y0), int(min(W, xs.max() + 13) - x0), int(min(H, ys.max() + 13) - y0))
    lb = Letterbox.fit(H, W, INPUT, box)
    labeler = SourceLabeler(lb, MASK)
    assert labeler.refiner.src_size == (box[3], box[2])        # the work grid covers the crop only
    k = int(video.num_parts)
    maps = [labeler(soft_masks_from_labels(video.labels[i], k, lb, MASK), video.frames[i]) for i in range(N)]
    x, y, w, h = box
    for m in maps:
        assert m.shape == (H, W) and m.dtype == np.uint8
        outside = np.ones((H, W), bool)
        outside[y:y + h, x:x + w] = False
        assert not m[outside].any()                            # background outside the crop
    mean, p90, iou = _scores(maps, video)
    assert mean <= 1.0 and p90 <= 2.0 and iou > 0.9, (mean, p90, iou)
    # the batch path's guide: the whole frame at the crop's scale
    small = cv2.resize(video.frames[0], lb.decode_size, interpolation=cv2.INTER_AREA)
    coarse = SourceLabeler(lb, MASK, guide_size=lb.decode_size)
    masks = soft_masks_from_labels(video.labels[0], k, lb, MASK)
    assert (coarse(masks, small) == maps[0]).mean() > 0.97
