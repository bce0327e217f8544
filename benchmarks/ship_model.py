"""Ship a trained lspet_bench run inside the package: ``kpose.pretrained(NAME)``.

Scores the run's model on lspet_bench val (500 real LSPET images the run never trained
on), stores it with :func:`kpose.zoo.save_pretrained` (float16 weights) and scores the
stored copy again, so the stated numbers are those of the file users load. The training
command is rebuilt from the run's ``config.json``. Writes a row of
``benchmarks/results/pretrained.json`` and, with ``--figure``, poses on val images.

    python benchmarks/ship_model.py RUN_DIR --name lsp-simplebaseline-r18 \\
        --description "..." --figure docs/images/pretrained_lsp.png
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH, REPO  # noqa: E402  (beside this script)

# The data's terms travel with weights trained on it.
LICENSE = ("Trained on LSPET (Johnson and Everingham, 2011), whose images come from Flickr "
           "and are offered for research use; these weights inherit those terms. kpose's "
           "code is Apache-2.0.")
DATA = ("lspet_bench train: the first 4,000 images of LSP Extended (im00001-im04000, "
        "14 joints), person boxes from the joints with a 15 % margin")
DATA_EXTRA = ("lspet_bench train + extra: 8,500 images of LSP Extended (im00001-im04000 and "
              "im04501-im09000, 14 joints), person boxes from the joints with a 15 % margin")
VAL = "lspet_bench val"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a kpose run folder trained on lspet_bench")
    parser.add_argument("--name", required=True, help="the shipped model's name")
    parser.add_argument("--description", required=True, help="one sentence for users")
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/pretrained.json")
    parser.add_argument("--figure", type=Path, help="draw poses on val images into this PNG")
    args = parser.parse_args()

    import kpose
    from kpose.data import read_lsp
    from kpose.data.specs import LoadedData
    from kpose.evaluation import evaluate
    from kpose.runs import RunConfig, load_run_model
    from kpose.skeletons import LSP_14
    from kpose.zoo import save_pretrained

    config = RunConfig.load(args.run / "config.json")
    model, _ = load_run_model(args.run)
    val = LoadedData(VAL, read_lsp(args.lspet_bench / "joints_val.mat",
                                   args.lspet_bench / "images", variant="lspet",
                                   first_index=4001), LSP_14)
    started = time.perf_counter()
    trained = _scores(evaluate(model, val))
    steps = _trained_steps(args.run, config)
    results = json.loads(args.json.read_text()) if args.json.is_file() else {
        "benchmark": "pretrained", "models": {}}
    command = train_command(config, args.lspet_bench)
    previous = results["models"].get(args.name)
    if getattr(config, "init", None) == f"pretrained:{args.name}" and previous:
        # A model trained on from the one it replaces: once shipped, pretrained:NAME names
        # the new weights, so the recipe is the previous command, then this one from it.
        # every run folder of the previous recipe moves one level down (runs/lsp ->
        # runs/lsp-first -> runs/lsp-first-first ...), its --init references with it
        first = re.sub(r"runs/lsp((?:-first)*)(?=\s|$)", r"runs/lsp\1-first",
                       previous["command"])
        command = first + " && " + command.replace(f"--init pretrained:{args.name}",
                                                   "--init runs/lsp-first")
        steps += previous["steps"]
    metadata = {
        "description": args.description,
        "family": config.model,
        "input_size": config.input_size,
        "command": command,
        "data": DATA_EXTRA if isinstance(config.data, list) else DATA,
        "steps": steps,
        "batch_size": config.batch_size,
        "scores": {VAL: trained},
        "license": LICENSE,
    }
    card_path, weights_path = save_pretrained(model, args.name, metadata)
    shipped = _scores(evaluate(kpose.pretrained(args.name), val))
    if abs(shipped["PCK@0.2"] - trained["PCK@0.2"]) > 0.005:
        raise SystemExit(f"the stored weights score {shipped['PCK@0.2']:.3f}, the run "
                         f"{trained['PCK@0.2']:.3f}: float16 storage hurts this model")
    if config.model != "deeppose":  # --flip averages belief maps; DeepPose has none
        flipped = evaluate(kpose.pretrained(args.name), val, flip=True)["final"]
        shipped["flip PCK@0.2"] = round(flipped["PCK@0.2"]["value"], 4)  # kpose evaluate --flip
    metadata["scores"][VAL] = shipped
    save_pretrained(model, args.name, metadata)
    megabytes = (card_path.stat().st_size + weights_path.stat().st_size) / 2**20
    row = {"name": args.name, "megabytes": round(megabytes, 2), "run_scores": trained,
           **metadata, "seconds_to_score": round(time.perf_counter() - started, 1)}
    results["models"][args.name] = row
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    flip = (f", with flip {100 * shipped['flip PCK@0.2']:.1f} %"
            if "flip PCK@0.2" in shipped else "")
    print(f"{args.name}: {megabytes:.2f} MB, val PCK@0.2 {100 * shipped['PCK@0.2']:.1f} % "
          f"(PCK@0.1 {100 * shipped['PCK@0.1']:.1f} %{flip}), run "
          f"{100 * trained['PCK@0.2']:.1f} %")
    print(f"command: {metadata['command']}")
    if args.figure is not None:
        draw_examples(kpose.pretrained(args.name), val, args.figure)
        print(f"wrote {args.figure}")
    return 0


def train_command(config, lspet_bench: Path) -> str:
    """The ``kpose train`` command line that reproduces ``config`` (data paths relative
    to the folder holding ``lspet_bench``)."""
    def relative(spec: str | None) -> str | None:
        if spec is None:
            return None
        for root in (str(lspet_bench.resolve()), str(lspet_bench)):
            spec = spec.replace(root, "lspet_bench")
        return spec

    specs = config.data if isinstance(config.data, list) else [config.data]
    parts = ["kpose train", f"--model {config.model}",
             *(f"--data {relative(spec)}" for spec in specs)]
    if config.val_data:
        parts.append(f"--val-data {relative(config.val_data)}")
    parts.append("--out runs/lsp")
    if config.backbone:
        parts.append(f"--backbone {config.backbone}")
    parts += [f"--width {config.width:g}", f"--input-size {config.input_size}",
              f"--stages {config.stages}", f"--epochs {config.epochs}",
              f"--steps-per-epoch {config.steps_per_epoch}",
              f"--batch-size {config.batch_size}", f"--lr {config.learning_rate:g}",
              f"--lr-schedule {config.lr_schedule}"]
    if config.sigma is not None:
        parts.append(f"--sigma {config.sigma:g}")
    if config.mixed_precision:
        parts.append(f"--mixed-precision {config.mixed_precision}")
    if config.paper:
        parts.append("--paper")
    parts += [f"--option {key}={json.dumps(value)}"
              for key, value in sorted(config.model_options.items())]
    if getattr(config, "init", None):
        parts.append(f"--init {relative(config.init)}")
    if getattr(config, "teacher", None):
        parts += [f"--teacher {relative(config.teacher)}",
                  f"--distill-weight {config.distill_weight:g}",
                  f"--distill-temperature {config.distill_temperature:g}"]
    parts.append(f"--seed {config.seed}")
    return " ".join(parts)


def _trained_steps(run: Path, config) -> int:
    """Steps behind the shipped weights: the whole schedule of a finished run, or the
    epochs a stopped run's checkpoints hold (``checkpoints/state.json``)."""
    state = run / "checkpoints" / "state.json"
    if (run / "model.keras").is_file() or not state.is_file():
        return config.epochs * config.steps_per_epoch
    return int(json.loads(state.read_text())["epoch"]) * config.steps_per_epoch


