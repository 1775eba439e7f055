"""Overlay drawing shared by the live viewer, the exported overlay video and the tests
(numpy/OpenCV only — no Qt).

Everything is drawn on a copy of an ``(H, W, 3)`` uint8 **RGB** image; colours are RGB
triples (0–255) applied channel by channel, so they come out right on RGB images.

Geometry follows the conventions (README.md, "Conventions: coordinates, angles, time"): with
``angle_deg`` = a, in image coordinates (y down) the first axis points along ``d1 = (cos a, −sin a)``. The second axis is the second column of
``A = R(θ)·diag(s_x, s_y)`` in the y-down image frame (θ = −a), i.e. ``d2 = (sin a, cos a)``:
the first axis turned 90° clockwise on screen (straight down when a = 0). ``scale`` is about
the part's standard deviation along each axis, so the axes are drawn from the centre to
``xy + g·scale_x·d1`` (arrow) and ``xy + g·scale_y·d2`` (plain line) with
``g = OverlayStyle.axis_gain`` (2 by default: about the edge of the part).

What is drawn (each switchable in :class:`OverlayStyle`):

* part masks: each part's label pixels blended with its colour (``mask_opacity``), plus the
  part boundaries at full colour (``show_outlines``); a colour lookup table makes this a few
  OpenCV calls (timings in docs/performance.md);
* axes of every part's pose; parts flagged not visible (predicted by the Kalman filter) are
  drawn dashed in a faded colour;
* the skeleton: a line centre(a) → joint → centre(b) for every joint whose two parts are
  visible, joint dots;
* a legend (colour swatch + part name; invisible parts dimmed), top right;
* a HUD (free text lines: frames/s, latency, backend...), top left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from parttrack.tracker.core import JointPositions, PartPoses

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SHIFT = 4  # sub-pixel bits for cv2 drawing calls: coordinates are multiplied by 2**_SHIFT
_ONE = 1 << _SHIFT
_OUTLINE = (0, 0, 0)
# OpenCV's Hershey fonts are ASCII only: common symbols are spelled out, others become '?'.
_ASCII = str.maketrans({"·": "|", "•": "|", "×": "x", "≈": "~", "°": "deg", "–": "-", "—": "-",
                        "…": "...", "µ": "u", "θ": "theta"})
_SKELETON = (255, 255, 255)


@dataclass(frozen=True)
class OverlayStyle:
    """How :func:`draw_overlay` draws.

    Attributes:
        mask_opacity: weight of the part colour over the image inside a part's mask, in [0, 1].
        show_masks: blend the part label map.
        show_outlines: draw part boundaries (where the label changes) at full colour
            (only with ``show_masks``).
        show_axes: draw each part's pose axes.
        axis_gain: axes are drawn ``axis_gain × scale`` long (scale ≈ the part's standard
            deviation along the axis, so 2 reaches about the part's edge).
        show_invisible: also draw axes of parts flagged not visible (dashed, faded).
        show_skeleton: draw centre–joint–centre lines and joint dots.
        show_legend: draw the part legend.
        show_hud: draw the HUD text lines.
        line_thickness: axis/skeleton line thickness in output pixels; ``None`` = automatic
            (about 1 px per 240 px of the shorter image side, at least 2).
        font_scale: OpenCV Hershey font scale; ``None`` = automatic from the image height.
        dash_px: dash length in output pixels for invisible parts' axes (at least 2.5× the
            outlined line width).
    """

    mask_opacity: float = 0.45
    show_masks: bool = True
    show_outlines: bool = True
    show_axes: bool = True
    axis_gain: float = 2.0
    show_invisible: bool = True
    show_skeleton: bool = True
    show_legend: bool = True
    show_hud: bool = True
    line_thickness: int | None = None
    font_scale: float | None = None
    dash_px: float = 6.0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.mask_opacity) <= 1.0:
            raise ValueError(f"mask_opacity must be in [0, 1], got {self.mask_opacity}")
        if self.line_thickness is not None and self.line_thickness < 1:
            raise ValueError(f"line_thickness must be >= 1, got {self.line_thickness}")


def draw_overlay(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    poses: PartPoses | None = None,
    joints: JointPositions | None = None,
    colors=(),
    names=(),
    style: OverlayStyle | None = None,
    hud=(),
    *,
    scale: float = 1.0,
) -> np.ndarray:
    """Draw masks, pose axes, skeleton, legend and HUD over a frame.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame (not modified).
        labels: ``(H, W)`` uint8 part label map (0 = background, i = part i), or ``None``.
            A map of another size is resized (nearest neighbour) to the image.
        poses: the frame's :class:`tracker.core.PartPoses` (source pixels), or ``None``. A part
            whose centre is NaN (no pose: e.g. dropped from the model) is not drawn and not
            listed in the legend.
        joints: the frame's :class:`tracker.core.JointPositions` (source pixels), or ``None``.
        colors: K RGB triples, index i ↔ part id i+1; empty = the bundle default palette.
        names: K part names for the legend; empty = ``part1 … partK``.
        style: :class:`OverlayStyle`; ``None`` = defaults.
        hud: text lines drawn top left (OpenCV's fonts are ASCII: a few symbols such as
            ``·``, ``×``, ``≈`` are transliterated, other non-ASCII characters become ``?``).
        scale: output size factor (> 0): the frame is resized by ``scale`` and every
            coordinate/length scaled to match, so lines and text stay sharp when a small video
            is shown large. Masks are blended at the smaller of the two sizes (then resized
            with the frame when enlarging: smooth mask edges, a quarter of the cost at 2×).

    Returns:
        A new ``(round(H·scale), round(W·scale), 3)`` uint8 RGB image, C-contiguous.

    Raises:
        ValueError: wrong image/label shapes or dtypes, or a non-positive ``scale``.
    """
    style = style or OverlayStyle()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    h, w, _ = image.shape
    out_w, out_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    sx, sy = out_w / w, out_h / h
    k = _num_parts(labels, poses, colors, names)
    colors = _part_colors(colors, k)
    names = tuple(str(n) for n in names) if names else tuple(f"part{i + 1}" for i in range(k))
    thick = style.line_thickness or max(2, int(round(min(out_h, out_w) / 240)))

    # masks are blended at the smaller of the source and output sizes (the costly step),
    # lines and text are drawn at the output size (so they stay sharp)
    out = image
    masks = labels is not None and style.show_masks
    if masks and out_w * out_h >= w * h:
        out = blend_labels(out, labels, colors, style.mask_opacity, outlines=style.show_outlines)
        masks = False
    if (out_w, out_h) != (w, h):
        out = cv2.resize(out, (out_w, out_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    elif out is image:
        out = np.array(image, copy=True, order="C")
    if masks:
        out = blend_labels(out, labels, colors, style.mask_opacity, outlines=style.show_outlines)

    centres = None
    if poses is not None:
        centres = _to_out(poses.xy, sx, sy)
    if joints is not None and style.show_skeleton:
        _draw_skeleton(out, centres, None if poses is None else poses.visible, joints, sx, sy, thick)
    if poses is not None and style.show_axes:
        _draw_axes(out, poses, centres, sx, sy, colors, thick, style)
    font_scale = style.font_scale or max(0.4, 0.5 * out_h / 480)
    if style.show_legend and k:
        listed, visible = _legend_listed(k, poses)
        if listed:
            _draw_legend(out, [_ascii(names[i]) for i in listed], colors[listed], visible, font_scale)
    if style.show_hud and hud:
        _draw_text_box(out, [_ascii(s) for s in hud], font_scale)
    return out


# ----------------------------------------------------------------------------- masks
def blend_labels(image: np.ndarray, labels: np.ndarray, colors, opacity: float,
                 outlines: bool = True) -> np.ndarray:
    """Blend part colours into ``image`` where ``labels`` > 0 (a new array is returned).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        labels: ``(h, w)`` uint8 label map (0 = background); resized (nearest) to H×W.
        colors: RGB triples, index i ↔ label i+1; labels beyond them are drawn grey.
        opacity: part colour weight in [0, 1].
        outlines: also paint a part's boundary pixels (those whose 3×3 neighbourhood holds
            another label) in the full part colour.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be (H, W), got shape {labels.shape}")
    h, w, _ = image.shape
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    if labels.shape != (h, w):
        labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
    lut = np.full((3, 256), 128, dtype=np.uint8)  # per channel: label -> colour value
    lut[:, 0] = 0
    if len(colors):
        lut[:, 1:len(colors) + 1] = np.asarray(colors, dtype=np.uint8)[:255].T
    colour = cv2.merge([cv2.LUT(labels, lut[c]) for c in range(3)])
    blended = cv2.addWeighted(image, 1.0 - float(opacity), colour, float(opacity), 0.0)
    out = image.copy()
    out = cv2.copyTo(blended, labels, out)
    if outlines:  # a part's own boundary pixels: its 3x3 neighbourhood holds another label
        kernel = np.ones((3, 3), np.uint8)
        edge = cv2.compare(cv2.dilate(labels, kernel), cv2.erode(labels, kernel), cv2.CMP_NE)
        edge = cv2.bitwise_and(edge, labels)  # nonzero only inside parts
        out = cv2.copyTo(colour, edge, out)
    return out


