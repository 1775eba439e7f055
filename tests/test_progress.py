"""Progress bars: tqdm on a terminal, plain periodic lines (no escape codes) elsewhere."""

from __future__ import annotations

import io

import pytest

from parttrack.tracker.progress import PlainBar, TqdmProgress, frame_bar, is_terminal, videos_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_are_plain_when_the_stream_is_not_a_terminal():
    log = io.StringIO()
    assert not is_terminal(log) and is_terminal(FakeTerminal())
    assert isinstance(videos_bar(3, file=log), PlainBar)
    assert isinstance(frame_bar("clip.mp4", 10, file=log), PlainBar)
    assert not isinstance(videos_bar(3, file=FakeTerminal()), PlainBar)  # tqdm on a terminal
    assert not isinstance(videos_bar(3, disable=True, file=log), PlainBar)  # disabled: tqdm's no-op


def test_plain_bar_writes_periodic_lines_without_control_characters():
    log = io.StringIO()
    bar = videos_bar(4, "videos", file=log)
    bar.interval_s = 0.0  # every update prints
    bar.update(1)
    bar.set_postfix(frames=120, fps="30", failed=0, refresh=False)
    bar.update(1)
    bar.write("failed: x.mp4: broken")
    bar.close()
    bar.close()  # idempotent
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == ["videos: 1/4 videos (25%)", "videos: 2/4 videos (50%) frames=120 fps=30 failed=0",
                                 "failed: x.mp4: broken"]


@pytest.mark.parametrize("total, expected", [(None, "clip: 7 frames"), (10, "clip: 7/10 frames (70%)")])
def test_plain_bar_rate_limits_and_closes_with_the_last_state(total, expected):
    log = io.StringIO()
    bar = PlainBar(total, "clip", "frame", log, interval_s=3600.0)
    for _ in range(7):
        bar.update(1)
    assert log.getvalue() == ""  # within the interval: nothing yet
    bar.close()
    assert log.getvalue().splitlines() == [expected]


def test_frame_progress_is_quiet_on_close_when_not_a_terminal():
    log = io.StringIO()
    p = TqdmProgress(1, file=log)
    p.start("clip.mp4", 5)
    p.advance(5)
    p.finish()
    assert log.getvalue() == ""  # the overall bar reports finished videos


def test_training_progress_is_plain_lines_in_a_log(tmp_path):
    """engine.progress.progress_bar (the trainer's bar): plain lines, no carriage returns, on a
    stream that is not a terminal; tqdm's mapping form of set_postfix is accepted."""
    import io

    from parttrack.engine.progress import progress_bar

    log = io.StringIO()
    bar = progress_bar(100, "train", "step", initial=40, file=log)
    assert isinstance(bar, PlainBar)
    bar.update(10)
    bar.set_postfix({"total": "1.234"})
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.strip() == "train: 50/100 steps (50%) total=1.234"
