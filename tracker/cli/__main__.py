"""``python -m tracker.cli`` = the ``parttrack`` command."""

from tracker.cli import run

run()
