"""Convolutional Pose Machines: architecture, serialisation, decoding, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kpose.data import make_dataset, read_coco, write_synthetic_dataset
from kpose.losses import BeliefMapLoss
from kpose.models import HeatmapDecoder, build_cpm, build_cpm_inference, receptive_field
from kpose.models.cpm import (LATER_STAGE_SPEC, MOBILE_STAGE_CONTEXT_SPEC,
                              MOBILE_STAGE_LOCAL_SPEC, STAGE1_SPEC, TRUNK_SPEC)
from kpose.skeletons import COCO_17, LSP_14

K = LSP_14.num_joints


@pytest.mark.parametrize("input_size", [368, 256])
@pytest.mark.parametrize("stages", [1, 2, 3, 4, 5, 6])
def test_one_output_per_stage_with_stride_8_maps(stages, input_size):
    model = build_cpm(LSP_14, stages=stages, input_size=input_size, learning_rate=None)
    assert model.output_names == [f"stage_{t}" for t in range(1, stages + 1)]
    for output in model.outputs:
        assert tuple(output.shape) == (None, input_size // 8, input_size // 8, K + 1)


def test_receptive_fields_are_the_papers():
    assert receptive_field(STAGE1_SPEC) == (160, 8)  # px of the input
    assert receptive_field(LATER_STAGE_SPEC) == (31, 1)  # px of the previous belief maps
    assert receptive_field(TRUNK_SPEC)[1] == 8


def _stage2_window(model, size: int) -> tuple[int, int]:
    """Rows and columns of stage 2's inputs that its centre output pixel depends on."""
    import tensorflow as tf

    stage2 = keras.Model(model.get_layer("stage_2_inputs").output, model.outputs[1])
    channels = stage2.inputs[0].shape[-1]
    inputs = tf.Variable(tf.random.uniform((1, size, size, channels), seed=0))
    with tf.GradientTape() as tape:
        centre = stage2(inputs)[0, size // 2, size // 2, 0]
    grad = tape.gradient(centre, inputs).numpy()[0]
    rows, cols = np.nonzero(np.abs(grad).sum(axis=-1))
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_stage2_output_sees_31x31_of_stage1_maps():
    """Empirical check of the computed receptive field on the built layers."""
    model = build_cpm(LSP_14, stages=2, input_size=368, width=0.125, learning_rate=None)
    assert _stage2_window(model, 46) == (31, 31)


def test_mobile_stages_see_a_large_window_through_small_kernels():
    """The mobile variant's later stages: 3 x 3 kernels only, and a receptive field of 22
    map pixels (176 px at stride 8) through the pooled context path."""
    assert receptive_field(MOBILE_STAGE_LOCAL_SPEC + MOBILE_STAGE_CONTEXT_SPEC) == (20, 2)
    model = build_cpm(LSP_14, stages=2, input_size=256, width=0.25, backbone="mobilenetv2",
                      learning_rate=None)
    kernels = {tuple(layer.kernel_size) for layer in model.layers
               if layer.name.startswith("stage_2_") and hasattr(layer, "kernel_size")}
    assert kernels == {(3, 3), (1, 1)}
    assert not any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in model.layers
                   if layer.name.startswith("stage_2_"))
    # The chain's 20, and bilinear upsampling mixes in one more stride-16 pixel.
    assert _stage2_window(model, 32) == (22, 22)


def test_mobile_variant_needs_an_input_divisible_by_16():
    with pytest.raises(ValueError, match="divisible by 16 for the mobilenetv2 CPM"):
        build_cpm(LSP_14, stages=2, input_size=136, backbone="mobilenetv2")


def test_later_stages_share_one_image_trunk():
    def params(stages):
        return build_cpm(LSP_14, stages=stages, input_size=256, learning_rate=None).count_params()

    # Concatenated inputs of a later stage: 32 trunk features + K + 1 maps + center map.
    channels, head = 32 + K + 1 + 1, 0
    for conv in LATER_STAGE_SPEC:
        head += conv.kernel**2 * channels * conv.filters + conv.filters
        channels = conv.filters
    head += channels * (K + 1) + (K + 1)  # the stage's 1x1 output conv
    assert params(3) - params(2) == head == params(6) - params(5)
    model = build_cpm(LSP_14, stages=6, input_size=256, learning_rate=None)
    trunk = [w for w in model.weights if w.path.startswith("shared_trunk")]
    assert len(trunk) == 2 * 4  # four convolutions, kernel + bias each: one set for 5 stages


