"""Affine part transforms: the 6-tuple ↔ 2×3 matrices, composition, inversion, warping.

A part transform maps the part's canonical frame to the image (Gao et al. 2021, Eq. 1–2):
``u = A v + t`` with ``A = R(θ)·diag(s_x, s_y)``, stored as the 6-tuple
``(s_x, s_y, sin θ, cos θ, t_x, t_y)`` (:data:`engine.types.TRANSFORM_FIELDS`), in normalised
model coordinates ``[-1, 1]`` (x right, y down, ``align_corners=False``).

Matrices here are ``(..., 2, 3)`` float tensors ``[A | t]``. Warping a map by a transform,
``(T∘V)(u) = V(T⁻¹u)``, is a ``grid_sample`` — used in training only, never in the
inference graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tuple_to_matrix(tf: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` 6-tuples → ``(..., 2, 3)`` matrices ``[A | t]``, ``A = R(θ)·diag(s)``."""
    sx, sy, s, c, tx, ty = tf.unbind(-1)
    row0 = torch.stack([c * sx, -s * sy, tx], -1)
    row1 = torch.stack([s * sx, c * sy, ty], -1)
    return torch.stack([row0, row1], -2)


def compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a ∘ b`` (apply b first) for ``(..., 2, 3)`` matrices: ``u ↦ A_a (A_b u + t_b) + t_a``."""
    aa, ta = a[..., :2], a[..., 2:]
    ab, tb = b[..., :2], b[..., 2:]
    return torch.cat([aa @ ab, aa @ tb + ta], -1)


def invert(m: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Inverse of ``(..., 2, 3)`` affine matrices (closed-form 2×2 inverse).

    The determinant is kept away from zero by ``eps`` (sign preserved) so degenerate
    transforms give large but finite inverses.
    """
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    det = torch.where(det.abs() < eps, torch.full_like(det, eps) * torch.where(det < 0, -1.0, 1.0), det)
    inv_a = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
    t = m[..., 2:]
    return torch.cat([inv_a, -inv_a @ t], -1)


def identity(*batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(*batch, 2, 3)`` identity matrices."""
    eye = torch.zeros(2, 3, device=device, dtype=dtype)
    eye[0, 0] = eye[1, 1] = 1.0
    return eye.expand(*batch, 2, 3).clone()


def warp(maps: torch.Tensor, m: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """``(T∘V)(u) = V(T⁻¹u)``: move the content of ``maps`` by the affine ``m``.

    Args:
        maps: ``(B, C, h, w)`` float.
        m: ``(B, 2, 3)`` transform (normalised coordinates, align_corners=False).
        padding_mode: grid_sample padding for samples outside the map.

    Returns:
        ``(B, C, h, w)`` warped maps.
    """
    grid = F.affine_grid(invert(m), list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def random_warps(n: int, max_rot_deg: float = 15.0, max_scale: float = 0.1, max_shift: float = 0.1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n, 2, 3)`` random similarity transforms near identity (for the equivariance loss)."""
    r = torch.rand(n, 4, generator=generator) * 2 - 1
    th = r[:, 0] * max_rot_deg * torch.pi / 180
    sc = 1 + r[:, 1] * max_scale
    tf = torch.stack([sc, sc, torch.sin(th), torch.cos(th), r[:, 2] * max_shift, r[:, 3] * max_shift], -1)
    return tuple_to_matrix(tf)
