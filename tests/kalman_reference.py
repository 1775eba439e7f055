"""filterpy reference for tracker.kalman: one ``filterpy.kalman.KalmanFilter`` per part with the
10-dimensional block state of tracker.kalman's docstring, used to check the vectorised filter
(and by scripts/kalman_timing.py to time filterpy itself)."""

from __future__ import annotations

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter
from scipy.linalg import block_diag

from parttrack.tracker.kalman import KalmanNoise, _measurements, wrap_deg


def _blocks(dt: float, rho: np.ndarray, accel: np.ndarray):
    F = block_diag(*[np.array([[1.0, dt], [0.0, r]]) for r in rho])
    Q = block_diag(*[Q_discrete_white_noise(dim=2, dt=dt, var=a * a) for a in accel])
    return F, Q


def make_part_filter(noise: KalmanNoise, frame_size, z0: np.ndarray, r_scale: float) -> KalmanFilter:
    """A filterpy filter for one part, initialised at measurement ``z0`` (5,)."""
    meas, accel, rate = noise.channel_arrays(frame_size)
    kf = KalmanFilter(dim_x=10, dim_z=5)
    kf.H = np.zeros((5, 10))
    kf.H[np.arange(5), 2 * np.arange(5)] = 1.0
    kf.R = np.diag(meas ** 2 * r_scale)
    kf.x = np.zeros(10)
    kf.x[0::2] = z0
    kf.P = np.diag(np.ravel(np.column_stack([meas ** 2 * r_scale, rate ** 2])))
    return kf


def reference_online(track, noise: KalmanNoise, frame_size) -> np.ndarray:
    """Online filter values ``(T, K, 5)`` by filterpy, frame by frame (gate and resets must be
    off in ``noise``: parts are initialised at their first visible frame, angles measured by
    wrapping the innovation as tracker.kalman does)."""
    meas, accel, _ = noise.channel_arrays(frame_size)
    z_all = _measurements(track.xy, track.angle_deg, track.scale)
    conf = np.clip(track.confidence, noise.min_confidence, 1.0) if noise.confidence_weighting else np.ones_like(track.confidence)
    t_len, k = z_all.shape[:2]
    out = np.array(z_all)
    filters: list[KalmanFilter | None] = [None] * k
    for t in range(t_len):
        dt = float(track.time_s[t] - track.time_s[t - 1]) if t else 0.0
        for p in range(k):
            vis = bool(track.visible[t, p])
            kf = filters[p]
            if kf is None:
                if vis:
                    filters[p] = make_part_filter(noise, frame_size, z_all[t, p], 1.0 / conf[t, p])
                    out[t, p] = filters[p].x[0::2]
                continue
            rho = np.ones(5) if vis or noise.velocity_decay_s is None else np.full(5, np.exp(-dt / noise.velocity_decay_s))
            kf.F, kf.Q = _blocks(dt, rho, accel)
            kf.predict()
            if vis:
                z = z_all[t, p].copy()
                z[2] = kf.x[4] + wrap_deg(z[2] - kf.x[4])
                kf.update(z, R=np.diag(meas ** 2 / conf[t, p]))
            else:
                kf.update(None)
            out[t, p] = kf.x[0::2]
    return out


def reference_offline(track, noise: KalmanNoise, frame_size) -> np.ndarray:
    """Offline values ``(T, K, 5)`` by filterpy's ``batch_filter`` + ``rts_smoother``, one
    part at a time (every part must be visible in frame 0; angles are unwrapped first; gate
    and resets off)."""
    meas, accel, _ = noise.channel_arrays(frame_size)
    z_all = _measurements(track.xy, track.angle_deg, track.scale)
    conf = np.clip(track.confidence, noise.min_confidence, 1.0) if noise.confidence_weighting else np.ones_like(track.confidence)
    t_len, k = z_all.shape[:2]
    out = np.zeros_like(z_all)
    for p in range(k):
        vis = track.visible[:, p]
        assert vis[0], "reference_offline needs every part visible in frame 0"
        z = z_all[:, p].copy()
        idx = np.nonzero(vis)[0]
        z[idx, 2] = np.degrees(np.unwrap(np.radians(z[idx, 2])))
        kf = make_part_filter(noise, frame_size, z[0], 1.0 / conf[0, p])
        zs = [z[t] if vis[t] else None for t in range(t_len)]
        Fs, Qs, Rs = [], [], []
        for t in range(t_len):
            dt = float(track.time_s[t] - track.time_s[t - 1]) if t else 0.0
            rho = np.ones(5) if vis[t] or noise.velocity_decay_s is None else np.full(5, np.exp(-dt / noise.velocity_decay_s))
            F, Q = _blocks(dt, rho, accel)
            Fs.append(F)
            Qs.append(Q)
            Rs.append(np.diag(meas ** 2 / conf[t, p]))
        # Frame 0 initialises the filter (x = z0, P = prior): no predict/update there.
        zs[0] = None
        Fs[0], Qs[0] = np.eye(10), np.zeros((10, 10))
        xs, ps, _, _ = kf.batch_filter(zs, Fs=Fs, Qs=Qs, Rs=Rs)
        xs_s, _, _, _ = kf.rts_smoother(xs, ps, Fs=Fs, Qs=Qs)
        out[:, p] = xs_s[:, 0::2]
    return out
