"""The tf.data pipeline: image and joints move together, targets sit on the joints."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kpose.data.augment import NO_AUGMENTATION, Augmentation
from kpose.data.pipeline import make_dataset
from kpose.data.records import PoseRecord
from kpose.data.targets import input_to_map
from kpose.data.transforms import apply_matrix, keypoints_to_image
from kpose.skeletons import COCO_17

LEFT_WRIST = COCO_17.index("left_wrist")
RIGHT_WRIST = COCO_17.index("right_wrist")
INPUT = 128


def _blob_record(tmp_path, name="dot.png", joint=LEFT_WRIST, at=(70.0, 50.0),
                 size=(160, 120)) -> PoseRecord:
    """A black image with one bright Gaussian blob at ``at``; ``joint`` is labelled there.

    The other labelled joints spread around the box so the record looks like a person.
    """
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    blob = 255.0 * np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / (2 * 1.5**2))
    image = np.repeat(blob[..., None], 3, axis=2).astype(np.uint8)
    path = tmp_path / name
    Image.fromarray(image).save(path)  # PNG: lossless, the blob stays where it was drawn
    keypoints = np.zeros((COCO_17.num_joints, 3), np.float32)
    keypoints[joint] = (at[0], at[1], 2)
    keypoints[COCO_17.index("nose")] = (80, 20, 2)
    keypoints[COCO_17.index("left_ankle")] = (85, 110, 1)
    return PoseRecord(str(path), (40, 10, 80, 100), keypoints, "coco_17", (width, height))


def _one_sample(record, augmentation, target="belief_maps", seed=3):
    dataset = make_dataset([record], COCO_17, input_size=INPUT, target=target, training=True,
                           batch_size=1, seed=seed, augmentation=augmentation,
                           with_meta=True, sigma=1.0)
    images, targets, meta = next(iter(dataset))
    return images.numpy()[0], targets.numpy()[0], {k: v.numpy()[0] for k, v in meta.items()}


def _brightest_centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre ``(x, y)`` of the pixels above half the maximum."""
    grey = image.mean(axis=-1)
    mask = grey > 0.5 * grey.max()
    ys, xs = np.nonzero(mask)
    weights = grey[ys, xs]
    return np.array([np.sum(xs * weights), np.sum(ys * weights)]) / weights.sum()


def _assert_dot_and_peak_follow(image, maps, keypoints, joint):
    expected = keypoints[joint, :2]
    np.testing.assert_allclose(_brightest_centroid(image), expected, atol=1.0)
    peak_y, peak_x = np.unravel_index(np.argmax(maps[..., joint]), maps.shape[:2])
    expected_cell = np.round(input_to_map(expected, stride=8))
    np.testing.assert_array_equal([peak_x, peak_y], expected_cell)


def test_plain_crop_puts_dot_and_belief_peak_on_the_joint(tmp_path):
    record = _blob_record(tmp_path)
    image, maps, meta = _one_sample(record, NO_AUGMENTATION)
    keypoints = meta["keypoints"]
    _assert_dot_and_peak_follow(image, maps, keypoints, LEFT_WRIST)


def test_flip_moves_dot_and_swaps_left_and_right_wrist(tmp_path):
    record = _blob_record(tmp_path)
    only_flip = Augmentation(flip=1.0, rotation=0, scale=(1, 1), shift=0, brightness=0,
                             contrast=0, saturation=0)
    plain_image, _, plain = _one_sample(record, NO_AUGMENTATION)
    image, maps, meta = _one_sample(record, only_flip)
    keypoints = meta["keypoints"]
    # The dot was labelled as the left wrist; mirrored, it is the person's right wrist.
    assert keypoints[LEFT_WRIST, 2] == 0 and keypoints[RIGHT_WRIST, 2] == 2
    np.testing.assert_allclose(keypoints[RIGHT_WRIST, 0],
                               INPUT - 1 - plain["keypoints"][LEFT_WRIST, 0], atol=1e-3)
    _assert_dot_and_peak_follow(image, maps, keypoints, RIGHT_WRIST)
    np.testing.assert_allclose(image, plain_image[:, ::-1], atol=1e-3)
    assert maps[..., LEFT_WRIST].max() == 0.0


def test_rotation_moves_dot_and_joint_together(tmp_path):
    record = _blob_record(tmp_path, at=(95.0, 40.0))
    only_rotation = Augmentation(flip=0, rotation=40, scale=(1, 1), shift=0, brightness=0,
                                 contrast=0, saturation=0)
    _, _, plain = _one_sample(record, NO_AUGMENTATION)
    centre = (INPUT - 1) / 2
    checked = 0
    for seed in range(20):
        image, maps, meta = _one_sample(record, only_rotation, seed=seed)
        keypoints = meta["keypoints"]
        moved = np.linalg.norm(keypoints[LEFT_WRIST, :2] - plain["keypoints"][LEFT_WRIST, :2])
        if moved < 5.0:  # a small angle proves little; look at clear turns only
            continue
        _assert_dot_and_peak_follow(image, maps, keypoints, LEFT_WRIST)
        radius = np.linalg.norm(keypoints[LEFT_WRIST, :2] - centre)
        plain_radius = np.linalg.norm(plain["keypoints"][LEFT_WRIST, :2] - centre)
        assert radius == pytest.approx(plain_radius, abs=1e-3)  # a turn about the centre
        checked += 1
        if checked == 3:
            break
    assert checked == 3, "expected at least three clear rotations among 20 seeds"


