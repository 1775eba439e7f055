"""The training losses of the co-part method (Gao, Wang, Liu, Chen, ICML 2021, Sec. 3.3).

All images are float ``(N, 3, h, w)`` in [-1, 1]; masks ``(N, K+1, h, w)`` softmax over slots
(slot 0 = background); transforms ``(N, K, 6)`` 6-tuples or ``(N, K, 2, 3)`` matrices in
normalised coordinates (see :mod:`engine.warp`). Every loss is a scalar tensor, 0 for a
perfect input.

The paper's perceptual term φ is a pretrained VGG-19, which cannot be downloaded here; it is
replaced by a structural-similarity term on an image pyramid (1 − SSIM with 3×3 windows,
Wang et al. 2004), which needs no weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from parttrack.engine.warp import compose, tuple_to_matrix, warp


def pyramid(img: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images, each half the size of the previous (2×2 average pooling)."""
    out = [img]
    for _ in range(levels - 1):
        if min(out[-1].shape[-2:]) < 2:
            break
        out.append(F.avg_pool2d(out[-1], 2))
    return out


def image_gradients(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x ``(N, C, h, w-1)`` and y ``(N, C, h-1, w)``."""
    return img[..., :, 1:] - img[..., :, :-1], img[..., 1:, :] - img[..., :-1, :]


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖∇a − ∇b‖₁ (mean over pixels)."""
    ax, ay = image_gradients(a)
    bx, by = image_gradients(b)
    return (ax - bx).abs().mean() + (ay - by).abs().mean()


def ssim_distance(a: torch.Tensor, b: torch.Tensor, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Mean (1 − SSIM)/2 with 3×3 windows (Wang et al. 2004), images in [-1, 1]. 0 iff a = b."""
    a, b = (a + 1) / 2, (b + 1) / 2
    pad = lambda x: F.pad(x, (1, 1, 1, 1), mode="replicate")  # noqa: E731
    mu_a, mu_b = F.avg_pool2d(pad(a), 3, 1), F.avg_pool2d(pad(b), 3, 1)
    var_a = F.avg_pool2d(pad(a * a), 3, 1) - mu_a ** 2
    var_b = F.avg_pool2d(pad(b * b), 3, 1) - mu_b ** 2
    cov = F.avg_pool2d(pad(a * b), 3, 1) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return ((1 - ssim) / 2).clamp(0, 1).mean()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, w_l1: float = 1.0, w_grad: float = 5.0,
                        w_perc: float = 10.0, levels: int = 3) -> torch.Tensor:
    """``λ1‖I−Ĩ‖₁ + λ2‖∇I−∇Ĩ‖₁ + λ3 φ(I, Ĩ)``, each averaged over an image pyramid of
    ``levels`` scales; φ = :func:`ssim_distance`. A weight of 0 skips that term."""
    loss = pred.new_zeros(())
    pp, tp = pyramid(pred, levels), pyramid(target, levels)
    for p, t in zip(pp, tp):
        if w_l1:
            loss = loss + w_l1 * (p - t).abs().mean()
        if w_grad:
            loss = loss + w_grad * gradient_l1(p, t)
        if w_perc and min(p.shape[-2:]) >= 3:
            loss = loss + w_perc * ssim_distance(p, t)
    return loss / len(pp)


def assemble(masks: torch.Tensor, parts: torch.Tensor) -> torch.Tensor:
    """``Ĩ = Σ_k M_k ⊙ P_k``: masks ``(N, K+1, h, w)``, part images ``(N, K+1, 3, h, w)`` →
    ``(N, 3, h, w)``."""
    return (masks.unsqueeze(2) * parts).sum(1)


def background_loss(masks: torch.Tensor) -> torch.Tensor:
    """``‖M_0 − 1‖₁ + Σ_k ‖M_k‖₁`` (mean over pixels): pushes pixels no part needs to the
    background slot."""
    return (1 - masks[:, 0]).abs().mean() + masks[:, 1:].abs().sum(1).mean()


def mask_moments(masks: torch.Tensor, threshold: float = 0.0, eps: float = 1e-6
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centroid ``(N, K, 2)``, covariance ``(N, K, 2, 2)`` and mass ``(N, K)`` of the K
    foreground masks over pixels with ``M_k > threshold`` (normalised coords, align_corners=False)."""
    m = masks[:, 1:]
    if threshold > 0:
        m = m * (m > threshold).to(m.dtype)
    h, w = m.shape[-2:]
    xs = ((torch.arange(w, dtype=m.dtype, device=m.device) * 2 + 1) / w - 1).view(1, 1, 1, w)
    ys = ((torch.arange(h, dtype=m.dtype, device=m.device) * 2 + 1) / h - 1).view(1, 1, h, 1)
    mass = m.sum((2, 3))
    total = mass + eps
    cx, cy = (m * xs).sum((2, 3)) / total, (m * ys).sum((2, 3)) / total
    dx, dy = xs - cx[..., None, None], ys - cy[..., None, None]
    cxx, cxy, cyy = ((m * dx * dx).sum((2, 3)) / total, (m * dx * dy).sum((2, 3)) / total,
                     (m * dy * dy).sum((2, 3)) / total)
    cov = torch.stack([torch.stack([cxx, cxy], -1), torch.stack([cxy, cyy], -1)], -2)
    return torch.stack([cx, cy], -1), cov, mass


def transformation_losses(transforms: torch.Tensor, masks: torch.Tensor, threshold: float = 0.02
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(translation loss ‖t_k − c_k‖₁, covariance loss ‖A_k A_kᵀ − Σ_k‖_F), averaged over parts,
    with centroid c_k and covariance Σ_k of mask k over pixels with ``M_k > threshold``."""
    centroid, cov, _ = mask_moments(masks, threshold)
    m = tuple_to_matrix(transforms)
    a = m[..., :2]
    t_loss = (m[..., 2] - centroid).abs().sum(-1).mean()
    c_loss = torch.sqrt(((a @ a.transpose(-1, -2) - cov) ** 2).sum((-1, -2)) + 1e-12).mean()
    return t_loss, c_loss


def equivariance_loss(warp_m: torch.Tensor, transforms: torch.Tensor, transforms_warped: torch.Tensor) -> torch.Tensor:
    """``‖T^w ∘ T_k − T_k^w‖₁``: ``warp_m`` ``(N, 2, 3)`` the random warp applied to the image,
    ``transforms`` ``(N, K, 6)`` on the image, ``transforms_warped`` ``(N, K, 6)`` on the warped
    image."""
    k = transforms.shape[1]
    expect = compose(warp_m[:, None].expand(-1, k, -1, -1), tuple_to_matrix(transforms))
    return (expect - tuple_to_matrix(transforms_warped)).abs().sum((-1, -2)).mean()


def mask_equivariance_loss(masks_warped: torch.Tensor, masks: torch.Tensor, warp_m: torch.Tensor) -> torch.Tensor:
    """Equivariance of the segmentation under a warp of the image: the masks of the warped image
    against the image's masks moved by the same warp, ``M(T^w ∘ I) ≈ T^w ∘ M(I)`` (the
    equivariance constraint on part maps of SCOPS, Hung et al. CVPR 2019, §3.3; not in Gao et
    al. 2021, whose equivariance loss ties only the transforms). The mean over pixels of the
    total-variation distance ``½ Σ_k |·|`` between the two per-pixel distributions over the K+1
    slots, in [0, 1], over the pixels whose warped position stays inside the frame (the others
    have no counterpart in ``masks``). Zero when the segmentation moves with the image; gradients
    reach both.

    Args:
        masks_warped: ``(N, K+1, h, w)`` softmax masks of the warped image ``T^w ∘ I``.
        masks: ``(N, K+1, h, w)`` softmax masks of the image ``I``.
        warp_m: ``(N, 2, 3)`` the warp ``T^w`` (normalised coordinates, as :func:`engine.warp.warp`).

    Raises:
        ValueError: the mask shapes differ.
    """
    if masks_warped.shape != masks.shape:
        raise ValueError(f"mask shapes differ: warped image {tuple(masks_warped.shape)}, image {tuple(masks.shape)}")
    expected = warp(masks, warp_m, padding_mode="border")
    inside = (warp(torch.ones_like(masks[:, :1]), warp_m) > 0.999).to(masks.dtype)   # (N, 1, h, w)
    tv = 0.5 * (masks_warped - expected).abs().sum(1, keepdim=True)
    return (tv * inside).sum() / inside.sum().clamp_min(1.0)


def concentration_loss(masks: torch.Tensor) -> torch.Tensor:
    """Spread of each foreground mask around its centroid, ``Σ_k (σ²_x + σ²_y)`` averaged over
    parts (normalised units²)."""
    _, cov, _ = mask_moments(masks)
    return (cov[..., 0, 0] + cov[..., 1, 1]).mean()


def mask_entropy_loss(masks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean per-pixel entropy of the K+1 slot distribution, normalised by ``log(K+1)`` to [0, 1]:
    0 where every pixel belongs to exactly one slot, 1 where all slots share it equally.

    Not in the paper: a penalty that hardens soft masks, so that each pixel is explained by one
    part's rigid motion rather than by a blend of several parts' images (the layered-motion
    argument of Wang & Adelson 1994; SCOPS, Hung et al. 2019, hardens its part maps likewise).

    Args:
        masks: ``(N, K+1, h, w)`` softmax masks (slot 0 the background).

    Returns:
        Scalar.
    """
    k1 = masks.shape[1]
    ent = -(masks * torch.log(masks.clamp_min(eps))).sum(1)
    return ent.mean() / math.log(k1)


def background_subtraction_loss(depth: torch.Tensor, changed: torch.Tensor, eps: float = 1e-6,
                                soft: bool = False, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Class-balanced cross-entropy between "background slot" and a background-subtraction map,
    ``½ (−Σ C·log(1 − M_0) / Σ C  −  Σ (1 − C)·log M_0 / Σ (1 − C))`` with ``M = softmax(depth)``.

    A cross-entropy, not an L1 on the masks: its gradient with respect to the depth logits is
    ``M_0 − target``, which does not vanish when the softmax saturates — a mask-space penalty's
    gradient does (``∝ M_0 (1 − M_0)``), so it cannot pull a collapsed model back. Each class
    is a mean over its own pixels, so moving every pixel towards (or away from) the background
    does not lower it; only telling changed from unchanged pixels does.

    With ``soft``, ``changed`` is a share in [0, 1] (e.g. of the input pixels under a mask
    pixel that changed) and each pixel pays the soft-label cross-entropy
    ``−C·log(1 − M_0) − (1 − C)·log M_0`` weighted by ``C / Σ C + (1 − C) / Σ (1 − C)``: the
    same class balance, the same value on a binary map, and per pixel its minimum is at
    ``1 − M_0 = C`` (the unweighted form above would push a half-changed pixel to the
    foreground, by the ratio of the class sizes). A mask that matches the share, upsampled
    bilinearly to the frame, then places the outline between mask pixels.

    Args:
        depth: ``(N, K+1, h, w)`` depth logits (slot 0 = background), as in
            :meth:`engine.model.PartNet.encode`.
        changed: ``(N, h, w)`` float in {0, 1} (in [0, 1] with ``soft``): pixels where the frame
            differs from the static background image (engine.train).
        soft: treat ``changed`` as a soft label (above).
        ignore: optional ``(N, h, w)`` float in {0, 1}: pixels left out of both classes (a map
            that cannot tell, e.g. pixels that move in only one of their frame comparisons;
            ``TrainConfig.moving_unsure``).

    Returns:
        scalar ≥ 0 (nats); 0 only for certain masks that match a binary ``changed``.

    Not in the paper: with a static background image (engine.train, ``static_background``)
    the training uses it against the early all-background collapse during the background
    warm-up (and, by default, for the whole run: ``TrainConfig.change_prior_floor``) — that
    image reconstructs most of each frame from the first step,
    so the masks are pushed to the background everywhere while the parts' images are still
    untrained, and a part mask at zero never gets a gradient again.
    """
    logp = torch.log_softmax(depth, 1)
    log_bg, log_fg = logp[:, 0], torch.logsumexp(logp[:, 1:], 1)
    unchanged = 1.0 - changed
    if ignore is not None:
        keep = 1.0 - ignore
        changed, unchanged = changed * keep, unchanged * keep
    if soft:
        weight = changed / (changed.sum() + eps) + unchanged / (unchanged.sum() + eps)
        return 0.5 * -(weight * (changed * log_fg + unchanged * log_bg)).sum()
    return 0.5 * (-(log_fg * changed).sum() / (changed.sum() + eps)
                  - (log_bg * unchanged).sum() / (unchanged.sum() + eps))


def part_usage_loss(masks: torch.Tensor, min_share: float, where: torch.Tensor | None = None) -> torch.Tensor:
    """Penalty on parts that own less than ``min_share`` of the foreground mass over the batch,
    ``Σ_k relu(min_share − a_k) / min_share`` with ``a_k = Σ M_k / Σ (1 − M_0)``; with
    ``where`` ``(N, h, w)`` in [0, 1] the sums run over ``where``-weighted pixels only
    (e.g. the pixels that differ from a static background).

    Not in the paper: it keeps slots from dying (one part swallowing the whole subject, the
    collapse seen in the first experiments, see NOTES.md); parts above the share are free.
    """
    m = masks[:, 1:] if where is None else masks[:, 1:] * where[:, None]
    fg = m.sum((0, 2, 3))
    share = fg / (fg.sum() + 1e-6)
    return (torch.relu(min_share - share) / min_share).sum() / masks.shape[1]


def mask_consistency_loss(masks_moved: torch.Tensor, masks_target: torch.Tensor) -> torch.Tensor:
    """Disagreement between the target frame's masks and the source frame's masks moved onto it by
    the part transforms: the mean over pixels of the total-variation distance
    ``½ Σ_k |M^{s→t}_k − M^t_k|`` between the two per-pixel distributions over the K+1 slots,
    in [0, 1]. ``masks_moved``, ``masks_target``: ``(N, K+1, h, w)``, each a softmax over slots.

    Not in the paper, whose retargeting constrains only the reconstructed image: a part moves
    rigidly (the method's premise), so its mask in the target must be its source mask under
    ``T_k^t ∘ (T_k^s)⁻¹``; a part that covers pieces of limbs moving differently cannot satisfy
    this with one affine transform. Zero when the masks agree; gradients reach both frames.

    Raises:
        ValueError: the shapes differ.
    """
    if masks_moved.shape != masks_target.shape:
        raise ValueError(f"mask shapes differ: moved {tuple(masks_moved.shape)}, target {tuple(masks_target.shape)}")
    return 0.5 * (masks_moved - masks_target).abs().sum(1).mean()


def _pixel_centres(h: int, w: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(h, w)`` x and y of the pixel centres in normalised coordinates (align_corners=False),
    with the dtype and device of ``like``."""
    xs = (torch.arange(w, dtype=like.dtype, device=like.device) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=like.dtype, device=like.device) * 2 + 1) / h - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx, gy


def part_flows(rel: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The displacement each part's motion gives every pixel: ``rel_k(u) − u`` ``(N, K, 2, h, w)``
    for relative transforms ``rel`` ``(N, K, 2, 3)`` (source → target, normalised coordinates
    of the pixel centres, align_corners=False)."""
    gx, gy = _pixel_centres(h, w, rel)
    a, t = rel[..., :2], rel[..., 2]
    fx = (a[..., 0, 0] - 1)[..., None, None] * gx + a[..., 0, 1, None, None] * gy + t[..., 0, None, None]
    fy = a[..., 1, 0, None, None] * gx + (a[..., 1, 1] - 1)[..., None, None] * gy + t[..., 1, None, None]
    return torch.stack([fx, fy], 2)


def flow_loss(masks: torch.Tensor, rel: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor,
              eps: float = 1e-3) -> torch.Tensor:
    """Motion-layer assignment loss: the expected disagreement, under the source masks, between
    the measured optical flow and the flow each slot's motion predicts,
    ``Σ_u w(u) Σ_k M_k(u) ρ(F_k(u) − F(u)) / Σ_u w(u)`` with ``ρ(d) = √(|d|² + ε²) − ε``,
    ``F_k = rel_k(u) − u`` for the K parts (:func:`part_flows`) and ``F_0 = 0`` for the
    background slot (static camera).

    A pixel lowers it by going to the slot whose affine motion explains its flow, and a part's
    transform by fitting the flow of its own pixels — the layered motion model of Wang & Adelson
    (1994) as a soft assignment, the motion cue of motion-supervised co-part segmentation
    (Siarohin et al. 2020) with measured instead of learned flow. Not in Gao et al. 2021.

    Args:
        masks: ``(N, K+1, h, w)`` source masks (softmax over slots, slot 0 = background).
        rel: ``(N, K, 2, 3)`` source → target part transforms ``T^t ∘ (T^s)⁻¹``.
        flow: ``(N, 2, h, w)`` measured source → target flow, normalised coordinates
            (:class:`engine.flow.PairFlow`).
        weight: ``(N, h, w)`` trust of each flow pixel in [0, 1] (0 = ignore).

    Returns:
        scalar ≥ 0 in normalised units; 0 when every pixel's mass sits on slots whose motion
        matches its flow exactly (up to ε).
    """
    n, k1, h, w = masks.shape
    pred = torch.cat([torch.zeros_like(flow)[:, None], part_flows(rel, h, w)], 1)   # (N, K+1, 2, h, w)
    err = torch.sqrt(((pred - flow[:, None]) ** 2).sum(2) + eps * eps) - eps           # (N, K+1, h, w)
    per_pixel = (masks * err).sum(1)
    return (per_pixel * weight).sum() / (weight.sum() + 1e-6)


def motion_layer_loss(masks: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor, ridge: float = 1e-4,
                      eps: float = 1e-3) -> torch.Tensor:
    """Motion-layer assignment of the foreground: each part's flow is the affine field fitted to
    the measured flow under the part's own mask, and a foreground pixel pays the disagreement of
    the measured flow with the fitted flow of the parts it is on,
    ``Σ_u w(u) F(u) Σ_k π_k(u) ρ(A_k·[u, 1] − f(u)) / Σ_u w(u) F(u)`` with ``F = 1 − M_0`` (the
    foreground, held fixed), ``π_k = M_k / Σ_j M_j`` (j ≥ 1) the part distribution of the pixel,
    ``ρ(d) = √(|d|² + ε²) − ε`` and ``A_k`` the weighted least-squares affine fit of part k
    (weights ``M_k · w``, Tikhonov ``ridge``; held fixed).

    The fit is the E-step of layered motion estimation (Wang & Adelson, "Representing moving
    images with layers", 1994) and is not differentiated: at the least-squares optimum the
    gradient of the fitted residual with respect to the masks is the residual itself (the
    envelope theorem), so the masks move each pixel to the part whose affine motion explains
    it. Unlike :func:`flow_loss` it does not involve the network's transforms, and it leaves
    the split between foreground and background to the other terms (it only moves foreground
    mass between parts). :func:`engine.flow.motion_residual` is the same fit, as a figure.

    Args:
        masks: ``(N, K+1, h, w)`` source masks (softmax over slots, slot 0 = background).
        flow: ``(N, 2, h, w)`` measured source → target flow in normalised coordinates of the
            pixel centres (:class:`engine.flow.PairFlow`).
        weight: ``(N, h, w)`` trust of each flow pixel in [0, 1] (0 = ignore).
        ridge: Tikhonov term on each fit's 3×3 normal equations (a part with a near-empty mask).
        eps: Charbonnier ε, normalised units.

    Returns:
        scalar ≥ 0 in normalised units; 0 when the flow under every part is exactly affine.

    Raises:
        ValueError: shapes that do not agree.
    """
    if masks.dim() != 4 or flow.shape != (masks.shape[0], 2) + masks.shape[2:] or weight.shape != flow[:, 0].shape:
        raise ValueError(f"masks (N, K+1, h, w), flow (N, 2, h, w) and weight (N, h, w) must agree, got "
                         f"{tuple(masks.shape)}, {tuple(flow.shape)}, {tuple(weight.shape)}")
    n, k1, h, w = masks.shape
    gx, gy = _pixel_centres(h, w, masks)
    design = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(-1, 3)          # (P, 3)
    f = flow.to(masks.dtype).reshape(n, 2, -1).transpose(1, 2)                       # (N, P, 2)
    wt = weight.to(masks.dtype).reshape(n, 1, -1)
    with torch.no_grad():
        wp = masks[:, 1:].reshape(n, k1 - 1, -1) * wt                                # (N, K, P)
        gram = torch.einsum("nkp,pi,pj->nkij", wp, design, design) + ridge * torch.eye(3, dtype=masks.dtype,
                                                                                        device=masks.device)
        coef = torch.linalg.solve(gram, torch.einsum("nkp,pi,npd->nkid", wp, design, f))   # (N, K, 3, 2)
        diff = torch.einsum("pi,nkid->nkpd", design, coef) - f[:, None]
        rho = torch.sqrt((diff * diff).sum(-1) + eps * eps) - eps                     # (N, K, P)
        fg = (1.0 - masks[:, 0]).reshape(n, -1)
        wf = fg * wt[:, 0]
    part_mass = masks[:, 1:].reshape(n, k1 - 1, -1)
    parts = part_mass / (part_mass.sum(1, keepdim=True) + 1e-6)     # sums to 1: no pull on slot 0
    return (wf * (parts * rho).sum(1)).sum() / (wf.sum() + 1e-6)


@torch.no_grad()
def illumination_gain(images: torch.Tensor, background: torch.Tensor, iterations: int = 3,
                      inlier_mads: float = 2.5, limits: tuple[float, float] = (0.5, 2.0)) -> torch.Tensor:
    """Per-frame smooth illumination of a static scene: the gain field ``g`` with
    ``frame ≈ g · background`` on the scenery, ``log g`` a plane in the image coordinates.

    Fitted robustly to the per-pixel log ratio of the grey levels (``(I + 1) / 2`` averaged
    over RGB, plus 0.02 against log 0): iteratively reweighted least squares that keeps the
    pixels within ``inlier_mads`` × 1.4826 × the median absolute residual (the moving subject
    and shadows fall out as outliers). A global gain (exposure, flicker) and a left–right or
    top–bottom light gradient are both planes in log space.

    Args:
        images: ``(N, 3, h, w)`` frames in [-1, 1].
        background: ``(3, h, w)`` static background image in [-1, 1].
        iterations: reweighting rounds (the first fit uses every pixel).
        inlier_mads: inlier band in robust standard deviations.
        limits: the gain is clamped to this range.

    Returns:
        ``(N, 1, h, w)`` gain, 1 where the light did not change. Not differentiated.

    Not in the paper: the paper's background slot is decoded from the source frame; with a
    static background image (engine.train, ``static_background``) a change of light would
    otherwise be a "change" that the parts are asked to explain.
    """
    n, _, h, w = images.shape
    f = torch.log((images.mean(1) + 1) * 0.5 + 0.02).reshape(n, -1)                 # (N, P)
    b = torch.log((background.mean(0) + 1) * 0.5 + 0.02).reshape(1, -1)
    r = f - b
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, dtype=r.dtype, device=r.device),
                            torch.linspace(-1, 1, w, dtype=r.dtype, device=r.device), indexing="ij")
    x = torch.stack([torch.ones_like(xs), xs, ys], -1).reshape(1, -1, 3).expand(n, -1, -1)  # (N, P, 3)
    weight = torch.ones_like(r)
    fit = torch.zeros_like(r)
    for _ in range(max(1, iterations)):
        xw = x * weight[..., None]
        beta = torch.linalg.solve(xw.transpose(1, 2) @ x + 1e-6 * torch.eye(3, dtype=r.dtype, device=r.device),
                                  xw.transpose(1, 2) @ r[..., None])                # (N, 3, 1)
        fit = (x @ beta)[..., 0]
        res = (r - fit).abs()
        scale = 1.4826 * res.median(1, keepdim=True).values + 1e-3
        weight = (res <= inlier_mads * scale).to(r.dtype)
    return fit.exp().clamp(*limits).view(n, 1, h, w)


def cluster_loss(masks: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None,
                 eps: float = 1e-6) -> torch.Tensor:
    """Cross-entropy between the masks and per-frame unordered cluster targets, the clusters
    matched to the parts frame by frame (Hungarian algorithm on the cross-entropy; the
    background slot 0 is matched to target slot 0).

    Args:
        masks: ``(N, K+1, h, w)`` soft masks (softmax over slots).
        targets: ``(N, K+1, h, w)`` per-pixel target shares (:func:`engine.motion_init.motion_clusters`),
            slot 0 background, slots 1..K clusters in any order.
        valid: ``(N,)`` bool, frames that have a target (None: all).

    Returns:
        Scalar: mean over valid frames of the per-pixel cross-entropy; 0 when none is valid.
        It is 0 for masks equal to one-hot targets up to a permutation of the part slots.

    Not in the paper: a start for the parts from motion clusters (:mod:`engine.motion_init`).
    """
    from scipy.optimize import linear_sum_assignment

    n, k1, h, w = masks.shape
    logm = torch.log(masks.clamp_min(eps))                                            # (N, K+1, h, w)
    # cost[i, a, j] = − Σ_p targets[i, j, p] · log masks[i, a, p]   (parts a, clusters j)
    cost = -torch.einsum("nap,njp->naj", logm[:, 1:].flatten(2), targets[:, 1:].flatten(2))
    c = cost.detach().cpu().numpy()
    perm = torch.empty(n, k1 - 1, dtype=torch.long)
    for i in range(n):
        rows, cols = linear_sum_assignment(c[i])          # part rows[r] ↔ cluster cols[r]
        perm[i, torch.from_numpy(cols)] = torch.from_numpy(rows)      # cluster j → part perm[i, j]
    perm = perm.to(masks.device)
    matched = torch.gather(cost, 1, perm[:, None, :].expand(-1, 1, -1))[:, 0].sum(1)   # (N,)
    bg = -(targets[:, 0] * logm[:, 0]).flatten(1).sum(1)
    per_frame = (matched + bg) / (h * w)
    if valid is None:
        return per_frame.mean()
    v = valid.to(per_frame.dtype)
    return (per_frame * v).sum() / v.sum().clamp_min(1.0)


def lit_background(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The static background image under each frame's light: ``(N, 3, h, w)`` in [-1, 1],
    ``(background + 1) · g − 1`` with ``g`` from :func:`illumination_gain` (fitted on the
    detached background; the product keeps ``background``'s gradient).

    Args:
        images: ``(N, 3, h, w)`` frames in [-1, 1].
        background: ``(3, h, w)`` static background image in [-1, 1].
    """
    return (background[None] + 1) * illumination_gain(images, background.detach()) - 1


def background_difference(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Mean over RGB of |image − background| in [0, 1] units (half the difference of [-1, 1]
    images): ``(N, h, w)``. ``images`` ``(N, 3, h, w)``; ``background`` ``(3, h, w)`` or
    ``(N, 3, h, w)`` (e.g. lit per frame), both in [-1, 1]."""
    return (images - background).abs().mean(1) * 0.5


def changed_pixels(images: torch.Tensor, background: torch.Tensor, threshold: float) -> torch.Tensor:
    """The background-subtraction map: ``(N, h, w)`` bool, True where the mean over RGB of
    |image − :func:`lit_background`| exceeds ``threshold`` in [0, 1] units (half the
    difference of [-1, 1] images).

    Args:
        images: ``(N, 3, h, w)`` frames in [-1, 1].
        background: ``(3, h, w)`` static background image in [-1, 1].
        threshold: e.g. :attr:`engine.train.LossWeights.change_threshold`.
    """
    return background_difference(images, lit_background(images, background)) > threshold
