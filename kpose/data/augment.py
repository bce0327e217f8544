"""Training augmentation: random geometry (one matrix for image and joints) and colour.

Geometry is drawn per sample with stateless random ops from a per-sample seed, so a
fixed pipeline seed reproduces every epoch exactly. Colour jitter changes pixels only.
Half-body crops (HRNet's) replace a sample's person box by the box of its upper- or
lower-body joints before the geometry is applied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kpose.skeletons import Skeleton

__all__ = ["Augmentation", "NO_AUGMENTATION", "augmentation_from", "sample_augmentation",
           "jitter_colour", "lower_body_joints", "half_body_box"]

# Joints whose name holds one of these words belong to the lower body (hips included, as
# in HRNet's split of COCO); every other joint belongs to the upper body.
_LOWER_BODY_WORDS = ("hip", "knee", "ankle", "heel", "toe", "foot")
# A half-body box is the chosen joints' extent times this, before the crop margin (1.25)
# is applied: the crop spans 1.5 times the joints, as in HRNet.
_HALF_BODY_ENLARGE = 1.2


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random training augmentation (CPM's defaults, section 4.2).

    Attributes:
        flip: probability of a horizontal mirror (left/right joints are swapped too).
        rotation: maximum absolute rotation in degrees, drawn uniformly.
        scale: ``(low, high)`` zoom range, drawn uniformly (``> 1`` enlarges the person).
        shift: maximum shift of the crop centre, as a fraction of the crop size.
        brightness: maximum absolute brightness change, in pixel units of 0..255.
        contrast: maximum relative contrast change (0.2: factor in [0.8, 1.2]).
        saturation: maximum relative saturation change.
        half_body: probability of cropping around the upper or the lower body alone (each
            half with probability 1/2) instead of the whole person, for persons with more
            than half their joints labelled and at least 2 in the chosen half (else the
            other half, else the whole box); 0 (the default) never does.
    """

    flip: float = 0.5
    rotation: float = 40.0
    scale: tuple[float, float] = (0.7, 1.3)
    shift: float = 0.05
    brightness: float = 32.0
    contrast: float = 0.2
    saturation: float = 0.2
    half_body: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip", "half_body"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Augmentation.{name} is a probability in [0, 1], got {value}")
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(f"Augmentation.scale must be (low, high) with 0 < low <= high, "
                             f"got {self.scale}")
        for name in ("rotation", "shift", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augmentation.{name} must be >= 0, got {getattr(self, name)}")

    def to_options(self) -> dict:
        """The ranges as plain JSON values (what a run's ``config.json`` records)."""
        options = dataclasses.asdict(self)
        options["scale"] = list(self.scale)
        return options


NO_AUGMENTATION = Augmentation(flip=0.0, rotation=0.0, scale=(1.0, 1.0), shift=0.0,
                               brightness=0.0, contrast=0.0, saturation=0.0)


def augmentation_from(value: Augmentation | dict | None) -> Augmentation:
    """The :class:`Augmentation` a training option describes.

    Args:
        value: ``None`` (the defaults), an :class:`Augmentation`, or a dict of some of its
            fields (``{"rotation": 30, "scale": [0.75, 1.25], "half_body": 0.3}``); the
            fields not given keep their defaults.

    Raises:
        ValueError: an unknown field (naming the known ones) or a value out of range.
    """
    if value is None:
        return Augmentation()
    if isinstance(value, Augmentation):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"augmentation must be a dict of Augmentation fields, got "
                         f"{type(value).__name__}")
    known = [f.name for f in dataclasses.fields(Augmentation)]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"augmentation has no field {', '.join(map(str, unknown))}; its "
                         f"fields are {', '.join(known)}")
    number = (int, float, np.integer, np.floating)
    options = dict(value)
    for name, given in options.items():
        if name == "scale":
            if (not isinstance(given, (list, tuple)) or len(given) != 2
                    or not all(isinstance(v, number) and not isinstance(v, bool)
                               for v in given)):
                raise ValueError(f"augmentation scale must be two numbers (low, high), got "
                                 f"{given!r}")
            options[name] = (float(given[0]), float(given[1]))
        elif isinstance(given, bool) or not isinstance(given, number) \
                or not np.isfinite(given):
            raise ValueError(f"augmentation {name} must be a finite number, got {given!r}")
        else:
            options[name] = float(given)
    return Augmentation(**options)


def lower_body_joints(skeleton: Skeleton) -> np.ndarray:
    """``(K,)`` bool: the skeleton's lower-body joints (hips, knees, ankles, feet), by
    name; the rest are the upper body."""
    return np.array([any(word in name for word in _LOWER_BODY_WORDS)
                     for name in skeleton.joint_names], bool)


