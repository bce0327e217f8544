"""Materials: clothing and skin colours, patterns and cylinder shading."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
