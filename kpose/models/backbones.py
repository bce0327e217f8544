"""Feature extractors that the pose models put in front of their heads."""

from __future__ import annotations

import keras

from kpose.models.layers import LocalResponseNormalisation

__all__ = ["mobilenetv2_features", "MOBILENETV2_ALPHAS", "alexnet_features",
           "resnet50_features", "ALEXNET_CONVS"]

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


# AlexNet as DeepPose uses it (Toshev and Szegedy, Figure 2): (filters, kernel, stride) of
# the five convolutions; 3 x 3 max pools with stride 2 follow conv1, conv2 and conv5, and
# local response normalisation follows conv1 and conv2. A 220 x 220 input gives maps of
# 55, 27, 13, 13, 13 and 6 x 6 x 256 features.
ALEXNET_CONVS = ((96, 11, 4), (256, 5, 1), (384, 3, 1), (384, 3, 1), (256, 3, 1))
_ALEXNET_POOLED = (1, 2, 5)
_ALEXNET_LRN = (1, 2)


def alexnet_features(input_size: tuple[int, int], *, width: float = 1.0,
                     batchnorm: bool = True, weights: str | None = None,
                     name: str = "alexnet") -> keras.Model:
    """DeepPose's five AlexNet convolutions with their pools, as a sub-model.

    Convolutions are "same"-padded (stride 4 for the first, 1 after, as seed 003 puts
    it) and pools are "valid", which reproduces the paper's map sizes for 220 px.
    ``batchnorm=True`` follows seed 003: every convolution is followed by ReLU and then
    BatchNorm, and there is no local response normalisation; ``False`` is the paper's
    network, with LRN after conv1 and conv2.

    Args:
        input_size: ``(height, width)`` of the (normalised) input, at least 57 px: below
            that the third pool has nothing to pool.
        width: multiplier of every convolution's filters (at least 8 each).
        batchnorm: see above.
        weights: path of a local weights file for this sub-model (nothing is downloaded).
        name: the sub-model's name.

    Returns:
        A model ``(B, H, W, 3)`` -> ``(B, h, w, 256 * width)``; ``h = w = 6`` at 220 px.
    """
    height, width_px = input_size
    if min(height, width_px) < 57:
        raise ValueError(f"alexnet needs an input of at least 57 x 57 px (three 3 x 3 "
                         f"pools with stride 2 after a stride-4 convolution), got "
                         f"{input_size}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    image = keras.Input((height, width_px, 3), name=f"{name}_input")
    x = image
    for index, (filters, kernel, stride) in enumerate(ALEXNET_CONVS, start=1):
        x = keras.layers.Conv2D(max(8, int(round(filters * width))), kernel, strides=stride,
                                padding="same", activation="relu",
                                name=f"{name}_conv{index}")(x)
        if batchnorm:
            x = keras.layers.BatchNormalization(name=f"{name}_bn{index}")(x)
        elif index in _ALEXNET_LRN:
            x = LocalResponseNormalisation(name=f"{name}_lrn{index}")(x)
        if index in _ALEXNET_POOLED:
            x = keras.layers.MaxPooling2D(3, strides=2, padding="valid",
                                          name=f"{name}_pool{index}")(x)
    model = keras.Model(image, x, name=name)
    if weights is not None:
        model.load_weights(weights)
    return model


def resnet50_features(input_size: tuple[int, int], *, weights: str | None = None,
                      name: str = "resnet50") -> keras.Model:
    """ResNet-50 without its classifier (stride 32), as a sub-model.

    Args:
        input_size: ``(height, width)``, at least 32 px.
        weights: ``None`` (random init) or the path of a local ``.h5``/``.weights.h5``
            file of ``keras.applications.ResNet50(include_top=False)`` weights (nothing
            is downloaded); such weights expect "caffe" inputs
            (:class:`~kpose.models.layers.CaffeNormalisation`).
        name: the sub-model's name.

    Returns:
        A model ``(B, H, W, 3)`` caffe-normalised -> ``(B, H / 32, W / 32, 2048)``.
    """
    full = keras.applications.ResNet50(input_shape=(*input_size, 3), include_top=False,
                                       weights=None)
    if weights is not None:
        full.load_weights(weights, skip_mismatch=False)
    return keras.Model(full.input, full.output, name=name)
