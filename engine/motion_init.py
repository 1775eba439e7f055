"""Motion clusters: a label-free first segmentation of each training frame, to start the parts from.

For each frame, the pixels that differ from the static background image (the per-pixel
temporal median, with the frame's illumination gain, :func:`engine.losses.illumination_gain`)
are the moving subject; they are split into K clusters by k-means on their position and their
optical flow to a frame ``gap`` frames later (DIS flow, :mod:`engine.flow`), the classic
motion-layer idea (Wang & Adelson, "Representing moving images with layers", 1994): pixels that
are near each other and move alike form one part. The clusters are per frame and unordered;
the training loss that uses them (:func:`engine.losses.cluster_loss`) matches them to the
network's parts by the Hungarian algorithm, frame by frame.

Computed from the video only (no labels, no generator ground truth).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from parttrack.engine import losses as L
from parttrack.engine.flow import PRESETS, to_gray


def motion_clusters(frames: np.ndarray, background: np.ndarray, num_parts: int, mask_size: tuple[int, int],
                    gap: int = 2, change_threshold: float = 0.05, motion_weight: float = 1.0,
                    min_pixels_per_part: int = 4, seed: int = 0, indices: np.ndarray | None = None,
                    foreground: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Soft cluster targets for every frame at the mask resolution.

    Args:
        frames: ``(T, S, S, 3)`` uint8 RGB letterboxed training frames (T ≥ 2).
        background: ``(S, S, 3)`` float32 static background image in [0, 255] (RGB).
        num_parts: K clusters.
        mask_size: ``(h, w)`` of the targets.
        gap: the flow is measured from frame t to frame t + gap (t − gap for the last frames).
        change_threshold: a pixel is foreground where the mean |frame − lit background| over RGB
            exceeds this, in [0, 1] units (as :class:`engine.train.LossWeights.change_threshold`).
        motion_weight: the flow features are scaled to this many times the spread of the
            positions before clustering (0: position only).
        min_pixels_per_part: frames with fewer than ``K ×`` this many foreground pixels get no
            target.
        seed: k-means seed.
        indices: compute targets for these frames only (the others get none); None: all.
        foreground: ``(T, S, S)`` bool, the moving subject's pixels when known otherwise (e.g.
            :func:`engine.flow.moving_pixels` with a moving camera); replaces the comparison
            with ``background``.

    Returns:
        ``targets (T, K+1, h, w)`` float32: per mask pixel the share of its input pixels in the
        background (slot 0) and in each cluster (slots 1..K, in no particular order), summing to
        1; ``valid (T,)`` bool: frames with a target.

    Raises:
        ValueError: bad shapes.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"frames must be (T >= 2, S, S, 3) uint8, got {frames.shape} {frames.dtype}")
    t_n, s_h, s_w = frames.shape[:3]
    if background.shape != (s_h, s_w, 3):
        raise ValueError(f"background must be ({s_h}, {s_w}, 3), got {background.shape}")
    k = int(num_parts)
    h, w = (int(v) for v in mask_size)
    need = np.arange(t_n) if indices is None else np.unique(np.asarray(indices, int).clip(0, t_n - 1))
    if foreground is not None:
        if foreground.shape != (t_n, s_h, s_w):
            raise ValueError(f"foreground must be ({t_n}, {s_h}, {s_w}), got {foreground.shape}")
        fg = foreground.astype(bool)
    else:  # |frame − lit background| > threshold, in chunks
        bg = torch.from_numpy(np.ascontiguousarray(background, np.float32)).permute(2, 0, 1) * (2.0 / 255.0) - 1.0
        fg = np.zeros((t_n, s_h, s_w), bool)
        for i in range(0, len(need), 64):
            sel = need[i:i + 64]
            x = torch.from_numpy(frames[sel]).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
            fg[sel] = L.changed_pixels(x, bg, change_threshold).numpy()
    kernel = np.ones((3, 3), np.uint8)
    gray = to_gray(frames)
    dis = cv2.DISOpticalFlow_create(PRESETS["fast"])
    ys, xs = np.mgrid[0:s_h, 0:s_w].astype(np.float32)
    pos = np.stack([xs * (2.0 / s_w) - 1.0, ys * (2.0 / s_h) - 1.0], -1)          # (S, S, 2) normalised
    targets = np.zeros((t_n, k + 1, h, w), np.float32)
    valid = np.zeros(t_n, bool)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-4)
    for t in need:
        m = cv2.morphologyEx(fg[t].astype(np.uint8), cv2.MORPH_OPEN, kernel).astype(bool)
        labels = np.zeros((s_h, s_w), np.int32)
        n_fg = int(m.sum())
        if n_fg >= k * min_pixels_per_part:
            other = t + gap if t + gap < t_n else max(0, t - gap)
            flow = dis.calc(gray[t], gray[other], None) * np.array([2.0 / s_w, 2.0 / s_h], np.float32)
            p, f = pos[m], flow[m]
            if other < t:
                f = -f
            scale = motion_weight * float(p.std(0).mean()) / max(float(f.std(0).mean()), 1e-6)
            feats = np.concatenate([p, f * scale], 1).astype(np.float32)
            _, lab, _ = cv2.kmeans(feats, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
            labels[m] = lab[:, 0] + 1
            valid[t] = True
        onehot = (labels[None] == np.arange(k + 1)[:, None, None]).astype(np.float32)   # (K+1, S, S)
        targets[t] = F.adaptive_avg_pool2d(torch.from_numpy(onehot), (h, w)).numpy()
    return targets, valid
