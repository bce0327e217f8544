"""DeepPose's in-graph crops: JointCrops against tf.image.crop_and_resize, box geometry."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kpose.data.transforms import joint_boxes
from kpose.models.layers import JointBoxes, JointCrops, LocalResponseNormalisation, RefineJoints

# (y1, x1, y2, x2) in crop_and_resize's frame: 0 and 1 are the first and last pixel centres.
INSIDE = [[0.1, 0.2, 0.7, 0.9], [0.25, 0.3, 0.45, 0.5], [0.333, 0.1, 0.334, 0.95]]
BORDER = [[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.4, 1.0], [0.6, 0.0, 1.0, 0.3]]
PARTLY_OUTSIDE = [[-0.3, -0.2, 0.5, 0.6], [0.6, 0.7, 1.4, 1.3], [-1.0, -1.0, 2.0, 2.0]]
FLIPPED_OR_EMPTY = [[0.9, 0.1, 0.2, 0.8], [1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]]


def _reference(images, boxes, crop_size, extrapolation_value=0.0):
    batch, joints = boxes.shape[:2]
    return tf.image.crop_and_resize(images, boxes.reshape(-1, 4),
                                    np.repeat(np.arange(batch), joints), crop_size,
                                    extrapolation_value=extrapolation_value).numpy()


@pytest.mark.parametrize("boxes", [INSIDE, BORDER, PARTLY_OUTSIDE, FLIPPED_OR_EMPTY],
                         ids=["inside", "border", "partly_outside", "flipped_or_empty"])
@pytest.mark.parametrize("crop_size", [(7, 7), (5, 9), (1, 1)])
def test_joint_crops_equal_crop_and_resize(boxes, crop_size):
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 1.0, (2, 23, 31, 3)).astype(np.float32)
    boxes = np.array([boxes, boxes[::-1]], np.float32)
    ours = JointCrops(crop_size)([images, boxes]).numpy()
    # JointCrops centres pixel values on 128 (for int8 files), so values of 0..1 carry
    # float32's rounding at 128, about 1e-5.
    np.testing.assert_allclose(ours, _reference(images, boxes, crop_size), atol=3e-5)


def test_joint_crops_match_on_pixel_values_and_with_an_extrapolation_value():
    rng = np.random.default_rng(1)
    images = rng.uniform(0.0, 255.0, (1, 16, 12, 3)).astype(np.float32)
    boxes = np.array([PARTLY_OUTSIDE + INSIDE], np.float32)
    ours = JointCrops(6, extrapolation_value=7.0)([images, boxes]).numpy()
    # 1e-5 of the 0..255 range: float32 rounding of products of 255-sized values.
    np.testing.assert_allclose(ours, _reference(images, boxes, (6, 6), 7.0), atol=255e-5)


def test_joint_crops_output_rows_are_image_major():
    images = np.zeros((3, 8, 8, 1), np.float32)
    images[1] = 1.0  # only the second image is bright
    boxes = np.tile(np.array([[[0.2, 0.2, 0.8, 0.8]]], np.float32), (3, 4, 1))
    crops = JointCrops(3)([images, boxes]).numpy()
    assert crops.shape == (12, 3, 3, 1)
    np.testing.assert_array_equal(crops.reshape(3, 4, -1).mean(axis=(1, 2)), [0.0, 1.0, 0.0])


def _draw_dots(size, points, sigma=1.0):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.zeros((size, size), np.float32)
    for x, y in points:
        image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.repeat(image[..., None], 3, axis=-1) * 255.0


@pytest.mark.parametrize("crop_size", [9, 8])
def test_a_dot_drawn_at_a_joint_sits_at_the_centre_of_its_crop(crop_size):
    size = 96
    # Joints on a grid 20 px apart, off the pixel centres; the torso joints (0, 3) are
    # 20 px apart and sigma 0.5 gives 10 px boxes, so every crop holds one dot.
    points = np.array([(14.3 + 20 * (k % 4), 17.6 + 20 * (k // 4)) for k in range(8)],
                      np.float32)
    image = _draw_dots(size, points)[None]
    normalised = (points - (size - 1) / 2) / size
    boxes = JointBoxes((size, size), crop_size, torso=(0, 1), sigma=0.5)(normalised[None])
    crops = JointCrops(crop_size)([image, boxes]).numpy()[..., 0]
    centre = (crop_size - 1) / 2
    grid = np.arange(crop_size, dtype=np.float64)
    for k, crop in enumerate(crops):
        weight = crop / crop.sum()
        cx, cy = (weight.sum(axis=0) * grid).sum(), (weight.sum(axis=1) * grid).sum()
        assert abs(cx - centre) < 0.05 and abs(cy - centre) < 0.05, (k, cx, cy)
        if crop_size % 2:
            assert np.unravel_index(crop.argmax(), crop.shape) == (centre, centre)


def test_joint_box_side_is_sigma_torso_diameters_in_crop_pixels():
    size, crop_size = 64, 11
    keypoints = np.array([[[-0.2, 0.0], [0.1, 0.4], [0.0, 0.0]]], np.float32)  # normalised
    diameter = np.hypot(0.3 * size, 0.4 * size)  # torso = joints 0 and 1: 32 px
    boxes = JointBoxes((size, size), crop_size, torso=(0, 1), sigma=1.5)(keypoints).numpy()
    # The outer samples are one crop pixel (side / crop_size) inside the box edges.
    side = 1.5 * diameter
    sampled = (boxes[0, :, 2] - boxes[0, :, 0]) * (size - 1)
    np.testing.assert_allclose(sampled, side * (crop_size - 1) / crop_size, rtol=1e-5)
    centres = (boxes[0, :, 0] + boxes[0, :, 2]) / 2 * (size - 1)
    np.testing.assert_allclose(centres, keypoints[0, :, 1] * size + (size - 1) / 2, atol=1e-4)


def test_joint_boxes_layer_and_pipeline_function_agree():
    centres = np.array([[[10.0, 20.0], [40.5, 7.25]]], np.float32)
    boxes = joint_boxes(centres, np.array([[24.0, 24.0]], np.float32), (48, 64), 16).numpy()
    normalised = (centres - np.array([63 / 2, 47 / 2])) / np.array([64, 48])
    layer = JointBoxes((48, 64), 16, torso=(0, 1), sigma=24.0 / np.hypot(30.5, 12.75))
    np.testing.assert_allclose(layer(normalised.astype(np.float32)).numpy(), boxes, atol=1e-5)


def test_refine_joints_with_the_true_displacement_lands_on_the_truth():
    size, sigma = 80, 2.0
    rng = np.random.default_rng(2)
    truth = rng.uniform(-0.4, 0.4, (2, 5, 2)).astype(np.float32)
    estimate = truth + rng.normal(0, 0.05, truth.shape).astype(np.float32)
    # The target a refiner learns: the true joint in the crop's frame (p - centre) / side.
    pixels = estimate * size + (size - 1) / 2
    side = sigma * np.linalg.norm(pixels[:, 0] - pixels[:, 1], axis=-1)
    target = ((truth * size + (size - 1) / 2) - pixels) / side[:, None, None]
    displacements = np.zeros((2, 5, 5, 2), np.float32)
    displacements[:, np.arange(5), np.arange(5)] = target  # only crop i's joint i counts
    displacements[:, 0, 3] = 9.0  # joint 3 predicted on joint 0's crop: ignored
    refined = RefineJoints((size, size), torso=(0, 1), sigma=sigma)(
        [estimate, displacements.reshape(10, 5, 2)]).numpy()
    np.testing.assert_allclose(refined, truth, atol=1e-5)


def test_local_response_normalisation_equals_tensorflows():
    x = np.random.default_rng(3).normal(0, 3, (2, 4, 4, 16)).astype(np.float32)
    expected = tf.nn.local_response_normalization(x, depth_radius=2, bias=2.0, alpha=1e-4,
                                                  beta=0.75).numpy()
    np.testing.assert_allclose(LocalResponseNormalisation()(x).numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("images, boxes, message", [
    (np.zeros((8, 8, 3), np.float32), np.zeros((1, 2, 4), np.float32), "images must be"),
    (np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 2, 3), np.float32), "boxes must be"),
    (np.zeros((1, 8, 8, 3), bool), np.zeros((1, 2, 4), np.float32), "images must be a real"),
])
def test_joint_crops_refuse_bad_inputs(images, boxes, message):
    with pytest.raises(ValueError, match=message):
        JointCrops(4)([images, boxes])


def test_joint_crops_refuse_a_bad_crop_size():
    with pytest.raises(ValueError, match="crop_size"):
        JointCrops((0, 4))


def test_cascade_converts_to_tflite_builtins_and_matches_keras(tmp_path):
    """The point of JointCrops: the whole cascade runs without Flex ops."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    import keras

    from kpose.models import build_deeppose, build_deeppose_cascade, build_deeppose_refiner
    from kpose.skeletons import LSP_14

    keras.utils.set_random_seed(0)
    stage1 = build_deeppose(LSP_14, input_size=64, width=1 / 16, learning_rate=None)
    refiner = build_deeppose_refiner(LSP_14, crop_size=64, width=1 / 16, learning_rate=None)
    dense = refiner.get_layer("displacements_dense")
    dense.kernel.assign(np.random.default_rng(0).normal(0, 0.01, dense.kernel.shape))
    cascade = build_deeppose_cascade(stage1, [refiner], sigma=2.0, skeleton=LSP_14,
                                     input_size=96)
    cascade.export(str(tmp_path), input_signature=[tf.TensorSpec([1, 96, 96, 3], tf.float32)],
                   verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex
    interpreter = interpreter_module.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    image = np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    keypoints = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(keypoints, cascade.predict(image, verbose=0), atol=1e-5)
