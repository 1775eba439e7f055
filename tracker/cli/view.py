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

from engine.errors import ParttrackError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the viewer's options on the top-level parser."""
    g = parser.add_argument_group(
        "live viewer (parttrack --camera N | --video FILE)",
        "keys in the window: Space pause, M/A/S/L/H masks/axes/skeleton/legend/readout,\n"
        "+/- mask opacity, R record tracks CSV, P snapshot PNG, C camera, O open file,\n"
        "F1 all keys, Q quit")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=None, metavar="N",
                     help="open camera N (0 = the first camera)")
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


def _check_display() -> None:
    """Qt aborts the process (no exception) when it cannot reach a display: check first."""
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise ParttrackError(
                "the viewer needs a display, and none is available (DISPLAY/WAYLAND_DISPLAY unset)",
                "run it in a desktop session, or use `parttrack track VIDEO -o OUT --overlay` headless")


def _check_writable(folder: Path, option: str) -> None:
    from engine.errors import OutputError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option}: cannot create {folder} ({exc.strerror or exc})",
                          "choose a folder you can write to") from None
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{option}: {folder} is not writable", "choose a folder you can write to")


def run(args: argparse.Namespace) -> int:
    if args.camera is None and args.video is None:
        from tracker.cli import build_parser

        build_parser().print_help()
        return 0
    if not 0.0 <= args.opacity <= 1.0:
        raise ParttrackError(f"--opacity must be between 0 and 1, got {args.opacity}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ParttrackError(f"--max-frames must be at least 1, got {args.max_frames}")
    _check_display()

    from engine.bundle import default_model_path
    from engine.runtime import create_runtime
    from tracker.sources import open_source

    if args.record is not None:
        _check_writable(Path(args.record).parent, "--record")
    if args.camera is not None:
        source = open_source(int(args.camera))
    else:
        source = open_source(Path(args.video), loop=args.loop, threaded=False)
    try:
        model = Path(args.model) if args.model else default_model_path()
        runtime = create_runtime(model, backend=args.backend, device=args.device, threads=args.threads,
                                 announce=True)
        return _run_window(args, source, runtime)
    finally:
        source.close()


def _run_window(args, source, runtime) -> int:
    from PyQt6 import QtCore, QtWidgets

    from tracker.overlay import OverlayStyle
    from ui.viewer import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    window = ViewerWindow(runtime, source, loop=args.loop, realtime=not args.every_frame,
                          max_frames=args.max_frames, style=OverlayStyle(mask_opacity=args.opacity),
                          out_dir=args.out, record=args.record, close_at_end=args.max_frames is not None)
    window.resize(window.initial_size())
    window.show()
    # Ctrl-C in the terminal: Qt's loop does not run Python signal handlers by itself, so
    # wake Python every 200 ms and close the window (the worker is stopped cleanly).
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
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
    return 0
