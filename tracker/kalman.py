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
numpy (tens of µs per frame for K = 10 instead of ~50 µs per filterpy filter); the tests check
it against filterpy's ``KalmanFilter`` / ``batch_filter`` / ``rts_smoother`` on the same data.

Model, per channel, for a step of ``dt`` seconds (from the frame timestamps)::

    F = [[1, dt], [0, ρ]]          ρ = 1, or exp(−dt / velocity_decay_s) while the part is
                                   missing, so a lost part coasts to a stop
    Q = σ_a² [[dt⁴/4, dt³/2],      discrete white-noise acceleration
              [dt³/2, dt²  ]]      (filterpy.common.Q_discrete_white_noise)
    H = [1, 0],  R = σ_z² / max(confidence, min_confidence)   (if confidence_weighting)

Angles: the innovation ``z − x`` is wrapped to (−180, 180] before the update and the state is
kept unwrapped, so a part turning through ±180° never jumps; outputs are wrapped again.

Misses, outliers, re-acquisition: a part flagged not visible is predicted only
(filterpy's ``update(None)``) and reported ``visible = False``. A visible measurement whose
normalised innovation squared per degree of freedom exceeds ``gate_sigma²`` (checked
separately for position, angle and scale) is ignored for that group; if a group has had no
accepted measurement for ``reset_after_s`` seconds, the next measurement re-initialises it
(re-acquisition after a long occlusion, or after the part really did jump). The offline
smoother does not smooth across such a reset.

Choose the smoother with a factory (norfair's pattern): :class:`KalmanFactory` holds the
noise settings (:class:`KalmanNoise`), :class:`NoFilterFactory` passes poses through; both
have ``create_filter(num_parts, frame_size)`` (online) and ``smooth(track, frame_size)``
(offline). :func:`make_factory` builds one from a CLI name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tracker.core import PartPoses, Track

#: Channel names of a part's block state (value of each 2-vector (value, rate)).
CHANNELS = ("x", "y", "angle_deg", "log_scale_x", "log_scale_y")
_GROUPS = ((0, 1), (2,), (3, 4))  # gating groups: position, angle, scale
_MIN_SCALE = 1e-3  # px; scales are filtered as logs


def wrap_deg(a):
    """Wrap degrees to (−180, 180]."""
    a = np.mod(np.asarray(a, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


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
        confidence_weighting: scale R by ``1 / max(confidence, min_confidence)``.
        min_confidence: floor for the confidence weighting.
    """

    pos_meas: float = 0.004
    pos_accel: float = 3.0
    angle_meas: float = 4.0
    angle_accel: float = 3000.0
    scale_meas: float = 0.05
    scale_accel: float = 5.0
    init_pos_rate: float = 0.5
    init_angle_rate: float = 180.0
    init_scale_rate: float = 0.5
    velocity_decay_s: float | None = 0.5
    reset_after_s: float = 1.0
    gate_sigma: float | None = 6.0
    confidence_weighting: bool = True
    min_confidence: float = 0.1

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
        if not 0 < self.min_confidence <= 1:
            raise ValueError("min_confidence must be in (0, 1]")

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
    """``(..., K, 5)`` channel values of poses."""
    xy = np.asarray(xy, np.float64)
    ls = np.log(np.maximum(np.abs(np.asarray(scale, np.float64)), _MIN_SCALE))
    return np.concatenate([xy, np.asarray(angle_deg, np.float64)[..., None], ls], axis=-1)


def _process(dt: float | np.ndarray, accel: np.ndarray):
    """Q entries (q00, q01, q11) for step dt (broadcast against ``accel``)."""
    dt = np.asarray(dt, np.float64)
    var = accel * accel
    return var * dt ** 4 / 4.0, var * dt ** 3 / 2.0, var * dt ** 2


class _Channels:
    """K × 5 independent 2-state CV Kalman channels (the vectorised block filter).

    Arrays: ``x`` (K, 5, 2) state; ``P`` (K, 5, 3) covariance entries (p00, p01, p11);
    ``init`` (K, 5) bool; ``since`` (K, 5) seconds since the last accepted measurement.
    """

    def __init__(self, k: int, noise: KalmanNoise, frame_size: tuple[int, int]) -> None:
        self.k, self.noise = k, noise
        self.meas_std, self.accel_std, self.rate_std = noise.channel_arrays(frame_size)
        self.x = np.zeros((k, 5, 2))
        self.P = np.zeros((k, 5, 3))
        self.init = np.zeros((k, 5), bool)
        self.since = np.zeros((k, 5))

    def predict(self, dt: float, missing: np.ndarray) -> np.ndarray:
        """Time update by ``dt`` s; ``missing`` (K,) parts get the decaying rate.
        Returns ρ (K, 5) used (the F of this step is [[1, dt], [0, ρ]])."""
        dt = max(float(dt), 0.0)
        rho = np.ones((self.k, 5))
        if self.noise.velocity_decay_s is not None:
            rho[missing] = np.exp(-dt / self.noise.velocity_decay_s)
        x, P = self.x, self.P
        q00, q01, q11 = _process(dt, self.accel_std)
        p00, p01, p11 = P[..., 0], P[..., 1], P[..., 2]
        n00 = p00 + 2.0 * dt * p01 + dt * dt * p11 + q00
        n01 = rho * (p01 + dt * p11) + q01
        n11 = rho * rho * p11 + q11
        x[..., 0] += dt * x[..., 1]
        x[..., 1] *= rho
        P[..., 0], P[..., 1], P[..., 2] = n00, n01, n11
        self.since += dt
        return rho

    def update(self, z: np.ndarray, r_scale: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurement update.

        Args:
            z: (K, 5) measurements (angles in degrees, any wrap).
            r_scale: (K,) factor on R (confidence weighting).
            valid: (K,) parts with a measurement.

        Returns:
            ``(accepted, reset)``, each (K, 5) bool: channels updated, and channels that were
            (re)initialised from the measurement.
        """
        nz = self.noise
        R = (self.meas_std[None, :] ** 2) * r_scale[:, None]  # (K, 5)
        x, P = self.x, self.P
        y = z - x[..., 0]
        y[:, 2] = wrap_deg(y[:, 2])
        S = P[..., 0] + R
        valid5 = np.repeat(valid[:, None], 5, axis=1)
        fresh = valid5 & (~self.init | (self.since > nz.reset_after_s))
        accept = valid5 & ~fresh
        if nz.gate_sigma is not None:
            nis = y * y / S
            g2 = nz.gate_sigma ** 2
            for group in _GROUPS:
                bad = nis[:, group].mean(axis=1) > g2
                for c in group:
                    accept[:, c] &= ~bad
        K0 = np.where(accept, P[..., 0] / S, 0.0)
        K1 = np.where(accept, P[..., 1] / S, 0.0)
        x[..., 0] += K0 * y
        x[..., 1] += K1 * y
        p00, p01, p11 = P[..., 0].copy(), P[..., 1].copy(), P[..., 2].copy()
        P[..., 0] = (1.0 - K0) * p00
        P[..., 1] = (1.0 - K0) * p01
        P[..., 2] = p11 - K1 * p01
        if fresh.any():
            zz = z.copy()
            x[..., 0] = np.where(fresh, zz, x[..., 0])
            x[..., 1] = np.where(fresh, 0.0, x[..., 1])
            P[..., 0] = np.where(fresh, R, P[..., 0])
            P[..., 1] = np.where(fresh, 0.0, P[..., 1])
            P[..., 2] = np.where(fresh, (self.rate_std ** 2)[None, :], P[..., 2])
            self.init |= fresh
        self.since[accept | fresh] = 0.0
        return accept, fresh


def _r_scale(confidence: np.ndarray, noise: KalmanNoise) -> np.ndarray:
    if not noise.confidence_weighting:
        return np.ones_like(np.asarray(confidence, np.float64))
    return 1.0 / np.clip(np.asarray(confidence, np.float64), noise.min_confidence, 1.0)


def _poses_from_state(raw: PartPoses, values: np.ndarray, have: np.ndarray) -> PartPoses:
    """Smoothed PartPoses: filter values (K, 5) where ``have`` (K, 5), raw values elsewhere."""
    z = _measurements(raw.xy, raw.angle_deg, raw.scale)
    v = np.where(have, values, z)
    return PartPoses(raw.index, raw.time_s, v[:, 0:2].copy(), wrap_deg(v[:, 2]), np.exp(v[:, 3:5]),
                     raw.area_px, raw.visible, raw.confidence)


# ---------------------------------------------------------------------------------- online
class PoseFilter:
    """Online (causal) Kalman filter of all K parts of one video/camera stream.

    Args:
        num_parts: K.
        noise: :class:`KalmanNoise`.
        frame_size: ``(height, width)`` of the source in pixels (scales the position noise).

    Usage: call :meth:`update` with each frame's raw poses in time order; it returns the
    filtered poses (same K; ``area_px``, ``visible``, ``confidence`` passed through). Parts
    never seen so far are returned raw.
    """

    def __init__(self, num_parts: int, noise: KalmanNoise, frame_size: tuple[int, int]) -> None:
        self.num_parts, self.noise, self.frame_size = int(num_parts), noise, frame_size
        self.reset()

    def reset(self) -> None:
        """Forget all state (e.g. after a seek or a source change)."""
        self._ch = _Channels(self.num_parts, self.noise, self.frame_size)
        self._last_t: float | None = None

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
            ch.predict(poses.time_s - self._last_t, ~visible)
        self._last_t = float(poses.time_s)
        z = _measurements(poses.xy, poses.angle_deg, poses.scale)
        ch.update(z, _r_scale(poses.confidence, self.noise), visible)
        return _poses_from_state(poses, ch.x[..., 0], ch.init)

    @property
    def state(self) -> np.ndarray:
        """``(K, 5, 2)`` current state (value, rate) per channel (:data:`CHANNELS`)."""
        return self._ch.x.copy()


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
    """Forward pass over a whole track, keeping what RTS needs."""
    t_len, k = len(track), track.num_parts
    ch = _Channels(k, noise, frame_size)
    z_all = _measurements(track.xy, track.angle_deg, track.scale)
    r_all = _r_scale(track.confidence, noise)
    xp = np.zeros((t_len, k, 5, 2))
    Pp = np.zeros((t_len, k, 5, 3))
    xf = np.zeros((t_len, k, 5, 2))
    Pf = np.zeros((t_len, k, 5, 3))
    dts = np.zeros(t_len)
    rhos = np.ones((t_len, k, 5))
    init = np.zeros((t_len, k, 5), bool)
    reset = np.zeros((t_len, k, 5), bool)
    for t in range(t_len):
        vis = track.visible[t]
        if t > 0:
            dts[t] = max(float(track.time_s[t] - track.time_s[t - 1]), 0.0)
            rhos[t] = ch.predict(dts[t], ~vis)
        xp[t], Pp[t] = ch.x, ch.P
        _, fresh = ch.update(z_all[t].copy(), r_all[t], vis)
        xf[t], Pf[t] = ch.x, ch.P
        init[t], reset[t] = ch.init, fresh
    return {"xp": xp, "Pp": Pp, "xf": xf, "Pf": Pf, "dt": dts, "rho": rhos, "init": init, "reset": reset}


def _rts(fw: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rauch–Tung–Striebel backward pass over the forward results (per channel, 2×2).

    Links t → t+1 are cut where the channel was (re)initialised at t+1 or not yet initialised
    at t. Frames before a channel's first measurement take its first smoothed value.
    """
    xf, Pf, xp, Pp = fw["xf"], fw["Pf"], fw["xp"], fw["Pp"]
    init, reset, dts, rhos = fw["init"], fw["reset"], fw["dt"], fw["rho"]
    xs, Ps = xf.copy(), Pf.copy()
    t_len = xf.shape[0]
    for t in range(t_len - 2, -1, -1):
        dt, rho = dts[t + 1], rhos[t + 1]
        link = init[t] & ~reset[t + 1]
        f00, f01, f11 = 1.0, dt, rho
        # C = Pf[t] Fᵀ Pp[t+1]⁻¹ (2×2)
        a00, a01, a11 = Pf[t][..., 0], Pf[t][..., 1], Pf[t][..., 2]
        # Pf Fᵀ = [[a00 + dt a01, rho a01], [a01 + dt a11, rho a11]]
        m00, m01 = a00 + f01 * a01, f11 * a01
        m10, m11 = a01 + f01 * a11, f11 * a11
        b00, b01, b11 = Pp[t + 1][..., 0], Pp[t + 1][..., 1], Pp[t + 1][..., 2]
        det = b00 * b11 - b01 * b01
        det = np.where(np.abs(det) < 1e-300, 1e-300, det)
        i00, i01, i11 = b11 / det, -b01 / det, b00 / det
        c00, c01 = m00 * i00 + m01 * i01, m00 * i01 + m01 * i11
        c10, c11 = m10 * i00 + m11 * i01, m10 * i01 + m11 * i11
        d0 = xs[t + 1][..., 0] - xp[t + 1][..., 0]
        d1 = xs[t + 1][..., 1] - xp[t + 1][..., 1]
        e00 = Ps[t + 1][..., 0] - b00
        e01 = Ps[t + 1][..., 1] - b01
        e11 = Ps[t + 1][..., 2] - b11
        # C E Cᵀ
        g00 = c00 * (c00 * e00 + c01 * e01) + c01 * (c00 * e01 + c01 * e11)
        g01 = c00 * (c10 * e00 + c11 * e01) + c01 * (c10 * e01 + c11 * e11)
        g11 = c10 * (c10 * e00 + c11 * e01) + c11 * (c10 * e01 + c11 * e11)
        xs[t][..., 0] = np.where(link, xf[t][..., 0] + c00 * d0 + c01 * d1, xf[t][..., 0])
        xs[t][..., 1] = np.where(link, xf[t][..., 1] + c10 * d0 + c11 * d1, xf[t][..., 1])
        Ps[t][..., 0] = np.where(link, a00 + g00, a00)
        Ps[t][..., 1] = np.where(link, a01 + g01, a01)
        Ps[t][..., 2] = np.where(link, a11 + g11, a11)
    # Hold the first smoothed value before each channel's first measurement.
    any_init = init.any(axis=0)
    first = np.argmax(init, axis=0)  # (K, 5)
    t_idx = np.arange(t_len)[:, None, None]
    before = (t_idx < first[None]) & any_init[None]
    first_vals = np.take_along_axis(xs[..., 0], first[None], axis=0)[0]
    xs[..., 0] = np.where(before, first_vals[None], xs[..., 0])
    xs[..., 1] = np.where(before, 0.0, xs[..., 1])
    return xs, Ps


def _track_from_values(track: Track, values: np.ndarray, have: np.ndarray) -> Track:
    z = _measurements(track.xy, track.angle_deg, track.scale)
    v = np.where(have, values, z)
    return Track(index=track.index, time_s=track.time_s, xy=v[..., 0:2].copy(), angle_deg=wrap_deg(v[..., 2]),
                 scale=np.exp(v[..., 3:5]), area_px=track.area_px, visible=track.visible,
                 confidence=track.confidence)


def filter_track(track: Track, noise: KalmanNoise, frame_size: tuple[int, int]) -> Track:
    """Causal (forward-only) filtering of a whole track; equals running :class:`PoseFilter`
    frame by frame."""
    if len(track) == 0:
        return track
    fw = _forward(track, noise, frame_size)
    return _track_from_values(track, fw["xf"][..., 0], fw["init"])


def smooth_track(track: Track, noise: KalmanNoise, frame_size: tuple[int, int]) -> Track:
    """Offline smoothing: forward Kalman filter + RTS smoother over the whole track.

    Args:
        track: raw poses, T frames × K parts, times non-decreasing.
        noise: :class:`KalmanNoise`.
        frame_size: ``(height, width)`` of the source in pixels.

    Returns:
        A :class:`Track` of the same shape: smoothed xy, angle_deg (wrapped), scale; area_px,
        visible, confidence copied. Parts never visible keep their raw values.
    """
    if len(track) == 0:
        return track
    fw = _forward(track, noise, frame_size)
    xs, _ = _rts(fw)
    return _track_from_values(track, xs[..., 0], np.broadcast_to(fw["init"].any(axis=0), fw["init"].shape))


# ---------------------------------------------------------------------------------- factories
class KalmanFactory:
    """Builds Kalman pose filters with the noise settings it holds.

    Args:
        noise: :class:`KalmanNoise` (defaults documented there).
    """

    name = "kalman"

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


class NoFilterFactory:
    """The identity smoother: poses pass through unchanged (``--smoother none``)."""

    name = "none"

    def create_filter(self, num_parts: int, frame_size: tuple[int, int]) -> PassThroughFilter:
        return PassThroughFilter(num_parts)

    def smooth(self, track: Track, frame_size: tuple[int, int]) -> Track:
        return track

    def filter(self, track: Track, frame_size: tuple[int, int]) -> Track:
        return track

    def __repr__(self) -> str:
        return "NoFilterFactory()"


SMOOTHERS = ("offline", "online", "none")


def make_factory(smoother: str = "offline", noise: KalmanNoise | None = None):
    """The factory for a ``--smoother`` value: ``offline``/``online`` → :class:`KalmanFactory`
    (the caller picks :meth:`~KalmanFactory.smooth` or :meth:`~KalmanFactory.filter`),
    ``none`` → :class:`NoFilterFactory`.

    Raises:
        ValueError: an unknown name.
    """
    if smoother not in SMOOTHERS:
        raise ValueError(f"smoother must be one of {', '.join(SMOOTHERS)}, got {smoother!r}")
    return NoFilterFactory() if smoother == "none" else KalmanFactory(noise)
