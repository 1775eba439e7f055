"""Pose formats (tracker.formats) read back by real clients: movement (NWB / DeepLabCut / SLEAP),
the `bvh` parser, and Blender's own BVH importer (slow, skipped without Blender)."""

import importlib.util
import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from parttrack.engine.errors import InputError
from parttrack.engine.synthetic import render_video
from parttrack.tracker.animation import parse_formats, write_exports
from parttrack.tracker.core import JointPositions, Track
from parttrack.tracker.formats import bvh_name, keypoints, tree_root
from parttrack.tracker.io import JointsCSVWriter, read_joints_csv, read_tracks_csv, write_tracks_csv

FPS, W, H = 25.0, 96, 64
HIDDEN = (3, slice(5, 10))  # part index 3 is not visible in frames 5..9


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    """A result folder from a synthetic figure's exact poses (10 parts, 9 joints), with one part
    invisible for a few frames (its pose is still there, as the Kalman prediction would be)."""
    d = tmp_path_factory.mktemp("result")
    v = render_video(24, size=(W, H), figure_seed=0, motion_seed=3, fps=FPS)
    t, k = v.angles_deg.shape
    visible = np.ones((t, k), bool)
    visible[HIDDEN[1], HIDDEN[0]] = False
    conf = np.linspace(0.2, 0.9, t * k).reshape(t, k)
    track = Track(index=np.arange(t), time_s=v.times_s, xy=v.centres, angle_deg=v.angles_deg, scale=v.scales,
                  area_px=np.ones((t, k)), visible=visible, confidence=conf)
    write_tracks_csv(d / "tracks.csv", track, v.part_names)
    with JointsCSVWriter(d / "joints.csv", v.joint_pairs) as w:
        for i in range(t):
            w.write(JointPositions(i, v.times_s[i], v.joint_pairs, v.joints[i]))
    (d / "track.json").write_text(json.dumps({"video": "figure.mp4", "width": W, "height": H, "fps": FPS,
                                              "skeleton_edges": v.joint_pairs.tolist()}))
    return d


@pytest.fixture(scope="module")
def expected(result_dir):
    track, names = read_tracks_csv(result_dir / "tracks.csv")
    joints = read_joints_csv(result_dir / "joints.csv")
    return track, names, joints, keypoints(track, names, joints)


def _movement(fmt, path):
    from movement.io import load_poses

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "nwb":
            return load_poses.from_nwb_file(path)
        if fmt == "dlc":
            return load_poses.from_dlc_file(path, fps=FPS)
        return load_poses.from_sleap_file(path, fps=FPS)


@pytest.mark.parametrize("fmt", ["nwb", "dlc", "sleap"])
def test_movement_reads_the_same_poses(result_dir, expected, fmt):
    pytest.importorskip("movement.io")
    track, names, joints, kp = expected
    written = write_exports(result_dir, [fmt])
    assert len(written) == 1 and written[0].suffix == {"nwb": ".nwb", "dlc": ".csv", "sleap": ".slp"}[fmt]
    ds = _movement(fmt, written[0])
    assert ds.sizes["time"] == len(track) == 24
    assert ds.sizes["individuals"] == 1 and ds.sizes["space"] == 2
    assert sorted(ds.keypoints.values.tolist()) == sorted(kp.names)
    assert len(kp.names) == 10 + 9  # part centres, then joints
    np.testing.assert_allclose(ds.time.values, track.time_s, atol=1e-6)
    for i, name in enumerate(kp.names):
        pos = ds.position.sel(keypoints=name, individuals=ds.individuals.values[0]).values  # (T, 2)
        np.testing.assert_allclose(pos, kp.xy[:, i], atol=1e-4, equal_nan=True)  # float32 in .slp
        conf = ds.confidence.sel(keypoints=name, individuals=ds.individuals.values[0]).values
        np.testing.assert_allclose(conf, kp.confidence[:, i], atol=1e-6)
    # The invisible frames are NaN, the others are the CSV's centres.
    hidden = ds.position.sel(keypoints=names[HIDDEN[0]]).values[HIDDEN[1], :, 0]
    assert np.isnan(hidden).all()
    centre = ds.position.sel(keypoints=names[0]).values[:, :, 0]
    np.testing.assert_allclose(centre, track.xy[:, 0], atol=1e-4)
    # A joint is NaN where either of its parts is not visible.
    k = HIDDEN[0] + 1
    pair = next((int(a), int(b)) for a, b in joints[0].pairs if k in (a, b))
    jname = f"joint_{pair[0]}_{pair[1]}"
    assert np.isnan(ds.position.sel(keypoints=jname).values[HIDDEN[1]]).all()
    assert np.isfinite(ds.position.sel(keypoints=jname).values[:5]).all()


