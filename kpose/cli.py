"""The ``kpose`` command line: ``quickstart``, ``train``, ``evaluate``, ``predict``, ``synth``.

Only this module parses arguments; each subcommand calls the library's public functions.
Subcommands import the library inside their functions, so that ``kpose --help`` and
argument errors answer at once, without loading TensorFlow.

Exit status (``kpose-export`` follows it too): 0 done; 1 input that cannot be used (one
line on stderr naming the argument or file; nothing of the user's changed); 2 a command
line that does not parse; 130 interrupted (Ctrl-C; a training run can be resumed).
Output files that exist are never replaced without ``--overwrite``, and never when they
are an input of the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

__all__ = ["main", "OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), naming the
    argument, with a pointer to ``--help`` instead of the usage block."""

    def error(self, message: str):
        if "expected one argument" in message:  # e.g. --box -5,... reads as an option
            message += "; a value that starts with '-' is written --flag=-5,..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    except (ValueError, OSError) as error:  # OSError: missing, unreadable or unwritable files
        message = str(error).splitlines()[0] if str(error) else repr(error)
        print(f"kpose {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"kpose {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _resume_hint(args: argparse.Namespace) -> str:
    """Where an interrupted command stopped, and how a training run continues."""
    if args.command != "train":
        return "; files it had not finished were not written"
    from kpose.checkpoints import read_state

    try:
        state = read_state(args.out / "checkpoints")
    except ValueError:
        state = None
    if state is None:
        return " before the first epoch ended; nothing to resume"
    return (f" after epoch {state['epoch']}; the same command with --resume continues "
            "from there")


def _build_parser() -> argparse.ArgumentParser:
    from kpose import __version__

    parser = OneLineParser(
        prog="kpose", description="Human pose estimation in Keras: DeepPose, Convolutional "
        "Pose Machines, SimpleBaselines and Stacked Hourglass.")
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

    from kpose.data.specs import DATA_SPEC_HELP

    quick = commands.add_parser(
        "quickstart", help="the main job on built-in data: synthetic people, train a small "
        "CPM, evaluate, predict, export to int8 TFLite (no downloads)")
    quick.add_argument("--out", type=Path, default=Path("kpose_quickstart"),
                       help="output folder (default kpose_quickstart)")
    quick.add_argument("--steps", type=int, default=1800, help="training steps (default 1800)")
    quick.add_argument("--seed", type=int, default=0)
    quick.add_argument("--no-export", dest="export", action="store_false",
                       help="skip the int8 TFLite export")
    quick.set_defaults(run=_run_quickstart)

    fit = commands.add_parser("train", help="train a model into a run folder")
    fit.add_argument("--model", choices=["cpm", "simplebaseline", "hourglass", "hrnet",
                                         "deeppose"],
                     help="the model family (default: that of --init, else cpm)")
    fit.add_argument("--init", metavar="MODEL",
                     help="start from a trained model (a run, a .keras file or "
                     "pretrained:NAME): its architecture unless other options name one, "
                     "then every weight that fits; a model of another skeleton gives the "
                     "joints both name")
    fit.add_argument("--data", required=True, action="append",
                     help=f"training data: {DATA_SPEC_HELP}; repeat to train on several "
                     "together (sampled in proportion to their sizes; the model follows the "
                     "first one's skeleton, the others are mapped onto it by joint name)")
    fit.add_argument("--val-data", help="held-out data for the validation PCK, same forms")
    fit.add_argument("--out", required=True, type=Path, help="run folder")
    fit.add_argument("--backbone", choices=["cpm", "mobilenetv2", "alexnet", "resnet50",
                                            "resnet"],
                     help="default: the family's own (CPM: the paper's trunk; "
                     "simplebaseline: resnet; DeepPose: alexnet)")
    fit.add_argument("--width", type=float,
                     help="channel multiplier (default: that of --init, else 1)")
    fit.add_argument("--epochs", type=int, default=10, help="default 10 (DeepPose: per stage)")
    fit.add_argument("--steps-per-epoch", type=int, help="default: one pass over the data")
    fit.add_argument("--batch-size", type=int, default=16, help="global batch")
    fit.add_argument("--input-size", type=int,
                     help="default: CPM 368, DeepPose 220, simplebaseline, hourglass and "
                     "hrnet 256")
    fit.add_argument("--stages", type=int,
                     help="CPM stages, hourglass stacks or DeepPose stages (default: CPM 6, "
                     "hourglass 2, DeepPose 3)")
    fit.add_argument("--sigma", type=float,
                     help="belief-map sigma in map px (default: CPM 1, simplebaseline and "
                     "hourglass 2); DeepPose: refinement box side in torso diameters "
                     "(default 1; paper: 2 for LSP, 1 for FLIC)")
    fit.add_argument("--lr", type=float, default=1e-3,
                     help="Adam learning rate for a global batch of 16 (scaled linearly)")
    fit.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                     help="cosine: decay the rate to 0 over the run (per stage for DeepPose)")
    fit.add_argument("--warmup-steps", type=int, default=0, metavar="N",
                     help="raise the rate linearly over the first N steps (default 0)")
    fit.add_argument("--rotation", type=float, metavar="DEG",
                     help="augmentation: largest random rotation in degrees (default 40)")
    fit.add_argument("--scale-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     help="augmentation: random zoom range (default 0.7 1.3)")
    fit.add_argument("--half-body", type=float, metavar="P",
                     help="augmentation: probability of cropping the upper or lower body "
                     "alone (default 0)")
    fit.add_argument("--mixed-precision", nargs="?", const="auto", default=False,
                     choices=["auto", "float16", "bfloat16", "none"],
                     help="compute in 16 bits with float32 weights and losses; alone or "
                     "'auto': float16 on GPUs, bfloat16 on TPUs and CPUs")
    fit.add_argument("--strategy", choices=["auto", "default", "mirrored", "multiworker", "tpu"],
                     default="auto", help="multiworker: run on every machine with its own "
                     "TF_CONFIG (see kpose.multiworker)")
    fit.add_argument("--paper", action="store_true",
                     help="the paper's model as published (no BatchNorm in the CPM, plain "
                     "squared-error loss) instead of kpose's training recipe")
    fit.add_argument("--option", action="append", type=_parse_option, default=[],
                     metavar="KEY=VALUE", help="another option of the family's builder, "
                     "e.g. depth=34 or deconv_filters=128 (repeatable; VALUE is read as "
                     "JSON, else as text)")
    fit.add_argument("--skip-corrupt", action="store_true",
                     help="leave out persons whose image is missing or unreadable "
                     "(every image is decoded once first; counted); default: such an image "
                     "is an error naming it")
    fit.add_argument("--teacher", metavar="MODEL",
                     help="distil this trained model (a run, a .keras file or "
                     "pretrained:NAME; same skeleton) into the new one: its belief maps "
                     "are blended into the targets")
    fit.add_argument("--distill-weight", type=float, default=0.5, metavar="W",
                     help="the teacher's share of each target, 0-1 (default 0.5)")
    fit.add_argument("--distill-temperature", type=float, default=1.0, metavar="T",
                     help="> 1 softens the teacher's maps, < 1 sharpens them (default 1)")
    fit.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(run=_run_train)

    score = commands.add_parser("evaluate", help="score a model on a data set")
    score.add_argument("model", help="a .keras file, a run folder, pretrained:NAME (a shipped "
                       "model), or an exported .tflite/.onnx")
    score.add_argument("--data", required=True, help=DATA_SPEC_HELP)
    score.add_argument("--flip", action="store_true",
                       help="average each prediction with that of the mirrored image")
    score.add_argument("--json", type=Path, help="also write the report as JSON")
    score.add_argument("--overwrite", action="store_true",
                       help="replace an existing --json file or the files in --plots")
    score.add_argument("--skip-corrupt", action="store_true",
                       help="leave out persons whose image is missing or unreadable "
                       "(counted)")
    score.add_argument("--plots", type=Path, metavar="DIR",
                       help="draw PNG figures into DIR: the PCK curve per stage with "
                       "per-joint bars, and ground truth beside prediction for a few persons")
    score.add_argument("--plot-samples", type=int, default=4, metavar="N",
                       help="persons drawn with --plots (default 4)")
    score.set_defaults(run=_run_evaluate)

    guess = commands.add_parser("predict", help="keypoints for images, as JSON and overlays")
    guess.add_argument("model", help="a .keras file, a run folder, pretrained:NAME (a shipped "
                       "model), or an exported .tflite/.onnx")
    guess.add_argument("images", nargs="+", type=Path)
    guess.add_argument("--box", action="append", type=_parse_box,
                       help="person box x,y,w,h (once per image; default: whole image)")
    guess.add_argument("--out", type=Path, help="write an overlay PNG per image here "
                       "(IMAGE_pose.png; images of the same name get _2, _3 ...)")
    guess.add_argument("--overwrite", action="store_true",
                       help="replace overlay files that already exist in --out")
    guess.set_defaults(run=_run_predict)
    return parser


def _run_synth(args: argparse.Namespace) -> int:
    from kpose.data.synthetic import write_synthetic_dataset

    if args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    if not 32 <= args.size <= 4096:
        raise ValueError(f"--size must be 32 to 4096 px, got {args.size}")
    if args.num > 1_000_000:
        raise ValueError(f"--num must be at most 1000000, got {args.num}")
    _check_new_folder(args.out, "--out")
    annotations = write_synthetic_dataset(args.out, num=args.num, seed=args.seed,
                                          size=args.size)
    print(f"wrote {args.num} images and {annotations}")
    if args.preview:
        from kpose.preview import write_previews

        for path in write_previews(annotations, args.out, seed=args.seed):
            print(f"wrote {path}")
    return 0


def _run_quickstart(args: argparse.Namespace) -> int:
    from kpose.quickstart import quickstart

    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    _check_new_folder(args.out, "--out")
    exporter = None
    if args.export:
        # The command layer owns the call into the deployment package (export/ depends on
        # kpose, never the reverse).
        from export.writer import export_model as exporter
    quickstart(args.out, steps=args.steps, seed=args.seed, export=exporter)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from kpose.training import train

    data = args.data[0] if len(args.data) == 1 else args.data
    train(args.model, data, val_data=args.val_data, out_dir=args.out, epochs=args.epochs,
          batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch,
          input_size=args.input_size, stages=args.stages, width=args.width,
          backbone=args.backbone, learning_rate=args.lr, lr_schedule=args.lr_schedule,
          warmup_steps=args.warmup_steps, augmentation=_augmentation(args),
          sigma=args.sigma, seed=args.seed,
          strategy=args.strategy, mixed_precision=args.mixed_precision, resume=args.resume,
          paper=args.paper, skip_corrupt=args.skip_corrupt, teacher=args.teacher,
          distill_weight=args.distill_weight, distill_temperature=args.distill_temperature,
          init=args.init,
          **dict(args.option))
    print(f"wrote {args.out / 'model.keras'}")
    return 0


def _augmentation(args: argparse.Namespace) -> dict | None:
    """The augmentation fields ``kpose train``'s options set (``None``: the defaults);
    ``kpose.train`` checks them."""
    given = {"rotation": args.rotation, "scale": args.scale_range, "half_body": args.half_body}
    return {name: value for name, value in given.items() if value is not None} or None


def _run_evaluate(args: argparse.Namespace) -> int:
    from kpose.evaluation import evaluate

    if args.plot_samples < 0:
        raise ValueError(f"--plot-samples must be >= 0, got {args.plot_samples}")
    if args.json is not None:
        _check_output_file(args.json, "--json", overwrite=args.overwrite,
                           inputs=_inputs(args.model, args.data))
    if args.plots is not None:
        if args.plots.exists() and not args.plots.is_dir():
            raise ValueError(f"--plots {args.plots} is a file, not a folder")
        if args.plots.is_dir() and any(args.plots.iterdir()) and not args.overwrite:
            raise ValueError(f"--plots {args.plots} is not empty; give a new folder or "
                             "--overwrite (nothing was changed)")
    report = evaluate(args.model, args.data, flip=args.flip, plots=args.plots,
                      plot_samples=args.plot_samples, skip_corrupt=args.skip_corrupt,
                      progress=True)
    print(_report_table(report))
    if args.plots is not None:
        print(f"wrote {len(report['plots'])} figures to {args.plots}:")
        for path in report["plots"]:
            print(f"  {path}")
    if args.json:
        from kpose.files import atomic_path

        with atomic_path(args.json) as temporary:
            temporary.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from kpose.prediction import inference_model, load_image, predict
    from kpose.runs import load_run_model

    if args.box is not None and len(args.box) != len(args.images):
        raise ValueError(f"give one --box per image: {len(args.images)} images, "
                         f"{len(args.box)} boxes")
    if args.model.endswith((".tflite", ".onnx")):
        model = inference_model(args.model)  # the exported file, with its model.json
        skeleton = model.skeleton
    else:
        from kpose.models.card import describe

        model, _ = load_run_model(args.model)
        skeleton = describe(model).skeleton  # the model says what it predicts
    overlays = _overlay_names(args.images, args.out) if args.out else []
    for path in overlays:
        _check_output_file(path, "--out", overwrite=args.overwrite, inputs=args.images)
    keypoints = predict(inference_model(model), [str(p) for p in args.images], args.box,
                        progress=True)
    output = [{"image": str(path), "keypoints": [
        {"joint": name, "x": float(x), "y": float(y), "score": float(score)}
        for name, (x, y, score) in zip(skeleton.joint_names, found)]}
        for path, found in zip(args.images, keypoints)]
    print(json.dumps(output, indent=2))
    if args.out:
        from kpose.viz import draw_pose, relative_scores, save_figure

        for path, found, overlay in zip(args.images, keypoints, overlays):
            shown = found[:, :2]
            figure = draw_pose(load_image(path), shown, skeleton,
                               scores=relative_scores(found[:, 2]))
            target = save_figure(figure, overlay)
            print(f"wrote {target}", file=sys.stderr)
    return 0


def _check_new_folder(path: Path, flag: str) -> None:
    """Refuse an output folder that is a file or already holds something."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        raise ValueError(f"{flag} {path} is not empty; give a new folder (nothing in it "
                         "was changed)")


def _overlay_names(images: list[Path], folder: Path) -> list[Path]:
    """``IMAGE_pose.png`` in ``folder`` per image; a stem seen before gets ``_2``, ``_3``
    ... so that two images of one name never share an overlay."""
    names, seen = [], {}
    for image in images:
        count = seen[image.stem] = seen.get(image.stem, 0) + 1
        suffix = "" if count == 1 else f"_{count}"
        names.append(folder / f"{image.stem}{suffix}_pose.png")
    return names


def _inputs(model: str, data: str) -> list[Path]:
    """The files a command reads: the model (a file, or a run's config and model) and the
    files named in a data spec."""
    paths = [Path(part) for part in str(data).split(":")[1:]]
    given = Path(model)
    if given.is_dir():
        paths += [p for p in given.rglob("*") if p.is_file()]
    else:
        paths.append(given)
    return paths


def _check_output_file(path: Path, flag: str, *, overwrite: bool = False,
                       inputs=()) -> None:
    """Refuse, before any work, an output file that could not be written, that is an
    input of the command, or that exists (unless ``overwrite``)."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder, not a file")
    resolved = path.resolve()
    for source in inputs:
        if Path(source).resolve() == resolved:
            raise ValueError(f"{flag} {path} is an input of this command; give another file "
                             "(nothing was changed)")
    if path.exists() and not overwrite:
        raise ValueError(f"{flag} {path} already exists; give a new name or --overwrite "
                         "(nothing was changed)")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"{flag} {path} cannot be written ({parent} is not a writable "
                         "folder)")


def _parse_option(text: str) -> tuple[str, object]:
    key, equals, value = text.partition("=")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"an option is KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a box is x,y,w,h (four numbers), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"a box needs positive width and height, got {text!r}")
    return (x, y, w, h)


def _report_table(report: dict) -> str:
    flipped = " (flip-averaged)" if report.get("flip") else ""
    lines = [f"{report['persons']} persons from {report['data']}{flipped}", "",
             f"{'stage':10s} {'PCK@0.1':>8s} {'PCK@0.2':>8s}"]
    for stage, values in report["stages"].items():
        lines.append(f"{stage:10s} {values['PCK@0.1']:8.3f} {values['PCK@0.2']:8.3f}")
    final = report["final"]
    metrics = [name for name in final if name != "COCO"]
    lines += ["", f"{'joint / part':18s} " + " ".join(f"{m:>9s}" for m in metrics)]
    parts = {part for m in metrics for part in final[m]["per_part"]}
    ordered = [p for p in final["PCK@0.2"]["per_part"]] + sorted(
        parts - set(final["PCK@0.2"]["per_part"]))
    for part in ordered:
        cells = [final[m]["per_part"].get(part) for m in metrics]
        lines.append(f"{part:18s} " + " ".join(
            f"{'':>9s}" if v is None else f"{v:9.3f}" for v in cells))
    lines.append(f"{'all':18s} " + " ".join(f"{final[m]['value']:9.3f}" for m in metrics))
    if "COCO" in final:
        lines += ["", "COCO keypoints: " + ", ".join(
            f"{k} {v:.3f}" for k, v in final["COCO"].items())]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
