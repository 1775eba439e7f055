"""``python -m parttrack`` = the ``parttrack`` command."""

from tracker.cli import run

run()
