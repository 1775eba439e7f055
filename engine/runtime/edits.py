"""A bundle's part edits (dropped and merged parts) applied to a runtime's output.

A bundle records parts folded into the background or into another part
(:attr:`engine.bundle.BundleMeta.dropped_parts` / ``merged_parts``, written by
``parttrack label --drop/--merge``); the ONNX graph itself is unchanged. :class:`EditedRuntime`
wraps any :class:`engine.runtime.base.Runtime` so that every consumer of ``infer`` sees the
edited masks: :func:`engine.runtime.create_runtime` wraps the runtime it builds whenever the
bundle has edits (and returns the backend itself otherwise, so a bundle without edits costs
nothing).

What a removed part (dropped, or merged into another) looks like downstream:

* its mask slot is exactly 0 in every frame (its mass went to slot 0, or to the part it was
  merged into), so it has no label pixels: area 0, not visible, confidence 0, and no pose
  (:mod:`tracker.poses` gives NaN centre, angle and scale to a part without pixels);
* it keeps its id, its name and its rows in tracks.csv (K is unchanged);
* :attr:`EditedRuntime.meta` carries the bundle's skeleton edges with the edits applied
  (:func:`edit_skeleton_edges`), so no skeleton edge uses it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from parttrack.engine.bundle import BundleMeta
from parttrack.engine.scenery import PartEdits, apply_part_edits
from parttrack.engine.types import PartOutput


def edit_skeleton_edges(edges, edits: PartEdits) -> tuple[tuple[int, int], ...]:
    """Skeleton edges after part edits.

    Args:
        edges: ``(a, b)`` pairs of 1-based part ids.
        edits: the :class:`engine.scenery.PartEdits`.

    Returns:
        The edges with every merged-away part replaced by the part it went into, then every
        edge that touches a dropped part, links a part to itself, or repeats an earlier edge
        left out; each pair sorted ``(a < b)``, in the original order.
    """
    into = {part: target for target, part in edits.merged}
    dropped = set(edits.dropped)
    out: list[tuple[int, int]] = []
    for a, b in edges:
        a, b = into.get(int(a), int(a)), into.get(int(b), int(b))
        pair = (min(a, b), max(a, b))
        if a == b or a in dropped or b in dropped or pair in out:
            continue
        out.append(pair)
    return tuple(out)


def edited_meta(meta: BundleMeta) -> BundleMeta:
    """``meta`` with its skeleton edges edited by its own part edits (see
    :func:`edit_skeleton_edges`); ``meta`` itself when it has no edits."""
    edits = meta.part_edits
    if not edits:
        return meta
    return replace(meta, skeleton_edges=edit_skeleton_edges(meta.skeleton_edges, edits))


class EditedRuntime:
    """A runtime whose output has the bundle's part edits applied.

    Implements :class:`engine.runtime.base.Runtime`; every other attribute (``precision``,
    ``threads``, ``providers``...) is the wrapped backend's.

    Args:
        runtime: the backend runtime.
        edits: the edits to apply (default: ``runtime.meta.part_edits``).

    Attributes:
        meta: the backend's metadata with the skeleton edges edited (:func:`edited_meta`).
        edits: the :class:`engine.scenery.PartEdits` applied.

    Raises:
        ValueError: an edit names a part outside 1..K.
    """

    def __init__(self, runtime, edits: PartEdits | None = None) -> None:
        self.runtime = runtime
        self.edits = runtime.meta.part_edits if edits is None else edits
        self.edits.check(runtime.meta.num_parts)
        meta = runtime.meta
        self.meta = replace(meta, skeleton_edges=edit_skeleton_edges(meta.skeleton_edges, self.edits))
        self.name = runtime.name
        self.device = runtime.device

    def infer(self, images: np.ndarray) -> PartOutput:
        """The backend's :meth:`~engine.runtime.base.Runtime.infer` with the edits applied to
        the masks: ``(N, K+1, h, w)`` float32, slots of removed parts exactly 0, per-pixel sums
        unchanged; the transforms are the backend's."""
        out = self.runtime.infer(images)
        return PartOutput(np.ascontiguousarray(apply_part_edits(out.masks, self.edits, axis=1)), out.transforms)

    def describe(self) -> str:
        """The backend's line plus the edits, e.g. ``... [parts dropped: 3, 7; merged: 5 into 2]``."""
        bits = []
        if self.edits.dropped:
            bits.append("dropped: " + ", ".join(str(p) for p in self.edits.dropped))
        if self.edits.merged:
            bits.append("merged: " + ", ".join(f"{b} into {a}" for a, b in self.edits.merged))
        return f"{self.runtime.describe()} [parts {'; '.join(bits)}]"

    def __getattr__(self, name: str):
        if name == "runtime":  # not yet set (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.runtime, name)
