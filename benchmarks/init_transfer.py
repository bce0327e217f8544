"""Starting from a trained model on another skeleton (``--init``) against starting from
nothing, at the same budget.

A COCO-17 model (SimpleBaselines on MobileNetV2 at alpha 0.5, 192 px, the architecture of
the shipped phone model) is trained on synthetic COCO-format people twice, with the same
seed, steps, data and schedule: once from ``pretrained:lsp-simplebaseline-mnv2`` (trained
on LSP's 14 joints: its backbone and head copied, the heatmap channels of the 12 joints
both skeletons name mapped, the 5 face joints fresh) and once from random weights.
Validation PCK@0.2 on held-out synthetic people is recorded every ``--eval-every`` steps.

    python benchmarks/init_transfer.py --steps 400 --eval-every 100

Writes ``benchmarks/results/init_transfer.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import REPO, load_split  # noqa: E402  (beside this script)

SOURCE = "pretrained:lsp-simplebaseline-mnv2"
ARCHITECTURE = {"model": "simplebaseline", "backbone": "mobilenetv2", "width": 0.5,
                "input_size": 192, "last_conv": False, "deconv_filters": 256}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--train", type=int, default=600, help="synthetic training people")
    parser.add_argument("--val", type=int, default=200, help="synthetic validation people")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path,
                        default=REPO / "benchmarks/results/init_transfer.json")
    args = parser.parse_args()

    import kpose
    from kpose.data.specs import LoadedData
    from kpose.skeletons import COCO_17

    rows = {}
    with tempfile.TemporaryDirectory(prefix="kpose-init-") as scratch:
        train, val, _ = load_split("synthetic", lspet_bench=Path(), scratch=Path(scratch),
                                   synthetic_train=args.train, synthetic_val=args.val)
        train = LoadedData(f"synthetic:{args.train}", train, COCO_17)
        val = LoadedData(f"synthetic:{args.val}", val, COCO_17)
        for name, options in (("from " + SOURCE, {"init": SOURCE}),
                              ("from nothing", dict(ARCHITECTURE))):
            out = Path(scratch) / name.replace(":", "_").replace(" ", "_")
            started = time.perf_counter()
            kpose.train(data=train, val_data=val, out_dir=out,
                        epochs=args.steps // args.eval_every,
                        steps_per_epoch=args.eval_every, batch_size=16,
                        learning_rate=1e-3, lr_schedule="cosine", seed=args.seed,
                        strategy="default", verbose=2, **options)
            rows[name] = {"seconds": round(time.perf_counter() - started, 1),
                          "curve": _curve(out / "metrics.csv", args.eval_every)}
    report = {"benchmark": "init_transfer", "source": SOURCE, "architecture": ARCHITECTURE,
              "data": f"synthetic people (COCO-17): {args.train} train, {args.val} val",
              "steps": args.steps, "batch_size": 16, "seed": args.seed,
              "schedule": "Adam 1e-3, cosine", "runs": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    steps = [point["step"] for point in next(iter(rows.values()))["curve"]]
    print("| run | " + " | ".join(f"{s} steps" for s in steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * p['pck@0.2']:.1f} %" for p in row["curve"])
              + " |")
    print(f"wrote {args.json}")
    return 0


def _curve(metrics_csv: Path, every: int) -> list[dict]:
    with metrics_csv.open() as handle:
        return [{"step": (int(row["epoch"]) + 1) * every, "loss": float(row["loss"]),
                 "pck@0.2": float(row["val_pck@0.2"])} for row in csv.DictReader(handle)]


if __name__ == "__main__":
    raise SystemExit(main())
