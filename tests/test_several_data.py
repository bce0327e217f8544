"""Training on several data specs at once: pooled by size, mapped by joint name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.records import PoseRecord
from kpose.data.specs import LoadedData, load_data_specs, map_to_skeleton
from kpose.skeletons import COCO_17, LSP_14, MPII_16
from kpose.training import train

SMALL = dict(input_size=64, stages=1, width=0.25, batch_size=4, steps_per_epoch=2,
             strategy="default", verbose=0)


def _people(skeleton, count: int, spec: str) -> LoadedData:
    """``count`` persons whose joint k sits at (k, 100 + k) (visibility 2)."""
    keypoints = np.stack([np.arange(skeleton.num_joints), 100 + np.arange(skeleton.num_joints),
                          np.full(skeleton.num_joints, 2)], axis=1)
    records = [PoseRecord(f"img{i}.jpg", (0, 0, 50, 150), keypoints, skeleton.name, (200, 200))
               for i in range(count)]
    return LoadedData(spec, records, skeleton)


def test_mpii_persons_are_mapped_onto_lsp_joints_by_name():
    mapped = map_to_skeleton(_people(MPII_16, 2, "mpii"), LSP_14)
    assert mapped.skeleton == LSP_14
    for record in mapped.records:
        assert record.skeleton == "lsp_14" and record.keypoints.shape == (14, 3)
        for row, name in enumerate(LSP_14.joint_names):
            source = "upper_neck" if name == "neck" else name  # the one synonym
            assert record.keypoints[row, 0] == MPII_16.joint_names.index(source), name


def test_several_specs_are_pooled_so_each_is_sampled_by_its_size(capsys):
    lsp, mpii = _people(LSP_14, 6, "lsp-ish"), _people(MPII_16, 2, "mpii-ish")
    pooled = load_data_specs([lsp, mpii], verbose=True)
    assert len(pooled.records) == 8 and pooled.skeleton == LSP_14
    assert pooled.spec == "lsp-ish + mpii-ish"
    assert {r.skeleton for r in pooled.records} == {"lsp_14"}
    printed = capsys.readouterr().out
    assert "lsp-ish: 6 persons (75 %" in printed and "mpii-ish: 2 persons (25 %" in printed


def test_a_skeleton_that_lacks_joints_of_the_model_is_refused_naming_them():
    with pytest.raises(ValueError, match="lacks joints neck, head_top of 'lsp_14'"):
        load_data_specs([_people(LSP_14, 2, "lsp"), _people(COCO_17, 2, "coco")])


def test_train_on_two_specs_through_the_api_records_both(tmp_path):
    folder = tmp_path / "people"
    records = read_coco(write_synthetic_dataset(folder, num=6, seed=3, size=96,
                                                progress=False))
    first = LoadedData("a", records[:4], COCO_17)
    second = LoadedData("b", records[4:], COCO_17)
    out = tmp_path / "run"
    model, history = train("simplebaseline", [first, second], out_dir=out, epochs=1,
                           backbone="mobilenetv2", **SMALL)
    assert json.loads((out / "config.json").read_text())["data"] == ["a", "b"]
    assert np.isfinite(history["loss"]).all()
    # The same two specs resume the run; one of them alone is another run.
    train("simplebaseline", [first, second], out_dir=out, epochs=2, resume=True,
          backbone="mobilenetv2", **SMALL)
    with pytest.raises(ValueError):
        train("simplebaseline", first, out_dir=out, epochs=3, resume=True,
              backbone="mobilenetv2", **SMALL)


def test_cli_trains_on_lspet_and_mpii_together(realdata, tmp_path, capsys):
    lspet = realdata / "lspet_bench"
    if not (lspet / "joints_val.mat").is_file():
        pytest.skip(f"lspet_bench not found at {lspet}")
    out = tmp_path / "run"
    status = main(["train", "--model", "simplebaseline", "--backbone", "mobilenetv2",
                   "--data", f"lspet:{lspet / 'joints_val.mat'}:{lspet / 'images'}:4001",
                   "--data", f"mpii:{realdata / 'mpii/test_mpii.json'}:"
                             f"{realdata / 'mpii/images'}",
                   "--out", str(out), "--input-size", "64", "--width", "0.25",
                   "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "4"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "joints_val.mat:" in printed and ": 500 persons" in printed
    assert "test_mpii.json" in printed and ": 3 persons" in printed
    config = json.loads((out / "config.json").read_text())
    assert len(config["data"]) == 2 and config["skeleton"] == "lsp_14"


def test_cli_refuses_a_skeleton_it_cannot_map_in_one_line(realdata, tmp_path, capsys):
    lspet = realdata / "lspet_bench"
    if not (lspet / "joints_val.mat").is_file():
        pytest.skip(f"lspet_bench not found at {lspet}")
    out = tmp_path / "run"
    status = main(["train", "--model", "simplebaseline",
                   "--data", f"lspet:{lspet / 'joints_val.mat'}:{lspet / 'images'}:4001",
                   "--data", f"coco:{realdata / 'coco/test_coco.json'}",
                   "--out", str(out), "--epochs", "1"])
    assert status == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "test_coco.json" in error and "lacks joints neck, head_top" in error
    assert not out.exists()
