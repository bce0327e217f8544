"""Model size and cost: parameters and floating-point operations per image."""

from __future__ import annotations

import math

import keras

__all__ = ["count_flops"]


def count_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass on one image (multiply-add = 2).

    Counts convolutions (plain, depthwise, separable) and dense layers, which dominate
    every kpose model; pooling, activations and element-wise layers are left out. Nested
    models (such as a MobileNetV2 trunk) are walked. Static input shapes are required.
    """
    total = 0
    for layer in _leaf_layers(model):
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                  keras.layers.SeparableConv2D, keras.layers.Dense)):
            continue
        in_shape, out_shape = layer.input.shape, layer.output.shape
        if any(d is None for d in tuple(out_shape)[1:]) or in_shape[-1] is None:
            raise ValueError(f"count_flops needs static shapes; layer {layer.name!r} has "
                             f"output shape {tuple(out_shape)}")
        positions = math.prod(out_shape[1:-1]) if len(out_shape) > 2 else 1
        c_in, c_out = in_shape[-1], out_shape[-1]
        if isinstance(layer, keras.layers.Dense):
            macs = positions * c_in * c_out
        else:
            kernel = math.prod(layer.kernel_size)
            if isinstance(layer, keras.layers.SeparableConv2D):
                macs = positions * (kernel * c_in + c_in * c_out)
            elif isinstance(layer, keras.layers.DepthwiseConv2D):
                macs = positions * kernel * c_out
            else:
                macs = positions * kernel * c_in * c_out // max(1, layer.groups)
        total += 2 * macs
    return total


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer
