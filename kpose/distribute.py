"""Choosing a ``tf.distribute`` strategy by name, and the learning-rate rule that goes with it."""

from __future__ import annotations

import tensorflow as tf

__all__ = ["STRATEGIES", "resolve_strategy", "scaled_learning_rate", "REFERENCE_BATCH"]

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")

# Learning rates in kpose are quoted for a global batch of 16 images.
REFERENCE_BATCH = 16


def resolve_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy a run uses.

    - ``"auto"``: a TPU when one is reachable (Colab TPU runtime), MirroredStrategy when
      more than one GPU is visible, else the default (single-device) strategy.
    - ``"default"``: one device.
    - ``"mirrored"``: MirroredStrategy over all GPUs; with no GPU, over all logical CPU
      devices (split a CPU with ``tf.config.set_logical_device_configuration``).
    - ``"multiworker"``: MultiWorkerMirroredStrategy over the cluster in ``TF_CONFIG``
      (train it with :func:`kpose.multiworker.fit_multiworker`, not ``model.fit``).
    - ``"tpu"``: TPUStrategy; a ``ValueError`` when no TPU is found.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multiworker":
        from kpose.multiworker import multiworker_strategy  # only for multi-worker runs

        return multiworker_strategy()
    if name == "tpu":
        strategy = _tpu_strategy()
        if strategy is None:
            raise ValueError("strategy 'tpu' was asked for but no TPU is reachable from this "
                             "machine (in Colab, choose a TPU runtime)")
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        strategy = _tpu_strategy()
        if strategy is not None:
            return strategy
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if gpus:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])


def scaled_learning_rate(base: float, global_batch: int) -> float:
    """Linear scaling rule: ``base`` is for a global batch of :data:`REFERENCE_BATCH`."""
    return base * global_batch / REFERENCE_BATCH


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None
    return tf.distribute.TPUStrategy(resolver)
