"""Preview pictures of a data set: raw samples and what the training pipeline feeds a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from kpose.data.coco import read_coco
from kpose.data.pipeline import make_dataset
from kpose.skeletons import COCO_17
from kpose.viz import plot_sample_grid, save_figure

__all__ = ["write_previews"]


def write_previews(annotation_json: str | Path, out_dir: str | Path, *, seed: int = 0,
                   count: int = 16, input_size: int = 256) -> list[Path]:
    """Draw ``preview_samples.png`` and ``preview_pipeline.png`` for a COCO-format data set.

    Args:
        annotation_json: COCO person_keypoints file (for example from ``kpose synth``).
        out_dir: folder for the two PNGs.
        seed: seed of the augmented training batch.
        count: images per grid.
        input_size: side of the training crops in the pipeline preview.

    Returns:
        The paths written: the first ``count`` persons on their images, then one augmented
        training batch (crop, flip, rotation, scale, colour) with its keypoints.
    """
    records = read_coco(annotation_json)[:count]
    out_dir = Path(out_dir)
    images = [np.asarray(Image.open(r.image_path).convert("RGB")) for r in records]
    samples = plot_sample_grid(images, [r.keypoints for r in records], COCO_17)
    dataset = make_dataset(records, COCO_17, input_size=input_size, target="none",
                           training=True, batch_size=len(records), seed=seed,
                           drop_remainder=False)
    crops, keypoints = next(iter(dataset))
    pipeline = plot_sample_grid(list(crops.numpy()), list(keypoints.numpy()), COCO_17)
    written = []
    for name, figure in (("preview_samples.png", samples), ("preview_pipeline.png", pipeline)):
        written.append(save_figure(figure, out_dir / name, dpi=80))
    return written
