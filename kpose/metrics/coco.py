"""OKS and COCO keypoint AP, computed as pycocotools computes them (checked against it to
1e-9), on arrays and COCO JSON (files or dicts)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

    A NumPy reimplementation of ``COCOeval(gt, dt, "keypoints")`` with default parameters:
    OKS thresholds 0.50:0.05:0.95, 101 recall thresholds, at most 20 detections per image,
    area ranges all / medium (32^2..96^2) / large (96^2..1e10) px^2. Crowd persons and
    persons with ``num_keypoints == 0`` are "ignore" regions: a detection matched to one is
    neither a true nor a false positive. Every image listed in ``images`` is evaluated (a
    detection on an image without persons is a false positive).

    Differences from pycocotools, none of which changes its numbers on valid input: an
    empty ``predictions`` gives AP = AR = 0 instead of an exception; a missing ``iscrowd``
    counts as 0 and a missing ``num_keypoints`` is counted from the keypoints; a detection's
    area (used only for the area ranges) is its ``bbox`` area when it has a ``bbox`` and the
    extent of its keypoints otherwise, decided per detection (pycocotools decides from the
    first detection only).

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
    dataset = _load_json(ground_truth, "ground_truth", Mapping)
    results = _load_json(predictions, "predictions", Sequence)
    variances = _oks_variances(_COCO_SIGMAS if sigmas is None else sigmas)
    images = _coco_images(dataset, results, category_id, variances)
    precision = np.empty((len(_OKS_THRESHOLDS), len(_RECALL_THRESHOLDS), len(_AREA_RANGES)))
    recall = np.empty((len(_OKS_THRESHOLDS), len(_AREA_RANGES)))
    for a, area_range in enumerate(_AREA_RANGES.values()):
        per_image = [_evaluate_image(image, area_range) for image in images]
        precision[:, :, a], recall[:, a] = _accumulate(per_image)
    return _summarize(precision, recall)


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


# pycocotools' own float values (sigmas written x10 then divided, thresholds from
# linspace) so that OKS values and threshold ties come out bit for bit the same.
_COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                         .87, .87, .89, .89]) / 10.0
_OKS_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
_RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1,
                                 endpoint=True)
_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                "large": (96.0 ** 2, 1e5 ** 2)}
_MAX_DETECTIONS = 20
# Matching never demands an OKS above this, so a perfect match still passes at t = 1.
_MAX_MATCH_THRESHOLD = 1 - 1e-10


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


@dataclass(frozen=True)
class _CocoImage:
    """One image's persons and its (score-sorted, at most 20) detections, as arrays."""

    gt_area: np.ndarray  # (G,) px^2, for the area-range test (and the OKS scale)
    gt_ignore: np.ndarray  # (G,) bool: crowd or no keypoints
    gt_crowd: np.ndarray  # (G,) bool: may be matched by many detections
    dt_score: np.ndarray  # (D,), descending
    dt_area: np.ndarray  # (D,) px^2, for the area-range test only
    similarity: np.ndarray  # (D, G) OKS


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


def _coco_images(
    dataset: Mapping[str, Any], results: Sequence[Any], category_id: int, variances: np.ndarray
) -> list[_CocoImage]:
    """Per evaluated image (sorted ids, as COCOeval), its persons and detections."""
    _require(dataset, ("images", "annotations"), "ground_truth")
    for i, img in enumerate(dataset["images"]):
        _require(img, ("id",), f"ground_truth images[{i}]")
    image_ids = sorted({img["id"] for img in dataset["images"]})
    persons: dict[Any, list[Mapping]] = {i: [] for i in image_ids}
    for i, ann in enumerate(dataset["annotations"]):
        where = f"ground_truth annotations[{i}]"
        _require(ann, ("image_id", "category_id", "keypoints", "area"), where)
        # Like COCOeval, persons on images missing from 'images' are not evaluated.
        if ann["category_id"] == category_id and ann["image_id"] in persons:
            persons[ann["image_id"]].append(ann)
    detections: dict[Any, list[Mapping]] = {i: [] for i in image_ids}
    for i, res in enumerate(results):
        where = f"predictions[{i}]"
        _require(res, ("image_id", "category_id", "keypoints", "score"), where)
        if res["image_id"] not in detections:
            raise ValueError(f"{where}: image_id {res['image_id']!r} is not an image of the "
                             "ground truth")
        if res["category_id"] == category_id:
            detections[res["image_id"]].append(res)
    return [_coco_image(persons[i], detections[i], variances) for i in image_ids]


