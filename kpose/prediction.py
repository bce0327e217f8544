"""Prediction on images: top-down crop around a box, run the model, keypoints in image pixels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kpose.data.records import MAX_BOX_SCALE
from kpose.data.transforms import crop_matrix, keypoints_to_image, warp_image
from kpose.models.card import describe
from kpose.models.deeppose import build_deeppose_inference
from kpose.models.heatmaps import build_heatmap_inference
from kpose.runs import load_run_model

__all__ = ["predict", "inference_model", "input_size_of", "crop_margin", "load_image",
           "EXPORTED"]

# Exported model files that kpose runs directly.
EXPORTED = (".tflite", ".onnx")
# predict(progress=True) shows a bar from this many images on.
PROGRESS_FROM = 32


def predict(model_or_path, images: Sequence, boxes: Sequence | None = None, *,
            margin: float | None = None, batch_size: int = 16,
            progress: bool = False) -> np.ndarray:
    """Keypoints of one person per image, in that image's pixels.

    Args:
        model_or_path: a trained CPM (stage outputs), a DeepPose stage 1 or cascade, a
            keypoint model (``build_cpm_inference``, ``build_deeppose_inference``), a
            ``.keras`` file, a run folder, or an exported ``.tflite`` / ``.onnx`` file.
        images: image paths or ``(H, W, 3)`` RGB arrays in 0..255.
        boxes: one person box ``(x, y, w, h)`` per image in image pixels; ``None`` uses
            each whole image.
        margin: box enlargement before the crop; ``None``: the model's own (its card's;
            1.25 for an exported file).
        batch_size: crops per model call.
        progress: a progress bar on stderr (stdout may carry the keypoints) for more
            than :data:`PROGRESS_FROM` images.

    Returns:
        ``(N, K, 3)`` float32 ``(x, y, score)`` in image pixels.
    """
    model = inference_model(model_or_path)
    if margin is None:
        margin = crop_margin(model)
    height, width = input_size_of(model)
    arrays = [load_image(image) for image in images]
    if boxes is None:
        boxes = [(-0.5, -0.5, a.shape[1], a.shape[0]) for a in arrays]
    if len(boxes) != len(arrays):
        raise ValueError(f"got {len(arrays)} images but {len(boxes)} boxes")
    boxes = [_box(box, i, arrays[i].shape[:2]) for i, box in enumerate(boxes)]
    results = []
    bar = _stderr_bar(len(arrays)) if progress and len(arrays) > PROGRESS_FROM else None
    for start in range(0, len(arrays), batch_size):
        chunk = range(start, min(start + batch_size, len(arrays)))
        matrices = [crop_matrix(boxes[i], (height, width), margin) for i in chunk]
        crops = tf.stack([warp_image(arrays[i], m, (height, width))
                          for i, m in zip(chunk, matrices)])
        keypoints = np.asarray(model(crops, training=False))
        results.append(keypoints_to_image(keypoints, np.stack(matrices)))
        if bar is not None:
            bar(len(chunk))
    return np.concatenate(results).astype(np.float32)


def _stderr_bar(total: int):
    """A Keras progress bar over ``total`` images that writes to stderr; returns its
    ``add(count)``."""
    import contextlib
    import sys

    from keras.utils import Progbar

    with contextlib.redirect_stdout(sys.stderr):
        bar = Progbar(total, unit_name="image")

    def add(count: int) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            bar.add(count)

    return add


def inference_model(model_or_path):
    """A model that maps images to keypoints ``(B, K, 3)`` in input pixels.

    An exported ``.tflite`` or ``.onnx`` file runs through LiteRT or onnxruntime
    (:func:`kpose.runtime.load_exported`), so the file that ships is the one measured.
    """
    if isinstance(model_or_path, (str, Path)) and Path(model_or_path).suffix in EXPORTED:
        from kpose.runtime import load_exported  # LiteRT / onnxruntime: only for files

        return load_exported(model_or_path)
    if not isinstance(model_or_path, keras.Model) and hasattr(model_or_path, "input_size"):
        return model_or_path  # already an exported model
    if not isinstance(model_or_path, keras.Model):
        model_or_path, _ = load_run_model(model_or_path)
    info = describe(model_or_path)
    outputs = model_or_path.outputs
    if len(outputs) == 1 and tuple(outputs[0].shape[2:]) == (3,):
        keypoints = model_or_path  # already decodes in the graph
    elif info.codec.kind == "belief_maps":
        keypoints = build_heatmap_inference(model_or_path)
    else:
        keypoints = build_deeppose_inference(model_or_path)
    return keypoints


def crop_margin(model) -> float:
    """The box enlargement ``model`` was trained with: its card's, or an exported file's
    ``model.json`` (1.25 for exports that predate it)."""
    if isinstance(model, keras.Model):
        return describe(model).margin
    return float(getattr(model, "margin", 1.25))


def input_size_of(model) -> tuple[int, int]:
    """``(height, width)`` a keypoint model (Keras or exported) takes."""
    if hasattr(model, "input_size"):
        return tuple(model.input_size)
    return tuple(model.inputs[0].shape[1:3])


def load_image(image) -> np.ndarray:
    """An image path or array as ``(H, W, 3)`` float32 RGB in 0..255.

    Files are decoded by TensorFlow, as in the training pipeline, so a prediction sees
    exactly the pixels an evaluation would (JPEG decoders differ in the last bit).
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        try:
            decoded = tf.io.decode_image(tf.io.read_file(str(path)), channels=3,
                                         expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            raise ValueError(f"cannot decode image {path}: {error.message}") from None
        return decoded.numpy().astype(np.float32)
    array = np.asarray(image, np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"an image array must be (H, W, 3) RGB, got shape {array.shape}")
    return array


def _box(box, index: int, image_size: tuple[int, int]) -> np.ndarray:
    """``boxes[index]`` as ``(x, y, w, h)``, refused when malformed or off its image."""
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"boxes[{index}] must be (x, y, w, h) with w, h > 0, got {box.tolist()}")
    height, width = image_size
    x, y, w, h = box
    if x + w <= -0.5 or y + h <= -0.5 or x >= width - 0.5 or y >= height - 0.5:
        raise ValueError(f"boxes[{index}] {box.tolist()} lies outside its image "
                         f"({width} x {height} px)")
    if w > MAX_BOX_SCALE * width or h > MAX_BOX_SCALE * height:
        raise ValueError(f"boxes[{index}] {box.tolist()} is more than {MAX_BOX_SCALE:g} "
                         f"times its image ({width} x {height} px)")
    return box
