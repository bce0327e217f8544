"""kpose.runtime: exported .tflite / .onnx files run as keypoint models (LiteRT,
onnxruntime), with model.json (beside the file or embedded) giving skeleton, input size,
int8 scale and zero point, and the output frame.

The model is a CPM whose every joint map is the center map (weights set by hand), so its
keypoints are known without training: every joint at the centre of the crop, whatever
the image.
"""

from __future__ import annotations

import shutil

import keras
import numpy as np
import pytest

from export import export_model
from kpose.models import build_cpm, build_cpm_inference
from kpose.runtime import ExportedModel, load_exported
from kpose.skeletons import COCO_17

SIZE = 64
CENTRE = (SIZE - 1) / 2.0
FAST = {"calibration_samples": 16, "verify_samples": 8, "latency_runs": 2, "verbose": False}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """float32 (.tflite + .onnx), int8 and raw-output exports of the centre-finding CPM."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KPOSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        folder = tmp_path_factory.mktemp("runtime")
        model = _centre_cpm()
        model.save(folder / "cpm.keras")
        data = "synthetic:24:3"
        common = dict(calibration_data=data, **FAST)
        return {
            "keras": model,
            "float32": export_model(folder / "cpm.keras", folder / "f32", onnx=True, **common),
            "int8": export_model(folder / "cpm.keras", folder / "i8", quantize="int8",
                                 **common),
            "raw": export_model(folder / "cpm.keras", folder / "raw", raw_outputs=True,
                                **common),
        }


def _images(n, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["model.tflite", "model.onnx"])
def test_float32_exports_run_like_the_keras_model(exports, name):
    runtime = load_exported(exports["float32"].out / name)
    assert isinstance(runtime, ExportedModel) and runtime.input_size == (SIZE, SIZE)
    assert runtime.skeleton is COCO_17
    images = _images(3)
    keypoints = runtime(images)
    expected = build_cpm_inference(exports["keras"]).predict(images, verbose=0)
    assert keypoints.shape == (3, 17, 3) and keypoints.dtype == np.float32
    np.testing.assert_allclose(keypoints[..., :2], expected[..., :2], atol=0.01)
    np.testing.assert_allclose(keypoints[..., :2], CENTRE, atol=0.01)
    np.testing.assert_allclose(runtime(images[0]), keypoints[0], atol=1e-5)  # one image


def test_int8_export_takes_float_pixels_and_returns_input_pixels(exports):
    runtime = load_exported(exports["int8"].out / "model.tflite")
    entry = runtime.metadata["files"]["model.tflite"]
    assert entry["input"]["dtype"] == "uint8" and entry["output"]["frame"] == "input_fraction"
    keypoints = runtime(_images(2, seed=1), training=False)
    # One int8 step of the output is about 64 / 255 px.
    np.testing.assert_allclose(keypoints[..., :2], CENTRE, atol=0.6)
    assert np.all(keypoints[..., 2] > 0.5)  # the center map's peak, as the score


def test_a_tflite_file_on_its_own_reads_its_embedded_metadata(exports, tmp_path):
    alone = tmp_path / "model.tflite"
    shutil.copy(exports["int8"].out / "model.tflite", alone)
    runtime = load_exported(alone)
    assert runtime.metadata == exports["int8"].metadata
    np.testing.assert_allclose(runtime(_images(1))[..., :2], CENTRE, atol=0.6)


def test_a_custom_skeleton_is_rebuilt_from_model_json(exports, tmp_path):
    import json

    folder = tmp_path / "copy"
    shutil.copytree(exports["float32"].out, folder)
    document = json.loads((folder / "model.json").read_text())
    document["skeleton"]["name"] = "my_17"
    (folder / "model.json").write_text(json.dumps(document))
    runtime = load_exported(folder / "model.onnx")
    assert runtime.skeleton.name == "my_17"
    assert runtime.skeleton.joint_names == COCO_17.joint_names
    assert runtime.skeleton.torso == COCO_17.torso


def test_raw_output_exports_are_not_keypoint_models(exports):
    with pytest.raises(ValueError, match="raw 'belief_maps' outputs"):
        load_exported(exports["raw"].out / "model.tflite")


def test_bad_files_and_images_are_named(exports, tmp_path):
    with pytest.raises(FileNotFoundError, match="exported model not found"):
        load_exported(tmp_path / "missing.tflite")
    (tmp_path / "model.keras").write_text("x")
    with pytest.raises(ValueError, match="expected an exported .tflite or .onnx"):
        load_exported(tmp_path / "model.keras")
    shutil.copy(exports["float32"].out / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="no model.json beside it"):
        load_exported(tmp_path / "model.onnx")
    runtime = load_exported(exports["float32"].out / "model.tflite")
    with pytest.raises(ValueError, match=r"takes images \(B, 64, 64, 3\)"):
        runtime(np.zeros((1, 32, 32, 3), np.float32))


def _centre_cpm() -> keras.Model:
    """A 2-stage CPM whose joint maps all equal its center map: keypoints at the centre.

    Stage 2 sees [trunk features, stage-1 maps, center map]; its convolutions pass the
    center map (the last input channel) through centre taps to every joint's map.
    """
    model = build_cpm(COCO_17, stages=2, input_size=SIZE, width=0.125, learning_rate=None)
    centre_channel = model.get_layer("stage_2_inputs").output.shape[-1] - 1
    for index in range(1, 5):
        layer = model.get_layer(f"stage_2_conv{index}")
        kernel = np.zeros(layer.kernel.shape, np.float32)
        middle = kernel.shape[0] // 2
        kernel[middle, middle, centre_channel if index == 1 else 0, 0] = 1.0
        layer.kernel.assign(kernel)
        layer.bias.assign(np.zeros(layer.bias.shape))
    maps = model.get_layer("stage_2_maps")
    kernel = np.zeros(maps.kernel.shape, np.float32)
    kernel[0, 0, 0, :COCO_17.num_joints] = 1.0
    maps.kernel.assign(kernel)
    maps.bias.assign(np.zeros(maps.bias.shape))
    return model
