"""The live viewer, the top-level form of the command: ``parttrack --camera 0`` or
``parttrack --video clip.mp4`` (``parttrack`` alone prints the help).

The source and the model are opened here, before any window, so a camera that does not open
or a broken bundle is reported on the terminal (``error:``/``hint:``) with no window at all.
Everything after that (a camera that disconnects, a file picked in the window) is reported in
the window. The window itself is :class:`ui.viewer.ViewerWindow`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from parttrack.engine.errors import ParttrackError
from parttrack.engine.preprocess import DEFAULT_INPUT_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the viewer's options on the top-level parser."""
    g = parser.add_argument_group(
        "live viewer (parttrack --camera N | --video FILE)",
        "keys in the window: Space pause, M/A/S/L/H masks/axes/skeleton/legend/readout,\n"
        "+/- mask opacity, R record tracks CSV, P snapshot PNG, T learn, C camera, O open file,\n"
        "F1 all keys, Q quit")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--camera", default=None, metavar="N|URL|DEVICE",
                     help="open camera N (0 = the first camera), a stream URL (rtsp://…, http://…) or a "
                          "device path (/dev/video2)")
    src.add_argument("--video", default=None, metavar="FILE", help="play a video file")
    g.add_argument("--loop", action="store_true", help="with --video: start again at the end")
    g.add_argument("--every-frame", action="store_true",
                   help="with --video: track every frame, as fast as possible, instead of playing "
                        "in real time (where frames are dropped when tracking is slower)")
    g.add_argument("--model", default=None, metavar="DIR",
                   help="model bundle folder (default: the shipped trained/bbb)")
    g.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt", "torch"),
                   help="inference backend (default: auto = TensorRT if usable, else ONNX Runtime)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's choice)")
    g.add_argument("--threads", type=int, default=None, metavar="N", help="CPU inference threads")
    g.add_argument("--record", default=None, metavar="CSV",
                   help="start recording tracks to this CSV at once (R toggles recording)")
    g.add_argument("--out", default=".", metavar="DIR",
                   help="folder for recordings and snapshots (default: the current folder)")
    g.add_argument("--opacity", type=float, default=0.45, metavar="A", help="mask opacity 0..1 (default 0.45)")
    g.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="close after tracking N frames and print the frames/s (for measuring)")
    g.add_argument("--smoother", default="online", choices=("online", "none"),
                   help="online: causal Kalman filter (default); none: raw poses")
    g.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="inference precision (default: the backend's; int8 = ONNX Runtime on CPU with the "
                        "bundle's model.int8.onnx from `parttrack compile --int8`)")
    lg = parser.add_argument_group(
        "learn mode (parttrack --camera N --learn; T in the window)",
        "record the subject, train a model on it in a background process while the view goes on,\n"
        "then track with it; needs the train extra (torch)")
    lg.add_argument("--learn", action="store_true",
                    help="learn the subject in front of the source as soon as it opens")
    lg.add_argument("--learn-seconds", type=float, default=60.0, metavar="S",
                    help="length of the recorded clip (default 60)")
    lg.add_argument("--learn-minutes", type=float, default=20.0, metavar="M",
                    help="training time budget (default 20, as `parttrack train`)")
    lg.add_argument("--learn-steps", type=int, default=None, metavar="N", help="training step limit (default: none)")
    lg.add_argument("--learn-parts", type=int, default=10, metavar="K", help="parts to learn (default 10)")
    lg.add_argument("--learn-size", type=int, default=DEFAULT_INPUT_SIZE, metavar="S",
                    help=f"model input side, multiple of 16 (default {DEFAULT_INPUT_SIZE}, as `parttrack train`)")
    lg.add_argument("--learn-dir", default=None, metavar="DIR",
                    help="folder for learning runs (clip, checkpoints, model); default: the user data folder, "
                         "e.g. ~/.local/share/parttrack/learned")


