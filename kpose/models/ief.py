"""Iterative Error Feedback (Carreira et al., CVPR 2016): a regressor that corrects its
own estimate, step by step, inside one graph.

Instead of regressing the joints in one go, IEF starts from a pose ``y_0`` (the mean
pose, here a learnt ``(K, 2)`` weight), draws the current estimate ``y_t`` as one
Gaussian map per joint, stacks those ``K`` maps onto the image and lets one network ``f``
read both and predict a bounded correction: ``y_{t+1} = y_t + eps_t``, ``T`` times. The
same ``f`` (weights shared) serves every iteration, so the model grows in compute, not
in weights, with ``T``.

Bounded corrections. The paper trains ``eps_t`` towards ``y* - y_t`` clipped to a
length ``L`` per joint. Here the bound sits in the graph: ``eps_t = L tanh(r_t / L)``
per coordinate, and each iteration's estimate ``y_{t+1}`` is trained towards the truth
``y*``. The step that minimises that loss within the bound is ``y* - y_t`` clipped to
``L`` per coordinate: the paper's target, on a box instead of a disc, and no loss needs
``y_t`` as a second input.

Fixed paths. The paper trains each iteration on estimates frozen from the model before
it ("fixed path consolidation"), not through the chain of iterations. Here every
iteration's input estimate is behind a stop-gradient, so each step learns to correct
whatever the current model's previous step gives it; only ``y_0`` learns through the
first step.

Frames: joints in kpose's normalised coordinates of the model input,
``x_n = (u - (W - 1) / 2) / W`` for input pixel ``u`` (:mod:`kpose.models.deeppose`).
"""

from __future__ import annotations

import keras
from keras import ops

from kpose.models.backbones import resnet_features

__all__ = ["InitialPose", "RenderJoints", "BoundedStep", "feedback_iterations",
           "ITERATION_PREFIX"]

ITERATION_PREFIX = "iteration_"  # outputs iteration_1 .. iteration_{T-1}; the last is keypoints


@keras.saving.register_keras_serializable(package="kpose")
class InitialPose(keras.layers.Layer):
    """The starting estimate ``y_0``: a trainable ``(K, 2)`` pose (zeros: every joint at
    the crop's centre until training moves it to the mean pose), repeated over the batch.

    Call on any ``(B, ...)`` tensor; returns ``(B, K, 2)`` float32 normalised joints.
    """

    def __init__(self, joints: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.joints = int(joints)

    def build(self, input_shape):
        self.pose = self.add_weight(shape=(self.joints, 2), initializer="zeros", name="pose")

    def call(self, batch_like):
        batch = ops.shape(batch_like)[0]
        return ops.broadcast_to(ops.expand_dims(self.pose, 0), (batch, self.joints, 2))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.joints, 2)

    def get_config(self):
        return {**super().get_config(), "joints": self.joints}


@keras.saving.register_keras_serializable(package="kpose")
class RenderJoints(keras.layers.Layer):
    """Draw normalised joints ``(B, K, 2)`` as Gaussian maps ``(B, H, W, K)`` on the input
    grid, peak 1, standard deviation ``sigma`` input pixels. Gradients do not flow back
    into the joints (IEF's fixed path: the estimate is an input, not a path to train).

    Built from separable exponentials (SUB, MUL, EXP, TRANSPOSE): TFLite builtins.
    """

    def __init__(self, size: tuple[int, int], sigma: float, **kwargs):
        super().__init__(**kwargs)
        self.size = (int(size[0]), int(size[1]))
        self.sigma = float(sigma)

    def call(self, keypoints):
        joints = ops.stop_gradient(ops.cast(keypoints, "float32"))
        height, width = self.size
        u = joints[..., 0] * width + (width - 1) / 2.0  # (B, K) input pixels
        v = joints[..., 1] * height + (height - 1) / 2.0
        scale = -1.0 / (2.0 * self.sigma ** 2)
        across = ops.exp(scale * ops.square(
            ops.arange(width, dtype="float32")[None, None, :] - u[..., None]))  # (B, K, W)
        down = ops.exp(scale * ops.square(
            ops.arange(height, dtype="float32")[None, None, :] - v[..., None]))  # (B, K, H)
        maps = ops.expand_dims(down, -1) * ops.expand_dims(across, -2)  # (B, K, H, W)
        return ops.cast(ops.transpose(maps, (0, 2, 3, 1)), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="kpose")
class BoundedStep(keras.layers.Layer):
    """``[y_t (B, K, 2), r (B, K, 2)] -> y_t + L tanh(r / L)``: the estimate moved by at
    most ``max_step`` (``L``, normalised units: a fraction of the input side) per
    coordinate. ``stop_previous`` keeps gradients out of ``y_t`` (every iteration but the
    first, whose ``y_0`` is a learnt weight)."""

    def __init__(self, max_step: float, stop_previous: bool = True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.max_step = float(max_step)
        self.stop_previous = bool(stop_previous)

    def call(self, inputs):
        previous, raw = (ops.cast(t, "float32") for t in inputs)
        if self.stop_previous:
            previous = ops.stop_gradient(previous)
        return previous + self.max_step * ops.tanh(raw / self.max_step)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "max_step": self.max_step,
                "stop_previous": self.stop_previous}


def feedback_iterations(image, joints: int, *, iterations: int, max_step: float,
                        sigma: float, depth: int, width: float, dropout: float) -> list:
    """IEF's ``T`` iterations on ``image``; returns ``[y_1, ..., y_T]``, each ``(B, K, 2)``.

    Args:
        image: ``(B, H, W, 3)`` scaled to about [-1, 1].
        joints: ``K``.
        iterations: ``T >= 1``.
        max_step: ``L``, the largest move per coordinate and step (normalised units).
        sigma: the rendered joints' standard deviation in input pixels.
        depth, width: the ResNet ``f`` (:func:`~kpose.models.backbones.resnet_features`,
            named ``resnet`` as SimpleBaselines' so ``--init`` copies it; its first
            convolution takes ``3 + K`` channels).
        dropout: before the correction layer.
    """
    size = tuple(image.shape[1:3])
    network = resnet_features(size, depth=depth, width=width, name="resnet",
                              channels=3 + joints)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    drop = keras.layers.Dropout(dropout, name="pool_dropout")
    # A zero correction layer: a fresh model's every step stays where it is.
    correct = keras.layers.Dense(2 * joints, kernel_initializer="zeros",
                                 name="correction_dense")
    pairs = keras.layers.Reshape((joints, 2), name="correction_pairs")
    render = RenderJoints(size, sigma, name="render_joints")
    estimate = InitialPose(joints, name="initial_pose")(image)
    estimates = []
    for step in range(1, iterations + 1):
        stacked = keras.layers.Concatenate(name=f"feedback_{step}")([image, render(estimate)])
        raw = pairs(correct(drop(pool(network(stacked)))))
        estimate = BoundedStep(max_step, stop_previous=step > 1,
                               name=f"step_{step}")([estimate, raw])
        estimates.append(estimate)
    return estimates
