"""Convolutional Pose Machines (Wei et al., CVPR 2016) as a Keras functional model.

Stage 1 predicts ``K + 1`` belief maps (joints and background) from local image evidence.
Every later stage sees image features from one trunk shared by all of them, the previous
stage's belief maps and a center map, and predicts the maps again; each stage has its
own output and its own loss (intermediate supervision). Belief maps are at stride 8:
a 368 x 368 input gives 46 x 46 maps.

Layer numbers are the paper's (Figure 2) unless ``width`` scales them. The paper's pools
are 2 x 2 with stride 2, which gives stage 1 exactly the 160 x 160 px receptive field it
quotes, and three 11 x 11 convolutions give stage 2 its 31 x 31 receptive field on the
stage-1 belief maps (:func:`receptive_field` computes both from the layer specs).

The mobile variant (``backbone="mobilenetv2"``) keeps the stages' inputs, outputs and
losses but builds each later stage for int8 phones and the Edge TPU: one 3 x 3
convolution at stride 8 (local evidence), a context path that pools to stride 16 and runs
four 3 x 3 convolutions there, bilinear upsampling back to stride 8, and a 1 x 1
convolution over both paths. Its receptive field on the previous maps is 22 x 22 map
pixels (176 px of the input; the chain's 20, plus the neighbouring stride-16 pixel that
bilinear upsampling mixes in): the paper's large field in kind. Dense 3 x 3 convolutions
run as fast integer matrix products in LiteRT and on the Edge TPU; the paper's 11 x 11
kernels, as depthwise-separable layers (this variant's earlier design), ran no faster in
int8 than in TensorFlow float32 on a CPU thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

from kpose.codecs import BeliefMapCodec
from kpose.data.transforms import input_size_hw
from kpose.models.backbones import MOBILENETV2_ALPHAS, mobilenetv2_features
from kpose.models.card import ModelInfo, attach_card, stage_outputs
from kpose.models.heatmaps import belief_output, build_heatmap_inference, compile_belief_model
from kpose.models.layers import CenterMap, ImageNormalisation
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["build_cpm", "build_cpm_inference", "compile_cpm", "receptive_field",
           "STAGE1_SPEC", "TRUNK_SPEC", "LATER_STAGE_SPEC", "MOBILE_STAGE_LOCAL_SPEC",
           "MOBILE_STAGE_CONTEXT_SPEC", "MOBILE_STAGE_FUSE_SPEC", "STRIDE", "BACKBONES"]

STRIDE = 8
BACKBONES = ("cpm", "mobilenetv2")


@dataclass(frozen=True)
class Conv:
    """One convolution of a stage: ``kernel x kernel``, ``filters`` outputs, ReLU."""

    kernel: int
    filters: int


@dataclass(frozen=True)
class Pool:
    """Max pooling ``size x size`` with stride ``size``."""

    size: int = 2


# The paper's Figure 2 (c) and (d). The last 1x1 conv to K + 1 maps is added per stage.
STAGE1_SPEC = (Conv(9, 128), Pool(), Conv(9, 128), Pool(), Conv(9, 128), Pool(),
               Conv(5, 32), Conv(9, 512), Conv(1, 512))
TRUNK_SPEC = (Conv(9, 128), Pool(), Conv(9, 128), Pool(), Conv(9, 128), Pool(), Conv(5, 32))
LATER_STAGE_SPEC = (Conv(11, 128), Conv(11, 128), Conv(11, 128), Conv(1, 128))
# The mobile variant's later stages (module docstring): local path at stride 8, context
# path from it at stride 16, then bilinear x2 and a 1 x 1 convolution over both.
MOBILE_STAGE_LOCAL_SPEC = (Conv(3, 128),)
MOBILE_STAGE_CONTEXT_SPEC = (Pool(), Conv(3, 128), Conv(3, 128), Conv(3, 128), Conv(3, 128))
MOBILE_STAGE_FUSE_SPEC = (Conv(1, 128),)


def build_cpm(
    skeleton: Skeleton | str,
    *,
    stages: int = 6,
    input_size: int | tuple[int, int] = 368,
    center_map: bool | str = True,
    width: float = 1.0,
    backbone: str = "cpm",
    intermediate_supervision: bool = True,
    center_sigma: float = 21.0,
    batchnorm: bool = False,
    shared_features: bool = False,
    residual_stages: bool = False,
    backbone_weights: str | None = None,
    sigma: float = 1.0,
    margin: float = 1.25,
    foreground_weight: float = 0.0,
    learning_rate: float | None = 1e-4,
) -> keras.Model:
    """Build (and compile) a Convolutional Pose Machine.

    Args:
        skeleton: the joints to predict; the model outputs ``K + 1`` maps per stage.
        stages: number of stages ``T >= 1`` (the paper's best: 6).
        input_size: ``size`` or ``(height, width)`` in pixels, divisible by 8 (by 16 for
            the mobilenetv2 backbone, whose later stages pool once more).
        center_map: ``True`` builds the paper's center map (a Gaussian of ``center_sigma``
            px at the crop centre, pooled to stride 8) inside the model, so callers pass
            only the image; ``"input"`` takes it as a second input ``center_map``
            ``(B, H, W, 1)`` at input resolution instead; ``False`` leaves it out.
        width: channel multiplier for every convolution but the ``K + 1`` outputs.
        backbone: ``"cpm"`` (the paper's) or ``"mobilenetv2"``: a MobileNetV2 trunk cut
            at stride 8 replaces the stage-1 and shared image-feature trunks, and the
            later stages are the small-kernel, two-resolution ones of the module
            docstring: the small model for phones and the Edge TPU.
        intermediate_supervision: ``True`` puts the loss on every stage (paper eq. 5);
            ``False`` only on the last (the paper's ablation (iv)). Every stage is still
            an output.
        center_sigma: center-map Gaussian standard deviation in input pixels.
        batchnorm: put BatchNorm between every convolution and its ReLU (the paper has
            none).
        shared_features: later stages read stage 1's own image features (its first
            seven layers, which have the shape of the paper's separate trunk) instead of
            a second trunk of their own: one trunk to train and to run instead of two
            (the default backbone; the mobile one shares its trunk anyway).
        residual_stages: stage ``t >= 2`` predicts a correction that is added to stage
            ``t - 1``'s maps, its last convolution initialised to zero, so every later
            stage starts out exactly as good as the one before it. The paper's stages
            predict the maps afresh.
        backbone_weights: local weights file for the MobileNetV2 trunk (nothing is
            downloaded).
        sigma: the belief maps' Gaussian sigma in map pixels (its codec,
            :class:`~kpose.codecs.BeliefMapCodec` at stride 8 with a background map).
        margin: the person box's enlargement for the top-down crop, recorded in the
            model card for training and inference.
        foreground_weight: see :func:`~kpose.models.heatmaps.compile_belief_model`.
        learning_rate: compile with Adam at this rate (or schedule) and the per-stage
            :class:`~kpose.losses.BeliefMapLoss`; ``None`` returns the model uncompiled.

    Returns:
        A functional ``keras.Model`` named ``cpm``: input ``image`` ``(B, H, W, 3)`` float32
        RGB in 0..255 (and ``center_map`` when asked), outputs ``stage_1`` ... ``stage_T``,
        each ``(B, H / 8, W / 8, K + 1)``: joint maps in skeleton order, then background.
    """
    skeleton = get_skeleton(skeleton)
    height, width_px = _input_size(input_size)
    if not isinstance(stages, int) or stages < 1:
        raise ValueError(f"stages must be an integer >= 1, got {stages!r}")
    if center_map not in (True, False, "input"):
        raise ValueError(f"center_map must be True, False or 'input', got {center_map!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if backbone == "mobilenetv2" and (height % (2 * STRIDE) or width_px % (2 * STRIDE)):
        raise ValueError(f"input_size {(height, width_px)} must be divisible by "
                         f"{2 * STRIDE} for the mobilenetv2 CPM (its stages pool to stride "
                         f"{2 * STRIDE})")
    codec = BeliefMapCodec(STRIDE, sigma, background=True)
    maps = codec.channels(skeleton.num_joints)
    options = {"stages": stages, "width": width, "backbone": backbone,
               "center_map": center_map, "batchnorm": batchnorm,
               "shared_features": shared_features, "residual_stages": residual_stages}
    info = ModelInfo("cpm", skeleton, codec, (height, width_px), float(margin), options)

    image = keras.Input((height, width_px, 3), name="image")
    inputs = [image]
    carded = attach_card(image, info)
    if backbone == "cpm":
        scaled = ImageNormalisation(1 / 256, -0.5, name="normalise")(carded)
        if shared_features:
            trunk_features = _block(STAGE1_SPEC[:len(TRUNK_SPEC)], width, "stage_1",
                                    batchnorm=batchnorm)(scaled)
            stage1_features = _block(STAGE1_SPEC[len(TRUNK_SPEC):], width, "stage_1_head",
                                     batchnorm=batchnorm)(trunk_features)
        else:
            stage1_features = _block(STAGE1_SPEC, width, "stage_1",
                                     batchnorm=batchnorm)(scaled)
            trunk_features = _block(TRUNK_SPEC, width, "shared_trunk",
                                    batchnorm=batchnorm)(scaled)
    else:
        alpha = min(MOBILENETV2_ALPHAS, key=lambda a: abs(a - width))
        scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(carded)
        features = mobilenetv2_features((height, width_px), alpha=alpha,
                                        weights=backbone_weights)(scaled)
        stage1_features = _block((Conv(3, 128), Conv(1, 128)), width, "stage_1",
                                 batchnorm=batchnorm)(features)
        trunk_features = _block((Conv(1, 32),), width, "shared_trunk",
                                batchnorm=batchnorm)(features)

    context = []
    if center_map is True:
        context = [CenterMap((height, width_px), STRIDE, center_sigma,
                             name="center_map")(carded)]
    elif center_map == "input":
        center_input = keras.Input((height, width_px, 1), name="center_map")
        inputs.append(center_input)
        context = [keras.layers.AveragePooling2D(STRIDE, name="center_map_pool")(center_input)]

    beliefs = belief_output(stage1_features, maps, "stage_1")
    outputs = {"stage_1": beliefs}
    for t in range(2, stages + 1):
        stacked = keras.layers.Concatenate(name=f"stage_{t}_inputs")(
            [trunk_features, beliefs, *context])
        if backbone == "mobilenetv2":
            features = _mobile_stage(stacked, width, f"stage_{t}", batchnorm=batchnorm)
        else:
            features = _block(LATER_STAGE_SPEC, width, f"stage_{t}",
                              batchnorm=batchnorm)(stacked)
        if residual_stages:
            correction = keras.layers.Conv2D(maps, 1, kernel_initializer="zeros",
                                             name=f"stage_{t}_maps")(features)
            refined = keras.layers.Add(name=f"stage_{t}_refined")([beliefs, correction])
            beliefs = keras.layers.Activation("linear", dtype="float32",
                                              name=f"stage_{t}")(refined)
        else:
            beliefs = belief_output(features, maps, f"stage_{t}")
        outputs[f"stage_{t}"] = beliefs

    model = keras.Model(inputs if len(inputs) > 1 else image, outputs, name="cpm")
    if learning_rate is not None:
        compile_cpm(model, learning_rate=learning_rate,
                    intermediate_supervision=intermediate_supervision,
                    foreground_weight=foreground_weight)
    return model


def compile_cpm(model: keras.Model, *, learning_rate: float = 1e-4,
                intermediate_supervision: bool = True, optimizer=None, **compile_kwargs):
    """Compile a CPM with :class:`~kpose.losses.BeliefMapLoss` on every stage (or only the
    last): :func:`kpose.models.heatmaps.compile_belief_model`. Keras sums the per-output
    losses, which is the paper's objective (eq. 5)."""
    if not stage_outputs(model):
        raise ValueError(f"model {model.name!r} has no stage_N outputs; is it a CPM from "
                         "build_cpm?")
    return compile_belief_model(model, learning_rate=learning_rate,
                                intermediate_supervision=intermediate_supervision,
                                optimizer=optimizer, **compile_kwargs)


def build_cpm_inference(trained_cpm: keras.Model, *, method: str = "taylor",
                        beta: float = 40.0) -> keras.Model:
    """Wrap a trained CPM so it outputs keypoints: image in, ``(B, K, 3)`` out.

    The last stage's belief maps go through its codec's :class:`HeatmapDecoder`
    (:func:`kpose.models.heatmaps.build_heatmap_inference`); exported models built from
    this return ``(x, y, score)`` in input pixels, not heatmaps.
    """
    return build_heatmap_inference(trained_cpm, method=method, beta=beta)


def receptive_field(spec: Sequence[Conv | Pool]) -> tuple[int, int]:
    """Receptive field and stride of a chain of layers, in the chain's input pixels.

    Returns ``(size, stride)``: one output pixel sees ``size x size`` input pixels, and
    neighbouring output pixels are ``stride`` input pixels apart.
    """
    size, jump = 1, 1
    for layer in spec:
        kernel, step = (layer.kernel, 1) if isinstance(layer, Conv) else (layer.size, layer.size)
        size += (kernel - 1) * jump
        jump *= step
    return size, jump


def _block(spec, width: float, name: str, *, batchnorm: bool = False):
    """The layers of ``spec`` as one callable; convs get ReLU, names ``{name}_convN``."""
    layers = []
    conv_index = pool_index = 0
    for layer in spec:
        if isinstance(layer, Pool):
            pool_index += 1
            layers.append(keras.layers.MaxPooling2D(layer.size, padding="same",
                                                    name=f"{name}_pool{pool_index}"))
            continue
        conv_index += 1
        filters = max(8, int(round(layer.filters * width)))
        layers.append(keras.layers.Conv2D(filters, layer.kernel, padding="same",
                                          use_bias=not batchnorm,
                                          activation=None if batchnorm else "relu",
                                          name=f"{name}_conv{conv_index}"))
        if batchnorm:
            layers.append(keras.layers.BatchNormalization(synchronized=True,
                                                          name=f"{name}_bn{conv_index}"))
            layers.append(keras.layers.ReLU(name=f"{name}_relu{conv_index}"))

    def apply(x):
        for layer in layers:
            x = layer(x)
        return x

    return apply


def _mobile_stage(stacked, width: float, name: str, *, batchnorm: bool = False):
    """A later stage of the mobile variant (module docstring).

    ``(B, h, w, C)`` at stride 8 in, ``(B, h, w, 128 * width)`` out; ``h`` and ``w`` even.
    Layers: ``{name}_conv1`` (local), ``{name}_context_*`` (stride 16),
    ``{name}_upsample``, ``{name}_fuse_conv1``.
    """
    local = _block(MOBILE_STAGE_LOCAL_SPEC, width, name, batchnorm=batchnorm)(stacked)
    context = _block(MOBILE_STAGE_CONTEXT_SPEC, width, f"{name}_context",
                     batchnorm=batchnorm)(local)
    context = keras.layers.UpSampling2D(2, interpolation="bilinear",
                                        name=f"{name}_upsample")(context)
    both = keras.layers.Concatenate(name=f"{name}_paths")([local, context])
    return _block(MOBILE_STAGE_FUSE_SPEC, width, f"{name}_fuse", batchnorm=batchnorm)(both)


def _input_size(input_size) -> tuple[int, int]:
    size = input_size_hw(input_size, minimum=STRIDE)
    if size[0] % STRIDE or size[1] % STRIDE:
        raise ValueError(f"input_size {size} must be divisible by the belief-map stride "
                         f"{STRIDE}")
    return size
