"""DeepPose (Toshev and Szegedy, CVPR 2014): holistic joint regression and its cascade.

Stage 1 regresses all ``K`` joints at once from the whole person crop (the paper's
AlexNet: five convolutions, two fully connected layers of 4096, a linear ``2K`` output).
Each later stage ``s`` refines every joint ``i`` of stage ``s - 1``: it cuts a square box
of side ``sigma * diam(y)`` around the joint (``diam``: distance between the two torso
joints of the current estimate), resizes it to the refiner's input, and regresses where
the joint lies in it; the estimate moves by that displacement. One refiner network per
stage serves all joints. :func:`build_deeppose_cascade` puts stage 1 and the refiners in
ONE functional model, with the crops inside the graph (:class:`JointCrops`, TFLite
builtins only), so an exported cascade takes an image and returns refined joints.

Frames. Joints are in kpose's normalised coordinates of the image the model sees,
``x_n = (u - (W - 1) / 2) / W`` for an input x pixel ``u`` (``y`` likewise with ``H``): the
image's outer pixel edges are at -0.5 and 0.5 (``make_dataset(target="coords")``'s
targets). A refiner's displacement is in its crop's normalised frame, ``(p - c) / side``
for a crop centred on ``c``. Both are independent of resolution, which is why the
cascade's image may be larger than stage 1's input (stage 1 then sees it resized).

Training: stage 1 and each refiner with ``model.fit`` (stage 1 on
:func:`~kpose.data.make_dataset` batches, refiners on
:func:`~kpose.data.refiner_data.refiner_dataset` crops around simulated predictions);
:func:`train_deeppose_cascade` does all stages in turn.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import keras
import numpy as np

from kpose.codecs import CoordinateCodec
from kpose.data.transforms import check_sigma, check_torso, input_size_hw
from kpose.decoding import NormalisedToPixels
from kpose.losses import (CoordinateL1Loss, CoordinateL2Loss, ResidualLogLikelihoodLoss,
                          VisibilityLoss)
from kpose.models.backbones import (MOBILENETV2_ALPHAS, RESNET_BLOCKS, alexnet_features,
                                    mobilenetv2_features, resnet50_features, resnet_features)
from kpose.models.card import ModelInfo, attach_card, describe
from kpose.models.ief import ITERATION_PREFIX, feedback_iterations
from kpose.models.layers import (CaffeNormalisation, ImageNormalisation, JointBoxes, JointCrops,
                                 RefineJoints, ResizeImages, SoftArgmax)
from kpose.models.rle import RLE_OUTPUT, ResidualFlow
from kpose.models.simplebaseline import check_backbone_stride, step_filters, upsampling_head
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["build_deeppose", "build_deeppose_refiner", "build_deeppose_cascade",
           "build_deeppose_inference", "build_deeppose_stage_keypoints", "NormalisedToPixels",
           "without_training_outputs",
           "build_refinement_step", "compile_deeppose", "BACKBONES", "HEADS", "LOSSES",
           "FC_UNITS"]

BACKBONES = ("alexnet", "resnet", "resnet50", "mobilenetv2")
# "fc": the paper's flatten and two fully connected layers; "pool": global average pooling
# straight into the linear output (the head of modern regression models such as RLE's);
# "integral": SimpleBaselines' upsampling head and a soft-argmax (integral regression), the
# joints the mean of a learnt distribution over a stride-4 grid.
HEADS = ("fc", "pool", "integral")
# The integral head's three upsampling steps: SimpleBaselines' 256 channels (times width),
# so a trained SimpleBaselines model's head carries over whole.
_INTEGRAL_FILTERS = 256
# "l2": the paper's squared distance; "l1": absolute differences (robust to the outliers
# of occluded and mislabelled joints); "rle": residual log-likelihood (stage 1 only, on a
# training-only "rle" output, kpose.models.rle).
LOSSES = {"l2": CoordinateL2Loss, "l1": CoordinateL1Loss, "rle": ResidualLogLikelihoodLoss}
# sigmoid(-2) = 0.12: RLE's scales start at about an eighth of the crop.
_RLE_SCALE_BIAS = -2.0
FC_UNITS = 4096  # the paper's two fully connected layers
# Channels the resnet50/mobilenetv2 features are reduced to before the fully connected
# layers: AlexNet's pool5 depth, so all backbones share the paper's head.
_HEAD_CHANNELS = 256


def build_deeppose(
    skeleton: Skeleton | str,
    *,
    input_size: int | tuple[int, int] = 220,
    backbone: str = "alexnet",
    depth: int = 18,
    head: str = "fc",
    loss: str = "l2",
    batchnorm: bool = True,
    dropout: float = 0.6,
    with_visibility: bool = False,
    width: float = 1.0,
    backbone_weights: str | None = None,
    margin: float = 1.25,
    learning_rate: float | None = 1e-4,
    iterations: int = 1,
    max_step: float = 0.1,
    feedback_sigma: float | None = None,
) -> keras.Model:
    """Build (and compile) DeepPose's stage-1 regressor, or with ``iterations > 1`` an
    Iterative Error Feedback regressor (:mod:`kpose.models.ief`).

    Args:
        skeleton: the joints to regress.
        input_size: ``size`` or ``(height, width)`` in pixels (the paper: 220; alexnet
            needs at least 57).
        backbone: ``"alexnet"`` (the paper's), ``"resnet"`` (ResNet-10/18/34 of basic
            blocks, the SimpleBaselines backbone, so ``--init`` can start it from a
            trained heatmap model), ``"resnet50"`` or ``"mobilenetv2"``
            (``keras.applications``, random init). With the ``"fc"`` head, the
            non-AlexNet features are first reduced to ``256 * width`` channels by a 1 x 1
            convolution, and mobilenetv2's stride-16 features are max-pooled to stride 32.
        depth: ResNet depth for ``backbone="resnet"`` (10, 18 or 34).
        head: ``"fc"`` (the paper's: flatten, two fully connected ReLU layers of
            ``4096 * width`` with dropout, a linear ``2K`` output), ``"pool"`` (global
            average pooling of the backbone's features, dropout, the linear ``2K``
            output, initialised to zero: every joint starts at the crop's centre) or
            ``"integral"`` (``backbone="resnet"``, input divisible by 32: SimpleBaselines'
            three transposed convolutions to stride 4, a map per joint named
            ``stage_1_maps`` as in the heatmap families, and the mean of each map's
            softmax, :class:`~kpose.models.layers.SoftArgmax`; a trained SimpleBaselines
            ResNet carries over whole through ``--init``). Every head is trained on
            coordinates alone.
        loss: ``"l2"`` (the paper's squared distance), ``"l1"``
            (:class:`~kpose.losses.CoordinateL1Loss`) or ``"rle"`` (residual
            log-likelihood estimation, :class:`~kpose.losses.ResidualLogLikelihoodLoss`:
            a per-joint scale and a normalising flow on a training-only ``rle`` output;
            not with ``iterations`` or ``with_visibility``).
        batchnorm: BatchNorm after every AlexNet convolution's ReLU (seed 003), and after
            the other backbones' 1 x 1 reduction; ``False`` gives the paper's AlexNet with
            local response normalisation. Measured: after 200 steps of a small refiner at
            Adam 3e-3, BatchNorm's moving statistics (momentum 0.99) lagged the weights so
            far that inference-mode loss was 4x the training-mode loss on the same crops;
            for very short runs prefer ``False``.
        dropout: dropout rate after each fully connected layer (the paper and seed 003:
            0.6).
        with_visibility: add per-joint visibility logits (seed 003's ``(x, y, v)``
            variant), trained with binary cross-entropy against "labelled".
        width: multiplier of convolution filters and fully connected units (mobilenetv2:
            the nearest ``alpha``); small values make test-sized models.
        backbone_weights: local weights file for the backbone sub-model (nothing is
            downloaded).
        margin: the person box's enlargement for the top-down crop (model card).
        learning_rate: compile with Adam at this rate (:func:`compile_deeppose`);
            ``None`` returns the model uncompiled.
        iterations: ``T``; above 1 the model is IEF: one ResNet (``backbone="resnet"``,
            ``head="pool"``) reads the image with the current estimate drawn on it and
            corrects the estimate ``T`` times, from a learnt mean pose.
        max_step: IEF's largest correction per coordinate and iteration, in normalised
            units (0.1: a tenth of the input side).
        feedback_sigma: IEF's drawn joints' standard deviation in input pixels (default:
            the input height / 32).

    Returns:
        A functional ``keras.Model`` named ``deeppose``: input ``image`` ``(B, H, W, 3)``
        float32 RGB 0..255; output ``keypoints`` ``(B, K, 2)`` float32 normalised
        coordinates (about [-0.5, 0.5] inside the image), or with ``with_visibility`` a
        dict of ``keypoints`` and ``visibility`` ``(B, K)`` float32 logits. An IEF model
        outputs a dict: ``keypoints`` (the last iteration) and ``iteration_1`` ...
        ``iteration_{T-1}``, each trained towards the truth. With ``loss="rle"`` the
        outputs are ``keypoints`` and ``rle`` ``(B, 4K + P)`` float32
        (:class:`~kpose.models.rle.ResidualFlow`), which only the loss reads.
    """
    skeleton = get_skeleton(skeleton)
    size = input_size_hw(input_size, "input_size", minimum=2)
    _check_head_arguments(backbone, dropout, width, with_visibility, depth, head, loss)
    feedback = _check_feedback(iterations, max_step, feedback_sigma, backbone=backbone,
                               head=head, with_visibility=with_visibility)
    if head == "integral":
        check_backbone_stride(size, "input_size", "head 'integral'")
    if loss == "rle" and (feedback or with_visibility):
        raise ValueError("loss 'rle' trains a plain regressor's joints: it takes neither "
                         "iterations > 1 nor with_visibility")
    options = {"backbone": backbone, "width": width, "with_visibility": with_visibility,
               "head": head, "loss": loss}
    if backbone == "resnet":
        options["depth"] = depth
    if feedback:
        feedback_sigma = float(feedback_sigma or size[0] / 32)
        options.update(iterations=int(iterations), max_step=float(max_step),
                       feedback_sigma=feedback_sigma)
    info = ModelInfo("deeppose", skeleton, CoordinateCodec(), size, float(margin), options)
    image = keras.Input((*size, 3), name="image")
    if feedback:
        scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(attach_card(image, info))
        steps = feedback_iterations(
            scaled, skeleton.num_joints, iterations=int(iterations), max_step=float(max_step),
            sigma=feedback_sigma, depth=depth, width=width,
            dropout=dropout)
        # float32 outputs under mixed precision too, as every DeepPose output.
        names = [f"{ITERATION_PREFIX}{t}" for t in range(1, len(steps))] + ["keypoints"]
        outputs = {name: keras.layers.Activation("linear", dtype="float32", name=name)(y)
                   for name, y in zip(names, steps)}
        model = keras.Model(image, outputs, name="deeppose")
        if learning_rate is not None:
            compile_deeppose(model, learning_rate=learning_rate, loss=loss)
        return model
    joints = skeleton.num_joints
    if head == "integral":
        keypoints, hidden = _integral(attach_card(image, info), joints, "keypoints",
                                      width=width, depth=depth, dropout=dropout)
    else:
        hidden = _regressor(attach_card(image, info), backbone=backbone,
                            batchnorm=batchnorm, dropout=dropout, width=width,
                            weights=backbone_weights, depth=depth, head=head)
        # The pooled head starts at the crop's centre for every joint: with a zero output
        # layer the first steps train the head alone and send no random gradient into a
        # backbone that --init brought in trained.
        keypoints = _coordinates(hidden, joints, "keypoints", zero_init=head == "pool")
    outputs = keypoints
    if loss == "rle":
        logits = keras.layers.Dense(
            2 * joints, kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(_RLE_SCALE_BIAS),
            name="rle_scale_dense")(hidden)
        logits = keras.layers.Reshape((joints, 2), name="rle_scale_pairs")(logits)
        outputs = {"keypoints": keypoints,
                   RLE_OUTPUT: ResidualFlow(name=RLE_OUTPUT)([keypoints, logits])}
    if with_visibility:
        logits = keras.layers.Dense(joints, name="visibility_logits")(hidden)
        visibility = keras.layers.Activation("linear", dtype="float32",
                                             name="visibility")(logits)
        outputs = {"keypoints": keypoints, "visibility": visibility}
    model = keras.Model(image, outputs, name="deeppose")
    if learning_rate is not None:
        compile_deeppose(model, learning_rate=learning_rate, loss=loss)
    return model


def build_deeppose_refiner(
    skeleton: Skeleton | str,
    *,
    crop_size: int = 220,
    backbone: str = "alexnet",
    depth: int = 18,
    head: str = "fc",
    loss: str = "l2",
    batchnorm: bool = True,
    dropout: float = 0.6,
    width: float = 1.0,
    backbone_weights: str | None = None,
    learning_rate: float | None = 1e-4,
    name: str = "deeppose_refiner",
) -> keras.Model:
    """Build (and compile) a refiner: one network shared by all joints of a stage.

    The paper uses stage 1's architecture for every stage; so does this. The refiner sees
    one joint's crop and predicts all ``K`` joints in that crop's normalised frame; the
    cascade uses its prediction for joint ``i`` on the crop of joint ``i`` (predicting all
    joints tells it which joint a crop is for: a wrist crop also shows the elbow).

    Args:
        skeleton: the joints; needs two distinct ``torso`` joints (the box side).
        crop_size: side of the square crops in pixels (the paper: 220).
        backbone, depth, head, loss, batchnorm, dropout, width: as in
            :func:`build_deeppose`; so are ``backbone_weights`` and ``learning_rate``.
        name: the model's name (refiners in one cascade get their own names anyway).

    Returns:
        A functional ``keras.Model``: input ``crop`` ``(N, s, s, 3)`` float32 RGB 0..255,
        output ``displacements`` ``(N, K, 2)`` float32 in the crop's normalised frame.
        Train it on :func:`~kpose.data.refiner_data.refiner_dataset` with the
        :class:`~kpose.losses.CoordinateL2Loss` it is compiled with.
    """
    skeleton = get_skeleton(skeleton)
    check_torso(skeleton)
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) \
            or crop_size < 2:
        raise ValueError(f"crop_size must be an integer number of pixels >= 2, got "
                         f"{crop_size!r}")
    _check_head_arguments(backbone, dropout, width, False, depth, head, loss)
    if loss == "rle":
        raise ValueError("loss 'rle' trains DeepPose's stage 1; a refiner takes 'l1' or "
                         "'l2' (a cascade with an RLE stage 1 trains its refiners with 'l1')")
    crop = keras.Input((int(crop_size), int(crop_size), 3), name="crop")
    if head == "integral":
        check_backbone_stride((int(crop_size),) * 2, "crop_size", "head 'integral'")
        # The crop is centred on the joint's estimate, so where the joint lies in the
        # crop's normalised frame is the displacement.
        displacements, _ = _integral(crop, skeleton.num_joints, "displacements",
                                     width=width, depth=depth, dropout=dropout)
    else:
        hidden = _regressor(crop, backbone=backbone, batchnorm=batchnorm, dropout=dropout,
                            width=width, weights=backbone_weights, depth=depth, head=head)
        # A zero output layer makes a fresh refiner the identity step (no displacement)
        # rather than a random jump, and training starts from the loss of "leave it where
        # it is".
        displacements = _coordinates(hidden, skeleton.num_joints, "displacements",
                                     zero_init=True)
    model = keras.Model(crop, displacements, name=name)
    if learning_rate is not None:
        compile_deeppose(model, learning_rate=learning_rate, loss=loss)
    return model


def compile_deeppose(model: keras.Model, *, learning_rate: float = 1e-4, optimizer=None,
                     visibility_weight: float = 1.0, loss: str = "l2",
                     **compile_kwargs) -> keras.Model:
    """Compile a stage-1 model or refiner: the coordinate loss ``loss`` (:data:`LOSSES`:
    ``"l2"`` :class:`CoordinateL2Loss`, ``"l1"`` :class:`CoordinateL1Loss`, ``"rle"``
    :class:`ResidualLogLikelihoodLoss` on the ``rle`` output alone), plus
    :class:`VisibilityLoss` (weighted by ``visibility_weight``) on ``visibility``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    names = list(model.output_names)
    if (loss == "rle") != (RLE_OUTPUT in names):
        raise ValueError(f"loss 'rle' needs the model's {RLE_OUTPUT!r} output and that output "
                         f"needs loss 'rle': build the model with build_deeppose(loss=...) "
                         f"(outputs {names}, loss {loss!r})")
    if loss == "rle":
        joints = model.output["keypoints"].shape[1]
        flow = model.get_layer(RLE_OUTPUT)
        rle_loss = ResidualLogLikelihoodLoss(joints, hidden=flow.hidden,
                                             couplings=flow.couplings)
        model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate),
                      loss={RLE_OUTPUT: rle_loss}, **compile_kwargs)
        return model
    coordinate_loss = LOSSES[loss]()
    if any(name.startswith(ITERATION_PREFIX) for name in names):  # IEF: every iteration
        losses = {name: LOSSES[loss]() for name in names}
    elif "visibility" in names:
        coordinates = next(n for n in names if n != "visibility")
        losses = {coordinates: coordinate_loss, "visibility": VisibilityLoss()}
        compile_kwargs.setdefault("loss_weights",
                                  {coordinates: 1.0, "visibility": float(visibility_weight)})
    else:
        losses = coordinate_loss
    model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate), loss=losses,
                  **compile_kwargs)
    return model


