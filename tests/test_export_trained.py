"""kpose-export of a CPM that has really been trained (one epoch, the mobile backbone):
its int8, float16 and ONNX files pass their checks, and a file that differs from its
model by one perturbed weight fails them.

A barely trained CPM's belief maps are nearly flat, which is where the float checks once
failed good files (sub-pixel steps on flat peaks amplify float noise). The checks must
still catch a real regression, so the test breaks an exported ONNX file by changing one
weight tensor, and compares the float16 file with a model whose weight was changed.
"""

from __future__ import annotations

import numpy as np
import pytest

from export import export_model
from export.calibration import load_export_images
from export.graphs import keypoint_graph, load_pose_model
from export.verify import ExportedFile, verify_exports
from kpose.training import train

CALIBRATION = "synthetic:40:11"
FAST = {"calibration_data": CALIBRATION, "calibration_samples": 24, "verify_samples": 16,
        "latency_runs": 1, "verbose": False}


@pytest.fixture(scope="module")
def mobile_cpm(tmp_path_factory):
    """A two-stage MobileNetV2 CPM after one epoch on 24 synthetic people."""
    run = tmp_path_factory.mktemp("trained") / "run"
    train("cpm", "synthetic:24:3", out_dir=run, backbone="mobilenetv2", input_size=96,
          stages=2, width=0.35, batch_size=4, epochs=1, strategy="default", verbose=0,
          seed=0)
    return run / "model.keras"


@pytest.fixture(scope="module")
def exports(mobile_cpm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    return {quantize: export_model(mobile_cpm, folder / quantize, quantize=quantize,
                                   onnx=quantize == "float16", **FAST)
            for quantize in ("int8", "float16")}


def test_a_one_epoch_mobile_cpm_passes_its_int8_float16_and_onnx_checks(exports):
    checked = {}
    for result in exports.values():
        assert result.failed_checks == [], result.text
        for row in result.report["files"]:
            checked[(row["file"], row["quantization"])] = row
    assert set(checked) == {("model.tflite", "int8"), ("model.tflite", "float16"),
                            ("model.onnx", "none")}
    assert all(row["check"]["passed"] for row in checked.values())
    # The ONNX row says how many keypoints (16 people, COCO's 17 joints) it judged with a
    # widened limit.
    onnx = checked[("model.onnx", "none")]
    assert onnx["keypoints"] == 16 * 17 and 0 <= onnx["flat"] <= onnx["keypoints"]


def test_one_perturbed_weight_fails_the_float_checks(mobile_cpm, exports, tmp_path):
    import keras
    import onnx
    from onnx import numpy_helper

    pose = load_pose_model(mobile_cpm)
    images = load_export_images(CALIBRATION, pose.skeleton, pose.input_size, samples=24,
                                verify=16)
    reference = keypoint_graph(pose, decoder="taylor", frame="pixels")

    # The exported ONNX file with its largest weight tensor moved by 10 % of its spread.
    document = onnx.load(exports["float16"].out / "model.onnx")
    largest = max(document.graph.initializer, key=lambda tensor: np.prod(tensor.dims))
    values = numpy_helper.to_array(largest).astype(np.float32)
    noise = np.random.default_rng(0).normal(0.0, 0.1 * values.std(), values.shape)
    largest.CopyFrom(numpy_helper.from_array((values + noise).astype(np.float32),
                                             largest.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(document, broken)
    intact = ExportedFile("model.onnx", exports["float16"].out / "model.onnx", "onnx", "none",
                          reference, "pixels")
    report = verify_exports([intact, ExportedFile("broken.onnx", broken, "onnx", "none",
                                                  reference, "pixels")],
                            images, skeleton=pose.skeleton, input_size=pose.input_size,
                            latency_runs=1)
    passed = [row["check"]["passed"] for row in report["files"]]
    assert passed == [True, False], report["files"]

    # The float16 file against the model with one kernel perturbed the same way.
    changed = keras.saving.load_model(mobile_cpm)
    kernel = max((weight for weight in changed.weights if "kernel" in weight.path),
                 key=lambda weight: int(np.prod(weight.shape)))
    values = np.asarray(kernel)
    kernel.assign(values + np.random.default_rng(1).normal(0.0, 0.1 * values.std(),
                                                           values.shape))
    moved = keypoint_graph(load_pose_model(changed), decoder="taylor", frame="pixels")
    float16 = exports["float16"].out / "model.tflite"
    report = verify_exports([ExportedFile("model.tflite", float16, "tflite", "float16",
                                          moved, "pixels")],
                            images, skeleton=pose.skeleton, input_size=pose.input_size,
                            latency_runs=1)
    assert report["files"][0]["check"]["passed"] is False, report["files"]
