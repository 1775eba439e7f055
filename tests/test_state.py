"""Result state a user can trust after interruptions, reruns and faults: nothing finished is
lost, nothing stale is accepted, exit statuses are right (fault injection on tiny videos)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from parttrack.engine.errors import BundleError
from parttrack.engine.types import PartOutput
from parttrack.tracker.batch import run_batch
from parttrack.tracker.io import read_tracks_csv
from parttrack.tracker.offline import track_video
from parttrack.tracker.publish import recover_folder, result_lock
from parttrack.tracker.results import (
    TrackOptions,
    VideoResult,
    check_done,
    summarize,
)
from tests.fakes import ColorKeyRuntime, FailingRuntime, color_runtime_factory, flat_parts_frames
from tests.videos import write_video

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"progress": False, "log": lambda m: None}


def clip(path, n=16, seed=0, h=96, w=128):
    frames, _ = flat_parts_frames(n, h, w, seed=seed)
    return write_video(path, frames)


def fake(options=None, workers=1):
    return ColorKeyRuntime()


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if ".partial-" in p.name or ".old-" in p.name)


# ----------------------------------------------------------------------- 1. stale results
def test_same_stem_from_another_folder_gets_its_own_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    va, vb = clip(a / "clip.mp4", seed=0), clip(b / "clip.mp4", seed=5)
    out, msgs = tmp_path / "out", []
    assert run_batch([va], out, runtime_factory=fake, **QUIET)[0].status == "done"
    res = run_batch([vb], out, runtime_factory=fake, progress=False, log=msgs.append)
    assert res[0].status == "done" and res[0].out_dir == out / "clip_2"
    assert any("holds the result of another video" in m for m in msgs)
    assert json.loads((out / "clip" / "done.json").read_text())["input"]["path"] == str(va.resolve())
    assert json.loads((out / "clip_2" / "done.json").read_text())["input"]["path"] == str(vb.resolve())
    # each maps back to its own folder on a rerun, and both are done
    assert [r.status for r in run_batch([va, vb], out, runtime_factory=fake, **QUIET)] == ["skipped", "skipped"]
    assert [r.out_dir.name for r in run_batch([vb], out, runtime_factory=fake, **QUIET)] == ["clip_2"]


def test_moved_video_is_recognised_by_content(tmp_path):
    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    run_batch([v], out, runtime_factory=fake, **QUIET)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(v, moved / "clip.mp4")  # another path and mtime, same bytes
    res = run_batch([moved / "clip.mp4"], out, runtime_factory=fake, **QUIET)
    assert res[0].status == "skipped" and res[0].out_dir == out / "clip"


def test_replaced_video_or_model_is_redone(tmp_path):
    v = clip(tmp_path / "clip.mp4", seed=0)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights v1")
    opts = TrackOptions(model=model)
    out, msgs = tmp_path / "out", []
    run_batch([v], out, opts, runtime_factory=fake, **QUIET)
    assert check_done(out / "clip", opts, v) == ("skip", "")
    clip(v, seed=3, n=20)  # the video is replaced at the same path
    assert check_done(out / "clip", opts, v) == ("redo", "the video changed since it was tracked")
    res = run_batch([v], out, opts, runtime_factory=fake, progress=False, log=msgs.append)
    assert res[0].status == "done" and len(read_tracks_csv(out / "clip" / "tracks.csv")[0]) == 20
    assert any("the video changed" in m for m in msgs)
    model.write_bytes(b"weights v2")  # retrained model, same path
    assert check_done(out / "clip", opts, v) == ("redo", "the model changed")
    assert run_batch([v], out, opts, runtime_factory=fake, **QUIET)[0].status == "done"
    assert check_done(out / "clip", replace(opts, precision="int8"), v)[0] == "redo"


def test_done_folder_without_input_fingerprint_is_redone(tmp_path):
    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out" / "clip"
    track_video(v, out, TrackOptions(), runtime=ColorKeyRuntime())
    done = json.loads((out / "done.json").read_text())
    del done["input"]  # written by an older parttrack
    (out / "done.json").write_text(json.dumps(done))
    assert check_done(out, TrackOptions(), v)[0] == "redo"


# ----------------------------------------------------------------------- 2. one writer per folder
def test_second_writer_waits_for_the_lock(tmp_path):
    v = clip(tmp_path / "clip.mp4")
    out, msgs, results = tmp_path / "out" / "clip", [], []
    with result_lock(out):
        t = threading.Thread(target=lambda: results.append(
            track_video(v, out, TrackOptions(), runtime=ColorKeyRuntime(), log=msgs.append)))
        t.start()
        deadline = time.monotonic() + 10
        while not msgs and time.monotonic() < deadline:
            time.sleep(0.02)
        assert msgs and "being written by another parttrack run" in msgs[0]
        assert t.is_alive() and not out.exists()  # nothing written while the other holds the lock
    t.join(20)
    assert results[0].status == "done" and (out / "done.json").is_file()


_TWO_RUNS = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes import color_runtime_factory
from parttrack.tracker.batch import run_batch
from parttrack.tracker.results import TrackOptions
res = run_batch([{video!r}], {out!r}, TrackOptions(overlay=True, masks=True, batch_size=2),
                runtime_factory=color_runtime_factory, progress=False, log=lambda m: None)
sys.exit(0 if all(r.status in ("done", "skipped") for r in res) else 3)
"""