def build_deeppose_cascade(
    stage1: keras.Model,
    refiners: Sequence[keras.Model],
    *,
    sigma: float,
    skeleton: Skeleton | str,
    input_size: int | tuple[int, int] | None = None,
    all_stages: bool = False,
) -> keras.Model:
    """Stage 1 and its refiners as ONE functional model: image in, refined joints out.

    Stage ``s`` (``refiners[s - 2]``) cuts one box of side ``sigma * diam(y)`` around each
    joint of stage ``s - 1`` with :class:`JointBoxes` and :class:`JointCrops` (builtin
    TFLite ops), runs the refiner on the ``B * K`` crops and moves every joint by its own
    displacement (:class:`RefineJoints`).

    Args:
        stage1: a model from :func:`build_deeppose` (or loaded from ``.keras``).
        refiners: models from :func:`build_deeppose_refiner`, stage 2 first; may be empty.
        sigma: box side in torso diameters; must be the one the refiners were trained with.
        skeleton: the joints (its ``torso`` pair gives ``diam``).
        input_size: size of the cascade's image (default: stage 1's input). A larger
            image gives the refiners more detail; stage 1 sees it resized (bilinear).
        all_stages: output every stage's joints as ``stage_1`` ... ``stage_S`` instead of
            only the last as ``keypoints``.

    Returns:
        A functional ``keras.Model`` named ``deeppose_cascade``: input ``image``
        ``(B, H, W, 3)`` float32 RGB 0..255; output ``keypoints`` ``(B, K, 2)`` float32
        normalised to the image (or the ``stage_N`` dict). When stage 1 has a
        ``visibility`` output it is passed through, and the outputs are a dict.
    """
    skeleton = get_skeleton(skeleton)
    check_torso(skeleton)
    check_sigma(sigma)
    stage1_size = _check_stage1(stage1, skeleton)
    if isinstance(refiners, keras.Model) or not isinstance(refiners, Sequence):
        raise ValueError("refiners must be a sequence (list) of refiner models, stage 2 "
                         f"first, got {type(refiners).__name__}")
    crop_sizes = [_check_refiner(refiner, i, skeleton) for i, refiner in enumerate(refiners)]
    size = stage1_size if input_size is None else input_size_hw(input_size, "input_size",
                                                                 minimum=2)

    try:
        margin = describe(stage1).margin
    except ValueError:
        margin = 1.25
    info = ModelInfo("deeppose", skeleton, CoordinateCodec(), size, margin,
                     {"refiners": len(refiners), "sigma": float(sigma)})
    image = keras.Input((*size, 3), name="image")
    # checks the image, keeps 0..255
    pixels = ImageNormalisation(1.0, 0.0, name="check_image")(attach_card(image, info))
    stage1_pixels = pixels
    if size != stage1_size:
        stage1_pixels = ResizeImages(*stage1_size, name="stage_1_resize")(pixels)
    first = _renamed(stage1, "stage_1_regressor")(stage1_pixels)
    keypoints = first["keypoints"] if isinstance(first, dict) else first
    stages = [keypoints]
    # One wrapper per distinct refiner: a refiner given twice is one shared layer called
    # twice (which also saves and loads), not two copies of the same weights.
    wrappers: dict[int, keras.Model] = {}
    for stage, (refiner, crop_size) in enumerate(zip(refiners, crop_sizes), start=2):
        if id(refiner) not in wrappers:
            wrappers[id(refiner)] = _renamed(refiner, f"stage_{stage}_refiner")
        wrapper = wrappers[id(refiner)]
        keypoints = _refine(pixels, keypoints, wrapper, crop_size=crop_size, image_size=size,
                            torso=skeleton.torso, sigma=float(sigma), prefix=f"stage_{stage}")
        stages.append(keypoints)

    if all_stages:
        outputs = {f"stage_{s}": keras.layers.Identity(name=f"stage_{s}")(k)
                   for s, k in enumerate(stages, start=1)}
    else:
        outputs = keras.layers.Identity(name="keypoints")(stages[-1])
    if isinstance(first, dict) and "visibility" in first:
        visibility = keras.layers.Identity(name="visibility")(first["visibility"])
        outputs = ({**outputs, "visibility": visibility} if all_stages
                   else {"keypoints": outputs, "visibility": visibility})
    return keras.Model(image, outputs, name="deeppose_cascade")


