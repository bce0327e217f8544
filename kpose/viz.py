"""Pictures of poses (matplotlib only here). Every function returns a ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` directly, not pyplot, so they work
headless, in notebooks and in threads alike; ``fig.savefig("x.png")`` writes a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["SIDE_COLOURS", "draw_pose", "plot_sample_grid", "relative_scores"]

# Person's left, right and midline: one colour each, the same in every kpose picture.
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "centre": "#2ca02c"}


def draw_pose(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton | str, *,
              ax=None, scores: np.ndarray | None = None, title: str | None = None,
              ground_truth: np.ndarray | None = None) -> Figure:
    """Draw one pose over its image.

    Args:
        image: ``(H, W, 3)`` RGB, uint8 or float in 0..255.
        keypoints: ``(K, 3)`` ``(x, y, v)`` in image pixels; joints with ``v == 0`` are not
            drawn, occluded ones (``v == 1``) are drawn hollow.
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
    if keypoints.shape != (skeleton.num_joints, 3):
        raise ValueError(f"keypoints must have shape ({skeleton.num_joints}, 3) for skeleton "
                         f"{skeleton.name!r}, got {keypoints.shape}")
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
