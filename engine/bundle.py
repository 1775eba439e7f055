"""Model bundles: ``trained/<name>/`` folders that describe themselves.

Layout (format version :data:`FORMAT_VERSION`)::

    model.onnx     inference graph: input ``image`` (N, S, S, 3) uint8 RGB →
                   outputs ``masks`` (N, K+1, h, w) float32, ``transforms`` (N, K, 6) float32
                   (see engine.types.PartOutput). Its metadata_props hold the JSON of
                   BundleMeta under the key ``parttrack``.
    weights.npz    float32 state dict of the torch network (numpy, loaded with
                   allow_pickle=False — no pickle), for fine-tuning and re-export.
    config.json    the network and training configuration the weights belong to.
    NOTES.md       how it was trained and its measured quality (human-readable).

The ONNX metadata is the single source of truth for K, input size, part names/colours and
skeleton edges; ``parttrack label`` rewrites it in place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from parttrack.engine.errors import BundleError
from parttrack.engine.preprocess import Letterbox
from parttrack.engine.scenery import PartEdits

FORMAT_VERSION = 1
METADATA_KEY = "parttrack"
ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "weights.npz"
CONFIG_FILE = "config.json"
NOTES_FILE = "NOTES.md"
REQUIRED_FILES = (ONNX_FILE, WEIGHTS_FILE, CONFIG_FILE)

# A qualitative palette (RGB) that stays distinguishable over video; background has none.
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)


def default_part_colors(k: int) -> tuple[tuple[int, int, int], ...]:
    """K distinct RGB colours (uint8 values), cycling the palette when K > 20."""
    return tuple(_PALETTE[i % len(_PALETTE)] for i in range(k))


def default_part_names(k: int) -> tuple[str, ...]:
    """``part1 … partK`` (1-based, as shown to users; part id 0 is the background)."""
    return tuple(f"part{i + 1}" for i in range(k))


@dataclass(frozen=True)
class BundleMeta:
    """Metadata stored inside ``model.onnx``.

    Attributes:
        num_parts: K (foreground parts; slot 0 of the masks is the background).
        input_size: S, side of the square uint8 RGB model input in pixels.
        mask_size: (h, w) of the ``masks`` output.
        part_names: K names, index i ↔ part id i+1.
        part_colors: K RGB triples (0–255).
        skeleton_edges: pairs (a, b) of 1-based part ids that are adjacent.
        training_videos: [{"name": file name, "sha256": fingerprint, "frames": n}].
        normalisation: how the graph normalises its uint8 input (documentation only; the
            graph does it itself): {"scale": 1/255, "mean": [...], "std": [...]}.
        format_version: bundle format; must equal :data:`FORMAT_VERSION` to load.
        extra: free-form facts (training steps, quality figures...).
        dropped_parts: 1-based ids of parts folded into the background (their mask mass goes
            to slot 0), e.g. parts found to model the scenery; sorted, unique.
        merged_parts: ``(into, part)`` pairs of 1-based ids: ``part``'s mask mass goes to
            ``into``. Consumers of the runtime output apply both with
            :func:`engine.scenery.apply_part_edits` (:attr:`part_edits`); the graph itself is
            unchanged, and K and the part ids stay the same. Absent in older bundles (= none).
        crop: ``(x, y, w, h)`` int source pixels of the rectangle of the training frames the
            model was trained on (``parttrack train --crop``, or the crop around the subject it
            chooses itself); None = whole frames (also in older bundles).
        crop_frame: ``(w, h)`` of the training frames ``crop`` is on. Frames of another size
            with the same aspect ratio get the crop scaled to them (:meth:`letterbox`).
    """

    num_parts: int
    input_size: int
    mask_size: tuple[int, int]
    part_names: tuple[str, ...] = ()
    part_colors: tuple[tuple[int, int, int], ...] = ()
    skeleton_edges: tuple[tuple[int, int], ...] = ()
    training_videos: tuple[dict, ...] = ()
    normalisation: dict = field(default_factory=lambda: {"scale": 1 / 255.0, "mean": [0.0] * 3, "std": [1.0] * 3})
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)
    dropped_parts: tuple[int, ...] = ()
    merged_parts: tuple[tuple[int, int], ...] = ()
    crop: tuple[int, int, int, int] | None = None
    crop_frame: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        k = self.num_parts
        if (self.crop is None) != (self.crop_frame is None):
            raise BundleError("bundle metadata has a crop without its frame size (or the reverse)",
                              "retrain the model with `parttrack train` (it writes both)")
        if self.crop is not None:
            try:
                crop = tuple(int(v) for v in self.crop)
                frame = tuple(int(v) for v in self.crop_frame)
                ok = len(crop) == 4 and len(frame) == 2 and min(crop[2:]) > 0 and min(crop[:2]) >= 0 \
                    and crop[0] + crop[2] <= frame[0] and crop[1] + crop[3] <= frame[1]
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise BundleError(f"bundle metadata has an invalid crop {self.crop} of a {self.crop_frame} frame",
                                  "retrain the model with `parttrack train` (it writes the crop)")
            object.__setattr__(self, "crop", crop)
            object.__setattr__(self, "crop_frame", frame)
        if not self.part_names:
            object.__setattr__(self, "part_names", default_part_names(k))
        if not self.part_colors:
            object.__setattr__(self, "part_colors", default_part_colors(k))
        object.__setattr__(self, "mask_size", tuple(int(v) for v in self.mask_size))
        object.__setattr__(self, "part_names", tuple(str(n) for n in self.part_names))
        object.__setattr__(self, "part_colors", tuple(tuple(int(c) for c in rgb) for rgb in self.part_colors))
        object.__setattr__(self, "skeleton_edges", tuple(tuple(int(p) for p in e) for e in self.skeleton_edges))
        object.__setattr__(self, "training_videos", tuple(dict(v) for v in self.training_videos))
        if k < 1:
            raise BundleError(f"bundle metadata has num_parts={k}; it must be at least 1")
        if len(self.part_names) != k or len(self.part_colors) != k:
            raise BundleError(
                f"bundle metadata has K={k} but {len(self.part_names)} part names and "
                f"{len(self.part_colors)} colours",
                "re-export the bundle or fix the names with `parttrack label`",
            )
        for a, b in self.skeleton_edges:
            if not (1 <= a <= k and 1 <= b <= k) or a == b:
                raise BundleError(f"skeleton edge ({a}, {b}) is not a pair of part ids in 1..{k}")
        try:
            edits = PartEdits(tuple(self.dropped_parts), tuple(tuple(p) for p in self.merged_parts))
            edits.check(k)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"bundle metadata has invalid part edits: {exc}",
                              "fix them with `parttrack label BUNDLE --reset-edits`") from None
        object.__setattr__(self, "dropped_parts", edits.dropped)
        object.__setattr__(self, "merged_parts", edits.merged)

    @property
    def part_edits(self) -> PartEdits:
        """The dropped/merged parts as a :class:`engine.scenery.PartEdits` record."""
        return PartEdits(self.dropped_parts, self.merged_parts)

    def with_edits(self, edits: PartEdits) -> "BundleMeta":
        """A copy recording ``edits`` (replacing the current ones).

        Raises:
            BundleError: an id outside 1..K.
        """
        try:
            edits.check(self.num_parts)
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        return replace(self, dropped_parts=edits.dropped, merged_parts=edits.merged)

    def crop_for(self, src_h: int, src_w: int) -> tuple[int, int, int, int] | None:
        """:attr:`crop` for frames of ``src_h × src_w``: as stored for the training frame size,
        scaled for another size of the same aspect ratio (within 1 %), None for another aspect
        ratio (the model then sees whole frames) or without a crop."""
        if self.crop is None:
            return None
        fw, fh = self.crop_frame
        if (src_w, src_h) == (fw, fh):
            return self.crop
        if abs(src_w * fh / (src_h * fw) - 1.0) > 0.01:
            return None
        f = src_w / fw
        x, y, w, h = self.crop
        x0, y0 = min(src_w - 1, int(round(x * f))), min(src_h - 1, int(round(y * f)))
        return x0, y0, max(1, min(src_w - x0, int(round(w * f)))), max(1, min(src_h - y0, int(round(h * f))))

    def letterbox(self, src_h: int, src_w: int) -> Letterbox:
        """The :class:`engine.preprocess.Letterbox` this model's input needs for frames of
        ``src_h × src_w``: its crop (:meth:`crop_for`) scaled into ``input_size``."""
        return Letterbox.fit(src_h, src_w, self.input_size, self.crop_for(src_h, src_w))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "model.onnx") -> "BundleMeta":
        """Parse and validate; unknown format versions are rejected.

        Raises:
            BundleError: malformed JSON, missing keys or a different format version.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BundleError(f"{source}: parttrack metadata is not valid JSON ({exc})") from None
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{source}: bundle format version {version!r} is not supported "
                f"(this parttrack reads version {FORMAT_VERSION})",
                "re-export the model with this version of parttrack",
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise BundleError(f"{source}: parttrack metadata is incomplete or has unknown keys ({exc})") from None

    def with_names(self, names: dict[int, str]) -> "BundleMeta":
        """A copy with parts renamed ({1-based part id: new name})."""
        new = list(self.part_names)
        for pid, name in names.items():
            if not 1 <= pid <= self.num_parts:
                raise BundleError(f"there is no part {pid}; this model has parts 1..{self.num_parts}")
            new[pid - 1] = name
        return replace(self, part_names=tuple(new))


