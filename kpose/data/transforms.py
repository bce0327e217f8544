"""Affine geometry of the top-down crop: box -> model input, augmentation, and back.

Frames. *Image* coordinates are pixels of the original image; *input* coordinates are
pixels of the model input (``input_size``); both are 0-based with pixel centres at integer
coordinates, so a pixel ``i`` covers ``[i - 0.5, i + 0.5]``. All matrices here are 3x3
homogeneous maps of column vectors ``(x, y, 1)`` from image to input coordinates; the
pipeline keeps that matrix with every sample so predictions map back to the image
exactly with :func:`keypoints_to_image`.

*Normalised* coordinates (DeepPose targets) are ``(u - (W - 1) / 2) / W`` for an input
x coordinate ``u`` of an input ``W`` pixels wide (same for y with ``H``): the input's
outer pixel edges are at -0.5 and 0.5, its centre at 0.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from kpose.skeletons import Skeleton

__all__ = ["check_torso", "check_sigma", 
    "crop_box",
    "crop_matrix",
    "augmentation_matrix",
    "apply_matrix",
    "warp_image",
    "keypoints_to_image",
    "keypoints_to_input",
    "normalise_keypoints",
    "denormalise_keypoints",
    "joint_boxes",
    "input_size_hw",
]


def crop_box(box, input_size: tuple[int, int], margin: float = 1.25):
    """Enlarge a person box by ``margin`` and pad it to the input's aspect ratio.

    Args:
        box: ``(..., 4)`` ``(x, y, w, h)`` in image pixels (NumPy or TF).
        input_size: ``(height, width)`` of the model input.
        margin: factor applied to both sides before the aspect is fixed (1.25: the
            person fills 80% of the crop along its longer side).

    Returns:
        ``(centre_x, centre_y, crop_w, crop_h)`` stacked on the last axis, with
        ``crop_w / crop_h == width / height`` of the input.
    """
    ops = tf if tf.is_tensor(box) else np
    box = ops.cast(box, tf.float32) if ops is tf else np.asarray(box, np.float64)
    x, y, w, h = (box[..., i] for i in range(4))
    aspect = input_size[1] / input_size[0]
    w, h = w * margin, h * margin
    crop_w = ops.maximum(w, h * aspect)
    crop_h = crop_w / aspect
    return ops.stack([x + box[..., 2] / 2, y + box[..., 3] / 2, crop_w, crop_h], axis=-1)


def crop_matrix(box, input_size: tuple[int, int], margin: float = 1.25) -> np.ndarray:
    """Image -> input affine map of the plain (unaugmented) top-down crop, NumPy.

    Args:
        box: ``(4,)`` person box ``(x, y, w, h)`` in image pixels.
        input_size: ``(height, width)`` of the model input.
        margin: box enlargement, see :func:`crop_box`.

    Returns:
        ``(3, 3)`` float64 matrix mapping image pixel coordinates to input pixels.
    """
    return augmentation_matrix(np.asarray(box, np.float64), input_size, margin=margin)


def augmentation_matrix(box, input_size: tuple[int, int], *, margin: float = 1.25,
                        rotation_deg=0.0, scale=1.0, shift=(0.0, 0.0), flip=False):
    """Image -> input affine map of a crop with rotation, scale, shift and mirror.

    The person box centre (moved by ``shift``) lands on the input centre; the image
    turns by ``rotation_deg`` about it (positive turns the content counter-clockwise
    as seen on screen); ``scale > 1`` makes the person look larger; ``flip`` mirrors
    the input left to right. Works on NumPy values or scalar TF tensors.

    Args:
        box: ``(4,)`` ``(x, y, w, h)`` in image pixels.
        input_size: ``(height, width)`` of the model input.
        margin: box enlargement, see :func:`crop_box`.
        rotation_deg: rotation in degrees.
        scale: zoom factor.
        shift: ``(dx, dy)`` moves the crop centre by this fraction of the crop size.
        flip: mirror the crop horizontally (bool or bool tensor).

    Returns:
        ``(3, 3)`` matrix (float64 NumPy, or float32 tensor when any input is a tensor).
    """
    is_tf = any(tf.is_tensor(v) for v in (box, rotation_deg, scale, shift, flip))
    ops = tf if is_tf else np
    if is_tf:
        box = tf.cast(box, tf.float32)
        rotation_deg, scale = tf.cast(rotation_deg, tf.float32), tf.cast(scale, tf.float32)
        shift = tf.cast(shift, tf.float32)
        flip = tf.cast(flip, tf.float32)
    else:
        flip = float(flip)
    height, width = input_size
    cx, cy, crop_w, _ = (crop_box(box, input_size, margin)[i] for i in range(4))
    cx = cx + shift[0] * crop_w
    cy = cy + shift[1] * crop_w * height / width
    k = scale * width / crop_w  # isotropic image px -> input px
    theta = rotation_deg * (math.pi / 180.0)
    # y points down, so a counter-clockwise turn on screen is R(-theta) in these axes.
    cos, sin = ops.cos(theta) * k, ops.sin(theta) * k
    mirror = 1.0 - 2.0 * flip  # -1 when flipped
    a00, a01 = mirror * cos, mirror * sin
    a10, a11 = -sin, cos
    u0, v0 = (width - 1) / 2.0, (height - 1) / 2.0
    t0 = u0 - a00 * cx - a01 * cy
    t1 = v0 - a10 * cx - a11 * cy
    zero, one = ops.zeros_like(a00), ops.ones_like(a00)
    return ops.stack([ops.stack([a00, a01, t0]), ops.stack([a10, a11, t1]),
                      ops.stack([zero, zero, one])])


def apply_matrix(matrix, points):
    """Map ``(..., 2)`` points (or ``(..., 3)`` keypoints: only x, y change) by a 3x3 affine.

    NumPy in, NumPy out; tensors in, tensors out.
    """
    ops = tf if tf.is_tensor(matrix) or tf.is_tensor(points) else np
    xy = points[..., :2]
    linear = matrix[..., :2, :2]
    offset = matrix[..., :2, 2]
    if ops is tf:
        mapped = tf.linalg.matvec(tf.cast(linear, xy.dtype), xy) + tf.cast(offset, xy.dtype)
        return tf.concat([mapped, points[..., 2:]], axis=-1)
    mapped = np.einsum("...ij,...j->...i", linear, xy) + offset
    return np.concatenate([mapped, points[..., 2:]], axis=-1).astype(np.asarray(points).dtype)


def warp_image(image: tf.Tensor, matrix: tf.Tensor, input_size: tuple[int, int]) -> tf.Tensor:
    """Resample ``image`` into the input frame with bilinear interpolation.

    Args:
        image: ``(H_img, W_img, C)`` image tensor (uint8 or float), or a batch
            ``(B, H_img, W_img, C)`` that all take the same ``matrix``.
        matrix: ``(3, 3)`` image -> input affine.
        input_size: ``(height, width)`` of the output.

    Returns:
        ``(height, width, C)`` (or ``(B, height, width, C)``) float32; pixels that fall
        outside the image are 0.
    """
    batched = len(image.shape) == 4
    images = tf.cast(image, tf.float32)
    images = images if batched else images[tf.newaxis]
    inverse = tf.linalg.inv(tf.cast(matrix, tf.float32))
    # The op wants the output -> input map as 8 numbers (a0 a1 a2 b0 b1 b2 c0 c1).
    flat = tf.concat([inverse[0], inverse[1], inverse[2, :2]], axis=0)[tf.newaxis]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.tile(flat, [tf.shape(images)[0], 1]),
        output_shape=tf.constant(input_size, tf.int32),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return warped if batched else warped[0]


def keypoints_to_image(keypoints_input, image_to_input):
    """Map keypoints predicted in the input frame back to image pixels.

    Args:
        keypoints_input: ``(..., K, 2|3)`` in input pixels (a third column, e.g. a score,
            is kept as is).
        image_to_input: ``(..., 3, 3)`` or ``(..., 2, 3)`` matrix the pipeline recorded.

    Returns:
        Same shape, in image pixels.
    """
    matrix = _as_3x3(np.asarray(image_to_input, np.float64))
    inverse = np.linalg.inv(matrix)
    return apply_matrix(inverse[..., np.newaxis, :, :], np.asarray(keypoints_input))


def keypoints_to_input(keypoints_image, image_to_input):
    """Map ``(..., K, 2|3)`` image-pixel keypoints into the input frame (NumPy)."""
    matrix = _as_3x3(np.asarray(image_to_input, np.float64))
    return apply_matrix(matrix[..., np.newaxis, :, :], np.asarray(keypoints_image))


def normalise_keypoints(points, input_size: tuple[int, int]):
    """Input pixels -> normalised crop coordinates in [-0.5, 0.5] (``(..., 2)``)."""
    height, width = input_size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0], np.float32)
    size = np.array([width, height], np.float32)
    return (points[..., :2] - centre) / size


def denormalise_keypoints(points, input_size: tuple[int, int]):
    """Normalised crop coordinates -> input pixels (``(..., 2)``); inverse of the above."""
    height, width = input_size
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0], np.float32)
    size = np.array([width, height], np.float32)
    return points[..., :2] * size + centre


def joint_boxes(centres, sides, image_size: tuple[int, int], crop_size: int):
    """Square refinement boxes in ``tf.image.crop_and_resize``'s box convention.

    ``crop_and_resize`` places the first and last crop pixel *centres* on the box edges it
    is given (``y1 * (H - 1)`` and ``y2 * (H - 1)`` in pixels). To sample a box of side
    ``L`` px centred on ``c`` as ``crop_size`` pixels that tile it (each covers
    ``L / crop_size`` px), the outer sample centres are at ``c -+ L (n - 1) / (2 n)``;
    then crop pixel ``j`` sits at ``c + L (j - (n - 1) / 2) / n``, i.e. the crop's
    normalised frame is ``(p - c) / L``.

    Args:
        centres: ``(..., 2)`` box centres ``(x, y)`` in pixels of an image of ``image_size``.
        sides: ``(...)`` box sides in pixels (broadcast against ``centres[..., 0]``).
        image_size: ``(height, width)`` of the image the boxes are cut from, both >= 2.
        crop_size: pixels per side of the crop.

    Returns:
        ``(..., 4)`` float32 tensor ``(y1, x1, y2, x2)`` for ``tf.image.crop_and_resize``
        and :class:`~kpose.models.layers.JointCrops`.
    """
    height, width = image_size
    centres = tf.cast(centres, tf.float32)
    reach = tf.cast(sides, tf.float32) * ((crop_size - 1) / (2.0 * crop_size))
    x, y = centres[..., 0], centres[..., 1]
    return tf.stack([(y - reach) / (height - 1), (x - reach) / (width - 1),
                     (y + reach) / (height - 1), (x + reach) / (width - 1)], axis=-1)


def input_size_hw(input_size, argument: str = "input_size", *, minimum: int = 1
                  ) -> tuple[int, int]:
    """``size`` or ``(height, width)`` in pixels -> ``(height, width)`` ints.

    Raises ``ValueError`` naming ``argument`` when the value is not one or two integers
    of at least ``minimum``.
    """
    def is_int(value):
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if is_int(input_size):
        size = (int(input_size), int(input_size))
    elif isinstance(input_size, (tuple, list)) and len(input_size) == 2 and all(
            is_int(s) for s in input_size):
        size = (int(input_size[0]), int(input_size[1]))
    else:
        raise ValueError(f"{argument} must be an int or (height, width) in pixels, got "
                         f"{input_size!r}")
    if min(size) < minimum:
        raise ValueError(f"{argument} must be at least {minimum} px, got {input_size!r}")
    return size


def _as_3x3(matrix: np.ndarray) -> np.ndarray:
    if matrix.shape[-2:] == (3, 3):
        return matrix
    if matrix.shape[-2:] != (2, 3):
        raise ValueError(f"image_to_input must be (..., 3, 3) or (..., 2, 3), got {matrix.shape}")
    bottom = np.broadcast_to(np.array([0.0, 0.0, 1.0]), matrix.shape[:-2] + (1, 3))
    return np.concatenate([matrix, bottom], axis=-2)


def check_torso(skeleton: Skeleton) -> None:
    """Raise ``ValueError`` unless ``skeleton`` has two distinct torso joints (diam(y))."""
    torso = tuple(getattr(skeleton, "torso", ()) or ())
    if len(torso) != 2 or len(set(torso)) != 2:
        raise ValueError(
            f"skeleton {getattr(skeleton, 'name', skeleton)!r} has no torso joint pair "
            f"(torso={torso!r}); DeepPose's refinement box side sigma * diam(y) needs two "
            "distinct torso joints, e.g. left shoulder and right hip")


def check_sigma(sigma) -> None:
    """Raise ``ValueError`` unless ``sigma`` (box side in torso diameters) is positive."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)) \
            or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of torso diameters (the paper: 2 "
                         f"for LSP, 1 for FLIC), got {sigma!r}")
