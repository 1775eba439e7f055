"""Synthetic videos of an articulated 2-D figure with exact ground truth.

An articulated "puppet" moves over a **static** textured background. Three body plans
(:data:`PLANS`): ``"humanoid"`` (:data:`PART_NAMES`: torso, head, upper/lower arms, upper/lower
legs — 10 rigid parts hinged at the 9 :data:`JOINT_NAMES`), ``"quadruped"`` (body, head, four
two-segment legs: 10 parts, 9 joints) and ``"robot_arm"`` (base on a rail, turret, upper arm,
forearm, wrist, hand, two fingers: 8 parts, 7 joints). Motion: smooth random joint-angle
trajectories (sums of a few sinusoids inside joint limits), a swaying root and a slow global
translation. Each part is a rounded rectangle (limbs: capsules) carrying its own texture (base
colour, a second colour in a stripe/check/spot pattern, fixed grain noise, cylinder shading),
so the parts are not separable by one flat colour each. Parts are composited back to front in
a fixed depth order (far limbs behind the body, near ones in front), with anti-aliased edges.
Options: the figure's size in the frame, a slowly changing light, sensor noise, an H.264
round trip, and footage that breaks the static-camera, one-shot assumption: a camera pan/zoom
(background and figure moved by a known per-frame camera map) and shot cuts (another figure
and background from the cut on) (:func:`render_video`).

Ground truth per frame, in the conventions of :mod:`tracker.core`:

* ``labels`` ``(T, H, W)`` uint8: 0 = background, ``i + 1`` = part ``part_names[i]``, the
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

from parttrack.engine.angles import wrap_deg
from parttrack.engine.errors import InputError

#: Body plans :func:`render_video` can draw (``plan=``).
PLANS = ("humanoid", "quadruped", "robot_arm")

#: The humanoid's parts, in part-id order (id = index + 1).
PART_NAMES = (
    "torso", "head",
    "upper_arm_l", "lower_arm_l", "upper_arm_r", "lower_arm_r",
    "upper_leg_l", "lower_leg_l", "upper_leg_r", "lower_leg_r",
)
#: The humanoid's joints and the (proximal part, distal part) names they link.
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
#: The humanoid's back-to-front drawing order ("_r" limbs are the far side, "_l" the near side).
DEPTH_ORDER = (
    "upper_leg_r", "lower_leg_r", "upper_arm_r", "lower_arm_r",
    "torso", "head",
    "upper_leg_l", "lower_leg_l", "upper_arm_l", "lower_arm_l",
)
GT_FILE = "ground_truth.npz"
VIDEO_FILE = "video.mp4"

# Relative angles (degrees, CCW on screen) of each degree of freedom: (rest, amplitude).
# A part's direction = parent direction + relative angle; the root's is absolute. Joints that
# bend one way only keep |rest| >= amplitude.
_HUMANOID_DOF = {
    "torso": (90.0, 14.0),       # absolute: 90° = upright
    "head": (0.0, 18.0),
    "upper_arm_l": (150.0, 60.0), "lower_arm_l": (40.0, 38.0),
    "upper_arm_r": (-150.0, 60.0), "lower_arm_r": (-40.0, 38.0),
    "upper_leg_l": (170.0, 24.0), "lower_leg_l": (-28.0, 26.0),
    "upper_leg_r": (-170.0, 24.0), "lower_leg_r": (28.0, 26.0),
}
_QUADRUPED_DOF = {
    "body": (0.0, 6.0),          # absolute: 0° = facing screen-right, level
    "head": (35.0, 20.0),
    "front_upper_l": (-80.0, 28.0), "front_lower_l": (-25.0, 22.0),
    "front_upper_r": (-80.0, 28.0), "front_lower_r": (-25.0, 22.0),
    "hind_upper_l": (-100.0, 28.0), "hind_lower_l": (30.0, 24.0),
    "hind_upper_r": (-100.0, 28.0), "hind_lower_r": (30.0, 24.0),
}
_ROBOT_ARM_DOF = {
    "base": (90.0, 0.0),         # absolute: upright, slides on a rail
    "turret": (0.0, 25.0),
    "upper_arm": (35.0, 50.0), "forearm": (-75.0, 55.0), "wrist": (0.0, 45.0),
    "hand": (0.0, 25.0), "finger_a": (18.0, 14.0), "finger_b": (-18.0, 14.0),
}


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
class JointSpec:
    """A hinge: ``child`` turns about the point ``(along, across)`` (unit lengths) from the
    *centre* of ``parent`` in the parent's frame (along its axis; across toward the screen-left
    of the axis direction). It is the child's proximal joint."""

    name: str
    parent: str
    child: str
    along: float
    across: float


