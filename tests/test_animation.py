"""Animation exports: After Effects keyframe data and the Blender import script, round-tripped
against the tracks they were made from."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.engine.synthetic import render_video
from parttrack.tracker import blender_import as bi
from parttrack.tracker.animation import (
    ExportSettings,
    ae_frames,
    ae_part_text,
    blender_script_text,
    export_tracks,
    parse_ae_keyframes,
    write_exports,
)
from parttrack.tracker.core import JointPositions, Track
from parttrack.tracker.io import JointsCSVWriter, read_tracks_csv, write_tracks_csv

FPS, W, H = 25.0, 96, 64


def _track(xy, angle, scale, times, visible=None):
    t, k = angle.shape
    return Track(index=np.arange(t), time_s=np.asarray(times, float), xy=xy, angle_deg=angle, scale=scale,
                 area_px=np.ones((t, k)), visible=np.ones((t, k), bool) if visible is None else visible,
                 confidence=np.ones((t, k)))


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    """A result folder made from a synthetic video's exact poses (10 parts, 9 joints)."""
    d = tmp_path_factory.mktemp("result")
    v = render_video(30, size=(W, H), figure_seed=0, motion_seed=3, fps=FPS)
    write_tracks_csv(d / "tracks.csv", _track(v.centres, v.angles_deg, v.scales, v.times_s), v.part_names)
    with JointsCSVWriter(d / "joints.csv", v.joint_pairs) as w:
        for i in range(len(v)):
            w.write(JointPositions(i, v.times_s[i], v.joint_pairs, v.joints[i]))
    (d / "track.json").write_text(json.dumps({"video": "figure.mp4", "width": W, "height": H, "fps": FPS,
                                              "skeleton_edges": v.joint_pairs.tolist()}))
    return d


def test_write_exports_files(result_dir):
    written = write_exports(result_dir, ["ae", "blender"])
    names = {p.relative_to(result_dir).as_posix() for p in written}
    assert "ae/part1_torso.txt" in names and "ae/part10_lower_leg_r.txt" in names
    assert "ae/joint1_1_2.txt" in names and "ae/README.txt" in names
    assert {"blender/parttrack_import.py", "blender/tracks.csv", "blender/joints.csv"} <= names
    assert all(p.is_file() for p in written)


def test_after_effects_round_trip(result_dir):
    write_exports(result_dir, "ae")
    track, names = read_tracks_csv(result_dir / "tracks.csv")
    for k, name in enumerate(names):
        text = (result_dir / "ae" / f"part{k + 1}_{name}.txt").read_bytes().decode("utf-8")
        assert text.startswith("Adobe After Effects 8.0 Keyframe Data\r\n\r\n\tUnits Per Second\t25\r\n")
        assert "Transform\tPosition\r\n\tFrame\tX pixels\tY pixels\tZ pixels\t\r\n" in text
        assert "Transform\tRotation\r\n\tFrame\tdegrees\t\r\n" in text
        assert text.rstrip().endswith("End of Keyframe Data")
        doc = parse_ae_keyframes(text)
        assert doc["header"] == {"Units Per Second": 25.0, "Source Width": W, "Source Height": H,
                                 "Source Pixel Aspect Ratio": 1.0, "Comp Pixel Aspect Ratio": 1.0}
        pos, rot, sc = doc["blocks"]["Position"], doc["blocks"]["Rotation"], doc["blocks"]["Scale"]
        frames = np.round(track.time_s * FPS).astype(int)
        for block in (pos, rot, sc):
            np.testing.assert_array_equal(block[:, 0], frames)
        np.testing.assert_allclose(pos[:, 1:3], track.xy[:, k] + 0.5, atol=1e-4)
        assert np.all(pos[:, 3] == 0)
        # AE rotation is clockwise-positive: the same direction as -angle_deg (mod 360).
        diff = (rot[:, 1] + track.angle_deg[:, k] + 180) % 360 - 180
        np.testing.assert_allclose(diff, 0, atol=1e-3)
        # Scale: percent of the median half-extents (constant-size synthetic parts -> 100 %).
        np.testing.assert_allclose(sc[:, 1:3], 100.0, atol=1e-3)
        assert np.all(sc[:, 3] == 100)
    # Joints: one Position block each.
    doc = parse_ae_keyframes((result_dir / "ae" / "joint2_1_3.txt").read_text())
    from parttrack.tracker.io import read_joints_csv
    joints = read_joints_csv(result_dir / "joints.csv")
    np.testing.assert_allclose(doc["blocks"]["Position"][:, 1:3],
                               np.array([j.xy[1] for j in joints]) + 0.5, atol=1e-4)


