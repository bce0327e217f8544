"""Learning curves on real people: val PCK of every stage against training steps.

Trains one named variant (a recipe: model family and training options, listed in
``VARIANTS``) on lspet_bench train (4,000 real LSPET images) through ``kpose.train`` for a
time budget, scoring val PCK@0.1 and PCK@0.2 (torso) of every stage on lspet_bench val
(500 images) every ``--eval-every`` steps. The run folder is kept, so a stopped run
continues with the same command (``kpose.train(resume=True)``: the same weights, data
stream and learning-rate curve as an uninterrupted one). Results of every variant go into
one JSON file, and ``--plot`` draws them all (PCK@0.2 against steps, one line per stage
and variant).

    python benchmarks/learning_curve.py --variant cpm-paper --minutes 60
    python benchmarks/learning_curve.py --plot docs/images/learning_curves.png
    python benchmarks/learning_curve.py --plot is.png \\
        --select cpm-recipe@12000 cpm-recipe-no-is@12000

The budget is turned into steps once, from the speed of a short timed warm-up on this
machine, so that the cosine schedule knows its length; ``--steps`` fixes it instead
(compare variants at the same steps). Results are keyed ``VARIANT@STEPS`` (or
``VARIANT@MINUTESmin``), so one variant can have a 3,000-step and a long-budget row;
``--seed N`` (initial weights, data order and augmentation; default 0) adds ``-seedN`` to
the key, to measure how much two runs of one recipe differ. ``--extra`` trains on
lspet_bench train and its 4,500 extra images together (8,500 persons; key suffix
``+extra``), to measure what twice the data is worth at the same steps. ``--init MODEL
--init-label NAME`` starts a variant from another model than its own (an earlier version
of a shipped model, say), keyed ``...-from-NAME``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH  # noqa: E402  (beside this script)

# Each variant is the keyword arguments of kpose.train on top of COMMON.
COMMON = {"input_size": 128, "batch_size": 16, "seed": 0}
# SimpleBaselines on a half-width ResNet-18: the reference of the recipe measurements.
_R18 = {"model": "simplebaseline", "backbone": "resnet", "depth": 18, "width": 0.5,
        "deconv_filters": 256, "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
        "foreground_weight": 10.0}
VARIANTS = {
    # The paper's CPM at the CLI's former defaults (the 10.6 % run).
    "cpm-paper": {"model": "cpm", "paper": True, "stages": 3, "width": 0.25,
                  "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 1.0},
    "cpm-bn": {"model": "cpm", "paper": True, "stages": 3, "width": 0.25,
               "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 1.0,
               "batchnorm": True},
    # Foreground weighting against maps that collapse to zero.
    "cpm-fg10": {"model": "cpm", "paper": True, "stages": 3, "width": 0.25,
                 "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 1.0,
                 "batchnorm": False, "foreground_weight": 10.0},
    "cpm-bn-fg10": {"model": "cpm", "paper": True, "stages": 3, "width": 0.25,
                    "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 1.0,
                    "batchnorm": True, "foreground_weight": 10.0},
    # BatchNorm, foreground weighting, later stages on stage 1's trunk, residual stages.
    "cpm-recipe": {"model": "cpm", "stages": 3, "width": 0.25, "learning_rate": 1e-3,
                   "lr_schedule": "cosine", "sigma": 1.0, "batchnorm": True,
                   "foreground_weight": 10.0, "shared_features": True,
                   "residual_stages": True},
    "simplebaseline-r18": _R18,
    # The same in mixed bfloat16: float32 weights, bfloat16 convolutions (on the AMX units
    # of processors that have them; benchmarks/step_time.py measures the step).
    "simplebaseline-r18-bf16": {**_R18, "mixed_precision": "bfloat16"},
    # Warm-up: the rate rises linearly over the first 500 steps, then the cosine.
    "simplebaseline-r18-warmup500": {**_R18, "warmup_steps": 500},
    # Augmentation strength around the default (CPM's: rotation 40 degrees, scale 0.7-1.3):
    # lighter; HRNet's stronger ranges; half-body crops (HRNet's, p = 0.3) on the default.
    "simplebaseline-r18-aug-light": {**_R18, "augmentation": {"rotation": 20.0,
                                                              "scale": [0.8, 1.2]}},
    "simplebaseline-r18-aug-strong": {**_R18, "augmentation": {"rotation": 45.0,
                                                               "scale": [0.65, 1.35]}},
    "simplebaseline-r18-halfbody": {**_R18, "augmentation": {"half_body": 0.3}},
    # The recipe without intermediate supervision (only the last stage has a loss).
    "cpm-recipe-no-is": {"model": "cpm", "stages": 3, "width": 0.25, "learning_rate": 1e-3,
                         "lr_schedule": "cosine", "sigma": 1.0, "batchnorm": True,
                         "foreground_weight": 10.0, "shared_features": True,
                         "residual_stages": True, "intermediate_supervision": False},
    # The recipe with plain stages (each predicts its maps afresh, as in the paper), with
    # and without intermediate supervision: does IS matter once no identity path carries
    # the last stage's loss back to stage 1?
    "cpm-recipe-plain": {"model": "cpm", "stages": 3, "width": 0.25, "learning_rate": 1e-3,
                         "lr_schedule": "cosine", "sigma": 1.0, "batchnorm": True,
                         "foreground_weight": 10.0, "shared_features": True,
                         "residual_stages": False},
    "cpm-recipe-plain-no-is": {"model": "cpm", "stages": 3, "width": 0.25,
                               "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 1.0,
                               "batchnorm": True, "foreground_weight": 10.0,
                               "shared_features": True, "residual_stages": False,
                               "intermediate_supervision": False},
    # Phone candidates at 192 px (Edge TPU: every op of both maps).
    "simplebaseline-mnv2-192": {"model": "simplebaseline", "backbone": "mobilenetv2",
                                "width": 0.5, "deconv_filters": 256, "last_conv": False,
                                "input_size": 192,
                                "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
                                "foreground_weight": 10.0},
    # The same with nearest-neighbour + depthwise-separable upsampling: LiteRT runs int8
    # TRANSPOSE_CONV slowly, and this head is a quarter of its multiply-adds.
    "simplebaseline-mnv2-192-nearest": {"model": "simplebaseline", "backbone": "mobilenetv2",
                                        "width": 0.5, "deconv_filters": 256,
                                        "last_conv": False, "upsampling": "nearest",
                                        "input_size": 192, "learning_rate": 1e-3,
                                        "lr_schedule": "cosine", "sigma": 2.0,
                                        "foreground_weight": 10.0},
    "simplebaseline-r18-192": {"model": "simplebaseline", "backbone": "resnet", "depth": 18,
                               "width": 0.375, "deconv_filters": 256, "input_size": 192,
                               "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
                               "foreground_weight": 10.0},
    "hourglass-2": {"model": "hourglass", "stages": 2, "depth": 4, "width": 0.5,
                    "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
                    "foreground_weight": 10.0},
    # HRNet-small with 16 channels on its stride-4 branch (C = 32 at width 0.5): about the
    # multiply-adds of simplebaseline-r18 (0.31 against 0.32 GFLOPs at 128 px).
    # The phone model distilled from the shipped ResNet-18 (its maps blended half and
    # half into the targets, on every augmented crop).
    "simplebaseline-mnv2-192-distill-r18": {
        "model": "simplebaseline", "backbone": "mobilenetv2", "width": 0.5,
        "deconv_filters": 256, "last_conv": False, "input_size": 192,
        "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
        "foreground_weight": 10.0, "teacher": "pretrained:lsp-simplebaseline-r18",
        "distill_weight": 0.5},
    # The shipped ResNet-18 trained on (usually with --extra): a second cosine from half
    # the first one's learning rate, starting from its weights.
    "simplebaseline-r18-init": {"model": "simplebaseline", "backbone": "resnet", "depth": 18,
                                "width": 0.5, "deconv_filters": 256, "learning_rate": 5e-4,
                                "lr_schedule": "cosine", "sigma": 2.0,
                                "foreground_weight": 10.0,
                                "init": "pretrained:lsp-simplebaseline-r18"},
    # The same at 192 px (LSPET's people are about 150 px tall; at 128 px the crop shrinks
    # them by a third): every weight carries over, the maps grow from 32 to 48 px.
    "simplebaseline-r18-192-init": {"model": "simplebaseline", "backbone": "resnet",
                                    "depth": 18, "width": 0.5, "deconv_filters": 256,
                                    "input_size": 192, "learning_rate": 5e-4,
                                    "lr_schedule": "cosine", "sigma": 2.0,
                                    "foreground_weight": 10.0,
                                    "init": "pretrained:lsp-simplebaseline-r18"},
    # The shipped phone model trained on the same way (usually with --extra).
    "simplebaseline-mnv2-192-init": {"model": "simplebaseline", "backbone": "mobilenetv2",
                                     "width": 0.5, "deconv_filters": 256, "last_conv": False,
                                     "input_size": 192, "learning_rate": 5e-4,
                                     "lr_schedule": "cosine", "sigma": 2.0,
                                     "foreground_weight": 10.0,
                                     "init": "pretrained:lsp-simplebaseline-mnv2"},
    # The phone model trained on once more with the shipped ResNet-18 as its teacher (its
    # maps blended half and half into the targets): from the phone model shipped after
    # simplebaseline-mnv2-192-init+extra@6000 (43.0 % val).
    "simplebaseline-mnv2-192-init-distill-r18": {
        "model": "simplebaseline", "backbone": "mobilenetv2", "width": 0.5,
        "deconv_filters": 256, "last_conv": False, "input_size": 192,
        "learning_rate": 5e-4, "lr_schedule": "cosine", "sigma": 2.0,
        "foreground_weight": 10.0, "init": "pretrained:lsp-simplebaseline-mnv2",
        "teacher": "pretrained:lsp-simplebaseline-r18", "distill_weight": 0.5},
    "hrnet-small": {"model": "hrnet", "variant": "small", "channels": 32, "width": 0.5,
                    "learning_rate": 1e-3, "lr_schedule": "cosine", "sigma": 2.0,
                    "foreground_weight": 10.0},
    # DeepPose's stage 1 on the SimpleBaselines ResNet-18 (half width), L1 loss: a pooled
    # head or the paper's fully connected one, started from the shipped heatmap model's
    # backbone (--init) or from nothing. Scores are PDJ@0.2 of the regressed joints.
    "deeppose-r18-pool-l1-init": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                                  "depth": 18, "width": 0.5, "head": "pool", "loss": "l1",
                                  "dropout": 0.0, "learning_rate": 1e-3,
                                  "lr_schedule": "cosine",
                                  "init": "pretrained:lsp-simplebaseline-r18"},
    "deeppose-r18-fc-l1-init": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                                "depth": 18, "width": 0.5, "head": "fc", "loss": "l1",
                                "dropout": 0.2, "learning_rate": 1e-3,
                                "lr_schedule": "cosine",
                                "init": "pretrained:lsp-simplebaseline-r18"},
    "deeppose-r18-pool-l1": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                             "depth": 18, "width": 0.5, "head": "pool", "loss": "l1",
                             "dropout": 0.0, "learning_rate": 1e-3, "lr_schedule": "cosine"},
    # Iterative Error Feedback on the same ResNet-18 (3 iterations, shared weights, a loss
    # on each), started from the shipped heatmap model's backbone.
    "ief-r18-3-init": {"model": "deeppose", "stages": 1, "backbone": "resnet", "depth": 18,
                       "width": 0.5, "head": "pool", "loss": "l1", "dropout": 0.0,
                       "iterations": 3, "learning_rate": 1e-3, "lr_schedule": "cosine",
                       "init": "pretrained:lsp-simplebaseline-r18"},
    # The same with residual log-likelihood estimation (a scale per coordinate and a
    # flow on the scaled residuals, training only).
    "deeppose-r18-pool-rle-init": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                                   "depth": 18, "width": 0.5, "head": "pool", "loss": "rle",
                                   "dropout": 0.0, "learning_rate": 1e-3,
                                   "lr_schedule": "cosine",
                                   "init": "pretrained:lsp-simplebaseline-r18"},
    # DeepPose's stage 1 by integral regression: SimpleBaselines' upsampling head and a
    # soft-argmax (the joints the means of learnt distributions over a stride-4 grid),
    # trained on coordinates by L1. From the shipped heatmap model every weight but the
    # softmax factor carries over (48.6 % val PDJ@0.2 before any step); fine-tuned at the
    # heatmap models' second-round rate.
    "deeppose-r18-integral-l1-init": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                                      "depth": 18, "width": 0.5, "head": "integral",
                                      "loss": "l1", "dropout": 0.0, "learning_rate": 5e-4,
                                      "lr_schedule": "cosine",
                                      "init": "pretrained:lsp-simplebaseline-r18"},
    # The same at a fifth of the rate: does a gentler start keep what the heatmap model knew?
    "deeppose-r18-integral-l1-init-lr1e-4": {"model": "deeppose", "stages": 1,
                                             "backbone": "resnet", "depth": 18, "width": 0.5,
                                             "head": "integral", "loss": "l1", "dropout": 0.0,
                                             "learning_rate": 1e-4, "lr_schedule": "cosine",
                                             "init": "pretrained:lsp-simplebaseline-r18"},
    "deeppose-r18-pool-l2-init": {"model": "deeppose", "stages": 1, "backbone": "resnet",
                                  "depth": 18, "width": 0.5, "head": "pool", "loss": "l2",
                                  "dropout": 0.0, "learning_rate": 1e-3,
                                  "lr_schedule": "cosine",
                                  "init": "pretrained:lsp-simplebaseline-r18"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="the recipe to train")
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="training budget on this machine (default 60)")
    parser.add_argument("--steps", type=int, help="train exactly this many steps instead")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between scores")
    parser.add_argument("--extra", action="store_true",
                        help="train on lspet_bench train + joints_extra.mat (8,500 persons)")
    parser.add_argument("--seed", type=int, default=COMMON["seed"],
                        help="seed of the weights, data order and augmentation (default 0)")
    parser.add_argument("--runs", type=Path, default=Path("learning_curve_runs"),
                        help="folder of the variants' run folders (kept for resuming)")
    parser.add_argument("--init", metavar="MODEL",
                        help="start from this model instead of the variant's own --init "
                        "(e.g. an earlier version of a shipped model kept as a .keras file)")
    parser.add_argument("--init-label", metavar="TEXT",
                        help="with --init: what the results call that model (default: as "
                        "given; keep paths of this machine out of the results)")
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/learning_curve.json"))
    parser.add_argument("--plot", type=Path, help="draw every variant in --json into this PNG")
    parser.add_argument("--select", nargs="+", metavar="LABEL",
                        help="with --plot: draw only these rows (keys of --json)")
    parser.add_argument("--record", type=Path, metavar="RUN",
                        help="with --variant and --steps: record the curve of a run folder "
                        "trained with the variant's options by the kpose command instead of "
                        "training (its epochs must be --eval-every steps long)")
    args = parser.parse_args()
    if args.variant is None and args.plot is None:
        parser.error("give --variant to train, --plot to draw, or both")
    if args.init_label and not args.init:
        parser.error("--init-label names the model of --init; give --init too")
    if args.init and args.record:
        parser.error("--init trains from another model; --record reads a finished run")
    if args.variant is not None:
        if not (args.lspet_bench / "joints_train.mat").is_file():
            print(f"lspet_bench not found at {args.lspet_bench}", file=sys.stderr)
            return 1
        name = args.variant + ("+extra" if args.extra else "")
        label = f"{name}@{args.steps}" if args.steps else f"{name}@{args.minutes:g}min"
        if args.seed != COMMON["seed"]:
            label += f"-seed{args.seed}"
        if args.init:
            label += f"-from-{args.init_label or Path(args.init).stem}"
        row = record_run(args, label) if args.record else train_variant(args, label)
        results = _load(args.json)
        results[label] = row
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "learning_curve",
                                         "mean_pose_pck@0.2": _mean_pose(args.lspet_bench),
                                         "results": results}, indent=2) + "\n")
        _print_row(label, row)
        print(f"wrote {args.json}")
    if args.plot is not None:
        baseline = json.loads(args.json.read_text()).get("mean_pose_pck@0.2")
        results = _load(args.json)
        if args.select:
            unknown = sorted(set(args.select) - set(results))
            if unknown:
                parser.error(f"--select: no row {', '.join(unknown)} in {args.json}")
            results = {label: results[label] for label in args.select}
        plot(results, args.plot, mean_pose=baseline)
        print(f"wrote {args.plot}")
    return 0


def train_variant(args, label: str) -> dict:
    """Train (or resume) ``args.variant`` in the run folder ``label`` and return its curve
    as a JSON row."""
    import kpose

    options = {**COMMON, **VARIANTS[args.variant], "seed": args.seed}
    if args.init:
        options["init"] = args.init
    data = f"lspet:{args.lspet_bench / 'joints_train.mat'}:{args.lspet_bench / 'images'}"
    if args.extra:
        data = [data, f"lspet:{args.lspet_bench / 'joints_extra.mat'}:"
                      f"{args.lspet_bench / 'images'}:4501"]
    val = f"lspet:{args.lspet_bench / 'joints_val.mat'}:{args.lspet_bench / 'images'}:4001"
    run = args.runs / label
    plan = run / "plan.json"
    if plan.is_file():
        steps = json.loads(plan.read_text())["steps"]
    else:
        steps = args.steps or _steps_for_budget(options, data, args.minutes, args.eval_every)
        run.mkdir(parents=True, exist_ok=True)
        plan.write_text(json.dumps({"steps": steps, "options": options}) + "\n")
    epochs = math.ceil(steps / args.eval_every)
    model_dir = run / "run"
    resume = (model_dir / "checkpoints" / "state.json").is_file()
    started = time.perf_counter()
    kpose.train(data=data, val_data=val, out_dir=model_dir, epochs=epochs,
                steps_per_epoch=args.eval_every, resume=resume, verbose=2, **options)
    seconds = time.perf_counter() - started
    if args.init:  # the results name the model by its label, not by a path of this machine
        options = {**options, "init": args.init_label or args.init}
    return {"variant": args.variant, "options": options, "steps": epochs * args.eval_every,
            "data": "train + extra (8,500 persons)" if args.extra else "train (4,000)",
            "eval_every": args.eval_every,
            "seconds_this_call": round(seconds, 1), "curve": _curve(model_dir / "metrics.csv",
                                                                     args.eval_every)}


def record_run(args, label: str) -> dict:
    """The row of a run folder the ``kpose train`` command trained with the variant's
    options (checked against its ``config.json``)."""
    from kpose.data.augment import augmentation_from
    from kpose.runs import RunConfig

    if not args.steps:
        raise SystemExit("--record needs --steps (the run's length)")
    config = RunConfig.load(args.record / "config.json")
    options = {**COMMON, **VARIANTS[args.variant], "seed": args.seed}
    given = {**config.model_options, **{k: getattr(config, k) for k in (
        "model", "input_size", "batch_size", "seed", "width", "backbone", "learning_rate",
        "lr_schedule", "sigma", "teacher", "distill_weight", "init", "warmup_steps",
        "augmentation")}}
    # config.json holds every augmentation field (None: the defaults), a variant some
    given["augmentation"] = augmentation_from(given["augmentation"])
    expected = {"warmup_steps": 0, **options,
                "augmentation": augmentation_from(options.get("augmentation"))}
    wrong = {k: (given.get(k), v) for k, v in expected.items() if given.get(k) != v}
    if wrong or config.steps_per_epoch != args.eval_every or \
            config.epochs * config.steps_per_epoch != args.steps:
        raise SystemExit(f"{args.record} was not trained as {args.variant} for {args.steps} "
                         f"steps: {wrong or 'other steps'}")
    return {"variant": args.variant, "options": options, "steps": args.steps,
            "data": "train + extra (8,500 persons)" if args.extra else "train (4,000)",
            "eval_every": args.eval_every, "recorded_from": "kpose train (command line)",
            "curve": _curve(args.record / "metrics.csv", args.eval_every)}


def _steps_for_budget(options: dict, data: str, minutes: float, eval_every: int) -> int:
    """Steps that fit ``minutes`` here: two scratch runs of 20 and 100 steps, whose
    difference in wall time leaves out the fixed cost of building the model and graph."""
    import tempfile

    import kpose

    seconds = {}
    with tempfile.TemporaryDirectory(prefix="kpose-lc-probe-") as scratch:
        for steps in (20, 100):
            started = time.perf_counter()
            kpose.train(data=data, out_dir=Path(scratch) / str(steps), epochs=1,
                        steps_per_epoch=steps, verbose=0, **options)
            seconds[steps] = time.perf_counter() - started
    rate = 80 / max(seconds[100] - seconds[20], 1e-3)
    steps = int(minutes * 60 * rate) // eval_every * eval_every
    print(f"{rate:.2f} steps/s here: {minutes:g} minutes = {steps} steps", flush=True)
    return max(eval_every, steps)


def _curve(metrics_csv: Path, eval_every: int) -> list[dict]:
    """Rows of ``metrics.csv`` with a validation score, as ``{step, loss, stage PCKs}``."""
    rows = []
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            scores = {k[4:]: float(v) for k, v in row.items()
                      if k.startswith("val_stage_") and v not in ("", "nan")}
            if not scores:
                continue
            rows.append({"step": (int(row["epoch"]) + 1) * eval_every,
                         "loss": float(row["loss"]), **scores})
    return rows


def plot(results: dict, path: Path, *, mean_pose: float | None = None) -> None:
    """PCK@0.2 against steps: one colour per variant, one line style per stage (the last
    stage drawn thick), and the mean pose's PCK as a grey line. Runs marked ``stopped``
    (recorded negative results) are left out."""
    from matplotlib.figure import Figure

    from kpose.viz import save_figure

    # the legend goes beside the axes: with dozens of rows it would hide the curves
    columns = 1 if len(results) <= 12 else 2
    figure = Figure(figsize=(7.5 + 3.6 * columns, 4.5))
    ax = figure.subplots()
    styles = ["-", "--", ":", "-."]
    drawn = {name: row for name, row in results.items() if not row.get("stopped")}
    for colour, (variant, row) in enumerate(sorted(drawn.items())):
        stages = sorted({_stage_of(k) for point in row["curve"] for k in point
                         if _stage_of(k)}, key=lambda s: int(s.split("_")[1]))
        for index, stage in enumerate(stages):
            steps = [p["step"] for p in row["curve"]]
            values = [100 * _score(p, stage) for p in row["curve"]]
            last = index == len(stages) - 1
            ax.plot(steps, values, styles[index % 4], color=f"C{colour}",
                    lw=2 if last else 1, label=f"{variant} {stage.replace('_', ' ')}")
    if mean_pose is not None:
        ax.axhline(100 * mean_pose, color="0.5", ls="--", lw=1, label="mean pose")
    ax.set_xlabel("training steps (batch 16)")
    ax.set_ylabel("val PCK@0.2 (%), lspet_bench val")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=columns, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    save_figure(figure, path)


def _mean_pose(lspet_bench: Path) -> float:
    """Val PCK@0.2 of the training set's mean pose placed in each val box."""
    from bench_data import load_split

    from kpose.evaluation import mean_pose_baseline

    train, val, skeleton = load_split("lspet_bench", lspet_bench=lspet_bench, scratch=Path(),
                                      synthetic_train=0, synthetic_val=0)
    return mean_pose_baseline(train, val, skeleton)


def _load(path: Path) -> dict:
    return json.loads(path.read_text())["results"] if path.is_file() else {}


def _stage_of(key: str) -> str | None:
    """``stage_2_pck@0.2`` or ``stage_2_pdj@0.2`` (DeepPose's validation PDJ@0.2, the
    strict form of torso PCK@0.2) -> ``stage_2``; other keys -> ``None``."""
    for suffix in ("_pck@0.2", "_pdj@0.2"):
        if key.startswith("stage_") and key.endswith(suffix):
            return key[:-len(suffix)]
    return None


def _score(point: dict, stage: str) -> float:
    return point.get(f"{stage}_pck@0.2", point.get(f"{stage}_pdj@0.2"))


def _print_row(variant: str, row: dict) -> None:
    print(f"\n{variant}: {row['steps']} steps")
    for point in row["curve"]:
        stages = sorted(_stage_of(k) for k in point if _stage_of(k))
        print(f"  step {point['step']:6d}  loss {point['loss']:8.3f}  PCK@0.2 "
              + "  ".join(f"{stage} {100 * _score(point, stage):5.1f}" for stage in stages))


if __name__ == "__main__":
    sys.exit(main())
