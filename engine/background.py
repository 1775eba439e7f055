"""The static background image of a static-camera shot, with the subject taken out.

The per-pixel temporal median is the background only where the subject covers a pixel in
fewer than half of the frames. A subject that stays in one place (a torso, an animal's body)
covers its middle in most frames, so the median shows the subject there, and the
background-subtraction map (``|frame − background|``) then misses the subject's middle and
fires where the subject has just left.

:func:`estimate_background` starts from the median and alternates two steps, a few times:

1. **Where is the subject in each frame?** The pixels that differ from the current background
   (the same test as the training's changed-pixel map, under each frame's light,
   :func:`engine.losses.lit_background`), together with the pixels that optical flow from the
   background image to the frame finds displaced (DIS flow, forward–backward checked): the
   median's picture of a subject that stays put is displaced in each frame by the subject's
   small movements. The union is closed, its holes are filled (a subject's middle is
   enclosed by its moving outline) and it is dilated by a margin.
2. **The background** is the per-pixel median over the frames where the pixel is outside that
   support. Pixels covered in (almost) every frame have no view of the background; they are
   filled in from their surroundings (OpenCV's Telea inpainting, ``cv2.inpaint``).

This is the classic "background estimation with foreground masking" loop of background
subtraction (e.g. Piccardi, "Background subtraction techniques: a review", 2004, §2), with
optical flow as the extra cue. It uses the frames only.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from parttrack.engine import losses as L
from parttrack.engine.flow import forward_backward

#: Most frames the estimate looks at, evenly spread over the shot.
MAX_FRAMES = 96


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (uint8 0/1) with every region not connected to the image border set to 1."""
    h, w = mask.shape
    pad = np.zeros((h + 2, w + 2), np.uint8)
    pad[1:-1, 1:-1] = mask
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    return (pad | (1 - flood))[1:-1, 1:-1]


def fill_changed(changed: torch.Tensor, close: int = 3) -> torch.Tensor:
    """The changed-pixel maps closed and with their holes filled: a subject whose middle sits
    in the temporal median (it is there in most frames) differs from it only along its moving
    outline; the region that outline encloses is the subject too.

    Args:
        changed: ``(N, h, w)`` float or bool in {0, 1} (:func:`engine.losses.changed_pixels`,
            at any resolution).
        close: side of the square closing element in pixels (0 or 1: no closing), which joins an
            outline broken by a pixel or two before the holes are filled.

    Returns:
        ``(N, h, w)`` float32 in {0, 1} on the device of ``changed``, ⊇ ``changed``.

    Raises:
        ValueError: not a 3-D map.
    """
    if changed.dim() != 3:
        raise ValueError(f"changed must be (N, h, w), got {tuple(changed.shape)}")
    maps = (changed.detach().cpu().numpy() > 0.5).astype(np.uint8)
    out = np.empty(maps.shape, np.float32)
    for i, m in enumerate(maps):
        if close > 1:          # a closing never removes a pixel: the result stays ⊇ changed
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
        out[i] = _fill_holes(m)
    return torch.from_numpy(out).to(changed.device)


def _displaced(dis, bg_gray: np.ndarray, gray: np.ndarray, min_px: float, fb_px: float) -> np.ndarray:
    """Pixels of ``gray`` whose DIS flow from ``bg_gray`` exceeds ``min_px`` and passes the
    forward–backward check within ``fb_px`` (:func:`engine.flow.forward_backward`); (S, S) bool."""
    fw, trusted = forward_backward(dis, bg_gray, gray, abs_px=fb_px, rel=0.0)
    return trusted & (np.linalg.norm(fw, axis=-1) > min_px)