# ----------------------------------------------------------------------------- geometry
def axis_directions(angle_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of a part's two axes in image coordinates (x right, y down).

    Args:
        angle_deg: ``(K,)`` angles, counter-clockwise on screen from +x (tracker.core).

    Returns:
        ``(d1, d2)``, each ``(K, 2)`` float64: ``d1 = (cos a, −sin a)``,
        ``d2 = (sin a, cos a)`` (d1 turned 90° clockwise on screen).
    """
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    return np.stack([c, -s], axis=-1), np.stack([s, c], axis=-1)


def _to_out(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Source pixel coordinates → output pixel coordinates (pixel-centre convention)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([(xy[..., 0] + 0.5) * sx - 0.5, (xy[..., 1] + 0.5) * sy - 0.5], axis=-1)


def _fx(p) -> tuple[int, int]:
    """A point as cv2 fixed-point integers (``_SHIFT`` fractional bits)."""
    return int(math.floor(float(p[0]) * _ONE + 0.5)), int(math.floor(float(p[1]) * _ONE + 0.5))


def _finite(*pts) -> bool:
    """All coordinates finite and within OpenCV's drawable range."""
    return all(math.isfinite(v) and abs(v) < 1e6 for p in pts for v in (float(p[0]), float(p[1])))


def _line(img, p, q, color, thick, outline=True) -> None:
    if outline:
        cv2.line(img, _fx(p), _fx(q), _OUTLINE, thick + 2, cv2.LINE_AA, _SHIFT)
    cv2.line(img, _fx(p), _fx(q), color, thick, cv2.LINE_AA, _SHIFT)


def _dashed(img, p, q, color, thick, dash) -> None:
    p, q = np.asarray(p, float), np.asarray(q, float)
    length = float(np.hypot(*(q - p)))
    dash = max(dash, 2.5 * (thick + 2))  # gaps stay visible between the outlined dashes
    n = max(1, int(length // dash))
    starts = np.arange(0, n, 2)
    ends = np.minimum(starts + 1, n)
    seg = p + (q - p) * (np.stack([starts, ends], axis=1)[..., None] / n)  # (m, 2 ends, xy)
    seg = np.floor(seg * _ONE + 0.5).astype(np.int32)
    for col, t in ((_OUTLINE, thick + 2), (color, thick)):  # one call per colour for all dashes
        cv2.polylines(img, list(seg), False, col, t, cv2.LINE_AA, _SHIFT)


def _dot(img, p, radius, color) -> None:
    r = int(round(radius * _ONE))
    cv2.circle(img, _fx(p), r + _ONE, _OUTLINE, -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(img, _fx(p), r, color, -1, cv2.LINE_AA, _SHIFT)


def _draw_axes(img, poses: PartPoses, centres, sx, sy, colors, thick, style: OverlayStyle) -> None:
    d1, d2 = axis_directions(poses.angle_deg)
    scale = np.abs(np.asarray(poses.scale, dtype=np.float64)) * float(style.axis_gain)
    for i in range(poses.num_parts):
        c = centres[i]
        # scale the axis vectors (not just the lengths): handles sx != sy correctly.
        v1 = d1[i] * scale[i, 0] * np.array([sx, sy])
        v2 = d2[i] * scale[i, 1] * np.array([sx, sy])
        if not _finite(c, v1, v2):
            continue
        color = tuple(int(v) for v in colors[i % len(colors)])
        if bool(poses.visible[i]):
            _line(img, c, c + v2, color, max(1, thick - 1))
            if np.hypot(*v1) >= 1:
                cv2.arrowedLine(img, _fx(c), _fx(c + v1), _OUTLINE, thick + 2, cv2.LINE_AA, _SHIFT, 0.25)
                cv2.arrowedLine(img, _fx(c), _fx(c + v1), color, thick, cv2.LINE_AA, _SHIFT, 0.25)
            _dot(img, c, thick + 1, color)
        elif style.show_invisible:
            faded = tuple(int(0.5 * v + 64) for v in color)
            _dashed(img, c, c + v1, faded, thick, style.dash_px)
            _dashed(img, c, c + v2, faded, max(1, thick - 1), style.dash_px)
            cv2.circle(img, _fx(c), int(round((thick + 1) * _ONE)), faded, 1, cv2.LINE_AA, _SHIFT)


def _draw_skeleton(img, centres, visible, joints: JointPositions, sx, sy, thick) -> None:
    """Lines centre(a) → joint → centre(b) and joint dots; a joint whose parts are not both
    visible is left out (its position is an extrapolation of predicted poses)."""
    jxy = _to_out(joints.xy, sx, sy)
    k = 0 if centres is None else len(centres)
    for (a, b), j in zip(np.asarray(joints.pairs), jxy):
        if not _finite(j):
            continue
        if centres is not None:
            if not (1 <= a <= k and 1 <= b <= k) or not (visible[a - 1] and visible[b - 1]):
                continue
            for part in (a, b):
                if _finite(centres[part - 1]):
                    _line(img, centres[part - 1], j, _SKELETON, max(1, thick - 1))
        _dot(img, j, thick + 1, _SKELETON)


# ----------------------------------------------------------------------------- text
def _legend_listed(k: int, poses) -> tuple[list[int], list[bool] | None]:
    """The 0-based parts the legend lists (a part without any pose, e.g. dropped from the
    model, is not listed) and whether each is visible (None: all)."""
    listed, visible = list(range(k)), None
    if poses is not None:
        has_pose = np.isfinite(poses.xy).all(-1)
        listed = [i for i in listed if i >= poses.num_parts or has_pose[i]]
        visible = [i >= poses.num_parts or bool(poses.visible[i]) for i in listed]
    return listed, visible


def _legend_geometry(names, font_scale, img_w) -> tuple[int, int, int, int, int, int, int]:
    """``(x0, y0, box_w, box_h, row, swatch, text_h)`` of the legend box (top right)."""
    th = max(1, int(round(font_scale * 2)))
    (_, text_h), base = _text_size("Ag", _FONT, font_scale, th)
    row = text_h + base + 4
    sw = text_h  # swatch side
    widths = [_text_size(n, _FONT, font_scale, th)[0][0] for n in names]
    box_w = 6 + sw + 6 + max(widths) + 10  # left pad, swatch, gap, text, right pad
    box_h = row * len(names) + 8
    return max(0, img_w - box_w - 6), 6, box_w, box_h, row, sw, text_h


def legend_layout(out_shape: tuple[int, int], names, poses=None,
                  style: OverlayStyle | None = None) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Where :func:`draw_overlay` puts each row of the legend, for hit-testing (a click on a
    part's name in the viewer).

    Args:
        out_shape: ``(H, W)`` of the image :func:`draw_overlay` returned (after ``scale``).
        names: the K part names given to :func:`draw_overlay` (empty: ``part1 … partK`` of
            ``poses``' K).
        poses: the :class:`tracker.core.PartPoses` given to it (parts without a pose are not
            listed), or None.
        style: the same :class:`OverlayStyle` (None: defaults).

    Returns:
        ``[(part, (x, y, w, h)), …]``: 1-based part id and its row's rectangle in output-image
        pixels, top to bottom; empty when the legend is not drawn.
    """
    style = style or OverlayStyle()
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    k = len(names) if names else (poses.num_parts if poses is not None else 0)
    if not (style.show_legend and k):
        return []
    names = tuple(str(n) for n in names) if names else tuple(f"part{i + 1}" for i in range(k))
    listed, _ = _legend_listed(k, poses)
    if not listed:
        return []
    font_scale = style.font_scale or max(0.4, 0.5 * out_h / 480)
    x0, y0, box_w, _, row, _, _ = _legend_geometry([_ascii(names[i]) for i in listed], font_scale, out_w)
    return [(i + 1, (x0, y0 + 4 + row * n, box_w, row)) for n, i in enumerate(listed)]


def _draw_legend(img, names, colors, visible, font_scale) -> None:
    lines = list(names)
    th = max(1, int(round(font_scale * 2)))
    x0, y0, box_w, box_h, row, sw, text_h = _legend_geometry(lines, font_scale, img.shape[1])
    _shade(img, x0, y0, box_w, box_h)
    for i, name in enumerate(lines):
        y = y0 + 4 + row * i
        color = tuple(int(v) for v in colors[i % len(colors)])
        on = visible is None or i >= len(visible) or bool(visible[i])
        text_color = (255, 255, 255) if on else (140, 140, 140)
        if on:
            cv2.rectangle(img, (x0 + 6, y + 2), (x0 + 6 + sw, y + 2 + sw), color, -1)
        else:
            cv2.rectangle(img, (x0 + 6, y + 2), (x0 + 6 + sw, y + 2 + sw), color, 1)
        cv2.putText(img, name, (x0 + 6 + sw + 6, y + 2 + text_h), _FONT, font_scale, text_color, th, cv2.LINE_AA)


@lru_cache(maxsize=512)
def _text_size(text: str, font: int, scale: float, thickness: int):
    return cv2.getTextSize(text, font, scale, thickness)


def _ascii(text) -> str:
    return str(text).translate(_ASCII).encode("ascii", "replace").decode("ascii")


def _draw_text_box(img, lines, font_scale) -> None:
    th = max(1, int(round(font_scale * 2)))
    (_, text_h), base = _text_size("Ag", _FONT, font_scale, th)
    row = text_h + base + 4
    box_w = max(_text_size(s, _FONT, font_scale, th)[0][0] for s in lines) + 12
    box_h = row * len(lines) + 6
    x0, y0 = 6, 6
    _shade(img, x0, y0, box_w, box_h)
    for i, s in enumerate(lines):
        cv2.putText(img, s, (x0 + 6, y0 + 4 + row * i + text_h), _FONT, font_scale,
                    (255, 255, 255), th, cv2.LINE_AA)


def _shade(img, x0, y0, bw, bh, alpha=0.55) -> None:
    """Darken a rectangle (clipped to the image) so text on it stays readable."""
    h, w, _ = img.shape
    x1, y1 = min(w, x0 + bw), min(h, y0 + bh)
    x0, y0 = max(0, x0), max(0, y0)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[...] = (roi.astype(np.uint16) * int(round((1 - alpha) * 256)) >> 8).astype(np.uint8)


# ----------------------------------------------------------------------------- helpers
def _num_parts(labels, poses, colors, names) -> int:
    if poses is not None:
        return poses.num_parts
    if len(colors):
        return len(colors)
    if len(names):
        return len(names)
    if labels is not None and labels.size:
        return int(labels.max())
    return 0


def _part_colors(colors, k: int) -> np.ndarray:
    """``(max(K, 1), 3)`` uint8 RGB; the bundle palette when ``colors`` is empty."""
    if len(colors):
        arr = np.asarray(colors, dtype=np.int64).reshape(-1, 3)
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("part colours must be RGB triples in 0..255")
        if len(arr) < k:  # fewer colours than parts: cycle
            arr = arr[np.arange(k) % len(arr)]
        return arr.astype(np.uint8)
    from parttrack.engine.bundle import default_part_colors

    return np.asarray(default_part_colors(max(k, 1)), dtype=np.uint8)
