#!/usr/bin/env python3
"""Cut every COCO person into a square crop and write a COCO file for the crops.

Training reads and decodes a whole COCO image (640 x 480 on average) for every person in it;
a cache of person crops at the model's scale decodes a fraction of the pixels. This script
reads a COCO person-keypoints file with kpose's ``read_coco`` (so it keeps exactly the
persons kpose trains on: not crowd, at least one labelled keypoint) and, for each person:

- cuts the square around the person box enlarged by ``--margin`` (the geometry of
  ``kpose.data.transforms.crop_matrix``) and resizes it to ``--size`` px, antialiased when
  it shrinks; pixels beyond the image are black, as in kpose's pipeline;
- writes ``OUT/images/<annotation id>.jpg`` (or ``.png``);
- writes one image and one annotation per crop into ``OUT/<input json name>``, in the COCO
  person-keypoints format: keypoints, ``bbox`` and ``area`` mapped into crop pixels
  (``area`` scales with the square of the zoom, so OKS stays the same), ``categories`` and
  image licences copied, and ``source`` with the original ``image_id``, ``file_name``,
  ``annotation_id`` and the 2 x 3 image -> crop matrix ``image_to_crop``, so predictions on
  a crop map back to the original image with ``kpose.data.transforms.keypoints_to_image``.

``read_coco`` reads the output as it is (``coco:OUT/person_keypoints_train2017.json``).
The margin leaves room for kpose's training augmentation (zoom out to 0.7, rotation up to
40 degrees, crop margin 1.25): with the default 2.0 the augmented crops stay inside the
cached pixels in most draws.

Example::

    python datasets/coco_person_crops.py coco/annotations/person_keypoints_train2017.json \\
        coco/train2017 --out coco_crops --size 256
    # -> coco_crops/person_keypoints_train2017.json, coco_crops/images/000000183126.jpg ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from kpose.files import atomic_path

# Before TensorFlow is first imported: keep its C++ start-up chatter off the console.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_PROG = "coco_person_crops"
_DIGITS = 3  # keypoint decimals in the output: 1/1000 px


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 done, 1 bad input)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Cut COCO persons into square crops resized to --size px and "
        "write a COCO person-keypoints file for them (keypoints in crop pixels).")
    parser.add_argument("annotations", type=Path,
                        help="COCO person keypoints JSON, e.g. person_keypoints_val2017.json")
    parser.add_argument("images", type=Path, nargs="?",
                        help="folder the file_name entries are relative to (default: the "
                        "JSON's folder + images, else the JSON's folder)")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: OUT/images/ and OUT/<annotations file name>")
    parser.add_argument("--size", type=int, default=256, help="crop side in px (default 256)")
    parser.add_argument("--margin", type=float, default=2.0,
                        help="crop side / longer side of the person box (default 2.0)")
    parser.add_argument("--min-keypoints", type=int, default=1,
                        help="skip persons with fewer labelled keypoints (default 1)")
    parser.add_argument("--format", choices=["jpg", "png"], default="jpg",
                        help="crop file format (default jpg, quality 95)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out persons whose image is missing instead of stopping")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.size < 8:
        raise ValueError(f"--size must be at least 8 px, got {args.size}")
    if not args.margin >= 1.0:
        raise ValueError(f"--margin must be at least 1 (the crop holds the box), got "
                         f"{args.margin}")
    if args.min_keypoints < 1:
        raise ValueError(f"--min-keypoints must be at least 1, got {args.min_keypoints}")
    if not args.annotations.is_file():
        raise FileNotFoundError(f"annotation file not found: {args.annotations}")
    if args.images is not None and not args.images.is_dir():
        raise FileNotFoundError(f"image folder not found: {args.images}")
    if args.out.resolve() == args.annotations.resolve().parent:
        raise ValueError(f"--out {args.out} is the annotation file's folder; choose a new "
                         "folder so the input is not overwritten")

    from kpose.data.annotation_files import load_json
    from kpose.data.coco import read_coco

    print(f"reading {args.annotations}", flush=True)
    source = load_json(args.annotations, "COCO person keypoints")
    records = read_coco(args.annotations, args.images, skip_missing=args.skip_missing)
    records = [r for r in records if int(r.labelled.sum()) >= args.min_keypoints]
    if not records:
        raise ValueError(f"{args.annotations}: no person with at least {args.min_keypoints} "
                         "labelled keypoint(s)")
    images_by_id = {image["id"]: image for image in source["images"]}
    category = _person_category(source.get("categories") or [])
    names = _crop_names(records, args.format)

    from keras.utils import Progbar

    print(f"cutting {len(records)} persons into {args.out / 'images'}", flush=True)
    bar = Progbar(len(records), unit_name="person")
    crop_images, crop_annotations, outside = [], [], 0
    for done, (record, name) in enumerate(zip(records, names), start=1):
        matrix = _cut(record, args.out / "images" / name, args.size, args.margin)
        image, annotation, lost = _crop_entries(record, name, matrix, args.size, category,
                                                images_by_id.get(record.image_id, {}), done)
        crop_images.append(image)
        crop_annotations.append(annotation)
        outside += lost
        bar.update(done)

    output = {key: source[key] for key in ("info", "licenses") if key in source}
    output.update(images=crop_images, annotations=crop_annotations,
                  categories=source.get("categories", []))
    target = args.out / args.annotations.name
    with atomic_path(target) as temporary:  # written last: present means complete
        temporary.write_text(json.dumps(output) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} crops of {args.size} x {args.size} px and {target}")
    if outside:
        print(f"note: {outside} labelled keypoint(s) lie outside their crop (kept as "
              "labelled; raise --margin to include them)")
    return 0


def _person_category(categories: list) -> int:
    """The id of the category with keypoints (person), as ``read_coco`` picks it."""
    with_keypoints = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
    chosen = next((c for c in with_keypoints if c.get("name") == "person"),
                  with_keypoints[0] if with_keypoints else {"id": 1})
    return chosen.get("id", 1)


def _crop_names(records, suffix: str) -> list[str]:
    """``<annotation id>.<suffix>``; a running number where the file has no ids."""
    ids = [r.annotation_id for r in records]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return [f"{int(i):012d}.{suffix}" for i in ids]
    return [f"person{i:08d}.{suffix}" for i in range(len(records))]


def _cut(record, target: Path, size: int, margin: float) -> np.ndarray:
    """Write the crop of ``record`` to ``target``; return the image -> crop matrix."""
    import tensorflow as tf
    from PIL import Image

    from kpose.data.transforms import crop_matrix, warp_image

    matrix = crop_matrix(record.box, (size, size), margin=margin)
    image = tf.io.decode_image(tf.io.read_file(record.image_path), channels=3,
                               expand_animations=False)
    zoom = float(matrix[0, 0])  # crop px per image px (no rotation: the matrix is diagonal)
    warp = matrix
    if zoom < 1.0:
        # Shrink the whole image with an antialiasing filter first, then warp at ~1:1, so a
        # large person does not alias. resize() keeps pixel centres at (i + 0.5) * scale.
        height, width = int(image.shape[0]), int(image.shape[1])
        new_h, new_w = max(1, round(height * zoom)), max(1, round(width * zoom))
        image = tf.image.resize(image, (new_h, new_w), antialias=True)
        sx, sy = new_w / width, new_h / height
        shrink = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
        warp = matrix @ np.linalg.inv(shrink)
    crop = warp_image(image, warp, (size, size)).numpy()
    pixels = np.clip(np.round(crop), 0, 255).astype(np.uint8)
    with atomic_path(target) as temporary:
        if target.suffix == ".png":
            Image.fromarray(pixels).save(temporary, format="PNG")
        else:
            Image.fromarray(pixels).save(temporary, format="JPEG", quality=95)
    return matrix


def _crop_entries(record, name: str, matrix: np.ndarray, size: int, category: int,
                  original: dict, crop_id: int) -> tuple[dict, dict, int]:
    """The crop's ``images[]`` and ``annotations[]`` entries, and how many labelled
    keypoints fall outside it."""
    from kpose.data.transforms import keypoints_to_input

    keypoints = keypoints_to_input(record.keypoints, matrix).astype(np.float64)
    labelled = record.keypoints[:, 2] > 0
    keypoints[~labelled] = 0.0
    keypoints[:, :2] = np.round(keypoints[:, :2], _DIGITS)
    inside = np.all((keypoints[:, :2] >= -0.5) & (keypoints[:, :2] <= size - 0.5), axis=1)
    x, y, w, h = record.box
    (x0, y0), (x1, y1) = keypoints_to_input(np.array([[x, y], [x + w, y + h]]), matrix)
    zoom = float(matrix[0, 0])
    ident = record.annotation_id if record.annotation_id is not None else crop_id
    image = {"id": ident, "file_name": name, "width": size, "height": size}
    if "license" in original:
        image["license"] = original["license"]
    annotation = {
        "id": ident, "image_id": ident, "category_id": category, "iscrowd": 0,
        "num_keypoints": int(labelled.sum()),
        "keypoints": [v if i % 3 != 2 else int(v)
                      for i, v in enumerate(keypoints.ravel().tolist())],
        "bbox": [round(float(v), _DIGITS) for v in (x0, y0, x1 - x0, y1 - y0)],
        "area": round(float(record.area or w * h) * zoom * zoom, _DIGITS),
        "source": {"image_id": record.image_id, "file_name": original.get(
            "file_name", os.path.basename(record.image_path)),
            "annotation_id": record.annotation_id,
            "image_to_crop": np.asarray(matrix[:2]).tolist()},
    }
    return image, annotation, int(np.sum(labelled & ~inside))


if __name__ == "__main__":
    sys.exit(main())
