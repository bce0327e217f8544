"""Synthetic people: determinism, COCO file validity, label consistency and difficulty."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from kpose.data.synthetic import dataset, scene
from kpose.data.synthetic import SyntheticConfig, render_person, write_synthetic_dataset
from kpose.skeletons import COCO_17

SIZE = 256
NUM_SAMPLES = 200


@pytest.fixture(scope="module")
def samples():
    """200 rendered people: keypoints (N, 17, 3), boxes (N, 4), true joint xy (N, 17, 2)."""
    scenes = [scene._render_scene(np.random.default_rng([123, i]), SIZE, SyntheticConfig())
              for i in range(NUM_SAMPLES)]
    return (np.stack([s.keypoints for s in scenes]), np.array([s.box for s in scenes]),
            np.stack([s.joints_xy for s in scenes]))


def _file_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_person_returns_image_keypoints_and_box_in_kpose_convention():
    image, keypoints, box = render_person(np.random.default_rng(0), size=96)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    assert keypoints.shape == (17, 3) and keypoints.dtype == np.float32
    assert set(np.unique(keypoints[:, 2])) <= {0.0, 1.0, 2.0}
    assert len(box) == 4 and box[2] > 0 and box[3] > 0


def test_same_seed_gives_same_bytes_and_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_synthetic_dataset(tmp_path / name, 5, seed=seed, size=96, progress=False)
    a, b, c = (_file_hashes(tmp_path / name) for name in "abc")
    assert len(a) == 6                      # 5 images + the JSON
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)
    assert len({a[k] for k in images}) == len(images)   # images differ from each other


def test_images_do_not_depend_on_num(tmp_path):
    write_synthetic_dataset(tmp_path / "few", 2, seed=9, size=64, progress=False)
    write_synthetic_dataset(tmp_path / "more", 4, seed=9, size=64, progress=False)
    few = _file_hashes(tmp_path / "few" / "images")
    more = _file_hashes(tmp_path / "more" / "images")
    assert few == {k: more[k] for k in few}


def test_json_is_valid_coco_person_keypoints(tmp_path):
    num = 12
    json_path = write_synthetic_dataset(tmp_path, num, seed=1, size=SIZE, progress=False)
    assert json_path == tmp_path / "person_keypoints.json"
    data = json.loads(json_path.read_text())
    assert len(data["images"]) == num and len(data["annotations"]) == num
    (category,) = data["categories"]
    assert category["id"] == 1 and category["name"] == "person"
    assert category["keypoints"] == list(COCO_17.joint_names)
    assert category["skeleton"] == [[a + 1, b + 1] for a, b in COCO_17.bones]
    images = {im["id"]: im for im in data["images"]}
    assert len(images) == num
    for ann in data["annotations"]:
        image = images[ann["image_id"]]
        path = tmp_path / "images" / image["file_name"]
        with Image.open(path) as im:
            assert im.size == (image["width"], image["height"]) == (SIZE, SIZE)
            assert im.format == "JPEG"
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        kp = np.array(ann["keypoints"], np.float64).reshape(17, 3)
        assert len(ann["keypoints"]) == 51
        assert set(kp[:, 2]) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= -0.5 and y >= -0.5
        assert x + w <= SIZE - 0.5 + 1e-6 and y + h <= SIZE - 0.5 + 1e-6
        assert 0 < ann["area"] <= w * h + 1e-6
        labelled = kp[kp[:, 2] > 0, :2]
        assert np.all(labelled >= -0.5) and np.all(labelled < SIZE - 0.5)
        assert np.all(kp[kp[:, 2] == 0, :2] == 0)
        # The box contains every labelled joint (JSON values are rounded to 0.01 px).
        assert np.all(labelled[:, 0] >= x - 0.01) and np.all(labelled[:, 0] <= x + w + 0.01)
        assert np.all(labelled[:, 1] >= y - 0.01) and np.all(labelled[:, 1] <= y + h + 0.01)
    assert not list(tmp_path.rglob("*.tmp*"))


def test_keypoints_are_labelled_iff_inside_the_image(samples):
    keypoints, _, joints_xy = samples
    inside = np.all((joints_xy >= -0.5) & (joints_xy < SIZE - 0.5), axis=-1)
    labelled = keypoints[..., 2] > 0
    np.testing.assert_array_equal(labelled, inside)
    np.testing.assert_allclose(keypoints[labelled][:, :2], joints_xy[labelled])
    assert np.all(keypoints[~labelled][:, :2] == 0)
    # The check means something only if some joints do fall outside.
    assert (~inside).sum() > 20


def test_box_contains_labelled_keypoints_and_lies_in_image(samples):
    keypoints, boxes, _ = samples
    x0, y0 = boxes[:, 0, None], boxes[:, 1, None]
    x1, y1 = x0 + boxes[:, 2, None], y0 + boxes[:, 3, None]
    labelled = keypoints[..., 2] > 0
    kx, ky = keypoints[..., 0], keypoints[..., 1]
    inside = (kx >= x0) & (kx <= x1) & (ky >= y0) & (ky <= y1)
    assert np.all(inside[labelled])
    assert np.all(boxes[:, :2] >= -0.5) and np.all(x1 <= SIZE - 0.5) and np.all(y1 <= SIZE - 0.5)


def test_visibility_mixes_visible_and_occluded_joints(samples):
    v = samples[0][..., 2]
    occluded = (v == 1).sum() / (v > 0).sum()
    assert 0.05 < occluded < 0.5
    # Every joint is sometimes hidden and usually seen.
    assert np.all((v == 1).any(axis=0)) and np.all((v == 2).mean(axis=0) > 0.3)


def test_mean_pose_scores_below_30_percent_pck_at_0_2(samples):
    keypoints, boxes, _ = samples
    xy, labelled = keypoints[..., :2], keypoints[..., 2] > 0
    centre = boxes[:, None, :2] + boxes[:, None, 2:] / 2
    extent = boxes[:, None, 2:]
    normalised = (xy - centre) / extent                     # box frame, in [-0.5, 0.5]
    counts = labelled.sum(axis=0)[:, None]
    mean_pose = (normalised * labelled[..., None]).sum(axis=0) / counts     # (17, 2)
    predicted = mean_pose[None] * extent + centre
    left_shoulder, right_hip = COCO_17.torso
    torso = np.linalg.norm(xy[:, left_shoulder] - xy[:, right_hip], axis=-1)
    scored = labelled & (labelled[:, [left_shoulder]] & labelled[:, [right_hip]])
    hits = np.linalg.norm(predicted - xy, axis=-1) <= 0.2 * torso[:, None]
    pck = hits[scored].mean()
    print(f"mean-pose PCK@0.2 = {pck:.3f}")
    assert pck < 0.30


def test_front_facing_person_has_left_shoulder_on_image_right(samples):
    keypoints = samples[0]
    v = keypoints[..., 2]
    # Nose and both eyes seen: the person faces the camera.
    front = np.all(v[:, :3] == 2, axis=1) & np.all(v[:, [5, 6, 11, 12]] > 0, axis=1)
    kp = keypoints[front]
    across = kp[:, 5, :2] - kp[:, 6, :2]                                  # right -> left
    up = (kp[:, 5, :2] + kp[:, 6, :2] - kp[:, 11, :2] - kp[:, 12, :2]) / 2
    # Image y points down: with "up" as the figure's up, the person's left is on the image
    # right when the 2D cross product is negative, whatever the in-plane rotation.
    cross = across[:, 0] * up[:, 1] - across[:, 1] * up[:, 0]
    assert front.sum() > 30
    assert (cross < 0).mean() > 0.9


def test_interrupted_run_leaves_no_json(tmp_path, monkeypatch):
    real = dataset._render_for_file

    def fail_on_third(seed, index, size, config):
        if index == 2:
            raise KeyboardInterrupt
        return real(seed, index, size, config)

    monkeypatch.setattr(dataset, "_render_for_file", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic_dataset(tmp_path, 5, size=64, progress=False)
    assert not (tmp_path / "person_keypoints.json").exists()
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == [
        "synth_000000.jpg", "synth_000001.jpg"]


def test_progress_is_reported_on_stderr_for_large_runs(tmp_path, capsys):
    write_synthetic_dataset(tmp_path, 100, size=32)
    assert "synthetic: 100/100 (100%)" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, match", [({"num": 0}, "num"), ({"num": 2, "size": 8}, "size")])
def test_invalid_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_synthetic_dataset(tmp_path, **kwargs)