def _coco_image(
    persons: list[Mapping], detections: list[Mapping], variances: np.ndarray
) -> _CocoImage:
    k = len(variances)
    gt = np.stack([_flat_keypoints(p["keypoints"], k, f"annotation {p.get('id')}")
                   for p in persons]) if persons else np.zeros((0, k, 3))
    labelled_counts = (gt[..., 2] > 0).sum(axis=1)
    num_keypoints = np.array([p.get("num_keypoints", c) for p, c in zip(persons, labelled_counts)])
    crowd = np.array([bool(p.get("iscrowd", 0)) for p in persons], dtype=bool)
    boxes = np.full((len(persons), 4), np.nan)
    for g, p in enumerate(persons):
        if "bbox" in p:
            box = np.asarray(p["bbox"], dtype=np.float64)
            if box.shape != (4,):
                raise ValueError(f"ground_truth annotation {p.get('id')}: 'bbox' must be "
                                 f"[x, y, w, h], got {p['bbox']!r}")
            boxes[g] = box
        elif labelled_counts[g] == 0:
            raise ValueError(f"ground_truth annotation {p.get('id')} has no labelled keypoint "
                             "and no 'bbox' field; COCO's OKS needs the box for such persons")
    # COCOeval keeps the highest-scoring detections, ties in input order (stable sort).
    scores = np.array([float(d["score"]) for d in detections])
    order = np.argsort(-scores, kind="mergesort")[:_MAX_DETECTIONS]
    kept = [detections[i] for i in order]
    dt = np.stack([_flat_keypoints(d["keypoints"], k, "prediction") for d in kept]) \
        if kept else np.zeros((0, k, 3))
    areas = np.array([float(p["area"]) for p in persons])
    return _CocoImage(
        gt_area=areas,
        gt_ignore=crowd | (num_keypoints == 0),
        gt_crowd=crowd,
        dt_score=scores[order],
        dt_area=np.array([_detection_area(d, xy) for d, xy in zip(kept, dt)]),
        similarity=_oks(dt[:, None, :, :2], gt[None], areas[None], variances, boxes[None]),
    )


def _detection_area(result: Mapping, keypoints: np.ndarray) -> float:
    """A result's area as pycocotools' loadRes sets it: bbox area, else keypoint extent."""
    box = result.get("bbox")
    if box is not None and len(box) > 0:
        return float(box[2]) * float(box[3])
    x, y = keypoints[:, 0], keypoints[:, 1]
    return float((x.max() - x.min()) * (y.max() - y.min()))


