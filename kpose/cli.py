"""The ``kpose`` command line. Subcommands: ``synth`` (more arrive with training and export).

Only this module parses arguments; each subcommand calls the library's public functions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kpose`` console script; returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError) as error:
        print(f"kpose {args.command}: error: {error}", file=sys.stderr)
        return 1


def _build_parser() -> argparse.ArgumentParser:
    from kpose import __version__

    parser = argparse.ArgumentParser(
        prog="kpose", description="DeepPose and Convolutional Pose Machines in Keras.")
    parser.add_argument("--version", action="version", version=f"kpose {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    synth = commands.add_parser(
        "synth", help="render a synthetic people data set (COCO format, no downloads)",
        description="Render procedural human figures in clutter into DIR/images and write "
                    "DIR/person_keypoints.json (COCO person_keypoints, COCO_17 joints). "
                    "The same seed gives the same bytes.")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--num", type=int, default=1000, help="number of images (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--size", type=int, default=256, help="image side in px (default 256)")
    synth.add_argument("--no-preview", dest="preview", action="store_false",
                       help="do not draw DIR/preview_samples.png and DIR/preview_pipeline.png")
    synth.set_defaults(run=_run_synth)
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    from kpose.data.synthetic import write_synthetic_dataset

    if args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 px, got {args.size}")
    annotations = write_synthetic_dataset(args.out, num=args.num, seed=args.seed,
                                          size=args.size)
    print(f"wrote {args.num} images and {annotations}")
    if args.preview:
        from kpose.preview import write_previews

        for path in write_previews(annotations, args.out, seed=args.seed):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
