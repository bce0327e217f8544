"""Pose pictures: what is drawn, in which colours."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

from kpose.skeletons import LSP_14
from kpose.viz import SIDE_COLOURS, draw_pose, plot_sample_grid, save_figure


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


def test_a_prediction_without_visibility_draws_every_joint_solid():
    prediction = _pose()[:, :2]
    prediction[LSP_14.index("left_wrist")] = 0  # a score column would hide it; x, y does not
    ax = draw_pose(np.zeros((100, 100, 3), np.uint8), prediction, LSP_14).axes[0]
    joints = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(joints) == 14
    assert all(line.get_markerfacecolor() != "none" for line in joints)


def test_save_figure_writes_the_png_in_place_of_a_temporary(tmp_path):
    figure = draw_pose(np.zeros((100, 100, 3), np.uint8), _pose(), LSP_14)
    path = save_figure(figure, tmp_path / "plots" / "pose.png", dpi=50)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["pose.png"]


def test_sample_grid_has_one_axes_per_image_and_saves_png(tmp_path):
    images = [np.zeros((100, 100, 3), np.uint8)] * 5
    figure = plot_sample_grid(images, [_pose()] * 5, LSP_14, columns=3)
    visible = [ax for ax in figure.axes if ax.images]
    assert len(figure.axes) == 6 and len(visible) == 5
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_wrong_keypoint_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(14, 2\) \(x, y\) for skeleton 'lsp_14'"):
        draw_pose(np.zeros((10, 10, 3)), np.zeros((17, 3)), LSP_14)


def test_relative_scores_scale_by_the_best_joint():
    from kpose.viz import relative_scores

    np.testing.assert_allclose(relative_scores(np.array([0.1, 0.2, 0.05])), [0.5, 1.0, 0.25])
    np.testing.assert_allclose(relative_scores(np.array([0.0, -1.0])), [1.0, 1.0])


def test_belief_maps_grid_has_a_row_per_joint_and_a_column_per_stage():
    from kpose.viz import plot_belief_maps

    maps = [np.random.default_rng(t).uniform(0, 1, (8, 8, 15)).astype(np.float32)
            for t in range(3)]
    figure = plot_belief_maps(np.zeros((64, 64, 3)), {"stage_1": maps[0], "stage_2": maps[1],
                                                      "stage_3": maps[2]}, LSP_14,
                              joints=["left_wrist", "right_elbow"])
    assert len(figure.axes) == 6
    assert [ax.get_title() for ax in figure.axes[:3]] == ["stage 1", "stage 2", "stage 3"]
    overlay = figure.axes[4].images[1]  # row 2 (right elbow), stage 2
    np.testing.assert_array_equal(overlay.get_array(), maps[1][..., LSP_14.index("right_elbow")])
    assert overlay.get_extent() == [-0.5, 63.5, 63.5, -0.5]  # stretched over the input


def test_pck_curve_draws_a_line_per_method_and_bars_per_joint():
    from kpose.viz import plot_pck_curve

    thresholds = np.linspace(0, 0.5, 11)
    per_joint = np.tile(np.linspace(0, 1, 11)[:, None], (1, 14))
    curves = {"stage 1": (thresholds, thresholds * 2, per_joint * 0.5),
              "stage 2": (thresholds, thresholds, per_joint)}
    left, right = plot_pck_curve(curves, LSP_14).axes
    assert len(left.lines) == 2 and left.get_xlim() == (0, 0.5) and left.get_ylim() == (0, 1)
    assert len(right.patches) == 2 * 14
    heights = sorted({round(p.get_height(), 6) for p in right.patches})
    assert heights == [0.2, 0.4]  # per-joint values at the 0.2 threshold of each curve


def test_history_plots_every_stage_loss_and_validation_pck(tmp_path):
    from kpose.viz import plot_history

    (tmp_path / "metrics.csv").write_text(
        "epoch,loss,stage_1_loss,stage_2_loss,val_pck@0.2\n"
        "0,10,6,4,0.1\n1,8,5,3,0.2\n2,6,4,2,0.3\n")
    losses, accuracy = plot_history(tmp_path).axes
    assert [line.get_label() for line in losses.lines] == ["loss", "stage_1_loss",
                                                           "stage_2_loss"]
    np.testing.assert_allclose(accuracy.lines[0].get_ydata(), [0.1, 0.2, 0.3])
    assert losses.get_yscale() == "log"
    # A likelihood loss (DeepPose's RLE) falls below zero: still drawn, on a linear-near-0
    # axis, rather than dropped by a log one.
    (tmp_path / "metrics.csv").write_text("epoch,loss\n0,12.0\n1,-3.5\n2,-20.0\n")
    losses, _ = plot_history(tmp_path).axes
    assert losses.get_yscale() == "symlog"
    np.testing.assert_allclose(losses.lines[0].get_ydata(), [12.0, -3.5, -20.0])
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        plot_history(tmp_path / "nowhere")


def test_refinement_draws_one_box_per_joint_for_each_refiner_stage():
    from kpose.viz import plot_refinement

    stage1 = _pose()[:, :2]
    figure = plot_refinement(np.zeros((100, 100, 3)), [stage1, stage1 + 1, stage1 + 2],
                             LSP_14, sigma=0.5)
    assert [len(ax.patches) for ax in figure.axes] == [0, 14, 14]
    a, b = LSP_14.torso
    side = 0.5 * np.hypot(*(stage1[a] - stage1[b]))
    assert figure.axes[1].patches[0].get_width() == pytest.approx(side)


def test_refinement_draws_rows_of_a_larger_figure_with_titles():
    from matplotlib.figure import Figure

    from kpose.viz import plot_refinement

    stage1 = _pose()[:, :2]
    grid = Figure().subplots(2, 2)
    for row, shift in zip(grid, (1, 3)):
        drawn = plot_refinement(np.zeros((100, 100, 3)), [stage1, stage1 + shift], LSP_14,
                                axes=row, titles=["first", f"moved {shift}"],
                                ground_truth=_pose())
    assert drawn is grid[0, 0].figure and len(drawn.axes) == 4
    assert [ax.get_title() for ax in drawn.axes] == ["first", "moved 1", "first", "moved 3"]
    assert [len(ax.patches) for ax in drawn.axes] == [0, 14, 0, 14]
    with pytest.raises(ValueError, match="one title and one axes per stage"):
        plot_refinement(np.zeros((100, 100, 3)), [stage1, stage1], LSP_14, titles=["one"])
