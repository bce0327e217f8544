"""The public entry points: one rendered person, and a whole COCO-format data set
written to disk (JPEGs and ``person_keypoints.json``, atomically, with a progress line)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kpose.data.synthetic.config import ANNOTATION_FILE, IMAGE_DIR, SyntheticConfig
from kpose.data.synthetic.scene import _render_scene
from kpose.files import atomic_path
from kpose.skeletons import COCO_17


def render_person(rng: np.random.Generator, size: int = 256,
                  config: SyntheticConfig | None = None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]]:
    """Render one synthetic person.

    Args:
        rng: the only source of randomness; the same generator state gives the same image.
        size: side of the square image in pixels (at least 32).
        config: sampling ranges; :class:`SyntheticConfig` defaults when ``None``.

    Returns:
        ``(image, keypoints, box)``: ``image`` uint8 ``(size, size, 3)`` RGB; ``keypoints``
        float32 ``(17, 3)`` ``(x, y, v)`` in COCO_17 order (module docstring for the
        frame and the visibility rules); ``box`` ``(x, y, w, h)`` around the drawn figure
        (occluded parts included) and its labelled keypoints, clipped to the image
        ``[-0.5, size - 0.5]``.
    """
    scene = _render_scene(rng, size, config or SyntheticConfig())
    return scene.image, scene.keypoints, scene.box


def write_synthetic_dataset(out_dir: str | os.PathLike, num: int, seed: int = 0,
                            size: int = 256, config: SyntheticConfig | None = None,
                            quality: int = 90, progress: bool = True) -> Path:
    """Write ``num`` synthetic people as a COCO person_keypoints data set.

    Layout: ``out_dir/images/synth_{i:06d}.jpg`` and ``out_dir/person_keypoints.json``
    (``file_name`` is relative to ``out_dir/images``; image and annotation ids are
    ``i + 1``). Image ``i`` is drawn with ``np.random.default_rng([seed, i])``, so it does not
    depend on ``num``, and the same arguments give the same bytes. Each file is written
    under a temporary name and renamed, and the JSON comes last: an interrupted run leaves
    no half-written file and no JSON.

    Annotation fields: ``bbox`` and ``keypoints`` in the kpose frame (module docstring),
    rounded to 0.01 px; ``area`` is the figure's pixel area inside the image, occluded
    parts included (the amodal area, a steadier OKS scale than the visible area);
    ``num_keypoints`` counts joints with ``v > 0``.

    Args:
        out_dir: output folder, created when missing.
        num: number of images (>= 1).
        seed: data set seed.
        size: image side in pixels.
        config: sampling ranges for :func:`render_person`.
        quality: JPEG quality.
        progress: print a progress line on stderr (every 5 %) for 100 images or more.

    Returns:
        Path of the JSON file.
    """
    if int(num) != num or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if int(size) != size or size < 32:
        raise ValueError(f"size must be an integer >= 32, got {size!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be a JPEG quality in 1..100, got {quality!r}")
    config = config or SyntheticConfig()
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    report = _ProgressLine(num) if progress and num >= 100 else None
    for i in range(num):
        image, keypoints, box, area = _render_for_file(seed, i, size, config)
        file_name = f"synth_{i:06d}.jpg"
        _save_jpeg_atomic(image, image_dir / file_name, quality)
        images.append({"id": i + 1, "file_name": file_name, "width": size, "height": size})
        annotations.append(_coco_annotation(i + 1, keypoints, box, area))
        if report:
            report.update(i + 1)
    document = {
        "info": {"description": "kpose synthetic people", "seed": seed, "size": size},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [_coco_person_category()],
    }
    json_path = out_dir / ANNOTATION_FILE
    _write_text_atomic(json_path, json.dumps(document, separators=(",", ":")))
    return json_path


def _render_for_file(seed: int, index: int, size: int, config: SyntheticConfig):
    scene = _render_scene(np.random.default_rng([seed, index]), size, config)
    return scene.image, scene.keypoints, scene.box, scene.area


def _coco_annotation(index: int, keypoints: np.ndarray, box, area: float) -> dict:
    flat = [round(float(value), 2) for value in keypoints.reshape(-1)]
    for k in range(2, len(flat), 3):
        flat[k] = int(flat[k])
    return {
        "id": index,
        "image_id": index,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [round(float(b), 2) for b in box],
        "area": round(float(area), 2),
        "num_keypoints": int(np.count_nonzero(keypoints[:, 2] > 0)),
        "keypoints": flat,
    }


def _coco_person_category() -> dict:
    return {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO_17.joint_names),
        # COCO numbers joints from 1 in its skeleton.
        "skeleton": [[a + 1, b + 1] for a, b in COCO_17.bones],
    }


def _save_jpeg_atomic(image: np.ndarray, path: Path, quality: int) -> None:
    with atomic_path(path) as temporary:
        Image.fromarray(image).save(temporary, format="JPEG", quality=quality)


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


class _ProgressLine:
    """``synthetic: 1250/5000 (25%) 130 img/s`` on stderr, every 5 %."""

    def __init__(self, total: int):
        self.total, self.start, self.next_percent = total, time.perf_counter(), 5

    def update(self, done: int) -> None:
        percent = 100 * done // self.total
        if percent < self.next_percent and done < self.total:
            return
        self.next_percent = percent + 5
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        # One line per update: readable in notebooks and log files, not only terminals.
        print(f"synthetic: {done}/{self.total} ({percent}%) {rate:.0f} img/s",
              file=sys.stderr, flush=True)
