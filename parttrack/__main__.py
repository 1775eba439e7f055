"""``python -m parttrack`` = the ``parttrack`` command."""

from parttrack.tracker.cli import run

run()
