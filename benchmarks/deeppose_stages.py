"""What each stage of a DeepPose cascade adds, on lspet_bench val (500 real LSPET persons).

For a trained cascade (a run folder, ``.keras`` file or ``pretrained:NAME``), every stage
is predicted as ``kpose evaluate`` predicts it, and scored:

* PCK@0.1 / PCK@0.2 and PDJ@0.2 (torso) of every stage;
* strict PCP@0.5 per limb (left and right averaged), and over all arms and legs, the
  number the DeepPose seed's table gives (stage 1: 54 %, stage 3: 61 % on LSP);
* each stage against the one before: the difference in PCK@0.2 and PCK@0.1 with a 95 %
  paired bootstrap interval over persons (``compare_models.py``'s test);
* with ``--curves``: PDJ curves per stage (the paper's Figures 4-5);
* with ``--figure``: the stages on a few val images, each refiner's boxes drawn.

    python benchmarks/deeppose_stages.py pretrained:lsp-deeppose-r18 \\
        --curves docs/images/deeppose_pdj.png --figure docs/images/deeppose_stages.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH, REPO, load_split  # noqa: E402  (beside this script)
from compare_models import paired_difference, person_scores  # noqa: E402

# The DeepPose paper's PCP on LSP over all arms and legs, as seed 003's Table 1 quotes it.
SEED_PCP = {"stage_1": 0.54, "stage_3": 0.61}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a DeepPose cascade: run folder, .keras or pretrained:NAME")
    parser.add_argument("--name", help="what to call it in the results (default: as given)")
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--curves", type=Path, help="draw the PDJ curves into this PNG")
    parser.add_argument("--figure", type=Path, help="draw the stages on val images into this PNG")
    parser.add_argument("--images", type=int, default=4, help="val persons in --figure")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--json", type=Path,
                        default=REPO / "benchmarks/results/deeppose_stages.json")
    args = parser.parse_args()
    if not (args.lspet_bench / "joints_val.mat").is_file():
        print(f"lspet_bench not found at {args.lspet_bench}", file=sys.stderr)
        return 1

    from kpose.evaluation import predict_stages
    from kpose.runs import load_run_model

    _, val, skeleton = load_split("lspet_bench", lspet_bench=args.lspet_bench,
                                  scratch=Path(), synthetic_train=0, synthetic_val=0)
    try:
        model, _ = load_run_model(args.model)
        stages = predict_stages(model, val, skeleton, progress=True)
    except (FileNotFoundError, ValueError) as error:
        print(f"deeppose_stages: {error}", file=sys.stderr)
        return 2
    names = sorted((name for name in stages if name.startswith("stage_")),
                   key=lambda name: int(name.rsplit("_", 1)[1]))
    if len(names) < 2:
        print(f"deeppose_stages: {args.model} has one stage; give a cascade", file=sys.stderr)
        return 2
    truth = np.stack([record.keypoints for record in val])
    row = {"model": args.name or args.model, "persons": len(val),
           "stages": {name: stage_scores(stages[name], truth, skeleton) for name in names},
           "against_previous": {}, "seed_pcp_arms_and_legs": SEED_PCP}
    for previous, name in zip(names, names[1:]):
        row["against_previous"][name] = {}
        for alpha in (0.2, 0.1):
            (_, correct_b, total), (_, correct_a, _) = (
                person_scores(stages, stage, args.model, val, skeleton, alpha)
                for stage in (previous, name))
            row["against_previous"][name][f"PCK@{alpha:g}"] = paired_difference(
                correct_a, correct_b, total, resamples=args.resamples)
    print_table(row)
    if args.curves is not None:
        draw_curves(stages, names, truth, skeleton, args.curves)
        print(f"wrote {args.curves}")
    if args.figure is not None:
        draw_stages(stages, names, val, skeleton, args.figure, count=args.images,
                    sigma=float(model_sigma(model)))
        print(f"wrote {args.figure}")
    rows = json.loads(args.json.read_text())["results"] if args.json.is_file() else []
    rows = [r for r in rows if r["model"] != row["model"]] + [row]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "deeppose_stages", "results": rows},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def stage_scores(keypoints: np.ndarray, truth: np.ndarray, skeleton) -> dict:
    """PCK, PDJ and PCP of one stage's ``(N, K, 3)`` keypoints against ``truth``; PCP per
    limb kind (left and right pooled) and over all arms and legs."""
    from kpose.metrics import pck, pcp, pdj

    parts = pcp(keypoints, truth, skeleton, alpha=0.5)
    limbs = [i for i, (name, _, _) in enumerate(skeleton.limbs) if name.endswith(("arm", "leg"))]
    kinds: dict[str, list[int]] = {}
    for i in limbs:
        kinds.setdefault(skeleton.limbs[i][0].split("_", 1)[1], []).append(i)

    def pooled(indices):
        return float(np.asarray(parts.correct)[indices].sum()
                     / np.asarray(parts.total)[indices].sum())

    return {"PCK@0.1": round(pck(keypoints, truth, skeleton, alpha=0.1).value, 4),
            "PCK@0.2": round(pck(keypoints, truth, skeleton, alpha=0.2).value, 4),
            "PDJ@0.2": round(pdj(keypoints, truth, skeleton, fraction=0.2).value, 4),
            "PCP@0.5 per limb": {kind: round(pooled(i), 4) for kind, i in kinds.items()},
            "PCP@0.5 arms and legs": round(pooled(limbs), 4)}


def print_table(row: dict) -> None:
    kinds = list(next(iter(row["stages"].values()))["PCP@0.5 per limb"])
    print(f"{row['model']} on {row['persons']} lspet_bench val persons")
    print(f"{'stage':8} {'PCK@0.1':>8} {'PCK@0.2':>8} {'PDJ@0.2':>8} "
          + " ".join(f"{kind:>10}" for kind in kinds)
          + f" {'arms+legs':>10}  against the previous stage (95 % interval)")
    for name, scores in row["stages"].items():
        against = row["against_previous"].get(name, {})
        versus = ", ".join(f"{metric} {d['difference']:+.2f} points "
                           f"[{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]"
                           for metric, d in against.items())
        print(f"{name:8} {100 * scores['PCK@0.1']:8.1f} {100 * scores['PCK@0.2']:8.1f} "
              f"{100 * scores['PDJ@0.2']:8.1f} "
              + " ".join(f"{100 * v:10.1f}" for v in scores["PCP@0.5 per limb"].values())
              + f" {100 * scores['PCP@0.5 arms and legs']:10.1f}  {versus}")


def model_sigma(model) -> float:
    """The cascade's refinement box side in torso diameters (from its card)."""
    from kpose.models.card import describe

    return (describe(model).options or {}).get("sigma", 2.0)