@dataclass(frozen=True)
class FigureSpec:
    """A figure's body plan, proportions and appearance, derived from ``(plan, seed)`` alone.

    Build with :meth:`from_seed`. ``parts`` is in part-id order (the first part is the root of
    the kinematic tree); ``joints`` in topological order (a parent before its children);
    ``dof`` maps each part to ``(rest, amplitude)`` degrees (root: absolute direction; others:
    relative to the parent); ``depth_order`` lists the parts back to front; ``extent_units``
    is the figure's larger extent in unit lengths (sets the unit from the frame size) and
    ``root_y`` the root centre's rest height as a fraction of the frame height (plus ``root_dy``
    extents); ``sway`` the amplitudes of the root's slow drift (fractions of width, height).
    """

    seed: int
    parts: tuple[PartShape, ...]
    joints: tuple[JointSpec, ...]
    dof: dict
    depth_order: tuple[str, ...]
    extent_units: float
    root_y: float = 0.5
    root_dy: float = 0.0
    plan: str = "humanoid"
    sway: tuple[float, float] = (0.16, 0.05)

    @classmethod
    def from_seed(cls, seed: int = 0, plan: str = "humanoid") -> "FigureSpec":
        """Raises ValueError for a plan not in :data:`PLANS`."""
        builders = {"humanoid": _humanoid, "quadruped": _quadruped, "robot_arm": _robot_arm}
        if plan not in builders:
            raise ValueError(f"unknown body plan {plan!r}; choose one of {', '.join(PLANS)}")
        return builders[plan](int(seed))

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts)


class _Appearance:
    """Colours and patterns of one figure's parts (drawn in part order from one rng)."""

    patterns = ("stripes_across", "stripes_along", "check", "spots", "grain")

    def __init__(self, rng: np.random.Generator, metallic: bool = False) -> None:
        self.rng, self.hue0, self.metallic = rng, rng.uniform(0, 1), metallic

    def part(self, i: int, name: str, bone: float, hl: float, hw: float, corner: float,
             offset: float) -> PartShape:
        rng = self.rng
        hue = (self.hue0 + i * 0.618034) % 1.0
        sat, val = rng.uniform(0.35, 0.8), rng.uniform(0.5, 0.9)
        if self.metallic:
            sat *= 0.6
        c1 = _hsv_to_rgb(hue, sat, val)
        c2 = _hsv_to_rgb((hue + rng.uniform(-0.08, 0.08)) % 1.0, sat * rng.uniform(0.4, 1.0),
                         val * rng.uniform(0.45, 0.8))
        return PartShape(name, bone, hl, hw, corner, offset, c1, c2,
                         str(rng.choice(self.patterns)), float(rng.uniform(0.18, 0.4)))


