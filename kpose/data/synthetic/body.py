"""The body: proportions, a pose inside human joint limits, and its 3D skeleton."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kpose.data.synthetic.config import SyntheticConfig


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
