"""Time the Kalman pose filters for K parts (SPEC budget: ≤ 0.2 ms per frame for K = 10).

Prints µs per frame for: the online PoseFilter.update (the whole per-frame call, PartPoses in
and out), the offline forward + RTS pass (per frame of a T-frame track), and, for comparison,
filterpy itself (one KalmanFilter(dim_x=10, dim_z=5) per part, predict + update).

Usage: python scripts/kalman_timing.py [--parts 10] [--frames 2000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from parttrack.tracker.core import Track  # noqa: E402
from parttrack.tracker.kalman import KalmanFactory, KalmanNoise  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=10)
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args(argv)
    k, t_len = args.parts, args.frames
    rng = np.random.default_rng(0)
    frame = (480, 640)
    times = np.arange(t_len) / 30.0
    xy = 320 + np.cumsum(rng.normal(0, 2, (t_len, k, 2)), 0)
    vis = rng.random((t_len, k)) > 0.05
    track = Track(np.arange(t_len), times, xy, rng.uniform(-180, 180, (t_len, k)),
                  rng.uniform(5, 40, (t_len, k, 2)), rng.uniform(100, 900, (t_len, k)), vis, rng.uniform(0.3, 1, (t_len, k)))
    poses = [track.poses(t) for t in range(t_len)]
    factory = KalmanFactory(KalmanNoise())

    def best(fn, n_items: int, repeats: int = 7) -> float:
        """Best-of-``repeats`` µs per item (robust to other processes on a shared machine)."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) / n_items * 1e6

    chunk = poses[:300]

    def run_online():
        f = factory.create_filter(k, frame)
        for p in chunk:
            f.update(p)

    online = best(run_online, len(chunk))
    offline = best(lambda: factory.smooth(track, frame), t_len, repeats=3)

    from tests.kalman_reference import _blocks, make_part_filter

    noise = KalmanNoise()
    meas, accel, _ = noise.channel_arrays(frame)
    z = np.concatenate([xy, track.angle_deg[..., None], np.log(track.scale)], -1)
    F, Q = _blocks(1 / 30.0, np.ones(5), accel)

    def run_filterpy(n=100):
        kfs = [make_part_filter(noise, frame, z[0, p], 1.0) for p in range(k)]
        for kf in kfs:
            kf.F, kf.Q = F, Q
        for t in range(1, n + 1):
            for p in range(k):
                kfs[p].predict()
                kfs[p].update(z[t, p])

    filterpy_us = best(run_filterpy, 100, repeats=5)

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_implementation()} "
          f"{platform.python_version()}, numpy {np.__version__}")
    print(f"K={k}; best of several repeats (online: 300 frames, offline: {t_len} frames)")
    print(f"online PoseFilter.update:        {online:8.1f} µs/frame")
    print(f"offline forward + RTS (batch):    {offline:8.1f} µs/frame")
    print(f"filterpy, one filter per part:    {filterpy_us:8.1f} µs/frame ({filterpy_us / k:.1f} µs per filter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
