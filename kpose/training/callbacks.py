"""The callbacks of a training run: validation scores per stage, TensorBoard scalars for
custom loops, and the checkpoint committed after every epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kpose.checkpoints import commit_checkpoint
from kpose.data.crop_inference import predict_record_keypoints
from kpose.data.specs import LoadedData
from kpose.inference import predict_stage_keypoints
from kpose.metrics import pck, pdj
from kpose.models.deeppose import build_deeppose_inference

__all__ = ["ValidationPCK", "ValidationPDJ", "EpochSummaries", "RunCheckpoint", "EpochSeeds",
           "StopOnNonFiniteLoss"]


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first step whose loss is NaN or infinite, with an error naming the
    step, before the epoch's checkpoint is written: the run keeps its last good
    checkpoint (none in the first epoch, where the run folder is removed)."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        step = self.epoch * self.steps_per_epoch + batch + 1
        kept = (f"the checkpoint of epoch {self.epoch} is kept (--resume continues from "
                "it)") if self.epoch else "no epoch had ended, so nothing was kept"
        raise ValueError(f"the training loss became {float(loss)} at step {step} (epoch "
                         f"{self.epoch + 1}); stopped: {kept}; a lower --lr usually helps")


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


class ValidationPDJ(keras.callbacks.Callback):
    """Adds a DeepPose stage's validation PDJ@0.2 to the epoch logs every ``every`` epochs:
    the PDJ of the cascade up to the stage in training as ``val_stage_S_pdj@0.2`` and
    ``val_pdj@0.2``. The other stages' columns hold NaN, so ``metrics.csv`` keeps one set
    of columns over the whole run and each stage's curve is its own column.

    Args:
        data: the validation persons.
        cascade: ``cascade(model) -> keras.Model``: the finished stages followed by the
            model in training, as one graph (image -> ``(B, K, 2)`` normalised joints).
        stage, stages: the stage in training (1-based) and the cascade's length.
        input_size: the cascade's input size.
        every: epochs between scores.
    """

    def __init__(self, data: LoadedData, cascade: Callable[[keras.Model], keras.Model], *,
                 stage: int, stages: int, input_size, every: int = 1, batch_size: int = 32):
        super().__init__()
        self.data, self.cascade = data, cascade
        self.stage, self.stages, self.input_size = stage, stages, input_size
        self.every, self.batch_size = every, batch_size
        self.truth = np.stack([r.keypoints for r in data.records])

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for stage in range(1, self.stages + 1):
            logs[f"val_stage_{stage}_pdj@0.2"] = float("nan")
        logs["val_pdj@0.2"] = float("nan")
        if (epoch + 1) % self.every:
            return
        inference = build_deeppose_inference(self.cascade(self.model))
        found = predict_record_keypoints(
            inference, self.data.records, self.data.skeleton, input_size=self.input_size,
            batch_size=self.batch_size, decode=lambda outputs: {"k": np.asarray(outputs)})["k"]
        value = pdj(found, self.truth, self.data.skeleton).value
        logs[f"val_stage_{self.stage}_pdj@0.2"] = logs["val_pdj@0.2"] = value
        print(f" - stage {self.stage}: val PDJ@0.2 {value:.4f}", flush=True)


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


class EpochSeeds(keras.callbacks.Callback):
    """Sets the state of every random layer (Dropout's seed generators) from ``(seed,
    epoch)`` when an epoch begins.

    A saved ``.keras`` file keeps weights and optimiser but not these states, so without
    this a resumed run would draw other dropout masks than the uninterrupted one; with
    it, epoch ``e`` draws the same masks whether the run went through or resumed.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for index, state in enumerate(states):
            base = (self.seed * 1_000_003 + 7919 * index + 1) % 2**31
            state.assign(np.array([base, epoch * 2**16], dtype=state.dtype))


class RunCheckpoint(keras.callbacks.Callback):
    """Commits a checkpoint every epoch (:func:`kpose.checkpoints.commit_checkpoint`: the
    epoch's model, the best one when ``monitor`` improves, then the manifest).
    ``monitor=None`` selects nothing: every epoch's model is also the "best" file (a
    DeepPose run, whose checkpoints hold the stage in training, not a whole model)."""

    def __init__(self, folder: Path, *, monitor: str | None, best: float | None = None,
                 pending: dict[Path, str] | None = None):
        super().__init__()
        self.folder, self.monitor = Path(folder), monitor
        self.higher_is_better = monitor is not None and monitor.startswith("val_pck")
        self.best = best
        self.pending = pending  # files of the run's first commit (its config.json)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor) if self.monitor else None
        improved = self.monitor is None or (value is not None and not math.isnan(value) and (
            self.best is None
            or (value > self.best if self.higher_is_better else value < self.best)))
        if improved and value is not None:
            self.best = float(value)
        commit_checkpoint(self.folder, self.model, epoch=epoch + 1, monitor=self.monitor,
                          best=self.best, improved=improved, also=self.pending)
        self.pending = None
