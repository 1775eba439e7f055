"""Progress reporting for the batch paths (local pool and Ray): the :class:`Progress`
interface a tracking job reports to, the tqdm bars, and :func:`log` for one-line messages.

A job calls ``start(name, total)`` once, ``advance(n)`` after each batch of ``n`` frames and
``finish()`` at the end; :class:`Progress` itself does nothing, so a job without a terminal
(tests, the Python API) passes none. ``advance`` is also where a scheduler may stop a job:
raising :class:`KeyboardInterrupt` there makes the job write what it has processed (the Ray
scheduler does this on cancellation). tqdm is imported when a bar is made, not here.

Bars: :func:`frame_bar` and :func:`videos_bar` draw tqdm bars when their stream (stderr by
default) is a terminal; otherwise (a log file, a pipe, a batch system's output) they are
:class:`PlainBar` objects printing one plain line at most every :data:`PLAIN_INTERVAL_S`
seconds and a last one when closed — no carriage returns or escape codes in logs
(:mod:`parttrack.engine.progress`, shared with training).
"""

from __future__ import annotations

import sys

from parttrack.engine.progress import PLAIN_INTERVAL_S, PlainBar, is_terminal

__all__ = ["PLAIN_INTERVAL_S", "PlainBar", "Progress", "TqdmProgress", "frame_bar", "is_terminal", "log",
           "videos_bar"]

def log(msg: str) -> None:
    """Print a one-line message on stderr (flushed), the batch runners' default ``log``."""
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """Progress sink interface (no-op): ``start(name, total)``, ``advance(n)``, ``finish()``.

    ``total`` is the expected number of frames, or None when the container does not say.
    """

    def start(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass


def frame_bar(name: str, total: int | None, position: int = 1, disable: bool = False, file=None):
    """The per-video bar (frames): a tqdm bar at screen line ``position`` on a terminal, else a
    :class:`PlainBar` (periodic lines only, none when it closes); closed when finished."""
    from tqdm import tqdm

    if not disable and not is_terminal(file if file is not None else sys.stderr):
        return PlainBar(total, name, "frame", file, final=False)
    return tqdm(total=total, desc=name[:28], unit="frame", position=position, leave=False, disable=disable,
                dynamic_ncols=True, file=file)


def videos_bar(total: int, desc: str = "videos", disable: bool = False, **kwargs):
    """The overall bar (videos) of a batch: tqdm on a terminal (``kwargs`` go to tqdm:
    ``position``, ``file``), else a :class:`PlainBar` on ``kwargs["file"]`` (default stderr)."""
    from tqdm import tqdm

    file = kwargs.get("file")
    if not disable and not is_terminal(file if file is not None else sys.stderr):
        return PlainBar(total, desc, "video", file)
    return tqdm(total=total, desc=desc, unit="video", disable=disable, dynamic_ncols=True, **kwargs)


class TqdmProgress(Progress):
    """A :class:`Progress` drawn as a per-video tqdm bar (:func:`frame_bar`) at a screen
    position (0 is the overall bar's line)."""

    def __init__(self, position: int = 1, disable: bool = False, file=None) -> None:
        self.position, self.disable, self.file, self.bar = position, disable, file, None

    def start(self, name: str, total: int | None) -> None:
        self.bar = frame_bar(name, total, self.position, self.disable, self.file)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
