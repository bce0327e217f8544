"""HRNet (Sun et al., CVPR 2019): a high-resolution branch kept from start to end.

The stem (two 3 x 3 convolutions at stride 2) brings the image to stride 4, where stage 1
runs bottleneck blocks. Each later stage adds a branch at half the resolution and twice
the channels of the one before (``C``, ``2C``, ``4C``, ``8C`` at strides 4, 8, 16, 32),
and is made of *modules*: every branch runs a few residual blocks at its own resolution,
then every branch receives the sum of all the others, brought to its resolution (lower
ones by a 1 x 1 convolution and nearest-neighbour upsampling, higher ones by strided 3 x 3
convolutions). The stride-4 branch then predicts one heatmap per joint with a 1 x 1
convolution (no background map), so HRNet shares SimpleBaselines' codec: stride-4 maps,
a Gaussian of sigma 2 map pixels.

Variants (:data:`HRNET_VARIANTS`; any part can be overridden):

- ``"full"``: the paper's HRNet: 4 branches, 1 / 1 / 4 / 3 modules in stages 1-4 with 4
  blocks per branch; ``channels=32`` is HRNet-W32, 18 is HRNet-W18.
- ``"small"``: HRNet-W18-small-like: one module per stage, 2 blocks per branch, one
  bottleneck in stage 1.
- ``"lite"``: for phones and the Edge TPU: ``"small"`` with 3 branches and every 3 x 3
  convolution depthwise-separable (a 3 x 3 depthwise and a 1 x 1 convolution), the idea of
  Lite-HRNet and MobileNets. Every op (convolutions, depthwise convolutions, adds, nearest
  resizes) is on the Edge TPU's list.

``width`` multiplies every channel count, as in the other families (``channels=32,
width=0.5`` has 16 channels on its first branch).
"""

from __future__ import annotations

import keras

from kpose.codecs import BeliefMapCodec
from kpose.data.transforms import input_size_hw
from kpose.models.card import ModelInfo, attach_card
from kpose.models.heatmaps import belief_output, compile_belief_model
from kpose.models.layers import ImageNormalisation, ResizeImages
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["build_hrnet", "HRNET_VARIANTS", "HRNET_STRIDE"]

HRNET_STRIDE = 4
# stage-1 bottlenecks, modules in stages 2..branches, blocks per branch, branches,
# depthwise-separable 3 x 3 convolutions.
HRNET_VARIANTS = {
    "full": {"stem_blocks": 4, "modules": (1, 4, 3), "blocks": 4, "branches": 4,
             "depthwise": False},
    "small": {"stem_blocks": 1, "modules": (1, 1, 1), "blocks": 2, "branches": 4,
              "depthwise": False},
    "lite": {"stem_blocks": 1, "modules": (1, 1), "blocks": 2, "branches": 3,
             "depthwise": True},
}
_STEM_CHANNELS = 64
_BOTTLENECK_EXPANSION = 4


