"""Every bad input gets one line: a matrix of wrong arguments, files and data through the
real command lines (``kpose`` and ``kpose-export``, in-process).

Each case asserts a non-zero exit, exactly one line on stderr and no traceback, the
offending argument or file named in it, and that no file under the test's folder was
changed, added or removed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from export.cli import main as export_main
from kpose.cli import main as kpose_main
from kpose.data import write_synthetic_dataset
from kpose.models.simplebaseline import build_simplebaseline
from kpose.skeletons import LSP_14
from kpose.training import train

TINY = ["--width", "0.25", "--stages", "2", "--input-size", "64", "--epochs", "1",
        "--steps-per-epoch", "2", "--batch-size", "4", "--strategy", "default"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A folder of good and bad inputs, and a trained tiny run."""
    root = tmp_path_factory.mktemp("world")
    annotations = write_synthetic_dataset(root / "people", num=4, seed=3, size=64,
                                          progress=False)
    good = json.loads(annotations.read_text())
    paths = {"root": root, "coco": annotations, "images": root / "people" / "images"}

    def coco_variant(name: str, edit) -> None:
        data = json.loads(json.dumps(good))
        edit(data)
        path = root / "people" / f"{name}.json"
        path.write_text(json.dumps(data))
        paths[name] = path

    coco_variant("short_keypoints", lambda d: d["annotations"][0].update(
        keypoints=d["annotations"][0]["keypoints"][:-3]))
    coco_variant("nan_keypoints", lambda d: d["annotations"][0]["keypoints"].__setitem__(
        0, float("nan")))
    coco_variant("inf_keypoints", lambda d: d["annotations"][0]["keypoints"].__setitem__(
        1, float("inf")))
    coco_variant("bad_visibility", lambda d: d["annotations"][0]["keypoints"].__setitem__(
        2, 5))
    coco_variant("far_keypoints", lambda d: d["annotations"][0]["keypoints"].__setitem__(
        0, 1e9))
    coco_variant("huge_box", lambda d: d["annotations"][0].update(bbox=[0, 0, 1e12, 1e12]))
    coco_variant("no_annotations", lambda d: d.update(annotations=[]))
    coco_variant("missing_image", lambda d: d["images"][0].update(file_name="gone.jpg"))
    coco_variant("orphan_annotation", lambda d: d["annotations"][0].update(image_id=999))
    first = sorted(paths["images"].iterdir())[0]
    (root / "people" / "truncated.jpg").write_bytes(first.read_bytes()[:300])
    (root / "people" / "empty.jpg").write_bytes(b"")
    coco_variant("truncated_image", lambda d: d["images"][0].update(
        file_name="../truncated.jpg"))
    coco_variant("empty_image", lambda d: d["images"][0].update(file_name="../empty.jpg"))
    Image.new("RGB", (1, 1)).save(root / "people" / "tiny.jpg")
    coco_variant("wrong_size", lambda d: d["images"][0].update(file_name="../tiny.jpg"))
    (root / "not_json.json").write_text("{ this is not json")
    paths["not_json"] = root / "not_json.json"
    savemat(root / "wrong_variable.mat", {"points": np.zeros((3, 14, 4))})
    savemat(root / "wrong_shape.mat", {"joints": np.zeros((3, 7, 4))})
    paths["wrong_variable"], paths["wrong_shape"] = root / "wrong_variable.mat", \
        root / "wrong_shape.mat"
    # MATLAB v7.3 files are HDF5 files with a 512-byte MATLAB header in front.
    import h5py

    with h5py.File(root / "v73.mat", "w", userblock_size=512) as handle:
        handle["joints"] = np.zeros((4, 14, 3))
    with open(root / "v73.mat", "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Dec  5 "
                     b"HDF5 schema 1.00 .".ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    paths["v73"] = root / "v73.mat"
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    paths["broken_image"] = root / "broken.jpg"
    (root / "garbage.keras").write_bytes(b"not a zip archive")
    paths["garbage_keras"] = root / "garbage.keras"
    import zipfile

    with zipfile.ZipFile(root / "no_config.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    paths["no_config_keras"] = root / "no_config.keras"
    (root / "garbage.tflite").write_bytes(b"not a flatbuffer")
    paths["garbage_tflite"] = root / "garbage.tflite"
    (root / "a_file").write_text("a file where a folder should be")
    paths["a_file"] = root / "a_file"
    mine = root / "mine"
    mine.mkdir()
    (mine / "model.keras").write_bytes(b"the user's own model")
    paths["mine"] = mine
    results = root / "results"
    results.mkdir()
    (results / "notes.txt").write_text("the user's notes")
    paths["results"] = results
    overlays = root / "overlays"
    overlays.mkdir()
    (overlays / f"{first.stem}_pose.png").write_bytes(b"the user's own picture")
    paths["overlays"], paths["first_image"] = overlays, first
    lsp_model = root / "lsp_model.keras"
    build_simplebaseline(LSP_14, input_size=64, width=0.125, depth=10).save(lsp_model)
    paths["lsp_model"] = lsp_model
    run = root / "run"
    train("cpm", f"coco:{annotations}", out_dir=run, input_size=64, stages=2, width=0.25,
          epochs=1, steps_per_epoch=2, batch_size=4, strategy="default", verbose=0)
    paths["run"] = run
    return paths


def coco(world, name="coco"):
    return f"coco:{world[name]}:{world['images']}"


def train_new(world, *extra, data=None):
    """``kpose train`` of the tiny CPM into a new folder, on ``data`` (default: the good
    COCO people), with ``extra`` arguments last."""
    return ["train", "--data", data or coco(world), "--out", str(world["root"] / "new"),
            *TINY, *extra]


# (case id, command ("kpose" or "kpose-export"), argv from the world, what the line names)
CASES = [
    # Numbers and choices.
    ("steps-per-epoch-0", "kpose", lambda w: train_new(w, "--steps-per-epoch", "0"),
     "steps_per_epoch"),
    ("epochs-0", "kpose", lambda w: train_new(w, "--epochs", "0"), "epochs"),
    ("epochs-negative", "kpose", lambda w: train_new(w, "--epochs", "-3"), "epochs"),
    ("lr-negative", "kpose", lambda w: train_new(w, "--lr", "-1"), "learning_rate"),
    ("lr-nan", "kpose", lambda w: train_new(w, "--lr", "nan"), "learning_rate"),
    ("batch-size-0", "kpose", lambda w: train_new(w, "--batch-size", "0"), "batch_size"),
    ("width-0", "kpose", lambda w: train_new(w, "--width", "0"), "width"),
    ("width-huge", "kpose", lambda w: train_new(w, "--width", "1e12"), "width must be at most"),
    ("input-size-huge", "kpose", lambda w: train_new(w, "--input-size", "100000"),
     "input_size must be at most"),
    ("lr-huge", "kpose", lambda w: train_new(w, "--lr", "1e12"), "learning_rate must be at"),
    ("init-missing-model", "kpose", lambda w: train_new(w, "--init", str(w["root"] / "no.keras")),
     "no.keras"),
    ("teacher-other-skeleton", "kpose", lambda w: train_new(w, "--teacher", str(w["lsp_model"])),
     "predicts skeleton 'lsp_14'"),
    ("distill-weight-above-1", "kpose", lambda w: train_new(w, "--teacher", str(w["run"]),
     "--distill-weight", "2"), "distill_weight"),
    ("sigma-negative", "kpose", lambda w: train_new(w, "--sigma", "-1"), "sigma"),
    ("stages-0", "kpose", lambda w: train_new(w, "--stages", "0"), "stages"),
    ("input-size-60", "kpose", lambda w: train_new(w, "--input-size", "60"), "input"),
    ("unknown-option", "kpose", lambda w: train_new(w, "--option", "depht=3"), "depht"),
    ("malformed-option", "kpose", lambda w: train_new(w, "--option", "=3"), "--option"),
    ("unknown-strategy", "kpose", lambda w: train_new(w, "--strategy", "bogus"), "--strategy"),
    ("deeppose-multiworker", "kpose", lambda w: ["train", "--model", "deeppose", "--data",
     coco(w), "--out", str(w["root"] / "new"), "--strategy", "multiworker"], "multiworker"),
    ("unknown-model", "kpose", lambda w: ["train", "--model", "posenet", "--data", coco(w),
     "--out", str(w["root"] / "new")], "--model"),
    ("unknown-command", "kpose", lambda w: ["fly"], "COMMAND"),
    # Run folders.
    ("resume-missing-folder", "kpose", lambda w: ["train", "--data", coco(w), "--out",
     str(w["root"] / "nowhere"), *TINY, "--resume"], "nowhere"),
    ("resume-other-stages", "kpose", lambda w: ["train", "--data", coco(w), "--out",
     str(w["run"]), *TINY, "--stages", "3", "--resume"], "stages: run 2, now 3"),
    ("resume-other-data", "kpose", lambda w: ["train", "--data", "synthetic:9", "--out",
     str(w["run"]), *TINY, "--resume"], "data: run"),
    ("run-without-resume", "kpose", lambda w: ["train", "--data", coco(w), "--out",
     str(w["run"]), *TINY], "already holds a run"),
    ("out-is-a-file", "kpose", lambda w: ["train", "--data", coco(w), "--out",
     str(w["a_file"]), *TINY], "a_file is a file"),
    ("out-holds-user-files", "kpose", lambda w: ["train", "--data", coco(w), "--out",
     str(w["mine"]), *TINY], r"did not write \(model.keras\)"),
    # Data.
    ("unknown-data-format", "kpose", lambda w: train_new(w, data="voc:x.xml"), "voc:x.xml"),
    ("missing-annotations", "kpose", lambda w: train_new(w, data="coco:nope.json"),
     "nope.json"),
    ("not-json", "kpose", lambda w: train_new(w, data=f"coco:{w['not_json']}"),
     "not_json.json"),
    ("short-keypoints", "kpose", lambda w: train_new(w, data=coco(w, "short_keypoints")),
     "short_keypoints.json.*keypoints"),
    ("nan-keypoints", "kpose", lambda w: train_new(w, data=coco(w, "nan_keypoints")),
     "nan_keypoints.json.*NaN"),
    ("inf-keypoints", "kpose", lambda w: train_new(w, data=coco(w, "inf_keypoints")),
     "inf_keypoints.json.*infinity"),
    ("bad-visibility", "kpose", lambda w: train_new(w, data=coco(w, "bad_visibility")),
     "bad_visibility.json.*visibility"),
    ("no-annotations", "kpose", lambda w: train_new(w, data=coco(w, "no_annotations")),
     "no_annotations.json"),
    ("missing-image", "kpose", lambda w: train_new(w, data=coco(w, "missing_image")),
     "gone.jpg.*--skip-corrupt"),
    ("orphan-annotation", "kpose", lambda w: train_new(w, data=coco(w, "orphan_annotation")),
     "image_id 999"),
    ("truncated-jpeg-in-training", "kpose",
     lambda w: train_new(w, data=coco(w, "truncated_image")),
     "truncated.jpg cannot be decoded .*--skip-corrupt"),
    ("empty-jpeg-in-training", "kpose", lambda w: train_new(w, data=coco(w, "empty_image")),
     "empty.jpg cannot be decoded"),
    ("truncated-jpeg-in-evaluation", "kpose", lambda w: ["evaluate", str(w["run"]), "--data",
     coco(w, "truncated_image")], "truncated.jpg cannot be decoded"),
    ("image-smaller-than-its-annotation", "kpose",
     lambda w: train_new(w, data=coco(w, "wrong_size")),
     r"tiny.jpg is 1 x 1 px but its annotation says 64 x 64 px"),
    ("mat-v7.3", "kpose", lambda w: train_new(w, data=f"lsp:{w['v73']}:{w['images']}"),
     "v73.mat is a MATLAB v7.3"),
    ("annotations-a-folder", "kpose", lambda w: train_new(w, data=f"coco:{w['images']}"),
     "images is a folder; give the annotation file"),
    ("keypoints-far-outside", "kpose", lambda w: train_new(w, data=coco(w, "far_keypoints")),
     "within one image size"),
    ("box-huge-in-data", "kpose", lambda w: train_new(w, data=coco(w, "huge_box")),
     "more than 10 times its"),
    ("mat-wrong-variable", "kpose",
     lambda w: train_new(w, data=f"lsp:{w['wrong_variable']}:{w['images']}"),
     "wrong_variable.mat"),
    ("mat-wrong-shape", "kpose",
     lambda w: train_new(w, data=f"lsp:{w['wrong_shape']}:{w['images']}"),
     "wrong_shape.mat"),
    ("val-data-other-skeleton", "kpose",
     lambda w: train_new(w, "--val-data", f"lsp:{w['wrong_shape']}:{w['images']}"),
     "wrong_shape.mat"),
    # Evaluation.
    ("evaluate-missing-model", "kpose", lambda w: ["evaluate", str(w["root"] / "no.keras"),
     "--data", coco(w)], "no.keras"),
    ("evaluate-garbage-keras", "kpose", lambda w: ["evaluate", str(w["garbage_keras"]),
     "--data", coco(w)], "garbage.keras is not a readable Keras model"),
    ("evaluate-json-is-a-folder", "kpose", lambda w: ["evaluate", str(w["run"]), "--data",
     coco(w), "--json", str(w["results"])], "--json .*results is a folder"),
    ("evaluate-keras-zip-without-config", "kpose", lambda w: ["evaluate",
     str(w["no_config_keras"]), "--data", coco(w)], "no_config.keras is not a readable .*"
     "config.json"),
    ("predict-keras-zip-without-config", "kpose", lambda w: ["predict",
     str(w["no_config_keras"]), str(w["first_image"])], "no_config.keras is not a readable"),
    ("evaluate-other-skeleton", "kpose", lambda w: ["evaluate", str(w["lsp_model"]),
     "--data", coco(w)], "skeleton 'lsp_14'.*'coco_17'"),
    ("evaluate-unknown-pretrained", "kpose", lambda w: ["evaluate", "pretrained:nope",
     "--data", coco(w)], "no shipped model named 'nope'"),
    ("evaluate-json-over-its-annotations", "kpose", lambda w: ["evaluate", str(w["run"]),
     "--data", coco(w), "--json", str(w["coco"]), "--overwrite"], "is an input"),
    ("evaluate-json-over-the-run-config", "kpose", lambda w: ["evaluate", str(w["run"]),
     "--data", coco(w), "--json", str(w["run"] / "config.json")], "is an input"),
    ("evaluate-json-over-the-model", "kpose", lambda w: ["evaluate", str(w["lsp_model"]),
     "--data", coco(w), "--json", str(w["lsp_model"])], "lsp_model.keras is an input"),
    ("evaluate-json-exists", "kpose", lambda w: ["evaluate", str(w["run"]), "--data",
     coco(w), "--json", str(w["results"] / "notes.txt")], "notes.txt already exists"),
    ("evaluate-plots-into-user-files", "kpose", lambda w: ["evaluate", str(w["run"]),
     "--data", coco(w), "--plots", str(w["results"])], "results is not empty"),
    ("evaluate-negative-samples", "kpose", lambda w: ["evaluate", str(w["run"]), "--data",
     coco(w), "--plot-samples", "-1"], "--plot-samples"),
    # Prediction.
    ("predict-box-outside", "kpose", lambda w: ["predict", str(w["run"]),
     str(next(w["images"].iterdir())), "--box", "5000,5000,100,100"], "outside its image"),
    ("predict-broken-image", "kpose", lambda w: ["predict", str(w["run"]),
     str(w["broken_image"])], "broken.jpg"),
    ("predict-missing-image", "kpose", lambda w: ["predict", str(w["run"]),
     str(w["root"] / "nope.jpg")], "nope.jpg"),
    ("predict-garbage-tflite", "kpose", lambda w: ["predict", str(w["garbage_tflite"]),
     str(next(w["images"].iterdir()))], "garbage.tflite"),
    ("predict-box-count", "kpose", lambda w: ["predict", str(w["run"]),
     str(next(w["images"].iterdir())), "--box", "1,1,5,5", "--box", "1,1,5,5"],
     "one --box per image"),
    ("predict-overlay-exists", "kpose", lambda w: ["predict", str(w["run"]),
     str(w["first_image"]), "--out", str(w["overlays"])], "_pose.png already exists"),
    ("predict-negative-box", "kpose", lambda w: ["predict", str(w["run"]),
     str(w["first_image"]), "--box", "-5,1,5,5"], "--flag=-5"),
    ("predict-huge-box", "kpose", lambda w: ["predict", str(w["run"]),
     str(next(w["images"].iterdir())), "--box", "0,0,1e12,1e12"], "more than 10 times"),
    ("predict-flat-box", "kpose", lambda w: ["predict", str(w["run"]),
     str(next(w["images"].iterdir())), "--box", "1,1,0,5"], "--box"),
    # Synthetic data.
    ("synth-onto-a-file", "kpose", lambda w: ["synth", "--out", str(w["a_file"]), "--num",
     "2"], "a_file is a file"),
    ("synth-into-a-full-folder", "kpose", lambda w: ["synth", "--out", str(w["results"]),
     "--num", "2"], "results is not empty"),
    ("synth-size-huge", "kpose", lambda w: ["synth", "--out", str(w["root"] / "new"),
     "--size", "99999999999"], "--size"),
    ("synth-num-0", "kpose", lambda w: ["synth", "--out", str(w["root"] / "new"), "--num",
     "0"], "--num"),
    # Export.
    ("export-missing-model", "kpose-export", lambda w: [str(w["root"] / "no.keras"),
     "--tflite", "--out", str(w["root"] / "new")], "no.keras"),
    ("export-garbage-keras", "kpose-export", lambda w: [str(w["garbage_keras"]), "--tflite",
     "--out",
     str(w["root"] / "new")], "garbage.keras"),
    ("export-unknown-quantisation", "kpose-export", lambda w: [str(w["run"]), "--quantize",
     "int4", "--out", str(w["root"] / "new")], "--quantize"),
    ("export-into-user-files", "kpose-export", lambda w: [str(w["run"]), "--tflite", "--out",
     str(w["results"])], "results"),
    ("export-nothing-to-write", "kpose-export", lambda w: [str(w["run"]), "--out",
     str(w["root"] / "new")], "--tflite and/or --onnx"),
    ("export-missing-calibration-data", "kpose-export", lambda w: [str(w["run"]), "--tflite",
     "--quantize", "int8", "--calibration-data", "coco:nope.json", "--out",
     str(w["root"] / "new")], "nope.json"),
    ("export-unreadable-calibration-image", "kpose-export", lambda w: [str(w["run"]),
     "--tflite", "--quantize", "int8", "--calibration-data", coco(w, "truncated_image"),
     "--calibration-samples", "4", "--verify-samples", "2", "--out", str(w["root"] / "new")],
     "truncated.jpg"),
    ("export-negative-latency-runs", "kpose-export", lambda w: [str(w["run"]), "--tflite",
     "--latency-runs", "-1", "--out", str(w["root"] / "new")], "--latency-runs"),
    ("export-no-verify-samples", "kpose-export", lambda w: [str(w["run"]), "--tflite",
     "--verify-samples", "0", "--out", str(w["root"] / "new")], "--verify-samples"),
    # A folder that cannot be written (a read-only one is not, for root: a file is).
    ("export-out-under-a-file", "kpose-export", lambda w: [str(w["run"]), "--tflite",
     "--out", str(w["coco"] / "export")], "is not a writable folder"),
    ("export-unknown-pretrained", "kpose-export", lambda w: ["pretrained:nope", "--tflite",
     "--out",
     str(w["root"] / "new")], "no shipped model named 'nope'"),
]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_the_matrix_covers_at_least_forty_cases():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("name,command,argv,named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_and_changes_nothing(name, command, argv, named, world,
                                                     capsys):
    before = _snapshot(world["root"])
    capsys.readouterr()
    entry = kpose_main if command == "kpose" else export_main
    try:
        status = entry(argv(world))
    except SystemExit as exit_:  # argparse
        status = exit_.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert status not in (0, None), captured
    assert len(lines) == 1, lines
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert lines[0].startswith(f"{command}"), lines
    assert re.search(named, lines[0]), (named, lines[0])
    after = _snapshot(world["root"])
    assert after.keys() == before.keys(), sorted(set(after) ^ set(before))
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, changed
    shutil.rmtree(world["root"] / "new", ignore_errors=True)


def test_skip_corrupt_leaves_unreadable_images_out_with_a_count(world, tmp_path, capsys):
    run = tmp_path / "run"
    assert kpose_main(["train", "--data", coco(world, "truncated_image"), "--out", str(run),
                       *TINY, "--skip-corrupt"]) == 0
    assert "skipping 1 of 4 persons: 1 unreadable image(s), first" in capsys.readouterr().out
    assert kpose_main(["evaluate", str(run), "--data", coco(world, "empty_image"),
                       "--skip-corrupt"]) == 0
    assert "3 persons from" in capsys.readouterr().out


def test_a_split_read_without_its_first_index_is_refused(realdata, capsys):
    """lspet_bench val starts at im04001.jpg; read from image 1, its joints do not fit."""
    bench = realdata / "lspet_bench"
    if not (bench / "joints_val.mat").is_file():
        pytest.skip(f"lspet_bench not found in {realdata}")
    status = kpose_main(["evaluate", "pretrained:lsp-simplebaseline-r18", "--data",
                         f"lspet:{bench / 'joints_val.mat'}:{bench / 'images'}"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(lines) == 1
    assert "joints_val.mat: the joints of 55 of 500 persons lie far outside" in lines[0]
    assert "give FIRST_INDEX" in lines[0]
