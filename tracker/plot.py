"""A picture of the tracks of one ``parttrack track`` result (matplotlib, Agg backend).

:func:`plot_result` draws, from a result folder's ``tracks.csv``, ``joints.csv`` and
``track.json`` (and a frame of the video it names), one PNG:

* left, over time (``time_s``, seconds): each part's ``x`` and ``y`` (source-video pixels; the
  y axis is drawn downwards, as in the picture) and ``angle_deg`` (unwrapped, so a turn past
  ±180° stays continuous), in the part's colour — solid where the part is visible, faint
  where its pose is the Kalman prediction (``visible`` = 0) — and a visibility strip per part
  (a coloured bar where visible);
* right, the skeleton on a frame of the video: part centres (dots) with their first axis
  (a line of length ``scale_x``), joints (white squares) and the skeleton's links part centre –
  joint – part centre, with a legend of the part names.

Parts that have no pose in any frame (dropped from the model) are left out. :func:`plot_result`
draws a result folder (``parttrack plot``); the batch path draws ``tracks.png`` from the tracks
in memory through :class:`TracksPlotSink`; both through :func:`draw_tracks`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parttrack.engine.errors import InputError, OutputError
from parttrack.tracker.sinks import BaseSink

#: The file every batch result gets.
TRACKS_PNG = "tracks.png"
#: Without ``frame``, the skeleton is drawn on the frame with the most visible parts among the
#: first this many frames (the video is decoded up to it).
FRAME_SEARCH = 600


def _colours(info: dict, k: int) -> list[tuple[float, float, float]]:
    cols = info.get("part_colors")
    if isinstance(cols, list) and len(cols) >= k:
        try:
            return [tuple(float(c) / 255.0 for c in col[:3]) for col in cols[:k]]
        except (TypeError, ValueError):
            pass
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    return [tuple(cmap(i % cmap.N)[:3]) for i in range(k)]


#: Longest part name the visibility strip's labels show in full (the margin holds about this many
#: characters at 7 pt); the skeleton's legend always shows the whole name.
STRIP_NAME_CHARS = 15


def strip_label(k: int, name: str) -> str:
    """Label of part ``k`` (0-based) in the visibility strip: its 1-based number and its name, cut
    to :data:`STRIP_NAME_CHARS` characters with an ellipsis so that it fits the figure's margin."""
    name = name if len(name) <= STRIP_NAME_CHARS else name[:STRIP_NAME_CHARS - 1].rstrip() + "…"
    return f"{k + 1} {name}"


def choose_frame(visible: np.ndarray, limit: int = FRAME_SEARCH) -> int:
    """Row index of the frame with the most visible parts among the first ``limit`` rows
    (ties → the one nearest the middle of them). ``visible``: ``(T, K)`` bool."""
    vis = np.asarray(visible, bool)[:max(1, limit)]
    count = vis.sum(1)
    best = np.flatnonzero(count == count.max())
    return int(best[np.argmin(np.abs(best - (len(vis) - 1) / 2))])


def read_video_frame(video: str | Path, index: int) -> np.ndarray | None:
    """The ``(H, W, 3)`` uint8 RGB frame at 0-based ``index`` of ``video`` (decoded from the
    start with PyAV), or None when the video cannot be read or is shorter."""
    from parttrack.tracker.sources import FileSource

    try:
        with FileSource(video, threaded=False) as src:
            for frame in src:
                if frame.index == index:
                    return frame.image
                if frame.index > index:
                    break
    except (InputError, OSError):
        return None
    return None