def build_refinement_step(refiner: keras.Model, skeleton: Skeleton | str, *, sigma: float,
                          input_size: int | tuple[int, int]) -> keras.Model:
    """One refinement stage on its own: ``{"image", "keypoints"}`` in, refined joints out.

    For evaluating a refiner on given estimates (e.g. perturbed truth) without stage 1.

    Args:
        refiner: a model from :func:`build_deeppose_refiner`.
        skeleton, sigma: as in :func:`build_deeppose_cascade`.
        input_size: size of the image the crops are cut from.

    Returns:
        A functional model with inputs ``image`` ``(B, H, W, 3)`` float32 0..255 and
        ``keypoints`` ``(B, K, 2)`` normalised, and output ``refined`` ``(B, K, 2)``.
    """
    skeleton = get_skeleton(skeleton)
    check_torso(skeleton)
    check_sigma(sigma)
    crop_size = _check_refiner(refiner, 0, skeleton, argument="refiner")
    size = input_size_hw(input_size, "input_size", minimum=2)
    image = keras.Input((*size, 3), name="image")
    estimate = keras.Input((skeleton.num_joints, 2), name="keypoints")
    pixels = ImageNormalisation(1.0, 0.0, name="check_image")(image)
    refined = _refine(pixels, estimate, refiner, crop_size=crop_size, image_size=size,
                      torso=skeleton.torso, sigma=float(sigma), prefix="refine")
    refined = keras.layers.Identity(name="refined")(refined)
    return keras.Model({"image": image, "keypoints": estimate}, refined,
                       name="deeppose_refinement_step")


