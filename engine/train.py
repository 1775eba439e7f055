"""Unsupervised training of the co-part network on frames of one subject (Gao et al. 2021).

One step (paper Sec. 3): sample B frame pairs (source s, target t) of the same video; encode
both (latent maps V_k, masks, transforms T_k); retarget each part's latent map from s to t,
``Ṽ_k = T_k^t ∘ (T_k^s)⁻¹ ∘ V_k^s`` (a ``grid_sample``; the background slot is not moved);
because the decoder is pointwise this equals warping the *decoded* depth and part image,
which is what is computed (one decoder pass per frame); assemble the retargeted target and the recovered source; losses
(:mod:`engine.losses`): reconstruction of the target (and ×``source`` of the source),
background, translation, covariance, equivariance (an extra encoder pass on a randomly warped
target) and concentration. Reconstruction is compared at the latent resolution h×h on an
image pyramid (decoding at full resolution was ~10× slower on the CPU, see NOTES.md).

Static-camera cue (``static_background``): the background slot's part image is a learned
image initialised to the per-pixel temporal median of the training frames (one image per shot
when ``shot_starts`` marks shot cuts: each frame is compared with its own shot's), instead of being
decoded from the source frame; the background stays where it is in the target. The same
image also gives a background-subtraction prior (loss ``change_prior``, not in the paper):
pixels that differ from it should not go to the background slot, the others should. During
the background warm-up it prevents a collapse — the static image reconstructs most of each
frame from the first step and would otherwise draw every pixel to the background slot, which
the parts never leave (their masks, and so their gradients, are zero); by default
(``change_prior_floor``) it stays on for the whole run, so the foreground keeps following the
subject's outline. Why each default is what it is, with the measurements: docs/training.md.

Weights of 0 switch a loss off (and skip its computation). The config, checkpoints
(``checkpoint.pt``, plain tensors, loaded with ``weights_only=True``), a CSV log and mask
snapshots (``snapshots/step_XXXXXX.png``) go to the run folder.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from parttrack.engine import losses as L
from parttrack.engine.bundle import default_part_colors
from parttrack.engine.errors import InputError, OutputError
from parttrack.engine.model import NetConfig, PartNet, build_network, mixed_precision
from parttrack.engine.types import part_labels
from parttrack.engine.warp import compose, invert, random_warps, tuple_to_matrix, warp

#: Depth logit given to warped part maps outside the source frame (grid_sample pads zeros).
_DEPTH_PAD = 20.0

#: Columns of log.csv (a term that is switched off or not yet active is logged as 0).
LOSS_TERMS = ("total", "rec_target", "rec_source", "background", "translation", "covariance",
              "equivariance", "concentration", "usage", "change_prior", "flow", "cluster", "mask_consistency",
              "motion_layers", "mask_entropy", "mask_equivariance")


def _log_columns(log_path: Path) -> list[str]:
    """The loss columns named by the header of an existing ``log.csv`` (after step, elapsed_s)."""
    with open(log_path, newline="") as fh:
        header = next(csv.reader(fh), [])
    return header[2:] if header[:2] == ["step", "elapsed_s"] else list(LOSS_TERMS)


#: Most frames that get motion-cluster targets (engine.motion_init), evenly spread over the video.
CLUSTER_FRAMES = 600

#: Most frames the end-of-training scenery check looks at, evenly spread over the video.
SCENERY_FRAMES = 600

#: Fewest frames a training video may have (pairs need motion between distinct frames).
MIN_FRAMES = 8


@dataclass(frozen=True)
class LossWeights:
    """Loss weights: the authors' public configuration (φ replaced by pyramid SSIM) with the
    background and concentration weights changed after watching the masks on generated
    videos (see the comments), plus the part-usage term and the change prior.

    A weight of 0 switches that loss off."""

    perceptual: float = 10.0
    l1: float = 1.0
    gradient: float = 5.0
    source: float = 0.1          # factor on the recovered-source reconstruction
    background: float = 0.1      # paper 0.5: with it the background slot swallowed the slow torso
    translation: float = 1.0
    covariance: float = 0.1
    equivariance: float = 0.02
    concentration: float = 0.25   # paper 0.35; at 1.0 the torso was split over 3 parts (a whole leg then shared one)
    usage: float = 1.0            # not in the paper: keeps every part alive (see losses.part_usage_loss)
    usage_share: float = 0.3      # each part should own ≥ usage_share / K of the foreground
    change_prior: float = 0.3     # not in the paper: against the early all-background collapse (module docstring)
    change_threshold: float = 0.05  # a pixel "changed": mean |frame − static background| over RGB, in [0, 1] units
    flow: float = 0.0             # not in the paper: motion-layer loss against measured optical flow (losses.flow_loss)
    cluster: float = 1.0          # not in the paper: start the parts from motion clusters (losses.cluster_loss)
    mask_consistency: float = 0.0  # not in the paper: target masks = source masks moved by the parts (losses.mask_consistency_loss)
    motion_layers: float = 0.0    # not in the paper: foreground pixels to the part whose affine flow fit explains them (losses.motion_layer_loss)
    mask_entropy: float = 0.0     # not in the paper: hardens soft masks, ramped in with the background loss (losses.mask_entropy_loss)
    mask_equivariance: float = 0.0  # not in the paper: masks of a warped frame = the frame's masks warped (losses.mask_equivariance_loss; sweep MEQ)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the ``training`` section of config.json).

    Attributes:
        steps: stop after this many optimiser steps (None: only the time budget).
        minutes: wall-clock budget in minutes (None: only ``steps``).
        batch: frame pairs per step.
        lr: Adam learning rate.
        lr_warmup: the learning rate ramps linearly from ``lr / lr_warmup`` to ``lr`` over this
            many first steps (0: off), the usual guard against Adam's large first steps. (It
            does not by itself prevent the all-background collapse described in the module
            docstring.)
        lr_final: after the warm-up the learning rate follows a cosine from ``lr`` down to
            ``lr_final × lr`` at the end of the budget (``steps`` or ``minutes``, whichever is
            nearer to its end; 1.0: constant, the default) — SGDR's annealing (Loshchilov &
            Hutter, ICLR 2017) without restarts.
        seed: sampling and initialisation seed.
        pyramid_levels: scales of the reconstruction pyramid.
        recon_scale: the reconstructions are compared at ``recon_scale ×`` the mask resolution
            (1, 2 or 4): masks and part images are upsampled bilinearly — as the inference
            does with the masks — before assembly, and the frames are area-downsampled to that
            size. At 1, a limb one mask pixel wide blurs into the background colour in the
            target image and gives the parts little reconstruction signal. Default 1
            (docs/training.md).
        static_background: the background slot shows one fixed image (static camera: the
            per-pixel temporal median) instead of an image decoded from the source frame.
        camera_background: without ``static_background`` (a moving camera), the background
            slot decoded from the source frame is moved to the target frame by the camera's
            motion (:func:`engine.flow.camera_motion`: the dominant affine motion of the pair's
            optical flow) before the target is assembled, as a motion layer of its own (Wang &
            Adelson 1994); off: it is kept where it was in the source (the paper's retargeting,
            §3.2), and the parts must explain the scenery's motion.
        estimate_background: (off by default; docs/training.md) with ``static_background``,
            that image is the median with the subject taken out
            (:func:`engine.background.estimate_background`: the median over the frames where
            the subject is elsewhere, inpainted where it always is) instead of the plain
            temporal median, which shows a subject that stays in one place as background.
        mode_background: (off by default; docs/training.md) with ``static_background`` and
            without ``estimate_background``, that image is the per-pixel temporal mode
            (:func:`engine.background.temporal_mode`: the colour most frames agree on) instead of
            the median.
        learn_background: let that image be learnt (it drifts towards parts that stay put,
            so it is off by default).
        max_pair_gap: largest frame distance between source and target (None: any pair).
        shot_starts: first frame index of every shot after the first (shot cuts, and the
            joins between training videos; :mod:`engine.footage`): the two frames of a
            training pair are always in the same shot, each shot has its own static background
            image (its own temporal median), its own motion clusters and its own moving-pixel
            map (no comparison across a cut). Empty: one shot.
        content_boxes: where the source frame lies inside the letterboxed input,
            ``(x, y, w, h)`` input pixels (:attr:`engine.preprocess.Letterbox.inner_box`), one per
            shot (or one for every shot); empty: the frame fills the input. The letterbox padding
            copies the frame's edge rows or columns, so whatever touches or crosses an edge (a
            foot, a moving camera) smears into stripes across it; those pixels are left out of
            the changed-pixel and moving-pixel maps (the change prior gives them to the
            background slot; the part-usage term does not count them) and of the reconstruction
            losses.
        crop: ``(x, y, w, h)`` source pixels of the rectangle of the source frames the training
            frames show (``parttrack train --crop``, or the crop it chooses around the subject,
            :func:`engine.footage.choose_crop`); None: whole frames. Training does not use it;
            it is recorded in the bundle (:attr:`engine.bundle.BundleMeta.crop`) so tracking
            cuts the same rectangle.
        crop_frame: ``(w, h)`` of the source frames ``crop`` is on.
        equivariance_every: run the warped-target encoder pass every n steps (cost control).
        background_warmup: the background loss is off for this many steps, then ramps up
            linearly over as many more (early on it drives every pixel to the background slot
            before the part images have learnt any appearance).
        background_slot_warmup: also hold the background slot itself back during the warm-up
            (its depth logit offset by −8, ramping to 0 together with the background loss, and
            cut from the gradient until the ramp ends), so the parts must explain every pixel
            first — an older guard against the all-background collapse (module docstring).
            The parts then learn more slowly (part IoU 0.30 instead of 0.60 after 2,000
            steps) and it did not prevent the collapse on every machine, so it is off by
            default; the change prior (``LossWeights.change_prior``) replaces it.
        snapshot_every, checkpoint_every: steps between mask snapshots / checkpoints.
        warp_rotation_deg, warp_scale, warp_shift: range of the equivariance warps.
        flow_preset: DIS optical-flow preset for the flow loss (:mod:`engine.flow`).
        illumination: (default on, with ``static_background``) the static background image is
            multiplied per frame by a smooth gain field fitted to that frame
            (:func:`engine.losses.illumination_gain`: exposure changes and light gradients), both
            in the reconstruction and in the changed-pixel map of the usage loss and the change
            prior; without it a change of light counts as change that the parts must explain.
        cluster_steps: with a ``cluster`` weight, the cluster loss (:func:`engine.losses.cluster_loss`
            against :func:`engine.motion_init.motion_clusters`) is on at full weight for this many
            first steps, then fades out linearly over as many more.
        restarts, restart_steps: with ``restarts`` > 1, a fresh run starts that many times (seeds
            ``seed + 1000·r``) for ``restart_steps`` steps each and continues the start with the
            lowest ``restart_criterion`` (no labels: :meth:`Trainer.heldout_score`); the
            discarded starts count against the budget, and only as many starts are made as it
            holds in full (:func:`another_start_fits`).
        reallocate_steps, reallocate_cost, reallocate_max: (off by default) at each of these
            steps, up to ``reallocate_max`` parts that are wasted — a part with (almost) no mask,
            or the smaller of two parts that move as one affine layer (merge cost below
            ``reallocate_cost``, :func:`engine.flow.layer_merge_costs`) — are re-initialised as a
            copy of the part that leaves the most measured motion unexplained, so that the two
            can split it (:meth:`Trainer.reallocate_parts`). Only the video's optical flow is used.
        restart_criterion: ``"rec_target"`` (the reconstruction of a fixed set of held-out frame
            pairs) or ``"motion_residual"`` (:meth:`Trainer.motion_residual`).
        motion_changed: (default on) without a static background (a moving camera), the
            changed-pixel map of the usage loss and the change prior is the map of pixels that
            move relative to the dominant (camera) motion in some nearby frame
            (:func:`engine.flow.moving_pixels`) instead of nothing.
        moving_votes: in that map (which the end-of-training scenery test's "never moves" then
            uses too, unless ``moving_unsure``), a pixel moves when it does so in at least this
            many of its frame comparisons (``moving_pixels``' ``min_votes``).
        moving_unsure: (off by default) with ``moving_votes`` > 1, the pixels that move in at least
            one comparison but fewer than ``moving_votes`` are left out of the change prior
            (neither foreground nor background: :func:`engine.losses.background_subtraction_loss`'s
            ``ignore``) instead of being called background, and the scenery test's "never moves"
            uses the one-vote map. The part-usage term counts the ``moving_votes`` map only.
        fold_scenery: (default on) at the end of training, the parts that model the scenery
            (:func:`engine.scenery.detect_scenery` on the training frames: never visible,
            static, on the static background, or spread) are recorded in the bundle as dropped
            (folded into the background; ``parttrack label --reset-edits`` undoes it).
        change_prior_floor: after the background warm-up the change prior keeps this fraction
            of its weight (0: it fades out with the warm-up; 1: on at full weight for the whole
            run, so the foreground keeps following the background-subtraction map).
        usage_on_changed: (default on) the part-usage loss measures each part's share over the pixels that
            differ from the static background image only (``static_background``), instead of
            over everything not on the background slot.
        fill_changed: (off by default; docs/training.md) with ``static_background``, the
            changed-pixel map of the change prior and the usage loss is closed (3×3) and its holes
            are filled (:func:`engine.background.fill_changed`): a subject whose middle is in
            the temporal median differs from it only along its outline.
        changed_at_input: (off by default; docs/training.md) with ``static_background``, the
            changed-pixel map tests each input pixel against the static background and marks a
            mask pixel changed where more than half of its input pixels changed, instead of
            testing the area-averaged images at the mask resolution (where a thin limb over part
            of a mask pixel already exceeds the threshold, so the map is wider than the subject).
        changed_soft: (off by default; docs/training.md) with ``static_background``, the
            changed-pixel map is the share of each mask pixel's input pixels that differ from the
            static background (the test of ``changed_at_input`` without its majority vote), and the
            change prior takes it as a soft label (:func:`engine.losses.background_subtraction_loss`
            with ``soft``): the foreground probability it asks for is that share, so the masks,
            upsampled to the frame, can put the outline inside a mask pixel. Not with
            ``fill_changed`` (ValueError).
        usage_on_moving: (off by default; docs/training.md) with ``static_background``, the
            part-usage loss measures each part's share over the pixels that move
            (:func:`engine.flow.moving_pixels`, as with a moving camera) instead of over the
            changed pixels: a part is then asked to own some of the subject's *motion*, not some
            of its area, so a large motionless region (a trunk, a robot's base) does not draw
            parts away from the limbs. The change prior still uses the changed pixels. The map
            is built only with ``motion_changed`` (on by default); without it the usage term
            keeps the changed pixels.
        device: ``"cpu"`` or ``"cuda"``.
        precision: the dtype the network's convolutions and decoder run in during training
            (:func:`engine.model.mixed_precision`): ``"bf16"`` (bfloat16 autocast: float32
            weights and loss arithmetic, bfloat16 matrix products), ``"fp32"``, or ``"auto"``
            (the default): bf16 where the device computes it natively (:func:`training_dtype`),
            else fp32. The exported model is float32 either way (docs/training_sweep.md, sweep
            BF: the same quality at equal steps, more steps in the time budget).
    """

    steps: int | None = 3000
    minutes: float | None = None
    batch: int = 6
    lr: float = 1e-3
    lr_warmup: int = 200
    lr_final: float = 1.0
    seed: int = 0
    pyramid_levels: int = 3
    recon_scale: int = 1
    static_background: bool = True
    camera_background: bool = True
    estimate_background: bool = False
    mode_background: bool = False
    learn_background: bool = False
    max_pair_gap: int | None = 25
    shot_starts: tuple[int, ...] = ()
    content_boxes: tuple[tuple[int, int, int, int], ...] = ()
    crop: tuple[int, int, int, int] | None = None
    crop_frame: tuple[int, int] | None = None
    equivariance_every: int = 1
    background_warmup: int = 300
    background_slot_warmup: bool = False
    snapshot_every: int = 250
    checkpoint_every: int = 250
    warp_rotation_deg: float = 15.0
    warp_scale: float = 0.1
    warp_shift: float = 0.1
    flow_preset: str = "fast"
    usage_on_changed: bool = True
    usage_on_moving: bool = False
    fill_changed: bool = False
    changed_at_input: bool = False
    changed_soft: bool = False
    change_prior_floor: float = 1.0
    illumination: bool = True
    cluster_steps: int = 300
    fold_scenery: bool = True
    motion_changed: bool = True
    moving_votes: int = 1
    moving_unsure: bool = False
    restarts: int = 1
    restart_criterion: str = "rec_target"
    restart_steps: int = 300
    reallocate_steps: tuple[int, ...] = ()
    reallocate_cost: float = 0.03
    reallocate_max: int = 2
    device: str = "cpu"
    precision: str = "auto"
    weights: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        data = dict(data)
        w = LossWeights(**data.pop("weights", {}))
        known = {f.name for f in fields(cls)}
        if "content_boxes" in data:     # JSON gives lists
            data["content_boxes"] = tuple(tuple(int(v) for v in box) for box in data["content_boxes"])
        for key in ("crop", "crop_frame"):
            if data.get(key) is not None:
                data[key] = tuple(int(v) for v in data[key])
        return cls(weights=w, **{k: v for k, v in data.items() if k in known})