def build_hrnet(
    skeleton: Skeleton | str,
    *,
    input_size: int | tuple[int, int] = 256,
    variant: str = "small",
    channels: int = 32,
    width: float = 1.0,
    stem_blocks: int | None = None,
    modules: tuple[int, ...] | list[int] | None = None,
    blocks: int | None = None,
    branches: int | None = None,
    depthwise: bool | None = None,
    sigma: float = 2.0,
    margin: float = 1.25,
    foreground_weight: float = 0.0,
    learning_rate: float | None = 1e-3,
) -> keras.Model:
    """Build (and compile) an HRNet heatmap model.

    Args:
        skeleton: the joints; the model predicts ``K`` heatmaps.
        input_size: ``size`` or ``(height, width)`` in pixels, divisible by
            ``4 * 2 ** (branches - 1)`` (32 with four branches).
        variant: ``"full"``, ``"small"`` or ``"lite"`` (:data:`HRNET_VARIANTS`); the
            arguments below that are not ``None`` override it.
        channels: ``C``, the first branch's channels before ``width`` (W32: 32, W18: 18).
        width: multiplier of every channel count (at least 8 channels per layer).
        stem_blocks: bottleneck blocks of stage 1 (at stride 4).
        modules: modules of stages 2, 3, ...: one number per stage after the first;
            their count plus one is the number of branches.
        blocks: residual blocks per branch in each module.
        branches: 2, 3 or 4; ``modules`` must have ``branches - 1`` entries.
        depthwise: make every 3 x 3 convolution depthwise-separable.
        sigma: heatmap Gaussian sigma in heatmap pixels.
        margin: the person box's enlargement for the top-down crop.
        foreground_weight: see :func:`~kpose.models.heatmaps.compile_belief_model`.
        learning_rate: compile with Adam at this rate (or schedule); ``None``: uncompiled.

    Returns:
        A functional ``keras.Model`` named ``hrnet``: input ``image`` ``(B, H, W, 3)``
        float32 RGB in 0..255, output ``stage_1`` ``(B, H / 4, W / 4, K)``.
    """
    skeleton = get_skeleton(skeleton)
    if variant not in HRNET_VARIANTS:
        raise ValueError(f"HRNet variant must be one of {sorted(HRNET_VARIANTS)}, got "
                         f"{variant!r}")
    spec = dict(HRNET_VARIANTS[variant])
    given = {"stem_blocks": stem_blocks, "modules": modules, "blocks": blocks,
             "branches": branches, "depthwise": depthwise}
    spec.update({k: v for k, v in given.items() if v is not None})
    if modules is not None and branches is None:
        spec["branches"] = len(spec["modules"]) + 1
    elif branches is not None and modules is None:
        spec["modules"] = tuple(spec["modules"][:branches - 1]) + \
            (1,) * max(0, branches - 1 - len(spec["modules"]))
    _check_spec(spec, channels, width)
    stride = HRNET_STRIDE * 2 ** (spec["branches"] - 1)
    height, width_px = input_size_hw(input_size, minimum=stride)
    if height % stride or width_px % stride:
        raise ValueError(f"input_size {(height, width_px)} must be divisible by {stride} "
                         f"for an HRNet of {spec['branches']} branches")
    codec = BeliefMapCodec(HRNET_STRIDE, sigma, background=False)
    options = {"variant": variant, "channels": int(channels), "width": width,
               "stem_blocks": spec["stem_blocks"], "modules": list(spec["modules"]),
               "blocks": spec["blocks"], "branches": spec["branches"],
               "depthwise": bool(spec["depthwise"])}
    info = ModelInfo("hrnet", skeleton, codec, (height, width_px), float(margin), options)
    layers = _Layers(width, bool(spec["depthwise"]))

    image = keras.Input((height, width_px, 3), name="image")
    x = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(attach_card(image, info))
    x = layers.conv(x, _STEM_CHANNELS, strides=2, name="stem1")
    x = layers.conv(x, _STEM_CHANNELS, strides=2, name="stem2")
    for index in range(spec["stem_blocks"]):
        x = layers.bottleneck(x, _STEM_CHANNELS, name=f"stage1_block{index + 1}")
    base = layers.count(channels)
    branch_channels = [base * 2 ** i for i in range(spec["branches"])]
    # The first transition turns the stage-1 output into two branches.
    xs = [layers.conv(x, branch_channels[0], name="transition1_branch1", scaled=False),
          layers.conv(x, branch_channels[1], strides=2, name="transition1_branch2",
                      scaled=False)]
    for stage, module_count in enumerate(spec["modules"], start=2):
        for module in range(module_count):
            xs = _module(layers, xs, branch_channels[:len(xs)], spec["blocks"],
                         name=f"stage{stage}_module{module + 1}")
        if stage <= spec["branches"] - 1:  # a new, lower branch for the next stage
            xs.append(layers.conv(xs[-1], branch_channels[len(xs)], strides=2,
                                  name=f"transition{stage}_branch{len(xs) + 1}",
                                  scaled=False))
    heatmaps = belief_output(xs[0], skeleton.num_joints, "stage_1")
    model = keras.Model(image, {"stage_1": heatmaps}, name="hrnet")
    if learning_rate is not None:
        compile_belief_model(model, learning_rate=learning_rate,
                             foreground_weight=foreground_weight)
    return model