def build_deeppose_inference(model: keras.Model) -> keras.Model:
    """Wrap a DeepPose stage 1 or cascade so it outputs keypoints like every kpose model:
    image in, ``(B, K, 3)`` ``(x, y, score)`` in input pixels out.

    The score is the visibility probability when the model has a ``visibility`` output,
    else 1 (a regressor always places every joint).
    """
    image = keras.Input(model.inputs[0].shape[1:], name="image")
    # an RLE stage 1's training-only output stays out of the inference graph
    outputs = without_training_outputs(model)(image)
    visibility = None
    if isinstance(outputs, dict):
        if "keypoints" not in outputs:
            raise ValueError(f"model {model.name!r} has outputs {sorted(outputs)}; build the "
                             "cascade with all_stages=False to get one 'keypoints' output")
        visibility = outputs.get("visibility")
        outputs = outputs["keypoints"]
    if len(outputs.shape) != 3 or outputs.shape[-1] != 2:
        raise ValueError(f"model {model.name!r} does not output normalised joints (B, K, 2); "
                         f"got {tuple(outputs.shape)}")
    height, width = image.shape[1:3]
    layer = NormalisedToPixels((height, width), name="keypoints")
    keypoints = layer([outputs, visibility]) if visibility is not None else layer(outputs)
    return keras.Model(image, keypoints, name="deeppose_keypoints")


