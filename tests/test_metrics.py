"""Metrics: hand-computed PCK/PDJ/PCKh/PCP/OKS cases, and COCO AP against pycocotools."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from kpose.metrics import (
    COCO_AP_KEYS,
    MetricResult,
    coco_keypoint_ap,
    coco_results_from_arrays,
    oks,
    pck,
    pck_curve,
    pckh,
    pcp,
    pdj,
)
from kpose.skeletons import COCO_17, Skeleton

# A vertical stick figure: head (0, 0), neck (0, 10), hip (0, 30), knee (0, 50).
# Torso = neck..hip = 20 px, head segment = head..neck = 10 px, both limbs 20 px.
TINY = Skeleton(
    name="tiny",
    joint_names=("head", "neck", "hip", "knee"),
    flip_pairs=(),
    limbs=(("upper", 1, 2), ("lower", 2, 3)),
    torso=(1, 2),
    head=(0, 1),
    oks_sigmas=(0.1, 0.1, 0.1, 0.1),
)
TRUTH = np.array([[0, 0, 2], [0, 10, 2], [0, 30, 2], [0, 50, 1]], dtype=np.float64)
# Errors of 3, 4 (exactly 0.2 x torso), 5 and 0 px; 3-4-5 triangles keep them exact.
OFFSETS = np.array([[3, 0], [0, 4], [3, 4], [0, 0]], dtype=np.float64)


def _person(offsets=OFFSETS, truth=TRUTH):
    return (truth[:, :2] + offsets)[None], truth[None]


def _unlabel(truth, *joints):
    truth = truth.copy()
    truth[list(joints)] = 0  # COCO writes unlabelled joints as (0, 0, 0)
    return truth


# ----------------------------------------------------------------------------- PCK family


def test_pck_torso_counts_distance_equal_to_threshold_as_correct():
    pred, gt = _person()
    result = pck(pred, gt, TINY, alpha=0.2)
    assert result.value == 0.75
    assert result.per_part == {"head": 1.0, "neck": 1.0, "hip": 0.0, "knee": 1.0}
    assert (result.num_correct, result.num_total) == (3, 4)


def test_pck_torso_excludes_person_whose_torso_joint_is_unlabelled():
    pred1, gt1 = _person()
    pred2, gt2 = _person(offsets=np.full((4, 2), 100.0), truth=_unlabel(TRUTH, 2))
    result = pck(np.concatenate([pred1, pred2]), np.concatenate([gt1, gt2]), TINY)
    assert result.value == 0.75
    assert result.total == (1, 1, 1, 1)


def test_pck_excludes_unlabelled_joint_even_with_a_huge_error():
    offsets = OFFSETS.copy()
    offsets[3] = (500, 500)
    pred, gt = _person(offsets, _unlabel(TRUTH, 3))
    result = pck(pred, gt, TINY, alpha=0.2)
    assert (result.num_correct, result.num_total) == (2, 3)
    assert math.isnan(result.per_part["knee"])


def test_pck_box_uses_larger_box_side():
    pred, gt = _person()
    # max(10, 25) = 25 px, threshold 5 px: all four errors (3, 4, 5, 0) pass.
    result = pck(pred, gt, TINY, reference="box", boxes=[[0, 0, 10, 25]])
    assert result.value == 1.0
    assert result.metric == "PCK@0.2 (box)"


def test_pck_given_lengths_scale_the_threshold():
    pred, gt = _person()
    # 0.2 x 10 px = 2 px: only the exact knee passes.
    assert pck(pred, gt, TINY, reference="given", lengths=[10.0]).value == 0.25
    assert pck(pred, gt, TINY, alpha=0.5, reference="given", lengths=[10.0]).value == 1.0


def test_pdj_is_strict_at_the_threshold():
    pred, gt = _person()
    result = pdj(pred, gt, TINY, fraction=0.2)
    assert result.value == 0.5  # the 4 px neck error equals 0.2 x 20 px: not detected
    assert result.per_part == {"head": 1.0, "neck": 0.0, "hip": 0.0, "knee": 1.0}


def test_pckh_with_given_head_sizes():
    pred, gt = _person()
    # 0.5 x 8 px = 4 px: errors 3, 4, 0 pass, 5 fails.
    assert pckh(pred, gt, TINY, head_sizes=[8.0]).value == 0.75


def test_pckh_falls_back_to_head_segment_and_excludes_persons_without_it():
    pred1, gt1 = _person()
    pred2, gt2 = _person(offsets=np.full((4, 2), 100.0), truth=_unlabel(TRUTH, 0))
    # Head segment 10 px, 0.5 x 10 = 5 px: all four errors of person 1 pass.
    result = pckh(np.concatenate([pred1, pred2]), np.concatenate([gt1, gt2]), TINY)
    assert (result.num_correct, result.num_total) == (4, 4)
    assert result.metric == "PCKh@0.5"


def test_pcp_scores_each_limb_by_both_end_points():
    # Limbs are 20 px, threshold 10 px. Upper: neck 4, hip 5 -> correct.
    # Lower: hip 5, knee 12 -> wrong.
    offsets = np.array([[0, 0], [0, 4], [3, 4], [12, 0]], dtype=np.float64)
    pred, gt = _person(offsets)
    result = pcp(pred, gt, TINY)
    assert result.parts == ("upper", "lower")
    assert result.per_part == {"upper": 1.0, "lower": 0.0}
    assert result.value == 0.5


def test_pcp_excludes_limb_with_unlabelled_end_point():
    offsets = np.array([[0, 0], [0, 4], [3, 4], [12, 0]], dtype=np.float64)
    pred, gt = _person(offsets, _unlabel(TRUTH, 3))
    result = pcp(pred, gt, TINY)
    assert result.total == (1, 0)
    assert result.value == 1.0


def test_predictions_with_a_score_column_and_nan_positions():
    pred, gt = _person()
    scored = np.concatenate([pred, np.full((1, 4, 1), 0.3)], axis=2)
    assert pck(scored, gt, TINY).value == 0.75
    scored[0, 0, :2] = np.nan  # a missing prediction is a miss, not an exclusion
    assert (pck(scored, gt, TINY).num_correct, pck(scored, gt, TINY).num_total) == (2, 4)


def test_metric_results_add_their_counts():
    pred, gt = _person()
    total = pck(pred, gt, TINY) + pck(pred + 100, gt, TINY)
    assert (total.num_correct, total.num_total) == (3, 8)
    assert total.value == 3 / 8
    with pytest.raises(ValueError, match="metric and parts"):
        _ = pck(pred, gt, TINY) + pdj(pred, gt, TINY)


def test_pck_curve_agrees_with_pck_and_pdj():
    rng = np.random.default_rng(0)
    gt = np.repeat(TRUTH[None], 6, axis=0)
    pred = gt[..., :2] + rng.normal(0, 4, (6, 4, 2))
    thresholds, overall, per_joint = pck_curve(pred, gt, TINY)
    assert thresholds.shape == overall.shape == (51,) and per_joint.shape == (51, 4)
    assert np.all(np.diff(overall) >= 0)
    assert overall[20] == pck(pred, gt, TINY, alpha=thresholds[20]).value
    _, strict, _ = pck_curve(pred, gt, TINY, thresholds=[0.2], strict=True)
    assert strict[0] == pdj(pred, gt, TINY, fraction=0.2).value
    result = pck(pred, gt, TINY, alpha=0.3)
    _, _, joints = pck_curve(pred, gt, TINY, thresholds=[0.3])
    assert joints[0].tolist() == list(result.per_part.values())


# ----------------------------------------------------------------------------- OKS


def test_oks_of_perfect_prediction_is_one():
    pred, gt = _person(np.zeros((4, 2)))
    assert oks(pred, gt, TINY, areas=[400.0]).tolist() == [1.0]


def test_oks_of_known_offset_matches_hand_computation():
    offsets = np.zeros((4, 2))
    offsets[1] = (3, 4)  # d = 5 px on one of three labelled joints
    pred, gt = _person(offsets, _unlabel(TRUTH, 0))
    k = 2 * 0.1  # COCO's constant is twice its sigma
    expected = (math.exp(-25 / (2 * 400 * k ** 2)) + 2) / 3
    assert oks(pred, gt, TINY, [400.0])[0] == pytest.approx(expected, rel=1e-12)
    assert oks(pred, gt, [0.1] * 4, [400.0])[0] == pytest.approx(expected, rel=1e-12)


def test_oks_of_person_without_labelled_joints_uses_box_or_is_nan():
    gt = np.zeros((1, 4, 3))
    pred = np.full((1, 4, 2), 5.0)  # inside the box (0, 0, 10, 10) grown to (-10..20)
    assert math.isnan(oks(pred, gt, TINY, [100.0])[0])
    assert oks(pred, gt, TINY, [100.0], boxes=[[0, 0, 10, 10]])[0] == 1.0
    far = np.full((1, 4, 2), 23.0)  # 3 px past the grown box on both axes: d^2 = 18
    expected = math.exp(-18 / (2 * 100 * 0.2 ** 2))
    assert oks(far, gt, TINY, [100.0], boxes=[[0, 0, 10, 10]])[0] == pytest.approx(expected)


# ----------------------------------------------------------------------------- COCO AP


def _coco_eval(dataset: dict, results: list) -> dict[str, float]:
    """pycocotools' ten keypoint numbers; inputs are deep-copied (loadRes mutates them)."""
    coco = pytest.importorskip("pycocotools.coco")
    cocoeval = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco.COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        evaluator = cocoeval.COCOeval(gt, dt, "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(COCO_AP_KEYS, evaluator.stats.tolist()))


@pytest.fixture(scope="module")
def coco_dataset(realdata) -> dict:
    with open(realdata / "coco" / "test_coco.json", encoding="utf-8") as f:
        return json.load(f)


def _noisy_results(dataset: dict, noise: float, seed: int, *, extra_per_image: int = 2) -> list:
    """Predictions from the truth: Gaussian noise of ``noise * sqrt(area)`` px, about one
    person in five missed, scores on a 0.1 grid (ties), persons without keypoints predicted
    around their box centre, and false positives scattered over every image."""
    rng = np.random.default_rng(seed)
    results = []
    for ann in dataset["annotations"]:
        if rng.uniform() < 0.2:
            continue
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        x, y, w, h = ann["bbox"]
        base = np.where(kp[:, 2:] > 0, kp[:, :2], [x + w / 2, y + h / 2])
        xy = base + rng.normal(0, noise * math.sqrt(ann["area"]) + 1e-9, base.shape)
        results.append(_result(ann["image_id"], xy, round(rng.uniform(0.2, 1.0), 1), rng))
    for img in dataset["images"]:
        for _ in range(extra_per_image):
            centre = rng.uniform((0, 0), (img["width"], img["height"]))
            xy = centre + rng.normal(0, rng.uniform(5, 60), (17, 2))
            results.append(_result(img["id"], xy, round(rng.uniform(0.0, 0.8), 1), rng))
    rng.shuffle(results)
    return results


def _result(image_id, xy: np.ndarray, score: float, rng) -> dict:
    kp = np.concatenate([xy, rng.uniform(0, 1, (len(xy), 1))], axis=1)
    return {"image_id": image_id, "category_id": 1, "keypoints": kp.ravel().tolist(),
            "score": score}


def _assert_same_as_pycocotools(dataset: dict, results: list) -> dict[str, float]:
    expected = _coco_eval(dataset, results)
    got = coco_keypoint_ap(dataset, results)
    assert list(got) == list(COCO_AP_KEYS)
    for key in COCO_AP_KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9, rel=0), key
    return got


