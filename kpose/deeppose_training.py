"""Training a DeepPose cascade stage by stage (the paper's procedure): stage 1 on
augmented person crops, then each refiner on crops around simulated predictions drawn
from the measured error distribution of the stages before it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from kpose.data.pipeline import make_dataset
from kpose.data.records import PoseRecord
from kpose.data.refiner_data import JointErrorDistribution, measure_joint_errors, refiner_dataset
from kpose.data.transforms import check_sigma, check_torso, input_size_hw
from kpose.models.deeppose import build_deeppose, build_deeppose_cascade, build_deeppose_refiner
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["train_deeppose_cascade", "DeepPoseTraining", "with_visibility_targets"]


def with_visibility_targets(images, targets):
    """``dataset.map`` function for a ``with_visibility`` model: ``(images, coords)`` ->
    ``(images, {"keypoints": coords, "visibility": coords[..., 2]})`` (1 = labelled)."""
    return images, {"keypoints": targets, "visibility": targets[..., 2]}


@dataclass
class DeepPoseTraining:
    """What :func:`train_deeppose_cascade` returns.

    Attributes:
        stage1: the trained stage-1 model.
        refiners: trained refiners, stage 2 first.
        cascade: :func:`build_deeppose_cascade` of them (output ``keypoints``).
        histories: ``model.fit`` histories (``History.history`` dicts), stage 1 first.
        errors: ``errors[j]`` is the error distribution of stages ``1 .. j + 1`` on the
            training records that refiner ``j`` (stage ``j + 2``) was trained on.
        sigma: box side in torso diameters.
        input_size: ``(height, width)`` of the cascade's image.
        seconds: wall time of each stage, stage 1 first (for refiners: measuring the
            error distribution and training).
    """

    stage1: keras.Model
    refiners: list[keras.Model]
    cascade: keras.Model
    histories: list[dict] = field(default_factory=list)
    errors: list[JointErrorDistribution] = field(default_factory=list)
    sigma: float = 2.0
    input_size: tuple[int, int] = (220, 220)
    seconds: list[float] = field(default_factory=list)


def train_deeppose_cascade(
    records: Sequence[PoseRecord],
    skeleton: Skeleton | str,
    stages: int = 3,
    *,
    sigma: float = 2.0,
    input_size: int | tuple[int, int] = 220,
    cascade_input_size: int | tuple[int, int] | None = None,
    crop_size: int | None = None,
    backbone: str = "alexnet",
    width: float = 1.0,
    batchnorm: bool = True,
    dropout: float = 0.6,
    with_visibility: bool = False,
    steps: int | Sequence[int] = 1000,
    batch_size: int = 32,
    crops_per_sample: int = 40,
    learning_rate: float = 1e-4,
    lr_schedule: str = "constant",
    error_records: Sequence[PoseRecord] | None = None,
    seed: int = 0,
    verbose: int = 0,
) -> DeepPoseTraining:
    """Train DeepPose stage by stage: stage 1, then one refiner per further stage.

    Stage 1 trains on augmented top-down crops (``make_dataset(target="coords")``). Before
    stage ``s >= 2``, the cascade of stages ``1 .. s - 1`` is run over ``error_records``
    (default: the training records, as in the paper) to measure each joint's error
    distribution; refiner ``s`` then trains on crops around simulated predictions drawn
    from it (:func:`~kpose.data.refiner_data.refiner_dataset`).

    Args:
        records: training persons following ``skeleton``.
        skeleton: the layout (needs torso joints when ``stages > 1``).
        stages: 1 (stage 1 only) or more.
        sigma: refinement box side in torso diameters (the paper: 2 for LSP, 1 for FLIC).
        input_size: stage 1's input size.
        cascade_input_size: size of the person crop the refiners cut from (default:
            ``input_size``); larger gives the refiners more detail.
        crop_size: refiner input side (default: stage 1's input height).
        backbone, width, batchnorm, dropout, with_visibility: as in :func:`build_deeppose`
            (the refiners share them, without visibility).
        steps: training steps per stage, one number for all or one per stage.
        batch_size: images (stage 1) or crops (refiners) per step.
        crops_per_sample: refiner crops drawn per training image per pass.
        learning_rate: Adam's rate for every stage.
        lr_schedule: ``"constant"``, or ``"cosine"``: in every stage the rate decays along a
            half cosine from ``learning_rate`` to 0 over that stage's steps.
        error_records: persons to measure the error distributions on (a subset saves
            time on large sets).
        seed: seeds weights, data order, augmentation and the simulated displacements.
        verbose: ``model.fit`` verbosity.

    Returns:
        A :class:`DeepPoseTraining` with the models, the fit histories and the measured
        error distributions.
    """
    skeleton = get_skeleton(skeleton)
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or stages < 1:
        raise ValueError(f"stages must be an integer >= 1, got {stages!r}")
    if stages > 1:
        check_torso(skeleton)
        check_sigma(sigma)
    stage_steps = _steps_per_stage(steps, stages)
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")

    def rate(stage_index: int):
        if lr_schedule == "constant":
            return learning_rate
        return keras.optimizers.schedules.CosineDecay(learning_rate, stage_steps[stage_index])
    size = input_size_hw(input_size, "input_size", minimum=2)
    cascade_size = size if cascade_input_size is None else input_size_hw(
        cascade_input_size, "cascade_input_size", minimum=2)
    crop = size[0] if crop_size is None else crop_size
    records = list(records)
    error_records = records if error_records is None else list(error_records)

    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    stage1 = build_deeppose(skeleton, input_size=size, backbone=backbone, batchnorm=batchnorm,
                            dropout=dropout, with_visibility=with_visibility, width=width,
                            learning_rate=rate(0))
    data = make_dataset(records, skeleton, input_size=size, target="coords", training=True,
                        batch_size=batch_size, seed=seed).repeat()
    if with_visibility:
        data = data.map(with_visibility_targets)
    history = stage1.fit(data, epochs=1, steps_per_epoch=stage_steps[0], verbose=verbose)
    histories = [history.history]
    seconds = [time.perf_counter() - started]

    refiners: list[keras.Model] = []
    errors: list[JointErrorDistribution] = []
    for stage in range(2, stages + 1):
        started = time.perf_counter()
        so_far = build_deeppose_cascade(stage1, refiners, sigma=sigma, skeleton=skeleton,
                                        input_size=cascade_size)
        errors.append(measure_joint_errors(so_far, error_records, skeleton,
                                           input_size=cascade_size, batch_size=batch_size))
        keras.utils.set_random_seed(seed + stage)
        refiner = build_deeppose_refiner(skeleton, crop_size=crop, backbone=backbone,
                                         batchnorm=batchnorm, dropout=dropout, width=width,
                                         learning_rate=rate(stage - 1),
                                         name=f"deeppose_refiner_{stage}")
        crops = refiner_dataset(records, skeleton, errors[-1], sigma=sigma,
                                input_size=cascade_size, crop_size=crop,
                                crops_per_sample=crops_per_sample, batch_size=batch_size,
                                seed=seed + stage).repeat()
        history = refiner.fit(crops, epochs=1, steps_per_epoch=stage_steps[stage - 1],
                              verbose=verbose)
        histories.append(history.history)
        refiners.append(refiner)
        seconds.append(time.perf_counter() - started)

    cascade = build_deeppose_cascade(stage1, refiners, sigma=sigma, skeleton=skeleton,
                                     input_size=cascade_size)
    return DeepPoseTraining(stage1, refiners, cascade, histories, errors, float(sigma),
                            cascade_size, seconds)


def _steps_per_stage(steps, stages: int) -> list[int]:
    values = [steps] * stages if isinstance(steps, (int, np.integer)) else list(steps)
    if len(values) != stages or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                    or v < 1 for v in values):
        raise ValueError(f"steps must be a positive integer or one per stage ({stages}), "
                         f"got {steps!r}")
    return [int(v) for v in values]
