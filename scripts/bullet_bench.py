"""A held-out benchmark from another renderer: articulated robots of pybullet's data, in 3-D.

``engine.synthetic`` draws flat 2-D figures, and the training recipe was tuned on them. This
script renders subjects nobody tuned on with pybullet's TinyRenderer (perspective, shading,
cast shadows, self-occlusion, the robots' own meshes and materials) over pybullet's checker
floor, with a static camera, and scores the **default** `parttrack train` on held-out motion
against the renderer's own per-link segmentation (``ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX``):

* ``kuka``: the KUKA LBR iiwa arm, bolted to the floor (8 parts: base, links 1–7);
* ``laikago``: the Unitree Laikago quadruped (9 parts: body with the hip motors, each leg's upper and
  lower segment with its toe), stepping on the spot and swaying;
* ``humanoid``: the DeepMimic humanoid of pybullet's data (10 parts: torso with pelvis, head, upper
  arms, forearms with hands, thighs, shins with feet), swaying.

Each joint between two parts follows a sum of three sinusoids (random frequencies 0.1–0.6 Hz and
phases) inside its limits; joints inside a part stay still, so every part is rigid. The motion seed
picks them (training: 0, held out: 1234). The figure seed picks the camera's
yaw and pitch and the light's direction. Ground truth (measuring only — training sees the video):
labels from the renderer's segmentation, part centres = the projected mean of the part's links'
centres of mass, joints = the projected origin of the first link of a part that hangs from another.

    pip install pybullet            # not a parttrack dependency: only this script needs it
    python scripts/bullet_bench.py run --out bench/bullet --subjects kuka laikago humanoid \\
        --seeds 0 1 --steps 1500 --jobs 2
    python scripts/bullet_bench.py table --out bench/bullet

``run`` renders ``OUT/<subject>_s<seed>/{train,held}`` (``video.mp4`` + ``ground_truth.npz``, the
folders ``parttrack eval`` reads), trains each with ``parttrack train`` exactly as a user would
(default recipe; ``--steps`` with no time limit, 1 torch thread per run so runs compare at equal
steps), scores the bundle with ``engine.evaluate.evaluate_bundle`` and appends one JSON line to
``OUT/results.jsonl``. Finished runs are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = 256
FPS = 25.0
TRAIN_FRAMES, HELD_FRAMES, HELD_MOTION_SEED = 300, 150, 1234

#: Per subject: URDF, base position, whether the base is bolted down, global scaling, the
#: camera's target and distance, and the parts: name -> link names (the base link is "base").
SUBJECTS: dict[str, dict] = {
    "kuka": dict(urdf="kuka_iiwa/model.urdf", base=(0.0, 0.0, 0.0), fixed=True, scaling=1.0, upright=False,
                 target=(0.0, 0.0, 0.5), distance=2.6, sway=0.0, amplitude=0.6,
                 parts={"base": ["base"], **{f"link_{i}": [f"lbr_iiwa_link_{i}"] for i in range(1, 8)}}),
    "laikago": dict(urdf="laikago/laikago_toes.urdf", base=(0.0, 0.0, 0.48), fixed=True, scaling=1.0, upright=True,
                    target=(0.0, 0.0, 0.32), distance=1.7, sway=0.12, amplitude=0.5,
                    parts={"body": ["base", *(f"{leg}_hip_motor" for leg in ("FR", "FL", "RR", "RL"))],
                           **{f"{leg}_upper": [f"{leg}_upper_leg"] for leg in ("FR", "FL", "RR", "RL")},
                           **{f"{leg}_lower": [f"{leg}_lower_leg", f"toe{leg}"] for leg in ("FR", "FL", "RR", "RL")}}),
    "humanoid": dict(urdf="humanoid/humanoid.urdf", base=(0.0, 0.0, 0.9), fixed=True, scaling=0.25, upright=True,
                     target=(0.0, 0.0, 0.85), distance=2.6, sway=0.15, amplitude=0.5,
                     parts={"torso": ["base", "root", "chest"], "head": ["neck"],
                            "r_upper_arm": ["right_shoulder"], "r_forearm": ["right_elbow", "right_wrist"],
                            "l_upper_arm": ["left_shoulder"], "l_forearm": ["left_elbow", "left_wrist"],
                            "r_thigh": ["right_hip"], "r_shin": ["right_knee", "right_ankle"],
                            "l_thigh": ["left_hip"], "l_shin": ["left_knee", "left_ankle"]}),
}


def _project(points: np.ndarray, view: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """World points ``(N, 3)`` → pixel ``(N, 2)`` (x right, y down; pixel centres at integers)
    through pybullet's column-major OpenGL view and projection matrices."""
    hom = np.hstack([points, np.ones((len(points), 1))])
    clip = hom @ view @ proj                       # row vectors: column-major matrices act on the right
    ndc = clip[:, :3] / clip[:, 3:4]
    return np.stack([(ndc[:, 0] + 1) * SIZE / 2 - 0.5, (1 - ndc[:, 1]) * SIZE / 2 - 0.5], 1)


