"""Labels: each keypoint's COCO visibility, read from the top-part buffer, and the
person box."""

from __future__ import annotations

import math

import numpy as np

from kpose.data.synthetic.canvas import _Canvas, _OWN_PARTS
from kpose.data.synthetic.config import NUM_JOINTS
from kpose.data.synthetic.view import _Figure


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
