"""Recipe options of a run: learning-rate warm-up and the augmentation ranges, half-body
crops among them."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.augment import (NO_AUGMENTATION, Augmentation, augmentation_from,
                                lower_body_joints)
from kpose.data.pipeline import make_dataset
from kpose.data.records import PoseRecord
from kpose.data.specs import LoadedData
from kpose.skeletons import COCO_17, LSP_14
from kpose.training import train
from kpose.training.cascade import stage_rate

from conftest import train_killed_and_resumed

SMALL = dict(input_size=64, stages=2, width=0.25, batch_size=4, steps_per_epoch=2,
             strategy="default", verbose=0)
INPUT = 96
# A standing person on a 200 x 300 image: (x, y) of every COCO joint.
BODY = {"nose": (100, 30), "left_eye": (105, 25), "right_eye": (95, 25),
        "left_ear": (110, 28), "right_ear": (90, 28), "left_shoulder": (120, 80),
        "right_shoulder": (80, 80), "left_elbow": (130, 120), "right_elbow": (70, 120),
        "left_wrist": (135, 160), "right_wrist": (65, 160), "left_hip": (112, 170),
        "right_hip": (88, 170), "left_knee": (114, 230), "right_knee": (86, 230),
        "left_ankle": (116, 290), "right_ankle": (84, 290)}


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=8, seed=5, size=96,
                                                progress=False))
    return LoadedData("synthetic:8:5", records, COCO_17)


def _standing_person(tmp_path, labelled=None) -> PoseRecord:
    path = tmp_path / "person.png"
    Image.fromarray(np.zeros((300, 200, 3), np.uint8)).save(path)
    keypoints = np.zeros((COCO_17.num_joints, 3), np.float32)
    for name, (x, y) in BODY.items():
        if labelled is None or name in labelled:
            keypoints[COCO_17.index(name)] = (x, y, 2)
    return PoseRecord(str(path), (50, 10, 100, 285), keypoints, "coco_17", (200, 300))


def _crop_keypoints(record, augmentation, seed):
    dataset = make_dataset([record], COCO_17, input_size=INPUT, target="none", training=True,
                           batch_size=1, seed=seed, augmentation=augmentation, with_meta=True)
    return next(iter(dataset))[2]["keypoints"].numpy()[0]


def _inside(keypoints, names):
    xy = keypoints[[COCO_17.index(name) for name in names], :2]
    return bool(np.all((xy >= 0) & (xy <= INPUT - 1)))


def test_lower_body_is_hips_knees_and_ankles():
    assert [LSP_14.joint_names[j] for j in np.flatnonzero(lower_body_joints(LSP_14))] == [
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle"]
    assert lower_body_joints(COCO_17).sum() == 6


def test_half_body_crops_frame_the_upper_or_the_lower_body(tmp_path):
    record = _standing_person(tmp_path)
    upper = [name for name in BODY if not any(w in name for w in ("hip", "knee", "ankle"))]
    lower = [name for name in BODY if name not in upper]
    whole = _crop_keypoints(record, NO_AUGMENTATION, seed=0)
    assert _inside(whole, BODY)
    only_half_body = dataclasses.replace(NO_AUGMENTATION, half_body=1.0)
    seen = set()
    for seed in range(8):
        keypoints = _crop_keypoints(record, only_half_body, seed)
        if _inside(keypoints, upper):
            assert not _inside(keypoints, ["left_ankle"]), "an upper-body crop holds an ankle"
            seen.add("upper")
        else:
            assert _inside(keypoints, lower) and not _inside(keypoints, ["nose"])
            seen.add("lower")
        # The half fills the crop: its joints span more of the input than in the whole crop.
        half = upper if "upper" in seen and _inside(keypoints, upper) else lower
        rows = [COCO_17.index(name) for name in half]
        assert np.ptp(keypoints[rows, 1]) > 1.4 * np.ptp(whole[rows, 1])
    assert seen == {"upper", "lower"}


def test_a_person_with_few_labelled_joints_is_cropped_whole(tmp_path):
    record = _standing_person(tmp_path, labelled=["nose", "left_wrist", "left_knee",
                                                  "left_ankle", "right_ankle"])
    only_half_body = dataclasses.replace(NO_AUGMENTATION, half_body=1.0)
    for seed in range(3):
        np.testing.assert_allclose(_crop_keypoints(record, only_half_body, seed),
                                   _crop_keypoints(record, NO_AUGMENTATION, seed), atol=1e-4)


def test_augmentation_options_fill_in_defaults_and_name_what_is_wrong():
    chosen = augmentation_from({"rotation": 30, "scale": [0.75, 1.25], "half_body": 0.3})
    assert (chosen.rotation, chosen.scale, chosen.half_body, chosen.flip) == (
        30.0, (0.75, 1.25), 0.3, 0.5)
    assert augmentation_from(chosen.to_options()) == chosen
    assert augmentation_from(None) == Augmentation()
    for options, message in [({"rotate": 30}, "augmentation has no field rotate"),
                             ({"half_body": 1.5}, "half_body is a probability in [0, 1]"),
                             ({"scale": [1.2]}, "scale must be two numbers"),
                             ({"scale": [1.3, 0.7]}, "0 < low <= high"),
                             ({"rotation": "a lot"}, "rotation must be a finite number")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            augmentation_from(options)


def test_warmup_rises_linearly_then_follows_the_schedule():
    cosine = stage_rate(1e-3, "cosine", 100, warmup_steps=10)
    rates = [float(cosine(step)) for step in (0, 5, 10, 55, 100)]
    np.testing.assert_allclose(rates, [1e-6, 5.005e-4, 1e-3, 5e-4, 0.0], atol=1e-8)
    constant = stage_rate(1e-3, "constant", 100, warmup_steps=10)
    np.testing.assert_allclose([float(constant(s)) for s in (0, 10, 99)], [1e-6, 1e-3, 1e-3],
                               atol=1e-8)
    assert stage_rate(1e-3, "constant", 100) == 1e-3
    with pytest.raises(ValueError, match="fewer than the stage's 100 steps"):
        stage_rate(1e-3, "cosine", 100, warmup_steps=100)


def test_cli_records_the_recipe_options_and_refuses_other_ones_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--model", "simplebaseline", "--data", "synthetic:8:5", "--out",
              str(out), "--input-size", "64", "--width", "0.25", "--batch-size", "4",
              "--steps-per-epoch", "2", "--epochs", "1", "--strategy", "default"]
    recipe = ["--warmup-steps", "1", "--rotation", "20", "--scale-range", "0.8", "1.2",
              "--half-body", "0.3"]
    assert main([*common, *recipe]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["warmup_steps"] == 1
    assert config["augmentation"] == {**Augmentation().to_options(), "rotation": 20.0,
                                      "scale": [0.8, 1.2], "half_body": 0.3}
    capsys.readouterr()
    assert main([*common, "--epochs", "2", "--resume", *recipe[:-1], "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume" in err[0] and "augmentation" in err[0]


@pytest.mark.parametrize("option,value,message", [
    ("--warmup-steps", "4", "warmup_steps (4) must be fewer than the 4 steps the run trains"),
    ("--warmup-steps", "-1", "warmup_steps must be an integer >= 0, got -1"),
    ("--half-body", "2", "Augmentation.half_body is a probability in [0, 1], got 2.0"),
    ("--rotation", "-5", "Augmentation.rotation must be >= 0, got -5.0"),
])
def test_bad_recipe_options_are_refused_before_the_run_folder_exists(option, value, message,
                                                                    tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic:8:5", "--out", str(out), "--batch-size", "4",
                 "--steps-per-epoch", "2", "--epochs", "2", option, value]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"kpose train: error: {message}"]
    assert not out.exists()


def test_a_killed_run_with_warmup_resumes_onto_the_same_weights(tmp_path, people,
                                                                monkeypatch):
    options = dict(SMALL, learning_rate=1e-2, warmup_steps=3,
                   augmentation={"half_body": 0.5})
    whole, _ = train("cpm", people, out_dir=tmp_path / "whole", epochs=2, **options)
    # After the warm-up: the constant rate, scaled for the batch of 4.
    assert float(np.asarray(whole.optimizer.learning_rate)) == pytest.approx(1e-2 * 4 / 16)
    resumed = train_killed_and_resumed(monkeypatch, "cpm", people, out_dir=tmp_path / "split",
                                       epochs=2, **options)
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=a.path)

