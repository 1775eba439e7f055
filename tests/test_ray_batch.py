"""Batch tracking on Ray (:mod:`tracker.ray_batch`): the same results as the local process pool,
per-video failures, dead workers, resume, Ctrl-C, and the worker plan.

The Ray tests start a local Ray instance (~5 s on the 2-core machine) with 2 CPUs, its session
files under the test's temporary folder and its auth token in the environment (not in ~/.ray).
They are skipped when ray is not installed; CI installs it (the dev extra).
"""

from __future__ import annotations

import _thread
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

from parttrack.engine.errors import BackendUnavailable, BundleError, ParttrackError
from parttrack.tracker.batch import run_batch
from parttrack.tracker.ray_batch import WorkerPlan, plan_workers, run_batch_ray
from parttrack.tracker.results import TrackOptions
from tests.fakes import ColorKeyRuntime, flat_parts_frames
from tests.videos import write_video

# --------------------------------------------------------------------------- the worker plan
CPU2 = [{"CPU": 2.0, "memory": 1e10}]
PLAN_CASES = [
    # (nodes, pending, options kwargs, plan kwargs, expected plan)
    (CPU2, 5, {}, {}, WorkerPlan(2, 1.0, 0.0, "cpu")),
    (CPU2, 5, {"threads": 2}, {}, WorkerPlan(1, 2.0, 0.0, "cpu")),
    (CPU2, 1, {}, {}, WorkerPlan(1, 1.0, 0.0, "cpu")),  # no more actors than videos
    ([{"CPU": 16.0}, {"CPU": 8.0}], 100, {}, {}, WorkerPlan(24, 1.0, 0.0, "cpu")),
    ([{"CPU": 16.0}, {"CPU": 8.0}], 100, {"threads": 2}, {}, WorkerPlan(12, 2.0, 0.0, "cpu")),
    ([{"CPU": 16.0}, {"CPU": 8.0}], 100, {}, {"workers": 3}, WorkerPlan(3, 1.0, 0.0, "cpu")),
    ([{"CPU": 16.0}, {"CPU": 3.0}], 100, {}, {"cpus_per_worker": 4}, WorkerPlan(4, 4.0, 0.0, "cpu")),
    ([{"CPU": 1.0}], 4, {"threads": 4}, {}, WorkerPlan(1, 1.0, 0.0, "cpu")),  # clamped to the largest node
    # GPU nodes: one actor per GPU, 2 CPUs each for decoding; a CPU-only node gets none
    ([{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0}], 100, {}, {}, WorkerPlan(2, 2.0, 1.0, "cuda:0")),
    ([{"CPU": 16.0, "GPU": 2.0}], 100, {}, {"gpus_per_worker": 0.5}, WorkerPlan(4, 2.0, 0.5, "cuda:0")),
    ([{"CPU": 2.0, "GPU": 4.0}], 100, {}, {}, WorkerPlan(1, 2.0, 1.0, "cuda:0")),  # CPU-bound
    ([{"CPU": 16.0, "GPU": 2.0}], 100, {"device": "cpu"}, {}, WorkerPlan(16, 1.0, 0.0, "cpu")),
    ([{"CPU": 16.0, "GPU": 2.0}], 100, {}, {"gpus_per_worker": 0}, WorkerPlan(16, 1.0, 0.0, "cpu")),
    ([{"CPU": 16.0, "GPU": 1.0}], 100, {"device": "cuda:1", "backend": "tensorrt"}, {},
     WorkerPlan(1, 2.0, 1.0, "cuda:0")),
]


@pytest.mark.parametrize("nodes,pending,opts,kw,expected", PLAN_CASES)
def test_plan_workers(nodes, pending, opts, kw, expected):
    assert plan_workers(nodes, pending, TrackOptions(**opts), **kw) == expected


@pytest.mark.parametrize("opts,kw", [({"device": "cuda"}, {}), ({"backend": "tensorrt"}, {}),
                                     ({}, {"gpus_per_worker": 1})])
def test_plan_workers_gpu_requested_on_a_cpu_cluster(opts, kw):
    with pytest.raises(ParttrackError, match="GPU"):
        plan_workers(CPU2, 3, TrackOptions(**opts), **kw)


