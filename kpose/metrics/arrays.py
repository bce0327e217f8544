"""Input checks the metrics share: keypoint arrays, per-person values, boxes and
thresholds, each refused with a message naming the argument."""

from __future__ import annotations

from typing import Any

import numpy as np

from kpose.skeletons import Skeleton

__all__ = ["fraction_correct", "check_keypoints", "check_threshold", "positive_per_person",
           "check_boxes"]


def fraction_correct(correct: int, total: int) -> float:
    return correct / total if total else float("nan")


def check_keypoints(
    predictions: np.ndarray, ground_truth: np.ndarray, skeleton: Skeleton | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 ``(N, K, 2)`` predicted positions and ``(N, K, 3)`` truth."""
    gt = np.asarray(ground_truth, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[2] != 3:
        raise ValueError(f"ground_truth must have shape (N, K, 3) of (x, y, v), got {gt.shape}")
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[2] not in (2, 3):
        raise ValueError(f"predictions must have shape (N, K, 2) or (N, K, 3), got {pred.shape}")
    if pred.shape[:2] != gt.shape[:2]:
        raise ValueError(f"predictions has shape {pred.shape} but ground_truth has {gt.shape}; "
                         "expected the same number of persons N and joints K")
    if skeleton is not None and gt.shape[1] != skeleton.num_joints:
        raise ValueError(f"ground_truth has K={gt.shape[1]} joints but skeleton "
                         f"{skeleton.name!r} has {skeleton.num_joints}")
    return pred[..., :2], gt


def check_threshold(value: float, argument: str) -> None:
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{argument} must be a finite number >= 0, got {value!r}")


def positive_per_person(values: Any, n: int, argument: str) -> np.ndarray:
    """``(n,)`` float64 of finite positive lengths, or ``ValueError`` naming ``argument``."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{argument} must have shape (N,) = ({n},), one per person, "
                         f"got {arr.shape}")
    bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
    if len(bad):
        raise ValueError(f"{argument} must be finite and > 0; person {bad[0]} has "
                         f"{arr[bad[0]]!r}")
    return arr


def check_boxes(boxes: Any, n: int) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape != (n, 4):
        raise ValueError(f"boxes must have shape (N, 4) = ({n}, 4) of (x, y, w, h), "
                         f"got {arr.shape}")
    bad = np.flatnonzero(~(np.isfinite(arr).all(axis=1) & (arr[:, 2] > 0) & (arr[:, 3] > 0)))
    if len(bad):
        raise ValueError(f"boxes must be finite with w > 0 and h > 0; person {bad[0]} has "
                         f"{arr[bad[0]].tolist()}")
    return arr
