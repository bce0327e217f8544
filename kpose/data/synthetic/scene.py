"""One image: sample a body, pose, view and light, paint background, distractors,
figure and occluders, and label the keypoints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kpose.data.synthetic.background import (_background, _draw_distractors, _draw_occluders,
                                             _finish)
from kpose.data.synthetic.body import _pose_skeleton, _sample_body, _sample_pose
from kpose.data.synthetic.canvas import _Canvas
from kpose.data.synthetic.config import SyntheticConfig
from kpose.data.synthetic.figure import _draw_figure
from kpose.data.synthetic.labels import _figure_box, _keypoint_visibility
from kpose.data.synthetic.view import _place_figure, _sample_light


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
