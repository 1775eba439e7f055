"""`parttrack plot RESULT_DIR [-o FILE.png]`: a picture of the tracks (:mod:`tracker.plot`)."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("plot", help="draw the tracks of a result: x, y, angle over time, visibility, skeleton",
                       description="Draw one PNG of a `parttrack track` result folder: each part's x, y "
                                   "and angle over time (faint where the pose is predicted), the parts' "
                                   "visibility, and the skeleton on a frame of the video (the frame with "
                                   "the most visible parts among the first 600, or --frame). `parttrack "
                                   "track` writes the same picture as tracks.png. Exit status: 0 written, "
                                   "2 bad input.")
    p.add_argument("result", help="a result folder of `parttrack track` (or its tracks.csv)")
    p.add_argument("-o", "--output", default=None, help="the PNG to write (default: RESULT/tracks.png)")
    p.add_argument("--frame", type=int, default=None, metavar="N",
                   help="draw the skeleton on this frame (0-based row of tracks.csv)")
    p.add_argument("--video", default=None, help="take the frame from this video (default: the one in track.json)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the 15x9-inch figure (default 100)")
    p.set_defaults(func=run)


def run(args) -> int:
    from parttrack.tracker.io import printable
    from parttrack.tracker.plot import plot_result

    out = plot_result(args.result, args.output, frame=args.frame, video=args.video, dpi=args.dpi)
    print(printable(f"wrote {out}"))
    return 0
