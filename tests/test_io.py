"""CSV schema, round trips and row counts; label PNGs; overlay video writer; atomic JSON."""

from __future__ import annotations

import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.tracker.core import JointPositions, PartPoses, Track
from parttrack.tracker.io import (
    JOINTS_COLUMNS,
    TRACKS_COLUMNS,
    JointsCSVWriter,
    TracksCSVWriter,
    VideoWriter,
    read_joints_csv,
    read_json,
    read_label_png,
    read_tracks_csv,
    write_json,
    write_label_png,
    write_tracks_csv,
)


def _poses(index: int, k: int = 3, rng=None) -> PartPoses:
    rng = rng or np.random.default_rng(index)
    return PartPoses(
        index=index, time_s=index / 30.0,
        xy=rng.uniform(0, 640, (k, 2)), angle_deg=rng.uniform(-179, 180, k),
        scale=rng.uniform(1, 50, (k, 2)), area_px=rng.uniform(0, 5000, k).round(1),
        visible=rng.random(k) > 0.3, confidence=rng.uniform(0, 1, k),
    )


def test_tracks_csv_header_rows_and_round_trip(tmp_path):
    path = tmp_path / "tracks.csv"
    names = ("head", "arm, left", "leg")  # a comma in a name must survive CSV quoting
    poses = [_poses(i) for i in range(5)]
    with TracksCSVWriter(path, names) as w:
        for p in poses:
            w.write(p)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(TRACKS_COLUMNS)
    assert lines[0] == "frame,time_s,part,part_name,x,y,angle_deg,scale_x,scale_y,area_px,visible,confidence"
    assert len(lines) == 1 + 5 * 3 and w.rows == 15
    track, got_names = read_tracks_csv(path)
    assert got_names == names
    ref = Track.from_poses(poses)
    assert len(track) == 5 and track.num_parts == 3
    np.testing.assert_array_equal(track.index, ref.index)
    np.testing.assert_allclose(track.time_s, ref.time_s, atol=1e-6)
    np.testing.assert_allclose(track.xy, ref.xy, atol=1e-3)
    np.testing.assert_allclose(track.angle_deg, ref.angle_deg, atol=1e-3)
    np.testing.assert_allclose(track.scale, ref.scale, atol=1e-3)
    np.testing.assert_allclose(track.confidence, ref.confidence, atol=1e-4)
    np.testing.assert_array_equal(track.visible, ref.visible)


def test_tracks_writer_rejects_other_k(tmp_path):
    with TracksCSVWriter(tmp_path / "t.csv", ("a", "b")) as w:
        with pytest.raises(ValueError, match="K=3"):
            w.write(_poses(0, k=3))


def test_rows_are_on_disk_before_close(tmp_path):
    """An interrupted run leaves the frames written so far (rows flushed per frame)."""
    path = tmp_path / "t.csv"
    w = TracksCSVWriter(path, ("a", "b"))
    w.write(_poses(0, k=2))
    w.write(_poses(1, k=2))
    track, _ = read_tracks_csv(path)  # the writer is still open
    assert len(track) == 2
    w.close()


def test_partial_trailing_frame_is_dropped(tmp_path):
    path = write_tracks_csv(tmp_path / "t.csv", Track.from_poses([_poses(i) for i in range(3)]), ("a", "b", "c"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # cut the last row: frame 2 is incomplete
    track, _ = read_tracks_csv(path)
    assert len(track) == 2


@pytest.mark.parametrize("text, match", [
    ("frame,time_s,part,x,y\n", "expected columns"),
    ("", "expected columns"),
    (",".join(TRACKS_COLUMNS) + "\n0,0.0,1,a,1,2,3\n", "expected 12 fields"),
    (",".join(TRACKS_COLUMNS) + "\n0,0.0,1,a,x,2,3,4,5,6,1,0.5\n", "malformed number"),
    (",".join(TRACKS_COLUMNS) + "\n0,0.0,2,a,1,2,3,4,5,6,1,0.5\n0,0.0,1,b,1,2,3,4,5,6,1,0.5\n", "parts 1..2"),
])
def test_tracks_reader_rejects_bad_files(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_tracks_csv(path)


def test_missing_csv_is_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_tracks_csv(tmp_path / "nope.csv")


def test_joints_csv_round_trip_and_stable_ids(tmp_path):
    path = tmp_path / "joints.csv"
    frames = [
        JointPositions(0, 0.0, np.array([[1, 2], [2, 3]]), np.array([[1.0, 2.0], [3.0, 4.0]])),
        JointPositions(1, 0.04, np.array([[3, 2], [1, 2]]), np.array([[5.0, 6.0], [7.0, 8.0]])),
        JointPositions(2, 0.08, np.zeros((0, 2), np.int64), np.zeros((0, 2))),
    ]
    with JointsCSVWriter(path) as w:
        for j in frames:
            w.write(j)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(JOINTS_COLUMNS) == "frame,time_s,joint,part_a,part_b,x,y"
    assert len(lines) == 5
    assert lines[3].startswith("1,0.040000,2,2,3,")  # pair (3, 2) is stored as (2, 3), id 2
    back = read_joints_csv(path)
    assert [j.index for j in back] == [0, 1]
    np.testing.assert_array_equal(back[1].pairs, [[2, 3], [1, 2]])
    np.testing.assert_allclose(back[1].xy, [[5, 6], [7, 8]])


def test_label_png_round_trip(tmp_path):
    labels = np.random.default_rng(0).integers(0, 11, (37, 53), dtype=np.uint8)
    path = write_label_png(tmp_path / "000000.png", labels)
    np.testing.assert_array_equal(read_label_png(path), labels)
    with pytest.raises(ValueError):
        write_label_png(tmp_path / "x.png", labels.astype(np.int32))


def test_video_writer_odd_size_and_timestamps(tmp_path):
    import av

    path = tmp_path / "overlay.mp4"
    times = [0.0, 0.04, 0.1, 0.13]
    with VideoWriter(path, 33, 21, fps=25) as vw:
        for i, t in enumerate(times):
            vw.write(np.full((21, 33, 3), 40 * i, np.uint8), t)
    with av.open(str(path)) as c:
        got = [f.time for f in c.decode(video=0)]
        w, h = c.streams.video[0].width, c.streams.video[0].height
    assert (w, h) == (34, 22)
    np.testing.assert_allclose(got, times, atol=1e-3)


def test_video_writer_closes_on_exception(tmp_path):
    import av

    path = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 32, 32, fps=10) as vw:
            for i in range(5):
                vw.write(np.full((32, 32, 3), 50 * i, np.uint8))
            raise KeyboardInterrupt
    with av.open(str(path)) as c:
        assert len(list(c.decode(video=0))) == 5


def test_write_json_atomic(tmp_path):
    path = write_json(tmp_path / "done.json", {"a": np.float64(1.5), "b": np.arange(3)})
    assert read_json(path) == {"a": 1.5, "b": [0, 1, 2]}
    assert not list(tmp_path.glob(".*.tmp"))
