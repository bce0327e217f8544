"""Losses: CPM's per-stage belief-map L2 (and, with DeepPose, the masked coordinate L2)."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BeliefMapLoss"]


@keras.saving.register_keras_serializable(package="kpose")
class BeliefMapLoss(keras.losses.Loss):
    """CPM's stage loss (paper eq. 4): the squared L2 distance between belief maps.

    ``f_t = 1/2 * sum over maps p and pixels z of (b_t^p(z) - b_*^p(z))^2`` per sample,
    averaged over the batch (Caffe's Euclidean loss, which the paper's models were trained
    with). Give one to every ``stage_t`` output and Keras sums them: eq. 5.

    ``y_true`` and ``y_pred`` are ``(B, h, w, K + 1)``; the loss is computed in float32
    whatever the model's compute dtype (mixed precision).
    """

    def __init__(self, name: str = "belief_map_l2", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        if len(y_true.shape) != 4:
            raise ValueError(f"belief-map target must be (B, h, w, K + 1), got {y_true.shape}")
        true_channels, pred_channels = y_true.shape[-1], y_pred.shape[-1]
        if None not in (true_channels, pred_channels) and true_channels != pred_channels:
            raise ValueError(
                f"belief-map target has {true_channels} maps but the model predicts "
                f"{pred_channels} (K joints + 1 background); build the targets with the "
                "model's skeleton")
        difference = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        return 0.5 * ops.sum(ops.square(difference), axis=(1, 2, 3))
