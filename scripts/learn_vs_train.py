"""Learn mode against `parttrack train` on the same generated clip, at equal steps (issue 15).

A generated figure video (``engine.synthetic``) is written to ``clip.mp4`` and then:

* ``train``: ``parttrack train clip.mp4 --steps N --seed S --threads 1`` (the clip file itself);
* ``learn``: the viewer (``ui.viewer.ViewerWindow``, offscreen) plays ``clip.mp4`` in real time as
  its "camera", with the shipped default model in use; its learn mode records the clip through
  the viewer's recorder (``tracker.learn.ClipRecorder``) and trains in its child process with
  the learn defaults (warm start from the model in use) and the same steps, seed and threads;
* ``learn-cold``: the same without the warm start (only the recording differs from ``train``).

Each bundle is scored by ``engine.evaluate.evaluate_bundle`` on held-out motion of the same
figure (another motion seed). Usage::

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/learn_vs_train.py OUT --steps 300 [--only train]

Rows are appended to ``OUT/rows.jsonl``; ``docs/learn_mode.md`` has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VIDEO = dict(size=256, frames=300, fps=25.0, light=0.15, crf=23, test_frames=150, test_motion_seed=1234)


def videos(plan: str, figure_seed: int):
    from parttrack.engine.synthetic import render_video

    common = dict(size=VIDEO["size"], figure_seed=figure_seed, plan=plan, light=VIDEO["light"], crf=VIDEO["crf"],
                  fps=VIDEO["fps"])
    return (render_video(VIDEO["frames"], motion_seed=0, **common),
            render_video(VIDEO["test_frames"], motion_seed=VIDEO["test_motion_seed"], **common))


def run_train(clip: Path, out: Path, steps: int, seed: int) -> tuple[Path, float]:
    cmd = [sys.executable, "-m", "parttrack", "train", str(clip), "-o", str(out), "--steps", str(steps),
           "--minutes", "1e9", "--seed", str(seed), "--threads", "1", "--device", "cpu", "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, time.perf_counter() - t0


def run_learn(clip: Path, root: Path, steps: int, warm: bool, seconds: float) -> tuple[Path, float, dict]:
    from PyQt6 import QtWidgets

    from parttrack.engine.runtime import create_runtime
    from parttrack.tracker.learn import LearnSettings
    from parttrack.ui.viewer import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])

    def ort(path):
        return create_runtime(path, backend="onnxruntime", threads=1, announce=False)

    model = ROOT / "trained" / "bbb"
    settings = LearnSettings(seconds=seconds, countdown_s=0.0, steps=steps, minutes=None, threads=1, device="cpu",
                             root=root, warm_start=warm)
    win = ViewerWindow(ort(model), clip, loop=True, realtime=True, learn_settings=settings, model_path=model,
                       make_runtime=ort, learn=True)
    win.resize(720, 400)
    win.show()
    lr = win.learner
    t0 = time.perf_counter()
    while lr.phase not in ("done", "failed"):
        app.processEvents()
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    info = {"recorded_frames": lr.recorder.frames, "frames_while_training": lr.frames_while_training,
            "max_tick_lag_ms": round(lr.max_tick_lag_ms, 1), "message": lr.message}
    win.close()
    app.processEvents()
    if lr.phase != "done":
        raise RuntimeError(lr.message)
    return lr.bundle, wall, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan", default="humanoid")
    ap.add_argument("--figure-seed", type=int, default=103)
    ap.add_argument("--only", nargs="*", default=["train", "learn", "learn-cold"])
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from parttrack.engine.evaluate import evaluate_bundle
    from parttrack.engine.synthetic import write_video

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train_v, held = videos(a.plan, a.figure_seed)
    clip = write_video(out / f"{a.plan}-{a.figure_seed}.mp4", train_v.frames, VIDEO["fps"])
    seconds = VIDEO["frames"] / VIDEO["fps"]
    for how in a.only:
        info: dict = {}
        if how == "train":
            bundle, wall = run_train(clip, out / f"train-{a.plan}-{a.figure_seed}-s{a.seed}", a.steps, a.seed)
        else:
            bundle, wall, info = run_learn(clip, out / f"{how}-{a.plan}-{a.figure_seed}", a.steps,
                                           warm=how == "learn", seconds=seconds)
        res = evaluate_bundle(bundle, held, threads=1)
        row = {"how": how, "plan": a.plan, "figure_seed": a.figure_seed, "seed": a.seed, "steps": a.steps,
               "wall_s": round(wall, 1), "part_iou": round(res["part_iou"], 4),
               "foreground_iou": round(res["foreground_iou"], 4),
               "landmark_error_pct": round(res["landmark_error_pct"], 3), "bundle": str(bundle), **info}
        print(json.dumps(row), flush=True)
        with open(out / "rows.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
