"""`parttrack label BUNDLE [--name ID=NAME ...] [--color ID=RRGGBB ...] [--drop N ...] [--merge A,B ...]`.

Without options it lists the parts (id, name, colour, dropped/merged). Otherwise it rewrites
the bundle's ONNX metadata in place (:func:`engine.bundle.write_onnx_meta`): names, colours,
and the part edits (:attr:`engine.bundle.BundleMeta.dropped_parts` / ``merged_parts``) that
every consumer of the model's output applies with :func:`engine.scenery.apply_part_edits`.
"""

from __future__ import annotations

from dataclasses import replace

from parttrack.engine.bundle import load_bundle, write_onnx_meta
from parttrack.engine.errors import ParttrackError
from parttrack.engine.scenery import PartEdits


def add_parser(sub):
    p = sub.add_parser("label", help="list a model's parts, name/colour them, drop or merge parts",
                       description="List the parts of a model bundle, or rename/recolour them, or drop "
                                   "parts (fold them into the background, e.g. parts on the scenery) "
                                   "or merge one part into another. Part ids are 1..K as in "
                                   "tracks.csv; 0 is the background. Dropped and merged parts keep "
                                   "their id (their columns stay in tracks.csv, never visible).")
    p.add_argument("bundle", help="model bundle folder (e.g. trained/bbb)")
    p.add_argument("--name", action="append", default=[], metavar="ID=NAME",
                   help='rename part ID, e.g. --name 3=head --name 4="left arm" (repeatable)')
    p.add_argument("--color", action="append", default=[], metavar="ID=RRGGBB",
                   help="recolour part ID with a hex RGB colour, e.g. --color 3=ff8800 (repeatable)")
    p.add_argument("--drop", action="append", default=[], metavar="N",
                   help="fold part N into the background: its mask goes to the background wherever "
                        "the model's output is used (repeatable, or a comma list: --drop 3,7)")
    p.add_argument("--merge", action="append", default=[], metavar="A,B",
                   help="merge part B into part A: B's mask becomes part of A's (repeatable)")
    p.add_argument("--reset-edits", action="store_true",
                   help="forget all earlier --drop/--merge edits first (restores every part)")
    p.set_defaults(func=run)


def _pairs(items: list[str], what: str) -> dict[int, str]:
    out = {}
    for item in items:
        pid, sep, value = item.partition("=")
        if not sep or not pid.strip().isdigit() or not value.strip():
            raise ParttrackError(f"--{what} {item!r} is not ID=VALUE", f"write e.g. --{what} 3=head")
        out[int(pid)] = value.strip()
    return out


def _hex(value: str) -> tuple[int, int, int]:
    v = value.lstrip("#")
    if len(v) != 6 or any(c not in "0123456789abcdefABCDEF" for c in v):
        raise ParttrackError(f"colour {value!r} is not a hex RGB value", "write e.g. --color 3=ff8800")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def _part_id(text: str, option: str, k: int) -> int:
    t = text.strip()
    if not t.isdigit():
        raise ParttrackError(f"{option}: {text!r} is not a part id", f"part ids are whole numbers 1..{k}")
    pid = int(t)
    if not 1 <= pid <= k:
        raise ParttrackError(f"{option}: there is no part {pid}; this model has parts 1..{k}",
                             "run `parttrack label BUNDLE` to list them")
    return pid


def parse_edits(drop: list[str], merge: list[str], k: int, current: PartEdits) -> PartEdits:
    """The edits after adding ``--drop`` / ``--merge`` arguments to ``current``.

    Raises:
        ParttrackError: a malformed or out-of-range id, or a combination
            :class:`engine.scenery.PartEdits` rejects (merging a part twice, into itself,
            into a merged-away part, or dropping a merged-away part).
    """
    dropped = list(current.dropped)
    for item in drop:
        dropped += [_part_id(t, "--drop", k) for t in item.split(",")]
    merged = list(current.merged)
    for item in merge:
        fields = item.split(",")
        if len(fields) != 2:
            raise ParttrackError(f"--merge {item!r} is not A,B", "write e.g. --merge 2,5 (part 5 goes into part 2)")
        merged.append((_part_id(fields[0], "--merge", k), _part_id(fields[1], "--merge", k)))
    try:
        return PartEdits(tuple(dropped), tuple(merged))
    except ValueError as exc:
        raise ParttrackError(f"cannot apply these edits: {exc}",
                             "list the current edits with `parttrack label BUNDLE`; "
                             "--reset-edits starts over") from None


def run(args) -> int:
    bundle = load_bundle(args.bundle)
    meta = bundle.meta
    names, colors = _pairs(args.name, "name"), _pairs(args.color, "color")
    edits_asked = bool(args.drop or args.merge or args.reset_edits)
    if names or colors or edits_asked:
        meta = meta.with_names(names)
        new_colors = list(meta.part_colors)
        for pid, value in colors.items():
            if not 1 <= pid <= meta.num_parts:
                raise ParttrackError(f"there is no part {pid}; this model has parts 1..{meta.num_parts}")
            new_colors[pid - 1] = _hex(value)
        meta = replace(meta, part_colors=tuple(new_colors))
        if edits_asked:
            current = PartEdits() if args.reset_edits else meta.part_edits
            meta = meta.with_edits(parse_edits(args.drop, args.merge, meta.num_parts, current))
        write_onnx_meta(bundle.onnx_path, meta)
    crop = "" if meta.crop is None else (
        f", crop {','.join(map(str, meta.crop))} of {meta.crop_frame[0]}x{meta.crop_frame[1]} frames")
    print(f"{bundle.path}: K={meta.num_parts}, input {meta.input_size}x{meta.input_size}, "
          f"masks {meta.mask_size[0]}x{meta.mask_size[1]}{crop}")
    into = {b: a for a, b in meta.merged_parts}
    for i, (name, rgb) in enumerate(zip(meta.part_names, meta.part_colors), start=1):
        note = "  (dropped: background)" if i in meta.dropped_parts else (
            f"  (merged into {into[i]})" if i in into else "")
        print(f"{i:3d}  {name:<20s} #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}{note}")
    return 0