@pytest.mark.parametrize("noise", [0.0, 0.02, 0.05, 0.1, 0.25, 0.6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_ap_equals_pycocotools_on_real_sample(coco_dataset, noise, seed):
    results = _noisy_results(coco_dataset, noise, seed)
    assert {a["num_keypoints"] for a in coco_dataset["annotations"]} >= {0}
    _assert_same_as_pycocotools(coco_dataset, results)


def test_coco_ap_equals_pycocotools_with_crowd_empty_image_and_over_20_detections(
        coco_dataset):
    dataset = copy.deepcopy(coco_dataset)
    dataset["annotations"][1]["iscrowd"] = 1
    dataset["images"].append({**dataset["images"][0], "id": 999999})
    rng = np.random.default_rng(7)
    results = _noisy_results(dataset, 0.05, 7)
    # 25 detections with tied scores on one image: the 20-per-image cut falls inside a tie.
    crowded = dataset["images"][2]["id"]
    people = [a for a in dataset["annotations"] if a["image_id"] == crowded]
    for n in range(25):
        ann = people[n % len(people)]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
        xy = kp + rng.normal(0, 0.1 * math.sqrt(ann["area"]), kp.shape)
        results.append(_result(crowded, xy, 0.5, rng))
    got = _assert_same_as_pycocotools(dataset, results)
    assert 0 < got["AP"] < 1


def test_coco_ap_equals_pycocotools_when_a_range_has_no_person(coco_dataset):
    dataset = copy.deepcopy(coco_dataset)
    dataset["annotations"] = [a for a in dataset["annotations"] if a["area"] > 96 ** 2]
    got = _assert_same_as_pycocotools(dataset, _noisy_results(dataset, 0.05, 3))
    assert got["APm"] == got["ARm"] == -1


def test_coco_ap_equals_pycocotools_with_result_boxes(coco_dataset):
    results = _noisy_results(coco_dataset, 0.1, 4)
    rng = np.random.default_rng(4)
    for res in results:  # loadRes then takes each result's area from its bbox
        res["bbox"] = rng.uniform(20, 200, 4).round(1).tolist()
    _assert_same_as_pycocotools(coco_dataset, results)


def test_coco_ap_equals_pycocotools_when_only_ignored_persons_are_predicted(coco_dataset):
    rng = np.random.default_rng(5)
    results = []
    for ann in coco_dataset["annotations"]:
        if ann["num_keypoints"] == 0:
            x, y, w, h = ann["bbox"]
            results.append(_result(ann["image_id"], rng.normal((x, y), 3, (17, 2)), 0.9, rng))
    got = _assert_same_as_pycocotools(coco_dataset, results)
    assert got["AP"] == 0.0


def _scene() -> tuple[dict, list]:
    """A hand-built scene for the matching rules the real sample rarely reaches.

    Image 1: a detection ties in OKS between two persons (COCO keeps the later one).
    Image 2: a detection closer to a crowd person than to a real one (COCO prefers the
    real one), and two more that match the crowd (it absorbs any number).
    Image 3: a detection inside the 3x-grown box of a person without keypoints (ignored)
    and one outside it (a false positive).
    Image 4: no persons, one detection. Image 5: twenty high-scoring junk detections push
    the true one past the 20-per-image cut. Image 6: a small person (outside medium and
    large) and a small false positive.
    """
    rng = np.random.default_rng(11)
    base = rng.integers(0, 60, (17, 2)).astype(np.float64) + 100

    def person(ann_id, image_id, xy, area, **extra):
        kp = np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                "area": area, "bbox": [x0, y0, x1 - x0, y1 - y0], "num_keypoints": 17,
                "keypoints": kp.ravel().tolist(), **extra}

    anns = [
        person(1, 1, base + (4, 0), 5000.0),
        person(2, 1, base - (4, 0), 5000.0),
        person(3, 2, base, 8000.0, iscrowd=1),
        person(4, 2, base + (3, 3), 8000.0),
        {"id": 5, "image_id": 3, "category_id": 1, "iscrowd": 0, "area": 3000.0,
         "bbox": [100.0, 100.0, 50.0, 80.0], "num_keypoints": 0, "keypoints": [0] * 51},
        person(6, 3, base + 300, 6000.0),
        person(7, 5, base, 7000.0),
        person(8, 6, base / 10 + 20, 600.0),
    ]
    images = [{"id": i, "width": 640, "height": 480} for i in range(1, 7)]
    dts = [
        _result(1, base, 0.9, rng),
        _result(1, base + (4, 0), 0.8, rng),
        _result(2, base, 0.7, rng),
        _result(2, base + rng.normal(0, 1, base.shape), 0.6, rng),
        _result(2, base + rng.normal(0, 1, base.shape), 0.6, rng),
        _result(3, rng.uniform((152, 185), (198, 258), (17, 2)), 0.95, rng),
        _result(3, rng.uniform((260, 300), (300, 340), (17, 2)), 0.95, rng),
        _result(3, base + 300, 0.3, rng),
        _result(4, base, 0.5, rng),
        *[_result(5, base + 250 + rng.normal(0, 20, base.shape), 0.99, rng) for _ in range(20)],
        _result(5, base, 0.5, rng),
        _result(6, base / 10 + 21, 0.4, rng),
        _result(6, base / 10 + 400, 0.45, rng),
    ]
    return {"images": images, "annotations": anns, "categories": [{"id": 1}]}, dts


def test_coco_ap_equals_pycocotools_on_matching_corner_cases():
    dataset, results = _scene()
    got = _assert_same_as_pycocotools(dataset, results)
    assert 0 < got["AP"] < 1


def test_coco_ap_of_perfect_predictions_is_one(coco_dataset):
    results = [_result(a["image_id"], np.asarray(a["keypoints"], float).reshape(-1, 3)[:, :2],
                       1.0, np.random.default_rng(0))
               for a in coco_dataset["annotations"] if a["num_keypoints"] > 0]
    got = coco_keypoint_ap(coco_dataset, results)
    assert all(got[key] == pytest.approx(1.0) for key in COCO_AP_KEYS)


def test_coco_ap_of_no_predictions_is_zero(coco_dataset):
    assert set(coco_keypoint_ap(coco_dataset, []).values()) == {0.0}


def test_coco_ap_reads_json_files(coco_dataset, realdata, tmp_path):
    results = _noisy_results(coco_dataset, 0.05, 1)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    from_files = coco_keypoint_ap(realdata / "coco" / "test_coco.json", str(path))
    assert from_files == coco_keypoint_ap(coco_dataset, results)


def test_coco_results_from_arrays_round_trip_through_ap(coco_dataset):
    results = _noisy_results(coco_dataset, 0.05, 2)
    keypoints = np.array([r["keypoints"] for r in results]).reshape(len(results), 17, 3)
    built = coco_results_from_arrays(np.array([r["image_id"] for r in results]), keypoints,
                                     np.array([r["score"] for r in results]))
    assert json.loads(json.dumps(built)) == results
    assert coco_keypoint_ap(coco_dataset, built) == coco_keypoint_ap(coco_dataset, results)
    two_columns = coco_results_from_arrays([1], np.zeros((1, 17, 2)), [0.5])
    assert two_columns[0]["keypoints"][2::3] == [1.0] * 17


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("pred_shape", "gt_shape", "message"),
    [
        ((2, 4, 2), (3, 4, 3), "predictions has shape"),
        ((1, 4, 2), (1, 4, 2), "ground_truth must have shape"),
        ((1, 4, 4), (1, 4, 3), "predictions must have shape"),
        ((1, 5, 2), (1, 5, 3), "skeleton 'tiny' has 4"),
    ],
)
def test_mismatched_shapes_raise_value_error_naming_the_argument(pred_shape, gt_shape,
                                                                  message):
    for metric in (pck, pdj, pckh, pcp):
        with pytest.raises(ValueError, match=message):
            metric(np.zeros(pred_shape), np.ones(gt_shape), TINY)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reference": "given", "lengths": [0.0]}, "lengths must be finite and > 0"),
        ({"reference": "given", "lengths": [1.0, 2.0]}, r"lengths must have shape \(N,\)"),
        ({"reference": "given"}, "needs lengths"),
        ({"reference": "box", "boxes": [[0, 0, 0, 10]]}, "boxes must be finite"),
        ({"reference": "box", "boxes": [0, 0, 10, 10]}, r"boxes must have shape \(N, 4\)"),
        ({"boxes": [[0, 0, 10, 10]]}, "boxes is only used with reference='box'"),
        ({"reference": "head"}, "reference must be one of"),
        ({"alpha": -0.1}, "alpha must be"),
    ],
)
def test_bad_pck_normalisation_raises_value_error(kwargs, message):
    pred, gt = _person()
    with pytest.raises(ValueError, match=message):
        pck(pred, gt, TINY, **kwargs)


