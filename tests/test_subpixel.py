"""The sub-pixel rewrite of transposed convolutions (``export.subpixel``): the same
function as the model it came from, and only where it is the same function."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from export.subpixel import SubPixelUpsampling, with_subpixel_upsampling
from kpose.models.simplebaseline import build_simplebaseline
from kpose.skeletons import LSP_14

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)


def _randomise_batchnorms(model, seed=0):
    """Statistics and affine parameters far from the initial 0 / 1, so that folding them
    into the convolution is really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 1, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
            layer.gamma.assign(rng.normal(1, 0.5, shape).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.5, shape).astype(np.float32))


def test_simplebaselines_head_rewritten_computes_the_same_heatmaps():
    keras.utils.set_random_seed(3)
    model = build_simplebaseline(LSP_14, input_size=64, depth=10, width=0.25,
                                 deconv_filters=(64, 32, 16), learning_rate=None)
    _randomise_batchnorms(model)
    rewritten = with_subpixel_upsampling(model)
    kinds = [type(layer) for layer in rewritten.layers]
    assert kinds.count(SubPixelUpsampling) == 3
    assert keras.layers.Conv2DTranspose not in kinds
    expected = np.asarray(model(IMAGES)["stage_1"])
    got = np.asarray(rewritten(IMAGES)["stage_1"])
    assert got.shape == (2, 16, 16, 14)
    np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())
    # The original keeps its layers and weights.
    assert [type(layer) for layer in model.layers].count(keras.layers.Conv2DTranspose) == 3


@pytest.mark.parametrize("after", ["nothing", "relu6"])
def test_a_transposed_convolution_with_bias_and_an_activation_left_outside(after):
    # No BatchNorm to fold, or a ReLU6 that stays a layer of its own after the rewrite.
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5, 7, 3))
    x = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="up")(inputs)
    if after == "relu6":
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)
    model = keras.Model(inputs, x)
    model.get_layer("up").bias.assign(np.linspace(-1, 1, 6).astype(np.float32))
    _randomise_batchnorms(model, seed=1)
    rewritten = with_subpixel_upsampling(model)
    assert isinstance(rewritten.get_layer("up_subpixel"), SubPixelUpsampling)
    if after == "relu6":
        assert isinstance(rewritten.get_layer("relu6"), keras.layers.ReLU)
    sample = np.random.default_rng(1).normal(0, 3, (2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(rewritten(sample), model(sample), atol=1e-4)


def test_nothing_is_folded_into_a_transposed_convolution_a_shared_layer_also_reads():
    inputs = keras.Input((5, 7, 3))
    up = keras.layers.Conv2DTranspose(6, 4, strides=2, padding="same", name="up")(inputs)
    normalised = keras.layers.BatchNormalization(name="bn")(up)
    beside = keras.layers.Conv2D(6, 1)(keras.layers.UpSampling2D()(inputs))
    shared = keras.layers.Activation("tanh")
    outputs = keras.layers.Add()([shared(beside), shared(up), normalised])
    model = keras.Model(inputs, outputs)
    _randomise_batchnorms(model, seed=2)
    rewritten = with_subpixel_upsampling(model)
    assert isinstance(rewritten.get_layer("bn"), keras.layers.BatchNormalization)
    sample = np.random.default_rng(2).normal(0, 3, (2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_allclose(rewritten(sample), model(sample), atol=1e-4)


def test_other_transposed_convolutions_are_left_as_they_are():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    assert with_subpixel_upsampling(model) is model
