"""Stacked Hourglass networks (Newell et al., ECCV 2016) with intermediate supervision.

A stem (7 x 7 convolution at stride 2, a residual module, max pooling, two residual
modules) brings the image to stride 4. Each hourglass pools ``depth`` times, with a
residual module at every scale on the way down, on the skip branch and on the way up,
and upsamples back, adding the skip branch at each scale. After every stack a 1 x 1
convolution predicts ``K`` heatmaps (output ``stage_s``, with its own loss, as the CPM's
stages); the next stack's input is the previous input plus 1 x 1 projections of the
features and of the heatmaps. Residual modules are bottlenecks (1 x 1, 3 x 3, 1 x 1 with
BatchNorm and ReLU).

Upsampling is bilinear rather than the paper's nearest neighbour: Keras's nearest
upsampling converts to TFLite ops the Edge TPU does not map, bilinear resizing maps.
"""

from __future__ import annotations

import keras

from kpose.codecs import BeliefMapCodec
from kpose.data.transforms import input_size_hw
from kpose.models.backbones import conv_bn_relu
from kpose.models.card import ModelInfo, attach_card
from kpose.models.heatmaps import belief_output, compile_belief_model
from kpose.models.layers import ImageNormalisation
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["build_hourglass", "HOURGLASS_STRIDE"]

HOURGLASS_STRIDE = 4


def build_hourglass(
    skeleton: Skeleton | str,
    *,
    stacks: int = 2,
    input_size: int | tuple[int, int] = 256,
    depth: int = 4,
    filters: int = 256,
    width: float = 1.0,
    sigma: float = 2.0,
    margin: float = 1.25,
    intermediate_supervision: bool = True,
    foreground_weight: float = 0.0,
    learning_rate: float | None = 1e-3,
) -> keras.Model:
    """Build (and compile) a Stacked Hourglass network.

    Args:
        skeleton: the joints; every stack predicts ``K`` heatmaps.
        stacks: number of hourglasses (paper: 8; 2 to 4 here).
        input_size: ``size`` or ``(height, width)``, divisible by ``4 * 2 ** depth``.
        depth: poolings inside each hourglass (paper: 4, from 64 x 64 down to 4 x 4).
        filters: channels of the residual modules before ``width`` (paper: 256).
        width: channel multiplier.
        sigma: heatmap Gaussian sigma in heatmap pixels (stride 4).
        margin: the person box's enlargement for the top-down crop.
        intermediate_supervision: a loss on every stack's heatmaps (the paper's), or only
            on the last.
        foreground_weight: see :func:`~kpose.models.heatmaps.compile_belief_model`.
        learning_rate: compile with Adam at this rate (or schedule); ``None``: uncompiled.

    Returns:
        A functional ``keras.Model`` named ``hourglass``: input ``image`` ``(B, H, W, 3)``
        float32 RGB in 0..255, outputs ``stage_1`` ... ``stage_{stacks}``, each
        ``(B, H / 4, W / 4, K)``.
    """
    skeleton = get_skeleton(skeleton)
    if not isinstance(stacks, int) or stacks < 1:
        raise ValueError(f"stacks must be an integer >= 1, got {stacks!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    multiple = HOURGLASS_STRIDE * 2**depth
    height, width_px = input_size_hw(input_size, minimum=multiple)
    if height % multiple or width_px % multiple:
        raise ValueError(f"input_size {(height, width_px)} must be divisible by {multiple} "
                         f"for an hourglass of depth {depth} (stride 4, then {depth} "
                         "poolings)")
    codec = BeliefMapCodec(HOURGLASS_STRIDE, sigma, background=False)
    channels = max(16, int(round(filters * width)))
    maps = codec.channels(skeleton.num_joints)
    options = {"stacks": stacks, "depth": depth, "filters": filters, "width": width}
    info = ModelInfo("hourglass", skeleton, codec, (height, width_px), float(margin), options)

    image = keras.Input((height, width_px, 3), name="image")
    scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(attach_card(image, info))
    x = conv_bn_relu(scaled, max(8, channels // 4), 7, strides=2, name="stem")
    x = _bottleneck(x, max(8, channels // 2), "stem_res1")
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
    x = _bottleneck(x, max(8, channels // 2), "stem_res2")
    x = _bottleneck(x, channels, "stem_res3")
    outputs = {}
    for stack in range(1, stacks + 1):
        name = f"hourglass{stack}"
        features = _hourglass(x, depth, channels, name)
        features = _bottleneck(features, channels, f"{name}_out_res")
        features = conv_bn_relu(features, channels, 1, name=f"{name}_out")
        heatmaps = belief_output(features, maps, f"stage_{stack}")
        outputs[f"stage_{stack}"] = heatmaps
        if stack < stacks:
            x = keras.layers.Add(name=f"{name}_merge")([
                x,
                keras.layers.Conv2D(channels, 1, name=f"{name}_merge_features")(features),
                keras.layers.Conv2D(channels, 1, name=f"{name}_merge_maps")(heatmaps)])
    model = keras.Model(image, outputs, name="hourglass")
    if learning_rate is not None:
        compile_belief_model(model, learning_rate=learning_rate,
                             intermediate_supervision=intermediate_supervision,
                             foreground_weight=foreground_weight)
    return model


def _hourglass(x, depth: int, channels: int, name: str):
    """One hourglass level: skip branch at this scale plus the pooled, recursed and
    upsampled branch; ``(B, h, w, channels)`` in and out."""
    skip = _bottleneck(x, channels, f"{name}_skip{depth}")
    low = keras.layers.MaxPooling2D(2, name=f"{name}_pool{depth}")(x)
    low = _bottleneck(low, channels, f"{name}_down{depth}")
    low = _hourglass(low, depth - 1, channels, name) if depth > 1 else \
        _bottleneck(low, channels, f"{name}_bottom")
    low = _bottleneck(low, channels, f"{name}_up{depth}")
    low = keras.layers.UpSampling2D(2, interpolation="bilinear",
                                    name=f"{name}_upsample{depth}")(low)
    return keras.layers.Add(name=f"{name}_add{depth}")([skip, low])


def _bottleneck(x, channels: int, name: str):
    """Newell's residual module: 1 x 1 to half the channels, 3 x 3, 1 x 1 back, plus the
    input (1 x 1 projected when the channel count changes)."""
    shortcut = x
    if x.shape[-1] != channels:
        shortcut = conv_bn_relu(x, channels, 1, relu=False, name=f"{name}_project")
    half = max(8, channels // 2)
    y = conv_bn_relu(x, half, 1, name=f"{name}_a")
    y = conv_bn_relu(y, half, 3, name=f"{name}_b")
    y = conv_bn_relu(y, channels, 1, relu=False, name=f"{name}_c")
    return keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")(
        [shortcut, y]))
