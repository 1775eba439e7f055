"""The footage check (engine.footage): shot cuts, a moving camera and a small subject on
generated videos with known ground truth, no false alarm on a static single shot or on the
shipped clip; training pairs never straddle a cut; the check in `parttrack train` and `track`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parttrack.engine.footage import FootageChecker, FootageReport, check_footage, findings, shot_bounds
from parttrack.engine.synthetic import render_video

FPS = 25.0
CLIP = Path(__file__).resolve().parents[1] / "trained" / "bbb" / "clip.mp4"


@pytest.fixture(scope="module")
def cut_video():
    return render_video(150, size=128, figure_seed=4, motion_seed=2, cuts=(40, 95), crf=23)


@pytest.fixture(scope="module")
def pan_video():
    return render_video(100, size=128, figure_seed=2, motion_seed=1, pan=(15.0, 4.0))


@pytest.fixture(scope="module")
def tiny_video():
    return render_video(100, size=128, figure_seed=3, motion_seed=0, scale=0.3)


@pytest.mark.parametrize("kw", [dict(), dict(crf=30, light=0.4), dict(plan="quadruped", activity=2.0),
                                dict(plan="robot_arm", figure_seed=5)], ids=["plain", "crf-light", "fast", "robot"])
def test_static_single_shot_gives_no_finding(kw):
    v = render_video(120, size=128, **{"figure_seed": 1, "motion_seed": 3, **kw})
    r = check_footage(v.frames, FPS)
    assert r.cut_frames == () and not r.camera_moves and not r.subject_small
    assert findings(r) == [] and findings(r, "track") == []


def test_a_camera_that_moves_for_a_while_is_found_with_its_times():
    """The camera pans for the first 2 s (a static video shifted by a growing translation), then
    stays: not a moving camera, but the stretch is reported with its times and a finding."""
    import cv2

    v = render_video(125, size=128, figure_seed=1, motion_seed=3)
    shift = np.minimum(np.arange(125), 50) * (16.0 / FPS)      # 16 px/s for 50 frames, then still
    frames = np.stack([cv2.warpAffine(f, np.float32([[1, 0, -dx], [0, 1, 0]]), (128, 128),
                                      borderMode=cv2.BORDER_REFLECT) for f, dx in zip(v.frames, shift)])
    r = check_footage(frames, FPS)
    assert not r.camera_moves and 0 < r.camera_moving_share <= 0.5
    ((a, b),) = r.camera_moving_spans_s
    assert 0.0 <= a <= 0.5 and 1.5 <= b <= 2.5
    assert r.camera_moves_partly
    line = findings(r)[0]
    assert line.startswith(f"the camera moves at {a:.1f}–{b:.1f} s, still for the rest: using `--moving-camera`")
    assert findings(r, moving_camera=True) == [line]
    assert "but `--static-camera` was given" in findings(r, moving_camera=False)[0]
    from types import SimpleNamespace

    from parttrack.tracker.cli.train import choose_camera

    args = SimpleNamespace(moving_camera=False, static_camera=False, videos=["v.mp4"], shots=False)
    assert choose_camera(args, [r]) == (True, [line])                   # parttrack train's choice
    assert choose_camera(SimpleNamespace(**{**vars(args), "static_camera": True}), [r])[0] is False
    assert "may put parts on the scenery" in findings(r, "track")[0]
    assert "may put parts on the scenery" in findings(r, "track", moving_camera=False)[0]
    assert findings(r, "track", moving_camera=True) == []           # the model was trained for it
    assert r.to_json()["camera_moving_spans_s"] == [[a, b]]
    assert r.to_json(moving_camera=True)["findings"] == []


def test_cuts_are_found_at_their_frames(cut_video):
    r = check_footage(cut_video.frames, FPS, times_s=cut_video.times_s)
    assert cut_video.cut_frames == (40, 95)
    assert len(r.cut_frames) == 2 and np.all(np.abs(np.array(r.cut_frames) - [40, 95]) <= 1)
    np.testing.assert_allclose(r.cut_times_s, np.array(r.cut_frames) / FPS)
    assert r.shot_starts == (0,) + r.cut_frames and r.shot_ids()[-1] == 2
    assert r.longest_shot_s == pytest.approx((95 / FPS, 150 / FPS))
    (line,) = findings(r)
    assert line.startswith("2 shot cuts at 1.6 s, 3.8 s: train on one shot (`--start/--end`") and \
        "`--start 3.80 --end 6.00`" in line and "pass `--shots` to train on each" in line
    assert r.longest_shot_frames == (95, 150)
    assert "training on the longest shot only (3.80–6.00 s); pass `--shots`" in findings(r, shots=False)[0]
    assert "training on every shot (`--shots`), each with its own static background" in findings(r, shots=True)[0]
    assert "shot cuts" in findings(r, "track")[0]
    assert not r.camera_moves          # no pair straddles a cut


def test_a_camera_pan_is_found_and_measured(pan_video):
    r = check_footage(pan_video.frames, FPS)
    assert r.camera_moves and r.cut_frames == ()
    speed = np.hypot(15.0, 4.0) / 128          # frame lengths per second
    assert r.camera_speed == pytest.approx(speed, rel=0.3)
    assert findings(r) == [f"the camera moves (the scenery moves {100 * r.camera_speed:.1f} % of the frame per "
                           "second): using `--moving-camera` (`--static-camera` to override)"]
    assert "--static-camera` was given" in findings(r, moving_camera=False)[0]
    zoom = check_footage(render_video(80, size=128, figure_seed=2, zoom=0.15).frames, FPS)
    assert zoom.camera_moves


def test_a_tiny_subject_is_found_with_a_crop_that_keeps_it(tiny_video):
    r = check_footage(tiny_video.frames, FPS)
    truth = (tiny_video.labels > 0).mean(axis=(1, 2)).max()
    assert r.subject_small and 0 < r.subject_share <= truth + 0.01
    x, y, w, h = r.subject_box
    ys, xs = np.nonzero((tiny_video.labels > 0).any(0))
    assert x <= np.percentile(xs, 2) and x + w >= np.percentile(xs, 98)
    assert y <= np.percentile(ys, 2) and y + h >= np.percentile(ys, 98)
    assert w * h < 0.5 * 128 * 128
    (line,) = findings(r)
    assert line.startswith("the subject covers ") and line.endswith(f": crop it (`--crop {x},{y},{w},{h}`)")
    assert "crops around it by itself" in findings(r, "track")[0]
    assert findings(r, "train", cropped=True) == findings(r, "track", cropped=True) == []   # the crop is used
    # in source pixels of a larger frame, offset by an earlier crop
    r2 = check_footage(tiny_video.frames, FPS, source_size=(256, 256), source_offset=(10, 20))
    x2, y2, w2, h2 = r2.subject_box
    assert abs(x2 - (10 + 2 * x)) <= 2 and abs(y2 - (20 + 2 * y)) <= 2 and abs(w2 - 2 * w) <= 2


def test_nothing_moving_is_said_plainly():
    v = render_video(40, size=96, activity=0.0, figure_seed=1)
    frames = np.repeat(v.frames[:1], 40, axis=0)
    r = check_footage(frames, FPS)
    assert r.subject_share == 0 and r.subject_box is None
    assert findings(r) == ["nothing moves relative to the background: parts are learnt from motion; "
                           "use footage where the subject moves"]


def test_the_shipped_clip_has_no_cut_and_a_camera_that_moves_for_a_while():
    """The demo clip's camera drifts while the rabbit climbs out (about 1–2 s), then stays."""
    from parttrack.tracker.sources import open_source

    with open_source(CLIP) as src:
        frames = [(f.image, f.time_s) for f in src]
        fps = src.fps
    r = check_footage((f for f, _ in frames), fps, times_s=[t for _, t in frames])
    assert r.frames == len(frames) and r.frame_size == (480, 270)
    assert r.cut_frames == () and not r.camera_moves and not r.subject_small
    ((a, b),) = r.camera_moving_spans_s
    assert 0.4 <= a and b <= 3.0 and r.camera_moves_partly
    (line,) = findings(r)
    assert line.startswith("the camera moves at ") and "still for the rest: using `--moving-camera`" in line


