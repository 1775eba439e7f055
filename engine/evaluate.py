"""Quality metrics of a part model against exact ground truth (pure numpy/scipy, no torch).

The metrics of the unsupervised co-part literature (Gao et al., ICML 2021, Sec. 5; Siarohin et
al., "Motion-supervised co-part segmentation", 2020; Hung et al., SCOPS, CVPR 2019):

* **Part IoU** — learned parts have no names, so each is first matched to a ground-truth part.
  ``matching="hungarian"`` (default, stricter): a one-to-one assignment of learned parts to GT
  parts maximising the summed IoU (:func:`scipy.optimize.linear_sum_assignment`); a GT part
  left without a learned part scores 0. ``matching="max_overlap"``: each learned part is
  assigned to the ground-truth label (background included) it overlaps most; the learned
  parts assigned to one GT part are merged. The score is the **mean over GT parts** of the
  IoU accumulated over all frames (Σ intersection / Σ union), matching computed once for the
  whole video (the same learned part must be the same GT part in every frame).
* **Foreground IoU** — predicted "not background" (label > 0) against the GT figure,
  accumulated over all frames.
* **Landmark regression error** — a linear map (with bias, least squares) from the K learned
  part centres of a frame (2K numbers) to the J ground-truth joint positions (2J numbers),
  fitted on one half of the frames (alternate 1-second blocks) and scored on the other half:
  the mean Euclidean error per joint, in **percent of the image size** ``max(H, W)``. Joints
  are not exactly a linear function of part centres, so even the true centres score a little
  above 0; :func:`evaluate_prediction` reports that floor as ``landmark_error_oracle_pct``.

Predictions for a bundle (:func:`predict_video`): the label map is
:func:`engine.types.part_labels` of the K+1 softmax slots (background where the background slot
outweighs the parts together, else the arg-max part) after bilinear upsampling of the masks to
the source frame through the letterbox (:class:`engine.preprocess.Letterbox`); the learned
part centres are the transforms' translations ``t`` mapped to source pixels
(``landmark_error_pct``) and, for comparison, the soft mask centroids
(``landmark_error_centroid_pct``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from parttrack.engine.errors import InputError
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.synthetic import VIDEO_FILE, GroundTruth, SyntheticVideo, load_ground_truth
from parttrack.engine.types import part_labels

MATCHINGS = ("hungarian", "max_overlap")


def confusion(pred: np.ndarray, gt: np.ndarray, num_pred: int, num_gt: int) -> np.ndarray:
    """Pixel counts ``C[k, p]`` of predicted label k (0..num_pred) on GT label p (0..num_gt).

    Args:
        pred: ``(T, H, W)`` (or any shape) integer predicted labels, 0 = background.
        gt: same shape, integer GT labels.

    Returns:
        ``(num_pred + 1, num_gt + 1)`` int64.

    Raises:
        ValueError: shape mismatch or labels out of range.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted labels {pred.shape} and ground truth {gt.shape} differ in shape")
    if pred.size and (pred.max() > num_pred or gt.max() > num_gt):
        raise ValueError(f"labels out of range: pred max {pred.max()} > {num_pred} or gt max {gt.max()} > {num_gt}")
    idx = pred.astype(np.int64).ravel() * (num_gt + 1) + gt.astype(np.int64).ravel()
    return np.bincount(idx, minlength=(num_pred + 1) * (num_gt + 1)).reshape(num_pred + 1, num_gt + 1)


def part_iou(conf: np.ndarray, matching: str = "hungarian") -> tuple[float, np.ndarray, list[list[int]]]:
    """Mean part IoU from a confusion matrix (see module docstring for the conventions).

    Args:
        conf: ``(K+1, P+1)`` pixel counts from :func:`confusion` (row/col 0 = background).
        matching: ``"hungarian"`` or ``"max_overlap"``.

    Returns:
        ``(mean IoU over the P GT parts, (P,) IoU per GT part, assignment)`` where
        ``assignment[p-1]`` lists the learned part ids (1-based) matched to GT part p.

    Raises:
        ValueError: unknown matching.
    """
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    conf = np.asarray(conf, dtype=np.float64)
    p = conf.shape[1] - 1
    pred_area, gt_area = conf.sum(1), conf.sum(0)
    assignment: list[list[int]] = [[] for _ in range(p)]
    if matching == "hungarian":
        inter = conf[1:, 1:]
        union = pred_area[1:, None] + gt_area[None, 1:] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            if inter[r, c] > 0:
                assignment[c].append(int(r) + 1)
    else:
        best = np.argmax(conf[1:], axis=1)  # each learned part -> GT label incl. background
        for r, c in enumerate(best):
            if c > 0 and pred_area[r + 1] > 0:
                assignment[c - 1].append(r + 1)
    per_gt = np.zeros(p)
    for gi, learned in enumerate(assignment):
        if not learned:
            continue
        inter = conf[learned, gi + 1].sum()
        union = pred_area[learned].sum() + gt_area[gi + 1] - inter
        per_gt[gi] = inter / union if union > 0 else 0.0
    return float(per_gt.mean()) if p else 0.0, per_gt, assignment


