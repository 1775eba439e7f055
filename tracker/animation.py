"""Export part tracks: the formats animators import directly, and (through
:mod:`tracker.formats`) the pose files of the field's tools.

Formats (``FORMATS``): ``ae`` and ``blender`` below; ``nwb``, ``dlc``, ``sleap`` and ``bvh`` are
written by :mod:`tracker.formats` (see there). Groups: ``animation`` = ae, blender, bvh;
``pose`` = nwb, dlc, sleap (they need ``pip install 'parttrack[formats]'``); ``all`` = every
format.

``ae`` — **After Effects keyframe data** (the text After Effects itself puts on the clipboard,
    header ``Adobe After Effects 8.0 Keyframe Data``): one file per part,
    ``ae/part<ID>_<name>.txt`` with ``Transform Position`` / ``Scale`` / ``Rotation`` blocks,
    one keyframe per frame, plus ``ae/joint<ID>_<a>_<b>.txt`` (``Position`` only) per joint.
    In After Effects: make a layer per part (a null or the artwork, anchor point at the
    part's pivot), open the .txt in a text editor, copy all, select the layer at the time the
    footage starts, paste (Ctrl/Cmd+V). Conventions of the file (After Effects' own):

    * Frame = ``round((time_s − t0) · fps)`` at "Units Per Second" = fps, t0 the first
      track time (frame 0 = the first frame of the footage). Samples whose times round to an
      already used frame (variable frame rate) are dropped.
    * Position in composition pixels, origin at the **top-left corner** of the frame, y down:
      ``(x + 0.5, y + 0.5)`` (parttrack puts pixel centres at integers); Z 0.
    * Rotation in degrees, **clockwise-positive** (y down): ``−angle_deg``, unwrapped so it
      never jumps by 360° (After Effects interpolates numerically).
    * Scale in percent of the part's reference size: ``100 · scale_x / ref_x``,
      ``100 · scale_y / ref_y`` with ``ref`` the median half-extents over the frames where the
      part is visible (listed in ``ae/README.txt``); Z 100. Make the layer's artwork the size
      of the part at that reference size.

``blender`` — a **Blender Python script**, ``blender/parttrack_import.py`` (the standalone
    :mod:`tracker.blender_import` with its settings filled in), next to copies of
    ``tracks.csv`` / ``joints.csv``; it creates animated empties (one per part: location,
    Z rotation, scale; one per joint), a 2-D armature along the skeleton and an orthographic
    camera. Blender is Z-up with Y up on screen; see that module for the exact mapping.

``write_exports(result_dir, formats)`` reads a ``parttrack track`` result folder
(``tracks.csv``, ``joints.csv``, ``track.json`` for fps, size and skeleton);
``export_tracks(tracks_csv, out_dir, ...)`` works from a bare tracks CSV.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parttrack.engine.errors import InputError, OutputError
from parttrack.tracker.core import JointPositions, Track
from parttrack.tracker.io import printable

FORMATS = ("ae", "blender", "nwb", "dlc", "sleap", "bvh")
#: Names that stand for several formats.
FORMAT_GROUPS = {"all": FORMATS, "animation": ("ae", "blender", "bvh"), "pose": ("nwb", "dlc", "sleap")}
AE_HEADER = "Adobe After Effects 8.0 Keyframe Data"
AE_END = "End of Keyframe Data"
BLENDER_SCRIPT = "parttrack_import.py"
_NEWLINE = "\r\n"  # what After Effects puts on the clipboard on Windows; it reads CR, LF, CRLF


@dataclass(frozen=True)
class ExportSettings:
    """What every format needs besides the tracks.

    Attributes:
        fps: frames per second of the composition / scene (> 0).
        width, height: source video size in pixels.
        name: a name for the subject (Blender collection, AE README).
        skeleton_edges: 1-based part-id pairs of adjacent parts.
    """

    fps: float
    width: int
    height: int
    name: str = "parttrack"
    skeleton_edges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", printable(self.name))  # written into UTF-8 text files
        if not (self.fps and self.fps > 0 and math.isfinite(self.fps)):
            raise InputError(f"frame rate {self.fps!r} is not usable for animation export",
                             "pass --fps (the video's frame rate)")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"image size {self.width}x{self.height} is not usable for animation export",
                             "pass --width and --height (the video's size in pixels)")


# --------------------------------------------------------------------------- After Effects
def _num(v: float) -> str:
    """After Effects-style number: up to 4 decimals, no trailing zeros, no ``-0``."""
    text = f"{float(v):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def ae_frames(time_s: np.ndarray, fps: float, t0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Composition frame numbers of stream times and the indices of the samples kept.

    Returns:
        ``(frames (M,) int64, keep (M,) int64)``: ``round((t − t0)·fps)`` for the first sample
        of each distinct frame (``t0`` defaults to ``time_s[0]``); negative frames dropped.
    """
    t = np.asarray(time_s, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    t0 = float(t[0]) if t0 is None else float(t0)
    frames = np.round((t - t0) * fps).astype(np.int64)
    _, first = np.unique(frames, return_index=True)
    keep = np.sort(first)
    keep = keep[frames[keep] >= 0]
    return frames[keep], keep


def _ae_document(settings: ExportSettings, blocks: list[tuple[str, tuple[str, ...], list[tuple]]]) -> str:
    lines = [AE_HEADER, "",
             f"\tUnits Per Second\t{_num(settings.fps)}",
             f"\tSource Width\t{int(settings.width)}",
             f"\tSource Height\t{int(settings.height)}",
             "\tSource Pixel Aspect Ratio\t1",
             "\tComp Pixel Aspect Ratio\t1", ""]
    for prop, columns, rows in blocks:
        lines.append(f"Transform\t{prop}")
        lines.append("\tFrame\t" + "\t".join(columns) + "\t")
        for row in rows:
            lines.append("\t" + "\t".join([str(int(row[0]))] + [_num(v) for v in row[1:]]) + "\t")
        lines.append("")
    lines += ["", AE_END, ""]
    return _NEWLINE.join(lines)


def reference_scale(track: Track) -> np.ndarray:
    """``(K, 2)`` median half-extents (px) over the frames where each part is visible (all
    frames when it never is); 1.0 where that is not positive."""
    ref = np.empty((track.num_parts, 2))
    for k in range(track.num_parts):
        finite = np.all(np.isfinite(track.scale[:, k]), axis=1)
        vis = track.visible[:, k] & finite
        src = track.scale[vis, k] if vis.any() else track.scale[finite, k]
        ref[k] = np.median(src, axis=0) if len(src) else (1.0, 1.0)
    return np.where(np.isfinite(ref) & (ref > 0), ref, 1.0)


def ae_part_text(track: Track, k: int, settings: ExportSettings, ref_scale: np.ndarray | None = None,
                 t0: float | None = None) -> str:
    """After Effects keyframe data of part index ``k`` (0-based; part id k+1).

    Args:
        track: the tracks (source pixels, angle CCW on screen; :mod:`tracker.core`).
        k: part index.
        settings: fps and frame size.
        ref_scale: ``(2,)`` half-extents that map to 100 % (default :func:`reference_scale`).
        t0: time of composition frame 0 (default the first track time).

    Returns:
        The text (CRLF line ends), Position / Scale / Rotation blocks (see module docstring).
    """
    frames, keep = ae_frames(track.time_s, settings.fps, t0)
    ref = reference_scale(track)[k] if ref_scale is None else np.asarray(ref_scale, np.float64)
    xy = fill_gaps(track.xy[:, k])[keep] + 0.5
    rot = -np.degrees(np.unwrap(np.radians(fill_gaps(track.angle_deg[:, k]))))[keep]
    scale = 100.0 * fill_gaps(track.scale[:, k])[keep] / ref
    return _ae_document(settings, [
        ("Position", ("X pixels", "Y pixels", "Z pixels"),
         [(f, x, y, 0.0) for f, (x, y) in zip(frames, xy)]),
        ("Scale", ("X percent", "Y percent", "Z percent"),
         [(f, sx, sy, 100.0) for f, (sx, sy) in zip(frames, scale)]),
        ("Rotation", ("degrees",), [(f, r) for f, r in zip(frames, rot)]),
    ])


def ae_point_text(time_s: np.ndarray, xy: np.ndarray, settings: ExportSettings, t0: float | None = None) -> str:
    """After Effects keyframe data with one Position block for a point track ``(T, 2)`` px."""
    frames, keep = ae_frames(time_s, settings.fps, t0)
    pts = fill_gaps(np.asarray(xy, np.float64))[keep] + 0.5
    return _ae_document(settings, [("Position", ("X pixels", "Y pixels", "Z pixels"),
                                    [(f, x, y, 0.0) for f, (x, y) in zip(frames, pts)])])


def fill_gaps(a: np.ndarray) -> np.ndarray:
    """A float64 copy of ``a`` (``(T, ...)``) with each non-finite entry replaced by the previous
    finite value along axis 0 (the next one before the first; 0 where a column has none)."""
    a = np.array(a, dtype=np.float64, copy=True)
    flat = a.reshape(a.shape[0], -1)
    for j in range(flat.shape[1]):
        col = flat[:, j]
        ok = np.isfinite(col)
        if ok.all() or not ok.any():
            col[~ok] = 0.0
            continue
        idx = np.where(ok, np.arange(len(col)), 0)
        np.maximum.accumulate(idx, out=idx)
        first = int(np.argmax(ok))
        idx[:first] = first
        flat[:, j] = col[idx]
    return a


def parse_ae_keyframes(text: str) -> dict:
    """Parse "Adobe After Effects N Keyframe Data" text (what this module writes, or what
    After Effects copies for Position/Scale/Rotation).

    Returns:
        ``{"version": "8.0", "header": {"Units Per Second": 25.0, ...},
        "blocks": {"Position": (M, 4) float array [frame, x, y, z], ...}}``.

    Raises:
        ValueError: not keyframe data, or a malformed line.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    m = re.fullmatch(r"Adobe After Effects (\d+(?:\.\d+)?) Keyframe Data", lines[0].strip()) if lines else None
    if not m:
        raise ValueError(f"not After Effects keyframe data (first line {lines[0][:60]!r})")
    header, blocks, cur, rows, ended = {}, {}, None, [], False
    for n, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            if cur is not None:
                blocks[cur] = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
                cur, rows = None, []
            continue
        if raw.strip() == AE_END:
            ended = True
            break
        fields = [f for f in raw.split("\t")]
        if not raw.startswith("\t"):
            cur, rows = fields[-1].strip() if fields[0] == "Transform" else raw.strip(), []
            continue
        cells = [f for f in fields[1:] if f != ""]
        if cur is None:
            if len(cells) != 2:
                raise ValueError(f"line {n}: expected a header 'name<TAB>value', got {raw!r}")
            header[cells[0]] = float(cells[1])
        elif cells and cells[0] == "Frame":
            continue
        else:
            try:
                rows.append([float(c) for c in cells])
            except ValueError:
                raise ValueError(f"line {n}: malformed keyframe {raw!r}") from None
    if not ended:
        raise ValueError(f"no '{AE_END}' line")
    return {"version": m.group(1), "header": header, "blocks": blocks}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "part"


def write_after_effects(track: Track, part_names, out_dir: str | Path, settings: ExportSettings,
                        joints: list[JointPositions] | None = None) -> list[Path]:
    """Write ``out_dir/part<ID>_<name>.txt`` per part that has a pose in at least one frame,
    ``joint<ID>_<a>_<b>.txt`` per joint and ``README.txt`` (how to paste; reference sizes).
    Returns the paths written.

    Raises:
        OutputError: the folder cannot be written.
    """
    out = Path(out_dir)
    t0 = float(track.time_s[0])
    ref = reference_scale(track)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(part_names):
            if not np.isfinite(track.xy[:, k]).all(-1).any():
                continue  # no pose in any frame (e.g. a part dropped from the model): no layer
            p = out / f"part{k + 1}_{_safe(name)}.txt"
            p.write_text(ae_part_text(track, k, settings, ref[k], t0), encoding="utf-8", newline="")
            written.append(p)
        for jid, (pair, times, xy) in enumerate(_joint_series(joints or []), start=1):
            p = out / f"joint{jid}_{pair[0]}_{pair[1]}.txt"
            p.write_text(ae_point_text(times, xy, settings, t0), encoding="utf-8", newline="")
            written.append(p)
        readme = out / "README.txt"
        readme.write_text(_ae_readme(part_names, ref, settings), encoding="utf-8")
        written.append(readme)
    except OSError as exc:
        raise OutputError(f"cannot write After Effects keyframes to {out}: {exc.strerror or exc}",
                          "choose an output folder you can write to (-o DIR)") from None
    return written


def _joint_series(joints: list[JointPositions]):
    """Per part pair: (pair, times (M,), xy (M, 2)) in order of first appearance."""
    series: dict[tuple[int, int], tuple[list, list]] = {}
    for jp in joints:
        for (a, b), xy in zip(np.asarray(jp.pairs), np.asarray(jp.xy)):
            key = (int(min(a, b)), int(max(a, b)))
            ts, pts = series.setdefault(key, ([], []))
            ts.append(jp.time_s)
            pts.append(xy)
    return [(k, np.array(v[0]), np.array(v[1]).reshape(-1, 2)) for k, v in series.items()]


def _ae_readme(part_names, ref: np.ndarray, settings: ExportSettings) -> str:
    lines = [
        f"After Effects keyframe data exported by parttrack ({settings.name}).",
        "",
        f"Composition: {settings.width}x{settings.height} px, square pixels, {settings.fps:g} fps;",
        "frame 0 = the first frame of the footage.",
        "",
        "To apply: create one layer per part (a Null Object, or the artwork with its anchor",
        "point on the part's pivot), open partN_<name>.txt in a text editor, select all, copy,",
        "select the layer in the timeline at the footage's first frame, and paste (Ctrl/Cmd+V).",
        "Joint files (jointN_<a>_<b>.txt) carry a Position only.",
        "",
        "Position: composition pixels from the top-left corner, y down.",
        "Rotation: degrees, clockwise positive (After Effects' convention; parttrack's",
        "angle_deg is counter-clockwise, so Rotation = -angle_deg, unwrapped).",
        "Scale: percent of the part's reference half-extents (100 % = the sizes below).",
        "",
        "part  name                 reference half-extents (px, along x / y axis)",
    ]
    for k, name in enumerate(part_names):
        lines.append(f"{k + 1:4d}  {name:<20s} {ref[k, 0]:.2f} / {ref[k, 1]:.2f}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Blender
def blender_script_text(settings: ExportSettings, tracks_csv: str = "tracks.csv",
                        joints_csv: str = "joints.csv", px_per_unit: float = 100.0) -> str:
    """The source of :mod:`tracker.blender_import` with its SETTINGS block filled in."""
    src = Path(__file__).with_name("blender_import.py").read_text(encoding="utf-8")
    start = src.index("SETTINGS = {")
    end = src.index("# --- end of settings ---")
    values = {
        "tracks_csv": tracks_csv, "joints_csv": joints_csv, "fps": float(settings.fps),
        "width": int(settings.width), "height": int(settings.height),
        "px_per_unit": float(px_per_unit),
        "skeleton_edges": [[int(a), int(b)] for a, b in settings.skeleton_edges],
        "name": settings.name, "frame_start": 1,
    }
    body = "SETTINGS = {\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in values.items()) + "}\n"
    return src[:start] + body + src[end:]


def write_blender(tracks_csv: str | Path, out_dir: str | Path, settings: ExportSettings,
                  joints_csv: str | Path | None = None, px_per_unit: float = 100.0) -> list[Path]:
    """Write ``out_dir/parttrack_import.py`` plus copies of the tracks (and joints) CSV so the
    folder is self-contained. Returns the paths written.

    Raises:
        OutputError: the folder cannot be written.
    """
    out = Path(out_dir)
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        dst = out / "tracks.csv"
        if Path(tracks_csv).resolve() != dst.resolve():
            shutil.copyfile(tracks_csv, dst)
        written.append(dst)
        if joints_csv is not None and Path(joints_csv).is_file():
            jdst = out / "joints.csv"
            if Path(joints_csv).resolve() != jdst.resolve():
                shutil.copyfile(joints_csv, jdst)
            written.append(jdst)
        script = out / BLENDER_SCRIPT
        script.write_text(blender_script_text(settings, px_per_unit=px_per_unit), encoding="utf-8")
        written.append(script)
    except OSError as exc:
        raise OutputError(f"cannot write the Blender export to {out}: {exc.strerror or exc}",
                          "choose an output folder you can write to (-o DIR)") from None
    return written


# --------------------------------------------------------------------------- entry points
def parse_formats(formats) -> tuple[str, ...]:
    """Export format names → the tuple of :data:`FORMATS` they select, in order, without
    repeats.

    Args:
        formats: names (:data:`FORMATS` or a group of :data:`FORMAT_GROUPS`: ``all``,
            ``animation``, ``pose``), as a sequence or one string separated by commas/spaces;
            case-insensitive.

    Raises:
        InputError: an unknown name (the hint lists the known ones), or a format whose
            libraries are not installed (:func:`tracker.formats.check_dependencies`: the hint
            names ``pip install 'parttrack[formats]'``).
    """
    from parttrack.tracker.formats import check_dependencies

    if isinstance(formats, str):
        formats = [f for f in re.split(r"[,\s]+", formats) if f]
    out = []
    for f in formats:
        f = str(f).lower()
        if f in FORMAT_GROUPS:
            out.extend(FORMAT_GROUPS[f])
        elif f in FORMATS:
            out.append(f)
        else:
            raise InputError(f"unknown export format {f!r}",
                             f"use one of: {', '.join(FORMATS)}, or a group: {', '.join(FORMAT_GROUPS)}")
    out = tuple(dict.fromkeys(out))
    check_dependencies(out)
    return out


def read_track_info(path: str | Path) -> dict:
    """The export-relevant facts of a ``track.json``: ``fps``, ``width``, ``height``, ``name``,
    ``skeleton_edges`` (keys looked up at the top level, or under ``video`` / ``skeleton`` /
    ``model``), ``complete`` (False for an interrupted run) and ``input_complete`` (False when
    the video ended before the frames it declares). Missing keys are absent from the result.

    Raises:
        InputError: unreadable JSON.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} cannot be read ({exc})") from None
    scopes = [data] + [data[k] for k in ("video", "skeleton", "model") if isinstance(data.get(k), dict)]

    def find(*keys):
        for scope in scopes:
            for key in keys:
                if scope.get(key) is not None:
                    return scope[key]
        return None

    info = {}
    for key, names in (("fps", ("fps", "frame_rate")), ("width", ("width",)), ("height", ("height",)),
                       ("name", ("video_name", "video", "name")),
                       ("skeleton_edges", ("skeleton_edges", "edges"))):
        v = find(*names)
        if v is not None and not isinstance(v, dict):
            info[key] = v
    if "name" in info:
        info["name"] = Path(str(info["name"])).stem or "parttrack"
    if isinstance(data.get("complete"), bool):
        info["complete"] = data["complete"]
    if isinstance(data.get("input"), dict) and isinstance(data["input"].get("complete"), bool):
        info["input_complete"] = data["input"]["complete"]
    return info