def prepare_frames(frames: np.ndarray | list[np.ndarray], size: int,
                   box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Letterbox source frames (or their rectangle ``box``) to the square model input.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB (or a list of such arrays of any sizes).
        size: S.
        box: ``(x, y, w, h)`` source pixels cut out of every frame first (``TrainConfig.crop``);
            None: whole frames.

    Returns:
        ``(T, S, S, 3)`` uint8.

    Raises:
        InputError: fewer than :data:`MIN_FRAMES` frames.
        ValueError: ``box`` is not inside a frame.
    """
    from parttrack.engine.preprocess import Letterbox

    out = []
    for f in frames:
        lb = Letterbox.fit(f.shape[0], f.shape[1], size, box)
        out.append(lb.apply(np.ascontiguousarray(f)))
    if len(out) < MIN_FRAMES:
        raise InputError(f"training needs at least {MIN_FRAMES} frames, got {len(out)}",
                         "use a longer video (a few seconds of the subject moving)")
    return np.stack(out)


def content_masks(boxes: tuple[tuple[int, int, int, int], ...] | list, n_shots: int, size: int
                  ) -> torch.Tensor | None:
    """Masks of the source frame inside the letterboxed input (``TrainConfig.content_boxes``).

    Args:
        boxes: ``(x, y, w, h)`` input pixels per shot, or one box for every shot; empty: none.
        n_shots: number of shots of the training frames.
        size: input side S.

    Returns:
        ``(n_shots or 1, 1, S, S)`` float32 {0, 1} (1 inside the box), or None when there is no
        box or every box covers the whole input.

    Raises:
        ValueError: a box count other than 0, 1 or ``n_shots``, or a box not inside the input
            with a positive size.
    """
    if not boxes:
        return None
    if len(boxes) not in (1, n_shots):
        raise ValueError(f"content_boxes: one box or one per shot ({n_shots}), got {len(boxes)}")
    out = torch.zeros(len(boxes), 1, size, size)
    for i, (x, y, w, h) in enumerate(boxes):
        if w < 1 or h < 1 or x < 0 or y < 0 or x + w > size or y + h > size:
            raise ValueError(f"content box {(x, y, w, h)} is not inside the {size}x{size} input")
        out[i, :, y:y + h, x:x + w] = 1.0
    return None if bool(out.all()) else out


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of :attr:`TrainConfig.precision` on ``device``.

    ``"fp32"`` → None; ``"bf16"`` → ``torch.bfloat16``; ``"auto"`` → ``torch.bfloat16`` on a
    CPU whose oneDNN computes bfloat16 natively (AVX-512 BF16 or AMX,
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``) or a CUDA device that supports it
    (``torch.cuda.is_bf16_supported()``), else None (elsewhere bfloat16 is emulated and slower).

    Raises:
        ValueError: another ``precision``.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    if device.type == "cuda":
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return torch.bfloat16 if native else None


def _to_float(img_u8: torch.Tensor) -> torch.Tensor:
    return img_u8.permute(0, 3, 1, 2).to(torch.float32) * (2.0 / 255.0) - 1.0


class Trainer:
    """Holds the network, optimiser, frames and run folder; :meth:`run` trains.

    Args:
        frames: ``(T, S, S, 3)`` uint8 letterboxed training frames.
        net_config, train_config: see :class:`NetConfig`, :class:`TrainConfig`.
        run_dir: run folder (config.json, checkpoint.pt, log.csv, snapshots/).
    """

    def __init__(self, frames: np.ndarray, net_config: NetConfig, train_config: TrainConfig,
                 run_dir: str | Path) -> None:
        if frames.ndim != 4 or frames.shape[1:] != (net_config.input_size, net_config.input_size, 3):
            raise ValueError(f"frames must be (T, {net_config.input_size}, {net_config.input_size}, 3), "
                             f"got {frames.shape}")
        if len(frames) < MIN_FRAMES:
            raise InputError(f"training needs at least {MIN_FRAMES} frames, got {len(frames)}")
        self.cfg, self.tcfg = net_config, train_config
        self.device = torch.device(train_config.device)
        self.run_dir = Path(run_dir)
        try:
            (self.run_dir / "snapshots").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the run folder {self.run_dir} ({exc.strerror})") from None
        torch.manual_seed(train_config.seed)
        self.rng = np.random.default_rng(train_config.seed)
        self.warp_gen = torch.Generator().manual_seed(train_config.seed)
        self.frames = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        self.net = build_network(net_config).to(self.device)
        if train_config.recon_scale not in (1, 2, 4):
            raise ValueError(f"recon_scale must be 1, 2 or 4, got {train_config.recon_scale}")
        if train_config.changed_soft and train_config.fill_changed:
            raise ValueError("changed_soft and fill_changed cannot be combined (the hole filling needs a binary map)")
        #: the dtype of the network's products in training (None: float32)
        self.compute_dtype = training_dtype(train_config.precision, self.device)
        if train_config.restart_criterion not in ("rec_target", "motion_residual"):
            raise ValueError(f"restart_criterion must be 'rec_target' or 'motion_residual', "
                             f"got {train_config.restart_criterion!r}")
        h, w = (side * train_config.recon_scale for side in net_config.mask_size)
        from parttrack.engine.footage import shot_ids

        #: (T,) int64 shot of every frame; the shots' frame ranges [lo, hi).
        self.shot_of = shot_ids(len(frames), train_config.shot_starts)
        bounds = np.flatnonzero(np.diff(self.shot_of)) + 1
        self.shots = list(zip([0, *bounds.tolist()], [*bounds.tolist(), len(frames)]))
        #: (n_shots, 1, S, S) float32 {0, 1}: 1 on the source frame inside the letterbox of each
        #: shot, 0 on the padding (``content_boxes``); None when every shot fills the input.
        self.content = content_masks(train_config.content_boxes, len(self.shots), net_config.input_size)
        if self.content is not None:
            self.content = self.content.to(self.device)
        self._content_cache: dict[tuple[int, int], torch.Tensor] = {}
        # per shot the static background, (n_shots, S, S, 3) float32 in [0, 255]: the temporal
        # median, with the subject taken out (engine.background) when the camera is static
        self.background_info: list[dict] = []
        if train_config.static_background and train_config.estimate_background:
            from parttrack.engine.background import estimate_background

            cv2.setNumThreads(1)
            full_med = []
            for lo, hi in self.shots:
                bg, info = estimate_background(frames[lo:hi], train_config.weights.change_threshold)
                full_med.append(bg)
                self.background_info.append(info)
            full_med = np.stack(full_med)
        elif train_config.static_background and train_config.mode_background:
            from parttrack.engine.background import temporal_mode

            full_med = np.stack([temporal_mode(frames[lo:hi], train_config.weights.change_threshold)
                                 for lo, hi in self.shots])
        else:
            full_med = np.stack([np.median(frames[lo:hi][:: max(1, (hi - lo) // 64)], axis=0).astype(np.float32)
                                 for lo, hi in self.shots])
        #: (n_shots, S, S, 3) float32 [0, 255] static background of each shot at the input size.
        self.background_full = full_med
        med = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in full_med]) * (2.0 / 255.0) - 1.0
        #: (n_shots, 3, h, w) static background image of each shot, [-1, 1], at the reconstruction resolution.
        self.background = torch.nn.Parameter(torch.from_numpy(med).permute(0, 3, 1, 2).contiguous().to(self.device))
        learn_bg = train_config.static_background and train_config.learn_background
        self.background.requires_grad_(learn_bg)
        #: (n_shots, 3, S, S) the same images at the input size, [-1, 1], fixed; only with
        #: ``changed_at_input`` or ``changed_soft`` (None otherwise).
        self.background_input = torch.from_numpy(full_med * (2.0 / 255.0) - 1.0).permute(0, 3, 1, 2).contiguous() \
            .to(self.device) if train_config.static_background and (train_config.changed_at_input
                                                                    or train_config.changed_soft) else None
        self._background0 = self.background.data.clone()
        params = list(self.net.parameters()) + ([self.background] if learn_bg else [])
        self.opt = torch.optim.Adam(params, lr=train_config.lr)
        self.step = 0
        self.elapsed_s = 0.0
        self.snap_idx = np.linspace(0, len(frames) - 1, 4).round().astype(int)
        self.pair_flow, self.gray = None, None
        self._residual_flow: dict = {}    # (pairs, gap) -> (flow, trust) of motion_residual, measured once
        self.moving, self.moving_any = None, None
        self._initial_weights = None     # the warm start's weights (load_weights), for reinitialise
        if train_config.motion_changed and (not train_config.static_background or train_config.usage_on_moving):
            from parttrack.engine.flow import moving_pixel_levels, to_gray

            cv2.setNumThreads(1)
            votes = (train_config.moving_votes,)
            if train_config.moving_unsure and train_config.moving_votes > 1:
                votes += (1,)
            maps = torch.from_numpy(moving_pixel_levels(to_gray(frames), net_config.mask_size,
                                                        shot_starts=train_config.shot_starts,
                                                        min_votes=votes)).to(self.device)
            if self.content is not None:    # stripes of the letterbox padding do not move
                maps = maps * self.content_at(net_config.mask_size, np.arange(len(frames)))[None, :, 0]
            self.moving = maps[0]
            # moving_unsure: the one-vote map, where what moves in fewer comparisons is "unsure"
            self.moving_any = maps[1] if len(maps) > 1 else None
        self.clusters = None
        if train_config.weights.cluster:
            from parttrack.engine.motion_init import motion_clusters

            cv2.setNumThreads(1)
            foreground = None
            if self.moving is not None and not train_config.static_background:   # a moving camera: the moving pixels, at the input size
                sy, sx = (frames.shape[1 + i] // net_config.mask_size[i] for i in (0, 1))
                foreground = (self.moving.cpu().numpy() > 0.25).repeat(sy, 1).repeat(sx, 2)
            # At most CLUSTER_FRAMES frames, evenly spread: the term only lives for 2 × cluster_steps steps.
            idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), CLUSTER_FRAMES)).round().astype(int))
            k1, (mh, mw) = net_config.num_parts + 1, net_config.mask_size
            targets, valid = np.zeros((len(frames), k1, mh, mw), np.float32), np.zeros(len(frames), bool)
            for s, (lo, hi) in enumerate(self.shots):     # per shot: its background, no flow across a cut
                sel = idx[(idx >= lo) & (idx < hi)] - lo
                if hi - lo < 2 or not len(sel):
                    continue
                targets[lo:hi], valid[lo:hi] = motion_clusters(
                    frames[lo:hi], full_med[s], net_config.num_parts, net_config.mask_size,
                    change_threshold=train_config.weights.change_threshold, seed=train_config.seed, indices=sel,
                    foreground=None if foreground is None else foreground[lo:hi])
            self.clusters = (torch.from_numpy(targets).to(torch.float16).to(self.device),
                             torch.from_numpy(valid).to(self.device))
        if train_config.weights.flow or train_config.weights.motion_layers or self.moves_background:
            from parttrack.engine.flow import PairFlow

            cv2.setNumThreads(1)    # the pairs are small; OpenCV's pool would compete with torch's
            self.pair_flow = PairFlow(net_config.mask_size, train_config.flow_preset)
        self.write_config()

    @property
    def moves_background(self) -> bool:
        """Whether the background slot follows the camera between the frames of a pair
        (``camera_background`` with a moving camera)."""
        return self.tcfg.camera_background and not self.tcfg.static_background

    # -- bookkeeping ---------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"network": self.cfg.to_dict(), "training": asdict(self.tcfg)}

    def write_config(self) -> None:
        (self.run_dir / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        if self.background_info:     # how each shot's static background was estimated
            (self.run_dir / "background.json").write_text(json.dumps(self.background_info, indent=2) + "\n")

    def save_checkpoint(self) -> Path:
        path = self.run_dir / "checkpoint.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"net": self.net.state_dict(), "opt": self.opt.state_dict(), "background": self.background.data,
                    "step": torch.tensor(self.step), "elapsed_s": torch.tensor(self.elapsed_s),
                    "rng": torch.from_numpy(np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8).copy()),
                    "warp_rng": self.warp_gen.get_state()}, tmp)
        tmp.replace(path)
        return path

    def load_checkpoint(self, path: str | Path | None = None) -> bool:
        """Resume from ``run_dir/checkpoint.pt`` (or ``path``); False if there is none."""
        path = Path(path) if path else self.run_dir / "checkpoint.pt"
        if not path.is_file():
            return False
        ck = torch.load(path, map_location=self.device, weights_only=True)
        self.net.load_state_dict(ck["net"])
        self.opt.load_state_dict(ck["opt"])
        bg = ck["background"]
        self.background.data.copy_(bg[None] if bg.dim() == 3 else bg)   # older checkpoints: one (3, h, w) image
        self.step = int(ck["step"])
        self.elapsed_s = float(ck["elapsed_s"])
        self.rng.bit_generator.state = json.loads(bytes(ck["rng"].numpy()).decode())
        self.warp_gen.set_state(ck["warp_rng"])
        return True

    # -- one step ------------------------------------------------------------------------
    def sample_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """B random (source, target) frame pairs at most ``max_pair_gap`` apart, as uint8
        ``(B, S, S, 3)`` tensors; their frame indices are kept in ``last_pair_indices``."""
        n, b = len(self.frames), self.tcfg.batch
        src = self.rng.integers(0, n, b)
        gap = self.tcfg.max_pair_gap or n
        tgt = np.clip(src + self.rng.integers(-gap, gap + 1, b), 0, n - 1)
        if self.tcfg.shot_starts:  # never across a shot cut
            from parttrack.engine.footage import shot_bounds

            tgt = np.clip(tgt, *shot_bounds(src, self.tcfg.shot_starts, n))
        self.last_pair_indices = (src, tgt)
        return self.frames[torch.from_numpy(src)], self.frames[torch.from_numpy(tgt)]

    def batch_indices(self, src_u8: torch.Tensor, tgt_u8: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | None:
        """The frame indices (source, target) of a batch if it is the last one
        :meth:`sample_pairs` drew, else None."""
        idx = getattr(self, "last_pair_indices", None)
        if idx is not None and len(idx[0]) == len(src_u8) and torch.equal(
                self.frames[torch.from_numpy(idx[0])], src_u8) and torch.equal(self.frames[torch.from_numpy(idx[1])], tgt_u8):
            return idx
        return None

    def pair_flows(self, src_u8: torch.Tensor, tgt_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Measured optical flow ``(B, 2, h, w)`` and its trust ``(B, h, w)`` of a batch of pairs
        (:class:`engine.flow.PairFlow`; cached by frame indices when the batch is the last one
        :meth:`sample_pairs` drew)."""
        from parttrack.engine.flow import to_gray

        idx = self.batch_indices(src_u8, tgt_u8)
        if idx is not None:
            if self.gray is None:
                self.gray = to_gray(self.frames.cpu().numpy())
            flow, fw = self.pair_flow.for_pairs(self.gray, *idx)
        else:
            flow, fw = self.pair_flow(to_gray(src_u8.cpu().numpy()), to_gray(tgt_u8.cpu().numpy()))
        return torch.from_numpy(flow).to(self.device), torch.from_numpy(fw).to(self.device)

    def losses(self, src_u8: torch.Tensor, tgt_u8: torch.Tensor, heldout: bool = False,
               indices: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[torch.Tensor, dict[str, float], dict]:
        """Total loss, its terms, and the tensors used (for snapshots). ``heldout``: without the
        equivariance and cluster terms, and drawing no random numbers (:meth:`heldout_score`).
        ``indices``: the frame indices (source, target) of the batch, for the shots' background
        images (default: the last :meth:`sample_pairs` draw when it is this batch)."""
        w, net, tc = self.tcfg.weights, self.net, self.tcfg
        b = src_u8.shape[0]
        k = self.cfg.num_parts
        h, wd = self.cfg.mask_size
        x = _to_float(torch.cat([src_u8, tgt_u8]))
        ramp = min(1.0, max(0.0, self.step / max(1, tc.background_warmup) - 1.0)) if tc.background_warmup else 1.0
        bg_offset = -8.0 * (1.0 - ramp) if tc.background_slot_warmup and ramp < 1 else None
        enc = net.encode(x, background_offset=bg_offset, compute_dtype=self.compute_dtype)
        tf_s, tf_t = enc["transforms"][:b], enc["transforms"][b:]
        rs = tc.recon_scale
        small = F.interpolate(x, size=(h * rs, wd * rs), mode="area")
        img_s, img_t = small[:b], small[b:]
        if indices is None and len(self.shots) > 1:
            indices = self.batch_indices(src_u8, tgt_u8)
        bg = self.background_images(small, None if indices is None else np.concatenate(indices))
        cache: list[torch.Tensor] = []

        def changed() -> torch.Tensor | None:
            """:meth:`changed_map` of the batch (static camera) or its moving pixels
            (:func:`engine.flow.moving_pixels`, ``motion_changed``; None when unavailable),
            computed once."""
            if not cache:
                m = self.changed_map(x, small, bg, indices) if tc.static_background else moving()
                if m is not None and self.content is not None:
                    m = m * keep((h, wd))[:, 0]
                cache.append(m)
            return cache[0]

        def keep(size: tuple[int, int]) -> torch.Tensor:
            """(2B or 1, 1, *size) the batch's :meth:`content_at` (sources, then targets)."""
            return self.content_at(size, None if indices is None else np.concatenate(indices), 2 * b)

        def moving(maps: torch.Tensor | None = self.moving) -> torch.Tensor | None:
            """(2B, h, w) float {0, 1}: the batch's moving pixels (:func:`engine.flow.moving_pixels`
            share > 0.25; ``maps``: another map of the same frames); None without the map or when
            the batch is not the last one drawn."""
            idx = self.batch_indices(src_u8, tgt_u8) if maps is not None else None
            return None if idx is None else \
                (maps[torch.from_numpy(np.concatenate(idx)).to(self.device)] > 0.25).float()

        def unsure() -> torch.Tensor | None:
            """(2B, h, w) float {0, 1}: ``moving_unsure``'s pixels, moving in some comparison but
            not in ``moving_votes`` of them; None without that map or with a static camera."""
            if tc.static_background or self.moving_any is None or changed() is None:
                return None
            return torch.clamp(moving(self.moving_any) - changed(), min=0.0)

        # Retarget: Ṽ_k = T_k^t ∘ (T_k^s)^-1 ∘ V_k^s, background slot unchanged. D is pointwise,
        # so decoding commutes with the warp: warp the decoded depth and part image instead.
        rel = compose(tuple_to_matrix(tf_t), invert(tuple_to_matrix(tf_s)))          # (b, K, 2, 3)
        depth_s, parts_src = enc["depth"][:b], enc["parts"][:b]
        stack = torch.cat([depth_s[:, 1:, None] + _DEPTH_PAD, parts_src[:, 1:]], 2)   # (b, K, 4, h, w)
        moved = warp(stack.reshape(b * k, 4, h, wd), rel.reshape(b * k, 2, 3)).view(b, k, 4, h, wd)
        bg_depth, bg_part = depth_s[:, :1], parts_src[:, :1]
        if self.moves_background:       # the scenery follows the camera from source to target
            from parttrack.engine.flow import camera_motion

            flow, trust = self.pair_flows(src_u8, tgt_u8)
            if self.content is not None:    # fitted on the frame, not on the padding's stripes
                trust = trust * keep((h, wd))[:b, 0]
            cam = torch.from_numpy(camera_motion(flow.cpu().numpy(), trust.cpu().numpy())).to(x.device)
            scenery = warp(torch.cat([bg_depth, parts_src[:, 0]], 1), cam, padding_mode="border")
            bg_depth, bg_part = scenery[:, :1], scenery[:, None, 1:]
        depth_st = torch.cat([bg_depth, moved[:, :, 0] - _DEPTH_PAD], 1)
        parts_st = torch.cat([bg_part, moved[:, :, 1:]], 1)
        moved_masks = torch.softmax(depth_st, 1)
        masks_st, parts_st = self.upsampled(moved_masks, parts_st, bg[b:])
        masks_s, parts_s = self.upsampled(enc["masks"][:b], enc["parts"][:b], bg[:b])
        rec_t = L.assemble(masks_st, parts_st)
        rec_s = L.assemble(masks_s, parts_s)
        if self.content is not None:   # the padding's stripes are not compared
            inside = keep(small.shape[-2:])
            inside_s, inside_t = (inside, inside) if inside.shape[0] == 1 else (inside[:b], inside[b:])
            cmp_t, ref_t, cmp_s, ref_s = rec_t * inside_t, img_t * inside_t, rec_s * inside_s, img_s * inside_s
        else:
            cmp_t, ref_t, cmp_s, ref_s = rec_t, img_t, rec_s, img_s
        terms: dict[str, torch.Tensor] = {}
        terms["rec_target"] = L.reconstruction_loss(cmp_t, ref_t, w.l1, w.gradient, w.perceptual, tc.pyramid_levels)
        if w.source:
            terms["rec_source"] = w.source * L.reconstruction_loss(cmp_s, ref_s, w.l1, w.gradient, w.perceptual,
                                                                   tc.pyramid_levels)
        masks_all = enc["masks"]
        if w.background and ramp > 0:
            terms["background"] = w.background * ramp * L.background_loss(masks_all)
        if w.translation or w.covariance:
            t_loss, c_loss = L.transformation_losses(enc["transforms"], masks_all)
            if w.translation:
                terms["translation"] = w.translation * t_loss
            if w.covariance:
                terms["covariance"] = w.covariance * c_loss
        if w.usage:
            # With usage_on_changed, a part's share counts only over pixels that differ from the
            # static background image, so parts parked on the scenery do not satisfy it.
            # With usage_on_moving (static camera), over the moving pixels instead.
            where = changed() if tc.usage_on_changed and (tc.static_background or self.moving is not None) else None
            moved = moving() if tc.static_background and tc.usage_on_moving else None
            where = moved if moved is not None else where
            terms["usage"] = w.usage * L.part_usage_loss(masks_all, w.usage_share / k, where)
        prior_factor = max(1.0 - ramp, tc.change_prior_floor)
        if w.change_prior and (tc.static_background or self.moving is not None) and prior_factor > 0 \
                and changed() is not None:
            # Background subtraction against the static background image: changed pixels to the
            # parts, unchanged ones to the background slot. Full weight during the warm-up, then
            # change_prior_floor of it (0: it fades out as the background loss fades in).
            terms["change_prior"] = w.change_prior * prior_factor * L.background_subtraction_loss(
                enc["depth"], changed(), soft=tc.changed_soft, ignore=unsure())
        if w.mask_consistency:
            terms["mask_consistency"] = w.mask_consistency * L.mask_consistency_loss(moved_masks, enc["masks"][b:])
        if w.mask_entropy and ramp > 0:
            terms["mask_entropy"] = w.mask_entropy * ramp * L.mask_entropy_loss(masks_all)
        if w.concentration:
            terms["concentration"] = w.concentration * L.concentration_loss(masks_all)
        if w.flow and self.pair_flow is not None:
            terms["flow"] = w.flow * L.flow_loss(enc["masks"][:b], rel, *self.pair_flows(src_u8, tgt_u8))
        if w.motion_layers and self.pair_flow is not None:
            terms["motion_layers"] = w.motion_layers * L.motion_layer_loss(enc["masks"][:b],
                                                                          *self.pair_flows(src_u8, tgt_u8))
        if w.cluster and self.clusters is not None and self.step < 2 * tc.cluster_steps and not heldout:
            idx = self.batch_indices(src_u8, tgt_u8)
            if idx is not None:
                fade = min(1.0, 2.0 - self.step / max(1, tc.cluster_steps))
                sel = torch.from_numpy(np.concatenate(idx)).to(self.device)
                terms["cluster"] = w.cluster * fade * L.cluster_loss(masks_all, self.clusters[0][sel].float(),
                                                                     self.clusters[1][sel])
        if (w.equivariance or w.mask_equivariance) and self.step % max(1, tc.equivariance_every) == 0 \
                and not heldout:
            wm = random_warps(b, tc.warp_rotation_deg, tc.warp_scale, tc.warp_shift, self.warp_gen).to(x.device)
            x_w = warp(x[b:], wm, padding_mode="border")
            with mixed_precision(x.device, self.compute_dtype):
                feats_w = net.features(x_w)
                depth_w = net.decode_depth(net.latents(feats_w))
            feats_w = feats_w.float()
            depth_w = net.hold_background(depth_w.float(), bg_offset)
            masks_w = torch.softmax(depth_w, 1)
            if w.equivariance:
                tf_w = net.transforms(feats_w, masks_w)
                terms["equivariance"] = w.equivariance * L.equivariance_loss(wm, tf_t, tf_w)
            if w.mask_equivariance:
                terms["mask_equivariance"] = w.mask_equivariance * L.mask_equivariance_loss(masks_w, masks_all[b:], wm)
        total = sum(terms.values())
        info = {"src": img_s, "tgt": img_t, "rec_t": rec_t, "masks_st": masks_st, "rec_s": rec_s}
        return total, {k_: float(v_.detach()) for k_, v_ in terms.items()}, info

    def changed_map(self, x: torch.Tensor, small: torch.Tensor, bg: torch.Tensor,
                    indices: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
        """The changed-pixel map of a batch with a static background: ``(N, h, w)`` float {0, 1}
        at the mask resolution, 1 where the mean |frame − static background| over RGB exceeds
        ``change_threshold`` ([0, 1] units). Tested on the area-averaged images at the
        reconstruction resolution (``small``, ``bg``: ``(N, 3, h·rs, w·rs)`` in [-1, 1]), or with
        ``changed_at_input`` on the input pixels (``x``: ``(N, 3, S, S)`` in [-1, 1]) and kept
        where more than half of a mask pixel's input pixels changed; with ``changed_soft`` the
        share of them that changed, in [0, 1]; closed and hole-filled with ``fill_changed``.
        ``indices``: the frames' indices (source, target), for the shots."""
        tc, w = self.tcfg, self.tcfg.weights
        h, wd = self.cfg.mask_size
        if tc.changed_at_input or tc.changed_soft:
            bg_in = self.background_images(x, None if indices is None else np.concatenate(indices),
                                           self.background_input)
            hit = (L.background_difference(x, bg_in)[:, None] > w.change_threshold).float()
            share = F.adaptive_avg_pool2d(hit, (h, wd))[:, 0]
            mask = share if tc.changed_soft else (share > 0.5).float()
        else:
            diff = L.background_difference(small, bg.detach())[:, None]
            rs = tc.recon_scale
            mask = ((F.avg_pool2d(diff, rs) if rs > 1 else diff)[:, 0] > w.change_threshold).float()
        if tc.fill_changed:
            from parttrack.engine.background import fill_changed

            mask = fill_changed(mask)
        return mask

    def content_at(self, size: tuple[int, int], indices: np.ndarray | None = None, n: int = 1) -> torch.Tensor:
        """The source-frame area of frames (:attr:`content`, ``content_boxes``) at ``size``
        ``(h, w)``: ``(N, 1, h, w)`` float {0, 1}, 1 where more than half of a pixel's input pixels
        lie on the source frame. ``indices`` ``(N,)``: the frames' indices, for their shots' boxes;
        None: every shot's area together (``(1, 1, h, w)`` when all shots share one box, else
        ``n`` copies of the union). Raises ValueError without ``content_boxes``."""
        if self.content is None:
            raise ValueError("no content_boxes: the frames fill the input")
        key = tuple(int(v) for v in size)
        if key not in self._content_cache:
            self._content_cache[key] = (F.interpolate(self.content, size=key, mode="area") > 0.5).float()
        small = self._content_cache[key]
        if len(small) == 1:
            return small
        if indices is None:
            return small.amax(0, keepdim=True).expand(n, -1, -1, -1)
        return small[torch.from_numpy(self.shot_of[np.asarray(indices)]).to(small.device)]

    def background_images(self, images: torch.Tensor, indices: np.ndarray | None = None,
                          stack: torch.Tensor | None = None) -> torch.Tensor:
        """The static background image as each frame of ``images`` ``(N, 3, H, W)`` ([-1, 1], at
        the reconstruction resolution) sees it: ``(N, 3, H, W)``, its shot's image (``indices``
        ``(N,)``: the frames' indices; None: the shot whose image is nearest, mean absolute
        difference), multiplied by that frame's illumination gain
        (:func:`engine.losses.illumination_gain`) when ``illumination`` is on. ``stack``: the
        shots' images to use, ``(n_shots, 3, H, W)`` (default :attr:`background`; pass
        :attr:`background_input` for frames at the input size)."""
        n = images.shape[0]
        bgs = self.background if stack is None else stack
        lit = self.tcfg.illumination and self.tcfg.static_background
        if len(self.shots) == 1:
            return L.lit_background(images, bgs[0]) if lit else bgs[0].expand(n, -1, -1, -1)
        if indices is not None:
            shots = torch.from_numpy(self.shot_of[np.asarray(indices)]).to(images.device)
        else:
            shots = (images.detach()[:, None] - bgs.detach()[None]).abs().mean((2, 3, 4)).argmin(1)
        if not lit:
            return bgs[shots]
        order = torch.argsort(shots)
        groups = [L.lit_background(images[order[shots[order] == s]], bgs[s])
                  for s in torch.unique(shots).tolist()]
        return torch.cat(groups)[torch.argsort(order)]

    def upsampled(self, masks: torch.Tensor, parts: torch.Tensor, background: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks ``(N, K+1, h, w)`` and part images ``(N, K+1, 3, h, w)`` at the reconstruction
        resolution (``recon_scale``, bilinear), with the static background image in slot 0
        when ``static_background`` is on (``background`` ``(N, 3, H, W)``: per-frame images from
        :meth:`background_images`; None: the image itself)."""
        rs = self.tcfg.recon_scale
        n, k1, _, h, w = parts.shape
        if rs > 1:
            masks = F.interpolate(masks, scale_factor=rs, mode="bilinear", align_corners=False)
            parts = F.interpolate(parts.reshape(n, k1 * 3, h, w), scale_factor=rs, mode="bilinear",
                                  align_corners=False).view(n, k1, 3, h * rs, w * rs)
        if self.tcfg.static_background:
            bg = self.background[0].expand(n, -1, -1, -1) if background is None else background
            parts = torch.cat([bg[:, None], parts[:, 1:]], 1)
        return masks, parts

    def budget_fraction(self) -> float:
        """Fraction of the training budget used, in [0, 1]: the larger of steps / ``steps``
        and elapsed seconds / (60 × ``minutes``); 0 when neither is set."""
        tc = self.tcfg
        f = 0.0
        if tc.steps:
            f = max(f, self.step / tc.steps)
        if tc.minutes:
            f = max(f, self.elapsed_s / (60.0 * tc.minutes))
        return min(1.0, f)

    def learning_rate(self) -> float:
        """The learning rate for the next step: linear warm-up over ``lr_warmup`` steps, then a
        cosine from ``lr`` to ``lr_final × lr`` over the rest of the budget."""
        tc = self.tcfg
        ramp = min(1.0, (self.step + 1) / tc.lr_warmup) if tc.lr_warmup > 0 else 1.0
        decay = tc.lr_final + (1.0 - tc.lr_final) * 0.5 * (1.0 + math.cos(math.pi * self.budget_fraction()))
        return tc.lr * ramp * decay

    def train_step(self) -> dict[str, float]:
        self.net.train()
        src, tgt = self.sample_pairs()
        total, terms, _ = self.losses(src, tgt)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate()
        self.opt.step()
        self.step += 1
        terms["total"] = float(total.detach())
        return terms

    @torch.no_grad()
    def heldout_score(self, pairs: int = 24, seed: int = 12345) -> dict[str, float]:
        """Label-free quality figures on a fixed set of frame pairs (the same for every run on
        the same frames): the loss terms of :meth:`losses` (``rec_target``: how well the parts
        retarget the source onto the target; ``usage``: how evenly the parts share the changed
        pixels) without the equivariance and cluster terms, and ``motion_residual``
        (:meth:`motion_residual`). Leaves the training state (random generators, step) untouched."""
        rng = np.random.default_rng(seed)
        n = len(self.frames)
        src = rng.integers(0, n, pairs)
        gap = self.tcfg.max_pair_gap or n
        tgt = np.clip(src + rng.integers(-gap, gap + 1, pairs), 0, n - 1)
        if self.tcfg.shot_starts:
            from parttrack.engine.footage import shot_bounds

            tgt = np.clip(tgt, *shot_bounds(src, self.tcfg.shot_starts, n))
        self.net.eval()
        out: dict[str, float] = {}
        for i in range(0, pairs, self.tcfg.batch):
            s_, t_ = torch.from_numpy(src[i:i + self.tcfg.batch]), torch.from_numpy(tgt[i:i + self.tcfg.batch])
            _, terms, _ = self.losses(self.frames[s_], self.frames[t_], heldout=True, indices=(s_.numpy(), t_.numpy()))
            for k_, v_ in terms.items():
                out[k_] = out.get(k_, 0.0) + v_ * len(s_) / pairs
        out = {k_: out[k_] for k_ in ("rec_target", "rec_source", "usage", "flow") if k_ in out}
        out["motion_residual"] = self.motion_residual()
        return out

    @torch.no_grad()
    def motion_residual(self, pairs: int = 48, gap: int = 3) -> float:
        """Label-free: the share of the subject's measured motion that the parts leave unexplained
        as affine motion layers (:func:`engine.flow.motion_residual`; lower is better), on the
        frame pairs of :func:`engine.flow.residual_pairs`, with the DIS flow of
        :class:`engine.flow.PairFlow` at the mask resolution (measured once per ``pairs, gap``).
        Deterministic for given frames and weights; NaN without motion. On generated videos it
        ranks two runs on the same video right more often than the reconstruction loss
        (docs/training_sweep.md, "Sweep Q")."""
        from parttrack.engine.flow import motion_residual

        masks, flow, weight = self._residual_inputs(pairs, gap)
        return float("nan") if masks is None else motion_residual(masks, flow, weight)

    @torch.no_grad()
    def _residual_inputs(self, pairs: int, gap: int) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """Source masks ``(N, K+1, h, w)`` of the pairs of :func:`engine.flow.residual_pairs`, with
        their measured flow ``(N, 2, h, w)`` and trust ``(N, h, w)`` (flow cached per
        ``pairs, gap``); masks None when the video has no such pair."""
        from parttrack.engine.flow import PairFlow, residual_pairs, to_gray

        src, tgt = residual_pairs(len(self.frames), self.shots, pairs, gap)
        if not len(src):
            return None, np.zeros(0), np.zeros(0)
        if self.gray is None:
            self.gray = to_gray(self.frames.cpu().numpy())
        if (pairs, gap) not in self._residual_flow:
            self._residual_flow[pairs, gap] = PairFlow(self.cfg.mask_size, "fast")(self.gray[src], self.gray[tgt])
        flow, weight = self._residual_flow[pairs, gap]
        self.net.eval()
        masks = torch.cat([self.net.encode(self.frames[torch.from_numpy(src[i:i + 16])])["masks"]
                           for i in range(0, len(src), 16)])
        return masks.float().cpu().numpy(), flow, weight

    @torch.no_grad()
    def reallocate_parts(self, pairs: int = 48, gap: int = 3, dead_share: float = 0.005) -> list[dict]:
        """Move wasted parts to where the motion is not yet explained (``reallocate_steps``).

        On the frame pairs of :meth:`motion_residual`, :func:`engine.flow.layer_merge_costs` gives
        each part's mask share, its unexplained motion (``excess``) and, per pair of parts, the
        cost of moving one with the other's affine motion. Wasted parts: those with a share below
        ``dead_share``, then, cheapest pair first, the smaller part of each pair whose merge cost
        is below ``reallocate_cost`` (one rigid body split in two, or two motionless parts).
        Each (at most ``reallocate_max``) becomes a copy of the not yet chosen part with the
        largest excess (its slot's latent-map weights, depth bias, transform head and their Adam
        moments), the latent-map weights perturbed by 10 % of their spread (a fixed generator
        seeded by ``seed`` and the step), so that the two copies can split that part's pixels
        between two motions. Appended to ``reallocations.json`` in the run folder.

        Returns:
            one dict per move: ``step``, ``part`` (1-based, the re-initialised part), ``copy_of``,
            ``reason`` ("empty" or "merge with N"), ``share``, ``cost``, ``excess`` of the copied part.
        """
        from parttrack.engine.flow import layer_merge_costs

        tc = self.tcfg
        masks, flow, weight = self._residual_inputs(pairs, gap)
        if masks is None:
            return []
        share, excess, cost = layer_merge_costs(masks, flow, weight)
        k = len(share)
        wasted: list[tuple[int, str, float]] = [(j, "empty", float("nan")) for j in np.argsort(share)
                                                if not share[j] >= dead_share]
        taken = {j for j, _, _ in wasted}
        sym = np.fmin(cost, cost.T)
        order = sorted(((float(sym[i, j]), i, j) for i in range(k) for j in range(i + 1, k)
                        if np.isfinite(sym[i, j]) and sym[i, j] < tc.reallocate_cost))
        for c, i, j in order:
            if i in taken or j in taken:
                continue
            victim, keep = (i, j) if share[i] <= share[j] else (j, i)
            wasted.append((victim, f"merge with {keep + 1}", c))
            taken |= {i, j}
        victims = {j for j, _, _ in wasted}
        targets = [int(p) for p in np.argsort(-np.nan_to_num(excess, nan=-1.0))
                   if p not in victims and np.isfinite(excess[p]) and excess[p] > 0]
        moves = []
        for (victim, reason, c), p in zip(wasted[:tc.reallocate_max], targets):
            self._copy_part(p, int(victim))
            moves.append({"step": self.step, "part": int(victim) + 1, "copy_of": p + 1, "reason": reason,
                          "share": float(share[victim]), "cost": c, "excess": float(excess[p])})
        if moves:
            path = self.run_dir / "reallocations.json"
            done = json.loads(path.read_text()) if path.exists() else []
            path.write_text(json.dumps(done + moves, indent=1))
        self.net.train()
        return moves

    def _copy_part(self, src: int, dst: int) -> None:
        """Part ``dst`` (0-based) becomes a perturbed copy of part ``src`` (see :meth:`reallocate_parts`)."""
        net, cv = self.net, self.cfg.latent_channels
        rows = lambda part: slice((part + 1) * cv, (part + 2) * cv)   # noqa: E731 - the slot's latent channels
        pieces = [(net.latent_head.weight, rows(src), rows(dst)), (net.latent_head.bias, rows(src), rows(dst)),
                  (net.slot_bias, src + 1, dst + 1)] + [(p, src, dst) for p in
                                                         (net.head_w1, net.head_b1, net.head_w2, net.head_b2)]
        for param, a, b in pieces:
            param.data[b] = param.data[a]
            state = self.opt.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][b] = state[key][a]
        gen = torch.Generator().manual_seed(self.tcfg.seed * 100003 + self.step)
        weight = net.latent_head.weight.data[rows(dst)]
        noise = torch.randn(weight.shape, generator=gen).to(weight)
        net.latent_head.weight.data[rows(dst)] = weight + 0.1 * weight.std() * noise

    # -- snapshots -----------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, path: str | Path | None = None) -> Path:
        """PNG: rows = 4 frames spread over the video; columns = frame, part labels
        (:func:`engine.types.part_labels`, background black) blended on the frame,
        recovered-source reconstruction."""
        self.net.eval()
        imgs = self.frames[torch.from_numpy(self.snap_idx)]
        enc = self.net.encode(imgs)
        small = F.interpolate(_to_float(imgs), size=self.background.shape[-2:], mode="area")
        rec = L.assemble(*self.upsampled(enc["masks"], enc["parts"], self.background_images(small, self.snap_idx)))
        s = self.cfg.input_size
        colors = np.array([(0, 0, 0)] + list(default_part_colors(self.cfg.num_parts)), np.uint8)
        rows = []
        for i in range(len(imgs)):
            frame = imgs[i].cpu().numpy()
            lab = part_labels(enc["masks"][i].cpu().numpy())
            lab = cv2.resize(lab, (s, s), interpolation=cv2.INTER_NEAREST)
            blend = np.where(lab[..., None] > 0, (0.35 * frame + 0.65 * colors[lab]).astype(np.uint8), frame // 3)
            r = ((rec[i].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
            r = cv2.resize(r, (s, s), interpolation=cv2.INTER_NEAREST)
            rows.append(np.concatenate([frame, blend, r], 1))
        out = Path(path) if path else self.run_dir / "snapshots" / f"step_{self.step:06d}.png"
        ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
        tmp = out.with_name(f".{out.name}.tmp")      # written whole, then renamed: a reader (the
        tmp.write_bytes(png.tobytes())               # viewer's learn panel) never sees half a PNG
        tmp.replace(out)
        return out

    # -- the loop ------------------------------------------------------------------------
    def load_weights(self, bundle_dir: str | Path) -> None:
        """Start from a bundle's network weights (``weights.npz``; warm start) instead of a random
        initialisation. The optimiser and step stay fresh.

        Raises:
            InputError: the bundle's network settings (K, widths...) differ from this trainer's
                other than in the input size (:meth:`engine.model.NetConfig.weights_fit`), or it
                has no readable config.json / weights.npz.
        """
        from parttrack.engine.bundle import CONFIG_FILE, WEIGHTS_FILE
        from parttrack.engine.errors import BundleError
        from parttrack.engine.model import load_state_npz, read_config

        d = Path(bundle_dir)
        try:
            theirs = NetConfig.from_dict(read_config(d / CONFIG_FILE)["network"])
        except (BundleError, KeyError, OSError, TypeError, ValueError) as exc:
            raise InputError(f"cannot start from {d}: no readable network settings ({exc})",
                             "pass a bundle folder written by `parttrack train`") from None
        if not theirs.weights_fit(self.cfg):
            raise InputError(f"cannot start from {d}: its network {theirs.to_dict()} differs from this one, "
                             f"{self.cfg.to_dict()}, in more than the input size",
                             "train with the same --parts, or without --init")
        try:
            load_state_npz(self.net, d / WEIGHTS_FILE)
        except BundleError as exc:
            raise InputError(f"cannot start from {d}: {exc}") from None
        self.initialised_from = str(d)
        self._initial_weights = copy.deepcopy(self.net.state_dict())

    def reinitialise(self, seed: int) -> None:
        """A fresh start: optimiser and random streams from ``seed``, step 0, and new network
        weights — the warm start's weights again after :meth:`load_weights`, else a random
        initialisation from ``seed``."""
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.warp_gen = torch.Generator().manual_seed(seed)
        self.net = build_network(self.cfg).to(self.device)
        if self._initial_weights is not None:
            self.net.load_state_dict(self._initial_weights)
        self.background.data.copy_(self._background0)
        learn_bg = self.tcfg.static_background and self.tcfg.learn_background
        self.opt = torch.optim.Adam(list(self.net.parameters()) + ([self.background] if learn_bg else []), lr=self.tcfg.lr)
        self.step = 0

    def _state(self) -> dict:
        return {"net": copy.deepcopy(self.net.state_dict()), "opt": copy.deepcopy(self.opt.state_dict()),
                "background": self.background.data.clone(), "rng": copy.deepcopy(self.rng.bit_generator.state),
                "warp_rng": self.warp_gen.get_state(), "step": self.step}

    def _set_state(self, st: dict) -> None:
        self.net.load_state_dict(st["net"])
        self.opt.load_state_dict(st["opt"])
        self.background.data.copy_(st["background"])
        self.rng.bit_generator.state = st["rng"]
        self.warp_gen.set_state(st["warp_rng"])
        self.step = st["step"]

    def _loop(self, max_steps: int, limit_s: float, log_path: Path, bar, start: float, main: bool, on_step=None) -> dict:
        """Train until ``max_steps`` or ``limit_s``, logging every step to ``log_path``; ``main``:
        snapshots, checkpoints and ``on_step`` as configured (off for restart candidates)."""
        tc = self.tcfg
        last: dict[str, float] = {}
        new_log = not log_path.exists() or log_path.stat().st_size == 0
        # A resumed run keeps the columns its log.csv was started with (a parttrack version
        # with other loss terms), so every row matches its header.
        columns = list(LOSS_TERMS) if new_log else _log_columns(log_path)
        with open(log_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new_log:
                writer.writerow(["step", "elapsed_s"] + columns)
            while self.step < max_steps and self.elapsed_s < limit_s:
                last = self.train_step()
                self.elapsed_s = time.perf_counter() - start
                writer.writerow([self.step, f"{self.elapsed_s:.1f}"] + [f"{last.get(k_, 0.0):.5f}" for k_ in columns])
                bar.update(1)
                bar.set_postfix({k_: f"{v:.3f}" for k_, v in last.items() if k_ in ("total", "rec_target", "background")})
                if not main:
                    continue
                if self.step in tc.reallocate_steps:
                    self.reallocate_parts()
                if self.step % tc.snapshot_every == 0:
                    self.snapshot()
                    fh.flush()
                if self.step % tc.checkpoint_every == 0:
                    self.save_checkpoint()
                if on_step is not None:
                    on_step(self, last)
        return last

    def _restart_phase(self, max_steps: int, limit_s: float, bar, start: float) -> int:
        """Up to ``restarts`` starts of ``restart_steps`` steps from seeds ``seed + 1000·r``, as
        many as the budget holds (:func:`another_start_fits`); the one with the lowest
        ``restart_criterion`` (label-free, :meth:`heldout_score`) among those that ran their
        ``restart_steps`` in full (the first always counts) is kept and continued. Each
        candidate's log and last snapshot go to ``restarts/``; the choice to
        ``restarts/choice.json``; the kept one's log is copied into log.csv.

        Returns:
            the number of starts made."""
        tc = self.tcfg
        folder = self.run_dir / "restarts"
        folder.mkdir(exist_ok=True)
        best, scores = None, []
        phase_start = self.elapsed_s
        for r in range(tc.restarts):
            if r > 0:
                if not another_start_fits(r, tc.restart_steps, max_steps, limit_s - self.elapsed_s,
                                          self.elapsed_s - phase_start):
                    break
                self.reinitialise(tc.seed + 1000 * r)
            log = folder / f"r{r}_log.csv"
            log.unlink(missing_ok=True)
            self._loop(tc.restart_steps, limit_s, log, bar, start, main=False)
            self.snapshot(folder / f"r{r}_step_{self.step:06d}.png")
            score = self.heldout_score()
            scores.append({"restart": r, "seed": tc.seed + 1000 * r, "steps": self.step, **score})
            value = score[tc.restart_criterion]
            complete = r == 0 or self.step >= tc.restart_steps
            if best is None or complete and (value < best[0] or (np.isnan(best[0]) and not np.isnan(value))):
                best = (value, r, self._state())
            if self.elapsed_s >= limit_s:
                break
        self._set_state(best[2])
        (folder / "choice.json").write_text(json.dumps({"kept": best[1], "criterion": tc.restart_criterion,
                                                        "candidates": scores}, indent=2) + "\n")
        (self.run_dir / "log.csv").write_text((folder / f"r{best[1]}_log.csv").read_text())
        return len(scores)

    def restart_record(self) -> dict | None:
        """This run's restart choice (``restarts/choice.json``: ``{"kept", "criterion",
        "candidates"}``), or None when it made no restart phase."""
        path = self.run_dir / "restarts" / "choice.json"
        try:
            record = json.loads(path.read_text())
            return record if record.get("candidates") else None
        except (OSError, ValueError, AttributeError):
            return None

    def restarts_made(self) -> int:
        """How many starts this run's restart phase made (:meth:`restart_record`); 1 without one."""
        record = self.restart_record()
        return 1 if record is None else len(record["candidates"])

    def run(self, progress: bool = True, on_step=None) -> dict:
        """Train until ``steps`` or ``minutes`` is reached (whichever first). Ctrl-C saves a
        checkpoint and re-raises KeyboardInterrupt (during the restart phase nothing is saved:
        a resumed run starts that phase again).

        With ``restarts`` > 1 a fresh run first makes up to that many starts and keeps the best
        (:meth:`_restart_phase`); the discarded starts count against the budget (steps and
        minutes alike), and only as many are made as it holds.

        Returns:
            {"steps", "elapsed_s", "last": last loss terms}.
        """
        from parttrack.engine.progress import progress_bar

        tc = self.tcfg
        limit_s = tc.minutes * 60 if tc.minutes else math.inf
        max_steps = tc.steps if tc.steps else 10 ** 9          # every start's steps count
        restarting = tc.restarts > 1 and self.step < tc.restart_steps
        if restarting and self.step:
            self.reinitialise(tc.seed)
        made = 1 if restarting else self.restarts_made()
        bar = progress_bar(None if max_steps >= 10 ** 9 else max_steps, "train", "step",
                           initial=self.step + (made - 1) * tc.restart_steps, disable=not progress)
        last: dict[str, float] = {}
        start = time.perf_counter() - self.elapsed_s
        phase_done = not restarting
        try:
            if restarting:
                made = self._restart_phase(max_steps, limit_s, bar, start)
                phase_done = True
                self.save_checkpoint()
            if max_steps < 10 ** 9:      # the kept line's own step count
                max_steps -= (made - 1) * tc.restart_steps
            last = self._loop(max_steps, limit_s, self.run_dir / "log.csv", bar, start, main=True, on_step=on_step)
        except KeyboardInterrupt:
            if phase_done:
                self.save_checkpoint()
            raise
        finally:
            bar.close()
        self.save_checkpoint()
        self.snapshot()
        return {"steps": self.step, "elapsed_s": self.elapsed_s, "last": last}


def another_start_fits(made: int, restart_steps: int, max_steps: int, time_left_s: float, phase_s: float) -> bool:
    """Whether the restart phase holds one more start after ``made`` of them (``made`` ≥ 1).

    By steps: the new start and the kept line together must fit ``max_steps`` (every start's
    steps count against it; the kept line has ``restart_steps`` at least), i.e.
    ``(made + 1) · restart_steps ≤ max_steps``. By time: the ``time_left_s`` seconds of the budget
    must hold one more start at the pace of the starts made so far (``phase_s`` seconds for
    ``made`` starts); ``math.inf`` without a time budget.
    """
    if (made + 1) * restart_steps > max_steps:
        return False
    return time_left_s >= phase_s / made


def network_from_trainer(trainer: Trainer) -> PartNet:
    """The trained network in eval mode on the CPU (for export)."""
    return trainer.net.eval().cpu()


def predict_masks(net: PartNet, frames: np.ndarray, batch: int = 32) -> np.ndarray:
    """Soft masks ``(T, K+1, h, w)`` float16 of a network on ``(T, S, S, 3)`` uint8 frames."""
    net = net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), batch):
            masks, _ = net(torch.from_numpy(frames[i:i + batch]).to(next(net.parameters()).device))
            out.append(masks.cpu().numpy().astype(np.float16))
    return np.concatenate(out)


