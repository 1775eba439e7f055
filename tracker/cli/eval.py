"""`parttrack eval` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("eval", help="(eval: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack eval` is not built yet")
