"""Blender import script for parttrack tracks (runs inside Blender; standalone).

``parttrack export --format blender`` copies this file (with its settings block filled in)
next to a copy of ``tracks.csv`` / ``joints.csv``. In Blender (2.93 or newer):

* GUI: Scripting workspace → Text → Open → ``parttrack_import.py`` → Run Script; or
* headless: ``blender -b --python parttrack_import.py -- [--tracks T.csv] [--joints J.csv]
  [--fps F] [--width W] [--height H] [--px-per-unit N] [--save out.blend]``.

It creates, in a collection named after the video:

* one **empty** per part (``part<ID>_<name>``, arrows display) keyframed every frame:
  location, Z rotation and X/Y scale — the part's smoothed affine pose;
* one **empty** per joint (``joint_<a>_<b>``, sphere display) keyframed with its position;
* a 2-D **armature** ``<name>_rig``: one bone per part, head at the part's centre in the first
  frame, tail along the part's first axis (length = its half-extent), bones parented along the
  skeleton (a tree grown from the part with most neighbours); each pose bone follows its part's
  empty (a *Copy Transforms* constraint on a hidden helper empty that carries the rest-pose
  offset), so artwork parented to a bone moves with the part;
* an orthographic camera framing the video, the scene's fps, frame range and resolution.

Conventions (Blender is right-handed, Z up; the video lies in the XY plane, seen from +Z):
``X = (x + 0.5 − width/2) / px_per_unit``, ``Y = (height/2 − (y + 0.5)) / px_per_unit``
(x, y = parttrack source pixels, y down, pixel centres at integers, so the image spans
``±width/2`` × ``±height/2`` pixels around the origin); rotation about Z in radians =
``angle_deg`` (counter-clockwise on screen in parttrack = counter-clockwise seen from +Z),
unwrapped so it never jumps by 360°; empty scale X/Y = ``scale_x / px_per_unit``,
``scale_y / px_per_unit`` (an empty of display size 1 then spans the part's half-extents);
Blender frame = ``frame_start + round((time_s − first time_s) · fps)``.

Everything above ``build_scene`` is plain Python (no ``bpy``) so it can be tested outside
Blender.
"""

import csv
import math
import os
import sys

# The CSV schemas of tracker.io, repeated here because this script runs inside Blender's own
# Python without parttrack; tests/test_animation.py checks they stay equal to tracker.io's.
TRACKS_COLUMNS = ("frame", "time_s", "part", "part_name", "x", "y", "angle_deg", "scale_x",
                  "scale_y", "area_px", "visible", "confidence")
JOINTS_COLUMNS = ("frame", "time_s", "joint", "part_a", "part_b", "x", "y")

# --- parttrack export settings (rewritten by tracker.animation) ---
SETTINGS = {
    "tracks_csv": "tracks.csv",
    "joints_csv": "joints.csv",
    "fps": 25.0,
    "width": 640,
    "height": 480,
    "px_per_unit": 100.0,
    "skeleton_edges": [],
    "name": "parttrack",
    "frame_start": 1,
}
# --- end of settings ---


# ----------------------------------------------------------------------- pure Python
def read_tracks(path):
    """tracks.csv → ``{part_id: {"name", "time", "x", "y", "angle", "sx", "sy", "visible"}}``
    (lists per frame, file order). Checks the fixed parttrack column order."""
    expected = list(TRACKS_COLUMNS)
    parts = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != expected:
            raise ValueError("%s: not a parttrack tracks.csv (header %r)" % (path, header))
        for row in reader:
            if len(row) != len(expected):
                continue  # a truncated last line of an interrupted run
            pid = int(row[2])
            p = parts.setdefault(pid, {"name": row[3], "time": [], "x": [], "y": [], "angle": [],
                                       "sx": [], "sy": [], "visible": []})
            p["time"].append(float(row[1]))
            p["x"].append(float(row[4]))
            p["y"].append(float(row[5]))
            p["angle"].append(float(row[6]))
            p["sx"].append(float(row[7]))
            p["sy"].append(float(row[8]))
            p["visible"].append(row[10] == "1")
    # a part without any pose (NaN in every row, e.g. dropped from the model) is not imported
    return {pid: p for pid, p in parts.items() if any(math.isfinite(x) for x in p["x"])}


