"""Make the README's viewer screenshot (``docs/viewer.png``) headless and reproducibly::

    QT_QPA_PLATFORM=offscreen python -m ui.screenshot trained/bbb/clip.mp4 docs/viewer.png --frame 80

Runs the real viewer window (default model unless ``--model``) over the first ``--frame + 1``
frames of the video, every frame tracked (the Kalman filter sees the same history as when
playing), then grabs the whole window — toolbar, overlay and status bar — as a PNG.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def grab_viewer(video: str | Path, out: str | Path, *, frame: int = 80, model: str | Path | None = None,
                backend: str = "auto", width: int = 960) -> Path:
    """Play ``video`` up to frame ``frame`` in a :class:`ui.viewer.ViewerWindow`, save a grab.

    Args:
        video: the video file.
        out: PNG path to write.
        frame: index of the frame shown.
        model: bundle folder (default :func:`engine.bundle.default_model_path`).
        backend: inference backend.
        width: width of the video area in pixels (the height follows the video's aspect).

    Returns:
        ``out``.

    Raises:
        InputError, BundleError, BackendUnavailable: as the viewer's command line.
        RuntimeError: the window did not reach the frame within 120 s.
    """
    from PyQt6 import QtCore, QtWidgets

    from parttrack.engine.bundle import default_model_path
    from parttrack.engine.runtime import create_runtime
    from parttrack.tracker.sources import open_source
    from parttrack.ui.viewer import ViewerWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([sys.argv[0]])
    runtime = create_runtime(model or default_model_path(), backend=backend, announce=True)
    source = open_source(Path(video), threaded=False)
    win = ViewerWindow(runtime, source, realtime=False, max_frames=frame + 1)
    h = int(round(width * source.height / source.width))
    win.view.setFixedSize(width, h)
    win.show()
    timer = QtCore.QElapsedTimer()
    timer.start()
    while not (win.ended or win.last_error) and timer.elapsed() < 120_000:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
    if win.last_error:
        raise RuntimeError(f"the viewer failed: {win.last_error[0]}")
    if not win.ended:
        raise RuntimeError("the viewer did not reach the frame within 120 s")
    win.statusBar().showMessage(f"{win.info.name}: {win.info.width}×{win.info.height} · {win.backend_line}")
    win.render()
    app.processEvents()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not win.grab().save(str(out)):
        raise RuntimeError(f"cannot write {out}")
    win.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui.screenshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video")
    p.add_argument("out")
    p.add_argument("--frame", type=int, default=80)
    p.add_argument("--model", default=None)
    p.add_argument("--backend", default="auto")
    p.add_argument("--width", type=int, default=960)
    a = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    path = grab_viewer(a.video, a.out, frame=a.frame, model=a.model, backend=a.backend, width=a.width)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