@pytest.mark.parametrize("seed", [4, 5])
def test_scale_moves_dot_and_joint_together(tmp_path, seed):
    record = _blob_record(tmp_path, at=(60.0, 35.0))
    only_scale = Augmentation(flip=0, rotation=0, scale=(0.7, 1.3), shift=0, brightness=0,
                              contrast=0, saturation=0)
    _, _, plain = _one_sample(record, NO_AUGMENTATION)
    image, maps, meta = _one_sample(record, only_scale, seed=seed)
    keypoints = meta["keypoints"]
    centre = (INPUT - 1) / 2
    ratio = (np.linalg.norm(keypoints[LEFT_WRIST, :2] - centre)
             / np.linalg.norm(plain["keypoints"][LEFT_WRIST, :2] - centre))
    assert 0.7 <= ratio <= 1.3 and abs(ratio - 1) > 0.01
    _assert_dot_and_peak_follow(image, maps, keypoints, LEFT_WRIST)


def test_keypoints_map_back_to_the_image_exactly(tmp_path):
    record = _blob_record(tmp_path)
    _, _, meta = _one_sample(record, Augmentation(flip=0.0), seed=7)
    back = keypoints_to_image(meta["keypoints"], meta["image_to_input"])
    labelled = record.labelled
    np.testing.assert_allclose(back[labelled, :2], record.keypoints[labelled, :2], atol=1e-3)


def test_same_seed_same_batches_and_new_seed_new_batches(tmp_path):
    records = [_blob_record(tmp_path, f"d{i}.png", at=(60.0 + 5 * i, 50.0)) for i in range(6)]

    def first_epoch(seed):
        dataset = make_dataset(records, COCO_17, input_size=64, training=True, batch_size=3,
                               seed=seed)
        return [(x.numpy(), y.numpy()) for x, y in dataset]

    a, b, c = first_epoch(11), first_epoch(11), first_epoch(12)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_epochs_draw_new_augmentations(tmp_path):
    records = [_blob_record(tmp_path, f"d{i}.png", at=(60.0 + 5 * i, 50.0)) for i in range(4)]
    dataset = make_dataset(records, COCO_17, input_size=64, training=True, batch_size=4, seed=0)
    epoch1 = next(iter(dataset))[0].numpy()
    epoch2 = next(iter(dataset))[0].numpy()
    assert not np.array_equal(epoch1, epoch2)


def test_belief_maps_have_unit_peaks_background_and_empty_unlabelled_maps(tmp_path):
    record = _blob_record(tmp_path)
    _, maps, meta = _one_sample(record, NO_AUGMENTATION)
    assert maps.shape == (INPUT // 8, INPUT // 8, COCO_17.num_joints + 1)
    labelled = meta["keypoints"][:, 2] > 0
    assert np.all(maps[..., :-1][..., ~labelled] == 0)
    assert np.all(maps[..., :-1].max(axis=(0, 1))[labelled] > 0.5)
    np.testing.assert_allclose(maps[..., -1], 1 - maps[..., :-1].max(axis=-1), atol=1e-6)


def test_stage_targets_repeat_the_maps_under_stage_names(tmp_path):
    record = _blob_record(tmp_path)
    dataset = make_dataset([record], COCO_17, input_size=64, batch_size=1, num_stages=3)
    _, targets = next(iter(dataset))
    assert sorted(targets) == ["stage_1", "stage_2", "stage_3"]
    np.testing.assert_array_equal(targets["stage_1"].numpy(), targets["stage_3"].numpy())


def test_coordinate_targets_are_normalised_to_the_crop_with_weights(tmp_path):
    record = _blob_record(tmp_path)
    dataset = make_dataset([record], COCO_17, input_size=INPUT, target="coords", batch_size=1,
                           with_meta=True)
    _, coords, meta = next(iter(dataset))
    coords, keypoints = coords.numpy()[0], meta["keypoints"].numpy()[0]
    labelled = keypoints[:, 2] > 0
    np.testing.assert_array_equal(coords[:, 2], labelled.astype(np.float32))
    expected = (keypoints[labelled, :2] - (INPUT - 1) / 2) / INPUT
    np.testing.assert_allclose(coords[labelled, :2], expected, atol=1e-6)
    assert np.all(np.abs(coords[labelled, :2]) <= 0.5)
    assert np.all(coords[~labelled] == 0)
    # The box centre (80, 60) is the crop centre: normalised (0, 0).
    box_centre = np.array([[80.0, 60.0, 2.0]])
    at = apply_matrix(meta["image_to_input"].numpy()[0], box_centre)[0, :2]
    np.testing.assert_allclose((at - (INPUT - 1) / 2) / INPUT, [0, 0], atol=1e-6)


def test_input_size_not_divisible_by_stride_is_refused(tmp_path):
    with pytest.raises(ValueError, match="divisible by stride"):
        make_dataset([_blob_record(tmp_path)], COCO_17, input_size=100)


def test_records_of_another_skeleton_are_refused(tmp_path):
    from kpose.skeletons import LSP_14

    with pytest.raises(ValueError, match="has 17 joints but skeleton 'lsp_14' has 14"):
        make_dataset([_blob_record(tmp_path)], LSP_14, input_size=64)


def test_empty_records_and_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="records is empty"):
        make_dataset([], COCO_17)
    with pytest.raises(ValueError, match="target must be one of"):
        make_dataset([_blob_record(tmp_path)], COCO_17, target="heatmap")
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset([_blob_record(tmp_path)], COCO_17, batch_size=0)


