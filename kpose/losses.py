"""Losses: CPM's per-stage belief-map L2; DeepPose's masked coordinate L2 or L1 and
visibility BCE."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["BeliefMapLoss", "CoordinateL1Loss", "CoordinateL2Loss", "VisibilityLoss"]


@keras.saving.register_keras_serializable(package="kpose")
class BeliefMapLoss(keras.losses.Loss):
    """CPM's stage loss (paper eq. 4): the squared L2 distance between belief maps.

    ``f_t = 1/2 * sum over maps p and pixels z of (b_t^p(z) - b_*^p(z))^2`` per sample,
    averaged over the batch (Caffe's Euclidean loss, which the paper's models were trained
    with). Give one to every ``stage_t`` output and Keras sums them: eq. 5.

    ``y_true`` and ``y_pred`` are ``(B, h, w, C)`` (``C = K + 1`` with the background map);
    the loss is computed in float32 whatever the model's compute dtype (mixed precision).
    ``foreground_weight`` > 0 multiplies each joint-map pixel's squared error by
    ``1 + foreground_weight * target``, so the few pixels near a joint are not outweighed
    by the empty rest of the map (small from-scratch heatmap models otherwise settle on
    all-zero maps); ``background`` says whether the last channel is the background map,
    which keeps weight 1.
    """

    def __init__(self, name: str = "belief_map_l2", foreground_weight: float = 0.0,
                 background: bool = True, **kwargs):
        super().__init__(name=name, **kwargs)
        if not foreground_weight >= 0:
            raise ValueError(f"foreground_weight must be >= 0, got {foreground_weight!r}")
        self.foreground_weight = float(foreground_weight)
        self.background = bool(background)

    def call(self, y_true, y_pred):
        if len(y_true.shape) != 4:
            raise ValueError(f"belief-map target must be (B, h, w, C), got {y_true.shape}")
        true_channels, pred_channels = y_true.shape[-1], y_pred.shape[-1]
        if None not in (true_channels, pred_channels) and true_channels != pred_channels:
            raise ValueError(
                f"belief-map target has {true_channels} maps but the model predicts "
                f"{pred_channels}; build the targets with the model's skeleton and codec")
        y_true = ops.cast(y_true, "float32")
        squared = ops.square(ops.cast(y_pred, "float32") - y_true)
        if self.foreground_weight:
            joints = y_true[..., :-1] if self.background else y_true
            weight = 1.0 + self.foreground_weight * joints
            if self.background:
                weight = ops.concatenate([weight, ops.ones_like(y_true[..., -1:])], axis=-1)
            squared = squared * weight
        return 0.5 * ops.sum(squared, axis=(1, 2, 3))

    def get_config(self):
        return {**super().get_config(), "foreground_weight": self.foreground_weight,
                "background": self.background}


@keras.saving.register_keras_serializable(package="kpose")
class CoordinateL2Loss(keras.losses.Loss):
    """DeepPose's loss (seed 003, eqs. 4-5): squared L2 on normalised joint coordinates,
    with a per-joint weight that is 0 for unlabelled joints.

    ``y_true`` is ``(B, K, 3)`` ``(x_n, y_n, w)`` as :func:`kpose.data.targets.coordinate_targets`
    makes them (``make_dataset(target="coords")``); ``y_pred`` is ``(B, K, 2)``. Per sample the
    loss is ``sum_k w_k * ||y_pred_k - y_true_k||^2``, averaged over the batch; computed in
    float32 whatever the model's compute dtype.
    """

    def __init__(self, name: str = "coordinate_l2", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _weighted_joint_sum(y_true, y_pred, ops.square)


@keras.saving.register_keras_serializable(package="kpose")
class CoordinateL1Loss(keras.losses.Loss):
    """:class:`CoordinateL2Loss` with absolute instead of squared differences: per sample
    ``sum_k w_k * (|dx_k| + |dy_k|)`` on normalised coordinates, averaged over the batch.

    Its gradient does not grow with the error, so the few joints that are far off
    (occluded, mislabelled, left-right swapped) do not dominate a batch as they do under
    L2; modern regression models train with it (the RLE paper's baseline).
    """

    def __init__(self, name: str = "coordinate_l1", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return _weighted_joint_sum(y_true, y_pred, ops.abs)


def _weighted_joint_sum(y_true, y_pred, penalty):
    """Per sample ``sum_k w_k * sum over x, y of penalty(y_pred - y_true)``, in float32,
    after :func:`_check_coordinate_shapes`."""
    _check_coordinate_shapes(y_true, y_pred)
    y_true = ops.cast(y_true, "float32")
    per_joint = ops.sum(penalty(ops.cast(y_pred, "float32") - y_true[..., :2]), axis=-1)
    return ops.sum(y_true[..., 2] * per_joint, axis=-1)


def _check_coordinate_shapes(y_true, y_pred) -> None:
    """Refuse coordinate targets and predictions of the wrong shapes, naming them."""
    true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
    if len(true_shape) != 3 or true_shape[-1] != 3:
        raise ValueError(
            f"coordinate target must be (B, K, 3) (x_n, y_n, weight) as "
            f"make_dataset(target='coords') yields, got shape {true_shape}")
    if len(pred_shape) != 3 or pred_shape[-1] != 2:
        raise ValueError(f"coordinate prediction must be (B, K, 2), got shape {pred_shape}")
    if None not in (true_shape[1], pred_shape[1]) and true_shape[1] != pred_shape[1]:
        raise ValueError(
            f"coordinate target has {true_shape[1]} joints but the model predicts "
            f"{pred_shape[1]}; build the targets with the model's skeleton")


@keras.saving.register_keras_serializable(package="kpose")
class VisibilityLoss(keras.losses.Loss):
    """Binary cross-entropy on per-joint visibility logits (seed 003's ``(x, y, v)`` model).

    ``y_pred`` is ``(B, K)`` logits. ``y_true`` is ``(B, K)`` in {0, 1}, or the ``(B, K, 3)``
    coordinate target, whose weight column (1 = labelled) is then the label. Averaged over
    joints and batch; float32.
    """

    def __init__(self, name: str = "visibility_bce", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        true_shape, pred_shape = tuple(y_true.shape), tuple(y_pred.shape)
        if len(pred_shape) != 2:
            raise ValueError(f"visibility prediction must be (B, K) logits, got shape "
                             f"{pred_shape}")
        if len(true_shape) == 3 and true_shape[-1] == 3:
            y_true = y_true[..., 2]
        elif len(true_shape) != 2:
            raise ValueError(
                f"visibility target must be (B, K) labels in {{0, 1}} or the (B, K, 3) "
                f"coordinate target, got shape {true_shape}")
        if None not in (y_true.shape[1], pred_shape[1]) and y_true.shape[1] != pred_shape[1]:
            raise ValueError(f"visibility target has {y_true.shape[1]} joints but the model "
                             f"predicts {pred_shape[1]}")
        bce = ops.binary_crossentropy(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"),
                                      from_logits=True)
        return ops.mean(bce, axis=-1)