def mask_statistics(net: PartNet, frames: np.ndarray, batch: int = 32, masks: np.ndarray | None = None) -> dict:
    """Quality figures of a trained network on (letterboxed) frames, no ground truth needed.

    ``masks``: the network's masks on ``frames`` when already computed (:func:`predict_masks`).

    Returns:
        {"foreground_fraction": mean share of pixels not on the background,
         "part_area": K mean shares of pixels won by each part (:func:`engine.types.part_labels`),
         "dead_parts": 1-based ids of parts that win < 0.1 % of the pixels,
         "label_flicker": mean share of foreground pixels whose label changes between
         consecutive frames}.
    """
    if masks is None:
        masks = predict_masks(net, frames, batch)
    lab = part_labels(masks, axis=1)
    k = net.config.num_parts
    area = [float((lab == i + 1).mean()) for i in range(k)]
    fg = lab > 0
    change = (lab[1:] != lab[:-1]) & (fg[1:] | fg[:-1])
    flicker = float(change.sum() / max(1, (fg[1:] | fg[:-1]).sum()))
    return {"foreground_fraction": float(fg.mean()), "part_area": [round(a, 5) for a in area],
            "dead_parts": [i + 1 for i, a in enumerate(area) if a < 1e-3], "label_flicker": round(flicker, 4)}


