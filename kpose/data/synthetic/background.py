"""Background, distractor figures, occluders in front, and the camera-like finish
(colour cast, contrast, noise, blur)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from kpose.data.synthetic.body import _rot_x, _rot_y
from kpose.data.synthetic.canvas import OCCLUDER, _Canvas
from kpose.data.synthetic.config import NUM_JOINTS, SyntheticConfig
from kpose.data.synthetic.figure import _hair_colour
from kpose.data.synthetic.materials import _random_colour, _random_material, _skin_colour
from kpose.data.synthetic.primitives import _paint_capsule, _paint_head, _paint_polygon
from kpose.data.synthetic.view import _Figure


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
