"""Pose pictures: what is drawn, in which colours."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from kpose.skeletons import LSP_14
from kpose.viz import SIDE_COLOURS, draw_pose, plot_sample_grid


def _pose() -> np.ndarray:
    rng = np.random.default_rng(0)
    keypoints = np.concatenate([rng.uniform(10, 90, (14, 2)), np.full((14, 1), 2.0)], axis=1)
    return keypoints.astype(np.float32)


def _line_colours(ax):
    return [to_hex(line.get_color()) for line in ax.lines if line.get_linestyle() == "-"]


def test_draw_pose_draws_every_bone_and_joint_with_side_colours():
    figure = draw_pose(np.zeros((100, 100, 3), np.uint8), _pose(), LSP_14)
    ax = figure.axes[0]
    bones = _line_colours(ax)
    assert len(bones) == len(LSP_14.bones)
    joints = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(joints) == 14
    left_wrist = joints[LSP_14.index("left_wrist")]
    right_wrist = joints[LSP_14.index("right_wrist")]
    assert to_hex(left_wrist.get_color()) == SIDE_COLOURS["left"]
    assert to_hex(right_wrist.get_color()) == SIDE_COLOURS["right"]
    assert SIDE_COLOURS["left"] in bones and SIDE_COLOURS["right"] in bones


def test_unlabelled_joints_and_their_bones_are_not_drawn():
    keypoints = _pose()
    keypoints[LSP_14.index("left_wrist")] = 0
    ax = draw_pose(np.zeros((100, 100, 3), np.uint8), keypoints, LSP_14).axes[0]
    assert len([line for line in ax.lines if line.get_marker() == "o"]) == 13
    assert len(_line_colours(ax)) == len(LSP_14.bones) - 1


def test_scores_set_joint_opacity():
    scores = np.linspace(0.2, 1.0, 14)
    ax = draw_pose(np.zeros((100, 100, 3), np.uint8), _pose(), LSP_14, scores=scores).axes[0]
    alphas = [line.get_alpha() for line in ax.lines if line.get_marker() == "o"]
    np.testing.assert_allclose(alphas, scores)


def test_sample_grid_has_one_axes_per_image_and_saves_png(tmp_path):
    images = [np.zeros((100, 100, 3), np.uint8)] * 5
    figure = plot_sample_grid(images, [_pose()] * 5, LSP_14, columns=3)
    visible = [ax for ax in figure.axes if ax.images]
    assert len(figure.axes) == 6 and len(visible) == 5
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_wrong_keypoint_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(14, 3\) for skeleton 'lsp_14'"):
        draw_pose(np.zeros((10, 10, 3)), np.zeros((17, 3)), LSP_14)


def test_relative_scores_scale_by_the_best_joint():
    from kpose.viz import relative_scores

    np.testing.assert_allclose(relative_scores(np.array([0.1, 0.2, 0.05])), [0.5, 1.0, 0.25])
    np.testing.assert_allclose(relative_scores(np.array([0.0, -1.0])), [1.0, 1.0])
