"""Drawing the person: body parts painted far to near, with hair and face."""

from __future__ import annotations

import numpy as np

from kpose.data.synthetic.canvas import (CHEST, HEAD, L_EAR, L_FOOT, L_FOREARM, L_HAND, L_SHIN,
                                         L_THIGH, L_UPPER_ARM, NECK, PELVIS, R_EAR, R_FOOT,
                                         R_FOREARM, R_HAND, R_SHIN, R_THIGH, R_UPPER_ARM,
                                         _Canvas)
from kpose.data.synthetic.materials import (_Material, _random_colour, _random_material,
                                            _skin_colour)
from kpose.data.synthetic.primitives import _paint_capsule, _paint_head, _paint_polygon
from kpose.data.synthetic.view import _Figure


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
