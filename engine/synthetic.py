"""Synthetic videos of an articulated 2-D figure with exact ground truth.

A "puppet" of :data:`PART_NAMES` (torso, head, upper/lower arms, upper/lower legs — 10 rigid
parts) hinged at :data:`JOINT_NAMES` (neck, shoulders, elbows, hips, knees — 9 joints) moves
over a **static** textured background: smooth random joint-angle trajectories (sums of a few
sinusoids inside joint limits), a swaying torso and a slow global translation. Each part is a
rounded rectangle (limbs: capsules) carrying its own texture (base colour, a second colour in
a stripe/check/spot pattern, fixed grain noise, cylinder shading), so the parts are not
separable by one flat colour each. Parts are composited back to front in a fixed depth order
(far arm and leg behind the torso, near ones in front), with anti-aliased edges.

Ground truth per frame, in the conventions of :mod:`tracker.core`:

* ``labels`` ``(T, H, W)`` uint8: 0 = background, ``i + 1`` = part ``PART_NAMES[i]``, the
  front-most part wherever parts overlap (a pixel belongs to a part where its coverage > 0.5).
* ``centres`` ``(T, P, 2)`` float64 px: the centre of each part's shape (x right, y down,
  pixel centres at integers). Occlusion does not move it.
* ``angles_deg`` ``(T, P)`` float64 in (-180, 180]: direction of the part's first axis
  (along the bone, proximal → distal joint; for the torso hips → neck, for the head neck →
  crown), **counter-clockwise on screen** from +x.
* ``scales`` ``(T, P, 2)`` float64 px: half-extent of the shape along / across its axis.
* ``joints`` ``(T, J, 2)`` float64 px, the hinge points; ``joint_pairs`` ``(J, 2)`` int64
  1-based part ids (a < b) that each joint links.

The same ``figure_seed`` gives the same figure (proportions, textures) and the same background;
a different ``motion_seed`` gives new motion of that figure (held-out evaluation).
Frame ``i`` is at ``time_s = i / fps``.

Rendering is OpenCV ``warpAffine`` of each part's precomputed RGBA texture into its bounding
box; a 300-frame 128×128 video renders in well under a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputError

#: The parts, in part-id order (id = index + 1).
PART_NAMES = (
    "torso", "head",
    "upper_arm_l", "lower_arm_l", "upper_arm_r", "lower_arm_r",
    "upper_leg_l", "lower_leg_l", "upper_leg_r", "lower_leg_r",
)
#: Joints and the (proximal part, distal part) names they link.
JOINTS = (
    ("neck", "torso", "head"),
    ("shoulder_l", "torso", "upper_arm_l"),
    ("elbow_l", "upper_arm_l", "lower_arm_l"),
    ("shoulder_r", "torso", "upper_arm_r"),
    ("elbow_r", "upper_arm_r", "lower_arm_r"),
    ("hip_l", "torso", "upper_leg_l"),
    ("knee_l", "upper_leg_l", "lower_leg_l"),
    ("hip_r", "torso", "upper_leg_r"),
    ("knee_r", "upper_leg_r", "lower_leg_r"),
)
JOINT_NAMES = tuple(j[0] for j in JOINTS)
#: Back-to-front drawing order ("_r" limbs are the far side, "_l" the near side).
DEPTH_ORDER = (
    "upper_leg_r", "lower_leg_r", "upper_arm_r", "lower_arm_r",
    "torso", "head",
    "upper_leg_l", "lower_leg_l", "upper_arm_l", "lower_arm_l",
)
GT_FILE = "ground_truth.npz"
VIDEO_FILE = "video.mp4"

_PID = {n: i for i, n in enumerate(PART_NAMES)}

# Relative angles (degrees, CCW on screen) of each degree of freedom: (rest, amplitude).
# A limb's direction = parent direction + relative angle; limbs hang at 180° from the torso
# axis (which points up). Elbows and knees bend one way only (limits keep |rest| >= amp).
_DOF = {
    "torso": (90.0, 14.0),       # absolute: 90° = upright
    "head": (0.0, 18.0),
    "upper_arm_l": (150.0, 60.0), "lower_arm_l": (40.0, 38.0),
    "upper_arm_r": (-150.0, 60.0), "lower_arm_r": (-40.0, 38.0),
    "upper_leg_l": (170.0, 24.0), "lower_leg_l": (-28.0, 26.0),
    "upper_leg_r": (-170.0, 24.0), "lower_leg_r": (28.0, 26.0),
}


def _wrap_deg(a: np.ndarray) -> np.ndarray:
    """Wrap degrees to (-180, 180]."""
    a = np.mod(np.asarray(a, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


def _unit(phi_deg: np.ndarray) -> np.ndarray:
    """Image-frame unit vector (x right, y down) of a CCW-on-screen angle: ``(..., 2)``."""
    r = np.deg2rad(phi_deg)
    return np.stack([np.cos(r), -np.sin(r)], axis=-1)


@dataclass(frozen=True)
class PartShape:
    """One rigid part in its own frame (units: fractions of the figure's unit length).

    The part's axis runs from its proximal joint along its direction. Its shape is a rounded
    rectangle centred ``offset + half_length`` along the axis from the proximal joint, with
    half-extents ``half_length`` (along) and ``half_width`` (across) and corner radius
    ``corner`` (= ``half_width`` for a capsule). ``bone`` is the distance proximal → distal
    joint along the axis.
    """

    name: str
    bone: float
    half_length: float
    half_width: float
    corner: float
    offset: float
    color: tuple[float, float, float]
    color2: tuple[float, float, float]
    pattern: str
    period: float


@dataclass(frozen=True)
class FigureSpec:
    """A figure's proportions and appearance, derived from ``figure_seed`` alone.

    Build with :meth:`from_seed`. ``parts`` is in :data:`PART_NAMES` order; ``shoulder_*``,
    ``hip_*`` are offsets of those joints on the torso (along, across its axis) from the torso
    centre, in unit lengths; the across offset is signed (+ toward the screen-left of the
    axis direction for "_l").
    """

    seed: int
    parts: tuple[PartShape, ...]
    shoulder: tuple[float, float]
    hip: tuple[float, float]
    height_units: float

    @classmethod
    def from_seed(cls, seed: int = 0) -> "FigureSpec":
        rng = np.random.default_rng([int(seed), 1])
        j = lambda v, f=0.1: float(v * rng.uniform(1 - f, 1 + f))  # noqa: E731 - jitter
        torso_len, torso_w = j(1.0), j(0.55)
        ua, la, ul, ll = j(0.62), j(0.62), j(0.72), j(0.74)
        ra, rl = j(0.1, 0.15), j(0.13, 0.15)
        head_r = j(0.24)
        hue0 = rng.uniform(0, 1)
        patterns = ("stripes_across", "stripes_along", "check", "spots", "grain")

        def colors(i: int) -> tuple[tuple, tuple]:
            hue = (hue0 + i * 0.618034) % 1.0
            sat, val = rng.uniform(0.35, 0.8), rng.uniform(0.5, 0.9)
            c1 = _hsv_to_rgb(hue, sat, val)
            c2 = _hsv_to_rgb((hue + rng.uniform(-0.08, 0.08)) % 1.0, sat * rng.uniform(0.4, 1.0),
                             val * rng.uniform(0.45, 0.8))
            return c1, c2

        def part(i, name, bone, hl, hw, corner, offset):
            c1, c2 = colors(i)
            return PartShape(name, bone, hl, hw, corner, offset, c1, c2,
                             str(rng.choice(patterns)), float(rng.uniform(0.18, 0.4)))

        parts = []
        for i, name in enumerate(PART_NAMES):
            if name == "torso":
                parts.append(part(i, name, torso_len, torso_len / 2 + 0.06, torso_w / 2,
                                  0.35 * torso_w / 2, -0.06))
            elif name == "head":
                parts.append(part(i, name, 2 * head_r, head_r * 1.12, head_r, head_r, -0.3 * head_r))
            else:
                bone = {"upper_arm": ua, "lower_arm": la, "upper_leg": ul, "lower_leg": ll}[name[:-2]]
                r = ra if "arm" in name else rl
                if name.startswith("lower"):
                    r *= 0.85
                parts.append(part(i, name, bone, bone / 2 + r, r, r, -r))
        shoulder = (torso_len / 2 - ra * 1.3, torso_w / 2 - ra * 0.8)
        hip = (-torso_len / 2 + rl * 0.6, torso_w / 2 - rl * 1.05)
        height = torso_len + 2.2 * head_r + ul + ll + rl
        return cls(int(seed), tuple(parts), shoulder, hip, height)

    @property
    def num_parts(self) -> int:
        return len(self.parts)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


@dataclass(frozen=True)
class GroundTruth:
    """Exact ground truth of a synthetic video (see module docstring for conventions).

    Attributes:
        labels: ``(T, H, W)`` uint8, 0 background, 1..P part ids.
        centres: ``(T, P, 2)`` float64 px. angles_deg: ``(T, P)`` float64, CCW on screen.
        scales: ``(T, P, 2)`` float64 px half-extents (along, across the part axis).
        joints: ``(T, J, 2)`` float64 px. joint_pairs: ``(J, 2)`` int64 1-based part ids, a < b.
        part_names: P names (id = index + 1). joint_names: J names.
        times_s: ``(T,)`` float64 seconds (``i / fps``). fps: frames per second.
        figure_seed, motion_seed: what generated it.
    """

    labels: np.ndarray
    centres: np.ndarray
    angles_deg: np.ndarray
    scales: np.ndarray
    joints: np.ndarray
    joint_pairs: np.ndarray
    part_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    times_s: np.ndarray
    fps: float
    figure_seed: int
    motion_seed: int

    def __post_init__(self) -> None:
        t, p, j = self.labels.shape[0], len(self.part_names), len(self.joint_names)
        for name, arr, shape in (("labels", self.labels, (t, None, None)),
                                 ("centres", self.centres, (t, p, 2)),
                                 ("angles_deg", self.angles_deg, (t, p)),
                                 ("scales", self.scales, (t, p, 2)),
                                 ("joints", self.joints, (t, j, 2)),
                                 ("joint_pairs", self.joint_pairs, (j, 2)),
                                 ("times_s", self.times_s, (t,))):
            if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
                raise ValueError(f"{name} must have shape {shape} (None = any), got {arr.shape}")
        if self.labels.dtype != np.uint8:
            raise ValueError(f"labels must be uint8, got {self.labels.dtype}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def height(self) -> int:
        return int(self.labels.shape[1])

    @property
    def width(self) -> int:
        return int(self.labels.shape[2])

    @property
    def num_parts(self) -> int:
        return len(self.part_names)

    def save_npz(self, path: str | Path) -> Path:
        """Write the ground truth as a compressed ``.npz`` (no pickle; names as JSON)."""
        path = Path(path)
        np.savez_compressed(
            path, labels=self.labels, centres=self.centres, angles_deg=self.angles_deg,
            scales=self.scales, joints=self.joints, joint_pairs=self.joint_pairs,
            times_s=self.times_s,
            info=np.array(json.dumps({"part_names": list(self.part_names),
                                      "joint_names": list(self.joint_names), "fps": self.fps,
                                      "figure_seed": self.figure_seed,
                                      "motion_seed": self.motion_seed})))
        return path


@dataclass(frozen=True)
class SyntheticVideo(GroundTruth):
    """A rendered video with its ground truth. ``frames``: ``(T, H, W, 3)`` uint8 RGB."""

    frames: np.ndarray

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames.shape != self.labels.shape + (3,) or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be {self.labels.shape + (3,)} uint8, "
                             f"got {self.frames.shape} {self.frames.dtype}")

    @property
    def ground_truth(self) -> GroundTruth:
        return GroundTruth(**{f.name: getattr(self, f.name) for f in fields(GroundTruth)})

    def save(self, out_dir: str | Path, codec: str = "libx264") -> Path:
        """Write ``out_dir/video.mp4`` (yuv420p, near-lossless) and ``out_dir/ground_truth.npz``.

        Args:
            out_dir: created if missing.
            codec: ``"libx264"`` (CRF 12; ``"mpeg4"`` where PyAV lacks it) or ``"mpeg4"`` (~2 bits/pixel).

        Returns:
            ``out_dir``.

        Raises:
            ValueError: odd frame width/height (yuv420p needs even sizes).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_video(out / VIDEO_FILE, self.frames, self.fps, codec=codec)
        self.save_npz(out / GT_FILE)
        return out


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "libx264") -> Path:
    """Encode ``(T, H, W, 3)`` uint8 RGB frames to an MP4 with PyAV (yuv420p).

    Raises:
        ValueError: odd width/height or no frames.
    """
    import av
    from fractions import Fraction

    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need >= 1 frame and even width/height for yuv420p, got {frames.shape}")
    rate = Fraction(fps).limit_denominator(1001)
    if codec not in av.codecs_available:
        codec = "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12", "preset": "veryfast"}
        else:  # MPEG-4 Part 2: a generous constant bit rate (~2 bits per pixel)
            stream.bit_rate = int(max(2e6, 2 * w * h * float(rate)))
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read ``ground_truth.npz`` (or a folder holding it) written by :meth:`SyntheticVideo.save`.

    Raises:
        InputError: missing or unreadable file.
    """
    p = Path(path)
    if p.is_dir():
        p = p / GT_FILE
    if not p.is_file():
        raise InputError(f"no synthetic ground truth at {p}",
                         "generate one with engine.synthetic.render_video(...).save(dir) "
                         "or `parttrack eval BUNDLE --generate`")
    try:
        with np.load(p, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            return GroundTruth(
                labels=z["labels"], centres=z["centres"], angles_deg=z["angles_deg"],
                scales=z["scales"], joints=z["joints"], joint_pairs=z["joint_pairs"].astype(np.int64),
                part_names=tuple(info["part_names"]), joint_names=tuple(info["joint_names"]),
                times_s=z["times_s"], fps=float(info["fps"]), figure_seed=int(info["figure_seed"]),
                motion_seed=int(info["motion_seed"]))
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"{p}: not a parttrack synthetic ground-truth file ({exc})") from None


# -- motion --------------------------------------------------------------------------------
def _smooth_signal(rng: np.random.Generator, t: np.ndarray, fmin: float, fmax: float, n: int = 3) -> np.ndarray:
    """A smooth random signal in [-1, 1]: normalised sum of ``n`` sinusoids, ``(T,)``."""
    f = rng.uniform(fmin, fmax, n)
    a = rng.uniform(0.4, 1.0, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0) / a.sum()


@dataclass(frozen=True)
class _Pose:
    """Per-frame kinematics: directions (T, P) deg, proximal joints (T, P, 2) px."""

    phi: np.ndarray
    proximal: np.ndarray
    centres: np.ndarray
    joints: np.ndarray


def _kinematics(spec: FigureSpec, n: int, w: int, h: int, unit: float, fps: float, motion_seed: int,
                activity: float) -> _Pose:
    rng = np.random.default_rng([int(spec.seed), int(motion_seed), 2])
    t = np.arange(n) / fps
    rel = {}
    for name in PART_NAMES:
        rest, amp = _DOF[name]
        rel[name] = rest + activity * amp * _smooth_signal(rng, t, 0.12, 0.55)
    cx = w / 2 + 0.16 * w * _smooth_signal(rng, t, 0.02, 0.07, 2)
    cy = h / 2 + 0.05 * h * _smooth_signal(rng, t, 0.03, 0.12, 2) + 0.02 * spec.height_units * unit
    centre = np.stack([cx, cy], -1)

    phi = np.zeros((n, spec.num_parts))
    prox = np.zeros((n, spec.num_parts, 2))
    parts = {p.name: p for p in spec.parts}
    phi[:, _PID["torso"]] = rel["torso"]
    d_t = _unit(rel["torso"])                       # (T, 2) along the torso, up
    n_t = _unit(rel["torso"] + 90.0)                # across, toward screen-left of the axis
    torso = parts["torso"]
    prox[:, _PID["torso"]] = centre - d_t * (torso.offset + torso.half_length) * unit
    neck = centre + d_t * (torso.bone / 2) * unit
    attach = {
        "head": neck,
        "upper_arm_l": centre + (d_t * spec.shoulder[0] + n_t * spec.shoulder[1]) * unit,
        "upper_arm_r": centre + (d_t * spec.shoulder[0] - n_t * spec.shoulder[1]) * unit,
        "upper_leg_l": centre + (d_t * spec.hip[0] + n_t * spec.hip[1]) * unit,
        "upper_leg_r": centre + (d_t * spec.hip[0] - n_t * spec.hip[1]) * unit,
    }
    for name, parent in (("head", "torso"), ("upper_arm_l", "torso"), ("upper_arm_r", "torso"),
                         ("upper_leg_l", "torso"), ("upper_leg_r", "torso"),
                         ("lower_arm_l", "upper_arm_l"), ("lower_arm_r", "upper_arm_r"),
                         ("lower_leg_l", "upper_leg_l"), ("lower_leg_r", "upper_leg_r")):
        i, ip = _PID[name], _PID[parent]
        phi[:, i] = phi[:, ip] + rel[name]
        if name in attach:
            prox[:, i] = attach[name]
        else:
            prox[:, i] = prox[:, ip] + _unit(phi[:, ip]) * parts[parent].bone * unit
    centres = np.zeros_like(prox)
    for p in spec.parts:
        i = _PID[p.name]
        centres[:, i] = prox[:, i] + _unit(phi[:, i]) * (p.offset + p.half_length) * unit
    centres[:, _PID["torso"]] = centre
    joints = np.stack([prox[:, _PID[child]] for _, _, child in JOINTS], axis=1)
    return _Pose(phi, prox, centres, joints)


# -- appearance ----------------------------------------------------------------------------
def _part_texture(p: PartShape, unit: float, rng: np.random.Generator) -> np.ndarray:
    """Premultiplied RGBA float32 texture of a part in its own frame: ``(ph, pw, 4)``; pixel
    (row, col) at along = col - (pw-1)/2, across = row - (ph-1)/2 (pixels); alpha = coverage."""
    hl, hw, rc = p.half_length * unit, p.half_width * unit, p.corner * unit
    pw, ph = int(np.ceil(2 * hl)) + 4, int(np.ceil(2 * hw)) + 4
    u = np.arange(pw, dtype=np.float32) - (pw - 1) / 2
    v = np.arange(ph, dtype=np.float32) - (ph - 1) / 2
    uu, vv = np.meshgrid(u, v)
    # Signed distance of a rounded rectangle (negative inside).
    qx, qy = np.abs(uu) - (hl - rc), np.abs(vv) - (hw - rc)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    sd = outside + np.minimum(np.maximum(qx, qy), 0) - rc
    alpha = np.clip(0.5 - sd, 0.0, 1.0)
    period = max(2.5, p.period * 2 * max(hw, 0.5 * hl))
    if p.pattern == "stripes_across":
        pat = 0.5 + 0.5 * np.sin(2 * np.pi * uu / period)
    elif p.pattern == "stripes_along":
        pat = 0.5 + 0.5 * np.sin(2 * np.pi * vv / (0.6 * period))
    elif p.pattern == "check":
        pat = ((np.floor(uu / period) + np.floor(vv / period)) % 2).astype(np.float32)
    elif p.pattern == "spots":
        pat = (np.hypot((uu / period) % 1 - 0.5, (vv / period) % 1 - 0.5) < 0.28).astype(np.float32)
    else:
        pat = cv2.GaussianBlur(rng.uniform(0, 1, uu.shape).astype(np.float32), (0, 0), max(1.0, period / 3))
        pat = (pat - pat.min()) / max(1e-6, float(np.ptp(pat)))
    c1, c2 = np.array(p.color, np.float32), np.array(p.color2, np.float32)
    rgb = c1 + (c2 - c1) * (0.75 * pat[..., None])
    # Cylinder shading across the part, light from the upper side of the part frame.
    across = np.clip(vv / max(hw, 1.0), -1, 1)
    shade = 0.55 + 0.45 * np.sqrt(1 - across ** 2) - 0.12 * across
    grain = rng.normal(0, 0.045, uu.shape).astype(np.float32)
    rgb = rgb * shade[..., None] + grain[..., None]
    # Premultiplied by coverage so bilinear warping leaves no dark fringe.
    return np.dstack([np.clip(rgb, 0, 1) * 255.0 * alpha[..., None], alpha]).astype(np.float32)


def render_background(h: int, w: int, seed: int) -> np.ndarray:
    """A static textured scene ``(h, w, 3)`` float32 0–255: multi-octave coloured noise, a
    floor, a few blurred blocks and a fine grain."""
    rng = np.random.default_rng([int(seed), 3])
    base = np.zeros((h, w, 3), np.float32)
    for octave, weight in ((4, 0.5), (12, 0.3), (40, 0.2)):
        gh, gw = max(2, int(np.ceil(octave * h / max(h, w)))), max(2, int(np.ceil(octave * w / max(h, w))))
        noise = rng.uniform(0, 1, (gh, gw, 3)).astype(np.float32)
        base += weight * cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    tint = np.array(_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.15, 0.4), 1.0), np.float32)
    img = (0.3 + 0.5 * base) * tint * 255.0
    floor_y = int(h * rng.uniform(0.72, 0.85))
    img[floor_y:] *= np.array(_hsv_to_rgb(rng.uniform(0, 1), 0.3, 0.8), np.float32)
    for _ in range(int(rng.integers(4, 8))):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, floor_y)
        bw, bh = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
        col = np.array(_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.9)), np.float32) * 255
        block = np.zeros((h, w), np.float32)
        cv2.rectangle(block, (int(x0), int(y0)), (int(x0 + bw), int(y0 + bh)), 1.0, -1)
        block = cv2.GaussianBlur(block, (0, 0), 1.0 + 0.01 * max(h, w))[..., None] * 0.6
        img = img * (1 - block) + col * block
    img += rng.normal(0, 4.0, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255)


# -- rendering -----------------------------------------------------------------------------
def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        w, h = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"frame size must be at least 16x16, got {w}x{h}")
    return h, w


def render_video(n_frames: int, size: int | tuple[int, int] = 128, figure_seed: int = 0,
                 motion_seed: int = 0, fps: float = 25.0, activity: float = 1.0,
                 noise_std: float = 1.5) -> SyntheticVideo:
    """Render a video of the figure of ``figure_seed`` moving with the motion of ``motion_seed``.

    Args:
        n_frames: T >= 1.
        size: side of a square frame, or ``(width, height)`` in pixels (>= 16).
        figure_seed: figure proportions/textures and the background.
        motion_seed: joint-angle and translation trajectories, and per-frame sensor noise.
        fps: frames per second; frame i is at ``i / fps`` s.
        activity: scales every joint's motion amplitude (1 = default limits, 0 = frozen pose).
        noise_std: per-frame Gaussian pixel noise (0–255 units; each frame takes one of 16
            fields drawn once per video), 0 to disable.

    Returns:
        :class:`SyntheticVideo` (frames RGB uint8 plus exact ground truth).
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    h, w = _size_hw(size)
    spec = FigureSpec.from_seed(figure_seed)
    unit = 0.82 * min(h, w) / spec.height_units
    pose = _kinematics(spec, n_frames, w, h, unit, fps, motion_seed, activity)
    tex_rng = np.random.default_rng([int(figure_seed), 4])
    textures = [_part_texture(p, unit, tex_rng) for p in spec.parts]
    background = render_background(h, w, figure_seed)
    noise_rng = np.random.default_rng([int(figure_seed), int(motion_seed), 5])
    # Sensor noise: a bank of fields drawn once, one picked at random per frame (fast at 640x480).
    noise_bank = (noise_rng.standard_normal((min(n_frames, 16), h, w, 3), dtype=np.float32) * noise_std
                  if noise_std > 0 else None)

    frames = np.empty((n_frames, h, w, 3), np.uint8)
    labels = np.zeros((n_frames, h, w), np.uint8)
    order = [_PID[n] for n in DEPTH_ORDER]
    for f in range(n_frames):
        img = background.copy()
        lab = labels[f]
        for i in order:
            _composite(img, lab, textures[i], pose.centres[f, i], pose.phi[f, i], i + 1)
        if noise_std > 0:
            img += noise_bank[noise_rng.integers(len(noise_bank))]
        frames[f] = np.clip(img + 0.5, 0, 255).astype(np.uint8)

    scales = np.array([[p.half_length, p.half_width] for p in spec.parts]) * unit
    pairs = np.array([sorted((_PID[a] + 1, _PID[b] + 1)) for _, a, b in JOINTS], np.int64)
    return SyntheticVideo(
        labels=labels, centres=pose.centres, angles_deg=_wrap_deg(pose.phi),
        scales=np.broadcast_to(scales, (n_frames,) + scales.shape).copy(), joints=pose.joints,
        joint_pairs=pairs, part_names=PART_NAMES, joint_names=JOINT_NAMES,
        times_s=np.arange(n_frames, dtype=np.float64) / fps, fps=float(fps),
        figure_seed=int(figure_seed), motion_seed=int(motion_seed), frames=frames)


