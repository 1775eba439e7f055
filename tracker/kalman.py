"""Temporal smoothing of part poses with Kalman filters: online (causal) and offline
(forward filter + Rauch–Tung–Striebel smoother).

State layout. Each part carries five independent constant-velocity channels, each with the
2-vector state ``(value, rate)``::

    channel 0  x          source px           rate px/s
    channel 1  y          source px           rate px/s
    channel 2  angle      degrees, UNWRAPPED  rate deg/s   (continuous through ±180°)
    channel 3  log scale_x                    rate 1/s
    channel 4  log scale_y                    rate 1/s

so a part's block state is 10-dimensional with block-diagonal F, Q, H, R (the per-part
filter a filterpy ``KalmanFilter(dim_x=10, dim_z=5)`` would run). Because the channels are
decoupled, the filter here runs all ``K × 5`` channels at once with closed-form 2×2 algebra in
numpy: ~0.1 ms per frame for K = 10, PartPoses in and out, against ~0.35 ms for ten filterpy
filters (scripts/kalman_timing.py on the shared 2-core machine); the tests check it against
filterpy's ``KalmanFilter`` / ``batch_filter`` / ``rts_smoother`` on the same data.

Model, per channel, for a step of ``dt`` seconds (from the frame timestamps)::

    F = [[1, dt], [0, ρ]]          ρ = 1, or exp(−dt / velocity_decay_s) while the part is
                                   missing, so a lost part coasts to a stop
    Q = σ_a² [[dt⁴/4, dt³/2],      discrete white-noise acceleration
              [dt³/2, dt²  ]]      (filterpy.common.Q_discrete_white_noise)
    H = [1, 0],  R = σ_z² / max(confidence, min_confidence)   (if confidence_weighting)

Angles: the innovation ``z − x`` is wrapped to (−180, 180] before the update and the state is
kept unwrapped, so a part turning through ±180° never jumps; outputs are wrapped again.

Misses, outliers, re-acquisition: a part flagged not visible is predicted only
(filterpy's ``update(None)``) and reported ``visible = False``; its measured values are never
read, so they may be NaN (a part without mask pixels has no pose), and a part with no
measurement yet keeps them (no pose is invented for a part never seen). A visible measurement whose
normalised innovation squared per degree of freedom exceeds ``gate_sigma²`` (checked
separately for position, angle and scale) is ignored for that group; if a group has had no
accepted measurement for ``reset_after_s`` seconds, or ``gate_reset_frames`` measurements in
a row were gated, the next measurement re-initialises it (re-acquisition after a long
occlusion, or after the part really did jump). The angle rate is limited to
``max_angle_rate`` (a wrapped angle cannot tell +180°/frame from −180°/frame). The offline
smoother does not smooth across such a reset.

Bounded prediction (what the outputs of both filters hold for a part that is not visible): the
rate decays (``velocity_decay_s``), a predicted centre is clamped into the frame
(``0 ≤ x ≤ width − 1``, ``0 ≤ y ≤ height − 1``), and a part that has not been visible for more
than ``max_predict_s`` seconds — measured to the nearest visible frame, before or after for
the offline smoother, before for the causal filter — or never at all has **no pose**: NaN x, y,
angle and scales (``visible`` stays False; area and confidence are passed through).

Choosing a smoother (norfair's pattern): :func:`make_factory` turns a ``--smoother`` name
(:data:`SMOOTHERS`) into an object implementing the :class:`Smoother` protocol —
:class:`KalmanFactory` (``offline``: forward filter + RTS over the whole track),
:class:`OnlineKalmanFactory` (``online``: the causal filter) and :class:`NoFilterFactory`
(``none``: poses pass through). Each holds its settings and offers ``create_filter`` (a
:class:`FrameFilter` for frame-by-frame use) and ``smooth`` (a whole recorded track); a new
smoother is a class with those two methods, ``name`` and ``causal``, added to
:func:`make_factory` (``tests/test_kalman.py`` runs the shared tests against every one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import numpy as np

from parttrack.engine.angles import wrap_deg
from parttrack.tracker.core import PartPoses, Track

#: Channel names of a part's block state (value of each 2-vector (value, rate)).
CHANNELS = ("x", "y", "angle_deg", "log_scale_x", "log_scale_y")
_GROUPS = ((0, 1), (2,), (3, 4))  # gating groups: position, angle, scale
_MIN_SCALE = 1e-3  # px; scales are filtered as logs


@dataclass(frozen=True)
class KalmanNoise:
    """Noise settings of the pose filters (standard deviations).

    Position settings are fractions of the frame's longer side, so the same settings work at
    any resolution; they are converted to source pixels per video.

    Attributes:
        pos_meas: measurement noise of a part centre (fraction of the longer side; 0.004 ≈
            2.6 px at 640 px).
        pos_accel: process noise, white acceleration of a centre (longer sides per s²).
        angle_meas: measurement noise of the angle (degrees).
        angle_accel: process noise of the angle (degrees per s²).
        scale_meas: measurement noise of log scale (0.05 ≈ 5 %).
        scale_accel: process noise of log scale (per s²).
        init_pos_rate, init_angle_rate, init_scale_rate: prior std of the rates when a part is
            (re)initialised (longer sides/s, deg/s, 1/s).
        velocity_decay_s: time constant with which the rates decay while a part is missing
            (``None``: constant velocity while missing).
        reset_after_s: a group (position, angle, scale) without an accepted measurement for
            this long is re-initialised by its next measurement.
        gate_sigma: outlier gate; a measurement group with normalised innovation squared
            per degree of freedom above ``gate_sigma²`` is ignored (``None`` = no gate).
        gate_reset_frames: a group whose measurements were gated this many frames in a row is
            re-initialised by the next one (the motion left the model, e.g. a sudden jerk;
            a lone outlier is still ignored).
        max_angle_rate: limit of the angle rate in deg/s (``None`` = none). Rates near
            180°/frame are ambiguous for a wrapped angle and a filter that locks onto such a
            rate flips by 180° every frame; the limit (default 3 turns/s) keeps it away.
        confidence_weighting: scale R by ``1 / max(confidence, min_confidence)``.
        min_confidence: floor for the confidence weighting.
        max_predict_s: longest time a part that is not visible is predicted (seconds, see the
            module docstring); ``None`` = no limit (a part never visible still has no pose).
    """

    pos_meas: float = 0.004
    pos_accel: float = 2.0
    angle_meas: float = 4.0
    angle_accel: float = 1000.0
    scale_meas: float = 0.05
    scale_accel: float = 5.0
    init_pos_rate: float = 0.5
    init_angle_rate: float = 180.0
    init_scale_rate: float = 0.5
    velocity_decay_s: float | None = 0.5
    reset_after_s: float = 1.0
    gate_sigma: float | None = 6.0
    gate_reset_frames: int = 3
    max_angle_rate: float | None = 1080.0
    confidence_weighting: bool = True
    min_confidence: float = 0.1
    max_predict_s: float | None = 1.0

    def __post_init__(self) -> None:
        for name in ("pos_meas", "angle_meas", "scale_meas"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("pos_accel", "angle_accel", "scale_accel", "init_pos_rate", "init_angle_rate",
                     "init_scale_rate", "reset_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.velocity_decay_s is not None and not self.velocity_decay_s > 0:
            raise ValueError("velocity_decay_s must be positive or None")
        if self.gate_sigma is not None and not self.gate_sigma > 0:
            raise ValueError("gate_sigma must be positive or None")
        if self.gate_reset_frames < 1:
            raise ValueError("gate_reset_frames must be >= 1")
        if self.max_angle_rate is not None and not self.max_angle_rate > 0:
            raise ValueError("max_angle_rate must be positive or None")
        if not 0 < self.min_confidence <= 1:
            raise ValueError("min_confidence must be in (0, 1]")
        if self.max_predict_s is not None and not self.max_predict_s >= 0:
            raise ValueError("max_predict_s must be >= 0 or None")

    def channel_arrays(self, frame_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-channel ``(meas_std, accel_std, init_rate_std)``, each ``(5,)`` in the units of
        :data:`CHANNELS`, for a frame of ``(height, width)`` pixels."""
        side = float(max(frame_size))
        meas = np.array([self.pos_meas * side] * 2 + [self.angle_meas] + [self.scale_meas] * 2)
        accel = np.array([self.pos_accel * side] * 2 + [self.angle_accel] + [self.scale_accel] * 2)
        rate = np.array([self.init_pos_rate * side] * 2 + [self.init_angle_rate] + [self.init_scale_rate] * 2)
        return meas, accel, rate


