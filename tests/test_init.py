"""Starting a model from a trained one (``--init``): what is copied, mapped and fresh."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.models.card import describe
from kpose.models.families import build_heatmap_model
from kpose.models.transfer import transfer_weights, weight_paths
from kpose.skeletons import COCO_17, LSP_14
from kpose.training import train

TINY = dict(input_size=64, width=0.25)
SMALL = dict(batch_size=4, steps_per_epoch=2, epochs=1, strategy="default", verbose=0)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=6, seed=9, size=96,
                                                progress=False))
    return LoadedData("synthetic:6:9", records, COCO_17)


@pytest.fixture(scope="module")
def lsp_model(tmp_path_factory):
    """A SimpleBaselines MobileNetV2 model for LSP's 14 joints, saved as a .keras file."""
    model = build_heatmap_model("simplebaseline", LSP_14, backbone="mobilenetv2",
                                deconv_filters=64, **TINY)
    path = tmp_path_factory.mktemp("lsp") / "lsp.keras"
    model.save(path)
    return model, path


def test_same_family_and_skeleton_copies_every_weight(people, lsp_model, tmp_path):
    source = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                 deconv_filters=64, **TINY)
    path = tmp_path / "coco.keras"
    source.save(path)
    started, _ = train(None, people, out_dir=tmp_path / "run", init=str(path),
                       learning_rate=1e-9, **SMALL)  # a step that leaves the weights be
    assert describe(started).family == "simplebaseline"
    assert describe(started).options["deconv_filters"] == 64  # the source's architecture
    fresh = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                deconv_filters=64, **TINY)
    report = transfer_weights(source, fresh)
    assert not report.fresh and not report.per_joint
    for a, b in zip(source.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["init"] == str(path) and config["model"] == "simplebaseline"
    assert "depth" not in config["model_options"]  # a ResNet's option, not MobileNetV2's


def test_another_skeleton_keeps_the_backbone_and_the_shared_joints(lsp_model):
    source, _ = lsp_model
    target = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                 deconv_filters=64, **TINY)
    before = {p: np.array(v) for p, v in weight_paths(target).items()}
    report = transfer_weights(source, target, source_name="lsp.keras")
    assert report.per_joint == ["stage_1_maps/kernel", "stage_1_maps/bias"]
    shared = [n for n in COCO_17.joint_names if n in LSP_14.joint_names]
    assert len(shared) == 12 and report.joints_copied == shared
    assert report.joints_fresh == ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    old = {p: np.array(v) for p, v in weight_paths(source).items()}
    new = {p: np.array(v) for p, v in weight_paths(target).items()}
    for joint in COCO_17.joint_names:
        column = new["stage_1_maps/kernel"][..., COCO_17.joint_names.index(joint)]
        if joint in shared:
            np.testing.assert_array_equal(
                column, old["stage_1_maps/kernel"][..., LSP_14.joint_names.index(joint)])
        else:  # fresh: as the new model was built
            np.testing.assert_array_equal(
                column, before["stage_1_maps/kernel"][..., COCO_17.joint_names.index(joint)])
    backbone = [p for p in new if p.startswith("mobilenetv2/")]
    assert backbone and all(np.array_equal(new[p], old[p]) for p in backbone)
    summary = report.summary()
    assert "joints copied: right_shoulder" not in summary  # COCO's order, not LSP's
    assert "joints fresh: nose, left_eye" in summary


@pytest.mark.parametrize("iterations", [1, 3])
def test_a_regressor_for_another_skeleton_keeps_the_shared_joints_coordinates(iterations):
    from kpose.models import build_deeppose

    options = dict(backbone="resnet", depth=10, width=0.125, head="pool", input_size=64,
                   iterations=iterations, learning_rate=None)
    source = build_deeppose(LSP_14, **options)
    head = "correction_dense" if iterations > 1 else "keypoints_dense"
    rng = np.random.default_rng(0)
    for variable in source.get_layer(head).weights:  # a trained head: no zeros
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    target = build_deeppose(COCO_17, **options)
    report = transfer_weights(source, target, source_name="lsp")
    per_joint = [f"{head}/kernel", f"{head}/bias"] + (
        ["initial_pose/pose"] if iterations > 1 else [])
    assert sorted(report.per_joint) == sorted(per_joint)
    assert report.joints_fresh == ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    old = np.asarray(source.get_layer(head).kernel)
    new = np.asarray(target.get_layer(head).kernel)
    for j, joint in enumerate(COCO_17.joint_names):
        units = new[:, 2 * j:2 * j + 2]
        if joint in LSP_14.joint_names:
            i = LSP_14.joint_names.index(joint)
            np.testing.assert_array_equal(units, old[:, 2 * i:2 * i + 2])
        else:  # fresh: the zero output layer it was built with
            assert not units.any()


def test_another_family_takes_the_backbone(lsp_model):
    source, _ = lsp_model
    target = build_heatmap_model("cpm", LSP_14, stages=2, backbone="mobilenetv2", **TINY)
    report = transfer_weights(source, target)
    assert report.copied and all(p.startswith("mobilenetv2/") for p in report.copied)
    assert any(p.startswith("stage_") for p in report.fresh)


def test_a_model_that_nothing_fits_is_refused_naming_it(lsp_model, people, tmp_path,
                                                        capsys):
    _, path = lsp_model
    status = main(["train", "--model", "hourglass", "--init", str(path), "--data",
                   "synthetic:6:9", "--out", str(tmp_path / "run"), "--input-size", "64",
                   "--width", "0.25", "--epochs", "1", "--steps-per-epoch", "1"])
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"nothing of {path} fits the new model" in error
    assert not (tmp_path / "run").exists()


def test_cli_fine_tunes_a_shipped_model_on_another_skeleton(people, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--init", "pretrained:lsp-simplebaseline-mnv2",
                   "--data", "synthetic:6:9", "--out", str(out), "--epochs", "1",
                   "--steps-per-epoch", "1", "--batch-size", "2", "--strategy", "default"])
    assert status == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "init from pretrained:lsp-simplebaseline-mnv2: copied" in printed
    assert "joints fresh: nose, left_eye, right_eye, left_ear, right_ear" in printed
    from kpose.runs import load_model

    info = describe(load_model(out / "model.keras"))
    assert info.skeleton == COCO_17 and info.input_size == (192, 192)
    grown = info.options["init_from"]
    assert grown["model"] == "pretrained:lsp-simplebaseline-mnv2"
    assert grown["card"]["skeleton"]["name"] == "lsp_14"