def scenery_parts(masks: np.ndarray, frames: np.ndarray, static_camera: bool = True,
                  moving: np.ndarray | None = None, background: np.ndarray | None = None
                  ) -> tuple[list, tuple[int, ...]]:
    """The parts of a trained network that model the scenery, to fold into the background.

    Args:
        masks: ``(T, K+1, h, w)`` the network's masks on ``frames`` (:func:`predict_masks`).
        frames: ``(T, S, S, 3)`` uint8 letterboxed training frames.
        static_camera: use the "on the static background" test (off with a moving camera).
        moving: ``(T, h, w)`` moving-pixel shares (:func:`engine.flow.moving_pixels`) for the
            "never moves" test, or None.
        background: ``(S, S, 3)`` float32 static background image of ``frames`` for the
            "on the static background" test (None: their temporal median).

    Returns:
        (the :class:`engine.scenery.ScenePart` scores of every part, the 1-based ids to drop).
        Nothing is dropped when every part is flagged (the subject was not found; the bundle
        keeps all parts and the notes say so).
    """
    from parttrack.engine.scenery import detect_scenery

    scores = detect_scenery(masks.astype(np.float32), frames if static_camera else None, moving=moving,
                            background=background if static_camera else None)
    drop = tuple(s.part for s in scores if s.scenery)
    if len(drop) == len(scores):
        drop = ()
    return scores, drop