def test_streaming_is_bounded_and_json_ready(pan_video):
    checker = FootageChecker(FPS)
    for _ in range(3):                      # 300 frames through a 48-pair budget
        for f in pan_video.frames:
            checker.add(f)
    r = checker.report()
    assert r.frames == 300 and 2 <= r.pairs <= 48
    d = json.loads(json.dumps(r.to_json()))
    assert d["camera_moves"] is True and d["findings"] and d["options"]["camera_threshold"] == 0.015
    with pytest.raises(ValueError):
        checker.add(pan_video.frames[0][:64])
    with pytest.raises(ValueError):
        FootageChecker(0)
    with pytest.raises(ValueError):
        FootageReport(frames=10, fps=FPS, duration_s=0.4, cut_frames=(12,), cut_times_s=(0.48,), camera_speed=0.0,
                      camera_moves=False, camera_moving_share=0.0, subject_share=0.1, subject_box=None,
                      subject_small=False, frame_size=(8, 8), pairs=0, seconds=0.0)


def test_shot_bounds():
    lo, hi = shot_bounds(np.array([0, 9, 10, 11, 29]), (10, 20), 30)
    assert lo.tolist() == [0, 0, 10, 10, 20] and hi.tolist() == [9, 9, 19, 19, 29]
    lo, hi = shot_bounds(np.array([3]), (), 5)
    assert (lo.tolist(), hi.tolist()) == ([0], [4])


