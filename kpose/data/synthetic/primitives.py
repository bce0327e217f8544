"""Primitives: signed-distance shapes (capsules, polygons, the head) painted
anti-aliased on a bounding box of the canvas."""

from __future__ import annotations

import math

import numpy as np

from kpose.data.synthetic.body import _unit
from kpose.data.synthetic.canvas import _Canvas
from kpose.data.synthetic.materials import _Material, _cylinder_shade, _surface_colour
from kpose.data.synthetic.view import _EYE_DIRS, _MOUTH_DIR, _NOSE_DIR


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
