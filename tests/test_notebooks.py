"""The Colab notebooks: stored clean, and runnable top to bottom (headless, smoke sizes).

Each notebook reads ``KPOSE_NOTEBOOK_SMOKE=1`` and shrinks its data and steps, so a run
takes well under a minute; the kernel inherits the variable from this process. A failing
cell fails the test with its source and error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed "
                               "(pip install -e '.[dev]')")

COLAB = Path(__file__).resolve().parents[1] / "colab"
NOTEBOOKS = ("train_cpm", "deeppose_cascade", "export_edge")
INSTALL_LINE = '!pip install -q "kpose @ git+https://github.com/kpose/kpose"'


def _read(name: str):
    return nbformat.read(COLAB / f"{name}.ipynb", as_version=4)


def _stdout(nb) -> str:
    return "".join(output.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                   for output in cell.get("outputs", [])
                   if output.get("output_type") == "stream" and output.get("name") == "stdout")


def _figures(nb) -> int:
    return sum("image/png" in output.get("data", {}) for cell in nb.cells
               if cell.cell_type == "code" for output in cell.get("outputs", []))


def _execute(name: str, folder: Path, monkeypatch):
    """Run the notebook in ``folder`` with smoke sizes; fail naming the cell that raised."""
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed "
                                   "(pip install -e '.[dev]')")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed "
                        "(pip install -e '.[dev]')")
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("KPOSE_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("KPOSE_CACHE", str(folder / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = _read(name)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    except CellExecutionError as error:
        failed = next((cell for cell in nb.cells if cell.cell_type == "code" and any(
            output.get("output_type") == "error" for output in cell.get("outputs", []))),
            None)
        where = f"cell source:\n{failed.source}\n" if failed is not None else ""
        pytest.fail(f"{name}.ipynb failed in smoke mode.\n{where}error:\n{error}",
                    pytrace=False)
    return nb


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_without_outputs_and_installs_only_in_colab(name):
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
    install = code[0].source
    assert '"google.colab" in sys.modules' in install and INSTALL_LINE in install
    assert 'os.environ.get("KPOSE_NOTEBOOK_SMOKE") == "1"' in code[1].source
    text = "\n".join(cell.source for cell in nb.cells)
    assert "/work/" not in text and "/tmp/" not in text, "no machine paths in a notebook"


def test_train_cpm_trains_evaluates_and_exports_a_checked_int8_file(tmp_path, monkeypatch):
    nb = _execute("train_cpm", tmp_path, monkeypatch)
    work = tmp_path / "kpose_notebooks" / "train_cpm"
    for name in ("cpm.keras", "metrics.csv", "export_int8/model.tflite",
                 "export_int8/model.json", "export_int8/report.json"):
        assert (work / name).is_file(), name
    metadata = json.loads((work / "export_int8" / "model.json").read_text())
    assert metadata["files"]["model.tflite"]["quantization"] == "int8"
    printed = _stdout(nb)
    for line in ("stage_2: PCK@0.1", "PCK@0.2", "int8 TFLite", "int8 vs this: max"):
        assert line in printed, line
    # sample grid, history, PCK curves, belief maps, overlays
    assert _figures(nb) >= 5


def test_deeppose_cascade_trains_every_stage_and_scores_pdj(tmp_path, monkeypatch):
    nb = _execute("deeppose_cascade", tmp_path, monkeypatch)
    work = tmp_path / "kpose_notebooks" / "deeppose_cascade"
    assert (work / "deeppose_cascade.keras").is_file()
    printed = _stdout(nb)
    for stage in (1, 2, 3):
        assert f"stage_{stage}: PDJ@0.1" in printed, stage
    assert "largest difference to the last stage: 0.0" in printed
    # refiner crops, PDJ curves, refinement panels
    assert _figures(nb) >= 3


def test_export_edge_writes_every_format_and_the_edgetpu_report(tmp_path, monkeypatch):
    nb = _execute("export_edge", tmp_path, monkeypatch)
    exports = tmp_path / "kpose_notebooks" / "export_edge" / "exports"
    for label in ("float32", "float16", "dynamic", "int8"):
        assert (exports / label / "model.tflite").is_file(), label
        metadata = json.loads((exports / label / "model.json").read_text())
        expected = "none" if label == "float32" else label
        assert metadata["files"]["model.tflite"]["quantization"] == expected
    assert (exports / "float32" / "model.onnx").is_file()
    printed = _stdout(nb)
    assert "Edge TPU check:" in printed and "| int8 | model.tflite |" in printed
    assert "by hand vs kpose.runtime: largest difference 0.0" in printed
