"""Is model A better than model B? A paired bootstrap of their val PCK difference.

Two trained models of any family (run folders, ``.keras`` files or ``pretrained:NAME``) are
scored on the same lspet_bench val persons (500; crops and decoding as ``kpose evaluate``
does them), and the difference of their pooled PCK (A minus B, in points) is given with a
95 % confidence interval from resampling the *persons* with replacement, both models
together (scipy's paired BCa bootstrap). An interval that contains 0 means the val set
cannot tell the two apart; it says nothing of the noise between training seeds, which
only more runs measure.

    python benchmarks/compare_models.py RUN_A RUN_B --name-a A --name-b B [--alpha 0.2]

``--stage-a`` / ``--stage-b`` pick a stage output (default: each model's last), so two
stages of one model (a CPM's, a DeepPose cascade's) compare the same way. Each call adds
(or replaces) one row of ``--json``; ``--name-a`` / ``--name-b`` label the rows (default:
the paths as given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH, load_split  # noqa: E402  (beside this script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_a", help="run folder, .keras file or pretrained:NAME")
    parser.add_argument("model_b", help="the model to compare it with")
    parser.add_argument("--stage-a", help="stage output of A to score (default: its last)")
    parser.add_argument("--stage-b", help="stage output of B to score (default: its last)")
    parser.add_argument("--name-a", help="what to call A in the report (default: its path)")
    parser.add_argument("--name-b", help="what to call B in the report (default: its path)")
    parser.add_argument("--alpha", type=float, default=0.2, help="PCK threshold (torso)")
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--json", type=Path,
                        default=Path("benchmarks/results/compare_models.json"))
    args = parser.parse_args()
    if not (args.lspet_bench / "joints_val.mat").is_file():
        print(f"lspet_bench not found at {args.lspet_bench}", file=sys.stderr)
        return 1
    _, val, skeleton = load_split("lspet_bench", lspet_bench=args.lspet_bench,
                                  scratch=Path(), synthetic_train=0, synthetic_val=0)
    predicted = {}  # model path -> its stages' keypoints: two stages of one model, one pass
    try:
        for path in (args.model_a, args.model_b):
            if path not in predicted:
                predicted[path] = stage_keypoints(path, val, skeleton)
        scored = [person_scores(predicted[path], stage, path, val, skeleton, args.alpha)
                  for path, stage in ((args.model_a, args.stage_a),
                                      (args.model_b, args.stage_b))]
    except (FileNotFoundError, ValueError) as error:
        print(f"compare_models: {error}", file=sys.stderr)
        return 2
    (stage_a, correct_a, total), (stage_b, correct_b, _) = scored
    row = {"a": f"{args.name_a or args.model_a} {stage_a}",
           "b": f"{args.name_b or args.model_b} {stage_b}",
           "metric": f"PCK@{args.alpha:g} (torso)", "persons": len(val),
           "joints": int(total.sum()),
           **paired_difference(correct_a, correct_b, total, resamples=args.resamples,
                               seed=args.seed)}
    print(f"A  {row['a']}: {row['pck_a']:.1f} %\nB  {row['b']}: {row['pck_b']:.1f} %\n"
          f"A - B = {row['difference']:+.2f} points, 95 % interval "
          f"[{row['interval'][0]:+.2f}, {row['interval'][1]:+.2f}] "
          f"({row['joints']} joints of {row['persons']} persons)")
    rows = json.loads(args.json.read_text())["results"] if args.json.is_file() else []
    rows = [r for r in rows if (r["a"], r["b"], r["metric"]) !=
            (row["a"], row["b"], row["metric"])] + [row]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "compare_models", "results": rows},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def stage_keypoints(model_path: str, records, skeleton) -> dict:
    """``{"stage_1": (N, K, 3), ...}`` (or ``{"keypoints": ...}`` for a model without
    stages): every stage's keypoints of the model at ``model_path`` for ``records``, in
    image pixels, as ``kpose evaluate`` predicts them."""
    from kpose.evaluation import predict_stages
    from kpose.runs import load_run_model

    model, _ = load_run_model(model_path)
    return predict_stages(model, records, skeleton)


def person_scores(stages: dict, stage: str | None, model_path: str, records, skeleton,
                  alpha: float):
    """``(stage, correct, total)``: per val person, how many joints of ``stage`` (a key of
    ``stages``; default the last) are within ``alpha`` x torso, and how many were scored
    (``(N,)`` integer arrays; a person without both torso joints scores 0 of 0)."""
    from kpose.metrics import pck

    stage = stage or ("keypoints" if "keypoints" in stages else
                      max((name for name in stages if name.startswith("stage_")),
                          key=lambda name: int(name.rsplit("_", 1)[1])))
    if stage not in stages:
        raise ValueError(f"{model_path} has no output {stage!r}; it has {', '.join(stages)}")
    correct, total = np.zeros(len(records), int), np.zeros(len(records), int)
    for n, record in enumerate(records):
        result = pck(stages[stage][n:n + 1], record.keypoints[None], skeleton, alpha=alpha)
        correct[n], total[n] = result.num_correct, result.num_total
    return stage, correct, total


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, total: np.ndarray, *,
                      resamples: int = 10000, seed: int = 0) -> dict:
    """Pooled PCK of A and B and their difference in points, with a 95 % BCa interval
    from resampling persons (rows of the three ``(N,)`` arrays) together."""
    from scipy.stats import bootstrap

    def difference(a, b, t, axis=-1):
        return 100 * (a.sum(axis=axis) - b.sum(axis=axis)) / t.sum(axis=axis)

    result = bootstrap((correct_a, correct_b, total), difference, paired=True,
                       vectorized=True, n_resamples=resamples, confidence_level=0.95,
                       method="BCa", random_state=np.random.default_rng(seed))
    interval = result.confidence_interval
    return {"pck_a": round(100 * float(correct_a.sum() / total.sum()), 3),
            "pck_b": round(100 * float(correct_b.sum() / total.sum()), 3),
            "difference": round(float(difference(correct_a, correct_b, total)), 3),
            "interval": [round(float(interval.low), 3), round(float(interval.high), 3)],
            "resamples": resamples}


if __name__ == "__main__":
    sys.exit(main())
