#!/usr/bin/env python3
"""Convert MPII's original ``mpii_human_pose_v1_u12_1.mat`` into the HRNet/mmpose JSON form.

The JSON form is a list of ``{joints_vis, joints, image, scale, center}`` per person, in
MATLAB's 1-based pixel coordinates, as HRNet and mmpose publish it; ``kpose.data.read_mpii``
reads it (and shifts it to 0-based), and so do those code bases. The ``.mat`` is parsed by
kpose's own MPII reader, so the joints a kpose run sees are the same either way.

What the JSON cannot carry (and kpose's JSON reader would not use):

- MPII's occlusion flag: every annotated joint gets ``joints_vis = 1``, so kpose reads it
  as visible (v = 2) where the ``.mat`` gives occluded joints v = 1;
- the head boxes: PCKh with MPII's own head sizes needs the ``.mat`` (``kpose evaluate
  --data mpii:mpii_human_pose_v1_u12_1.mat``); on the JSON kpose falls back to the head
  segment;
- persons without ``objpos``/``scale`` (a few rects of the release): the JSON needs a centre
  and a scale, so they are left out and counted.

Only training images (``img_train == 1``) are converted: the release has no joints for the
test images. A validation split is carved out of them by whole images, either from a list
(``--valid-images``: a text file of image names, or an HRNet/mmpose ``valid.json`` to use
the usual split) or at random (``--valid-fraction``).

Example::

    python datasets/mpii_mat_to_json.py mpii/mpii_human_pose_v1_u12_1.mat \\
        --out mpii/annot --valid-images hrnet/valid.json
    # -> mpii/annot/train.json, mpii/annot/valid.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kpose.data.annotation_files import load_json
from kpose.files import atomic_path

_PROG = "mpii_mat_to_json"
_DIGITS = 4  # the release stores at most 4 decimals; float32 keeps about as many


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
        prog=_PROG, description="Convert MPII's mpii_human_pose_v1_u12_1.mat (RELEASE struct) "
        "into HRNet/mmpose JSON lists train.json (and valid.json) for kpose's read_mpii.")
    parser.add_argument("mat", type=Path, help="mpii_human_pose_v1_u12_1.mat")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder for train.json and valid.json (e.g. mpii/annot)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--valid-images", type=Path, metavar="FILE",
                       help="images of the validation split: a text file with one image name "
                       "per line, or a JSON list of {image: ...} entries such as HRNet's "
                       "valid.json")
    split.add_argument("--valid-fraction", type=float, metavar="F",
                       help="put a random fraction F of the training images (whole images) "
                       "into valid.json")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the --valid-fraction draw (default 0)")
    parser.add_argument("--single-person", action="store_true",
                        help="keep only the rects listed in RELEASE.single_person")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="optional: check that every image named is in DIR")
    return parser


def _run(args: argparse.Namespace) -> int:
    # kpose's reader parses the RELEASE struct; its per-person dicts need no image files.
    from kpose.data.mpii import read_mpii_mat_people

    if args.valid_fraction is not None and not 0.0 < args.valid_fraction < 1.0:
        raise ValueError(f"--valid-fraction must lie strictly between 0 and 1, got "
                         f"{args.valid_fraction}")
    if not args.mat.is_file():
        raise FileNotFoundError(f"MPII .mat file not found: {args.mat}")
    print(f"reading {args.mat}", flush=True)
    people = read_mpii_mat_people(args.mat, "train", args.single_person)
    labelled = [p for p in people if np.any(p["keypoints"][:, 2] > 0)]
    print(f"{len(labelled)} training persons with joints", flush=True)
    entries, skipped = [], 0
    for done, person in enumerate(labelled, start=1):
        entry = _entry(person)
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
        if done % 5000 == 0 or done == len(labelled):
            print(f"  converted {done}/{len(labelled)}", flush=True)
    if not entries:
        raise ValueError(f"{args.mat}: no training person with joints, centre and scale")
    if args.images is not None:
        _check_images(entries, args.images)

    valid_names = _valid_names(args, sorted({e["image"] for e in entries}))
    splits = {"train": [e for e in entries if e["image"] not in valid_names]}
    if valid_names:
        splits["valid"] = [e for e in entries if e["image"] in valid_names]
    for name, split in splits.items():
        target = args.out / f"{name}.json"
        with atomic_path(target) as temporary:
            temporary.write_text(json.dumps(split) + "\n", encoding="utf-8")
        images = len({e["image"] for e in split})
        print(f"wrote {target}: {len(split)} persons in {images} images")
    if skipped:
        print(f"left out {skipped} person(s) with joints but no objpos/scale (the JSON form "
              "needs a centre and a scale)")
    return 0


def _entry(person: dict) -> dict | None:
    """One HRNet/mmpose JSON entry (1-based, as in the .mat), or None without centre/scale."""
    center, scale = person["center"], person["scale"]
    if center is None or scale is None or not scale > 0:
        return None
    keypoints = person["keypoints"]
    vis = keypoints[:, 2] > 0
    joints = [[_one_based(x), _one_based(y)] if v else [-1.0, -1.0]
              for (x, y, _), v in zip(keypoints.tolist(), vis)]
    return {"joints_vis": [int(v) for v in vis], "joints": joints, "image": person["image"],
            "scale": float(scale), "center": [_one_based(c) for c in center]}


def _one_based(value: float) -> float:
    return round(float(value) + 1.0, _DIGITS)


def _valid_names(args: argparse.Namespace, images: list[str]) -> set[str]:
    if args.valid_images is not None:
        names = _read_image_list(args.valid_images)
        unknown = names - set(images)
        found = names & set(images)
        if not found:
            raise ValueError(f"--valid-images {args.valid_images}: none of its {len(names)} "
                             "image names is a training image of the .mat")
        if unknown:
            print(f"note: {len(unknown)} of the {len(names)} names in {args.valid_images} "
                  "are not training images with usable persons here", flush=True)
        return found
    if args.valid_fraction is not None:
        count = max(1, int(round(args.valid_fraction * len(images))))
        if count >= len(images):
            raise ValueError(f"--valid-fraction {args.valid_fraction} leaves no training "
                             f"image ({len(images)} images)")
        chosen = np.random.default_rng(args.seed).choice(len(images), count, replace=False)
        return {images[i] for i in chosen}
    return set()


def _read_image_list(path: Path) -> set[str]:
    """Image names from a text file (one per line) or a JSON list of ``{image: ...}``."""
    if path.suffix.lower() == ".json":
        data = load_json(path, "a JSON list of {image: ...} entries (HRNet's valid.json)")
        if not isinstance(data, list) or not all(
                isinstance(e, dict) and isinstance(e.get("image"), str) for e in data):
            raise ValueError(f"--valid-images {path}: expected a JSON list of objects with "
                             "an 'image' field (HRNet/mmpose valid.json)")
        names = {e["image"] for e in data}
    else:
        if not path.is_file():
            raise FileNotFoundError(f"--valid-images file not found: {path}")
        names = {line.strip() for line in path.read_text(encoding="utf-8").splitlines()}
        names.discard("")
    if not names:
        raise ValueError(f"--valid-images {path} names no image")
    return names


def _check_images(entries: list[dict], folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"--images folder not found: {folder}")
    missing = sorted({e["image"] for e in entries if not (folder / e["image"]).is_file()})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise FileNotFoundError(f"{len(missing)} image(s) named in the .mat are not in "
                                f"{folder}: {', '.join(missing[:5])}{more}")


if __name__ == "__main__":
    sys.exit(main())
