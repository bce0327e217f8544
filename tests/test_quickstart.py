"""The README's main job, shrunk: render, train, evaluate with plots, predict, export."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from export.writer import export_model
from kpose.cli import main
from kpose.quickstart import quickstart


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "out"
    report = quickstart(out, train_images=40, val_images=30, steps=8, stages=2,
                        input_size=64, overlays=2, export=export_model)
    return out, report


def test_quickstart_writes_run_report_plots_predictions_and_export(tiny):
    out, report = tiny
    assert (out / "run" / "model.keras").is_file()
    saved = json.loads((out / "report.json").read_text())
    assert saved["final"]["PCK@0.2"]["value"] == pytest.approx(
        report["final"]["PCK@0.2"]["value"])
    assert 0.0 <= saved["mean_pose_pck@0.2"] <= 1.0
    names = {p.split("/")[-1] for p in saved["plots"]}
    assert {"pck_curve.png", "history.png", "belief_maps.png"} <= names
    for path in saved["plots"] + [str(p) for p in (out / "predictions").glob("*.png")]:
        with Image.open(path) as image:
            assert image.size[0] > 100 and image.size[1] > 100
    assert len(list((out / "predictions").glob("*.png"))) == 2


def test_quickstart_exports_a_checked_int8_tflite(tiny):
    out, report = tiny
    metadata = json.loads((out / "export" / "model.json").read_text())
    assert (out / "export" / "model.tflite").is_file()
    tflite = metadata["files"]["model.tflite"]
    assert tflite["quantization"] == "int8" and tflite["float_ops"] == []
    assert tflite["input"]["dtype"] == "uint8" and tflite["output"]["dtype"] == "uint8"
    assert report["export"]["failed_checks"] == []


def test_quickstart_refuses_a_folder_that_is_not_empty(tiny, capsys):
    out, _ = tiny
    assert main(["quickstart", "--out", str(out), "--steps", "1"]) != 0
    assert "is not empty" in capsys.readouterr().err
