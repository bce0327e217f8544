"""Pictures of poses (matplotlib only here). Every function returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, not pyplot, so they work
headless, in notebooks and in threads alike; ``fig.savefig("x.png")`` writes a PNG.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kpose.files import atomic_path
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["SIDE_COLOURS", "save_figure", "draw_pose", "plot_sample_grid", "relative_scores",
           "plot_belief_maps", "plot_pck_curve", "plot_history", "plot_refinement"]

# Person's left, right and midline: one colour each, the same in every kpose picture.
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "centre": "#2ca02c"}


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Write ``figure`` to ``path`` (format from its suffix, e.g. PNG) through a temporary
    file that is renamed, so an interrupted write never leaves half a picture; parent
    folders are created. Returns ``path``."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    return path


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton | str, *,
              ax=None, scores: np.ndarray | None = None, title: str | None = None,
              ground_truth: np.ndarray | None = None) -> Figure:
    """Draw one pose over its image.

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float in 0..255.
        keypoints: ``(K, 3)`` ``(x, y, v)`` in image pixels; joints with ``v == 0`` are not
            drawn, occluded ones (``v == 1``) are drawn hollow. A prediction is ``(K, 2)``
            ``(x, y)`` (every joint drawn; pass its scores as ``scores``), since the third
            column :func:`kpose.predict` returns is a score, not a visibility.
        skeleton: the keypoints' layout; bones are coloured by side (:data:`SIDE_COLOURS`).
        ax: draw into this axes instead of a new figure.
        scores: ``(K,)`` confidences in [0, 1]; a joint's opacity follows its score.
        title: axes title.
        ground_truth: ``(K, 3)`` true keypoints, drawn as white crosses for comparison.

    Returns:
        The figure holding the axes.
    """
    skeleton = get_skeleton(skeleton)
    keypoints = np.asarray(keypoints, np.float32)
    if keypoints.shape == (skeleton.num_joints, 2):
        keypoints = np.concatenate([keypoints, np.full((len(keypoints), 1), 2.0)], axis=1)
    if keypoints.shape != (skeleton.num_joints, 3):
        raise ValueError(f"keypoints must have shape ({skeleton.num_joints}, 3) (x, y, v) or "
                         f"({skeleton.num_joints}, 2) (x, y) for skeleton {skeleton.name!r}, "
                         f"got {keypoints.shape}")
    if ax is None:
        height, width = np.asarray(image).shape[:2]
        figure = Figure(figsize=(4.0, 4.0 * height / max(width, 1)))
        ax = figure.add_axes([0, 0, 1, 1 if title is None else 0.93])
    figure = ax.figure
    ax.imshow(np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8))
    ax.set_axis_off()
    alphas = np.ones(skeleton.num_joints) if scores is None else np.clip(scores, 0.15, 1.0)
    shown = keypoints[:, 2] > 0
    for a, b in skeleton.bones:
        if shown[a] and shown[b]:
            side = skeleton.side(a) if skeleton.side(a) == skeleton.side(b) else "centre"
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], "-", lw=2.0,
                    color=SIDE_COLOURS[side], alpha=float(min(alphas[a], alphas[b])))
    for k in np.flatnonzero(shown):
        colour = SIDE_COLOURS[skeleton.side(int(k))]
        hollow = keypoints[k, 2] == 1
        ax.plot(keypoints[k, 0], keypoints[k, 1], "o", ms=4.5, mew=1.5, color=colour,
                mfc="none" if hollow else colour, alpha=float(alphas[k]))
    if ground_truth is not None:
        truth = np.asarray(ground_truth, np.float32)
        labelled = truth[:, 2] > 0
        ax.plot(truth[labelled, 0], truth[labelled, 1], "x", ms=5, color="white", mew=1.5)
    if title:
        ax.set_title(title, fontsize=8)
    return figure


def relative_scores(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their maximum: opacities that keep a low-confidence pose visible
    while its weakest joints still fade (``(K,)`` in, ``(K,)`` in [0, 1] out)."""
    scores = np.clip(np.asarray(scores, np.float64), 0.0, None)
    top = scores.max() if scores.size else 0.0
    return scores / top if top > 0 else np.ones_like(scores)


