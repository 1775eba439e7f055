"""Progress bars that stay readable in logs: tqdm on an interactive terminal, plain lines
elsewhere (a log file, a pipe, a batch system's output), so that no carriage returns or
escape codes end up in a log. Used by training (:mod:`parttrack.engine.train`) and the tracking
batch paths (:mod:`parttrack.tracker.progress`).
"""

from __future__ import annotations

import sys
import time

#: Seconds between two lines of a :class:`PlainBar` (progress written to a non-terminal).
PLAIN_INTERVAL_S = 30.0


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

    def mark_printed(self) -> None:
        """Count what there is so far as already shown (a resumed run starts its lines there)."""
        self._printed_n = self.n

    def _print(self) -> None:
        print(self._line(), file=self._stream(), flush=True)
        self._last, self._printed_n = time.monotonic(), self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval_s:
            self._print()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        """As tqdm's: ``key=value`` pairs shown after the count (a mapping and/or keywords)."""
        items = {**(dict(ordered_dict) if ordered_dict else {}), **kwargs}
        self.postfix = " ".join(f"{k}={v}" for k, v in items.items())

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


def progress_bar(total: int | None, desc: str, unit: str, *, initial: int = 0, disable: bool = False, file=None):
    """A tqdm bar on a terminal, else a :class:`PlainBar` (``disable``: tqdm's no-op bar)."""
    from tqdm import tqdm

    if not disable and not is_terminal(file if file is not None else sys.stderr):
        bar = PlainBar(total, desc, unit, file)
        bar.n = int(initial)
        bar.mark_printed()
        return bar
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, file=file)