def test_training_pairs_never_straddle_a_cut(tmp_path):
    torch = pytest.importorskip("torch")
    from parttrack.engine.model import NetConfig
    from parttrack.engine.train import TrainConfig, Trainer

    tiny = NetConfig(num_parts=2, input_size=32, widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8,
                     head_hidden=8)
    frames = render_video(40, 32, figure_seed=1, cuts=(13, 27)).frames
    starts = (13, 27)
    tr = Trainer(frames, tiny, TrainConfig(steps=1, batch=64, max_pair_gap=25, shot_starts=starts), tmp_path / "r")
    shot = np.searchsorted(np.array(starts), np.arange(40), side="right")
    crossed = 0
    for _ in range(20):
        tr.sample_pairs()
        src, tgt = tr.last_pair_indices
        assert np.array_equal(shot[src], shot[tgt])
        crossed += int(np.any(src != tgt))
    assert crossed
    # without shots the same draw does cross (the hook is what keeps pairs apart)
    free = Trainer(frames, tiny, TrainConfig(steps=1, batch=64, max_pair_gap=25), tmp_path / "f")
    free.sample_pairs()
    src, tgt = free.last_pair_indices
    assert np.any(shot[src] != shot[tgt])
    assert torch.is_tensor(free.frames)


def test_each_shot_has_its_own_background_and_moving_pixel_map(tmp_path, cut_video):
    """With known cuts, the static background image of each shot is that shot's temporal median,
    every frame is compared with its own shot's image, and the moving-pixel map does not fire
    at the cut (without the shots it does: the frames across the cut have nothing in common)."""
    torch = pytest.importorskip("torch")
    import cv2

    from parttrack.engine.flow import moving_pixels, to_gray
    from parttrack.engine.model import NetConfig
    from parttrack.engine.train import TrainConfig, Trainer

    tiny = NetConfig(num_parts=2, input_size=128, widths=(8, 8, 16, 16), latent_channels=4, decoder_hidden=8,
                     head_hidden=8)
    frames, cuts = cut_video.frames, cut_video.cut_frames
    cfg = TrainConfig(steps=1, batch=2, shot_starts=cuts, illumination=False)
    tr = Trainer(frames, tiny, cfg, tmp_path / "r")
    h, w = tr.background.shape[-2:]
    assert tuple(tr.background.shape) == (3, 3, h, w) and tr.shots == [(0, 40), (40, 95), (95, 150)]

    def median_image(lo, hi):
        m = np.median(frames[lo:hi][:: max(1, (hi - lo) // 64)], axis=0).astype(np.float32)
        return torch.from_numpy(cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) * (2.0 / 255.0) - 1.0
                                ).permute(2, 0, 1)

    for k, (lo, hi) in enumerate(tr.shots):
        assert torch.allclose(tr.background[k], median_image(lo, hi), atol=1e-6)
    assert not torch.allclose(tr.background[0], tr.background[1], atol=0.05)   # the scenes differ
    idx = np.array([0, 39, 40, 94, 95, 149])
    small = torch.nn.functional.interpolate(torch.from_numpy(frames[idx]).permute(0, 3, 1, 2).float() / 127.5 - 1,
                                            size=(h, w), mode="area")
    want = tr.background[torch.tensor([0, 0, 1, 1, 2, 2])]
    assert torch.equal(tr.background_images(small, idx), want)     # by frame index
    assert torch.equal(tr.background_images(small), want)          # by the nearest image
    lit = Trainer(frames, tiny, TrainConfig(steps=1, batch=2, shot_starts=cuts), tmp_path / "lit")
    one = Trainer(frames[40:95], tiny, TrainConfig(steps=1, batch=2), tmp_path / "one")
    assert torch.allclose(lit.background_images(small, idx)[2:4], one.background_images(small[2:4]), atol=1e-5)
    tr.train_step()            # a step and a snapshot run with the shots' images
    tr.snapshot()

    # the moving-pixel map at the cut and beside it: only the subject moves
    near = np.array([37, 39, 40, 42])
    subject = np.stack([cv2.dilate((cut_video.labels[i] > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
                        for i in near])
    outside = cv2.resize(subject.transpose(1, 2, 0).astype(np.float32), (32, 32),
                         interpolation=cv2.INTER_AREA).transpose(2, 0, 1) == 0
    gray = to_gray(frames)
    per_shot = moving_pixels(gray, (32, 32), indices=near, shot_starts=cuts)
    across = moving_pixels(gray, (32, 32), indices=near)
    assert per_shot[outside].mean() < 0.01 and per_shot.max() > 0.5      # the subject, nothing else
    assert across[outside].mean() > 0.05                                  # across the cut: the scenery too
    np.testing.assert_array_equal(moving_pixels(gray[:40], (32, 32), indices=near[:2]), per_shot[:2])


def test_a_crop_is_chosen_around_a_small_or_off_centre_subject(tiny_video, pan_video):
    from dataclasses import replace

    from parttrack.engine.footage import choose_crop

    r = check_footage(tiny_video.frames, FPS)
    crop = choose_crop([r], (128, 128))
    assert crop is not None
    x, y, w, h = crop
    rx, ry, rw, rh = r.subject_reach
    bx, by, bw, bh = r.subject_box
    assert bx <= rx and by <= ry and bx + bw >= rx + rw and by + bh >= ry + rh   # the box holds the reach
    assert w == h == round(1.4 * max(rw, rh)) and 0 <= x <= rx and 0 <= y <= ry and x + w <= 128 and y + h <= 128
    assert x + w >= rx + rw and y + h >= ry + rh                      # it holds the subject's reach
    assert abs((x + w / 2) - (rx + rw / 2)) <= 1 and abs((y + h / 2) - (ry + rh / 2)) <= 1   # centred on it
    assert choose_crop([r], (128, 128), reach_scale=1.0)[2] == max(rw, rh)
    assert choose_crop([check_footage(pan_video.frames, FPS)], (128, 128)) is None   # the camera moves
    assert choose_crop([r], (256, 128)) is None                          # another frame size
    assert choose_crop([replace(r, subject_reach=(10, 10, 80, 90))], (128, 128)) is None  # no gain (126 px)
    assert choose_crop([replace(r, subject_reach=None)], (128, 128)) is None
    # a wide frame: a square as high as the frame around the subject, kept inside the frame
    wide = replace(r, frame_size=(384, 216), subject_reach=(250, 10, 100, 100))
    assert choose_crop([wide], (384, 216)) == (230, 0, 140, 140)
    assert choose_crop([replace(wide, subject_reach=(320, 150, 60, 60))], (384, 216)) == (300, 132, 84, 84)  # kept inside
    both = [wide, replace(wide, subject_reach=(150, 20, 60, 60))]       # the union: 150..350 × 10..110
    assert choose_crop(both, (384, 216)) == (104, 0, 280, 216)          # cut to the frame's height, inside it
    with pytest.raises(ValueError):
        choose_crop([r], (128, 128), reach_scale=0.9)


def test_cli_train_crops_around_a_small_subject_and_the_bundle_keeps_the_crop(tmp_path, capsys, tiny_video):
    pytest.importorskip("torch")
    from parttrack.engine.bundle import load_bundle
    from parttrack.engine.synthetic import write_video
    from parttrack.tracker.cli import main

    video = write_video(tmp_path / "tiny.mp4", tiny_video.frames, FPS)
    common = ["--parts", "2", "--size", "32", "--steps", "1", "--batch", "2", "--no-progress", "--init", "none"]
    assert main(["train", str(video), "-o", str(tmp_path / "m"), *common]) == 0
    err = capsys.readouterr().err
    meta = load_bundle(tmp_path / "m").meta
    x, y, w, h = meta.crop
    assert meta.crop_frame == (128, 128) and w == h and w <= 128 / 1.2
    assert f"the subject moves within {x},{y},{w},{h} of the 128x128 frame: training on that crop" in err
    assert "the subject covers" not in err                              # said as the crop instead
    cfg = json.loads((tmp_path / "m" / "checkpoints" / "config.json").read_text())["training"]
    assert cfg["crop"] == [x, y, w, h] and cfg["content_boxes"] == [[0, 0, 32, 32]]
    assert meta.letterbox(128, 128).box == (x, y, w, h)

    assert main(["train", str(video), "-o", str(tmp_path / "whole"), *common, "--crop", "none"]) == 0
    err = capsys.readouterr().err
    assert load_bundle(tmp_path / "whole").meta.crop is None and "crop it (`--crop " in err
    assert main(["train", str(video), "-o", str(tmp_path / "given"), *common, "--crop", "8,8,64,64"]) == 0
    capsys.readouterr()
    given = load_bundle(tmp_path / "given").meta
    assert given.crop == (8, 8, 64, 64) and given.crop_frame == (128, 128)


def test_cli_train_prints_findings_picks_the_camera_and_keeps_shots(tmp_path, capsys):
    pytest.importorskip("torch")
    from parttrack.engine.synthetic import write_video
    from parttrack.tracker.cli import main

    v = render_video(80, size=96, figure_seed=2, motion_seed=1, cuts=(40,), pan=(20.0, 0.0))
    video = write_video(tmp_path / "v.mp4", v.frames, FPS)
    common = ["--parts", "2", "--size", "32", "--steps", "1", "--batch", "2", "--no-progress"]
    from parttrack.engine.bundle import load_bundle

    # default: the longest shot only (both are 40 frames: the first)
    assert main(["train", str(video), "-o", str(tmp_path / "m1"), *common]) == 0
    err = capsys.readouterr().err
    assert "parttrack: footage: 1 shot cut at 1.6 s: training on the longest shot only (0.00–1.60 s)" in err
    assert "on 40 frames" in err
    cfg = json.loads((tmp_path / "m1" / "checkpoints" / "config.json").read_text())["training"]
    assert cfg["shot_starts"] == []
    assert load_bundle(tmp_path / "m1").meta.training_videos[0]["frames"] == 40

    # --shots: every shot, the cut kept as a shot start
    assert main(["train", str(video), "-o", str(tmp_path / "m"), *common, "--shots"]) == 0
    err = capsys.readouterr().err
    assert "parttrack: footage: 1 shot cut at 1.6 s: training on every shot (`--shots`)" in err
    assert "the camera moves" in err and "using `--moving-camera`" in err and "moving camera)" in err
    assert "on 80 frames" in err
    cfg = json.loads((tmp_path / "m" / "checkpoints" / "config.json").read_text())["training"]
    assert cfg["shot_starts"] == [40] and cfg["static_background"] is False

    # one shot, cropped, the camera forced static
    assert main(["train", str(video), "-o", str(tmp_path / "m2"), *common, "--start", "1.6", "--end", "3",
                 "--crop", "8,8,80,80", "--static-camera"]) == 0
    err = capsys.readouterr().err
    assert "shot cut" not in err and "`--static-camera` was given" in err
    cfg = json.loads((tmp_path / "m2" / "checkpoints" / "config.json").read_text())["training"]
    assert cfg["shot_starts"] == [] and cfg["static_background"] is True
    assert cfg["content_boxes"] == [[0, 0, 32, 32]]          # a square crop fills the input
    assert load_bundle(tmp_path / "m2").meta.training_videos[0]["frames"] == 35

    # a 2:1 crop: the letterbox's inner rectangle of each shot goes to the training
    assert main(["train", str(video), "-o", str(tmp_path / "m3"), *common, "--crop", "0,8,96,48", "--shots"]) == 0
    capsys.readouterr()
    cfg = json.loads((tmp_path / "m3" / "checkpoints" / "config.json").read_text())["training"]
    assert cfg["shot_starts"] == [40] and cfg["content_boxes"] == [[0, 8, 32, 16], [0, 8, 32, 16]]

    for bad in (["--crop", "1,2,3"], ["--crop", "90,0,80,80"], ["--start", "2", "--end", "1"],
                ["--start", "9", "--end", "10"], ["--moving-camera", "--static-camera"]):
        assert main(["train", str(video), "-o", str(tmp_path / "bad"), *common, *bad]) == 2, bad
        assert "error:" in capsys.readouterr().err


def test_track_writes_the_footage_check(tmp_path, cut_video):
    from parttrack.tracker.offline import track_video
    from tests.fakes import ColorKeyRuntime
    from tests.videos import write_video

    video = write_video(tmp_path / "cut.mp4", cut_video.frames[:70])
    res = track_video(video, tmp_path / "out", runtime=ColorKeyRuntime(input_size=128))
    info = json.loads((tmp_path / "out" / "track.json").read_text())
    foot = info["footage"]
    assert foot["frames"] == 70 and len(foot["cut_frames"]) == 1 and abs(foot["cut_frames"][0] - 40) <= 1
    assert foot["findings"] and any("footage: 1 shot cut at 1.6 s" in w for w in res.warnings)