def test_nwb_layout_with_pynwb(result_dir, expected):
    """The ndx-pose objects: a PoseEstimation with one series per keypoint, the skeleton's edges."""
    pynwb = pytest.importorskip("pynwb")
    track, names, joints, kp = expected
    (path,) = write_exports(result_dir, ["nwb"])
    with pynwb.NWBHDF5IO(str(path), mode="r") as io:
        nwb = io.read()
        pe = nwb.processing["behavior"]["PoseEstimation"]
        assert pe.source_software == "parttrack"
        assert list(pe.source_video.dimension[:]) == [W, H]
        assert list(pe.source_video.external_file[:]) == ["figure.mp4"]
        series = pe.pose_estimation_series
        assert set(series) == set(kp.names)
        s0 = series[names[0]]
        assert s0.unit == "pixels" and "y down" in s0.reference_frame
        np.testing.assert_allclose(s0.timestamps[:], track.time_s)
        skel = pe.skeleton
        assert list(skel.nodes[:]) == list(kp.names)
        assert len(skel.edges[:]) == 2 * 9  # part – joint – part for each of the 9 joints
        assert "figure" in nwb.processing["behavior"]["Skeletons"].skeletons


def test_keypoints_leave_out_parts_without_a_pose():
    t = 5
    xy = np.zeros((t, 3, 2))
    xy[:, 1] = np.nan  # e.g. a part dropped from the model
    track = Track(index=np.arange(t), time_s=np.arange(t) / 10, xy=xy, angle_deg=np.zeros((t, 3)),
                  scale=np.ones((t, 3, 2)), area_px=np.ones((t, 3)), visible=np.ones((t, 3), bool),
                  confidence=np.full((t, 3), 0.5))
    kp = keypoints(track, ["a/b", "gone", "a-b"], [], edges=[(1, 3), (1, 2)])
    assert kp.names == ("a-b", "a-b (2)")  # '/' is not allowed in NWB names; names made unique
    assert kp.part_ids.tolist() == [1, 3]
    assert kp.edges.tolist() == [[0, 1]]


# --------------------------------------------------------------------------- BVH
def _forward_kinematics(mocap, frame):
    """World X, Y of every joint's pivot and End Site from the parsed file (Z rotations only)."""
    pivots, ends, frames = {}, {}, {}
    for name in mocap.get_joints_names():
        parent = mocap.joint_parent(name)
        chans = mocap.joint_channels(name)
        vals = dict(zip(chans, mocap.frame_joint_channels(frame, name, chans)))
        off = np.array(mocap.joint_offset(name)[:2])
        if "Xposition" in chans:
            off = np.array([vals["Xposition"], vals["Yposition"]])
        if parent is None:
            origin, rot = np.zeros(2), 0.0
        else:
            origin, rot = pivots[parent.name], frames[parent.name]
        c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
        pivots[name] = origin + np.array([c * off[0] - s * off[1], s * off[0] + c * off[1]])
        frames[name] = rot + vals["Zrotation"]
        end = [n for n in mocap.get_joint(name).children if n.value and n.value[0] == "End"]
        if end:
            e = np.array([float(v) for v in end[0]["OFFSET"][:2]])
            c, s = np.cos(np.radians(frames[name])), np.sin(np.radians(frames[name]))
            ends[name] = pivots[name] + np.array([c * e[0] - s * e[1], s * e[0] + c * e[1]])
    return pivots, ends


