"""The offline pipeline: one recorded video through every stage into its result folder
(layout in :mod:`tracker.results`).

:func:`track_video` runs :func:`tracker.pipeline.track_file` — the one composition of the
stages, shared with the Ray path and the Python API — with the file sinks of a result folder
(:mod:`tracker.sinks`)::

    open_scaled (decode, scale) → Letterbox.apply (pad) → runtime.infer
      → PoseExtractor.compute (PoseBatch) → smoother (tracker.kalman) → skeleton
      → sinks: tracks_raw.csv, tracks.csv, masks/, footage check, joints.csv, track.json,
               overlay.mp4, exports, tracks.png (tracker.plot)

How it runs: frames are decoded with PyAV in threaded mode and scaled to the letterbox's
decode size (its inner size; with a model's crop, the whole frame at the crop's scale) straight
from the decoder's YUV planes (no full-resolution RGB frame is made;
:class:`tracker.sources.ScaledFileSource`), cut to the crop (if any), padded to the model input,
inferred in batches, and turned into poses from the low-resolution masks; source-resolution label maps are only
made for ``--masks``. Frames are streamed, never held: what is kept per frame is its K poses
(and, for ``--overlay``, its soft masks at mask resolution as uint8, in a temporary file).
Label PNGs and the overlay's masks are refined to the source resolution with the frame as the
guide (:class:`tracker.poses.SourceLabeler`). The offline smoother (forward Kalman filter +
RTS) runs once all frames are measured; the skeleton is fitted on the whole video; the overlay
is drawn in a second decoding pass with the final poses (:class:`tracker.sinks.OverlaySink`).

Publication and interruption (the folder protocol is :mod:`tracker.publish`'s): the folder is
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

from parttrack.engine.bundle import trained_with_moving_camera
from parttrack.engine.errors import OutputError
from parttrack.engine.footage import FootageChecker, findings
from parttrack.tracker.core import CONVENTIONS
from parttrack.tracker.io import printable, write_json
from parttrack.tracker.pipeline import TrackingInterrupted, VideoInfo, VideoTracks, probe_file, track_file
from parttrack.tracker.plot import TracksPlotSink
from parttrack.tracker.progress import Progress
from parttrack.tracker.progress import log as _default_log
from parttrack.tracker.publish import (
    check_replaceable,
    publish,
    publish_partial,
    recover_folder,
    result_lock,
    staging_dir,
)
from parttrack.tracker.results import (
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
    check_writable,
    done_info,
    export_formats,
    skipped_result,
    video_fingerprint,
)
from parttrack.tracker.sinks import BaseSink, ExportSink, JointsCSVSink, LabelPNGSink, OverlaySink, TracksCSVSink


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
    from parttrack.tracker.animation import write_exports

    formats = export_formats(options.exports)
    write_exports(out_dir, formats)
    if done is not None:  # record them in done.json (still written last)
        done = dict(done)
        done["exports"] = sorted(set(done.get("exports", [])) | set(formats))
        write_json(out_dir / DONE_FILE, done)
    return list(formats)


class _VideoJob:
    """One video into its result folder (a class only to share state between the steps)."""

    def __init__(self, video: Path, out_dir: Path, options: TrackOptions, runtime, progress) -> None:
        self.video, self.out_dir, self.options, self.progress = video, out_dir, options, progress
        self.final_dir = out_dir  # where the result is published; out_dir is the staging folder in run()
        self.input = video_fingerprint(video)
        probe_file(video)  # InputError for missing/corrupt/empty videos and cameras, before the model loads
        self.runtime = runtime if runtime is not None else options.make_runtime()

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
        info_sink = _InfoSink(self, t0)
        sinks: list = [TracksCSVSink(out / RAW_FILE, raw=True)] if opts.raw else []
        sinks.append(TracksCSVSink(out / TRACKS_FILE))
        if opts.masks:
            sinks.append(LabelPNGSink(out / MASKS_DIR))
        sinks += [info_sink.footage_sink, JointsCSVSink(out / JOINTS_FILE), info_sink]
        if opts.overlay:
            sinks.append(OverlaySink(out / OVERLAY_FILE, out / LABELS_TMP))
        export = ExportSink(out, opts.exports) if opts.exports else None
        if export is not None:
            sinks.append(export)
        if opts.plot:
            sinks.append(TracksPlotSink(out))  # tracks.png (tracker.plot)
        try:
            tracks = track_file(self.video, self.runtime, opts, sinks=sinks, progress=self.progress)
        except TrackingInterrupted:
            raise
        except KeyboardInterrupt:  # in the overlay or export step: an unfinished overlay is not kept
            (out / OVERLAY_FILE).unlink(missing_ok=True)
            raise
        except OSError as exc:
            raise OutputError(f"cannot write in {out}: {exc.strerror or exc}",
                              "check the output folder's permissions and free disk space") from None
        info = info_sink.info
        info["complete"] = True
        write_json(out / INFO_FILE, info)
        write_json(out / DONE_FILE, {
            "video": str(self.video), "input": self.input, "frames": len(tracks), "seconds": round(info_sink.seconds, 3),
            "backend": self.runtime.describe(), "fingerprint": opts.fingerprint(), "outputs": opts.outputs(),
            "exports": export.formats if export is not None else [], "warnings": info_sink.result.warnings,
            "input_complete": tracks.input_complete, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        result = info_sink.result
        result.seconds = time.perf_counter() - t0
        return result


class _FootageSink(BaseSink):
    """The footage check (:class:`engine.footage.FootageChecker`) fed every decoded frame."""

    def begin(self, info: VideoInfo) -> None:
        self.checker = FootageChecker(info.fps or 25.0, source_size=(info.width, info.height))

    def write_batch(self, batch) -> None:
        for f in batch.frames:
            self.checker.add(f.image, f.time_s)


class _InfoSink(BaseSink):
    """track.json (``"complete": false`` until the job marks it complete) and the job's
    :class:`VideoResult`, once tracks and joints are written."""

    def __init__(self, job: _VideoJob, t0: float) -> None:
        self.job, self.t0 = job, t0
        self.footage_sink = _FootageSink()
        self.info: dict = {}
        self.result: VideoResult | None = None

    def end(self, tracks: VideoTracks) -> None:
        job = self.job
        seconds = time.perf_counter() - self.t0
        footage = self.footage_sink.checker.report()
        warnings = list(tracks.warnings)
        moving = trained_with_moving_camera(job.options.model_path())
        cropped = tracks.info.letterbox.box is not None
        warnings += [printable(f"{job.video.name}: footage: {line}")
                     for line in findings(footage, "track", moving_camera=moving, cropped=cropped)]
        self.info = track_info(job.video, tracks, job.options, job.runtime, job.input, seconds)
        self.info["footage"] = footage.to_json(moving, cropped)
        write_json(job.out_dir / INFO_FILE, self.info)
        self.seconds = seconds
        self.result = VideoResult(job.video, job.out_dir, "done" if tracks.complete else "interrupted", len(tracks),
                                  seconds, tracks.runtime, warnings=warnings, input_complete=tracks.input_complete)


def track_info(video: Path, tracks: VideoTracks, options: TrackOptions, runtime, input_fingerprint: dict,
               seconds: float) -> dict:
    """The content of track.json (``"complete": false``; see :mod:`tracker.results`)."""
    vi, track, skeleton = tracks.info, tracks.track, tracks.skeleton
    times = track.time_s
    fps = vi.fps
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
    if options.raw:
        files["tracks_raw"] = RAW_FILE
    if options.masks:
        files["masks"] = f"{MASKS_DIR}/NNNNNN.png"
    if options.overlay:
        files["overlay"] = OVERLAY_FILE
    lb = vi.letterbox
    return {
        "parttrack_version": ver, "complete": False,
        "video": str(video), "video_name": video.name,
        "input": dict(input_fingerprint, frames_declared=vi.frames_declared, frames_decoded=len(tracks),
                      decode_error=tracks.decode_error, complete=tracks.input_complete),
        "width": vi.width, "height": vi.height, "fps": fps, "frame_count": len(tracks),
        "duration_s": round(duration, 6), "first_time_s": float(times[0]) if len(times) else None,
        "model": str(options.model_path()), "backend": tracks.runtime,
        "runtime": getattr(runtime, "name", ""), "device": getattr(runtime, "device", ""),
        "num_parts": vi.num_parts, "part_names": list(vi.part_names),
        "part_colors": [list(c) for c in vi.part_colors],
        "skeleton_edges": skeleton.edges.tolist(), "skeleton": skeleton.to_json(vi.part_names),
        "smoother": options.smoother, "noise": asdict(options.noise), "pose": asdict(options.pose),
        "letterbox": {"input_size": lb.size, "scale": lb.scale, "pad_x": lb.pad_x,
                      "pad_y": lb.pad_y, "mask_size": list(vi.mask_size),
                      "crop": list(lb.box) if lb.box is not None else None},
        "seconds": round(seconds, 3), "files": files, "conventions": CONVENTIONS,
    }
