"""`parttrack compile` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("compile", help="(compile: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack compile` is not built yet")