def train_bundle(frames: np.ndarray, out_dir: str | Path, net_config: NetConfig, train_config: TrainConfig,
                 run_dir: str | Path, resume: bool = False, training_videos: tuple[dict, ...] = (),
                 part_names: tuple[str, ...] = (), progress: bool = True, notes_extra: str = "",
                 init: str | Path | None = None) -> Path:
    """Train on letterboxed frames and write a bundle (:func:`engine.export.export_bundle`).

    Args:
        frames: ``(T, S, S, 3)`` uint8 (see :func:`prepare_frames`).
        out_dir: bundle folder to write.
        net_config, train_config: settings; they are saved in ``run_dir/config.json``.
        run_dir: checkpoints, log, snapshots.
        resume: continue from ``run_dir/checkpoint.pt``.
        training_videos: [{"name", "sha256", "frames"}] for the bundle metadata.
        part_names: optional K names.
        init: a bundle folder to start from (:meth:`Trainer.load_weights`; ignored when a
            checkpoint is resumed).

    Raises:
        OutputError: ``run_dir`` holds a checkpoint and ``resume`` is False, or a checkpoint of
            a different network configuration.
        KeyboardInterrupt: after saving a checkpoint (resume with ``resume=True``).
    """
    run_dir = Path(run_dir)
    ck = run_dir / "checkpoint.pt"
    if ck.exists() and not resume:
        raise OutputError(f"{run_dir} already holds a training checkpoint",
                          "pass --resume to continue it, or choose another run folder / output")
    if resume and ck.exists():
        old = json.loads((run_dir / "config.json").read_text()).get("network", {})
        if old != json.loads(json.dumps(net_config.to_dict())):
            raise OutputError(f"the checkpoint in {run_dir} was made with a different network "
                              f"configuration ({old})", "resume with the same --parts/--size, or start a new run")
    trainer = Trainer(frames, net_config, train_config, run_dir)
    resumed = trainer.load_checkpoint() if resume else False
    if init is not None and not resumed:
        trainer.load_weights(init)
        notes_extra = f"\nStarted from the weights of {init} (warm start).\n" + notes_extra
    result = trainer.run(progress=progress)
    return write_trained_bundle(trainer, out_dir, training_videos, part_names, notes_extra,
                                last=result["last"])


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else (round(v, 4) if isinstance(v, float) else v))
            for k, v in d.items()}


