"""`parttrack label BUNDLE [--name ID=NAME ...] [--color ID=RRGGBB ...]`: list or rename parts.

Without ``--name``/``--color`` it lists the parts (id, name, colour). Otherwise it rewrites the
bundle's ONNX metadata in place (:func:`engine.bundle.write_onnx_meta`).
"""

from __future__ import annotations

from dataclasses import replace

from engine.bundle import load_bundle, write_onnx_meta
from engine.errors import ParttrackError


def add_parser(sub):
    p = sub.add_parser("label", help="list a model's parts or give them names/colours",
                       description="List the parts of a model bundle, or rename/recolour them "
                                   "(part ids are 1..K as in tracks.csv; 0 is the background).")
    p.add_argument("bundle", help="model bundle folder (e.g. trained/bbb)")
    p.add_argument("--name", action="append", default=[], metavar="ID=NAME",
                   help='rename part ID, e.g. --name 3=head --name 4="left arm" (repeatable)')
    p.add_argument("--color", action="append", default=[], metavar="ID=RRGGBB",
                   help="recolour part ID with a hex RGB colour, e.g. --color 3=ff8800 (repeatable)")
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


def run(args) -> int:
    bundle = load_bundle(args.bundle)
    meta = bundle.meta
    names, colors = _pairs(args.name, "name"), _pairs(args.color, "color")
    if names or colors:
        meta = meta.with_names(names)
        new_colors = list(meta.part_colors)
        for pid, value in colors.items():
            if not 1 <= pid <= meta.num_parts:
                raise ParttrackError(f"there is no part {pid}; this model has parts 1..{meta.num_parts}")
            new_colors[pid - 1] = _hex(value)
        meta = replace(meta, part_colors=tuple(new_colors))
        write_onnx_meta(bundle.onnx_path, meta)
    print(f"{bundle.path}: K={meta.num_parts}, input {meta.input_size}x{meta.input_size}, "
          f"masks {meta.mask_size[0]}x{meta.mask_size[1]}")
    for i, (name, rgb) in enumerate(zip(meta.part_names, meta.part_colors), start=1):
        print(f"{i:3d}  {name:<20s} #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
    return 0