def _humanoid(seed: int) -> FigureSpec:
    rng = np.random.default_rng([seed, 1])
    j = lambda v, f=0.1: float(v * rng.uniform(1 - f, 1 + f))  # noqa: E731 - jitter
    torso_len, torso_w = j(1.0), j(0.55)
    ua, la, ul, ll = j(0.62), j(0.62), j(0.72), j(0.74)
    ra, rl = j(0.1, 0.15), j(0.13, 0.15)
    head_r = j(0.24)
    look = _Appearance(rng)
    parts = []
    for i, name in enumerate(PART_NAMES):
        if name == "torso":
            parts.append(look.part(i, name, torso_len, torso_len / 2 + 0.06, torso_w / 2,
                                   0.35 * torso_w / 2, -0.06))
        elif name == "head":
            parts.append(look.part(i, name, 2 * head_r, head_r * 1.12, head_r, head_r, -0.3 * head_r))
        else:
            bone = {"upper_arm": ua, "lower_arm": la, "upper_leg": ul, "lower_leg": ll}[name[:-2]]
            r = ra if "arm" in name else rl
            if name.startswith("lower"):
                r *= 0.85
            parts.append(look.part(i, name, bone, bone / 2 + r, r, r, -r))
    by = {p.name: p for p in parts}
    shoulder = (torso_len / 2 - ra * 1.3, torso_w / 2 - ra * 0.8)
    hip = (-torso_len / 2 + rl * 0.6, torso_w / 2 - rl * 1.05)
    attach = {"head": (torso_len / 2, 0.0),
              "upper_arm_l": shoulder, "upper_arm_r": (shoulder[0], -shoulder[1]),
              "upper_leg_l": hip, "upper_leg_r": (hip[0], -hip[1])}
    joints = []
    for name, parent, child in JOINTS:
        if child in attach:
            along, across = attach[child]
        else:   # the parent's distal joint, measured from its centre
            p = by[parent]
            along, across = p.bone - p.offset - p.half_length, 0.0
        joints.append(JointSpec(name, parent, child, along, across))
    height = torso_len + 2.2 * head_r + ul + ll + rl
    return FigureSpec(seed, tuple(parts), tuple(joints), dict(_HUMANOID_DOF), DEPTH_ORDER, height,
                      root_y=0.5, root_dy=0.02, plan="humanoid")


def _quadruped(seed: int) -> FigureSpec:
    rng = np.random.default_rng([seed, 11])
    j = lambda v, f=0.12: float(v * rng.uniform(1 - f, 1 + f))  # noqa: E731 - jitter
    body_len, body_w = j(1.3), j(0.52)
    head_r = j(0.22)
    fu, fl, hu, hl_ = j(0.42), j(0.42), j(0.45), j(0.42)
    rl = j(0.085, 0.15)
    look = _Appearance(rng)
    names = ("body", "head", "front_upper_l", "front_lower_l", "front_upper_r", "front_lower_r",
             "hind_upper_l", "hind_lower_l", "hind_upper_r", "hind_lower_r")
    parts = []
    for i, name in enumerate(names):
        if name == "body":
            parts.append(look.part(i, name, body_len, body_len / 2, body_w / 2, 0.45 * body_w / 2, 0.0))
        elif name == "head":
            parts.append(look.part(i, name, 2 * head_r, head_r * 1.25, head_r * 0.85, head_r * 0.8, -0.2 * head_r))
        else:
            bone = {"front_upper": fu, "front_lower": fl, "hind_upper": hu, "hind_lower": hl_}[name[:-2]]
            r = rl * (0.8 if "lower" in name else 1.15)
            parts.append(look.part(i, name, bone, bone / 2 + r, r, r, -r))
    by = {p.name: p for p in parts}
    joints = [JointSpec("neck", "body", "head", body_len / 2 - 0.05, body_w * 0.2)]
    for leg, along in (("front", body_len / 2 - 0.2), ("hind", -body_len / 2 + 0.2)):
        for side in ("l", "r"):
            up = by[f"{leg}_upper_{side}"]
            joints.append(JointSpec(f"{'shoulder' if leg == 'front' else 'hip'}_{side}", "body",
                                    up.name, along, -body_w * 0.22))
            joints.append(JointSpec(f"{'elbow' if leg == 'front' else 'stifle'}_{side}", up.name,
                                    f"{leg}_lower_{side}", up.bone - up.offset - up.half_length, 0.0))
    depth = ("front_upper_r", "front_lower_r", "hind_upper_r", "hind_lower_r", "body", "head",
             "front_upper_l", "front_lower_l", "hind_upper_l", "hind_lower_l")
    extent = body_len + 2.4 * head_r + 0.2
    return FigureSpec(seed, tuple(parts), tuple(joints), dict(_QUADRUPED_DOF), depth, extent,
                      root_y=0.42, plan="quadruped", sway=(0.14, 0.03))


