"""Feature extractors that the pose models put in front of their heads."""

from __future__ import annotations

import keras

from kpose.models.layers import LocalResponseNormalisation

__all__ = ["mobilenetv2_features", "MOBILENETV2_ALPHAS", "alexnet_features",
           "resnet50_features", "resnet_features", "ALEXNET_CONVS", "RESNET_BLOCKS"]

# Widths keras.applications.MobileNetV2 accepts.
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# Moving-statistics momentum of MobileNetV2's BatchNorm layers (see mobilenetv2_features).
_BN_MOMENTUM = 0.99
# Last layer of MobileNetV2 at each output stride (its 'expand' activations).
_MOBILENETV2_TAPS = {4: "block_3_expand_relu", 8: "block_6_expand_relu",
                     16: "block_13_expand_relu", 32: "out_relu"}


def mobilenetv2_features(input_size: tuple[int, int], *, stride: int = 8, alpha: float = 1.0,
                         weights: str | None = None, last_conv: bool = True,
                         name: str = "mobilenetv2") -> keras.Model:
    """MobileNetV2 cut at ``stride``, as a sub-model taking images scaled to [-1, 1].

    Args:
        input_size: ``(height, width)``, divisible by ``stride``.
        stride: 4, 8, 16 or 32 (32: the whole network without its classifier).
        alpha: width multiplier, one of :data:`MOBILENETV2_ALPHAS`.
        weights: ``None`` (random init) or the path of a local ``.h5``/``.weights.h5``
            file of ImageNet weights for the full network (nothing is downloaded).
        last_conv: at stride 32, end with the network's last 1 x 1 convolution (1280
            channels, ReLU6); ``False`` ends at the last bottleneck (``160 * alpha``
            linear channels), 8x fewer channels for a head to read.
        name: the sub-model's name.

    Its BatchNorm layers keep moving statistics with momentum 0.99 (Keras builds them with
    0.999, whose averages lag so far behind a network trained from scratch that after
    2,000 steps on lspet_bench a SimpleBaselines model scored 4.3 % PCK@0.2 on 200 val
    persons with them and 12.7 % with re-estimated ones).

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
    for layer in full.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = _BN_MOMENTUM
    tap_name = _MOBILENETV2_TAPS[stride]
    if stride == 32 and not last_conv:
        tap_name = "block_16_project_BN"
    tap = full.get_layer(tap_name).output
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
            x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn{index}")(x)
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


# Basic residual blocks per stage of the small ResNets (He et al., Table 1).
RESNET_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


def resnet_features(input_size: tuple[int, int], *, depth: int = 18, width: float = 1.0,
                    name: str = "resnet", channels: int = 3) -> keras.Model:
    """A small ResNet of basic blocks (ResNet-10/18/34) without its classifier.

    Stem: 7 x 7 convolution at stride 2 and a 3 x 3 max pool (stride 4); then four stages
    of basic blocks (two 3 x 3 convolutions, BatchNorm, ReLU, identity or 1 x 1 projected
    shortcut) with ``64, 128, 256, 512`` channels times ``width``, each after the first
    halving the resolution.

    Args:
        input_size: ``(height, width)``, divisible by 32.
        depth: 10, 18 or 34.
        width: channel multiplier (at least 8 channels per layer).
        name: the sub-model's name.
        channels: input channels: 3 for images; more when other maps ride along (IEF's
            rendered joints).

    Returns:
        A model ``(B, H, W, channels)`` (images scaled to about [-1, 1]) ->
        ``(B, H / 32, W / 32, 512 * width)``.
    """
    if depth not in RESNET_BLOCKS:
        raise ValueError(f"resnet depth must be one of {sorted(RESNET_BLOCKS)}, got {depth}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    image = keras.Input((*input_size, int(channels)), name=f"{name}_input")

    def filters(base):
        return max(8, int(round(base * width)))

    x = conv_bn_relu(image, filters(64), 7, strides=2, name=f"{name}_stem")
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_stem_pool")(x)
    for stage, blocks in enumerate(RESNET_BLOCKS[depth]):
        for block in range(blocks):
            x = residual_block(x, filters(64 * 2**stage),
                               strides=2 if stage > 0 and block == 0 else 1,
                               name=f"{name}_stage{stage + 1}_block{block + 1}")
    return keras.Model(image, x, name=name)


def conv_bn_relu(x, filters: int, kernel: int, *, strides: int = 1, relu: bool = True,
                 name: str):
    """Convolution (no bias), BatchNorm and (optionally) ReLU, named ``{name}_conv/bn/relu``."""
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x, filters: int, *, strides: int = 1, name: str):
    """A basic residual block: two 3 x 3 conv-BN (ReLU between), plus the input (through a
    1 x 1 conv-BN where the shape changes), then ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv_bn_relu(x, filters, 1, strides=strides, relu=False,
                                name=f"{name}_project")
    x = conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_a")
    x = conv_bn_relu(x, filters, 3, relu=False, name=f"{name}_b")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)
