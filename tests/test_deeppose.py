"""DeepPose: stage 1, refiners, the in-graph cascade, losses, refiner data, learning."""

from __future__ import annotations

import colorsys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kpose.data import NO_AUGMENTATION, PoseRecord, box_from_keypoints, make_dataset
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.refiner_data import (JointErrorDistribution, joint_error_distribution,
                                     measure_joint_errors, refiner_dataset)
from kpose.training.cascade import train_deeppose_cascade, with_visibility_targets
from kpose.losses import CoordinateL2Loss, VisibilityLoss
from kpose.models import (build_deeppose, build_deeppose_cascade, build_deeppose_refiner,
                          build_refinement_step)
from kpose.models.layers import LocalResponseNormalisation
from kpose.skeletons import COCO_17, LSP_14, Skeleton

K = LSP_14.num_joints
TINY = {"width": 1 / 16, "learning_rate": None}


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


# --- architecture --------------------------------------------------------------------------

def test_alexnet_stage1_has_the_papers_layer_sizes():
    model = build_deeppose(LSP_14, learning_rate=None)  # 220 px, full width
    alexnet = model.get_layer("alexnet")
    sizes = {layer.name: tuple(layer.output.shape[1:]) for layer in alexnet.layers}
    assert sizes["alexnet_conv1"] == (55, 55, 96)
    assert sizes["alexnet_pool1"] == (27, 27, 96)
    assert sizes["alexnet_conv2"] == (27, 27, 256)
    assert sizes["alexnet_pool2"] == (13, 13, 256)
    assert sizes["alexnet_conv5"] == (13, 13, 256)
    assert sizes["alexnet_pool5"] == (6, 6, 256)
    assert model.get_layer("fc6").units == model.get_layer("fc7").units == 4096
    assert model.get_layer("fc6_dropout").rate == 0.6
    assert tuple(model.output.shape) == (None, K, 2)


@pytest.mark.parametrize("batchnorm", [True, False])
def test_stage1_outputs_float32_keypoints_and_visibility(batchnorm):
    model = build_deeppose(LSP_14, input_size=64, batchnorm=batchnorm, with_visibility=True,
                           **TINY)
    alexnet = model.get_layer("alexnet")
    norms = [l for l in alexnet.layers if isinstance(l, keras.layers.BatchNormalization)]
    lrns = [l for l in alexnet.layers if isinstance(l, LocalResponseNormalisation)]
    assert (len(norms), len(lrns)) == ((5, 0) if batchnorm else (0, 2))
    out = model(_images(2, 64))
    assert tuple(out["keypoints"].shape) == (2, K, 2) and out["keypoints"].dtype == "float32"
    assert tuple(out["visibility"].shape) == (2, K) and out["visibility"].dtype == "float32"


@pytest.mark.parametrize("backbone, width", [("resnet50", 1 / 16), ("mobilenetv2", 0.35)])
def test_other_backbones_keep_the_output_layout(backbone, width):
    model = build_deeppose(COCO_17, input_size=64, backbone=backbone, width=width,
                           learning_rate=None)
    out = model(_images(1, 64))
    assert tuple(out.shape) == (1, 17, 2) and out.dtype == "float32"


def test_refiner_maps_crops_to_displacements_and_starts_as_the_identity_step():
    refiner = build_deeppose_refiner(LSP_14, crop_size=64, **TINY)
    assert refiner.input.name.startswith("crop") and tuple(refiner.input.shape) == (None, 64,
                                                                                     64, 3)
    out = refiner(_images(3, 64))
    assert tuple(out.shape) == (3, K, 2) and out.dtype == "float32"
    np.testing.assert_array_equal(out.numpy(), 0.0)


