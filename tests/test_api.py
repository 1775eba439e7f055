"""The public API (parttrack/api.py) and the README's Python example, run as a user would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import parttrack
from tests.videos import write_video

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "trained" / "bbb" / "clip.mp4"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section has one example"
    return blocks[0]


def test_readme_example_runs(tmp_path):
    (tmp_path / "trained" / "bbb").mkdir(parents=True)
    shutil.copy(CLIP, tmp_path / "trained" / "bbb" / "clip.mp4")
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(132, 10, 2)" in proc.stdout
    assert (tmp_path / "out" / "api" / "clip" / "tracks.csv").is_file()
    assert (tmp_path / "out" / "api" / "clip" / "bvh").is_dir() and (tmp_path / "out" / "api" / "clip" / "ae").is_dir()


def test_version_and_lazy_import():
    assert re.match(r"\d+\.\d+", parttrack.__version__)
    code = "import sys, parttrack; print('onnxruntime' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        getattr(parttrack, "no_such_name")


@pytest.fixture(scope="module")
def model():
    return parttrack.load_model()


def test_track_video_matches_the_csv_of_parttrack_track(model, tmp_path):
    tracks = parttrack.track_video(CLIP, model, max_frames=30)
    assert len(tracks) == 30 and tracks.xy.shape == (30, model.num_parts, 2)
    assert tracks.time_s.shape == (30,) and np.all(np.diff(tracks.time_s) > 0)
    result = parttrack.track_to_folder(CLIP, tmp_path / "r", model)
    assert result.status == "done"
    pd = pytest.importorskip("pandas")
    csv = pd.read_csv(tmp_path / "r" / "tracks.csv")
    df = parttrack.track_video(CLIP, model).to_dataframe()
    assert list(df.columns) == list(csv.columns) and len(df) == len(csv)
    for col in ("frame", "part", "x", "y", "angle_deg", "visible"):
        np.testing.assert_allclose(df[col].to_numpy(float), csv[col].to_numpy(float), atol=1e-3, equal_nan=True)


def test_tracker_process_frame_by_frame(model):
    frames = np.stack([np.full((48, 64, 3), 40, np.uint8)] * 3)
    frames[:, 10:30, 20:40] = 220
    tr = parttrack.Tracker(model)
    poses = [tr.process(f, time_s=i / 25) for i, f in enumerate(frames)]
    assert poses[-1].xy.shape == (model.num_parts, 2) and poses[-1].time_s == pytest.approx(2 / 25)
    with pytest.raises(ValueError, match="uint8"):
        tr.process(frames[0].astype(np.float32))
    with pytest.raises(ValueError, match="whole video"):
        parttrack.Tracker(model, smoother="offline")


def test_track_video_bad_input_is_a_clear_error(model, tmp_path):
    from parttrack.engine.errors import InputError

    with pytest.raises(InputError):
        parttrack.track_video(tmp_path / "missing.mp4", model)
    clip = write_video(tmp_path / "tiny.mp4", np.zeros((3, 32, 32, 3), np.uint8))
    assert len(parttrack.track_video(clip, model)) == 3
