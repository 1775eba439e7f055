"""`parttrack track` (placeholder until its owner lands it)."""

from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("track", help="(track: being built)")
    p.set_defaults(func=run)


def run(args):
    raise ParttrackError("`parttrack track` is not built yet")
