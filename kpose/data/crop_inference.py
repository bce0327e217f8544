"""Running a model over the records' top-down crops and bringing its keypoints back to
image pixels: the loop that evaluation, training-time validation and DeepPose's refiner
data share. The model is any callable on image batches; nothing here knows a family.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpose.data.pipeline import make_dataset, naming_unreadable_images
from kpose.data.records import PoseRecord
from kpose.data.transforms import keypoints_to_image
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["predict_record_keypoints", "PROGRESS_FROM"]

# Record counts above which a progress bar is worth its lines.
PROGRESS_FROM = 200


def predict_record_keypoints(model, records: Sequence[PoseRecord], skeleton: Skeleton | str,
                             *, input_size: int | tuple[int, int], decode,
                             batch_size: int = 32, margin: float = 1.25,
                             progress: bool = False) -> dict[str, np.ndarray]:
    """Run a model over the records' top-down crops and bring its keypoints to image pixels.

    Args:
        model: callable on image batches ``(B, H, W, 3)``.
        records: the persons; each is cropped around its box (no augmentation).
        skeleton: their skeleton.
        input_size: the model's input size.
        decode: ``decode(outputs) -> {name: (B, K, C) array}`` with ``x, y`` in input
            pixels in the first two columns (further columns, such as a score, are kept).
        batch_size: crops per model call.
        margin: box enlargement, as in training.
        progress: show a progress bar (persons done) on standard output when there are
            more than :data:`PROGRESS_FROM` records.

    Returns:
        ``{name: (N, K, C)}`` in image pixels, row ``n`` for ``records[n]``.
    """
    skeleton = get_skeleton(skeleton)
    dataset = make_dataset(records, skeleton, input_size=input_size, target="none",
                           batch_size=batch_size, margin=margin, with_meta=True)
    found: dict[str, list[np.ndarray]] = {}
    order = []
    bar = None
    if progress and len(records) > PROGRESS_FROM:
        from keras.utils import Progbar

        bar = Progbar(len(records), unit_name="person")
    with naming_unreadable_images(records):
        for images, _, meta in dataset:
            matrices = meta["image_to_input"].numpy()
            for name, keypoints in decode(model(images, training=False)).items():
                found.setdefault(name, []).append(keypoints_to_image(keypoints, matrices))
            order.append(meta["index"].numpy())
            if bar is not None:
                bar.add(len(order[-1]))
    inverse = np.argsort(np.concatenate(order))
    return {name: np.concatenate(parts)[inverse] for name, parts in found.items()}
