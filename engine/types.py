"""The data every inference runtime returns (imports only numpy).

Coordinate frame of the network ("model frame"): the letterboxed model input of size
``S_h × S_w`` pixels (see :mod:`engine.preprocess`), expressed in *normalised* coordinates
``x, y ∈ [-1, 1]`` with x to the right and y **down**, pixel centres at
``x = (2·col + 1) / S_w − 1`` (the ``align_corners=False`` convention of ``grid_sample``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Column order of the 6-tuple affine parameterisation (Gao et al. 2021, Eq. 1–2).
TRANSFORM_FIELDS = ("s_x", "s_y", "sin_theta", "cos_theta", "t_x", "t_y")


@dataclass(frozen=True)
class PartOutput:
    """Network output for a batch of N frames.

    Attributes:
        masks: ``(N, K+1, h, w)`` float32, softmax over the K+1 slots (slot 0 = background),
            each pixel's slots sum to 1. ``h, w`` is the model's mask resolution (may be smaller
            than the input size; it covers the same field of view as the model input).
        transforms: ``(N, K, 6)`` float32 per-part affine transforms
            ``(s_x, s_y, sin θ, cos θ, t_x, t_y)`` in normalised model-frame coordinates:
            the part's canonical frame maps to the image by ``u ↦ A u + t`` with
            ``A = R(θ)·diag(s_x, s_y)``, ``R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]``.
            ``(sin θ, cos θ)`` has unit length; θ is measured from +x towards +y (y down, so
            clockwise on screen). ``t`` is the part centre.

    Raises:
        ValueError: if shapes or dtypes disagree (message gives expected and actual).
    """

    masks: np.ndarray
    transforms: np.ndarray

    def __post_init__(self) -> None:
        m, t = self.masks, self.transforms
        if m.ndim != 4:
            raise ValueError(f"masks must be (N, K+1, h, w), got shape {m.shape}")
        if t.ndim != 3 or t.shape[2] != 6:
            raise ValueError(f"transforms must be (N, K, 6), got shape {t.shape}")
        if m.shape[0] != t.shape[0] or m.shape[1] != t.shape[1] + 1:
            raise ValueError(
                f"masks {m.shape} and transforms {t.shape} disagree: expected masks "
                f"(N, K+1, h, w) with N={t.shape[0]}, K+1={t.shape[1] + 1}"
            )
        if m.dtype != np.float32 or t.dtype != np.float32:
            raise ValueError(f"masks/transforms must be float32, got {m.dtype}/{t.dtype}")

    @property
    def num_parts(self) -> int:
        """K, the number of foreground parts."""
        return int(self.transforms.shape[1])

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def __getitem__(self, i: int | slice) -> "PartOutput":
        if isinstance(i, int):
            i = slice(i, i + 1)
        return PartOutput(self.masks[i], self.transforms[i])


def part_labels(masks: np.ndarray, axis: int = 0) -> np.ndarray:
    """The label map of soft masks: 0 (background) where the background slot is at least as
    likely as all the parts together, elsewhere the most likely part (1..K).

    Foreground vs background is decided on the marginal ``M_0`` against ``Σ_{k≥1} M_k``, not
    by letting the background compete with each part separately (a plain arg-max over the K+1
    slots): where two parts share a pixel, e.g. along a joint or a thin limb after upsampling,
    the plain arg-max hands it to the background although the figure is the likelier
    explanation (measured on a generated figure: docs/performance.md, "Label rule").

    Args:
        masks: float ``(..., K+1, ...)`` masks (softmax over the slots, or any non-negative
            scores on one scale, e.g. bilinearly resampled masks or one-hot label maps), with
            the slots along ``axis``; slot 0 = background. At most 255 parts.

    Returns:
        uint8 label map of the masks' shape without ``axis``.

    Raises:
        ValueError: no slot or more than 256 along ``axis``.
    """
    m = np.moveaxis(np.asarray(masks), axis, 0)
    if not 1 <= m.shape[0] <= 256:
        raise ValueError(f"masks need 1..256 slots (background + 0..255 parts) on axis {axis}, got {m.shape[0]}")
    if m.shape[0] == 1:
        return np.zeros(m.shape[1:], np.uint8)
    labels = m[1:].argmax(axis=0).astype(np.uint8) + np.uint8(1)
    labels[m[0] >= m[1:].sum(axis=0)] = 0
    return labels