def build_deeppose_stage_keypoints(model: keras.Model) -> keras.Model:
    """Every stage of a DeepPose cascade as keypoints: image in, ``stage_1`` ...
    ``stage_S`` out, each ``(B, K, 3)`` ``(x, y, score)`` in input pixels.

    It reads the stages from the cascade's own graph (stage 1's joints feed the first
    refinement's update; stage ``s`` is the output of ``stage_s_update``), so the
    weights are the cascade's and nothing is rebuilt. A stage-1 model gives ``stage_1``
    only; an IEF model its iterations ``iteration_1`` ... ``iteration_{T-1}`` and the
    last as ``stage_1``. The score is as in :func:`build_deeppose_inference`.

    Args:
        model: a model from :func:`build_deeppose_cascade` or :func:`build_deeppose`.
    """
    output = model.output
    visibility = output.get("visibility") if isinstance(output, dict) else None
    last = output["keypoints"] if isinstance(output, dict) else output
    if isinstance(output, dict) and any(k.startswith(ITERATION_PREFIX) for k in output):
        # IEF: iteration_1 .. iteration_{T-1}, then the last iteration as stage_1.
        size = tuple(model.inputs[0].shape[1:3])
        decoded = {name: NormalisedToPixels(size, name=f"{name}_pixels")(joints)
                   for name, joints in output.items() if name.startswith(ITERATION_PREFIX)}
        decoded["stage_1"] = NormalisedToPixels(size, name="stage_1_pixels")(last)
        return keras.Model(model.inputs, decoded, name="deeppose_stage_keypoints")
    names = [layer.name for layer in model.layers]
    updates = sorted((int(name.split("_")[1]), name) for name in names
                     if name.startswith("stage_") and name.endswith("_update"))
    stages = [last]
    if updates:
        first_update = model.get_layer(updates[0][1])
        stages = [first_update.input[0]] + [model.get_layer(name).output for _, name in updates]
    size = tuple(model.inputs[0].shape[1:3])
    decoded = {}
    for stage, joints in enumerate(stages, start=1):
        layer = NormalisedToPixels(size, name=f"stage_{stage}")
        decoded[f"stage_{stage}"] = layer([joints, visibility]) if visibility is not None \
            else layer(joints)
    return keras.Model(model.inputs, decoded, name="deeppose_stage_keypoints")


