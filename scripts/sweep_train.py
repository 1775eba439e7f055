"""Training sweep: the default `parttrack train` recipe (and variants) over body plans and seeds.

Every run trains on a generated video of one figure and is scored on *held-out motion* of
the same figure (``engine.evaluate``: part IoU with Hungarian matching, foreground IoU,
landmark error). Training sees the frames only; the ground truth is used to score.

    python scripts/sweep_train.py run --out sweeps/A --recipes default flow \\
        --plans humanoid quadruped robot_arm --seeds 0 1 2 3 4 --steps 2000 --jobs 2
    python scripts/sweep_train.py table --out sweeps/A     # every run + median / worst per recipe

Runs are compared at equal steps (not equal wall time: other jobs share the cores). Each run
uses 1 torch thread; ``--jobs`` runs that many at once. A finished run appends one JSON line to
``OUT/results.jsonl``; an interrupted sweep resumes (finished runs are skipped, a run's
checkpoint is continued). Run ``i`` uses figure seed ``100 + i`` (figures nobody tuned on) and
training seed ``i``; videos are 256×256, 300 training frames with slowly changing light,
sensor noise and H.264 compression (CRF 23), and 150 held-out frames of new motion.
``--frame WxH`` (e.g. ``384x216``: letterboxed for training), ``--scale`` (figure size) and
``--pan VX,VY`` (a moving camera) change the videos of a sweep folder.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Named recipes: overrides of the TrainConfig defaults (= `parttrack train` with no options);
#: a "network" entry overrides NetConfig.
RECIPES: dict[str, dict] = {
    "default": {},
    "noflow": {"usage_on_changed": False, "weights": {"flow": 0.0}},     # the default before usage_on_changed
    "flow20": {"usage_on_changed": False, "weights": {"flow": 20.0}},
    "flow100": {"usage_on_changed": False, "weights": {"flow": 100.0}},
    "moving_usage": {"usage_on_changed": True},
    "flow20_moving_usage": {"usage_on_changed": True, "weights": {"flow": 20.0}},
    "mask64": {"network": {"latent_stride": 2}},
    "noillum": {"illumination": False},                                  # the default before illumination
    "cluster": {"weights": {"cluster": 1.0}},
    "cluster3": {"weights": {"cluster": 3.0}, "cluster_steps": 500},
    "restarts3": {"restarts": 3, "restart_steps": 300},
    "moving": {"static_background": False},                             # the decoded background, as in the paper
    "moving_nomotion": {"static_background": False, "motion_changed": False},
    "prior_all": {"change_prior_floor": 1.0},                           # now the default (sweep K)
    "prior_warmup": {"change_prior_floor": 0.0},                        # the default before sweep K
    "median_background": {"estimate_background": False},                # = the default (sweep L)
    "estimate_background": {"estimate_background": True},               # sweep L: not kept
    "moving_usage_static": {"usage_on_moving": True},                  # sweep N
    "estimate_moving_usage": {"estimate_background": True, "usage_on_moving": True},   # sweep N
    "fill_changed": {"fill_changed": True},                              # sweep O
    "fill_moving_usage": {"fill_changed": True, "usage_on_moving": True},  # sweep O
    "consistency1": {"weights": {"mask_consistency": 1.0}},            # sweep P
    "consistency5": {"weights": {"mask_consistency": 5.0}},            # sweep P
    "lr_decay": {"lr_final": 0.05},                                     # sweep P: cosine to 5 % of lr
    "lr2x": {"lr": 2e-3},                                               # sweep P
    "reseed": {"seed": 1000},     # sweep P: the default with another training seed on the same video (the noise)
    "layers20": {"weights": {"motion_layers": 20.0}},                 # sweep R: losses.motion_layer_loss
    "layers100": {"weights": {"motion_layers": 100.0}},               # sweep R
    "realloc": {"reallocate_steps": [700, 1000]},                      # sweep R: Trainer.reallocate_parts
    "mode_background": {"mode_background": True},                      # sweep R: background.temporal_mode
    "conc_low": {"weights": {"concentration": 0.05}},                   # sweep P
    "estimate_conc_low": {"estimate_background": True, "weights": {"concentration": 0.05}},   # sweep P
    "changed_at_input": {"changed_at_input": True},                    # sweep P
    "wide": {"network": {"widths": [24, 48, 72, 96]}},                 # sweep P: 151 MMAC (default 70)
    "cluster_restarts3": {"weights": {"cluster": 1.0}, "restarts": 3, "restart_steps": 300},
    # sweep Q: 3 starts of 300 steps, the one with the lowest motion residual continued (run with
    # --steps 2100 for 1,500 steps on the kept line)
    "restarts_residual": {"restarts": 3, "restart_steps": 300, "restart_criterion": "motion_residual"},
    "gap_any": {"max_pair_gap": None},   # sweep Q: training pairs from anywhere in the video, as the paper
    # sweep U: warm starts. ``init``: a bundle path relative to the repository, or per plan the plan
    # whose prior (``--priors DIR``: DIR/<plan> is a bundle) starts the run — here a bundle trained on
    # *another* body plan (leave the plan out)
    "transfer": {"init": {"humanoid": "robot_arm", "quadruped": "humanoid", "robot_arm": "humanoid"}},
    # sweep U: a warm start from trained/prior (three other figures, one of each plan; trained/prior/reproduce.py)
    "prior": {"init": "trained/prior"},
    # sweep V: a prior from nine videos (three figures per plan, figure scales 0.7–1.2), trained on from
    # trained/prior: ``trained/prior/reproduce.py --diverse --init trained/prior --out DIR/diverse``
    "prior_diverse": {"init": {"humanoid": "diverse", "quadruped": "diverse", "robot_arm": "diverse"}},
    # sweep V: the same nine videos, 12,000 steps from random weights (``--diverse --steps 12000``, no --init)
    "prior_diverse_scratch": {"init": {"humanoid": "diverse_scratch", "quadruped": "diverse_scratch",
                                       "robot_arm": "diverse_scratch"}},
    # sweep V: the shipped prior with the static background taken without the subject (sweep L's estimate)
    "prior_estimate": {"init": "trained/prior", "estimate_background": True},
    # sweep W: the shipped prior fine-tuned at a third of the learning rate (a start that the default
    # rate may wash out)
    "prior_lr_low": {"init": "trained/prior", "lr": 3e-4},
    # sweep W: ... and at twice the default rate (sweep P's lr2x, from the prior)
    "prior_lr2x": {"init": "trained/prior", "lr": 2e-3},
    # sweep W: the prior with the hole-filled changed-pixel map (sweep O's fill_changed)
    "prior_fill": {"init": "trained/prior", "fill_changed": True},
    # sweep X: the prior with masks hardened by the mask-entropy term (losses.mask_entropy_loss)
    "prior_sharp": {"init": "trained/prior", "weights": {"mask_entropy": 1.0}},
    # sweep X: the prior with the reconstruction compared at twice the mask resolution (64×64)
    "prior_rs2": {"init": "trained/prior", "recon_scale": 2},
    # the letterbox padding left out of the maps and the reconstruction (TrainConfig.content_boxes,
    # what `parttrack train` does since); only differs from `prior` on frames that are not square
    "prior_pad": {"init": "trained/prior", "content_boxes": "letterbox"},
    # a moving camera (--moving-camera): the background slot moved by the camera's motion
    # (TrainConfig.camera_background, the default since) or kept where the source frame had it
    # sweep Z: the prior, the letterbox padding left out, and a crop around the subject box the footage
    # check finds (a square as wide as the box's long side), kept for scoring
    "prior_crop": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "box"},
    # sweep Z: the same with the subject box shrunk to 0.8 of its size about its centre first (a tighter
    # crop: the box is 1.3–1.55 times the figure's true reach on the videos measured)
    "prior_crop_tight": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "box", "crop_box_scale": 0.8},
    # sweep ZR: what `parttrack train` does since — the crop around the subject's reach
    # (engine.footage.choose_crop: 1.4 times the reach's long side)
    "prior_crop_reach": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto"},
    # sweep S192: the default with a 192×192 model input (the prior's weights: they do not depend on it)
    "prior_192": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto", "network": {"input_size": 192}},
    # sweep S160: the same with a 160×160 input (≈ 1.7 times the training cost per step of 128).
    # Since sweep BF the default precision is "auto" (bf16 where the CPU has it): rows made before
    # 2026-12-08 ran in fp32; prior_160_bf16 below names bf16 explicitly.
    "prior_160": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto", "network": {"input_size": 160}},
    # sweep RS: the default at 160 with the training seeds of TrainConfig.restarts' later starts
    # (seed + 1000·r) on the same video: best-of-n restarts chosen by a label-free criterion
    "prior_160_r1": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                     "network": {"input_size": 160}, "seed_offset": 1000},
    "prior_160_r2": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                     "network": {"input_size": 160}, "seed_offset": 2000},
    # the default at 160 with the segmentation's equivariance under random warps of the frame
    # (LossWeights.mask_equivariance; SCOPS' constraint on part maps)
    "prior_160_meq2": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                       "network": {"input_size": 160}, "weights": {"mask_equivariance": 2.0}},
    # sweep T04: the default at 160 with a change threshold of 0.04 instead of 0.05 (LossWeights.change_threshold)
    "prior_160_thr04": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                        "network": {"input_size": 160}, "weights": {"change_threshold": 0.04}},
    # ... and 0.06
    "prior_160_thr06": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                        "network": {"input_size": 160}, "weights": {"change_threshold": 0.06}},
    # sweep BF: the default at 160 with the network's products in bfloat16 (TrainConfig.precision)
    "prior_160_bf16": {"init": "trained/prior", "content_boxes": "letterbox", "crop": "auto",
                       "network": {"input_size": 160}, "precision": "bf16"},
    "moving_prior": {"init": "trained/prior", "static_background": False},
    # sweep MV: the same with a moving-pixel map whose pixels move in at least 2 of their frame comparisons
    # (TrainConfig.moving_votes; moving_prior is 1, the default)
    "moving_prior_votes2": {"init": "trained/prior", "static_background": False, "moving_votes": 2},
    # the same, but the pixels that move in 1 comparison only are left out of the change prior
    # instead of being called background (TrainConfig.moving_unsure)
    "moving_prior_unsure": {"init": "trained/prior", "static_background": False, "moving_votes": 2,
                            "moving_unsure": True},
    "moving_prior_still": {"init": "trained/prior", "static_background": False, "camera_background": False},
    # sweep X: the prior with the soft changed-pixel map (the share of changed input pixels per mask
    # pixel) as the change prior's label (TrainConfig.changed_soft)
    "prior_soft": {"init": "trained/prior", "changed_soft": True},
}

#: Steps at which a run records its label-free held-out score (Trainer.heldout_score).
SCORE_STEPS = (150, 300, 500, 1000)

VIDEO = dict(size=256, train_frames=300, test_frames=150, light=0.15, crf=23, test_motion_seed=1234, scale=1.0)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def run_one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from parttrack.engine.evaluate import evaluate_bundle
    from parttrack.engine.model import NetConfig
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import TrainConfig, Trainer, prepare_frames, write_trained_bundle

    run_dir = Path(job["run_dir"])
    fs = 100 + job["seed"]
    common = dict(size=tuple(job["frame"]) if job.get("frame") else VIDEO["size"], figure_seed=fs, plan=job["plan"],
                  light=VIDEO["light"], crf=VIDEO["crf"], scale=job.get("scale", 1.0),
                  pan=tuple(job.get("pan") or (0.0, 0.0)))
    video = render_video(VIDEO["train_frames"], motion_seed=0, **common)
    recipe = dict(RECIPES[job["recipe"]])
    box = None
    if recipe.get("crop") in ("auto", "box"):      # as `parttrack train`: the footage check's crop, if any
        from dataclasses import replace

        from parttrack.engine.footage import check_footage, choose_crop

        h, w = video.frames.shape[1:3]
        report = check_footage(video.frames, video.fps)
        if recipe["crop"] == "box" and report.subject_box is not None:   # sweep Z: the subject box, as it was
            f = recipe.pop("crop_box_scale", 1.0)
            bx, by, bw, bh = report.subject_box
            nw, nh = bw * f, bh * f
            report = replace(report, subject_reach=(int(bx + (bw - nw) / 2), int(by + (bh - nh) / 2), int(nw), int(nh)))
            box = choose_crop([report], (w, h), reach_scale=1.0)
        else:
            box = choose_crop([report], (w, h))
        recipe.pop("crop_box_scale", None)
        recipe["crop"], recipe["crop_frame"] = box, (w, h) if box is not None else None
    net = NetConfig(**recipe.pop("network", {}))
    frames = prepare_frames(video.frames, net.input_size, box)
    if recipe.get("content_boxes") == "letterbox":
        from parttrack.engine.preprocess import Letterbox

        recipe["content_boxes"] = (Letterbox.fit(*video.frames.shape[1:3], net.input_size, box).inner_box,)
    init = recipe.pop("init", None)
    if isinstance(init, dict):      # per plan: a prior under --priors
        if not job.get("priors"):
            raise ValueError(f"recipe {job['recipe']!r} starts from a prior: pass --priors DIR")
        init = Path(job["priors"]) / init[job["plan"]]
    seed = job["seed"] + recipe.pop("seed_offset", 0)     # another training seed on the same video
    cfg = _merge({"steps": job["steps"], "minutes": None, "seed": seed, "snapshot_every": 500,
                  "checkpoint_every": 250}, recipe)
    trainer = Trainer(frames, net, TrainConfig.from_dict(cfg), run_dir)
    if init is not None:      # any input size: the weights do not depend on it
        trainer.load_weights(ROOT / init)
    trainer.load_checkpoint()
    scores_path = run_dir / "heldout_scores.json"
    scores = json.loads(scores_path.read_text()) if scores_path.exists() else {}

    def on_step(tr, _last):
        # label-free figures along the way: does any of them predict the final part IoU?
        if tr.step in SCORE_STEPS:
            scores[str(tr.step)] = {k: round(v, 5) for k, v in tr.heldout_score().items()}
            scores_path.write_text(json.dumps(scores))

    t0 = time.perf_counter()
    result = trainer.run(progress=False, on_step=on_step)
    scores["final"] = {k: round(v, 5) for k, v in trainer.heldout_score().items()}
    bundle = write_trained_bundle(trainer, run_dir / "bundle", last=result["last"])
    held = render_video(VIDEO["test_frames"], motion_seed=VIDEO["test_motion_seed"], **common)
    res = evaluate_bundle(bundle, held, threads=1)
    ref = evaluate_bundle(bundle, held, threads=1, refine=True)
    row = {"recipe": job["recipe"], "plan": job["plan"], "seed": job["seed"], "figure_seed": fs,
           "scale": common["scale"], "frame": list(video.frames.shape[2:0:-1]), "pan": list(common["pan"]),
           "crop": list(box) if box is not None else None,
           "steps": trainer.step, "train_s": round(trainer.elapsed_s, 1), "wall_s": round(time.perf_counter() - t0, 1),
           "part_iou": round(res["part_iou"], 4), "foreground_iou": round(res["foreground_iou"], 4),
           "landmark_error_pct": round(res["landmark_error_pct"], 3),
           "part_iou_refined": round(ref["part_iou"], 4), "foreground_iou_refined": round(ref["foreground_iou"], 4),
           "per_part": {k: round(v, 3) for k, v in res["part_iou_per_part"].items()},
           "final_losses": {k: round(v, 4) for k, v in result["last"].items()},
           "heldout_scores": scores}
    return row


def _worker(args):
    job, results = args
    try:
        row = run_one(job)
    except Exception as exc:  # a failed run is recorded, the sweep goes on
        row = {"recipe": job["recipe"], "plan": job["plan"], "seed": job["seed"], "error": f"{type(exc).__name__}: {exc}"}
    with open(results, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps({k: row.get(k) for k in ("recipe", "plan", "seed", "steps", "part_iou", "foreground_iou",
                                              "landmark_error_pct", "error")}), flush=True)
    return row


def load_rows(out: Path, name: str = "results.jsonl") -> list[dict]:
    path = out / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def cmd_run(a) -> None:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {(r["recipe"], r["plan"], r["seed"]) for r in load_rows(out) if "error" not in r}
    jobs = []
    for seed in a.seeds:            # seeds outermost: a cut-short sweep still covers every recipe and plan
        for plan in a.plans:
            for recipe in a.recipes:
                if recipe not in RECIPES:
                    raise SystemExit(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
                if (recipe, plan, seed) in done:
                    continue
                jobs.append({"recipe": recipe, "plan": plan, "seed": seed, "steps": a.steps, "priors": a.priors,
                             "scale": a.scale, "frame": a.frame, "pan": a.pan,
                             "run_dir": str(out / "runs" / recipe / f"{plan}_s{seed}")})
    (out / "sweep.json").write_text(json.dumps({"video": {**VIDEO, "scale": a.scale, "size": a.frame or VIDEO["size"],
                                                          "pan": a.pan or [0.0, 0.0]},
                                                "recipes": {r: RECIPES[r] for r in a.recipes},
                                                "steps": a.steps}, indent=2) + "\n")
    print(f"{len(jobs)} runs to do ({len(done)} done)", flush=True)
    ctx = mp.get_context("spawn")
    with ctx.Pool(a.jobs, maxtasksperchild=1) as pool:
        list(pool.imap_unordered(_worker, [(j, str(out / "results.jsonl")) for j in jobs]))


def table(rows: list[dict]) -> str:
    lines = ["| recipe | plan | seed | steps | part IoU | foreground IoU | landmark error % |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (r["recipe"], r["plan"], r["seed"])):
        if "error" in r:
            lines.append(f"| {r['recipe']} | {r['plan']} | {r['seed']} | failed: {r['error']} | | | |")
            continue
        lines.append(f"| {r['recipe']} | {r['plan']} | {r['seed']} | {r['steps']} | {r['part_iou']:.3f} | "
                     f"{r['foreground_iou']:.3f} | {r['landmark_error_pct']:.2f} |")
    lines += ["", "| recipe | runs | part IoU median / worst | foreground IoU median / worst | landmark error % median / worst |",
              "| --- | --- | --- | --- | --- |"]
    for recipe in sorted({r["recipe"] for r in rows}):
        ok = [r for r in rows if r["recipe"] == recipe and "error" not in r]
        if not ok:
            continue
        p, f, l = ([r[k] for r in ok] for k in ("part_iou", "foreground_iou", "landmark_error_pct"))
        lines.append(f"| {recipe} | {len(ok)} | {statistics.median(p):.3f} / {min(p):.3f} | "
                     f"{statistics.median(f):.3f} / {min(f):.3f} | {statistics.median(l):.2f} / {max(l):.2f} |")
    return "\n".join(lines)


def score_correlation(rows: list[dict]) -> str:
    """How well the label-free held-out reconstruction loss at each recorded step predicts the
    final part IoU: Spearman's rank correlation over the runs of each body plan (a negative
    value: lower loss, better parts), and how often the run with the lower loss of each pair
    of runs on the same video (plan, seed) has the higher part IoU."""
    from itertools import combinations

    from scipy.stats import spearmanr

    ok = [r for r in rows if "error" not in r and r.get("heldout_scores")]
    steps = sorted({s for r in ok for s in r["heldout_scores"]}, key=lambda s: (s == "final", int(s) if s.isdigit() else 0))
    lines = ["| step | " + " | ".join(f"Spearman ({p})" for p in sorted({r['plan'] for r in ok})) +
             " | pairs on one video ordered right |", "| --- |" + " --- |" * (len({r['plan'] for r in ok}) + 1)]
    for st in steps:
        cells = []
        for plan in sorted({r["plan"] for r in ok}):
            rs = [r for r in ok if r["plan"] == plan and st in r["heldout_scores"]]
            if len(rs) < 3:
                cells.append("–")
                continue
            rho = spearmanr([r["heldout_scores"][st]["rec_target"] for r in rs], [r["part_iou"] for r in rs])[0]
            cells.append(f"{rho:+.2f} (n={len(rs)})")
        right = total = 0
        by_video: dict = {}
        for r in ok:
            if st in r["heldout_scores"]:
                by_video.setdefault((r["plan"], r["seed"]), []).append(r)
        for rs in by_video.values():
            for a, b in combinations(rs, 2):
                if a["part_iou"] == b["part_iou"]:
                    continue
                total += 1
                lower = a if a["heldout_scores"][st]["rec_target"] < b["heldout_scores"][st]["rec_target"] else b
                right += lower["part_iou"] == max(a["part_iou"], b["part_iou"])
        lines.append(f"| {st} | " + " | ".join(cells) + f" | {right}/{total} |")
    return "\n".join(lines)


def training_frames(plan: str, seed: int):
    """The letterboxed 128×128 training frames of run ``(plan, seed)`` (as :func:`run_one`)."""
    from parttrack.engine.synthetic import render_video
    from parttrack.engine.train import prepare_frames

    video = render_video(VIDEO["train_frames"], motion_seed=0, size=VIDEO["size"], figure_seed=100 + seed,
                         plan=plan, light=VIDEO["light"], crf=VIDEO["crf"])
    return prepare_frames(video.frames, 128)


def bundle_residuals(outs: list[Path]) -> list[dict]:
    """The label-free motion residual (``engine.flow.motion_residual``) of every finished run's
    bundle, as a user runs it (ONNX Runtime, scenery parts folded), on its own training frames
    (the pairs of ``engine.flow.residual_pairs``). Cached in ``OUT/residuals.jsonl``."""
    import numpy as np

    from parttrack.engine.flow import PairFlow, motion_residual, residual_pairs, to_gray
    from parttrack.engine.runtime import create_runtime

    rows, videos = [], {}
    for out in outs:
        cache_path = out / "residuals.jsonl"
        cache = {(r["recipe"], r["plan"], r["seed"]): r for r in load_rows(out, "residuals.jsonl")}
        for r in load_rows(out):
            key = (r["recipe"], r["plan"], r["seed"])
            bundle = out / "runs" / r["recipe"] / f"{r['plan']}_s{r['seed']}" / "bundle"
            if "error" in r or not bundle.is_dir():
                continue
            if key not in cache:
                rt = create_runtime(bundle, backend="onnxruntime", threads=1)
                video = (r["plan"], r["seed"], tuple(rt.meta.mask_size))
                if video not in videos:
                    frames = training_frames(r["plan"], r["seed"])
                    src, tgt = residual_pairs(len(frames))
                    gray = to_gray(frames)
                    videos[video] = (frames[src], *PairFlow(video[2], "fast")(gray[src], gray[tgt]))
                sources, flow, weight = videos[video]
                masks = np.concatenate([rt.infer(sources[i:i + 16]).masks for i in range(0, len(sources), 16)])
                cache[key] = {"recipe": r["recipe"], "plan": r["plan"], "seed": r["seed"],
                              "motion_residual": round(motion_residual(masks, flow, weight), 5)}
                with open(cache_path, "a") as fh:
                    fh.write(json.dumps(cache[key]) + "\n")
            rows.append({**r, "sweep": out.name, "motion_residual": cache[key]["motion_residual"]})
    return rows


def residual_ordering(rows: list[dict]) -> str:
    """How often, of two runs on the same video (plan, seed), the one with the lower motion
    residual has the higher part IoU; Spearman's rank correlation within each video."""
    from itertools import combinations

    from scipy.stats import spearmanr

    by_video: dict = {}
    for r in rows:
        by_video.setdefault((r["plan"], r["seed"]), []).append(r)
    lines = ["| plan | seed | runs | Spearman (residual, part IoU) | pairs ordered right | of them \u0394 ≥ 0.05 |",
             "| --- | --- | --- | --- | --- | --- |"]
    tot = [0, 0, 0, 0]
    for (plan, seed), rs in sorted(by_video.items()):
        right = total = big_right = big = 0
        for a, b in combinations(rs, 2):
            if a["part_iou"] == b["part_iou"]:
                continue
            ok = (a["motion_residual"] < b["motion_residual"]) == (a["part_iou"] > b["part_iou"])
            right, total = right + ok, total + 1
            if abs(a["part_iou"] - b["part_iou"]) >= 0.05:
                big_right, big = big_right + ok, big + 1
        rho = spearmanr([r["motion_residual"] for r in rs], [r["part_iou"] for r in rs])[0] if len(rs) > 2 else float("nan")
        tot = [tot[0] + right, tot[1] + total, tot[2] + big_right, tot[3] + big]
        lines.append(f"| {plan} | {seed} | {len(rs)} | {rho:+.2f} | {right}/{total} | {big_right}/{big} |")
    lines.append(f"| all | | {len(rows)} | | {tot[0]}/{tot[1]} | {tot[2]}/{tot[3]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and score every (recipe, plan, seed)")
    r.add_argument("--out", required=True)
    r.add_argument("--recipes", nargs="+", default=["default"])
    r.add_argument("--plans", nargs="+", default=["humanoid", "quadruped", "robot_arm"])
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    r.add_argument("--steps", type=int, default=2000)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--scale", type=float, default=1.0,
                   help="figure size relative to the generator's default (which spans ~82 %% of the frame; "
                        "0.5 = a small figure, 1.3 = one that leaves the frame at times); one per sweep folder")
    r.add_argument("--pan", type=lambda t: [float(v) for v in t.split(",")], default=None, metavar="VX,VY",
                   help="camera pan of the videos, frame pixels per second (default: a static camera); "
                        "one per sweep folder")
    r.add_argument("--frame", type=lambda t: [int(v) for v in t.lower().split("x")], default=None, metavar="WxH",
                   help="frame size of the videos (default 256x256; e.g. 384x216 for 16:9, letterboxed for "
                        "training); one per sweep folder")
    r.add_argument("--priors", help="folder of prior bundles, one per body plan (DIR/<plan>), for recipes "
                                    "whose init maps each body plan to a prior (warm starts)")
    t = sub.add_parser("table", help="print the results table (markdown)")
    t.add_argument("--out", required=True)
    c = sub.add_parser("scores", help="does the label-free held-out score predict the part IoU? (markdown)")
    c.add_argument("--out", required=True)
    m = sub.add_parser("residuals", help="does the label-free motion residual of the bundles rank runs on the "
                                         "same video by part IoU? (markdown)")
    m.add_argument("--out", nargs="+", required=True, help="one or more sweep folders (runs on the same videos "
                                                          "are compared across them)")
    a = ap.parse_args()
    if a.cmd == "run":
        cmd_run(a)
    elif a.cmd == "residuals":
        print(residual_ordering(bundle_residuals([Path(o) for o in a.out])))
    elif a.cmd == "scores":
        print(score_correlation(load_rows(Path(a.out))))
    else:
        print(table(load_rows(Path(a.out))))


if __name__ == "__main__":
    main()
