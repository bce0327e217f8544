"""The canvas parts are painted on: RGB, the id of the top part at every pixel (which
decides keypoint visibility), the figure's coverage; and the part ids."""

from __future__ import annotations

import math

import numpy as np


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