def estimate_background(frames: np.ndarray, change_threshold: float = 0.05, iterations: int = 2,
                        flow_min_px: float = 0.7, max_inpaint_share: float = 0.4,
                        max_frames: int = MAX_FRAMES) -> tuple[np.ndarray, dict]:
    """The static background image of one static-camera shot (module docstring).

    Args:
        frames: ``(T, S, S, 3)`` uint8 RGB frames of one shot (T ≥ 2), any square or
            rectangular size.
        change_threshold: a pixel differs from the background where the mean |frame − lit
            background| over RGB exceeds this, in [0, 1] units (as
            :attr:`engine.train.LossWeights.change_threshold`).
        iterations: support/background alternations (0: the plain temporal median).
        flow_min_px: flow from the background image larger than this (input pixels) counts as
            displaced.
        max_inpaint_share: when more than this share of the image would have to be inpainted
            (the support covers most of the frame: flicker, a moving camera), the previous
            estimate is kept and the loop stops.
        max_frames: at most this many frames, evenly spread, are used.

    Returns:
        ``(background (H, W, 3) float32 in [0, 255] RGB, info)``; ``info`` holds
        ``iterations`` (the alternations kept), ``inpainted_share`` (share of the image filled
        in from its surroundings) and ``support_share`` (mean share of a frame in the support).

    Raises:
        ValueError: bad shapes or dtype.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"frames must be (T >= 2, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    sel = frames[np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))]
    n, h, w = sel.shape[:3]
    background = np.median(sel, axis=0).astype(np.float32)
    info = {"iterations": 0, "inpainted_share": 0.0, "support_share": 0.0}
    if iterations <= 0:
        return background, info
    unit = max(h, w) / 128.0                                    # kernel sizes are for a 128-pixel input
    k_open = np.ones((3, 3), np.uint8)
    k_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(9 * unit) | 1,) * 2)
    k_margin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(7 * unit) | 1,) * 2)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in sel])
    x = torch.from_numpy(sel).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    min_free = max(3, int(0.05 * n))
    for _ in range(iterations):
        bg_t = torch.from_numpy(background).permute(2, 0, 1) * (2.0 / 255.0) - 1.0
        with torch.no_grad():
            changed = L.changed_pixels(x, bg_t, change_threshold).numpy()
        bg_gray = cv2.cvtColor(np.clip(background + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
        support = np.empty((n, h, w), bool)
        for t in range(n):
            m = cv2.morphologyEx(changed[t].astype(np.uint8), cv2.MORPH_OPEN, k_open)
            m |= _displaced(dis, bg_gray, gray[t], flow_min_px, 0.5).astype(np.uint8)
            m = _fill_holes(cv2.morphologyEx(m, cv2.MORPH_CLOSE, k_close))
            support[t] = cv2.dilate(m, k_margin).astype(bool)
        free = ~support
        count = free.sum(0)[..., None]                          # (h, w, 1) frames showing the background
        hole = count[..., 0] < min_free
        if hole.mean() > max_inpaint_share:
            break
        # median over the free frames: sort with the covered frames pushed to the end
        vals = np.where(free[..., None], sel.astype(np.float32), np.inf)
        vals.sort(axis=0)
        lo = np.take_along_axis(vals, np.maximum(count - 1, 0)[None] // 2, 0)[0]
        hi = np.take_along_axis(vals, np.maximum(count, 1)[None] // 2, 0)[0]
        est = np.where(count > 0, 0.5 * (lo + hi), background).astype(np.float32)
        if hole.any():
            est = cv2.inpaint(np.clip(est + 0.5, 0, 255).astype(np.uint8), hole.astype(np.uint8),
                              max(3, int(5 * unit)), cv2.INPAINT_TELEA).astype(np.float32)
        background = est
        info = {"iterations": info["iterations"] + 1, "inpainted_share": round(float(hole.mean()), 4),
                "support_share": round(float(support.mean()), 4)}
    return background, info


def temporal_mode(frames: np.ndarray, tolerance: float = 0.05, candidates: int = 48, max_frames: int = 150,
                  chunk: int = 1024) -> np.ndarray:
    """The per-pixel temporal mode of a static-camera shot: the colour that the most frames agree
    on, instead of the median.

    For each pixel, each of ``candidates`` frames (evenly spread) proposes its colour; its support
    is the number of frames within ``tolerance`` of it (mean absolute difference over RGB, in
    [0, 1] units — the training's change threshold); the background is the mean of the frames that
    support the best-supported candidate. Before that, every frame is divided by its global
    gain against the median (the median over pixels of the frame / median ratio), so that a slow
    change of light does not split one colour's support. Where a moving subject covers a pixel in
    most frames but shows different colours there (texture, shading, other parts passing), the
    scenery's one colour still has the largest support, while the median shows the subject: the
    consensus ("mode") estimate of background modelling (e.g. Piccardi, "Background subtraction
    techniques: a review", 2004, §2). A subject that shows the same colour at a pixel in most
    frames is still taken for background there.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB frames of one shot, static camera.
        tolerance: largest mean absolute RGB difference (in [0, 1]) between supporting colours.
        candidates: frames whose colours are tried at each pixel.
        max_frames: most frames looked at (evenly spread).
        chunk: pixels per vectorised block (working memory ≈ ``candidates × frames × chunk × 12``
            bytes: 88 MB with the defaults).

    Returns:
        ``(H, W, 3)`` float32 in [0, 255].

    Raises:
        ValueError: not a ``(T, H, W, 3)`` stack with T ≥ 1.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got {frames.shape}")
    x = frames[:: max(1, len(frames) // max_frames)].astype(np.float32) / 255.0
    t, h, w, _ = x.shape
    median = np.median(x, 0)
    gain = np.median(x.reshape(t, -1) / np.maximum(median.reshape(-1), 1e-3), 1)
    x = (x / np.maximum(gain, 1e-3)[:, None, None, None]).reshape(t, -1, 3)
    cand = x[np.linspace(0, t - 1, min(candidates, t)).round().astype(int)]
    out = np.empty((h * w, 3), np.float32)
    for s in range(0, h * w, chunk):
        xs, cs = x[:, s:s + chunk], cand[:, s:s + chunk]
        support = np.abs(cs[:, None] - xs[None]).mean(-1) < tolerance          # (C, T, p)
        best = support.sum(1).argmax(0)                                       # (p,)
        agree = support[best, :, np.arange(support.shape[2])].T[..., None]    # (T, p, 1)
        out[s:s + chunk] = (xs * agree).sum(0) / np.maximum(agree.sum(0), 1)
    return (out.reshape(h, w, 3) * 255.0).clip(0, 255)
