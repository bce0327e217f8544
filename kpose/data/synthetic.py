"""Procedural synthetic people: articulated figures in clutter, with COCO_17 keypoints.

kpose trains and tests offline with these images: no download, any number, same seed ->
same bytes. Each image holds one person built from a 3D kinematic tree (spine, neck/head,
shoulder-elbow-wrist, hip-knee-ankle) posed with random joint angles inside human limits,
seen from a random direction (front, profile, back), projected orthographically (so limbs
foreshorten when they point at the camera), scaled, rotated in the image plane and placed
over a cluttered background, with random objects in front of it.

Rendering is NumPy on small bounding boxes: every body part is a signed-distance shape
(tapered capsules for limbs, hands and feet; convex hulls of elliptical cross-sections for
chest and pelvis; a shaded sphere with hair and a face for the head), so edges are
anti-aliased without supersampling. Parts are painted far to near, which also tells which
part is on top at every pixel; that buffer decides the keypoint visibility.

Conventions (kpose, see ``DESIGN.md``): keypoints are ``(17, 3)`` float32 ``(x, y, v)`` in
:data:`~kpose.skeletons.COCO_17` order, x right, y down, 0-based pixel centres at integer
coordinates; ``v`` is 2 when the joint is seen, 1 when it lies in the image but is covered
(by an occluder, or by another body part drawn over it, or it is a face point on the far
side of the head, or a shoulder/hip on the far side of the torso), 0 when it lies outside
the image, with ``x = y = 0``. A joint is inside the image when
``-0.5 <= x < size - 0.5`` and the same for ``y`` (it falls on one of the pixels). Left and
right are the person's own: a person facing the camera has the left shoulder on the
image's right, as in COCO.

The COCO file written by :func:`write_synthetic_dataset` stores keypoints and boxes in this
same frame (for keypoints that is COCO's own convention: integer = pixel centre), so a COCO
reader needs no shift.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from kpose.files import atomic_path
from kpose.skeletons import COCO_17

__all__ = ["SyntheticConfig", "render_person", "write_synthetic_dataset"]

NUM_JOINTS = COCO_17.num_joints
IMAGE_DIR = "images"
ANNOTATION_FILE = "person_keypoints.json"


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges the renderer samples from. Lengths are fractions of the image side.

    Attributes:
        height_range: person stature (standing height, before foreshortening) as a
            fraction of the image side.
        child_prob: probability of child proportions (bigger head, shorter limbs).
        build_range: limb and torso thickness factor (thin .. heavy).
        max_roll_deg: the usual in-plane rotation of the whole figure is a normal with a
            third of this as its standard deviation, clipped to +-this.
        tilted_prob: probability of a strongly tilted figure (lying, cartwheel): roll up to
            +-100 degrees.
        upside_down_prob: probability of any roll in +-180 degrees.
        occluder_prob: probability of 1..``max_occluders`` objects in front of the person.
        max_occluders: see ``occluder_prob``.
        clutter_range: number of flat background shapes (rectangles, ellipses, polygons,
            lines), inclusive range.
        distractor_range: number of limb-like capsule chains and shaded shapes drawn behind
            the person, so that "elongated shaded thing" does not mean "person".
        truncation: how far (fraction of the figure's extent) the figure may stick out of
            the image on each side when it would otherwise fit.
        noise_std_range: per-pixel Gaussian noise, in 0..255 units.
        blur_prob: probability of blurring the whole image slightly (defocus).
    """

    height_range: tuple[float, float] = (0.35, 1.0)
    child_prob: float = 0.15
    build_range: tuple[float, float] = (0.75, 1.45)
    max_roll_deg: float = 45.0
    tilted_prob: float = 0.08
    upside_down_prob: float = 0.03
    occluder_prob: float = 0.45
    max_occluders: int = 2
    clutter_range: tuple[int, int] = (8, 40)
    distractor_range: tuple[int, int] = (1, 6)
    truncation: float = 0.2
    noise_std_range: tuple[float, float] = (0.0, 8.0)
    blur_prob: float = 0.15

    def __post_init__(self) -> None:
        lo, hi = self.height_range
        if not 0 < lo <= hi:
            raise ValueError(f"height_range must satisfy 0 < low <= high, got {self.height_range}")
        for name in ("child_prob", "tilted_prob", "upside_down_prob", "occluder_prob",
                     "blur_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], "
                                 f"got {getattr(self, name)}")


def render_person(rng: np.random.Generator, size: int = 256,
                  config: SyntheticConfig | None = None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """Render one synthetic person.

    Args:
        rng: the only source of randomness; the same generator state gives the same image.
        size: side of the square image in pixels (at least 32).
        config: sampling ranges; :class:`SyntheticConfig` defaults when ``None``.

    Returns:
        ``(image, keypoints, box)``: ``image`` uint8 ``(size, size, 3)`` RGB; ``keypoints``
        float32 ``(17, 3)`` ``(x, y, v)`` in COCO_17 order (module docstring for the
        frame and the visibility rules); ``box`` ``(x, y, w, h)`` around the drawn figure
        (occluded parts included) and its labelled keypoints, clipped to the image
        ``[-0.5, size - 0.5]``.
    """
    scene = _render_scene(rng, size, config or SyntheticConfig())
    return scene.image, scene.keypoints, scene.box


def write_synthetic_dataset(out_dir: str | os.PathLike, num: int, seed: int = 0,
                            size: int = 256, config: SyntheticConfig | None = None,
                            quality: int = 90, progress: bool = True) -> Path:
    """Write ``num`` synthetic people as a COCO person_keypoints data set.

    Layout: ``out_dir/images/synth_{i:06d}.jpg`` and ``out_dir/person_keypoints.json``
    (``file_name`` is relative to ``out_dir/images``; image and annotation ids are
    ``i + 1``). Image ``i`` is drawn with ``np.random.default_rng([seed, i])``, so it does not
    depend on ``num``, and the same arguments give the same bytes. Each file is written
    under a temporary name and renamed, and the JSON comes last: an interrupted run leaves
    no half-written file and no JSON.

    Annotation fields: ``bbox`` and ``keypoints`` in the kpose frame (module docstring),
    rounded to 0.01 px; ``area`` is the figure's pixel area inside the image, occluded
    parts included (the amodal area, a steadier OKS scale than the visible area);
    ``num_keypoints`` counts joints with ``v > 0``.

    Args:
        out_dir: output folder, created when missing.
        num: number of images (>= 1).
        seed: data set seed.
        size: image side in pixels.
        config: sampling ranges for :func:`render_person`.
        quality: JPEG quality.
        progress: print a progress line on stderr (every 5 %) for 100 images or more.

    Returns:
        Path of the JSON file.
    """
    if int(num) != num or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32, got {size!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be a JPEG quality in 1..100, got {quality!r}")
    config = config or SyntheticConfig()
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    report = _ProgressLine(num) if progress and num >= 100 else None
    for i in range(num):
        image, keypoints, box, area = _render_for_file(seed, i, size, config)
        file_name = f"synth_{i:06d}.jpg"
        _save_jpeg_atomic(image, image_dir / file_name, quality)
        images.append({"id": i + 1, "file_name": file_name, "width": size, "height": size})
        annotations.append(_coco_annotation(i + 1, keypoints, box, area))
        if report:
            report.update(i + 1)
    document = {
        "info": {"description": "kpose synthetic people", "seed": seed, "size": size},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [_coco_person_category()],
    }
    json_path = out_dir / ANNOTATION_FILE
    _write_text_atomic(json_path, json.dumps(document, separators=(",", ":")))
    return json_path


# ---------------------------------------------------------------------------------------
# Data set files

def _render_for_file(seed: int, index: int, size: int, config: SyntheticConfig):
    scene = _render_scene(np.random.default_rng([seed, index]), size, config)
    return scene.image, scene.keypoints, scene.box, scene.area


def _coco_annotation(index: int, keypoints: np.ndarray, box, area: float) -> dict:
    flat = [round(float(value), 2) for value in keypoints.reshape(-1)]
    for k in range(2, len(flat), 3):
        flat[k] = int(flat[k])
    return {
        "id": index,
        "image_id": index,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [round(float(b), 2) for b in box],
        "area": round(float(area), 2),
        "num_keypoints": int(np.count_nonzero(keypoints[:, 2] > 0)),
        "keypoints": flat,
    }


def _coco_person_category() -> dict:
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO_17.joint_names),
        # COCO numbers joints from 1 in its skeleton.
        "skeleton": [[a + 1, b + 1] for a, b in COCO_17.bones],
    }


