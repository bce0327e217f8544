"""Keypoints of every stage of a belief-map model over records, decoded by the model's
own codec and brought back to image pixels (validation during training, evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpose.data.crop_inference import predict_record_keypoints
from kpose.data.records import PoseRecord
from kpose.models.belief_merging import belief_maps_with_flip
from kpose.models.card import describe
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["predict_stage_keypoints", "check_model_skeleton"]


def predict_stage_keypoints(model, records: Sequence[PoseRecord], skeleton: Skeleton | str, *,
                            input_size: int | tuple[int, int] | None = None,
                            batch_size: int = 32, method: str = "taylor",
                            flip: bool = False, codec=None, margin: float | None = None,
                            progress: bool = False) -> dict[str, np.ndarray]:
    """Keypoints of every stage of a belief-map model (CPM, SimpleBaselines, hourglass)
    for each record, in image pixels.

    Each record is cropped around its box as in training (the margin of the model's card,
    no augmentation), every ``stage_N`` output is decoded with the codec's decoder (after
    averaging with the mirrored crop's maps when ``flip``), and the keypoints are mapped
    back through the crop's matrix.

    Args:
        model: a kpose belief-map model, or any callable from images to a dict of
            ``stage_N`` maps (then give ``input_size`` and ``codec``).
        codec, margin, input_size: override the model card's (required for a model
            without one; ``margin`` then defaults to 1.25).
        progress: a progress bar for long record lists
            (:func:`~kpose.data.crop_inference.predict_record_keypoints`).

    Returns:
        ``{"stage_1": (N, K, 3), ...}`` of ``(x, y, score)`` in image pixels, row ``n``
        for ``records[n]``.
    """
    skeleton = get_skeleton(skeleton)
    if codec is None or input_size is None:
        info = describe(model)
        check_model_skeleton(info.skeleton, skeleton)
        codec = codec or info.codec
        input_size = input_size or info.input_size
        margin = info.margin if margin is None else margin
    decoder = codec.decoder(method=method)

    def stage_maps(images, training=False):
        if flip:
            return belief_maps_with_flip(model, images, skeleton)
        outputs = model(images, training=False)
        return outputs if isinstance(outputs, dict) else {"stage_1": outputs}

    def decode(outputs):
        return {name: decoder(maps).numpy() for name, maps in outputs.items()}

    return predict_record_keypoints(stage_maps, records, skeleton,
                                    input_size=input_size, decode=decode,
                                    batch_size=batch_size,
                                    margin=1.25 if margin is None else margin,
                                    progress=progress)


def check_model_skeleton(model_skeleton: Skeleton, data_skeleton: Skeleton) -> None:
    """Refuse data of another skeleton than the model's, naming both."""
    if model_skeleton.joint_names != data_skeleton.joint_names:
        raise ValueError(f"the model predicts skeleton {model_skeleton.name!r} "
                         f"({model_skeleton.num_joints} joints) but the data follow "
                         f"{data_skeleton.name!r} ({data_skeleton.num_joints} joints)")
