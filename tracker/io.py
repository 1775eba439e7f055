"""Writers and readers for the files a tracking run produces.

Every writer is a context manager with a fixed, documented column order, flushes each frame's
rows as they are written (an interrupted run leaves a valid file of the frames processed so
far) and refuses data that does not fit its schema (a different K, unknown part ids) with a
``ValueError`` instead of writing a malformed file. Readers check the header exactly and
raise :class:`engine.errors.InputError` (naming the file and the line) for anything else.

Coordinates, angles and times follow the conventions of README.md, "Conventions: coordinates,
angles, time" (:mod:`tracker.core`).

Tracks CSV (``tracks.csv``, ``tracks_raw.csv``) — long ("tidy") format, one row per
frame × part, rows ordered by frame then part id, columns :data:`TRACKS_COLUMNS`:

=============  ==========================================================================
frame          0-based frame index in the video
time_s         presentation time in seconds (stream timestamps)
part           part id 1..K (0 is the background and never appears)
part_name      the bundle's name of the part
x, y           part centre in source-video pixels
angle_deg      direction of the part's first axis in degrees, (-180, 180]
scale_x/_y     length of the part's two axes in source pixels (≈ the mask's std. deviations)
area_px        mask area in source pixels
visible        1 when the part was measured in this frame, 0 when its mask was too small
               (the smoothed file then holds the Kalman prediction)
confidence     0..1, how much the measurement can be trusted (see tracker.poses)
=============  ==========================================================================

A part without a pose in a frame (no mask pixels and nothing to predict from, e.g. a part
dropped or merged away with ``parttrack label``) has ``nan`` in x, y, angle_deg, scale_x and
scale_y, area 0, visible 0 and confidence 0.

Joints CSV (``joints.csv``), one row per frame × joint, columns :data:`JOINTS_COLUMNS`:
``frame, time_s`` as above; ``joint`` a 1-based joint id (stable within the file: ids are
given in the order the joints first appear, i.e. the skeleton's edge order); ``part_a``,
``part_b`` the part ids the joint links (part_a < part_b); ``x, y`` in source pixels.

Label maps (``masks/000000.png`` …): single-channel 8-bit PNG at the source resolution,
value = part id, 0 = background.

Overlay video: H.264 (libx264, yuv420p; MPEG-4 Part 2 where libx264 is missing) written with
PyAV, presentation times taken from the frames' ``time_s`` (:class:`engine.video.VideoWriter`,
re-exported here).
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

from parttrack.engine.errors import InputError, OutputError
from parttrack.engine.video import VideoWriter as VideoWriter  # the one video writer, re-exported
from parttrack.tracker.core import JointPositions, PartPoses, Track

#: Column order of tracks.csv / tracks_raw.csv (fixed; a change is a format change).
TRACKS_COLUMNS = ("frame", "time_s", "part", "part_name", "x", "y", "angle_deg", "scale_x",
                  "scale_y", "area_px", "visible", "confidence")
#: Column order of joints.csv.
JOINTS_COLUMNS = ("frame", "time_s", "joint", "part_a", "part_b", "x", "y")


def printable(text) -> str:
    """``text`` (a str or path) safe to write as UTF-8 or print: file names that are not valid
    UTF-8 (Python keeps their bytes as lone surrogates, ``os.fsdecode``) get U+FFFD for each
    undecodable byte. For names shown to people; JSON keeps the exact name (``\\udcXX``
    escapes, which ``os.fsencode`` turns back into the bytes)."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _f(v: float, digits: int) -> str:
    """Fixed-point text of a float; non-finite values are written as ``nan``."""
    v = float(v)
    return f"{v:.{digits}f}" if math.isfinite(v) else "nan"


def _open_for_writing(path: Path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "choose an output folder you can write to (-o DIR) and check free disk space") from None


