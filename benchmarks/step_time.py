"""Training step time of every model family on this CPU, and what would make it shorter.

Every gain in throughput is a longer schedule in the same hour, so this measures, with
``model.fit`` at batch 16 on LSPET crops (lspet_bench train, or synthetic people when it
is not found):

- **precision and XLA**: each family as ``benchmarks/learning_curve.py`` trains it, fed
  one batch kept in memory (the model's own speed), in float32 and under Keras's
  ``mixed_bfloat16`` policy, each without and with XLA (``jit_compile=True``);
- **the input pipeline**: the same model fed by kpose's augmenting pipeline, so
  ``1 - memory / pipeline`` is the share of a step that waits for input (on two cores
  the pipeline and the model share the processor);
- **channels**: SimpleBaselines ResNet-18 at widths 0.25, 0.5 and 1.0 in both precisions;
- **oneDNN**: which kernels the steps run (``ONEDNN_VERBOSE``, in a child process per
  case): milliseconds a step in oneDNN primitives by kind, by instruction set (AMX,
  AVX-512) and data type, against the whole step. This answers whether bfloat16 reaches
  the processor's AMX units and how much of a step they could speed up.

Prints tables and writes JSON.

    python benchmarks/step_time.py [--steps 15] [--json step_time.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH, load_split  # noqa: E402  (beside this script)
from learning_curve import COMMON, VARIANTS  # noqa: E402
from step_clock import timed_steps  # noqa: E402

# Each family as it was trained: a learning-curve variant and what differs from it.
FAMILIES = {
    "simplebaseline-r18-128": ("simplebaseline-r18", {}),
    "simplebaseline-r18-192": ("simplebaseline-r18", {"input_size": 192}),
    "simplebaseline-mnv2-192": ("simplebaseline-mnv2-192", {}),
    "hrnet-small-128": ("hrnet-small", {}),
    "hourglass-2-128": ("hourglass-2", {}),
    "cpm-recipe-128": ("cpm-recipe", {}),
    "deeppose-integral-r18-128": ("deeppose-r18-integral-l1-init", {}),
}
WIDTHS = (0.25, 0.5, 1.0)
WIDTH_FAMILY = "simplebaseline-r18-128"
PRECISIONS = ("float32", "mixed_bfloat16")
# Options of kpose.train that do not shape the network.
TRAINING_ONLY = ("lr_schedule", "seed", "batch_size", "init", "teacher", "distill_weight",
                 "mixed_precision")
ONEDNN_FAMILIES = ("simplebaseline-r18-128", "simplebaseline-mnv2-192", "hrnet-small-128")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=15, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILIES),
                        default=list(FAMILIES), help="the families to time")
    parser.add_argument("--parts", nargs="+", default=["precision", "pipeline", "widths",
                                                       "onednn"],
                        choices=["precision", "pipeline", "widths", "onednn"])
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--json", type=Path, default=Path("step_time.json"))
    parser.add_argument("--onednn-child", metavar="FAMILY", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 1:
        parser.error(f"--steps and --warmup must be >= 1, got {args.steps} and {args.warmup}")

    with tempfile.TemporaryDirectory(prefix="kpose-step-time-") as scratch:
        records, skeleton, data_name = _training_records(args, Path(args.data_dir or scratch))
        if args.onednn_child:  # child process: ONEDNN_VERBOSE is set, time one case
            row = _time_case(args.onednn_child, records, skeleton, precision=args.precision,
                             xla=False, feed="memory", steps=args.steps, warmup=args.warmup,
                             window=True)
            print("ROW " + json.dumps(row), flush=True)
            return 0
        report = _measure(args, records, skeleton, scratch)

    import tensorflow as tf

    report = {"benchmark": "step_time", "data": data_name, "cpu_count": os.cpu_count(),
              "processor": _processor(), "machine": platform.machine(),
              "tensorflow": tf.__version__, "batch_size": COMMON["batch_size"],
              "steps": args.steps, "warmup": args.warmup, **report}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def _measure(args, records, skeleton, scratch: str) -> dict:
    """Every part of ``args.parts``, printing its table as it completes."""
    report = {}
    if "precision" in args.parts:
        rows = [_time_case(family, records, skeleton, precision=precision, xla=xla,
                           feed="memory", steps=args.steps, warmup=args.warmup)
                for family in args.families for precision in PRECISIONS
                for xla in (False, True)]
        report["precision"] = rows
        _print_precision(rows)
    measured = report.get("precision", [])

    def reuse(family, precision, feed, width=None):
        """A case the precision part has measured already, or None."""
        return next((r for r in measured if r["family"] == family and not r["xla"]
                     and r["precision"] == precision and r["feed"] == feed
                     and (width is None or r["width"] == width)), None)

    if "pipeline" in args.parts:
        rows = [reuse(family, "float32", feed) or _time_case(
                    family, records, skeleton, precision="float32", xla=False, feed=feed,
                    steps=args.steps, warmup=args.warmup)
                for family in args.families for feed in ("memory", "pipeline")]
        report["pipeline"] = rows
        _print_pipeline(rows)
    if "widths" in args.parts:
        rows = [reuse(WIDTH_FAMILY, precision, "memory", width) or _time_case(
                    WIDTH_FAMILY, records, skeleton, precision=precision, xla=False,
                    feed="memory", steps=args.steps, warmup=args.warmup, width=width)
                for width in WIDTHS for precision in PRECISIONS]
        report["widths"] = rows
        _print_widths(rows)
    if "onednn" in args.parts:
        # the children read lspet_bench as this process did, or the people rendered here
        found = (args.lspet_bench / "joints_train.mat").is_file()
        data_dir = None if found else Path(scratch)
        rows = [_onednn_case(family, precision, args, data_dir)
                for family in ONEDNN_FAMILIES if family in args.families
                for precision in PRECISIONS]
        report["onednn"] = rows
        _print_onednn(rows)
    return report


def _training_records(args, scratch: Path):
    """``(records, skeleton, name)``: lspet_bench train, else 256 synthetic people."""
    if args.data_dir is None and (args.lspet_bench / "joints_train.mat").is_file():
        train, _, skeleton = load_split("lspet_bench", lspet_bench=args.lspet_bench,
                                        scratch=scratch, synthetic_train=0, synthetic_val=0)
        return train, skeleton, "lspet_bench train"
    if args.data_dir is not None and (args.data_dir / "synthetic" / "train").is_dir():
        from kpose.data import read_coco
        from kpose.skeletons import COCO_17

        return (read_coco(args.data_dir / "synthetic" / "train" / "person_keypoints.json"),
                COCO_17, "synthetic people")
    train, _, skeleton = load_split("synthetic", lspet_bench=args.lspet_bench,
                                    scratch=scratch / "synthetic", synthetic_train=256,
                                    synthetic_val=16)
    return train, skeleton, "synthetic people"


def family_options(family: str, **changes) -> dict:
    """The network options of ``family`` (its learning-curve variant, without the options
    that only steer training), with ``changes``."""
    variant, own = FAMILIES[family]
    options = {**COMMON, **VARIANTS[variant], **own, **changes}
    return {k: v for k, v in options.items() if k not in TRAINING_ONLY}


def _build(family: str, skeleton, **changes):
    """``(model, pipeline)``: ``family`` built and compiled as kpose.train builds it, and
    its training input pipeline (augmented crops and the targets of its outputs)."""
    from kpose.data import make_dataset
    from kpose.models import build_deeppose
    from kpose.models.card import describe, stage_outputs
    from kpose.models.families import build_heatmap_model

    options = family_options(family, **changes)
    kind, size = options.pop("model"), options["input_size"]
    if kind == "deeppose":
        options.pop("stages", None)
        model = build_deeppose(skeleton, **options)
        return model, lambda records: make_dataset(
            records, skeleton, input_size=size, target="coords", training=True,
            batch_size=COMMON["batch_size"], seed=0, repeat=True)
    stages = options.pop("stages", None)
    backbone = options.pop("backbone", None)
    model = build_heatmap_model(kind, skeleton, stages=stages, backbone=backbone, **options)
    info = describe(model)
    return model, lambda records: make_dataset(
        records, skeleton, input_size=size, target="belief_maps",
        num_stages=len(stage_outputs(model)), training=True,
        batch_size=COMMON["batch_size"], seed=0, codec=info.codec, margin=info.margin,
        repeat=True)


def _time_case(family: str, records, skeleton, *, precision: str, xla: bool, feed: str,
               steps: int, warmup: int, width: float | None = None,
               window: bool = False) -> dict:
    """One timed case as a JSON row: milliseconds a step and images a second, or the error
    when the case cannot run (XLA may refuse a model)."""
    import keras
    import tensorflow as tf

    changes = {} if width is None else {"width": width}
    row = {"family": family, "precision": precision, "xla": xla, "feed": feed,
           "width": family_options(family, **changes).get("width")}
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        model, pipeline_of = _build(family, skeleton, **changes)
        if xla:
            model.jit_compile = True
        pipeline = pipeline_of(records)
        data = pipeline if feed == "pipeline" else \
            tf.data.Dataset.from_tensors(next(iter(pipeline))).repeat()
        seconds, start, end = timed_steps(model, data, steps, warmup=warmup)
        row.update(parameters=model.count_params(), ms_per_step=round(1000 * seconds, 1),
                   images_per_s=round(COMMON["batch_size"] / seconds, 1))
        if window:  # the wall-clock span of the timed steps, to match oneDNN's timestamps
            row["window_ms"] = [1000 * start, 1000 * end]
    except Exception as error:  # noqa: BLE001  (a case that cannot run is a result too)
        row["error"] = _error_line(error)
    finally:
        keras.config.set_dtype_policy(previous)
        keras.backend.clear_session()
    print(f"  {family:26s} {precision:15s} xla={str(xla):5s} {feed:8s} "
          f"width={row['width']}: " + (f"{row['ms_per_step']:7.1f} ms/step" if "error" not in row
                                       else row["error"]), flush=True)
    return row


def _error_line(error: Exception) -> str:
    """One line for a case that failed: TensorFlow's graph errors open with "Graph execution
    error:" and a traceback, and give the cause after them (XLA names the op it cannot
    compile)."""
    skipped = ("Graph execution error", "Detected at node", "File ", "[[")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(skipped)]
    return f"{type(error).__name__}: {(telling or lines or [''])[0][:300]}"


def _onednn_case(family: str, precision: str, args, data_dir: Path | None) -> dict:
    """Time ``family`` in a child process with ``ONEDNN_VERBOSE=1`` and sum the oneDNN
    primitives it ran during the timed steps, per step."""
    command = [sys.executable, __file__, "--onednn-child", family, "--precision", precision,
               "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--lspet-bench", str(args.lspet_bench)]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "ONEDNN_VERBOSE_TIMESTAMP": "1"}
    child = subprocess.run(command, capture_output=True, text=True, env=env)
    rows = [line for line in child.stdout.splitlines() if line.startswith("ROW ")]
    if child.returncode != 0 or not rows:
        return {"family": family, "precision": precision,
                "error": f"child failed: {child.stderr.strip().splitlines()[-1:]}"}
    row = json.loads(rows[-1][4:])
    if "error" in row:
        return row
    start, end = row.pop("window_ms")
    row.update(onednn_summary(child.stdout.splitlines(), start, end, args.steps))
    return row


def onednn_summary(lines, start_ms: float, end_ms: float, steps: int) -> dict:
    """Milliseconds a step spent in oneDNN primitives executed between ``start_ms`` and
    ``end_ms`` (wall-clock, as ``ONEDNN_VERBOSE_TIMESTAMP=1`` prints them), by primitive
    kind, by kernel class (``amx``, ``avx512``, other) and by source data type."""
    by_kind, by_isa, by_dtype = defaultdict(float), defaultdict(float), defaultdict(float)
    calls = 0
    for line in lines:
        fields = line.split(",")
        # onednn_verbose,v1,<timestamp>,primitive,exec,cpu,<kind>,<impl>,<prop>,<mds>,...,<ms>
        if len(fields) < 11 or fields[0] != "onednn_verbose" or fields[4] != "exec":
            continue
        try:
            stamp, ms = float(fields[2]), float(fields[-1])
        except ValueError:
            continue
        if not start_ms <= stamp <= end_ms:
            continue
        kind, implementation = fields[6], fields[7]
        dtype = fields[9].split(":")[1] if fields[9].startswith("src") else "other"
        isa = "amx" if "amx" in implementation else (
            "avx512" if "avx512" in implementation else "other")
        by_kind[kind] += ms
        by_isa[isa] += ms
        by_dtype[dtype or "other"] += ms
        calls += 1

    def per_step(table):
        return {k: round(v / steps, 2) for k, v in sorted(table.items(), key=lambda kv: -kv[1])}

    return {"onednn_ms_per_step": round(sum(by_kind.values()) / steps, 1),
            "onednn_calls_per_step": round(calls / steps),
            "onednn_by_kind": per_step(by_kind), "onednn_by_isa": per_step(by_isa),
            "onednn_by_dtype": per_step(by_dtype)}


def _processor() -> str:
    """The processor's name and its bfloat16 features, as Linux reports them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines()
             if line.startswith("model name")]
    extras = [flag for flag in ("avx512_bf16", "amx_bf16") if f" {flag}" in info]
    return (names[0] if names else "unknown") + (f" ({', '.join(extras)})" if extras else "")


