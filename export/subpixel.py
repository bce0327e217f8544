"""Transposed convolutions rewritten as sub-pixel convolutions, for LiteRT files.

A 4 x 4 transposed convolution at stride 2 with ``"same"`` padding (SimpleBaselines'
upsampling step) is exactly four ordinary 2 x 2 convolutions, one per output phase
``(p_y, p_x)`` (output pixel ``(2 m + p_y, 2 n + p_x)``), followed by a depth-to-space
rearrangement: the same multiply-adds. The rewrite matters for int8 files: LiteRT's int8
TRANSPOSE_CONV runs about as fast as Keras's float32 one on one x86 thread, its int8
CONV_2D about 9x faster (``benchmarks/export_breakdown.py --model layers``).

Index arithmetic (one axis; TensorFlow's transposed convolution is the gradient of a
stride-2 ``"same"`` convolution padded by 1 before): output ``2 m + p`` receives input
``m + d`` through kernel tap ``k = p + 1 - 2 d`` (0..3, so ``d`` is ``-1, 0`` for
``p = 0`` and ``0, 1`` for ``p = 1``). The phase-``p`` convolution reads input
``m - 1 + p + r`` (``r`` = 0, 1) and so takes tap ``3 - p - 2 r``.

A BatchNormalization right after the transposed convolution and a plain ReLU after that
are folded into the convolutions (bias and fused activation): the rearrangement only
moves values, so the convolutions' int8 outputs are the block's output. The phases read
windows of the input padded by one pixel (PAD, STRIDED_SLICE), and depth-to-space is
RESHAPE and CONCATENATION: ops the Edge TPU maps (it has no DEPTH_TO_SPACE), on tensors
of at most three non-unit dimensions.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["SubPixelUpsampling", "with_subpixel_upsampling"]


class SubPixelUpsampling(keras.layers.Layer):
    """Upsampling x2 as four 2 x 2 convolutions, one per output phase ``(p_y, p_x)``, and
    depth-to-space.

    Input ``(B, h, w, C_in)``; output ``(B, 2h, 2w, C)``. ``kernels`` ``(2, 2, 2, 2, C_in,
    C)`` indexed ``[p_y, p_x]``: phase ``(p_y, p_x)`` reads input rows ``m - 1 + p_y + r``
    and columns ``n - 1 + p_x + t`` (``r, t`` = 0, 1) for output ``(2m + p_y, 2n + p_x)``;
    ``bias`` ``(C,)``. The same 16 multiply-adds per input and output channel and input
    pixel as the transposed convolution.
    """

    def __init__(self, kernels: np.ndarray, bias: np.ndarray, relu: bool, **kwargs):
        super().__init__(**kwargs)
        self.kernels_value = np.asarray(kernels, np.float32)
        self.bias_value = np.asarray(bias, np.float32)
        self.relu = bool(relu)
        self.filters = self.kernels_value.shape[-1]

    def build(self, input_shape):
        self.kernels = [[
            self.add_weight(shape=self.kernels_value.shape[2:],
                            name=f"kernel_{phase_y}{phase_x}",
                            initializer=keras.initializers.Constant(
                                self.kernels_value[phase_y, phase_x]), trainable=False)
            for phase_x in range(2)] for phase_y in range(2)]
        self.bias = self.add_weight(shape=self.bias_value.shape, name="bias",
                                    initializer=keras.initializers.Constant(self.bias_value),
                                    trainable=False)

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        padded = ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        bias = ops.cast(self.bias, x.dtype)
        rows = []
        for phase_y, kernels in enumerate(self.kernels):
            phases = []
            for phase_x, kernel in enumerate(kernels):
                window = padded[:, phase_y:phase_y + height + 1, phase_x:phase_x + width + 1]
                y = ops.conv(window, ops.cast(kernel, x.dtype), padding="valid") + bias
                phases.append(ops.relu(y) if self.relu else y)
            # (B, h, w, 2C) with channels (p_x, c) -> (B, h, 2w, C): columns interleaved.
            rows.append(ops.reshape(ops.concatenate(phases, axis=-1),
                                    (-1, height, 2 * width, self.filters)))
        # Side by side (B, h, 4w, C) -> (B, 2h, 2w, C): rows interleaved.
        return ops.reshape(ops.concatenate(rows, axis=2),
                           (-1, 2 * height, 2 * width, self.filters))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[1], 2 * input_shape[2], self.filters)


def subpixel_weights(layer: keras.layers.Conv2DTranspose, batchnorm=None):
    """The phase kernels ``(2, 2, 2, 2, C_in, C)`` and bias ``(C,)`` equal to ``layer``
    (and the BatchNormalization after it, when given); see the module docstring for the
    tap arithmetic."""
    weights = layer.get_weights()
    transposed = np.asarray(weights[0], np.float64)  # (4, 4, C, C_in)
    filters = transposed.shape[2]
    bias = np.asarray(weights[1], np.float64) if layer.use_bias else np.zeros(filters)
    scale, shift = np.ones(filters), np.zeros(filters)
    if batchnorm is not None:
        gamma = batchnorm.gamma.numpy() if batchnorm.scale else np.ones(filters)
        beta = batchnorm.beta.numpy() if batchnorm.center else np.zeros(filters)
        scale = gamma / np.sqrt(batchnorm.moving_variance.numpy() + batchnorm.epsilon)
        shift = beta - batchnorm.moving_mean.numpy() * scale
    kernels = np.zeros((2, 2, 2, 2, transposed.shape[3], filters))
    for phase_y in range(2):
        for phase_x in range(2):
            for row in range(2):
                for column in range(2):
                    tap = transposed[3 - phase_y - 2 * row, 3 - phase_x - 2 * column]
                    kernels[phase_y, phase_x, row, column] = tap.T * scale
    return kernels.astype(np.float32), (bias * scale + shift).astype(np.float32)


def with_subpixel_upsampling(network: keras.Model) -> keras.Model:
    """``network`` with every rewritable transposed convolution (4 x 4, stride 2,
    ``"same"``, no activation, channels-last) as a :class:`SubPixelUpsampling`, and the
    BatchNormalization and ReLU it absorbed as identities; ``network`` itself when it has
    none. Computes the same function (up to float rounding)."""
    plan = {}
    for layer in network.layers:
        if _rewritable(layer):
            batchnorm = _only_consumer(network, layer, keras.layers.BatchNormalization)
            relu = _only_consumer(network, batchnorm, keras.layers.ReLU) \
                if batchnorm is not None else None
            if relu is not None and not _plain_relu(relu):
                relu = None
            plan[layer.name] = (batchnorm, relu)
    if not plan:
        return network
    absorbed = {part.name for parts in plan.values() for part in parts if part is not None}

    def replace(layer):
        if layer.name in plan:
            batchnorm, relu = plan[layer.name]
            kernels, bias = subpixel_weights(layer, batchnorm)
            return SubPixelUpsampling(kernels, bias, relu is not None,
                                      name=f"{layer.name}_subpixel")
        if layer.name in absorbed:
            return _Absorbed(name=layer.name)
        return layer

    return keras.models.clone_model(network, clone_function=replace)


class _Absorbed(keras.layers.Layer):
    """Stands where a layer folded into a :class:`SubPixelUpsampling` stood; takes (and
    ignores) that layer's call arguments, such as BatchNormalization's ``mask``."""

    def call(self, x, **kwargs):
        return x


def _rewritable(layer) -> bool:
    return (type(layer) is keras.layers.Conv2DTranspose and tuple(layer.kernel_size) == (4, 4)
            and tuple(layer.strides) == (2, 2) and layer.padding == "same"
            and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last"
            and layer.activation is keras.activations.linear)


def _plain_relu(layer) -> bool:
    return (layer.max_value is None and float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0)


def _only_consumer(network: keras.Model, layer, kind):
    """The layer of type ``kind`` that alone reads ``layer``'s output inside ``network``
    (and is not itself a model output), else ``None``; also ``None`` when a layer called
    more than once makes that unclear (then nothing is folded)."""
    if any(len(other._inbound_nodes) != 1 for other in network.layers
           if not isinstance(other, keras.layers.InputLayer)):
        return None  # a layer with several call sites: its later inputs are not listed
    produced = layer.output
    consumers = [other for other in network.layers if other is not layer
                 and any(tensor is produced for tensor in _inputs_of(other))]
    if len(consumers) != 1 or type(consumers[0]) is not kind:
        return None
    if any(output is produced for output in network.outputs):
        return None
    if kind is keras.layers.BatchNormalization and consumers[0].axis not in (-1, 3):
        return None
    return consumers[0]


def _inputs_of(layer) -> list:
    inputs = layer.input
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