def read_joints(path):
    """joints.csv → ``{(part_a, part_b): {"time": [...], "x": [...], "y": [...]}}``."""
    expected = list(JOINTS_COLUMNS)
    joints = {}
    if not path or not os.path.isfile(path):
        return joints
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header != expected:
            raise ValueError("%s: not a parttrack joints.csv (header %r)" % (path, header))
        for row in reader:
            if len(row) != len(expected):
                continue
            j = joints.setdefault((int(row[3]), int(row[4])), {"time": [], "x": [], "y": []})
            j["time"].append(float(row[1]))
            j["x"].append(float(row[5]))
            j["y"].append(float(row[6]))
    return joints


def to_blender_xy(x, y, width, height, px_per_unit):
    """parttrack source pixels (y down, pixel centres at integers) → Blender (X, Y) units."""
    return (x + 0.5 - width / 2.0) / px_per_unit, (height / 2.0 - (y + 0.5)) / px_per_unit


def unwrap_deg(angles):
    """Remove 360° jumps from a sequence of angles in degrees (continuous rotation)."""
    out, prev, offset = [], None, 0.0
    for a in angles:
        if not math.isfinite(a):
            out.append(out[-1] if out else 0.0)
            continue
        if prev is not None:
            d = a - prev
            offset -= 360.0 * round(d / 360.0)
        out.append(a + offset)
        prev = a
    return out


def frame_numbers(times, fps, frame_start=1, t0=None):
    """Blender frame numbers of stream times: ``frame_start + round((t − t0) · fps)``."""
    t0 = times[0] if t0 is None else t0
    return [frame_start + int(round((t - t0) * fps)) for t in times]


def part_keyframes(part, settings, t0=None):
    """Keyframes of one part: ``(frames, locations [(X, Y, 0)], rotations_z [rad],
    scales [(sx, sy, 1)])``; samples that round to an already used frame, and samples without
    a pose (NaN), are dropped."""
    w, h, ppu = settings["width"], settings["height"], float(settings["px_per_unit"])
    frames = frame_numbers(part["time"], settings["fps"], settings.get("frame_start", 1), t0)
    rot = unwrap_deg(part["angle"])
    out_f, loc, rz, sc, seen = [], [], [], [], set()
    for i, f in enumerate(frames):
        pose = (part["x"][i], part["y"][i], part["sx"][i], part["sy"][i])
        if f in seen or not all(math.isfinite(v) for v in pose):
            continue
        seen.add(f)
        out_f.append(f)
        loc.append(to_blender_xy(part["x"][i], part["y"][i], w, h, ppu) + (0.0,))
        rz.append(math.radians(rot[i]))
        sc.append((max(part["sx"][i], 1e-6) / ppu, max(part["sy"][i], 1e-6) / ppu, 1.0))
    return out_f, loc, rz, sc


def joint_keyframes(joint, settings, t0=None):
    """Keyframes of one joint: ``(frames, locations [(X, Y, 0)])``."""
    w, h, ppu = settings["width"], settings["height"], float(settings["px_per_unit"])
    frames = frame_numbers(joint["time"], settings["fps"], settings.get("frame_start", 1), t0)
    out_f, loc, seen = [], [], set()
    for i, f in enumerate(frames):
        if f not in seen:
            seen.add(f)
            out_f.append(f)
            loc.append(to_blender_xy(joint["x"][i], joint["y"][i], w, h, ppu) + (0.0,))
    return out_f, loc


