"""Training throughput per model variant, and how much of a step waits for input.

For each variant, train on synthetic people (a) fed by the real input pipeline and
(b) fed one batch kept in memory; (b) is the model's own speed, so the share of a
pipeline step spent waiting for input is ``1 - rate_a / rate_b``. Then the same on two
logical CPU devices with MirroredStrategy (measured in a child process, because devices
must be split before TensorFlow starts). Prints a table, writes JSON.

    python benchmarks/training.py [--steps 40] [--json training.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from step_clock import step_seconds  # noqa: E402  (beside this script)

VARIANTS = {
    "cpm T=3 w0.25 128px": dict(model="cpm", stages=3, width=0.25, input_size=128),
    "cpm-mobilenetv2 T=3 w0.5 192px": dict(model="cpm", stages=3, width=0.5, input_size=192,
                                           backbone="mobilenetv2"),
    "deeppose alexnet w0.25 128px": dict(model="deeppose", width=0.25, input_size=128),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per case")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch")
    parser.add_argument("--images", type=int, default=256, help="synthetic people to render")
    parser.add_argument("--json", type=Path, default=Path("training.json"))
    parser.add_argument("--logical-cpus", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.logical_cpus:  # child process: split the CPU before TensorFlow starts
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
        print("ROWS " + json.dumps(_measure_all(args, args.data_dir, "mirrored")))
        return 0

    from kpose.data import write_synthetic_dataset

    scratch = tempfile.TemporaryDirectory(prefix="kpose-train-bench-")
    data_dir = Path(scratch.name)
    write_synthetic_dataset(data_dir, args.images, seed=0, progress=False)
    rows = _measure_all(args, data_dir, "default")
    child = subprocess.run(
        [sys.executable, __file__, "--logical-cpus", "2", "--data-dir", str(data_dir),
         "--steps", str(args.steps), "--batch-size", str(args.batch_size)],
        capture_output=True, text=True)
    found = [line for line in child.stdout.splitlines() if line.startswith("ROWS ")]
    if child.returncode != 0 or not found:
        print(f"mirrored run failed:\n{child.stderr[-2000:]}", file=sys.stderr)
    else:
        rows += json.loads(found[0][5:])

    import tensorflow as tf

    print(f"\n{'variant':34s} {'strategy':10s} {'pipeline img/s':>15s} {'model img/s':>12s} "
          f"{'input wait':>11s}")
    for row in rows:
        print(f"{row['variant']:34s} {row['strategy']:10s} {row['pipeline_images_per_s']:15.1f} "
              f"{row['model_images_per_s']:12.1f} {row['input_wait_fraction']:11.1%}")
    report = {"benchmark": "training", "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "tensorflow": tf.__version__,
              "batch_size": args.batch_size, "steps": args.steps, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def _measure_all(args, data_dir: Path, strategy_name: str) -> list[dict]:
    import keras
    import tensorflow as tf

    from kpose.data import make_dataset, read_coco
    from kpose.distribute import resolve_strategy
    from kpose.models import build_cpm, build_deeppose
    from kpose.skeletons import COCO_17

    records = read_coco(data_dir / "person_keypoints.json")
    strategy = resolve_strategy(strategy_name)
    rows = []
    for name, spec in VARIANTS.items():
        spec = dict(spec)
        kind, size = spec.pop("model"), spec["input_size"]
        keras.utils.set_random_seed(0)
        with strategy.scope():
            if kind == "cpm":
                model = build_cpm(COCO_17, learning_rate=1e-3, **spec)
            else:
                model = build_deeppose(COCO_17, learning_rate=1e-3, **spec)
        pipeline = make_dataset(
            records, COCO_17, input_size=size, training=True, batch_size=args.batch_size,
            target="belief_maps" if kind == "cpm" else "coords",
            num_stages=spec.get("stages") if kind == "cpm" else None, repeat=True)
        in_memory = tf.data.Dataset.from_tensors(next(iter(pipeline))).repeat()
        rates = [args.batch_size / step_seconds(model, data, args.steps)
                 for data in (pipeline, in_memory)]
        rows.append({"variant": name, "strategy": strategy_name,
                     "replicas": strategy.num_replicas_in_sync,
                     "parameters": model.count_params(),
                     "pipeline_images_per_s": round(rates[0], 1),
                     "model_images_per_s": round(rates[1], 1),
                     "input_wait_fraction": round(max(0.0, 1 - rates[0] / rates[1]), 3)})
        print(f"{name:34s} {strategy_name:10s} {rates[0]:8.1f} img/s with the pipeline, "
              f"{rates[1]:8.1f} img/s from memory", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
