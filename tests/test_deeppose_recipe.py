"""DeepPose on the heatmap families' backbone: the ResNet, the pooled head, the L1 loss, and
a cascade started from a trained model (``--init``)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kpose.cli import main
from kpose.data import make_dataset, read_coco, write_synthetic_dataset
from kpose.losses import CoordinateL1Loss
from kpose.models import build_deeppose, build_deeppose_cascade, build_deeppose_refiner
from kpose.models.deeppose import build_deeppose_stage_keypoints
from kpose.models.card import describe
from kpose.models.families import build_heatmap_model
from kpose.models.layers import SoftArgmax
from kpose.models.transfer import transfer_weights, weight_paths
from kpose.runs import load_model
from kpose.skeletons import COCO_17, LSP_14
from kpose.training.cascade import init_source

RESNET = dict(backbone="resnet", depth=10, width=0.125)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    return read_coco(write_synthetic_dataset(folder, num=8, seed=3, size=96, progress=False))


def test_resnet_backbone_with_pooled_head_outputs_float32_keypoints():
    model = build_deeppose(LSP_14, input_size=64, head="pool", learning_rate=None, **RESNET)
    assert "fc6" not in [layer.name for layer in model.layers]
    assert model.get_layer("resnet").output.shape[1:3] == (2, 2)  # stride 32
    out = model(np.zeros((2, 64, 64, 3), np.float32))
    assert tuple(out.shape) == (2, 14, 2) and out.dtype == "float32"
    options = describe(model).options
    assert (options["backbone"], options["depth"], options["head"]) == ("resnet", 10, "pool")


def test_l1_loss_sums_absolute_differences_of_labelled_joints():
    y_true = np.array([[[0.1, 0.2, 1.0], [0.3, -0.1, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    y_pred = np.array([[[0.2, 0.0], [5.0, 5.0], [0.1, -0.3]]], np.float32)
    expected = (0.1 + 0.2) + 0.0 + (0.1 + 0.3)  # joint 1 unlabelled: weight 0
    assert float(CoordinateL1Loss()(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="coordinate target must be"):
        CoordinateL1Loss()(y_true[..., :2], y_pred)


@pytest.mark.parametrize("kwargs, message", [
    ({"head": "conv"}, "head must be one of"),
    ({"loss": "huber"}, "loss must be one of"),
    ({"backbone": "resnet", "depth": 50}, "depth must be one of"),
    ({"head": "integral"}, "head 'integral' reads a ResNet's features"),
    ({"head": "integral", "input_size": 48, **RESNET},
     r"input_size \(48, 48\) must be divisible by 32 for head 'integral'"),
])
def test_bad_recipe_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_deeppose(LSP_14, **{"input_size": 64, "learning_rate": None, **kwargs})


def test_an_integral_refiner_needs_crops_divisible_by_32():
    with pytest.raises(ValueError, match=r"crop_size \(48, 48\) must be divisible by 32"):
        build_deeppose_refiner(LSP_14, crop_size=48, head="integral", learning_rate=None,
                               **RESNET)


def test_soft_argmax_reads_a_distribution_over_pixel_centres():
    """A map's joint is the softmax-weighted mean of its pixels' centres, in normalised
    coordinates of the image the map covers."""
    maps = np.zeros((3, 4, 8, 1), np.float32)
    maps[0, 1, 2] = 50.0                 # one sharp peak: pixel (row 1, column 2)
    maps[2, 1, 2] = maps[2, 1, 3] = 50.0  # two equal peaks side by side: their midpoint
    out = np.asarray(SoftArgmax(beta=1.0)(maps))
    assert out.shape == (3, 1, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [2.5 / 8 - 0.5, 1.5 / 4 - 0.5], atol=1e-6)
    np.testing.assert_allclose(out[1, 0], [0.0, 0.0], atol=1e-6)  # a flat map: the centre
    np.testing.assert_allclose(out[2, 0], [3.0 / 8 - 0.5, 1.5 / 4 - 0.5], atol=1e-6)
    # beta sharpens: a weak peak (1 above a flat map) moves from near the centre to the peak.
    weak = np.zeros((1, 4, 8, 1), np.float32)
    weak[0, 1, 2] = 1.0
    soft = np.asarray(SoftArgmax(beta=1.0)(weak))[0, 0]
    sharp = np.asarray(SoftArgmax(beta=30.0)(weak))[0, 0]
    peak = np.array([2.5 / 8 - 0.5, 1.5 / 4 - 0.5])
    assert np.abs(sharp - peak).max() < 1e-3 < np.abs(soft - peak).max()



def test_the_decoders_soft_argmax_is_the_integral_heads_in_its_own_frame():
    """``HeatmapDecoder(method="soft_argmax")`` and the integral head read a map the same
    way: the decoder's input-fraction frame is the head's normalised one shifted by 0.5,
    and its pixel frame puts a symmetric peak on the pixel it is centred on."""
    from kpose.decoding import HeatmapDecoder

    rng = np.random.default_rng(3)
    maps = rng.normal(0.0, 0.3, (2, 8, 12, 3)).astype(np.float32)
    fraction = HeatmapDecoder(stride=4, method="soft_argmax", beta=7.0, frame="fraction",
                              num_joints=3)(maps).numpy()
    head = np.asarray(SoftArgmax(beta=7.0)(maps))
    np.testing.assert_allclose(fraction[..., :2] - 0.5, head, atol=1e-6)
    ys, xs = np.mgrid[0:8, 0:12]
    peak = np.exp(-((xs - 5) ** 2 + (ys - 3) ** 2) / 2.0)[None, :, :, None]
    pixels = HeatmapDecoder(stride=1, method="soft_argmax", beta=100.0, num_joints=1)(
        peak.astype(np.float32)).numpy()
    np.testing.assert_allclose(pixels[0, 0, :2], [5.0, 3.0], atol=1e-4)

def test_integral_head_starts_as_a_heatmap_model_read_by_soft_argmax(tmp_path):
    """``--init`` from a SimpleBaselines ResNet copies every weight of the integral head
    but its softmax factor, so the new regressor's joints are the soft-argmax of the
    heatmap model's maps; it saves and reloads with the same outputs."""
    keras.utils.set_random_seed(1)
    source = build_heatmap_model("simplebaseline", LSP_14, input_size=64, deconv_filters=256,
                                 learning_rate=None, **RESNET)
    model = build_deeppose(LSP_14, input_size=64, head="integral", loss="l1",
                           learning_rate=None, **RESNET)
    report = transfer_weights(source, model)
    assert report.fresh == ["keypoints_integral/log_beta"], report.summary()
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    maps = source(images)["stage_1"]
    expected = np.asarray(SoftArgmax(beta=20.0)(maps))
    np.testing.assert_allclose(np.asarray(model(images)), expected, atol=1e-5)
    path = tmp_path / "integral.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(load_model(path)(images)), expected, atol=1e-5)


