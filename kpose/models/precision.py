"""Float32 copies of models trained with mixed precision (for export and exact checks)."""

from __future__ import annotations

import keras

__all__ = ["float32_model", "uses_mixed_precision"]


def uses_mixed_precision(model: keras.Model) -> bool:
    """Whether any layer of ``model`` (nested models included) computes in 16 bits."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) and uses_mixed_precision(layer):
            return True
        if layer.dtype_policy.compute_dtype in ("float16", "bfloat16"):
            return True
    return False


def float32_model(model: keras.Model) -> keras.Model:
    """``model`` with every layer computing in float32, sharing nothing with the original.

    A model trained under ``mixed_float16`` or ``mixed_bfloat16`` keeps float32 weights
    but records a 16-bit compute dtype in every layer, so its graph is full of float16 or
    bfloat16 ops that TFLite's builtin kernels and most ONNX runtimes do not take. The
    copy has the same architecture, output names and weight values, in float32 throughout;
    a model that is float32 already is returned as it is.
    """
    if not uses_mixed_precision(model):
        return model

    def clone(layer):
        if isinstance(layer, keras.Model):
            return float32_model(layer)
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
