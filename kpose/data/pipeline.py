"""The tf.data input pipeline: records -> (images, targets) batches for ``model.fit``.

Per sample: read and decode the image, build the image -> input affine matrix of the
top-down crop (with random flip, rotation, scale and shift when training), warp the
image and move the joints with that one matrix, swap left/right joints on a flip.
Per batch: colour jitter and the targets (belief maps or normalised coordinates).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from kpose.data.augment import (NO_AUGMENTATION, Augmentation, half_body_box, jitter_colour,
                                lower_body_joints, sample_augmentation)
from kpose.data.records import PoseRecord
from kpose.data.targets import belief_maps, coordinate_targets
from kpose.data.transforms import (apply_matrix, augmentation_matrix, input_size_hw,
                                   warp_image)
from kpose.data.verify import drop_unreadable, find_unreadable_images, unreadable_message
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["make_dataset", "TARGETS", "naming_unreadable_images"]

TARGETS = ("belief_maps", "coords", "none")


def make_dataset(
    records: Sequence[PoseRecord],
    skeleton: Skeleton | str,
    *,
    input_size: int | tuple[int, int] = 256,
    target: str = "belief_maps",
    training: bool = False,
    batch_size: int = 16,
    seed: int = 0,
    sigma: float = 1.0,
    stride: int = 8,
    num_stages: int | None = None,
    margin: float = 1.25,
    augmentation: Augmentation | None = None,
    shuffle: bool | None = None,
    drop_remainder: bool | None = None,
    cache: bool = False,
    repeat: bool = False,
    start: int = 0,
    shard: tuple[int, int] = (0, 1),
    with_meta: bool = False,
    verify_images: bool = False,
    skip_corrupt: bool = False,
    codec=None,
) -> tf.data.Dataset:
    """Build a batched ``tf.data.Dataset`` of ``(images, targets)`` ready for ``model.fit``.

    Args:
        records: persons to serve; all must follow ``skeleton``.
        skeleton: the records' :class:`~kpose.skeletons.Skeleton` (or its name).
        input_size: model input ``size`` or ``(height, width)`` in pixels.
        target: ``"belief_maps"`` (CPM), ``"coords"`` (DeepPose) or ``"none"``.
        training: augment, shuffle and drop the last partial batch.
        batch_size: samples per batch (the global batch under a distribution strategy).
        seed: seeds shuffling and augmentation; the same seed gives the same batches.
        sigma: belief-map Gaussian standard deviation, in belief-map pixels.
        stride: input pixels per belief-map pixel.
        num_stages: with ``target="belief_maps"``, repeat the maps for a model with this
            many outputs named ``stage_1`` ... ``stage_T`` (a dict of targets).
        margin: the person box is enlarged by this factor before cropping.
        augmentation: random ranges; defaults to :class:`Augmentation()` when training and
            none otherwise.
        shuffle: defaults to ``training``.
        drop_remainder: defaults to ``training`` (static batch shapes for TPUs).
        cache: keep decoded images in memory after the first epoch (small data sets).
        repeat: serve an endless stream of samples instead of one pass (use
            ``steps_per_epoch``). Sample ``i`` of the stream is a pure function of
            ``(seed, i)``: epoch ``i // N`` visits the records in a stateless permutation
            seeded by ``(seed, epoch)``, and its augmentation is seeded by ``(seed, i)``.
            So the stream is the same under any ``tf.distribute`` strategy, and a
            resumed run continues it exactly with ``start``.
        start: with ``repeat``, the position in the stream of the first sample served
            (``epoch * steps_per_epoch * batch_size`` to resume after ``epoch`` epochs).
        shard: ``(index, count)``: with ``repeat``, serve only stream positions
            ``start + index + count * j``. ``count`` input pipelines (one per worker),
            each batching ``global_batch / count``, together serve batch ``k`` of the
            unsharded stream at step ``k``.
        with_meta: yield a third element, a dict with ``index`` ``(B,)`` (position in
            ``records``), ``image_to_input`` ``(B, 3, 3)`` and ``keypoints`` ``(B, K, 3)`` in
            input pixels, for evaluation loops (not for ``model.fit``, which would take it
            for sample weights).
        verify_images: decode every image once with Pillow before building the data set
            and report unreadable files by path (slow for large data sets).
        skip_corrupt: with ``verify_images``, drop unreadable images with a warning instead
            of raising.
        codec: the model's target codec (:mod:`kpose.codecs`, e.g.
            ``describe(model).codec``): its ``encode(keypoints, input_size)`` makes the
            targets, and ``sigma`` and ``stride`` are not used. Its kind must match
            ``target``.

    Returns:
        A dataset of ``(images, targets)`` (or ``(images, targets, meta)``):

        - ``images``: ``(B, H, W, 3)`` float32 RGB in 0..255.
        - ``targets`` for ``"belief_maps"``: ``(B, H/stride, W/stride, K + 1)`` float32 (see
          :func:`kpose.data.targets.belief_maps`), or a dict of them per stage; for
          ``"coords"``: ``(B, K, 3)`` ``(x_n, y_n, weight)`` (see
          :func:`kpose.data.targets.coordinate_targets`); for ``"none"``: the keypoints
          ``(B, K, 3)`` in input pixels.
    """
    skeleton = get_skeleton(skeleton)
    size = input_size_hw(input_size)
    records = _check_records(records, skeleton)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if codec is not None:
        if target != getattr(codec, "kind", None):
            raise ValueError(f"target {target!r} does not match the codec's kind "
                             f"{getattr(codec, 'kind', None)!r}")
        if target == "belief_maps":
            codec.map_size(size)
    elif target == "belief_maps":
        if size[0] % stride or size[1] % stride:
            raise ValueError(f"input_size {size} must be divisible by stride {stride} "
                             "for belief-map targets")
        if sigma <= 0:
            raise ValueError(f"sigma must be positive (belief-map pixels), got {sigma}")
    if num_stages is not None and (target != "belief_maps" or num_stages < 1):
        raise ValueError("num_stages needs target='belief_maps' and a value >= 1, "
                         f"got num_stages={num_stages!r} with target={target!r}")
    if margin <= 0:
        raise ValueError(f"margin must be positive, got {margin}")
    if start < 0 or (start and not repeat):
        raise ValueError(f"start must be >= 0 and needs repeat=True, got start={start!r} "
                         f"with repeat={repeat!r}")
    index, count = shard
    if not 0 <= index < count or (count > 1 and not repeat):
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, and needs "
                         f"repeat=True when count > 1; got shard={shard!r}")
    if repeat and cache:
        raise ValueError("cache=True keeps one pass in memory and cannot be combined with "
                         "repeat=True; choose one")
    if verify_images:
        records = drop_unreadable(records, skip=skip_corrupt)

    augmentation = augmentation if augmentation is not None else (
        Augmentation() if training else NO_AUGMENTATION)
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder

    columns = {
        "index": np.arange(len(records), dtype=np.int64),
        "path": np.array([r.image_path for r in records]),
        "box": np.array([r.box for r in records], np.float32),
        "keypoints": np.stack([r.keypoints for r in records]).astype(np.float32),
        "size": np.array([r.image_size for r in records], np.int32),  # (width, height)
    }
    flip_permutation = tf.constant(skeleton.flip_permutation, tf.int32)
    lower_body = lower_body_joints(skeleton)
    autotune = tf.data.AUTOTUNE
    if repeat:
        dataset = _stream(columns, len(records), seed, shuffle, start, shard)
    else:
        dataset = _one_pass(columns, len(records), seed, shuffle, cache)

    def crop(sample, sample_seed):
        params = sample_augmentation(augmentation, sample_seed)
        box = sample["box"]
        if augmentation.half_body > 0:
            box = half_body_box(box, sample["keypoints"], lower_body, params["half_body"],
                                params["upper_body"])
        matrix = augmentation_matrix(
            box, size, margin=margin, rotation_deg=params["rotation_deg"],
            scale=params["scale"], shift=params["shift"], flip=params["flip"])
        image = warp_image(sample["image"], matrix, size)
        keypoints = apply_matrix(matrix, sample["keypoints"])
        keypoints = tf.cond(params["flip"],
                            lambda: tf.gather(keypoints, flip_permutation),
                            lambda: keypoints)
        # Unlabelled joints stay at (0, 0, 0) whatever the matrix did to them.
        keypoints = keypoints * tf.cast(keypoints[:, 2:3] > 0, tf.float32)
        colour = tf.stack([params["brightness"], params["contrast"], params["saturation"]])
        return {"image": image, "keypoints": keypoints, "image_to_input": matrix,
                "colour": colour, "index": sample["index"]}

    dataset = dataset.map(crop, num_parallel_calls=autotune)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder,
                            num_parallel_calls=autotune)

    jitter = training and augmentation != NO_AUGMENTATION

    def finish(batch):
        images = batch["image"]
        if jitter:
            colour = batch["colour"]
            images = jitter_colour(images, colour[:, 0], colour[:, 1], colour[:, 2])
        keypoints = batch["keypoints"]
        if target == "none":
            targets = keypoints
        elif codec is not None:
            targets = codec.encode(keypoints, size)
        elif target == "belief_maps":
            targets = belief_maps(keypoints, size, stride=stride, sigma=sigma)
        else:
            targets = coordinate_targets(keypoints, size)
        if num_stages is not None:  # belief maps only (checked above)
            targets = {f"stage_{t}": targets for t in range(1, num_stages + 1)}
        if with_meta:
            meta = {"index": batch["index"], "image_to_input": batch["image_to_input"],
                    "keypoints": keypoints}
            return images, targets, meta
        return images, targets

    dataset = dataset.map(finish, num_parallel_calls=autotune)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(autotune)


def _one_pass(columns: dict, count: int, seed: int, shuffle: bool, cache: bool
              ) -> tf.data.Dataset:
    """One pass over the records: ``(sample, sample_seed)`` with decoded images and a
    ``(2,)`` stateless seed per sample.

    Shuffling and per-sample seeds come from seeded tf.data ops that draw anew on every
    iteration, so each epoch of ``model.fit`` sees a new order and new augmentations.
    """
    autotune = tf.data.AUTOTUNE
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if cache:
        dataset = dataset.map(_decode, num_parallel_calls=autotune).cache()
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if not cache:
        dataset = dataset.map(_decode, num_parallel_calls=autotune)
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(dataset, draws).map(
        lambda sample, draw: (sample, tf.stack([draw, sample["index"]])))


def _stream(columns: dict, count: int, seed: int, shuffle: bool, start: int,
            shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """An endless stream whose sample ``i`` depends on ``(seed, i)`` alone."""
    table = {name: tf.constant(values) for name, values in columns.items()}
    seed = tf.constant(seed, tf.int64)
    last = tf.constant(count - 1, tf.int64)

    def pick(position):
        epoch, offset = position // count, position % count
        index = (tf.random.experimental.index_shuffle(offset, tf.stack([seed, epoch]), last)
                 if shuffle else offset)
        sample = {name: tf.gather(values, index) for name, values in table.items()}
        return _decode(sample), tf.stack([seed, position])

    positions = tf.data.Dataset.range(start + shard[0], tf.int64.max, shard[1])
    return positions.map(pick, num_parallel_calls=tf.data.AUTOTUNE)


# The marker of the error a decoded image of another size than its record raises.
_SIZE_MISMATCH = "but its annotation says"


def _decode(sample: dict) -> dict:
    data = tf.io.read_file(sample["path"])
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    found = tf.shape(image)[1::-1]  # (width, height), as the record states it

    def text(size):
        return tf.strings.join([tf.strings.as_string(size[0]), " x ",
                                tf.strings.as_string(size[1]), " px"])

    checked = tf.debugging.Assert(
        tf.reduce_all(tf.equal(found, sample["size"])),
        [tf.strings.join([sample["path"], " is ", text(found), f" {_SIZE_MISMATCH} ",
                          text(sample["size"])])])
    with tf.control_dependencies([checked]):
        image = tf.identity(image)
    return {**sample, "image": image}


def _check_records(records, skeleton: Skeleton) -> list[PoseRecord]:
    records = list(records)
    if not records:
        raise ValueError("records is empty: there is nothing to build a data set from")
    for i, record in enumerate(records):
        if not isinstance(record, PoseRecord):
            raise ValueError(f"records[{i}] is a {type(record).__name__}, expected PoseRecord")
        if record.keypoints.shape[0] != skeleton.num_joints:
            raise ValueError(
                f"records[{i}] ({record.image_path}) has {record.keypoints.shape[0]} joints "
                f"but skeleton {skeleton.name!r} has {skeleton.num_joints}")
        if record.skeleton != skeleton.name:
            raise ValueError(f"records[{i}] ({record.image_path}) follows skeleton "
                             f"{record.skeleton!r}, not {skeleton.name!r}")
    return records


@contextmanager
def naming_unreadable_images(records: Sequence[PoseRecord]):
    """Turn TensorFlow's decode error, which names no file, into a ``ValueError`` naming
    the unreadable image (found by decoding the records' images with Pillow, only once
    something failed)."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        mismatch = re.search(rf"\[([^\]]*{_SIZE_MISMATCH}[^\]]*)\]", str(error))
        if mismatch:
            raise ValueError(f"{mismatch.group(1)}: the image file does not match its "
                             "annotation") from None
        paths = sorted({r.image_path for r in records})
        bad = find_unreadable_images(paths)
        if not bad:
            raise
        raise ValueError(unreadable_message(bad, len(paths))) from None
