"""Distillation: a teacher's maps blended into the targets; the teacher never changes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.models.card import describe
from kpose.models.families import build_heatmap_model
from kpose.skeletons import COCO_17, LSP_14
from kpose.training import train
from kpose.training.distill import distill_targets

SMALL = dict(input_size=64, width=0.25, batch_size=4, strategy="default", verbose=0)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=8, seed=7, size=96,
                                                progress=False))
    return LoadedData("synthetic:8:7", records, COCO_17)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, people):
    out = tmp_path_factory.mktemp("teacher") / "run"
    train("simplebaseline", people, out_dir=out, epochs=1, steps_per_epoch=2,
          backbone="mobilenetv2", **SMALL)
    return out


def _one_batch(student, maps_value: float):
    """A batch of 2 images and a ``stage_1`` target filled with ``maps_value``."""
    info = describe(student)
    h, w = info.codec.map_size(info.input_size)
    channels = info.codec.channels(info.skeleton.num_joints)
    images = tf.random.stateless_uniform((2, *info.input_size, 3), (1, 2), 0, 255)
    targets = {"stage_1": tf.fill((2, h, w, channels), maps_value)}
    return tf.data.Dataset.from_tensors((images, targets))


def test_the_target_is_the_weighted_mean_of_labels_and_teacher_maps():
    teacher = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                  input_size=96, width=0.25)  # another input size
    student = build_heatmap_model("cpm", COCO_17, stages=1, input_size=64, width=0.25)
    images, _ = next(iter(_one_batch(student, 0.0)))
    shrunk = tf.image.resize(images, (96, 96))
    taught = tf.image.resize(teacher(shrunk, training=False)["stage_1"], (8, 8))
    _, blended = next(iter(distill_targets(_one_batch(student, 1.0), teacher, student,
                                           weight=0.25)))
    joints = blended["stage_1"][..., :17].numpy()
    np.testing.assert_allclose(joints, 0.75 * 1.0 + 0.25 * taught.numpy(), atol=1e-5)
    # The CPM's background map follows the blended joints: 1 - max.
    np.testing.assert_allclose(blended["stage_1"][..., 17], 1 - joints.max(-1), atol=1e-6)


def test_temperature_widens_the_teacher_peaks():
    teacher = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                  input_size=64, width=0.25)
    student = build_heatmap_model("simplebaseline", COCO_17, backbone="mobilenetv2",
                                  input_size=64, width=0.25)
    images, _ = next(iter(_one_batch(student, 0.0)))
    raw = np.maximum(teacher(images, training=False)["stage_1"].numpy(), 0)
    _, soft = next(iter(distill_targets(_one_batch(student, 0.0), teacher, student,
                                        weight=1.0, temperature=2.0)))
    np.testing.assert_allclose(soft["stage_1"].numpy(), np.sqrt(raw), rtol=1e-4, atol=1e-5)


def test_a_teacher_on_another_skeleton_or_a_bad_weight_is_refused(people, tmp_path):
    other = build_heatmap_model("simplebaseline", LSP_14, backbone="mobilenetv2",
                                input_size=64, width=0.25)
    with pytest.raises(ValueError, match="teacher .* predicts skeleton 'lsp_14' but the "
                                         "student 'coco_17'"):
        train("simplebaseline", people, out_dir=tmp_path / "a", epochs=1, steps_per_epoch=1,
              teacher=other, **SMALL)
    with pytest.raises(ValueError, match="distill_weight must be in"):
        train("simplebaseline", people, out_dir=tmp_path / "b", epochs=1,
              steps_per_epoch=1, teacher=other, distill_weight=1.5, **SMALL)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_student_learns_from_a_teacher_whose_weights_do_not_change(people, teacher,
                                                                       tmp_path, capsys):
    from kpose.runs import load_model

    before = [w.copy() for w in load_model(teacher).get_weights()]
    out = tmp_path / "student"
    status = main(["train", "--model", "cpm", "--data", "synthetic:8:7", "--out", str(out),
                   "--teacher", str(teacher), "--distill-weight", "0.5",
                   "--input-size", "64", "--width", "0.25", "--stages", "2",
                   "--epochs", "4", "--steps-per-epoch", "5", "--batch-size", "4",
                   "--lr", "3e-3", "--strategy", "default"])
    assert status == 0, capsys.readouterr().err
    losses = [float(row["loss"]) for row in csv.DictReader((out / "metrics.csv").open())]
    assert losses[-1] < losses[0], losses
    config = json.loads((out / "config.json").read_text())
    assert config["teacher"] == str(teacher) and config["distill_weight"] == 0.5
    after = load_model(teacher).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
