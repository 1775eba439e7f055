"""Letterboxing between source-video pixels and the square model input.

Training and inference use the same :class:`Letterbox`, so a model sees frames exactly as they
were prepared for training. The source frame is scaled uniformly to fit ``size × size`` and
centred, the border filled by edge replication (so the padding carries no hard edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Uniform scale + centring of a ``src_h × src_w`` frame into ``size × size``.

    Attributes:
        src_h, src_w: source frame size in pixels.
        size: model input side S in pixels.
        scale: model pixels per source pixel.
        pad_x, pad_y: offset (model pixels) of the scaled frame's top-left corner.
    """

    src_h: int
    src_w: int
    size: int
    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, src_h: int, src_w: int, size: int) -> "Letterbox":
        """Letterbox for a source of ``src_h × src_w`` into a square of side ``size``.

        Raises:
            ValueError: for non-positive sizes.
        """
        if src_h <= 0 or src_w <= 0 or size <= 0:
            raise ValueError(f"sizes must be positive, got {src_h}x{src_w} -> {size}")
        scale = size / max(src_h, src_w)
        new_w, new_h = cls._scaled(src_w, scale, size), cls._scaled(src_h, scale, size)
        return cls(src_h, src_w, size, scale, (size - new_w) / 2.0, (size - new_h) / 2.0)

    @staticmethod
    def _scaled(n: int, scale: float, size: int) -> int:
        return max(1, min(size, int(round(n * scale))))

    @property
    def inner_size(self) -> tuple[int, int]:
        """(w, h) of the scaled source inside the square, in model pixels."""
        return (self._scaled(self.src_w, self.scale, self.size),
                self._scaled(self.src_h, self.scale, self.size))

    @property
    def inner_box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the scaled source inside the square, in model pixels (the rest is
        padding)."""
        w, h = self.inner_size
        return int(self.pad_x), int(self.pad_y), w, h

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Resize and pad one frame (edge replication).

        Args:
            image: ``(src_h, src_w, 3)`` uint8 RGB, or a frame already scaled to
                :attr:`inner_size` (a decoder that scales while decoding,
                :class:`tracker.sources.ScaledFileSource`): that one is only padded.

        Returns:
            ``(size, size, 3)`` uint8 RGB, C-contiguous, never a view of ``image``.
        """
        w, h = self.inner_size
        if image.shape[:2] == (h, w):  # already scaled (cv2.resize would only copy it)
            small = image
        else:
            interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            small = cv2.resize(image, (w, h), interpolation=interp)
        left, top, _, _ = self.inner_box
        right, bottom = self.size - w - left, self.size - h - top
        if left or top or right or bottom:
            small = cv2.copyMakeBorder(small, top, bottom, left, right, cv2.BORDER_REPLICATE)
        elif small is image:
            small = image.copy()
        return np.ascontiguousarray(small)

    # -- coordinates -------------------------------------------------------------------
    def norm_to_source(self, xy: np.ndarray) -> np.ndarray:
        """Map normalised model-frame points (``[-1, 1]``, y down; see :mod:`engine.types`)
        to source-video pixel coordinates (x right, y down, pixel centres at integers).

        Args:
            xy: ``(..., 2)`` float array.

        Returns:
            ``(..., 2)`` float64 array in source pixels.
        """
        xy = np.asarray(xy, dtype=np.float64)
        model_px = (xy + 1.0) * (self.size / 2.0) - 0.5
        pad = np.array([int(self.pad_x), int(self.pad_y)], dtype=np.float64)
        w, h = self.inner_size
        sx, sy = w / self.src_w, h / self.src_h
        return (model_px - pad + 0.5) / np.array([sx, sy]) - 0.5

    def source_to_norm(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`norm_to_source`."""
        xy = np.asarray(xy, dtype=np.float64)
        pad = np.array([int(self.pad_x), int(self.pad_y)], dtype=np.float64)
        w, h = self.inner_size
        sx, sy = w / self.src_w, h / self.src_h
        model_px = (xy + 0.5) * np.array([sx, sy]) + pad - 0.5
        return (model_px + 0.5) / (self.size / 2.0) - 1.0

    @property
    def norm_to_source_scale(self) -> tuple[float, float]:
        """Source pixels per normalised unit along (x, y): multiply a normalised length
        (e.g. a transform's ``s_x``) by this to get source pixels."""
        w, h = self.inner_size
        return (self.size / 2.0) * self.src_w / w, (self.size / 2.0) * self.src_h / h