def test_cascade_is_one_model_from_image_to_every_stage():
    stage1 = build_deeppose(LSP_14, input_size=64, with_visibility=True, **TINY)
    refiners = [build_deeppose_refiner(LSP_14, crop_size=64, name=f"r{s}", **TINY)
                for s in (2, 3)]
    cascade = build_deeppose_cascade(stage1, refiners, sigma=2.0, skeleton=LSP_14,
                                     input_size=96, all_stages=True)
    assert [tuple(t.shape) for t in cascade.inputs] == [(None, 96, 96, 3)]
    out = cascade(_images(2, 96))
    assert sorted(out) == ["stage_1", "stage_2", "stage_3", "visibility"]
    for stage in ("stage_1", "stage_2", "stage_3"):
        assert tuple(out[stage].shape) == (2, K, 2) and out[stage].dtype == "float32"
    # Fresh refiners move nothing; stage 1 saw the image resized to its 64 px.
    np.testing.assert_allclose(out["stage_3"], out["stage_1"], atol=1e-6)
    resized = tf.image.resize(_images(2, 96), (64, 64))  # bilinear, half-pixel centres
    np.testing.assert_allclose(out["stage_1"], stage1(resized)["keypoints"], atol=1e-5)
    final = build_deeppose_cascade(stage1, refiners, sigma=2.0, skeleton=LSP_14)
    assert final.output_names == ["keypoints", "visibility"]


# --- serialisation ---------------------------------------------------------------------------

@pytest.mark.parametrize("batchnorm", [True, False])
def test_stage1_saves_and_reloads_with_identical_outputs(tmp_path, batchnorm):
    model = build_deeppose(LSP_14, input_size=64, batchnorm=batchnorm, width=1 / 16)
    path = tmp_path / "deeppose.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    images = _images(2, 64, seed=1)
    np.testing.assert_array_equal(model.predict(images, verbose=0),
                                  reloaded.predict(images, verbose=0))


def test_cascade_saves_and_reloads_with_identical_outputs(tmp_path):
    keras.utils.set_random_seed(4)
    stage1 = build_deeppose(LSP_14, input_size=64, **TINY)
    refiners = [build_deeppose_refiner(LSP_14, crop_size=size, **TINY) for size in (64, 72)]
    for seed, refiner in enumerate(refiners):
        # Non-zero refiner outputs, so the crops and updates take part in the comparison.
        dense = refiner.get_layer("displacements_dense")
        dense.kernel.assign(np.random.default_rng(seed).normal(0, 0.01, dense.kernel.shape))
    # Stage 4 reuses stage 2's refiner: one shared layer, saved once.
    cascade = build_deeppose_cascade(stage1, [*refiners, refiners[0]], sigma=1.5,
                                     skeleton=LSP_14, input_size=80)
    path = tmp_path / "cascade.keras"
    cascade.save(path)
    reloaded = keras.saving.load_model(path)
    images = _images(2, 80, seed=2)
    before = cascade.predict(images, verbose=0)
    assert np.abs(before - stage1.predict(images[:, 8:72, 8:72], verbose=0)).max() > 0
    np.testing.assert_array_equal(before, reloaded.predict(images, verbose=0))


# --- losses ----------------------------------------------------------------------------------