def test_ae_rotation_is_unwrapped_and_scale_follows_the_part():
    t = 40
    angle = ((np.arange(t) * 17.0 + 170) + 180) % 360 - 180   # crosses ±180 several times
    scale = np.stack([np.linspace(10, 20, t), np.full(t, 5.0)], -1)[:, None]
    tr = _track(np.zeros((t, 1, 2)), angle[:, None], scale, np.arange(t) / 30.0)
    doc = parse_ae_keyframes(ae_part_text(tr, 0, ExportSettings(30.0, 64, 48)))
    rot = doc["blocks"]["Rotation"][:, 1]
    np.testing.assert_allclose(np.diff(rot), -17.0, atol=1e-3)       # continuous, clockwise
    assert rot[0] == pytest.approx(-170.0)
    sc = doc["blocks"]["Scale"]
    np.testing.assert_allclose(sc[:, 1] * np.median(scale[:, 0, 0]) / 100, scale[:, 0, 0], atol=1e-3)
    np.testing.assert_allclose(sc[:, 2], 100.0)


def test_ae_frames_from_timestamps():
    # Variable frame rate: times jitter around 1/25 s, one duplicate frame, an offset start.
    times = 3.0 + np.array([0, 0.041, 0.079, 0.081, 0.12, 0.2])
    frames, keep = ae_frames(times, 25.0)
    np.testing.assert_array_equal(frames, [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(keep, [0, 1, 2, 4, 5])
    frames, keep = ae_frames(np.arange(10) / 60.0, 30.0)          # 60 fps track, 30 fps comp
    np.testing.assert_array_equal(frames, [0, 1, 2, 3, 4])        # numpy rounds half to even
    np.testing.assert_array_equal(keep, [0, 2, 3, 6, 7])


def test_nan_poses_are_filled_not_written():
    t = 6
    xy = np.arange(t * 2, dtype=float).reshape(t, 1, 2)
    xy[2] = np.nan
    tr = _track(xy, np.zeros((t, 1)), np.ones((t, 1, 2)), np.arange(t) / 25.0)
    text = ae_part_text(tr, 0, ExportSettings(25.0, 64, 48))
    assert "nan" not in text.lower()
    pos = parse_ae_keyframes(text)["blocks"]["Position"]
    np.testing.assert_allclose(pos[2, 1:3], xy[1, 0] + 0.5)


def test_parse_rejects_other_text():
    with pytest.raises(ValueError):
        parse_ae_keyframes("hello\n")
    with pytest.raises(ValueError):
        parse_ae_keyframes("Adobe After Effects 8.0 Keyframe Data\n\n\tUnits Per Second\t25\n")


def test_export_without_track_json_needs_fps_and_size(tmp_path, result_dir):
    shutil.copy(result_dir / "tracks.csv", tmp_path / "tracks.csv")
    with pytest.raises(InputError) as exc:
        export_tracks(tmp_path / "tracks.csv", tmp_path / "out", "ae")
    assert "--fps" in exc.value.hint
    written = export_tracks(tmp_path / "tracks.csv", tmp_path / "out", "ae", fps=30, width=W, height=H)
    doc = parse_ae_keyframes(written[0].read_text())
    assert doc["header"]["Units Per Second"] == 30
    with pytest.raises(InputError):
        export_tracks(tmp_path / "tracks.csv", tmp_path / "out", "fbx", fps=30, width=W, height=H)
    with pytest.raises(InputError):
        export_tracks(tmp_path / "tracks.csv", tmp_path / "out", "ae", fps=0, width=W, height=H)


def test_cli_export(tmp_path, result_dir, capsys):
    from parttrack.tracker.cli import main

    assert main(["export", str(result_dir / "tracks.csv"), "--format", "blender", "-o", str(tmp_path)]) == 0
    assert (tmp_path / "blender" / "parttrack_import.py").is_file()
    assert not (tmp_path / "ae").exists()
    assert "wrote 3 files" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nothing.csv")]) == 2
    assert "error:" in capsys.readouterr().err


# -- Blender: the pure-Python half of the script, then (slow) the script inside Blender ----
def test_blender_script_settings_are_filled(result_dir):
    text = blender_script_text(ExportSettings(29.97, 640, 480, "clip", ((1, 2), (2, 3))), px_per_unit=50.0)
    ns = {"__name__": "not_main"}
    exec(compile(text, "parttrack_import.py", "exec"), ns)   # plain Python: no bpy at import
    assert ns["SETTINGS"] == {"tracks_csv": "tracks.csv", "joints_csv": "joints.csv", "fps": 29.97,
                              "width": 640, "height": 480, "px_per_unit": 50.0,
                              "skeleton_edges": [[1, 2], [2, 3]], "name": "clip", "frame_start": 1}


def test_blender_keyframe_conversion(result_dir):
    track, names = read_tracks_csv(result_dir / "tracks.csv")
    parts = bi.read_tracks(str(result_dir / "tracks.csv"))
    assert sorted(parts) == list(range(1, 11)) and parts[2]["name"] == "head"
    settings = dict(bi.SETTINGS, fps=FPS, width=W, height=H, px_per_unit=10.0)
    frames, loc, rz, sc = bi.part_keyframes(parts[3], settings)
    assert frames == list(range(1, len(track) + 1))
    x, y = track.xy[:, 2, 0], track.xy[:, 2, 1]
    np.testing.assert_allclose([l[0] for l in loc], (x + 0.5 - W / 2) / 10.0, atol=1e-9)
    np.testing.assert_allclose([l[1] for l in loc], (H / 2 - (y + 0.5)) / 10.0, atol=1e-9)
    # Blender Z rotation is counter-clockwise seen from +Z with Y up: the same sense as angle_deg.
    np.testing.assert_allclose(np.degrees(rz), np.degrees(np.unwrap(np.radians(track.angle_deg[:, 2]))), atol=1e-6)
    np.testing.assert_allclose([s[0] for s in sc], track.scale[:, 2, 0] / 10.0)
    # Image corners map to ±W/2, ±H/2 pixels around the origin (pixel edges, not centres).
    assert bi.to_blender_xy(-0.5, -0.5, W, H, 1.0) == (-W / 2, H / 2)
    assert bi.unwrap_deg([170, -170, -150, 170]) == [170, 190, 210, 170]
    joints = bi.read_joints(str(result_dir / "joints.csv"))
    assert sorted(joints)[0] == (1, 2) and len(joints) == 9


def test_skeleton_parents_is_a_spanning_forest():
    edges = [(1, 2), (1, 3), (3, 4), (1, 5), (5, 6), (7, 8)]
    parents = bi.skeleton_parents(list(range(1, 10)), edges)
    assert parents[1] is None and parents[2] == 1 and parents[4] == 3 and parents[6] == 5
    assert parents[7] is None and parents[8] == 7 and parents[9] is None   # separate pieces
    for child, par in parents.items():
        if par is not None:
            assert (min(child, par), max(child, par)) in edges


_CHECK = r'''
import bpy, json, math
scene = bpy.context.scene
rig = [o for o in bpy.data.objects if o.type == "ARMATURE"][0]
out = {"fps": scene.render.fps / scene.render.fps_base, "range": [scene.frame_start, scene.frame_end],
       "res": [scene.render.resolution_x, scene.render.resolution_y], "parts": {}, "bones": {}, "joints": {},
       "parents": {b.name: (b.parent.name if b.parent else None) for b in rig.data.bones}}
for f in range(scene.frame_start, scene.frame_end + 1, 7):
    scene.frame_set(f)
    for o in bpy.data.objects:
        m = o.matrix_world
        if o.type == "EMPTY" and o.name.startswith("part") and not o.name.endswith(".bone"):
            out["parts"].setdefault(o.name, {})[f] = [m.translation.x, m.translation.y,
                math.degrees(math.atan2(m[1][0], m[0][0])), m.col[0].length, m.col[1].length]
        elif o.name.startswith("joint_"):
            out["joints"].setdefault(o.name, {})[f] = [m.translation.x, m.translation.y]
    for pb in rig.pose.bones:
        m = rig.matrix_world @ pb.matrix
        out["bones"].setdefault(pb.name, {})[f] = [m.translation.x, m.translation.y,
            math.degrees(math.atan2(m.col[1][1], m.col[1][0])), pb.length * m.col[1].length]
print("CHECK_JSON " + json.dumps(out))
'''


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed")
def test_blender_script_runs_in_blender(tmp_path, result_dir):
    write_exports(result_dir, "blender")
    (tmp_path / "check.py").write_text(_CHECK)
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python",
                           str(result_dir / "blender" / "parttrack_import.py"), "--python", str(tmp_path / "check.py"),
                           "--", "--save", str(tmp_path / "scene.blend")],
                          capture_output=True, text=True, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK_JSON ")]
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(line[0][len("CHECK_JSON "):])
    assert (tmp_path / "scene.blend").is_file()
    track, names = read_tracks_csv(result_dir / "tracks.csv")
    ppu = 100.0
    assert out["fps"] == pytest.approx(FPS) and out["range"] == [1, len(track)] and out["res"] == [W, H]
    assert out["parents"]["part2_head"] == "part1_torso" and out["parents"]["part1_torso"] is None
    checked = 0
    for k, name in enumerate(names):
        obj = f"part{k + 1}_{name}"
        for f, (bx, by, ang, sx, sy) in out["parts"][obj].items():
            i = int(f) - 1
            assert bx == pytest.approx((track.xy[i, k, 0] + 0.5 - W / 2) / ppu, abs=1e-5)
            assert by == pytest.approx((H / 2 - track.xy[i, k, 1] - 0.5) / ppu, abs=1e-5)
            assert (ang - track.angle_deg[i, k] + 180) % 360 - 180 == pytest.approx(0, abs=1e-3)
            assert (sx, sy) == pytest.approx(tuple(track.scale[i, k] / ppu), abs=1e-5)
            # The rig's bone for the part sits on it and points along its first axis.
            hx, hy, bang, blen = out["bones"][obj][f]
            assert (hx, hy) == pytest.approx((bx, by), abs=1e-4)
            assert (bang - track.angle_deg[i, k] + 180) % 360 - 180 == pytest.approx(0, abs=1e-2)
            assert blen == pytest.approx(track.scale[i, k, 0] / ppu, rel=1e-3)
            checked += 1
    assert checked >= 10 * 4
    jx, jy = out["joints"]["joint_1_2"]["8"]
    from parttrack.tracker.io import read_joints_csv
    j = read_joints_csv(result_dir / "joints.csv")[7].xy[0]
    assert (jx, jy) == pytest.approx(((j[0] + 0.5 - W / 2) / ppu, (H / 2 - j[1] - 0.5) / ppu), abs=1e-5)


def test_blender_script_reads_the_same_csv_schema_as_tracker_io():
    """The Blender script cannot import parttrack inside Blender, so it repeats the column
    orders; they must not drift from tracker.io's."""
    from parttrack.tracker import blender_import
    from parttrack.tracker.io import JOINTS_COLUMNS, TRACKS_COLUMNS

    assert blender_import.TRACKS_COLUMNS == TRACKS_COLUMNS
    assert blender_import.JOINTS_COLUMNS == JOINTS_COLUMNS
