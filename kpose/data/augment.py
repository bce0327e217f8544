"""Training augmentation: random geometry (one matrix for image and joints) and colour.

Geometry is drawn per sample with stateless random ops from a per-sample seed, so a
fixed pipeline seed reproduces every epoch exactly. Colour jitter changes pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

__all__ = ["Augmentation", "NO_AUGMENTATION", "sample_augmentation", "jitter_colour"]


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
    """

    flip: float = 0.5
    rotation: float = 40.0
    scale: tuple[float, float] = (0.7, 1.3)
    shift: float = 0.05
    brightness: float = 32.0
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"Augmentation.flip is a probability in [0, 1], got {self.flip}")
        low, high = self.scale
        if not 0 < low <= high:
            raise ValueError(f"Augmentation.scale must be (low, high) with 0 < low <= high, "
                             f"got {self.scale}")
        for name in ("rotation", "shift", "brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"Augmentation.{name} must be >= 0, got {getattr(self, name)}")


NO_AUGMENTATION = Augmentation(flip=0.0, rotation=0.0, scale=(1.0, 1.0), shift=0.0,
                               brightness=0.0, contrast=0.0, saturation=0.0)


def sample_augmentation(config: Augmentation, seed: tf.Tensor) -> dict[str, tf.Tensor]:
    """Draw one sample's augmentation parameters.

    Args:
        config: the ranges.
        seed: ``(2,)`` int tensor, the sample's stateless seed.

    Returns:
        Dict of scalar tensors: ``flip`` (bool), ``rotation_deg``, ``scale``, ``shift``
        (``(2,)``), ``brightness``, ``contrast``, ``saturation`` (float32).
    """
    u = tf.random.stateless_uniform([8], seed=seed, dtype=tf.float32)
    low, high = config.scale
    return {
        "flip": u[0] < config.flip,
        "rotation_deg": (2.0 * u[1] - 1.0) * config.rotation,
        "scale": low + (high - low) * u[2],
        "shift": (2.0 * u[3:5] - 1.0) * config.shift,
        "brightness": (2.0 * u[5] - 1.0) * config.brightness,
        "contrast": 1.0 + (2.0 * u[6] - 1.0) * config.contrast,
        "saturation": 1.0 + (2.0 * u[7] - 1.0) * config.saturation,
    }


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
