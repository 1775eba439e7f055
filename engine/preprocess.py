"""Letterboxing between source-video pixels and the square model input.

Training and inference use the same :class:`Letterbox`, so a model sees frames exactly as they
were prepared for training. The source frame — or a rectangle of it around the subject, the
model's crop (:attr:`engine.bundle.BundleMeta.crop`) — is scaled uniformly to fit
``size × size`` and centred, the border filled by edge replication (so the padding carries no
hard edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Model input side in pixels that ``parttrack train`` and the viewer's learn mode use unless
#: told otherwise (``--size`` / ``--learn-size``); :class:`engine.model.NetConfig` keeps 128,
#: the smallest standard network, as its own default. Chosen on the numbers:
#: docs/training_sweep.md, "Sweep S160"; its inference speed in README.md, "Measured speed and quality".
DEFAULT_INPUT_SIZE = 160


@dataclass(frozen=True)
class Letterbox:
    """Uniform scale + centring of a ``src_h × src_w`` frame (or of a rectangle of it, ``box``)
    into ``size × size``.

    Attributes:
        src_h, src_w: source frame size in pixels.
        size: model input side S in pixels.
        scale: model pixels per source pixel.
        pad_x, pad_y: offset (model pixels) of the scaled frame's (or box's) top-left corner.
        box: ``(x, y, w, h)`` int source pixels of the rectangle the model sees (a crop around
            the subject, :attr:`engine.bundle.BundleMeta.crop`); None = the whole frame. The
            rest of the frame is outside the model input: source points there map outside
            ``[-1, 1]`` and label maps call them background.
    """

    src_h: int
    src_w: int
    size: int
    scale: float
    pad_x: float
    pad_y: float
    box: tuple[int, int, int, int] | None = None

    @classmethod
    def fit(cls, src_h: int, src_w: int, size: int,
            box: tuple[int, int, int, int] | None = None) -> "Letterbox":
        """Letterbox for a source of ``src_h × src_w`` (or its rectangle ``box``, ``(x, y, w, h)``
        source pixels) into a square of side ``size``.

        Raises:
            ValueError: for non-positive sizes, or a ``box`` not inside the frame.
        """
        if src_h <= 0 or src_w <= 0 or size <= 0:
            raise ValueError(f"sizes must be positive, got {src_h}x{src_w} -> {size}")
        if box is not None:
            box = tuple(int(v) for v in box)
            x, y, w, h = box
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > src_w or y + h > src_h:
                raise ValueError(f"box {box} is not inside the {src_w}x{src_h} frame")
            if box == (0, 0, src_w, src_h):
                box = None
        bw, bh = (box[2], box[3]) if box is not None else (src_w, src_h)
        scale = size / max(bh, bw)
        new_w, new_h = cls._scaled(bw, scale, size), cls._scaled(bh, scale, size)
        return cls(src_h, src_w, size, scale, (size - new_w) / 2.0, (size - new_h) / 2.0, box)

    @staticmethod
    def _scaled(n: int, scale: float, size: int) -> int:
        return max(1, min(size, int(round(n * scale))))

    @property
    def region(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` source pixels the model sees: :attr:`box`, or the whole frame."""
        return self.box if self.box is not None else (0, 0, self.src_w, self.src_h)

    @property
    def inner_size(self) -> tuple[int, int]:
        """(w, h) of the scaled source (or box) inside the square, in model pixels."""
        _, _, w, h = self.region
        return (self._scaled(w, self.scale, self.size), self._scaled(h, self.scale, self.size))

    @property
    def decode_size(self) -> tuple[int, int]:
        """(w, h) to which a decoder should scale whole frames for :meth:`apply`: the inner size
        without a box; with one, the whole frame at the box's scale (the box is cut out of it)."""
        if self.box is None:
            return self.inner_size
        return (max(1, int(round(self.src_w * self.scale))), max(1, int(round(self.src_h * self.scale))))

    @property
    def inner_box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the scaled source inside the square, in model pixels (the rest is
        padding)."""
        w, h = self.inner_size
        return int(self.pad_x), int(self.pad_y), w, h

    def fill_outside(self, a: np.ndarray, value) -> np.ndarray:
        """Set ``a[..., y, x] = value`` on the source pixels outside :attr:`box` (in place; a
        no-op without a box) and return ``a``.

        Args:
            a: ``(..., src_h, src_w)`` array on the source grid.

        Raises:
            ValueError: ``a`` is not on the source grid.
        """
        if a.shape[-2:] != (self.src_h, self.src_w):
            raise ValueError(f"expected (..., {self.src_h}, {self.src_w}), got {a.shape}")
        if self.box is not None:
            x, y, w, h = self.box
            a[..., :y, :] = value
            a[..., y + h:, :] = value
            a[..., :, :x] = value
            a[..., :, x + w:] = value
        return a

    def cut_box(self, image: np.ndarray) -> np.ndarray:
        """The :attr:`box` of a whole frame given at any scale (a view; ``image`` itself
        without a box).

        Args:
            image: ``(H', W', ...)`` the whole source frame, scaled by any factor (e.g. to
                :attr:`decode_size`).

        Returns:
            ``(h', w', ...)`` view: the box's pixels at the image's scale (rounded to whole
            pixels, at least one).
        """
        if self.box is None:
            return image
        f = image.shape[1] / self.src_w          # the image's scale relative to the source
        x, y, bw, bh = self.box
        x0, y0 = int(round(x * f)), int(round(y * f))
        x1 = max(x0 + 1, min(image.shape[1], int(round((x + bw) * f))))
        y1 = max(y0 + 1, min(image.shape[0], int(round((y + bh) * f))))
        return image[y0:y1, x0:x1]

    def paste_box(self, a: np.ndarray, fill) -> np.ndarray:
        """Place an array on the :attr:`box`'s source grid into the whole frame's (the inverse of
        :meth:`cut_box` at the source's scale): ``a`` itself without a box.

        Args:
            a: ``(..., box_h, box_w)`` array on the box's source pixels.
            fill: value of the source pixels outside the box.

        Returns:
            ``(..., src_h, src_w)`` array of ``a``'s dtype.

        Raises:
            ValueError: ``a`` is not on the box's grid.
        """
        x, y, w, h = self.region
        if a.shape[-2:] != (h, w):
            raise ValueError(f"expected (..., {h}, {w}), got {a.shape}")
        if self.box is None:
            return a
        out = np.full(a.shape[:-2] + (self.src_h, self.src_w), fill, dtype=a.dtype)
        out[..., y:y + h, x:x + w] = a
        return out

    @property
    def box_letterbox(self) -> "Letterbox":
        """The same letterbox for the :attr:`box` cut out as a frame of its own (``box[3] ×
        box[2]``, no box): the same scale and padding, coordinates relative to the box's
        top-left corner. Itself without a box."""
        if self.box is None:
            return self
        _, _, bw, bh = self.box
        return Letterbox.fit(bh, bw, self.size)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Cut out the box (if any), resize and pad one frame (edge replication).

        Args:
            image: the whole ``(src_h, src_w, 3)`` uint8 RGB frame, or the whole frame scaled
                by any factor (e.g. to :attr:`decode_size` by a decoder that scales while
                decoding, :class:`tracker.sources.ScaledFileSource`; one already at
                :attr:`inner_size` without a box is only padded).

        Returns:
            ``(size, size, 3)`` uint8 RGB, C-contiguous, never a view of ``image``.
        """
        w, h = self.inner_size
        image = self.cut_box(image)
        if image.shape[:2] == (h, w):  # already scaled (cv2.resize would only copy it)
            small = image
        else:
            shrink = self.scale < 1 if self.box is None else image.shape[1] > w
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
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
        to source-video pixel coordinates (x right, y down, pixel centres at integers; with a
        :attr:`box`, still the whole frame's pixels).

        Args:
            xy: ``(..., 2)`` float array.

        Returns:
            ``(..., 2)`` float64 array in source pixels.
        """
        xy = np.asarray(xy, dtype=np.float64)
        model_px = (xy + 1.0) * (self.size / 2.0) - 0.5
        pad = np.array([int(self.pad_x), int(self.pad_y)], dtype=np.float64)
        bx, by, bw, bh = self.region
        w, h = self.inner_size
        sx, sy = w / bw, h / bh
        return (model_px - pad + 0.5) / np.array([sx, sy]) - 0.5 + np.array([bx, by], dtype=np.float64)

    def source_to_norm(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`norm_to_source`."""
        xy = np.asarray(xy, dtype=np.float64)
        pad = np.array([int(self.pad_x), int(self.pad_y)], dtype=np.float64)
        bx, by, bw, bh = self.region
        w, h = self.inner_size
        sx, sy = w / bw, h / bh
        model_px = (xy - np.array([bx, by], dtype=np.float64) + 0.5) * np.array([sx, sy]) + pad - 0.5
        return (model_px + 0.5) / (self.size / 2.0) - 1.0

    @property
    def norm_to_source_scale(self) -> tuple[float, float]:
        """Source pixels per normalised unit along (x, y): multiply a normalised length
        (e.g. a transform's ``s_x``) by this to get source pixels."""
        _, _, bw, bh = self.region
        w, h = self.inner_size
        return (self.size / 2.0) * bw / w, (self.size / 2.0) * bh / h
