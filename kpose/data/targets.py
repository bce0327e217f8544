"""Training targets: Gaussian belief maps (CPM) and normalised coordinates (DeepPose)."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["belief_maps", "coordinate_targets", "input_to_map"]


def input_to_map(points: tf.Tensor, stride: int) -> tf.Tensor:
    """Input pixel coordinates -> belief-map pixel coordinates (``(..., 2)``).

    Belief-map pixel ``j`` covers input pixels ``[stride * j - 0.5, stride * (j + 1) - 0.5]``,
    so its centre sits at input ``stride * j + (stride - 1) / 2``.
    """
    return (points + 0.5) / stride - 0.5


def belief_maps(keypoints: tf.Tensor, input_size: tuple[int, int], *, stride: int = 8,
                sigma: float = 1.0) -> tf.Tensor:
    """Gaussian belief maps with a background map, CPM's targets.

    Args:
        keypoints: ``(B, K, 3)`` float32 ``(x, y, v)`` in input pixels.
        input_size: ``(height, width)`` of the model input; both divisible by ``stride``.
        stride: input pixels per belief-map pixel (CPM: 8, so 368 -> 46).
        sigma: Gaussian standard deviation in belief-map pixels.

    Returns:
        ``(B, H / stride, W / stride, K + 1)`` float32: channel ``k < K`` is
        ``exp(-d^2 / (2 sigma^2))`` around joint ``k`` (peak 1 at the joint, all zero when
        the joint is unlabelled), the last channel is the background ``1 - max_k``.
    """
    height, width = input_size[0] // stride, input_size[1] // stride
    centres = input_to_map(keypoints[..., :2], stride)  # (B, K, 2)
    xs = tf.range(width, dtype=tf.float32)
    ys = tf.range(height, dtype=tf.float32)
    # Separable Gaussian: (B, K, W) x (B, K, H) -> (B, H, W, K).
    gx = tf.exp(-tf.square(xs - centres[..., 0:1]) / (2.0 * sigma**2))
    gy = tf.exp(-tf.square(ys - centres[..., 1:2]) / (2.0 * sigma**2))
    labelled = tf.cast(keypoints[..., 2] > 0, tf.float32)[..., tf.newaxis]
    maps = tf.einsum("bkh,bkw->bhwk", gy * labelled, gx)
    background = 1.0 - tf.reduce_max(maps, axis=-1, keepdims=True)
    return tf.concat([maps, background], axis=-1)


def coordinate_targets(keypoints: tf.Tensor, input_size: tuple[int, int]) -> tf.Tensor:
    """DeepPose targets: coordinates normalised to the crop, with per-joint weights.

    Args:
        keypoints: ``(B, K, 3)`` ``(x, y, v)`` in input pixels.
        input_size: ``(height, width)`` of the model input.

    Returns:
        ``(B, K, 3)`` float32: ``(x_n, y_n, w)`` where ``x_n = (x - (W - 1) / 2) / W``
        (in [-0.5, 0.5] inside the crop) and ``w`` is 1 for labelled joints, 0 otherwise
        (their coordinates are set to 0). The loss multiplies the squared error by ``w``.
    """
    height, width = input_size
    centre = tf.constant([(width - 1) / 2.0, (height - 1) / 2.0], tf.float32)
    size = tf.constant([width, height], tf.float32)
    weight = tf.cast(keypoints[..., 2:3] > 0, tf.float32)
    normalised = (keypoints[..., :2] - centre) / size * weight
    return tf.concat([normalised, weight], axis=-1)
