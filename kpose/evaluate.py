"""Evaluation: run a belief-map model over records and score its keypoints."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpose.data.pipeline import make_dataset
from kpose.data.records import PoseRecord
from kpose.data.transforms import keypoints_to_image
from kpose.metrics import pck
from kpose.models.layers import HeatmapDecoder
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["predict_stage_keypoints", "stage_pck_report"]


def predict_stage_keypoints(model, records: Sequence[PoseRecord], skeleton: Skeleton | str, *,
                            input_size: int | tuple[int, int], batch_size: int = 32,
                            stride: int = 8, method: str = "taylor") -> dict[str, np.ndarray]:
    """Keypoints of every stage of a CPM for each record, in image pixels.

    Each record is cropped around its box as in training (no augmentation), every
    ``stage_N`` output is decoded with :class:`HeatmapDecoder`, and the keypoints are
    mapped back through the crop's matrix.

    Returns:
        ``{"stage_1": (N, K, 3), ...}`` of ``(x, y, score)`` in image pixels, row ``n``
        for ``records[n]``.
    """
    skeleton = get_skeleton(skeleton)
    dataset = make_dataset(records, skeleton, input_size=input_size, target="none",
                           batch_size=batch_size, with_meta=True)
    decoder = HeatmapDecoder(stride=stride, method=method)
    found: dict[str, list[np.ndarray]] = {}
    order = []
    for images, _, meta in dataset:
        outputs = model(images, training=False)
        if not isinstance(outputs, dict):
            outputs = {"stage_1": outputs}
        matrices = meta["image_to_input"].numpy()
        for name, maps in outputs.items():
            keypoints = decoder(maps).numpy()
            found.setdefault(name, []).append(keypoints_to_image(keypoints, matrices))
        order.append(meta["index"].numpy())
    inverse = np.argsort(np.concatenate(order))
    return {name: np.concatenate(parts)[inverse] for name, parts in found.items()}


def stage_pck_report(predictions: dict[str, np.ndarray], records: Sequence[PoseRecord],
                     skeleton: Skeleton | str, *, alphas: Sequence[float] = (0.1, 0.2)
                     ) -> dict[str, dict]:
    """Torso-normalised PCK per stage, overall and per joint.

    Returns:
        ``{stage: {"PCK@0.1": value, "PCK@0.1 per joint": {joint: value}, ...}}``.
    """
    skeleton = get_skeleton(skeleton)
    truth = np.stack([r.keypoints for r in records])
    report = {}
    for name, keypoints in predictions.items():
        row = {}
        for alpha in alphas:
            result = pck(keypoints, truth, skeleton, alpha=alpha)
            row[f"PCK@{alpha:g}"] = result.value
            row[f"PCK@{alpha:g} per joint"] = result.per_part
        report[name] = row
    return report
