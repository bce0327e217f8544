"""SimpleBaselines (Xiao et al., ECCV 2018): a backbone and three transposed convolutions.

The backbone runs to stride 32; three 4 x 4 transposed convolutions at stride 2 (each with
BatchNorm and ReLU) bring the features back to stride 4, and a 1 x 1 convolution predicts
one heatmap per joint (no background map). A 256 x 192 input gives 64 x 48 heatmaps; the
paper's Gaussian has sigma 2 heatmap pixels. The loss is the squared error between
heatmaps (the paper's MSE, up to a constant factor, which Adam ignores).

Backbones: ``"resnet"`` (a small ResNet of basic blocks, :func:`resnet_features`; the
paper uses ResNet-50/101/152) and ``"mobilenetv2"`` (for phones and the Edge TPU). For
phones, ``upsampling="nearest"`` replaces each transposed convolution by nearest-neighbour
upsampling and a depthwise-separable 3 x 3 convolution: LiteRT runs an int8
TRANSPOSE_CONV no faster than Keras runs it in float32, while its integer depthwise and
1 x 1 convolutions run several times faster (``benchmarks/export_breakdown.py --model
simplebaseline`` times both heads part by part).
"""

from __future__ import annotations

import keras

from kpose.codecs import BeliefMapCodec
from kpose.data.transforms import input_size_hw
from kpose.models.backbones import MOBILENETV2_ALPHAS, mobilenetv2_features, resnet_features
from kpose.models.card import ModelInfo, attach_card
from kpose.models.heatmaps import belief_output, compile_belief_model
from kpose.models.layers import ImageNormalisation, ResizeImages
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["build_simplebaseline", "upsampling_head", "step_filters", "check_backbone_stride",
           "SIMPLEBASELINE_BACKBONES", "SIMPLEBASELINE_STRIDE", "SIMPLEBASELINE_UPSAMPLING"]

SIMPLEBASELINE_BACKBONES = ("resnet", "mobilenetv2")
SIMPLEBASELINE_STRIDE = 4
SIMPLEBASELINE_UPSAMPLING = ("transposed", "nearest")
_BACKBONE_STRIDE = 32


def check_backbone_stride(size: tuple[int, int], argument: str, user: str) -> None:
    """Refuse a ``(height, width)`` the backbone's stride-32 features do not tile, in one
    line naming ``argument`` and the model or head (``user``) that needs it."""
    if size[0] % _BACKBONE_STRIDE or size[1] % _BACKBONE_STRIDE:
        raise ValueError(f"{argument} {tuple(size)} must be divisible by {_BACKBONE_STRIDE} "
                         f"for {user} (its backbone's stride)")


