"""Measure what the Kalman smoothing does to part tracks on generated figure videos with exact
ground truth (engine.synthetic), compared with the unsmoothed poses.

Poses come either from a fake runtime that plays back the ground truth with realistic
per-frame noise (tests.fakes.GroundTruthRuntime; default) or from a real model bundle
(``--model trained/...``; the model's parts are matched to the figure's parts by mask IoU).

Metrics (over frames where a part is visible in the raw poses, per part, then averaged):

* jitter: RMS of the frame-to-frame acceleration of part centres, |x[t+1] − 2x[t] + x[t−1]|
  (px/frame²); the ground truth's own value is printed for reference;
* error: RMS distance of part centres to the reference — the figure's true part centres
  (``err_gt``) and the noise-free measurement, i.e. the same pipeline on clean masks and
  transforms (``err_clean``; fake runtime only) — px;
* angle jitter / error likewise (degrees).

Usage:
    python scripts/jitter_eval.py [--size 640x480] [--frames 300] [--seeds 0 1 2] [--json out.json]
    python scripts/jitter_eval.py --model trained/synth --size 256x256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from parttrack.engine.preprocess import Letterbox  # noqa: E402
from parttrack.engine.synthetic import render_video  # noqa: E402
from parttrack.tracker.core import Track  # noqa: E402
from parttrack.tracker.kalman import KalmanFactory, KalmanNoise, wrap_deg  # noqa: E402
from parttrack.tracker.poses import PoseExtractor  # noqa: E402


def _track(arrays: dict, times: np.ndarray) -> Track:
    return Track(np.arange(len(times)), times, arrays["xy"], arrays["angle_deg"], arrays["scale"],
                 arrays["area_px"], arrays["visible"], arrays["confidence"])


def _stack(outs: list) -> dict:
    """PoseBatch records → one dict of arrays concatenated over frames (labels left out)."""
    names = [f.name for f in dataclasses.fields(outs[0]) if f.name != "labels"]
    return {k: np.concatenate([getattr(o, k) for o in outs]) for k in names}


def measure(track: Track, ref_xy: np.ndarray, ref_angle: np.ndarray, mask: np.ndarray) -> dict:
    """Jitter and error of ``track`` on frames/parts where ``mask`` (T, K) holds (and, for the
    acceleration, where it holds at t−1, t, t+1)."""
    acc = track.xy[2:] - 2 * track.xy[1:-1] + track.xy[:-2]
    m3 = mask[2:] & mask[1:-1] & mask[:-2]
    ang = np.unwrap(np.radians(track.angle_deg), axis=0)
    aacc = np.degrees(ang[2:] - 2 * ang[1:-1] + ang[:-2])
    err = np.linalg.norm(track.xy - ref_xy, axis=-1)
    aerr = np.abs(wrap_deg(track.angle_deg - ref_angle))
    return {
        "jitter_px": float(np.sqrt(np.mean(np.sum(acc ** 2, -1)[m3]))),
        "err_px": float(np.sqrt(np.mean(err[mask] ** 2))),
        "angle_jitter_deg": float(np.sqrt(np.mean(aacc[m3] ** 2))),
        "angle_err_deg": float(np.sqrt(np.mean(aerr[mask] ** 2))),
    }


def run_fake(video, noise, input_size: int, mask_size: int, seed: int, batch: int = 16):
    from tests.fakes import GroundTruthRuntime

    rt = GroundTruthRuntime(video, input_size=input_size, mask_size=(mask_size, mask_size), noise=noise, seed=seed)
    ex = PoseExtractor(rt.letterbox, rt.meta.mask_size)
    images = np.zeros((batch, input_size, input_size, 3), np.uint8)
    outs, clean = [], []
    for i in range(0, len(video), batch):
        n = min(batch, len(video) - i)
        outs.append(ex.compute(rt.infer(images[:n])))
        clean.extend(ex.compute(rt.clean_output(j)) for j in range(i, i + n))
    return _stack(outs), _stack(clean)


def run_model(video, model: str, backend: str, batch: int = 16):
    from parttrack.engine.runtime import create_runtime

    rt = create_runtime(model, backend=backend)
    lb = Letterbox.fit(video.height, video.width, rt.meta.input_size)
    ex = PoseExtractor(lb, rt.meta.mask_size)
    outs, labels = [], []
    for i in range(0, len(video), batch):
        imgs = np.stack([lb.apply(f) for f in video.frames[i:i + batch]])
        out = ex.compute(rt.infer(imgs))
        labels.append(out.labels)
        outs.append(out)
    arrays = _stack(outs)
    # Match model parts to figure parts by the centre distance over time (Hungarian).
    from scipy.optimize import linear_sum_assignment

    k_model = arrays["xy"].shape[1]
    cost = np.zeros((k_model, video.num_parts))
    for a in range(k_model):
        for b in range(video.num_parts):
            cost[a, b] = np.nanmean(np.linalg.norm(arrays["xy"][:, a] - video.centres[:, b], axis=-1))
    rows, cols = linear_sum_assignment(cost)
    return arrays, rows, cols, rt.describe()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="640x480", help="WxH of the generated video")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="motion seeds (one video each)")
    ap.add_argument("--figure-seed", type=int, default=0)
    ap.add_argument("--input-size", type=int, default=128, help="fake runtime: model input S")
    ap.add_argument("--mask-size", type=int, default=32, help="fake runtime: mask side")
    ap.add_argument("--noise-scale", type=float, default=1.0, help="multiply the realistic noise levels")
    ap.add_argument("--model", default=None, help="a model bundle instead of the fake runtime")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))

    from dataclasses import fields, replace

    from tests.fakes import REALISTIC_NOISE

    noise = replace(REALISTIC_NOISE, **{f.name: getattr(REALISTIC_NOISE, f.name) * args.noise_scale
                                       for f in fields(REALISTIC_NOISE)})
    factory = KalmanFactory(KalmanNoise())
    rows = []
    t_smooth = 0.0
    n_frames_total = 0
    for seed in args.seeds:
        video = render_video(args.frames, size=(w, h), figure_seed=args.figure_seed, motion_seed=seed, fps=args.fps)
        if args.model:
            arrays, mi, gi, desc = run_model(video, args.model, args.backend)
            raw = _track(arrays, video.times_s)
            sel = lambda tr: Track(tr.index, tr.time_s, tr.xy[:, mi], tr.angle_deg[:, mi], tr.scale[:, mi],  # noqa: E731
                                   tr.area_px[:, mi], tr.visible[:, mi], tr.confidence[:, mi])
            refs = {"gt": (video.centres[:, gi], video.angles_deg[:, gi])}
        else:
            arrays, clean = run_fake(video, noise, args.input_size, args.mask_size, seed)
            raw = _track(arrays, video.times_s)
            sel = lambda tr: tr  # noqa: E731
            refs = {"gt": (video.centres, video.angles_deg), "clean": (clean["xy"], clean["angle_deg"])}
        t0 = time.perf_counter()
        online = factory.filter(raw, (h, w))
        offline = factory.smooth(raw, (h, w))
        t_smooth += time.perf_counter() - t0
        n_frames_total += len(video)
        mask = sel(raw).visible
        gt_track = Track(raw.index, raw.time_s, refs["gt"][0], refs["gt"][1], sel(raw).scale, sel(raw).area_px,
                         mask, sel(raw).confidence)
        row = {"seed": seed, "truth": measure(gt_track, refs["gt"][0], refs["gt"][1], mask)}
        for name, tr in (("raw", raw), ("online", online), ("offline", offline)):
            tr = sel(tr)
            m = measure(tr, refs["gt"][0], refs["gt"][1], mask)
            res = {"jitter_px": m["jitter_px"], "err_gt_px": m["err_px"],
                   "angle_jitter_deg": m["angle_jitter_deg"], "angle_err_gt_deg": m["angle_err_deg"]}
            if "clean" in refs:
                mc = measure(tr, refs["clean"][0], refs["clean"][1], mask)
                res.update(err_clean_px=mc["err_px"], angle_err_clean_deg=mc["angle_err_deg"])
            row[name] = res
        rows.append(row)

    keys = [k for k in rows[0]["raw"]]
    mean = {name: {k: float(np.mean([r[name][k] for r in rows])) for k in keys} for name in ("raw", "online", "offline")}
    truth = {k: float(np.mean([r["truth"][k] for r in rows])) for k in ("jitter_px", "angle_jitter_deg")}
    print(f"video {w}x{h}, {args.frames} frames at {args.fps} fps, motion seeds {args.seeds}, "
          f"{'model ' + args.model if args.model else f'fake runtime S={args.input_size} masks {args.mask_size}² noise×{args.noise_scale}'}")
    print(f"ground-truth motion itself: jitter {truth['jitter_px']:.3f} px/frame², angle {truth['angle_jitter_deg']:.3f} deg/frame²")
    print(f"{'':8s}" + "".join(f"{k:>20s}" for k in keys))
    for name in ("raw", "online", "offline"):
        print(f"{name:8s}" + "".join(f"{mean[name][k]:20.3f}" for k in keys))
    for name in ("online", "offline"):
        red = 1 - mean[name]["jitter_px"] / mean["raw"]["jitter_px"]
        print(f"{name}: centre jitter −{100 * red:.1f}% ; error vs GT {mean[name]['err_gt_px']:.3f} px "
              f"(raw {mean['raw']['err_gt_px']:.3f})"
              + (f"; vs clean {mean[name]['err_clean_px']:.3f} (raw {mean['raw']['err_clean_px']:.3f})"
                 if "err_clean_px" in mean[name] else ""))
    print(f"smoothing cost (online+offline passes): {1e6 * t_smooth / n_frames_total:.1f} µs/frame for K={raw.num_parts}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "per_seed": rows, "mean": mean, "truth": truth}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
