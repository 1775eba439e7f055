"""`parttrack export TRACKS.csv|RESULT_DIR --format ae|blender|nwb|dlc|sleap|bvh|all -o DIR`:
tracks → formats animators import (:mod:`tracker.animation`) and pose files of the field's tools
(:mod:`tracker.formats`)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("export", help="export tracks (After Effects, Blender, NWB, DeepLabCut, SLEAP, BVH)",
                       description="Write After Effects keyframe data (one file per part and joint), "
                                   "a Blender import script (animated empties + 2-D armature), NWB with "
                                   "ndx-pose, a DeepLabCut-style CSV, a SLEAP .slp file and/or BVH "
                                   "from a tracks.csv written by `parttrack track` (into <format>/ folders "
                                   "next to it). NWB, DeepLabCut and SLEAP need "
                                   "`pip install 'parttrack[formats]'`. Frame rate, image "
                                   "size and skeleton come from the track.json next to it. Tracks of an "
                                   "interrupted run are refused unless --partial. Exit status: 0 written "
                                   "(a warning on stderr when the video had ended early), 2 bad input.")
    p.add_argument("tracks", help="tracks.csv, or a result folder of `parttrack track`")
    p.add_argument("--format", default="animation", metavar="FORMATS",
                   help="comma-separated: ae, blender, nwb, dlc, sleap, bvh, or a group: animation "
                        "(ae, blender, bvh; the default), pose (nwb, dlc, sleap), all")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: the folder of the tracks)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: from track.json)")
    p.add_argument("--width", type=int, default=None, help="video width in px (default: from track.json)")
    p.add_argument("--height", type=int, default=None, help="video height in px (default: from track.json)")
    p.add_argument("--joints", default=None, help="joints.csv (default: next to the tracks)")
    p.add_argument("--px-per-unit", type=float, default=100.0,
                   help="Blender: video pixels per Blender unit (default 100)")
    p.add_argument("--partial", action="store_true",
                   help="export the tracks of an interrupted run (track.json \"complete\": false) too")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    from parttrack.tracker.animation import export_tracks, read_track_info
    from parttrack.tracker.io import printable

    tracks = Path(args.tracks)
    if tracks.is_dir():
        tracks = tracks / "tracks.csv"
    out = Path(args.output) if args.output else tracks.parent
    written = export_tracks(tracks, out, args.format, fps=args.fps, width=args.width,
                            height=args.height, joints_csv=args.joints, px_per_unit=args.px_per_unit,
                            allow_incomplete=args.partial)
    info_path = tracks.with_name("track.json")
    if info_path.is_file() and read_track_info(info_path).get("input_complete") is False:
        print(printable(f"parttrack: warning: {info_path}: the video ended before the frames its file declares "
                        "(truncated or damaged); the export covers the frames that were decoded"), file=sys.stderr)
    folders = sorted({str(p.parent) for p in written})
    print(printable(f"wrote {len(written)} files in {', '.join(folders)}"))
    return 0
