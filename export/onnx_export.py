"""Keras model -> ``.onnx`` through tf2onnx (``from_keras`` on the functional model)."""

from __future__ import annotations

import logging

from export.errors import ExportError

__all__ = ["convert_onnx", "MIN_OPSET"]

MIN_OPSET = 13


def convert_onnx(model, input_size, *, opset: int = 13) -> bytes:
    """Convert a one-input functional Keras model to a serialised ONNX model.

    The input is named ``image`` and fixed to ``(1, H, W, 3)`` float32, like the
    ``.tflite`` exports; the output keeps the model's output (float32).

    Raises:
        ExportError: ``opset`` below 13, or tf2onnx failed (its first error line).
    """
    import tensorflow as tf

    if int(opset) < MIN_OPSET:
        raise ExportError(f"ONNX opset must be >= {MIN_OPSET}, got {opset}")
    import tf2onnx

    # tf2onnx logs every rewrite at INFO; keep its warnings.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    height, width = (int(v) for v in input_size)
    signature = (tf.TensorSpec((1, height, width, 3), tf.float32, name="image"),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature,
                                              opset=int(opset))
    except Exception as error:  # noqa: BLE001 - reported as one line
        message = next((line for line in str(error).splitlines() if line.strip()),
                       type(error).__name__)
        raise ExportError(f"ONNX conversion (tf2onnx, opset {opset}) failed: "
                          f"{message[:300]}") from None
    return proto.SerializeToString()
