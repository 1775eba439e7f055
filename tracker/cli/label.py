"""`parttrack label` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("label", help="(label: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack label` is not built yet")
