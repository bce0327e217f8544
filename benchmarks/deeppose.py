"""DeepPose's cascade under a CPU budget: does each refiner stage sharpen the joints?
(Toshev and Szegedy, Figure 5 and Table 2, in kind.)

For each data set (lspet_bench: train 4,000 / val 500 real images, LSP_14; synthetic
people, COCO_17) train stage 1 and ``--stages - 1`` refiners with
``train_deeppose_cascade`` (each stage for a stated number of steps: that is the CPU
budget), then score every stage of the one-model cascade on the validation split: PDJ
at 0.05, 0.10, ..., 0.50 of the torso diameter (strict, as the paper) and PCP per limb.
The paper's claim to reproduce in kind: each refiner stage improves PDJ at the
high-precision end (PDJ@0.1) over the stage before it. Prints tables; writes JSON.

    python benchmarks/deeppose.py [--steps 1500] [--refiner-steps 1500] [--stages 3]
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
    write_report,
)
PDJ_FRACTIONS = [round(0.05 * i, 2) for i in range(1, 11)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--max-train", type=int, default=None,
                        help="use only the first N training persons")
    parser.add_argument("--max-val", type=int, default=None,
                        help="score only the first N validation persons")
    parser.add_argument("--stages", type=int, default=3, help="stage 1 + (stages - 1) refiners")
    parser.add_argument("--steps", type=int, default=1500, help="stage-1 training steps")
    parser.add_argument("--refiner-steps", type=int, default=1500,
                        help="training steps per refiner")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=128, help="stage-1 input px")
    parser.add_argument("--cascade-input-size", type=int, default=256,
                        help="person crop the refiners cut from (px)")
    parser.add_argument("--crop-size", type=int, default=64, help="refiner input px")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--no-batchnorm", action="store_true",
                        help="the paper's AlexNet with LRN instead of seed 003's BatchNorm")
    parser.add_argument("--dropout", type=float, default=0.6)
    parser.add_argument("--sigma", type=float, default=2.0,
                        help="refinement box side in torso diameters (paper: 2 for LSP)")
    parser.add_argument("--crops-per-sample", type=int, default=40)
    parser.add_argument("--error-samples", type=int, default=1000,
                        help="training persons the error distributions are measured on")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", choices=["constant", "cosine"], default="cosine",
                        help="per stage (default cosine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("deeppose.json"))
    args = parser.parse_args()

    import numpy as np

    from kpose.data.refiner_data import predict_image_keypoints
    from kpose.evaluation import mean_pose_keypoints
    from kpose.training.cascade import train_deeppose_cascade
    from kpose.models import build_deeppose_cascade
    from kpose.models.complexity import count_flops

    scratch = tempfile.TemporaryDirectory(prefix="kpose-deeppose-bench-")
    results = []
    for data, train, val, skeleton in data_splits(args, Path(scratch.name)):
        train = train[: args.max_train] if args.max_train else train
        val = val[: args.max_val] if args.max_val else val
        rng = np.random.default_rng(args.seed)
        error_records = [train[i] for i in sorted(rng.permutation(len(train))
                                                  [: args.error_samples])]

        training = train_deeppose_cascade(
            train, skeleton, stages=args.stages, sigma=args.sigma,
            input_size=args.input_size, cascade_input_size=args.cascade_input_size,
            crop_size=args.crop_size, width=args.width, batchnorm=not args.no_batchnorm,
            dropout=args.dropout, steps=[args.steps] + [args.refiner_steps] * (args.stages - 1),
            batch_size=args.batch_size, crops_per_sample=args.crops_per_sample,
            learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
            error_records=error_records, seed=args.seed,
            verbose=2)
        cascade = build_deeppose_cascade(training.stage1, training.refiners, sigma=args.sigma,
                                         skeleton=skeleton, input_size=training.input_size,
                                         all_stages=True)
        start = time.perf_counter()
        predictions = predict_image_keypoints(cascade, val, skeleton,
                                              input_size=training.input_size,
                                              batch_size=args.batch_size)
        predict_seconds = time.perf_counter() - start
        truth = np.stack([r.keypoints for r in val])
        stages = {f"stage_{s}": _scores(predictions[f"stage_{s}"], truth, skeleton)
                  for s in range(1, args.stages + 1)}
        row = {
            "data": data, "skeleton": skeleton.name, "train": len(train), "val": len(val),
            "stage_seconds": [round(t, 1) for t in training.seconds],
            "predict_seconds": round(predict_seconds, 1),
            "steps": [args.steps] + [args.refiner_steps] * (args.stages - 1),
            "parameters": {"stage_1": training.stage1.count_params(),
                           "refiner": (training.refiners[0].count_params()
                                       if training.refiners else 0)},
            "gflops_per_image": {"stage_1": count_flops(training.stage1) / 1e9,
                                 "refiner_per_joint": (count_flops(training.refiners[0]) / 1e9
                                                       if training.refiners else 0.0)},
            "final_losses": [h["loss"][-1] for h in training.histories],
            "error_distributions": [e.to_dict() for e in training.errors],
            "stages": stages,
            "mean_pose": _scores(mean_pose_keypoints(train, val), truth, skeleton),
        }
        results.append(row)
        _print_row(row)
        write_report(args.json, "deeppose", args, results)
    _print_summary(results)
    print(f"\nwrote {args.json}")
    return 0


def _scores(keypoints, truth, skeleton) -> dict:
    """Strict torso PDJ at every fraction (overall and per joint) and PCP@0.5 per limb."""
    from kpose.metrics import pck_curve, pcp

    fractions, overall, per_joint = pck_curve(keypoints, truth, skeleton,
                                              thresholds=PDJ_FRACTIONS, reference="torso",
                                              strict=True)
    limbs = pcp(keypoints, truth, skeleton)
    return {"PDJ": {f"{t:.2f}": float(v) for t, v in zip(fractions, overall)},
            "PDJ per joint": {name: {f"{t:.2f}": float(v) for t, v in
                                     zip(fractions, per_joint[:, k])}
                              for k, name in enumerate(skeleton.joint_names)},
            "PCP": limbs.value, "PCP per limb": limbs.per_part}


def _print_row(row):
    print(f"\n{row['data']} ({row['skeleton']}, train {row['train']}, val {row['val']}): "
          f"stage 1 {row['parameters']['stage_1']:,} params "
          f"{row['gflops_per_image']['stage_1']:.2f} GFLOPs; refiner "
          f"{row['parameters']['refiner']:,} params "
          f"{row['gflops_per_image']['refiner_per_joint']:.3f} GFLOPs per joint crop; "
          f"steps {row['steps']}, seconds per stage {row['stage_seconds']}")
    header = "  stage     " + " ".join(f"{t:>5.2f}" for t in PDJ_FRACTIONS) + "    PCP"
    print("  PDJ at fraction of the torso diameter (strict), and PCP@0.5:")
    print(header)
    for stage, values in [*row["stages"].items(), ("mean pose", row["mean_pose"])]:
        print(f"  {stage:10s}" + " ".join(f"{v:5.3f}" for v in values["PDJ"].values())
              + f"  {values['PCP']:5.3f}")
    last = list(row["stages"].values())[-1]["PCP per limb"]
    print("  last stage PCP per limb: " + ", ".join(f"{k} {v:.2f}" for k, v in last.items()))


def _print_summary(results):
    print(f"\n{'data':12s} {'stage':8s} {'PDJ@0.1':>8s} {'PDJ@0.2':>8s} {'PCP':>6s} "
          f"{'dPDJ@0.1':>9s}")
    for row in results:
        previous = None
        for stage, values in row["stages"].items():
            pdj10, pdj20 = values["PDJ"]["0.10"], values["PDJ"]["0.20"]
            delta = "" if previous is None else f"{pdj10 - previous:+9.3f}"
            print(f"{row['data']:12s} {stage:8s} {pdj10:8.3f} {pdj20:8.3f} "
                  f"{values['PCP']:6.3f} {delta}")
            previous = pdj10
        values = row["mean_pose"]
        print(f"{row['data']:12s} {'mean pose':9s}{values['PDJ']['0.10']:8.3f} "
              f"{values['PDJ']['0.20']:8.3f} {values['PCP']:6.3f}")


if __name__ == "__main__":
    sys.exit(main())
