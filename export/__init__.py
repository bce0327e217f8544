"""kpose-export: deploy a kpose model as TFLite (float32, float16, dynamic, int8 / Edge TPU)
or ONNX, with keypoints decoded inside the graph and every file checked against Keras.

    from export import export_model
    result = export_model("runs/cpm", "export/", tflite=True, quantize="int8", edgetpu=True)

``export`` depends on ``kpose``, never the other way round. TensorFlow is imported on first
use, so ``import export`` is light.
"""

from __future__ import annotations

from importlib import import_module

from export.errors import ExportError

__all__ = ["export_model", "ExportResult", "ExportError", "check_edgetpu"]

_LAZY = {"export_model": "export.writer", "ExportResult": "export.writer",
         "check_edgetpu": "export.edgetpu"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