def _trajectory(rng: np.random.Generator, frames: int, lo: float, hi: float, amp_max: float) -> np.ndarray:
    """``(frames,)`` joint angles: a sum of three sinusoids around the middle of [lo, hi]."""
    t = np.arange(frames) / FPS
    f = rng.uniform(0.1, 0.6, 3)
    ph = rng.uniform(0, 2 * math.pi, 3)
    w = rng.dirichlet(np.ones(3))
    s = (w[:, None] * np.sin(2 * math.pi * f[:, None] * t + ph[:, None])).sum(0) / max(w.max(), 1e-6)
    mid, amp = (lo + hi) / 2, min(amp_max, 0.45 * (hi - lo))
    return np.clip(mid + amp * np.clip(s, -1, 1), lo, hi)


def render(subject: str, figure_seed: int, motion_seed: int, frames: int):
    """Render one video of ``subject``; returns a :class:`engine.synthetic.SyntheticVideo`.

    Raises:
        ImportError: pybullet is not installed.
    """
    import pybullet as p
    import pybullet_data

    from parttrack.engine.synthetic import SyntheticVideo

    spec = SUBJECTS[subject]
    cam = np.random.default_rng(figure_seed)
    yaw, pitch = cam.uniform(15, 75) * cam.choice([-1, 1]), cam.uniform(-25, -8)
    light = [float(cam.uniform(-1, 1)), float(cam.uniform(-1, 1)), 2.0]
    rng = np.random.default_rng(10_000 + motion_seed)
    cid = p.connect(p.DIRECT)
    try:
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=cid)
        p.loadURDF("plane.urdf", physicsClientId=cid)
        orn0 = p.getQuaternionFromEuler([math.pi / 2, 0, 0]) if spec["upright"] else (0, 0, 0, 1)
        body = p.loadURDF(spec["urdf"], spec["base"], orn0, useFixedBase=spec["fixed"],
                          globalScaling=spec["scaling"], physicsClientId=cid)
        names = {-1: "base"}
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            names[j] = p.getJointInfo(body, j, physicsClientId=cid)[12].decode()
        part_names = tuple(spec["parts"])
        part_of = {link: i + 1 for i, (_, links) in enumerate(spec["parts"].items()) for link in links}
        amp = spec["amplitude"]
        joints = []
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            info = p.getJointInfo(body, j, physicsClientId=cid)
            if part_of.get(names[info[16]]) == part_of.get(names[j]):
                continue                              # inside one part: held still (rigid parts)
            if info[2] == p.JOINT_REVOLUTE:
                lo, hi = (info[8], info[9]) if info[9] > info[8] else (-1.0, 1.0)
                joints.append(("rev", j, _trajectory(rng, frames, lo, hi, amp)))
            elif info[2] == p.JOINT_SPHERICAL:
                joints.append(("sph", j, np.stack([_trajectory(rng, frames, -amp, amp, amp) for _ in range(3)], 1)))
        link_ids = {v: k for k, v in names.items()}
        missing = [n for n in part_of if n not in link_ids]
        if missing:
            raise ValueError(f"{subject}: links {missing} not in {spec['urdf']}")
        lut = np.zeros(max(names) + 2, np.uint8)                 # link index + 1 -> part id
        for link, pid in part_of.items():
            lut[link_ids[link] + 1] = pid
        # joints of the skeleton: a link whose parent link lies in another part
        pairs, joint_links = [], []
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            parent = p.getJointInfo(body, j, physicsClientId=cid)[16]
            a, b = part_of.get(names[parent]), part_of.get(names[j])
            if a and b and a != b:
                pairs.append((min(a, b), max(a, b)))
                joint_links.append(j)
        view = np.array(p.computeViewMatrixFromYawPitchRoll(spec["target"], spec["distance"], yaw, pitch, 0, 2)).reshape(4, 4)
        proj = np.array(p.computeProjectionMatrixFOV(45, 1, 0.05, 20)).reshape(4, 4)
        sway = rng.uniform(0.05, 0.12, 2), rng.uniform(0, 2 * math.pi, 2)
        imgs = np.empty((frames, SIZE, SIZE, 3), np.uint8)
        labels = np.empty((frames, SIZE, SIZE), np.uint8)
        centres = np.empty((frames, len(part_names), 2))
        joint_px = np.empty((frames, len(joint_links), 2))
        for t in range(frames):
            ts = t / FPS
            pos = np.array(spec["base"], float)
            pos[0] += spec["sway"] * math.sin(2 * math.pi * sway[0][0] * ts + sway[1][0])
            yaw_t = spec["sway"] * 1.5 * math.sin(2 * math.pi * sway[0][1] * ts + sway[1][1])
            orn = p.multiplyTransforms([0, 0, 0], p.getQuaternionFromEuler([0, 0, yaw_t]), [0, 0, 0], orn0)[1]
            p.resetBasePositionAndOrientation(body, pos.tolist(), orn, physicsClientId=cid)
            for kind, j, traj in joints:
                if kind == "rev":
                    p.resetJointState(body, j, float(traj[t]), physicsClientId=cid)
                else:
                    p.resetJointStateMultiDof(body, j, p.getQuaternionFromEuler(traj[t].tolist()), physicsClientId=cid)
            _, _, rgb, _, seg = p.getCameraImage(SIZE, SIZE, view.flatten().tolist(), proj.flatten().tolist(),
                                                 shadow=1, lightDirection=light, renderer=p.ER_TINY_RENDERER,
                                                 flags=p.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
                                                 physicsClientId=cid)
            imgs[t] = np.reshape(rgb, (SIZE, SIZE, 4))[..., :3]
            seg = np.reshape(seg, (SIZE, SIZE)).astype(np.int64)
            mine = (seg >= 0) & ((seg & ((1 << 24) - 1)) == body)
            labels[t] = np.where(mine, lut[np.clip((seg >> 24), 0, len(lut) - 1)], 0)
            com = {-1: p.getBasePositionAndOrientation(body, physicsClientId=cid)[0]}
            frame_origin = {}
            for j in range(p.getNumJoints(body, physicsClientId=cid)):
                st = p.getLinkState(body, j, computeForwardKinematics=True, physicsClientId=cid)
                com[j], frame_origin[j] = st[0], st[4]
            for i, (_, links) in enumerate(spec["parts"].items()):
                pts = np.array([com[link_ids[n]] for n in links])
                centres[t, i] = _project(pts, view, proj).mean(0)
            if joint_links:
                joint_px[t] = _project(np.array([frame_origin[j] for j in joint_links]), view, proj)
    finally:
        p.disconnect(cid)
    jp = np.array(pairs, np.int64).reshape(-1, 2)
    return SyntheticVideo(
        labels=labels, centres=centres, angles_deg=np.zeros(centres.shape[:2]), scales=np.ones(centres.shape),
        joints=joint_px, joint_pairs=jp, part_names=part_names,
        joint_names=tuple(f"{part_names[a - 1]}-{part_names[b - 1]}" for a, b in jp),
        times_s=np.arange(frames) / FPS, fps=FPS, figure_seed=figure_seed, motion_seed=motion_seed,
        plan=f"bullet_{subject}", frames=imgs)


