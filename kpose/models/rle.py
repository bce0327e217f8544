"""Residual log-likelihood estimation (RLE) for DeepPose's regressor: the training-only
output that :class:`~kpose.losses.ResidualLogLikelihoodLoss` scores.

RLE (Li et al., ICCV 2021) trains a regressor by maximum likelihood: beside each joint
``mu`` the network predicts a scale ``sigma``, and a small normalising flow learns the
density of the scaled residuals ``(y - mu) / sigma``. Neither the scale nor the flow is
needed to place a joint, so they live on a separate output, ``rle``, that inference and
export leave out: the exported graph is a plain regressor's.
"""

from __future__ import annotations

import keras
from keras import ops

from kpose.losses import FLOW_COUPLINGS, FLOW_HIDDEN, flow_parameter_count

__all__ = ["ResidualFlow", "RLE_OUTPUT", "SIGMA_FLOOR"]

RLE_OUTPUT = "rle"
# The smallest scale, in normalised units: keeps log(sigma) finite.
SIGMA_FLOOR = 1e-4


@keras.saving.register_keras_serializable(package="kpose")
class ResidualFlow(keras.Layer):
    """``[mu (B, K, 2), scale_logits (B, K, 2)]`` -> ``(B, 4K + P)`` float32: ``mu``,
    ``sigma = sigmoid(scale_logits) + SIGMA_FLOOR`` and the flow's ``P`` parameters
    (:func:`~kpose.losses.flow_parameter_count`) on every row, the layout of
    :class:`~kpose.losses.ResidualLogLikelihoodLoss`.

    The layer owns the flow's weights (so they train, save and resume with the model); each
    MLP's output layer starts at zero, which makes the flow the identity and ``G`` the
    standard normal at the start.
    """

    def __init__(self, hidden: int = FLOW_HIDDEN, couplings: int = FLOW_COUPLINGS, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden, self.couplings = int(hidden), int(couplings)

    def build(self, input_shape):
        h = self.hidden
        shapes = [("w1", (1, h), "glorot_uniform"), ("b1", (h,), "zeros"),
                  ("w2", (h, h), "glorot_uniform"), ("b2", (h,), "zeros"),
                  ("w3", (h, 1), "zeros"), ("b3", (1,), "zeros")]
        self.flow_weights = [
            self.add_weight(name=f"coupling_{c}_{net}_{name}", shape=shape,
                            initializer=initializer)
            for c in range(self.couplings) for net in ("scale", "shift")
            for name, shape, initializer in shapes]

    def call(self, inputs):
        mu, logits = (ops.cast(x, "float32") for x in inputs)
        coordinates = 2 * mu.shape[1]
        sigma = ops.sigmoid(logits) + SIGMA_FLOOR
        flat = ops.concatenate([ops.reshape(w, (-1,)) for w in self.flow_weights], axis=0)
        parameters = ops.broadcast_to(
            flat[None, :], (ops.shape(mu)[0], flow_parameter_count(self.hidden, self.couplings)))
        return ops.concatenate([ops.reshape(mu, (-1, coordinates)),
                                ops.reshape(sigma, (-1, coordinates)), parameters], axis=-1)

    def compute_output_shape(self, input_shape):
        mu_shape = input_shape[0]
        joints = mu_shape[1]
        return (mu_shape[0], 4 * joints + flow_parameter_count(self.hidden, self.couplings))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "couplings": self.couplings}