def _restart_notes(choice: dict | None) -> str:
    if not choice:
        return ""
    values = ", ".join(f"seed {c['seed']}: {c.get(choice['criterion'], float('nan')):.4f}"
                       for c in choice["candidates"])
    return (f"\n- Restarts: {len(choice['candidates'])} starts ({choice['criterion']}, lower is better: "
            f"{values}); kept the start with seed {choice['candidates'][choice['kept']]['seed']}.")


def _scenery_notes(scores: list, drop: tuple[int, ...]) -> str:
    if not scores:
        return ""
    lines = ["## Parts on the scenery (engine.scenery, measured on the training frames)", ""]
    flagged = [s for s in scores if s.scenery]
    if not flagged:
        lines.append("None: every part is on the moving subject.")
    else:
        for s in flagged:
            lines.append(f"- part {s.part}: {s.reason}")
        lines.append("")
        lines.append(f"Folded into the background (dropped): {list(drop)}; undo with "
                     "`parttrack label BUNDLE --reset-edits`." if drop else
                     "Every part was flagged, so none was dropped: the subject was probably not found.")
    return "\n".join(lines) + "\n"


def write_trained_bundle(trainer: Trainer, out_dir: str | Path, training_videos: tuple[dict, ...] = (),
                         part_names: tuple[str, ...] = (), notes_extra: str = "",
                         last: dict | None = None, extra: dict | None = None) -> Path:
    """Export a trainer's network as a bundle with its training record and quality notes."""
    from parttrack.engine.bundle import BundleMeta
    from parttrack.engine.export import export_bundle
    from parttrack.engine.model import count_macs

    net_config, train_config, frames = trainer.cfg, trainer.tcfg, trainer.frames.cpu().numpy()
    net = network_from_trainer(trainer)
    masks = predict_masks(net, frames)
    stats = mask_statistics(net, frames, masks=masks)
    scores, drop = [], ()
    if train_config.fold_scenery:
        # At most SCENERY_FRAMES frames, evenly spread (the moving-pixel map costs ~20 ms a frame).
        idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), SCENERY_FRAMES)).round().astype(int))
        if trainer.moving is not None:    # moving_unsure: "never moves" in any comparison
            moving = (trainer.moving if trainer.moving_any is None else trainer.moving_any).cpu().numpy()[idx]
        else:
            from parttrack.engine.flow import moving_pixels, to_gray

            moving = moving_pixels(to_gray(frames), net_config.mask_size, indices=idx,
                                   shot_starts=train_config.shot_starts)
        # The "on the static background" test compares with the shot's static background:
        # only where there is one shot (the moving-pixel test is per shot).
        scores, drop = scenery_parts(masks[idx], frames[idx],
                                     train_config.static_background and len(trainer.shots) == 1, moving,
                                     trainer.background_full[0])
    del masks
    residual = trainer.motion_residual()
    last = {k: round(v, 4) for k, v in (last or {}).items()}
    result = {"steps": trainer.step, "elapsed_s": trainer.elapsed_s}
    choice = trainer.restart_record()
    if choice is not None:
        extra = {"restarts": choice, **(extra or {})}
    meta = BundleMeta(num_parts=net_config.num_parts, input_size=net_config.input_size,
                      mask_size=net_config.mask_size, part_names=part_names,
                      training_videos=training_videos, dropped_parts=drop,
                      crop=train_config.crop, crop_frame=train_config.crop_frame,
                      extra={"training_steps": result["steps"], "training_wall_s": round(result["elapsed_s"], 1),
                             "final_losses": last, "mask_statistics": stats,
                             "motion_residual": None if np.isnan(residual) else round(residual, 4),
                             "scenery": [_json_safe(asdict(sc)) for sc in scores], **(extra or {})})
    names = ", ".join(v.get("name", "?") for v in training_videos) or "(frames)"
    notes = f"""# Model bundle

Trained unsupervised with engine.train (what `parttrack train` runs; co-part segmentation through assembly, Gao et al.
ICML 2021, adapted for real-time CPU inference; see engine/model.py and engine/train.py).

- Training video(s): {names} — {len(frames)} frames at {net_config.input_size}×{net_config.input_size}.
- K = {net_config.num_parts} parts, masks {net_config.mask_size[0]}×{net_config.mask_size[1]},
  {count_macs(net_config) / 1e6:.1f} MMAC per frame.
- {result['steps']} steps of batch {train_config.batch} in {result['elapsed_s'] / 60:.1f} min
  on {train_config.device}, the network's products in {"bfloat16" if trainer.compute_dtype else "float32"}.
- Final losses: {json.dumps(last)}{_restart_notes(choice)}

## Quality (measured on the training frames, no ground truth)

- Foreground share of pixels: {stats['foreground_fraction']:.3f}
- Share of pixels per part: {stats['part_area']}
- Parts that never win a pixel (dead): {stats['dead_parts'] or 'none'}
- Label flicker between consecutive frames (share of foreground pixels): {stats['label_flicker']}
- Motion residual (share of the subject's optical flow the parts leave unexplained as affine
  motion layers; lower is better; compare runs on the same video): {residual:.4f}

{_scenery_notes(scores, drop)}
Part order is arbitrary: name the parts with `parttrack label {Path(out_dir)} --name 1=...`.
{notes_extra}"""
    return export_bundle(net, trainer.config_dict(), meta, out_dir, notes)
