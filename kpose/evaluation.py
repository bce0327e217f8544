"""Evaluation: run a model (Keras or exported) over records and score its keypoints.

``predict_stage_keypoints`` and ``predict_record_keypoints`` live in :mod:`kpose.inference`
and :mod:`kpose.data.crop_inference` (training's validation uses them too) and are
re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from kpose.data.crop_inference import predict_record_keypoints
from kpose.data.records import PoseRecord
from kpose.data.specs import LoadedData, load_data_spec
from kpose.inference import check_model_skeleton, predict_stage_keypoints
from kpose.metrics import (coco_keypoint_ap, coco_results_from_arrays, pck, pck_curve, pckh,
                           pcp, pdj)
from kpose.models.card import describe, stage_outputs
from kpose.models.deeppose import build_deeppose_stage_keypoints
from kpose.prediction import (EXPORTED, crop_margin, inference_model, input_size_of,
                              load_image)
from kpose.data.verify import drop_unreadable
from kpose.runs import load_run_model
from kpose.skeletons import Skeleton, get_skeleton

__all__ = ["evaluate", "predict_stages", "predict_stage_keypoints", "predict_record_keypoints",
           "stage_pck_report", "mean_pose_keypoints", "mean_pose_baseline",
           "write_evaluation_plots"]


def evaluate(model_or_path, data, *, flip: bool = False, batch_size: int = 32,
             plots: str | Path | None = None, plot_samples: int = 4,
             skip_corrupt: bool = False, progress: bool = False) -> dict:
    """Score a model on a data set: per stage PCK, and for the last stage every metric the
    data allows.

    Args:
        model_or_path: a trained CPM or DeepPose model, a ``.keras`` file, a run folder, or
            an exported ``.tflite`` / ``.onnx`` file (run through LiteRT / onnxruntime).
        data: a data spec (see :mod:`kpose.data.specs`) or ``LoadedData``.
        flip: average every stage's belief maps with those of the mirrored crop
            (left/right maps swapped back) before decoding.
        plots: a folder to draw PNG figures into: ``pck_curve.png`` (torso PCK against
            the normalised threshold 0..0.5, one line per stage, per-joint bars at 0.2),
            ``pckh_curve.png`` when every person has a head box (MPII ``.mat``), and
            ``pose_<index>_<image>.png`` for ``plot_samples`` persons spread over the data
            (ground truth beside the last stage's prediction, zoomed to the person).
        plot_samples: how many persons get a ``pose_*.png`` (0: none).
        skip_corrupt: leave out the persons of missing or unreadable images (counted);
            without it such an image is an error naming it.
        progress: show a progress bar on standard output for more than 200 persons
            (``kpose evaluate`` does).

    Returns:
        A JSON-serialisable dict: ``"persons"``, ``"stages"`` (per stage of a CPM,
        hourglass or DeepPose cascade, or the one ``keypoints`` output of other models:
        PCK@0.1 and PCK@0.2, torso-normalised, with per-joint values) and ``"final"`` with PCK@0.1,
        PCK@0.2, PDJ@0.2, PCP@0.5, PCKh@0.5 (head boxes where the data has them, else the
        head segment) and, for COCO-style data with areas, the ten COCO AP numbers.
        With ``plots``, also ``"plots"``: the paths of the files written.
    """
    if plot_samples < 0:
        raise ValueError(f"plot_samples must be >= 0, got {plot_samples}")
    loaded = data if isinstance(data, LoadedData) else \
        load_data_spec(data, skip_missing=skip_corrupt)
    model = model_or_path
    if isinstance(model, (str, Path)) and Path(model).suffix in EXPORTED:
        model = inference_model(model)  # the exported file itself, through LiteRT/ONNX
    elif not hasattr(model, "output_names") and not hasattr(model, "input_size"):
        model, _ = load_run_model(model_or_path)
    records, skeleton = loaded.records, loaded.skeleton
    if skip_corrupt:
        records = drop_unreadable(records, skip=True)
    stages = predict_stages(model, records, skeleton, flip=flip, batch_size=batch_size,
                            progress=progress)
    last = stages["keypoints"] if "keypoints" in stages \
        else stages[max(stages, key=_stage_number)]  # an IEF model's last is stage_1
    truth = np.stack([r.keypoints for r in records])
    final = {}
    for name, result in (("PCK@0.1", pck(last, truth, skeleton, alpha=0.1)),
                         ("PCK@0.2", pck(last, truth, skeleton, alpha=0.2)),
                         ("PDJ@0.2", pdj(last, truth, skeleton, fraction=0.2)),
                         ("PCP@0.5", pcp(last, truth, skeleton, alpha=0.5)),
                         ("PCKh@0.5", _pckh(last, truth, records, skeleton))):
        if result is not None:
            final[name] = {"value": result.value, "per_part": result.per_part}
    coco = _coco_ap(last, records)
    if coco is not None:
        final["COCO"] = coco
    report = {"data": loaded.spec, "persons": len(records), "flip": flip,
              "stages": stage_pck_report(stages, records, skeleton), "final": final}
    if plots is not None:
        report["plots"] = write_evaluation_plots(plots, stages, records, skeleton,
                                                 samples=plot_samples)
    return report


def predict_stages(model, records: Sequence[PoseRecord], skeleton: Skeleton | str, *,
                   flip: bool = False, batch_size: int = 32,
                   progress: bool = False) -> dict[str, np.ndarray]:
    """Every stage's keypoints of a loaded model for ``records``, as :func:`evaluate`
    scores them.

    Args:
        model: a Keras model (belief-map family, DeepPose cascade or IEF, or any keypoint
            model) or an exported file's :func:`~kpose.prediction.inference_model`.
        records: the persons, each cropped around its box with the model's margin.
        skeleton: the data's joints; must be the model's.
        flip: average with the mirrored crop's belief maps (belief-map models only).

    Returns:
        ``{"stage_1": (N, K, 3), ...}`` for a model with stages (a DeepPose cascade's
        stages, IEF's iterations, a CPM's or hourglass's stages), else
        ``{"keypoints": (N, K, 3)}``: ``(x, y, score)`` in image pixels, row ``n`` for
        ``records[n]``.
    """
    skeleton = get_skeleton(skeleton)
    input_size = input_size_of(model)
    belief_maps = isinstance(model, keras.Model) and bool(stage_outputs(model)) \
        and describe(model).codec.kind == "belief_maps"
    if flip and not belief_maps:
        raise ValueError("flip averages belief maps; it applies to Keras belief-map "
                         "models (CPM, SimpleBaselines, hourglass) only")
    if belief_maps:
        return predict_stage_keypoints(model, records, skeleton, input_size=input_size,
                                       batch_size=batch_size, flip=flip, progress=progress)
    if isinstance(model, keras.Model) and _is_deeppose(model):
        check_model_skeleton(describe(model).skeleton, skeleton)
        return predict_record_keypoints(
            build_deeppose_stage_keypoints(model), records, skeleton, input_size=input_size,
            batch_size=batch_size,
            decode=lambda outputs: {k: np.asarray(v) for k, v in outputs.items()},
            margin=crop_margin(model), progress=progress)
    keypoint_model = inference_model(model)  # a keypoint model or an exported file
    check_model_skeleton(keypoint_model.skeleton if hasattr(keypoint_model, "skeleton")
                         else describe(keypoint_model).skeleton, skeleton)
    return predict_record_keypoints(
        keypoint_model, records, skeleton, input_size=input_size, batch_size=batch_size,
        decode=lambda outputs: {"keypoints": np.asarray(outputs)},
        margin=crop_margin(keypoint_model), progress=progress)


def write_evaluation_plots(folder: str | Path, stages: dict[str, np.ndarray],
                           records: Sequence[PoseRecord], skeleton: Skeleton | str, *,
                           samples: int = 4) -> list[str]:
    """Draw the PCK curves and a few ground-truth / prediction overlays as PNG files.

    Args:
        folder: where the files go (created when missing; files are written atomically).
        stages: ``{name: (N, K, 2|3)}`` keypoints in image pixels, as
            :func:`predict_stage_keypoints` returns them (``stage_N`` names are drawn in
            stage order; the last one is the prediction in the overlays).
        records: the ``N`` persons, for the ground truth and the images.
        skeleton: their skeleton.
        samples: how many persons get an overlay, spread evenly over ``records``.

    Returns:
        The paths written, as strings: ``pck_curve.png``, ``pckh_curve.png`` (only when
        every record has a ``head_size``) and ``pose_<index>_<image stem>.png``.
    """
    from kpose.viz import plot_pck_curve, save_figure  # matplotlib: loaded only to draw

    skeleton = get_skeleton(skeleton)
    folder = Path(folder)
    truth = np.stack([r.keypoints for r in records])
    names = sorted(stages, key=_stage_number)
    written = []

    def save(figure, name):
        written.append(str(save_figure(figure, folder / name)))

    curves = {_stage_label(n): pck_curve(stages[n], truth, skeleton) for n in names}
    save(plot_pck_curve(curves, skeleton, metric="PCK (torso)"), "pck_curve.png")
    head_sizes = [r.head_size for r in records]
    if all(size is not None and size > 0 for size in head_sizes):
        curves = {_stage_label(n): pck_curve(stages[n], truth, skeleton, reference="given",
                                             lengths=np.asarray(head_sizes))
                  for n in names}
        save(plot_pck_curve(curves, skeleton, metric="PCKh", bar_threshold=0.5),
             "pckh_curve.png")
    last = stages[names[-1]]
    count = min(samples, len(records))
    chosen = np.unique(np.linspace(0, len(records) - 1, count).round().astype(int)) \
        if count else []
    for index in chosen:
        record = records[index]
        figure = _pose_figure(record, last[index], skeleton, _stage_label(names[-1]))
        save(figure, f"pose_{index:03d}_{Path(record.image_path).stem}.png")
    return written


def _is_deeppose(model: keras.Model) -> bool:
    """A Keras DeepPose stage 1 or cascade (not yet wrapped to decode keypoints)."""
    try:
        info = describe(model)
    except ValueError:
        return False
    return info.family == "deeppose" and not (
        len(model.outputs) == 1 and tuple(model.outputs[0].shape[2:]) == (3,))


def _stage_number(name: str) -> int:
    """``stage_3`` -> 3; any other output name sorts first."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if name.startswith("stage_") and tail.isdigit() else 0


def _stage_label(name: str) -> str:
    return f"stage {_stage_number(name)}" if _stage_number(name) else name


def _pose_figure(record: PoseRecord, predicted: np.ndarray, skeleton: Skeleton, label: str):
    """Ground truth (left) beside the prediction (right, true joints as white crosses),
    both zoomed to the person box enlarged by a quarter."""
    # matplotlib: loaded only to draw.
    from matplotlib.figure import Figure

    from kpose.viz import draw_pose, relative_scores

    image = load_image(record.image_path)
    predicted = np.asarray(predicted, np.float32)
    shown = predicted[:, :2]
    scores = relative_scores(predicted[:, 2]) if predicted.shape[1] > 2 else None
    figure = Figure(figsize=(8, 4.4))
    truth_ax, predicted_ax = figure.subplots(1, 2)
    draw_pose(image, record.keypoints, skeleton, ax=truth_ax, title="ground truth")
    draw_pose(image, shown, skeleton, ax=predicted_ax, scores=scores,
              ground_truth=record.keypoints, title=f"prediction ({label})")
    x, y, w, h = record.box
    half = 0.625 * max(w, h)
    for ax in (truth_ax, predicted_ax):
        ax.set_xlim(x + w / 2 - half, x + w / 2 + half)
        ax.set_ylim(y + h / 2 + half, y + h / 2 - half)  # image rows grow downwards
    figure.suptitle(Path(record.image_path).name, fontsize=9)
    figure.tight_layout(pad=0.4)
    return figure


def mean_pose_keypoints(train: Sequence[PoseRecord], val: Sequence[PoseRecord]
                        ) -> np.ndarray:
    """The training set's mean pose placed in every val box: ``(N_val, K, 2)`` image px.

    The mean is taken of the labelled joints normalised to each person's box (centre and
    size); it is what a model that ignores the image can reach.
    """
    def normalised(record):
        x, y, w, h = record.box
        return (record.keypoints[:, :2] - (x + w / 2, y + h / 2)) / (w, h)

    points = np.stack([normalised(r) for r in train])
    weights = np.stack([r.labelled for r in train]).astype(np.float64)[..., None]
    mean = (points * weights).sum(0) / np.maximum(weights.sum(0), 1)
    return np.stack([mean * (r.box[2], r.box[3]) + (r.box[0] + r.box[2] / 2,
                                                    r.box[1] + r.box[3] / 2)
                     for r in val])


def mean_pose_baseline(train: Sequence[PoseRecord], val: Sequence[PoseRecord],
                       skeleton: Skeleton | str, *, alpha: float = 0.2) -> float:
    """PCK@alpha (torso) of :func:`mean_pose_keypoints`: a trained model must beat it
    clearly."""
    skeleton = get_skeleton(skeleton)
    truth = np.stack([r.keypoints for r in val])
    return pck(mean_pose_keypoints(train, val), truth, skeleton, alpha=alpha).value


def stage_pck_report(predictions: dict[str, np.ndarray], records: Sequence[PoseRecord],
                     skeleton: Skeleton | str, *, alphas: Sequence[float] = (0.1, 0.2)
                     ) -> dict[str, dict]:
    """Torso-normalised PCK per stage, overall and per joint.

    Returns:
        ``{stage: {"PCK@0.1": value, "PCK@0.1 per joint": {joint: value}, ...}}``.
    """
    skeleton = get_skeleton(skeleton)
    truth = np.stack([r.keypoints for r in records])
    report = {}
    for name, keypoints in predictions.items():
        row = {}
        for alpha in alphas:
            result = pck(keypoints, truth, skeleton, alpha=alpha)
            row[f"PCK@{alpha:g}"] = result.value
            row[f"PCK@{alpha:g} per joint"] = result.per_part
        report[name] = row
    return report


def _pckh(predictions, truth, records, skeleton):
    head_sizes = [r.head_size for r in records]
    if all(size is not None for size in head_sizes):
        return pckh(predictions, truth, skeleton, head_sizes=np.asarray(head_sizes))
    a, b = skeleton.head
    if not np.any((truth[:, a, 2] > 0) & (truth[:, b, 2] > 0)):
        return None
    usable = (truth[:, a, 2] > 0) & (truth[:, b, 2] > 0) & np.any(
        truth[:, a, :2] != truth[:, b, :2], axis=1)
    return pckh(predictions[usable], truth[usable], skeleton)


def _coco_ap(predictions, records):
    """The ten COCO AP numbers when the records come from a COCO-style file."""
    if any(r.area is None or r.image_id is None or r.annotation_id is None for r in records):
        return None
    if records[0].keypoints.shape[0] != 17:
        return None
    images = {r.image_id: r for r in records}
    ground_truth = {
        "images": [{"id": i, "width": r.image_size[0], "height": r.image_size[1]}
                   for i, r in images.items()],
        "annotations": [{"id": r.annotation_id, "image_id": r.image_id, "category_id": 1,
                         "iscrowd": 0, "area": r.area, "bbox": list(r.box),
                         "num_keypoints": int(r.labelled.sum()),
                         "keypoints": r.keypoints.reshape(-1).tolist()} for r in records],
        "categories": [{"id": 1, "name": "person"}],
    }
    scores = predictions[..., 2].mean(axis=1)
    results = coco_results_from_arrays([r.image_id for r in records], predictions, scores)
    return coco_keypoint_ap(ground_truth, results)
