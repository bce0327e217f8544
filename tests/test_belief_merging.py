"""Flip averaging and multi-scale merging of belief maps."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kpose.models import HeatmapDecoder
from kpose.models.belief_merging import flip_belief_maps, predict_belief_maps
from kpose.skeletons import LSP_14

K = LSP_14.num_joints
LEFT = [k for k in range(K) if LSP_14.side(k) == "left"]
RIGHT = [k for k in range(K) if LSP_14.side(k) == "right"]


def _dot_image(x, y, size=64):
    ys, xs = np.mgrid[0:size, 0:size]
    blob = 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 6.0**2))
    return np.repeat(blob[None, ..., None], 3, axis=-1).astype(np.float32)


def _left_dot_model(images, training=False):
    """A stand-in CPM: every left joint's map is the image brightness pooled to stride 8."""
    pooled = tf.nn.avg_pool2d(images[..., :1], 8, 8, "VALID") / 255.0
    channels = [pooled if k in LEFT else tf.zeros_like(pooled) for k in range(K)]
    return {"stage_1": tf.zeros_like(tf.concat(channels + [pooled], -1)),
            "stage_2": tf.concat(channels + [1 - pooled], axis=-1)}


def test_flip_averaging_mirrors_back_and_swaps_sides():
    image = _dot_image(20.0, 30.0)
    plain = predict_belief_maps(_left_dot_model, image, LSP_14).numpy()
    both = predict_belief_maps(_left_dot_model, image, LSP_14, flip=True).numpy()
    # The mirrored run saw the dot as a left joint on the other side; mirrored back and
    # swapped, it is a right joint at the original place: half the evidence each.
    np.testing.assert_allclose(both[..., LEFT], 0.5 * plain[..., LEFT], atol=1e-6)
    np.testing.assert_allclose(both[..., RIGHT], 0.5 * plain[..., LEFT], atol=1e-6)
    decoded = HeatmapDecoder(stride=8)(both).numpy()[0]
    np.testing.assert_allclose(decoded[RIGHT[0], :2], decoded[LEFT[0], :2], atol=1e-4)


def test_flip_belief_maps_is_its_own_inverse():
    maps = tf.random.uniform((2, 8, 8, K + 1))
    np.testing.assert_allclose(flip_belief_maps(flip_belief_maps(maps, LSP_14), LSP_14), maps)


def test_multi_scale_merge_keeps_the_peak_in_place():
    image = _dot_image(40.0, 24.0)
    single = HeatmapDecoder(stride=8)(predict_belief_maps(_left_dot_model, image, LSP_14))
    merged = HeatmapDecoder(stride=8)(
        predict_belief_maps(_left_dot_model, image, LSP_14, scales=(0.8, 1.0, 1.25)))
    np.testing.assert_allclose(merged.numpy()[0, LEFT[0], :2], single.numpy()[0, LEFT[0], :2],
                               atol=2.0)  # input pixels: a quarter of a map pixel


def test_bad_scales_and_shapes_are_refused():
    with pytest.raises(ValueError, match="scales must be positive"):
        predict_belief_maps(_left_dot_model, _dot_image(5, 5), LSP_14, scales=(0.0,))
    with pytest.raises(ValueError, match=r"images must be \(B, H, W, 3\)"):
        predict_belief_maps(_left_dot_model, np.zeros((64, 64, 3)), LSP_14)
    with pytest.raises(ValueError,
                       match=r"expected 14 or 15 \(with background\) for skeleton 'lsp_14'"):
        flip_belief_maps(np.zeros((1, 8, 8, 4)), LSP_14)
