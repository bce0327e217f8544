"""Keras model -> ``.tflite``: float32, float16, dynamic-range or full-integer int8.

The route is the measured one (kpose's TOOLCHAIN notes): ``model.export`` to a SavedModel
with a fixed batch-1 signature, then ``tf.lite.TFLiteConverter.from_saved_model`` with
``supported_ops`` set explicitly. Flex (SELECT_TF_OPS) is never allowed: neither LiteRT nor
the Edge TPU can run it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable

import numpy as np

from export.errors import ExportError

__all__ = ["QUANTIZATIONS", "IO_TYPES", "convert_tflite"]

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# SavedModels are traced into <temporary folder>/kpose-savedmodel-<pid>.*: a killed
# export's is removed by the next one (export.writer.clean_stale).
SAVEDMODEL_PREFIX = "kpose-savedmodel-"
IO_TYPES = ("uint8", "int8")


def convert_tflite(model, input_size, *, quantization: str = "none",
                   representative: Callable[[], Iterable[np.ndarray]] | None = None,
                   io_type: str = "uint8") -> bytes:
    """Convert a one-input Keras model to a ``.tflite`` flatbuffer.

    Args:
        model: functional model, input ``(B, H, W, C)`` float32 (images: RGB 0..255).
        input_size: ``(H, W)``; the file takes exactly ``(1, H, W, C)``.
        quantization: ``"none"`` (float32), ``"float16"`` (float16 weights), ``"dynamic"``
            (int8 weights, float activations) or ``"int8"`` (full-integer post-training
            quantisation, ``TFLITE_BUILTINS_INT8`` only, int8 or uint8 input and output).
        representative: for ``"int8"``: returns an iterable of ``(1, H, W, C)`` float32
            inputs (images made by the training preprocessing).
        io_type: ``"uint8"`` or ``"int8"`` input and output of an int8 model.

    Raises:
        ExportError: bad arguments, or the converter failed (its first error line).
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ExportError(f"quantization must be one of {QUANTIZATIONS}, got "
                          f"{quantization!r}")
    if quantization == "int8" and representative is None:
        raise ExportError("int8 quantisation needs representative (calibration) images")
    if io_type not in IO_TYPES:
        raise ExportError(f"io_type must be one of {IO_TYPES}, got {io_type!r}")
    height, width = (int(v) for v in input_size)
    channels = int(model.inputs[0].shape[-1])  # 3 for images; a decoder alone takes maps
    with tempfile.TemporaryDirectory(prefix=f"{SAVEDMODEL_PREFIX}{os.getpid()}.") as folder:
        try:
            model.export(folder, input_signature=[
                tf.TensorSpec([1, height, width, channels], tf.float32, name="image")],
                verbose=False)
        except Exception as error:  # noqa: BLE001 - reported as one line
            raise ExportError(f"could not trace the model for export: {_first_line(error)}") \
                from None
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([image] for image in representative())
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
        try:
            return converter.convert()
        except Exception as error:  # noqa: BLE001 - reported as one line
            raise ExportError(f"TensorFlow Lite conversion ({quantization}) failed: "
                              f"{_first_line(error)}") from None


def _first_line(error: Exception) -> str:
    """The most telling line of a converter error (its messages run to pages)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for marker in ("TF Select ops:", "error: '", "error:"):
        for line in lines:
            if marker in line:
                text = line[line.index(marker):]
                return text[:300]
    return (lines[0] if lines else type(error).__name__)[:300]