def test_plan_workers_rejects_bad_numbers():
    with pytest.raises(ParttrackError, match="workers"):
        plan_workers(CPU2, 3, TrackOptions(), workers=0)
    with pytest.raises(ParttrackError, match="no node"):
        plan_workers([{"CPU": 0.0}], 3, TrackOptions())


def test_missing_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(BackendUnavailable, match="Ray is not installed") as info:
        run_batch_ray([tmp_path], tmp_path / "out", TrackOptions())
    assert "parttrack[ray]" in info.value.hint


# --------------------------------------------------------------------------- Ray set-up
@pytest.fixture(scope="module")
def ray_env(tmp_path_factory):
    """Ray's session files under the tests' temporary folder (a short path: Ray's Unix sockets
    must stay under 107 bytes) and a per-run auth token in the environment."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'parttrack[ray]')")
    base = tmp_path_factory.mktemp("ray")
    own = None
    if len(str(base)) > 48:
        base = own = tempfile.mkdtemp(prefix="ptray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(base))
        # Ray (>= 2.59) turns token auth on for a local instance when RAY_AUTH_MODE is unset and
        # writes a token to ~/.ray unless one is given; it sets RAY_AUTH_MODE itself (restored).
        mp.setenv("RAY_AUTH_MODE", "unset")
        mp.delenv("RAY_AUTH_MODE")
        mp.setenv("RAY_AUTH_TOKEN", secrets.token_hex(16))
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield base
    if own:
        shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_session(ray_env):
    """One local Ray instance (2 CPUs) for the tests that do not test starting Ray."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _flat_videos(folder, n=3, frames=16):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        video, _ = flat_parts_frames(frames, 48, 64, seed=i)
        paths.append(write_video(folder / f"clip{i}.mp4", video))
    return paths


# --------------------------------------------------------------------------- same results
def test_ray_matches_the_process_pool_and_reports_a_failing_video(tmp_path, ray_env):
    import ray

    from parttrack.engine.synthetic import render_video
    from parttrack.engine.synthetic import write_video as write_synthetic
    from tests.bundle_factory import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "bundle", num_parts=4, input_size=32)
    src = tmp_path / "videos"
    src.mkdir()
    good = []
    for i in range(3):
        v = render_video(10 + 2 * i, size=(64, 48), figure_seed=i, motion_seed=i)
        good.append(write_synthetic(src / f"clip{i}.mp4", v.frames, v.fps))
    bad = src / "broken.mp4"
    bad.write_bytes(b"this is not a video\n" * 40)
    opts = TrackOptions(model=bundle, threads=1, batch_size=4)

    pool = run_batch([src], tmp_path / "pool", opts, workers=2, progress=False, log=lambda m: None)
    messages = []
    assert not ray.is_initialized()
    res = run_batch_ray([src], tmp_path / "ray", opts, num_cpus=2, progress=False, log=messages.append)
    assert not ray.is_initialized()  # the local instance it started is shut down

    assert any(m.startswith("ray: started a local Ray instance (2 CPUs") for m in messages), messages
    assert any(m.startswith("runtime: onnxruntime") for m in messages), messages
    by_name = {r.video.name: r for r in res}
    assert [r.video.name for r in res] == [r.video.name for r in pool]  # input order
    assert by_name["broken.mp4"].status == "failed"
    assert "broken.mp4" in by_name["broken.mp4"].error and by_name["broken.mp4"].hint
    assert not (tmp_path / "ray" / "broken" / "done.json").exists()
    for i, video in enumerate(good):
        r = by_name[video.name]
        assert r.status == "done" and r.frames == 10 + 2 * i and r.backend.startswith("onnxruntime"), r
        for name in ("tracks.csv", "joints.csv"):
            ours = (tmp_path / "ray" / video.stem / name).read_bytes()
            assert ours == (tmp_path / "pool" / video.stem / name).read_bytes(), f"{video.stem}/{name}"
        assert json.loads((tmp_path / "ray" / video.stem / "done.json").read_text())["frames"] == 10 + 2 * i
    tracks = (tmp_path / "ray" / "clip0" / "tracks.csv").read_text().splitlines()
    assert len(tracks) == 1 + 10 * 4

    # A rerun over the finished videos skips them all without starting Ray.
    messages.clear()
    again = run_batch_ray(good, tmp_path / "ray", opts, progress=False, log=messages.append)
    assert [r.status for r in again] == ["skipped"] * 3 and not ray.is_initialized()
    assert not any(m.startswith("ray:") for m in messages), messages


