"""The main job on built-in data: synthetic people -> train a small CPM (kpose's recipe)
-> evaluate -> predict -> export to int8 TFLite.

No downloads: everything is rendered locally. On a 2-core CPU the default settings take
about eleven minutes and end with a validation PCK@0.2 well above what the mean pose scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kpose.data.coco import read_coco
from kpose.data.pipeline import make_dataset
from kpose.data.specs import LoadedData
from kpose.data.synthetic import write_synthetic_dataset
from kpose.evaluation import evaluate, mean_pose_baseline
from kpose.files import atomic_path
from kpose.prediction import load_image, predict
from kpose.skeletons import COCO_17
from kpose.training import train
from kpose.viz import (draw_pose, plot_belief_maps, plot_history, relative_scores,
                        save_figure)

__all__ = ["quickstart"]


def quickstart(out_dir: str | Path = "kpose_quickstart", *, train_images: int = 1000,
               val_images: int = 200, steps: int = 1800, stages: int = 2,
               input_size: int = 128, width: float = 0.25, batch_size: int = 16,
               learning_rate: float = 1e-3,
               seed: int = 0, overlays: int = 6, export: Callable | None = None) -> dict:
    """Run the whole pipeline on synthetic people and write everything under ``out_dir``.

    Args:
        out_dir: ``data/`` (train and val images), ``run/`` (the training run folder),
            ``report.json`` (validation metrics), ``plots/`` (PCK curves, belief maps
            across stages, training history, ground truth beside prediction),
            ``predictions/`` (overlay PNGs) and ``export/`` (int8 TFLite, checked).
        train_images, val_images: synthetic people to render (different seeds).
        steps: training steps in all (split into epochs of 300 steps, each followed by a
            validation PCK).
        stages, input_size, width, batch_size: the CPM trained (small, for a CPU).
        learning_rate: Adam's rate, constant (kpose's CPM recipe; ``paper=True`` in
            :func:`kpose.train` would train the paper's CPM instead).
        seed: seeds data, weights and augmentation.
        overlays: validation images to predict on and draw.
        export: the exporter (``export.writer.export_model``, which ``kpose quickstart``
            passes in: kpose itself never imports the deployment package) to write
            full-integer int8 TFLite (Edge TPU ready) checked against the Keras model on
            held-out people; ``None`` skips the export.

    Returns:
        The evaluation report, with ``"mean_pose_pck@0.2"`` and ``"seconds"`` added.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    print(f"[1/5] rendering {train_images} + {val_images} synthetic people into "
          f"{out_dir / 'data'}", flush=True)
    train_records = read_coco(write_synthetic_dataset(out_dir / "data" / "train",
                                                      train_images, seed=seed))
    val_records = read_coco(write_synthetic_dataset(out_dir / "data" / "val", val_images,
                                                    seed=seed + 1000))
    train_data = LoadedData(f"synthetic:{train_images}:{seed}", train_records, COCO_17)
    val_data = LoadedData(f"synthetic:{val_images}:{seed + 1000}", val_records, COCO_17)
    baseline = mean_pose_baseline(train_records, val_records, COCO_17)

    epoch_steps = min(300, steps)
    print(f"[2/5] training a {stages}-stage CPM ({input_size} px, width {width}) for "
          f"{steps} steps", flush=True)
    model, _ = train("cpm", train_data, val_data=val_data, out_dir=out_dir / "run",
                     epochs=max(1, steps // epoch_steps), steps_per_epoch=epoch_steps,
                     batch_size=batch_size, input_size=input_size, stages=stages,
                     width=width, learning_rate=learning_rate, seed=seed,
                     strategy="default", verbose=2)

    print("[3/5] evaluating on the held-out people", flush=True)
    plots = out_dir / "plots"
    report = evaluate(model, val_data, plots=plots)
    report["mean_pose_pck@0.2"] = baseline
    report["plots"] += [str(save_figure(plot_history(out_dir / "run"), plots / "history.png")),
                        str(save_figure(_belief_maps_figure(model, val_records[0], input_size),
                                        plots / "belief_maps.png"))]

    print(f"[4/5] predicting on {overlays} images", flush=True)
    picked = val_records[:overlays]
    found = predict(model, [r.image_path for r in picked], [r.box for r in picked])
    written = _draw_overlays(picked, found, out_dir / "predictions")

    if export is not None:
        print("[5/5] exporting to int8 TFLite and checking it against Keras", flush=True)
        exported = export(out_dir / "run", out_dir / "export", quantize="int8",
                                calibration_data=val_data,
                                calibration_samples=100, verify_samples=100)
        report["export"] = {"files": [str(p) for p in exported.files], **exported.report}

    report["seconds"] = round(time.perf_counter() - start, 1)
    with atomic_path(out_dir / "report.json") as temporary:
        temporary.write_text(json.dumps(report, indent=2, default=float) + "\n")
    final = report["final"]
    print(f"\nvalidation PCK@0.2 {final['PCK@0.2']['value']:.3f} "
          f"(PCK@0.1 {final['PCK@0.1']['value']:.3f}); the mean pose scores {baseline:.3f}")
    print(f"run folder:  {out_dir / 'run'} (model.keras, checkpoints/, metrics.csv, logs/)")
    print(f"report:      {out_dir / 'report.json'}")
    print(f"plots:       {plots} ({len(report['plots'])} figures)")
    print(f"predictions: {written[0].parent} ({len(written)} overlays)")
    if export:
        print(f"export:      {out_dir / 'export'} (model.tflite int8, model.json, report.json)")
    print(f"done in {report['seconds'] / 60:.1f} min")
    return report


def _belief_maps_figure(model, record, input_size: int):
    """Wrist and elbow belief maps of every stage for one held-out person."""

    dataset = make_dataset([record], COCO_17, input_size=input_size, training=False,
                           batch_size=1)
    image = next(iter(dataset))[0]
    outputs = model(image, training=False)
    stage_maps = {name: np.asarray(maps)[0] for name, maps in outputs.items()} \
        if isinstance(outputs, dict) else [np.asarray(outputs)[0]]
    return plot_belief_maps(np.asarray(image)[0], stage_maps, COCO_17)


def _draw_overlays(records, keypoints: np.ndarray, folder: Path) -> list[Path]:

    written = []
    for record, found in zip(records, keypoints):
        shown = found[:, :2]
        figure = draw_pose(load_image(record.image_path), shown, COCO_17,
                           scores=relative_scores(found[:, 2]), ground_truth=record.keypoints,
                           title=f"{record.file_name}: prediction (x = truth)")
        written.append(save_figure(figure, folder / f"{Path(record.file_name).stem}.png"))
    return written
