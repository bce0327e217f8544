"""Training across machines with MultiWorkerMirroredStrategy, in a custom loop.

Keras 3's ``model.fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585),
so this loop does what ``fit`` does for a CPM: ``strategy.run`` of one step per global
batch over a distributed dataset, the per-stage belief-map losses averaged over the
global batch, the model's own optimiser, and the run's callbacks (validation PCK,
checkpoints, CSV log) at the end of every epoch. Only the chief writes the run folder.

Launching on several machines: start the same ``kpose train --strategy multiworker``
command on every machine, each with ``TF_CONFIG`` naming the cluster and its own task:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}'   # index 1 on host2

Worker 0 is the chief; the run folder should be on storage every worker can read when
``--resume`` is used.
"""

from __future__ import annotations

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf


__all__ = ["multiworker_strategy", "is_chief", "fit_multiworker"]


def multiworker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The strategy described by ``TF_CONFIG``; a ``ValueError`` when it is missing."""
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable "
                         "naming the cluster and this worker (see kpose.multiworker)")
    try:
        json.loads(config)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes files (task 0, or any single-machine strategy)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                              and resolver.task_id == 0)


def fit_multiworker(model: keras.Model, strategy: tf.distribute.Strategy, dataset_fn, *,
                    epochs: int, initial_epoch: int, steps_per_epoch: int,
                    global_batch: int, callbacks=(), verbose: bool = True) -> dict:
    """Train a compiled belief-map model (CPM, SimpleBaselines, hourglass) with a custom
    distributed loop.

    Args:
        model: built and compiled under ``strategy.scope()`` (its ``loss`` dict names the
            supervised ``stage_N`` outputs; its ``optimizer`` is used).
        strategy: usually :func:`multiworker_strategy`; any strategy works.
        dataset_fn: ``dataset_fn(input_context)`` -> the dataset of one input pipeline,
            batched to ``input_context.get_per_replica_batch_size(global_batch)``.
        epochs, initial_epoch, steps_per_epoch: as for ``model.fit``.
        global_batch: images per step over all replicas; losses are averaged over it.
        callbacks: Keras callbacks; their ``on_epoch_end`` sees ``loss`` and
            ``stage_N_loss`` like after ``fit``.

    Returns:
        ``{metric: [value per epoch]}``.
    """
    supervised = sorted(model.loss, key=lambda name: int(name.split("_")[1]))
    # The losses the model was compiled with (foreground weighting and all), per stage.
    losses = {name: model.loss[name] for name in supervised}
    optimizer = model.optimizer
    dataset = strategy.distribute_datasets_from_function(dataset_fn)
    iterator = iter(dataset)

    def replica_step(images, targets):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            per_stage = [tf.nn.compute_average_loss(
                losses[name].call(targets[name], outputs[name]), global_batch_size=global_batch)
                for name in supervised]
            loss = tf.add_n(per_stage)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return [loss, *per_stage]

    @tf.function
    def train_step(iterator):
        images, targets = next(iterator)
        values = strategy.run(replica_step, args=(images, targets))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in values]

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    callback_list.on_train_begin()
    history: dict[str, list[float]] = {}
    names = ["loss", *[f"{name}_loss" for name in supervised]]
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        start = time.perf_counter()
        totals = np.zeros(len(names))
        for _ in range(steps_per_epoch):
            totals += [float(v) for v in train_step(iterator)]
        logs = dict(zip(names, (totals / steps_per_epoch).tolist()))
        callback_list.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if verbose:
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()
                               if not (isinstance(v, float) and math.isnan(v)))
            print(f"Epoch {epoch + 1}/{epochs} - {time.perf_counter() - start:.0f}s - {shown}",
                  flush=True)
    callback_list.on_train_end()
    return history