# ---------------------------------------------------------------------------------- helpers
def _measurements(xy, angle_deg, scale) -> np.ndarray:
    """``(..., K, 5)`` channel values of poses (x, y, angle, log scale_x, log scale_y)."""
    angle_deg = np.asarray(angle_deg)
    z = np.empty(angle_deg.shape + (5,))
    z[..., 0:2] = xy
    z[..., 2] = angle_deg
    np.log(np.maximum(np.abs(scale), _MIN_SCALE), out=z[..., 3:5])
    return z


def _process(dt: float | np.ndarray, accel: np.ndarray):
    """Q entries (q00, q01, q11) for step dt (broadcast against ``accel``)."""
    dt = np.asarray(dt, np.float64)
    var = accel * accel
    return var * dt ** 4 / 4.0, var * dt ** 3 / 2.0, var * dt ** 2


class _Channels:
    """K × 5 independent 2-state CV Kalman channels (the vectorised block filter).

    Arrays, each (K, 5) float64 unless noted: state ``x0`` (value), ``x1`` (rate);
    covariance entries ``p00``, ``p01``, ``p11``; ``init`` bool (channel has a state);
    ``since`` seconds since the channel's last accepted measurement.
    """

    def __init__(self, k: int, noise: KalmanNoise, frame_size: tuple[int, int]) -> None:
        self.k, self.noise = k, noise
        meas, accel, rate = noise.channel_arrays(frame_size)
        self.meas_var = np.broadcast_to(meas ** 2, (k, 5)).copy()
        self.accel_var = np.broadcast_to(accel ** 2, (k, 5)).copy()
        self.rate_var = np.broadcast_to(rate ** 2, (k, 5)).copy()
        self.x0, self.x1 = np.zeros((k, 5)), np.zeros((k, 5))
        self.p00, self.p01, self.p11 = np.zeros((k, 5)), np.zeros((k, 5)), np.zeros((k, 5))
        self.init = np.zeros((k, 5), bool)
        self.since = np.zeros((k, 5))
        self.gated = np.zeros((k, 5), np.int64)  # consecutive gated measurements
        self._q_dt: float | None = None
        # Averages the normalised innovation squared within each gating group.
        g = np.zeros((5, 5))
        for group in _GROUPS:
            g[np.ix_(group, group)] = 1.0 / len(group)
        self._group_mean = g

    def _q(self, dt: float):
        if dt != self._q_dt:
            self._q_dt = dt
            self._qs = (self.accel_var * (dt ** 4 / 4.0), self.accel_var * (dt ** 3 / 2.0), self.accel_var * dt ** 2)
        return self._qs

    def predict(self, dt: float, missing: np.ndarray):
        """Time update by ``dt`` s; ``missing`` (K,) parts get the decaying rate.
        Returns ρ (scalar 1.0 or (K, 5)) used: the F of this step is [[1, dt], [0, ρ]]."""
        dt = max(float(dt), 0.0)
        q00, q01, q11 = self._q(dt)
        decay = self.noise.velocity_decay_s is not None and bool(missing.any())
        p01, p11 = self.p01, self.p11
        dp11 = dt * p11
        # P ← F P Fᵀ + Q, F = [[1, dt], [0, ρ]]
        self.p00 += q00 + dt * (2.0 * p01 + dp11)
        self.x0 += dt * self.x1
        self.since += dt
        if not decay:
            self.p01 = p01 + dp11 + q01
            self.p11 = p11 + q11
            return 1.0
        rho = np.where(missing[:, None], np.exp(-dt / self.noise.velocity_decay_s), 1.0)
        self.p01 = (p01 + dp11) * rho + q01
        self.p11 = p11 * (rho * rho) + q11
        self.x1 *= rho
        return rho

    def update(self, z: np.ndarray, r_scale: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Measurement update.

        Args:
            z: (K, 5) measurements (angles in degrees, any wrap).
            r_scale: (K,) factor on R (confidence weighting).
            valid: (K,) parts with a measurement.

        Returns:
            (K, 5) bool: channels that were (re)initialised from the measurement.
        """
        nz = self.noise
        R = self.meas_var * r_scale[:, None]
        y = z - self.x0
        if not valid.all():  # a part without a measurement may carry NaN (tracker.poses)
            y[~valid] = 0.0
        ya = y[:, 2]
        y[:, 2] = ya - 360.0 * np.floor((ya + 180.0) / 360.0)  # wrap to [−180, 180) (inline: hot path)
        S = self.p00 + R
        valid5 = valid[:, None]
        fresh = valid5 & ~(self.init & (self.since <= nz.reset_after_s) & (self.gated < nz.gate_reset_frames))
        accept = valid5 & ~fresh
        if nz.gate_sigma is not None:
            passed = ((y * y / S) @ self._group_mean) <= nz.gate_sigma ** 2
            self.gated = np.where(accept & ~passed, self.gated + 1, 0)
            accept &= passed
        inv_s = accept / S
        k0, k1 = self.p00 * inv_s, self.p01 * inv_s
        self.x0 += k0 * y
        self.x1 += k1 * y
        if nz.max_angle_rate is not None:
            np.clip(self.x1[:, 2], -nz.max_angle_rate, nz.max_angle_rate, out=self.x1[:, 2])
        self.p11 -= k1 * self.p01
        one_k0 = 1.0 - k0
        self.p01 *= one_k0
        self.p00 *= one_k0
        if fresh.any():
            self.x0[fresh] = z[fresh]
            self.x1[fresh] = 0.0
            self.p00[fresh] = R[fresh]
            self.p01[fresh] = 0.0
            self.p11[fresh] = self.rate_var[fresh]
            self.init |= fresh
            accept = accept | fresh
        self.since *= ~accept
        return fresh

def unseen_seconds(time_s: np.ndarray, visible: np.ndarray, causal: bool) -> np.ndarray:
    """``(T, K)`` seconds from each frame to the nearest frame where the part is visible
    (``causal``: the nearest earlier or same frame only); ``inf`` where there is none; 0 where
    it is visible. ``time_s`` ``(T,)`` seconds, ``visible`` ``(T, K)`` bool."""
    t = np.asarray(time_s, np.float64)
    vis = np.asarray(visible, bool)
    n = len(t)
    idx = np.arange(n)[:, None]
    last = np.maximum.accumulate(np.where(vis, idx, -1), axis=0)
    out = np.where(last >= 0, t[:, None] - t[np.maximum(last, 0)], np.inf)
    if not causal:
        nxt = np.minimum.accumulate(np.where(vis, idx, n)[::-1], axis=0)[::-1]
        out = np.minimum(out, np.where(nxt < n, t[np.minimum(nxt, n - 1)] - t[:, None], np.inf))
    return out


def bound_predictions(xy: np.ndarray, angle_deg: np.ndarray, scale: np.ndarray, visible: np.ndarray,
                      unseen_s: np.ndarray, max_predict_s: float | None,
                      frame_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the bounded-prediction rule (module docstring) to poses of any leading shape
    ``(..., K)``: xy ``(..., K, 2)`` px, angle_deg ``(..., K)``, scale ``(..., K, 2)``, visible
    ``(..., K)`` bool, unseen_s ``(..., K)`` s (:func:`unseen_seconds`). Returns new arrays."""
    h, w = frame_size
    hidden = ~np.asarray(visible, bool)
    horizon = np.inf if max_predict_s is None else float(max_predict_s)
    none = hidden & ~(np.asarray(unseen_s) <= horizon)
    xy = np.array(xy, np.float64)
    if hidden.any():
        xy[..., 0] = np.where(hidden, np.clip(xy[..., 0], 0.0, w - 1.0), xy[..., 0])
        xy[..., 1] = np.where(hidden, np.clip(xy[..., 1], 0.0, h - 1.0), xy[..., 1])
    angle_deg, scale = np.array(angle_deg, np.float64), np.array(scale, np.float64)
    if none.any():
        xy[none] = np.nan
        angle_deg[none] = np.nan
        scale[none] = np.nan
    return xy, angle_deg, scale


def _r_scale(confidence: np.ndarray, noise: KalmanNoise) -> np.ndarray:
    if not noise.confidence_weighting:
        return np.ones(np.shape(confidence))
    return 1.0 / np.minimum(np.maximum(confidence, noise.min_confidence), 1.0)


def _poses_from_state(raw: PartPoses, z: np.ndarray, values: np.ndarray, have: np.ndarray) -> PartPoses:
    """Smoothed PartPoses: filter values (K, 5) where ``have`` (K, 5), measurements ``z``
    elsewhere."""
    v = values.copy() if have.all() else np.where(have, values, z)
    ang = v[:, 2]
    ang = ang - 360.0 * np.ceil((ang - 180.0) / 360.0)  # wrap to (−180, 180] (inline: hot path)
    return PartPoses(raw.index, raw.time_s, v[:, 0:2], ang, np.exp(v[:, 3:5]),
                     raw.area_px, raw.visible, raw.confidence)


# ---------------------------------------------------------------------------------- online
class PoseFilter:
    """Online (causal) Kalman filter of all K parts of one video/camera stream.

    Args:
        num_parts: K.
        noise: :class:`KalmanNoise`.
        frame_size: ``(height, width)`` of the source in pixels (scales the position noise).

    Usage: call :meth:`update` with each frame's raw poses in time order; it returns the
    filtered poses (same K; ``area_px``, ``visible``, ``confidence`` passed through),
    predictions bounded as the module docstring says (parts never seen so far have no pose).
    """

    def __init__(self, num_parts: int, noise: KalmanNoise, frame_size: tuple[int, int]) -> None:
        self.num_parts, self.noise, self.frame_size = int(num_parts), noise, frame_size
        self.reset()

    def reset(self) -> None:
        """Forget all state (e.g. after a seek or a source change)."""
        self._ch = _Channels(self.num_parts, self.noise, self.frame_size)
        self._last_t: float | None = None
        self._unseen = np.full(self.num_parts, np.inf)  # seconds since each part was last visible

    def update(self, poses: PartPoses) -> PartPoses:
        """Filter one frame.

        Raises:
            ValueError: poses with another K.
        """
        if poses.num_parts != self.num_parts:
            raise ValueError(f"filter is for K={self.num_parts} parts, got poses with K={poses.num_parts}")
        ch = self._ch
        visible = np.asarray(poses.visible, bool)
        if self._last_t is not None:
            dt = poses.time_s - self._last_t
            ch.predict(dt, ~visible)
            self._unseen += max(float(dt), 0.0)
        self._last_t = float(poses.time_s)
        self._unseen[visible] = 0.0
        z = _measurements(poses.xy, poses.angle_deg, poses.scale)
        ch.update(z.copy(), _r_scale(poses.confidence, self.noise), visible)
        out = _poses_from_state(poses, z, ch.x0, ch.init)
        if visible.all():
            return out
        xy, ang, sc = bound_predictions(out.xy, out.angle_deg, out.scale, visible, self._unseen,
                                        self.noise.max_predict_s, self.frame_size)
        return PartPoses(out.index, out.time_s, xy, ang, sc, out.area_px, out.visible, out.confidence)

    @property
    def state(self) -> np.ndarray:
        """``(K, 5, 2)`` current state (value, rate) per channel (:data:`CHANNELS`)."""
        return np.stack([self._ch.x0, self._ch.x1], -1)


class PassThroughFilter:
    """The no-op online filter (``--smoother none``)."""

    def __init__(self, num_parts: int) -> None:
        self.num_parts = int(num_parts)

    def reset(self) -> None:
        pass

    def update(self, poses: PartPoses) -> PartPoses:
        return poses


# ---------------------------------------------------------------------------------- offline
def _forward(track: Track, noise: KalmanNoise, frame_size: tuple[int, int]) -> dict:
    """Forward pass over a whole track, keeping what RTS needs: filtered (``x0f, x1f,
    p00f, p01f, p11f``) and predicted (``…p``) values, each (T, K, 5); step ``dt`` (T,),
    rate factor ``rho`` (T, K, 5); ``init`` and ``reset`` (T, K, 5) bool."""
    t_len, k = len(track), track.num_parts
    ch = _Channels(k, noise, frame_size)
    z_all = _measurements(track.xy, track.angle_deg, track.scale)
    r_all = _r_scale(track.confidence, noise)
    names = ("x0", "x1", "p00", "p01", "p11")
    out = {f"{n}{s}": np.zeros((t_len, k, 5)) for n in names for s in "pf"}
    out["dt"] = np.zeros(t_len)
    out["rho"] = np.ones((t_len, k, 5))
    out["init"] = np.zeros((t_len, k, 5), bool)
    out["reset"] = np.zeros((t_len, k, 5), bool)
    vis_all = np.asarray(track.visible, bool)
    for t in range(t_len):
        vis = vis_all[t]
        if t > 0:
            out["dt"][t] = max(float(track.time_s[t] - track.time_s[t - 1]), 0.0)
            out["rho"][t] = ch.predict(out["dt"][t], ~vis)
        for n in names:
            out[n + "p"][t] = getattr(ch, n)
        out["reset"][t] = ch.update(z_all[t].copy(), r_all[t], vis)
        for n in names:
            out[n + "f"][t] = getattr(ch, n)
        out["init"][t] = ch.init
    return out


def _rts(fw: dict) -> np.ndarray:
    """Rauch–Tung–Striebel backward pass over the forward results (per channel, 2×2):
    ``C = Pf[t] Fᵀ Pp[t+1]⁻¹``, ``xs[t] = xf[t] + C (xs[t+1] − xp[t+1])``,
    ``Ps[t] = Pf[t] + C (Ps[t+1] − Pp[t+1]) Cᵀ``.

    Links t → t+1 are cut where the channel was (re)initialised at t+1 or not yet initialised
    at t. Frames before a channel's first measurement take its first smoothed value.

    Returns:
        (T, K, 5) smoothed values.
    """
    init, reset, dts, rhos = fw["init"], fw["reset"], fw["dt"], fw["rho"]
    xs0, xs1 = fw["x0f"].copy(), fw["x1f"].copy()
    ps00, ps01, ps11 = fw["p00f"].copy(), fw["p01f"].copy(), fw["p11f"].copy()
    t_len = xs0.shape[0]
    for t in range(t_len - 2, -1, -1):
        dt, rho = dts[t + 1], rhos[t + 1]
        link = init[t] & ~reset[t + 1]
        a00, a01, a11 = fw["p00f"][t], fw["p01f"][t], fw["p11f"][t]
        # Pf Fᵀ = [[a00 + dt a01, ρ a01], [a01 + dt a11, ρ a11]]
        m00, m01 = a00 + dt * a01, rho * a01
        m10, m11 = a01 + dt * a11, rho * a11
        b00, b01, b11 = fw["p00p"][t + 1], fw["p01p"][t + 1], fw["p11p"][t + 1]
        det = b00 * b11 - b01 * b01
        det = np.where(np.abs(det) < 1e-300, 1e-300, det)
        i00, i01, i11 = b11 / det, -b01 / det, b00 / det
        c00, c01 = (m00 * i00 + m01 * i01) * link, (m00 * i01 + m01 * i11) * link
        c10, c11 = (m10 * i00 + m11 * i01) * link, (m10 * i01 + m11 * i11) * link
        d0 = xs0[t + 1] - fw["x0p"][t + 1]
        d1 = xs1[t + 1] - fw["x1p"][t + 1]
        e00, e01, e11 = ps00[t + 1] - b00, ps01[t + 1] - b01, ps11[t + 1] - b11
        xs0[t] += c00 * d0 + c01 * d1
        xs1[t] += c10 * d0 + c11 * d1
        # C E Cᵀ
        u0, u1 = c00 * e00 + c01 * e01, c00 * e01 + c01 * e11
        v0, v1 = c10 * e00 + c11 * e01, c10 * e01 + c11 * e11
        ps00[t] += u0 * c00 + u1 * c01
        ps01[t] += u0 * c10 + u1 * c11
        ps11[t] += v0 * c10 + v1 * c11
    # Hold the first smoothed value before each channel's first measurement.
    any_init = init.any(axis=0)
    first = np.argmax(init, axis=0)  # (K, 5)
    before = (np.arange(t_len)[:, None, None] < first[None]) & any_init[None]
    first_vals = np.take_along_axis(xs0, first[None], axis=0)[0]
    return np.where(before, first_vals[None], xs0)


def _track_from_values(track: Track, values: np.ndarray, have: np.ndarray, noise: KalmanNoise,
                       frame_size: tuple[int, int], causal: bool) -> Track:
    z = _measurements(track.xy, track.angle_deg, track.scale)
    v = np.where(have, values, z)
    xy, ang, sc = v[..., 0:2].copy(), wrap_deg(v[..., 2]), np.exp(v[..., 3:5])
    if not np.all(track.visible):
        unseen = unseen_seconds(track.time_s, track.visible, causal)
        xy, ang, sc = bound_predictions(xy, ang, sc, track.visible, unseen, noise.max_predict_s, frame_size)
    return Track(index=track.index, time_s=track.time_s, xy=xy, angle_deg=ang, scale=sc, area_px=track.area_px,
                 visible=track.visible, confidence=track.confidence)


def filter_track(track: Track, noise: KalmanNoise, frame_size: tuple[int, int]) -> Track:
    """Causal (forward-only) filtering of a whole track; equals running :class:`PoseFilter`
    frame by frame."""
    if len(track) == 0:
        return track
    fw = _forward(track, noise, frame_size)
    return _track_from_values(track, fw["x0f"], fw["init"], noise, frame_size, causal=True)


def smooth_track(track: Track, noise: KalmanNoise, frame_size: tuple[int, int]) -> Track:
    """Offline smoothing: forward Kalman filter + RTS smoother over the whole track.

    Args:
        track: raw poses, T frames × K parts, times non-decreasing.
        noise: :class:`KalmanNoise`.
        frame_size: ``(height, width)`` of the source in pixels.

    Returns:
        A :class:`Track` of the same shape: smoothed xy, angle_deg (wrapped), scale; area_px,
        visible, confidence copied; predictions bounded (module docstring: parts never visible,
        or not for more than ``noise.max_predict_s``, have NaN poses).
    """
    if len(track) == 0:
        return track
    fw = _forward(track, noise, frame_size)
    return _track_from_values(track, _rts(fw), np.broadcast_to(fw["init"].any(axis=0), fw["init"].shape), noise,
                              frame_size, causal=False)


# ---------------------------------------------------------------------------------- factories
@runtime_checkable
class FrameFilter(Protocol):
    """A causal pose filter for one stream (built by :meth:`Smoother.create_filter`)."""

    def update(self, poses: PartPoses) -> PartPoses:
        """Filter the next frame (time order): poses of the same K out, source pixels,
        ``area_px``/``visible``/``confidence`` passed through (the Kalman filters raise
        ValueError for another K)."""
        ...

    def reset(self) -> None:
        """Forget all state (after a seek or a source change)."""
        ...


@runtime_checkable
class Smoother(Protocol):
    """What :func:`make_factory` returns and every pipeline takes.

    Attributes:
        name: its ``--smoother`` name (one of :data:`SMOOTHERS`).
        causal: True when :meth:`smooth` equals running :meth:`create_filter`'s filter frame
            by frame (pose t depends on frames <= t only), so results can be written as they
            come; False when :meth:`smooth` needs the whole track (RTS).
    """

    name: str
    causal: bool

    def create_filter(self, num_parts: int, frame_size: tuple[int, int]) -> FrameFilter:
        """A fresh causal filter for ``num_parts`` parts in frames of ``(height, width)`` px
        (the live path; an offline smoother gives its forward filter)."""
        ...

    def smooth(self, track: Track, frame_size: tuple[int, int]) -> Track:
        """The whole recorded ``track`` (T frames × K parts) smoothed: a :class:`Track` of the
        same shape, xy/scale in source pixels, angle_deg wrapped to (-180, 180]."""
        ...


class KalmanFactory:
    """The ``offline`` :class:`Smoother`: forward Kalman filter + RTS smoother over a whole
    track; its :meth:`create_filter` is the causal Kalman filter (same noise settings).

    Args:
        noise: :class:`KalmanNoise` (defaults documented there); ``overrides`` replace fields.
    """

    name = "offline"
    causal = False

    def __init__(self, noise: KalmanNoise | None = None, **overrides) -> None:
        self.noise = replace(noise or KalmanNoise(), **overrides)

    def create_filter(self, num_parts: int, frame_size: tuple[int, int]) -> PoseFilter:
        """A fresh online filter for ``num_parts`` parts in frames of ``(height, width)``."""
        return PoseFilter(num_parts, self.noise, frame_size)

    def smooth(self, track: Track, frame_size: tuple[int, int]) -> Track:
        """Offline forward filter + RTS smoother (:func:`smooth_track`)."""
        return smooth_track(track, self.noise, frame_size)

    def filter(self, track: Track, frame_size: tuple[int, int]) -> Track:
        """Causal filtering of a recorded track (:func:`filter_track`)."""
        return filter_track(track, self.noise, frame_size)

    def __repr__(self) -> str:
        return f"KalmanFactory({self.noise})"


class OnlineKalmanFactory(KalmanFactory):
    """The ``online`` :class:`Smoother`: the causal Kalman filter, frame by frame as in the
    live viewer; :meth:`smooth` is :func:`filter_track`."""

    name = "online"
    causal = True

    def smooth(self, track: Track, frame_size: tuple[int, int]) -> Track:
        """Causal filtering of a recorded track (:func:`filter_track`)."""
        return filter_track(track, self.noise, frame_size)

    def __repr__(self) -> str:
        return f"OnlineKalmanFactory({self.noise})"


class NoFilterFactory:
    """The identity :class:`Smoother`: poses pass through unchanged (``--smoother none``)."""

    name = "none"
    causal = True

    def create_filter(self, num_parts: int, frame_size: tuple[int, int]) -> PassThroughFilter:
        return PassThroughFilter(num_parts)

    def smooth(self, track: Track, frame_size: tuple[int, int]) -> Track:
        return track

    def filter(self, track: Track, frame_size: tuple[int, int]) -> Track:
        return track

    def __repr__(self) -> str:
        return "NoFilterFactory()"


SMOOTHERS = ("offline", "online", "none")


def make_factory(smoother: str = "offline", noise: KalmanNoise | None = None) -> Smoother:
    """The :class:`Smoother` for a ``--smoother`` value: ``offline`` → :class:`KalmanFactory`,
    ``online`` → :class:`OnlineKalmanFactory`, ``none`` → :class:`NoFilterFactory`; ``noise``
    for the Kalman ones (default :class:`KalmanNoise`).

    Raises:
        ValueError: an unknown name.
    """
    if smoother not in SMOOTHERS:
        raise ValueError(f"smoother must be one of {', '.join(SMOOTHERS)}, got {smoother!r}")
    if smoother == "none":
        return NoFilterFactory()
    return OnlineKalmanFactory(noise) if smoother == "online" else KalmanFactory(noise)
