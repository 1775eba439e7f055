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
seconds and a last one when closed — no carriage returns or escape codes in logs.
"""

from __future__ import annotations

import sys
import time

#: Seconds between two lines of a :class:`PlainBar` (progress written to a non-terminal).
PLAIN_INTERVAL_S = 30.0


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


class PlainBar:
    """A progress bar for streams that are not terminals: the subset of tqdm's interface the
    batch paths use (``update``, ``set_postfix``, ``write``, ``close``), printed as plain
    lines ``desc: n/total unit (p%) key=value …``.

    Args:
        total: expected count, or None.
        desc: the line's prefix.
        unit: what is counted (``frame``, ``video``).
        file: the stream (default ``sys.stderr``, looked up when writing).
        interval_s: at most one line per this many seconds (the last one is written on
            :meth:`close` whatever the interval).
        final: write a line on :meth:`close` (when there is anything new to say).
    """

    def __init__(self, total: int | None, desc: str, unit: str, file=None, interval_s: float = PLAIN_INTERVAL_S,
                 final: bool = True) -> None:
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.interval_s, self.final = interval_s, final
        self.n, self.postfix = 0, ""
        self._last = time.monotonic()
        self._printed_n = 0
        self.closed = False

    def _stream(self):
        return self.file if self.file is not None else sys.stderr

    def _line(self) -> str:
        text = f"{self.desc}: {self.n}"
        if self.total:
            text += f"/{self.total} {self.unit}s ({100.0 * self.n / self.total:.0f}%)"
        else:
            text += f" {self.unit}s"
        return text + (f" {self.postfix}" if self.postfix else "")

    def _print(self) -> None:
        print(self._line(), file=self._stream(), flush=True)
        self._last, self._printed_n = time.monotonic(), self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval_s:
            self._print()

    def set_postfix(self, refresh: bool = True, **kwargs) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in kwargs.items())

    def write(self, msg: str, file=None) -> None:
        print(msg, file=file if file is not None else self._stream(), flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.final and self.n != self._printed_n:
            self._print()


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for files, pipes, closed streams)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


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
