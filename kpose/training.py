"""Training from one call: ``kpose.train(model="cpm", data=..., out_dir=...)``.

A run folder holds everything about one training run:

```
RUN_DIR/
  config.json            how to rebuild the model and the data pipeline
  checkpoints/state.json the manifest: epoch counter, best value and the two files below
  checkpoints/last.eNNNN.keras  model + optimiser state after the latest epoch
  checkpoints/best.eNNNN.keras  the epoch with the best validation PCK@0.2 (or lowest loss)
  checkpoints/last.keras, best.keras  links to those two files
  model.keras            the final model
  metrics.csv            one row of losses and validation metrics per epoch
  logs/                  TensorBoard
```

Every file is written under a temporary name and renamed, and a checkpoint is committed
by its manifest (:mod:`kpose.checkpoints`), so a run killed at any moment resumes exactly.
Nothing in the folder changes before the run is known to be valid, and a run that fails
before its first checkpoint leaves the folder as it found it.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kpose.checkpoints import commit_checkpoint, last_checkpoint, read_state, recover_checkpoints
from kpose.data.crop_inference import predict_record_keypoints
from kpose.data.pipeline import make_dataset, naming_unreadable_images
from kpose.data.specs import LoadedData, load_data_spec
from kpose.data.verify import drop_unreadable
from kpose.deeppose_training import train_deeppose_cascade
from kpose.distribute import resolve_strategy, scaled_learning_rate
from kpose.files import atomic_path
from kpose.inference import predict_stage_keypoints
from kpose.metrics import pck, pdj
from kpose.models.card import describe, stage_outputs
from kpose.models.deeppose import build_deeppose_cascade, build_deeppose_inference
from kpose.models.families import HEATMAP_BUILDERS, build_heatmap_model
from kpose.multiworker import fit_multiworker, is_chief
from kpose.runs import RunConfig, load_model, load_run_model

__all__ = ["RunConfig", "train", "load_model", "load_run_model", "ValidationPCK", "RunCheckpoint"]

MODELS = ("cpm", "simplebaseline", "hourglass", "deeppose")
LR_SCHEDULES = ("constant", "cosine")
# The papers' sizes: CPM 6 stages at 368 px, DeepPose 3 stages at 220 px; SimpleBaselines
# and the hourglass at 256 px (the hourglass with 2 stacks, the CPU-friendly end of 2-8).
_DEFAULTS = {"cpm": {"stages": 6, "input_size": 368},
             "deeppose": {"stages": 3, "input_size": 220},
             "simplebaseline": {"stages": 1, "input_size": 256},
             "hourglass": {"stages": 2, "input_size": 256}}
# DeepPose's sigma is its refinement box side in torso diameters.
_DEEPPOSE_SIGMA = 1.0


def train(model: str = "cpm", data: str | LoadedData = "synthetic:1000", *,
          val_data: str | LoadedData | None = None, out_dir: str | Path = "runs/cpm",
          epochs: int = 10, batch_size: int = 16, steps_per_epoch: int | None = None,
          input_size: int | None = None, stages: int | None = None, width: float = 1.0,
          backbone: str | None = None, learning_rate: float = 1e-3,
          lr_schedule: str = "constant", sigma: float | None = None, seed: int = 0,
          strategy: str = "auto",
          mixed_precision: bool | str = False,
          resume: bool = False, val_every: int = 1, verbose: int | str = "auto",
          paper: bool = False, skip_corrupt: bool = False,
          **model_options) -> tuple[keras.Model, dict]:
    """Train a pose model with ``model.fit`` and keep everything in a run folder.

    Args:
        model: the family: ``"cpm"``, ``"simplebaseline"``, ``"hourglass"`` (belief-map
            models, :func:`kpose.models.families.build_heatmap_model`) or
            ``"deeppose"``. A DeepPose run trains stage 1 and then one refiner per further
            stage (:func:`kpose.deeppose_training.train_deeppose_cascade`) for
            ``epochs * steps_per_epoch`` steps each, and saves the one-graph cascade as
            ``model.keras`` and every stage in ``stages/``; it runs on one device and does
            not resume.
        data: a data spec (``"coco:ann.json:images"``, ``"synthetic:2000"``; see
            :mod:`kpose.data.specs`) or :class:`~kpose.data.specs.LoadedData`.
        val_data: held-out data for the validation PCK@0.2 (torso) each ``val_every``
            epochs; the best checkpoint follows it.
        out_dir: the run folder (created; refused if it holds another run, unless
            ``resume``).
        epochs, batch_size, steps_per_epoch: ``batch_size`` is the global batch, split
            over the strategy's replicas; ``steps_per_epoch`` defaults to one pass
            (``len(records) // batch_size``).
        input_size, stages, width, backbone: the model (defaults: CPM 368 px and 6
            stages, DeepPose 220 px and 3 stages, SimpleBaselines and the hourglass 256 px,
            the hourglass with 2 stacks; ``backbone=None``: the family's own, AlexNet for
            DeepPose).
        sigma: belief-map models: the Gaussian sigma in map pixels (``None``: the
            family's default, CPM 1, SimpleBaselines and hourglass 2). DeepPose: the
            refinement box side in torso diameters (the paper: 2 for LSP, 1 for FLIC;
            ``None``: 1).
        learning_rate: Adam's rate for a global batch of 16, scaled linearly.
        lr_schedule: ``"constant"``, or ``"cosine"``: the rate decays along a half cosine
            from ``learning_rate`` to 0 over all ``epochs * steps_per_epoch`` steps (per
            stage for DeepPose); a resumed run continues the same curve.
        seed: seeds weights, shuffling and augmentation.
        strategy: ``"auto"``, ``"default"``, ``"mirrored"``, ``"tpu"`` or ``"multiworker"``
            (every machine runs the same call with its own ``TF_CONFIG``; only worker 0
            writes the run folder; see :mod:`kpose.multiworker`).
        mixed_precision: ``False``; ``True`` or ``"auto"`` for ``mixed_float16`` on GPUs
            and ``mixed_bfloat16`` on TPUs and CPUs; or ``"float16"`` / ``"bfloat16"``.
            Layers compute in 16 bits and keep float32 weights; the stage outputs and the
            losses stay float32, and float16 scales the loss (Keras's
            ``LossScaleOptimizer``). The global Keras policy is restored on return.
        resume: continue from ``checkpoints/last.keras`` with its optimiser state, epoch
            counter and place in the data stream; the result matches an uninterrupted run.
        paper: build the paper's model (the builder's defaults) instead of the training
            recipe (:data:`kpose.models.families.RECIPES`: BatchNorm, foreground-weighted
            loss, and for the CPM shared features and residual stages).
        skip_corrupt: leave out the persons of missing image files, and decode every
            image once before training (and validation) to leave out those of unreadable
            ones, with a count; without it a missing or unreadable image stops the run
            with an error naming it.
        **model_options: passed on to the family's builder (e.g. ``batchnorm`` of
            :func:`kpose.models.build_cpm`, ``depth`` of the hourglass).

    Returns:
        ``(model, history)``: the trained model and ``{metric: [value per epoch]}``.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    _check_numbers(epochs=epochs, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                   input_size=input_size, stages=stages, val_every=val_every,
                   learning_rate=learning_rate, width=width, sigma=sigma)
    if model == "deeppose" and (resume or strategy not in ("auto", "default")):
        raise ValueError("a DeepPose cascade trains stage by stage on one device and does not "
                         "resume: use strategy 'default' and a new run folder")
    for name, value in model_options.items():
        try:
            json.dumps(value)
        except TypeError:
            raise ValueError(f"model option {name}={type(value).__name__} cannot be recorded in "
                             "config.json; model options must be plain JSON values") from None
    _check_model_options(model, model_options)
    stages = _DEFAULTS[model]["stages"] if stages is None else stages
    input_size = _DEFAULTS[model]["input_size"] if input_size is None else input_size
    out_dir = Path(out_dir)
    train_data = data if isinstance(data, LoadedData) else \
        load_data_spec(data, skip_missing=skip_corrupt)
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
    if val is not None and val.skeleton != train_data.skeleton:
        raise ValueError(f"val_data follows skeleton {val.skeleton.name!r} but data follows "
                         f"{train_data.skeleton.name!r}")
    config = RunConfig(model=model, data=train_data.spec, val_data=val.spec if val else None,
                       skeleton=train_data.skeleton.name, epochs=epochs, batch_size=batch_size,
                       steps_per_epoch=steps_per_epoch, input_size=input_size, stages=stages,
                       width=width, backbone=backbone, learning_rate=learning_rate,
                       lr_schedule=lr_schedule, sigma=sigma, seed=seed, strategy=strategy,
                       mixed_precision=mixed_precision, val_every=val_every, paper=paper,
                       skip_corrupt=skip_corrupt, model_options=model_options)
    distribution = resolve_strategy(strategy)
    policy = mixed_precision_policy(mixed_precision, distribution)
    chief = is_chief(distribution)
    start = _open_run_folder(out_dir, config, resume, write=chief)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        return _train(model, config, train_data, val, out_dir, distribution, chief=chief,
                      resume=resume, run_start=start, verbose=verbose)
    except BaseException:
        if chief:
            _roll_back(out_dir, start)
        raise
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _check_model_options(model: str, options: dict) -> None:
    """Refuse builder options the family's builder does not take (or that ``train`` sets
    through its own arguments), naming those it does take."""
    builder = train_deeppose_cascade if model == "deeppose" else HEATMAP_BUILDERS[model]
    own = set(inspect.signature(train).parameters) | {"skeleton", "stacks", "records", "steps"}
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
           run_start: RunStart, verbose: int | str) -> tuple[keras.Model, dict]:
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
    if lr_schedule == "cosine" and model in HEATMAP_BUILDERS:
        rate = keras.optimizers.schedules.CosineDecay(rate, epochs * steps_per_epoch)
    initial_epoch = run_start.initial_epoch
    if model == "deeppose":
        with atomic_path(out_dir / "config.json") as temporary:
            temporary.write_text(run_start.config_text)
        return _train_deeppose(train_data, val, out_dir, stages=stages, input_size=input_size,
                               width=width,
                               backbone="alexnet" if backbone in (None, "cpm") else backbone,
                               steps=epochs * steps_per_epoch, batch_size=batch_size,
                               learning_rate=rate, lr_schedule=lr_schedule,
                               sigma=_DEEPPOSE_SIGMA if sigma is None else sigma,
                               seed=seed,
                               verbose=0 if verbose == 0 else 2, **model_options)
    with distribution.scope():
        if resume:
            network = keras.saving.load_model(last_checkpoint(out_dir / "checkpoints"))
            if lr_schedule == "cosine":  # the curve of this call's epochs, from its step
                network.optimizer.learning_rate = rate
        else:
            sized = {} if sigma is None else {"sigma": sigma}
            network = build_heatmap_model(model, train_data.skeleton, stages=stages,
                                          backbone=backbone, input_size=input_size,
                                          width=width, learning_rate=rate, **sized,
                                          paper=config.paper, **model_options)
    info = describe(network)
    # The data are an endless stream whose sample i depends on (seed, i) only: the same
    # under every strategy, and a resumed run picks it up at the exact sample.
    start = initial_epoch * steps_per_epoch * batch_size

    def stream(batch: int, shard: tuple[int, int] = (0, 1)):
        return make_dataset(train_data.records, train_data.skeleton, input_size=input_size,
                            target="belief_maps", num_stages=len(stage_outputs(network)),
                            training=True, batch_size=batch, seed=seed, codec=info.codec,
                            margin=info.margin, repeat=True, start=start, shard=shard)

    callbacks = []
    if val is not None:
        callbacks.append(ValidationPCK(val, input_size=input_size, every=val_every))
    callbacks += [
        RunCheckpoint(write_dir / "checkpoints", monitor="val_pck@0.2" if val else "loss",
                      best=run_start.best,
                      pending={out_dir / "config.json": run_start.config_text}
                      if run_start.config_text else None),
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


def _train_deeppose(train_data: LoadedData, val: LoadedData | None, out_dir: Path, *,
                    stages: int, input_size: int, width: float, backbone: str, steps: int,
                    batch_size: int, learning_rate: float, lr_schedule: str, sigma: float,
                    seed: int, verbose: int, **model_options) -> tuple[keras.Model, dict]:
    """Train a DeepPose cascade stage by stage and write its run folder."""
    result = train_deeppose_cascade(train_data.records, train_data.skeleton, stages=stages,
                                    sigma=sigma, input_size=input_size, backbone=backbone,
                                    width=width, steps=steps, batch_size=batch_size,
                                    learning_rate=learning_rate, lr_schedule=lr_schedule,
                                    seed=seed, verbose=verbose,
                                    **model_options)
    names = ["stage_1", *[f"refiner_{s}" for s in range(2, stages + 1)]]
    for name, network in zip(names, [result.stage1, *result.refiners]):
        with atomic_path(out_dir / "stages" / f"{name}.keras") as temporary:
            network.save(temporary)
    history = {"stage": list(range(1, stages + 1)),
               "loss": [float(h["loss"][-1]) for h in result.histories],
               "seconds": [round(s, 1) for s in result.seconds]}
    if val is not None:
        # Every stage's cascade, so the report shows what each refiner adds.
        truth = np.stack([r.keypoints for r in val.records])
        history["val_pdj@0.2"] = []
        for count in range(1, stages + 1):
            partial = build_deeppose_cascade(result.stage1, result.refiners[:count - 1],
                                             sigma=sigma, skeleton=train_data.skeleton)
            found = predict_record_keypoints(
                build_deeppose_inference(partial), val.records, val.skeleton,
                input_size=input_size, decode=lambda outputs: {"k": np.asarray(outputs)})["k"]
            history["val_pdj@0.2"].append(pdj(found, truth, val.skeleton).value)
            print(f"stage {count}: val PDJ@0.2 {history['val_pdj@0.2'][-1]:.4f}", flush=True)
    with atomic_path(out_dir / "metrics.csv") as temporary:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(history))
            writer.writerows(zip(*history.values()))
    with atomic_path(out_dir / "model.keras") as temporary:
        result.cascade.save(temporary)
    return result.cascade, history