# --------------------------------------------------------------------------- dead workers
class CrashOnDarkRuntime(ColorKeyRuntime):
    """Kills its own process (as a segfault or the OOM killer would) on an all-dark batch."""

    def infer(self, images):
        if images.max() < 50:
            os._exit(3)
        return super().infer(images)


def crash_on_dark_factory(options=None, workers=1):
    return CrashOnDarkRuntime()


def test_a_dead_worker_fails_only_its_video_and_is_replaced(tmp_path, ray_session):
    videos = _flat_videos(tmp_path / "videos", n=3)
    dark = write_video(tmp_path / "videos" / "dark.mp4", np.full((8, 48, 64, 3), 10, np.uint8))
    opts = TrackOptions(threads=1)
    messages = []
    res = run_batch_ray([tmp_path / "videos"], tmp_path / "out", opts, progress=False,
                        runtime_factory=crash_on_dark_factory, log=messages.append)
    assert f"ray: the worker tracking {dark.name} died; started a replacement" in messages
    by_name = {r.video.name: r for r in res}
    assert by_name[dark.name].status == "failed"
    assert "worker" in by_name[dark.name].error and "died" in by_name[dark.name].error
    for v in videos:
        assert by_name[v.name].status == "done" and by_name[v.name].frames == 16
        assert (tmp_path / "out" / v.stem / "done.json").is_file()


def broken_bundle_factory(options=None, workers=1):
    raise BundleError("the bundle /nowhere is missing model.onnx", "pass --model with a bundle folder")


def test_no_worker_can_load_the_model_is_a_clear_error(tmp_path, ray_session):
    _flat_videos(tmp_path / "videos", n=2, frames=4)
    with pytest.raises(BundleError, match="missing model.onnx") as info:
        run_batch_ray([tmp_path / "videos"], tmp_path / "out", TrackOptions(threads=1), progress=False,
                      runtime_factory=broken_bundle_factory, log=lambda m: None)
    assert "Ray node" in info.value.message and info.value.hint == "pass --model with a bundle folder"


# --------------------------------------------------------------------------- Ctrl-C
class SlowRuntime(ColorKeyRuntime):
    def infer(self, images):
        time.sleep(0.05)
        return super().infer(images)


def slow_factory(options=None, workers=1):
    return SlowRuntime()


def test_ctrl_c_keeps_what_was_tracked_without_done_marker(tmp_path, ray_session):
    """Ctrl-C while a long video runs: it stops between batches, writes its partial tracks and
    track.json (complete: false) but no done.json, and KeyboardInterrupt reaches the caller."""
    video, _ = flat_parts_frames(400, 48, 64)
    path = write_video(tmp_path / "long.mp4", video)
    out = tmp_path / "out" / "long"
    opts = TrackOptions(threads=2, raw=True, batch_size=2)

    def interrupt_when_started():
        for _ in range(1200):  # up to 60 s for the worker to start writing rows (in its staging folder)
            raw = next(out.parent.glob(f".{out.name}.partial-*/tracks_raw.csv"), None) if out.parent.is_dir() else None
            if raw is not None and raw.is_file() and len(raw.read_text().splitlines()) > 4:
                _thread.interrupt_main()  # as Ctrl-C in the terminal
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_batch_ray([path], tmp_path / "out", opts, progress=False, runtime_factory=slow_factory,
                      log=lambda m: None)
    info = json.loads((out / "track.json").read_text())
    assert info["complete"] is False and 0 < info["frame_count"] < 400
    assert not (out / "done.json").exists()
    rows = (out / "tracks.csv").read_text().splitlines()
    assert len(rows) == 1 + info["frame_count"] * 2