def _robot_arm(seed: int) -> FigureSpec:
    rng = np.random.default_rng([seed, 21])
    j = lambda v, f=0.12: float(v * rng.uniform(1 - f, 1 + f))  # noqa: E731 - jitter
    dims = {  # name: (bone, half_width)
        "base": (j(0.5), j(0.42)), "turret": (j(0.32), j(0.17)), "upper_arm": (j(0.85), j(0.12)),
        "forearm": (j(0.75), j(0.1)), "wrist": (j(0.22), j(0.09)), "hand": (j(0.16), j(0.2)),
        "finger_a": (j(0.26), j(0.05)), "finger_b": (j(0.26), j(0.05)),
    }
    look = _Appearance(rng, metallic=True)
    parts = []
    for i, (name, (bone, hw)) in enumerate(dims.items()):
        corner = (0.25 if name in ("base", "hand") else 0.6) * hw
        parts.append(look.part(i, name, bone, bone / 2 + (0.0 if name == "base" else 0.5 * hw), hw, corner,
                               0.0 if name == "base" else -0.5 * hw))
    by = {p.name: p for p in parts}

    def distal(name: str) -> float:
        p = by[name]
        return p.bone - p.offset - p.half_length

    joints = [JointSpec("base_turret", "base", "turret", distal("base"), 0.0),
              JointSpec("shoulder", "turret", "upper_arm", distal("turret"), 0.0),
              JointSpec("elbow", "upper_arm", "forearm", distal("upper_arm"), 0.0),
              JointSpec("wrist_pitch", "forearm", "wrist", distal("forearm"), 0.0),
              JointSpec("wrist_roll", "wrist", "hand", distal("wrist"), 0.0),
              JointSpec("finger_a", "hand", "finger_a", distal("hand"), 0.6 * by["hand"].half_width),
              JointSpec("finger_b", "hand", "finger_b", distal("hand"), -0.6 * by["hand"].half_width)]
    depth = ("base", "turret", "upper_arm", "forearm", "wrist", "hand", "finger_b", "finger_a")
    extent = sum(b for b, _ in dims.values()) * 0.8
    return FigureSpec(seed, tuple(parts), tuple(joints), dict(_ROBOT_ARM_DOF), depth, extent,
                      root_y=0.86, plan="robot_arm", sway=(0.1, 0.0))


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
        figure_seed, motion_seed, plan: what generated it (plan: one of :data:`PLANS`).
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
    plan: str

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
                                      "motion_seed": self.motion_seed, "plan": self.plan})))
        return path


@dataclass(frozen=True)
class SyntheticVideo(GroundTruth):
    """A rendered video with its ground truth. ``frames``: ``(T, H, W, 3)`` uint8 RGB.

    ``shots``: ``(T,)`` int64 shot id of each frame (0, 1, … in order; all 0 without ``cuts``).
    ``camera``: ``(T, 2, 3)`` float64 affine map of each frame's camera, scene pixels → frame
    pixels (``[x_f, y_f] = camera[t] @ [x, y, 1]``; the identity for a static camera), where
    the scene is the frame of a static camera at frame 0 of the shot. Neither is written by
    :meth:`save` (the ground truth above is already in frame pixels).
    """

    frames: np.ndarray
    shots: np.ndarray | None = None
    camera: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames.shape != self.labels.shape + (3,) or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be {self.labels.shape + (3,)} uint8, "
                             f"got {self.frames.shape} {self.frames.dtype}")
        t = len(self.labels)
        if self.shots is None:
            object.__setattr__(self, "shots", np.zeros(t, np.int64))
        if self.camera is None:
            object.__setattr__(self, "camera", np.broadcast_to(np.eye(2, 3), (t, 2, 3)).copy())
        if self.shots.shape != (t,) or self.camera.shape != (t, 2, 3):
            raise ValueError(f"shots must be ({t},) and camera ({t}, 2, 3), got {self.shots.shape} "
                             f"and {self.camera.shape}")

    @property
    def cut_frames(self) -> tuple[int, ...]:
        """Indices of the first frame of every shot after the first."""
        return tuple(int(i) for i in np.nonzero(np.diff(self.shots))[0] + 1)

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
    """Encode ``(T, H, W, 3)`` uint8 RGB frames to an MP4 (:class:`engine.video.VideoWriter`:
    yuv420p, libx264 at CRF 12, evenly spaced at ``fps``; MPEG-4 Part 2 at ~2 bits per pixel
    where libx264 is missing).

    Raises:
        ValueError: odd width/height or no frames.
    """
    from parttrack.engine.video import VideoWriter

    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need >= 1 frame and even width/height for yuv420p, got {frames.shape}")
    with VideoWriter(path, w, h, fps, codec, crf=12, timestamps=False, mpeg4_bits_per_pixel=2.0) as writer:
        for img in frames:
            writer.write(img)
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
                motion_seed=int(info["motion_seed"]), plan=str(info.get("plan", "humanoid")))
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
    """Per-frame kinematics: directions (T, P) deg, centres (T, P, 2) px, joints (T, J, 2) px."""

    phi: np.ndarray
    centres: np.ndarray
    joints: np.ndarray


