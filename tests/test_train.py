"""Training on a tiny generated video: the loss goes down, checkpoints resume, the CLI works."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.bundle import load_bundle
from engine.errors import InputError, OutputError
from engine.model import NetConfig
from engine.synthetic import render_video
from engine.train import Trainer, TrainConfig, prepare_frames, train_bundle
from tracker.cli import main

TINY = NetConfig(num_parts=3, input_size=32, widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8,
                 head_hidden=8)


@pytest.fixture(scope="module")
def frames():
    return render_video(24, 32, figure_seed=1, motion_seed=1).frames


def _cfg(**kw):
    base = dict(steps=20, batch=4, lr=3e-3, snapshot_every=1000, checkpoint_every=1000, background_warmup=5)
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


def test_cli_train_end_to_end(tmp_path, frames):
    from engine.synthetic import write_video

    video = write_video(tmp_path / "v.mp4", np.ascontiguousarray(frames), 25.0)
    rc = main(["train", str(video), "-o", str(tmp_path / "m"), "--parts", "2", "--size", "32", "--steps", "2",
               "--batch", "2", "--no-progress"])
    assert rc == 0
    meta = load_bundle(tmp_path / "m").meta
    assert meta.num_parts == 2 and meta.training_videos[0]["name"] == "v.mp4"
    assert main(["train", str(video), "-o", str(tmp_path / "m"), "--parts", "2", "--size", "32", "--steps", "4",
                 "--batch", "2", "--no-progress", "--resume"]) == 0
    assert load_bundle(tmp_path / "m").meta.extra["training_steps"] == 4