class ValidationPCK(keras.callbacks.Callback):
    """Adds the validation PCK (torso-normalised, decoded in the graph's way) to the epoch
    logs every ``every`` epochs, NaN in the other epochs: ``val_pck@0.2`` of the last stage,
    and ``val_stage_N_pck@0.1`` / ``val_stage_N_pck@0.2`` of every stage, so
    ``metrics.csv`` and TensorBoard hold each stage's learning curve."""

    def __init__(self, data: LoadedData, *, input_size: int, every: int = 1,
                 batch_size: int = 32):
        super().__init__()
        self.data, self.input_size = data, input_size
        self.every, self.batch_size = every, batch_size
        self.truth = np.stack([r.keypoints for r in data.records])

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        names = None
        if (epoch + 1) % self.every == 0:
            stages = predict_stage_keypoints(self.model, self.data.records, self.data.skeleton,
                                             input_size=self.input_size,
                                             batch_size=self.batch_size)
            names = sorted(stages, key=lambda name: int(name.split("_")[1]))
            for name in names:
                for alpha in (0.1, 0.2):
                    logs[f"val_{name}_pck@{alpha:g}"] = pck(
                        stages[name], self.truth, self.data.skeleton, alpha=alpha).value
            logs["val_pck@0.2"] = logs[f"val_{names[-1]}_pck@0.2"]
            print(" - val PCK@0.2 per stage: " + " ".join(
                f"{logs[f'val_{name}_pck@0.2']:.4f}" for name in names), flush=True)
        else:
            for name in [n for n in self.model.output_names if n.startswith("stage_")]:
                for alpha in (0.1, 0.2):
                    logs[f"val_{name}_pck@{alpha:g}"] = float("nan")
            logs["val_pck@0.2"] = float("nan")


