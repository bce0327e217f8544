"""The steady-state training rate of a compiled Keras model, shared by the training
benchmarks (``training.py``, ``step_time.py``)."""

from __future__ import annotations

import time


def timed_steps(model, dataset, steps: int, warmup: int = 5) -> tuple[float, float, float]:
    """One ``model.fit`` of ``warmup + steps`` steps on ``dataset`` (an endless
    ``tf.data.Dataset`` of batches), timed from the end of the last warm-up step (tracing,
    XLA compilation, iterator start and shuffle-buffer fill done) to the end of the last
    step.

    Returns:
        ``(seconds per step, start, end)``: ``start`` and ``end`` are the wall-clock times
        (``time.time()``, seconds) of the timed span, to match other clocks against it.
    """
    import keras

    class StepClock(keras.callbacks.Callback):  # gets NumPy logs, so it waits for each step
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((time.perf_counter(), time.time()))

    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be >= 1, got {steps} and {warmup}")
    clock = StepClock()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[clock])
    (first, start), (last, end) = clock.ends[warmup - 1], clock.ends[-1]
    return (last - first) / steps, start, end


def step_seconds(model, dataset, steps: int, warmup: int = 5) -> float:
    """Seconds per training step, as :func:`timed_steps` measures it."""
    return timed_steps(model, dataset, steps, warmup)[0]