def skeleton_parents(part_ids, edges):
    """``{part_id: parent part_id or None}``: a spanning forest of the skeleton graph grown
    breadth-first from the part with most neighbours (ties: lowest id)."""
    nbrs = {p: set() for p in part_ids}
    for a, b in edges:
        if a in nbrs and b in nbrs and a != b:
            nbrs[a].add(b)
            nbrs[b].add(a)
    parent = {}
    for root in sorted(part_ids, key=lambda p: (-len(nbrs[p]), p)):
        if root in parent:
            continue
        parent[root] = None
        queue = [root]
        while queue:
            cur = queue.pop(0)
            for n in sorted(nbrs[cur]):
                if n not in parent:
                    parent[n] = cur
                    queue.append(n)
    return parent


def object_name(pid, name):
    return "part%d_%s" % (pid, name)


# ----------------------------------------------------------------------- Blender
def _set_keys(obj, data_path, frames, values, dims):
    """Keyframe ``obj.<data_path>[i]`` for i in ``dims`` at ``frames`` (linear)."""
    import bpy

    if obj.animation_data is None:
        obj.animation_data_create()
    if obj.animation_data.action is None:
        obj.animation_data.action = bpy.data.actions.new(obj.name + "Action")
    action = obj.animation_data.action
    fcurves = getattr(action, "fcurves", None)
    for dim in dims:
        series = [v[dim] if isinstance(v, (tuple, list)) else v for v in values]
        if fcurves is not None:  # fast path (Blender 2.8 – 4.x)
            fc = fcurves.find(data_path, index=dim) or fcurves.new(data_path, index=dim)
            fc.keyframe_points.add(len(frames))
            co = []
            for f, v in zip(frames, series):
                co.extend((float(f), float(v)))
            fc.keyframe_points.foreach_set("co", co)
            for kp in fc.keyframe_points:
                kp.interpolation = "LINEAR"
            fc.update()
        else:  # slotted actions (Blender 5): the generic, slower path
            prop = getattr(obj, data_path)
            for f, v in zip(frames, series):
                prop[dim] = v
                obj.keyframe_insert(data_path, index=dim, frame=f)


