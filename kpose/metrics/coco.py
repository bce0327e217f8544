"""OKS on arrays, as pycocotools computes it; COCO keypoint AP by pycocotools itself, on
COCO JSON (files or dicts) that are checked first."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kpose.metrics.arrays import check_boxes, check_keypoints, positive_per_person
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["oks", "coco_keypoint_ap", "coco_results_from_arrays", "COCO_AP_KEYS"]

# The ten numbers COCOeval.summarize prints for iouType "keypoints", in its order.
COCO_AP_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

def oks(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton_or_sigmas: Skeleton | str | Sequence[float] | np.ndarray,
    areas: np.ndarray,
    *,
    boxes: np.ndarray | None = None,
) -> np.ndarray:
    """Object Keypoint Similarity of each prediction with its ground truth, COCO's formula.

    ``OKS = mean over labelled joints of exp(-d^2 / (2 s^2 k^2))`` with ``d`` the error in
    pixels, ``s^2`` the area and ``k = 2 sigma`` (COCO's sigmas are half its constants),
    computed as pycocotools' ``computeOks`` does:
    ``e = d^2 / (2 sigma)^2 / (area + eps) / 2``, ``eps = np.spacing(1)``.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton_or_sigmas: a :class:`Skeleton` (its ``oks_sigmas``) or ``K`` sigmas.
        areas: ``(N,)`` positive person areas in px^2 (COCO: segmentation area).
        boxes: optional ``(N, 4)`` true person boxes ``(x, y, w, h)``. A person with no
            labelled joint is scored as COCO does, by the distance of every predicted joint
            to the box grown by its own width/height on each side; without ``boxes`` such a
            person gets NaN.

    Returns:
        ``(N,)`` float64 OKS in [0, 1].
    """
    variances = _oks_variances(skeleton_or_sigmas)
    pred, gt = check_keypoints(predictions, ground_truth, None)
    if gt.shape[1] != len(variances):
        raise ValueError(f"ground_truth has {gt.shape[1]} joints but {len(variances)} OKS "
                         "sigmas were given; expected one sigma per joint")
    areas = positive_per_person(areas, len(gt), "areas")
    if boxes is not None:
        boxes = check_boxes(boxes, len(gt))
    return _oks(pred, gt, areas, variances, boxes)


def coco_keypoint_ap(
    ground_truth: str | os.PathLike | Mapping[str, Any],
    predictions: str | os.PathLike | Sequence[Mapping[str, Any]],
    *,
    sigmas: Skeleton | Sequence[float] | np.ndarray | None = None,
    category_id: int = 1,
) -> dict[str, float]:
    """COCO keypoint AP/AR: the ten numbers of pycocotools' ``COCOeval.summarize``.

    Runs pycocotools' ``COCOeval(gt, dt, "keypoints")`` with default parameters (OKS
    thresholds 0.50:0.05:0.95, 101 recall thresholds, at most 20 detections per image, area
    ranges all / medium / large) on copies of the inputs, after checking them so that a
    malformed file gets one clear error instead of pycocotools' own. What pycocotools
    needs and COCO files may leave out is filled in first: a missing ``num_keypoints`` is
    counted from the keypoints, missing ``categories`` are the person category. An empty
    ``predictions`` (after keeping ``category_id``) gives AP = AR = 0, where pycocotools
    raises.

    Args:
        ground_truth: a COCO person_keypoints JSON file, or the loaded dict. Needs
            ``images`` (with ``id``) and ``annotations`` (with ``image_id``, ``category_id``,
            ``keypoints``, ``area``, and ``bbox`` for persons with no labelled keypoint).
        predictions: a COCO results JSON file, or the loaded list of
            ``{image_id, category_id, keypoints (flat 3K: x, y, score), score}``; see
            :func:`coco_results_from_arrays`. Results of other categories are ignored.
        sigmas: OKS sigmas (``K`` values or a :class:`Skeleton`); default COCO's 17.
        category_id: the person category to evaluate.

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` as
        floats in [0, 1], or -1 where an area range holds no non-ignored person.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset = copy.deepcopy(dict(_load_json(ground_truth, "ground_truth", Mapping)))
    results = copy.deepcopy(list(_load_json(predictions, "predictions", Sequence)))
    chosen = _COCO_SIGMAS if sigmas is None else np.sqrt(_oks_variances(sigmas)) / 2
    _check_ground_truth(dataset, category_id, len(chosen))
    image_ids = {img["id"] for img in dataset["images"]}
    kept = []
    for i, result in enumerate(results):
        where = f"predictions[{i}]"
        _require(result, ("image_id", "category_id", "keypoints", "score"), where)
        if result["image_id"] not in image_ids:
            raise ValueError(f"{where}: image_id {result['image_id']!r} is not an image of "
                             "the ground truth")
        if result["category_id"] == category_id:
            _flat_keypoints(result["keypoints"], len(chosen), where)
            kept.append(result)
    if not kept:
        return dict.fromkeys(COCO_AP_KEYS, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth = COCO()
        truth.dataset = dataset
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(kept), "keypoints")
        evaluator.params.catIds = [category_id]
        evaluator.params.kpt_oks_sigmas = np.asarray(chosen, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(COCO_AP_KEYS, (float(v) for v in evaluator.stats)))


def _check_ground_truth(dataset: dict, category_id: int, k: int) -> None:
    """Check a COCO dict for what COCOeval reads (naming the field), and fill in
    ``num_keypoints``, ``iscrowd`` and ``categories`` where they are missing."""
    _require(dataset, ("images", "annotations"), "ground_truth")
    for i, img in enumerate(dataset["images"]):
        _require(img, ("id",), f"ground_truth images[{i}]")
    dataset.setdefault("categories", [{"id": category_id, "name": "person"}])
    for i, ann in enumerate(dataset["annotations"]):
        where = f"ground_truth annotations[{i}]"
        _require(ann, ("image_id", "category_id", "keypoints", "area"), where)
        if ann["category_id"] != category_id:
            continue
        keypoints = _flat_keypoints(ann["keypoints"], k, where)
        labelled = int((keypoints[:, 2] > 0).sum())
        ann.setdefault("num_keypoints", labelled)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("id", i + 1)
        if "bbox" in ann and np.asarray(ann["bbox"], dtype=np.float64).shape != (4,):
            raise ValueError(f"{where}: 'bbox' must be [x, y, w, h], got {ann['bbox']!r}")
        if labelled == 0 and "bbox" not in ann:
            raise ValueError(f"{where} has no labelled keypoint and no 'bbox' field; COCO's "
                             "OKS needs the box for such persons")


def coco_results_from_arrays(
    image_ids: Sequence[int] | np.ndarray,
    keypoints: np.ndarray,
    scores: Sequence[float] | np.ndarray,
    *,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """Build a COCO keypoint results list (JSON-serialisable) from kpose arrays.

    Args:
        image_ids: ``(N,)`` COCO image id of each predicted person.
        keypoints: ``(N, K, 3)`` ``(x, y, score)`` or ``(N, K, 2)`` ``(x, y)`` in image
            pixels; a missing third column is written as 1 (COCO ignores it).
        scores: ``(N,)`` person confidence, which orders detections for AP.
        category_id: category of every result (1 = person).

    Returns:
        ``N`` dicts ``{image_id, category_id, keypoints (flat 3K list), score}``.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must have shape (N, K, 2) or (N, K, 3), got {kp.shape}")
    if kp.shape[2] == 2:
        kp = np.concatenate([kp, np.ones(kp.shape[:2] + (1,))], axis=2)
    ids = list(np.asarray(image_ids).reshape(-1).tolist())
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    for name, values in (("image_ids", ids), ("scores", score)):
        if len(values) != len(kp):
            raise ValueError(f"{name} has {len(values)} entries, expected one per person "
                             f"({len(kp)})")
    return [
        {"image_id": image_id, "category_id": int(category_id),
         "keypoints": kp[n].reshape(-1).tolist(), "score": float(score[n])}
        for n, image_id in enumerate(ids)
    ]


# pycocotools' own COCO sigmas (written x10 then divided, as it does).
_COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                         .87, .87, .89, .89]) / 10.0


def _oks_variances(skeleton_or_sigmas: Any) -> np.ndarray:
    """``(K,)`` COCO's ``(2 sigma)^2`` from a skeleton, a skeleton name or sigmas."""
    if isinstance(skeleton_or_sigmas, (Skeleton, str)):
        sigmas = np.asarray(get_skeleton(skeleton_or_sigmas).oks_sigmas, dtype=np.float64)
    else:
        sigmas = np.asarray(skeleton_or_sigmas, dtype=np.float64)
    if sigmas.ndim != 1 or len(sigmas) == 0 or not np.all(np.isfinite(sigmas) & (sigmas > 0)):
        raise ValueError(f"OKS sigmas must be a 1-D array of K positive values, got {sigmas!r}")
    return (sigmas * 2) ** 2


def _oks(
    pred_xy: np.ndarray,
    gt: np.ndarray,
    areas: np.ndarray,
    variances: np.ndarray,
    boxes: np.ndarray | None,
) -> np.ndarray:
    """OKS with broadcasting: ``pred_xy (..., K, 2)``, ``gt (..., K, 3)``, ``areas (...)``,
    ``boxes (..., 4)`` or None; returns ``(...)``. Pass ``pred[:, None]`` and ``gt[None]``
    for the full detection x person matrix."""
    labelled = gt[..., 2] > 0
    dx = pred_xy[..., 0] - gt[..., 0]
    dy = pred_xy[..., 1] - gt[..., 1]
    unlabelled_person = ~labelled.any(axis=-1)  # (...)
    if boxes is not None:
        # COCO scores a person with no labelled joint by each joint's distance outside the
        # box grown by its own size on every side (x from x0 - w to x0 + 2w).
        x0 = (boxes[..., 0] - boxes[..., 2])[..., None]
        x1 = (boxes[..., 0] + boxes[..., 2] * 2)[..., None]
        y0 = (boxes[..., 1] - boxes[..., 3])[..., None]
        y1 = (boxes[..., 1] + boxes[..., 3] * 2)[..., None]
        px, py = pred_xy[..., 0], pred_xy[..., 1]
        box_dx = np.maximum(0, x0 - px) + np.maximum(0, px - x1)
        box_dy = np.maximum(0, y0 - py) + np.maximum(0, py - y1)
        dx = np.where(unlabelled_person[..., None], box_dx, dx)
        dy = np.where(unlabelled_person[..., None], box_dy, dy)
    e = (dx ** 2 + dy ** 2) / variances / (areas[..., None] + np.spacing(1)) / 2
    # Labelled joints count; for a person with none, COCO averages over all K joints.
    weight = labelled | unlabelled_person[..., None]
    similarity = np.sum(np.where(weight, np.exp(-e), 0.0), axis=-1) / np.sum(weight, axis=-1)
    if boxes is None:
        similarity = np.where(unlabelled_person, np.nan, similarity)
    return similarity


def _load_json(source: Any, argument: str, kind: type) -> Any:
    """A JSON file's content (or ``source`` itself when already loaded), checked for kind."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{argument}: no such file: {path}")
        try:
            with open(path, encoding="utf-8") as f:
                source = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{argument}: {path} is not valid JSON ({err})") from None
    expected = "a COCO dataset dict" if kind is Mapping else "a list of COCO results"
    if not isinstance(source, kind) or isinstance(source, (str, bytes)):
        raise ValueError(f"{argument} must be {expected} or a JSON file holding one, "
                         f"got {type(source).__name__}")
    return source


def _require(record: Any, fields: Sequence[str], where: str) -> None:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
    for name in fields:
        if name not in record:
            raise ValueError(f"{where} has no {name!r} field; not in COCO keypoint format")


def _flat_keypoints(values: Any, k: int, where: str) -> np.ndarray:
    kp = np.asarray(values, dtype=np.float64)
    if kp.shape != (3 * k,):
        raise ValueError(f"{where}: 'keypoints' must be a flat list of 3K = {3 * k} numbers "
                         f"(K = {k} OKS sigmas), got shape {kp.shape}")
    return kp.reshape(k, 3)