def draw_curves(stages: dict, names: list[str], truth: np.ndarray, skeleton,
                path: Path) -> None:
    from kpose.metrics import pck_curve
    from kpose.viz import plot_pck_curve, save_figure

    curves = {name.replace("_", " "): pck_curve(stages[name], truth, skeleton, strict=True)
              for name in names}
    save_figure(plot_pck_curve(curves, skeleton, metric="PDJ"), path)


def draw_stages(stages: dict, names: list[str], val, skeleton, path: Path, *, count: int,
                sigma: float) -> None:
    """Rows of val persons spread over the split (those with a measurable torso), each
    stage's pose beside the last, panels titled with the joints within PCK@0.2."""
    from matplotlib.figure import Figure

    from kpose.metrics import pck
    from kpose.prediction import load_image
    from kpose.viz import plot_refinement, save_figure

    def correct(name, n):
        result = pck(stages[name][n:n + 1], val[n].keypoints[None], skeleton, alpha=0.2)
        return int(np.sum(result.correct)), int(np.sum(result.total))

    scored = [n for n in range(len(val)) if correct(names[0], n)[1] > 0]
    chosen = [scored[i] for i in np.linspace(0, len(scored) - 1, count).astype(int)]
    figure = Figure(figsize=(2.6 * len(names), 2.8 * count))
    grid = figure.subplots(count, len(names), squeeze=False)
    for row, n in zip(grid, chosen):
        titles = [f"{name.replace('_', ' ')}: {'/'.join(map(str, correct(name, n)))}"
                  for name in names]
        plot_refinement(load_image(val[n].image_path), [stages[name][n] for name in names],
                        skeleton, sigma=sigma, axes=row, titles=titles,
                        ground_truth=val[n].keypoints)
    figure.tight_layout(pad=0.3)
    save_figure(figure, path)


if __name__ == "__main__":
    sys.exit(main())