def _regressor(image, *, backbone: str, batchnorm: bool, dropout: float, width: float,
               weights: str | None, depth: int = 18, head: str = "fc"):
    """Backbone features and the head before the linear output: the paper's two fully
    connected layers ``(B, 4096 w)``, or the pooled features ``(B, C)``."""
    size = tuple(image.shape[1:3])
    if backbone == "alexnet":
        scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(image)
        features = alexnet_features(size, width=width, batchnorm=batchnorm,
                                    weights=weights)(scaled)
    else:
        features = _backbone_features(image, backbone, size, width=width, weights=weights,
                                      depth=depth)
    if head == "pool":
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        return keras.layers.Dropout(dropout, name="pool_dropout")(pooled)
    if backbone != "alexnet":
        channels = max(8, int(round(_HEAD_CHANNELS * width)))
        features = keras.layers.Conv2D(channels, 1, activation="relu",
                                       name="features_reduce")(features)
        if batchnorm:
            features = keras.layers.BatchNormalization(
                synchronized=True, name="features_reduce_bn")(features)
    hidden = keras.layers.Flatten(name="flatten")(features)
    units = max(8, int(round(FC_UNITS * width)))
    for index in (6, 7):  # AlexNet's fc6 and fc7
        hidden = keras.layers.Dense(units, activation="relu", name=f"fc{index}")(hidden)
        hidden = keras.layers.Dropout(dropout, name=f"fc{index}_dropout")(hidden)
    return hidden