def foreground_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of ``pred > 0`` and ``gt > 0`` accumulated over all frames (1.0 when both empty)."""
    pf, gf = np.asarray(pred) > 0, np.asarray(gt) > 0
    union = np.logical_or(pf, gf).sum()
    return float(np.logical_and(pf, gf).sum() / union) if union else 1.0


def landmark_error(pred_centres: np.ndarray, gt_joints: np.ndarray, image_size: float,
                   block: int = 25) -> float:
    """Linear-regression landmark error (percent of ``image_size``).

    A least-squares affine map (plain linear regression with a bias, minimum-norm solution)
    from the flattened learned centres ``(2K,)`` of a frame to the flattened GT joints
    ``(2J,)`` is fitted on one half of the frames and scored on the other: the frames are cut
    into consecutive blocks of ``block`` frames, even blocks fit, odd blocks score (so both
    halves cover the whole motion; a single first-half/second-half split of a short clip
    extrapolates to unseen poses and even perfect part centres then score 1–4 %). The score
    is the mean over scored frames and joints of the Euclidean error / ``image_size`` × 100.

    Args:
        pred_centres: ``(T, K, 2)`` float px. Non-finite entries are replaced by the
            column mean of the fitted frames.
        gt_joints: ``(T, J, 2)`` float px.
        image_size: normaliser in px (``max(H, W)``).
        block: frames per block (clipped to ``T // 2``). Use T well above ``2 × (2K + 1)``
            (e.g. T = 200 for K = 10) or the fit has too little data to mean much.

    Raises:
        ValueError: shapes disagree, or T < 4.
    """
    pc, gj = np.asarray(pred_centres, np.float64), np.asarray(gt_joints, np.float64)
    if pc.ndim != 3 or gj.ndim != 3 or pc.shape[0] != gj.shape[0] or pc.shape[2] != 2 or gj.shape[2] != 2:
        raise ValueError(f"need (T, K, 2) centres and (T, J, 2) joints, got {pc.shape} and {gj.shape}")
    t = pc.shape[0]
    if t < 4:
        raise ValueError(f"landmark regression needs >= 4 frames, got T={t}")
    block = max(1, min(int(block), t // 2))
    fit = (np.arange(t) // block) % 2 == 0
    x = pc.reshape(t, -1)
    finite = np.isfinite(x[fit])    # a part without pixels in every fitted frame (dropped) fills with 0
    count = finite.sum(0)
    fill = np.where(count > 0, np.where(finite, x[fit], 0.0).sum(0) / np.maximum(count, 1), 0.0)
    x = np.where(np.isfinite(x), x, fill)
    mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6          # conditioning only
    xa = np.hstack([(x - mu) / sd, np.ones((t, 1))])
    y = gj.reshape(t, -1)
    coef, *_ = np.linalg.lstsq(xa[fit], y[fit], rcond=None)
    err = (xa[~fit] @ coef - y[~fit]).reshape(int((~fit).sum()), -1, 2)
    return float(np.linalg.norm(err, axis=-1).mean() / image_size * 100.0)


def evaluate_prediction(pred_labels: np.ndarray, pred_centres: np.ndarray, gt: GroundTruth,
                        num_parts: int | None = None, matching: str = "hungarian",
                        pred_centroids: np.ndarray | None = None) -> dict:
    """All metrics of one predicted video.

    Args:
        pred_labels: ``(T, H, W)`` uint8, 0 = background, 1..K learned parts.
        pred_centres: ``(T, K, 2)`` float px learned part centres.
        gt: the ground truth (same T, H, W).
        num_parts: K (default: ``pred_centres.shape[1]``).
        matching: see :func:`part_iou`.
        pred_centroids: optional second set of ``(T, K, 2)`` centres (mask centroids) scored
            as ``landmark_error_centroid_pct``.

    Returns:
        dict with ``part_iou``, ``part_iou_per_part`` {GT name: IoU}, ``assignment``
        {GT name: [learned ids]}, ``foreground_iou``, ``landmark_error_pct`` (and
        ``landmark_error_centroid_pct``), ``landmark_error_oracle_pct`` (the same regression
        from the true part centres: the metric's floor), ``matching``, ``frames``, ``num_parts``, ``gt_parts``.

    Raises:
        ValueError: shapes disagree with the ground truth.
    """
    if pred_labels.shape != gt.labels.shape:
        raise ValueError(f"predicted labels {pred_labels.shape} differ from ground truth {gt.labels.shape}")
    k = int(num_parts if num_parts is not None else pred_centres.shape[1])
    conf = confusion(pred_labels, gt.labels, k, gt.num_parts)
    miou, per, assign = part_iou(conf, matching)
    size = float(max(gt.height, gt.width))
    out = {
        "part_iou": miou,
        "part_iou_per_part": {n: float(v) for n, v in zip(gt.part_names, per)},
        "assignment": {n: a for n, a in zip(gt.part_names, assign)},
        "foreground_iou": foreground_iou(pred_labels, gt.labels),
        "landmark_error_pct": landmark_error(pred_centres, gt.joints, size),
        "matching": matching,
        "frames": len(gt),
        "num_parts": k,
        "gt_parts": gt.num_parts,
    }
    if pred_centroids is not None:
        out["landmark_error_centroid_pct"] = landmark_error(pred_centroids, gt.joints, size)
    out["landmark_error_oracle_pct"] = landmark_error(gt.centres, gt.joints, size)
    return out


# -- running a bundle ----------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """A model's output on a video, in source pixels.

    Attributes:
        labels: ``(T, H, W)`` uint8 labels (0 = background; :func:`engine.types.part_labels`).
        centres: ``(T, K, 2)`` float64 transform translations ``t`` in source px.
        centroids: ``(T, K, 2)`` float64 soft mask centroids in source px (NaN if a mask is 0).
    """

    labels: np.ndarray
    centres: np.ndarray
    centroids: np.ndarray


def source_sampling_maps(letterbox: Letterbox, mask_h: int, mask_w: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps giving, for each source pixel, its position in the mask grid."""
    ys, xs = np.mgrid[0:letterbox.src_h, 0:letterbox.src_w].astype(np.float64)
    norm = letterbox.source_to_norm(np.stack([xs, ys], -1))
    # Normalised [-1, 1] (align_corners=False) -> mask pixel coordinates (centres at integers).
    mx = (norm[..., 0] + 1.0) * mask_w / 2.0 - 0.5
    my = (norm[..., 1] + 1.0) * mask_h / 2.0 - 0.5
    return mx.astype(np.float32), my.astype(np.float32)


def masks_to_source(masks: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bilinearly resample one frame's ``(K+1, h, w)`` masks to ``(K+1, H, W)`` source pixels."""
    mx, my = maps
    return np.stack([cv2.remap(np.ascontiguousarray(m), mx, my, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for m in masks])


def predict_video(runtime, frames: np.ndarray, batch_size: int = 16, refine: bool = False) -> Prediction:
    """Run a runtime (:class:`engine.runtime.base.Runtime`) over source frames.

    Args:
        runtime: built by :func:`engine.runtime.create_runtime`.
        frames: ``(T, H, W, 3)`` uint8 RGB source frames.
        batch_size: frames per ``infer`` call.
        refine: resample the masks to the frame with the frame as guide
            (:class:`engine.refine.MaskRefiner`, as the label images and overlay do) instead
            of bilinearly.

    Returns:
        :class:`Prediction` in source pixels (see module docstring).
    """
    t, h, w, _ = frames.shape
    lb = runtime.meta.letterbox(h, w)
    k = runtime.meta.num_parts
    labels = np.zeros((t, h, w), np.uint8)
    centres = np.zeros((t, k, 2))
    centroids = np.zeros((t, k, 2))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = refiner = None
    for start in range(0, t, batch_size):
        batch = np.stack([lb.apply(f) for f in frames[start:start + batch_size]])
        out = runtime.infer(batch)
        if maps is None:
            maps = source_sampling_maps(lb, *out.masks.shape[2:])
            if refine:     # only the model's crop can hold parts: it is refined as a frame of its own
                from parttrack.engine.refine import MaskRefiner

                inner = lb.box_letterbox
                refiner = MaskRefiner((inner.src_h, inner.src_w), out.masks.shape[2:], inner)
        centres[start:start + len(batch)] = lb.norm_to_source(out.transforms[..., 4:6])
        for i, m in enumerate(out.masks):
            src = (lb.paste_box(refiner(np.asarray(m, np.float32), lb.cut_box(frames[start + i])).to_source(), 0.0)
                   if refiner is not None else masks_to_source(m, maps))
            lb.fill_outside(src[1:], 0.0)     # outside the model's crop: background
            lb.fill_outside(src[0], 1.0)
            labels[start + i] = part_labels(src)
            fg = src[1:].astype(np.float64)
            area = fg.sum(axis=(1, 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                centroids[start + i, :, 0] = (fg * xs).sum(axis=(1, 2)) / area
                centroids[start + i, :, 1] = (fg * ys).sum(axis=(1, 2)) / area
    return Prediction(labels, centres, centroids)


def _read_video_frames(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (OSError, av.error.FFmpegError) as exc:
        raise InputError(f"cannot decode {path} ({exc})", "regenerate it with `parttrack eval BUNDLE --generate`") from None
    if not frames:
        raise InputError(f"{path} has no frames")
    return np.stack(frames)


def evaluate_bundle(bundle_path: str | Path, video: str | Path | SyntheticVideo, backend: str = "onnxruntime",
                    matching: str = "hungarian", batch_size: int = 16, threads: int | None = None,
                    refine: bool = False) -> dict:
    """Run a model bundle on a synthetic video and score it against the ground truth.

    Args:
        bundle_path: a bundle folder (or its model.onnx).
        video: a folder written by :meth:`engine.synthetic.SyntheticVideo.save` (its
            ``video.mp4`` is decoded, so compression is part of the test), or an in-memory
            :class:`~engine.synthetic.SyntheticVideo` (its exact frames are used).
        backend: runtime backend (see :func:`engine.runtime.create_runtime`).
        matching: ``"hungarian"`` or ``"max_overlap"`` (see :func:`part_iou`).
        batch_size: frames per inference call.
        threads: CPU threads for the runtime (None = its default).
        refine: score the guided-filter masks (see :func:`predict_video`).

    Returns:
        the dict of :func:`evaluate_prediction` plus ``bundle``, ``video``, ``runtime``.

    Raises:
        InputError: missing/undecodable video or ground truth, or a frame count that does
            not match the ground truth.
        BundleError, BackendUnavailable: from the runtime factory.
    """
    from parttrack.engine.runtime import create_runtime

    if isinstance(video, SyntheticVideo):
        frames, gt, name = video.frames, video.ground_truth, f"generated(figure_seed={video.figure_seed}, motion_seed={video.motion_seed})"
    else:
        vdir = Path(video)
        gt = load_ground_truth(vdir)
        if not (vdir / VIDEO_FILE).is_file():
            raise InputError(f"no {VIDEO_FILE} in {vdir}", "pass a folder written by SyntheticVideo.save or use --generate")
        frames, name = _read_video_frames(vdir / VIDEO_FILE), str(vdir)
        if frames.shape[:3] != gt.labels.shape:
            raise InputError(f"{vdir}: video has {frames.shape[:3]} (T, H, W) but the ground truth has {gt.labels.shape}")
    runtime = create_runtime(bundle_path, backend=backend, threads=threads)
    pred = predict_video(runtime, frames, batch_size=batch_size, refine=refine)
    result = evaluate_prediction(pred.labels, pred.centres, gt, runtime.meta.num_parts, matching,
                                 pred_centroids=pred.centroids)
    result.update(bundle=str(bundle_path), video=name, runtime=runtime.describe())
    return result


def format_report(result: dict) -> str:
    """Human-readable lines for the terminal."""
    lines = [
        f"video: {result.get('video', '?')}  ({result['frames']} frames)",
        f"model: {result.get('bundle', '?')}  K={result['num_parts']}  runtime: {result.get('runtime', '?')}",
        f"part IoU ({result['matching']} matching, mean over {result['gt_parts']} GT parts): {result['part_iou']:.3f}",
        f"foreground IoU: {result['foreground_iou']:.3f}",
        f"landmark error (transform centres -> joints, linear regression): {result['landmark_error_pct']:.2f}% of image size",
    ]
    if "landmark_error_centroid_pct" in result:
        lines.append(f"landmark error (mask centroids): {result['landmark_error_centroid_pct']:.2f}% of image size")
    lines.append(f"landmark error floor (true part centres): {result['landmark_error_oracle_pct']:.2f}%")
    lines.append("per part: " + ", ".join(
        f"{n} {v:.2f}<-{result['assignment'][n] or '-'}" for n, v in result["part_iou_per_part"].items()))
    return "\n".join(lines)