def build_scene(settings, parts, joints):
    """Create the empties, joint empties, armature and camera in the current scene."""
    import bpy
    from mathutils import Matrix, Vector

    scene = bpy.context.scene
    fps = float(settings["fps"])
    scene.render.fps = max(1, int(round(fps)))
    scene.render.fps_base = scene.render.fps / fps
    scene.render.resolution_x, scene.render.resolution_y = int(settings["width"]), int(settings["height"])
    scene.render.resolution_percentage = 100

    coll = bpy.data.collections.new(settings["name"])
    scene.collection.children.link(coll)
    t0 = min(p["time"][0] for p in parts.values()) if parts else 0.0
    last_frame = settings.get("frame_start", 1)
    empties = {}
    for pid in sorted(parts):
        part = parts[pid]
        frames, loc, rz, sc = part_keyframes(part, settings, t0)
        obj = bpy.data.objects.new(object_name(pid, part["name"]), None)
        obj.empty_display_type = "ARROWS"
        obj.empty_display_size = 1.0
        obj["parttrack_part_id"] = pid
        coll.objects.link(obj)
        _set_keys(obj, "location", frames, loc, (0, 1, 2))
        _set_keys(obj, "rotation_euler", frames, rz, (2,))
        _set_keys(obj, "scale", frames, sc, (0, 1, 2))
        empties[pid] = obj
        last_frame = max(last_frame, frames[-1])
    for (a, b), joint in sorted(joints.items()):
        frames, loc = joint_keyframes(joint, settings, t0)
        obj = bpy.data.objects.new("joint_%d_%d" % (a, b), None)
        obj.empty_display_type = "SPHERE"
        obj.empty_display_size = 4.0 / float(settings["px_per_unit"])
        coll.objects.link(obj)
        _set_keys(obj, "location", frames, loc, (0, 1, 2))
    scene.frame_start = settings.get("frame_start", 1)
    scene.frame_end = last_frame

    # 2-D armature: one bone per part, rest pose = the first frame.
    scene.frame_set(scene.frame_start)
    arm_data = bpy.data.armatures.new(settings["name"] + "_rig")
    rig = bpy.data.objects.new(settings["name"] + "_rig", arm_data)
    coll.objects.link(rig)
    parents = skeleton_parents(sorted(parts), settings.get("skeleton_edges", []))
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {}
    for pid in sorted(parts):
        part = parts[pid]
        _, loc, rz, sc = part_keyframes(part, settings, t0)
        head = Vector(loc[0])
        length = max(sc[0][0], 1e-3)
        bone = arm_data.edit_bones.new(object_name(pid, part["name"]))
        bone.head = head
        bone.tail = head + Vector((math.cos(rz[0]), math.sin(rz[0]), 0.0)) * length
        bone.roll = 0.0
        bones[pid] = bone
    for pid, par in parents.items():
        if par is not None:
            bones[pid].parent = bones[par]
            bones[pid].use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")
    # Each bone copies (world space) the transform of a hidden helper empty parented to its
    # part's empty with local matrix E0^-1 @ B0 (E0 = the part empty and B0 = the bone at the
    # rest frame), so bone(t) = E(t) @ E0^-1 @ B0 whatever the bone hierarchy does.
    for pid, empty in empties.items():
        name = object_name(pid, parts[pid]["name"])
        helper = bpy.data.objects.new(name + ".bone", None)
        helper.empty_display_size = 0.1
        coll.objects.link(helper)
        helper.parent = empty
        helper.matrix_parent_inverse = Matrix.Identity(4)
        helper.matrix_basis = empty.matrix_world.inverted() @ (rig.matrix_world @ rig.data.bones[name].matrix_local)
        helper.hide_viewport = helper.hide_render = True
        con = rig.pose.bones[name].constraints.new("COPY_TRANSFORMS")
        con.target = helper
    cam_data = bpy.data.cameras.new(settings["name"] + "_camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = max(settings["width"], settings["height"]) / float(settings["px_per_unit"])
    cam = bpy.data.objects.new(settings["name"] + "_camera", cam_data)
    cam.location = (0.0, 0.0, 10.0)
    coll.objects.link(cam)
    scene.camera = cam
    return coll


def _script_dir():
    here = globals().get("__file__")
    if here and os.path.isfile(here):
        return os.path.dirname(os.path.abspath(here))
    try:  # run from Blender's text editor
        import bpy

        text = bpy.context.space_data.text
        if text and text.filepath:
            return os.path.dirname(bpy.path.abspath(text.filepath))
    except Exception:
        pass
    return os.getcwd()


def parse_args(argv, settings):
    """Options after ``--`` on Blender's command line override SETTINGS."""
    import argparse

    argv = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(prog="parttrack_import.py")
    p.add_argument("--tracks", default=settings["tracks_csv"])
    p.add_argument("--joints", default=settings["joints_csv"])
    p.add_argument("--fps", type=float, default=settings["fps"])
    p.add_argument("--width", type=int, default=settings["width"])
    p.add_argument("--height", type=int, default=settings["height"])
    p.add_argument("--px-per-unit", type=float, default=settings["px_per_unit"])
    p.add_argument("--save", default=None, help="write the scene to this .blend file")
    a = p.parse_args(argv)
    out = dict(settings, tracks_csv=a.tracks, joints_csv=a.joints, fps=a.fps, width=a.width,
               height=a.height, px_per_unit=a.px_per_unit)
    return out, a.save


def main(argv=None):
    settings, save = parse_args(sys.argv if argv is None else argv, SETTINGS)
    base = _script_dir()
    tracks = settings["tracks_csv"] if os.path.isabs(settings["tracks_csv"]) else os.path.join(base, settings["tracks_csv"])
    joints = settings["joints_csv"] if os.path.isabs(settings["joints_csv"]) else os.path.join(base, settings["joints_csv"])
    parts = read_tracks(tracks)
    if not parts:
        raise SystemExit("parttrack: %s has no rows" % tracks)
    build_scene(settings, parts, read_joints(joints))
    print("parttrack: imported %d parts from %s" % (len(parts), tracks))
    if save:
        import bpy

        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(save))
        print("parttrack: saved %s" % save)


if __name__ == "__main__":
    main()
