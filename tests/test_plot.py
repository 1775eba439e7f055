"""`parttrack plot` / tracker.plot: the picture of the tracks is written, has the figure's size and
shows something; bad input is an error with exit status 2."""

import json

import numpy as np
import pytest

from parttrack.engine.synthetic import render_video
from parttrack.tracker.core import JointPositions, Track
from parttrack.tracker.io import JointsCSVWriter, write_tracks_csv
from parttrack.tracker.plot import TRACKS_PNG, choose_frame, plot_result

W, H, FPS = 96, 64, 25.0


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    v = render_video(20, size=(W, H), figure_seed=1, motion_seed=2, fps=FPS)
    v.save(d / "video")
    t, k = v.angles_deg.shape
    visible = np.ones((t, k), bool)
    visible[4:9, 2] = False
    xy = v.centres.copy()
    xy[:, 5] = np.nan  # a part without a pose: left out
    track = Track(index=np.arange(t), time_s=v.times_s, xy=xy, angle_deg=v.angles_deg, scale=v.scales,
                  area_px=np.ones((t, k)), visible=visible, confidence=np.ones((t, k)))
    write_tracks_csv(d / "tracks.csv", track, v.part_names)
    with JointsCSVWriter(d / "joints.csv", v.joint_pairs) as w:
        for i in range(t):
            w.write(JointPositions(i, v.times_s[i], v.joint_pairs, v.joints[i]))
    video = next((d / "video").glob("*.mp4"))
    (d / "track.json").write_text(json.dumps({"video": str(video), "width": W, "height": H, "fps": FPS,
                                              "part_names": list(v.part_names)}))
    return d


def _png(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_plot_writes_the_picture(result_dir):
    out = plot_result(result_dir)
    assert out == result_dir / TRACKS_PNG
    img = _png(out)
    assert img.shape[:2] == (900, 1500)
    assert img[..., :3].std() > 0.05  # not blank


def test_cli_plot(tmp_path, result_dir, capsys):
    from parttrack.tracker.cli import main

    out = tmp_path / "pic.png"
    assert main(["plot", str(result_dir), "-o", str(out), "--frame", "3", "--dpi", "50"]) == 0
    assert _png(out).shape[:2] == (450, 750)
    assert str(out) in capsys.readouterr().out
    assert main(["plot", str(result_dir), "-o", str(out), "--frame", "99"]) == 2
    assert "outside the tracks" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "no tracks.csv" in capsys.readouterr().err


def test_plot_without_the_video(tmp_path, result_dir):
    out = plot_result(result_dir, tmp_path / "p.png", video=tmp_path / "missing.mp4")
    assert out.is_file()


def test_choose_frame():
    vis = np.zeros((9, 3), bool)
    vis[2:7, :2] = True
    vis[[3, 5], 2] = True
    assert choose_frame(vis) in (3, 5)
    assert choose_frame(vis, limit=4) == 3
    assert choose_frame(np.zeros((4, 2), bool)) in (1, 2)


def test_strip_labels_fit_the_margin():
    """The visibility strip numbers each part and cuts long names (the legend keeps them whole)."""
    from parttrack.tracker.plot import STRIP_NAME_CHARS, strip_label

    assert strip_label(0, "head") == "1 head"
    long = strip_label(9, "arm outline (screen left)")
    assert long.startswith("10 arm outline") and long.endswith("…")
    assert len(long) == len("10 ") + STRIP_NAME_CHARS
