"""What does export cost and buy? Latency, size and accuracy of every export format.

For each model variant (mobile CPM, default CPM, DeepPose cascade), train it briefly on
synthetic people with ``kpose.train`` (a run folder, so the export calibrates on the run's
own validation data), then export it with ``kpose-export``'s function to TFLite float32,
float16, dynamic-range and int8 (MobileNetV2 models, or all with ``--edgetpu``, for the
Edge TPU) and to ONNX. Every export is verified against Keras on held-out images; this
prints, per variant, the median single-image latency of Keras float32 (a traced
tf.function; on one thread in a child process, and on all threads), LiteRT (1 thread
and all threads) and ONNX Runtime with ratios to Keras on the same threads in the same
run, file sizes, keypoint differences to Keras and PCK@0.2 deltas, and checks the mobile
goal for the first Edge TPU model (int8 under 3 MB, at least 3x faster than Keras float32
on one thread). Writes JSON.

    python benchmarks/export.py [--input-size 192] [--train-steps 200] [--json export.json]
    python benchmarks/export.py --run runs/cpm-mobile runs/deeppose   # trained runs

A few hundred CPU training steps do not make a CPM find joints, so accuracy deltas of the
default run only show that nothing breaks; pass trained run folders (``--run``) for
deltas that mean something. Latency and size do not depend on training.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from bench_data import write_report  # noqa: E402  (beside this script, before the path edit)

# Run as a script, this file's folder comes first on sys.path and its name would shadow
# the ``export`` package: put the repository there instead.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

VARIANTS = ("cpm-mobile", "cpm", "deeppose")
FORMATS = (("float32", dict(quantize="none", onnx=True)), ("float16", dict(quantize="float16")),
           ("dynamic", dict(quantize="dynamic")), ("int8", dict(quantize="int8")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--input-size", type=int, default=192)
    parser.add_argument("--stages", type=int, default=3, help="CPM stages")
    parser.add_argument("--mobile-width", type=float, default=0.5,
                        help="MobileNetV2 alpha and stage width of the mobile CPM")
    parser.add_argument("--cpm-width", type=float, default=0.5)
    parser.add_argument("--deeppose-width", type=float, default=0.25)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=150)
    parser.add_argument("--calibration-samples", type=int, default=100)
    parser.add_argument("--calibration-data", default=None,
                        help="data spec for calibration and verification (default: each "
                        "run's validation data)")
    parser.add_argument("--verify-samples", type=int, default=50)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--run", nargs="+", type=Path, default=None,
                        help="benchmark these trained run folders (or .keras files) instead "
                             "of training the variants")
    parser.add_argument("--json", type=Path, default=Path("export.json"))
    parser.add_argument("--edgetpu", action="store_true",
                        help="compile every int8 file for the Edge TPU (default: only "
                             "MobileNetV2 models)")
    parser.add_argument("--keras-one-thread", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.keras_one_thread:  # child process: one thread must be set before TF starts
        print(f"KERAS_1T {_keras_one_thread_ms(args.keras_one_thread, args.latency_runs)}")
        return 0

    import kpose
    from export import export_model

    scratch = tempfile.TemporaryDirectory(prefix="kpose-export-bench-")
    root = Path(scratch.name)
    results = []
    jobs = ([(path.stem, path) for path in args.run] if args.run else
            [(variant, None) for variant in args.variants])
    for variant, given in jobs:
        started = time.perf_counter()
        run = given or root / variant
        options = _given_run(given) if given else _variant_options(variant, args)
        if given is None:
            kpose.train(data=f"synthetic:{args.train_images}:1",
                        val_data=f"synthetic:{args.val_images}:2", out_dir=run, epochs=1,
                        steps_per_epoch=args.train_steps, batch_size=8,
                        input_size=args.input_size, verbose=0, **options)
        train_seconds = time.perf_counter() - started
        rows = []
        for label, settings in FORMATS:
            settings = dict(settings)
            if label == "int8" and (args.edgetpu or _is_mobile(run)):
                settings["edgetpu"] = True
            result = export_model(run, root / f"{variant}-{label}",
                                  calibration_samples=args.calibration_samples,
                                  calibration_data=args.calibration_data,
                                  verify_samples=args.verify_samples,
                                  latency_runs=args.latency_runs, verbose=False, **settings)
            for row in result.report["files"]:
                row = dict(row, label="onnx" if row["format"] == "onnx" else label)
                if "edgetpu" in result.report:
                    row["edgetpu"] = {k: result.report["edgetpu"][k]
                                      for k in ("ops", "supported", "mapped", "fully_mapped")}
                rows.append(row)
        variant_result = {"variant": variant, "options": options,
                          "keras_1_thread_ms": _keras_one_thread(run, args.latency_runs),
                          "input_size": result.metadata["input"]["shape"][1],
                          "train_steps": None if given else args.train_steps,
                          "train_seconds": round(train_seconds, 1),
                          "decoders": _decoders(root, variant), "rows": rows}
        _print_variant(variant_result)
        results.append(variant_result)
        write_report(args.json, "export", args, results, cpu_threads=os.cpu_count())
    goal = _mobile_goal(results)
    if goal:
        print("\n" + goal["text"])
    write_report(args.json, "export", args, results, cpu_threads=os.cpu_count(),
                 mobile_int8_goal=goal)
    print(f"\nwrote {args.json}")
    return 0


def _keras_one_thread(run: Path, runs: int) -> float | None:
    """Keras float32 latency (ms per image) with TensorFlow held to one thread, measured
    in a child process; ``None`` if the child fails."""
    child = subprocess.run([sys.executable, __file__, "--keras-one-thread", str(run),
                            "--latency-runs", str(runs)], capture_output=True, text=True)
    found = [line for line in child.stdout.splitlines() if line.startswith("KERAS_1T ")]
    if child.returncode != 0 or not found:
        print(f"Keras one-thread timing failed:\n{child.stderr[-2000:]}", file=sys.stderr)
        return None
    return float(found[0].split()[1])


def _keras_one_thread_ms(run: Path, runs: int) -> float:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from export.graphs import keypoint_graph, load_pose_model
    from export.verify import _keras_latency

    pose = load_pose_model(run)
    graph = pose.network if pose.family == "deeppose" else keypoint_graph(pose)
    image = np.random.default_rng(0).uniform(0, 255, (1, *pose.input_size, 3))
    return _keras_latency(graph, image.astype(np.float32), runs)


def _given_run(path: Path) -> dict:
    """What the JSON records of a trained run: its name and training settings."""
    config = path / "config.json"
    settings = json.loads(config.read_text()) if config.is_file() else None
    if settings:
        settings = {k: v for k, v in settings.items() if k not in ("data", "val_data")} | {
            "data": _spec_name(settings["data"]), "val_data": _spec_name(settings["val_data"])}
    return {"run": path.name, "config": settings}


def _spec_name(spec: str | None) -> str | None:
    """A data spec without its folders (``lspet:joints.mat:images`` for a local path)."""
    if spec is None:
        return None
    return ":".join(Path(part).name if "/" in part else part for part in spec.split(":"))


def _is_mobile(run: Path) -> bool:
    """A model on the MobileNetV2 backbone (any family): an Edge TPU variant."""
    config = run / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("backbone") == "mobilenetv2"
    return "mobile" in run.name


def _variant_options(variant: str, args) -> dict:
    if variant == "cpm-mobile":
        return {"model": "cpm", "backbone": "mobilenetv2", "width": args.mobile_width,
                "stages": args.stages}
    if variant == "cpm":
        return {"model": "cpm", "backbone": "cpm", "width": args.cpm_width,
                "stages": args.stages}
    return {"model": "deeppose", "width": args.deeppose_width, "stages": 2}


def _decoders(root: Path, variant: str) -> dict:
    """The decoder inside each export (read back from its model.json)."""
    found = {}
    for label, _ in FORMATS:
        path = root / f"{variant}-{label}" / "model.json"
        if path.is_file():
            found[label] = json.loads(path.read_text())["output"]["decoder"]
    return found


def _print_variant(result: dict) -> None:
    rows = result["rows"]
    keras_ms = next(r["keras_latency_ms"] for r in rows if r["label"] == "float32")
    trained = (f"{result['train_steps']} training steps, {result['train_seconds']:.0f} s"
               if result["train_steps"] is not None else "given run")
    keras_one = result.get("keras_1_thread_ms") or keras_ms
    print(f"\n{result['variant']} ({result['input_size']} px, {trained}; decoders "
          f"{result['decoders']}): Keras float32 {keras_one:.2f} ms/image on one thread, "
          f"{keras_ms:.2f} ms on all; ratios are Keras's time over the file's, same threads")
    print(f"  {'export':8s} {'size':>9s} {'1 thread':>16s} {'all threads':>16s} "
          f"{'max px':>8s} {'mean px':>8s} {'PCK':>6s} {'Keras':>6s}  check")
    for row in rows:
        latency = row["latency_ms"]
        one = latency.get("litert_1_thread", latency.get("onnxruntime"))
        every = latency.get("litert_all_threads")
        pck = (f"{row['pck@0.2']:6.1f} {row['keras_pck@0.2']:6.1f}" if "pck@0.2" in row
               else f"{'-':>6s} {'-':>6s}")
        check = row["check"]
        verdict = "-" if check["passed"] is None else ("ok" if check["passed"] else "FAILED")
        print(f"  {row['label']:8s} {row['size_bytes'] / 1e6:7.2f}MB "
              f"{_timing(one, keras_one if 'litert_1_thread' in latency else keras_ms):>16s} "
              f"{_timing(every, keras_ms):>16s} "
              f"{row['max_px']:8.3f} {row['mean_px']:8.3f} {pck}  {verdict}"
              + (f"  edge TPU {row['edgetpu']['supported']}/{row['edgetpu']['ops']} ops"
                 if "edgetpu" in row else ""))


def _timing(value, keras_ms) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}ms ({keras_ms / value:.1f}x)"


def _mobile_goal(results) -> dict | None:
    for result in results:
        if not any("edgetpu" in r for r in result["rows"]):
            continue
        int8 = next(r for r in result["rows"] if r["label"] == "int8")
        keras_ms = result.get("keras_1_thread_ms") or next(
            r["keras_latency_ms"] for r in result["rows"] if r["label"] == "float32")
        size_mb = int8["size_bytes"] / 1e6
        speedup = keras_ms / int8["latency_ms"]["litert_1_thread"]
        text = (f"goal ({result['variant']} int8 at {result['input_size']} px): {size_mb:.2f} MB "
                f"({'<' if size_mb < 3 else '>='} 3 MB), {speedup:.1f}x faster than Keras "
                f"float32 on one thread ({'met' if speedup >= 3 else 'NOT met'}: >= 3x)")
        return {"size_mb": size_mb, "speedup_1_thread": speedup,
                "met": bool(size_mb < 3 and speedup >= 3), "text": text}
    return None


if __name__ == "__main__":
    sys.exit(main())
