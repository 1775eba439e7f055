"""Footage check: does a video meet the training method's assumptions (one continuous shot, a
static camera, a subject large enough for the model input)?

:func:`check_footage` (or :class:`FootageChecker`, fed one frame at a time while a video is
decoded for something else) measures three things and :func:`findings` turns them into plain
sentences with what to do. All of it is numpy/OpenCV and cheap: every frame costs a resize and
a colour conversion; optical flow runs on a bounded sample of frame pairs and on cut candidates.

**Shot cuts** — two tests, both needed:

1. *Content change* (the classic content detector, as PySceneDetect's ``ContentDetector`` /
   ``AdaptiveDetector``): the score of frame t is the mean absolute difference of its HSV
   channels from frame t − 1 (hue taken circularly, each channel on a 0–255 scale, averaged
   over H, S, V) on a copy whose longer side is :attr:`FootageOptions.cut_size`. Frame t is a
   candidate when its score is at least ``cut_min_score`` and at least ``cut_ratio`` × (the
   median score of the previous ``cut_window`` frames of the shot + 1): a cut is a spike, while
   steady fast motion or a moving camera raise the score of every frame.
2. *No correspondence* (the flow check): a candidate is confirmed when the share of pixels that
   DIS optical flow (:meth:`engine.flow.PairFlow.pixels`) matches from t − 1 to t — trusted by
   the forward–backward check, on texture, and within ``match_tol`` grey levels after warping
   (a global brightness offset removed) — is below ``cut_flow_ratio`` × that share for
   t − 2 → t − 1. A sudden motion or a flash of light changes the content but the frames still
   correspond; across a cut they do not.

   Cuts closer than ``min_shot_s`` to the previous one are dropped. Gradual transitions
   (dissolves, fades) are not detected.

**Camera motion**: on frame pairs ``pair_gap_s`` apart (one pair every ``pair_every_s``, at
most ``max_pairs``, spread evenly; never across a cut), DIS flow is measured at
:attr:`FootageOptions.work_size` on the trusted (forward–backward check) textured pixels. The
*camera speed* of the pair is the 25th percentile of their flow's length, divided by the gap and
by the frame's longer side: **frame lengths per second**. A low percentile because the subject's
pixels, and the scenery next to it that DIS drags along, move for a static camera too; they are
well under three quarters of the textured pixels unless the subject fills the frame (which then
looks like a moving camera). The report keeps the median over pairs (the camera moves for most of
the video) and the share of pairs above ``camera_threshold``. This measures what the
static-background assumption needs — that the scenery stays put — directly; the alternative
(how much of each frame the temporal median background explains) also drops with light
changes, compression and a large subject. Only textured pixels count because flat areas have
no measurable flow (DIS returns ~0 there, which would hide a pan of a flat-coloured scene).

**Subject size**: in the same pairs, the dominant affine motion is fitted
(:func:`engine.flow.global_affine_residual`'s robust fit, then least squares on the pixels
within ``residual_px`` of it); the second frame is warped back by it, and the pixels that still
differ by more than ``diff_tol`` grey levels (after removing the median difference) move
relative to the background — the subject's, at its old and new place. Speckle is removed by a
2×2 opening and holes closed by a 5×5 closing. A brightness difference rather than the flow's
residual, because the flow at the model's resolution misses limbs a few pixels wide. The
*subject share* is the 90th percentile over pairs of their share of the frame (the subject when
most of it moves); the *subject reach* is the box of the 0.2–99.8th percentiles of where anything
moved, over all pairs, and the *subject box* that box widened by 0.3 of its size on every side
(motion seen in sampled pairs misses the extremes of the subject's reach, and parts that hardly
move are not seen at all) — a generous box that keeps the subject. The subject is "small" below
``min_subject_share``.

Coordinates: frame indices count from 0 in the order frames were given; times in seconds from
the given timestamps (default ``index / fps``); boxes ``(x, y, w, h)`` in source-video pixels
(``source_size`` / ``source_offset`` relate the checked frames to the source).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from parttrack.engine.flow import PairFlow, global_affine_residual


@dataclass(frozen=True)
class FootageOptions:
    """Settings and thresholds of the footage check (module docstring for the tests).

    Attributes:
        work_size: longer side (px) of the copy on which flow is measured (the model input's).
        cut_size: longer side (px) of the copy on which the content score is measured.
        cut_min_score: smallest content score of a cut (mean |ΔHSV|, 0–255 units).
        cut_ratio: a cut's score over (median of the previous ``cut_window`` scores + 1).
        cut_window: frames of history for that median.
        cut_flow_ratio: confirmed when the matched share across the candidate is below this
            times the matched share of the pair before it.
        match_tol: grey levels (0–255) a warped pixel may differ by and still match.
        min_shot_s: shortest shot (s); a cut closer to the previous one is dropped.
        pair_gap_s: time between the two frames of a camera/subject pair (s).
        pair_every_s: initial time between sampled pairs (s); doubled whenever more than
            ``max_pairs`` pairs were measured (half of them are then dropped, evenly).
        max_pairs: most pairs kept.
        texture: smallest grey-level gradient (Sobel magnitude / 8, grey levels per px) of a
            pixel whose flow counts.
        residual_px: a pixel within this distance (px at ``work_size``) of the dominant motion
            follows it (:func:`engine.flow.moving_pixels`' default threshold).
        diff_tol: grey levels (0–255) by which a pixel must differ, once the dominant motion is
            compensated, to move relative to the background.
        camera_threshold: camera speed (frame lengths per second) above which the camera moves.
        camera_partly_share: share of the pairs above ``camera_threshold`` from which a camera
            that is still for most of the video counts as moving for a while
            (:attr:`FootageReport.camera_moves_partly`).
        min_subject_share: subject share of the frame below which the subject is small.
        flow_preset: DIS preset (:data:`engine.flow.PRESETS`).
    """

    work_size: int = 128
    cut_size: int = 64
    cut_min_score: float = 10.0
    cut_ratio: float = 3.0
    cut_window: int = 8
    cut_flow_ratio: float = 0.6
    match_tol: float = 12.0
    min_shot_s: float = 0.2
    pair_gap_s: float = 0.5
    pair_every_s: float = 0.5
    max_pairs: int = 48
    texture: float = 2.0
    residual_px: float = 1.0
    diff_tol: float = 16.0
    camera_threshold: float = 0.015
    camera_partly_share: float = 0.1
    min_subject_share: float = 0.03
    flow_preset: str = "fast"

    def __post_init__(self) -> None:
        if self.work_size < 16 or self.cut_size < 8 or self.max_pairs < 2 or self.cut_window < 2:
            raise ValueError(f"work_size >= 16, cut_size >= 8, max_pairs >= 2 and cut_window >= 2 needed, got {self}")
        if min(self.pair_gap_s, self.pair_every_s) <= 0:
            raise ValueError("pair_gap_s and pair_every_s must be positive")


@dataclass(frozen=True)
class FootageReport:
    """What :class:`FootageChecker` measured on one video (module docstring for the methods).

    Attributes:
        frames: frames checked. fps: frame rate used for the pair gaps (frames/s).
        duration_s: time from the first to the last frame plus one frame (s).
        cut_frames: index of the first frame of each shot after the first (increasing).
        cut_times_s: their timestamps (s).
        camera_speed: median camera speed over the pairs, in frame lengths (the longer side)
            per second; NaN when no pair could be measured.
        camera_moves: ``camera_speed > camera_threshold`` (the camera moves for most of the video).
        camera_moving_share: share of the pairs, in [0, 1], whose speed is above the threshold
            (a camera that moves for a while only: > 0 with ``camera_moves`` False).
        camera_moving_spans_s: ``(start, end)`` seconds (the timestamps given) of the stretches
            where the camera moves: the pairs above the threshold, joined where they follow
            each other (time increasing).
        subject_share: share of the frame, in [0, 1], that moves relative to the dominant
            motion (90th percentile over pairs); NaN when no pair could be measured.
        subject_box: ``(x, y, w, h)`` int source pixels where anything moved, with a margin of
            0.3 of its size on every side (clipped to the frame), or None when nothing did.
        subject_small: ``subject_share < min_subject_share``.
        frame_size: ``(w, h)`` of the source frames, in pixels.
        pairs: frame pairs measured for the camera and the subject.
        seconds: wall time the check took (s).
        options: the settings used.
        subject_reach: ``(x, y, w, h)`` int source pixels where the subject moved, without a
            margin: from the 0.2nd to the 99.8th percentile of the moving pixels' positions
            along each axis, counted over all pairs; None when nothing moved.
    """

    frames: int
    fps: float
    duration_s: float
    cut_frames: tuple[int, ...]
    cut_times_s: tuple[float, ...]
    camera_speed: float
    camera_moves: bool
    camera_moving_share: float
    subject_share: float
    subject_box: tuple[int, int, int, int] | None
    subject_small: bool
    frame_size: tuple[int, int]
    pairs: int
    seconds: float
    options: FootageOptions = field(default_factory=FootageOptions)
    camera_moving_spans_s: tuple[tuple[float, float], ...] = ()
    subject_reach: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.cut_frames) != len(self.cut_times_s):
            raise ValueError(f"{len(self.cut_frames)} cut frames but {len(self.cut_times_s)} cut times")
        if any(b <= a for a, b in zip(self.cut_frames, self.cut_frames[1:])) or any(
                not 0 < c < max(self.frames, 1) for c in self.cut_frames):
            raise ValueError(f"cut_frames must increase inside 1..{self.frames - 1}, got {self.cut_frames}")

    @property
    def camera_moves_partly(self) -> bool:
        """The camera is still for most of the video but moves for a while: in at least
        ``options.camera_partly_share`` of the pairs (:attr:`camera_moving_spans_s` says when).
        A static background image is wrong while it moves, so training treats the camera as
        moving."""
        return not self.camera_moves and self.camera_moving_share >= self.options.camera_partly_share

    @property
    def shot_starts(self) -> tuple[int, ...]:
        """First frame of every shot: ``(0, *cut_frames)``."""
        return (0,) + self.cut_frames

    def _longest_shot(self) -> tuple[int, list[float]]:
        first = self.cut_times_s[0] - self.cut_frames[0] / self.fps if self.cut_frames else 0.0
        bounds = [first, *self.cut_times_s, first + self.duration_s]
        return int(np.argmax(np.diff(bounds))), bounds

    @property
    def longest_shot_s(self) -> tuple[float, float]:
        """``(start, end)`` seconds of the longest shot (in time): its first frame's time and the
        next shot's first frame's time (the video's end for the last shot), as ``--start/--end``."""
        k, bounds = self._longest_shot()
        return float(bounds[k]), float(bounds[k + 1])

    @property
    def longest_shot_frames(self) -> tuple[int, int]:
        """``(first, end)`` frame indices of the same shot as :attr:`longest_shot_s`: frames
        ``first … end − 1``."""
        k, _ = self._longest_shot()
        bounds = [0, *self.cut_frames, self.frames]
        return bounds[k], bounds[k + 1]

    def shot_ids(self) -> np.ndarray:
        """``(frames,)`` int64 shot id (0, 1, …) of every frame."""
        return shot_ids(self.frames, self.cut_frames)

    def to_json(self, moving_camera: bool | None = None, cropped: bool = False) -> dict:
        """A JSON-ready dict (NaN as None), with the findings for a ``track`` summary
        (``moving_camera``: whether the model was trained with ``--moving-camera``; ``cropped``:
        whether it sees a crop of the frames; as :func:`findings`)."""
        d = asdict(self)
        for k in ("camera_speed", "camera_moving_share", "subject_share"):
            d[k] = None if not math.isfinite(d[k]) else round(d[k], 5)
        d["seconds"] = round(self.seconds, 3)
        d["cut_times_s"] = [round(t, 4) for t in self.cut_times_s]
        d["camera_moving_spans_s"] = [[round(a, 4), round(b, 4)] for a, b in self.camera_moving_spans_s]
        d["findings"] = findings(self, command="track", moving_camera=moving_camera, cropped=cropped)
        return d


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def content_score(hsv_a: np.ndarray, hsv_b: np.ndarray) -> float:
    """Mean absolute HSV difference of two ``(h, w, 3)`` uint8 OpenCV HSV images (H in 0–179,
    taken circularly and rescaled to 0–255), averaged over the three channels (0–255 units)."""
    a, b = hsv_a.astype(np.int16), hsv_b.astype(np.int16)
    dh = np.abs(a[..., 0] - b[..., 0])
    dh = np.minimum(dh, 180 - dh) * (255.0 / 90.0)
    return float((dh.mean() + np.abs(a[..., 1] - b[..., 1]).mean() + np.abs(a[..., 2] - b[..., 2]).mean()) / 3.0)


class FootageChecker:
    """The footage check, fed one frame at a time (:meth:`add`), then :meth:`report`.

    Memory stays bounded whatever the video's length: a few working-size frames and at most
    ``max_pairs`` moving-pixel maps.

    Args:
        fps: frame rate (frames/s, > 0): the pair gaps in frames and the default timestamps.
        source_size: ``(w, h)`` of the source frames the checked frames show (default: the
            checked frames' own size), for :attr:`FootageReport.subject_box`.
        source_offset: ``(x, y)`` of the checked frames' top-left corner in the source (a crop).
        options: :class:`FootageOptions`.

    Raises:
        ValueError: ``fps <= 0``.
    """

    def __init__(self, fps: float, source_size: tuple[int, int] | None = None,
                 source_offset: tuple[float, float] = (0.0, 0.0), options: FootageOptions | None = None) -> None:
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.fps, self.opts = float(fps), options or FootageOptions()
        self.source_size, self.source_offset = source_size, (float(source_offset[0]), float(source_offset[1]))
        self.flow = PairFlow((self.opts.work_size, self.opts.work_size), self.opts.flow_preset)
        self.gap = max(1, round(self.opts.pair_gap_s * self.fps))
        self.stride = max(self.gap, round(self.opts.pair_every_s * self.fps))
        self.min_shot = max(2, round(self.opts.min_shot_s * self.fps))
        self.t0 = time.perf_counter()
        self.n = 0
        self.first_time = self.last_time = None
        self.size = None                       # (h, w) of the checked frames
        self.prev_hsv = None
        self.grays: list[np.ndarray] = []      # the last 3 working-size grey frames
        self.scores: list[float] = []          # content scores since the last cut
        self.cuts: list[tuple[int, float]] = []
        self.pending: dict[int, np.ndarray] = {}
        self.speeds: list[float] = []
        self.speed_spans: list[tuple[float, float]] = []   # per speed: its pair's (start, end) s
        self.moving: list[np.ndarray] = []     # per pair: (h, w) bool at working size
        self.seconds = 0.0
        self.grid = None                       # (h, w, 3) float32 pixel grid for the affine fits

    def add(self, image: np.ndarray, time_s: float | None = None) -> None:
        """Add the next frame: ``(H, W, 3)`` uint8 RGB, every frame the same size; ``time_s`` its
        timestamp in seconds (default ``index / fps``).

        Raises:
            ValueError: not an ``(H, W, 3)`` uint8 image, or a size different from the first.
        """
        start = time.perf_counter()
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"a frame must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        if self.size is None:
            self.size = image.shape[:2]
        elif image.shape[:2] != self.size:
            raise ValueError(f"frame {self.n} is {image.shape[1]}x{image.shape[0]}, the first was "
                             f"{self.size[1]}x{self.size[0]}")
        t = self.n / self.fps if time_s is None else float(time_s)
        if self.first_time is None:
            self.first_time = t
        self.last_time = t
        small = np.ascontiguousarray(_resized(image, self.opts.work_size))
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(np.ascontiguousarray(_resized(small, self.opts.cut_size)), cv2.COLOR_RGB2HSV)
        self.grays = (self.grays + [gray])[-3:]
        if self.prev_hsv is not None:
            self._cut_test(content_score(self.prev_hsv, hsv), t)
        self.prev_hsv = hsv
        self._pairs(gray, t)
        self.n += 1
        self.seconds += time.perf_counter() - start

    # -- cuts ----------------------------------------------------------------------------
    def _cut_test(self, score: float, t: float) -> None:
        o, hist = self.opts, self.scores[-self.opts.cut_window:]
        last_cut = self.cuts[-1][0] if self.cuts else 0
        candidate = (len(hist) >= 2 and score >= o.cut_min_score and score >= o.cut_ratio * (np.median(hist) + 1.0)
                     and self.n - last_cut >= self.min_shot and len(self.grays) == 3)
        if candidate:
            g0, g1, g2 = self.grays
            if self.matched_share(g1, g2) < o.cut_flow_ratio * self.matched_share(g0, g1):
                self.cuts.append((self.n, t))
                self.scores = []
                self.pending.clear()          # no pair across the cut
                return
        self.scores.append(score)

    def _textured(self, gray: np.ndarray) -> np.ndarray:
        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
        return np.hypot(gx, gy) / 8.0 >= self.opts.texture

    def matched_share(self, a: np.ndarray, b: np.ndarray) -> float:
        """Share of the textured pixels of grey frame ``a`` ``(h, w)`` uint8 that DIS flow
        matches in ``b``: trusted by the forward–backward check and within ``match_tol`` grey
        levels of ``a`` once ``b`` is warped back (after removing the median brightness
        difference). 1.0 for a frame without texture."""
        tex = self._textured(a)
        if tex.sum() < 16:
            return 1.0
        flow, valid = self.flow.pixels(a, b)
        h, w = a.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        back = cv2.remap(b, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = back.astype(np.float32) - a.astype(np.float32)
        diff -= np.median(diff[tex])
        return float((valid & (np.abs(diff) <= self.opts.match_tol))[tex].mean())

    # -- camera and subject pairs --------------------------------------------------------
    def _pairs(self, gray: np.ndarray, t: float) -> None:
        start = self.n - self.gap
        if start in self.pending:
            first, t_first = self.pending.pop(start)
            self._measure(first, gray, (t_first, t))
        if self.n % self.stride == 0:
            self.pending[self.n] = (gray, t)
        for k in [k for k in self.pending if k < start]:
            del self.pending[k]

    def _measure(self, a: np.ndarray, b: np.ndarray, span: tuple[float, float]) -> None:
        o = self.opts
        h, w = a.shape
        enough = max(12, 0.02 * h * w)
        flow, valid = self.flow.pixels(a, b)
        tex = valid & self._textured(a)
        if tex.sum() >= enough:   # camera speed: the 25th percentile of |flow| on texture
            mag = np.hypot(flow[..., 0], flow[..., 1])[tex]
            self.speeds.append(float(np.percentile(mag, 25)) * self.fps / self.gap / max(h, w))
            self.speed_spans.append(span)
        # the dominant motion, least squares on the pixels that follow it
        resid = global_affine_residual(flow, tex)
        scenery = tex & (resid <= o.residual_px)
        if self.grid is None or self.grid.shape[:2] != (h, w):
            ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
            self.grid = np.stack([xs, ys, np.ones_like(xs)], -1)     # (h, w, 3): x, y, 1
        design = self.grid
        xs, ys = design[..., 0], design[..., 1]
        pred = np.zeros((h, w, 2), np.float32)
        if scenery.sum() >= enough:
            coef = np.linalg.lstsq(design[scenery].astype(np.float64), flow[scenery].astype(np.float64), rcond=None)[0]
            pred = design @ coef.astype(np.float32)
        mx, my = xs + pred[..., 0], ys + pred[..., 1]
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        back = cv2.remap(b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        diff = back.astype(np.float32) - a.astype(np.float32)
        if inside.any():
            diff -= np.median(diff[inside])
        moving = (inside & (np.abs(diff) > o.diff_tol)).astype(np.uint8)
        moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        self.moving.append(moving.astype(bool))
        if len(self.moving) > o.max_pairs:
            self.moving, self.speeds, self.speed_spans = self.moving[::2], self.speeds[::2], self.speed_spans[::2]
            self.stride *= 2

    # -- the report ----------------------------------------------------------------------
    def report(self) -> FootageReport:
        """The :class:`FootageReport` of the frames added so far."""
        o = self.opts
        h, w = self.size or (0, 0)
        src_w, src_h = self.source_size or (w, h)
        speed = float(np.median(self.speeds)) if self.speeds else math.nan
        shares = [float(m.mean()) for m in self.moving]
        share = float(np.percentile(shares, 90)) if shares else math.nan
        box = reach = None
        if shares and max(shares) > 0:
            freq = np.mean(self.moving, axis=0)
            mh, mw = freq.shape
            sx, sy = src_w / mw, src_h / mh
            lo_x, hi_x = _weighted_quantiles(freq.sum(0), (0.002, 0.998))
            lo_y, hi_y = _weighted_quantiles(freq.sum(1), (0.002, 0.998))
            ox, oy = self.source_offset

            def grown(margin: float) -> tuple[int, int, int, int]:
                mx, my = margin * (hi_x - lo_x + 1), margin * (hi_y - lo_y + 1)
                x0, x1 = max(0.0, (lo_x - mx) * sx), min(float(src_w), (hi_x + 1 + mx) * sx)
                y0, y1 = max(0.0, (lo_y - my) * sy), min(float(src_h), (hi_y + 1 + my) * sy)
                return int(x0 + ox), int(y0 + oy), int(math.ceil(x1 - x0)), int(math.ceil(y1 - y0))

            box, reach = grown(0.3), grown(0.0)
        duration = (self.last_time - self.first_time + 1.0 / self.fps) if self.n else 0.0
        spans: list[list[float]] = []
        step = self.stride / self.fps          # pairs of a moving stretch start this far apart
        for (a, b), v in sorted(zip(self.speed_spans, self.speeds)):
            if v <= o.camera_threshold:
                continue
            if spans and a <= spans[-1][1] + step + 1e-9:
                spans[-1][1] = max(spans[-1][1], b)
            else:
                spans.append([a, b])
        return FootageReport(
            frames=self.n, fps=self.fps, duration_s=float(duration),
            cut_frames=tuple(c for c, _ in self.cuts), cut_times_s=tuple(float(t) for _, t in self.cuts),
            camera_speed=speed, camera_moves=bool(speed > o.camera_threshold),
            camera_moving_share=float(np.mean(np.array(self.speeds) > o.camera_threshold)) if self.speeds else 0.0,
            subject_share=share, subject_box=box, subject_small=bool(share < o.min_subject_share),
            frame_size=(int(src_w), int(src_h)), pairs=len(self.moving),
            seconds=self.seconds + 0.0, options=o,
            camera_moving_spans_s=tuple((float(a), float(b)) for a, b in spans), subject_reach=reach)


def _weighted_quantiles(weights: np.ndarray, qs: tuple[float, ...]) -> list[int]:
    """Indices at the quantiles ``qs`` of the distribution of ``weights`` ``(n,)`` >= 0."""
    c = np.cumsum(weights, dtype=np.float64)
    return [int(np.searchsorted(c, q * c[-1])) for q in qs]


def check_footage(frames: np.ndarray | Iterable[np.ndarray], fps: float, times_s: Iterable[float] | None = None,
                  source_size: tuple[int, int] | None = None, source_offset: tuple[float, float] = (0.0, 0.0),
                  options: FootageOptions | None = None) -> FootageReport:
    """Check a video against the method's assumptions (module docstring).

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB, or an iterable of ``(H, W, 3)`` uint8 RGB frames.
        fps: frame rate (frames/s).
        times_s: timestamps (s) of the frames (default ``index / fps``).
        source_size, source_offset: see :class:`FootageChecker`.
        options: :class:`FootageOptions`.

    Returns:
        :class:`FootageReport`.

    Raises:
        ValueError: bad frames or ``fps`` (:meth:`FootageChecker.add`).
    """
    checker = FootageChecker(fps, source_size, source_offset, options)
    times = iter(times_s) if times_s is not None else None
    for image in frames:
        checker.add(image, None if times is None else next(times))
    return checker.report()


def shot_ids(n: int, shot_starts: tuple[int, ...] | list[int]) -> np.ndarray:
    """``(n,)`` int64 shot id (0, 1, …) of each of ``n`` frames, given the first frame of every
    shot (increasing or not; 0 and starts outside ``1 … n − 1`` are ignored)."""
    ids = np.zeros(n, np.int64)
    for c in sorted(set(int(c) for c in shot_starts)):
        if 0 < c < n:
            ids[c:] += 1
    return ids


def shot_bounds(frames: np.ndarray, shot_starts: tuple[int, ...] | list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last frame index of the shot holding each frame.

    Args:
        frames: ``(B,)`` int frame indices in ``0 … n − 1``.
        shot_starts: first frame of every shot, increasing (0 may be left out).
        n: frames in the video.

    Returns:
        ``(lo, hi)``, two ``(B,)`` int64 arrays: the shot of ``frames[i]`` is ``lo[i] … hi[i]``.
    """
    starts = np.unique(np.concatenate([[0], np.asarray(shot_starts, np.int64)]))
    starts = starts[(starts >= 0) & (starts < n)]
    k = np.searchsorted(starts, np.asarray(frames, np.int64), side="right") - 1
    ends = np.append(starts[1:] - 1, n - 1)
    return starts[k], ends[k]


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %" if share < 0.01 else f"{100 * share:.0f} %"


def _times(ts: tuple[float, ...], most: int = 6) -> str:
    shown = ", ".join(f"{t:.1f} s" for t in ts[:most])
    return shown + (", …" if len(ts) > most else "")


def findings(report: FootageReport, command: str = "train", moving_camera: bool | None = None,
             shots: bool | None = None, cropped: bool = False) -> list[str]:
    """Plain findings about ``report``, each with what to do; empty when the footage fits.

    Args:
        report: a :class:`FootageReport`.
        command: ``"train"`` (hints are ``parttrack train`` options) or ``"track"`` (what it
            means for tracks made from this footage).
        moving_camera: for ``"train"``, whether training runs with ``--moving-camera`` (None:
            it follows the check: on when the camera moves); for ``"track"``, whether the model
            was trained with ``--moving-camera`` (``engine.bundle.Bundle.moving_camera``; True
            leaves out the camera findings, which are about static-camera models; None: unknown).
        shots: for ``"train"``, what training does with the shots: True, every shot
            (``--shots``); False, the longest shot only (``parttrack train``'s default); None:
            not decided yet (the hint names both).
        cropped: for ``"train"``, training uses the crop around the subject that
            :func:`choose_crop` chose (the small-subject finding is then left out: the crop
            is said instead); for ``"track"``, the model sees a crop of these frames (its
            :attr:`engine.bundle.BundleMeta.crop`: the small-subject finding is left out too).

    Raises:
        ValueError: unknown ``command``.
    """
    if command not in ("train", "track"):
        raise ValueError(f"command must be 'train' or 'track', got {command!r}")
    out = []
    n = len(report.cut_frames)
    if n:
        what = f"{n} shot cut{'s' if n > 1 else ''} at {_times(report.cut_times_s)}"
        if command == "train":
            a, b = report.longest_shot_s
            if shots is None:
                out.append(f"{what}: train on one shot (`--start/--end`; the longest is `--start {a:.2f} --end "
                           f"{b:.2f}`) or pass `--shots` to train on each; training pairs never straddle a cut")
            elif shots:
                out.append(f"{what}: training on every shot (`--shots`), each with its own static background "
                           "and moving-pixel map; training pairs never straddle a cut")
            else:
                out.append(f"{what}: training on the longest shot only ({a:.2f}–{b:.2f} s); pass `--shots` to "
                           "train on each, or `--start/--end` to pick another")
        else:
            out.append(f"{what}: the tracks jump at {'each' if n > 1 else 'it'} and are smoothed across "
                       f"{'them' if n > 1 else 'it'}; track each shot as its own video")
    speed = f"the scenery moves {100 * report.camera_speed:.1f} % of the frame per second"
    if command == "train":
        on = report.camera_moves if moving_camera is None else moving_camera
        if report.camera_moves and on:
            out.append(f"the camera moves ({speed}): using `--moving-camera` (`--static-camera` to override)")
        elif report.camera_moves:
            out.append(f"the camera moves ({speed}) but `--static-camera` was given: the background "
                       "will be wrong; drop `--static-camera` to train with `--moving-camera`")
    elif report.camera_moves and not moving_camera:
        out.append(f"the camera moves ({speed}): use a model trained with `--moving-camera` on such footage")
    if report.camera_moves_partly and not (command == "track" and moving_camera):
        when = "the camera moves at " + ", ".join(f"{a:.1f}–{b:.1f} s" for a, b in report.camera_moving_spans_s)
        if command == "track":
            out.append(f"{when}: a model trained with a static camera may put parts on the scenery there")
        elif moving_camera is None or moving_camera:
            out.append(f"{when}, still for the rest: using `--moving-camera` (a static background image is "
                       "wrong while it moves; `--static-camera` to override, or train on the still part "
                       "with `--start/--end`)")
        else:
            out.append(f"{when}, still for the rest, but `--static-camera` was given: the static background "
                       "is wrong while it moves, so parts may settle on the scenery; train on the still part "
                       "(`--start/--end`) or drop `--static-camera`")
    if report.subject_small and math.isfinite(report.subject_share) and not cropped:
        frame_w, frame_h = report.frame_size
        if report.subject_share <= 0 or report.subject_box is None:
            out.append("nothing moves relative to the background: parts are learnt from motion; "
                       "use footage where the subject moves")
        else:
            x, y, w, h = report.subject_box
            what = f"the subject covers {_percent(report.subject_share)} of the frame"
            if w * h < 0.5 * frame_w * frame_h:
                hint = f"crop it (`--crop {x},{y},{w},{h}`)" if command == "train" else \
                    f"parts are coarse at this size; a model trained on this footage (`parttrack train`) " \
                    f"crops around it by itself (x,y,w,h = {x},{y},{w},{h})"
            else:
                hint = "it moves across most of the frame, so a crop will not help: film it closer"
            out.append(f"{what}: {hint}")
    return out


#: Smallest enlargement (the frame's long side over the crop's) for which a crop is worth it.
MIN_CROP_ZOOM = 1.2
#: The crop's side over the long side of the subject's reach (:attr:`FootageReport.subject_reach`).
CROP_REACH_SCALE = 1.4


def choose_crop(reports, frame_size: tuple[int, int], min_zoom: float = MIN_CROP_ZOOM,
                reach_scale: float = CROP_REACH_SCALE, min_side: int = 16) -> tuple[int, int, int, int] | None:
    """The rectangle of the frame to train on (and track: ``engine.bundle.BundleMeta.crop``) so
    that the subject fills more of the square model input: a square around the subject's
    reach, or None when the whole frame is better.

    The square is centred on the union of the reports' :attr:`FootageReport.subject_reach`
    (where the subject moved, without a margin), ``reach_scale`` times as wide as that union's
    long side (the margin holds the parts that moved little, such as a robot's base, and motion
    that reaches further than the training video's), moved inside the frame and cut to it where
    the frame is narrower (then a rectangle, letterboxed like any frame). It is used when it
    enlarges the subject at least ``min_zoom`` times (the frame's long side over the crop's long
    side) — a small subject, or a frame much wider than it is tall with the subject in one part
    of it. None with a camera that moves (for all or part of any report: the subject's place in
    the frame is then not fixed), when nothing moved, or for reports of frames of another size.

    Args:
        reports: :class:`FootageReport` of the training videos (all of ``frame_size``).
        frame_size: ``(w, h)`` source pixels.
        min_zoom: see above (> 1).
        reach_scale: see above (>= 1).
        min_side: the crop's sides are at least this many pixels.

    Returns:
        ``(x, y, w, h)`` int source pixels inside the frame, or None.

    Raises:
        ValueError: ``min_zoom <= 1`` or ``reach_scale < 1``.
    """
    if min_zoom <= 1 or reach_scale < 1:
        raise ValueError(f"min_zoom > 1 and reach_scale >= 1 needed, got {min_zoom} and {reach_scale}")
    fw, fh = (int(v) for v in frame_size)
    reports = list(reports)
    if not reports or any(r.camera_moves or r.camera_moves_partly or r.subject_reach is None
                          or tuple(r.frame_size) != (fw, fh) for r in reports):
        return None
    boxes = np.array([r.subject_reach for r in reports], dtype=np.float64)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    side = max(reach_scale * max(x1 - x0, y1 - y0), float(min_side))
    w, h = int(round(min(side, fw))), int(round(min(side, fh)))
    if max(fw, fh) / max(w, h) < min_zoom:
        return None
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    x = int(round(min(max(cx - w / 2.0, 0.0), fw - w)))
    y = int(round(min(max(cy - h / 2.0, 0.0), fh - h)))
    return x, y, w, h