def test_two_processes_into_one_folder(tmp_path):
    v = clip(tmp_path / "clip.mp4", n=40)
    out = tmp_path / "out"
    code = _TWO_RUNS.format(root=str(ROOT), video=str(v), out=str(out))
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert all("Traceback" not in e for e in errs)
    done = json.loads((out / "clip" / "done.json").read_text())
    assert done["outputs"]["overlay"] and (out / "clip" / "overlay.mp4").stat().st_size > 0
    assert len(list((out / "clip" / "masks").glob("*.png"))) == 40
    assert json.loads((out / "clip" / "track.json").read_text())["complete"] is True
    assert leftovers(out) == []


# ----------------------------------------------------------------------- 3. truncated input
def faststart_clip(path: Path, n: int = 100) -> Path:
    """An MP4 with its index at the front (movflags=faststart): cut short, it still declares n."""
    import av

    frames, _ = flat_parts_frames(n, 96, 128)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        s = out.add_stream("libx264", rate=25)
        s.height, s.width, s.pix_fmt = 96, 128, "yuv420p"
        for im in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def test_truncated_file_is_done_with_a_warning(tmp_path):
    full = faststart_clip(tmp_path / "full.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    res = run_batch([cut], tmp_path / "out", runtime_factory=fake, **QUIET)[0]
    assert res.status == "done" and 0 < res.frames < 100
    assert res.warnings and "of the 100 frames" in res.warnings[0]
    info = json.loads((tmp_path / "out" / "cut" / "track.json").read_text())
    assert info["input"]["frames_declared"] == 100 and info["input"]["frames_decoded"] == res.frames
    assert info["input"]["complete"] is False and info["complete"] is True
    done = json.loads((tmp_path / "out" / "cut" / "done.json").read_text())
    assert done["warnings"] == res.warnings
    assert "warning: cut.mp4" in summarize([res], tmp_path / "out", 1.0)
    # a rerun skips it but still reports the warning (exit status 1)
    again = run_batch([cut], tmp_path / "out", runtime_factory=fake, **QUIET)[0]
    assert again.status == "skipped" and again.warnings == res.warnings and again.input_complete is False
    from parttrack.tracker.cli.track import exit_status

    assert exit_status([again]) == 1
    # the whole file is not warned about
    whole = run_batch([full], tmp_path / "out", runtime_factory=fake, **QUIET)[0]
    assert whole.frames == 100 and whole.input_complete and not any("frames its container" in w for w in whole.warnings)


@pytest.mark.parametrize("statuses, warn, code", [
    (["done", "skipped"], False, 0), (["done"], True, 1), (["failed"], False, 2), (["failed", "failed"], False, 2),
    (["done", "failed"], False, 3), (["done", "interrupted"], False, 130),
])
def test_exit_status_table(tmp_path, statuses, warn, code):
    from parttrack.tracker.cli.track import exit_status

    results = [VideoResult(tmp_path / f"{i}.mp4", tmp_path / str(i), s, warnings=["footage: a remark"],
                           input_complete=not warn) for i, s in enumerate(statuses)]
    assert exit_status(results) == code


def test_cli_only_video_unreadable_exits_2(tmp_path, capsys):
    from parttrack.tracker.cli import main

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert main(["track", str(bad), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.mp4" in err and "Traceback" not in err


# ----------------------------------------------------------------------- 4. non-finite output
class NaNRuntime(ColorKeyRuntime):
    """Returns NaN transforms from its ``bad_from``-th call on (garbled weights)."""

    def __init__(self, bad_from=2, **kw):
        super().__init__(**kw)
        self.bad_from = bad_from

    def infer(self, images):
        out = super().infer(images)
        if self.calls >= self.bad_from:
            return PartOutput(out.masks, np.full_like(out.transforms, np.nan))
        return out


def test_non_finite_output_fails_the_video_without_done(tmp_path):
    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    res = run_batch([v], out, TrackOptions(batch_size=4), runtime_factory=lambda o, w: NaNRuntime(), **QUIET)[0]
    assert res.status == "failed" and "NaN or infinite" in res.error and "frame 4" in res.error and res.hint
    assert not (out / "clip" / "done.json").exists() and leftovers(out) == []
    with pytest.raises(BundleError):  # the live path (viewer) has the same check
        from parttrack.tracker.core import Frame
        from parttrack.tracker.pipeline import OnlineTracker

        tracker = OnlineTracker(NaNRuntime(bad_from=1), 96, 128)
        tracker.step(Frame(np.zeros((96, 128, 3), np.uint8), 0, 0.0))


def test_garbled_model_onnx_is_a_clear_error(tmp_path, capsys):
    """Bytes garbled inside the weights of a real bundle (the file still parses)."""
    import onnx

    from parttrack.tracker.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "trained" / "bbb", bundle, ignore=shutil.ignore_patterns("*.mp4", "*.int8.onnx"))
    model = onnx.load(str(bundle / "model.onnx"))
    raw = max((t.raw_data for t in model.graph.initializer), key=len)
    data = bytearray((bundle / "model.onnx").read_bytes())
    at = data.find(raw)
    assert at > 0
    data[at:at + len(raw)] = np.full(len(raw) // 4, np.nan, np.float32).tobytes()
    (bundle / "model.onnx").write_bytes(bytes(data))
    v = clip(tmp_path / "clip.mp4")
    code = main(["track", str(v), "-o", str(tmp_path / "out"), "--model", str(bundle), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "NaN or infinite" in err and str(bundle) in err and "Traceback" not in err
    assert not (tmp_path / "out" / "clip" / "done.json").exists()


# ----------------------------------------------------------------------- 5. workers die with the parent
def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "Ctrl-C"])
def test_signal_to_parent_stops_the_workers(tmp_path, how):
    src = tmp_path / "videos"
    src.mkdir()
    for i in range(3):
        clip(src / f"v{i}.mp4", n=600, seed=i, h=48, w=64)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-m", "parttrack", "track", str(src), "-o", str(out), "--workers", "2",
                               "--no-progress"], cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both workers busy: their staging folders exist
            workers = [c for c in _children(parent.pid) if "spawn_main" in _cmdline(c)]
            if len(workers) == 2 and out.is_dir() and len(leftovers(out)) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) == 2 and parent.poll() is None, "the workers did not start tracking"
        if how == "Ctrl-C":  # the terminal signals the whole foreground process group
            os.killpg(parent.pid, signal.SIGINT)
        else:
            parent.send_signal(getattr(signal, how))
        _, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode == 130, err
    assert "Traceback" not in err, err
    assert not any(_alive(w) for w in workers)
    snapshot = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*"))
    time.sleep(0.5)
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*")) == snapshot  # nothing written after
    for d in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = json.loads((d / "track.json").read_text())
        assert (d / "done.json").is_file() == info["complete"]


def test_killed_run_leftovers_are_recovered(tmp_path):
    """A run killed between the two renames of a publication, or while writing, leaves hidden
    siblings; the next run on that folder puts a moved-aside complete result back."""
    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    track_video(v, out / "clip", TrackOptions(), runtime=ColorKeyRuntime())
    os.rename(out / "clip", out / ".clip.old-1234")
    (out / ".clip.partial-abcd").mkdir()
    (out / ".clip.partial-abcd" / "tracks.csv").write_text("half")
    with result_lock(out / "clip"):
        recover_folder(out / "clip")
    assert (out / "clip" / "done.json").is_file() and leftovers(out) == []
    assert track_video(v, out / "clip", TrackOptions(), runtime=ColorKeyRuntime()).status == "skipped"


# ----------------------------------------------------------------------- 6. atomic publication
def test_interrupted_rerun_keeps_the_complete_result(tmp_path):
    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    run_batch([v], out, TrackOptions(batch_size=4), runtime_factory=fake, **QUIET)
    before = {p.name: p.read_bytes() for p in (out / "clip").iterdir() if p.is_file()}
    rt = FailingRuntime(fail_at=3, exc=KeyboardInterrupt())  # a rerun with one more output, interrupted
    with pytest.raises(KeyboardInterrupt):
        run_batch([v], out, TrackOptions(batch_size=4, overlay=True), runtime_factory=lambda o, w: rt, **QUIET)
    after = {p.name: p.read_bytes() for p in (out / "clip").iterdir() if p.is_file()}
    assert after == before and len(read_tracks_csv(out / "clip" / "tracks.csv")[0]) == 16
    assert leftovers(out) == []
    res = run_batch([v], out, TrackOptions(batch_size=4, overlay=True), runtime_factory=fake, **QUIET)
    assert res[0].status == "done" and (out / "clip" / "overlay.mp4").is_file()


def test_interrupted_overlay_pass_is_not_marked_complete(tmp_path, monkeypatch):
    from parttrack.tracker import overlay

    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    real, calls = overlay.draw_overlay, []

    def draw(*a, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(overlay, "draw_overlay", draw)
    with pytest.raises(KeyboardInterrupt):
        track_video(v, out / "clip", TrackOptions(overlay=True), runtime=ColorKeyRuntime())
    folder = out / "clip"  # no complete result existed: the partial one is published
    assert json.loads((folder / "track.json").read_text())["complete"] is False
    assert not (folder / "overlay.mp4").exists() and not (folder / "done.json").exists()
    assert len(read_tracks_csv(folder / "tracks.csv")[0]) == 16 and leftovers(out) == []
    monkeypatch.setattr(overlay, "draw_overlay", real)
    assert track_video(v, folder, TrackOptions(overlay=True), runtime=ColorKeyRuntime()).status == "done"
    assert json.loads((folder / "track.json").read_text())["complete"] is True


def test_folder_that_is_not_a_result_is_not_replaced(tmp_path):
    from parttrack.engine.errors import OutputError

    v = clip(tmp_path / "clip.mp4")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a parttrack result folder"):
        track_video(v, folder, TrackOptions(), runtime=ColorKeyRuntime())
    assert (folder / "notes.txt").read_text() == "keep me"


# ----------------------------------------------------------------------- 7. train -o an existing bundle
def test_train_refuses_an_existing_bundle(tmp_path, capsys):
    pytest.importorskip("torch")
    from parttrack.tracker.cli import main

    bundle = tmp_path / "m"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"a trained model")
    assert main(["train", str(tmp_path / "whatever.mp4"), "-o", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "already holds a model bundle" in err and "--force" in err
    assert (bundle / "model.onnx").read_bytes() == b"a trained model"
    # with --force the check passes (and the missing video is what is reported next)
    assert main(["train", str(tmp_path / "whatever.mp4"), "-o", str(bundle), "--force"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------- 8. export of partial/broken input
def test_export_refuses_an_interrupted_folder_and_nan_times(tmp_path, capsys):
    from parttrack.tracker.cli import main

    v = clip(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    rt = FailingRuntime(fail_at=3, exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_batch([v], out, TrackOptions(batch_size=4), runtime_factory=lambda o, w: rt, **QUIET)
    folder = out / "clip"
    assert main(["export", str(folder), "--format", "ae"]) == 2
    err = capsys.readouterr().err
    assert "interrupted run" in err and "--partial" in err and not (folder / "ae").exists()
    assert main(["export", str(folder), "--format", "ae", "--partial"]) == 0
    assert list((folder / "ae").glob("part1_*.txt"))
    lines = (folder / "tracks.csv").read_text().splitlines()
    row = lines[5].split(",")
    row[1] = "nan"
    lines[5] = ",".join(row)
    (folder / "tracks.csv").write_text("\n".join(lines) + "\n")
    assert main(["export", str(folder), "--format", "ae", "--partial"]) == 2
    err = capsys.readouterr().err
    assert "tracks.csv:6: time_s is not a finite number (nan)" in err  # line 6 = frame 2's first row (K = 2)


# ----------------------------------------------------------------------- 9. non-UTF-8 file names
@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names are bytes")
def test_non_utf8_file_name(tmp_path):
    src = tmp_path / "videos"
    src.mkdir()
    name = os.fsdecode(b"caf\xe9.mp4")
    clip(src / name)
    res = run_batch([src], tmp_path / "out", TrackOptions(exports=("all",)), runtime_factory=color_runtime_factory,
                    **QUIET)
    assert res[0].status == "done", res[0].error
    folder = res[0].out_dir
    assert (folder / "ae" / "README.txt").read_text(encoding="utf-8")
    assert "caf\ufffd" in (folder / "blender" / "parttrack_import.py").read_text(encoding="utf-8")
    assert json.loads((folder / "track.json").read_text())["video_name"] == name  # exact name kept
    summarize(res, tmp_path / "out", 1.0).encode("utf-8")  # printable on a strict UTF-8 terminal
