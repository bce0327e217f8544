"""Feature extractors that the pose models put in front of their heads."""

from __future__ import annotations

import keras

__all__ = ["mobilenetv2_features", "MOBILENETV2_ALPHAS"]

# Widths keras.applications.MobileNetV2 accepts.
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# Last layer of MobileNetV2 at each output stride (its 'expand' activations).
_MOBILENETV2_TAPS = {4: "block_3_expand_relu", 8: "block_6_expand_relu",
                     16: "block_13_expand_relu"}


def mobilenetv2_features(input_size: tuple[int, int], *, stride: int = 8, alpha: float = 1.0,
                         weights: str | None = None, name: str = "mobilenetv2") -> keras.Model:
    """MobileNetV2 cut at ``stride``, as a sub-model taking images scaled to [-1, 1].

    Args:
        input_size: ``(height, width)``, divisible by ``stride``.
        stride: 4, 8 or 16.
        alpha: width multiplier, one of :data:`MOBILENETV2_ALPHAS`.
        weights: ``None`` (random init) or the path of a local ``.h5``/``.weights.h5``
            file of ImageNet weights for the full network (nothing is downloaded).
        name: the sub-model's name.

    Returns:
        A model ``(B, H, W, 3)`` in [-1, 1] -> ``(B, H / stride, W / stride, C)``.
    """
    if stride not in _MOBILENETV2_TAPS:
        raise ValueError(f"mobilenetv2 stride must be one of {sorted(_MOBILENETV2_TAPS)}, "
                         f"got {stride}")
    if alpha not in MOBILENETV2_ALPHAS:
        raise ValueError(f"mobilenetv2 width (alpha) must be one of {MOBILENETV2_ALPHAS}, "
                         f"got {alpha}")
    full = keras.applications.MobileNetV2(input_shape=(*input_size, 3), alpha=alpha,
                                          include_top=False, weights=None)
    if weights is not None:
        full.load_weights(weights, skip_mismatch=False)
    tap = full.get_layer(_MOBILENETV2_TAPS[stride]).output
    return keras.Model(full.input, tap, name=name)
