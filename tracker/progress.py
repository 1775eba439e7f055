"""Progress reporting for the batch paths (local pool and Ray): the :class:`Progress`
interface a tracking job reports to, the tqdm bars, and :func:`log` for one-line messages.

A job calls ``start(name, total)`` once, ``advance(n)`` after each batch of ``n`` frames and
``finish()`` at the end; :class:`Progress` itself does nothing, so a job without a terminal
(tests, the Python API) passes none. ``advance`` is also where a scheduler may stop a job:
raising :class:`KeyboardInterrupt` there makes the job write what it has processed (the Ray
scheduler does this on cancellation). tqdm is imported when a bar is made, not here.
"""

from __future__ import annotations

import sys


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


def frame_bar(name: str, total: int | None, position: int = 1, disable: bool = False):
    """The per-video tqdm bar (frames) at screen line ``position``, closed when finished."""
    from tqdm import tqdm

    return tqdm(total=total, desc=name[:28], unit="frame", position=position, leave=False, disable=disable,
                dynamic_ncols=True)


def videos_bar(total: int, desc: str = "videos", disable: bool = False, **kwargs):
    """The overall tqdm bar (videos) of a batch; ``kwargs`` go to tqdm (``position``, ``file``)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=disable, dynamic_ncols=True, **kwargs)


class TqdmProgress(Progress):
    """A :class:`Progress` drawn as a per-video tqdm bar (:func:`frame_bar`) at a screen
    position (0 is the overall bar's line)."""

    def __init__(self, position: int = 1, disable: bool = False) -> None:
        self.position, self.disable, self.bar = position, disable, None

    def start(self, name: str, total: int | None) -> None:
        self.bar = frame_bar(name, total, self.position, self.disable)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