class _CSVWriter:
    columns: tuple[str, ...] = ()

    def __init__(self, path: str | Path, *, flush: bool = True) -> None:
        self.path = Path(path)
        self.rows = 0
        self._flush = flush
        self._fh = _open_for_writing(self.path)
        self._buf = _io.StringIO()
        self._writer = csv.writer(self._buf, lineterminator="\n")
        self._writer.writerow(self.columns)
        self._emit()

    def _emit(self) -> None:
        self._fh.write(self._buf.getvalue())
        self._buf.seek(0)
        self._buf.truncate()
        if self._flush:
            self._fh.flush()

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if self._fh is not None and not self._fh.closed:
            self._emit()
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TracksCSVWriter(_CSVWriter):
    """Write part poses to a tracks CSV (columns :data:`TRACKS_COLUMNS`, one row per part).

    Args:
        path: the CSV file (created with its header at once; parent folders are created).
        part_names: K part names, index i ↔ part id i+1.
        flush: flush the file after every frame (so an interrupted run leaves whole rows).

    Raises:
        OutputError: the file cannot be created.
        ValueError (from :meth:`write`): poses with a K other than ``len(part_names)``.
    """

    columns = TRACKS_COLUMNS

    def __init__(self, path: str | Path, part_names, *, flush: bool = True) -> None:
        self.part_names = tuple(str(n) for n in part_names)
        if not self.part_names:
            raise ValueError("TracksCSVWriter needs at least one part name")
        super().__init__(path, flush=flush)

    def write(self, poses: PartPoses) -> None:
        """Append the K rows of one frame."""
        k = len(self.part_names)
        if poses.num_parts != k:
            raise ValueError(f"{self.path}: poses have K={poses.num_parts} parts but the file was "
                             f"opened for K={k} ({', '.join(self.part_names)})")
        frame, t = str(int(poses.index)), _f(poses.time_s, 6)
        w = self._writer.writerow
        for i in range(k):
            w((frame, t, i + 1, self.part_names[i], _f(poses.xy[i, 0], 3), _f(poses.xy[i, 1], 3),
               _f(poses.angle_deg[i], 3), _f(poses.scale[i, 0], 3), _f(poses.scale[i, 1], 3),
               _f(poses.area_px[i], 1), 1 if poses.visible[i] else 0, _f(poses.confidence[i], 4)))
        self.rows += k
        self._emit()

    def write_track(self, track: Track) -> None:
        """Append every frame of a :class:`Track`."""
        for t in range(len(track)):
            self.write(track.poses(t))


class JointsCSVWriter(_CSVWriter):
    """Write joint positions to a joints CSV (columns :data:`JOINTS_COLUMNS`).

    Joint ids are assigned in the order the part pairs first appear (pass the skeleton's
    edges as ``pairs`` to fix them up front).

    Args:
        path: the CSV file (created with its header at once).
        pairs: optional ``(J, 2)`` part-id pairs that get ids 1..J in this order.
        flush: flush after every frame.
    """

    columns = JOINTS_COLUMNS

    def __init__(self, path: str | Path, pairs=(), *, flush: bool = True) -> None:
        self._ids: dict[tuple[int, int], int] = {}
        for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2):
            self._id(int(a), int(b))
        super().__init__(path, flush=flush)

    def _id(self, a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
        return self._ids[key]

    def write(self, joints: JointPositions) -> None:
        """Append the J rows of one frame (nothing for a frame without joints)."""
        frame, t = str(int(joints.index)), _f(joints.time_s, 6)
        for (a, b), (x, y) in zip(np.asarray(joints.pairs), np.asarray(joints.xy)):
            a, b = int(a), int(b)
            if a > b:
                a, b = b, a
            self._writer.writerow((frame, t, self._id(a, b), a, b, _f(x, 3), _f(y, 3)))
            self.rows += 1
        self._emit()


def write_tracks_csv(path: str | Path, track: Track, part_names) -> Path:
    """Write a whole :class:`Track` (see :class:`TracksCSVWriter`); returns ``path``."""
    with TracksCSVWriter(path, part_names, flush=False) as w:
        w.write_track(track)
    return Path(path)


# --------------------------------------------------------------------------- readers
def _read_rows(path: Path, columns: tuple[str, ...]) -> list[list[str]]:
    if not path.is_file():
        raise InputError(f"{path} does not exist", "pass the CSV written by `parttrack track`")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path} cannot be read as CSV ({exc})") from None
    if not rows or tuple(rows[0]) != columns:
        got = ",".join(rows[0]) if rows else "(empty file)"
        raise InputError(f"{path} does not have the expected columns: got {got!r}, expected {','.join(columns)!r}",
                         "pass a CSV written by `parttrack track` (the column order is fixed)")
    body = rows[1:]
    for n, row in enumerate(body, start=2):
        if len(row) != len(columns):
            raise InputError(f"{path}:{n}: expected {len(columns)} fields, got {len(row)}",
                             "the file is truncated or edited; re-run `parttrack track`")
    return body