def build_simplebaseline(
    skeleton: Skeleton | str,
    *,
    input_size: int | tuple[int, int] = 256,
    backbone: str = "resnet",
    depth: int = 18,
    width: float = 1.0,
    deconv_filters: int | tuple[int, int, int] = 256,
    last_conv: bool = True,
    upsampling: str = "transposed",
    sigma: float = 2.0,
    margin: float = 1.25,
    foreground_weight: float = 0.0,
    backbone_weights: str | None = None,
    learning_rate: float | None = 1e-3,
) -> keras.Model:
    """Build (and compile) a SimpleBaselines heatmap model.

    Args:
        skeleton: the joints; the model predicts ``K`` heatmaps.
        input_size: ``size`` or ``(height, width)`` in pixels, divisible by 32.
        backbone: ``"resnet"`` or ``"mobilenetv2"``.
        depth: ResNet depth (10, 18 or 34).
        width: channel multiplier of the backbone (for MobileNetV2 the nearest of its
            alphas) and of the transposed convolutions.
        deconv_filters: channels of each transposed convolution before ``width`` (paper:
            256), or three numbers, one per step from stride 32 to stride 4: a phone
            head tapers, e.g. ``(256, 128, 64)`` (at stride 4 the last step dominates
            the multiply-adds: 16 x C_in x C_out per stride-8 pixel).
        last_conv: MobileNetV2 only: feed the transposed convolutions from its last
            1 x 1 convolution (1280 channels, as Keras builds it); ``False`` feeds them
            from its last bottleneck (``160 * alpha`` channels), which divides the first
            transposed convolution's weights by 16 (at ``width`` 0.5: 2.6 M -> 0.16 M).
        upsampling: how each of the three steps doubles the resolution:
            ``"transposed"`` (the paper's 4 x 4 transposed convolution, stride 2) or
            ``"nearest"`` (nearest-neighbour x2, then a depthwise-separable 3 x 3
            convolution: about a quarter of the multiply-adds at 128 channels, and
            integer ops that LiteRT runs fast; for phones).
        sigma: heatmap Gaussian sigma in heatmap pixels (paper: 2).
        margin: the person box's enlargement for the top-down crop.
        foreground_weight: see :func:`~kpose.models.heatmaps.compile_belief_model`.
        backbone_weights: a local MobileNetV2 weights file (nothing is downloaded).
        learning_rate: compile with Adam at this rate (or schedule); ``None``: uncompiled.

    Returns:
        A functional ``keras.Model`` named ``simplebaseline``: input ``image``
        ``(B, H, W, 3)`` float32 RGB in 0..255, output ``stage_1`` ``(B, H / 4, W / 4, K)``.
    """
    skeleton = get_skeleton(skeleton)
    height, width_px = input_size_hw(input_size, minimum=_BACKBONE_STRIDE)
    check_backbone_stride((height, width_px), "input_size", "SimpleBaselines")
    if backbone not in SIMPLEBASELINE_BACKBONES:
        raise ValueError(f"backbone must be one of {SIMPLEBASELINE_BACKBONES}, got "
                         f"{backbone!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if not last_conv and backbone != "mobilenetv2":
        raise ValueError("last_conv=False is a MobileNetV2 option; the resnet backbone "
                         "has no last 1 x 1 convolution to leave out")
    if upsampling not in SIMPLEBASELINE_UPSAMPLING:
        raise ValueError(f"upsampling must be one of {SIMPLEBASELINE_UPSAMPLING}, got "
                         f"{upsampling!r}")
    steps = step_filters(deconv_filters)
    codec = BeliefMapCodec(SIMPLEBASELINE_STRIDE, sigma, background=False)
    options = {"backbone": backbone, **({"depth": depth} if backbone == "resnet" else {}),
               "width": width, "deconv_filters": (deconv_filters if isinstance(deconv_filters, int)
                                  else list(steps)), "last_conv": bool(last_conv),
               "upsampling": upsampling}
    info = ModelInfo("simplebaseline", skeleton, codec, (height, width_px), float(margin),
                     options)

    image = keras.Input((height, width_px, 3), name="image")
    scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(attach_card(image, info))
    if backbone == "resnet":
        features = resnet_features((height, width_px), depth=depth, width=width)(scaled)
    else:
        alpha = min(MOBILENETV2_ALPHAS, key=lambda a: abs(a - width))
        features = mobilenetv2_features((height, width_px), stride=_BACKBONE_STRIDE,
                                        alpha=alpha, weights=backbone_weights,
                                        last_conv=last_conv)(scaled)
    x = upsampling_head(features, steps, width=width, upsampling=upsampling)
    heatmaps = belief_output(x, codec.channels(skeleton.num_joints), "stage_1")
    model = keras.Model(image, {"stage_1": heatmaps}, name="simplebaseline")
    if learning_rate is not None:
        compile_belief_model(model, learning_rate=learning_rate,
                             foreground_weight=foreground_weight)
    return model


def upsampling_head(features, steps: tuple[int, int, int], *, width: float,
                    upsampling: str = "transposed"):
    """SimpleBaselines' head without its output convolution: three steps that double the
    resolution, each followed by BatchNorm and ReLU, from stride 32 to stride 4.

    ``features`` ``(B, h, w, C)`` -> ``(B, 8h, 8w, F)`` with ``F = max(8, steps[2] *
    width)``. The layers are named ``deconv1`` ... ``deconv3`` (with ``_bn``, ``_relu``)
    whatever the model, so ``--init`` carries them between families.
    """
    x = features
    size = tuple(features.shape[1:3])
    for index, channels in enumerate(steps, start=1):
        filters = max(8, int(round(channels * width)))
        size = (2 * size[0], 2 * size[1])
        if upsampling == "transposed":
            x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                             use_bias=False, name=f"deconv{index}")(x)
        else:
            x = _nearest_separable_step(x, filters, size, f"deconv{index}")
        x = keras.layers.BatchNormalization(synchronized=True, name=f"deconv{index}_bn")(x)
        x = keras.layers.ReLU(name=f"deconv{index}_relu")(x)
    return x


def step_filters(deconv_filters) -> tuple[int, int, int]:
    """``deconv_filters`` (one number or three) as the three steps' channel counts."""
    if isinstance(deconv_filters, (int, float)) and not isinstance(deconv_filters, bool):
        steps = (deconv_filters,) * 3
    elif isinstance(deconv_filters, (list, tuple)) and len(deconv_filters) == 3:
        steps = tuple(deconv_filters)
    else:
        raise ValueError("deconv_filters must be a number or three numbers (one per "
                         f"upsampling step), got {deconv_filters!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
               for v in steps):
        raise ValueError(f"deconv_filters must be positive, got {deconv_filters!r}")
    return tuple(int(v) for v in steps)


def _nearest_separable_step(x, filters: int, size: tuple[int, int], name: str):
    """Nearest-neighbour x2 to ``size``, then a 3 x 3 depthwise convolution (with
    BatchNorm and ReLU) and the 1 x 1 convolution to ``filters`` (normalised by the
    caller). ``(B, h, w, C) -> (B, 2h, 2w, filters)``; see :class:`ResizeImages` for why
    neither of Keras's own upsampling layers."""
    x = ResizeImages(*size, interpolation="nearest", dtype=None, name=f"{name}_up")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                     name=f"{name}_depthwise")(x)
    x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
    return keras.layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