@pytest.mark.parametrize("batchnorm", [False, True])
def test_saves_and_reloads_with_identical_outputs(tmp_path, batchnorm):
    model = build_cpm(LSP_14, stages=2, input_size=64, width=0.25, batchnorm=batchnorm)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == (14 if batchnorm else 0)  # stage 1, trunk, stage 2: 6 + 4 + 4 convs
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    path = tmp_path / "cpm.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    before, after = model.predict(images, verbose=0), reloaded.predict(images, verbose=0)
    for name in ("stage_1", "stage_2"):
        np.testing.assert_array_equal(before[name], after[name])


def test_kpose_load_model_needs_only_import_kpose(tmp_path):
    """A fresh interpreter that did ``import kpose`` and nothing else loads a saved CPM
    (its custom layers are registered by ``kpose.load_model``), and bad paths are named."""
    import subprocess
    import sys

    model = build_cpm(LSP_14, stages=2, input_size=64, width=0.25)
    model.save(tmp_path / "cpm.keras")
    script = ("import sys, kpose\n"
              "model = kpose.load_model(sys.argv[1])\n"
              "print(model.output_names)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cpm.keras")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['stage_1', 'stage_2']" in done.stdout
    import kpose

    with pytest.raises(FileNotFoundError, match="missing.keras"):
        kpose.load_model(tmp_path / "missing.keras")


def test_center_map_can_be_an_input():
    model = build_cpm(LSP_14, stages=2, input_size=64, width=0.25, center_map="input",
                      learning_rate=None)
    assert [t.shape[-1] for t in model.inputs] == [3, 1]
    out = model([np.zeros((1, 64, 64, 3), "float32"), np.zeros((1, 64, 64, 1), "float32")])
    assert tuple(out["stage_2"].shape) == (1, 8, 8, K + 1)


def test_mobilenetv2_variant_keeps_the_output_layout():
    model = build_cpm(LSP_14, stages=3, input_size=128, backbone="mobilenetv2", width=0.35,
                      learning_rate=None)
    assert model.output_names == ["stage_1", "stage_2", "stage_3"]
    assert tuple(model.outputs[-1].shape) == (None, 16, 16, K + 1)
    assert model.count_params() < build_cpm(LSP_14, stages=3, input_size=128,
                                            learning_rate=None).count_params() / 10


def _gaussian_maps(peaks, size=46, sigma=1.0):
    ys, xs = np.mgrid[0:size, 0:size]
    maps = np.zeros((1, size, size, len(peaks) + 1), np.float32)
    for k, (x, y) in enumerate(peaks):
        maps[0, :, :, k] = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return maps


def test_decoder_recovers_sub_pixel_peaks_inside_and_on_the_border():
    peaks = [(10.3, 20.7), (23.5, 23.5), (0.0, 0.0), (0.4, 5.2), (45.0, 45.0), (44.8, 3.3),
             (-0.3, 12.6), (17.75, 45.2)]
    decoded = HeatmapDecoder(stride=1)(_gaussian_maps(peaks)).numpy()[0]
    np.testing.assert_allclose(decoded[:, :2], np.array(peaks), atol=0.1)


def test_decoder_maps_to_input_pixels_and_scores_an_empty_map_low():
    maps = _gaussian_maps([(10.0, 20.0), (5.0, 5.0)])
    maps[..., 1] = 0.0  # the second joint has no evidence at all
    decoded = HeatmapDecoder(stride=8)(maps).numpy()[0]
    # Map pixel j is centred on input pixel 8 j + 3.5.
    np.testing.assert_allclose(decoded[0, :2], [83.5, 163.5], atol=1e-3)
    assert decoded[0, 2] == pytest.approx(1.0, abs=1e-5)
    assert decoded[1, 2] < 0.05


def test_decoder_refuses_maps_of_the_wrong_rank():
    with pytest.raises(ValueError, match="rank 4"):
        HeatmapDecoder()(np.zeros((46, 46, 15), np.float32))