def _composite(img: np.ndarray, lab: np.ndarray, tex: np.ndarray, centre: np.ndarray, phi: float,
               pid: int) -> None:
    """Draw one part's RGBA texture at ``centre`` (px) along direction ``phi`` (deg CCW on
    screen) into ``img`` (float32, in place) and set ``lab`` to ``pid`` where coverage > 0.5."""
    h, w = lab.shape
    ph, pw, _ = tex.shape
    d = _unit(phi)                        # along the part (texture +col)
    n = np.array([-d[1], d[0]])           # texture +row: 90° clockwise on screen from d
    # Map texture pixel (col, row) -> image: centre + d*(col - cu) + n*(row - cv).
    cu, cv = (pw - 1) / 2, (ph - 1) / 2
    half = 0.5 * (abs(d) * pw + abs(n) * ph) + 2
    x0, y0 = max(0, int(np.floor(centre[0] - half[0]))), max(0, int(np.floor(centre[1] - half[1])))
    x1, y1 = min(w, int(np.ceil(centre[0] + half[0])) + 1), min(h, int(np.ceil(centre[1] + half[1])) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    m = np.array([[d[0], n[0], centre[0] - d[0] * cu - n[0] * cv - x0],
                  [d[1], n[1], centre[1] - d[1] * cu - n[1] * cv - y0]])
    warped = cv2.warpAffine(tex, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = warped[..., 3:4]
    roi = img[y0:y1, x0:x1]
    roi *= 1 - a
    roi += warped[..., :3]
    lab[y0:y1, x0:x1][a[..., 0] > 0.5] = pid
