"""The ``parttrack`` command line: a thin layer over library functions.

Each command lives in its own module of this package and exposes
``add_parser(subparsers)`` which registers the sub-command and sets ``func`` (a callable taking
the parsed namespace and returning an exit code). The live viewer is the top-level form
(``parttrack --camera 0`` / ``parttrack --video clip.mp4``) implemented in :mod:`.view`.

User mistakes raise :class:`engine.errors.ParttrackError`; :func:`main` prints them as
``error: …`` / ``hint: …`` and exits non-zero (2 unless the error says otherwise), without a
traceback. Ctrl-C exits with 130 (``track`` treats SIGTERM and SIGHUP the same way); a Ctrl-C
after the command has finished is ignored.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from parttrack.engine.errors import ParttrackError

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ("track", "train", "label", "eval", "export", "plot", "bench", "compile")

DESCRIPTION = """\
Find the moving parts of an articulated subject in video without labels, track each part's
pose (position, rotation, scale) with Kalman filters, and export the tracks.

Live viewer:   parttrack --camera 0          parttrack --video clip.mp4
Batch:         parttrack track videos/ -o out/
Train:         parttrack train my_video.mp4 -o trained/my_model
"""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("parttrack")
    except Exception:  # not installed (running from a checkout)
        return "unknown"


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: its positional arguments may come before, between or after its options
    (``parttrack eval BUNDLE --generate --size 160 DIR``), as :meth:`parse_intermixed_args` allows;
    plain argparse leaves a positional that follows an option unrecognised."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:    # parse_known_intermixed_args's own two passes
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by tests to check every ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="parttrack", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"parttrack {_version()}")
    view = importlib.import_module("parttrack.tracker.cli.view")
    view.add_arguments(parser)
    parser.set_defaults(func=view.run)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_CommandParser)
    for name in COMMANDS:
        importlib.import_module(f"parttrack.tracker.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``parttrack`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ParttrackError as exc:
        print(f"parttrack: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"parttrack: hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("parttrack: interrupted", file=sys.stderr)
        return 130


def run() -> None:  # console_scripts target
    code = main()
    # A Ctrl-C that lands now (interpreter shutdown: atexit handlers of torch, ONNX Runtime …)
    # would print a traceback and change the exit status of a finished command: ignore it.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
