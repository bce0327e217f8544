"""Losses: CPM's per-stage belief-map L2; DeepPose's masked coordinate L2 or L1,
residual log-likelihood (RLE) and visibility BCE."""

from __future__ import annotations

import math

import keras
from keras import ops

__all__ = ["BeliefMapLoss", "CoordinateL1Loss", "CoordinateL2Loss", "VisibilityLoss",
           "ResidualLogLikelihoodLoss", "flow_parameter_count", "flow_log_density"]

# The residual flow of RLE: affine couplings on 2-D residuals, alternately moving y given
# x and x given y, each through two small MLPs (scale, shift) of 1 -> hidden -> hidden -> 1.
FLOW_COUPLINGS = 6
FLOW_HIDDEN = 64


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


@keras.saving.register_keras_serializable(package="kpose")
class ResidualLogLikelihoodLoss(keras.losses.Loss):
    """Residual log-likelihood estimation (RLE; Li et al., ICCV 2021) for regressed joints.

    The model predicts each joint's position ``mu`` and a scale ``sigma`` per coordinate;
    the residual ``r = (y - mu) / sigma`` is scored under a Laplace prior times a learnt
    flow density ``G`` (:func:`flow_log_density`), which learns how the residuals really
    fall. Per sample: ``sum_k w_k * sum over x, y of [log sigma + |r| + log 2] -
    w_k * log G(r_k)``, averaged over the batch, float32. Only training uses ``sigma`` and
    the flow: the joints are ``mu``, so the exported graph is that of a plain regressor.

    ``y_true`` is ``(B, K, 3)`` ``(x_n, y_n, w)`` as :class:`CoordinateL2Loss` takes it;
    ``y_pred`` is ``(B, 4K + P)``: ``mu`` ``(K, 2)`` and ``sigma`` ``(K, 2)`` flattened,
    then the flow's ``P`` parameters (the same on every row; Keras gives a loss no
    variables of its own, so the model carries them). :class:`kpose.models.rle.
    ResidualFlow` builds that output.
    """

    def __init__(self, joints: int, hidden: int = FLOW_HIDDEN,
                 couplings: int = FLOW_COUPLINGS, name: str = "residual_log_likelihood",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.joints, self.hidden, self.couplings = int(joints), int(hidden), int(couplings)

    def call(self, y_true, y_pred):
        joints = self.joints
        width = 4 * joints + flow_parameter_count(self.hidden, self.couplings)
        if len(y_pred.shape) != 2 or y_pred.shape[-1] != width:
            raise ValueError(f"RLE prediction must be (B, {width}) (mu, sigma and the "
                             f"flow's parameters for {joints} joints), got "
                             f"{tuple(y_pred.shape)}")
        y_pred = ops.cast(y_pred, "float32")
        mu = ops.reshape(y_pred[:, :2 * joints], (-1, joints, 2))
        sigma = ops.reshape(y_pred[:, 2 * joints:4 * joints], (-1, joints, 2))
        _check_coordinate_shapes(y_true, mu)
        y_true = ops.cast(y_true, "float32")
        residual = (y_true[..., :2] - mu) / sigma
        laplace = ops.sum(ops.log(sigma) + ops.abs(residual) + math.log(2.0), axis=-1)
        flow = flow_log_density(ops.reshape(residual, (-1, 2)), y_pred[0, 4 * joints:],
                                self.hidden, self.couplings)
        per_joint = laplace - ops.reshape(flow, (-1, joints))
        return ops.sum(y_true[..., 2] * per_joint, axis=-1)

    def get_config(self):
        return {**super().get_config(), "joints": self.joints, "hidden": self.hidden,
                "couplings": self.couplings}


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


def flow_parameter_count(hidden: int = FLOW_HIDDEN, couplings: int = FLOW_COUPLINGS) -> int:
    """Number of values in the flat parameter vector of :func:`flow_log_density`."""
    per_net = (hidden + hidden) + (hidden * hidden + hidden) + (hidden + 1)
    return couplings * 2 * per_net


def flow_log_density(residuals, parameters, hidden: int = FLOW_HIDDEN,
                     couplings: int = FLOW_COUPLINGS):
    """``log G(r)`` of a RealNVP flow on 2-D residuals: ``(N, 2)`` -> ``(N,)``, float32.

    The flow maps ``r`` to ``u`` through ``couplings`` affine couplings; coupling ``c``
    keeps coordinate ``k = c % 2`` and moves the other, ``v``, to ``v * exp(s) + t``,
    where ``s = tanh(MLP_s(r_k))`` and ``t = MLP_t(r_k)`` (two hidden layers of
    ``hidden`` leaky-ReLU units each). ``log G(r) = log N(u; 0, I) + sum of s``: a
    normalised density on the plane (the Jacobian of each coupling is ``exp(s)``), the
    standard normal when every output layer is zero.

    ``parameters`` is the flat ``(P,)`` vector of :func:`flow_parameter_count` values: for
    each coupling the scale MLP then the shift MLP, each as ``W1 (1, h), b1 (h),
    W2 (h, h), b2 (h), W3 (h, 1), b3 (1)`` flattened row-major.
    """
    residuals = ops.cast(residuals, "float32")
    parameters = ops.cast(parameters, "float32")
    shapes = [(1, hidden), (hidden,), (hidden, hidden), (hidden,), (hidden, 1), (1,)]
    offset = 0

    def take(shape):
        nonlocal offset
        size = math.prod(shape)
        value = ops.reshape(parameters[offset:offset + size], shape)
        offset += size
        return value

    def mlp(x):
        w1, b1, w2, b2, w3, b3 = (take(shape) for shape in shapes)
        x = ops.leaky_relu(ops.matmul(x, w1) + b1, negative_slope=0.01)
        x = ops.leaky_relu(ops.matmul(x, w2) + b2, negative_slope=0.01)
        return (ops.matmul(x, w3) + b3)[:, 0]

    log_det = ops.zeros_like(residuals[:, 0])
    u = residuals
    for coupling in range(couplings):
        keep = coupling % 2  # the coordinate this coupling conditions on
        kept = u[:, keep:keep + 1]
        scale = ops.tanh(mlp(kept))
        moved = u[:, 1 - keep] * ops.exp(scale) + mlp(kept)
        u = ops.stack([kept[:, 0], moved] if keep == 0 else [moved, kept[:, 0]], axis=-1)
        log_det = log_det + scale
    log_normal = -0.5 * ops.sum(ops.square(u), axis=-1) - math.log(2 * math.pi)
    return log_normal + log_det
