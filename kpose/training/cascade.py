"""Training a DeepPose cascade stage by stage (the paper's procedure): stage 1 on
augmented person crops, then each refiner on crops around simulated predictions drawn
from the measured error distribution of the stages before it.

Two entry points share one set of stage builders and data streams
(:class:`CascadeRecipe`): :func:`train_deeppose_cascade` trains in memory and returns the
models, and :func:`fit_deeppose_run` is what ``kpose.train(model="deeppose")`` runs: every
stage under the run's ``tf.distribute`` strategy, with the run folder's checkpoints,
metrics, TensorBoard logs and validation PDJ, resumable inside any stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kpose.checkpoints import last_checkpoint
from kpose.data.augment import Augmentation
from kpose.data.pipeline import make_dataset, naming_unreadable_images
from kpose.data.records import PoseRecord
from kpose.data.refiner_data import JointErrorDistribution, measure_joint_errors, refiner_dataset
from kpose.data.specs import LoadedData
from kpose.data.transforms import check_sigma, check_torso, input_size_hw
from kpose.files import atomic_path
from kpose.models.deeppose import build_deeppose, build_deeppose_cascade, build_deeppose_refiner
from kpose.models.ief import ITERATION_PREFIX
from kpose.models.rle import RLE_OUTPUT
from kpose.models.transfer import record_init, transfer_weights
from kpose.skeletons import Skeleton, get_skeleton
from kpose.training.callbacks import EpochSeeds, RunCheckpoint, ValidationPDJ

__all__ = ["train_deeppose_cascade", "fit_deeppose_run", "DeepPoseTraining", "CascadeRecipe",
           "with_visibility_targets", "stage_file_name", "init_source"]


def with_visibility_targets(images, targets):
    """``dataset.map`` function for a ``with_visibility`` model: ``(images, coords)`` ->
    ``(images, {"keypoints": coords, "visibility": coords[..., 2]})`` (1 = labelled)."""
    return images, {"keypoints": targets, "visibility": targets[..., 2]}


def stage_file_name(stage: int) -> str:
    """The file a finished stage is saved as in a run's ``stages/`` folder."""
    return "stage_1.keras" if stage == 1 else f"refiner_{stage}.keras"