def export_tracks(tracks_csv: str | Path, out_dir: str | Path, formats=FORMATS, *,
                  fps: float | None = None, width: int | None = None, height: int | None = None,
                  joints_csv: str | Path | None = None, info_json: str | Path | None = None,
                  name: str | None = None, px_per_unit: float = 100.0, allow_incomplete: bool = False) -> list[Path]:
    """Export a tracks CSV to animation formats.

    Args:
        tracks_csv: a parttrack ``tracks.csv`` (read with :func:`tracker.io.read_tracks_csv`).
        out_dir: where ``ae/``, ``blender/``, ``nwb/``, ``dlc/``, ``sleap/``, ``bvh/`` are created.
        formats: names from :data:`FORMATS`, ``"all"``, or a comma-separated string.
        fps, width, height: override / supply what ``track.json`` says (required if there is
            no ``track.json``). By default ``track.json`` and ``joints.csv`` are looked up next to
            the tracks CSV.
        joints_csv, info_json: explicit paths of ``joints.csv`` / ``track.json``.
        name: subject name (default: the video name from track.json, else the CSV's folder).
        px_per_unit: Blender: source pixels per Blender unit (BVH is always in pixels).
        allow_incomplete: export tracks whose ``track.json`` says ``"complete": false`` (an
            interrupted run) instead of refusing them.

    Returns:
        The files written.

    Raises:
        InputError: unreadable tracks, unknown format, no frame rate / size known, an
            incomplete run (unless ``allow_incomplete``), or a time that is not a finite number
            (naming the CSV line).
        OutputError: the output folder cannot be written.
    """
    from parttrack.tracker.io import read_joints_csv, read_tracks_csv

    fmts = parse_formats(formats)
    tracks_csv = Path(tracks_csv)
    track, part_names = read_tracks_csv(tracks_csv)
    info_path = Path(info_json) if info_json else tracks_csv.with_name("track.json")
    info = read_track_info(info_path) if info_path.is_file() else {}
    if info_json and not info_path.is_file():
        raise InputError(f"{info_path} does not exist")
    if info.get("complete") is False and not allow_incomplete:
        raise InputError(f"{tracks_csv} is from an interrupted run ({info_path} says \"complete\": false; "
                         f"{len(track)} frames)", "rerun `parttrack track` on the video to finish it, "
                         "or pass --partial to export the frames there are")
    bad = ~np.isfinite(track.time_s)
    if bad.any():
        row = 2 + int(np.argmax(bad)) * track.num_parts  # file line of that frame's first row
        raise InputError(f"{tracks_csv}:{row}: time_s is not a finite number ({float(track.time_s[bad][0])})",
                         "keyframes need a time for every frame; re-run `parttrack track` or fix the file")
    fps = fps if fps is not None else info.get("fps")
    width = width if width is not None else info.get("width")
    height = height if height is not None else info.get("height")
    if fps is None or width is None or height is None:
        missing = [n for n, v in (("--fps", fps), ("--width", width), ("--height", height)) if v is None]
        raise InputError(f"{tracks_csv}: the frame rate and image size are needed and there is no "
                         f"track.json next to it saying them", f"pass {' '.join(missing)}")
    settings = ExportSettings(float(fps), int(width), int(height),
                              name or info.get("name") or tracks_csv.parent.name or "parttrack",
                              tuple((int(a), int(b)) for a, b in info.get("skeleton_edges", ())))
    jpath = Path(joints_csv) if joints_csv else tracks_csv.with_name("joints.csv")
    if joints_csv and not jpath.is_file():
        raise InputError(f"{jpath} does not exist")
    joints = read_joints_csv(jpath) if jpath.is_file() else []
    if not settings.skeleton_edges and joints:
        pairs = sorted({(int(a), int(b)) for jp in joints for a, b in np.asarray(jp.pairs)})
        settings = ExportSettings(settings.fps, settings.width, settings.height, settings.name, tuple(pairs))
    out = Path(out_dir)
    written: list[Path] = []
    if "ae" in fmts:
        written += write_after_effects(track, part_names, out / "ae", settings, joints)
    if "blender" in fmts:
        written += write_blender(tracks_csv, out / "blender", settings,
                                 jpath if jpath.is_file() else None, px_per_unit)
    pose_formats = [f for f in fmts if f not in ("ae", "blender")]
    if pose_formats:
        from parttrack.tracker.formats import write_pose_formats

        raw = _read_json(info_path) if info_path.is_file() else {}
        written += write_pose_formats(
            pose_formats, out, track, part_names, name=settings.name, fps=settings.fps, width=settings.width,
            height=settings.height, joints=joints, edges=settings.skeleton_edges,
            info_skeleton=raw.get("skeleton") if isinstance(raw.get("skeleton"), list) else None,
            video=printable(raw["video"]) if isinstance(raw.get("video"), str) else None)  # UTF-8 in the files
    return written


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_exports(result_dir: str | Path, formats=FORMATS) -> list[Path]:
    """Export a ``parttrack track`` result folder (``tracks.csv``, ``joints.csv``,
    ``track.json``) into ``result_dir/<format>/`` for each of ``formats``.

    Raises:
        InputError: no tracks.csv / track.json lacking fps or size; see :func:`export_tracks`.
    """
    result_dir = Path(result_dir)
    tracks = result_dir / "tracks.csv"
    if not tracks.is_file():
        raise InputError(f"{result_dir} has no tracks.csv", "pass a folder written by `parttrack track`")
    return export_tracks(tracks, result_dir, formats, allow_incomplete=True)