@pytest.mark.parametrize("head", ["pool", "fc", "integral"])
def test_resnet_stage1_learns_with_l1(people, head):
    keras.utils.set_random_seed(0)
    model = build_deeppose(COCO_17, input_size=64, head=head, loss="l1", dropout=0.0,
                           learning_rate=1e-3, **RESNET)
    data = make_dataset(people, COCO_17, input_size=64, target="coords",
                        batch_size=8).repeat()
    losses = model.fit(data, epochs=6, steps_per_epoch=5, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0], losses


def test_init_source_takes_the_matching_stage_of_a_cascade():
    stage1 = build_deeppose(LSP_14, input_size=64, learning_rate=None, **RESNET)
    refiners = [build_deeppose_refiner(LSP_14, crop_size=32, learning_rate=None,
                                       name=f"refiner_{s}", **RESNET) for s in (2, 3)]
    cascade = build_deeppose_cascade(stage1, refiners, sigma=1.0, skeleton=LSP_14)
    assert init_source(cascade, 1).name == "stage_1_regressor"
    assert init_source(cascade, 3).name == "stage_3_refiner"
    assert init_source(cascade, 4).name == "stage_3_refiner"  # a stage it lacks: its last
    assert init_source(stage1, 2) is stage1


@pytest.mark.parametrize("head", ["pool", "integral"])
def test_cli_starts_a_deeppose_cascade_from_a_heatmap_model(tmp_path, capsys, head):
    """``--model deeppose --init`` a SimpleBaselines ResNet: the cascade takes its backbone,
    width, depth and input size; both stages start from its backbone (the integral head:
    from its upsampling head and maps too); the card says so."""
    source = build_heatmap_model("simplebaseline", COCO_17, backbone="resnet", depth=10,
                                 width=0.125, input_size=64, deconv_filters=256)
    path = tmp_path / "heatmaps.keras"
    source.save(path)
    out = tmp_path / "run"
    status = main(["train", "--model", "deeppose", "--init", str(path), "--stages", "2",
                   "--data", "synthetic:6:9", "--out", str(out), "--epochs", "1",
                   "--steps-per-epoch", "1", "--batch-size", "4", "--strategy", "default",
                   "--lr", "1e-9", "--option", f"head={head}", "--option", "loss=l1",
                   "--option", "crop_size=32"])
    assert status == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f"stage 1: init from {path}: copied" in printed
    assert f"stage 2: init from {path}: copied" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["backbone"], config["width"], config["input_size"]) == ("resnet", 0.125, 64)
    assert config["model_options"]["depth"] == 10
    cascade = load_model(out / "model.keras")
    info = describe(cascade)
    assert info.options["init_from"]["card"]["family"] == "simplebaseline"
    # At a rate of 1e-9 one step leaves the copied backbone as it was.
    given = weight_paths(source)
    kernels = ["resnet/resnet_stem_conv/kernel"]
    if head == "integral":
        kernels += ["deconv3/kernel", "stage_1_maps/kernel"]
    for stage in ("stage_1_regressor", "stage_2_refiner"):
        grown = weight_paths(cascade.get_layer(stage))
        for kernel in kernels:
            np.testing.assert_allclose(grown[kernel].numpy(), given[kernel].numpy(),
                                       atol=1e-6)


