"""``python -m tracker.cli`` = the ``parttrack`` command."""

from parttrack.tracker.cli import run

run()
