"""PoseRecord refuses malformed persons with messages that name the record."""

from __future__ import annotations

import numpy as np
import pytest

from kpose.data import PoseRecord, box_from_keypoints


def _keypoints(k=3):
    return np.array([[10, 20, 2], [30, 40, 1], [0, 0, 0]][:k], np.float32)


def test_a_valid_record_converts_types():
    record = PoseRecord("people/a.jpg", [1, 2, 3, 4], _keypoints().tolist(), "x", [64, 48])
    assert record.box == (1.0, 2.0, 3.0, 4.0) and record.image_size == (64, 48)
    assert record.keypoints.dtype == np.float32
    np.testing.assert_array_equal(record.labelled, [True, True, False])


def test_keypoints_of_the_wrong_shape_are_refused():
    message = r"a\.jpg: keypoints must have shape \(K, 3\), got \(3, 2\)"
    with pytest.raises(ValueError, match=message):
        PoseRecord("a.jpg", (0, 0, 5, 5), np.zeros((3, 2)), "x", (10, 10))


@pytest.mark.parametrize("box", [(0, 0, 0, 5), (0, 0, 5, -1)])
def test_boxes_without_area_are_refused(box):
    with pytest.raises(ValueError, match="a.jpg: box .* must have positive width and height"):
        PoseRecord("a.jpg", box, _keypoints(), "x", (10, 10))


def test_visibility_outside_the_coco_flags_is_refused():
    keypoints = _keypoints()
    keypoints[0, 2] = 0.29
    with pytest.raises(ValueError, match="visibility must be 0, 1 or 2"):
        PoseRecord("a.jpg", (0, 0, 5, 5), keypoints, "x", (10, 10))


def test_image_size_must_be_positive():
    with pytest.raises(ValueError, match="image_size must be"):
        PoseRecord("a.jpg", (0, 0, 5, 5), _keypoints(), "x", (0, 10))


def test_box_from_keypoints_needs_a_labelled_joint():
    with pytest.raises(ValueError, match="no keypoint is labelled"):
        box_from_keypoints(np.zeros((3, 3)))
