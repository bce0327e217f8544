"""What a model is, saved inside it: family, skeleton, codec, input size and crop margin.

Every builder puts a :class:`ModelCard` layer on its image input. The layer passes the
image through unchanged (it vanishes from exported graphs) and its config holds the
model's description, so a ``.keras`` file copied away from its run folder still says what
it is, custom skeletons included. :func:`describe` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from kpose.codecs import BeliefMapCodec, CoordinateCodec, codec_from_config
from kpose.skeletons import Skeleton

__all__ = ["ModelCard", "ModelInfo", "describe", "model_family", "stage_outputs",
           "attach_card", "FAMILIES", "CARD_LAYER"]

# The model families kpose builds; each names its codec kind in the card.
FAMILIES = ("cpm", "deeppose", "simplebaseline", "hourglass", "hrnet")
CARD_LAYER = "model_card"


@dataclass(frozen=True)
class ModelInfo:
    """A kpose model's description.

    Attributes:
        family: one of :data:`FAMILIES`.
        skeleton: the joints it predicts.
        codec: how its outputs encode keypoints (:mod:`kpose.codecs`).
        input_size: ``(H, W)`` of its image input, in pixels.
        margin: the person box is enlarged by this factor before the top-down crop, in
            training and at inference alike.
        options: the builder's other hyper-parameters (JSON values), for the record.
    """

    family: str
    skeleton: Skeleton
    codec: BeliefMapCodec | CoordinateCodec
    input_size: tuple[int, int]
    margin: float = 1.25
    options: dict | None = None

    def get_config(self) -> dict:
        return {"family": self.family, "skeleton": self.skeleton.to_config(),
                "codec": self.codec.get_config(), "input_size": list(self.input_size),
                "margin": self.margin, "options": dict(self.options or {})}

    @classmethod
    def from_config(cls, config: dict) -> ModelInfo:
        try:
            family = config["family"]
            if family not in FAMILIES:
                raise ValueError(f"unknown model family {family!r}; kpose builds {FAMILIES}")
            return cls(family, Skeleton.from_config(config["skeleton"]),
                       codec_from_config(config["codec"]),
                       tuple(int(s) for s in config["input_size"]),
                       float(config.get("margin", 1.25)), dict(config.get("options") or {}))
        except KeyError as missing:
            raise ValueError(f"model card lacks the field {missing}") from None


@keras.saving.register_keras_serializable(package="kpose")
class ModelCard(keras.layers.Layer):
    """Identity on the image ``(B, H, W, 3)``; its config is the model's :class:`ModelInfo`."""

    def __init__(self, info: dict, **kwargs):
        kwargs.setdefault("name", CARD_LAYER)
        super().__init__(**kwargs)
        self.info = ModelInfo.from_config(info) if isinstance(info, dict) else info

    def call(self, images):
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "info": self.info.get_config()}


def attach_card(image: keras.KerasTensor, info: ModelInfo) -> keras.KerasTensor:
    """``image`` through a :class:`ModelCard` holding ``info``: call it first in a builder."""
    return ModelCard(info.get_config())(image)


def describe(model: keras.Model) -> ModelInfo:
    """The :class:`ModelInfo` saved in ``model`` (searched in nested models too).

    Raises:
        ValueError: the model has no card (it was not built by kpose, or by a kpose
            older than model cards: rebuild or retrain it).
    """
    card = _find_card(model)
    if card is None:
        raise ValueError(f"model {getattr(model, 'name', model)!r} is not a kpose model: it "
                         "carries no model card (family, skeleton, codec); build it with a "
                         "kpose builder, or retrain it with this version of kpose")
    return card.info


def model_family(model: keras.Model) -> str:
    """The family of a kpose model: ``"cpm"``, ``"deeppose"``, ``"simplebaseline"`` or
    ``"hourglass"``."""
    return describe(model).family


def stage_outputs(model: keras.Model) -> list[str]:
    """The model's ``stage_N`` output names in stage order (``[]`` when it has none)."""
    names = [n for n in getattr(model, "output_names", []) or []
             if n.startswith("stage_") and n[6:].isdigit()]
    return sorted(names, key=lambda n: int(n[6:]))


def _find_card(model) -> ModelCard | None:
    for layer in getattr(model, "layers", []):
        if isinstance(layer, ModelCard):
            return layer
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            found = _find_card(layer)
            if found is not None:
                return found
    return None
