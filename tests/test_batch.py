"""Batch tracking: result folders, CSV schema and row counts, skip/resume, failures, workers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parttrack.engine.errors import InputError, OutputError
from parttrack.tracker.batch import run_batch
from parttrack.tracker.io import JOINTS_COLUMNS, TRACKS_COLUMNS, read_joints_csv, read_label_png, read_tracks_csv
from parttrack.tracker.offline import track_video
from parttrack.tracker.results import TrackOptions, VideoResult, discover_videos, failure_lines, output_dirs, summarize
from tests.fakes import ColorKeyRuntime, FailingRuntime, color_runtime_factory, flat_parts_frames
from tests.videos import write_video

N_FRAMES = 16


def hinge_video(path, n=N_FRAMES, seed=0, h=96, w=128):
    frames, poses = flat_parts_frames(n, h, w, seed=seed)
    write_video(path, frames)
    return path, poses


@pytest.fixture
def videos(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    return [hinge_video(src / f"clip{i}.mp4", seed=i)[0] for i in range(3)]


def test_result_folder_schema_and_row_counts(tmp_path):
    video, (centres, angles, half, hinge) = hinge_video(tmp_path / "hinge.mp4", n=24)
    out = tmp_path / "out" / "hinge"
    opts = TrackOptions(raw=True, masks=True, overlay=True, batch_size=5)
    res = track_video(video, out, opts, runtime=ColorKeyRuntime())
    assert res.status == "done" and res.frames == 24 and res.fps > 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["done.json", "joints.csv", "masks", "overlay.mp4", "track.json", "tracks.csv", "tracks.png",
                     "tracks_raw.csv"]

    lines = (out / "tracks.csv").read_text().splitlines()
    assert lines[0] == ",".join(TRACKS_COLUMNS) and len(lines) == 1 + 24 * 2
    track, part_names = read_tracks_csv(out / "tracks.csv")
    raw, _ = read_tracks_csv(out / "tracks_raw.csv")
    assert part_names == ("part1", "part2") and len(track) == len(raw) == 24
    np.testing.assert_allclose(track.time_s, np.arange(24) / 25.0, atol=1e-6)  # stream timestamps
    err = np.linalg.norm(track.xy - centres, axis=-1)
    assert np.median(err) < 2.0  # px on a 128×96 frame

    jl = (out / "joints.csv").read_text().splitlines()
    assert jl[0] == ",".join(JOINTS_COLUMNS) and len(jl) == 1 + 24
    joints = read_joints_csv(out / "joints.csv")
    assert joints[0].pairs.tolist() == [[1, 2]]
    jerr = np.linalg.norm(np.stack([j.xy[0] for j in joints]) - hinge, axis=-1)
    assert np.median(jerr) < 4.0

    info = json.loads((out / "track.json").read_text())
    assert info["complete"] is True and info["width"] == 128 and info["height"] == 96
    assert info["fps"] == pytest.approx(25.0) and info["frame_count"] == 24 and info["num_parts"] == 2
    assert info["skeleton_edges"] == [[1, 2]] and info["skeleton"][0]["part_a"] == 1
    assert info["smoother"] == "offline" and "angle_deg" in info["conventions"]

    pngs = sorted((out / "masks").glob("*.png"))
    assert [p.name for p in pngs[:2]] == ["000000.png", "000001.png"] and len(pngs) == 24
    lab = read_label_png(pngs[0])
    assert lab.shape == (96, 128) and set(np.unique(lab)) == {0, 1, 2}

    import av

    with av.open(str(out / "overlay.mp4")) as c:
        decoded = list(c.decode(video=0))
    # a 96-px-high video is drawn at zoom ceil(360 / 96) = 4 so that the legend stays legible
    assert len(decoded) == 24 and (decoded[0].width, decoded[0].height) == (128 * 4, 96 * 4)
    assert not list(out.glob(".labels*"))  # temporary file removed

    done = json.loads((out / "done.json").read_text())
    assert done["frames"] == 24 and done["outputs"] == {"raw": True, "masks": True, "overlay": True, "plot": True}


@pytest.mark.parametrize("smoother", ["online", "none"])
def test_smoother_modes(tmp_path, smoother):
    video, _ = hinge_video(tmp_path / "v.mp4")
    out = tmp_path / smoother
    track_video(video, out, TrackOptions(smoother=smoother, raw=True), runtime=ColorKeyRuntime())
    tr, _ = read_tracks_csv(out / "tracks.csv")
    raw, _ = read_tracks_csv(out / "tracks_raw.csv")
    assert len(tr) == N_FRAMES
    if smoother == "none":
        np.testing.assert_array_equal(tr.xy, raw.xy)
    else:
        assert not np.array_equal(tr.xy, raw.xy)


def test_max_frames(tmp_path):
    video, _ = hinge_video(tmp_path / "v.mp4")
    res = track_video(video, tmp_path / "o", TrackOptions(max_frames=5, batch_size=2), runtime=ColorKeyRuntime())
    assert res.frames == 5 and len(read_tracks_csv(tmp_path / "o" / "tracks.csv")[0]) == 5


def test_discover_videos(tmp_path, videos):
    folder = videos[0].parent
    (folder / "notes.txt").write_text("not a video")
    assert discover_videos([folder]) == [v.resolve() for v in videos]
    assert discover_videos([videos[1], folder]) == [videos[1].resolve(), videos[0].resolve(), videos[2].resolve()]
    with pytest.raises(InputError, match="does not exist"):
        discover_videos([tmp_path / "nope.mp4"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no videos"):
        discover_videos([empty])


def test_output_dirs_are_unique_and_stable(tmp_path):
    vids = [tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4", tmp_path / "x.mov", tmp_path / "y.mp4"]
    names = [d.name for d in output_dirs(vids, tmp_path / "out")]
    assert names == ["x_mp4", "x_mp4_2", "x_mov", "y"]
    assert output_dirs(vids, tmp_path / "out") == output_dirs(vids, tmp_path / "out")


def test_batch_skips_done_videos_and_force_redoes(tmp_path, videos):
    rt = ColorKeyRuntime()
    res = run_batch([videos[0].parent], tmp_path / "out", TrackOptions(), runtime_factory=lambda o, w: rt,
                    progress=False, log=lambda m: None)
    assert [r.status for r in res] == ["done"] * 3
    calls = rt.calls
    res = run_batch([videos[0].parent], tmp_path / "out", TrackOptions(), runtime_factory=lambda o, w: rt,
                    progress=False, log=lambda m: None)
    assert [r.status for r in res] == ["skipped"] * 3 and rt.calls == calls
    # asking for more outputs than were written redoes the video
    res = run_batch([videos[0]], tmp_path / "out", TrackOptions(raw=True), runtime_factory=lambda o, w: rt,
                    progress=False, log=lambda m: None)
    assert res[0].status == "done" and (tmp_path / "out" / "clip0" / "tracks_raw.csv").is_file()
    res = run_batch([videos[0]], tmp_path / "out", TrackOptions(force=True), runtime_factory=lambda o, w: rt,
                    progress=False, log=lambda m: None)
    assert res[0].status == "done"


def test_resume_after_interrupted_batch(tmp_path, videos):
    """Ctrl-C in the second video: the first stays done, the second keeps valid files of
    what was processed (no done.json), a rerun redoes only the unfinished ones."""
    out = tmp_path / "out"
    # 16 frames at batch 4 → 4 calls per video; interrupt on the 6th call (video 2, 2nd batch)
    rt = FailingRuntime(fail_at=6, exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_batch([videos[0].parent], out, TrackOptions(batch_size=4, raw=True), runtime_factory=lambda o, w: rt,
                  progress=False, log=lambda m: None)
    assert (out / "clip0" / "done.json").is_file()
    part = out / "clip1"
    assert not (part / "done.json").exists()
    tr, _ = read_tracks_csv(part / "tracks.csv")
    raw, _ = read_tracks_csv(part / "tracks_raw.csv")
    assert len(tr) == len(raw) == 4  # the first batch was processed, smoothed and written
    assert json.loads((part / "track.json").read_text())["complete"] is False
    assert not (out / "clip2").exists()

    rt2 = ColorKeyRuntime()
    res = run_batch([videos[0].parent], out, TrackOptions(batch_size=4, raw=True), runtime_factory=lambda o, w: rt2,
                    progress=False, log=lambda m: None)
    assert [r.status for r in res] == ["skipped", "done", "done"]
    assert len(read_tracks_csv(part / "tracks.csv")[0]) == N_FRAMES


def test_corrupt_video_is_reported_and_the_others_finish(tmp_path, videos):
    bad = videos[0].parent / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    empty = videos[0].parent / "empty.mp4"
    empty.write_bytes(b"")
    res = run_batch([videos[0].parent], tmp_path / "out", TrackOptions(), runtime_factory=color_runtime_factory,
                    progress=False, log=lambda m: None)
    by_name = {r.video.name: r for r in res}
    assert by_name["broken.mp4"].status == "failed" and by_name["empty.mp4"].status == "failed"
    assert "empty" in by_name["empty.mp4"].error and by_name["empty.mp4"].hint
    assert [by_name[f"clip{i}.mp4"].status for i in range(3)] == ["done"] * 3
    text = summarize(res, tmp_path / "out", 1.0)
    assert "2 failed" in text and "3 tracked" in text
    errors = "\n".join(failure_lines(res))
    assert "broken.mp4" in errors and "empty.mp4" in errors and errors.startswith("error: ")


def test_unexpected_error_is_reported_with_a_traceback_file(tmp_path, videos):
    rt = FailingRuntime(fail_at=2)  # RuntimeError("boom") in the first video
    res = run_batch([videos[0], videos[1]], tmp_path / "out", TrackOptions(batch_size=4),
                    runtime_factory=lambda o, w: rt, progress=False, log=lambda m: None)
    assert res[0].status == "failed" and "RuntimeError: boom" in res[0].error
    assert "Traceback" in (tmp_path / "out" / "clip0" / "error.txt").read_text()
    assert res[1].status == "done"


def test_unwritable_output_is_an_output_error(tmp_path, videos):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        run_batch([videos[0]], blocker / "out", TrackOptions(), runtime_factory=color_runtime_factory,
                  progress=False, log=lambda m: None)
    assert info.value.hint and "-o" in info.value.hint


def test_workers_in_spawned_processes(tmp_path, videos):
    msgs = []
    res = run_batch([videos[0].parent], tmp_path / "out", TrackOptions(), workers=2,
                    runtime_factory=color_runtime_factory, progress=False, log=msgs.append)
    assert [r.status for r in res] == ["done"] * 3
    assert any(m.startswith("runtime: fake colour-key") for m in msgs)
    for v in videos:
        assert len(read_tracks_csv(tmp_path / "out" / v.stem / "tracks.csv")[0]) == N_FRAMES


def test_summary_lines(tmp_path):
    res = [VideoResult(tmp_path / "a.mp4", tmp_path / "a", "done", 100, 2.0, warnings=["a.mp4: decoding stopped"]),
           VideoResult(tmp_path / "b.mp4", tmp_path / "b", "skipped", 50)]
    text = summarize(res, tmp_path, 4.0)
    assert "videos: 2 (1 tracked, 1 already done, 0 failed)" in text
    assert "100 tracked" in text and "25.0 frames/s" in text and "warning: a.mp4" in text
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "tracks.csv").write_text("")
    (tmp_path / "a" / "ae").mkdir()
    assert f"{tmp_path / 'a'}/: ae/, tracks.csv" in summarize(res, tmp_path, 4.0)


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.bundle_factory import make_tiny_bundle

    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", num_parts=3, input_size=32)


def test_cli_track_with_a_real_bundle(tmp_path, videos, tiny_bundle, capsys):
    from parttrack.tracker.cli import main

    bad = videos[0].parent / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    code = main(["track", str(videos[0].parent), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle),
                 "--backend", "onnxruntime", "--raw", "--no-progress", "--export", "ae"])
    cap = capsys.readouterr()
    assert code == 3  # one video failed
    assert "runtime: onnxruntime" in cap.err
    assert "videos: 4 (3 tracked, 0 already done, 1 failed)" in cap.out
    assert "parttrack: error:" in cap.err and "broken.mp4" in cap.err
    for v in videos:
        folder = tmp_path / "out" / v.stem
        track, names = read_tracks_csv(folder / "tracks.csv")
        assert len(track) == N_FRAMES and len(names) == 3
        assert (folder / "done.json").is_file() and list((folder / "ae").glob("part1_*.txt"))
    bad.unlink()
    assert main(["track", str(videos[0].parent), "-o", str(tmp_path / "out"), "--model", str(tiny_bundle),
                 "--no-progress"]) == 0
    assert "3 already done" in capsys.readouterr().out


def test_cli_user_errors(tmp_path, videos, capsys):
    from parttrack.tracker.cli import main

    assert main(["track", str(videos[0]), "-o", str(tmp_path / "o"), "--export", "maya", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown export format 'maya'" in err and "hint:" in err and "Traceback" not in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["track", str(videos[0]), "-o", str(blocker / "o"), "--no-progress"]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert main(["track", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("pix_fmt, src, size", [
    ("yuv420p", (160, 120), (64, 48)), ("yuv444p", (160, 120), (64, 48)), ("yuv420p", (160, 120), (33, 25)),
    ("yuv420p", (240, 134), (128, 72)),  # chroma planes that are not whole rows of the Y width
])
def test_scaled_decoding_matches_the_source_module(tmp_path, pix_fmt, src, size):
    """The pass-1 decoder (YUV planes area-resized, then one small colour conversion) gives
    the frames tracker.sources.FileSource gives at that size (its fallback: exactly)."""
    from parttrack.engine.synthetic import render_video
    from parttrack.tracker.sources import FileSource, ScaledFileSource

    video = render_video(6, size=src, figure_seed=0, motion_seed=0)
    path = write_video(tmp_path / "v.mp4", video.frames, pix_fmt=pix_fmt)
    ref = list(FileSource(path, size=size))
    got = list(ScaledFileSource(path, size=size))
    assert len(got) == len(ref) == 6
    for a, b in zip(ref, got):
        assert b.image.shape == (size[1], size[0], 3) and a.time_s == b.time_s
        diff = np.abs(a.image.astype(int) - b.image).mean()
        assert diff < 4.0 if pix_fmt == "yuv420p" and size != (33, 25) else diff == 0


def test_cli_ray_flag_before_paths_keeps_the_path(tmp_path, videos, monkeypatch):
    """`parttrack track --ray videos/ -o out`: argparse hands the folder to --ray."""
    import sys
    import types

    from parttrack.tracker.cli import main

    seen = {}

    def fake_run_batch_ray(vids, out_root, options, address=None, workers=None, progress=True):
        seen.update(videos=vids, address=address)
        return []

    monkeypatch.setitem(sys.modules, "parttrack.tracker.ray_batch", types.SimpleNamespace(run_batch_ray=fake_run_batch_ray))
    assert main(["track", "--ray", str(videos[0].parent), "-o", str(tmp_path / "o")]) == 0
    assert seen["address"] is None and len(seen["videos"]) == 3
    assert main(["track", str(videos[0]), "--ray", "ray://head:10001", "-o", str(tmp_path / "o")]) == 0
    assert seen["address"] == "ray://head:10001" and len(seen["videos"]) == 1
    assert main(["track", "-o", str(tmp_path / "o")]) == 2  # no PATH at all
