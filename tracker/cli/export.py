"""`parttrack export` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("export", help="(export: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack export` is not built yet")
