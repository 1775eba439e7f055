"""Sinks: where :func:`tracker.pipeline.track_file` delivers a video's results (the
:class:`tracker.pipeline.Sink` protocol), one class per kind of output, each a context
manager that closes its files on exit.

================  ==================================================================  =========
sink              writes                                                              when
================  ==================================================================  =========
TracksCSVSink     a tracks CSV, columns :data:`tracker.io.TRACKS_COLUMNS` (smoothed,   streamed
                  or ``raw=True`` the unsmoothed poses)                                 or at end
JointsCSVSink     a joints CSV, columns :data:`tracker.io.JOINTS_COLUMNS`              at end
LabelPNGSink      one 8-bit label PNG per frame at the source resolution               streamed
OverlaySink       an overlay video (parts, axes, skeleton over the source frames)      at end
ExportSink        animation exports of a result folder (:mod:`tracker.animation`)      at end
================  ==================================================================  =========

The column order, file formats and coordinate conventions are :mod:`tracker.io`'s (which
holds the low-level writers) and :mod:`tracker.core`'s. A tracks CSV is streamed (flushed
per frame) when the smoother is causal, else written whole once the offline smoother has run;
the raw CSV and label PNGs are always streamed. When tracking is interrupted, ``end`` gets a
result with ``complete`` False: the CSV sinks write the frames tracked so far, the overlay and
export sinks write nothing. A new kind of output is a class here with ``begin`` /
``write_batch`` / ``end`` (subclass :class:`BaseSink`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parttrack.tracker.io import JointsCSVWriter, TracksCSVWriter, write_label_png
from parttrack.tracker.pipeline import FrameBatch, VideoInfo, VideoTracks
from parttrack.tracker.poses import LABEL_STEP, SourceLabeler


class BaseSink:
    """A sink that does nothing (override what you need); ``close`` runs on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def begin(self, info: VideoInfo) -> None:
        """Before the first frame: the video's size, fps, part names, letterbox, smoother."""

    def write_batch(self, batch: FrameBatch) -> None:
        """Each inference batch, in frame order."""

    def end(self, result: VideoTracks) -> None:
        """Once, with the whole (possibly partial: ``result.complete``) result."""

    def close(self) -> None:
        """Close open files (idempotent)."""