def _kinematics(spec: FigureSpec, n: int, w: int, h: int, unit: float, fps: float, motion_seed: int,
                activity: float) -> _Pose:
    rng = np.random.default_rng([int(spec.seed), int(motion_seed), 2])
    t = np.arange(n) / fps
    rel = {}
    for p in spec.parts:
        rest, amp = spec.dof[p.name]
        rel[p.name] = rest + activity * amp * _smooth_signal(rng, t, 0.12, 0.55)
    sx, sy = spec.sway
    cx = w / 2 + sx * w * _smooth_signal(rng, t, 0.02, 0.07, 2)
    cy = spec.root_y * h + sy * h * _smooth_signal(rng, t, 0.03, 0.12, 2) + spec.root_dy * spec.extent_units * unit

    pid = {p.name: i for i, p in enumerate(spec.parts)}
    phi = np.zeros((n, spec.num_parts))
    centres = np.zeros((n, spec.num_parts, 2))
    root = spec.parts[0].name
    phi[:, 0] = rel[root]
    centres[:, 0] = np.stack([cx, cy], -1)
    joints = np.zeros((n, len(spec.joints), 2))
    for jn, js in enumerate(spec.joints):
        ip, ic = pid[js.parent], pid[js.child]
        d_p, n_p = _unit(phi[:, ip]), _unit(phi[:, ip] + 90.0)
        joint = centres[:, ip] + (d_p * js.along + n_p * js.across) * unit
        phi[:, ic] = phi[:, ip] + rel[js.child]
        child = spec.parts[ic]
        centres[:, ic] = joint + _unit(phi[:, ic]) * (child.offset + child.half_length) * unit
        joints[:, jn] = joint
    return _Pose(phi, centres, joints)


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
                 noise_std: float = 1.5, plan: str = "humanoid", scale: float = 1.0,
                 light: float = 0.0, crf: int | None = None, pan: tuple[float, float] = (0.0, 0.0),
                 zoom: float = 0.0, cuts: tuple[int, ...] = ()) -> SyntheticVideo:
    """Render a video of the figure of ``(plan, figure_seed)`` moving with the motion of ``motion_seed``.

    Args:
        n_frames: T >= 1.
        size: side of a square frame, or ``(width, height)`` in pixels (>= 16).
        figure_seed: figure proportions/textures and the background.
        motion_seed: joint-angle and translation trajectories, light changes and per-frame
            sensor noise.
        fps: frames per second; frame i is at ``i / fps`` s.
        activity: scales every joint's motion amplitude (1 = default limits, 0 = frozen pose).
        noise_std: per-frame Gaussian pixel noise (0–255 units; each frame takes one of 16
            fields drawn once per video), 0 to disable.
        plan: body plan, one of :data:`PLANS` (``"humanoid"``: :data:`PART_NAMES`).
        scale: figure size relative to the default (which spans ~82 % of the shorter frame
            side); 0.4 = a small figure, 1.3 = one that leaves the frame at times.
        light: amplitude of a slowly changing illumination (relative gain on the whole frame,
            ±``light``, and a left–right gradient of ±``light/2`` drifting over a few seconds);
            0 = constant light.
        crf: if set, the frames are round-tripped through H.264 (libx264, yuv420p) at this
            constant rate factor (23 = typical web video, 35 = heavy compression); the ground
            truth is unchanged. Needs even width and height.
        pan: camera velocity ``(vx, vy)`` in frame pixels per second (x right, y down): the
            scene (background and figure) moves by ``−pan · t`` in the frame. The scene is
            rendered with a margin so the frame never leaves it.
        zoom: camera zoom rate per second: the scene is magnified by ``exp(zoom · t)`` about
            the frame centre (negative: zooming out). The ground truth (centres, joints,
            scales, labels) is in frame pixels of the moving camera; ``camera`` holds the
            per-frame map.
        cuts: frame indices (strictly increasing, in ``1 … n_frames − 1``) where a new shot
            starts: shot ``k`` shows the figure and background of ``figure_seed + k`` (same
            plan, so the same part names), its own motion, light and camera path starting
            again at the cut; ``time_s`` runs on across the cuts. ``shots`` holds the shot ids.

    Returns:
        :class:`SyntheticVideo` (frames RGB uint8 plus exact ground truth).

    Raises:
        ValueError: ``n_frames < 1``, a frame smaller than 16×16, an unknown ``plan``,
            ``scale <= 0``, ``crf`` with an odd frame size, or ``cuts`` out of order or range.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if cuts:
        return _render_shots(n_frames, tuple(int(c) for c in cuts), crf, figure_seed, dict(
            size=size, motion_seed=motion_seed, fps=fps, activity=activity, noise_std=noise_std, plan=plan,
            scale=scale, light=light, pan=pan, zoom=zoom))
    h, w = _size_hw(size)
    spec = FigureSpec.from_seed(figure_seed, plan)
    unit = 0.82 * scale * min(h, w) / spec.extent_units
    pose = _kinematics(spec, n_frames, w, h, unit, fps, motion_seed, activity)
    tex_rng = np.random.default_rng([int(figure_seed), 4])
    textures = [_part_texture(p, unit, tex_rng) for p in spec.parts]
    camera = _camera_path(n_frames, h, w, fps, pan, zoom)
    margin = _camera_margin(camera, h, w) if camera is not None else 0
    background = render_background(h + 2 * margin, w + 2 * margin, figure_seed)
    noise_rng = np.random.default_rng([int(figure_seed), int(motion_seed), 5])
    # Sensor noise: a bank of fields drawn once, one picked at random per frame (fast at 640x480).
    noise_bank = (noise_rng.standard_normal((min(n_frames, 16), h, w, 3), dtype=np.float32) * noise_std
                  if noise_std > 0 else None)
    if light > 0:
        light_rng = np.random.default_rng([int(figure_seed), int(motion_seed), 6])
        t = np.arange(n_frames) / fps
        gain = 1.0 + light * _smooth_signal(light_rng, t, 0.03, 0.15, 2)
        tilt = 0.5 * light * _smooth_signal(light_rng, t, 0.02, 0.1, 2)
        ramp = (np.arange(w, dtype=np.float32) / max(1, w - 1) * 2 - 1)[None, :, None]

    frames = np.empty((n_frames, h, w, 3), np.uint8)
    labels = np.zeros((n_frames, h, w), np.uint8)
    pid = {p.name: i for i, p in enumerate(spec.parts)}
    order = [pid[n] for n in spec.depth_order]
    for f in range(n_frames):
        img = background.copy()
        lab = labels[f] if camera is None else np.zeros(img.shape[:2], np.uint8)
        for i in order:
            _composite(img, lab, textures[i], pose.centres[f, i] + margin, pose.phi[f, i], i + 1)
        if camera is not None:  # scene canvas (offset by the margin) → the moving camera's frame
            m = camera[f].copy()
            m[:, 2] -= m[:, :2] @ np.array([margin, margin], np.float64)
            img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            labels[f] = cv2.warpAffine(lab, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        if light > 0:
            img *= (gain[f] + tilt[f] * ramp).astype(np.float32)
        if noise_std > 0:
            img += noise_bank[noise_rng.integers(len(noise_bank))]
        frames[f] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if crf is not None:
        frames = _h264_round_trip(frames, fps, int(crf))

    scales = np.array([[p.half_length, p.half_width] for p in spec.parts]) * unit
    scales = np.broadcast_to(scales, (n_frames,) + scales.shape).copy()
    pairs = np.array([sorted((pid[js.parent] + 1, pid[js.child] + 1)) for js in spec.joints], np.int64)
    centres, joints = pose.centres, pose.joints
    if camera is not None:
        centres, joints = _apply_camera(camera, centres), _apply_camera(camera, joints)
        scales = scales * camera[:, 0, 0][:, None, None]
    return SyntheticVideo(
        labels=labels, centres=centres, angles_deg=wrap_deg(pose.phi),
        scales=scales, joints=joints,
        joint_pairs=pairs, part_names=spec.part_names, joint_names=tuple(js.name for js in spec.joints),
        times_s=np.arange(n_frames, dtype=np.float64) / fps, fps=float(fps),
        figure_seed=int(figure_seed), motion_seed=int(motion_seed), plan=spec.plan, frames=frames,
        camera=camera)


def _camera_path(n: int, h: int, w: int, fps: float, pan: tuple[float, float], zoom: float) -> np.ndarray | None:
    """``(T, 2, 3)`` float64 scene → frame maps of a camera panning at ``pan`` px/s and zooming
    by ``exp(zoom · t)`` about the frame centre; None for a static camera."""
    vx, vy = (float(v) for v in pan)
    if vx == 0 and vy == 0 and zoom == 0:
        return None
    t = np.arange(n, dtype=np.float64) / fps
    s = np.exp(float(zoom) * t)
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    cam = np.zeros((n, 2, 3))
    cam[:, 0, 0] = cam[:, 1, 1] = s
    cam[:, :, 2] = c[None] * (1 - s[:, None]) - t[:, None] * np.array([vx, vy])[None]
    return cam


def _camera_margin(camera: np.ndarray, h: int, w: int) -> int:
    """Pixels of scene needed around the ``h × w`` frame so every frame of ``camera`` sees scene."""
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    s = camera[:, 0, 0][:, None, None]
    scene = (corners[None] - camera[:, None, :, 2]) / s                 # (T, 4, 2) scene px
    over = max(0.0, float(-scene.min()), float((scene[..., 0] - (w - 1)).max()),
               float((scene[..., 1] - (h - 1)).max()))
    return int(np.ceil(over)) + 2


def _apply_camera(camera: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Scene points ``(T, N, 2)`` px → frame points through ``camera`` ``(T, 2, 3)``."""
    return np.einsum("tij,tnj->tni", camera[:, :, :2], xy) + camera[:, None, :, 2]


