"""``kpose-export``: the command line of :func:`export.writer.export_model`.

    kpose-export MODEL.keras|RUN_DIR|pretrained:NAME --tflite
                 [--quantize {none,float16,dynamic,int8}] [--edgetpu] [--onnx]
                 [--calibration-data SPEC] [--calibration-samples 200] [--raw-outputs]
                 --out DIR

Exit status, as for ``kpose``: 0 when every file passed its check, 1 for input that cannot
be exported (one line on stderr, nothing written), 2 for a command line that does not
parse, 3 when the files were written but one failed its check (the report says which),
130 when interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from kpose.cli import OneLineParser
    from kpose.data.specs import DATA_SPEC_HELP

    parser = OneLineParser(
        prog="kpose-export",
        description="Export a kpose model (any family) to TFLite and/or ONNX with the "
                    "keypoint decoding inside the graph, and check every file against "
                    "Keras on held-out images.")
    parser.add_argument("model", help="a .keras model file, a kpose run folder, or "
                        "pretrained:NAME (a model shipped with kpose)")
    parser.add_argument("--out", required=True, help="export folder (new or empty; a "
                        "previous export is replaced only with --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a previous export in --out (only once the new one "
                        "is complete)")
    parser.add_argument("--tflite", action="store_true", help="write model.tflite")
    parser.add_argument("--quantize", default="none",
                        choices=("none", "float16", "dynamic", "int8"),
                        help="TFLite quantisation (int8: full integer, calibrated)")
    parser.add_argument("--edgetpu", action="store_true",
                        help="int8 for the Edge TPU; fails unless every op would map")
    parser.add_argument("--onnx", action="store_true", help="write model.onnx (float32)")
    parser.add_argument("--calibration-data", metavar="SPEC", default=None,
                        help=f"images for int8 calibration and verification: "
                             f"{DATA_SPEC_HELP} (default: the run's validation data, else "
                             "synthetic people)")
    parser.add_argument("--calibration-samples", type=int, default=200,
                        help="calibration images (default 200)")
    parser.add_argument("--verify-samples", type=int, default=50,
                        help="held-out verification images (default 50)")
    parser.add_argument("--raw-outputs", action="store_true",
                        help="export belief maps (CPM) or normalised coordinates (DeepPose) "
                             "instead of keypoints")
    parser.add_argument("--io-type", default="uint8", choices=("uint8", "int8"),
                        help="input/output type of an int8 file (default uint8: raw pixels)")
    parser.add_argument("--decoder", default=None,
                        choices=("taylor", "soft_argmax", "local_centroid"),
                        help="CPM decoder in the graph (default: taylor for float, "
                             "local_centroid for int8 and the Edge TPU)")
    parser.add_argument("--skeleton", default=None,
                        help="check that the model predicts this skeleton (it says its own "
                        "in its model card)")
    parser.add_argument("--opset", type=int, default=13, help="ONNX opset (>= 13)")
    parser.add_argument("--latency-runs", type=int, default=50,
                        help="single-image runs per latency median (default 50)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from export.errors import ExportError
    from export.writer import export_model

    try:
        result = export_model(
            args.model, args.out, tflite=args.tflite, quantize=args.quantize,
            edgetpu=args.edgetpu, onnx=args.onnx, calibration_data=args.calibration_data,
            calibration_samples=args.calibration_samples, verify_samples=args.verify_samples,
            raw_outputs=args.raw_outputs, io_type=args.io_type, decoder=args.decoder,
            skeleton=args.skeleton, opset=args.opset, latency_runs=args.latency_runs,
            overwrite=args.overwrite, verbose=True)
    except (ExportError, OSError) as error:  # OSError: a file that cannot be written
        message = " ".join(str(error).split()) or repr(error)
        print(f"kpose-export: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kpose-export: interrupted; nothing was written to --out", file=sys.stderr)
        return 130
    print(f"wrote {', '.join(str(p) for p in result.files)} with model.json and report.json")
    return 3 if result.failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
