"""A model says what it is: a bare ``.keras`` file, copied away from its run folder, loads,
predicts, evaluates and exports with its skeleton, codec, input size and family read from
the file (custom skeletons included)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import kpose
from export import export_model
from kpose.cli import main
from kpose.codecs import BeliefMapCodec, CoordinateCodec
from kpose.data import PoseRecord, read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.evaluation import evaluate
from kpose.models import (build_cpm, build_deeppose, build_deeppose_cascade,
                          build_deeppose_refiner)
from kpose.models.card import ModelInfo, describe, model_family, stage_outputs
from kpose.skeletons import COCO_17, LSP_14, Skeleton
from kpose.training import train

# Five of COCO's joints under new names: no shipped skeleton has 5 joints.
FIVE = Skeleton(name="five", joint_names=("head", "left_arm", "right_arm", "left_leg",
                                          "right_leg"),
                flip_pairs=((1, 2), (3, 4)), limbs=(("arms", 1, 2), ("legs", 3, 4)),
                torso=(1, 4), head=(0, 1), oks_sigmas=(0.05,) * 5)
FROM_COCO = [COCO_17.index(n) for n in ("nose", "left_shoulder", "right_shoulder",
                                        "left_hip", "right_hip")]


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> LoadedData:
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=12, seed=3, size=96,
                                                progress=False))
    return LoadedData("synthetic:12:3", records, COCO_17)


@pytest.fixture(scope="module")
def five_people(people) -> LoadedData:
    records = [PoseRecord(r.image_path, r.box, r.keypoints[FROM_COCO], "five", r.image_size)
               for r in people.records]
    return LoadedData("five", records, FIVE)


@pytest.fixture(scope="module")
def bare_five(five_people, tmp_path_factory):
    """A CPM trained on the custom skeleton, its model.keras copied out of the run."""
    runs = tmp_path_factory.mktemp("runs")
    train("cpm", five_people, out_dir=runs / "run", input_size=64, stages=2, width=0.125,
          epochs=1, steps_per_epoch=2, batch_size=4, sigma=1.5, strategy="default",
          verbose=0)
    bare = tmp_path_factory.mktemp("elsewhere") / "five.keras"
    shutil.copy(runs / "run" / "model.keras", bare)
    shutil.rmtree(runs / "run")
    return bare


def test_a_bare_file_knows_its_custom_skeleton_codec_size_and_family(bare_five):
    model = kpose.load_model(bare_five)
    info = describe(model)
    assert info.skeleton == FIVE  # the whole definition, flip pairs and limbs included
    assert info.codec == BeliefMapCodec(stride=8, sigma=1.5, background=True)
    assert info.input_size == (64, 64) and info.margin == 1.25
    assert model_family(model) == "cpm" and stage_outputs(model) == ["stage_1", "stage_2"]
    assert info.options["batchnorm"] is True  # kpose.train's recipe, recorded


def test_predict_and_evaluate_a_bare_file(bare_five, five_people, capsys):
    image = five_people.records[0].image_path
    assert main(["predict", str(bare_five), image, "--box", "10,5,70,85"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [j["joint"] for j in found[0]["keypoints"]] == list(FIVE.joint_names)
    report = evaluate(bare_five, five_people)
    assert list(report["stages"]) == ["stage_1", "stage_2"] and report["persons"] == 12


def test_export_reads_the_card_of_a_bare_file(bare_five, five_people, tmp_path):
    result = export_model(bare_five, tmp_path / "out", calibration_data=five_people,
                          calibration_samples=8, verify_samples=8, latency_runs=1,
                          verbose=False)
    assert result.metadata["skeleton"]["name"] == "five"
    assert result.metadata["codec"] == {"kind": "belief_maps", "stride": 8, "sigma": 1.5,
                                        "background": True}
    assert result.report["files"][0]["max_px"] <= 0.01


def test_cli_evaluates_and_exports_a_bare_coco_file(people, tmp_path, capsys):
    bare = tmp_path / "copied" / "cpm.keras"
    bare.parent.mkdir()
    build_cpm(COCO_17, stages=1, input_size=64, width=0.125, learning_rate=None).save(bare)
    assert main(["evaluate", str(bare), "--data", "synthetic:12:3"]) == 0
    assert "stage_1" in capsys.readouterr().out
    from export.cli import main as export_main

    assert export_main([str(bare), "--tflite", "--calibration-data", "synthetic:12:3",
                        "--calibration-samples", "8", "--verify-samples", "8",
                        "--latency-runs", "1", "--out", str(tmp_path / "export")]) == 0


@pytest.mark.parametrize("kind", ["mobile_cpm", "deeppose_cascade"])
def test_mobile_cpm_and_deeppose_cascade_carry_their_cards(kind, tmp_path):
    if kind == "mobile_cpm":
        model = build_cpm(LSP_14, stages=2, input_size=64, width=0.35,
                          backbone="mobilenetv2", learning_rate=None)
        expected = ("cpm", BeliefMapCodec(8, 1.0, True))
    else:
        stage1 = build_deeppose(LSP_14, input_size=64, width=0.125, learning_rate=None)
        refiner = build_deeppose_refiner(LSP_14, crop_size=64, width=0.125,
                                         learning_rate=None)
        model = build_deeppose_cascade(stage1, [refiner], sigma=1.0, skeleton=LSP_14)
        expected = ("deeppose", CoordinateCodec())
    model.save(tmp_path / "model.keras")
    loaded = kpose.load_model(tmp_path / "model.keras")
    info = describe(loaded)
    assert (info.family, info.codec) == expected and info.skeleton == LSP_14
    image = np.full((40, 30, 3), 128, np.uint8)
    keypoints = kpose.predict(loaded, [image])
    assert keypoints.shape == (1, 14, 3) and np.isfinite(keypoints).all()


def test_a_card_round_trips_through_its_config():
    info = ModelInfo("hourglass", FIVE, BeliefMapCodec(4, 2.0, False), (128, 96), 1.1,
                     {"stacks": 2})
    assert ModelInfo.from_config(json.loads(json.dumps(info.get_config()))) == info
    with pytest.raises(ValueError, match="unknown model family"):
        ModelInfo.from_config({**info.get_config(), "family": "openpose"})