def _scores(report: dict) -> dict:
    """PCK@0.1 / 0.2 of the last stage, and PCK@0.2 of every stage."""
    return {"persons": report["persons"],
            "PCK@0.1": round(report["final"]["PCK@0.1"]["value"], 4),
            "PCK@0.2": round(report["final"]["PCK@0.2"]["value"], 4),
            "stages_PCK@0.2": {stage: round(values["PCK@0.2"], 4)
                               for stage, values in report["stages"].items()}}


def draw_examples(model, val, path: Path, count: int = 8) -> None:
    """The model's poses on ``count`` val images spread over the split (persons whose
    torso can be measured), each titled with how many joints are within PCK@0.2."""
    import numpy as np

    from kpose.metrics import pck
    from kpose.prediction import inference_model, load_image, predict
    from kpose.viz import plot_sample_grid, save_figure

    everyone = val.records
    found = predict(inference_model(model), [r.image_path for r in everyone],
                    [r.box for r in everyone])
    results = [pck(k[None, :, :2], r.keypoints[None], val.skeleton, alpha=0.2)
               for r, k in zip(everyone, found)]
    scored = [i for i, result in enumerate(results) if np.sum(result.total) > 0]
    chosen = [scored[i] for i in np.linspace(0, len(scored) - 1, count).astype(int)]
    titles = [f"{Path(everyone[i].image_path).name}: {int(np.sum(results[i].correct))}/"
              f"{int(np.sum(results[i].total))} joints" for i in chosen]
    figure = plot_sample_grid([load_image(everyone[i].image_path) for i in chosen],
                              [found[i] for i in chosen], val.skeleton, titles=titles)
    save_figure(figure, path)

if __name__ == "__main__":
    raise SystemExit(main())
