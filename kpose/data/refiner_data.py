"""Training data for DeepPose's refiner stages: crops around simulated predictions.

A refiner of stage ``s`` looks at a square crop around joint ``i`` of the stage ``s - 1``
estimate and regresses where the true joint lies in that crop. Its training crops are
not cut around real stage ``s - 1`` predictions but around *simulated* ones (Toshev and
Szegedy, section 3): the true joint plus a displacement drawn from the per-joint error
distribution that stage ``s - 1`` shows on the training set. That gives any number of
crops per image, each with an exact target.

Frames. Everything is measured in the pipeline's *input* frame (pixels of the top-down
person crop, see :mod:`kpose.data.transforms`). Joint errors and displacements are in
*torso diameters* (the distance between the skeleton's two ``torso`` joints of the
truth), which does not change with the crop's scale, so an error distribution measured
on unaugmented crops applies to zoomed ones (the random rotation and mirror of augmented
crops are not applied to it: a simplification). A refinement box around a point ``c``
(input px) with side ``L`` px defines the crop's normalised frame ``(p - c) / L``: the
crop's outer pixel edges are at -0.5 and 0.5, as for the whole input
(:func:`kpose.data.transforms.normalise_keypoints`).

Public: :func:`joint_boxes` (box geometry shared with the in-graph
:class:`~kpose.models.layers.JointCrops`), :class:`JointErrorDistribution`,
:func:`joint_error_distribution`, :func:`predict_image_keypoints`,
:func:`measure_joint_errors` and :func:`refiner_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kpose.data.augment import Augmentation
from kpose.data.crop_inference import predict_record_keypoints
from kpose.data.pipeline import make_dataset
from kpose.data.records import PoseRecord
from kpose.data.transforms import (check_sigma, check_torso, denormalise_keypoints,
                                   input_size_hw, joint_boxes)
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["JointErrorDistribution", "joint_error_distribution",
           "predict_image_keypoints", "measure_joint_errors", "refiner_dataset",
           "check_torso", "check_sigma"]

# A torso shorter than this (input px) gives no usable box; such samples are left out.
_MIN_TORSO_PX = 1.0


@dataclass(frozen=True)
class JointErrorDistribution:
    """Per-joint Gaussian of a pose estimate's errors ``estimate - truth``.

    Attributes:
        mean: ``(K, 2)`` float64 mean error ``(x, y)`` in torso diameters.
        covariance: ``(K, 2, 2)`` float64 covariance, in torso diameters squared.
        count: ``(K,)`` number of joints measured (labelled, torso known).
    """

    mean: np.ndarray
    covariance: np.ndarray
    count: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, np.float64)
        covariance = np.asarray(self.covariance, np.float64)
        count = np.asarray(self.count, np.int64)
        k = mean.shape[0] if mean.ndim == 2 else -1
        if mean.shape != (k, 2) or covariance.shape != (k, 2, 2) or count.shape != (k,):
            raise ValueError(f"JointErrorDistribution needs mean (K, 2), covariance (K, 2, 2) "
                             f"and count (K,), got {mean.shape}, {covariance.shape}, "
                             f"{count.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(covariance))):
            raise ValueError("JointErrorDistribution: mean and covariance must be finite")
        symmetric = np.allclose(covariance, covariance.transpose(0, 2, 1), atol=1e-9)
        if not symmetric or np.any(np.linalg.eigvalsh(covariance) < -1e-9):
            raise ValueError("JointErrorDistribution: every covariance must be symmetric "
                             "positive semi-definite")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", covariance)
        object.__setattr__(self, "count", count)

    @property
    def num_joints(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def isotropic(cls, num_joints: int, std: float, mean=(0.0, 0.0)) -> JointErrorDistribution:
        """Every joint off by ``N(mean, std^2 I)`` torso diameters (for tests and ablations)."""
        if not std >= 0:
            raise ValueError(f"std must be >= 0 torso diameters, got {std}")
        return cls(np.tile(np.asarray(mean, np.float64), (num_joints, 1)),
                   np.tile(np.eye(2) * std**2, (num_joints, 1, 1)),
                   np.zeros(num_joints, np.int64))

    def factor(self) -> np.ndarray:
        """``(K, 2, 2)`` matrices ``C`` with ``C C^T = covariance``: ``mean + C z`` with
        ``z ~ N(0, I)`` is a draw. Symmetric square roots, which also exist for singular
        covariances (a Cholesky factor would not)."""
        values, vectors = np.linalg.eigh(self.covariance)
        return vectors * np.sqrt(np.maximum(values, 0.0))[:, None, :] @ vectors.transpose(0, 2, 1)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "covariance": self.covariance.tolist(),
                "count": self.count.tolist()}


def joint_error_distribution(predictions: np.ndarray, ground_truth: np.ndarray,
                             skeleton: Skeleton | str) -> JointErrorDistribution:
    """Mean and covariance of each joint's error, in torso diameters.

    Any frame works as long as predictions and truth share it and it is a similarity of
    the image (image pixels, or an unaugmented input crop): errors are divided by the
    true torso diameter.

    Args:
        predictions: ``(N, K, 2|3)`` estimates (a third column is ignored).
        ground_truth: ``(N, K, 3)`` ``(x, y, v)`` in the same frame.
        skeleton: the layout; its ``torso`` pair gives the diameter.

    Returns:
        A :class:`JointErrorDistribution`. Joints measured fewer than twice get zero mean
        and the covariance pooled over all joints.
    """
    skeleton = get_skeleton(skeleton)
    check_torso(skeleton)
    predictions = np.asarray(predictions, np.float64)
    ground_truth = np.asarray(ground_truth, np.float64)
    k = skeleton.num_joints
    if ground_truth.ndim != 3 or ground_truth.shape[1:] != (k, 3):
        raise ValueError(f"ground_truth must be (N, {k}, 3) for skeleton {skeleton.name!r}, "
                         f"got {ground_truth.shape}")
    if predictions.shape[:2] != ground_truth.shape[:2] or predictions.shape[-1] not in (2, 3):
        raise ValueError(f"predictions must be (N, {k}, 2) or (N, {k}, 3) matching "
                         f"ground_truth {ground_truth.shape}, got {predictions.shape}")
    diameters, usable = _torso_diameters(ground_truth, skeleton)
    labelled = (ground_truth[..., 2] > 0) & usable[:, None]
    errors = (predictions[..., :2] - ground_truth[..., :2]) / np.where(usable, diameters, 1.0
                                                                        )[:, None, None]
    if not labelled.any():
        raise ValueError("no labelled joint of a person with both torso joints labelled: "
                         "the error distribution is undefined")
    means = np.zeros((k, 2))
    covariances = np.zeros((k, 2, 2))
    counts = labelled.sum(axis=0)
    pooled = np.cov(errors[labelled].T) if labelled.sum() >= 2 else np.zeros((2, 2))
    for joint in range(k):
        e = errors[labelled[:, joint], joint]
        if len(e) >= 2:
            means[joint] = e.mean(axis=0)
            covariances[joint] = np.cov(e.T)
        else:
            covariances[joint] = pooled
    return JointErrorDistribution(means, covariances, counts)


def predict_image_keypoints(model: Callable, records: Sequence[PoseRecord],
                            skeleton: Skeleton | str, *, input_size: int | tuple[int, int],
                            batch_size: int = 32, margin: float = 1.25
                            ) -> dict[str, np.ndarray]:
    """Run a coordinate model over records and map its outputs back to image pixels.

    Each record is cropped around its box as in training (no augmentation); every output
    of the model that is ``(B, K, 2)`` normalised coordinates (``keypoints``, or the
    ``stage_N`` outputs of a cascade with ``all_stages=True``) is mapped through the crop's
    matrix.

    Args:
        model: callable ``(B, H, W, 3)`` float32 0..255 -> ``(B, K, 2)`` or a dict of them.
        records: persons to predict.
        skeleton: their layout.
        input_size: the model's input ``size`` or ``(height, width)``.
        batch_size: images per call.
        margin: the person box enlargement used in training.

    Returns:
        ``{name: (N, K, 2)}`` float64 in image pixels, row ``n`` for ``records[n]``; a
        single-tensor model's output is named ``"keypoints"``.
    """
    size = input_size_hw(input_size)

    def decode(outputs):
        if not isinstance(outputs, dict):
            outputs = {"keypoints": outputs}
        # Only (B, K, 2) normalised coordinates; visibility logits and the like are skipped.
        return {name: denormalise_keypoints(np.asarray(value, np.float64), size)
                for name, value in outputs.items()
                if np.ndim(value) == 3 and np.shape(value)[-1] == 2}

    found = predict_record_keypoints(model, records, skeleton, input_size=input_size,
                                     decode=decode, batch_size=batch_size, margin=margin)
    if not found:
        raise ValueError("the model returned no (B, K, 2) coordinate output")
    return found


def measure_joint_errors(model: Callable, records: Sequence[PoseRecord],
                         skeleton: Skeleton | str, *, input_size: int | tuple[int, int],
                         batch_size: int = 32, margin: float = 1.25,
                         output: str = "keypoints") -> JointErrorDistribution:
    """The error distribution of a stage's estimates on ``records`` (paper: the training set).

    Args:
        model: stage 1, or a cascade of stages ``1 .. s - 1``: images -> ``(B, K, 2)``
            normalised coordinates (see :func:`predict_image_keypoints`).
        records, skeleton, input_size, batch_size, margin: as there.
        output: which output to measure when the model returns several.

    Returns:
        A :class:`JointErrorDistribution` in torso diameters.
    """
    predictions = predict_image_keypoints(model, records, skeleton, input_size=input_size,
                                          batch_size=batch_size, margin=margin)
    if output not in predictions:
        raise ValueError(f"output must be one of the model's coordinate outputs "
                         f"{sorted(predictions)}, got {output!r}")
    truth = np.stack([r.keypoints for r in records])
    return joint_error_distribution(predictions[output], truth, skeleton)


def refiner_dataset(
    records: Sequence[PoseRecord],
    skeleton: Skeleton | str,
    errors: JointErrorDistribution,
    *,
    sigma: float,
    input_size: int | tuple[int, int] = 220,
    crop_size: int = 220,
    crops_per_sample: int = 40,
    batch_size: int = 32,
    training: bool = True,
    seed: int = 0,
    augmentation: Augmentation | None = None,
    margin: float = 1.25,
    images_per_draw: int = 4,
    shuffle_buffer: int | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Crops around simulated stage ``s - 1`` predictions, batched for ``model.fit``.

    For every sample (its top-down crop of ``input_size``, augmented when ``training``),
    ``crops_per_sample`` times: pick a labelled joint ``i`` uniformly, draw a
    displacement ``delta ~ N(mean_i, cov_i)`` (torso diameters, from ``errors``), cut the
    box of side ``sigma * diam(y)`` centred on ``y_i + diam(y) * delta`` with
    ``tf.image.crop_and_resize`` and resize it to ``crop_size``; the target is the true
    joint ``i`` in that crop's normalised frame, ``(y_i - centre) / side``. ``diam(y)``
    is the truth's torso diameter (the paper uses the truth in training); persons whose
    torso joints are not both labelled are left out.

    Args:
        records: training persons, following ``skeleton``.
        skeleton: the layout; needs two distinct ``torso`` joints.
        errors: per-joint error distribution of stage ``s - 1`` (:func:`measure_joint_errors`).
        sigma: box side in torso diameters (the paper: 2 for LSP, 1 for FLIC).
        input_size: size of the person crop the boxes are cut from: the cascade's input.
        crop_size: the refiner's input side in pixels.
        crops_per_sample: crops drawn per sample per pass (the paper: 40).
        batch_size: crops per batch.
        training: augment the person crops and shuffle; otherwise a fixed sequence.
        seed: seeds the pipeline and the draws; same seed, same crops.
        augmentation: person-crop augmentation (default :class:`Augmentation()` when
            training).
        margin: person box enlargement, as in :func:`~kpose.data.make_dataset`.
        images_per_draw: person crops decoded together before the crops are drawn.
        shuffle_buffer: crops mixed across images before batching (default
            ``4 * batch_size``; each crop is ``crop_size^2 * 12`` bytes).
        repeat: serve an endless stream whose every random choice (augmentation, joint,
            displacement, crop order) is keyed by the seed and the position in the
            stream, and so is the same under any ``tf.distribute`` strategy (whose
            dataset rewrite re-seeds per-iteration random state) and from any
            ``.skip(n)``; what ``kpose.train`` uses. ``False``: one pass, drawn afresh
            on every iteration of the dataset.

    Returns:
        A dataset (one pass over the records unless ``repeat``) of
        ``(crops, targets)``: ``crops`` ``(B, crop_size, crop_size, 3)`` float32 RGB
        0..255 (0 outside the image), ``targets`` ``(B, K, 3)`` ``(x_n, y_n, weight)`` with
        weight 1 on the cropped joint's row only, the rows a refiner's
        :class:`~kpose.losses.CoordinateL2Loss` expects.
    """
    skeleton = get_skeleton(skeleton)
    check_torso(skeleton)
    check_sigma(sigma)
    size = input_size_hw(input_size)
    if not isinstance(errors, JointErrorDistribution):
        raise ValueError(f"errors must be a JointErrorDistribution, got "
                         f"{type(errors).__name__}")
    if errors.num_joints != skeleton.num_joints:
        raise ValueError(f"errors describe {errors.num_joints} joints but skeleton "
                         f"{skeleton.name!r} has {skeleton.num_joints}")
    for name, value in (("crop_size", crop_size), ("crops_per_sample", crops_per_sample),
                        ("batch_size", batch_size), ("images_per_draw", images_per_draw)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if crop_size < 2 or min(size) < 2:
        raise ValueError(f"crop_size and input_size must be at least 2 px, got crop_size="
                         f"{crop_size}, input_size={input_size!r}")
    records = list(records)
    for i, record in enumerate(records):
        if not isinstance(record, PoseRecord):
            raise ValueError(f"records[{i}] is a {type(record).__name__}, expected PoseRecord")
    usable = [r for r in records if all(r.keypoints[j, 2] > 0 for j in skeleton.torso)]
    if not usable:
        raise ValueError("records: no person has both torso joints "
                         f"{[skeleton.joint_names[j] for j in skeleton.torso]} labelled, so no "
                         "refinement box can be sized")

    base = make_dataset(usable, skeleton, input_size=size, target="none", training=training,
                        batch_size=images_per_draw, seed=seed, margin=margin,
                        augmentation=augmentation, drop_remainder=bool(repeat), repeat=repeat)
    if repeat:  # keyed by the position: [seed + 1, draw index]
        draw_seeds = tf.data.Dataset.counter().map(
            lambda i: tf.bitwise.bitwise_xor(i, tf.constant((seed + 1) * 1_000_003, tf.int64)))
    else:
        draw_seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=training)
    mean = tf.constant(errors.mean, tf.float32)
    factor = tf.constant(errors.factor(), tf.float32)
    torso = skeleton.torso
    k = skeleton.num_joints
    draws = int(crops_per_sample)

    def draw(batch, draw_seed):
        images, keypoints = batch  # (b, H, W, 3), (b, K, 3) input px
        b = tf.shape(images)[0]
        seeds = [tf.stack([draw_seed, tf.constant(i, tf.int64)]) for i in range(2)]
        labelled = keypoints[..., 2] > 0
        diameter = tf.norm(keypoints[:, torso[0], :2] - keypoints[:, torso[1], :2], axis=-1)
        usable_sample = (labelled[:, torso[0]] & labelled[:, torso[1]]
                         & (diameter >= _MIN_TORSO_PX))
        logits = tf.where(labelled, 0.0, -1e9)
        joints = tf.random.stateless_categorical(logits, draws, seeds[0], dtype=tf.int32)
        noise = tf.random.stateless_normal(tf.stack([b, draws, 2]), seeds[1])
        delta = tf.gather(mean, joints) + tf.linalg.matvec(tf.gather(factor, joints), noise)
        truth = tf.gather(keypoints[..., :2], joints, batch_dims=1)  # (b, n, 2)
        diameter = diameter[:, tf.newaxis]
        centres = truth + diameter[..., tf.newaxis] * delta
        sides = sigma * diameter * tf.ones_like(delta[..., 0])
        boxes = joint_boxes(centres, sides, size, crop_size)
        valid = tf.gather(labelled, joints, batch_dims=1) & usable_sample[:, tf.newaxis]
        crops = tf.image.crop_and_resize(
            images, tf.reshape(boxes, [-1, 4]), tf.repeat(tf.range(b), draws),
            (crop_size, crop_size), method="bilinear", extrapolation_value=0.0)
        offsets = (truth - centres) / sides[..., tf.newaxis]  # crop-normalised target
        one_hot = tf.one_hot(joints, k, dtype=tf.float32)[..., tf.newaxis]  # (b, n, K, 1)
        row = tf.concat([offsets, tf.ones_like(offsets[..., :1])], axis=-1)[:, :, tf.newaxis]
        targets = tf.reshape(one_hot * row, [-1, k, 3])
        keep = tf.reshape(valid, [-1])
        return tf.boolean_mask(crops, keep), tf.boolean_mask(targets, keep)

    dataset = tf.data.Dataset.zip(base, draw_seeds).map(draw, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.unbatch()
    if training:
        buffer = shuffle_buffer if shuffle_buffer is not None else 4 * batch_size
        # An endless stream is iterated once: its shuffle order is fixed by the seed alone.
        dataset = dataset.shuffle(max(1, int(buffer)), seed=seed,
                                  reshuffle_each_iteration=not repeat)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _torso_diameters(keypoints: np.ndarray, skeleton: Skeleton):
    a, b = skeleton.torso
    both = (keypoints[:, a, 2] > 0) & (keypoints[:, b, 2] > 0)
    diameters = np.hypot(*(keypoints[:, a, :2] - keypoints[:, b, :2]).T)
    return diameters, both & (diameters >= _MIN_TORSO_PX)