def run_one(out: Path, subject: str, seed: int, steps: int, extra: list[str]) -> dict:
    from parttrack.engine.evaluate import evaluate_bundle

    d = out / f"{subject}_s{seed}"
    for name, motion, n in (("train", 0, TRAIN_FRAMES), ("held", HELD_MOTION_SEED, HELD_FRAMES)):
        if not (d / name / "ground_truth.npz").is_file():
            render(subject, seed, motion, n).save(d / name)
    bundle = d / "bundle"
    t0 = time.perf_counter()
    if not (bundle / "model.onnx").is_file():
        cmd = [sys.executable, "-m", "parttrack.tracker.cli", "train", str(d / "train" / "video.mp4"), "-o", str(bundle),
               "--steps", str(steps), "--minutes", "100000", "--threads", "1", "--seed", str(seed),
               "--no-progress", "--force", *extra]
        log = (d / "train.log").open("w")
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    res = evaluate_bundle(bundle, d / "held", threads=1)
    ref = evaluate_bundle(bundle, d / "held", threads=1, refine=True)
    meta = json.loads((bundle / "config.json").read_text())
    return {"subject": subject, "seed": seed, "steps": steps, "extra": extra, "wall_s": round(time.perf_counter() - t0, 1),
            "precision": meta["training"].get("precision"),
            "part_iou": round(res["part_iou"], 4), "foreground_iou": round(res["foreground_iou"], 4),
            "landmark_error_pct": round(res["landmark_error_pct"], 3),
            "part_iou_refined": round(ref["part_iou"], 4), "foreground_iou_refined": round(ref["foreground_iou"], 4),
            "per_part": {k: round(v, 3) for k, v in res["part_iou_per_part"].items()}}