def _render_shots(n_frames: int, cuts: tuple[int, ...], crf: int | None, figure_seed: int,
                  kwargs: dict) -> SyntheticVideo:
    """:func:`render_video` with ``cuts``: each shot rendered on its own, then joined."""
    bounds = (0,) + cuts + (n_frames,)
    if any(b >= a for a, b in zip(bounds[1:], bounds[:-1])) or cuts[0] < 1:
        raise ValueError(f"cuts must be strictly increasing frame indices in 1..{n_frames - 1}, got {cuts}")
    shots = [render_video(b - a, figure_seed=figure_seed + k, crf=None, **kwargs)
             for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    cat = {name: np.concatenate([getattr(v, name) for v in shots])
           for name in ("labels", "centres", "angles_deg", "scales", "joints", "frames", "camera")}
    if crf is not None:
        cat["frames"] = _h264_round_trip(cat["frames"], float(kwargs["fps"]), int(crf))
    first = shots[0]
    return SyntheticVideo(
        **cat, joint_pairs=first.joint_pairs, part_names=first.part_names, joint_names=first.joint_names,
        times_s=np.arange(n_frames, dtype=np.float64) / float(kwargs["fps"]), fps=first.fps,
        figure_seed=int(figure_seed), motion_seed=first.motion_seed, plan=first.plan,
        shots=np.concatenate([np.full(len(v), k, np.int64) for k, v in enumerate(shots)]))


def _h264_round_trip(frames: np.ndarray, fps: float, crf: int) -> np.ndarray:
    """Encode ``(T, H, W, 3)`` uint8 RGB with libx264 (yuv420p, CRF ``crf``) and decode it back
    (PyAV, in memory)."""
    import io

    import av

    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"crf needs an even frame width and height, got {w}x{h}")
    buf = io.BytesIO()
    from fractions import Fraction
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        out = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    if out.shape != frames.shape:
        raise RuntimeError(f"H.264 round trip returned {out.shape}, expected {frames.shape}")
    return out


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
