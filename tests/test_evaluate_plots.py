"""``kpose evaluate --plots``: PCK curves per stage and ground truth beside prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.evaluation import evaluate
from kpose.models.cpm import build_cpm
from kpose.skeletons import COCO_17


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained two-stage CPM saved as .keras, and four synthetic people (COCO spec)."""
    folder = tmp_path_factory.mktemp("plots")
    annotations = write_synthetic_dataset(folder / "people", num=4, seed=3, size=96,
                                          progress=False)
    model = build_cpm(COCO_17, stages=2, input_size=64, width=0.25, learning_rate=None)
    path = folder / "tiny.keras"
    model.save(path)
    return path, model, annotations


def _png_size(path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.load()  # a full decode: a truncated file fails here
        assert image.format == "PNG"
        return image.size


def test_cli_evaluate_writes_pck_curve_and_pose_overlays(tiny, tmp_path, capsys):
    path, _, annotations = tiny
    plots, report = tmp_path / "plots", tmp_path / "report.json"
    assert main(["evaluate", str(path), "--data", f"coco:{annotations}", "--plots",
                 str(plots), "--plot-samples", "2", "--json", str(report)]) == 0
    names = sorted(p.name for p in plots.iterdir())
    # Two persons spread over four: the first and the last.
    assert names == ["pck_curve.png", "pose_000_synth_000000.png",
                     "pose_003_synth_000003.png"]
    for name in names:
        width, height = _png_size(plots / name)
        assert width > 300 and height > 200, (name, width, height)
    out = capsys.readouterr().out
    assert f"wrote 3 figures to {plots}" in out
    assert str(plots / "pck_curve.png") in out
    assert json.loads(report.read_text())["plots"] == [str(plots / n) for n in names]
    assert not list(plots.glob(".*")), "no temporary file may be left behind"


def test_pck_curve_has_one_line_per_stage(tiny, tmp_path, monkeypatch):
    """The curve figure gets ``stage 1`` and ``stage 2`` in stage order, thresholds 0..0.5."""
    import kpose.viz

    _, model, annotations = tiny
    seen = {}
    original = kpose.viz.plot_pck_curve

    def spy(curves, skeleton, **kwargs):
        seen.update(curves)
        return original(curves, skeleton, **kwargs)

    monkeypatch.setattr(kpose.viz, "plot_pck_curve", spy)
    data = LoadedData("synthetic people", read_coco(annotations), COCO_17)
    report = evaluate(model, data, plots=tmp_path, plot_samples=0)
    assert report["plots"] == [str(tmp_path / "pck_curve.png")]
    assert list(seen) == ["stage 1", "stage 2"]
    thresholds, overall, per_joint = seen["stage 2"]
    assert thresholds[0] == 0.0 and thresholds[-1] == pytest.approx(0.5)
    assert per_joint.shape == (len(thresholds), 17)
    # The curve at 0.2 is the report's PCK@0.2 for that stage.
    at = int(np.argmin(np.abs(thresholds - 0.2)))
    assert overall[at] == pytest.approx(report["stages"]["stage_2"]["PCK@0.2"])


def test_pckh_curve_when_every_person_has_a_head_box(tiny, tmp_path):
    _, model, annotations = tiny
    from dataclasses import replace

    records = [replace(r, head_size=20.0) for r in read_coco(annotations)]
    report = evaluate(model, LoadedData("with heads", records, COCO_17), plots=tmp_path,
                      plot_samples=1)
    assert [p.rsplit("/", 1)[-1] for p in report["plots"]] == [
        "pck_curve.png", "pckh_curve.png", "pose_000_synth_000000.png"]
    _png_size(tmp_path / "pckh_curve.png")


def test_a_negative_sample_count_is_refused(tiny, tmp_path, capsys):
    path, _, annotations = tiny
    assert main(["evaluate", str(path), "--data", f"coco:{annotations}", "--plots",
                 str(tmp_path), "--plot-samples", "-1"]) == 1
    assert "--plot-samples must be >= 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