def test_bvh_parses_and_reproduces_the_poses(result_dir, expected):
    bvh = pytest.importorskip("bvh")
    track, names, joints, _ = expected
    (path,) = write_exports(result_dir, ["bvh"])
    mocap = bvh.Bvh(path.read_text())
    assert mocap.nframes == len(track)
    assert mocap.frame_time == pytest.approx(1 / FPS, abs=1e-6)
    jnames = mocap.get_joints_names()
    assert sorted(jnames) == sorted(bvh_name(n) for n in names)
    root = jnames[0]
    edges = [tuple(map(int, p)) for p in joints[0].pairs]
    assert root == bvh_name(names[tree_root(range(1, 11), edges) - 1])
    assert mocap.joint_channels(root) == ["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation",
                                          "Yrotation"]
    assert all(mocap.joint_channels(n) == ["Zrotation", "Xrotation", "Yrotation"] for n in jnames[1:])
    by_bvh = {bvh_name(n): k for k, n in enumerate(names)}
    pair_of = {}
    for jname in jnames[1:]:
        a, b = by_bvh[mocap.joint_parent(jname).name] + 1, by_bvh[jname] + 1
        pair_of[jname] = (min(a, b), max(a, b))
    for frame in (0, 7, len(track) - 1):
        pivots, ends = _forward_kinematics(mocap, frame)
        to_img = lambda p: np.array([p[0], (H - 1) - p[1]])  # noqa: E731  BVH X, Y up -> image x, y down
        np.testing.assert_allclose(to_img(pivots[root]), track.xy[frame, by_bvh[root]], atol=1e-3)
        jp = joints[frame]
        for jname, pair in pair_of.items():  # each pivot is the joint with the parent part
            j = [tuple(map(int, p)) for p in jp.pairs].index(pair)
            np.testing.assert_allclose(to_img(pivots[jname]), jp.xy[j], atol=1e-2)
        for jname, e in ends.items():  # End Sites are the leaf parts' centres
            np.testing.assert_allclose(to_img(e), track.xy[frame, by_bvh[jname]], atol=1e-2)
        # Root rotation = the part's angle (counter-clockwise on screen = +Z).
        rz = mocap.frame_joint_channel(frame, root, "Zrotation")
        assert (rz - track.angle_deg[frame, by_bvh[root]] + 180) % 360 - 180 == pytest.approx(0, abs=1e-3)


def test_tree_root_is_the_centre():
    assert tree_root([1, 2, 3, 4, 5], [(1, 2), (2, 3), (3, 4), (4, 5)]) == 3
    assert tree_root([1, 2, 3, 4], [(4, 1), (4, 2), (4, 3)]) == 4
    assert tree_root([1, 2, 3, 4], [(1, 2), (2, 3), (3, 4)]) == 2  # tie: lower id
    assert tree_root([1, 2, 3, 7], [(1, 2)]) == 1  # largest component; isolated parts ignored


def test_bvh_part_without_an_edge_gets_position_channels(tmp_path):
    bvh = pytest.importorskip("bvh")
    from parttrack.tracker.formats import Skeleton, bvh_text

    t = 4
    xy = np.array([[[10.0, 20.0], [30.0, 20.0], [50.0, 5.0]]] * t)
    track = Track(index=np.arange(t), time_s=np.arange(t) / 10, xy=xy, angle_deg=np.zeros((t, 3)),
                  scale=np.ones((t, 3, 2)), area_px=np.ones((t, 3)), visible=np.ones((t, 3), bool),
                  confidence=np.ones((t, 3)))
    skel = Skeleton(np.array([[1, 2]]), np.array([[[10.0, 0.0], [-10.0, 0.0]]]), np.zeros(1), np.zeros(1))
    mocap = bvh.Bvh(bvh_text(track, ["a", "b", "c d"], skel, fps=10.0, height=40))
    assert mocap.get_joints_names() == ["a", "b", "c_d"]
    assert mocap.joint_offset("b") == (10.0, 0.0, 0.0)  # the joint, 10 px along a's first axis
    assert mocap.joint_channels("c_d")[:3] == ["Xposition", "Yposition", "Zposition"]
    assert mocap.frame_joint_channels(0, "c_d", ["Xposition", "Yposition"]) == [40.0, 15.0]  # y up