@dataclass(frozen=True)
class CascadeRecipe:
    """Everything that builds a cascade's stages and their training streams, once.

    Attributes:
        skeleton: the joints (needs torso joints when ``stages > 1``).
        stages: 1 (stage 1 only) or more.
        sigma: refinement box side in torso diameters.
        input_size: stage 1's ``(height, width)``.
        cascade_size: ``(height, width)`` of the person crop the refiners cut from.
        crop_size: refiner input side in pixels.
        backbone, depth, head, loss, width, batchnorm, dropout, with_visibility: as in
            :func:`build_deeppose`.
        iterations, max_step, feedback_sigma: stage 1 as Iterative Error Feedback
            (:func:`build_deeppose`, ``iterations > 1``; then the only stage).
        batch_size: images (stage 1) or crops (refiners) per step, over all replicas.
        crops_per_sample: refiner crops drawn per training image per pass.
        seed: seeds weights (stage 1: ``seed``, stage ``s``: ``seed + s``), data and
            displacements.
        augmentation: stage 1's random crop ranges (``None``: :class:`Augmentation()`).
    """

    skeleton: Skeleton
    stages: int
    sigma: float
    input_size: tuple[int, int]
    cascade_size: tuple[int, int]
    crop_size: int
    backbone: str = "alexnet"
    depth: int = 18
    head: str = "fc"
    loss: str = "l2"
    width: float = 1.0
    batchnorm: bool = True
    dropout: float = 0.6
    with_visibility: bool = False
    iterations: int = 1
    max_step: float = 0.1
    feedback_sigma: float | None = None
    batch_size: int = 32
    crops_per_sample: int = 40
    seed: int = 0
    augmentation: Augmentation | None = None

    @classmethod
    def create(cls, skeleton: Skeleton | str, stages: int, *, sigma: float,
               input_size: int | tuple[int, int], cascade_input_size=None,
               crop_size: int | None = None, **settings) -> CascadeRecipe:
        """Check the arguments and fill in the defaults (see :func:`train_deeppose_cascade`)."""
        skeleton = get_skeleton(skeleton)
        if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or stages < 1:
            raise ValueError(f"stages must be an integer >= 1, got {stages!r}")
        if stages > 1:
            check_torso(skeleton)
            check_sigma(sigma)
        if stages > 1 and settings.get("iterations", 1) != 1:
            raise ValueError(f"iterations > 1 (Iterative Error Feedback) corrects its own "
                             f"estimate instead of a cascade's refiners: use stages=1, got "
                             f"stages={stages}")
        size = input_size_hw(input_size, "input_size", minimum=2)
        cascade_size = size if cascade_input_size is None else input_size_hw(
            cascade_input_size, "cascade_input_size", minimum=2)
        return cls(skeleton, int(stages), float(sigma), size, cascade_size,
                   size[0] if crop_size is None else int(crop_size), **settings)

    def seed_stage(self, stage: int) -> None:
        """Seed Python, NumPy and TensorFlow for stage ``stage``: ``seed`` for stage 1,
        ``seed + stage`` for a refiner. Call it before building (or loading) the stage and
        creating its stream: TensorFlow derives the stream's seeded random ops from the
        global seed, so a resumed stage must set the same one as a new stage."""
        keras.utils.set_random_seed(self.seed if stage == 1 else self.seed + stage)

    def build_stage(self, stage: int, learning_rate) -> keras.Model:
        """A new, compiled stage ``stage`` (1: the regressor, >= 2: a refiner); call
        :meth:`seed_stage` first."""
        if stage == 1:
            return build_deeppose(self.skeleton, input_size=self.input_size,
                                  backbone=self.backbone, depth=self.depth, head=self.head,
                                  loss=self.loss, batchnorm=self.batchnorm,
                                  dropout=self.dropout, with_visibility=self.with_visibility,
                                  width=self.width, learning_rate=learning_rate,
                                  iterations=self.iterations, max_step=self.max_step,
                                  feedback_sigma=self.feedback_sigma)
        return build_deeppose_refiner(self.skeleton, crop_size=self.crop_size,
                                      backbone=self.backbone, depth=self.depth,
                                      head=self.head, loss=self.refiner_loss,
                                      batchnorm=self.batchnorm,
                                      dropout=self.dropout, width=self.width,
                                      learning_rate=learning_rate,
                                      name=f"deeppose_refiner_{stage}")

    @property
    def refiner_loss(self) -> str:
        """The refiners' loss: the recipe's, or ``"l1"`` under an RLE stage 1 (RLE's
        training-only output is a stage-1 feature)."""
        return "l1" if self.loss == "rle" else self.loss

    def cascade(self, stage1: keras.Model, refiners: Sequence[keras.Model]) -> keras.Model:
        """Stage 1 and ``refiners`` as one graph on the cascade's input size."""
        return build_deeppose_cascade(stage1, list(refiners), sigma=self.sigma,
                                      skeleton=self.skeleton, input_size=self.cascade_size)

    def measure_errors(self, stage1: keras.Model, refiners: Sequence[keras.Model],
                       records: Sequence[PoseRecord]) -> JointErrorDistribution:
        """The error distribution of the cascade so far on ``records``: what the next
        refiner trains against."""
        return measure_joint_errors(self.cascade(stage1, refiners), records, self.skeleton,
                                    input_size=self.cascade_size, batch_size=self.batch_size)

    def stream(self, stage: int, records: Sequence[PoseRecord], *, skip_batches: int = 0,
               errors: JointErrorDistribution | None = None) -> tf.data.Dataset:
        """Stage ``stage``'s endless training stream, from batch ``skip_batches`` on: the
        same batches whether a run goes through or resumes there. Stage 1 sees augmented
        person crops (``(images, coords)``); a refiner sees crops around displacements drawn
        from ``errors`` (:func:`~kpose.data.refiner_data.refiner_dataset`)."""
        if stage == 1:
            data = make_dataset(records, self.skeleton, input_size=self.input_size,
                                target="coords", training=True, batch_size=self.batch_size,
                                augmentation=self.augmentation,
                                seed=self.seed, repeat=True,
                                start=skip_batches * self.batch_size)
            if self.iterations > 1:  # IEF: every iteration towards the truth
                names = [f"{ITERATION_PREFIX}{t}" for t in range(1, self.iterations)]
                return data.map(lambda images, targets: (
                    images, {**{name: targets for name in names}, "keypoints": targets}))
            if self.loss == "rle":  # the loss reads the training-only output alone
                return data.map(lambda images, targets: (images, {RLE_OUTPUT: targets}))
            return data.map(with_visibility_targets) if self.with_visibility else data
        crops = refiner_dataset(records, self.skeleton, errors, sigma=self.sigma,
                                input_size=self.cascade_size, crop_size=self.crop_size,
                                crops_per_sample=self.crops_per_sample,
                                batch_size=self.batch_size, seed=self.seed + stage,
                                repeat=True)
        return crops.skip(skip_batches) if skip_batches else crops


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
    depth: int = 18,
    head: str = "fc",
    loss: str = "l2",
    width: float = 1.0,
    batchnorm: bool = True,
    dropout: float = 0.6,
    with_visibility: bool = False,
    iterations: int = 1,
    max_step: float = 0.1,
    feedback_sigma: float | None = None,
    steps: int | Sequence[int] = 1000,
    batch_size: int = 32,
    crops_per_sample: int = 40,
    learning_rate: float = 1e-4,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    error_records: Sequence[PoseRecord] | None = None,
    seed: int = 0,
    verbose: int = 0,
) -> DeepPoseTraining:
    """Train DeepPose stage by stage in memory: stage 1, then one refiner per further stage.

    Stage 1 trains on augmented top-down crops (``make_dataset(target="coords")``). Before
    stage ``s >= 2``, the cascade of stages ``1 .. s - 1`` is run over ``error_records``
    (default: the training records, as in the paper) to measure each joint's error
    distribution; refiner ``s`` then trains on crops around simulated predictions drawn
    from it (:func:`~kpose.data.refiner_data.refiner_dataset`). ``kpose.train(model=
    "deeppose")`` runs the same stages with a run folder (:func:`fit_deeppose_run`).

    Args:
        records: training persons following ``skeleton``.
        skeleton: the layout (needs torso joints when ``stages > 1``).
        stages: 1 (stage 1 only) or more.
        sigma: refinement box side in torso diameters (the paper: 2 for LSP, 1 for FLIC).
        input_size: stage 1's input size.
        cascade_input_size: size of the person crop the refiners cut from (default:
            ``input_size``); larger gives the refiners more detail.
        crop_size: refiner input side (default: stage 1's input height).
        backbone, depth, head, loss, width, batchnorm, dropout, with_visibility: as in
            :func:`build_deeppose` (the refiners share them, without visibility).
        iterations, max_step, feedback_sigma: ``iterations > 1`` makes stage 1 (then the
            only stage) Iterative Error Feedback (:func:`build_deeppose`).
        steps: training steps per stage, one number for all or one per stage.
        batch_size: images (stage 1) or crops (refiners) per step.
        crops_per_sample: refiner crops drawn per training image per pass.
        learning_rate: Adam's rate for every stage.
        lr_schedule: ``"constant"``, or ``"cosine"``: in every stage the rate decays along a
            half cosine from ``learning_rate`` to 0 over that stage's steps.
        warmup_steps: each stage's rate rises linearly to ``learning_rate`` over its first
            steps (:func:`stage_rate`).
        error_records: persons to measure the error distributions on (a subset saves
            time on large sets).
        seed: seeds weights, data order, augmentation and the simulated displacements.
        verbose: ``model.fit`` verbosity.

    Returns:
        A :class:`DeepPoseTraining` with the models, the fit histories and the measured
        error distributions.
    """
    recipe = CascadeRecipe.create(skeleton, stages, sigma=sigma, input_size=input_size,
                                  cascade_input_size=cascade_input_size, crop_size=crop_size,
                                  backbone=backbone, depth=depth, head=head, loss=loss,
                                  width=width, batchnorm=batchnorm,
                                  dropout=dropout, with_visibility=with_visibility,
                                  iterations=iterations, max_step=max_step,
                                  feedback_sigma=feedback_sigma,
                                  batch_size=batch_size, crops_per_sample=crops_per_sample,
                                  seed=seed)
    stage_steps = _steps_per_stage(steps, recipe.stages)
    records = list(records)
    error_records = records if error_records is None else list(error_records)
    models: list[keras.Model] = []
    histories, errors, seconds = [], [], []
    for stage in range(1, recipe.stages + 1):
        started = time.perf_counter()
        found = None
        if stage > 1:
            found = recipe.measure_errors(models[0], models[1:], error_records)
            errors.append(found)
        recipe.seed_stage(stage)
        network = recipe.build_stage(stage, stage_rate(learning_rate, lr_schedule,
                                                       stage_steps[stage - 1], warmup_steps))
        history = network.fit(recipe.stream(stage, records, errors=found), epochs=1,
                              steps_per_epoch=stage_steps[stage - 1], verbose=verbose)
        histories.append(history.history)
        models.append(network)
        seconds.append(time.perf_counter() - started)
    return DeepPoseTraining(models[0], models[1:], recipe.cascade(models[0], models[1:]),
                            histories, errors, recipe.sigma, recipe.cascade_size, seconds)


