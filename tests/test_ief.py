"""Iterative Error Feedback: DeepPose's stage 1 with ``iterations > 1`` corrects its own
estimate inside one graph. Layers on known values, training through ``kpose train``,
per-iteration evaluation, ``--init`` from a heatmap model, export, and bad options."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kpose.cli import main
from kpose.data import make_dataset, read_coco, write_synthetic_dataset
from kpose.models import build_deeppose
from kpose.models.families import build_heatmap_model
from kpose.models.ief import BoundedStep, RenderJoints
from kpose.models.transfer import transfer_weights
from kpose.runs import load_model
from kpose.skeletons import COCO_17, LSP_14

IEF = dict(backbone="resnet", depth=10, width=0.125, head="pool", iterations=3)


def test_drawn_joints_peak_where_the_normalised_coordinates_say():
    # x_n = (u - (W - 1) / 2) / W: x_n = 0 is pixel 15.5 of 32; x_n = 0.25 is pixel 23.5.
    joints = np.array([[[0.0, 0.0], [0.25, -0.25], [-0.5 + 0.5 / 32, -0.5 / 32]]], np.float32)
    maps = np.asarray(RenderJoints((32, 32), sigma=2.0)(joints))
    assert maps.shape == (1, 32, 32, 3)
    for k, (u, v) in enumerate([(15.5, 15.5), (23.5, 7.5), (0.0, 15.0)]):
        row, column = np.unravel_index(maps[0, ..., k].argmax(), (32, 32))
        assert abs(column - u) <= 0.5 and abs(row - v) <= 0.5
    # Peak 1 where a joint sits on a pixel centre (joint 2: pixel (0, 15)), a Gaussian of
    # sigma 2 px around it.
    assert maps[0, 15, 0, 2] == pytest.approx(1.0, abs=1e-6)
    assert maps[0, 15, 2, 2] == pytest.approx(np.exp(-4 / 8), rel=1e-5)


def test_a_step_moves_each_coordinate_by_at_most_max_step():
    previous = np.zeros((1, 2, 2), np.float32)
    raw = np.array([[[100.0, -100.0], [0.001, 0.0]]], np.float32)
    moved = np.asarray(BoundedStep(0.1)([previous, raw]))
    np.testing.assert_allclose(moved[0, 0], [0.1, -0.1], atol=1e-6)  # bounded
    assert moved[0, 1, 0] == pytest.approx(0.001, rel=1e-3)  # small steps pass as they are


def test_a_fresh_model_outputs_every_iteration_at_its_initial_pose():
    model = build_deeppose(LSP_14, input_size=64, learning_rate=None, **IEF)
    assert model.output_names == ["iteration_1", "iteration_2", "keypoints"]
    model.get_layer("initial_pose").pose.assign(np.full((14, 2), 0.1, np.float32))
    outputs = model(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    for name in model.output_names:  # the correction layer starts at zero
        np.testing.assert_allclose(np.asarray(outputs[name]), 0.1, atol=1e-6)
    assert all(outputs[name].dtype == "float32" for name in model.output_names)
    # One ResNet serves every iteration: the weights do not grow with T.
    four = build_deeppose(LSP_14, input_size=64, learning_rate=None, **{**IEF, "iterations": 4})
    assert four.count_params() == model.count_params()
    assert model.get_layer("resnet").inputs[0].shape[-1] == 3 + 14


@pytest.fixture(scope="module")
def ief_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ief") / "run"
    assert main(["train", "--model", "deeppose", "--data", "synthetic:8:3", "--out", str(out),
                 "--backbone", "resnet", "--width", "0.125", "--input-size", "64",
                 "--stages", "1", "--epochs", "4", "--steps-per-epoch", "15",
                 "--batch-size", "8", "--lr", "0.003", "--strategy", "default",
                 "--option", "depth=10", "--option", "head=pool", "--option", "loss=l1",
                 "--option", "dropout=0.0", "--option", "iterations=3"]) == 0
    return out


def test_every_iteration_learns_with_model_fit(tmp_path):
    people = read_coco(write_synthetic_dataset(tmp_path, num=8, seed=3, size=96,
                                               progress=False))
    keras.utils.set_random_seed(0)
    model = build_deeppose(COCO_17, input_size=64, loss="l1", dropout=0.0, learning_rate=3e-3,
                           **IEF)
    names = model.output_names
    data = make_dataset(people, COCO_17, input_size=64, target="coords", batch_size=8)
    data = data.map(lambda images, joints: (images, {name: joints for name in names}))
    history = model.fit(data.repeat(), epochs=6, steps_per_epoch=5, verbose=0).history
    for name in names:
        losses = history[f"{name}_loss"]
        assert losses[-1] < 0.6 * losses[0], (name, losses)


def test_kpose_train_fits_a_loss_per_iteration_and_saves_them(ief_run):
    rows = (ief_run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for column in ("iteration_1_loss", "iteration_2_loss", "keypoints_loss"):
        values = [float(row.split(",")[header.index(column)]) for row in rows[1:]]
        assert values[-1] < values[0], (column, values)  # augmented crops: slower
    model = load_model(ief_run / "model.keras")
    assert model.output_names == ["iteration_1", "iteration_2", "keypoints"]


def test_evaluate_reports_every_iteration(ief_run, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert main(["evaluate", str(ief_run), "--data", "synthetic:8:5", "--json",
                 str(report)]) == 0
    stages = json.loads(report.read_text())["stages"]
    assert list(stages) == ["iteration_1", "iteration_2", "stage_1"]
    assert all(0.0 <= stages[name]["PCK@0.2"] <= 1.0 for name in stages)


def test_init_from_a_heatmap_model_copies_the_image_channels_and_zeros_the_joints():
    source = build_heatmap_model("simplebaseline", LSP_14, input_size=64, backbone="resnet",
                                 depth=10, width=0.125, learning_rate=None)
    target = build_deeppose(LSP_14, input_size=64, learning_rate=None, **IEF)
    report = transfer_weights(source, target, source_name="heatmaps")
    assert report.widened == ["resnet/resnet_stem_conv/kernel"]
    stem = np.asarray(target.get_layer("resnet").get_layer("resnet_stem_conv").kernel)
    original = np.asarray(source.get_layer("resnet").get_layer("resnet_stem_conv").kernel)
    np.testing.assert_array_equal(stem[:, :, :3], original)
    assert not stem[:, :, 3:].any()
    assert "widened" not in report.fresh and "correction_dense/kernel" in report.fresh


def test_init_from_an_ief_run_builds_the_same_model(ief_run, tmp_path):
    from kpose.training.run import architecture_of

    source = load_model(ief_run / "model.keras")
    model, size, stages, width, backbone, options = architecture_of(
        source, model=None, input_size=None, stages=None, width=None, backbone=None,
        options={})
    assert (model, size, stages, width, backbone) == ("deeppose", 64, 1, 0.125, "resnet")
    assert options["iterations"] == 3 and options["head"] == "pool"


def test_an_ief_model_exports_to_tflite_matching_keras(ief_run, tmp_path):
    from export import export_model

    result = export_model(ief_run, tmp_path / "export", calibration_data="synthetic:12:4",
                          verify_samples=6, latency_runs=1, verbose=False)
    assert result.failed_checks == [], result.text
    assert result.report["files"][0]["max_px"] < 0.01


@pytest.mark.parametrize("options, message", [
    ({"iterations": 0}, "iterations must be an integer >= 1"),
    ({"iterations": 3, "head": "fc"}, "backbone 'resnet' with head 'pool'"),
    ({"iterations": 3, "head": "pool", "backbone": "alexnet"}, "backbone 'resnet'"),
    ({**IEF, "max_step": 0.0}, "max_step must be in"),
    ({**IEF, "with_visibility": True}, "no visibility output"),
])
def test_bad_ief_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        build_deeppose(LSP_14, input_size=64, learning_rate=None, **options)


def test_ief_with_refiners_is_refused_in_one_line(tmp_path, capsys):
    status = main(["train", "--model", "deeppose", "--data", "synthetic:8:3", "--out",
                   str(tmp_path / "run"), "--backbone", "resnet", "--stages", "2",
                   "--option", "head=pool", "--option", "iterations=3"])
    assert status == 1
    assert "use stages=1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