# --------------------------------------------------------------------------- missing extra
def test_missing_library_names_the_extra(monkeypatch, result_dir, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pynwb" else real(name, *a))
    with pytest.raises(InputError) as err:
        parse_formats("nwb,bvh")
    assert "pynwb" in err.value.message and "parttrack[formats]" in err.value.hint
    assert parse_formats("animation") == ("ae", "blender", "bvh")  # no extra needed
    from parttrack.tracker.cli import main

    assert main(["export", str(result_dir), "--format", "all"]) == 2
    out = capsys.readouterr().err
    assert "pip install 'parttrack[formats]'" in out and "Traceback" not in out
    assert main(["track", str(result_dir / "figure.mp4"), "-o", str(result_dir / "o"), "--export", "pose"]) == 2
    assert "parttrack[formats]" in capsys.readouterr().err


def test_cli_export_all(tmp_path, result_dir, capsys):
    pytest.importorskip("sleap_io")
    from parttrack.tracker.cli import main

    assert main(["export", str(result_dir / "tracks.csv"), "--format", "all", "-o", str(tmp_path)]) == 0
    for rel in ("ae/README.txt", "blender/parttrack_import.py", "nwb/figure.nwb", "dlc/figure.csv",
                "sleap/figure.slp", "bvh/figure.bvh"):
        assert (tmp_path / rel).is_file(), rel


# --------------------------------------------------------------------------- Blender
BLENDER_CHECK = """
import builtins, json, sys, bpy
path, expected = sys.argv[sys.argv.index("--") + 1:]
expected = json.load(open(expected))
# Blender 3.4's BVH add-on opens the file with mode 'rU', which Python 3.11 removed (Debian's
# blender 3.4.1 runs on the system Python 3.11): map it to 'r' so the add-on itself can run.
_open = builtins.open
builtins.open = lambda f, mode="r", *a, **k: _open(f, mode.replace("U", ""), *a, **k)
bpy.ops.import_anim.bvh(filepath=path, update_scene_fps=True, update_scene_duration=True)
arm = [o for o in bpy.data.objects if o.type == "ARMATURE"]
assert len(arm) == 1, arm
arm = arm[0]
assert sorted(b.name for b in arm.data.bones) == sorted(expected["bones"]), [b.name for b in arm.data.bones]
start, end = arm.animation_data.action.frame_range
assert end - start + 1 == expected["frames"], (start, end)
assert abs(bpy.context.scene.render.fps / bpy.context.scene.render.fps_base - expected["fps"]) < 1e-3
worst = 0.0
for frame, points in expected["points"].items():  # BVH X, Y (up) -> Blender X, Z (up)
    bpy.context.scene.frame_set(int(start) + int(frame))
    for name, (which, x, y) in points.items():
        pb = arm.pose.bones[name]
        p = arm.matrix_world @ (pb.head if which == "head" else pb.tail)
        worst = max(worst, abs(p.x - x), abs(p.z - y), abs(p.y))
assert worst < 0.02, worst
print("BVH-OK", len(arm.data.bones), start, end, worst)
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed")
def test_blender_imports_the_bvh(tmp_path, result_dir, expected):
    """Blender's own importer: the bones, the frame range, the fps, and where the root's head and
    the leaf parts' bone tails (their centres) are in frames 0 and 10."""
    bvh = pytest.importorskip("bvh")
    track, names, _, _ = expected
    (path,) = write_exports(result_dir, ["bvh"])
    mocap = bvh.Bvh(path.read_text())
    by_bvh = {bvh_name(n): k for k, n in enumerate(names)}
    jnames = mocap.get_joints_names()
    parents = {mocap.joint_parent(n).name for n in jnames[1:]}
    leaves = [n for n in jnames if n not in parents]
    points = {}
    for frame in (0, 10):
        pts = {jnames[0]: ("head",) + tuple(_bvh_xy(track.xy[frame, by_bvh[jnames[0]]]))}
        pts.update({n: ("tail",) + tuple(_bvh_xy(track.xy[frame, by_bvh[n]])) for n in leaves})
        points[str(frame)] = pts
    (tmp_path / "expected.json").write_text(json.dumps({"bones": jnames, "frames": len(track), "fps": FPS,
                                                        "points": points}))
    (tmp_path / "check.py").write_text(BLENDER_CHECK)
    proc = subprocess.run(["blender", "-b", "--factory-startup", "--python", str(tmp_path / "check.py"), "--",
                           str(path), str(tmp_path / "expected.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "BVH-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]


def _bvh_xy(xy):
    return [float(xy[0]), float((H - 1) - xy[1])]
