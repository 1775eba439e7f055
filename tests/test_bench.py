"""``parttrack bench`` / ``parttrack compile``: statistics, report contents, CLI wiring.
No timed assertions: only what is measured and how it is reported."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from parttrack.engine import bench
from parttrack.engine.runtime import backend_status
from parttrack.tracker import bench as pipeline_bench
from parttrack.tracker.cli import main
from tests.runtime_graphs import write_graph_bundle


@pytest.fixture()
def graph_bundle(tmp_path) -> Path:
    return write_graph_bundle(tmp_path / "graph", num_parts=4, input_size=16)


def test_latency_stats():
    s = bench.latency_stats(np.array([0.001, 0.002, 0.003, 0.004, 0.010]), batch=8)
    assert s.median_ms == pytest.approx(3.0) and s.min_ms == pytest.approx(1.0)
    assert s.fps == pytest.approx(8 / 0.003)
    assert s.p10_ms == pytest.approx(1.4) and s.p90_ms == pytest.approx(7.6)
    assert s.calls == 5 and s.batch == 8
    assert np.isnan(s.cpu_ms)
    assert bench.latency_stats(np.array([0.002, 0.004]), 1, np.array([0.001, 0.003, 0.005])).cpu_ms == pytest.approx(3.0)
    with pytest.raises(ValueError, match="non-empty"):
        bench.latency_stats(np.array([]), 1)


class _CountingRuntime:
    name, device = "fake", "cpu"

    def __init__(self):
        self.calls = 0

    def infer(self, images):
        self.calls += 1

    def describe(self):
        return "fake"


def test_time_infer_warms_up_then_times_the_calls():
    rt = _CountingRuntime()
    stats = bench.time_infer(rt, np.zeros((4, 8, 8, 3), np.uint8), calls=25, warmup=3)
    assert rt.calls == 28 and stats.calls == 25 and stats.batch == 4
    assert 0 <= stats.cpu_ms < 1e3


def test_bench_runtimes_reports_available_and_unavailable(graph_bundle):
    rows = bench.bench_runtimes(graph_bundle, backends=["onnxruntime", "tensorrt"], batches=(1, 3), calls=5)
    ort = rows[0]
    assert ort["backend"] == "onnxruntime" and ort["precision"] == "fp32" and ort["device"] == "cpu"
    assert [r["batch"] for r in ort["results"]] == [1, 3]
    assert all(r["calls"] == 5 and r["fps"] > 0 and r["p10_ms"] <= r["median_ms"] <= r["p90_ms"]
               for r in ort["results"])
    if backend_status()["tensorrt"] is not None:
        assert "parttrack[tensorrt]" in rows[1]["error"] or "GPU" in rows[1]["error"]


def test_bench_includes_int8_when_the_bundle_has_it(graph_bundle):
    from parttrack.engine.quantize import quantize_bundle

    frames = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    quantize_bundle(graph_bundle, frames)
    rows = bench.bench_runtimes(graph_bundle, backends=["onnxruntime"], batches=(2,), calls=3)
    assert [r["precision"] for r in rows] == ["fp32", "int8"]


def test_sample_frames_uses_the_clip_or_noise(graph_bundle, tmp_path):
    from parttrack.engine.bundle import load_bundle
    from tests.videos import write_video

    b = load_bundle(graph_bundle)
    noise = bench.sample_frames(b, 3)
    assert noise.shape == (3, 16, 16, 3) and noise.dtype == np.uint8
    clip = write_video(tmp_path / "c.mp4", np.full((2, 24, 40, 3), 200, np.uint8))
    frames = bench.sample_frames(b, 5, clip)
    assert frames.shape == (5, 16, 16, 3) and abs(int(frames[0, 8, 8, 0]) - 200) < 10


def test_bench_pipeline_times_track_video(graph_bundle, tmp_path, monkeypatch):
    seen = []

    def track_video(video, out_dir, options, runtime=None):
        seen.append((Path(video), runtime.name, options.get("plot", True)))

    fake = types.ModuleType("parttrack.tracker.offline")
    fake.TrackOptions, fake.track_video = dict, track_video
    monkeypatch.setitem(sys.modules, "parttrack.tracker.offline", fake)
    monkeypatch.setattr(pipeline_bench, "make_bench_video", lambda path, source: _write(path))
    res = pipeline_bench.bench_pipeline(graph_bundle, repeats=2)
    assert res["frames"] == 6 and (res["width"], res["height"]) == (64, 48)
    assert len(res["runs_s"]) == 2 and res["best_fps"] >= res["median_fps"] > 0
    # two timed runs without tracks.png, then one with it (its cost reported apart)
    assert [s[2] for s in seen] == [False, False, True] and seen[0][1] == "onnxruntime"
    assert res["plot_s"] >= 0


def _write(path):
    """A 6-frame 64×48 clip standing in for the 640×480 benchmark video."""
    from tests.videos import write_video

    return write_video(path, np.random.default_rng(0).integers(0, 256, (6, 48, 64, 3), dtype=np.uint8))


def test_make_bench_video_size(tmp_path):
    import av

    path = pipeline_bench.make_bench_video(tmp_path / "v.mp4", None, size=(64, 48), frames=4)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (64, 48)
        assert sum(1 for _ in c.decode(video=0)) == 4


def test_cli_bench_json(graph_bundle, capsys):
    rc = main(["bench", "--model", str(graph_bundle), "--backend", "onnxruntime", "--batch", "1", "2",
               "--calls", "3", "--no-pipeline", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["num_parts"] == 4 and report["machine"]["cores"] >= 1
    assert report["machine"]["machine"].startswith(report["machine"]["cpu"])
    assert [r["batch"] for r in report["runtimes"][0]["results"]] == [1, 2]
    assert "pipeline" not in report


def test_cli_bench_table(graph_bundle, capsys):
    rc = main(["bench", "--model", str(graph_bundle), "--backend", "onnxruntime", "--batch", "1",
               "--calls", "3", "--no-pipeline"])
    out = capsys.readouterr().out
    assert rc == 0 and out.startswith("machine: ") and "frames/s" in out
    assert "onnxruntime  fp32" in out and "CPUExecutionProvider" in out


def test_cli_bench_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["bench", "--model", str(tmp_path / "nope"), "--no-pipeline"]) == 2
    assert "error: model bundle" in capsys.readouterr().err


def test_cli_compile_int8_writes_and_reports(graph_bundle, tmp_path, capsys):
    from tests.videos import write_video

    clip = write_video(tmp_path / "calib.mp4", np.random.default_rng(1).integers(0, 256, (12, 32, 48, 3), np.uint8))
    assert main(["compile", "--model", str(graph_bundle), "--int8", "--calibrate", str(clip), "--frames", "10"]) == 0
    out = capsys.readouterr().out
    assert (graph_bundle / "model.int8.onnx").is_file()
    assert "label_agreement" in out and "calibrated on 5 frames" in out and "--precision int8" in out


def test_cli_compile_without_tensorrt_names_the_extra(graph_bundle, capsys):
    if backend_status()["tensorrt"] is None:
        pytest.skip("tensorrt is usable here")
    assert main(["compile", "--model", str(graph_bundle)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("parttrack[tensorrt]" in err or "GPU" in err)
    assert main(["compile", "--model", str(graph_bundle), "--device", "cpu"]) == 2
