"""``kpose.train``: checks a run, opens its folder and trains any family in it."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kpose.checkpoints import last_checkpoint
from kpose.data.augment import Augmentation, augmentation_from
from kpose.data.pipeline import make_dataset, naming_unreadable_images
from kpose.data.specs import LoadedData, load_data_spec, load_data_specs
from kpose.data.verify import drop_unreadable
from kpose.distribute import resolve_strategy, scaled_learning_rate
from kpose.files import atomic_path
from kpose.models.card import describe, stage_outputs
from kpose.models.cpm import BACKBONES as CPM_BACKBONES
from kpose.models.deeppose import BACKBONES as DEEPPOSE_BACKBONES
from kpose.models.families import HEATMAP_BUILDERS, build_heatmap_model
from kpose.models.simplebaseline import SIMPLEBASELINE_BACKBONES
from kpose.models.transfer import INIT_KEY, record_init, transfer_weights
from kpose.multiworker import fit_multiworker, is_chief
from kpose.runs import RunConfig, load_model
from kpose.training.distill import check_teacher, distill_targets
from kpose.training.callbacks import (EpochSeeds, EpochSummaries, RunCheckpoint,
                                      StopOnNonFiniteLoss, ValidationPCK)
from kpose.training.cascade import (CascadeRecipe, fit_deeppose_run, stage_rate,
                                   train_deeppose_cascade)
from kpose.training.run_folder import RunStart, open_run_folder, roll_back
from kpose.training.run_lock import run_lock

__all__ = ["train", "mixed_precision_policy", "MODELS"]

MODELS = ("cpm", "simplebaseline", "hourglass", "hrnet", "deeppose")
LR_SCHEDULES = ("constant", "cosine")
MAX_WIDTH = 8.0  # channel multiplier: ResNet-18 at 8 has ~700 M weights
MAX_INPUT_SIZE = 2048  # px
MAX_LEARNING_RATE = 1.0  # Adam at a rate above 1 diverges at once
# The papers' sizes: CPM 6 stages at 368 px, DeepPose 3 stages at 220 px; SimpleBaselines
# and the hourglass at 256 px (the hourglass with 2 stacks, the CPU-friendly end of 2-8).
_DEFAULTS = {"cpm": {"stages": 6, "input_size": 368},
             "deeppose": {"stages": 3, "input_size": 220},
             "simplebaseline": {"stages": 1, "input_size": 256},
             "hourglass": {"stages": 2, "input_size": 256},
             "hrnet": {"stages": 1, "input_size": 256}}
# The backbones each family can be built on (what --init carries across families).
FAMILY_BACKBONES = {"cpm": CPM_BACKBONES, "simplebaseline": SIMPLEBASELINE_BACKBONES,
                    "deeppose": DEEPPOSE_BACKBONES}
# DeepPose's sigma is its refinement box side in torso diameters.
_DEEPPOSE_SIGMA = 1.0


def train(model: str | None = None,
          data: str | LoadedData | Sequence[str | LoadedData] = "synthetic:1000", *,
          val_data: str | LoadedData | None = None, out_dir: str | Path = "runs/cpm",
          epochs: int = 10, batch_size: int = 16, steps_per_epoch: int | None = None,
          input_size: int | None = None, stages: int | None = None, width: float | None = None,
          backbone: str | None = None, learning_rate: float = 1e-3,
          lr_schedule: str = "constant", warmup_steps: int = 0,
          augmentation: Augmentation | dict | None = None,
          sigma: float | None = None, seed: int = 0,
          strategy: str = "auto",
          mixed_precision: bool | str = False,
          resume: bool = False, val_every: int = 1, verbose: int | str = "auto",
          paper: bool = False, skip_corrupt: bool = False,
          teacher: str | Path | keras.Model | None = None, distill_weight: float = 0.5,
          distill_temperature: float = 1.0, init: str | Path | keras.Model | None = None,
          **model_options) -> tuple[keras.Model, dict]:
    """Train a pose model with ``model.fit`` and keep everything in a run folder.

    Args:
        model: the family: ``"cpm"``, ``"simplebaseline"``, ``"hourglass"``, ``"hrnet"``
            (belief-map models, :func:`kpose.models.families.build_heatmap_model`) or
            ``"deeppose"``. A DeepPose run trains stage 1 and then one refiner per further
            stage (:func:`kpose.training.cascade.fit_deeppose_run`), ``epochs`` epochs
            each, under the same strategy, checkpoints and resume; it saves the one-graph
            cascade as ``model.keras`` and every finished stage in ``stages/``.
        data: a data spec (``"coco:ann.json:images"``, ``"synthetic:2000"``; see
            :mod:`kpose.data.specs`) or :class:`~kpose.data.specs.LoadedData`, or a list of
            them trained together: pooled, so each is sampled in proportion to its size,
            the model on the first one's skeleton and the others mapped onto it by joint
            name (:func:`~kpose.data.specs.load_data_specs`; refused naming the joints a
            data set lacks).
        val_data: held-out data for the validation PCK@0.2 (torso) of every stage each
            ``val_every`` epochs; the best checkpoint follows it. DeepPose: the PDJ@0.2 of
            the cascade up to the stage in training (its best file is its last).
        out_dir: the run folder (created; refused if it holds another run, unless
            ``resume``).
        epochs, batch_size, steps_per_epoch: per stage for DeepPose. ``batch_size`` is
            the global batch (DeepPose's refiners: crops), split
            over the strategy's replicas; ``steps_per_epoch`` defaults to one pass
            (``len(records) // batch_size``).
        input_size, stages, width, backbone: the model (defaults: CPM 368 px and 6
            stages, DeepPose 220 px and 3 stages, SimpleBaselines and the hourglass 256 px,
            the hourglass with 2 stacks; width 1; ``backbone=None``: the family's own,
            AlexNet for DeepPose).
        sigma: belief-map models: the Gaussian sigma in map pixels (``None``: the
            family's default, CPM 1, SimpleBaselines and hourglass 2). DeepPose: the
            refinement box side in torso diameters (the paper: 2 for LSP, 1 for FLIC;
            ``None``: 1).
        learning_rate: Adam's rate for a global batch of 16, scaled linearly.
        lr_schedule: ``"constant"``, or ``"cosine"``: the rate decays along a half cosine
            from ``learning_rate`` to 0 over all ``epochs * steps_per_epoch`` steps (per
            stage for DeepPose); a resumed run continues the same curve.
        warmup_steps: the rate rises linearly from a thousandth of ``learning_rate`` to it
            over this many first steps (per stage for DeepPose), then follows
            ``lr_schedule`` over the remaining steps; 0 (the default): no warm-up.
        augmentation: the random ranges of the training crops
            (:class:`~kpose.data.augment.Augmentation`, or a dict of some of its fields such
            as ``{"rotation": 30, "scale": [0.75, 1.25], "half_body": 0.3}``); ``None``: the
            defaults (CPM's: flip, rotation 40 degrees, scale 0.7-1.3, colour jitter, no
            half-body crops). DeepPose: its stage 1.
        seed: seeds weights, shuffling and augmentation.
        strategy: ``"auto"``, ``"default"``, ``"mirrored"``, ``"tpu"`` or ``"multiworker"``
            (every machine runs the same call with its own ``TF_CONFIG``; only worker 0
            writes the run folder; see :mod:`kpose.multiworker`).
        mixed_precision: ``False``; ``True`` or ``"auto"`` for ``mixed_float16`` on GPUs
            and ``mixed_bfloat16`` on TPUs and CPUs; or ``"float16"`` / ``"bfloat16"``.
            Layers compute in 16 bits and keep float32 weights; the stage outputs and the
            losses stay float32, and float16 scales the loss (Keras's
            ``LossScaleOptimizer``). The global Keras policy is restored on return.
        resume: continue from the last checkpoint with its optimiser state, epoch counter
            and place in the data stream (DeepPose: inside the stage where the run
            stopped); the result matches an uninterrupted run. Only ``epochs`` (not for
            DeepPose, where it sets the stage boundaries) and ``strategy`` may change.
        paper: build the paper's model (the builder's defaults) instead of the training
            recipe (:data:`kpose.models.families.RECIPES`: BatchNorm, foreground-weighted
            loss, and for the CPM shared features and residual stages).
        skip_corrupt: leave out the persons of missing image files, and decode every
            image once before training (and validation) to leave out those of unreadable
            ones, with a count; without it a missing or unreadable image stops the run
            with an error naming it.
        teacher: distil a trained belief-map model on the same skeleton into this one
            (not DeepPose): a run folder, a ``.keras`` file, ``"pretrained:NAME"`` or a
            model. Its maps, on every augmented training crop, are blended into the
            targets (:mod:`kpose.training.distill`); it is never trained or saved with
            the student.
        distill_weight: the teacher's share of each target, in ``[0, 1]`` (default 0.5).
        distill_temperature: > 0; softens (> 1) or sharpens (< 1) the teacher's maps.
        init: start from a trained model (a run folder, a ``.keras`` file,
            ``"pretrained:NAME"`` or a model): the new model takes its family, input
            size, stages, width, backbone and builder options unless given here (for
            another family: the input size, width and a backbone both offer), then every
            weight whose layer path and shape match, and the belief-map heads' channels
            of the joints both skeletons name
            (:func:`kpose.models.transfer.transfer_weights`); what was copied and what
            starts fresh is printed, and the model card records the source's card. A
            DeepPose run starts stage 1 and every refiner this way (from a DeepPose
            cascade: each from its counterpart; from a heatmap model such as
            ``pretrained:lsp-simplebaseline-r18`` with ``backbone="resnet"``: the
            backbone).
        **model_options: passed on to the family's builder (e.g. ``batchnorm`` of
            :func:`kpose.models.build_cpm`, ``depth`` of the hourglass).

    Returns:
        ``(model, history)``: the trained model and ``{metric: [value per epoch]}``.
    """
    init_model = None
    if init is not None:
        init_model = init if isinstance(init, keras.Model) else load_model(init)
        model, input_size, stages, width, backbone, model_options = architecture_of(
            init_model, model=model, input_size=input_size, stages=stages, width=width,
            backbone=backbone, options=model_options)
    model = "cpm" if model is None else model
    width = 1.0 if width is None else width
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if teacher is not None and model == "deeppose":
        raise ValueError("teacher: DeepPose regresses coordinates; distillation teaches "
                         "belief-map models (cpm, simplebaseline, hourglass, hrnet)")
    if not (isinstance(distill_weight, (int, float)) and 0 <= distill_weight <= 1):
        raise ValueError(f"distill_weight must be in [0, 1], got {distill_weight!r}")
    if not (isinstance(distill_temperature, (int, float))
            and math.isfinite(distill_temperature) and distill_temperature > 0):
        raise ValueError(f"distill_temperature must be a finite number > 0, got "
                         f"{distill_temperature!r}")
    _check_numbers(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                   input_size=input_size, stages=stages, val_every=val_every,
                   learning_rate=learning_rate, width=width, sigma=sigma)
    if model == "deeppose" and strategy == "multiworker":
        raise ValueError("strategy 'multiworker' trains the belief-map families; a DeepPose "
                         "cascade trains with 'auto', 'default', 'mirrored' or 'tpu'")
    for name, value in model_options.items():
        try:
            json.dumps(value)
        except TypeError:
            raise ValueError(f"model option {name}={type(value).__name__} cannot be recorded in "
                             "config.json; model options must be plain JSON values") from None
    _check_model_options(model, model_options)
    augmentation = augmentation_from(augmentation)
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) \
            or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    stages = _DEFAULTS[model]["stages"] if stages is None else stages
    input_size = _DEFAULTS[model]["input_size"] if input_size is None else input_size
    out_dir = Path(out_dir)
    train_data = load_data_specs(data, skip_missing=skip_corrupt, verbose=verbose != 0)
    val = val_data if isinstance(val_data, LoadedData) or val_data is None else \
        load_data_spec(val_data, skip_missing=skip_corrupt)
    if skip_corrupt:
        train_data = dataclasses.replace(train_data, records=drop_unreadable(
            train_data.records, skip=True))
        if val is not None:
            val = dataclasses.replace(val, records=drop_unreadable(val.records, skip=True))
    if verbose != 0:
        for role, loaded in (("training", train_data), ("validation", val)):
            if loaded is not None:
                print(f"{role} data: {len(loaded.records)} persons, images "
                      f"{Path(loaded.records[0].image_path).name} .. "
                      f"{Path(loaded.records[-1].image_path).name}", flush=True)
    stage_steps = epochs * (steps_per_epoch or max(1, len(train_data.records) // batch_size))
    if warmup_steps >= stage_steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be fewer than the "
                         f"{stage_steps} steps the run trains"
                         f"{' per stage' if model == 'deeppose' else ''}")
    if val is not None and val.skeleton != train_data.skeleton:
        raise ValueError(f"val_data follows skeleton {val.skeleton.name!r} but data follows "
                         f"{train_data.skeleton.name!r}")
    specs = [part.spec if isinstance(part, LoadedData) else part for part in data] \
        if isinstance(data, (list, tuple)) and len(data) > 1 else train_data.spec
    config = RunConfig(model=model, data=specs, val_data=val.spec if val else None,
                       skeleton=train_data.skeleton.name, epochs=epochs, batch_size=batch_size,
                       steps_per_epoch=steps_per_epoch, input_size=input_size, stages=stages,
                       width=width, backbone=backbone, learning_rate=learning_rate,
                       lr_schedule=lr_schedule, warmup_steps=int(warmup_steps),
                       sigma=sigma, seed=seed, strategy=strategy,
                       mixed_precision=mixed_precision, val_every=val_every, paper=paper,
                       skip_corrupt=skip_corrupt, model_options=model_options,
                       teacher=_model_name(teacher, "teacher"),
                       distill_weight=float(distill_weight),
                       distill_temperature=float(distill_temperature),
                       init=_model_name(init, "init"),
                       augmentation=None if augmentation == Augmentation()
                       else augmentation.to_options())
    teacher_model = None
    if teacher is not None:
        teacher_model = teacher if isinstance(teacher, keras.Model) else \
            load_model(teacher)
        check_teacher(teacher_model, train_data.skeleton, name=f"teacher {config.teacher}")
    distribution = resolve_strategy(strategy)
    policy = mixed_precision_policy(mixed_precision, distribution)
    chief = is_chief(distribution)
    with run_lock(out_dir, enabled=chief) as held:  # one writer at a time
        start = open_run_folder(out_dir, config, resume, write=chief,
                                resumable=("strategy",) if model == "deeppose" else None,
                                killed_run=held.took_over)
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(policy)
        try:
            return _train(model, config, train_data, val, out_dir, distribution,
                          chief=chief, resume=resume, run_start=start, verbose=verbose,
                          teacher=teacher_model, init=init_model)
        except BaseException:
            if chief:
                roll_back(out_dir, start)
            raise
        finally:
            keras.config.set_dtype_policy(previous_policy)


def architecture_of(source: keras.Model, *, model: str | None, input_size: int | None,
                    stages: int | None, width: float | None, backbone: str | None,
                    options: dict) -> tuple:
    """``(model, input_size, stages, width, backbone, options)``: those given, else the
    ones of ``source``'s card. For another family, only what it can share: the input
    size, the width, and the backbone (with a ResNet's depth) when the new family offers
    that backbone, so its weights can transfer."""
    info = describe(source)
    card = dict(info.options or {})
    input_hw = tuple(info.input_size)
    if info.family == "deeppose" and "refiners" in card:
        card, input_hw = _cascade_architecture(source, card, input_hw)
    elif info.family == "deeppose" and card.get("iterations", 1) > 1:
        card["stages"] = 1  # an IEF regressor is a whole model of one stage
    size = input_hw[0] if input_hw[0] == input_hw[1] else None
    if model not in (None, info.family):
        shared = dict(options)
        if backbone is None and card.get("backbone") in FAMILY_BACKBONES.get(model, ()):
            backbone = card["backbone"]
            if backbone == "resnet" and "depth" in card:
                shared.setdefault("depth", card["depth"])
        width = width if width is not None else card.get("width")
        return (model, input_size if input_size is not None else size, stages, width,
                backbone, shared)
    stages = stages if stages is not None else card.get("stages", card.get("stacks"))
    width = width if width is not None else card.get("width")
    backbone = backbone if backbone is not None else card.get("backbone")
    builder = {k: v for k, v in card.items()
               if k not in ("stages", "stacks", "width", "backbone", INIT_KEY)}
    if backbone not in (None, "resnet"):
        builder.pop("depth", None)  # cards written before depth was kept for ResNets only
    if builder.get("loss") == "rle" and "loss" not in options and (
            (isinstance(options.get("iterations"), int) and options["iterations"] > 1)
            or options.get("with_visibility")):
        raise ValueError("the model --init starts from was trained with loss 'rle', which "
                         "takes neither iterations nor with_visibility: add --option "
                         "loss=l1 (or l2)")
    return (info.family, input_size if input_size is not None else size, stages, width,
            backbone, {**builder, **options})


def _cascade_architecture(cascade: keras.Model, card: dict,
                          input_hw: tuple[int, int]) -> tuple[dict, tuple[int, int]]:
    """A DeepPose cascade's builder options and stage 1's input size: its stage 1's card
    (backbone, width, head ...), its stage count, and where they differ from stage 1's,
    the size of the image the refiners cut from and their crop size."""
    parts = {layer.name: layer for layer in cascade.layers if isinstance(layer, keras.Model)}
    first = describe(parts["stage_1_regressor"])
    built = {k: v for k, v in (first.options or {}).items() if k != INIT_KEY}
    built["stages"] = int(card["refiners"]) + 1
    if tuple(first.input_size) != input_hw and input_hw[0] == input_hw[1]:
        built["cascade_input_size"] = int(input_hw[0])
    refiner = parts.get("stage_2_refiner")
    if refiner is not None:
        built["crop_size"] = int(refiner.inputs[0].shape[1])
    return built, tuple(first.input_size)


def _model_name(given, argument: str) -> str | None:
    """How ``config.json`` records a model argument (``teacher``, ``init``): its path or
    ``pretrained:NAME``, or the name of a model object."""
    if given is None or isinstance(given, (str, Path)):
        return None if given is None else str(given)
    if isinstance(given, keras.Model):
        return f"model:{given.name}"
    raise ValueError(f"{argument} must be a run folder, a .keras file, 'pretrained:NAME' or "
                     f"a keras.Model, got {type(given).__name__}")


def _check_model_options(model: str, options: dict) -> None:
    """Refuse builder options the family's builder does not take (or that ``train`` sets
    through its own arguments), naming those it does take."""
    builder = train_deeppose_cascade if model == "deeppose" else HEATMAP_BUILDERS[model]
    own = set(inspect.signature(train).parameters) | {"skeleton", "stacks", "records", "steps",
                                                      "error_records"}
    taken = {name for name, parameter in inspect.signature(builder).parameters.items()
             if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in own}
    unknown = sorted(set(options) - taken)
    if unknown:
        raise ValueError(f"the {model} builder has no option {', '.join(unknown)}; it takes "
                         f"{', '.join(sorted(taken))}")


def _check_numbers(*, learning_rate, width, sigma, **counts) -> None:
    """Refuse counts that are not positive integers and rates that are not finite and
    positive, naming the argument, before anything is read or written."""
    for name, value in counts.items():
        if value is None and name in ("steps_per_epoch", "input_size", "stages"):
            continue  # the defaults
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("learning_rate", learning_rate), ("width", width), ("sigma", sigma)):
        if value is None and name == "sigma":
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    # Sizes past these build models no machine holds (a traceback from the allocator).
    for name, value, limit in (("width", width, MAX_WIDTH),
                               ("input_size", counts.get("input_size"), MAX_INPUT_SIZE),
                               ("learning_rate", learning_rate, MAX_LEARNING_RATE)):
        if value is not None and value > limit:
            raise ValueError(f"{name} must be at most {limit:g}, got {value!r}")


def mixed_precision_policy(mixed_precision: bool | str,
                           distribution: tf.distribute.Strategy | None = None) -> str:
    """The Keras dtype policy for ``train(mixed_precision=...)``.

    ``False`` or ``"none"``: ``"float32"``. ``True`` or ``"auto"``: ``"mixed_float16"`` when
    the strategy's devices are GPUs, otherwise (TPU, CPU) ``"mixed_bfloat16"``, which keeps
    float32's exponent range and needs no loss scaling. ``"float16"`` and ``"bfloat16"``
    choose explicitly.
    """
    if mixed_precision is True or mixed_precision == "auto":
        name = type(distribution).__name__ if distribution is not None else ""
        on_gpu = "TPU" not in name and bool(tf.config.list_logical_devices("GPU"))
        return "mixed_float16" if on_gpu else "mixed_bfloat16"
    policies = {"none": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if mixed_precision is False or mixed_precision is None:
        return "float32"
    if isinstance(mixed_precision, str) and mixed_precision in policies:
        return policies[mixed_precision]
    raise ValueError(f"mixed_precision must be False, True, 'auto', 'float16', 'bfloat16' or "
                     f"'none', got {mixed_precision!r}")


def _train(model: str, config: RunConfig, train_data: LoadedData, val: LoadedData | None,
           out_dir: Path, distribution: tf.distribute.Strategy, *, chief: bool, resume: bool,
           run_start: RunStart, verbose: int | str,
           teacher: keras.Model | None = None, init: keras.Model | None = None,
           ) -> tuple[keras.Model, dict]:
    """The body of :func:`train`, run under the run's dtype policy."""
    epochs, batch_size, steps_per_epoch = config.epochs, config.batch_size, \
        config.steps_per_epoch
    input_size, stages, seed, sigma = config.input_size, config.stages, config.seed, \
        config.sigma
    width, backbone, learning_rate = config.width, config.backbone, config.learning_rate
    val_every = config.val_every
    lr_schedule, strategy, model_options = config.lr_schedule, config.strategy, \
        config.model_options
    # Workers other than the chief keep their files out of the run folder.
    write_dir = out_dir if chief else Path(tempfile.mkdtemp(prefix="kpose-worker-"))
    keras.utils.set_random_seed(seed)
    rate = scaled_learning_rate(learning_rate, batch_size)
    if steps_per_epoch is None:
        steps_per_epoch = max(1, len(train_data.records) // batch_size)
    if model in HEATMAP_BUILDERS:  # DeepPose: one schedule per stage, in fit_deeppose_run
        rate = stage_rate(rate, lr_schedule, epochs * steps_per_epoch, config.warmup_steps)
    augmentation = augmentation_from(config.augmentation)
    initial_epoch = run_start.initial_epoch
    pending = {out_dir / "config.json": run_start.config_text} \
        if run_start.config_text else None
    if model == "deeppose":
        options = dict(model_options)
        recipe = CascadeRecipe.create(
            train_data.skeleton, stages, sigma=_DEEPPOSE_SIGMA if sigma is None else sigma,
            input_size=input_size, cascade_input_size=options.pop("cascade_input_size", None),
            crop_size=options.pop("crop_size", None), augmentation=augmentation,
            backbone="alexnet" if backbone in (None, "cpm") else backbone, width=width,
            batch_size=batch_size, seed=seed, **options)
        return fit_deeppose_run(recipe, train_data, val, out_dir, distribution, epochs=epochs,
                                steps_per_epoch=steps_per_epoch, learning_rate=rate,
                                lr_schedule=lr_schedule, warmup_steps=config.warmup_steps,
                                initial_epoch=initial_epoch,
                                pending=pending, val_every=val_every, verbose=verbose,
                                init=init, init_name=config.init)
    with distribution.scope():
        if resume:
            network = keras.saving.load_model(last_checkpoint(out_dir / "checkpoints"))
            if lr_schedule == "cosine" or config.warmup_steps:  # this call's curve
                network.optimizer.learning_rate = rate
        else:
            sized = {} if sigma is None else {"sigma": sigma}
            network = build_heatmap_model(model, train_data.skeleton, stages=stages,
                                          backbone=backbone, input_size=input_size,
                                          width=width, learning_rate=rate, **sized,
                                          paper=config.paper, **model_options)
            if init is not None:
                report = transfer_weights(init, network, source_name=config.init)
                record_init(network, init, config.init)
                if verbose != 0:
                    print(report.summary(), flush=True)
    info = describe(network)
    # The data are an endless stream whose sample i depends on (seed, i) only: the same
    # under every strategy, and a resumed run picks it up at the exact sample.
    start = initial_epoch * steps_per_epoch * batch_size

    def stream(batch: int, shard: tuple[int, int] = (0, 1)):
        samples = make_dataset(train_data.records, train_data.skeleton,
                               input_size=input_size, target="belief_maps",
                               num_stages=len(stage_outputs(network)), training=True,
                               augmentation=augmentation,
                               batch_size=batch, seed=seed, codec=info.codec,
                               margin=info.margin, repeat=True, start=start, shard=shard)
        if teacher is None:
            return samples
        return distill_targets(samples, teacher, network, weight=config.distill_weight,
                               temperature=config.distill_temperature)

    callbacks = [StopOnNonFiniteLoss(steps_per_epoch)]
    if val is not None:
        callbacks.append(ValidationPCK(val, input_size=input_size, every=val_every))
    callbacks += [
        EpochSeeds(seed),
        RunCheckpoint(write_dir / "checkpoints", monitor="val_pck@0.2" if val else "loss",
                      best=run_start.best, pending=pending),
        keras.callbacks.CSVLogger(str(write_dir / "metrics.csv"), append=resume),
    ]
    if strategy == "multiworker":
        # Each worker is one input pipeline serving its shard of the stream; together
        # they serve the global batches a single device would see.
        def dataset_fn(context: tf.distribute.InputContext):
            return stream(context.get_per_replica_batch_size(batch_size),
                          (context.input_pipeline_id, context.num_input_pipelines))

        history = fit_multiworker(network, distribution, dataset_fn, epochs=epochs,
                                  initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                                  global_batch=batch_size,
                                  callbacks=[*callbacks, EpochSummaries(write_dir / "logs")],
                                  verbose=chief and verbose != 0)
    else:
        callbacks.append(keras.callbacks.TensorBoard(str(write_dir / "logs"),
                                                     write_graph=False))
        with naming_unreadable_images(train_data.records):
            history = network.fit(stream(batch_size), epochs=epochs,
                                  initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                                  callbacks=callbacks, verbose=verbose).history
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
        return network, history
    with atomic_path(out_dir / "model.keras") as temporary:
        network.save(temporary)
    return network, history