def sample_augmentation(config: Augmentation, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """Draw one sample's augmentation parameters.

    Args:
        config: the ranges.
        seed: ``(2,)`` int tensor, the sample's stateless seed.

    Returns:
        Dict of scalar tensors: ``flip`` (bool), ``rotation_deg``, ``scale``, ``shift``
        (``(2,)``), ``brightness``, ``contrast``, ``saturation`` (float32), ``half_body``
        and ``upper_body`` (bool: crop around one half; which half).
    """
    u = tf.random.stateless_uniform([8], seed=seed, dtype=tf.float32)
    # The half-body draws come from a seed of their own, so that the other draws (and every
    # run without half-body crops) stay what they were.
    half = tf.random.stateless_uniform(
        [2], seed=tf.random.experimental.stateless_fold_in(seed, 1), dtype=tf.float32)
    low, high = config.scale
    return {
        "half_body": half[0] < config.half_body,
        "upper_body": half[1] < 0.5,
        "flip": u[0] < config.flip,
        "rotation_deg": (2.0 * u[1] - 1.0) * config.rotation,
        "scale": low + (high - low) * u[2],
        "shift": (2.0 * u[3:5] - 1.0) * config.shift,
        "brightness": (2.0 * u[5] - 1.0) * config.brightness,
        "contrast": 1.0 + (2.0 * u[6] - 1.0) * config.contrast,
        "saturation": 1.0 + (2.0 * u[7] - 1.0) * config.saturation,
    }


def half_body_box(box: tf.Tensor, keypoints: tf.Tensor, lower_body: np.ndarray,
                  half_body: tf.Tensor, upper_body: tf.Tensor) -> tf.Tensor:
    """The box to crop: ``box``, or the box around one half of the body's labelled joints.

    Args:
        box: ``(4,)`` float32 person box ``(x, y, w, h)`` in image pixels.
        keypoints: ``(K, 3)`` float32 ``(x, y, v)`` in image pixels, ``v > 0`` labelled.
        lower_body: ``(K,)`` bool, :func:`lower_body_joints`.
        half_body: scalar bool, crop around one half (from :func:`sample_augmentation`).
        upper_body: scalar bool, the half to prefer.

    Returns:
        ``(4,)`` float32 ``(x, y, w, h)``: ``box`` unless ``half_body`` and the person has
        more than half its joints labelled and at least 2 in one half (the preferred half
        first); then the chosen joints' extent, enlarged 1.2 times about its centre (at
        least 1 px a side).
    """
    labelled = keypoints[:, 2] > 0
    lower = tf.constant(lower_body, tf.bool)
    upper_joints, lower_joints = labelled & ~lower, labelled & lower

    def count(mask):
        return tf.reduce_sum(tf.cast(mask, tf.int32))

    preferred = tf.where(upper_body, upper_joints, lower_joints)
    other = tf.where(upper_body, lower_joints, upper_joints)
    chosen = tf.where(count(preferred) >= 2, preferred, other)
    use = half_body & (2 * count(labelled) > len(lower_body)) & (count(chosen) >= 2)
    # Joints not chosen count as the first chosen one (as joint 0 when none is; then the
    # person box is used anyway).
    anchor = keypoints[tf.argmax(tf.cast(chosen, tf.int32)), :2]
    xy = tf.where(chosen[:, tf.newaxis], keypoints[:, :2], anchor)
    low, high = tf.reduce_min(xy, axis=0), tf.reduce_max(xy, axis=0)
    centre = (low + high) / 2.0
    side = tf.maximum((high - low) * _HALF_BODY_ENLARGE, 1.0)
    half = tf.concat([centre - side / 2.0, side], axis=0)
    return tf.where(use, half, tf.cast(box, tf.float32))


def jitter_colour(images: tf.Tensor, brightness: tf.Tensor, contrast: tf.Tensor,
                  saturation: tf.Tensor) -> tf.Tensor:
    """Per-sample brightness, contrast and saturation change, clipped to 0..255.

    Args:
        images: ``(B, H, W, 3)`` float32 RGB in 0..255.
        brightness, contrast, saturation: ``(B,)`` float32, from :func:`sample_augmentation`.

    Returns:
        ``(B, H, W, 3)`` float32 in 0..255.
    """
    expand = lambda t: t[:, tf.newaxis, tf.newaxis, tf.newaxis]  # noqa: E731
    grey = tf.reduce_mean(images, axis=-1, keepdims=True)
    images = grey + (images - grey) * expand(saturation)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = mean + (images - mean) * expand(contrast) + expand(brightness)
    return tf.clip_by_value(images, 0.0, 255.0)
