"""The PCK family on keypoint arrays: PCK, PDJ, PCKh, PCP and PCK curves.

Array conventions and how results add up: see :mod:`kpose.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kpose.metrics.arrays import (check_boxes, check_keypoints, check_threshold,
                                  fraction_correct, positive_per_person)
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["MetricResult", "pck", "pdj", "pckh", "pcp", "pck_curve"]

_REFERENCES = ("torso", "box", "given")


@dataclass(frozen=True)
class MetricResult:
    """Fraction of correct parts (joints, or limbs for PCP), overall and per part.

    Attributes:
        metric: what was measured, e.g. ``"PCK@0.2 (torso)"``.
        parts: ``P`` part names: the skeleton's joint names, or its limb names for PCP.
        correct: ``P`` counts of parts judged correct.
        total: ``P`` counts of parts scored (labelled in the ground truth, and belonging to
            a person with a usable normalisation length).

    ``a + b`` pools the counts of two results of the same metric and parts, so a data set
    can be scored batch by batch.
    """

    metric: str
    parts: tuple[str, ...]
    correct: tuple[int, ...]
    total: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.parts))
        object.__setattr__(self, "correct", tuple(int(c) for c in self.correct))
        object.__setattr__(self, "total", tuple(int(t) for t in self.total))
        if not len(self.parts) == len(self.correct) == len(self.total):
            raise ValueError(
                f"MetricResult: parts, correct and total must have one entry per part, got "
                f"{len(self.parts)}, {len(self.correct)} and {len(self.total)}"
            )
        if any(not 0 <= c <= t for c, t in zip(self.correct, self.total)):
            raise ValueError("MetricResult: expected 0 <= correct <= total for every part")

    @property
    def value(self) -> float:
        """Pooled fraction correct over all scored parts, in [0, 1]; NaN if none was scored."""
        return fraction_correct(sum(self.correct), sum(self.total))

    @property
    def num_correct(self) -> int:
        return sum(self.correct)

    @property
    def num_total(self) -> int:
        return sum(self.total)

    @property
    def per_part(self) -> dict[str, float]:
        """Fraction correct for each part by name; NaN for a part that was never scored."""
        return {p: fraction_correct(c, t) for p, c, t in zip(self.parts, self.correct, self.total)}

    def __float__(self) -> float:
        return self.value

    def __add__(self, other: MetricResult) -> MetricResult:
        if not isinstance(other, MetricResult):
            return NotImplemented
        if (self.metric, self.parts) != (other.metric, other.parts):
            raise ValueError(
                f"cannot add {other.metric!r} over {len(other.parts)} parts to "
                f"{self.metric!r} over {len(self.parts)} parts: metric and parts must match"
            )
        return MetricResult(
            self.metric,
            self.parts,
            tuple(a + b for a, b in zip(self.correct, other.correct)),
            tuple(a + b for a, b in zip(self.total, other.total)),
        )


def pck(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton: Skeleton | str,
    *,
    alpha: float = 0.2,
    reference: str = "torso",
    boxes: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> MetricResult:
    """Percentage of Correct Keypoints: a joint is correct when its error <= ``alpha * L``.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton: the layout of the ``K`` joints (a :class:`Skeleton` or its name).
        alpha: threshold as a fraction of the reference length ``L``.
        reference: how ``L`` (pixels, one per person) is obtained:

            * ``"torso"``: distance between the skeleton's ``torso`` joints in the ground
              truth. Persons whose torso joints are not both labelled are excluded
              entirely (none of their joints is counted).
            * ``"box"``: ``max(w, h)`` of the person box, as in Yang & Ramanan's PCK;
              needs ``boxes``.
            * ``"given"``: ``lengths``.
        boxes: ``(N, 4)`` person boxes ``(x, y, w, h)`` in pixels, for ``reference="box"``.
        lengths: ``(N,)`` positive reference lengths in pixels, for ``reference="given"``.

    Returns:
        A :class:`MetricResult` with one part per joint.
    """
    skeleton = get_skeleton(skeleton)
    pred, gt = check_keypoints(predictions, ground_truth, skeleton)
    check_threshold(alpha, "alpha")
    ref = _reference_lengths(gt, skeleton, reference, boxes, lengths)
    correct, counted = _joints_within(pred, gt, ref, np.array([alpha]), strict=False)
    return _joint_result(f"PCK@{alpha:g} ({reference})", skeleton, correct[0], counted)


def pdj(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton: Skeleton | str,
    *,
    fraction: float = 0.2,
) -> MetricResult:
    """DeepPose's Percentage of Detected Joints: error < ``fraction`` x torso diameter.

    The torso diameter is the distance between the skeleton's ``torso`` joints in the
    ground truth (DeepPose: left shoulder to right hip); persons whose torso joints are not
    both labelled are excluded. The comparison is strict, as in the paper; otherwise this
    is torso-normalised :func:`pck`.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton: the layout of the ``K`` joints.
        fraction: threshold as a fraction of the torso diameter.

    Returns:
        A :class:`MetricResult` with one part per joint.
    """
    skeleton = get_skeleton(skeleton)
    pred, gt = check_keypoints(predictions, ground_truth, skeleton)
    check_threshold(fraction, "fraction")
    ref = _segment_lengths(gt, skeleton, skeleton.torso, "torso")
    correct, counted = _joints_within(pred, gt, ref, np.array([fraction]), strict=True)
    return _joint_result(f"PDJ@{fraction:g}", skeleton, correct[0], counted)


def pckh(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton: Skeleton | str,
    *,
    alpha: float = 0.5,
    head_sizes: np.ndarray | None = None,
) -> MetricResult:
    """PCKh: a joint is correct when its error <= ``alpha`` x the person's head size.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton: the layout of the ``K`` joints.
        alpha: threshold as a fraction of the head size (PCKh@0.5 by default).
        head_sizes: ``(N,)`` positive head sizes in pixels. MPII's are 0.6 x the diagonal
            of the annotated head box (its evaluation code's ``SC_BIAS``). When ``None``,
            the length of the skeleton's ``head`` segment in the ground truth is used, and
            persons whose head joints are not both labelled are excluded.

    Returns:
        A :class:`MetricResult` with one part per joint.
    """
    skeleton = get_skeleton(skeleton)
    pred, gt = check_keypoints(predictions, ground_truth, skeleton)
    check_threshold(alpha, "alpha")
    if head_sizes is None:
        ref = _segment_lengths(gt, skeleton, skeleton.head, "head")
    else:
        ref = positive_per_person(head_sizes, len(gt), "head_sizes")
    correct, counted = _joints_within(pred, gt, ref, np.array([alpha]), strict=False)
    return _joint_result(f"PCKh@{alpha:g}", skeleton, correct[0], counted)


def pcp(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton: Skeleton | str,
    *,
    alpha: float = 0.5,
) -> MetricResult:
    """Strict Percentage of Correct Parts over the skeleton's ``limbs``.

    A limb is correct when *both* predicted end points lie within ``alpha`` x the true limb
    length of their true positions (distances <= the threshold). Limbs with an unlabelled
    end point in the ground truth are excluded. A zero-length true limb is only correct
    when both end points are exact: PCP is known to punish foreshortened limbs.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton: the layout of the ``K`` joints; must define ``limbs``.
        alpha: threshold as a fraction of the true limb length.

    Returns:
        A :class:`MetricResult` with one part per limb, named by the skeleton's limb names.
    """
    skeleton = get_skeleton(skeleton)
    pred, gt = check_keypoints(predictions, ground_truth, skeleton)
    check_threshold(alpha, "alpha")
    if not skeleton.limbs:
        raise ValueError(f"skeleton {skeleton.name!r} defines no limbs; PCP needs limbs")
    names = tuple(name for name, _, _ in skeleton.limbs)
    a = np.array([limb[1] for limb in skeleton.limbs])
    b = np.array([limb[2] for limb in skeleton.limbs])
    errors = _distances(pred, gt)  # (N, K)
    limb_length = np.hypot(*(gt[:, a, :2] - gt[:, b, :2]).transpose(2, 0, 1))  # (N, L)
    labelled = gt[..., 2] > 0
    counted = labelled[:, a] & labelled[:, b]
    limit = alpha * limb_length
    correct = counted & (errors[:, a] <= limit) & (errors[:, b] <= limit)
    return MetricResult(f"PCP@{alpha:g}", names, correct.sum(axis=0), counted.sum(axis=0))


def pck_curve(
    predictions: np.ndarray,
    ground_truth: np.ndarray,
    skeleton: Skeleton | str,
    *,
    thresholds: np.ndarray | None = None,
    reference: str = "torso",
    boxes: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    strict: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCK (or PDJ) as a function of the threshold, for plotting.

    ``reference``, ``boxes`` and ``lengths`` mean what they mean in :func:`pck`. PDJ curves
    are ``reference="torso", strict=True``; PCKh curves are ``reference="given",
    lengths=head_sizes``.

    Args:
        predictions: ``(N, K, 2)`` or ``(N, K, 3)`` predicted joints in image pixels.
        ground_truth: ``(N, K, 3)`` true joints ``(x, y, v)`` in image pixels.
        skeleton: the layout of the ``K`` joints.
        thresholds: ``(T,)`` non-negative fractions of the reference length; default
            ``0, 0.01, ..., 0.5``.
        strict: count ``error < t * L`` (PDJ) instead of ``error <= t * L`` (PCK).

    Returns:
        ``(thresholds, overall, per_joint)``: float64 arrays of shapes ``(T,)``, ``(T,)``
        and ``(T, K)`` (joints in skeleton order); NaN where nothing was scored.
    """
    skeleton = get_skeleton(skeleton)
    pred, gt = check_keypoints(predictions, ground_truth, skeleton)
    if thresholds is None:
        thresholds = np.linspace(0.0, 0.5, 51)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim != 1 or not np.all(np.isfinite(thresholds)) or np.any(thresholds < 0):
        raise ValueError(f"thresholds must be a 1-D array of finite values >= 0, got "
                         f"{thresholds!r}")
    ref = _reference_lengths(gt, skeleton, reference, boxes, lengths)
    correct, counted = _joints_within(pred, gt, ref, thresholds, strict=strict)
    hits = correct.sum(axis=1)  # (T, K)
    scored = counted.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 -> NaN: nothing scored
        per_joint = hits / scored
        overall = hits.sum(axis=1) / scored.sum()
    return thresholds, overall.astype(np.float64), per_joint.astype(np.float64)


def _reference_lengths(
    gt: np.ndarray, skeleton: Skeleton, reference: str, boxes: Any, lengths: Any
) -> np.ndarray:
    """``(N,)`` PCK reference length per person in pixels; NaN marks an excluded person."""
    if reference not in _REFERENCES:
        raise ValueError(f"reference must be one of {list(_REFERENCES)}, got {reference!r}")
    # An argument that the chosen reference ignores is almost surely a mistake: say so.
    if boxes is not None and reference != "box":
        raise ValueError(f"boxes is only used with reference='box', not {reference!r}")
    if lengths is not None and reference != "given":
        raise ValueError(f"lengths is only used with reference='given', not {reference!r}")
    if reference == "torso":
        return _segment_lengths(gt, skeleton, skeleton.torso, "torso")
    if reference == "box":
        if boxes is None:
            raise ValueError("reference='box' needs boxes, an (N, 4) array of (x, y, w, h)")
        return check_boxes(boxes, len(gt))[:, 2:].max(axis=1)
    if lengths is None:
        raise ValueError("reference='given' needs lengths, an (N,) array of pixels")
    return positive_per_person(lengths, len(gt), "lengths")


def _segment_lengths(
    gt: np.ndarray, skeleton: Skeleton, pair: tuple[int, int], what: str
) -> np.ndarray:
    """``(N,)`` true length of the ``pair`` segment; NaN where an end point is unlabelled."""
    a, b = pair
    length = np.hypot(gt[:, a, 0] - gt[:, b, 0], gt[:, a, 1] - gt[:, b, 1])
    usable = (gt[:, a, 2] > 0) & (gt[:, b, 2] > 0)
    degenerate = np.flatnonzero(usable & ~(length > 0))
    if len(degenerate):
        names = (skeleton.joint_names[a], skeleton.joint_names[b])
        raise ValueError(
            f"ground_truth: person {degenerate[0]} has its {what} joints {names} at the same "
            f"position; the {what} length normalises the errors and must be > 0"
        )
    return np.where(usable, length, np.nan)


def _distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(N, K)`` Euclidean error in pixels."""
    return np.hypot(pred[..., 0] - gt[..., 0], pred[..., 1] - gt[..., 1])


def _joints_within(
    pred: np.ndarray, gt: np.ndarray, ref: np.ndarray, thresholds: np.ndarray, strict: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``(T, N, K)`` for each threshold and the scored mask ``(N, K)``."""
    counted = (gt[..., 2] > 0) & np.isfinite(ref)[:, None]
    errors = _distances(pred, gt)[None]
    limit = thresholds[:, None, None] * ref[None, :, None]
    # NaN errors (missing predictions) and NaN limits (excluded persons) compare False.
    within = errors < limit if strict else errors <= limit
    return within & counted[None], counted


def _joint_result(
    metric: str, skeleton: Skeleton, correct: np.ndarray, counted: np.ndarray
) -> MetricResult:
    return MetricResult(metric, skeleton.joint_names, correct.sum(axis=0), counted.sum(axis=0))