def _check_display() -> None:
    """Qt aborts the process (no exception) when it cannot reach a display or load its
    platform plugin's system libraries (:mod:`ui.qt_platform`): check first."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ParttrackError(
                "the viewer needs a display, and none is available (DISPLAY/WAYLAND_DISPLAY unset)",
                "run it in a desktop session, or use `parttrack track VIDEO -o OUT --overlay` headless")
    from parttrack.ui.qt_platform import check_qt_platform

    check_qt_platform()


def _check_writable(folder: Path, option: str) -> None:
    from parttrack.engine.errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option}: cannot create {folder} ({exc.strerror or exc})",
                          "choose a folder you can write to") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{option}: {folder} is not writable", "choose a folder you can write to")


def run(args: argparse.Namespace) -> int:
    if args.camera is None and args.video is None:
        from parttrack.tracker.cli import build_parser

        build_parser().print_help()
        return 0
    if not 0.0 <= args.opacity <= 1.0:
        raise ParttrackError(f"--opacity must be between 0 and 1, got {args.opacity}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ParttrackError(f"--max-frames must be at least 1, got {args.max_frames}")
    settings = _learn_settings(args)
    if args.learn:
        from parttrack.tracker.learn import TRAIN_EXTRA_HINT, training_dependency_missing

        missing = training_dependency_missing()
        if missing:
            from parttrack.engine.errors import BackendUnavailable

            raise BackendUnavailable(f"--learn: {missing}", TRAIN_EXTRA_HINT)
    _check_display()

    from parttrack.engine.bundle import default_model_path
    from parttrack.engine.runtime import create_runtime

    if args.record is not None:
        _check_writable(Path(args.record).parent, "--record")
    if args.camera is not None:
        source = open_camera_spec(args.camera)
    else:
        from parttrack.tracker.playback import open_for_viewing

        source = open_for_viewing(Path(args.video), loop=args.loop)
    try:
        model = Path(args.model) if args.model else default_model_path()
        runtime = create_runtime(model, backend=args.backend, device=args.device, threads=args.threads,
                                 precision=args.precision, announce=True)
        return _run_window(args, source, runtime, model, settings)
    finally:
        source.close()


def _learn_settings(args):
    from parttrack.tracker.learn import LearnSettings

    try:
        return LearnSettings(seconds=args.learn_seconds, minutes=args.learn_minutes, steps=args.learn_steps,
                             parts=args.learn_parts, size=args.learn_size,
                             root=Path(args.learn_dir) if args.learn_dir else None)
    except ValueError as exc:
        raise ParttrackError(f"learn mode: {exc}", "see parttrack --help, 'learn mode'") from None


def open_camera_spec(spec: str):
    """``--camera`` value → an opened source: digits = camera index; anything else (a stream
    URL, a device path) is given to OpenCV as it is (:class:`tracker.sources.CameraSource`)."""
    from parttrack.tracker.playback import StreamSource
    from parttrack.tracker.sources import open_source

    text = str(spec).strip()
    if text.isdigit():
        return open_source(int(text))
    return StreamSource(text)


def _run_window(args, source, runtime, model, settings) -> int:
    from PyQt6 import QtCore, QtWidgets

    from parttrack.tracker.overlay import OverlayStyle
    from parttrack.ui.viewer import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    from parttrack.engine.runtime import create_runtime
    from parttrack.tracker.kalman import make_factory
    from parttrack.tracker.pipeline import OnlineTracker

    factory = make_factory(args.smoother)

    def make_tracker(rt, src_h, src_w):
        return OnlineTracker(rt, src_h, src_w, factory=factory)

    def make_runtime(path):
        return create_runtime(path, backend=args.backend, device=args.device, threads=args.threads,
                              precision=args.precision, announce=True)

    window = ViewerWindow(runtime, source, loop=args.loop, realtime=not args.every_frame,
                          max_frames=args.max_frames, style=OverlayStyle(mask_opacity=args.opacity),
                          out_dir=args.out, record=args.record, close_at_end=args.max_frames is not None,
                          make_tracker=make_tracker, model_path=model, make_runtime=make_runtime,
                          learn_settings=settings, learn=args.learn)
    window.resize(window.initial_size())
    window.show()
    # Ctrl-C in the terminal: Qt's loop does not run Python signal handlers by itself, so
    # wake Python every 200 ms and close the window (the worker is stopped cleanly).
    interrupted = []

    def on_sigint(*_) -> None:
        interrupted.append(True)
        window.close()

    previous = signal.signal(signal.SIGINT, on_sigint)
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    try:
        app.exec()
    finally:
        timer.stop()
        signal.signal(signal.SIGINT, previous)
        window.stop_worker()
    print(f"parttrack: {window.summary()}", file=sys.stderr)
    return 130 if interrupted else 0