class EpochSummaries(keras.callbacks.Callback):
    """Writes every epoch's logs as TensorBoard scalars (for the custom training loop,
    where Keras's TensorBoard callback has no ``fit`` state to read)."""

    def __init__(self, folder: Path):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(Path(folder) / "train"))

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch_{name}", value, step=epoch)
        self.writer.flush()


class RunCheckpoint(keras.callbacks.Callback):
    """Commits a checkpoint every epoch (:func:`kpose.checkpoints.commit_checkpoint`: the
    epoch's model, the best one when ``monitor`` improves, then the manifest)."""

    def __init__(self, folder: Path, *, monitor: str, best: float | None = None,
                 pending: dict[Path, str] | None = None):
        super().__init__()
        self.folder, self.monitor = Path(folder), monitor
        self.higher_is_better = monitor.startswith("val_pck")
        self.best = best
        self.pending = pending  # files of the run's first commit (its config.json)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        improved = value is not None and not math.isnan(value) and (
            self.best is None
            or (value > self.best if self.higher_is_better else value < self.best))
        if improved:
            self.best = float(value)
        commit_checkpoint(self.folder, self.model, epoch=epoch + 1, monitor=self.monitor,
                          best=self.best, improved=improved, also=self.pending)
        self.pending = None


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: its epoch and best value, the ``config.json`` text to commit
    with its first checkpoint (``None``: unchanged), and the folder's paths before it."""

    initial_epoch: int
    best: float | None
    config_text: str | None
    existed: frozenset[str]
    folder_existed: bool