def stage_rate(learning_rate: float, lr_schedule: str, steps: int, warmup_steps: int = 0):
    """A stage's learning rate: constant, or a half cosine to 0 over the stage's steps.

    With ``warmup_steps`` (< ``steps``), the rate first rises linearly from
    ``learning_rate / 1000`` to ``learning_rate`` over that many steps, then stays there
    (``"constant"``) or follows the half cosine over the remaining steps.

    Returns:
        A float, or a Keras ``LearningRateSchedule`` of the optimiser's step counter.
    """
    if lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if not warmup_steps:
        return learning_rate if lr_schedule == "constant" else \
            keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    if not 0 < warmup_steps < steps:
        raise ValueError(f"warmup_steps must be fewer than the stage's {steps} steps, got "
                         f"{warmup_steps}")
    # Keras's cosine decay with its linear warm-up; alpha=1 keeps the rate flat after it.
    return keras.optimizers.schedules.CosineDecay(
        learning_rate / 1000.0, steps - warmup_steps, alpha=1.0 if lr_schedule == "constant"
        else 0.0, warmup_target=learning_rate, warmup_steps=warmup_steps)


def fit_deeppose_run(recipe: CascadeRecipe, train_data: LoadedData, val: LoadedData | None,
                     out_dir: Path, distribution: tf.distribute.Strategy, *,
                     epochs: int, steps_per_epoch: int, learning_rate: float,
                     lr_schedule: str, initial_epoch: int, pending: dict | None,
                     warmup_steps: int = 0,
                     val_every: int = 1, verbose: int | str = "auto",
                     init: keras.Model | None = None, init_name: str | None = None
                     ) -> tuple[keras.Model, dict]:
    """Train a cascade in a run folder, ``epochs`` epochs per stage, and save it.

    The run's epochs are counted over all stages: stage ``s`` trains epochs
    ``(s - 1) * epochs .. s * epochs - 1``. Each epoch commits the stage in training (with
    its optimiser) as the run's checkpoint; a finished stage is saved as
    ``stages/stage_1.keras`` / ``stages/refiner_S.keras``, the error distribution a
    refiner trained against as ``stages/errors_S.json``. A run resumed at epoch ``e``
    reloads the finished stages, the checkpoint of the stage in training and its data
    stream at the exact batch, so it ends with the weights of an uninterrupted run.

    Args:
        recipe: the stages and streams.
        train_data, val: the persons; ``val`` gives each epoch's ``val_stage_S_pdj@0.2``
            (the cascade up to the stage in training, at 0.2 torso diameters).
        out_dir: the run folder (checked by :func:`~kpose.training.run_folder.open_run_folder`).
        distribution: the strategy every stage is built and trained under.
        epochs, steps_per_epoch: per stage.
        learning_rate: Adam's rate (already scaled for the global batch).
        lr_schedule: ``"constant"`` or ``"cosine"`` (per stage).
        warmup_steps: each stage's linear warm-up (:func:`stage_rate`).
        initial_epoch: epochs committed before this call (0 for a new run).
        pending: files to commit with the first checkpoint (the run's ``config.json``).
        val_every, verbose: as in ``kpose.train``.
        init, init_name: a trained model every new stage starts from
            (:func:`init_source`, :func:`~kpose.models.transfer.transfer_weights`), and
            how reports and the cascade's card name it.

    Returns:
        ``(cascade, history)``: history has one value per epoch of this call for
        ``stage``, ``loss`` and the validation PDJ columns.
    """
    stages_dir, checkpoints = out_dir / "stages", out_dir / "checkpoints"
    finished = min(initial_epoch // epochs, recipe.stages)
    models = [_finished_stage(stages_dir, checkpoints, stage, distribution,
                              newest=stage == finished) for stage in range(1, finished + 1)]
    history: dict[str, list] = {}
    for stage in range(finished + 1, recipe.stages + 1):
        first = (stage - 1) * epochs
        begin = max(initial_epoch, first)
        errors = None if stage == 1 else _stage_errors(recipe, models, train_data.records,
                                                       stages_dir, stage)
        recipe.seed_stage(stage)
        with distribution.scope():
            if begin > first:  # resumed inside this stage
                network = keras.saving.load_model(last_checkpoint(checkpoints))
            else:
                network = recipe.build_stage(stage, stage_rate(
                    learning_rate, lr_schedule, epochs * steps_per_epoch, warmup_steps))
                if init is not None:
                    report = transfer_weights(init_source(init, stage), network,
                                              source_name=init_name)
                    if verbose != 0:
                        print(f"stage {stage}: {report.summary()}", flush=True)
        callbacks = []
        if val is not None:
            callbacks.append(ValidationPDJ(val, _cascade_ending_with(recipe, models),
                                           stage=stage, stages=recipe.stages,
                                           input_size=recipe.cascade_size, every=val_every))
        callbacks += [
            EpochSeeds(recipe.seed + stage),
            _StageColumn(stage),
            RunCheckpoint(checkpoints, monitor=None, pending=pending),
            keras.callbacks.CSVLogger(str(out_dir / "metrics.csv"), append=begin > 0),
            keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False),
        ]
        pending = None
        with naming_unreadable_images(train_data.records):
            fitted = network.fit(recipe.stream(stage, train_data.records, errors=errors,
                                               skip_batches=(begin - first) * steps_per_epoch),
                                 epochs=first + epochs, initial_epoch=begin,
                                 steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                                 verbose=verbose).history
        for name, values in fitted.items():
            history.setdefault(name, []).extend(values)
        with atomic_path(stages_dir / stage_file_name(stage)) as temporary:
            network.save(temporary)
        models.append(network)
    # An IEF regressor is the whole model, and keeps its iterations' outputs for
    # evaluation; a cascade of one stage would pass on only the last.
    cascade = models[0] if recipe.iterations > 1 else recipe.cascade(models[0], models[1:])
    if init is not None:
        record_init(cascade, init, init_name or init.name)
    with atomic_path(out_dir / "model.keras") as temporary:
        cascade.save(temporary)
    return cascade, history