def _backbone_features(image, backbone: str, size: tuple[int, int], *, width: float,
                       weights: str | None, depth: int):
    """The non-AlexNet backbones' stride-32 features ``(B, H / 32, W / 32, C)``."""
    if backbone == "resnet":
        scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(image)
        # Named as in SimpleBaselines, so a trained heatmap model's backbone transfers.
        return resnet_features(size, depth=depth, width=width, name="resnet")(scaled)
    if backbone == "resnet50":
        checked = ImageNormalisation(1.0, 0.0, name="normalise")(image)
        scaled = CaffeNormalisation(name="caffe_normalise")(checked)
        return resnet50_features(size, weights=weights)(scaled)
    scaled = ImageNormalisation(1 / 127.5, -1.0, name="normalise")(image)
    alpha = min(MOBILENETV2_ALPHAS, key=lambda a: abs(a - width))
    features = mobilenetv2_features(size, stride=16, alpha=alpha, weights=weights)(scaled)
    return keras.layers.MaxPooling2D(2, padding="same", name="features_pool")(features)


def _integral(image, joints: int, name: str, *, width: float, depth: int, dropout: float):
    """The integral head on a ResNet: ``(B, K, 2)`` float32 coordinates named ``name``
    (normalised to ``image``), and the pooled backbone features ``(B, C)`` (after
    dropout) that RLE's scales and visibility logits read."""
    size = tuple(image.shape[1:3])
    features = _backbone_features(image, "resnet", size, width=width, weights=None,
                                  depth=depth)
    upsampled = upsampling_head(features, step_filters(_INTEGRAL_FILTERS), width=width)
    # Named as the heatmap families' output convolution, so --init copies a heatmap
    # model's maps (joint by joint across skeletons). A fresh one starts at zero: flat
    # maps put every joint at the image's centre (a refiner's: no displacement), where
    # random maps scaled by beta would be peaked at random pixels and pass back almost
    # no gradient (measured: 30 steps on 8 synthetic people took the L1 loss from 6.3 to
    # 4.4 with random maps, from 5.0 to 1.1 with zero ones).
    maps = keras.layers.Conv2D(joints, 1, kernel_initializer="zeros",
                               name="stage_1_maps")(upsampled)
    coordinates = SoftArgmax(name=f"{name}_integral")(maps)
    coordinates = keras.layers.Activation("linear", dtype="float32", name=name)(coordinates)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    return coordinates, keras.layers.Dropout(dropout, name="pool_dropout")(pooled)


def _coordinates(hidden, joints: int, name: str, *, zero_init: bool = False):
    # Linear 2K output as (K, 2); the float32 identity names it and keeps it float32
    # under mixed precision.
    initializer = "zeros" if zero_init else "glorot_uniform"
    flat = keras.layers.Dense(2 * joints, kernel_initializer=initializer,
                              name=f"{name}_dense")(hidden)
    pairs = keras.layers.Reshape((joints, 2), name=f"{name}_pairs")(flat)
    return keras.layers.Activation("linear", dtype="float32", name=name)(pairs)


def _refine(pixels, keypoints, refiner, *, crop_size: int, image_size, torso, sigma: float,
            prefix: str):
    boxes = JointBoxes(image_size, crop_size, torso, sigma, name=f"{prefix}_boxes")(keypoints)
    crops = JointCrops(crop_size, name=f"{prefix}_crops")([pixels, boxes])
    displacements = refiner(crops)
    return RefineJoints(image_size, torso, sigma, name=f"{prefix}_update")(
        [keypoints, displacements])


def without_training_outputs(model: keras.Model, name: str | None = None) -> keras.Model:
    """The same layers (weights shared) without the training-only ``rle`` output, so
    nothing of RLE is computed or exported; ``model`` itself when it has no such output
    and no new ``name`` is asked for."""
    output = model.output
    if isinstance(output, dict) and RLE_OUTPUT in output:
        output = {k: v for k, v in output.items() if k != RLE_OUTPUT}
    elif name is None:
        return model
    return keras.Model(model.inputs, output, name=name or model.name)


