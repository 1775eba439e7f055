"""Pose files other tools read: NWB (ndx-pose), DeepLabCut-style CSV, SLEAP labels, and BVH.

Four formats (:data:`POSE_FORMATS`), each written from the tracks of a ``parttrack track``
result (``tracks.csv``, ``joints.csv``, ``track.json``), one file each:

``nwb`` — ``nwb/<name>.nwb``, Neurodata Without Borders with the **ndx-pose** extension,
    written with ``pynwb`` + ``ndx_pose`` (the extension's documented layout, what DeepLabCut
    and SLEAP export too): processing module ``behavior`` holding a ``Skeletons`` container
    (one ``Skeleton`` named after the subject: nodes = the keypoints below, edges = part
    centre – joint – part centre) and a ``PoseEstimation`` named ``PoseEstimation`` with one
    ``PoseEstimationSeries`` per keypoint: ``data`` ``(T, 2)`` float64 (x, y) in source-video
    pixels (``reference_frame`` says: x right, y down, origin at the centre of the top-left
    pixel), ``timestamps`` = ``time_s`` (the stream's presentation times, seconds),
    ``confidence`` ``(T,)`` = parttrack's confidence, ``source_software`` ``"parttrack"``, and the
    video as ``source_video`` (an external-file ``ImageSeries`` with ``dimension`` [width, height]).

``dlc`` — ``dlc/<name>.csv``, the layout of a DeepLabCut analysis CSV: three header rows
    ``scorer`` / ``bodyparts`` / ``coords`` (a pandas ``MultiIndex``; scorer ``parttrack``,
    coords ``x, y, likelihood``), one row per frame indexed by the 0-based frame number,
    written with pandas (``DataFrame.to_csv``, as DeepLabCut itself does). sleap-io's DLC CSV
    writer is not used: it writes ``likelihood`` empty for predicted points.

``sleap`` — ``sleap/<name>.slp``, a SLEAP labels file written with ``sleap_io.save_slp``: one
    ``Skeleton`` (nodes and edges as for NWB), one ``Video`` (the source path, its size),
    one ``LabeledFrame`` per video frame holding one ``PredictedInstance`` (point scores =
    parttrack's confidence, instance score = their mean over the keypoints with a position).

``bvh`` — ``bvh/<name>.bvh``, Biovision hierarchy for animators (our own writer,
    :func:`bvh_text`: BVH is a small text format and no maintained writer exists):

    * **Hierarchy** from the learned skeleton: the root is the part nearest the tree's centre
      (smallest eccentricity in edges; ties → more neighbours, then lower id); each other part
      is a ``JOINT`` whose pivot is its joint with its parent part, with an ``End Site`` at the
      part's centre. Parts with a pose but no skeleton edge become children of the root with
      their own position channels.
    * **Axes**: image x right, y down → BVH X right, Y up, Z towards the viewer (the picture
      is the XY plane seen from +Z): ``X = x``, ``Y = (height − 1) − y``, ``Z = 0``; 1 unit =
      1 source pixel (Blender's importer has a Scale option).
    * Joint names are the part names with every run of other characters than ASCII letters,
      digits and ``_`` replaced by ``_`` (``hand (screen left)`` → ``hand_screen_left``).
    * **Offsets** from the joint positions: a joint's place in each part's local frame (the
      skeleton's offsets in ``track.json``, pixels along the part's first and second axis)
      with every part at angle 0 (first axis along +X, second axis along −Y).
    * **Channels**: the root ``Xposition Yposition Zposition Zrotation Xrotation Yrotation``
      (position = the root part's centre), every other joint ``Zrotation Xrotation Yrotation``;
      ``Zrotation`` = the part's ``angle_deg`` (counter-clockwise on screen = positive about
      +Z) minus its parent's, unwrapped over time; X and Y rotations are 0. Scale is not
      represented. One BVH frame per video frame, ``Frame Time`` = 1 / fps.
    * Frames where a part has no pose repeat its previous pose (the next one before the
      first); the positions of non-root parts follow from the rigid hierarchy, so they differ
      from the measured centres by the joints' rigidity residual.

**Keypoints** (NWB, DLC, SLEAP) are the centres of the parts that have a pose in at least one
frame (``bodyparts`` = part names) and, with ``joints=True`` (the default), the skeleton's joints
(``joint_<a>_<b>``, a < b part ids). A keypoint is NaN in frames where its part is not visible
(a joint: where either part is not visible); confidence is kept (parttrack's ``confidence``;
a joint's is the smaller of its two parts'). Part names are made unique and ``/`` becomes
``-`` (NWB object names cannot contain it).

NWB, DLC and SLEAP need the optional ``formats`` extra (``pip install 'parttrack[formats]'``:
pynwb, ndx-pose, sleap-io); BVH needs nothing. :func:`check_dependencies` raises an
:class:`~engine.errors.InputError` naming the extra when a library is missing.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parttrack.engine.errors import InputError, OutputError
from parttrack.tracker.core import JointPositions, Track
from parttrack.tracker.skeleton import Skeleton, rotations

#: Pose formats of this module, in the order ``all`` lists them.
POSE_FORMATS = ("nwb", "dlc", "sleap", "bvh")
#: The import names each format needs (all from the ``formats`` extra).
REQUIRES = {"nwb": ("pynwb", "ndx_pose"), "dlc": ("pandas",), "sleap": ("sleap_io",), "bvh": ()}
#: How to get them.
INSTALL_HINT = "pip install 'parttrack[formats]'"
#: File written per format, relative to the output folder (``{name}`` = the subject name).
FILE_NAMES = {"nwb": "nwb/{name}.nwb", "dlc": "dlc/{name}.csv", "sleap": "sleap/{name}.slp",
              "bvh": "bvh/{name}.bvh"}
DLC_SCORER = "parttrack"
REFERENCE_FRAME = ("source-video pixels: x right, y down, origin (0, 0) at the centre of the top-left pixel "
                   "of the video frame")


def check_dependencies(formats) -> None:
    """Raise when a library that one of ``formats`` needs is not installed.

    Args:
        formats: format names (from :data:`POSE_FORMATS`; others are ignored).

    Raises:
        InputError: naming the formats and the missing packages; hint ``pip install
            'parttrack[formats]'``. (Looked up with ``importlib.util.find_spec``; nothing is
            imported.)
    """
    missing: dict[str, list[str]] = {}
    for fmt in formats:
        for mod in REQUIRES.get(fmt, ()):
            if importlib.util.find_spec(mod) is None:
                missing.setdefault(mod, []).append(fmt)
    if missing:
        fmts = sorted({f for fs in missing.values() for f in fs}, key=POSE_FORMATS.index)
        pkgs = ", ".join(m.replace("_", "-") for m in missing)
        raise InputError(f"the {', '.join(fmts)} export needs {pkgs}, which "
                         f"{'is' if len(missing) == 1 else 'are'} not installed",
                         f"{INSTALL_HINT} (or leave out {', '.join(fmts)})")


# --------------------------------------------------------------------------- keypoints
@dataclass(frozen=True)
class Keypoints:
    """Keypoint tracks shared by the NWB, DLC and SLEAP writers.

    Attributes:
        names: ``N`` unique keypoint names (part names, then ``joint_<a>_<b>``).
        index: ``(T,)`` int64 video frame indices.
        time_s: ``(T,)`` float64 presentation times (s).
        xy: ``(T, N, 2)`` float64 source-video pixels (x right, y down); NaN where not visible.
        confidence: ``(T, N)`` float64 in [0, 1] (0 where parttrack has none).
        edges: ``(E, 2)`` int64 0-based keypoint indices (part centre – joint – part centre,
            or part – part when there are no joints).
        part_ids: ``(N,)`` int64 the part id of a centre keypoint, 0 for a joint.
    """

    names: tuple[str, ...]
    index: np.ndarray
    time_s: np.ndarray
    xy: np.ndarray
    confidence: np.ndarray
    edges: np.ndarray
    part_ids: np.ndarray

    def __post_init__(self) -> None:
        t, n = len(self.index), len(self.names)
        for label, arr, shape in (("time_s", self.time_s, (t,)), ("xy", self.xy, (t, n, 2)),
                                  ("confidence", self.confidence, (t, n)), ("part_ids", self.part_ids, (n,))):
            if np.shape(arr) != shape:
                raise ValueError(f"Keypoints.{label}: expected shape {shape}, got {np.shape(arr)}")
        if np.ndim(self.edges) != 2 or np.shape(self.edges)[1] != 2:
            raise ValueError(f"Keypoints.edges: expected shape (E, 2), got {np.shape(self.edges)}")
        if len(set(self.names)) != n:
            raise ValueError(f"Keypoints.names are not unique: {self.names}")


def unique_names(names) -> list[str]:
    """Names usable as keypoint/object names: ``/`` → ``-``, empty → ``part<i>``, repeats get
    `` (2)``, `` (3)`` …"""
    out: list[str] = []
    for i, name in enumerate(names):
        base = str(name).replace("/", "-").strip() or f"part{i + 1}"
        cand, n = base, 2
        while cand in out:
            cand, n = f"{base} ({n})", n + 1
        out.append(cand)
    return out


def keypoints(track: Track, part_names, joints: list[JointPositions] | None = None,
              edges=(), include_joints: bool = True) -> Keypoints:
    """Keypoints of a track (module docstring).

    Args:
        track: the tracks (``T`` frames, ``K`` parts).
        part_names: ``K`` names (part id i+1 ↔ names[i]).
        joints: per-frame joint positions (``joints.csv``); frames without a row are NaN.
        edges: 1-based part-id pairs of the skeleton (used for the edges; joints add theirs).
        include_joints: add one keypoint per joint.
    """
    t_len, k_len = len(track), track.num_parts
    has_pose = np.isfinite(track.xy).all(-1).any(0)
    parts = [k for k in range(k_len) if has_pose[k]]
    names = unique_names(part_names)
    kp_names = [names[k] for k in parts]
    vis = track.visible.astype(bool) & np.isfinite(track.xy).all(-1)
    xy = [np.where(vis[:, k, None], track.xy[:, k], np.nan) for k in parts]
    conf = [np.nan_to_num(track.confidence[:, k], nan=0.0) for k in parts]
    part_ids = [k + 1 for k in parts]
    col = {k + 1: i for i, k in enumerate(parts)}
    pairs = sorted({(min(int(a), int(b)), max(int(a), int(b))) for a, b in edges}
                   | {(int(min(a, b)), int(max(a, b))) for jp in (joints or []) for a, b in np.asarray(jp.pairs)})
    pairs = [p for p in pairs if p[0] in col and p[1] in col]
    out_edges: list[tuple[int, int]] = []
    if include_joints and joints:
        row_of = {int(i): r for r, i in enumerate(track.index)}
        jxy = np.full((t_len, len(pairs), 2), np.nan)
        jcol = {p: j for j, p in enumerate(pairs)}
        for jp in joints:
            r = row_of.get(int(jp.index))
            if r is None:
                continue
            for (a, b), p in zip(np.asarray(jp.pairs), np.asarray(jp.xy, np.float64)):
                j = jcol.get((int(min(a, b)), int(max(a, b))))
                if j is not None:
                    jxy[r, j] = p
        for j, (a, b) in enumerate(pairs):
            both = vis[:, a - 1] & vis[:, b - 1]
            xy.append(np.where(both[:, None], jxy[:, j], np.nan))
            conf.append(np.minimum(conf[col[a]], conf[col[b]]))
            kp_names.append(f"joint_{a}_{b}")
            part_ids.append(0)
            out_edges += [(col[a], len(kp_names) - 1), (len(kp_names) - 1, col[b])]
    else:
        out_edges = [(col[a], col[b]) for a, b in pairs]
    return Keypoints(tuple(unique_names(kp_names)), np.asarray(track.index, np.int64),
                     np.asarray(track.time_s, np.float64),
                     np.stack(xy, 1) if xy else np.zeros((t_len, 0, 2)),
                     np.stack(conf, 1) if conf else np.zeros((t_len, 0)),
                     np.array(out_edges, np.int64).reshape(-1, 2), np.array(part_ids, np.int64))


# --------------------------------------------------------------------------- writers
def _prepare(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "choose an output folder you can write to (-o DIR)") from None
    return path


def write_nwb(kp: Keypoints, path: str | Path, *, name: str, width: int, height: int,
              video: str | None = None, session_start=None) -> Path:
    """Write the keypoints as an NWB file with ndx-pose (module docstring).

    Args:
        kp: the keypoints.
        path: the ``.nwb`` file (replaced).
        name: subject / identifier (also the skeleton's name).
        width, height: the video's size in pixels (recorded on the ``source_video`` ImageSeries).
        video: the source video path: an external-file ``ImageSeries`` ``source_video`` in the
            file's acquisition, linked as ``PoseEstimation.source_video`` (none without a path).
        session_start: ``datetime`` of the session (default: now, UTC).

    Raises:
        InputError: pynwb/ndx-pose missing; OutputError: the file cannot be written.
    """
    check_dependencies(["nwb"])
    from datetime import datetime, timezone

    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.image import ImageSeries

    path = _prepare(path)
    ident = str(name).replace("/", "-") or "parttrack"
    nwb = NWBFile(session_description=f"part tracks of {ident} from parttrack",
                  identifier=ident, session_start_time=session_start or datetime.now(timezone.utc))
    skeleton = Skeleton(name=ident, nodes=list(kp.names), edges=kp.edges.astype(np.uint64))
    series = []
    for i, kname in enumerate(kp.names):
        series.append(PoseEstimationSeries(
            name=kname, description=("centre of part " + str(kp.part_ids[i]) if kp.part_ids[i]
                                     else "joint between two adjacent parts"),
            data=kp.xy[:, i], unit="pixels", reference_frame=REFERENCE_FRAME,
            timestamps=kp.time_s if i == 0 else series[0], confidence=kp.confidence[:, i],
            confidence_definition="parttrack confidence in [0, 1] (mask certainty x transform/mask "
                                  "agreement x compactness); positions are NaN where the part is not visible"))
    source = None
    if video:  # the video as an external-file ImageSeries (ndx-pose >= 0.2's way to give its size)
        source = ImageSeries(name="source_video", description="the video the parts were tracked in",
                             external_file=[str(video)], format="external", starting_frame=[0],
                             timestamps=kp.time_s, dimension=[int(width), int(height)], unit="n.a.")
        nwb.add_acquisition(source)
    pose = PoseEstimation(name="PoseEstimation", pose_estimation_series=series,
                          description="part centres (and joints) tracked by parttrack without labels",
                          source_video=source, scorer="parttrack", source_software="parttrack",
                          skeleton=skeleton)
    try:
        from importlib.metadata import version

        pose.fields["source_software_version"] = version("parttrack")
    except Exception:  # running from a checkout without metadata
        pass
    behavior = nwb.create_processing_module(name="behavior", description="part tracks from parttrack")
    behavior.add(Skeletons(skeletons=[skeleton]))
    behavior.add(pose)
    try:
        with NWBHDF5IO(str(path), mode="w") as io:
            io.write(nwb)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}", "choose an output folder you can write to (-o DIR)") from None
    return path


def dlc_frame(kp: Keypoints):
    """The DeepLabCut-style ``pandas.DataFrame``: columns ``MultiIndex`` (scorer, bodyparts,
    coords) with coords ``x, y, likelihood``; index = frame indices; float64."""
    import pandas as pd

    cols = pd.MultiIndex.from_tuples([(DLC_SCORER, n, c) for n in kp.names for c in ("x", "y", "likelihood")],
                                     names=["scorer", "bodyparts", "coords"])
    data = np.concatenate([kp.xy, kp.confidence[..., None]], axis=2).reshape(len(kp.index), -1)
    return pd.DataFrame(data, index=pd.Index(kp.index, name=None), columns=cols)


def write_dlc(kp: Keypoints, path: str | Path) -> Path:
    """Write the keypoints as a DeepLabCut-style CSV (module docstring).

    Raises:
        InputError: pandas missing; OutputError: the file cannot be written.
    """
    check_dependencies(["dlc"])
    path = _prepare(path)
    try:
        dlc_frame(kp).to_csv(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}", "choose an output folder you can write to (-o DIR)") from None
    return path


def write_sleap(kp: Keypoints, path: str | Path, *, name: str, width: int, height: int,
                video: str | None = None) -> Path:
    """Write the keypoints as a SLEAP ``.slp`` labels file with sleap-io (module docstring).

    Raises:
        InputError: sleap-io missing; OutputError: the file cannot be written.
    """
    check_dependencies(["sleap"])
    import sleap_io as sio

    path = _prepare(path)
    skeleton = sio.Skeleton(nodes=list(kp.names), edges=[(int(a), int(b)) for a, b in kp.edges],
                            name=str(name) or "parttrack")
    vid = sio.Video(filename=str(video or f"{name}.mp4"), backend=None, open_backend=False,
                    backend_metadata={"shape": (int(len(kp.index)), int(height), int(width), 3)})
    track = sio.Track(name=str(name) or "parttrack")
    frames = []
    for r, fidx in enumerate(kp.index):
        pts = kp.xy[r]
        scores = kp.confidence[r]
        seen = np.isfinite(pts).all(-1)
        inst = sio.PredictedInstance.from_numpy(pts, skeleton=skeleton, point_scores=scores,
                                                score=float(scores[seen].mean()) if seen.any() else 0.0,
                                                track=track)
        frames.append(sio.LabeledFrame(video=vid, frame_idx=int(fidx), instances=[inst]))
    labels = sio.Labels(labeled_frames=frames, videos=[vid], skeletons=[skeleton], tracks=[track])
    try:
        sio.save_slp(labels, str(path), verbose=False)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}", "choose an output folder you can write to (-o DIR)") from None
    return path


# --------------------------------------------------------------------------- BVH
@dataclass(frozen=True)
class BvhJoint:
    """One joint of the BVH hierarchy.

    Attributes:
        part: 1-based part id.
        name: the joint's name in the file.
        parent: index of the parent joint in the hierarchy list, -1 for the root.
        offset: ``(2,)`` BVH X, Y offset from the parent's pivot (source pixels; 0 with positions).
        end: ``(2,)`` X, Y of the part's centre relative to its own pivot (the End Site).
        positions: write position channels (the root, and parts without a skeleton edge).
    """

    part: int
    name: str
    parent: int
    offset: tuple[float, float]
    end: tuple[float, float]
    positions: bool


def bvh_name(name: str) -> str:
    """A part name as a BVH joint name: runs of characters other than ASCII letters, digits and
    ``_`` become one ``_`` (BVH parsers split lines on whitespace), ``part`` if nothing is left."""
    import re

    return re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_") or "part"


def _local(o) -> np.ndarray:
    """Part-frame offset (px along first, second axis) → BVH (X, Y) at angle 0."""
    return np.array([float(o[0]), -float(o[1])])


def tree_root(parts, edges) -> int:
    """The part nearest the centre of the skeleton tree: smallest eccentricity (in edges) within
    the largest connected component; ties → more neighbours, then the lower id.

    Args:
        parts: part ids (1-based) to consider.
        edges: 1-based part-id pairs.
    """
    parts = [int(p) for p in parts]
    adj = {p: set() for p in parts}
    for a, b in edges:
        if a in adj and b in adj and a != b:
            adj[a].add(b)
            adj[b].add(a)

    def dist(src):
        d, frontier = {src: 0}, [src]
        while frontier:
            nxt = []
            for u in frontier:
                for v in adj[u]:
                    if v not in d:
                        d[v] = d[u] + 1
                        nxt.append(v)
            frontier = nxt
        return d

    comps, seen = [], set()
    for p in parts:
        if p not in seen:
            c = set(dist(p))
            seen |= c
            comps.append(c)
    big = max(comps, key=lambda c: (len(c), -min(c)))
    return min(big, key=lambda p: (max(dist(p).values()), -len(adj[p]), p))


def bvh_hierarchy(parts, part_names, skeleton: Skeleton) -> list[BvhJoint]:
    """The BVH joints, parents before children (module docstring).

    Args:
        parts: ids of the parts with a pose.
        part_names: all ``K`` part names.
        skeleton: edges and joint offsets (``offsets[j] = (u_a, u_b)`` in part a's and b's frame).

    A joint with position channels has OFFSET 0 (its channels carry the whole translation, so
    readers that add the channels to the offset and readers that replace it agree).
    """
    parts = sorted(int(p) for p in parts)
    if not parts:
        raise InputError("no part has a pose in any frame: nothing to write as BVH")
    names = unique_names(bvh_name(n) for n in part_names)
    edge_off = {}
    for (a, b), (ua, ub) in zip(np.asarray(skeleton.edges), np.asarray(skeleton.offsets)):
        if a in parts and b in parts:
            edge_off[(int(a), int(b))] = (ua, ub)
            edge_off[(int(b), int(a))] = (ub, ua)
    root = tree_root(parts, [e for e in edge_off])
    pivot = {root: np.zeros(2)}  # each part's pivot in its own frame (px along its axes)
    out = [BvhJoint(root, names[root - 1], -1, (0.0, 0.0), (0.0, 0.0), True)]
    order = [root]
    i = 0
    while i < len(order):
        p = order[i]
        for q in sorted(b for (a, b) in edge_off if a == p):
            if q in pivot:
                continue
            up, uq = edge_off[(p, q)]
            pivot[q] = np.asarray(uq, np.float64)
            off = _local(up) - _local(pivot[p])
            out.append(BvhJoint(q, names[q - 1], order.index(p), tuple(off), tuple(-_local(uq)), False))
            order.append(q)
        i += 1
    for p in parts:
        if p not in pivot:  # no skeleton edge to the tree: its own position channels
            out.append(BvhJoint(p, names[p - 1], 0, (0.0, 0.0), (0.0, 0.0), True))
            order.append(p)
            pivot[p] = np.zeros(2)
    return out


def _unwrapped(angle_deg: np.ndarray) -> np.ndarray:
    return np.degrees(np.unwrap(np.radians(angle_deg)))


def bvh_text(track: Track, part_names, skeleton: Skeleton, *, fps: float, height: int) -> str:
    """The BVH document of a track (module docstring for the hierarchy, axes and channels).

    Args:
        track: ``T`` frames of ``K`` part poses (source px, angle CCW on screen).
        part_names: ``K`` names.
        skeleton: the learned skeleton (edges with joint offsets).
        fps: frames per second (``Frame Time`` = 1/fps).
        height: video height in px (``Y = height − 1 − y``).

    Raises:
        InputError: no part has a pose, or fps is not a positive number.
    """
    from parttrack.tracker.animation import fill_gaps

    if not (fps and fps > 0 and math.isfinite(fps)):
        raise InputError(f"frame rate {fps!r} is not usable for BVH", "pass --fps (the video's frame rate)")
    has_pose = np.isfinite(track.xy).all(-1).any(0)
    parts = [k + 1 for k in range(track.num_parts) if has_pose[k]]
    xy = fill_gaps(track.xy)
    ang = _unwrapped(fill_gaps(track.angle_deg))
    joints = bvh_hierarchy(parts, part_names, skeleton)

    def f(v: float) -> str:
        text = f"{v:.4f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text

    lines = ["HIERARCHY"]
    children = {i: [c for c, j in enumerate(joints) if j.parent == i] for i in range(len(joints))}

    def emit(i: int, depth: int) -> None:
        j, ind = joints[i], "  " * depth
        lines.append(f"{ind}{'ROOT' if j.parent < 0 else 'JOINT'} {j.name}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}  OFFSET {f(j.offset[0])} {f(j.offset[1])} 0")
        chans = (["Xposition", "Yposition", "Zposition"] if j.positions else []) + ["Zrotation", "Xrotation",
                                                                                     "Yrotation"]
        lines.append(f"{ind}  CHANNELS {len(chans)} {' '.join(chans)}")
        for c in children[i]:
            emit(c, depth + 1)
        if not children[i]:
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {f(j.end[0])} {f(j.end[1])} 0",
                          f"{ind}  }}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    dfs, stack = [], [0]  # the motion columns follow the joints in file (depth-first) order
    while stack:
        i = stack.pop()
        dfs.append(i)
        stack.extend(reversed(children[i]))
    t_len = len(track)
    cols = []
    for j in (joints[i] for i in dfs):
        k = j.part - 1
        rot = ang[:, k] - (ang[:, joints[j.parent].part - 1] if j.parent >= 0 else 0.0)
        if j.positions:
            if j.parent < 0:
                pos = np.stack([xy[:, k, 0], (height - 1) - xy[:, k, 1]], 1)
            else:  # relative to the root's pivot, in the root's rotated frame
                root = joints[0].part - 1
                d = np.stack([xy[:, k, 0] - xy[:, root, 0], -(xy[:, k, 1] - xy[:, root, 1])], 1)
                r = np.radians(ang[:, root])
                c, s = np.cos(r), np.sin(r)
                pos = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], 1)
                rot = ang[:, k] - ang[:, root]
            cols += [pos[:, 0], pos[:, 1], np.zeros(t_len)]
        cols += [rot, np.zeros(t_len), np.zeros(t_len)]
    motion = np.stack(cols, 1) if cols else np.zeros((t_len, 0))
    lines += ["MOTION", f"Frames: {t_len}", f"Frame Time: {1.0 / float(fps):.6f}"]
    lines += [" ".join(f(v) for v in row) for row in motion]
    return "\n".join(lines) + "\n"


def skeleton_for_bvh(track: Track, joints: list[JointPositions] | None, info_skeleton=None) -> Skeleton:
    """The skeleton with joint offsets: from ``track.json``'s ``skeleton`` list when given,
    else fitted to ``joints`` (offset of part p = mean over frames of ``R(θ_p)ᵀ (joint − centre_p)``,
    frames where both are finite), else no edges."""
    if info_skeleton:
        try:
            return Skeleton.from_json(info_skeleton)
        except (KeyError, TypeError, ValueError):
            pass
    pairs = sorted({(int(min(a, b)), int(max(a, b))) for jp in (joints or []) for a, b in np.asarray(jp.pairs)})
    if not pairs:
        return Skeleton.empty()
    row_of = {int(i): r for r, i in enumerate(track.index)}
    sums = np.zeros((len(pairs), 2, 2))
    counts = np.zeros((len(pairs), 2))
    rot = rotations(track.angle_deg)
    jidx = {p: j for j, p in enumerate(pairs)}
    for jp in joints:
        r = row_of.get(int(jp.index))
        if r is None:
            continue
        for (a, b), p in zip(np.asarray(jp.pairs), np.asarray(jp.xy, np.float64)):
            j = jidx[(int(min(a, b)), int(max(a, b)))]
            for side, part in enumerate(sorted((int(a), int(b)))):
                local = rot[r, part - 1].T @ (p - track.xy[r, part - 1])
                if np.isfinite(local).all():
                    sums[j, side] += local
                    counts[j, side] += 1
    offsets = sums / np.maximum(counts, 1)[..., None]
    n = len(pairs)
    return Skeleton(np.array(pairs, np.int64), offsets, np.full(n, np.nan), np.full(n, np.nan))


def write_bvh(track: Track, part_names, path: str | Path, skeleton: Skeleton, *, fps: float, height: int) -> Path:
    """Write :func:`bvh_text` to ``path`` (replaced).

    Raises:
        InputError: see :func:`bvh_text`; OutputError: the file cannot be written.
    """
    text = bvh_text(track, part_names, skeleton, fps=fps, height=height)
    path = _prepare(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "choose an output folder you can write to (-o DIR)") from None
    return path


def write_pose_formats(formats, out_dir: str | Path, track: Track, part_names, *, name: str, fps: float,
                       width: int, height: int, joints: list[JointPositions] | None = None, edges=(),
                       info_skeleton=None, video: str | None = None) -> list[Path]:
    """Write each of ``formats`` (from :data:`POSE_FORMATS`) into ``out_dir`` (:data:`FILE_NAMES`).

    Args:
        formats: format names; others are ignored.
        out_dir: the output folder (a result folder).
        track, part_names: the tracks and the K part names.
        name: the subject (file names, NWB identifier, skeleton name).
        fps, width, height: the video's frame rate and size.
        joints: per-frame joints (``joints.csv``); edges: 1-based skeleton pairs;
        info_skeleton: ``track.json``'s ``skeleton`` list (joint offsets, for BVH).
        video: the source video path (recorded in NWB and SLEAP files).

    Returns:
        The files written.

    Raises:
        InputError: a library the format needs is missing (before anything is written).
        OutputError: a file cannot be written.
    """
    fmts = [f for f in POSE_FORMATS if f in set(formats)]
    check_dependencies(fmts)
    out = Path(out_dir)
    stem = unique_names([name])[0].replace(" ", "_")
    written = []
    kp = keypoints(track, part_names, joints, edges) if set(fmts) & {"nwb", "dlc", "sleap"} else None
    for fmt in fmts:
        path = out / FILE_NAMES[fmt].format(name=stem)
        if fmt == "nwb":
            written.append(write_nwb(kp, path, name=name, width=width, height=height, video=video))
        elif fmt == "dlc":
            written.append(write_dlc(kp, path))
        elif fmt == "sleap":
            written.append(write_sleap(kp, path, name=name, width=width, height=height, video=video))
        elif fmt == "bvh":
            skel = skeleton_for_bvh(track, joints, info_skeleton)
            written.append(write_bvh(track, part_names, path, skel, fps=fps, height=height))
    return written
