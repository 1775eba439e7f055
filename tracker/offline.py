"""The offline pipeline: one recorded video through every stage into its result folder
(layout in :mod:`tracker.results`).

:func:`track_video` composes the stages the live path uses too (:mod:`tracker.pipeline`)::

    open_scaled (decode, scale) → Letterbox.apply (pad) → runtime.infer
      → PoseExtractor.compute (PoseBatch) → smoother (tracker.kalman) → skeleton → writers

How it runs (the hot path is kept lean for throughput): frames are decoded with PyAV in
threaded mode and scaled to the letterbox's inner size straight from the decoder's YUV planes
(no full-resolution RGB frame is ever made; :class:`tracker.sources.ScaledFileSource`),
padded to the model input, inferred in batches, and turned into poses from the low-resolution
masks; source-resolution label maps are only made for ``--masks``. Frames are streamed, never
held: what is kept per frame is its K poses (and, for ``--overlay``, its soft masks at mask
resolution as uint8, in a temporary file). Label PNGs and the overlay's masks are refined to the
source resolution with the frame as the guide (:class:`tracker.poses.SourceLabeler`; in pass 1
the guide is the frame decoded at the letterbox's inner size, in the overlay pass the
full-resolution frame). The offline smoother (forward Kalman filter + RTS) runs once all
frames are measured; the skeleton is fitted on the whole video; the overlay is drawn in a
second decoding pass with the final poses (videos under 360 px high at an integer zoom ≥ 2,
to stay legible).

Publication and interruption (the folder protocol is :mod:`tracker.results`'): the folder is
locked for the whole job, its files are written into a hidden staging sibling and renamed into
place once ``done.json`` is written, so a complete result is only ever replaced by a complete
one. On Ctrl-C the frames processed so far are smoothed and written (tracks, joints, track.json
with ``"complete": false``, never beside an unfinished overlay), writers and the video container
are closed, no ``done.json`` is written, and that partial folder is published only where no
complete result exists — a rerun redoes the video and skips every folder that is done.

Checks: non-finite network output stops the video (:func:`tracker.poses.check_finite`); a video
that yields fewer frames than its container declares, or whose decoding fails part-way, is
tracked up to there and "done with a warning": the warning goes into done.json, track.json
(``"input": {"frames_declared", "frames_decoded", "complete"}``) and the summary. The footage
check (:class:`engine.footage.FootageChecker`, fed pass 1's frames) goes into track.json
(``"footage"``) and its findings (shot cuts, a moving camera, a small subject) into the warnings.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.errors import InputError, OutputError, ParttrackError
from engine.footage import FootageChecker, findings
from engine.preprocess import Letterbox
from tracker.core import PartPoses, Track
from tracker.io import JointsCSVWriter, TracksCSVWriter, VideoWriter, printable, write_json, write_label_png
from tracker.kalman import make_factory
from tracker.poses import LABEL_STEP, PoseExtractor, SourceLabeler, check_finite
from tracker.progress import Progress
from tracker.progress import log as _default_log
from tracker.results import (
    CONVENTIONS,
    DONE_FILE,
    INFO_FILE,
    JOINTS_FILE,
    LABELS_TMP,
    MASKS_DIR,
    OVERLAY_FILE,
    RAW_FILE,
    TRACKS_FILE,
    TrackOptions,
    VideoResult,
    check_done,
    check_replaceable,
    check_writable,
    done_info,
    export_formats,
    publish,
    publish_partial,
    recover_folder,
    result_lock,
    skipped_result,
    staging_dir,
    video_fingerprint,
)
from tracker.skeleton import ContactAccumulator, skeleton_from_track
from tracker.sources import open_scaled, open_source


def track_video(video: str | Path, out_dir: str | Path, options: TrackOptions | None = None, runtime=None,
                progress=None, log=None) -> VideoResult:
    """Track one video and write its result folder (see the module docstring).

    Args:
        video: a video file (anything :func:`tracker.sources.open_source` reads).
        out_dir: its result folder (created).
        options: :class:`tracker.results.TrackOptions`.
        runtime: an inference runtime to use (default: :meth:`TrackOptions.make_runtime`).
        progress: a :class:`tracker.progress.Progress` (default: none shown).
        log: where one-line messages go (why a done folder is redone, waiting for another
            run's lock); default stderr.

    Returns:
        :class:`VideoResult` (status ``done`` or ``skipped``; ``warnings`` for input that
        ended early).

    Raises:
        InputError: missing, unreadable, corrupt or empty video.
        OutputError: the result folder cannot be written, or exists and is not a result folder.
        BundleError: the model produced non-finite output; BackendUnavailable: see the runtime.
        KeyboardInterrupt: after writing what was processed (no done.json; a complete result
            already in ``out_dir`` is kept).
    """
    options = options or TrackOptions()
    video, out_dir = Path(video), Path(out_dir)
    progress = progress or Progress()
    log = log or _default_log
    with result_lock(out_dir, log):
        recover_folder(out_dir)
        state, why = check_done(out_dir, options, video)
        if state == "skip":
            return skipped_result(video, out_dir)
        if state == "exports":
            run_exports(out_dir, options, done_info(out_dir) or {})
            return skipped_result(video, out_dir, "done")
        check_replaceable(out_dir)
        if why:
            log(printable(f"parttrack: {video.name}: redoing {out_dir}: {why}"))
        return _VideoJob(video, out_dir, options, runtime, progress).run()


def run_exports(out_dir: Path, options: TrackOptions, done: dict | None) -> list[str]:
    """Write the animation exports ``options.exports`` asks for into ``out_dir`` and, when
    ``done`` (the folder's done.json) is given, record them there; returns the formats."""
    from tracker.animation import write_exports

    formats = export_formats(options.exports)
    write_exports(out_dir, formats)
    if done is not None:  # record them in done.json (still written last)
        done = dict(done)
        done["exports"] = sorted(set(done.get("exports", [])) | set(formats))
        write_json(out_dir / DONE_FILE, done)
    return list(formats)


class _VideoJob:
    """One video through the pipeline (a class only to share state between the stages)."""

    def __init__(self, video: Path, out_dir: Path, options: TrackOptions, runtime, progress) -> None:
        self.video, self.out_dir, self.options, self.progress = video, out_dir, options, progress
        self.final_dir = out_dir  # where the result is published; out_dir is the staging folder in run()
        self.input = video_fingerprint(video)
        with open_source(video) as probe:  # raises InputError for missing/corrupt/empty videos
            self.src_h, self.src_w = probe.height, probe.width
            self.nominal_fps, self.frame_count = probe.fps, probe.frame_count
            self.is_live = probe.is_live
        if self.is_live:
            raise InputError(f"{video} is a camera; `parttrack track` needs recorded videos",
                             "use the live viewer: parttrack --camera N")
        self.runtime = runtime if runtime is not None else options.make_runtime()
        self.meta = self.runtime.meta
        self.k = int(self.meta.num_parts)
        self.lb = Letterbox.fit(self.src_h, self.src_w, self.meta.input_size)
        self.extractor = PoseExtractor(self.lb, self.meta.mask_size, options.pose)
        # label PNGs: masks refined to the source's edges, the guide being pass 1's frame (decoded
        # at the letterbox's inner size); the overlay pass makes its own (full-resolution guide)
        self.png_labeler = None
        if options.masks:
            self.png_labeler = SourceLabeler(self.lb, self.meta.mask_size, guide_size=self.lb.inner_size)
        self.contacts = ContactAccumulator(self.k, self.extractor.grid_x, self.extractor.grid_y)
        self.factory = make_factory(options.smoother, options.noise)
        self.chunks: list[dict] = []  # per batch: index, time_s and the pose arrays of Track
        self.smoothed_chunks: list[PartPoses] = []
        self.frames = 0
        self.warnings: list[str] = []
        self.decode_error: str | None = None
        self.input_complete = True  # False when the video ended before its declared frames (set by pass 1)
        # the footage check (engine.footage) on pass 1's frames: in track.json and the summary
        self.footage = FootageChecker(self.nominal_fps or 25.0, source_size=(self.src_w, self.src_h))

    # -- pass 1: decode, infer, measure -------------------------------------------------
    def run(self) -> VideoResult:
        """Track into a staging folder and publish it (see the module docstring)."""
        check_writable(self.final_dir.parent)
        staging = self.out_dir = staging_dir(self.final_dir)
        try:
            result = self._run()
        except KeyboardInterrupt:
            publish_partial(staging, self.final_dir)
            raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish(staging, self.final_dir)
        result.out_dir = self.final_dir
        return result

    def _run(self) -> VideoResult:
        opts, out = self.options, self.out_dir
        t0 = time.perf_counter()
        total = self.frame_count if opts.max_frames is None else min(self.frame_count or opts.max_frames, opts.max_frames)
        self.progress.start(self.video.name, total)
        interrupted = False
        writers = []
        try:
            raw_w = TracksCSVWriter(out / RAW_FILE, self.meta.part_names) if opts.raw else None
            stream_w = None
            online = None
            if opts.smoother != "offline":  # causal: tracks.csv can be written as we go
                stream_w = TracksCSVWriter(out / TRACKS_FILE, self.meta.part_names)
                online = self.factory.create_filter(self.k, (self.src_h, self.src_w))
            writers += [w for w in (raw_w, stream_w) if w is not None]
            if opts.masks:
                (out / MASKS_DIR).mkdir(exist_ok=True)
            labels_fh = open(out / LABELS_TMP, "wb") if opts.overlay else None
            if labels_fh is not None:
                writers.append(labels_fh)
            try:
                self._pass1(raw_w, stream_w, online, labels_fh)
            except KeyboardInterrupt:
                interrupted = True
        except OSError as exc:
            raise OutputError(f"cannot write in {out}: {exc.strerror or exc}",
                              "check the output folder's permissions and free disk space") from None
        finally:
            for w in writers:
                w.close()
        if self.frames == 0 and not interrupted:
            raise InputError(f"{self.video}: no frames could be decoded",
                             "the file is empty or corrupt; re-encode it or pick another file")
        result = self._finish(t0, complete=not interrupted)
        self.progress.finish()
        if interrupted:
            raise KeyboardInterrupt
        return result

    def _frames(self, src):
        opts = self.options
        batch = []
        for frame in src:
            batch.append(frame)
            if opts.max_frames is not None and self.frames + len(batch) >= opts.max_frames:
                break
            if len(batch) == opts.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _pass1(self, raw_w, stream_w, online, labels_fh) -> None:
        opts = self.options
        with open_scaled(self.video, self.lb.inner_size) as src:
            for batch in self._frames(src):
                images = np.stack([self.lb.apply(f.image) for f in batch])
                out = self.runtime.infer(images)
                check_finite(out, self.options.model_path(), self.frames)
                if out.num_parts != self.k:
                    raise ParttrackError(f"the runtime returned K={out.num_parts} parts but the bundle says {self.k}")
                poses = self.extractor.compute(out)
                self.contacts.add(poses.labels, poses.xy, poses.angle_deg, poses.visible)
                index = np.array([f.index for f in batch], np.int64)
                times = np.array([f.time_s for f in batch], np.float64)
                chunk = {"index": index, "time_s": times, "xy": poses.xy, "angle_deg": poses.angle_deg,
                         "scale": poses.scale, "area_px": poses.area_px, "visible": poses.visible,
                         "confidence": poses.confidence}
                if raw_w is not None or online is not None:
                    for i in range(len(batch)):
                        p = poses.pose(i, index[i], times[i])
                        if raw_w is not None:
                            raw_w.write(p)
                        if online is not None:
                            s = online.update(p)
                            stream_w.write(s)
                            self.smoothed_chunks.append(s)
                if self.options.masks:
                    for i in range(len(batch)):
                        labels = self.png_labeler(out.masks[i], batch[i].image)
                        write_label_png(self.out_dir / MASKS_DIR / f"{int(index[i]):06d}.png", labels)
                if labels_fh is not None:  # soft masks as uint8 round(255·M), for the overlay pass
                    labels_fh.write(np.rint(out.masks * 255.0).astype(np.uint8).tobytes())
                self.chunks.append(chunk)
                for f in batch:
                    self.footage.add(f.image, f.time_s)
                self.frames += len(batch)
                self.progress.advance(len(batch))
            if src.error:
                self.warnings.append(printable(f"{self.video.name}: {src.error}; the frames before it were tracked"))
            self.decode_error = src.error
            declared = self.frame_count
            short = bool(declared and self.frames < declared and (opts.max_frames is None or self.frames < opts.max_frames))
            self.input_complete = not short and src.error is None
            if short:
                self.warnings.append(printable(f"{self.video.name}: {self.frames} of the {declared} frames its container "
                                               "declares could be decoded (truncated or damaged file?); the "
                                               "decoded frames were tracked"))
        if opts.overlay and labels_fh is not None:
            labels_fh.flush()

    # -- finishing: smoothing, skeleton, files -----------------------------------------------
    def _raw_track(self) -> Track:
        cat = {k: np.concatenate([c[k] for c in self.chunks]) for k in self.chunks[0]}
        return Track(**cat)

    def _finish(self, t0: float, complete: bool) -> VideoResult:
        opts, out = self.options, self.out_dir
        if self.frames == 0:  # interrupted before the first frame: nothing to write
            return VideoResult(self.video, out, "interrupted", 0, time.perf_counter() - t0, self.runtime.describe())
        raw = self._raw_track()
        size = (self.src_h, self.src_w)
        if opts.smoother == "offline":
            smoothed = self.factory.smooth(raw, size)
            with TracksCSVWriter(out / TRACKS_FILE, self.meta.part_names, flush=False) as w:
                w.write_track(smoothed)
        elif opts.smoother == "online":
            smoothed = Track.from_poses(self.smoothed_chunks)
        else:
            smoothed = raw
        edges = self.meta.skeleton_edges or None
        skeleton = skeleton_from_track(smoothed, self.contacts, edges=edges, min_touch=opts.min_touch)
        joints = skeleton.joints_track(smoothed)
        with JointsCSVWriter(out / JOINTS_FILE, skeleton.edges, flush=False) as w:
            for j in joints:
                w.write(j)
        seconds = time.perf_counter() - t0
        footage = self.footage.report()
        self.warnings += [printable(f"{self.video.name}: footage: {line}") for line in findings(footage, "track")]
        info = self._info(smoothed, skeleton, False, seconds)  # "complete" only once every file is written
        info["footage"] = footage.to_json()
        write_json(out / INFO_FILE, info)
        status = "done" if complete else "interrupted"
        result = VideoResult(self.video, out, status, self.frames, seconds, self.runtime.describe(),
                             warnings=list(self.warnings), input_complete=self.input_complete)
        if not complete:
            (out / LABELS_TMP).unlink(missing_ok=True)
            return result
        exports: list[str] = []
        try:
            if opts.overlay:
                self._overlay(smoothed, joints)
            if opts.exports:
                exports = run_exports(out, opts, None)
        except KeyboardInterrupt:  # an unfinished overlay is not kept (track.json says incomplete)
            (out / OVERLAY_FILE).unlink(missing_ok=True)
            raise
        info["complete"] = True
        write_json(out / INFO_FILE, info)
        write_json(out / DONE_FILE, {
            "video": str(self.video), "input": self.input, "frames": self.frames, "seconds": round(seconds, 3),
            "backend": self.runtime.describe(), "fingerprint": opts.fingerprint(), "outputs": opts.outputs(),
            "exports": exports, "warnings": self.warnings, "input_complete": self.input_complete,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        result.seconds = time.perf_counter() - t0
        return result

    def _info(self, track: Track, skeleton, complete: bool, seconds: float) -> dict:
        times = track.time_s
        fps = self.nominal_fps
        if not fps and len(times) > 1:
            dt = float(np.median(np.diff(times)))
            fps = 1.0 / dt if dt > 0 else None
        duration = float(times[-1] - times[0]) + (1.0 / fps if fps else 0.0) if len(times) else 0.0
        try:
            from importlib.metadata import version

            ver = version("parttrack")
        except Exception:  # pragma: no cover - running from a checkout
            ver = "unknown"
        files = {"tracks": TRACKS_FILE, "joints": JOINTS_FILE}
        if self.options.raw:
            files["tracks_raw"] = RAW_FILE
        if self.options.masks:
            files["masks"] = f"{MASKS_DIR}/NNNNNN.png"
        if self.options.overlay:
            files["overlay"] = OVERLAY_FILE
        return {
            "parttrack_version": ver, "complete": complete,
            "video": str(self.video), "video_name": self.video.name,
            "input": dict(self.input, frames_declared=self.frame_count, frames_decoded=self.frames,
                          decode_error=self.decode_error, complete=self.input_complete),
            "width": self.src_w, "height": self.src_h, "fps": fps, "frame_count": self.frames,
            "duration_s": round(duration, 6), "first_time_s": float(times[0]) if len(times) else None,
            "model": str(self.options.model_path()), "backend": self.runtime.describe(),
            "runtime": getattr(self.runtime, "name", ""), "device": getattr(self.runtime, "device", ""),
            "num_parts": self.k, "part_names": list(self.meta.part_names),
            "part_colors": [list(c) for c in self.meta.part_colors],
            "skeleton_edges": skeleton.edges.tolist(), "skeleton": skeleton.to_json(self.meta.part_names),
            "smoother": self.options.smoother, "noise": asdict(self.options.noise), "pose": asdict(self.options.pose),
            "letterbox": {"input_size": self.lb.size, "scale": self.lb.scale, "pad_x": self.lb.pad_x,
                          "pad_y": self.lb.pad_y, "mask_size": list(self.meta.mask_size)},
            "seconds": round(seconds, 3), "files": files, "conventions": CONVENTIONS,
        }

    # -- pass 2: the overlay video -------------------------------------------------------------
    def _overlay(self, track: Track, joints) -> None:
        from tracker.overlay import draw_overlay

        out = self.out_dir
        h, w = self.meta.mask_size
        tmp = out / LABELS_TMP
        shape = (self.frames, self.k + 1, h, w)
        masks = np.memmap(tmp, dtype=np.uint8, mode="r", shape=shape) if self.frames else None
        colors, names = self.meta.part_colors, self.meta.part_names
        # small videos are drawn at 2× or more so the legend and axes stay legible (their label
        # maps then at every source pixel, so the zoom shows no staircase)
        zoom = max(1, int(np.ceil(360 / max(1, self.src_h))))
        labeler = SourceLabeler(self.lb, self.meta.mask_size, step=1 if zoom > 1 else LABEL_STEP)
        try:
            with VideoWriter(out / OVERLAY_FILE, self.src_w * zoom, self.src_h * zoom, self.nominal_fps) as vw, \
                    open_source(self.video, threaded=True) as src:
                for t, frame in enumerate(src):
                    if t >= self.frames:
                        break
                    lab = labeler(np.asarray(masks[t]), frame.image)
                    image = draw_overlay(frame.image, lab, track.poses(t), joints[t], colors, names, scale=zoom)
                    vw.write(image, float(track.time_s[t]) - float(track.time_s[0]))
        finally:
            del masks
            if tmp.exists():
                tmp.unlink()