def test_bad_head_sizes_and_areas_raise_value_error():
    pred, gt = _person()
    with pytest.raises(ValueError, match="head_sizes"):
        pckh(pred, gt, TINY, head_sizes=[-1.0])
    with pytest.raises(ValueError, match="areas"):
        oks(pred, gt, TINY, areas=[0.0])
    with pytest.raises(ValueError, match="sigmas"):
        oks(pred, gt, COCO_17, areas=[10.0])


def test_zero_torso_length_raises_value_error_naming_the_joints():
    truth = TRUTH.copy()
    truth[2, :2] = truth[1, :2]
    pred, gt = _person(truth=truth)
    with pytest.raises(ValueError, match=r"person 0 has its torso joints \('neck', 'hip'\)"):
        pck(pred, gt, TINY)


def test_coco_ap_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "person_keypoints.json"
    with pytest.raises(FileNotFoundError, match="person_keypoints.json"):
        coco_keypoint_ap(missing, [])
    with pytest.raises(FileNotFoundError, match="results.json"):
        coco_keypoint_ap({"images": [], "annotations": []}, tmp_path / "results.json")


def test_coco_ap_non_coco_json_raises_value_error_naming_the_field(tmp_path, coco_dataset):
    path = tmp_path / "not_coco.json"
    path.write_text(json.dumps({"images": [{"id": 1}]}))
    with pytest.raises(ValueError, match="'annotations'"):
        coco_keypoint_ap(path, [])
    no_area = copy.deepcopy(coco_dataset)
    del no_area["annotations"][3]["area"]
    with pytest.raises(ValueError, match=r"annotations\[3\] has no 'area'"):
        coco_keypoint_ap(no_area, [])
    with pytest.raises(ValueError, match="'score'"):
        coco_keypoint_ap(coco_dataset, [{"image_id": 785, "category_id": 1,
                                         "keypoints": [0.0] * 51}])
    with pytest.raises(ValueError, match="not an image of the ground truth"):
        coco_keypoint_ap(coco_dataset, [{"image_id": -5, "category_id": 1,
                                         "keypoints": [0.0] * 51, "score": 1.0}])
    with pytest.raises(ValueError, match="3K = 51"):
        coco_keypoint_ap(coco_dataset, [{"image_id": 785, "category_id": 1,
                                         "keypoints": [0.0] * 42, "score": 1.0}])


def test_metrics_module_imports_neither_tensorflow_nor_matplotlib():
    code = ("import sys, kpose.metrics; "
            "print(sorted(m for m in ('tensorflow', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_metric_result_rejects_inconsistent_counts():
    with pytest.raises(ValueError, match="one entry per part"):
        MetricResult("PCK", ("a", "b"), (1,), (1, 1))
    with pytest.raises(ValueError, match="correct <= total"):
        MetricResult("PCK", ("a",), (2,), (1,))
