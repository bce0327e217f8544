"""The ``kpose`` command line: ``synth`` writes a data set and its previews."""

from __future__ import annotations

import json

from kpose.cli import main
from kpose.data import read_coco


def test_synth_writes_a_coco_data_set_the_reader_loads(tmp_path, capsys):
    out = tmp_path / "synthetic"
    assert main(["synth", "--out", str(out), "--num", "3", "--seed", "5", "--size", "64",
                 "--no-preview"]) == 0
    data = json.loads((out / "person_keypoints.json").read_text())
    assert len(data["images"]) == 3
    records = read_coco(out / "person_keypoints.json")
    assert len(records) == 3 and records[0].image_size == (64, 64)
    assert "wrote 3 images" in capsys.readouterr().out
    assert not (out / "preview_samples.png").exists()


def test_synth_draws_sample_and_pipeline_previews(tmp_path):
    out = tmp_path / "synthetic"
    assert main(["synth", "--out", str(out), "--num", "4", "--size", "64"]) == 0
    for name in ("preview_samples.png", "preview_pipeline.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_synth_rejects_a_bad_count_with_a_clear_message(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--num", "0"]) == 1
    assert "--num must be at least 1" in capsys.readouterr().err


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 2
    assert "synth" in capsys.readouterr().out
