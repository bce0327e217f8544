"""Where does one image's time go? A phone model's latency part by part, on one thread.

Cuts the mobile CPM after its MobileNetV2 trunk, after every stage and after decoding
(``--model cpm``), or the MobileNetV2 SimpleBaselines after its backbone, after each of
its three upsampling steps and after decoding, once with transposed convolutions and
once with nearest-neighbour + depthwise-separable steps (``--model simplebaseline``),
and times each cut (all layers up to it) as Keras float32 (a traced tf.function, as
``benchmarks/export.py`` times it), LiteRT float32 and LiteRT full-int8 with uint8 and
with int8 input and output (transposed convolutions rewritten as sub-pixel ones, as
``kpose-export`` writes int8 files), all on one CPU thread in this one process. Prints the
cumulative times, what each part adds and the Keras / int8 ratio, and writes JSON. The
weights are random: latency does not depend on training. This is the evidence behind
the README's notes on the int8 speed goal (3x Keras float32 on one thread).

``--model layers`` times single kinds of layer instead (ten in a row, less the
one-layer model feeding them): which operations LiteRT's int8 kernels speed up on this
CPU and which they slow down (the transposed convolution once as it is and once as
its sub-pixel rewrite, :mod:`export.subpixel`).

    python benchmarks/export_breakdown.py [--model cpm|simplebaseline|layers]
        [--input-sizes 192 256] [--stages 3] [--width 0.5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from bench_data import write_report  # noqa: E402  (beside this script, before the path edit)

# As in benchmarks/export.py: this folder would shadow the ``export`` package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

COLUMNS = (("keras", "Keras f32"), ("litert_float32", "LiteRT f32"),
           ("int8_uint8_io", "int8 u8 io"), ("int8_int8_io", "int8 i8 io"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("cpm", "simplebaseline", "layers"), default="cpm")
    parser.add_argument("--input-sizes", type=int, nargs="+", default=[192, 256])
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.5,
                        help="MobileNetV2 alpha and stage width (benchmarks/export.py's)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per cut (median)")
    parser.add_argument("--json", type=Path, default=Path("export_breakdown.json"))
    args = parser.parse_args()

    import tensorflow as tf

    # One thread for TensorFlow, set before it starts; LiteRT gets threads=1 per file.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    scratch = tempfile.TemporaryDirectory(prefix="kpose-export-breakdown-")
    if args.model == "layers":
        results = [_layer_kind(*case, args.runs, Path(scratch.name)) for case in LAYER_KINDS]
        _print_layer_table(results)
        write_report(args.json, "export_breakdown", args, results, cpu_threads=1)
        print(f"\nwrote {args.json}")
        return 0
    if args.model == "cpm":
        results = [_breakdown(size, args, Path(scratch.name)) for size in args.input_sizes]
    else:
        results = [_simplebaseline_breakdown(size, upsampling, args, Path(scratch.name))
                   for size in args.input_sizes for upsampling in ("transposed", "nearest")]
    for result in results:
        _print_table(result)
    write_report(args.json, "export_breakdown", args, results, cpu_threads=1)
    print(f"\nwrote {args.json}")
    return 0


def _breakdown(size: int, args, scratch: Path) -> dict:
    import dataclasses

    import keras

    from export.graphs import _export_network
    from kpose.models import build_cpm

    keras.utils.set_random_seed(0)
    model = build_cpm("coco_17", stages=args.stages, input_size=size, width=args.width,
                      backbone="mobilenetv2", learning_rate=None)
    pose, image, calibration = _saved_with_images(model, scratch / f"mobile-cpm-{size}.keras")

    def cut(name):
        # The MobileNetV2 trunk is a nested model: cut at the input of stage 1's first conv.
        network = pose.network
        layer = network.get_layer("stage_1_conv1").input if name == "trunk" \
            else network.get_layer(name).output
        return keras.Model(network.inputs, layer)

    cuts = ["trunk", *[f"stage_{t}" for t in range(1, args.stages + 1)], "keypoints"]
    rows = []
    for name in cuts:
        if name == "keypoints":
            graphs = _keypoint_graphs(pose)
        else:
            # The cut with the exporter's layer swap (the Edge TPU center map).
            keras_graph = cut(name)
            exported = _export_network(dataclasses.replace(pose, network=keras_graph),
                                       edgetpu=True)
            graphs = (keras_graph, exported, exported)
        rows.append(_time_cut(f"{size} px {name}", name, graphs, image, calibration,
                              scratch / f"{size}-{name}", args.runs))
    return {"model": "mobile CPM", "input_size": size, "stages": args.stages,
            "width": args.width, "parameters": model.count_params(), "cuts": rows}


def _simplebaseline_breakdown(size: int, upsampling: str, args, scratch: Path) -> dict:
    import keras

    from export.subpixel import with_subpixel_upsampling
    from kpose.models import build_simplebaseline

    keras.utils.set_random_seed(0)
    model = build_simplebaseline("lsp_14", input_size=size, backbone="mobilenetv2",
                                 width=args.width, last_conv=False, upsampling=upsampling,
                                 learning_rate=None)
    pose, image, calibration = _saved_with_images(
        model, scratch / f"simplebaseline-{upsampling}-{size}.keras")
    network = pose.network
    # The backbone is a nested model: cut at the input of the head's first layer.
    first = "deconv1" if upsampling == "transposed" else "deconv1_up"
    ends = {"backbone": network.get_layer(first).input,
            **{f"up_{i}": network.get_layer(f"deconv{i}_relu").output for i in (1, 2, 3)}}
    rows = []
    for name in [*ends, "keypoints"]:
        if name == "keypoints":
            graphs = _keypoint_graphs(pose)
        else:
            cut = keras.Model(network.inputs, ends[name])
            graphs = (cut, cut, with_subpixel_upsampling(cut))
        rows.append(_time_cut(f"{size} px {upsampling} {name}", name, graphs, image,
                              calibration, scratch / f"{upsampling}-{size}-{name}",
                              args.runs))
    return {"model": f"MobileNetV2 SimpleBaselines, {upsampling} upsampling",
            "input_size": size, "upsampling": upsampling, "width": args.width,
            "parameters": model.count_params(), "cuts": rows}


def _saved_with_images(model, path: Path):
    """``model`` saved and loaded as the exporter loads it, one random 0..255 image
    ``(1, H, W, 3)`` to time and 16 more to calibrate int8 on."""
    from export.graphs import load_pose_model

    model.save(path)
    image, calibration = _random_images(model.input_shape[1:3], 16)
    return load_pose_model(path), image, calibration


def _random_images(size, calibration_count: int):
    """One random 0..255 image ``(1, H, W, 3)`` float32 for ``size = (H, W)`` and
    ``calibration_count`` more, from seed 0."""
    import numpy as np

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, *size, 3)).astype(np.float32)
    return image, [rng.uniform(0, 255, (1, *size, 3)).astype(np.float32)
                   for _ in range(calibration_count)]


def _keypoint_graphs(pose):
    """The whole model with decoding: (Keras graph timed, as benchmarks/export.py times it;
    graph for float32 TFLite; graph for int8 TFLite, with the int8 decoder and sub-pixel
    convolutions for transposed ones, as ``kpose-export`` builds it)."""
    from export.graphs import keypoint_graph

    return (keypoint_graph(pose), keypoint_graph(pose),
            keypoint_graph(pose, decoder="local_centroid", frame="fraction", edgetpu=True,
                           subpixel=True))


def _time_cut(label: str, name: str, graphs, image, calibration, stem: Path,
              runs: int) -> dict:
    """Median one-thread ms of one cut: ``graphs`` = (Keras graph timed, graph converted to
    float32 TFLite, graph converted to int8 TFLite)."""
    from export.tflite import convert_tflite
    from export.verify import _keras_latency, _median_ms
    from kpose.runtime import raw_runner

    keras_graph, float_graph, int8_graph = graphs
    size = image.shape[1:3]
    row = {"cut": name, "keras": _keras_latency(keras_graph, image, runs)}
    for column, graph, quantization, io in (
            ("litert_float32", float_graph, "none", "uint8"),
            ("int8_uint8_io", int8_graph, "int8", "uint8"),
            ("int8_int8_io", int8_graph, "int8", "int8")):
        path = stem.with_name(f"{stem.name}-{column}.tflite")
        path.write_bytes(convert_tflite(graph, size, quantization=quantization,
                                        representative=lambda: iter(calibration),
                                        io_type=io))
        row[column] = _median_ms(raw_runner(path, threads=1), image, runs)
    print(f"{label}: " + ", ".join(f"{heading} {row[key]:.3f} ms"
                                   for key, heading in COLUMNS), flush=True)
    return row


# (layer kind, map size, channels): MobileNetV2's 3 x 3 depthwise and 1 x 1 convolutions,
# a dense 3 x 3 convolution and SimpleBaselines' 4 x 4 transposed convolution (stride 2).
LAYER_KINDS = (("depthwise 3x3", 48, 96), ("depthwise 3x3", 24, 192),
               ("conv 1x1", 48, 96), ("conv 1x1", 12, 192), ("conv 3x3", 24, 64),
               ("transposed 4x4 /2", 24, 64), ("transposed 4x4 /2 as sub-pixel", 24, 64))
_REPEATS = 10


def _layer_kind(kind: str, size: int, channels: int, runs: int, scratch: Path) -> dict:
    """One-thread ms per layer of ``kind`` on ``(1, size, size, channels)`` features:
    Keras float32, LiteRT float32 and LiteRT int8 (int8 io). Ten such layers follow a
    1 x 1 convolution from the image (one for the transposed convolution, whose output
    is larger); the model of that first convolution alone is timed too and subtracted."""
    import keras

    from export.subpixel import with_subpixel_upsampling

    layers = keras.layers

    def make():
        return {"depthwise 3x3": lambda: layers.DepthwiseConv2D(3, padding="same"),
                "conv 1x1": lambda: layers.Conv2D(channels, 1),
                "conv 3x3": lambda: layers.Conv2D(channels, 3, padding="same"),
                "transposed 4x4 /2": lambda: layers.Conv2DTranspose(
                    channels, 4, strides=2, padding="same")}[kind.split(" as ")[0]]()

    keras.utils.set_random_seed(0)
    image = keras.Input((size, size, 3))
    first = layers.Conv2D(channels, 1)(image)
    x = first
    repeats = 1 if kind.startswith("transposed") else _REPEATS
    for _ in range(repeats):
        x = make()(x)
    sample, calibration = _random_images((size, size), 8)
    timed = {}
    for label, outputs in (("all", x), ("first", first)):
        model = keras.Model(image, outputs)
        int8_graph = with_subpixel_upsampling(model) if kind.endswith("sub-pixel") else model
        timed[label] = _time_cut(f"{kind} {size}x{size}x{channels} {label}", label,
                                 (model, model, int8_graph), sample, calibration,
                                 scratch / f"layer-{label}", runs)
    row = {"layer": kind, "size": size, "channels": channels, "repeats": repeats}
    for key, _ in COLUMNS:
        row[key] = (timed["all"][key] - timed["first"][key]) / repeats
    return row


def _print_layer_table(rows: list) -> None:
    print("\nms per layer on one CPU thread (Keras / int8 > 1: int8 is faster)")
    print(f"{'layer':32s} {'features':>12s} " + " ".join(f"{label:>11s}" for _, label in COLUMNS)
          + f" {'Keras/int8':>11s} {'f32/int8':>9s}")
    for row in rows:
        features = f"{row['size']}x{row['size']}x{row['channels']}"
        print(f"{row['layer']:32s} {features:>12s} "
              + " ".join(f"{row[key]:11.3f}" for key, _ in COLUMNS)
              + f" {row['keras'] / row['int8_int8_io']:10.1f}x"
              + f" {row['litert_float32'] / row['int8_int8_io']:8.1f}x")


def _print_table(result: dict) -> None:
    stages = f"{result['stages']} stages, " if "stages" in result else ""
    print(f"\n{result['model']}, {stages}width {result['width']}, "
          f"{result['input_size']} px, one CPU thread: cumulative ms (what the part adds)")
    print(f"{'up to':10s} " + " ".join(f"{label:>18s}" for _, label in COLUMNS)
          + f" {'Keras / int8 u8':>16s}")
    previous = None
    for row in result["cuts"]:
        cells = []
        for key, _ in COLUMNS:
            added = row[key] - previous[key] if previous else row[key]
            cells.append(f"{row[key]:7.3f} ({added:+6.3f})")
        ratio = row["keras"] / row["int8_uint8_io"]
        print(f"{row['cut']:10s} " + " ".join(f"{cell:>18s}" for cell in cells)
              + f" {ratio:15.2f}x")
        previous = row


if __name__ == "__main__":
    sys.exit(main())
