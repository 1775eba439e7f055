"""`parttrack train` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("train", help="(train: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack train` is not built yet")