def test_corrupt_image_is_reported_by_path_and_can_be_skipped(tmp_path, capsys):
    good = _blob_record(tmp_path)
    broken_path = tmp_path / "broken.jpg"
    broken_path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    broken = PoseRecord(str(broken_path), good.box, good.keypoints, "coco_17", (160, 120))
    with pytest.raises(ValueError, match="broken.jpg"):
        make_dataset([good, broken], COCO_17, input_size=64, verify_images=True)
    dataset = make_dataset([good, broken], COCO_17, input_size=64, verify_images=True,
                           skip_corrupt=True, batch_size=4)
    assert "skipping 1 of 2 persons: 1 unreadable image(s), first" in capsys.readouterr().out
    images, _ = next(iter(dataset))
    assert images.shape[0] == 1


def test_cached_pipeline_serves_the_same_batches(tmp_path):
    records = [_blob_record(tmp_path, f"d{i}.png", at=(60.0 + 5 * i, 50.0)) for i in range(5)]
    kwargs = dict(input_size=64, training=True, batch_size=2, seed=9)
    plain = [x.numpy() for x, _ in make_dataset(records, COCO_17, **kwargs)]
    cached = make_dataset(records, COCO_17, cache=True, **kwargs)
    for _ in range(2):  # the second pass reads from the cache
        batches = [x.numpy() for x, _ in cached]
    assert len(batches) == len(plain) == 2  # training drops the partial batch
    for a, b in zip(plain, [x.numpy() for x, _ in make_dataset(records, COCO_17, cache=True,
                                                                **kwargs)]):
        np.testing.assert_array_equal(a, b)


def test_stream_is_a_function_of_seed_and_position(tmp_path):
    records = [_blob_record(tmp_path, f"d{i}.png", at=(60.0 + 5 * i, 50.0)) for i in range(5)]

    def batches(start, count, seed=4):
        dataset = make_dataset(records, COCO_17, input_size=64, training=True, batch_size=2,
                               seed=seed, repeat=True, start=start, with_meta=True)
        return [(x.numpy(), meta["index"].numpy()) for x, _, meta in dataset.take(count)]

    full = batches(0, 6)  # 12 samples: more than two epochs of 5 records
    indices = np.concatenate([index for _, index in full])
    for epoch in range(2):  # every epoch visits every record once, in its own order
        assert sorted(indices[5 * epoch: 5 * epoch + 5]) == [0, 1, 2, 3, 4]
    assert not np.array_equal(indices[:5], indices[5:10])
    resumed = batches(4, 4)  # starting at sample 4 continues the same stream
    for (x_full, i_full), (x_resumed, i_resumed) in zip(full[2:], resumed):
        np.testing.assert_array_equal(i_full, i_resumed)
        np.testing.assert_array_equal(x_full, x_resumed)
    assert not np.array_equal(batches(0, 1, seed=5)[0][0], full[0][0])


def test_start_needs_repeat_and_cache_excludes_repeat(tmp_path):
    record = _blob_record(tmp_path)
    with pytest.raises(ValueError, match="start must be >= 0 and needs repeat=True"):
        make_dataset([record], COCO_17, input_size=64, start=3)
    with pytest.raises(ValueError, match="cannot be combined with repeat=True"):
        make_dataset([record], COCO_17, input_size=64, repeat=True, cache=True)


def test_shards_of_the_stream_together_serve_the_unsharded_batches(tmp_path):
    records = [_blob_record(tmp_path, f"d{i}.png", at=(60.0 + 5 * i, 50.0)) for i in range(5)]

    def indices(batch_size, shard):
        dataset = make_dataset(records, COCO_17, input_size=64, training=True, seed=3,
                               batch_size=batch_size, repeat=True, shard=shard, with_meta=True)
        return [meta["index"].numpy() for _, _, meta in dataset.take(3)]

    whole = indices(4, (0, 1))
    first, second = indices(2, (0, 2)), indices(2, (1, 2))
    for k in range(3):
        assert sorted(np.concatenate([first[k], second[k]])) == sorted(whole[k])
    with pytest.raises(ValueError, match="shard must be"):
        make_dataset(records, COCO_17, input_size=64, shard=(2, 2), repeat=True)