def _evaluate_image(
    image: _CocoImage, area_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Match one image's detections for one area range (COCOeval.evaluateImg).

    Returns ``(scores (D,), matched (T, D), ignored (T, D), number of non-ignored persons)``.
    """
    lo, hi = area_range
    gt_ignore = image.gt_ignore | (image.gt_area < lo) | (image.gt_area > hi)
    matched, on_ignored = _match_detections(image.similarity, gt_ignore, image.gt_crowd)
    # A detection outside the range that found no person is not held against the range.
    outside = (image.dt_area < lo) | (image.dt_area > hi)
    ignored = on_ignored | (~matched & outside[None, :])
    return image.dt_score, matched, ignored, int(np.count_nonzero(~gt_ignore))


def _match_detections(
    similarity: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching, for all OKS thresholds at once.

    Detections (rows of ``similarity (D, G)``, best score first) take, in turn, the free
    person with the highest OKS >= the threshold, preferring any non-ignored person to an
    ignored one; crowd persons stay free. COCOeval scans persons sorted ignored-last and
    replaces its pick on ``>=``, so among equal OKS the *last* person in input order wins
    within each of the two groups; this does the same.

    Returns ``matched (T, D)`` and ``matched to an ignored person (T, D)``, both bool.
    """
    n_thr = len(_OKS_THRESHOLDS)
    n_dt, n_gt = similarity.shape
    matched = np.zeros((n_thr, n_dt), dtype=bool)
    on_ignored = np.zeros((n_thr, n_dt), dtype=bool)
    if n_dt == 0 or n_gt == 0:
        return matched, on_ignored
    taken = np.zeros((n_thr, n_gt), dtype=bool)
    floor = np.minimum(_OKS_THRESHOLDS, _MAX_MATCH_THRESHOLD)[:, None]
    rows = np.arange(n_thr)
    for d in range(n_dt):
        s = similarity[d]
        eligible = (~taken | gt_crowd) & (s >= floor)  # (T, G)
        for group in (~gt_ignore, gt_ignore):
            candidates = eligible & group & ~matched[:, d:d + 1]
            hit = candidates.any(axis=1)
            if not hit.any():
                continue
            scored = np.where(candidates, s, -np.inf)
            pick = n_gt - 1 - np.argmax(scored[:, ::-1], axis=1)  # last maximum
            matched[hit, d] = True
            on_ignored[hit, d] = gt_ignore[pick[hit]]
            taken[rows[hit], pick[hit]] = True
    return matched, on_ignored


def _accumulate(
    per_image: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Precision ``(T, R)`` at the recall thresholds and final recall ``(T,)`` over all
    images for one area range (COCOeval.accumulate); -1 when no person counts."""
    n_thr, n_rec = len(_OKS_THRESHOLDS), len(_RECALL_THRESHOLDS)
    positives = sum(n for *_, n in per_image)
    if positives == 0:
        return -np.ones((n_thr, n_rec)), -np.ones(n_thr)
    scores = np.concatenate([s for s, *_ in per_image])
    matched = np.concatenate([m for _, m, _, _ in per_image], axis=1)
    ignored = np.concatenate([i for _, _, i, _ in per_image], axis=1)
    # Stable sort over images in id order: ties resolve exactly as COCOeval's do.
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    n_dt = len(scores)
    if n_dt == 0:
        return np.zeros((n_thr, n_rec)), np.zeros(n_thr)
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    rc = tp / positives
    pr = tp / (fp + tp + np.spacing(1))
    # Interpolated precision: the best precision at this recall or any higher one.
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
    precision = np.zeros((n_thr, n_rec))
    for t in range(n_thr):
        at = np.searchsorted(rc[t], _RECALL_THRESHOLDS, side="left")
        reached = at < n_dt  # recall levels never reached keep precision 0
        precision[t, reached] = pr[t, at[reached]]
    return precision, rc[:, -1]


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """The ten COCOeval.summarize numbers from precision ``(T, R, A)``, recall ``(T, A)``."""
    every = np.arange(len(_OKS_THRESHOLDS))
    # Looked up by equality, as COCOeval does, in pycocotools' own threshold values.
    t50, t75 = (np.flatnonzero(_OKS_THRESHOLDS == thr) for thr in (0.5, 0.75))
    area_index = {name: a for a, name in enumerate(_AREA_RANGES)}
    selections = {"": (every, "all"), "50": (t50, "all"), "75": (t75, "all"),
                  "m": (every, "medium"), "l": (every, "large")}
    out = {}
    for prefix, values in (("AP", precision), ("AR", recall)):
        for suffix, (thresholds, area) in selections.items():
            out[prefix + suffix] = _mean_valid(values[thresholds][..., area_index[area]])
    return {key: out[key] for key in COCO_AP_KEYS}


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries that are not -1 (COCO's "no data" mark), or -1 if none is."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0
