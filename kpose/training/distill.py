"""Distillation: a trained teacher's belief maps as soft targets beside the labels.

For squared-error belief-map losses, a weighted sum of the loss against the labels ``y``
and against the teacher's maps ``t`` is, up to a constant, the loss against one blended
target::

    (1 - w) * ||s - y||^2 + w * ||s - t||^2 = ||s - ((1 - w) * y + w * t)||^2 + const

so :func:`distill_targets` blends the targets inside the training stream and the student
keeps its own loss, its own graph and its own saved form: the teacher never becomes part
of the student, is never trained, and nothing of it is exported. (With a foreground
weight, the per-pixel weight follows the blended target.)

The teacher runs in the input pipeline on each augmented batch, beside the student's
step. It sees the student's crop, resized to its own input size; its last stage's joint
maps are resized to the student's map size. ``temperature`` T softens the teacher's maps
as a softmax temperature softens logits: read as ``exp(z)``, a map becomes ``exp(z / T)``,
its values raised to ``1 / T`` (a Gaussian peak of width sigma widens to sigma * sqrt(T));
T = 1 takes them as they are.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kpose.models.card import describe, stage_outputs
from kpose.skeletons import Skeleton

__all__ = ["check_teacher", "distill_targets"]


def check_teacher(teacher: keras.Model, skeleton: Skeleton, name: str = "teacher") -> None:
    """Refuse a teacher that cannot teach a model of ``skeleton``: not a belief-map model,
    or on another skeleton (each named)."""
    teaching = describe(teacher)
    if teaching.codec.kind != "belief_maps":
        raise ValueError(f"{name} is a {teaching.family} model, which predicts no belief "
                         "maps; distillation needs a CPM, SimpleBaselines or hourglass "
                         "teacher")
    if teaching.skeleton.joint_names != skeleton.joint_names:
        raise ValueError(f"{name} predicts skeleton {teaching.skeleton.name!r} but the "
                         f"student {skeleton.name!r}; give a teacher of the same joints")


def distill_targets(dataset: tf.data.Dataset, teacher: keras.Model, student: keras.Model, *,
                    weight: float = 0.5, temperature: float = 1.0) -> tf.data.Dataset:
    """``dataset`` of ``(images, targets)`` with every stage's target blended with the
    teacher's maps: ``(1 - weight) * labels + weight * teacher``.

    Args:
        dataset: the student's training stream: ``images`` ``(B, H, W, 3)`` float32 as
            ``make_dataset`` makes them, ``targets`` a dict ``stage_t -> (B, h, w, C)``
            (``C = K``, or ``K + 1`` with the CPM's ``1 - max`` background map, which is
            recomputed from the blended joint maps).
        teacher: a trained belief-map model on the student's skeleton
            (:func:`check_teacher`); it is called in inference mode and not trained.
        student: the model being trained (its card gives the map size and background).
        weight: the teacher's share of the target, in ``[0, 1]``.
        temperature: > 0; the teacher's maps are clipped at 0 and raised to
            ``1 / temperature``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"distillation weight must be in [0, 1], got {weight!r}")
    if not temperature > 0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature!r}")
    teaching, taught = describe(teacher), describe(student)
    check_teacher(teacher, taught.skeleton)
    teacher_size = tuple(teaching.input_size)
    num_joints = taught.skeleton.num_joints
    background = taught.codec.background
    last = stage_outputs(teacher)[-1]
    teacher.trainable = False

    def teach(images, targets):
        seen = images if tuple(images.shape[1:3]) == teacher_size else \
            tf.image.resize(images, teacher_size, method="bilinear")
        outputs = teacher(seen, training=False)
        maps = outputs[last] if isinstance(outputs, dict) else outputs
        maps = tf.cast(maps[..., :num_joints], tf.float32)
        if temperature != 1.0:
            maps = tf.pow(tf.maximum(maps, 0.0), 1.0 / temperature)
        blended = {}
        for name, target in targets.items():
            size = tf.shape(target)[1:3]
            soft = tf.image.resize(maps, size, method="bilinear")
            joints = (1.0 - weight) * target[..., :num_joints] + weight * soft
            if background:
                joints = tf.concat([joints, 1.0 - tf.reduce_max(joints, -1, keepdims=True)],
                                   axis=-1)
            blended[name] = joints
        return images, blended

    return dataset.map(teach, num_parallel_calls=tf.data.AUTOTUNE)
