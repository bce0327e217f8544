"""How exactly do the belief-map decoders find a peak? A measured comparison.

Synthetic Gaussian belief maps (46 x 46, CPM's grid) with peaks at random sub-pixel
positions, in the interior and on the border, with and without noise and a weaker
second mode elsewhere. Decoders: plain arg-max, ``HeatmapDecoder(method="taylor")``
(log-parabola vertex around the arg-max), ``method="soft_argmax"`` at several
sharpness values, and ``method="local_centroid"`` (the Edge TPU decoder) in float and,
as ``local_centroid int8``, converted alone to a full-integer int8 ``.tflite`` (calibrated
on maps of all four cases, another seed) and run in LiteRT. Prints mean and worst error
in belief-map pixels, writes JSON.

    python benchmarks/decoding.py [--samples 400] [--json decoding.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZE = 46
CASES = {
    "interior, clean": dict(border=False, noise=0.0, distractor=False),
    "border, clean": dict(border=True, noise=0.0, distractor=False),
    "interior, noise 0.05": dict(border=False, noise=0.05, distractor=False),
    "interior, 2nd mode 0.6": dict(border=False, noise=0.0, distractor=True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=400, help="maps per case")
    parser.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma, map px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("decoding.json"))
    args = parser.parse_args()

    from kpose.models.layers import HeatmapDecoder

    decoders = {"argmax": None, "taylor": HeatmapDecoder(stride=1, num_joints=1)}
    for beta in (10.0, 40.0, 160.0):
        decoders[f"soft_argmax b={beta:g}"] = HeatmapDecoder(
            stride=1, num_joints=1, method="soft_argmax", beta=beta)
    decoders["local_centroid"] = HeatmapDecoder(stride=1, num_joints=1,
                                                method="local_centroid")
    decoders["local_centroid int8"] = _int8_decoder(args.sigma, args.seed + 1)
    rng = np.random.default_rng(args.seed)
    rows = []
    for case, options in CASES.items():
        maps, truth = _maps(rng, args.samples, args.sigma, **options)
        for name, decoder in decoders.items():
            if decoder is None:
                flat = maps[..., 0].reshape(len(maps), -1).argmax(axis=1)
                found = np.stack([flat % SIZE, flat // SIZE], axis=1).astype(np.float64)
            else:
                found = np.asarray(decoder(maps))[:, 0, :2]
            error = np.linalg.norm(found - truth, axis=1)
            rows.append({"case": case, "decoder": name, "mean_error": float(error.mean()),
                         "max_error": float(error.max())})
    print(f"{'case':24s} {'decoder':20s} {'mean px':>8s} {'max px':>8s}")
    for row in rows:
        print(f"{row['case']:24s} {row['decoder']:20s} {row['mean_error']:8.3f} "
              f"{row['max_error']:8.3f}")
    report = {"benchmark": "decoding", "map_size": SIZE, "sigma": args.sigma,
              "samples_per_case": args.samples, "units": "belief-map pixels", "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


def _maps(rng, count, sigma, *, border, noise, distractor):
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    maps = np.zeros((count, SIZE, SIZE, 2), np.float32)
    truth = np.empty((count, 2))
    for i in range(count):
        if border:  # on an edge pixel, up to half a pixel beyond it
            along = rng.uniform(0, SIZE - 1)
            across = rng.choice([rng.uniform(-0.5, 0.5), rng.uniform(SIZE - 1.5, SIZE - 0.5)])
            x, y = (along, across) if rng.random() < 0.5 else (across, along)
        else:
            x, y = rng.uniform(3, SIZE - 4, size=2)
        truth[i] = (x, y)
        peak = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
        if distractor:
            dx, dy = rng.uniform(3, SIZE - 4, size=2)
            while np.hypot(dx - x, dy - y) < 8:
                dx, dy = rng.uniform(3, SIZE - 4, size=2)
            peak += 0.6 * np.exp(-((xs - dx) ** 2 + (ys - dy) ** 2) / (2 * sigma**2))
        if noise:
            peak += rng.normal(0, noise, peak.shape)
        maps[i, ..., 0] = peak
    return maps, truth


def _int8_decoder(sigma: float, seed: int):
    """``local_centroid`` alone as an int8 LiteRT model: ``(N, 46, 46, 2)`` maps ->
    ``(N, 1, 3)`` in map pixels (its int8 output is the fraction frame)."""
    import keras
    import tensorflow as tf

    from kpose.models.layers import HeatmapDecoder
    from kpose.runtime import raw_runner

    maps = keras.Input((SIZE, SIZE, 2))
    model = keras.Model(maps, HeatmapDecoder(num_joints=1, stride=1, method="local_centroid",
                                             frame="fraction")(maps))
    rng = np.random.default_rng(seed)
    calibration = np.concatenate([_maps(rng, 50, sigma, **options)[0]
                                  for options in CASES.values()])
    scratch = tempfile.TemporaryDirectory(prefix="kpose-decoding-")
    folder = Path(scratch.name)
    model.export(folder / "saved", verbose=False,
                 input_signature=[tf.TensorSpec([1, SIZE, SIZE, 2], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_saved_model(str(folder / "saved"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([m[None]] for m in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (folder / "decoder.tflite").write_bytes(converter.convert())
    run = raw_runner(folder / "decoder.tflite")  # quantises maps, dequantises keypoints

    def decode(batch):
        found = np.array([run(one[None])[0] for one in batch])
        found[..., :2] = found[..., :2] * SIZE - 0.5  # fraction -> map pixels
        return found

    decode.scratch = scratch  # the file lives as long as decode: LiteRT maps, not copies, it
    return decode


if __name__ == "__main__":
    sys.exit(main())