def _renamed(model: keras.Model, name: str) -> keras.Model:
    """The same layers under a name unique in the cascade (two refiners may share one),
    without the training-only ``rle`` output."""
    return without_training_outputs(model, name)


def _check_stage1(stage1, skeleton: Skeleton) -> tuple[int, int]:
    if not isinstance(stage1, keras.Model):
        raise ValueError(f"stage1 must be a keras.Model from build_deeppose, got "
                         f"{type(stage1).__name__}")
    shapes = [tuple(t.shape) for t in stage1.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] != 3 \
            or None in shapes[0][1:]:
        raise ValueError(f"stage1 must take one image input (B, H, W, 3) of static size, "
                         f"got inputs {shapes}")
    output = stage1.output
    if isinstance(output, dict):
        if "keypoints" not in output:
            raise ValueError(f"stage1 has outputs {sorted(output)} but no 'keypoints'")
        output = output["keypoints"]
    elif isinstance(output, (list, tuple)):
        raise ValueError("stage1 must have one 'keypoints' output (B, K, 2), got "
                         f"{len(output)} unnamed outputs")
    expected = (None, skeleton.num_joints, 2)
    if tuple(output.shape) != expected:
        raise ValueError(f"stage1 must output keypoints {expected} for skeleton "
                         f"{skeleton.name!r}, got {tuple(output.shape)}")
    return shapes[0][1], shapes[0][2]


def _check_refiner(refiner, index: int, skeleton: Skeleton, argument: str | None = None) -> int:
    where = argument or f"refiners[{index}]"
    if not isinstance(refiner, keras.Model):
        raise ValueError(f"{where} must be a keras.Model from build_deeppose_refiner, got "
                         f"{type(refiner).__name__}")
    shapes = [tuple(t.shape) for t in refiner.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] != 3 \
            or shapes[0][1] is None or shapes[0][1] != shapes[0][2]:
        raise ValueError(f"{where} must take square crops (N, s, s, 3) of a static size s, "
                         f"got input shape {shapes[0] if len(shapes) == 1 else shapes}")
    if shapes[0][1] < 2:
        raise ValueError(f"{where} input size {shapes[0][1]} is too small for a crop")
    outputs = refiner.outputs
    expected = (None, skeleton.num_joints, 2)
    if len(outputs) != 1 or tuple(outputs[0].shape) != expected:
        raise ValueError(f"{where} must output displacements {expected} for skeleton "
                         f"{skeleton.name!r}, got {[tuple(o.shape) for o in outputs]}")
    return int(shapes[0][1])


def _check_feedback(iterations, max_step, sigma, *, backbone: str, head: str,
                    with_visibility: bool) -> bool:
    """Check IEF's arguments; ``True`` when the model iterates (``iterations > 1``)."""
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
            or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if iterations == 1:
        return False
    if backbone != "resnet" or head != "pool":
        raise ValueError(f"iterations > 1 (Iterative Error Feedback) runs on backbone "
                         f"'resnet' with head 'pool'; got backbone {backbone!r}, head "
                         f"{head!r} (--backbone resnet --option head=pool)")
    if with_visibility:
        raise ValueError("iterations > 1 (Iterative Error Feedback) has no visibility output")
    if isinstance(max_step, bool) or not isinstance(max_step, numbers.Real) \
            or not 0 < max_step <= 1:
        raise ValueError(f"max_step must be in (0, 1] (a fraction of the input side), got "
                         f"{max_step!r}")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, numbers.Real)
                              or not math.isfinite(sigma) or sigma <= 0):
        raise ValueError(f"feedback_sigma must be a positive number of input pixels, got "
                         f"{sigma!r}")
    return True


def _check_head_arguments(backbone: str, dropout: float, width: float, with_visibility,
                          depth: int = 18, head: str = "fc", loss: str = "l2") -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    if backbone == "resnet" and (isinstance(depth, bool) or depth not in RESNET_BLOCKS):
        raise ValueError(f"depth must be one of {sorted(RESNET_BLOCKS)} for the resnet "
                         f"backbone, got {depth!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if head == "integral" and backbone != "resnet":
        raise ValueError(f"head 'integral' reads a ResNet's features (backbone 'resnet'), "
                         f"got backbone {backbone!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    if not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    if not isinstance(width, numbers.Real) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a positive multiplier, got {width!r}")
    if not isinstance(with_visibility, bool):
        raise ValueError(f"with_visibility must be True or False, got {with_visibility!r}")