def test_coordinate_loss_is_the_weighted_squared_error_summed_over_joints():
    y_true = np.array([[[0.1, 0.2, 1.0], [0.3, -0.1, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    y_pred = np.array([[[0.2, 0.0], [5.0, 5.0], [0.1, 0.1]]], np.float32)
    expected = (0.1**2 + 0.2**2) + 0.0 + (0.1**2 + 0.1**2)  # joint 1 unlabelled: weight 0
    assert float(CoordinateL2Loss()(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


def test_visibility_loss_is_binary_cross_entropy_on_logits():
    logits = np.array([[2.0, -1.0]], np.float32)
    labels = np.array([[1.0, 0.0]], np.float32)
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0))])
    assert float(VisibilityLoss()(labels, logits)) == pytest.approx(expected, rel=1e-5)
    coords = np.concatenate([np.zeros((1, 2, 2)), labels[..., None]], -1).astype(np.float32)
    assert float(VisibilityLoss()(coords, logits)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("y_true, message", [
    (np.zeros((2, K, 2), np.float32), r"coordinate target must be \(B, K, 3\)"),
    (np.zeros((2, 2 * K), np.float32), r"coordinate target must be \(B, K, 3\)"),
    (np.zeros((2, 17, 3), np.float32), "target has 17 joints but the model predicts 14"),
])
def test_coordinate_loss_names_a_target_of_the_wrong_shape(y_true, message):
    with pytest.raises(ValueError, match=message):
        CoordinateL2Loss()(y_true, np.zeros((2, K, 2), np.float32))


def test_visibility_loss_names_a_target_of_the_wrong_shape():
    with pytest.raises(ValueError, match="visibility target must be"):
        VisibilityLoss()(np.zeros((2, K, 2, 1), np.float32), np.zeros((2, K), np.float32))


# --- error distributions and refiner data ----------------------------------------------------

def test_joint_errors_are_measured_in_torso_diameters():
    rng = np.random.default_rng(0)
    truth = np.concatenate([rng.uniform(0, 100, (50, K, 2)), np.full((50, K, 1), 2.0)], -1)
    a, b = LSP_14.torso
    truth[:, b, :2] = truth[:, a, :2] + [30.0, 40.0]  # torso diameter 50 px
    offsets = rng.normal([5.0, -10.0], [2.0, 4.0], (50, K, 2))
    truth[0, 3] = 0.0  # an unlabelled joint is left out
    errors = joint_error_distribution(truth[..., :2] + offsets, truth, LSP_14)
    labelled = truth[..., 2] > 0
    np.testing.assert_allclose(errors.mean[3], offsets[labelled[:, 3], 3].mean(0) / 50)
    np.testing.assert_allclose(errors.covariance[5], np.cov(offsets[:, 5].T) / 2500)
    assert errors.count[3] == 49 and errors.count[5] == 50


def test_measure_joint_errors_runs_a_model_over_records(dot_people):
    skeleton, records = dot_people
    data = make_dataset(records, skeleton, input_size=96, target="coords",
                        batch_size=len(records))
    truth = next(iter(data))[1].numpy()[..., :2]
    shift = np.array([2.0 / 96, 0.0], np.float32)  # a "model" 2 input px off to the right
    errors = measure_joint_errors(lambda images, training=False: truth + shift, records,
                                  skeleton, input_size=96, batch_size=len(records))
    # 2 input px are 2 / zoom image px, with zoom = 96 / (1.25 x the longer box side).
    zooms = np.array([96 / (1.25 * max(r.box[2:])) for r in records])
    diameters = np.array([np.hypot(*(r.keypoints[0, :2] - r.keypoints[1, :2]))
                          for r in records])
    np.testing.assert_allclose(errors.mean[:, 0], np.mean(2 / zooms / diameters), rtol=1e-3)
    np.testing.assert_allclose(errors.mean[:, 1], 0.0, atol=1e-5)


def test_refiner_data_targets_the_true_joint_in_the_crop(dot_people):
    """A dot drawn at the true joint shows up in the crop where the target says."""
    skeleton, records = dot_people
    errors = JointErrorDistribution.isotropic(skeleton.num_joints, 0.1)
    data = refiner_dataset(records, skeleton, errors, sigma=1.0, input_size=96, crop_size=33,
                           crops_per_sample=4, batch_size=32, training=False)
    palette = _palette(skeleton.num_joints)
    checked = 0
    grid = np.arange(33)
    for crops, targets in data.take(2):
        assert crops.shape[1:] == (33, 33, 3) and targets.shape[1:] == (skeleton.num_joints, 3)
        for crop, target in zip(crops.numpy(), targets.numpy()):
            assert target[:, 2].sum() == 1.0  # one supervised joint per crop
            joint = int(target[:, 2].argmax())
            expected = target[joint, :2] * 33 + 16  # crop pixels
            if not np.all((4 < expected) & (expected < 28)):
                continue  # the dot is cut by the crop edge
            weight = np.clip(1 - np.linalg.norm(crop - palette[joint], axis=-1) / 60, 0, None)
            found = [(weight.sum(axis=0) * grid).sum(), (weight.sum(axis=1) * grid).sum()]
            np.testing.assert_allclose(np.array(found) / weight.sum(), expected, atol=0.5)
            checked += 1
    assert checked >= 32


def test_refiner_data_displacements_follow_the_error_distribution(dot_people):
    """The crop centre is truth + diam * delta, so the target is -delta / sigma."""
    skeleton, records = dot_people
    mean = np.array([0.1, -0.2])
    covariance = np.array([[0.04, 0.01], [0.01, 0.02]])
    errors = JointErrorDistribution(np.tile(mean, (4, 1)), np.tile(covariance, (4, 1, 1)),
                                    np.zeros(4))
    data = refiner_dataset(records, skeleton, errors, sigma=2.0, input_size=64, crop_size=4,
                           crops_per_sample=200, batch_size=400, training=False)
    targets = np.concatenate([t.numpy() for _, t in data])
    drawn = -2.0 * targets[..., :2].sum(axis=1)  # the one supervised row per crop, x sigma
    assert len(drawn) == 16 * 200
    np.testing.assert_allclose(drawn.mean(axis=0), mean, atol=0.015)
    np.testing.assert_allclose(np.cov(drawn.T), covariance, atol=0.004)
    chosen = targets[..., 2].argmax(axis=1)
    assert np.bincount(chosen, minlength=4).min() > 600  # joints drawn uniformly


def test_refiner_data_is_reproducible_and_draws_several_crops_per_sample(dot_people):
    skeleton, records = dot_people
    errors = JointErrorDistribution.isotropic(skeleton.num_joints, 0.2)

    def crops(seed):
        data = refiner_dataset(records[:4], skeleton, errors, sigma=2.0, input_size=64,
                               crop_size=16, crops_per_sample=5, batch_size=7, seed=seed)
        return np.concatenate([t.numpy() for _, t in data])

    first = crops(0)
    assert len(first) == 14  # 4 samples x 5 crops = 20, in full batches of 7
    np.testing.assert_array_equal(first, crops(0))
    assert not np.array_equal(first, crops(1))


# --- learning --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    return read_coco(write_synthetic_dataset(folder, num=8, seed=3, size=96, progress=False))


def test_stage1_loss_falls_with_model_fit(tiny_people):
    keras.utils.set_random_seed(0)
    model = build_deeppose(COCO_17, input_size=64, width=1 / 8, dropout=0.2,
                           learning_rate=1e-3)
    data = make_dataset(tiny_people, COCO_17, input_size=64, target="coords",
                        batch_size=8).repeat()
    losses = model.fit(data, epochs=6, steps_per_epoch=5, verbose=0).history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_visibility_variant_trains_on_coordinate_targets(tiny_people):
    model = build_deeppose(COCO_17, input_size=64, width=1 / 16, with_visibility=True,
                           learning_rate=1e-3)
    data = make_dataset(tiny_people, COCO_17, input_size=64, target="coords", batch_size=4)
    history = model.fit(data.map(with_visibility_targets), epochs=1, verbose=0).history
    assert {"keypoints_loss", "visibility_loss"} <= set(history)


def test_refiner_trained_on_simulated_predictions_reduces_the_joint_error(dot_people):
    """Zero-mean displacements: only by reading the crop can a refiner reduce the error."""
    skeleton, records = dot_people
    std, sigma = 0.2, 1.0
    errors = JointErrorDistribution.isotropic(skeleton.num_joints, std)
    keras.utils.set_random_seed(0)
    refiner = build_deeppose_refiner(skeleton, crop_size=64, width=1 / 8, batchnorm=False,
                                     dropout=0.0, learning_rate=1e-3)
    crops = refiner_dataset(records, skeleton, errors, sigma=sigma, input_size=96,
                            crop_size=64, crops_per_sample=16, batch_size=32, seed=0,
                            augmentation=NO_AUGMENTATION).repeat()
    refiner.fit(crops, epochs=1, steps_per_epoch=200, verbose=0)

    step = build_refinement_step(refiner, skeleton, sigma=sigma, input_size=96)
    images, targets = next(iter(make_dataset(records, skeleton, input_size=96,
                                             target="coords", batch_size=len(records))))
    truth = targets.numpy()[..., :2]
    a, b = skeleton.torso
    diameter = np.linalg.norm(truth[:, a] - truth[:, b], axis=-1)  # normalised units
    rng = np.random.default_rng(5)
    before, after = [], []
    for _ in range(3):
        estimate = truth + rng.normal(0, std, truth.shape) * diameter[:, None, None]
        refined = step.predict({"image": images, "keypoints": estimate.astype(np.float32)},
                               verbose=0)
        before.append(np.linalg.norm(estimate - truth, axis=-1).mean())
        after.append(np.linalg.norm(refined - truth, axis=-1).mean())
    assert np.mean(after) < 0.8 * np.mean(before), (np.mean(before), np.mean(after))


def test_train_deeppose_cascade_returns_models_histories_and_errors(dot_people):
    skeleton, records = dot_people
    result = train_deeppose_cascade(records, skeleton, stages=3, sigma=1.0, input_size=64,
                                    cascade_input_size=80, crop_size=64, width=1 / 16,
                                    steps=[3, 2, 2], batch_size=8, crops_per_sample=2)
    assert len(result.refiners) == 2 and len(result.errors) == 2
    assert [len(h["loss"]) for h in result.histories] == [1, 1, 1]
    assert result.errors[0].mean.shape == (skeleton.num_joints, 2)
    out = result.cascade(_images(2, 80))
    assert tuple(out.shape) == (2, skeleton.num_joints, 2)
    assert result.input_size == (80, 80)


# --- bad input -------------------------------------------------------------------------------

NO_TORSO = Skeleton(name="no_torso", joint_names=("a", "b", "c"), flip_pairs=(),
                    limbs=(("ab", 0, 1),), torso=(0, 0), head=(1, 2), oks_sigmas=(0.1,) * 3)


@pytest.mark.parametrize("sigma", [0, -1.0, float("nan"), True, "2"])
def test_cascade_refuses_a_non_positive_sigma(sigma):
    stage1 = build_deeppose(LSP_14, input_size=64, **TINY)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        build_deeppose_cascade(stage1, [], sigma=sigma, skeleton=LSP_14)


def test_a_skeleton_without_torso_joints_is_refused_where_diam_is_needed():
    with pytest.raises(ValueError, match="no torso joint pair"):
        build_deeppose_refiner(NO_TORSO, crop_size=64, **TINY)
    stage1 = build_deeppose(NO_TORSO, input_size=64, **TINY)  # stage 1 alone is fine
    with pytest.raises(ValueError, match="no torso joint pair"):
        build_deeppose_cascade(stage1, [], sigma=1.0, skeleton=NO_TORSO)
    with pytest.raises(ValueError, match="no torso joint pair"):
        refiner_dataset([], NO_TORSO, JointErrorDistribution.isotropic(3, 0.1), sigma=1.0)


@pytest.mark.parametrize("images, message", [
    (np.zeros((1, 96, 96, 3), np.float32), r"'image'.*expected shape=\(None, 64, 64, 3\)"),
    (np.zeros((1, 64, 64, 1), np.float32), r"input 'image' must be RGB images"),
    (np.zeros((64, 64, 3), np.float32), r"'image'.*expected shape"),
])
def test_wrong_image_shapes_are_refused_naming_the_image(images, message):
    model = build_deeppose(LSP_14, input_size=64, **TINY)
    with pytest.raises(ValueError, match=message):
        model(images)


def test_refiner_fed_crops_of_another_size_names_its_crop_input():
    refiner = build_deeppose_refiner(LSP_14, crop_size=64, **TINY)
    with pytest.raises(ValueError, match=r"'crop'.*expected shape=\(None, 64, 64, 3\)"):
        refiner(_images(2, 80))


@pytest.mark.parametrize("make_refiner, message", [
    (lambda: build_deeppose_refiner(COCO_17, crop_size=64, **TINY),
     r"refiners\[0\] must output displacements \(None, 14, 2\)"),
    (lambda: keras.Model(i := keras.Input((64, 48, 3)), keras.layers.Reshape((14, 2))(
        keras.layers.Dense(28)(keras.layers.Flatten()(i)))),
     r"refiners\[0\] must take square crops"),
    (lambda: "refiner.keras", r"refiners\[0\] must be a keras.Model"),
])
def test_cascade_names_a_refiner_that_does_not_fit(make_refiner, message):
    stage1 = build_deeppose(LSP_14, input_size=64, **TINY)
    with pytest.raises(ValueError, match=message):
        build_deeppose_cascade(stage1, [make_refiner()], sigma=2.0, skeleton=LSP_14)


@pytest.mark.parametrize("kwargs, message", [
    ({"backbone": "vgg"}, "backbone must be one of"),
    ({"input_size": 48}, "at least 57 x 57"),
    ({"input_size": (64,)}, "input_size must be an int or"),
    ({"dropout": 1.0}, "dropout must be a rate"),
    ({"width": 0}, "width must be a positive"),
    ({"with_visibility": "yes"}, "with_visibility must be"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_deeppose(LSP_14, **{"learning_rate": None, **kwargs})


def test_refiner_data_refuses_errors_of_another_skeleton(dot_people):
    skeleton, records = dot_people
    with pytest.raises(ValueError, match="errors describe 14 joints"):
        refiner_dataset(records, skeleton, JointErrorDistribution.isotropic(14, 0.1),
                        sigma=1.0)


# --- fixtures --------------------------------------------------------------------------------

DOTS = Skeleton(name="dots_4", joint_names=("j0", "j1", "j2", "j3"), flip_pairs=(),
                limbs=(("j0_j1", 0, 1),), torso=(0, 1), head=(2, 3), oks_sigmas=(0.1,) * 4)


def _palette(k):
    return np.array([colorsys.hsv_to_rgb(i / k, 1.0, 1.0) for i in range(k)]) * 255.0


@pytest.fixture(scope="module")
def dot_people(tmp_path_factory):
    """16 images of 96 px: one disk of its own colour per joint on a dim noisy background.

    The joint a refiner must find is the disk of that joint's colour; the torso joints are
    more than 20 px apart and all joints more than 8 px apart.
    """
    folder = tmp_path_factory.mktemp("dots")
    rng = np.random.default_rng(1)
    size, radius = 96, 2.5
    palette = _palette(DOTS.num_joints)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    records = []
    for n in range(16):
        points: list[np.ndarray] = []
        while len(points) < DOTS.num_joints:
            p = rng.uniform(0.2 * size, 0.8 * size, 2)
            far = all(np.hypot(*(p - q)) > 8 for q in points)
            if far and (len(points) != 1 or np.hypot(*(p - points[0])) > 20):
                points.append(p)
        image = rng.uniform(0, 60, (size, size, 3))
        for joint, (x, y) in enumerate(points):
            cover = np.clip(radius + 0.5 - np.hypot(xs - x, ys - y), 0, 1)[..., None]
            image = image * (1 - cover) + palette[joint] * cover
        path = folder / f"dots_{n:02d}.png"
        Image.fromarray(image.round().astype(np.uint8)).save(path)
        keypoints = np.concatenate([np.array(points), np.full((DOTS.num_joints, 1), 2.0)], 1)
        records.append(PoseRecord(path, box_from_keypoints(keypoints, (size, size)), keypoints,
                                  DOTS.name, (size, size)))
    return DOTS, records
