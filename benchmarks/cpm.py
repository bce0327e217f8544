"""CPM variants trained under one CPU budget: does accuracy rise with stages, and does
intermediate supervision help? (Wei et al., Figure 6 b and c, in kind.)

For each data set (lspet_bench: train 4,000 / val 500 real images; synthetic people)
and each variant (T = 1, 3, 6 with intermediate supervision; T = 3, 6 without), train a
CPM for the same number of steps from the same seed, then print PCK@0.1 and PCK@0.2
(torso-normalised) of every stage on the validation split, per joint for the last stage,
with parameters, FLOPs and the wall time, beside the mean-pose baseline; writes JSON.
Variants already in ``--json`` with the same settings are kept, not trained again, so an
interrupted run continues with ``--variants`` or the full list.

    python benchmarks/cpm.py [--steps 1500] [--input-size 128] [--width 0.25]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import (  # noqa: E402  (beside this script)
    add_data_arguments,
    data_splits,
    earlier_results,
    write_report,
)
VARIANTS = [(1, True), (3, True), (6, True), (3, False), (6, False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--steps", type=int, default=1500, help="training steps per variant")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--variants", nargs="+", default=None,
                        help="subset such as 1+ 3+ 6- (stages, + with / - without IS)")
    parser.add_argument("--json", type=Path, default=Path("cpm.json"))
    args = parser.parse_args()

    import keras

    from kpose.data import make_dataset
    from kpose.evaluation import mean_pose_keypoints, predict_stage_keypoints, stage_pck_report
    from kpose.models import build_cpm
    from kpose.models.complexity import count_flops

    variants = VARIANTS if args.variants is None else [
        (int(v[:-1]), v.endswith("+")) for v in args.variants]
    scratch = tempfile.TemporaryDirectory(prefix="kpose-cpm-bench-")
    results = earlier_results(args.json, "cpm", args)
    baselines = {}
    for data, train, val, skeleton in data_splits(args, Path(scratch.name)):
        baselines[data] = {name: values for name, values in stage_pck_report(
            {"mean_pose": mean_pose_keypoints(train, val)}, val, skeleton)["mean_pose"].items()
            if "per joint" not in name}
        for stages, supervised in variants:
            if any((r["data"], r["stages"], r["intermediate_supervision"])
                   == (data, stages, supervised) for r in results):
                print(f"{data} T={stages} {'IS' if supervised else 'no IS'}: in {args.json}, "
                      "kept")
                continue
            keras.utils.set_random_seed(0)
            model = build_cpm(skeleton, stages=stages, input_size=args.input_size,
                              width=args.width, intermediate_supervision=supervised,
                              learning_rate=args.learning_rate)
            dataset = make_dataset(train, skeleton, input_size=args.input_size, training=True,
                                   batch_size=args.batch_size, num_stages=stages,
                                   seed=0).repeat()
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=2)
            seconds = time.perf_counter() - start
            report = stage_pck_report(
                predict_stage_keypoints(model, val, skeleton, input_size=args.input_size),
                val, skeleton)
            row = {"data": data, "stages": stages, "intermediate_supervision": supervised,
                   "parameters": model.count_params(), "gflops": count_flops(model) / 1e9,
                   "train_seconds": round(seconds, 1), "steps": args.steps,
                   "batch_size": args.batch_size, "input_size": args.input_size,
                   "width": args.width, "stages_pck": report}
            results.append(row)
            _print_row(row)
            write_report(args.json, "cpm", args, results, mean_pose=baselines)
    write_report(args.json, "cpm", args, results, mean_pose=baselines)
    _print_summary(results, baselines)
    print(f"\nwrote {args.json}")
    return 0


def _print_row(row):
    supervision = "IS" if row["intermediate_supervision"] else "no IS"
    label = f"{row['data']} T={row['stages']} {supervision}"
    print(f"\n{label}: {row['parameters']:,} params, {row['gflops']:.2f} GFLOPs/image, "
          f"{row['train_seconds']:.0f} s for {row['steps']} steps")
    for stage, values in row["stages_pck"].items():
        print(f"  {stage:8s} PCK@0.1 {values['PCK@0.1']:.3f}  PCK@0.2 {values['PCK@0.2']:.3f}")
    last = list(row["stages_pck"].values())[-1]["PCK@0.2 per joint"]
    print("  last stage PCK@0.2 per joint: "
          + ", ".join(f"{joint} {value:.2f}" for joint, value in last.items()))


def _print_summary(results, baselines):
    print(f"\n{'data':12s} {'T':>2s} {'IS':>3s} {'params':>10s} {'GFLOPs':>7s} "
          f"{'PCK@0.1':>8s} {'PCK@0.2':>8s} {'seconds':>8s}")
    for row in results:
        last = list(row["stages_pck"].values())[-1]
        print(f"{row['data']:12s} {row['stages']:2d} "
              f"{'yes' if row['intermediate_supervision'] else 'no':>3s} "
              f"{row['parameters']:10,d} {row['gflops']:7.2f} {last['PCK@0.1']:8.3f} "
              f"{last['PCK@0.2']:8.3f} {row['train_seconds']:8.0f}")
    for data, values in baselines.items():
        print(f"{data:12s} mean pose {'':17s} {values['PCK@0.1']:8.3f} {values['PCK@0.2']:8.3f}")


if __name__ == "__main__":
    sys.exit(main())
