"""Training on a tiny generated video: the loss goes down, checkpoints resume, the CLI works."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from parttrack.engine.bundle import load_bundle
from parttrack.engine.errors import InputError, OutputError
from parttrack.engine.model import NetConfig
from parttrack.engine.synthetic import render_video
from parttrack.engine.train import LossWeights, TrainConfig, Trainer, prepare_frames, train_bundle, training_dtype
from parttrack.tracker.cli import main

TINY = NetConfig(num_parts=3, input_size=32, widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8,
                 head_hidden=8)


@pytest.fixture(scope="module")
def frames():
    return render_video(24, 32, figure_seed=1, motion_seed=1).frames


def _cfg(**kw):
    base = dict(steps=20, batch=4, lr=3e-3, lr_warmup=2, snapshot_every=1000, checkpoint_every=1000,
                background_warmup=5)
    base.update(kw)
    return TrainConfig(**base)


def test_training_lowers_the_loss(frames, tmp_path):
    torch.manual_seed(0)
    tr = Trainer(frames, TINY, _cfg(), tmp_path / "run")
    src, tgt = tr.sample_pairs()                       # a fixed batch to compare on
    with torch.no_grad():
        before = tr.losses(src, tgt)[0].item()
    tr.run(progress=False)
    with torch.no_grad():
        after = tr.losses(src, tgt)[0].item()
    assert after < before
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert list((tmp_path / "run" / "snapshots").glob("step_*.png"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["network"]["num_parts"] == 3 and cfg["training"]["weights"]["perceptual"] == 10.0
    assert cfg["training"]["estimate_background"] is False


def test_bf16_precision_trains_in_bfloat16_and_keeps_float32_weights(frames, tmp_path):
    torch.manual_seed(0)
    tr = Trainer(frames, TINY, _cfg(precision="bf16", steps=10), tmp_path / "bf16")
    assert tr.compute_dtype == torch.bfloat16
    src, tgt = tr.sample_pairs()
    with torch.no_grad():
        before = tr.losses(src, tgt)[0].item()
        enc = tr.net.encode(src, compute_dtype=torch.bfloat16)
        ref = tr.net.encode(src)
    # the products ran in bfloat16 (≈ 3 significant digits), the outputs are float32
    assert all(enc[k].dtype == torch.float32 for k in ("depth", "parts", "masks", "transforms", "features"))
    assert not torch.equal(enc["depth"], ref["depth"])
    torch.testing.assert_close(enc["masks"], ref["masks"], atol=0.02, rtol=0)
    tr.run(progress=False)
    with torch.no_grad():
        after = tr.losses(src, tgt)[0].item()
    assert np.isfinite(after) and after < before
    assert all(p.dtype == torch.float32 for p in tr.net.parameters())


def test_training_dtype():
    cpu = torch.device("cpu")
    assert training_dtype("fp32", cpu) is None and training_dtype("bf16", cpu) is torch.bfloat16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert training_dtype("auto", cpu) is (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="precision"):
        training_dtype("fp16", cpu)


def test_static_background_is_the_median_or_the_estimate(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(), tmp_path / "median")
    np.testing.assert_allclose(tr.background_full[0], np.median(frames, axis=0), atol=0.5)
    assert not (tmp_path / "median" / "background.json").exists()
    tr = Trainer(frames, TINY, _cfg(estimate_background=True), tmp_path / "estimate")
    (info,) = json.loads((tmp_path / "estimate" / "background.json").read_text())   # one shot
    assert info["iterations"] >= 1 and 0.0 <= info["inpainted_share"] <= 0.4
    assert tr.background.shape[0] == 1


def test_learning_rate_ramps_up_over_the_warmup(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(lr=1e-3, lr_warmup=4), tmp_path / "run")
    seen = []
    for _ in range(6):
        tr.train_step()
        seen.append(tr.opt.param_groups[0]["lr"])
    assert seen == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_learning_rate_follows_a_cosine_to_lr_final_over_the_step_budget(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(steps=10, lr=1e-3, lr_warmup=0, lr_final=0.1), tmp_path / "run")
    seen = []
    for _ in range(10):
        tr.train_step()
        seen.append(tr.opt.param_groups[0]["lr"])
    expected = [1e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * k / 10))) for k in range(10)]
    assert seen == pytest.approx(expected)
    tr.step = 10
    assert tr.learning_rate() == pytest.approx(1e-4)     # the end of the budget


def test_learning_rate_decay_follows_the_time_budget(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(steps=None, minutes=1.0, lr=1e-3, lr_warmup=0, lr_final=0.0), tmp_path / "run")
    tr.step, tr.elapsed_s = 3, 30.0                     # half of the minute used
    assert tr.budget_fraction() == pytest.approx(0.5)
    assert tr.learning_rate() == pytest.approx(5e-4)


@pytest.mark.parametrize("scale", [2, 4])
def test_reconstruction_at_a_finer_scale_than_the_masks(frames, tmp_path, scale):
    tr = Trainer(frames, TINY, _cfg(recon_scale=scale), tmp_path / "run")
    src, tgt = tr.sample_pairs()
    total, terms, info = tr.losses(src, tgt)
    side = TINY.mask_size[0] * scale
    assert info["rec_t"].shape == (4, 3, side, side) and info["tgt"].shape == (4, 3, side, side)
    assert info["masks_st"].shape == (4, TINY.num_parts + 1, side, side)
    assert torch.allclose(info["masks_st"].sum(1), torch.ones(()), atol=1e-5)
    assert tuple(tr.background.shape) == (1, 3, side, side)          # one shot: one image
    total.backward()                                    # gradients reach the network
    assert tr.net.latent_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="recon_scale"):
        Trainer(frames, TINY, _cfg(recon_scale=3), tmp_path / "bad")


def test_background_slot_is_held_without_gradient_during_the_warmup(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(background_slot_warmup=True, background_warmup=3), tmp_path / "run")
    cv = TINY.latent_channels                             # latent-head rows of slot 0 come first

    def slot0_grad():
        tr.net.zero_grad(set_to_none=False)
        tr.losses(*tr.sample_pairs())[0].backward()
        return tr.net.latent_head.weight.grad[:cv].abs().sum().item(), tr.net.latent_head.weight.grad[cv:].abs().sum().item()

    held, parts = slot0_grad()
    assert held == 0.0 and parts > 0                      # Adam would turn any gradient into a full step
    tr.step = 6                                           # warm-up (3) and ramp (3) over
    free, _ = slot0_grad()
    assert free > 0


def test_change_prior_floor_keeps_the_prior_after_the_warmup(frames, tmp_path):
    """The change prior fades out with the background warm-up unless ``change_prior_floor``
    keeps part of it: after the ramp (step 10 > 2 × background_warmup) its term is 0 or
    absent with floor 0, and at full weight with floor 1."""
    def term(floor, step):
        torch.manual_seed(0)
        tr = Trainer(frames, TINY, _cfg(background_warmup=5, change_prior_floor=floor), tmp_path / f"r{floor}{step}")
        tr.step = step
        with torch.no_grad():
            return tr.losses(*tr.sample_pairs())[1].get("change_prior", 0.0)

    assert term(0.0, 10) == 0.0 and term(1.0, 10) > 0
    assert term(1.0, 0) == pytest.approx(term(0.0, 0))      # during the warm-up both are at full weight


def test_usage_on_moving_counts_each_parts_share_of_the_moving_pixels(frames, tmp_path):
    """With ``usage_on_moving`` (static camera) the trainer builds the moving-pixel map and the
    usage term measures the parts' shares over it: where nothing moves, every part owns none of
    the motion and the term is at its maximum ``K / (K + 1)`` × weight; the change prior keeps the
    changed pixels (the same value as without the option)."""
    def terms(tr, moving=None):
        torch.manual_seed(0)
        tr.rng = np.random.default_rng(0)
        if moving is not None:
            tr.moving = moving
        with torch.no_grad():
            return tr.losses(*tr.sample_pairs())[1]

    plain = Trainer(frames, TINY, _cfg(), tmp_path / "plain")
    assert plain.moving is None
    tr = Trainer(frames, TINY, _cfg(usage_on_moving=True), tmp_path / "moving")
    assert tr.moving is not None and tr.moving.shape == (len(frames), *TINY.mask_size)
    k = TINY.num_parts
    still = terms(tr, torch.zeros_like(tr.moving))
    assert still["usage"] == pytest.approx(k / (k + 1), rel=1e-4)
    assert still["change_prior"] == pytest.approx(terms(plain)["change_prior"], rel=1e-5)


def test_content_masks_mark_the_source_frame_inside_the_letterbox():
    from parttrack.engine.train import content_masks

    m = content_masks(((0, 8, 32, 16),), 3, 32)
    assert m.shape == (1, 1, 32, 32) and m.sum() == 32 * 16
    assert m[0, 0, 8:24].all() and not m[0, 0, :8].any() and not m[0, 0, 24:].any()
    assert content_masks(((0, 0, 32, 32),), 1, 32) is None and content_masks((), 2, 32) is None
    two = content_masks(((0, 8, 32, 16), (4, 0, 24, 32)), 2, 32)
    assert two.shape == (2, 1, 32, 32) and two[1, 0, :, :4].sum() == 0 and two[1, 0, :, 4:28].all()
    for boxes, shots in ((((0, 8, 32, 16),) * 2, 3), (((0, 8, 32, 30),), 1), (((0, 8, 0, 16),), 1)):
        with pytest.raises(ValueError):
            content_masks(boxes, shots, 32)


def test_letterbox_padding_is_left_out_of_the_maps_and_the_reconstruction(tmp_path, monkeypatch):
    """``content_boxes``: on a letterboxed 2:1 video the changed-pixel map (change prior,
    part usage), the moving-pixel map and both reconstruction losses see nothing of the padding,
    whose stripes change wherever the figure crosses the frame's edge; inside the frame they
    are what they are without the option."""
    from parttrack.engine import losses as L
    from parttrack.engine.preprocess import Letterbox

    video = render_video(24, (64, 32), figure_seed=1, motion_seed=1)
    frames = prepare_frames(video.frames, 32)
    box = Letterbox.fit(32, 64, 32).inner_box
    assert box == (0, 8, 32, 16)
    # stripes below the frame that move sideways, as where a limb crosses the frame's edge
    texture = np.random.default_rng(0).integers(20, 235, 32 + len(frames))
    frames[:, 24:] = np.stack([texture[t:t + 32] for t in range(len(frames))])[:, None, :, None].astype(np.uint8)
    seen: dict[str, list] = {"rec": [], "prior": []}
    rec, prior = L.reconstruction_loss, L.background_subtraction_loss
    monkeypatch.setattr(L, "reconstruction_loss", lambda a, b, *r: seen["rec"].append((a, b)) or rec(a, b, *r))
    monkeypatch.setattr(L, "background_subtraction_loss",
                        lambda d, m, **kw: seen["prior"].append(m) or prior(d, m, **kw))

    def run(**kw):
        for v in seen.values():
            v.clear()
        tr = Trainer(frames, TINY, _cfg(**kw), tmp_path / str(len(list(tmp_path.iterdir()))))
        tr.rng = np.random.default_rng(0)
        torch.manual_seed(0)
        with torch.no_grad():
            tr.losses(*tr.sample_pairs())
        return tr, [t for pair in seen["rec"] for t in pair], seen["prior"][0].clone()

    plain, plain_rec, plain_prior = run()
    tr, recs, changed = run(content_boxes=(box,))
    rows = TINY.mask_size[0] // 4           # the mask rows of the 8 padding rows above and below
    assert plain_prior[:, -rows:].sum() > 0                     # the stripes do change
    assert changed[:, :rows].sum() == 0 and changed[:, -rows:].sum() == 0
    torch.testing.assert_close(changed[:, rows:-rows], plain_prior[:, rows:-rows])
    for t in recs:
        pad = t.shape[-2] // 4
        assert t[..., :pad, :].abs().sum() == 0 and t[..., -pad:, :].abs().sum() == 0
    torch.testing.assert_close(recs[1][..., pad:-pad, :], plain_rec[1][..., pad:-pad, :])    # the frames

    moving, _, _ = run(static_background=False, content_boxes=(box,))
    free, _, _ = run(static_background=False)
    assert free.moving[:, -rows:].sum() > 0
    assert moving.moving[:, :rows].sum() == 0 and moving.moving[:, -rows:].sum() == 0
    torch.testing.assert_close(moving.moving[:, rows:-rows], free.moving[:, rows:-rows])


def test_mask_consistency_term_vanishes_for_a_pair_of_one_frame(frames, tmp_path):
    """``mask_consistency``: a pair made of one frame twice has identical transforms, so the
    moved source masks are the target masks and the term is 0; a pair of different frames
    (the subject moved) gives a positive term; off by default."""
    tr = Trainer(frames, TINY, _cfg(weights=LossWeights(mask_consistency=2.0)), tmp_path / "r")
    src, tgt = tr.sample_pairs()
    with torch.no_grad():
        same = tr.losses(src, src)[1]["mask_consistency"]
        moved = tr.losses(src, tgt)[1]["mask_consistency"]
        plain = Trainer(frames, TINY, _cfg(), tmp_path / "p").losses(src, tgt)[1]
    assert same < 1e-5 < moved
    assert "mask_consistency" not in plain


def test_mask_equivariance_term(frames, tmp_path):
    """``mask_equivariance`` works without the transforms' equivariance term, is left out of the
    held-out score (it draws random warps) and is off by default."""
    tr = Trainer(frames, TINY, _cfg(weights=LossWeights(equivariance=0.0, mask_equivariance=1.0)), tmp_path / "r")
    src, tgt = tr.sample_pairs()
    with torch.no_grad():
        terms = tr.losses(src, tgt)[1]
        held = tr.losses(src, tgt, heldout=True)[1]
        plain = Trainer(frames, TINY, _cfg(), tmp_path / "p").losses(src, tgt)[1]
    assert 0.0 < terms["mask_equivariance"] < 1.0 and "equivariance" not in terms
    assert "mask_equivariance" not in held
    assert "mask_equivariance" not in plain and "equivariance" in plain


def test_changed_map_at_the_input_pixels_follows_the_subject_better(tmp_path):
    """``changed_at_input``: testing each input pixel and keeping mask pixels that are more than
    half changed gives a map closer to the subject than testing the area-averaged 32×32 images,
    where a limb over a corner of a mask pixel already exceeds the threshold (generated
    quadruped; its labels only score the maps)."""
    import torch.nn.functional as F

    video = render_video(120, size=128, figure_seed=101, plan="quadruped", light=0.15, crf=23)
    idx = np.arange(0, 120, 2)
    x = torch.from_numpy(video.frames[idx]).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    small = F.interpolate(x, size=NetConfig().mask_size, mode="area")
    subject = F.interpolate(torch.from_numpy(video.labels[idx] > 0)[:, None].float(), size=NetConfig().mask_size,
                            mode="area")[:, 0] > 0.5

    def iou(flag):
        tr = Trainer(video.frames, NetConfig(), TrainConfig(changed_at_input=flag, weights=LossWeights(cluster=0.0)),
                     tmp_path / f"r{flag}")
        m = tr.changed_map(x, small, tr.background_images(small, idx), (idx[:30], idx[30:])) > 0.5
        return float((m & subject).sum() / (m | subject).sum())

    assert iou(True) > iou(False) + 0.02


def test_soft_changed_map_places_the_outline_between_mask_pixels(tmp_path):
    """``changed_soft``: the share of changed input pixels per mask pixel, upsampled bilinearly to
    the frame (as inference upsamples the masks) and cut at ½, follows the subject's outline
    better than the binary 32×32 map does (generated humanoid; its labels only score the maps)."""
    import torch.nn.functional as F

    video = render_video(120, size=128, figure_seed=101, plan="humanoid", light=0.15, crf=23)
    idx = np.arange(0, 120, 2)
    x = torch.from_numpy(video.frames[idx]).permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
    small = F.interpolate(x, size=NetConfig().mask_size, mode="area")
    subject = video.labels[idx] > 0

    def maps(flag):
        tr = Trainer(video.frames, NetConfig(), TrainConfig(changed_soft=flag, weights=LossWeights(cluster=0.0)),
                     tmp_path / f"r{flag}")
        return tr.changed_map(x, small, tr.background_images(small, idx), (idx[:30], idx[30:]))

    def iou(m):
        up = F.interpolate(m[:, None], size=subject.shape[1:], mode="bilinear", align_corners=False)[:, 0] > 0.5
        return float((up.numpy() & subject).sum() / (up.numpy() | subject).sum())

    soft, binary = maps(True), maps(False)
    assert ((soft > 0) & (soft < 1)).any() and set(binary.unique().tolist()) <= {0.0, 1.0}
    assert iou(soft) > iou(binary) + 0.03
    with pytest.raises(ValueError, match="fill_changed"):
        Trainer(video.frames, NetConfig(), TrainConfig(changed_soft=True, fill_changed=True), tmp_path / "bad")


def test_zero_weight_switches_a_loss_off(frames, tmp_path):
    w = {"equivariance": 0.0, "covariance": 0.0}
    tr = Trainer(frames, TINY, TrainConfig.from_dict({"steps": 1, "batch": 2, "weights": w}), tmp_path / "r")
    terms = tr.train_step()
    assert "equivariance" not in terms and "covariance" not in terms and "rec_target" in terms


def test_checkpoint_resume_continues(frames, tmp_path):
    run = tmp_path / "run"
    a = Trainer(frames, TINY, _cfg(steps=4), run)
    a.run(progress=False)
    b = Trainer(frames, TINY, _cfg(steps=6), run)
    assert b.load_checkpoint()
    assert b.step == 4
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)
    # the resumed run takes the same next step as the original would have
    a2 = Trainer(frames, TINY, _cfg(steps=6), tmp_path / "other")
    a2.load_checkpoint(run / "checkpoint.pt")
    b.run(progress=False)
    a2.run(progress=False)
    assert b.step == 6
    # same pairs and warps as another trainer continuing the same checkpoint
    for pa, pb, p0 in zip(a2.net.parameters(), b.net.parameters(), a.net.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)
    assert any(not torch.equal(pb, p0) for pb, p0 in zip(b.net.parameters(), a.net.parameters()))


def test_train_bundle_and_refusals(frames, tmp_path):
    out = train_bundle(frames, tmp_path / "bundle", TINY, _cfg(steps=3), tmp_path / "run", progress=False,
                       training_videos=({"name": "x.mp4", "sha256": "0" * 64, "frames": len(frames)},))
    meta = load_bundle(out).meta
    assert meta.num_parts == 3 and meta.extra["training_steps"] == 3
    assert "Quality" in (out / "NOTES.md").read_text()
    with pytest.raises(OutputError):                  # a checkpoint exists and --resume not given
        train_bundle(frames, tmp_path / "bundle", TINY, _cfg(steps=3), tmp_path / "run", progress=False)
    with pytest.raises(InputError):
        prepare_frames(frames[:3], 32)


def test_cli_train_errors(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert main(["train", str(bad), "-o", str(tmp_path / "m")]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "m")]) == 2


def test_cli_train_end_to_end(tmp_path, frames, capsys):
    from parttrack.engine.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", np.ascontiguousarray(frames), 25.0)
    rc = main(["train", str(video), "-o", str(tmp_path / "m"), "--parts", "2", "--size", "32", "--steps", "2",
               "--batch", "2", "--no-progress"])
    assert rc == 0
    meta = load_bundle(tmp_path / "m").meta
    assert meta.num_parts == 2 and meta.training_videos[0]["name"] == "v.mp4"
    residual = meta.extra["motion_residual"]                    # label-free quality, also in NOTES.md
    assert residual >= 0.0                                      # the figure moves: never NaN/None here
    assert "Motion residual" in (tmp_path / "m" / "NOTES.md").read_text()
    out = capsys.readouterr()
    assert f"motion residual {residual:.4f}" in out.out
    auto = training_dtype("auto", torch.device("cpu"))
    assert ("bfloat16 products" if auto else "float32") in out.err        # the precision in use is printed
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["precision"] == "auto"
    assert main(["train", str(video), "-o", str(tmp_path / "m"), "--parts", "2", "--size", "32", "--steps", "4",
                 "--batch", "2", "--no-progress", "--resume", "--precision", "fp32"]) == 0
    assert load_bundle(tmp_path / "m").meta.extra["training_steps"] == 4
    assert "float32" in capsys.readouterr().err


def test_restarts_keep_the_start_with_the_best_heldout_reconstruction(frames, tmp_path):
    run = tmp_path / "run"
    tr = Trainer(frames, TINY, _cfg(steps=10, restarts=3, restart_steps=3), run)
    tr.run(progress=False)
    choice = json.loads((run / "restarts" / "choice.json").read_text())
    assert [c["seed"] for c in choice["candidates"]] == [0, 1000, 2000]
    scores = [c["rec_target"] for c in choice["candidates"]]
    assert choice["kept"] == int(np.argmin(scores))
    # the discarded starts count against the step budget: 10 − 2 × 3 steps on the kept line
    assert tr.step == 4
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 4 and log[3].startswith("3,")
    # the kept line continues from the kept candidate: its first 3 logged steps are that candidate's
    kept = (run / "restarts" / f"r{choice['kept']}_log.csv").read_text().splitlines()
    assert log[:4] == kept
    # a resumed run does not restart again
    b = Trainer(frames, TINY, _cfg(steps=12, restarts=3, restart_steps=3), run)
    assert b.load_checkpoint() and b.step == 4
    b.run(progress=False)
    assert b.step == 6


def test_restarts_make_only_as_many_starts_as_the_budget_holds(frames, tmp_path):
    """A step budget of 7 holds two starts of 3 steps and the kept line (3 + 1 more), not a
    third start; the bundle records the choice; a resumed run keeps the count of starts."""
    from parttrack.engine.train import another_start_fits, write_trained_bundle

    run = tmp_path / "run"
    tr = Trainer(frames, TINY, _cfg(steps=7, restarts=3, restart_steps=3), run)
    tr.run(progress=False)
    choice = json.loads((run / "restarts" / "choice.json").read_text())
    assert [c["seed"] for c in choice["candidates"]] == [0, 1000]
    assert tr.step == 7 - 3 and tr.restarts_made() == 2
    bundle = write_trained_bundle(tr, tmp_path / "bundle")                # the choice is in the bundle
    assert load_bundle(bundle).meta.extra["restarts"]["kept"] == choice["kept"]
    assert "Restarts: 2 starts (rec_target" in (bundle / "NOTES.md").read_text()
    resumed = Trainer(frames, TINY, _cfg(steps=9, restarts=3, restart_steps=3), run)
    assert resumed.load_checkpoint()
    resumed.run(progress=False)
    assert resumed.step == 9 - 3                                    # the same two starts, not three
    # by time: one more start of the pace so far must fit what is left of the budget
    assert another_start_fits(1, 300, 10 ** 9, time_left_s=100.0, phase_s=90.0)
    assert not another_start_fits(2, 300, 10 ** 9, time_left_s=100.0, phase_s=240.0)
    assert not another_start_fits(2, 300, 899, time_left_s=math.inf, phase_s=1.0)
    assert another_start_fits(2, 300, 900, time_left_s=math.inf, phase_s=1.0)


def test_restarts_by_motion_residual_keep_the_start_with_the_lowest(frames, tmp_path):
    run = tmp_path / "run"
    tr = Trainer(frames, TINY, _cfg(steps=8, restarts=2, restart_steps=3, restart_criterion="motion_residual"), run)
    tr.run(progress=False)
    choice = json.loads((run / "restarts" / "choice.json").read_text())
    assert choice["criterion"] == "motion_residual"
    scores = [c["motion_residual"] for c in choice["candidates"]]
    assert all(np.isfinite(scores)) and choice["kept"] == int(np.argmin(scores))
    with pytest.raises(ValueError, match="restart_criterion"):
        Trainer(frames, TINY, _cfg(restart_criterion="luck"), tmp_path / "bad")


def test_motion_residual_is_deterministic_and_leaves_the_training_state(frames, tmp_path):
    tr = Trainer(frames, TINY, _cfg(steps=3), tmp_path / "run")
    tr.run(progress=False)
    state = torch.get_rng_state().clone()
    a, b = tr.motion_residual(), tr.motion_residual()
    assert a == b and 0.0 <= a < 5.0
    assert torch.equal(state, torch.get_rng_state()) and tr.step == 3
    assert tr.heldout_score()["motion_residual"] == a


def test_scenery_parts_are_recorded_as_dropped(frames, tmp_path):
    from parttrack.engine.train import predict_masks, scenery_parts

    tr = Trainer(frames, TINY, _cfg(steps=2), tmp_path / "run")
    masks = predict_masks(tr.net, prepare_frames(frames, 32))
    assert masks.shape == (24, 4, 8, 8) and masks.dtype == np.float16
    masks = np.zeros_like(masks)
    masks[:, 0] = 1.0
    masks[:, 1, 2:5, 2:5], masks[:, 0, 2:5, 2:5] = 1.0, 0.0            # part 1: a frozen patch (scenery)
    for t in range(24):                                                 # part 2: a blob moving over the frame
        x = t % 6
        masks[t, 2, 5:7, x:x + 2], masks[t, 0, 5:7, x:x + 2] = 1.0, 0.0
    scores, drop = scenery_parts(masks, prepare_frames(frames, 32), static_camera=False)
    assert 1 in drop and 2 not in drop and 3 in drop                    # part 3 is never visible
    assert "static" in scores[0].reason and "never visible" in scores[2].reason


def test_warm_start_from_a_bundle_and_its_refusals(frames, tmp_path):
    first = train_bundle(frames, tmp_path / "a", TINY, _cfg(steps=2), tmp_path / "run_a", progress=False)
    tr = Trainer(frames, TINY, _cfg(steps=1), tmp_path / "run_b")
    tr.load_weights(first)
    theirs = np.load(first / "weights.npz")
    for name, value in tr.net.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs[name], atol=0)
    other = NetConfig(num_parts=4, input_size=32, widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8,
                      head_hidden=8)
    with pytest.raises(InputError, match="differs"):
        Trainer(frames, other, _cfg(steps=1), tmp_path / "run_c").load_weights(first)
    with pytest.raises(InputError):
        tr.load_weights(tmp_path / "nothing")
    larger = Trainer(prepare_frames(frames, 48), replace(TINY, input_size=48), _cfg(steps=1), tmp_path / "run_e")
    larger.load_weights(first)                                         # another input size: the same weights
    for name, value in larger.net.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs[name], atol=0)
    out = train_bundle(frames, tmp_path / "b", TINY, _cfg(steps=1), tmp_path / "run_d", progress=False, init=first)
    assert "warm start" in (out / "NOTES.md").read_text()


def test_restarts_after_a_warm_start_each_begin_from_its_weights(frames, tmp_path):
    """With ``--init`` every start of ``restarts`` begins from the bundle's weights (only the
    training seed differs), not from a random initialisation."""
    first = train_bundle(frames, tmp_path / "a", TINY, _cfg(steps=2), tmp_path / "run_a", progress=False)
    theirs = np.load(first / "weights.npz")
    tr = Trainer(frames, TINY, _cfg(steps=4, restarts=2, restart_steps=2), tmp_path / "run")
    tr.load_weights(first)
    tr.run(progress=False)                       # trains the first start away from the bundle's weights
    tr.reinitialise(1000)
    for name, value in tr.net.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs[name], atol=0)
    cold = Trainer(frames, TINY, _cfg(steps=1), tmp_path / "cold")
    cold.reinitialise(1000)
    assert any(not np.allclose(v.numpy(), theirs[n]) for n, v in cold.net.state_dict().items())


def test_cli_init_optional_falls_back_to_random_weights(tmp_path, frames, capsys):
    from parttrack.engine.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", np.ascontiguousarray(frames), 25.0)
    first = ["train", str(video), "-o", str(tmp_path / "a"), "--parts", "2", "--size", "32", "--steps", "2",
             "--batch", "2", "--no-progress"]
    assert main(first) == 0
    # same network: warm start
    assert main(["train", str(video), "-o", str(tmp_path / "b"), "--parts", "2", "--size", "32", "--steps", "1",
                 "--batch", "2", "--no-progress", "--init", str(tmp_path / "a"), "--init-optional"]) == 0
    assert "warm start" in (tmp_path / "b" / "NOTES.md").read_text()
    capsys.readouterr()
    # another K: without --init-optional an error, with it random weights and a message
    other = ["train", str(video), "-o", str(tmp_path / "c"), "--parts", "3", "--size", "32", "--steps", "1",
             "--batch", "2", "--no-progress", "--init", str(tmp_path / "a")]
    assert main(other) == 2
    assert main(other + ["--init-optional"]) == 0
    assert "another network" in capsys.readouterr().err
    assert "warm start" not in (tmp_path / "c" / "NOTES.md").read_text()


def test_the_default_start_is_the_shipped_prior_when_its_network_fits(tmp_path):
    from parttrack.tracker.cli.train import prior_bundle, starting_weights

    prior = prior_bundle()
    start, note = starting_weights("prior", NetConfig())
    assert start == prior and note is None
    from parttrack.engine.model import build_network, load_state_npz

    net = build_network(NetConfig())
    load_state_npz(net, start / "weights.npz")     # the shipped weights fit the default network
    theirs = np.load(prior / "weights.npz")
    for name, value in net.state_dict().items():
        np.testing.assert_allclose(value.numpy(), theirs[name], atol=0)
    # another network: random weights, said so; "none": random weights, nothing to say
    start, note = starting_weights("prior", TINY)
    assert start is None and "fits --parts 10 only" in note
    # another input size: the same weights (none of their shapes depends on it)
    wide = NetConfig(input_size=192)
    assert NetConfig().weights_fit(wide) and not NetConfig().weights_fit(TINY)
    assert starting_weights("prior", wide) == (prior, None)
    big = build_network(wide)
    load_state_npz(big, prior / "weights.npz")
    assert starting_weights("none", NetConfig()) == (None, None)
    assert starting_weights("NONE", TINY) == (None, None)
    # a bundle folder is taken as it is; with optional=True a misfit falls back to the prior's rule
    assert starting_weights(str(tmp_path / "b"), TINY) == (tmp_path / "b", None)
    start, note = starting_weights(str(prior), TINY, optional=True)
    assert start is None and "another network" in note and "random weights" in note
    start, note = starting_weights(str(prior), NetConfig(), optional=True)
    assert start == prior and note is None


def test_cli_says_when_the_default_prior_does_not_fit(tmp_path, frames, capsys):
    from parttrack.engine.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", np.ascontiguousarray(frames), 25.0)
    args = ["train", str(video), "--parts", "2", "--size", "32", "--steps", "1", "--batch", "2", "--no-progress"]
    capsys.readouterr()
    assert main(args + ["-o", str(tmp_path / "a")]) == 0
    assert "trained/prior) fits --parts 10 only; starting from random weights" in capsys.readouterr().err
    assert "warm start" not in (tmp_path / "a" / "NOTES.md").read_text()
    assert main(args + ["-o", str(tmp_path / "b"), "--init", "none"]) == 0
    assert "prior" not in capsys.readouterr().err


def test_learn_job_warm_starts_from_the_model_in_use(tmp_path):
    from parttrack.tracker.learn import LearnSettings, TrainingJob

    job = TrainingJob(tmp_path / "clip.mp4", tmp_path / "run", LearnSettings(), init=tmp_path / "model")
    cmd = job.command()
    assert cmd[cmd.index("--init") + 1] == str(tmp_path / "model") and "--init-optional" in cmd
    cold = TrainingJob(tmp_path / "clip.mp4", tmp_path / "run", LearnSettings(warm_start=False), init=tmp_path / "model")
    assert "--init" not in cold.command()


def test_reallocation_copies_the_part_with_the_most_unexplained_motion_into_a_wasted_one(frames, tmp_path):
    run = tmp_path / "run"
    # A merge threshold nobody reaches in practice: every pair counts as one layer, so a move happens.
    tr = Trainer(frames, TINY, _cfg(steps=4, reallocate_steps=(2,), reallocate_cost=1e9, reallocate_max=1), run)
    tr.run(progress=False)
    moves = json.loads((run / "reallocations.json").read_text())
    assert len(moves) == 1 and moves[0]["step"] == 2 and moves[0]["part"] != moves[0]["copy_of"]
    # Called directly: the copied part's transform head and depth bias are the source's.
    (move,) = tr.reallocate_parts()
    v, p = move["part"] - 1, move["copy_of"] - 1
    net, cv = tr.net, TINY.latent_channels
    assert torch.equal(net.head_w1[v], net.head_w1[p]) and torch.equal(net.slot_bias[v + 1], net.slot_bias[p + 1])
    lat_v, lat_p = net.latent_head.weight.detach()[(v + 1) * cv:(v + 2) * cv], net.latent_head.weight.detach()[(p + 1) * cv:(p + 2) * cv]
    assert not torch.equal(lat_v, lat_p) and float((lat_v - lat_p).abs().max()) < 0.5 * float(lat_p.abs().max())
    assert len(json.loads((run / "reallocations.json").read_text())) == 2
    # Nothing below the (default) threshold and no empty part: no move, no file change.
    tr2 = Trainer(frames, TINY, _cfg(steps=2, reallocate_cost=-1.0), tmp_path / "run2")
    tr2.run(progress=False)
    assert tr2.reallocate_parts() == [] and not (tmp_path / "run2" / "reallocations.json").exists()


def test_a_resumed_log_keeps_the_columns_of_its_header(frames, tmp_path):
    import csv

    run = tmp_path / "run"
    run.mkdir()
    old = ["step", "elapsed_s", "total", "rec_target", "usage"]       # a log.csv of another version
    (run / "log.csv").write_text(",".join(old) + "\n1,0.1,1.0,0.5,0.0\n")
    Trainer(frames, TINY, _cfg(steps=2), run).run(progress=False)
    rows = list(csv.reader(open(run / "log.csv")))
    assert rows[0] == old and all(len(r) == len(old) for r in rows) and len(rows) == 4
