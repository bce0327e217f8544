"""Throughput of the training input pipeline: decode, crop, augment, CPM targets.

Measures images per second of ``kpose.data.make_dataset(training=True,
target="belief_maps")`` at 256 and 368 px on the real ``lspet_bench`` images (found
beside the repository in ../shared/realdata, or given with --lspet-bench) and on
freshly rendered synthetic people. Prints a table and writes JSON.

    python benchmarks/input_pipeline.py [--batches 40] [--json input_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LSPET_BENCH = REPO.parent / "shared" / "realdata" / "lspet_bench"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH,
                        help="lspet_bench folder (joints_train.mat and images/)")
    parser.add_argument("--synthetic-num", type=int, default=512,
                        help="synthetic images to render for the benchmark")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per case")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 368])
    parser.add_argument("--json", type=Path, default=Path("input_pipeline.json"),
                        help="where to write the results")
    args = parser.parse_args()

    import tensorflow as tf

    from kpose.data.coco import read_coco
    from kpose.data.lsp import read_lsp
    from kpose.data.synthetic import write_synthetic_dataset
    from kpose.skeletons import COCO_17, LSP_14

    sources = []
    if (args.lspet_bench / "joints_train.mat").is_file():
        records = read_lsp(args.lspet_bench / "joints_train.mat", args.lspet_bench / "images",
                           variant="lspet", first_index=1)
        sources.append(("lspet_bench", records, LSP_14))
    else:
        print(f"lspet_bench not found at {args.lspet_bench}: measuring synthetic data only",
              file=sys.stderr)
    scratch = tempfile.TemporaryDirectory(prefix="kpose-bench-")
    annotations = write_synthetic_dataset(scratch.name, num=args.synthetic_num, seed=0)
    sources.append(("synthetic", read_coco(annotations), COCO_17))

    results = []
    for name, records, skeleton in sources:
        for size in args.sizes:
            rate = _images_per_second(records, skeleton, size, args.batch_size, args.batches)
            results.append({"data": name, "input_size": size, "batch_size": args.batch_size,
                            "images_per_second": round(rate, 1)})
            print(f"{name:12s} {size:4d}px  {rate:8.1f} images/s", flush=True)

    report = {
        "benchmark": "input_pipeline",
        "what": "make_dataset(training=True, target='belief_maps'): decode, affine crop, "
                "flip/rotation/scale/shift, colour jitter, K+1 Gaussian maps at stride 8",
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"{'data':12s} {'input':>6s} {'images/s':>10s}")
    for row in results:
        print(f"{row['data']:12s} {row['input_size']:6d} {row['images_per_second']:10.1f}")
    print(f"\nwrote {args.json}")
    return 0


def _images_per_second(records, skeleton, size, batch_size, batches) -> float:
    from kpose.data.pipeline import make_dataset

    dataset = make_dataset(records, skeleton, input_size=size, target="belief_maps",
                           training=True, batch_size=batch_size, seed=0).repeat()
    iterator = iter(dataset)
    for _ in range(3):  # warm-up: graph tracing and thread pools
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
    images.numpy()
    return batches * batch_size / (time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
