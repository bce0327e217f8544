"""SimpleBaselines, Stacked Hourglass and HRNet: shapes at their codec's stride, learning on tiny
data, saving with their model card, training through ``kpose.train`` and exporting with
keypoints decoded in the graph."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

from export import export_model
from kpose.codecs import BeliefMapCodec
from kpose.data import make_dataset, read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.evaluation import evaluate
from kpose.models.card import describe, model_family, stage_outputs
from kpose.models.heatmaps import build_heatmap_inference
from kpose.models.hourglass import build_hourglass
from kpose.models.hrnet import build_hrnet
from kpose.models.simplebaseline import build_simplebaseline
from kpose.skeletons import COCO_17, LSP_14
from kpose.training import train

SIZE = 64
FAST = {"calibration_samples": 16, "verify_samples": 8, "latency_runs": 2, "verbose": False}
BUILDERS = {
    "simplebaseline-resnet": lambda **kw: build_simplebaseline(COCO_17, input_size=SIZE,
                                                               width=0.25, depth=10, **kw),
    # The phone variant as kpose ships it (the head reads MobileNetV2's last bottleneck),
    # with a tapering head.
    "simplebaseline-mobilenetv2": lambda **kw: build_simplebaseline(
        COCO_17, input_size=SIZE, width=0.35, backbone="mobilenetv2",
        deconv_filters=(64, 64, 32), last_conv=False, **kw),
    "hourglass": lambda **kw: build_hourglass(COCO_17, input_size=SIZE, stacks=2, depth=2,
                                              width=0.125, **kw),
    # Four branches (strides 4-32) and the phone variant's three depthwise-separable ones.
    "hrnet-small": lambda **kw: build_hrnet(COCO_17, input_size=SIZE, variant="small",
                                            channels=16, width=0.5, **kw),
    "hrnet-lite": lambda **kw: build_hrnet(COCO_17, input_size=SIZE, variant="lite",
                                           channels=16, **kw),
}


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> LoadedData:
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=16, seed=7, size=96,
                                                progress=False))
    return LoadedData("synthetic:16:7", records, COCO_17)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_heatmaps_come_at_stride_4_with_one_map_per_joint(name):
    model = BUILDERS[name]()
    info = describe(model)
    assert info.codec == BeliefMapCodec(stride=4, sigma=2.0, background=False)
    assert info.family == name.split("-")[0] and info.input_size == (SIZE, SIZE)
    outputs = model(np.zeros((2, SIZE, SIZE, 3), np.float32))
    assert list(outputs) == stage_outputs(model)
    assert len(outputs) == (2 if name == "hourglass" else 1)
    for maps in outputs.values():
        assert tuple(maps.shape) == (2, SIZE // 4, SIZE // 4, 17) and maps.dtype == "float32"


def test_mobilenetv2_head_on_the_bottleneck_has_a_fraction_of_the_weights():
    def weights(last_conv):
        return build_simplebaseline(LSP_14, input_size=192, width=0.5, backbone="mobilenetv2",
                                    last_conv=last_conv, learning_rate=None).count_params()
    # The first transposed convolution reads 80 instead of 1280 channels: 3.86 M -> 1.35 M.
    assert weights(False) < 0.4 * weights(True)
    with pytest.raises(ValueError, match="last_conv=False is a MobileNetV2 option"):
        build_simplebaseline(LSP_14, input_size=64, backbone="resnet", last_conv=False)


# The phone head (nearest-neighbour upsampling) learns here on the quicker ResNet backbone.
LEARNERS = {"simplebaseline-resnet": BUILDERS["simplebaseline-resnet"],
            "simplebaseline-resnet-nearest": lambda **kw: BUILDERS["simplebaseline-resnet"](
                upsampling="nearest", **kw),
            "hourglass": BUILDERS["hourglass"], "hrnet-lite": BUILDERS["hrnet-lite"]}


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_each_family_learns_a_fixed_batch(name, people):
    keras.utils.set_random_seed(1)
    model = LEARNERS[name](learning_rate=3e-3)
    info = describe(model)
    batch = next(iter(make_dataset(people.records, COCO_17, input_size=SIZE, batch_size=8,
                                   codec=info.codec, num_stages=len(stage_outputs(model)))))
    history = model.fit(batch[0], batch[1], epochs=40, batch_size=8, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"][::10]


def test_nearest_upsampling_head_keeps_its_statistics_when_called_without_training():
    # Keras's own Resizing layer would run the BatchNorm after it in training mode here.
    model = BUILDERS["simplebaseline-mobilenetv2"](upsampling="nearest", learning_rate=None)
    assert model.get_layer("deconv3_up").interpolation == "nearest"
    statistics = [np.array(v) for v in model.non_trainable_weights]
    images = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    called = model(images)["stage_1"]
    np.testing.assert_allclose(called, model(images, training=False)["stage_1"], atol=1e-6)
    for before, after in zip(statistics, model.non_trainable_weights):
        np.testing.assert_array_equal(before, np.array(after))
    with pytest.raises(ValueError, match="upsampling must be one of"):
        build_simplebaseline(LSP_14, input_size=SIZE, upsampling="bicubic")
    with pytest.raises(ValueError, match="deconv_filters must be a number or three numbers"):
        build_simplebaseline(LSP_14, input_size=SIZE, deconv_filters=(64, 32))


def test_nearest_resize_repeats_each_pixel_at_factor_two():
    from kpose.models.layers import ResizeImages

    image = np.arange(2 * 3 * 2, dtype=np.float32).reshape(1, 2, 3, 2)
    resized = np.asarray(ResizeImages(4, 6, interpolation="nearest")(image))
    np.testing.assert_array_equal(resized, image.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_saved_model_reloads_with_its_card_and_outputs(name, tmp_path):
    model = BUILDERS[name]()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert describe(loaded) == describe(model)
    images = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    for key, maps in model(images).items():
        np.testing.assert_allclose(loaded(images)[key], maps, atol=1e-5)
    keypoints = build_heatmap_inference(loaded)(images)
    assert tuple(keypoints.shape) == (1, 17, 3)


def test_heatmap_decoder_takes_the_codec_stride_and_no_background():
    codec = BeliefMapCodec(stride=4, sigma=2.0, background=False)
    truth = np.array([[[10.0, 20.0, 2.0], [33.0, 5.0, 2.0]]], np.float32)
    maps = codec.encode(truth, (48, 48))
    assert tuple(maps.shape) == (1, 12, 12, 2)
    found = codec.decoder()(maps).numpy()
    np.testing.assert_allclose(found[0, :, :2], truth[0, :, :2], atol=1e-3)


@pytest.mark.parametrize("family,options", [
    ("simplebaseline", {"backbone": "resnet", "depth": 10}),
    ("hourglass", {"stages": 2, "depth": 2}),
    ("hrnet", {"variant": "small", "channels": 32}),
])
def test_trains_through_kpose_train_and_evaluates_per_stage(family, options, people, tmp_path):
    model, history = train(family, people, val_data=people, out_dir=tmp_path / "run",
                           input_size=SIZE, width=0.125, epochs=1, steps_per_epoch=2,
                           batch_size=4, strategy="default", verbose=0, **options)
    assert model_family(model) == family
    assert np.isfinite(history["loss"]).all()
    assert "val_stage_1_pck@0.2" in history
    report = evaluate(tmp_path / "run", people)
    assert list(report["stages"]) == stage_outputs(model)


# The phone models go to TFLite and the Edge TPU, the hourglass to TFLite and ONNX.
@pytest.mark.parametrize("name", ["simplebaseline-mobilenetv2", "hourglass", "hrnet-lite"])
def test_exports_decode_in_the_graph_and_match_keras(name, people, tmp_path):
    keras.utils.set_random_seed(1)  # the same untrained weights whatever ran before
    path = tmp_path / "model.keras"
    BUILDERS[name]().save(path)
    if name != "hourglass":  # the phone models: int8, every op on the Edge TPU
        result = export_model(path, tmp_path / "out", edgetpu=True, calibration_data=people,
                              **FAST)
        mapping = result.report["edgetpu"]
        assert mapping["ops"] > 20 and mapping["fully_mapped"], mapping["unsupported"]
        # Checked against the model as built, though its transposed convolutions went
        # into the file as sub-pixel convolutions (export.subpixel).
        assert [row["check"]["passed"] for row in result.report["files"]] == [True]
        assert "TRANSPOSE_CONV" not in _op_names(tmp_path / "out" / "model.tflite")
        if name == "hrnet-lite":  # the exchange units' nearest upsampling is on the list
            assert "RESIZE_NEAREST_NEIGHBOR" in _op_names(tmp_path / "out" / "model.tflite")
    else:  # float32 TFLite and ONNX within 0.01 px of Keras
        result = export_model(path, tmp_path / "out", onnx=True, calibration_data=people,
                              **FAST)
        assert {row["file"] for row in result.report["files"]} == {"model.tflite",
                                                                    "model.onnx"}
        for row in result.report["files"]:
            assert row["max_px"] <= 0.01, row
    assert result.metadata["model"] == describe(keras.saving.load_model(path)).family
    assert result.metadata["codec"]["stride"] == 4
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


def _op_names(path) -> set:
    from export.edgetpu import check_edgetpu

    return {op.name for op in check_edgetpu(path.read_bytes()).ops}


def test_a_model_for_another_skeleton_is_refused_naming_both(people):
    model = build_simplebaseline(LSP_14, input_size=SIZE, width=0.125, depth=10)
    with pytest.raises(ValueError, match="skeleton 'lsp_14'.*'coco_17'"):
        evaluate(model, people)