# What a kpose run leaves in its folder before its first checkpoint commits.
_LEFTOVERS = ("logs", "checkpoints")
# Fields a resumed run may change: its length, and where it runs.
_RESUMABLE_CHANGES = ("epochs", "strategy")


def _open_run_folder(out_dir: Path, config: RunConfig, resume: bool, *,
                     write: bool = True) -> RunStart:
    """Check the folder against the run before anything in it changes.

    A new run needs a new or empty folder (or the leftovers of a kpose run killed before
    its first checkpoint); a resumed one needs a committed checkpoint and the same
    settings apart from :data:`_RESUMABLE_CHANGES`. Nothing is written here: the config
    is committed with the first checkpoint.
    """
    folder_existed = out_dir.exists()
    if folder_existed and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a run folder")
    checkpoints = out_dir / "checkpoints"
    if write:
        recover_checkpoints(checkpoints)
    existed = frozenset(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")) \
        if folder_existed else frozenset()
    text = config.to_json()
    if resume:
        state = read_state(checkpoints)
        if state is None or last_checkpoint(checkpoints) is None:
            raise FileNotFoundError(f"cannot resume: {out_dir} has no committed checkpoint "
                                    "(checkpoints/state.json and the model it names)")
        previous = RunConfig.load(out_dir / "config.json")
        changed = [f.name for f in dataclasses.fields(RunConfig)
                   if f.name not in _RESUMABLE_CHANGES
                   and getattr(previous, f.name) != getattr(config, f.name)]
        if changed:
            details = "; ".join(f"{name}: run {getattr(previous, name)!r}, now "
                                f"{getattr(config, name)!r}" for name in changed[:3])
            raise ValueError(f"cannot resume {out_dir} with other settings ({details}); "
                             f"only {' and '.join(_RESUMABLE_CHANGES)} may change")
        unchanged = dataclasses.asdict(previous) == dataclasses.asdict(config)
        return RunStart(int(state["epoch"]), state.get("best"), None if unchanged else text,
                        existed, folder_existed)
    if not write:  # a worker other than the chief: the chief checks and writes the folder
        return RunStart(0, None, text, existed, folder_existed)
    if folder_existed:
        if (out_dir / "config.json").exists() or read_state(checkpoints) is not None:
            raise ValueError(f"{out_dir} already holds a run; pass resume=True (--resume) to "
                             "continue it, or choose another folder")
        foreign = sorted(p.name for p in out_dir.iterdir()
                         if p.name not in _LEFTOVERS or not _is_leftover(p))
        if foreign:
            raise ValueError(f"{out_dir} holds files kpose did not write "
                             f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''})"
                             ": train into a new or empty folder")
        for name in _LEFTOVERS:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        existed = frozenset()
    out_dir.mkdir(parents=True, exist_ok=True)
    return RunStart(0, None, text, existed, folder_existed)


def _is_leftover(path: Path) -> bool:
    """Whether ``path`` (``logs/`` or ``checkpoints/``) holds only what a kpose run writes
    before its first commit: TensorBoard event files, epoch model files, temporaries."""
    if not path.is_dir():
        return False
    for item in path.rglob("*"):
        if item.is_file() and "tfevents" not in item.name and not (
                item.name.startswith((".", "last.", "best.")) and ".keras" in item.name):
            return False
    return True


def _roll_back(out_dir: Path, start: RunStart) -> None:
    """After a failure before the run's first commit, remove what the run created, so the
    folder is as it was found. A run that committed a checkpoint is kept (resume it)."""
    state = read_state(out_dir / "checkpoints") if out_dir.is_dir() else None
    if state is not None and int(state["epoch"]) > start.initial_epoch:
        return
    if not start.folder_existed:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    created = [p for p in out_dir.rglob("*") if str(p.relative_to(out_dir)) not in
               start.existed]
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