def plot_sample_grid(images: Sequence[np.ndarray], keypoints: Sequence[np.ndarray],
                     skeleton: Skeleton | str, *, columns: int = 4,
                     titles: Sequence[str] | None = None) -> Figure:
    """A grid of images with their poses, for looking at a data set or a batch.

    Args:
        images: ``N`` images ``(H, W, 3)``.
        keypoints: ``N`` arrays ``(K, 3)`` in each image's pixels.
        skeleton: the layout of the keypoints.
        columns: images per row.
        titles: optional ``N`` captions.

    Returns:
        A figure with one axes per image.
    """
    if len(images) != len(keypoints):
        raise ValueError(f"got {len(images)} images but {len(keypoints)} keypoint arrays")
    if not images:
        raise ValueError("images is empty: nothing to draw")
    rows = int(np.ceil(len(images) / columns))
    figure = Figure(figsize=(2.5 * columns, 2.5 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(images):
            ax.set_axis_off()
            continue
        draw_pose(images[i], keypoints[i], skeleton, ax=ax,
                  title=None if titles is None else titles[i])
    figure.tight_layout(pad=0.3)
    return figure


def plot_belief_maps(image: np.ndarray, stage_maps: Sequence[np.ndarray] | Mapping[str, np.ndarray],
                     skeleton: Skeleton | str, *, joints: Sequence[str | int] | None = None
                     ) -> Figure:
    """Belief maps of chosen joints across CPM stages, over the input image (the paper's
    Figure 7: how a wrist's map sharpens stage by stage).

    Args:
        image: ``(H, W, 3)`` model input, 0..255.
        stage_maps: one ``(h, w, K + 1)`` array per stage (a list, or a dict of
            ``stage_N`` outputs for one sample); maps are stretched over the image.
        skeleton: names the joints.
        joints: names or indices to show (default: the wrists and elbows present).

    Returns:
        A figure with one row per joint and one column per stage.
    """
    skeleton = get_skeleton(skeleton)
    if isinstance(stage_maps, Mapping):
        names = sorted(stage_maps, key=lambda n: int(str(n).split("_")[-1]))
        stage_maps = [stage_maps[n] for n in names]
    stage_maps = [np.asarray(m, np.float32) for m in stage_maps]
    if not stage_maps:
        raise ValueError("stage_maps is empty: give one belief-map array per stage")
    for t, maps in enumerate(stage_maps):
        if maps.ndim != 3 or maps.shape[-1] != skeleton.num_joints + 1:
            raise ValueError(f"stage {t + 1} maps must be (h, w, {skeleton.num_joints + 1}), "
                             f"got {maps.shape}")
    if joints is None:
        joints = [n for n in ("left_wrist", "right_wrist", "left_elbow", "right_elbow")
                  if n in skeleton.joint_names] or [0]
    indices = [skeleton.index(j) if isinstance(j, str) else int(j) for j in joints]
    height, width = np.asarray(image).shape[:2]
    figure = Figure(figsize=(2.2 * len(stage_maps), 2.2 * len(indices)))
    axes = figure.subplots(len(indices), len(stage_maps), squeeze=False)
    shown = np.clip(np.asarray(image, np.float32), 0, 255).astype(np.uint8)
    for row, joint in enumerate(indices):
        for column, maps in enumerate(stage_maps):
            ax = axes[row, column]
            ax.imshow(shown)
            ax.imshow(np.clip(maps[..., joint], 0, None), cmap="inferno", alpha=0.6,
                      extent=(-0.5, width - 0.5, height - 0.5, -0.5), vmin=0.0,
                      vmax=max(float(maps[..., joint].max()), 1e-6))
            ax.set_axis_off()
            if row == 0:
                ax.set_title(f"stage {column + 1}", fontsize=9)
            if column == 0:
                ax.text(-0.08, 0.5, skeleton.joint_names[joint], rotation=90, fontsize=8,
                        va="center", ha="right", transform=ax.transAxes)
    # Room on the left for the joint names (tight_layout ignores text beside hidden axes).
    figure.tight_layout(pad=0.3, rect=(0.3 / figure.get_figwidth(), 0, 1, 1))
    return figure


def plot_pck_curve(curves: Mapping[str, tuple], skeleton: Skeleton | str, *,
                   metric: str = "PCK", bar_threshold: float = 0.2) -> Figure:
    """PCK (or PDJ) against the normalised threshold, one line per method or stage, and
    per-joint bars at one threshold (the papers' Figures 3-6).

    Args:
        curves: ``{label: (thresholds (T,), overall (T,), per_joint (T, K))}``, as
            :func:`kpose.metrics.pck_curve` returns them.
        skeleton: names the joints of the bars.
        metric: axis label (``"PCK"``, ``"PDJ"``, ``"PCKh"``).
        bar_threshold: threshold of the per-joint bars (the nearest one in each curve).

    Returns:
        A figure: curves on the left (x from 0 to the largest threshold, y from 0 to 1),
        grouped per-joint bars on the right.
    """
    skeleton = get_skeleton(skeleton)
    if not curves:
        raise ValueError("curves is empty: give at least one (thresholds, overall, per_joint)")
    figure = Figure(figsize=(11, 4))
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    width = 0.8 / len(curves)
    largest = 0.0
    for i, (label, (thresholds, overall, per_joint)) in enumerate(curves.items()):
        thresholds, overall = np.asarray(thresholds), np.asarray(overall)
        per_joint = np.asarray(per_joint)
        if per_joint.shape != (len(thresholds), skeleton.num_joints):
            raise ValueError(f"curve {label!r}: per_joint must be (T, {skeleton.num_joints}), "
                             f"got {per_joint.shape}")
        largest = max(largest, float(thresholds.max()))
        left.plot(thresholds, overall, "-", lw=2, label=label)
        at = int(np.argmin(np.abs(thresholds - bar_threshold)))
        positions = np.arange(skeleton.num_joints) + (i - (len(curves) - 1) / 2) * width
        right.bar(positions, np.nan_to_num(per_joint[at]), width=width, label=label)
    left.set_xlim(0, largest)
    left.set_ylim(0, 1)
    left.set_xlabel("normalised distance threshold")
    left.set_ylabel(metric)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.set_xticks(np.arange(skeleton.num_joints))
    right.set_xticklabels(skeleton.joint_names, rotation=60, ha="right", fontsize=7)
    right.set_ylim(0, 1)
    right.set_ylabel(f"{metric}@{bar_threshold:g} per joint")
    figure.tight_layout()
    return figure


def plot_history(run_dir: str | Path) -> Figure:
    """Losses per stage and validation PCK over the epochs of a run (its ``metrics.csv``).

    Returns:
        A figure: the total and every ``stage_N_loss`` on the left (log scale), the
        validation PCK@0.2 on the right when the run had validation data.
    """
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.csv in {run_dir}: is it a kpose run folder?")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path} has no epochs yet")
    epochs = [int(r["epoch"]) + 1 for r in rows]

    def column(name):
        return [float(r[name]) if r.get(name) not in (None, "", "nan") else np.nan for r in rows]

    figure = Figure(figsize=(10, 3.8))
    losses, accuracy = figure.subplots(1, 2)
    names = ["loss"] + sorted((n for n in rows[0] if n.endswith("_loss") and n != "loss"),
                              key=lambda n: [int(p) if p.isdigit() else p for p in n.split("_")])
    series = {name: column(name) for name in names}
    for name, values in series.items():
        losses.plot(epochs, values, "-o", ms=3, lw=2 if name == "loss" else 1, label=name)
    # a likelihood loss (DeepPose's RLE) goes below zero, where a log axis has no place
    values = np.concatenate(list(series.values()))
    finite = values[np.isfinite(values)]
    losses.set_yscale("log" if finite.size and finite.min() > 0 else "symlog")
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    losses.legend(fontsize=8)
    if "val_pck@0.2" in rows[0]:
        accuracy.plot(epochs, column("val_pck@0.2"), "-o", ms=3, color="#2ca02c")
        accuracy.set_ylim(0, 1)
    accuracy.set_xlabel("epoch")
    accuracy.set_ylabel("validation PCK@0.2")
    for ax in (losses, accuracy):
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def plot_refinement(image: np.ndarray, stage_keypoints: Sequence[np.ndarray],
                    skeleton: Skeleton | str, *, sigma: float = 2.0, axes=None,
                    titles: Sequence[str] | None = None,
                    ground_truth: np.ndarray | None = None) -> Figure:
    """DeepPose's cascade: each stage's estimate, and the boxes refiner stages cropped.

    Args:
        image: ``(H, W, 3)``, 0..255.
        stage_keypoints: one ``(K, 2)`` or ``(K, 3)`` estimate per stage, image pixels.
        skeleton: its ``torso`` gives the box side (``sigma`` x torso diameter of the
            previous stage's estimate, as the refiners crop).
        sigma: the cascade's box size in torso diameters.
        axes: draw into these, one per stage (a row of a larger figure), instead of a new
            figure.
        titles: one per stage (default ``"stage 1"``, ...).
        ground_truth: ``(K, 3)`` true keypoints, drawn in every panel as white crosses.

    Returns:
        The figure holding the panels, one per stage; panel ``s > 1`` shows the boxes
        around the stage ``s - 1`` joints and the stage ``s`` estimate.
    """
    skeleton = get_skeleton(skeleton)
    if not stage_keypoints:
        raise ValueError("stage_keypoints is empty: give one (K, 2) estimate per stage")
    stages = [np.asarray(k, np.float32)[:, :2] for k in stage_keypoints]
    if titles is None:
        titles = [f"stage {s + 1}" for s in range(len(stages))]
    if len(titles) != len(stages) or (axes is not None and len(axes) != len(stages)):
        raise ValueError(f"give one title and one axes per stage ({len(stages)})")
    own = axes is None
    if own:
        figure = Figure(figsize=(3.2 * len(stages), 3.4))
        axes = figure.subplots(1, len(stages), squeeze=False)[0]
    else:
        figure = axes[0].figure
    a, b = skeleton.torso
    for s, (ax, points) in enumerate(zip(axes, stages)):
        shown = np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1)
        draw_pose(image, shown, skeleton, ax=ax, title=titles[s], ground_truth=ground_truth)
        if s == 0:
            continue
        previous = stages[s - 1]
        side = sigma * float(np.hypot(*(previous[a] - previous[b])))
        for x, y in previous:
            ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, fill=False,
                                   lw=0.7, ec="white", alpha=0.6))
    if own:
        figure.tight_layout(pad=0.3)
    return figure
