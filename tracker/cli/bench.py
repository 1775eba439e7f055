"""`parttrack bench` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("bench", help="(bench: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack bench` is not built yet")