def cmd_run(a) -> None:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    done = {(r["subject"], r["seed"]) for r in load_rows(results)}
    jobs = [(s, seed) for seed in a.seeds for s in a.subjects if (s, seed) not in done]
    print(f"{len(jobs)} runs to do ({len(done)} done)", flush=True)

    def one(job):
        try:
            row = run_one(out, *job, a.steps, a.extra)
        except Exception as exc:       # a failed run is recorded, the others go on
            row = {"subject": job[0], "seed": job[1], "error": f"{type(exc).__name__}: {exc}"}
        with results.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps({k: row.get(k) for k in ("subject", "seed", "part_iou", "foreground_iou",
                                                  "landmark_error_pct", "error")}), flush=True)

    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(one, jobs))


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def cmd_table(a) -> None:
    rows = [r for r in load_rows(Path(a.out) / "results.jsonl") if "error" not in r]
    print("| subject | seed | steps | part IoU | foreground IoU | landmark error % |\n| --- | --- | --- | --- | --- | --- |")
    for r in sorted(rows, key=lambda r: (r["subject"], r["seed"])):
        print(f"| {r['subject']} | {r['seed']} | {r['steps']} | {r['part_iou']:.3f} | {r['foreground_iou']:.3f} "
              f"| {r['landmark_error_pct']:.2f} |")
    if rows:
        for key in ("part_iou", "foreground_iou", "landmark_error_pct"):
            v = [r[key] for r in rows]
            worst = max(v) if key == "landmark_error_pct" else min(v)
            print(f"{key}: median {statistics.median(v):.3f}, worst {worst:.3f} over {len(v)} runs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="render, train with `parttrack train`, score")
    r.add_argument("--out", required=True)
    r.add_argument("--subjects", nargs="+", default=list(SUBJECTS), choices=list(SUBJECTS))
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    r.add_argument("--steps", type=int, default=1500)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further `parttrack train` options, e.g. --extra --precision fp32")
    t = sub.add_parser("table", help="every run and the median / worst")
    t.add_argument("--out", required=True)
    v = sub.add_parser("render", help="render one video folder (to look at, or for `parttrack eval`)")
    v.add_argument("subject", choices=list(SUBJECTS))
    v.add_argument("out")
    v.add_argument("--figure-seed", type=int, default=0)
    v.add_argument("--motion-seed", type=int, default=0)
    v.add_argument("--frames", type=int, default=TRAIN_FRAMES)
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a)
    elif a.cmd == "table":
        cmd_table(a)
    else:
        render(a.subject, a.figure_seed, a.motion_seed, a.frames).save(a.out)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