def init_source(init: keras.Model, stage: int) -> keras.Model:
    """The part of ``init`` that stage ``stage`` of a new cascade starts from: the same
    stage of a DeepPose cascade (its last refiner for a stage it lacks; stage 1's
    regressor when it has none), else ``init`` itself (a DeepPose stage 1 or a heatmap
    model, whose backbone transfers)."""
    parts = {layer.name: layer for layer in init.layers if isinstance(layer, keras.Model)}
    if "stage_1_regressor" not in parts:
        return init
    refiners = sorted((int(name.split("_")[1]), name) for name in parts
                      if name.startswith("stage_") and name.endswith("_refiner"))
    if stage == 1 or not refiners:
        return parts["stage_1_regressor"]
    named = dict(refiners)
    return parts[named.get(stage, refiners[-1][1])]


def _cascade_ending_with(recipe: CascadeRecipe, finished: list[keras.Model]):
    """``current -> cascade`` of the finished stages followed by ``current``."""
    finished = list(finished)

    def cascade(current: keras.Model) -> keras.Model:
        stages = [*finished, current]
        return recipe.cascade(stages[0], stages[1:])
    return cascade


class _StageColumn(keras.callbacks.Callback):
    """Adds ``stage`` (the stage in training) to every epoch's logs and ``metrics.csv``."""

    def __init__(self, stage: int):
        super().__init__()
        self.stage = stage

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = self.stage