class TracksCSVSink(BaseSink):
    """A tracks CSV (:class:`tracker.io.TracksCSVWriter`, columns
    :data:`tracker.io.TRACKS_COLUMNS`, one row per frame × part).

    Args:
        path: the CSV file (parent folders are created).
        raw: write the unsmoothed poses instead of the smoothed ones.

    Raises:
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | Path, *, raw: bool = False) -> None:
        self.path, self.raw = Path(path), raw
        self.writer: TracksCSVWriter | None = None
        self.stream = raw

    def begin(self, info: VideoInfo) -> None:
        self.part_names = info.part_names
        self.stream = self.raw or info.smoother.causal
        if self.stream:
            self.writer = TracksCSVWriter(self.path, self.part_names)

    def write_batch(self, batch: FrameBatch) -> None:
        if self.writer is not None:
            for poses in (batch.raw if self.raw else batch.smoothed):
                self.writer.write(poses)

    def end(self, result: VideoTracks) -> None:
        if not self.stream:
            with TracksCSVWriter(self.path, self.part_names, flush=False) as w:
                w.write_track(result.track)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class JointsCSVSink(BaseSink):
    """A joints CSV (:class:`tracker.io.JointsCSVWriter`, columns
    :data:`tracker.io.JOINTS_COLUMNS`; joint ids in the skeleton's edge order), written once
    the skeleton is fitted.

    Raises:
        OutputError: the file cannot be created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def end(self, result: VideoTracks) -> None:
        with JointsCSVWriter(self.path, result.skeleton.edges, flush=False) as w:
            for joints in result.joints:
                w.write(joints)


class LabelPNGSink(BaseSink):
    """Label maps, ``folder/NNNNNN.png`` (frame index, 6 digits): ``(H, W)`` uint8 at the
    source resolution, 0 = background, i = part i; the network's masks refined to the source
    edges with the decoded frame as the guide (:class:`tracker.poses.SourceLabeler`).

    Raises:
        OutputError: a file cannot be written.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.labeler: SourceLabeler | None = None

    def begin(self, info: VideoInfo) -> None:
        self.folder.mkdir(exist_ok=True)
        lb = info.letterbox
        self.labeler = SourceLabeler(lb, info.mask_size, guide_size=lb.decode_size)

    def write_batch(self, batch: FrameBatch) -> None:
        for i, frame in enumerate(batch.frames):
            labels = self.labeler(batch.output.masks[i], frame.image)
            write_label_png(self.folder / f"{int(batch.index[i]):06d}.png", labels)


class OverlaySink(BaseSink):
    """The overlay video: parts, axes and skeleton (:func:`tracker.overlay.draw_overlay`)
    drawn with the final poses over the full-resolution frames, decoded again once the result
    is complete (H.264, :class:`engine.video.VideoWriter`). Videos under 360 px high are drawn
    at an integer zoom >= 2 so the legend stays legible. The soft masks are kept between the
    passes as uint8 ``round(255·M)`` at mask resolution in ``tmp_path`` (removed on close).
    An interrupted drawing pass removes the unfinished video.

    Args:
        path: the video file.
        tmp_path: the temporary mask file (default: ``path`` + ``.masks.tmp``).

    Raises:
        OutputError: the video cannot be created.
    """

    def __init__(self, path: str | Path, tmp_path: str | Path | None = None) -> None:
        self.path = Path(path)
        self.tmp_path = Path(tmp_path) if tmp_path is not None else self.path.with_name(self.path.name + ".masks.tmp")
        self._fh = None

    def begin(self, info: VideoInfo) -> None:
        self.info = info
        self._fh = open(self.tmp_path, "wb")

    def write_batch(self, batch: FrameBatch) -> None:
        self._fh.write(np.rint(batch.output.masks * 255.0).astype(np.uint8).tobytes())

    def end(self, result: VideoTracks) -> None:
        self._close_tmp()
        if not result.complete:
            return
        try:
            self._draw(result)
        except KeyboardInterrupt:  # an unfinished overlay is not kept
            self.path.unlink(missing_ok=True)
            raise

    def _draw(self, result: VideoTracks) -> None:
        from parttrack.engine.video import VideoWriter
        from parttrack.tracker.overlay import draw_overlay
        from parttrack.tracker.sources import open_source

        info, track, joints = self.info, result.track, result.joints
        frames = len(result)
        h, w = info.mask_size
        masks = np.memmap(self.tmp_path, dtype=np.uint8, mode="r", shape=(frames, info.num_parts + 1, h, w))
        colors, names = info.part_colors, info.part_names
        # small videos are drawn at 2× or more so the legend and axes stay legible (their label
        # maps then at every source pixel, so the zoom shows no staircase)
        zoom = max(1, int(np.ceil(360 / max(1, info.height))))
        labeler = SourceLabeler(info.letterbox, info.mask_size, step=1 if zoom > 1 else LABEL_STEP)
        try:
            with VideoWriter(self.path, info.width * zoom, info.height * zoom, info.fps) as vw, \
                    open_source(info.video, threaded=True) as src:
                for t, frame in enumerate(src):
                    if t >= frames:
                        break
                    lab = labeler(np.asarray(masks[t]), frame.image)
                    image = draw_overlay(frame.image, lab, track.poses(t), joints[t], colors, names, scale=zoom)
                    vw.write(image, float(track.time_s[t]) - float(track.time_s[0]))
        finally:
            del masks

    def _close_tmp(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self._close_tmp()
        self.tmp_path.unlink(missing_ok=True)


class ExportSink(BaseSink):
    """Animation exports (:func:`tracker.animation.write_exports`) of a result folder, once
    its tracks.csv, joints.csv and track.json are written (put this sink after theirs).

    Args:
        folder: the result folder.
        formats: names from :data:`tracker.animation.FORMATS` (or ``"all"``).

    Attributes:
        formats: the formats written (empty until :meth:`end` ran on a complete result).
    """

    def __init__(self, folder: str | Path, formats) -> None:
        from parttrack.tracker.results import export_formats

        self.folder = Path(folder)
        self.wanted = export_formats(formats)
        self.formats: list[str] = []

    def end(self, result: VideoTracks) -> None:
        if not result.complete or not self.wanted:
            return
        from parttrack.tracker.animation import write_exports

        write_exports(self.folder, self.wanted)
        self.formats = list(self.wanted)
