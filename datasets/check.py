#!/usr/bin/env python3
"""Check a data set folder against the layout kpose expects and summarise what it holds.

Give the kind of data set and either its folder (laid out as in ``datasets/README.md``) or
one annotation file. Every annotation file found is read with kpose's own reader, so what
is counted is what ``kpose train`` would see. For each file the summary gives:

- persons and images, and the images the annotations name that are missing;
- labelled joints (visible / occluded) overall and per joint, and labelled joints that lie
  outside their image;
- whether the data has MPII head boxes (PCKh) and COCO areas (COCO AP);
- with ``--decode``, images that exist but cannot be decoded (a full decode with Pillow:
  slow on a whole data set, but cheaper than a crash mid-epoch).

The exit status is 0 when nothing is wrong, 1 when a file or image is missing, unreadable
or malformed (one line per problem, naming the file).

Examples::

    python datasets/check.py coco coco/            # annotations/person_keypoints_*.json
    python datasets/check.py lspet lspet/joints.mat --images lspet/images
    python datasets/check.py mpii mpii/ --decode
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

_PROG = "check"
_KINDS = ("coco", "mpii", "lsp", "lspet", "flic")
# What each kind's folder holds: annotation files (glob patterns) and the image folder.
_LAYOUTS = {
    "coco": "annotations/person_keypoints_*.json with images in <split>/ (e.g. val2017/)",
    "mpii": "mpii_human_pose_v1_u12_1.mat and/or annot/*.json, images in images/",
    "lsp": "joints.mat (3 x 14 x N), images in images/",
    "lspet": "joints.mat (14 x 3 x N), images in images/",
    "flic": "examples.mat, images in images/",
}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns 0 when the data set is complete, else 1."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Check a pose data set folder (or one annotation file) "
        "against kpose's expected layout and summarise persons, joints and missing images.")
    parser.add_argument("kind", choices=_KINDS, help="which data set")
    parser.add_argument("path", type=Path, help="the data set folder, or one annotation file")
    parser.add_argument("--images", type=Path, metavar="DIR",
                        help="with an annotation file: its image folder (default: the "
                        "reader's, i.e. the file's folder + images)")
    parser.add_argument("--first-index", type=int, default=1,
                        help="lspet: image number of the first column (4001 for a split "
                        "starting at im04001.jpg; default 1)")
    parser.add_argument("--decode", action="store_true",
                        help="also decode every image fully to find corrupt files")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.first_index < 1:
        raise ValueError(f"--first-index is a 1-based image number, got {args.first_index}")
    if args.path.is_dir():
        if args.images is not None:
            raise ValueError("--images goes with an annotation file; a folder has its "
                             "images where the layout says")
        sources, problems = _layout(args.kind, args.path)
    elif args.path.is_file():
        sources, problems = [(args.path, args.images)], []
    else:
        raise FileNotFoundError(f"no such folder or file: {args.path}")
    for problem in problems:
        print(f"problem: {problem}")
    for annotation, image_dir in sources:
        problems += _check_file(args, annotation, image_dir)
    print(f"\n{len(problems)} problem(s)" if problems else "\nno problems found")
    return 1 if problems else 0


def _layout(kind: str, folder: Path) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """The annotation files (with their image folders) a ``kind`` folder should hold."""
    if kind == "coco":
        files = sorted((folder / "annotations").glob("person_keypoints_*.json"))
        sources = [(f, folder / f.stem.removeprefix("person_keypoints_")) for f in files]
    elif kind == "mpii":
        files = sorted(folder.glob("mpii_human_pose_v1_u12_1.mat")) + sorted(
            (folder / "annot").glob("*.json"))
        sources = [(f, folder / "images") for f in files]
    else:
        name = "examples.mat" if kind == "flic" else "joints.mat"
        files = [folder / name] if (folder / name).is_file() else []
        sources = [(f, folder / "images") for f in files]
    problems = []
    if not sources:
        raise FileNotFoundError(f"{folder}: no {kind} annotation file found; expected "
                                f"{_LAYOUTS[kind]}")
    for _, image_dir in sources:
        if not image_dir.is_dir():
            problems.append(f"{folder}: image folder {image_dir} is missing (expected "
                            f"{_LAYOUTS[kind]})")
    return sources, problems


def _read(args: argparse.Namespace, annotation: Path, image_dir: Path | None):
    """Records of ``annotation`` (missing images skipped) and the reader's warnings."""
    from kpose.data import read_coco, read_flic, read_lsp, read_mpii

    readers = {
        "coco": lambda: read_coco(annotation, image_dir, skip_missing=True),
        "mpii": lambda: read_mpii(annotation, image_dir, skip_missing=True),
        "lsp": lambda: read_lsp(annotation, image_dir, "lsp", skip_missing=True),
        "lspet": lambda: read_lsp(annotation, image_dir, "lspet", args.first_index,
                                  skip_missing=True),
        "flic": lambda: read_flic(annotation, image_dir, skip_missing=True),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = readers[args.kind]()
    return records, [str(w.message) for w in caught]


def _check_file(args: argparse.Namespace, annotation: Path, image_dir: Path | None
                ) -> list[str]:
    """Print the summary of one annotation file; return its problems."""
    from kpose.skeletons import get_skeleton

    print(f"\n{args.kind}: {annotation}" + (f" (images: {image_dir})" if image_dir else ""))
    try:
        records, notes = _read(args, annotation, image_dir)
    except (ValueError, FileNotFoundError) as error:
        print(f"  problem: {error}")
        return [str(error)]
    problems = []
    for note in notes:
        missing = "not found" in note
        print(f"  {'problem' if missing else 'note'}: {note}")
        if missing:
            problems.append(note)
    if not records:
        print("  problem: no labelled person could be read")
        return problems + [f"{annotation}: no labelled person could be read"]

    skeleton = get_skeleton(records[0].skeleton)
    keypoints = np.stack([r.keypoints for r in records])
    v = keypoints[..., 2]
    sizes = np.array([r.image_size for r in records], np.float64)[:, None, :]
    outside = (v > 0) & np.any((keypoints[..., :2] < -0.5) |
                               (keypoints[..., :2] > sizes - 0.5), axis=-1)
    images = sorted({r.image_path for r in records})
    total = v.size
    print(f"  persons {len(records)} in {len(images)} images; skeleton {skeleton.name} "
          f"({skeleton.num_joints} joints)")
    print(f"  joints labelled {int((v > 0).sum())}/{total} ({(v > 0).mean():.1%}): visible "
          f"{int((v == 2).sum())}, occluded {int((v == 1).sum())}; outside the image "
          f"{int(outside.sum())}")
    print(f"  head boxes (PCKh): {_share(r.head_size is not None for r in records)}; "
          f"areas (COCO AP): {_share(r.area is not None for r in records)}")
    print(f"  {'joint':16s} {'labelled':>9s} {'visible':>8s} {'occluded':>9s}")
    for k, name in enumerate(skeleton.joint_names):
        print(f"  {name:16s} {(v[:, k] > 0).mean():9.1%} {int((v[:, k] == 2).sum()):8d} "
              f"{int((v[:, k] == 1).sum()):9d}")
    if args.decode:
        from kpose.data.verify import find_unreadable_images

        bad = find_unreadable_images(images)
        for path, reason in bad.items():
            print(f"  problem: cannot decode {path}: {reason}")
            problems.append(f"cannot decode {path}: {reason}")
        print(f"  decoded {len(images) - len(bad)}/{len(images)} images")
    return problems


def _share(flags) -> str:
    flags = list(flags)
    count = sum(flags)
    return "yes" if count == len(flags) else "no" if count == 0 else f"{count}/{len(flags)}"


if __name__ == "__main__":
    sys.exit(main())