def _finished_stage(stages_dir: Path, checkpoints: Path, stage: int,
                    distribution: tf.distribute.Strategy, *, newest: bool) -> keras.Model:
    """Load a stage an earlier call finished. The newest one may lack its ``stages/`` file
    (a run killed between its last commit and that save): its last checkpoint is it."""
    path = stages_dir / stage_file_name(stage)
    if not path.is_file():
        if not newest or last_checkpoint(checkpoints) is None:
            raise FileNotFoundError(f"cannot resume: {path} is missing (the run finished "
                                    f"stage {stage} before)")
        with distribution.scope():
            network = keras.saving.load_model(last_checkpoint(checkpoints))
        with atomic_path(path) as temporary:
            network.save(temporary)
        return network
    with distribution.scope():
        return keras.saving.load_model(path)


def _stage_errors(recipe: CascadeRecipe, models: list[keras.Model],
                  records: Sequence[PoseRecord], stages_dir: Path,
                  stage: int) -> JointErrorDistribution:
    """The error distribution refiner ``stage`` trains against: read back when a resumed
    run measured it before, otherwise measured on the training records and saved."""
    path = stages_dir / f"errors_{stage}.json"
    if path.is_file():
        values = json.loads(path.read_text())
        return JointErrorDistribution(values["mean"], values["covariance"], values["count"])
    errors = recipe.measure_errors(models[0], models[1:], records)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(errors.to_dict()) + "\n")
    return errors


def _steps_per_stage(steps, stages: int) -> list[int]:
    values = [steps] * stages if isinstance(steps, (int, np.integer)) else list(steps)
    if len(values) != stages or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                    or v < 1 for v in values):
        raise ValueError(f"steps must be a positive integer or one per stage ({stages}), "
                         f"got {steps!r}")
    return [int(v) for v in values]
