"""`parttrack train VIDEO [VIDEO ...] -o trained/NAME`: learn a subject's parts from its video.

Thin layer over :func:`engine.train.train_bundle`; frames are decoded with
:func:`tracker.sources.open_source`, cut to ``--start/--end`` and ``--crop``, checked against the
method's assumptions (:mod:`engine.footage`: its findings go to stderr; a moving camera switches
``--moving-camera`` on unless ``--static-camera`` is given) and letterboxed to the model input
while reading. A video with shot cuts is trained on its longest shot only, or with ``--shots`` on
every shot; the shots kept and the joins between videos become ``TrainConfig.shot_starts``, so
no training pair straddles them and each shot has its own static background.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parttrack.engine.errors import BackendUnavailable, InputError, ParttrackError
from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE

#: ``--init`` value that names the shipped starting weights (:func:`prior_bundle`).
PRIOR = "prior"


def add_parser(sub):
    p = sub.add_parser("train", help="learn the parts of a subject from its video (unsupervised)",
                       description="Train a part model on one or more videos of the same subject, without "
                                   "labels, and write a model bundle. Interrupt with Ctrl-C at any time: a "
                                   "checkpoint is saved and --resume continues it.",
                       formatter_class=_HelpFormatter)
    p.add_argument("videos", nargs="+", help="video files (or image folders) of the subject")
    p.add_argument("-o", "--output", required=True, help="bundle folder to write, e.g. trained/my_model")
    p.add_argument("--parts", type=int, default=10, help="number of parts K (default 10)")
    p.add_argument("--size", type=int, default=DEFAULT_INPUT_SIZE,
                   help=f"model input side in pixels, multiple of 16 (default {DEFAULT_INPUT_SIZE})")
    p.add_argument("--minutes", type=float, default=20.0, help="training time budget in minutes (default 20)")
    p.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: time budget only)")
    p.add_argument("--batch", type=int, default=6, help="frame pairs per step (default 6)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="training device (default cpu; auto = cuda when torch sees a CUDA GPU, else cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="dtype of the network's products in training: bf16 (bfloat16 autocast, float32 weights) "
                        "or fp32; auto (default) = bf16 where the CPU/GPU computes it natively (AVX-512 BF16, AMX, "
                        "recent GPUs), else fp32. The exported model is float32 either way")
    p.add_argument("--max-frames", type=int, default=3000, help="use at most this many frames per video")
    p.add_argument("--moving-camera", action="store_true",
                   help="do not assume a static camera (the background is decoded per frame; default: "
                        "chosen by the footage check)")
    p.add_argument("--static-camera", action="store_true",
                   help="assume a static camera even when the footage check says the camera moves")
    p.add_argument("--start", type=float, default=None, metavar="SECONDS",
                   help="use the frames from this time on (seconds from the start of each video)")
    p.add_argument("--end", type=float, default=None, metavar="SECONDS",
                   help="use the frames before this time (seconds from the start of each video)")
    p.add_argument("--shots", action="store_true",
                   help="footage with shot cuts: train on every shot (one model; each shot gets its own static "
                        "background and moving-pixel map, training pairs never straddle a cut) instead of the "
                        "longest shot only")
    p.add_argument("--crop", default="auto", metavar="X,Y,W,H|auto|none",
                   help="train on this rectangle of each frame (source pixels: left, top, width, height); "
                        "auto (default): on a square around where the subject moves when that enlarges it at "
                        "least 1.2 times (a small subject, a wide frame; static camera only); none: whole "
                        "frames. The bundle records the crop, and tracking cuts the same rectangle from "
                        "frames of that size (or aspect ratio)")
    p.add_argument("--pair-gap", type=int, default=25,
                   help="largest distance in frames between the two frames of a training pair (default 25; 0 = any)")
    p.add_argument("--weight", action="append", default=[], metavar="NAME=VALUE",
                   help="set a loss weight (repeatable; 0 switches that loss off), e.g. --weight background=0.2; "
                        "names: " + _WEIGHT_NAMES)
    p.add_argument("--run-dir", default=None,
                   help="folder for checkpoints, log and mask snapshots (default OUTPUT/checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in the run folder")
    p.add_argument("--force", action="store_true",
                   help="overwrite the bundle already in OUTPUT (without it, an existing bundle is refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--snapshot-every", type=int, default=250, metavar="N",
                   help="steps between mask snapshots in RUN_DIR/snapshots (default 250)")
    p.add_argument("--init", default=PRIOR, metavar="BUNDLE|prior|none",
                   help="starting weights: 'prior' (default) = the shipped trained/prior, a model trained without "
                        "labels on generated videos of three body plans at --size 128, used when its network fits "
                        "(--parts 10, any --size; otherwise random weights); 'none' = random weights; or a bundle "
                        "folder (warm start; same --parts, any --size)")
    p.add_argument("--init-optional", action="store_true",
                   help="with --init BUNDLE: if that bundle's network does not fit (other --parts), say so "
                        "and start as without --init instead of stopping")
    p.add_argument("--bundle-on-stop", action="store_true",
                   help="when stopped early (Ctrl-C / SIGINT; Ctrl-Break on Windows), still write the bundle "
                        "from the weights trained so far (the viewer's learn mode stops training this way)")
    p.set_defaults(func=run)


#: Placeholder in the ``--weight`` help, filled in only when the help is printed: the names
#: come from :class:`engine.train.LossWeights`, and importing it imports torch.
_WEIGHT_NAMES = "<loss names>"


class _HelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action) -> str | None:
        text = action.help
        if text and _WEIGHT_NAMES in text:
            text = text.replace(_WEIGHT_NAMES, ", ".join(_weight_names()))
        return text


def _weight_names() -> list[str]:
    from dataclasses import fields

    try:
        from parttrack.engine.train import LossWeights
    except ImportError:  # a plain install has no torch: the rest of the CLI must still work
        return ["(install parttrack[train] to train)"]
    return [f.name for f in fields(LossWeights)]


def _weights(items: list[str]) -> dict[str, float]:
    names, out = _weight_names(), {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or name not in names or number is None or number < 0:
            raise ParttrackError(f"--weight {item!r} is not NAME=VALUE with a known loss name and a value >= 0",
                                 "names: " + ", ".join(names))
        out[name] = number
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class TrainingFootage:
    """The training frames of one or more videos and what the footage check found.

    Attributes:
        frames: ``(T, S, S, 3)`` uint8 letterboxed frames, the videos one after another.
        records: per video ``{"name", "sha256", "frames"}`` (bundle metadata).
        reports: per video its :class:`engine.footage.FootageReport` (on the frames read, after
            ``--start/--end`` and ``--crop``, before a shot is chosen; times from the video's
            first frame).
        shot_starts: index into ``frames`` of the first frame of every shot after the first:
            the shot cuts kept and the join between videos.
        kept: per video, ``(first, end)`` frame indices (into the frames read) of the shot kept
            when only the longest shot is used, else None (every frame read is used).
        content_boxes: per shot (the first, then one per entry of ``shot_starts``) the source
            frame's rectangle inside the letterboxed input, ``(x, y, w, h)`` input pixels
            (:attr:`engine.preprocess.Letterbox.inner_box` of the shot's first frame), for
            ``TrainConfig.content_boxes``.
        crop: ``(x, y, w, h)`` source pixels of the rectangle the frames show (``--crop``, or
            the crop chosen around the subject); None: whole frames.
        crop_frame: ``(w, h)`` of the source frames ``crop`` is on (None without a crop).
    """

    frames: np.ndarray
    records: tuple[dict, ...]
    reports: tuple
    shot_starts: tuple[int, ...]
    kept: tuple = ()
    content_boxes: tuple = ()
    crop: tuple[int, int, int, int] | None = None
    crop_frame: tuple[int, int] | None = None


def parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x,y,w,h"`` → a tuple of ints (None for None, ``"auto"`` and ``"none"``).

    Raises:
        ParttrackError: not four integers with x, y >= 0 and w, h >= 16.
    """
    if text is None or text.strip().lower() in ("auto", "none"):
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        x = y = w = h = -1
    if x < 0 or y < 0 or w < 16 or h < 16:
        raise ParttrackError(f"--crop {text!r} is not X,Y,W,H in source pixels (x, y >= 0; w, h >= 16), "
                             "auto or none", "for example --crop 100,40,320,240")
    return x, y, w, h


def _decode(spec, start_s: float | None, end_s: float | None, max_frames: int):
    """``(t, frame, fps)`` for the frames of ``spec`` with ``start_s <= t < end_s`` (t in seconds
    from its first frame), at most ``max_frames``; ``fps`` is the source's frame rate (None when
    it has none).

    Raises:
        InputError: a camera, or as :func:`tracker.sources.open_source`.
    """
    from parttrack.tracker.sources import open_source

    with open_source(spec) as src:
        if src.is_live:
            raise InputError(f"{spec} is a camera; training needs recorded video")
        count, first_t = 0, None
        for frame in src:
            first_t = frame.time_s if first_t is None else first_t
            t = frame.time_s - first_t
            if start_s is not None and t < start_s - 1e-6:
                continue
            if end_s is not None and t >= end_s - 1e-6:
                break
            yield t, frame, src.fps
            count += 1
            if count >= max_frames:
                break


def load_training_footage(videos: list[str], size: int, max_frames: int, start_s: float | None = None,
                          end_s: float | None = None, crop: tuple[int, int, int, int] | None = None,
                          check: bool = True, all_shots: bool = True, auto_crop: bool = False) -> TrainingFootage:
    """Decode, cut, crop, check and letterbox every video.

    Args:
        videos: video files or image folders.
        size: model input side S.
        max_frames: at most this many frames per video (after ``start_s``).
        start_s, end_s: keep the frames with ``start_s <= t < end_s``, t in seconds from the
            video's first frame (None: no limit).
        crop: ``(x, y, w, h)`` source pixels kept of every frame.
        check: run the footage check (:func:`engine.footage.check_footage`) on the frames kept.
        all_shots: keep every shot of a video with shot cuts (``--shots``); False: only its
            longest shot (:attr:`engine.footage.FootageReport.longest_shot_frames`).
        auto_crop: without ``crop``, with ``check``, train on the crop around the subject that
            :func:`engine.footage.choose_crop` finds (if any; the videos are then decoded a
            second time, cut to it).

    Raises:
        InputError: unreadable video, a crop outside the frame, no frame in the time range, or
            too few frames in total.
    """
    from parttrack.engine.footage import FootageChecker, choose_crop
    from parttrack.engine.preprocess import Letterbox
    from parttrack.engine.train import MIN_FRAMES

    def letterboxed(spec, box, checker_for=None):
        """This video's letterboxed frames (cut to ``box``) and their inner boxes; the checker
        (built by ``checker_for(fps, image)``) fed the frames as the model's crop shows them."""
        frames, boxes, lb, checker, size_seen = [], [], None, None, None
        for t, frame, fps in _decode(spec, start_s, end_s, max_frames):
            image = frame.image
            if box is not None and (box[0] + box[2] > frame.width or box[1] + box[3] > frame.height):
                x, y, w, h = box
                raise InputError(f"--crop {x},{y},{w},{h} is outside the {frame.width}x{frame.height} "
                                 f"frame of {spec}", "choose a rectangle inside the frame")
            if checker_for is not None:
                checker = checker or checker_for(fps, image)
                x, y, w, h = box if box is not None else (0, 0, frame.width, frame.height)
                checker.add(image[y:y + h, x:x + w], t)
            if lb is None or (lb.src_h, lb.src_w) != image.shape[:2]:
                lb = Letterbox.fit(image.shape[0], image.shape[1], size, box)
            frames.append(lb.apply(image))
            boxes.append(lb.inner_box)
            size_seen = size_seen or (frame.width, frame.height)
        return frames, boxes, checker, size_seen

    def new_checker(fps, image):
        return FootageChecker(fps or 25.0, source_size=(image.shape[1], image.shape[0]) if crop is None else
                              (crop[2], crop[3]), source_offset=crop[:2] if crop else (0, 0))

    frames, records, reports, starts, kept, boxes, sizes, per_video = [], [], [], [], [], [], [], []
    for spec in videos:
        starts.append(len(frames))
        got, got_boxes, checker, frame_size = letterboxed(spec, crop, new_checker if check else None)
        count = len(got)
        if count == 0:
            if start_s is not None or end_s is not None:
                raise InputError(f"{spec} has no frames between --start {start_s} and --end {end_s}",
                                 "times are in seconds from the start of the video")
            raise InputError(f"{spec} has no frames", "check the file plays in a video player")
        shot = None
        if checker is not None:
            report = checker.report()
            reports.append(report)
            if report.cut_frames and not all_shots:   # the longest shot only
                shot = report.longest_shot_frames
                got, got_boxes = got[shot[0]:shot[1]], got_boxes[shot[0]:shot[1]]
                count = shot[1] - shot[0]
            else:
                starts.extend(starts[-1] + c for c in report.cut_frames)
        frames += got
        boxes += got_boxes
        kept.append(shot)
        sizes.append(frame_size)
        per_video.append(count)
        records.append({"name": Path(str(spec)).name, "sha256": _sha256(Path(str(spec))), "frames": count})
    if len(frames) < MIN_FRAMES:
        raise InputError(f"training needs at least {MIN_FRAMES} frames, the video(s) have {len(frames)}",
                         "use a longer video (a few seconds of the subject moving)")
    frame_size = sizes[0] if len(set(sizes)) == 1 else None
    if crop is None and auto_crop and check and frame_size is not None:
        crop = choose_crop(reports, frame_size)
        if crop is not None:                 # decode again, cut to the crop (the same frames)
            frames, boxes = [], []
            for spec, shot in zip(videos, kept):
                got, got_boxes, _, _ = letterboxed(spec, crop)
                if shot is not None:
                    got, got_boxes = got[shot[0]:shot[1]], got_boxes[shot[0]:shot[1]]
                frames += got
                boxes += got_boxes
            if len(frames) != sum(per_video):
                raise InputError(f"the video(s) gave {len(frames)} frames on a second reading, "
                                 f"{sum(per_video)} on the first", "check the files are not being written to")
    shot_starts = tuple(s for s in starts if s > 0)
    return TrainingFootage(np.stack(frames), tuple(records), tuple(reports), shot_starts, tuple(kept),
                           tuple(boxes[s] for s in (0, *shot_starts)), crop,
                           frame_size if crop is not None else None)


def load_training_frames(videos: list[str], size: int, max_frames: int) -> tuple[np.ndarray, tuple[dict, ...]]:
    """Decode and letterbox every video; returns ((T, S, S, 3) uint8, video records).

    Raises:
        InputError: unreadable video, or too few frames in total.
    """
    footage = load_training_footage(videos, size, max_frames, check=False)
    return footage.frames, footage.records


def crop_line(crop: tuple[int, int, int, int], frame: tuple[int, int]) -> str:
    """What ``parttrack train`` says about the crop it chose around the subject."""
    x, y, w, h = crop
    zoom = max(frame) / max(w, h)
    return (f"the subject moves within {x},{y},{w},{h} of the {frame[0]}x{frame[1]} frame: training on that crop "
            f"(the subject {zoom:.1f}x larger in the model's input; tracking cuts the same rectangle); "
            "`--crop none` trains on whole frames")


def choose_camera(args, reports, cropped: bool = False) -> tuple[bool, list[str]]:
    """Whether to train with a moving camera, and the lines to print: every video's findings
    (:func:`engine.footage.findings`; ``cropped``: training uses the crop chosen around the
    subject), prefixed with its name when there are several. ``--moving-camera`` /
    ``--static-camera`` decide; otherwise the camera moves when the check says it does, for all
    or part of any video."""
    from parttrack.engine.footage import findings

    if args.moving_camera and args.static_camera:
        raise ParttrackError("--moving-camera and --static-camera contradict each other", "give one of them")
    moving = args.moving_camera or (not args.static_camera and any(r.camera_moves or r.camera_moves_partly
                                                                   for r in reports))
    lines = []
    for name, r in zip(args.videos, reports):
        prefix = f"{Path(str(name)).name}: " if len(reports) > 1 else ""
        lines += [prefix + f for f in findings(r, "train", moving_camera=moving, shots=bool(getattr(args, "shots", False)),
                                               cropped=cropped)]
    return moving, lines


def run(args) -> int:
    try:
        import torch
    except ImportError:
        raise BackendUnavailable("training needs torch", "install the train extra: pip install 'parttrack[train]'") from None
    from parttrack.engine.model import NetConfig
    from parttrack.engine.train import TrainConfig, train_bundle

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda was asked for but torch sees no CUDA GPU", "use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        net_cfg = NetConfig(num_parts=args.parts, input_size=args.size)
    except ValueError as exc:
        raise ParttrackError(f"invalid model settings: {exc}", "use --size a multiple of 16 and --parts >= 1") from None
    if args.minutes is not None and args.minutes <= 0 or args.steps is not None and args.steps <= 0:
        raise ParttrackError("--minutes and --steps must be positive")
    if args.snapshot_every < 1:
        raise ParttrackError(f"--snapshot-every must be at least 1, got {args.snapshot_every}")
    if args.bundle_on_stop:  # SIGINT stops training even where it was ignored (a background job)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break stops like Ctrl-C
            signal.signal(signal.SIGBREAK, signal.default_int_handler)
    check_output_bundle(Path(args.output), force=args.force or args.resume)
    init, note = starting_weights(args.init, net_cfg, optional=args.init_optional)
    if note:
        print(f"parttrack: {note}", file=sys.stderr)
    for name in ("start", "end"):
        value = getattr(args, name)
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ParttrackError(f"--{name} must be a time in seconds >= 0, got {value}")
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise ParttrackError(f"--end {args.end} is not after --start {args.start}")
    crop = parse_crop(args.crop)
    auto_crop = crop is None and str(args.crop).strip().lower() == "auto" and not args.moving_camera
    footage = load_training_footage(args.videos, args.size, args.max_frames, args.start, args.end,
                                    crop, all_shots=args.shots, auto_crop=auto_crop)
    frames, records = footage.frames, footage.records
    moving, lines = choose_camera(args, footage.reports, cropped=footage.crop is not None and crop is None)
    if footage.crop is not None and crop is None:
        lines.append(crop_line(footage.crop, footage.crop_frame))
    for line in lines:
        print(f"parttrack: footage: {line}", file=sys.stderr)
    out = Path(args.output)
    run_dir = Path(args.run_dir) if args.run_dir else out / "checkpoints"
    tcfg = TrainConfig.from_dict({"steps": args.steps, "minutes": args.minutes, "batch": args.batch, "lr": args.lr,
                                  "seed": args.seed, "device": args.device, "precision": args.precision,
                                  "static_background": not moving,
                                  "max_pair_gap": args.pair_gap or None, "weights": _weights(args.weight),
                                  "snapshot_every": args.snapshot_every, "shot_starts": footage.shot_starts,
                                  "content_boxes": footage.content_boxes, "crop": footage.crop,
                                  "crop_frame": footage.crop_frame})
    print(f"parttrack: training K={args.parts} parts at {args.size}x{args.size} on {len(frames)} frames "
          f"({args.device}, {_precision_name(tcfg)}, {'moving' if moving else 'static'} camera), "
          f"{'continuing its checkpoint' if args.resume else 'starting from ' + _start_name(init)}; "
          f"checkpoints in {run_dir}", file=sys.stderr)
    try:
        bundle = train_bundle(frames, out, net_cfg, tcfg, run_dir, resume=args.resume, training_videos=records,
                              progress=not args.no_progress, init=init)
    except KeyboardInterrupt:
        if args.bundle_on_stop:
            bundle = bundle_from_checkpoint(frames, out, net_cfg, tcfg, run_dir, records)
            if bundle is not None:
                print(f"parttrack: stopped early; wrote {bundle}")
                return 0
        print(f"parttrack: interrupted; checkpoint saved in {run_dir}", file=sys.stderr)
        print("parttrack: hint: rerun the same command with --resume to continue", file=sys.stderr)
        return 130
    print(f"parttrack: wrote {bundle}; name its parts with `parttrack label {bundle} --name 1=...`")
    residual = _motion_residual(bundle)
    if residual is not None:
        print(f"parttrack: motion residual {residual:.4f} (label-free, lower is better: compare it with "
              f"other runs on the same video; {Path(bundle) / 'NOTES.md'})")
    return 0


def _motion_residual(bundle) -> float | None:
    """The bundle's label-free motion residual (meta ``extra``), None when it has none."""
    from parttrack.engine.bundle import load_bundle

    try:
        value = load_bundle(bundle).meta.extra.get("motion_residual")
    except (ParttrackError, OSError, ValueError):   # a report must not fail the finished command
        return None
    return None if value is None else float(value)


def check_output_bundle(out: Path, force: bool) -> None:
    """Refuse to train into a folder that already holds a model bundle (its ``model.onnx``)
    unless ``force`` (``--force``, or ``--resume``, which continues that bundle's training).

    Raises:
        ParttrackError: ``out`` holds a bundle, or is a file.
    """
    from parttrack.engine.bundle import ONNX_FILE

    if out.exists() and not out.is_dir():
        raise ParttrackError(f"{out} exists and is not a folder", "choose another -o for the bundle")
    if not force and (out / ONNX_FILE).is_file():
        raise ParttrackError(f"{out} already holds a model bundle; training would overwrite it",
                             "choose another -o, pass --force to overwrite it, or --resume to continue its training")


def prior_bundle() -> Path:
    """The shipped starting weights of `parttrack train` (``trained/prior``; its NOTES.md and
    reproduce.py say how it was made)."""
    import parttrack.trained

    return Path(parttrack.trained.__file__).resolve().parent / "prior"


def starting_weights(init: str, net_cfg, optional: bool = False) -> tuple[Path | None, str | None]:
    """The bundle whose weights start the training (None: random weights) and a note for the user.

    ``init``: ``"prior"`` (:func:`prior_bundle`, used only when its weights fit ``net_cfg``:
    :meth:`engine.model.NetConfig.weights_fit`, any input size),
    ``"none"``, or a bundle folder. A bundle folder whose network differs is returned as it is
    (:meth:`engine.train.Trainer.load_weights` then refuses it with a clear error) unless
    ``optional``: then the start falls back to the prior's rule.
    """
    if init.lower() == "none":
        return None, None
    if init.lower() != PRIOR:
        theirs = _bundle_network(init)
        if not optional or (theirs is not None and theirs.weights_fit(net_cfg)):
            return Path(init), None
        fallback, _ = starting_weights(PRIOR, net_cfg)
        return fallback, (f"{init} has another network (parts, widths); starting from "
                          f"{'the shipped prior' if fallback else 'random weights'}")
    prior = prior_bundle()
    theirs = _bundle_network(prior)
    if theirs is not None and theirs.weights_fit(net_cfg):
        return prior, None
    why = "is missing or unreadable" if theirs is None else f"fits --parts {theirs.num_parts} only"
    return None, f"the shipped prior (trained/prior) {why}; starting from random weights"


def _precision_name(tcfg) -> str:
    """What the start-up line says about :attr:`TrainConfig.precision` on its device."""
    import torch

    from parttrack.engine.train import training_dtype

    return "bfloat16 products" if training_dtype(tcfg.precision, torch.device(tcfg.device)) else "float32"


def _start_name(init: Path | None) -> str:
    """How the training start is shown to the user."""
    if init is None:
        return "random weights"
    return "the shipped prior (trained/prior)" if init == prior_bundle() else f"the weights of {init}"


def _bundle_network(bundle: str | Path):
    """``bundle``'s network settings (:class:`engine.model.NetConfig`), None when unreadable."""
    from parttrack.engine.model import NetConfig, read_config

    try:
        return NetConfig.from_dict(read_config(Path(bundle) / "config.json")["network"])
    except Exception:  # unreadable or foreign
        return None


def bundle_from_checkpoint(frames: np.ndarray, out: Path, net_cfg, tcfg, run_dir: Path,
                           records: tuple[dict, ...]) -> Path | None:
    """Write the bundle from ``run_dir/checkpoint.pt`` (after an early stop); None when no step
    was trained yet. A second Ctrl-C while the bundle is written is ignored, so the bundle
    is never left half-written by it."""
    from parttrack.engine.train import Trainer, write_trained_bundle

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        trainer = Trainer(frames, net_cfg, tcfg, run_dir)
        if not trainer.load_checkpoint() or trainer.step == 0:
            return None
        return write_trained_bundle(trainer, out, records, extra={"stopped_early": True})
    finally:
        signal.signal(signal.SIGINT, previous)
