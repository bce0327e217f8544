"""Pose-estimation metrics on keypoint arrays: PCK, PDJ, PCKh, PCP, OKS and COCO keypoint AP.

Plain NumPy: metrics know only arrays of keypoints (and, for COCO AP, the COCO JSON
formats), never models or images.

Array conventions (see DESIGN.md):

* ``ground_truth`` is float ``(N, K, 3)`` of ``(x, y, v)`` in image pixels, with COCO
  visibility ``v``: 0 not labelled, 1 labelled but occluded, 2 visible. Joints with
  ``v == 0`` are excluded from every count, whatever their coordinates.
* ``predictions`` is float ``(N, K, 2)`` or ``(N, K, 3)``; the third column (a score) is
  ignored by the PCK-type metrics and by OKS. A NaN coordinate counts as a miss.
* Row ``n`` of the predictions is the prediction for person ``n`` of the ground truth
  (single-person evaluation); only :func:`coco_keypoint_ap` matches detections to persons.

The fraction metrics return a :class:`MetricResult` holding per-part counts, so results
from several batches or data sets add up with ``+``. The overall value is the fraction
over all scored joints (or limbs) pooled, which is also what MPII's evaluation code calls
the mean (it weights each joint by its count).
"""

from kpose.metrics.coco import COCO_AP_KEYS, coco_keypoint_ap, coco_results_from_arrays, oks
from kpose.metrics.pck import MetricResult, pck, pck_curve, pckh, pcp, pdj

__all__ = ["MetricResult", "pck", "pdj", "pckh", "pcp", "pck_curve", "oks",
           "coco_keypoint_ap", "coco_results_from_arrays", "COCO_AP_KEYS"]