def _save_jpeg_atomic(image: np.ndarray, path: Path, quality: int) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(image).save(temporary, format="JPEG", quality=quality)


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


class _ProgressLine:
    """``synthetic: 1250/5000 (25%) 130 img/s`` on stderr, every 5 %."""

    def __init__(self, total: int):
        self.total, self.start, self.next_percent = total, time.perf_counter(), 5

    def update(self, done: int) -> None:
        percent = 100 * done // self.total
        if percent < self.next_percent and done < self.total:
            return
        self.next_percent = percent + 5
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        # One line per update: readable in notebooks and log files, not only terminals.
        print(f"synthetic: {done}/{self.total} ({percent}%) {rate:.0f} img/s",
              file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Scene

# Part ids in the "top part" buffer. 0 is background; occluders start at OCCLUDER.
CHEST, PELVIS, NECK, HEAD, L_EAR, R_EAR = 1, 2, 3, 4, 5, 6
L_UPPER_ARM, R_UPPER_ARM, L_FOREARM, R_FOREARM, L_HAND, R_HAND = 7, 8, 9, 10, 11, 12
L_THIGH, R_THIGH, L_SHIN, R_SHIN, L_FOOT, R_FOOT = 13, 14, 15, 16, 17, 18
OCCLUDER = 100

# Per joint, the parts a joint may lie under and still be seen: its own segments.
_OWN_PARTS = (
    {HEAD}, {HEAD}, {HEAD}, {HEAD, L_EAR}, {HEAD, R_EAR},
    {CHEST, NECK, L_UPPER_ARM}, {CHEST, NECK, R_UPPER_ARM},
    {L_UPPER_ARM, L_FOREARM}, {R_UPPER_ARM, R_FOREARM},
    {L_FOREARM, L_HAND}, {R_FOREARM, R_HAND},
    {PELVIS, CHEST, L_THIGH}, {PELVIS, CHEST, R_THIGH},
    {L_THIGH, L_SHIN}, {R_THIGH, R_SHIN},
    {L_SHIN, L_FOOT}, {R_SHIN, R_FOOT},
)


@dataclass
class _Scene:
    """One rendered image with its labels, plus the true joint positions (for tests)."""

    image: np.ndarray          # (S, S, 3) uint8
    keypoints: np.ndarray      # (17, 3) float32, kpose convention
    box: tuple[float, float, float, float]
    area: float                # figure pixels inside the image (amodal)
    joints_xy: np.ndarray      # (17, 2) float32 true joint positions, also outside the image


def _render_scene(rng: np.random.Generator, size: int, cfg: SyntheticConfig) -> _Scene:
    if int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32, got {size!r}")
    size = int(size)
    body = _sample_body(rng, cfg)
    pose = _sample_pose(rng)
    skeleton = _pose_skeleton(body, pose)
    figure = _place_figure(rng, skeleton, body, size, cfg)
    light = _sample_light(rng)

    canvas = _Canvas(_background(rng, size, cfg))
    _draw_distractors(rng, canvas, figure, light, cfg)
    _draw_figure(rng, canvas, figure, light)
    _draw_occluders(rng, canvas, figure, light, cfg)

    joints_xy = figure.joints[:, :2].astype(np.float32)
    keypoints = _keypoint_visibility(canvas, figure)
    box, area = _figure_box(canvas, keypoints)
    image = _finish(rng, canvas.image, cfg)
    return _Scene(image, keypoints, box, area, joints_xy)


class _Canvas:
    """Float RGB image, the id of the top part at every pixel, and the figure coverage."""

    def __init__(self, image: np.ndarray):
        self.image = image                                   # (S, S, 3) float32, 0..255
        self.size = image.shape[0]
        self.top = np.zeros(image.shape[:2], np.int16)       # part id, 0 = background
        self.coverage = np.zeros(image.shape[:2], np.float32)  # figure alpha, amodal

    def grid(self, lo: np.ndarray, hi: np.ndarray):
        """Pixel-centre coordinates ``(x0, y0, X (1, w), Y (h, 1))`` covering ``[lo, hi]``."""
        x0, y0 = max(int(math.floor(lo[0])), 0), max(int(math.floor(lo[1])), 0)
        x1 = min(int(math.ceil(hi[0])) + 1, self.size)
        y1 = min(int(math.ceil(hi[1])) + 1, self.size)
        if x1 <= x0 or y1 <= y0:
            return None
        xs = np.arange(x0, x1, dtype=np.float32)[None, :]
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        return x0, y0, xs, ys

    def paint(self, x0: int, y0: int, alpha: np.ndarray, colour: np.ndarray,
              part: int = 0, figure: bool = False) -> None:
        """Alpha-blend ``colour`` ((h, w, 3) or (3,)) with ``alpha`` (h, w) at ``(x0, y0)``."""
        h, w = alpha.shape
        region = self.image[y0:y0 + h, x0:x0 + w]
        region += alpha[..., None] * (colour - region)
        if part:
            self.top[y0:y0 + h, x0:x0 + w][alpha > 0.5] = part
        if figure:
            cover = self.coverage[y0:y0 + h, x0:x0 + w]
            np.maximum(cover, alpha, out=cover)


# ---------------------------------------------------------------------------------------
# Body: proportions, pose, 3D skeleton

@dataclass
class _Body:
    """Lengths and radii in units of stature (standing height)."""

    head_r: float
    neck: float
    spine: float
    shoulder_w: float
    hip_w: float
    upper_arm: float
    forearm: float
    hand: float
    thigh: float
    shin: float
    foot: float
    r_upper_arm: float
    r_forearm: float
    r_hand: float
    r_thigh: float
    r_shin: float
    r_foot: float
    r_neck: float
    chest_depth: float
    waist_w: float


def _sample_body(rng: np.random.Generator, cfg: SyntheticConfig) -> _Body:
    # Child proportions: bigger head, shorter legs and arms relative to stature.
    child = rng.uniform(0.4, 1.0) if rng.random() < cfg.child_prob else 0.0
    build = rng.uniform(*cfg.build_range)

    def length(adult: float, kid: float) -> float:
        return (adult + (kid - adult) * child) * rng.uniform(0.92, 1.08)

    def radius(base: float) -> float:
        return base * build * rng.uniform(0.9, 1.1)

    return _Body(
        head_r=length(0.062, 0.085), neck=length(0.045, 0.03), spine=length(0.30, 0.28),
        shoulder_w=length(0.225, 0.215), hip_w=length(0.135, 0.13),
        upper_arm=length(0.175, 0.16), forearm=length(0.15, 0.135), hand=length(0.085, 0.08),
        thigh=length(0.235, 0.21), shin=length(0.235, 0.2), foot=length(0.13, 0.12),
        r_upper_arm=radius(0.034), r_forearm=radius(0.026), r_hand=radius(0.02),
        r_thigh=radius(0.056), r_shin=radius(0.039), r_foot=radius(0.021),
        r_neck=radius(0.026), chest_depth=radius(0.13), waist_w=radius(0.15),
    )


@dataclass
class _Pose:
    """Joint angles in degrees. ``arms``/``legs``: index 0 is the left side."""

    spine_bend: float     # forward flexion of the chest over the pelvis
    spine_side: float     # lateral flexion
    spine_twist: float    # axial rotation of the chest
    head_pitch: float     # nod forward
    head_yaw: float       # turn
    head_roll: float      # tilt
    arms: list            # (elevation from hanging, azimuth, twist, elbow flexion)
    legs: list            # (forward swing, abduction, twist, knee flexion, ankle)


_POSE_MODES = ("stand", "walk", "run", "sit", "squat", "kneel", "reach", "free")
_POSE_MODE_P = (0.2, 0.14, 0.08, 0.1, 0.07, 0.06, 0.1, 0.25)


def _sample_pose(rng: np.random.Generator) -> _Pose:
    """Angles from one of a few activities, then limbs re-drawn freely at random.

    Pure uniform angles give contorted figures; pure activities give too little variety.
    The mix keeps natural poses common while every limb may take any angle in range.
    """
    mode = _POSE_MODES[rng.choice(len(_POSE_MODES), p=_POSE_MODE_P)]
    u, n = rng.uniform, rng.normal
    pose = _Pose(
        spine_bend=abs(n(0, 10)) * (1 if rng.random() < 0.8 else -0.6),
        spine_side=n(0, 7), spine_twist=n(0, 15),
        head_pitch=n(5, 15), head_yaw=float(np.clip(n(0, 30), -80, 80)), head_roll=n(0, 10),
        arms=[_relaxed_arm(rng) for _ in range(2)],
        legs=[_relaxed_leg(rng) for _ in range(2)],
    )
    if mode in ("walk", "run"):
        amp = u(15, 35) if mode == "walk" else u(35, 65)
        phase = u(-1, 1)
        for side, sign in ((0, 1), (1, -1)):
            swing = sign * phase * amp
            bent = swing < 0 or mode == "run"
            knee = u(30, 100) if mode == "run" and bent else u(0, 40 if bent else 15)
            pose.legs[side] = (swing, u(-3, 10), n(0, 8), knee, n(0, 10))
            arm_swing = -swing * u(0.6, 1.2)
            elbow = u(60, 110) if mode == "run" else u(5, 40)
            pose.arms[side] = (abs(arm_swing) + u(0, 10), 90.0 if arm_swing > 0 else -90.0,
                               n(0, 20), elbow)
        if mode == "run":
            pose.spine_bend = u(5, 25)
    elif mode == "sit":
        for side in range(2):
            pose.legs[side] = (u(65, 110), u(-3, 25), n(0, 10), u(60, 120), n(0, 10))
        pose.spine_bend = u(-15, 25)
    elif mode == "squat":
        for side in range(2):
            pose.legs[side] = (u(85, 130), u(0, 35), n(0, 10), u(100, 150), n(10, 10))
        pose.spine_bend = u(15, 50)
    elif mode == "kneel":
        front = rng.integers(2)
        pose.legs[front] = (u(60, 100), u(-3, 15), n(0, 8), u(70, 110), n(0, 10))
        pose.legs[1 - front] = (u(-20, 20), u(-3, 15), n(0, 8), u(80, 120), u(-40, 0))
    elif mode == "reach":
        for side in range(2):
            if rng.random() < 0.75:
                pose.arms[side] = (u(80, 175), u(-20, 110), n(0, 30), u(0, 70))
    # Any limb may break out of the activity.
    p_free = 0.9 if mode == "free" else 0.25
    for side in range(2):
        if rng.random() < p_free:
            pose.arms[side] = _free_arm(rng)
        if rng.random() < p_free * 0.7:
            pose.legs[side] = _free_leg(rng)
    if mode == "free":
        pose.spine_bend, pose.spine_side, pose.spine_twist = u(-20, 70), u(-25, 25), u(-40, 40)
    return pose


def _relaxed_arm(rng: np.random.Generator) -> tuple:
    return (abs(rng.normal(0, 12)) + 3, rng.uniform(-20, 70), rng.normal(0, 20),
            rng.uniform(0, 35))


def _free_arm(rng: np.random.Generator) -> tuple:
    azimuth = rng.uniform(-60, 150)
    # The arm cannot swing far backwards.
    elevation = rng.uniform(0, 70 if azimuth < -20 else 175)
    return elevation, azimuth, rng.uniform(-80, 80), rng.uniform(0, 150)


def _relaxed_leg(rng: np.random.Generator) -> tuple:
    return (rng.normal(0, 6), rng.uniform(-3, 10), rng.normal(0, 8), rng.uniform(0, 15),
            rng.normal(0, 8))


def _free_leg(rng: np.random.Generator) -> tuple:
    return (rng.uniform(-30, 120), rng.uniform(-10, 50), rng.uniform(-30, 30),
            rng.uniform(0, 150), rng.uniform(-30, 30))


@dataclass
class _Skeleton3D:
    """Points (3,) and frames (3, 3) with columns (left, up, forward), canonical body frame.

    Canonical frame: the person stands at the origin (pelvis centre) facing +z, with +x
    their left and +y up.
    """

    points: dict
    frames: dict
    feet: tuple           # (heel, toe) pairs, left then right
    hands: tuple          # (start, end) pairs, left then right


def _pose_skeleton(body: _Body, pose: _Pose) -> _Skeleton3D:
    pelvis_frame = np.eye(3)
    chest_frame = pelvis_frame @ _rot_x(pose.spine_bend) @ _rot_z(pose.spine_side) \
        @ _rot_y(pose.spine_twist)
    left_c, up_c = chest_frame[:, 0], chest_frame[:, 1]
    pelvis = np.zeros(3)
    neck_base = pelvis + body.spine * up_c
    head_frame = chest_frame @ _rot_x(pose.head_pitch) @ _rot_z(pose.head_roll) \
        @ _rot_y(pose.head_yaw)
    neck_top = neck_base + body.neck * head_frame[:, 1]
    head = neck_top + body.head_r * (0.85 * head_frame[:, 1] + 0.12 * head_frame[:, 2])

    points = {"pelvis": pelvis, "neck_base": neck_base, "neck_top": neck_top, "head": head}
    feet, hands = [], []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = neck_base - 0.035 * up_c + sign * body.shoulder_w / 2 * left_c
        elev, azim, twist, elbow = pose.arms[0 if sign > 0 else 1]
        upper, fore, _ = _limb_directions(chest_frame, sign, elev, azim, twist, elbow)
        elbow_p = shoulder + body.upper_arm * upper
        wrist = elbow_p + body.forearm * fore
        hands.append((wrist + 0.15 * body.hand * fore, wrist + body.hand * fore))

        hip = pelvis + sign * body.hip_w / 2 * pelvis_frame[:, 0]
        swing, abduct, leg_twist, knee, ankle_angle = pose.legs[0 if sign > 0 else 1]
        elev, azim = _swing_to_spherical(swing, abduct)
        thigh, shin, front = _limb_directions(pelvis_frame, sign, elev, azim, leg_twist, -knee)
        knee_p = hip + body.thigh * thigh
        ankle = knee_p + body.shin * shin
        foot_dir = _unit(math.cos(math.radians(ankle_angle)) * front
                         + math.sin(math.radians(ankle_angle)) * shin)
        sole = ankle + 0.6 * body.r_foot * shin
        feet.append((sole - 0.25 * body.foot * foot_dir, sole + 0.75 * body.foot * foot_dir))
        points.update({f"{side}_shoulder": shoulder, f"{side}_elbow": elbow_p,
                       f"{side}_wrist": wrist, f"{side}_hip": hip, f"{side}_knee": knee_p,
                       f"{side}_ankle": ankle})
    frames = {"pelvis": pelvis_frame, "chest": chest_frame, "head": head_frame}
    return _Skeleton3D(points, frames, tuple(feet), tuple(hands))


def _limb_directions(frame: np.ndarray, sign: float, elevation: float, azimuth: float,
                     twist: float, flexion: float):
    """Unit directions of a two-segment limb hanging from ``frame`` (columns left, up, fwd).

    ``elevation`` lifts the limb from hanging straight down towards the horizontal
    direction ``azimuth`` (0 = outwards to the side of ``sign``, 90 = forwards). The limb's
    front (forward when hanging) follows the smallest rotation, then ``twist`` turns it
    about the limb. ``flexion`` bends the second segment towards the front (elbow,
    positive) or the back (knee, negative). Returns (first, second, second's front).
    """
    down = np.array([0.0, -1.0, 0.0])
    e, a = math.radians(elevation), math.radians(azimuth)
    horizontal = np.array([sign * math.cos(a), 0.0, math.sin(a)])
    first = math.cos(e) * down + math.sin(e) * horizontal
    axis = np.cross(down, horizontal)
    front = _rotate(np.array([0.0, 0.0, 1.0]), axis, e)
    front = _rotate(front, first, math.radians(twist))
    f = math.radians(flexion)
    second = math.cos(f) * first + math.sin(f) * front
    second_front = -math.sin(f) * first + math.cos(f) * front
    return frame @ first, frame @ second, frame @ second_front


def _swing_to_spherical(swing: float, abduction: float) -> tuple[float, float]:
    """(forward swing, sideways abduction) of a leg, degrees -> (elevation, azimuth)."""
    s, a = math.radians(swing), math.radians(abduction)
    out, down, fwd = math.sin(a) * math.cos(s), math.cos(a) * math.cos(s), math.sin(s)
    return math.degrees(math.acos(max(-1.0, min(1.0, down)))), math.degrees(math.atan2(fwd, out))


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation of ``v`` about ``axis`` by ``angle`` radians."""
    norm = np.linalg.norm(axis)
    if norm < 1e-9:
        return v
    k = axis / norm
    c, s = math.cos(angle), math.sin(angle)
    return v * c + np.cross(k, v) * s + k * np.dot(k, v) * (1 - c)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


# ---------------------------------------------------------------------------------------
# View: camera direction, scale, position

_JOINT_KEYS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
               "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
               "left_ankle", "right_ankle")


@dataclass
class _Figure:
    """The posed person in image space: ``(x, y, z)`` with x right, y down, z towards the
    camera, in pixels; frames' columns are (left, up, forward) in that space."""

    joints: np.ndarray        # (17, 3), COCO_17 order
    points: dict              # named (3,) points: pelvis, neck_base, neck_top, head, ...
    frames: dict              # pelvis, chest, head: (3, 3)
    feet: list                # [(heel, toe)] left, right: (3,) each
    hands: list
    scale: float              # pixels per stature unit
    body: _Body
    extent: tuple             # (x0, y0, x1, y1) of joints +- radii


def _sample_view(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Rotation from the canonical body frame into camera axes (x right, y up, z to camera)."""
    kind = rng.random()
    # Front views are the most common in photos, backs the least.
    if kind < 0.5:
        yaw = rng.uniform(-45, 45)
    elif kind < 0.85:
        yaw = rng.choice((-1, 1)) * rng.uniform(45, 135)
    else:
        yaw = rng.uniform(135, 225)
    pitch = float(np.clip(rng.normal(0, 10), -35, 35))
    kind = rng.random()
    if kind < cfg.upside_down_prob:
        roll = rng.uniform(-180, 180)
    elif kind < cfg.upside_down_prob + cfg.tilted_prob:
        roll = rng.choice((-1, 1)) * rng.uniform(cfg.max_roll_deg, 100)
    else:
        roll = float(np.clip(rng.normal(0, cfg.max_roll_deg / 3), -cfg.max_roll_deg,
                             cfg.max_roll_deg))
    return _rot_z(roll) @ _rot_x(pitch) @ _rot_y(yaw)


def _place_figure(rng: np.random.Generator, skeleton: _Skeleton3D, body: _Body, size: int,
                  cfg: SyntheticConfig) -> _Figure:
    rotation = _sample_view(rng, cfg)
    # Camera axes (y up) to image axes (y down).
    to_image = np.diag([1.0, -1.0, 1.0]) @ rotation
    scale = size * rng.uniform(*cfg.height_range)

    def project(p):
        return scale * (to_image @ p)

    points = {k: project(p) for k, p in skeleton.points.items()}
    frames = {k: to_image @ f for k, f in skeleton.frames.items()}
    feet = [(project(a), project(b)) for a, b in skeleton.feet]
    hands = [(project(a), project(b)) for a, b in skeleton.hands]
    xy = np.array([p[:2] for p in list(points.values()) + [q for f in feet for q in f]])
    pad = scale * body.head_r
    lo, hi = xy.min(axis=0) - pad, xy.max(axis=0) + pad
    extent = hi - lo
    # Fit the figure in the image when it can, letting it stick out a little.
    slack = cfg.truncation * extent
    centre = np.empty(2)
    for axis in range(2):
        low, high = extent[axis] / 2 - slack[axis], size - extent[axis] / 2 + slack[axis]
        if low > high:
            low = high = size / 2
        centre[axis] = rng.uniform(low, high) + rng.normal(0, 0.02 * size)
    shift = np.array([*(centre - (lo + hi) / 2), 0.0])
    points = {k: p + shift for k, p in points.items()}
    feet = [(a + shift, b + shift) for a, b in feet]
    hands = [(a + shift, b + shift) for a, b in hands]
    head_r = scale * body.head_r
    face = _face_points(points["head"], frames["head"], head_r)
    joints = np.array(list(face) + [points[k] for k in _JOINT_KEYS])
    lo, hi = lo + shift[:2], hi + shift[:2]
    return _Figure(joints, points, frames, feet, hands, scale, body,
                   (lo[0], lo[1], hi[0], hi[1]))


# Face feature directions in the head frame (left, up, forward).
_NOSE_DIR = _unit(np.array([0.0, -0.2, 1.0]))
_EYE_DIRS = (_unit(np.array([0.42, 0.12, 0.82])), _unit(np.array([-0.42, 0.12, 0.82])))
_EAR_DIRS = (_unit(np.array([1.0, -0.05, -0.15])), _unit(np.array([-1.0, -0.05, -0.15])))
_MOUTH_DIR = _unit(np.array([0.0, -0.5, 0.87]))


def _face_points(centre: np.ndarray, head_frame: np.ndarray, radius: float):
    """Nose, left eye, right eye, left ear, right ear on the head sphere (image space)."""
    nose = centre + 1.08 * radius * (head_frame @ _NOSE_DIR)
    eyes = [centre + 0.97 * radius * (head_frame @ d) for d in _EYE_DIRS]
    ears = [centre + radius * (head_frame @ d) for d in _EAR_DIRS]
    return [nose, *eyes, *ears]


def _sample_light(rng: np.random.Generator) -> np.ndarray:
    """Unit light direction in image space (x right, y down, z towards the camera)."""
    return _unit(np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.4), rng.uniform(0.4, 1.2)]))


# ---------------------------------------------------------------------------------------
# Materials: colour, pattern, shading

@dataclass
class _Material:
    colour: np.ndarray            # (3,) float32 0..255
    colour2: np.ndarray
    pattern: str                  # solid, stripes, checker, noise, gradient
    period: float                 # pattern period in pixels
    angle: float                  # pattern direction in the part's (along, across) frame
    tile: np.ndarray | None = None  # (8, 8) values 0..1 for "noise"
    ambient: float = 0.45


def _random_colour(rng: np.random.Generator, saturation: float = 1.0) -> np.ndarray:
    """Random RGB (3,) float32 0..255; ``saturation`` scales a bias towards muted colours,
    which real scenes and clothes mostly have."""
    h, s, v = rng.random(), saturation * rng.random() ** 1.4, 0.08 + 0.92 * rng.random() ** 0.8
    return _hsv_to_rgb(h, s, v)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return np.array(rgb, np.float32) * 255


def _skin_colour(rng: np.random.Generator) -> np.ndarray:
    light, dark = np.array([250, 220, 190]), np.array([85, 55, 38])
    t = rng.random()
    return np.clip(light + (dark - light) * t + rng.normal(0, 8, 3), 0, 255).astype(np.float32)


def _random_material(rng: np.random.Generator, scale: float, colour=None,
                     plain_prob: float = 0.45) -> _Material:
    colour = _random_colour(rng) if colour is None else colour
    kind = rng.random()
    if kind < plain_prob:
        pattern = "solid"
    else:
        pattern = ("stripes", "checker", "noise", "gradient")[rng.choice(4, p=(0.4, 0.15, 0.3,
                                                                              0.15))]
    colour2 = _random_colour(rng) if rng.random() < 0.6 else colour * rng.uniform(0.4, 0.8)
    period = max(2.5, scale * rng.uniform(0.012, 0.07))
    angle = rng.choice((0.0, 90.0, rng.uniform(0, 180)))
    tile = rng.random((8, 8)).astype(np.float32) if pattern == "noise" else None
    return _Material(colour.astype(np.float32), colour2.astype(np.float32), pattern, period,
                     float(angle), tile, ambient=rng.uniform(0.3, 0.7))


def _surface_colour(material: _Material, along: np.ndarray, across: np.ndarray,
                    shade: np.ndarray | None, length: float = 1.0) -> np.ndarray:
    """Colour ``(h, w, 3)`` (or ``(3,)`` when flat) of a part at part coordinates in px."""
    mix = _pattern(material, along, across, length)
    if mix is None:
        colour = material.colour
    else:
        colour = material.colour + mix[..., None] * (material.colour2 - material.colour)
    if shade is not None:
        light = material.ambient + (1 - material.ambient) * shade
        colour = colour * light[..., None]
    return colour


def _pattern(material: _Material, along, across, length: float):
    if material.pattern == "solid":
        return None
    a = math.radians(material.angle)
    coord = along * math.cos(a) + across * math.sin(a)
    if material.pattern == "stripes":
        return (np.sin(coord * (2 * math.pi / material.period)) > 0).astype(np.float32)
    if material.pattern == "checker":
        other = -along * math.sin(a) + across * math.cos(a)
        cells = np.floor(coord / material.period) + np.floor(other / material.period)
        return (cells % 2).astype(np.float32)
    if material.pattern == "noise":
        # Bilinear lookup in a periodic 8 x 8 tile: smooth blotches, not blocks.
        other = -along * math.sin(a) + across * math.cos(a)
        fi, fj = coord / material.period, other / material.period
        i0, j0 = np.floor(fi), np.floor(fj)
        di, dj = fi - i0, fj - j0
        i0, j0 = i0.astype(np.intp) % 8, j0.astype(np.intp) % 8
        i1, j1 = (i0 + 1) % 8, (j0 + 1) % 8
        tile = material.tile
        top = tile[i0, j0] + dj * (tile[i0, j1] - tile[i0, j0])
        bottom = tile[i1, j0] + dj * (tile[i1, j1] - tile[i1, j0])
        return top + di * (bottom - top)
    return np.clip(along / max(length, 1.0), 0, 1) * 0.8


def _cylinder_shade(across_t: np.ndarray, perp: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lambert term of a cylinder; ``across_t`` in [-1, 1] across it, ``perp`` its 2D normal."""
    t = np.clip(across_t, -1.0, 1.0)
    nz = np.sqrt(1.0 - t * t)
    return np.clip(t * (perp[0] * light[0] + perp[1] * light[1]) + nz * light[2], 0.0, 1.0)


# ---------------------------------------------------------------------------------------
# Primitives: signed-distance shapes painted on a bounding box

def _paint_capsule(canvas: _Canvas, p0, p1, r0: float, r1: float, material: _Material,
                   light: np.ndarray, part: int = 0, figure: bool = False) -> None:
    """Tapered capsule from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``), image px."""
    p0 = np.asarray(p0[:2], np.float32)
    p1 = np.asarray(p1[:2], np.float32)
    r = max(r0, r1)
    grid = canvas.grid(np.minimum(p0, p1) - r - 1, np.maximum(p0, p1) + r + 1)
    if grid is None:
        return
    x0, y0, xs, ys = grid
    d = p1 - p0
    length = float(math.hypot(d[0], d[1]))
    direction = d / length if length > 1e-6 else np.array([0.0, 1.0], np.float32)
    perp = np.array([-direction[1], direction[0]], np.float32)
    wx, wy = xs - p0[0], ys - p0[1]
    along = wx * direction[0] + wy * direction[1]
    across = wx * perp[0] + wy * perp[1]
    t = np.clip(along / max(length, 1e-6), 0.0, 1.0)
    radius = r0 + (r1 - r0) * t
    dist = np.sqrt((along - t * length) ** 2 + across ** 2)
    alpha = np.clip(radius - dist + 0.5, 0.0, 1.0)
    if not alpha.any():
        return
    shade = _cylinder_shade(across / radius, perp, light)
    colour = _surface_colour(material, along, across, shade, length)
    canvas.paint(x0, y0, alpha, colour, part, figure)


def _paint_polygon(canvas: _Canvas, vertices: np.ndarray, material: _Material,
                   light: np.ndarray, axis: np.ndarray | None = None, part: int = 0,
                   figure: bool = False) -> None:
    """Convex polygon ``(M, 2)`` (any order); ``axis`` is its 'along' direction for texture
    and cylinder shading (the torso's up direction); flat shading when ``None``."""
    hull = _convex_hull(vertices)
    if len(hull) < 3:
        return
    grid = canvas.grid(hull.min(axis=0) - 1, hull.max(axis=0) + 1)
    if grid is None:
        return
    x0, y0, xs, ys = grid
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    offsets = (normals * hull).sum(axis=1)
    dist = (xs[None] * normals[:, 0, None, None] + ys[None] * normals[:, 1, None, None]
            - offsets[:, None, None]).max(axis=0)
    alpha = np.clip(0.5 - dist, 0.0, 1.0)
    if not alpha.any():
        return
    centre = hull.mean(axis=0)
    direction = _unit(axis[:2]) if axis is not None and np.linalg.norm(axis[:2]) > 1e-6 \
        else np.array([0.0, -1.0])
    perp = np.array([-direction[1], direction[0]])
    wx, wy = xs - centre[0], ys - centre[1]
    along = wx * direction[0] + wy * direction[1]
    across = wx * perp[0] + wy * perp[1]
    half = max(float(np.abs((hull - centre) @ perp).max()), 1.0)
    shade = _cylinder_shade(across / half, perp, light) if axis is not None else None
    colour = _surface_colour(material, along, across, shade)
    canvas.paint(x0, y0, alpha, colour, part, figure)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain: hull vertices ``(M, 2)`` counter-clockwise in (x, y)."""
    pts = sorted(set(map(tuple, np.round(np.asarray(points, np.float64)[:, :2], 3))))
    if len(pts) < 3:
        return np.array(pts, np.float32).reshape(-1, 2)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], np.float32)


def _paint_head(canvas: _Canvas, centre, radius: float, frame: np.ndarray, skin: np.ndarray,
                hair: np.ndarray | None, hair_line: tuple, light: np.ndarray, part: int = 0,
                figure: bool = False, face: bool = True) -> None:
    """Shaded sphere with a hair cap and eyes, nose and mouth where the face points.

    ``frame`` columns are the head's (left, up, forward) in image space; ``hair_line`` is
    ``(top, back)``: hair covers normals with ``n.up > top`` or ``n.forward < -back``.
    """
    c = np.asarray(centre[:2], np.float32)
    grid = canvas.grid(c - radius - 1, c + radius + 1)
    if grid is None:
        return
    x0, y0, xs, ys = grid
    a, b = (xs - c[0]) / radius, (ys - c[1]) / radius
    rho2 = a * a + b * b
    alpha = np.clip(radius * (1.0 - np.sqrt(rho2)) + 0.5, 0.0, 1.0)
    if not alpha.any():
        return
    nz = np.sqrt(np.clip(1.0 - rho2, 0.0, 1.0))
    normal = np.stack(np.broadcast_arrays(a, b, nz), axis=-1)      # (h, w, 3) image space
    local = normal @ frame.astype(np.float32)                        # (left, up, forward)
    shade = np.clip(normal @ light.astype(np.float32), 0.0, 1.0)
    colour = np.broadcast_to(skin, normal.shape).copy()
    if face:
        for direction, size, tint in ((_EYE_DIRS[0], 0.13, 0.25), (_EYE_DIRS[1], 0.13, 0.25),
                                      (_MOUTH_DIR, 0.11, 0.55), (_NOSE_DIR, 0.12, 0.85)):
            spot = local @ direction.astype(np.float32) > math.cos(size)
            colour[spot] *= tint
    if hair is not None:
        top, back = hair_line
        cap = (local[..., 1] > top) | (local[..., 2] < -back)
        colour[cap] = hair
    colour *= (0.4 + 0.6 * shade)[..., None]
    canvas.paint(x0, y0, alpha, colour, part, figure)


# ---------------------------------------------------------------------------------------
# Drawing the person

def _draw_figure(rng: np.random.Generator, canvas: _Canvas, fig: _Figure,
                 light: np.ndarray) -> None:
    """Paint all body parts far to near (painter's algorithm on each part's mean depth)."""
    s, body, pts = fig.scale, fig.body, fig.points
    skin = _skin_colour(rng)
    shirt = _random_material(rng, s)
    trousers = _random_material(rng, s)
    shoes = _random_material(rng, s, plain_prob=0.8)
    skin_mat = _Material(skin, skin, "solid", 1.0, 0.0, ambient=rng.uniform(0.35, 0.6))
    sleeve = rng.choice(3, p=(0.2, 0.4, 0.4))      # none, short, long
    legwear = rng.choice(2, p=(0.25, 0.75))        # shorts, long
    hair = None if rng.random() < 0.1 else _hair_colour(rng)
    hair_line = (rng.uniform(0.05, 0.55), rng.uniform(-0.3, 0.35))

    parts = []   # (depth, part id, painter)

    def capsule(part, a, b, r0, r1, material, bias=0.0):
        depth = (a[2] + b[2]) / 2 / s + bias
        parts.append((depth, part, lambda: _paint_capsule(
            canvas, a, b, r0 * s, r1 * s, material, light, part, True)))

    for side, sign in ((0, 1), (1, -1)):
        name = ("left", "right")[side]
        ids = (L_UPPER_ARM, L_FOREARM, L_HAND, L_THIGH, L_SHIN, L_FOOT) if side == 0 else \
              (R_UPPER_ARM, R_FOREARM, R_HAND, R_THIGH, R_SHIN, R_FOOT)
        sh, el, wr = pts[f"{name}_shoulder"], pts[f"{name}_elbow"], pts[f"{name}_wrist"]
        hp, kn, an = pts[f"{name}_hip"], pts[f"{name}_knee"], pts[f"{name}_ankle"]
        capsule(ids[0], sh, el, body.r_upper_arm, body.r_forearm * 1.05,
                shirt if sleeve > 0 else skin_mat, 0.02)
        capsule(ids[1], el, wr, body.r_forearm, body.r_forearm * 0.75,
                shirt if sleeve > 1 else skin_mat, 0.025)
        capsule(ids[2], *fig.hands[side], body.r_hand, body.r_hand * 0.8, skin_mat, 0.03)
        capsule(ids[3], hp, kn, body.r_thigh, body.r_shin * 1.05, trousers, 0.02)
        capsule(ids[4], kn, an, body.r_shin, body.r_shin * 0.7,
                trousers if legwear else skin_mat, 0.025)
        capsule(ids[5], *fig.feet[side], body.r_foot, body.r_foot * 1.1, shoes, 0.03)

    chest_poly, pelvis_poly = _torso_outlines(fig)
    chest_up = fig.frames["chest"][:, 1]
    parts.append((pts["neck_base"][2] / s * 0.5 + pts["pelvis"][2] / s * 0.5, CHEST,
                  lambda: _paint_polygon(canvas, chest_poly, shirt, light, chest_up, CHEST, True)))
    parts.append((pts["pelvis"][2] / s - 0.005, PELVIS,
                  lambda: _paint_polygon(canvas, pelvis_poly, trousers, light,
                                         fig.frames["pelvis"][:, 1], PELVIS, True)))
    capsule(NECK, pts["neck_base"] - 0.3 * body.r_neck * s * fig.frames["chest"][:, 1],
            pts["head"], body.r_neck, body.r_neck * 0.9, skin_mat, 0.01)
    head_r = body.head_r * s
    head_depth = pts["head"][2] / s + 0.04
    parts.append((head_depth, HEAD, lambda: _paint_head(
        canvas, pts["head"], head_r, fig.frames["head"], skin, hair, hair_line, light, HEAD,
        True)))
    for ear, part in ((fig.joints[3], L_EAR), (fig.joints[4], R_EAR)):
        # An ear facing the camera is painted over the head, one facing away under it.
        facing = (ear[2] - pts["head"][2]) / head_r
        parts.append((head_depth + (0.001 if facing > -0.1 else -0.001), part,
                      lambda ear=ear, part=part: _paint_capsule(
                          canvas, ear, ear, 0.22 * head_r, 0.22 * head_r, skin_mat, light,
                          part, True)))
    for _, _, paint in sorted(parts, key=lambda item: (item[0], item[1])):
        paint()


def _torso_outlines(fig: _Figure) -> tuple[np.ndarray, np.ndarray]:
    """Image outlines (points to take the hull of) of the chest and the pelvis.

    Each is the hull of elliptical cross-sections (width x depth) so that a profile view
    still shows a torso of the right thickness.
    """
    s, body, pts = fig.scale, fig.body, fig.points
    chest, pelvis = fig.frames["chest"], fig.frames["pelvis"]
    depth = body.chest_depth * s / 2
    shoulder_half = (body.shoulder_w / 2 + 0.3 * body.r_upper_arm) * s
    waist_half = body.waist_w * s / 2 * 0.85
    hip_half = (body.hip_w / 2 + 0.75 * body.r_thigh) * s
    neck_base, pel = pts["neck_base"], pts["pelvis"]
    shoulder_centre = neck_base - 0.02 * s * chest[:, 1]
    waist_chest = pel + 0.35 * (neck_base - pel)
    chest_pts = np.concatenate([
        _ring(shoulder_centre, chest, shoulder_half, depth * 0.9),
        _ring(shoulder_centre - 0.06 * s * chest[:, 1], chest, shoulder_half, depth),
        _ring(waist_chest, chest, waist_half, depth * 0.95)])
    pelvis_pts = np.concatenate([
        _ring(waist_chest + 0.04 * s * chest[:, 1], pelvis, waist_half, depth * 0.95),
        _ring(pel - 0.02 * s * pelvis[:, 1], pelvis, hip_half, depth),
        _ring(pel - 0.09 * s * pelvis[:, 1], pelvis, hip_half * 0.75, depth * 0.8)])
    return chest_pts[:, :2], pelvis_pts[:, :2]


_RING = np.stack([np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                  np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False))], axis=1)


def _ring(centre: np.ndarray, frame: np.ndarray, half_width: float, half_depth: float):
    """(12, 3) points of the horizontal ellipse of a frame (left x forward) around centre."""
    return centre + half_width * _RING[:, :1] * frame[:, 0] \
        + half_depth * _RING[:, 1:] * frame[:, 2]


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    palette = np.array([[20, 15, 12], [60, 40, 25], [110, 75, 40], [200, 170, 110],
                        [150, 60, 30], [170, 170, 170], [40, 40, 45]], np.float32)
    if rng.random() < 0.1:
        return _random_colour(rng)
    return np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 10, 3), 0, 255)


# ---------------------------------------------------------------------------------------
# Background, distractors, occluders, finishing

def _background(rng: np.random.Generator, size: int, cfg: SyntheticConfig) -> np.ndarray:
    """Smooth random colour field plus flat random shapes; ``(size, size, 3)`` float32."""
    cells = int(rng.integers(2, 7))
    field = np.stack([_random_colour(rng, 0.7) for _ in range(cells * cells)])
    field = field.reshape(cells, cells, 3).astype(np.uint8)
    image = Image.fromarray(field).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(image, "RGBA")
    if rng.random() < 0.4:      # a floor or a wall edge
        horizon = rng.uniform(0.3, 0.9) * size
        tilt = rng.uniform(-0.2, 0.2) * size
        draw.polygon([(0, horizon - tilt), (size, horizon + tilt), (size, size), (0, size)],
                     fill=_rgba(rng, alpha=(150, 255)))
    for _ in range(int(rng.integers(cfg.clutter_range[0], cfg.clutter_range[1] + 1))):
        _draw_flat_shape(rng, draw, size)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    return np.asarray(image, dtype=np.float32).copy()


def _draw_flat_shape(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int) -> None:
    kind = rng.random()
    fill = _rgba(rng)
    x, y = rng.uniform(-0.1, 1.1, 2) * size
    w, h = (rng.uniform(0.02, 0.5, 2) ** 1.3) * size
    if kind < 0.25:
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        draw.polygon([tuple(p) for p in corners @ _rot2(rng.uniform(0, 180)).T + (x, y)],
                     fill=fill)
    elif kind < 0.45:
        draw.ellipse([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=fill)
    elif kind < 0.6:
        n = int(rng.integers(3, 7))
        pts = np.array([x, y]) + rng.normal(0, 1, (n, 2)) * (w, h)
        draw.polygon([tuple(p) for p in pts], fill=fill)
    elif kind < 0.85:
        pts = np.array([x, y]) + np.cumsum(rng.normal(0, 0.15, (int(rng.integers(2, 5)), 2)),
                                           axis=0) * size
        draw.line([tuple(p) for p in pts], fill=fill, width=int(rng.integers(1, 10)),
                  joint="curve")
    else:   # a striped patch
        angle, spacing = rng.uniform(0, 180), rng.uniform(3, 12)
        along = _rot2(angle) @ np.array([1.0, 0.0])
        across = np.array([-along[1], along[0]])
        width = int(rng.integers(1, max(2, int(spacing * 0.6))))
        for k in range(int(max(w, h) / spacing)):
            c = np.array([x, y]) + (k * spacing - max(w, h) / 2) * across
            draw.line([tuple(c - along * w / 2), tuple(c + along * w / 2)], fill=fill,
                      width=width)


def _rgba(rng: np.random.Generator, alpha=(120, 255)) -> tuple:
    r, g, b = (int(c) for c in _random_colour(rng))
    return r, g, b, int(rng.integers(alpha[0], alpha[1] + 1))


def _rot2(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s], [s, c]])


def _draw_distractors(rng: np.random.Generator, canvas: _Canvas, fig: _Figure,
                      light: np.ndarray, cfg: SyntheticConfig) -> None:
    """Limb-like capsule chains, shaded blobs and head-like spheres behind the person."""
    size, s = canvas.size, fig.scale
    for _ in range(int(rng.integers(cfg.distractor_range[0], cfg.distractor_range[1] + 1))):
        kind = rng.random()
        if kind < 0.6:
            material = _random_material(rng, s, _skin_colour(rng) if rng.random() < 0.3 else None)
            point = rng.uniform(-0.1, 1.1, 2) * size
            radius = s * rng.uniform(0.02, 0.06)
            angle = rng.uniform(0, 2 * math.pi)
            for _ in range(int(rng.integers(1, 4))):
                angle += rng.normal(0, 0.8)
                nxt = point + s * rng.uniform(0.1, 0.25) * np.array([math.cos(angle),
                                                                     math.sin(angle)])
                r_next = radius * rng.uniform(0.7, 1.0)
                _paint_capsule(canvas, point, nxt, radius, r_next, material, light)
                point, radius = nxt, r_next
        elif kind < 0.85:
            _paint_random_solid(rng, canvas, rng.uniform(0, size, 2),
                                s * rng.uniform(0.1, 0.4), light, 0)
        else:
            frame = _rot_y(rng.uniform(0, 360)) @ _rot_x(rng.uniform(-40, 40))
            _paint_head(canvas, rng.uniform(0, size, 2), s * rng.uniform(0.04, 0.09),
                        np.diag([1.0, -1.0, 1.0]) @ frame, _skin_colour(rng),
                        _hair_colour(rng), (rng.uniform(0, 0.5), rng.uniform(-0.3, 0.3)),
                        light, face=False)


def _paint_random_solid(rng: np.random.Generator, canvas: _Canvas, centre: np.ndarray,
                        extent: float, light: np.ndarray, part: int) -> None:
    """A random box, ellipse, convex blob or long bar, textured and shaded."""
    material = _random_material(rng, extent * 3)
    kind = rng.random()
    if kind < 0.3:
        w, h = extent * rng.uniform(0.3, 1.0, 2)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        poly = corners @ _rot2(rng.uniform(0, 180)).T + centre
        _paint_polygon(canvas, poly, material, light, None, part)
    elif kind < 0.55:
        w, h = extent * rng.uniform(0.25, 0.6, 2)
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        poly = np.stack([w * np.cos(t), h * np.sin(t)], axis=1) @ _rot2(rng.uniform(0, 180)).T
        _paint_polygon(canvas, poly + centre, material, light,
                       np.array([0.0, -1.0]) if rng.random() < 0.5 else None, part)
    elif kind < 0.75:
        poly = centre + rng.normal(0, extent / 3, (int(rng.integers(4, 9)), 2))
        _paint_polygon(canvas, poly, material, light, None, part)
    else:
        angle = rng.uniform(0, math.pi)
        half = extent * rng.uniform(0.8, 2.0) * np.array([math.cos(angle), math.sin(angle)])
        radius = extent * rng.uniform(0.04, 0.15)
        _paint_capsule(canvas, centre - half, centre + half, radius, radius, material, light,
                       part)


def _draw_occluders(rng: np.random.Generator, canvas: _Canvas, fig: _Figure,
                    light: np.ndarray, cfg: SyntheticConfig) -> None:
    if rng.random() >= cfg.occluder_prob:
        return
    x0, y0, x1, y1 = fig.extent
    extent = max(x1 - x0, y1 - y0)
    for k in range(int(rng.integers(1, cfg.max_occluders + 1))):
        # Centre on a random joint so that the object really hides some of the body.
        anchor = fig.joints[rng.integers(NUM_JOINTS), :2] + rng.normal(0, 0.1 * extent, 2)
        _paint_random_solid(rng, canvas, anchor, extent * rng.uniform(0.15, 0.45), light,
                            OCCLUDER + k)


def _finish(rng: np.random.Generator, image: np.ndarray, cfg: SyntheticConfig) -> np.ndarray:
    """Camera-like colour cast, contrast, noise and blur; returns uint8."""
    gain = rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    offset = rng.uniform(-20, 20)
    image = image * gain + offset
    noise = rng.uniform(*cfg.noise_std_range)
    if noise > 1.0:
        image += rng.standard_normal(image.shape, dtype=np.float32) * noise
    out = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur_prob:
        out = np.asarray(Image.fromarray(out).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2))))
    return out


# ---------------------------------------------------------------------------------------
# Labels

def _keypoint_visibility(canvas: _Canvas, fig: _Figure) -> np.ndarray:
    """``(17, 3)`` float32 keypoints with COCO visibility from the top-part buffer."""
    size = canvas.size
    keypoints = np.zeros((NUM_JOINTS, 3), np.float32)
    head = fig.points["head"]
    head_r = fig.scale * fig.body.head_r
    # Decide on float32 values, the precision the keypoints are returned in.
    for j, (x, y, z) in enumerate(fig.joints.astype(np.float32)):
        if not (-0.5 <= x < size - 0.5 and -0.5 <= y < size - 0.5):
            continue            # outside: not labelled, x = y = 0
        px, py = x, y
        if j < 5:
            # Face points sit on the sphere's rim in profile: probe just inside the head.
            px, py = head[0] + 0.8 * (x - head[0]), head[1] + 0.8 * (y - head[1])
        top = int(canvas.top[_pixel(py, size), _pixel(px, size)])
        hidden = top != 0 and top not in _OWN_PARTS[j]
        if j < 5:
            # The face point's normal must face the camera; the nose and the ears stick
            # out, so they stay visible a little past the profile.
            facing = (z - head[2]) / head_r
            hidden |= facing < (-0.15, 0.05, 0.05, -0.25, -0.25)[j]
        elif j in (5, 6, 11, 12):
            # A shoulder or hip on the far side of the torso is behind it.
            centre = fig.points["neck_base"] if j < 7 else fig.points["pelvis"]
            offset = np.linalg.norm(fig.joints[j] - centre) + 1e-6
            hidden |= (z - centre[2]) < -0.8 * offset
        keypoints[j] = (x, y, 1.0 if hidden else 2.0)
    return keypoints


def _pixel(coordinate: float, size: int) -> int:
    """Index of the pixel whose centre is nearest (pixel centres at integers)."""
    return min(max(int(math.floor(coordinate + 0.5)), 0), size - 1)


def _figure_box(canvas: _Canvas, keypoints: np.ndarray):
    """Box ``(x, y, w, h)`` of the figure's pixels and labelled joints, and its pixel area."""
    size = canvas.size
    covered = canvas.coverage > 0.5
    area = float(canvas.coverage.sum())
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    cols, rows = np.flatnonzero(covered.any(axis=0)), np.flatnonzero(covered.any(axis=1))
    if len(cols):
        lo = np.array([cols[0] - 0.5, rows[0] - 0.5])
        hi = np.array([cols[-1] + 0.5, rows[-1] + 0.5])
    labelled = keypoints[keypoints[:, 2] > 0, :2]
    if len(labelled):
        lo = np.minimum(lo, labelled.min(axis=0))
        hi = np.maximum(hi, labelled.max(axis=0))
    if not np.all(np.isfinite(lo)):
        # Nothing of the person is in the image; degenerate but valid box.
        return (-0.5, -0.5, float(size), float(size)), 0.0
    lo = np.clip(lo, -0.5, size - 0.5)
    hi = np.clip(hi, -0.5, size - 0.5)
    hi = np.maximum(hi, lo + 1.0)
    return (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])), area