def _print_precision(rows) -> None:
    print(f"\n{'family':26s} {'float32':>9s} {'+XLA':>9s} {'bf16':>9s} {'bf16+XLA':>9s}"
          "   (ms a step, batch 16, one batch in memory)")
    for family in dict.fromkeys(r["family"] for r in rows):
        cells = []
        for precision in PRECISIONS:
            for xla in (False, True):
                row = next(r for r in rows if r["family"] == family
                           and r["precision"] == precision and r["xla"] == xla)
                cells.append(f"{row['ms_per_step']:9.1f}" if "error" not in row else
                             f"{'failed':>9s}")
        print(f"{family:26s} " + " ".join(cells))


def _print_pipeline(rows) -> None:
    print(f"\n{'family':26s} {'memory':>9s} {'pipeline':>9s} {'waiting':>8s}"
          "   (ms a step, float32)")
    for family in dict.fromkeys(r["family"] for r in rows):
        memory, fed = (next(r for r in rows if r["family"] == family and r["feed"] == feed)
                       for feed in ("memory", "pipeline"))
        if "error" in memory or "error" in fed:
            print(f"{family:26s} failed")
            continue
        wait = max(0.0, 1 - memory["ms_per_step"] / fed["ms_per_step"])
        print(f"{family:26s} {memory['ms_per_step']:9.1f} {fed['ms_per_step']:9.1f} "
              f"{wait:8.0%}")


