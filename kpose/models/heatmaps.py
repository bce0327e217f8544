"""What the belief-map families (CPM, SimpleBaselines, Hourglass) share: their output
heads, their compiled loss, and the keypoint model that decodes them in the graph.

Each such model outputs ``stage_1`` ... ``stage_T`` (one stage for SimpleBaselines), each
``(B, H / stride, W / stride, C)`` float32 with ``C`` = ``K`` (+ 1 background map for the
CPM), and carries a :class:`~kpose.codecs.BeliefMapCodec` in its model card.
"""

from __future__ import annotations

import keras

from kpose.losses import BeliefMapLoss
from kpose.models.card import describe, stage_outputs

__all__ = ["belief_output", "compile_belief_model", "build_heatmap_inference"]


def belief_output(features, maps: int, name: str, *, kernel: int = 1):
    """A linear ``kernel x kernel`` convolution to ``maps`` channels, named ``name``
    (float32, so it stays float32 under mixed precision)."""
    beliefs = keras.layers.Conv2D(maps, kernel, padding="same", name=f"{name}_maps")(features)
    return keras.layers.Activation("linear", dtype="float32", name=name)(beliefs)


def compile_belief_model(model: keras.Model, *, learning_rate=1e-3,
                         intermediate_supervision: bool = True,
                         foreground_weight: float = 0.0, optimizer=None, **compile_kwargs):
    """Compile with a :class:`~kpose.losses.BeliefMapLoss` on every stage (or only the
    last); Keras sums the per-stage losses (CPM's eq. 5, Hourglass's intermediate
    supervision).

    Args:
        learning_rate: Adam's rate, or a schedule.
        intermediate_supervision: loss on every stage; ``False``: only the last.
        foreground_weight: weight joint-map pixels by ``1 + foreground_weight * target``
            (0: the papers' plain squared error).
    """
    names = stage_outputs(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no stage_N outputs")
    background = describe(model).codec.background
    supervised = names if intermediate_supervision else names[-1:]
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
        loss={name: BeliefMapLoss(foreground_weight=foreground_weight, background=background)
              for name in supervised},
        **compile_kwargs,
    )
    return model


def build_heatmap_inference(trained: keras.Model, *, method: str = "taylor",
                            frame: str = "pixels", **decoder_options) -> keras.Model:
    """Wrap a belief-map model so it outputs keypoints: image in, ``(B, K, 3)`` out.

    The last stage goes through its codec's decoder
    (:meth:`~kpose.codecs.BeliefMapCodec.decoder`): ``(x, y, score)`` in input pixels (or
    fractions of the input with ``frame="fraction"``).
    """
    codec = describe(trained).codec
    names = stage_outputs(trained)
    inputs = [keras.Input(t.shape[1:], name=t.name.split(":")[0]) for t in trained.inputs]
    outputs = trained(inputs if len(inputs) > 1 else inputs[0])
    last = outputs[names[-1]] if isinstance(outputs, dict) else outputs[-1]
    keypoints = codec.decoder(method=method, frame=frame, **decoder_options)(last)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], keypoints,
                       name=f"{trained.name}_keypoints")
