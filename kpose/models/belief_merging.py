"""Test-time augmentation for belief-map models: flip averaging and multi-scale merging.

Both run a trained model several times on transformed copies of the input, bring each
set of belief maps back into the frame of the original input, and average them (CPM,
section 4.2: "we merge the belief maps from different scales").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from kpose.data.transforms import warp_image
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["predict_belief_maps", "flip_belief_maps", "belief_maps_with_flip"]


def predict_belief_maps(model: Callable, images, skeleton: Skeleton | str, *,
                        flip: bool = False, scales: Sequence[float] = (1.0,)) -> tf.Tensor:
    """The model's last-stage belief maps, averaged over flips and scales.

    Args:
        model: a belief-map model (or any callable) mapping images ``(B, H, W, 3)`` to
            belief maps ``(B, h, w, C)`` (``C = K + 1`` with a background map, or ``K``),
            a list of them, or a dict of ``stage_N`` maps; the last stage is used.
        images: ``(B, H, W, 3)`` float32 RGB in 0..255.
        skeleton: the model's skeleton (its flip pairs swap the mirrored maps).
        flip: also run on the mirrored images and average.
        scales: zoom factors about the input centre (``> 1`` enlarges the person); the
            maps of each are resampled back to scale 1 and averaged.

    Returns:
        ``(B, h, w, C)`` float32; a background channel is recomputed as one minus the
        largest joint map.
    """
    skeleton = get_skeleton(skeleton)
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3) RGB, got shape {tuple(images.shape)}")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales must be positive zoom factors, got {scales!r}")
    total = None
    for scale in scales:
        zoomed = _zoom(images, scale)
        maps = _last_stage(belief_maps_with_flip(model, zoomed, skeleton) if flip
                           else model(zoomed, training=False))
        maps = _zoom(maps, 1.0 / scale)
        total = maps if total is None else total + maps
    if total.shape[-1] == skeleton.num_joints:
        return total / len(scales)
    joints = total[..., :-1] / len(scales)
    background = 1.0 - tf.reduce_max(joints, axis=-1, keepdims=True)
    return tf.concat([joints, background], axis=-1)


def belief_maps_with_flip(model: Callable, images, skeleton: Skeleton | str
                          ) -> dict[str, tf.Tensor]:
    """Every stage's maps averaged with those of the mirrored images (flipped back).

    ``model`` maps ``(B, H, W, 3)`` to a dict of ``stage_N`` maps (or one map tensor,
    returned as ``stage_1``); returns ``{stage_N: (B, h, w, C)}`` float32.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    outputs, mirrored = model(images, training=False), model(images[:, :, ::-1],
                                                             training=False)
    if not isinstance(outputs, dict):
        outputs, mirrored = {"stage_1": outputs}, {"stage_1": mirrored}
    return {name: 0.5 * (tf.convert_to_tensor(maps, tf.float32)
                         + flip_belief_maps(mirrored[name], skeleton))
            for name, maps in outputs.items()}


def flip_belief_maps(maps, skeleton: Skeleton | str) -> tf.Tensor:
    """Mirror belief maps left to right and swap left/right joint channels.

    Maps predicted on a mirrored image become maps of the original image. Input and
    output are ``(B, h, w, C)`` with ``C = K + 1`` (the background channel keeps its
    place) or ``C = K``.
    """
    skeleton = get_skeleton(skeleton)
    maps = tf.convert_to_tensor(maps, tf.float32)
    joints = skeleton.num_joints
    if maps.shape[-1] not in (joints, joints + 1):
        raise ValueError(f"belief maps have {maps.shape[-1]} channels, expected {joints} "
                         f"or {joints + 1} (with background) for skeleton {skeleton.name!r}")
    order = list(skeleton.flip_permutation) + ([joints] if maps.shape[-1] > joints else [])
    return tf.gather(maps[:, :, ::-1], order, axis=-1)


def _zoom(tensor: tf.Tensor, scale: float) -> tf.Tensor:
    """Zoom ``(B, H, W, C)`` by ``scale`` about its centre (bilinear, zeros outside)."""
    if scale == 1.0:
        return tensor
    height, width = tensor.shape[1], tensor.shape[2]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    zoom = [[scale, 0.0, cx * (1 - scale)], [0.0, scale, cy * (1 - scale)], [0.0, 0.0, 1.0]]
    return warp_image(tensor, tf.constant(zoom, tf.float32), (height, width))


def _last_stage(outputs) -> tf.Tensor:
    if isinstance(outputs, dict):
        stages = sorted((k for k in outputs if k.startswith("stage_")),
                        key=lambda k: int(k.split("_")[1]))
        if not stages:
            raise ValueError(f"model outputs {sorted(outputs)} hold no stage_N belief maps")
        return tf.convert_to_tensor(outputs[stages[-1]], tf.float32)
    if isinstance(outputs, (list, tuple)):
        return tf.convert_to_tensor(outputs[-1], tf.float32)
    return tf.convert_to_tensor(np.asarray(outputs) if not tf.is_tensor(outputs) else outputs,
                                tf.float32)
