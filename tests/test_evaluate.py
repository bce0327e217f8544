"""Per-stage keypoints in image pixels, PCK reports, and model cost counting."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kpose.codecs import BeliefMapCodec
from kpose.data import PoseRecord
from kpose.evaluation import predict_stage_keypoints, stage_pck_report
from kpose.models.complexity import count_flops
from kpose.skeletons import Skeleton

DOTS = Skeleton(name="dots", joint_names=("left_dot", "right_dot", "middle"),
                flip_pairs=((0, 1),), limbs=(("bar", 0, 1),), torso=(0, 1), head=(0, 2),
                oks_sigmas=(0.05, 0.05, 0.05))


def _dot_record(tmp_path, index, red, green):
    """A 120 x 100 image with a red blob at ``red`` and a green one at ``green``."""
    ys, xs = np.mgrid[0:100, 0:120]
    image = np.zeros((100, 120, 3), np.float32)
    for channel, (x, y) in ((0, red), (1, green)):
        image[..., channel] = 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 5.0**2))
    path = tmp_path / f"dots{index}.png"
    Image.fromarray(image.astype(np.uint8)).save(path)
    keypoints = np.array([[*red, 2], [*green, 2], [60, 50, 2]], np.float32)
    return PoseRecord(str(path), (20, 10, 80, 80), keypoints, "dots", (120, 100))


STRIDE_8 = BeliefMapCodec(stride=8, sigma=1.0)


def _colour_model(images, training=False):
    """Stand-in CPM: joint 0 = red, joint 1 = green, pooled to stride 8; two stages."""
    pooled = tf.nn.avg_pool2d(images, 8, 8, "VALID") / 255.0
    maps = tf.concat([pooled[..., :2], tf.zeros_like(pooled[..., :1]),
                      1 - tf.reduce_max(pooled[..., :2], -1, keepdims=True)], axis=-1)
    return {"stage_1": 0.5 * maps, "stage_2": maps}


def test_stage_keypoints_come_back_in_image_pixels_in_record_order(tmp_path):
    spots = [((40, 30), (80, 70)), ((55, 60), (35, 25)), ((70, 45), (50, 80))]
    records = [_dot_record(tmp_path, i, red, green) for i, (red, green) in enumerate(spots)]
    found = predict_stage_keypoints(_colour_model, records, DOTS, input_size=64, batch_size=2,
                                    codec=STRIDE_8)
    assert sorted(found) == ["stage_1", "stage_2"]
    assert found["stage_2"].shape == (3, 3, 3)
    for n, (red, green) in enumerate(spots):
        np.testing.assert_allclose(found["stage_2"][n, 0, :2], red, atol=3.0)
        np.testing.assert_allclose(found["stage_2"][n, 1, :2], green, atol=3.0)
    report = stage_pck_report(found, records, DOTS)
    assert report["stage_2"]["PCK@0.2 per joint"]["left_dot"] == 1.0
    assert report["stage_2"]["PCK@0.2"] >= 2 / 3


def test_count_flops_counts_convolutions_and_dense_layers():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.SeparableConv2D(4, 5, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs)
    expected = 2 * (256 * 9 * 3 * 8 + 256 * (25 * 8 + 8 * 4) + 4 * 10)
    assert count_flops(model) == expected


def test_count_flops_needs_static_shapes():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="static shapes"):
        count_flops(model)


def test_flip_averaging_swaps_sides_back_before_averaging(tmp_path):
    """The colour model calls the red blob the left dot and the green blob the right dot.
    On the mirrored crop it does the same, so after mirroring back and swapping left and
    right, each dot's averaged map holds both blobs at half height: identical maps, and
    scores half of the plain ones."""
    records = [_dot_record(tmp_path, 0, (40, 30), (80, 70))]
    plain = predict_stage_keypoints(_colour_model, records, DOTS, input_size=64,
                                    codec=STRIDE_8)["stage_2"]
    flipped = predict_stage_keypoints(_colour_model, records, DOTS, input_size=64,
                                      codec=STRIDE_8, flip=True)["stage_2"]
    np.testing.assert_allclose(flipped[0, 0], flipped[0, 1], atol=1e-4)
    np.testing.assert_allclose(flipped[0, :2, 2], 0.5 * plain[0, :2, 2].max(), rtol=1e-3)
    assert flipped[0, 2, 2] == plain[0, 2, 2] == 0.0  # the midline joint has no evidence