def plot_result(result_dir: str | Path, out_png: str | Path | None = None, *, frame: int | None = None,
                video: str | Path | None = None, dpi: int = 100) -> Path:
    """Draw the picture of a result folder's tracks (module docstring) into a PNG.

    Args:
        result_dir: a ``parttrack track`` result folder (or its ``tracks.csv``).
        out_png: the PNG to write (default ``result_dir/tracks.png``; replaced).
        frame: the 0-based row of the tracks (= video frame when the run started at frame 0) to
            draw the skeleton on (default :func:`choose_frame`).
        video: the video to take that frame from (default: the path in ``track.json``); a
            grey canvas of the video's size when it cannot be read.
        dpi: dots per inch (the figure is 15 × 9 inches).

    Returns:
        The PNG written.

    Raises:
        InputError: no tracks.csv (or an unreadable one), or a frame outside the tracks.
        OutputError: the PNG cannot be written.
    """
    import json

    from parttrack.tracker.io import read_joints_csv, read_tracks_csv

    result_dir = Path(result_dir)
    tracks_csv = result_dir if result_dir.suffix == ".csv" else result_dir / "tracks.csv"
    folder = tracks_csv.parent
    if not tracks_csv.is_file():
        raise InputError(f"{folder} has no tracks.csv", "pass a folder written by `parttrack track`")
    track, names = read_tracks_csv(tracks_csv)
    try:
        info = json.loads((folder / "track.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    joints = read_joints_csv(folder / "joints.csv") if (folder / "joints.csv").is_file() else []
    return draw_tracks(track, names, joints, Path(out_png) if out_png else folder / TRACKS_PNG, info=info,
                       title=info.get("video_name") or folder.name, frame=frame, video=video, dpi=dpi)


def draw_tracks(track, names, joints, out_png: str | Path, *, info: dict | None = None, title: str = "",
                frame: int | None = None, video: str | Path | None = None, dpi: int = 100) -> Path:
    """Draw the picture of a track (module docstring) into a PNG.

    Args:
        track: the :class:`tracker.core.Track` (T frames, K parts; source px, degrees, seconds).
        names: its K part names. joints: its :class:`tracker.core.JointPositions` per frame.
        out_png: the PNG to write (replaced).
        info: ``track.json``'s fields used here, all optional: ``part_colors`` (K RGB 0–255),
            ``width``, ``height`` (source px), ``video`` (the file to take the frame from).
        title: the video's name, shown in the title.
        frame, video, dpi: as :func:`plot_result`.

    Returns:
        The PNG written.

    Raises:
        InputError: a frame outside the tracks. OutputError: the PNG cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from parttrack.tracker.io import printable

    info = info or {}
    k_len, t_len = track.num_parts, len(track)
    has_pose = np.isfinite(track.xy).all(-1).any(0)
    parts = [k for k in range(k_len) if has_pose[k]]
    colours = _colours(info, k_len)
    vis = track.visible.astype(bool) & np.isfinite(track.xy).all(-1)
    row = choose_frame(vis) if frame is None else int(frame)
    if not 0 <= row < t_len:
        raise InputError(f"frame {frame} is outside the tracks (0..{t_len - 1})")
    t = track.time_s

    fig = Figure(figsize=(15, 9), dpi=dpi)  # fixed margins: a layout engine would draw it twice
    grid = fig.add_gridspec(4, 2, width_ratios=(1.3, 1.0), height_ratios=(1, 1, 1, 0.55), left=0.075,
                            right=0.99, top=0.96, bottom=0.06, wspace=0.04, hspace=0.12)
    ax_x, ax_y, ax_a = (fig.add_subplot(grid[i, 0]) for i in range(3))
    ax_v = fig.add_subplot(grid[3, 0], sharex=ax_x)
    for ax in (ax_y, ax_a):
        ax.sharex(ax_x)
    for k in parts:
        series = ((ax_x, track.xy[:, k, 0]), (ax_y, track.xy[:, k, 1]),
                  (ax_a, np.degrees(np.unwrap(np.radians(_nan_fill(track.angle_deg[:, k]))))))
        for ax, values in series:
            values = np.where(np.isfinite(track.xy[:, k, 0]), values, np.nan)
            ax.plot(t, values, color=colours[k], lw=0.8, alpha=0.3)                   # predicted too
            ax.plot(t, np.where(vis[:, k], values, np.nan), color=colours[k], lw=1.5)  # measured
    ax_x.set_ylabel("x (px)")
    ax_y.set_ylabel("y (px, down)")
    ax_y.invert_yaxis()
    ax_a.set_ylabel("angle (deg, CCW,\nunwrapped)")
    for ax in (ax_x, ax_y, ax_a):
        ax.grid(alpha=0.3)
        ax.axvline(t[row], color="0.4", lw=0.8, ls=":")
        ax.tick_params(labelbottom=False)
    dt = float(np.median(np.diff(t))) if t_len > 1 else 1.0
    for i, k in enumerate(parts):
        runs = _runs(vis[:, k])
        ax_v.broken_barh([(t[a] - dt / 2, t[b - 1] - t[a] + dt) for a, b in runs], (i - 0.4, 0.8),
                         facecolors=colours[k])
    ax_v.set_yticks(range(len(parts)), [strip_label(k, names[k]) for k in parts], fontsize=7)
    ax_v.set_ylim(len(parts) - 0.5, -0.5)
    ax_v.set_xlabel("time (s)")
    ax_v.set_title("visible (measured); gaps = predicted or no pose", fontsize=8, loc="left")
    ax_x.set_title(printable(f"{title}: {t_len} frames, {len(parts)} parts ")
                   + ("(faint = predicted while not visible)" if parts else "(no part has a pose in any frame)"),
                   fontsize=10, loc="left")

    ax_s = fig.add_subplot(grid[:, 1])
    width = int(info.get("width") or np.nanmax(track.xy[..., 0]) + 1)
    height = int(info.get("height") or np.nanmax(track.xy[..., 1]) + 1)
    src = video if video is not None else info.get("video")
    image = read_video_frame(src, int(track.index[row])) if src else None
    if image is None:
        ax_s.imshow(np.full((height, width, 3), 0.5), extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        ax_s.text(width / 2, height / 2, "video not available", ha="center", color="w")
    else:
        h, w, _ = image.shape
        ax_s.imshow(image, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    _draw_skeleton(ax_s, track, row, joints, parts, names, colours)
    ax_s.set_title(f"skeleton at frame {int(track.index[row])} ({t[row]:.2f} s)", fontsize=10)
    ax_s.set_xlim(-0.5, width - 0.5)
    ax_s.set_ylim(height - 0.5, -0.5)
    ax_s.set_xticks([])
    ax_s.set_yticks([])

    out = Path(out_png)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=dpi)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}",
                          "choose an output file you can write to (-o FILE.png)") from None
    return out


def _draw_skeleton(ax, track, row, joints, parts, names, colours) -> None:
    xy, ang, scale = track.xy[row], track.angle_deg[row], track.scale[row]
    jp = next((j for j in joints if int(j.index) == int(track.index[row])), None)
    if jp is not None:
        for (a, b), p in zip(np.asarray(jp.pairs), np.asarray(jp.xy, np.float64)):
            for part in (a, b):
                c = xy[part - 1]
                if np.isfinite(c).all() and np.isfinite(p).all():
                    ax.plot([c[0], p[0]], [c[1], p[1]], color="w", lw=3.0, alpha=0.9, solid_capstyle="round")
                    ax.plot([c[0], p[0]], [c[1], p[1]], color=colours[part - 1], lw=1.5)
        ok = np.isfinite(jp.xy).all(-1)
        ax.scatter(jp.xy[ok, 0], jp.xy[ok, 1], marker="s", s=28, c="w", edgecolors="k", linewidths=0.8, zorder=3)
    for k in parts:
        c = xy[k]
        if not np.isfinite(c).all():
            continue
        a = np.radians(ang[k])
        length = float(scale[k, 0]) if np.isfinite(scale[k, 0]) else 10.0
        tip = c + length * np.array([np.cos(a), -np.sin(a)])  # first axis, CCW on screen
        visible = bool(track.visible[row, k])
        ax.plot([c[0], tip[0]], [c[1], tip[1]], color=colours[k], lw=1.5, ls="-" if visible else "--")
        ax.scatter([c[0]], [c[1]], s=60, color=colours[k], edgecolors="k" if visible else "0.6",
                   linewidths=1.0, zorder=4, label=f"{k + 1} {names[k]}" + ("" if visible else " (predicted)"))
    if parts:
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.01), ncol=2, fontsize=7, frameon=False)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges where ``mask`` is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(d[::2], d[1::2]))


def _nan_fill(a: np.ndarray) -> np.ndarray:
    from parttrack.tracker.animation import fill_gaps

    return fill_gaps(a)


class TracksPlotSink(BaseSink):
    """A pipeline sink (:mod:`tracker.sinks`) that writes ``folder/tracks.png`` (:func:`draw_tracks`
    on the smoothed track and joints) once the result is complete.

    Attributes:
        path: the PNG written (None until :meth:`end` ran on a complete result).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path: Path | None = None

    def end(self, result) -> None:
        if result.complete:  # drawn from the result in memory, not read back from the CSVs
            info = result.info
            self.path = draw_tracks(result.track, result.part_names, result.joints, self.folder / TRACKS_PNG,
                                    info={"part_colors": [list(c) for c in info.part_colors], "width": info.width,
                                          "height": info.height, "video": str(info.video)},
                                    title=info.video.name)