def test_inference_model_outputs_decoded_last_stage():
    model = build_cpm(LSP_14, stages=2, input_size=64, width=0.25)
    inference = build_cpm_inference(model)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    keypoints = inference.predict(images, verbose=0)
    assert keypoints.shape == (2, K, 3)
    expected = HeatmapDecoder(stride=8)(model.predict(images, verbose=0)["stage_2"]).numpy()
    np.testing.assert_allclose(keypoints, expected, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"stages": 0}, "stages must be an integer >= 1"),
    ({"input_size": 100}, "divisible by the belief-map stride 8"),
    ({"backbone": "vgg"}, "backbone must be one of"),
    ({"center_map": "yes"}, "center_map must be"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_cpm(LSP_14, **kwargs)


def test_wrong_image_channels_are_refused():
    model = build_cpm(LSP_14, stages=1, input_size=64, width=0.25)
    with pytest.raises(ValueError, match=r"input .image. must be RGB images \(B, H, W, 3\)"):
        model(np.zeros((1, 64, 64, 1), np.float32))


def test_target_with_the_wrong_number_of_maps_is_named():
    with pytest.raises(ValueError, match="target has 18 maps but the model predicts 15"):
        BeliefMapLoss()(np.zeros((1, 8, 8, 18), "float32"), np.zeros((1, 8, 8, 15), "float32"))


@pytest.fixture(scope="module")
def tiny_people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    return read_coco(write_synthetic_dataset(folder, num=8, seed=3, size=96, progress=False))


def test_every_stage_loss_falls_with_model_fit(tiny_people):
    keras.utils.set_random_seed(0)
    model = build_cpm(COCO_17, stages=3, input_size=64, width=0.25, learning_rate=1e-3)
    dataset = make_dataset(tiny_people, COCO_17, input_size=64, batch_size=4, num_stages=3,
                           sigma=1.0).repeat()
    history = model.fit(dataset, epochs=8, steps_per_epoch=4, verbose=0).history
    for t in (1, 2, 3):
        losses = history[f"stage_{t}_loss"]
        assert losses[-1] < 0.5 * losses[0], f"stage {t} did not learn: {losses}"


def test_without_intermediate_supervision_only_the_last_stage_has_a_loss(tiny_people):
    model = build_cpm(COCO_17, stages=3, input_size=64, width=0.25,
                      intermediate_supervision=False)
    dataset = make_dataset(tiny_people, COCO_17, input_size=64, batch_size=4, num_stages=3)
    history = model.fit(dataset, epochs=1, verbose=0).history
    assert "stage_3_loss" in history or list(history) == ["loss"]
    assert "stage_1_loss" not in history and "stage_2_loss" not in history


def test_residual_stages_start_exactly_as_the_stage_before():
    model = build_cpm(LSP_14, stages=3, input_size=64, width=0.125, batchnorm=True,
                      residual_stages=True, learning_rate=None)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    outputs = model(images)
    np.testing.assert_array_equal(outputs["stage_3"], outputs["stage_1"])
    assert float(np.abs(outputs["stage_1"]).max()) > 0


def test_shared_features_run_one_trunk_for_every_stage():
    shared = build_cpm(LSP_14, stages=3, input_size=64, width=0.125, shared_features=True,
                       learning_rate=None)
    separate = build_cpm(LSP_14, stages=3, input_size=64, width=0.125, learning_rate=None)
    names = {layer.name for layer in shared.layers}
    assert not any(name.startswith("shared_trunk") for name in names)
    assert any(layer.name.startswith("shared_trunk") for layer in separate.layers)
    # The trunk's three 9 x 9 convolutions are stage 1's, so the model is smaller.
    assert shared.count_params() < separate.count_params()
    assert {"stage_1_conv4", "stage_1_head_conv1", "stage_1_head_conv2"} <= names
    stage2_inputs = shared.get_layer("stage_2_inputs").input
    assert stage2_inputs[0] is shared.get_layer("stage_1_conv4").output


def test_foreground_weight_scales_only_the_joint_pixels():
    truth = np.zeros((1, 4, 4, 2), np.float32)
    truth[0, 1, 1, 0] = 1.0      # one joint pixel
    truth[..., 1] = 1.0 - truth[..., 0]  # background
    prediction = np.zeros_like(truth)
    plain = float(BeliefMapLoss()(truth, prediction))
    weighted = float(BeliefMapLoss(foreground_weight=10.0)(truth, prediction))
    # The joint pixel's error (1) counts 11 times; the background's 15 errors stay.
    assert plain == pytest.approx(0.5 * (1 + 15))
    assert weighted == pytest.approx(0.5 * (11 + 15))
