"""The view: camera direction, scale and position of the figure in the image, and the
light."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kpose.data.synthetic.body import _Body, _Skeleton3D, _rot_x, _rot_y, _rot_z, _unit
from kpose.data.synthetic.config import SyntheticConfig


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