def _print_widths(rows) -> None:
    print(f"\n{'width':>6s} {'parameters':>11s} {'float32':>9s} {'bf16':>9s}   "
          f"({WIDTH_FAMILY}, ms a step)")
    for width in WIDTHS:
        cells = [next(r for r in rows if r["width"] == width and r["precision"] == p)
                 for p in PRECISIONS]
        print(f"{width:6g} {cells[0].get('parameters', 0):11,d} " + " ".join(
            f"{c['ms_per_step']:9.1f}" if "error" not in c else f"{'failed':>9s}"
            for c in cells))


def _print_onednn(rows) -> None:
    print(f"\n{'family':26s} {'precision':15s} {'step':>7s} {'oneDNN':>7s} {'AMX':>7s} "
          f"{'AVX-512':>8s} {'bf16':>7s} {'f32':>7s}   (ms a step)")
    for row in rows:
        if "error" in row:
            print(f"{row['family']:26s} {row['precision']:15s} {row['error']}")
            continue
        isa, dtype = row["onednn_by_isa"], row["onednn_by_dtype"]
        print(f"{row['family']:26s} {row['precision']:15s} {row['ms_per_step']:7.1f} "
              f"{row['onednn_ms_per_step']:7.1f} {isa.get('amx', 0):7.1f} "
              f"{isa.get('avx512', 0):8.1f} {dtype.get('bf16', 0):7.1f} "
              f"{dtype.get('f32', 0):7.1f}")


if __name__ == "__main__":
    sys.exit(main())