def test_evaluate_reports_every_stage_of_a_cascade(people):
    """``kpose evaluate`` of a cascade scores each stage; the last is what predict returns."""
    from kpose.data.specs import LoadedData
    from kpose.evaluation import evaluate
    from kpose.prediction import inference_model
    from kpose.data.crop_inference import predict_record_keypoints

    keras.utils.set_random_seed(1)
    stage1 = build_deeppose(COCO_17, input_size=64, learning_rate=None, **RESNET)
    refiner = build_deeppose_refiner(COCO_17, crop_size=32, learning_rate=None, **RESNET)
    weights = [w.numpy() for w in refiner.weights]
    refiner.get_layer("displacements_dense").kernel.assign(
        np.random.default_rng(0).normal(0, 0.05, weights[-2].shape).astype("float32"))
    cascade = build_deeppose_cascade(stage1, [refiner, refiner], sigma=1.0, skeleton=COCO_17)
    report = evaluate(cascade, LoadedData("synthetic", people, COCO_17))
    assert list(report["stages"]) == ["stage_1", "stage_2", "stage_3"]
    # Stage 1 is stage 1's own prediction and the refiners move it.
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    staged = build_deeppose_stage_keypoints(cascade).predict(images, verbose=0)
    np.testing.assert_allclose(staged["stage_1"][..., :2],
                               stage1.predict(images, verbose=0) * 64 + 31.5, atol=1e-4)
    assert np.abs(staged["stage_3"] - staged["stage_1"]).max() > 0.01
    final = predict_record_keypoints(inference_model(cascade), people, COCO_17,
                                     input_size=(64, 64), decode=lambda o: {"k": np.asarray(o)})
    from kpose.metrics import pck
    truth = np.stack([r.keypoints for r in people])
    assert report["final"]["PCK@0.2"]["value"] == pytest.approx(
        pck(final["k"], truth, COCO_17, alpha=0.2).value)
    assert report["stages"]["stage_3"]["PCK@0.2"] == pytest.approx(
        report["final"]["PCK@0.2"]["value"])


def test_a_deeppose_run_starts_from_a_deeppose_cascade_stage_by_stage(tmp_path, capsys):
    """``--init CASCADE.keras``: the new cascade is built as the old one (stage count,
    backbone, head, crop and cascade sizes), and each stage starts from its counterpart,
    output layer included."""
    stage1 = build_deeppose(COCO_17, input_size=64, head="pool", loss="l1", **RESNET)
    refiner = build_deeppose_refiner(COCO_17, crop_size=32, head="pool", loss="l1",
                                     **RESNET)
    for model in (stage1, refiner):
        dense = model.layers[-3]
        dense.kernel.assign(np.full(dense.kernel.shape, 0.01, "float32"))
    cascade = build_deeppose_cascade(stage1, [refiner], sigma=1.0, skeleton=COCO_17,
                                     input_size=96)
    path = tmp_path / "cascade.keras"
    cascade.save(path)
    out = tmp_path / "run"
    status = main(["train", "--init", str(path), "--data", "synthetic:6:9", "--out",
                   str(out), "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                   "--strategy", "default", "--lr", "1e-9"])
    assert status == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "stage 1: init from" in printed and "stage 2: init from" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["stages"], config["input_size"]) == ("deeppose", 2, 64)
    assert config["model_options"] | {"head": "pool", "loss": "l1", "crop_size": 32,
                                      "cascade_input_size": 96} == config["model_options"]
    grown = load_model(out / "model.keras")
    for stage, dense in (("stage_1_regressor", "keypoints_dense"),
                         ("stage_2_refiner", "displacements_dense")):
        kernel = grown.get_layer(stage).get_layer(dense).kernel.numpy()
        np.testing.assert_allclose(kernel, 0.01, atol=1e-6)