class _Layers:
    """The convolutions HRNet is made of, plain or depthwise-separable, each with
    BatchNorm (synchronized across replicas) and optionally ReLU."""

    def __init__(self, width: float, depthwise: bool):
        self.width, self.depthwise = width, depthwise

    def count(self, base: int) -> int:
        return max(8, int(round(base * self.width)))

    def conv(self, x, filters: int, *, kernel: int = 3, strides: int = 1, relu: bool = True,
             name: str, scaled: bool = True):
        """A ``kernel x kernel`` convolution to ``filters`` (times ``width`` unless
        ``scaled=False``), BatchNorm, ReLU."""
        filters = self.count(filters) if scaled else filters
        if kernel == 3 and self.depthwise:
            x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same",
                                             use_bias=False, name=f"{name}_depthwise")(x)
            x = keras.layers.BatchNormalization(synchronized=True,
                                                name=f"{name}_depthwise_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_depthwise_relu")(x)
            kernel, strides = 1, 1
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                use_bias=False, name=f"{name}_conv")(x)
        x = keras.layers.BatchNormalization(synchronized=True, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x

    def bottleneck(self, x, filters: int, *, name: str):
        """1 x 1, 3 x 3, 1 x 1 to ``4 * filters`` (times ``width``), plus the input
        (projected by a 1 x 1 convolution where the channels differ), ReLU."""
        out = self.count(filters) * _BOTTLENECK_EXPANSION
        shortcut = x if x.shape[-1] == out else self.conv(
            x, out, kernel=1, relu=False, name=f"{name}_project", scaled=False)
        y = self.conv(x, filters, kernel=1, name=f"{name}_a")
        y = self.conv(y, filters, name=f"{name}_b")
        y = self.conv(y, out, kernel=1, relu=False, name=f"{name}_c", scaled=False)
        y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
        return keras.layers.ReLU(name=f"{name}_out")(y)

    def basic(self, x, *, name: str):
        """Two 3 x 3 convolutions at the input's channels, plus the input, ReLU."""
        filters = x.shape[-1]
        y = self.conv(x, filters, name=f"{name}_a", scaled=False)
        y = self.conv(y, filters, relu=False, name=f"{name}_b", scaled=False)
        y = keras.layers.Add(name=f"{name}_add")([x, y])
        return keras.layers.ReLU(name=f"{name}_out")(y)


def _module(layers: _Layers, xs: list, channels: list[int], blocks: int, *, name: str):
    """One HRNet module: ``blocks`` basic blocks on every branch, then the exchange unit:
    branch ``i`` receives the sum of every branch brought to its resolution and
    channels, then ReLU."""
    xs = list(xs)
    for branch in range(len(xs)):
        for block in range(blocks):
            xs[branch] = layers.basic(xs[branch],
                                      name=f"{name}_branch{branch + 1}_block{block + 1}")
    fused = []
    for target in range(len(xs)):
        parts = []
        for source, x in enumerate(xs):
            where = f"{name}_fuse{target + 1}_from{source + 1}"
            if source == target:
                parts.append(x)
            elif source > target:  # lower resolution: 1 x 1 convolution, then upsample
                y = layers.conv(x, channels[target], kernel=1, relu=False, name=where,
                                scaled=False)
                size = tuple(xs[target].shape[1:3])
                parts.append(ResizeImages(*size, interpolation="nearest", dtype=None,
                                          name=f"{where}_up")(y))
            else:  # higher resolution: strided 3 x 3 convolutions, one per halving
                y = x
                for step in range(target - source):
                    last = step == target - source - 1
                    y = layers.conv(y, channels[target] if last else channels[source],
                                    strides=2, relu=not last, name=f"{where}_down{step + 1}",
                                    scaled=False)
                parts.append(y)
        total = keras.layers.Add(name=f"{name}_fuse{target + 1}")(parts)
        fused.append(keras.layers.ReLU(name=f"{name}_fuse{target + 1}_relu")(total))
    return fused


def _check_spec(spec: dict, channels, width) -> None:
    """Refuse a variant that cannot be built, naming the argument."""
    for key in ("stem_blocks", "blocks"):
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (
                0 if key == "stem_blocks" else 1):
            raise ValueError(f"HRNet {key} must be an integer >= "
                             f"{0 if key == 'stem_blocks' else 1}, got {value!r}")
    branches = spec["branches"]
    if isinstance(branches, bool) or branches not in (2, 3, 4):
        raise ValueError(f"HRNet branches must be 2, 3 or 4, got {branches!r}")
    modules = spec["modules"]
    if not isinstance(modules, (list, tuple)) or len(modules) != branches - 1 or not all(
            isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in modules):
        raise ValueError(f"HRNet modules must be {branches - 1} integers >= 1 (one per "
                         f"stage after the first), got {modules!r}")
    if not isinstance(spec["depthwise"], bool):
        raise ValueError(f"HRNet depthwise must be True or False, got {spec['depthwise']!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"HRNet channels must be a positive integer, got {channels!r}")
    if not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