def read_onnx_meta(onnx_path: str | Path) -> BundleMeta:
    """Read :class:`BundleMeta` from an ONNX file's metadata_props and check it against the
    graph's declared input/output shapes.

    The file is opened with ONNX Runtime (``InferenceSession.get_modelmeta().custom_metadata_map``,
    ``get_inputs()``/``get_outputs()``), not with the ``onnx`` package: importing ``onnx`` costs
    more than a second on the CPU machines here, and tracking never needs it.

    Raises:
        BundleError: unreadable file, no parttrack metadata, or a K / input size that
            disagrees with the graph.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises InvalidProtobuf, Fail, NoSuchFile...
        raise BundleError(f"{path}: cannot read the ONNX model ({exc.__class__.__name__})",
                          "re-export or re-download the bundle") from None
    props = sess.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise BundleError(f"{path}: the ONNX file has no parttrack metadata",
                          "export it with parttrack (engine.export) so K, input size and part names are recorded")
    meta = BundleMeta.from_json(props[METADATA_KEY], source=str(path))
    _check_graph({i.name: list(i.shape) for i in sess.get_inputs()},
                 {o.name: list(o.shape) for o in sess.get_outputs()}, meta, path)
    return meta


def _dims(value_info) -> list:
    """Dims of an ``onnx`` ValueInfoProto: int, or the symbolic name."""
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def _check_graph(inputs: dict, outputs: dict, meta: BundleMeta, path: Path) -> None:
    """``inputs``/``outputs``: name -> dims (int, or a str/None for a symbolic dimension)."""
    if "image" not in inputs or "masks" not in outputs or "transforms" not in outputs:
        raise BundleError(f"{path}: expected input 'image' and outputs 'masks', 'transforms'; "
                          f"found inputs {sorted(inputs)} and outputs {sorted(outputs)}")
    k_masks, k_tf = outputs["masks"][1], outputs["transforms"][1]
    if (isinstance(k_masks, int) and k_masks != meta.num_parts + 1) or (
            isinstance(k_tf, int) and k_tf != meta.num_parts):
        raise BundleError(
            f"{path}: metadata says K={meta.num_parts} but the graph outputs {k_tf} transforms "
            f"and {k_masks} mask slots", "the metadata does not belong to this graph; re-export the bundle")
    img = inputs["image"]
    if len(img) == 4 and all(isinstance(v, int) for v in img[1:3]) and tuple(img[1:3]) != (meta.input_size,) * 2:
        raise BundleError(f"{path}: metadata input size {meta.input_size} differs from the graph's {img[1:3]}")


def write_onnx_meta(onnx_path: str | Path, meta: BundleMeta) -> None:
    """Store ``meta`` in the ONNX file's metadata_props (atomically: temp file + rename)."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    _check_graph({i.name: _dims(i) for i in model.graph.input}, {o.name: _dims(o) for o in model.graph.output},
                 meta, path)
    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle on disk."""

    path: Path
    meta: BundleMeta

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def moving_camera(self) -> bool | None:
        """Whether the model was trained with ``--moving-camera`` (no static background image).

        Read from config.json's ``"training"`` section (``engine.train.TrainConfig``:
        ``static_background`` False = a moving camera). None when config.json is unreadable or
        does not say (a bundle written before the field existed).
        """
        return trained_with_moving_camera(self.path)


def load_bundle(path: str | Path, expect_parts: int | None = None) -> Bundle:
    """Open and validate ``trained/<name>/``.

    Args:
        path: the bundle folder (or its ``model.onnx``).
        expect_parts: if given, the K the caller needs.

    Raises:
        BundleError: missing folder/files, bad metadata, unsupported format version, or
            ``expect_parts`` ≠ K.
    """
    p = Path(path)
    if p.is_file() and p.name == ONNX_FILE:
        p = p.parent
    if not p.is_dir():
        raise BundleError(f"model bundle {p} does not exist",
                          "pass --model with a folder made by `parttrack train` (e.g. trained/bbb)")
    missing = [f for f in REQUIRED_FILES if not (p / f).is_file()]
    if missing:
        raise BundleError(f"model bundle {p} is missing {', '.join(missing)}",
                          "copy the whole bundle folder or retrain with `parttrack train`")
    meta = read_onnx_meta(p / ONNX_FILE)
    if expect_parts is not None and meta.num_parts != expect_parts:
        raise BundleError(f"model bundle {p} has K={meta.num_parts} parts, expected {expect_parts}")
    return Bundle(p, meta)


def trained_with_moving_camera(path: str | Path) -> bool | None:
    """:attr:`Bundle.moving_camera` of the bundle folder ``path`` without validating it.

    Returns:
        True / False, or None when ``path/config.json`` is missing, not JSON, or has no
        ``training.static_background`` boolean. Never raises for a bad file: this is a hint
        for messages, not part of the model.
    """
    try:
        training = json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8")).get("training", {})
        static = training.get("static_background")
    except (OSError, ValueError, AttributeError):
        return None
    return (not static) if isinstance(static, bool) else None


def default_model_path() -> Path:
    """The shipped real-video bundle (``trained/bbb`` next to the packages)."""
    return Path(__file__).resolve().parent.parent / "trained" / "bbb"