def read_tracks_csv(path: str | Path) -> tuple[Track, tuple[str, ...]]:
    """Read a tracks CSV written by :class:`TracksCSVWriter`.

    A trailing partial frame (fewer than K rows, e.g. from an interrupted run) is dropped.

    Returns:
        ``(track, part_names)``: a :class:`tracker.core.Track` with T frames and K parts, and
        the K part names (index i ↔ part id i+1).

    Raises:
        InputError: missing file, wrong header, malformed values, part ids that are not
            1..K in order within each frame, or no complete frame.
    """
    path = Path(path)
    body = _read_rows(path, TRACKS_COLUMNS)
    try:
        parts = np.array([int(r[2]) for r in body], dtype=np.int64)
    except ValueError as exc:
        raise InputError(f"{path}: malformed part id ({exc})") from None
    if parts.size == 0:
        raise InputError(f"{path} has no rows", "the run was interrupted before its first frame; re-run it")
    k = int(parts.max())
    t = len(body) // k
    body, parts = body[: t * k], parts[: t * k]
    if t == 0 or not np.array_equal(parts, np.tile(np.arange(1, k + 1), t)):
        raise InputError(f"{path}: rows must list parts 1..{k} for every frame, in order",
                         "the file was edited or mixes runs; re-run `parttrack track`")
    try:
        num = np.array([[float(v) for i, v in enumerate(r) if i != 3] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: malformed number ({exc})") from None
    # num columns: frame, time_s, part, x, y, angle, sx, sy, area, visible, confidence
    num = num.reshape(t, k, 11)
    frames = num[:, 0, 0]
    if np.any(num[:, :, 0] != frames[:, None]):
        raise InputError(f"{path}: the rows of one frame disagree on the frame number")
    names = tuple(r[3] for r in body[:k])
    track = Track(
        index=frames.astype(np.int64), time_s=num[:, 0, 1].copy(),
        xy=num[:, :, 3:5].copy(), angle_deg=num[:, :, 5].copy(), scale=num[:, :, 6:8].copy(),
        area_px=num[:, :, 8].copy(), visible=num[:, :, 9] > 0.5, confidence=num[:, :, 10].copy(),
    )
    return track, names


def read_joints_csv(path: str | Path) -> list[JointPositions]:
    """Read a joints CSV written by :class:`JointsCSVWriter`.

    Returns:
        One :class:`tracker.core.JointPositions` per frame that has joint rows, in file order.

    Raises:
        InputError: missing file, wrong header or malformed values.
    """
    path = Path(path)
    body = _read_rows(path, JOINTS_COLUMNS)
    out: list[JointPositions] = []
    cur: int | None = None
    t, pairs, xy = 0.0, [], []
    try:
        for r in body:
            frame = int(r[0])
            if cur is not None and frame != cur:
                out.append(JointPositions(cur, t, np.array(pairs, np.int64).reshape(-1, 2),
                                          np.array(xy, np.float64).reshape(-1, 2)))
                pairs, xy = [], []
            cur, t = frame, float(r[1])
            pairs.append((int(r[3]), int(r[4])))
            xy.append((float(r[5]), float(r[6])))
    except ValueError as exc:
        raise InputError(f"{path}: malformed value ({exc})") from None
    if cur is not None:
        out.append(JointPositions(cur, t, np.array(pairs, np.int64).reshape(-1, 2),
                                  np.array(xy, np.float64).reshape(-1, 2)))
    return out


# --------------------------------------------------------------------------- label maps
def write_label_png(path: str | Path, labels: np.ndarray) -> Path:
    """Write an ``(H, W)`` uint8 label map (0 = background, i = part i) as an 8-bit PNG.

    Raises:
        ValueError: not a 2-D uint8 array.
        OutputError: the file cannot be written.
    """
    path = Path(path)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    try:
        path.write_bytes(encode_gray_png(labels))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                          "check the output folder's permissions and free disk space") from None
    return path


def encode_gray_png(image: np.ndarray, level: int = 1) -> bytes:
    """A minimal 8-bit greyscale PNG (filter type 0, zlib ``level``) of an ``(H, W)`` uint8
    array — for label maps this is ~2× faster than OpenCV's encoder and as small
    (PNG specification, ISO/IEC 15948: IHDR colour type 0, bit depth 8)."""
    h, w = image.shape
    raw = np.empty((h, w + 1), np.uint8)
    raw[:, 0] = 0  # filter type "None" for every row
    raw[:, 1:] = image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + chunk(b"IEND", b""))


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label map PNG back as ``(H, W)`` uint8.

    Raises:
        InputError: missing or unreadable file.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2:
        raise InputError(f"{path} is not a single-channel label-map PNG")
    return image.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------- json
def write_json(path: str | Path, obj) -> Path:
    """Write JSON atomically (temporary file in the same folder, then rename), so a reader
    never sees a half-written file.

    Raises:
        OutputError: the file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "check the output folder's permissions and free disk space") from None
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def read_json(path: str | Path) -> dict:
    """Read a JSON file written by :func:`write_json`.

    Raises:
        InputError: missing or malformed file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from None
