"""Top-level viewer options (placeholder until ui lands)."""

from engine.errors import ParttrackError


def add_arguments(parser):
    parser.add_argument("--camera", type=int, default=None, help="camera index to open")
    parser.add_argument("--video", default=None, help="video file to play")


def run(args):
    raise ParttrackError("the viewer is not built yet")
