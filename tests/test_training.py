"""Training into a run folder, resuming, evaluating and predicting from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from kpose.checkpoints import read_state
from kpose.cli import main
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData, load_data_spec
from kpose.evaluation import evaluate, mean_pose_baseline
from kpose.prediction import predict
from kpose.skeletons import COCO_17
from kpose.training import train

from conftest import train_killed_and_resumed

SMALL = dict(input_size=64, stages=2, width=0.25, batch_size=4, steps_per_epoch=2,
             strategy="default", verbose=0)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    records = read_coco(write_synthetic_dataset(folder, num=8, seed=5, size=96,
                                                progress=False))
    return LoadedData("synthetic:8:5", records, COCO_17)


@pytest.fixture(scope="module")
def run(tmp_path_factory, people):
    out = tmp_path_factory.mktemp("runs") / "cpm"
    model, history = train("cpm", people, val_data=people, out_dir=out, epochs=2, **SMALL)
    return out, model, history


def test_a_run_folder_holds_config_checkpoints_model_metrics_and_logs(run):
    out, _, history = run
    for name in ("config.json", "model.keras", "metrics.csv", "checkpoints/last.keras",
                 "checkpoints/best.keras", "checkpoints/state.json"):
        assert (out / name).is_file(), name
    assert any((out / "logs").rglob("*tfevents*"))
    config = json.loads((out / "config.json").read_text())
    assert config["stages"] == 2 and config["skeleton"] == "coco_17"
    assert json.loads((out / "checkpoints/state.json").read_text())["epoch"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert "val_pck@0.2" in rows[0] and "stage_2_loss" in rows[0]
    assert len(history["loss"]) == 2
    assert not list(out.rglob(".*.tmp*")), "no temporary file may be left behind"


def test_a_folder_holding_a_run_is_not_overwritten(run, people):
    out, _, _ = run
    before = (out / "checkpoints/last.keras").read_bytes()
    with pytest.raises(ValueError, match="already holds a run; pass resume=True"):
        train("cpm", people, out_dir=out, epochs=1, **SMALL)
    assert (out / "checkpoints/last.keras").read_bytes() == before


def test_resume_continues_the_epoch_count(tmp_path, people):
    out = tmp_path / "resumed"
    train("cpm", people, out_dir=out, epochs=1, **SMALL)
    _, history = train("cpm", people, out_dir=out, epochs=3, resume=True, **SMALL)
    assert len(history["loss"]) == 2  # epochs 2 and 3
    assert json.loads((out / "checkpoints/state.json").read_text())["epoch"] == 3
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]


def test_resume_without_a_checkpoint_is_refused(tmp_path, people):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train("cpm", people, out_dir=tmp_path / "empty", epochs=1, resume=True, **SMALL)


def test_evaluate_and_predict_from_the_run_folder(run, people):
    out, model, _ = run
    report = evaluate(out, people)
    assert report["persons"] == len(people.records)
    assert sorted(report["stages"]) == ["stage_1", "stage_2"]
    for name in ("PCK@0.1", "PCK@0.2", "PDJ@0.2", "PCP@0.5", "PCKh@0.5", "COCO"):
        assert name in report["final"], name
    assert set(report["final"]["COCO"]) >= {"AP", "AP50", "AR"}
    records = people.records[:3]
    keypoints = predict(out, [r.image_path for r in records], [r.box for r in records])
    assert keypoints.shape == (3, 17, 3) and np.all(np.isfinite(keypoints))
    # The same crops through the evaluation path give the same keypoints.
    from kpose.evaluation import predict_stage_keypoints

    staged = predict_stage_keypoints(model, records, COCO_17, input_size=64)["stage_2"]
    np.testing.assert_allclose(keypoints[..., :2], staged[..., :2], atol=1e-2)


def test_mean_pose_baseline_is_low_on_synthetic_people(people):
    assert mean_pose_baseline(people.records, people.records, COCO_17) < 0.5


@pytest.mark.parametrize("spec, error, message", [
    ("imagenet:x", ValueError, "must start with one of"),
    ("lsp:only_one_part", ValueError, "expected lsp:joints.mat:IMAGE_DIR"),
    ("lspet:a.mat:b:first", ValueError, "FIRST_INDEX in a data spec must be an integer"),
    ("coco:does/not/exist.json", FileNotFoundError, "exist.json"),
    ("synthetic:0", ValueError, "N >= 1"),
])
def test_bad_data_specs_are_explained(spec, error, message):
    with pytest.raises(error, match=message):
        load_data_spec(spec)


def test_synthetic_spec_renders_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KPOSE_CACHE", str(tmp_path))
    first = load_data_spec("synthetic:3:7", synthetic_size=64)
    again = load_data_spec("synthetic:3:7", synthetic_size=64)
    assert len(first.records) == 3 and first.skeleton is COCO_17
    assert first.records[0].image_path == again.records[0].image_path
    assert str(tmp_path) in first.records[0].image_path


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["train", "--data", "imagenet:x", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kpose train: error: unknown data spec")
    assert main(["predict", str(tmp_path / "missing.keras"), "a.jpg"]) == 1
    assert "model not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", "m.keras", "a.jpg", "--box", "1,2,3"])
    assert "a box is x,y,w,h" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", "synthetic:4", "--out", str(tmp_path / "r"),
              "--mixed-precision", "half"])
    assert "--mixed-precision: invalid choice: 'half'" in capsys.readouterr().err


@pytest.mark.parametrize("option,value,message", [
    ("--epochs", "0", "epochs must be a positive integer, got 0"),
    ("--epochs", "-3", "epochs must be a positive integer, got -3"),
    ("--steps-per-epoch", "0", "steps_per_epoch must be a positive integer, got 0"),
    ("--batch-size", "0", "batch_size must be a positive integer, got 0"),
    ("--lr", "-1", "learning_rate must be a finite positive number, got -1.0"),
    ("--lr", "nan", "learning_rate must be a finite positive number, got nan"),
    ("--width", "0", "width must be a finite positive number, got 0.0"),
])
def test_bad_numbers_are_refused_before_the_run_folder_exists(option, value, message,
                                                              tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "synthetic:4", "--out", str(out), option, value]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kpose train: error: {message}"]
    assert not out.exists()


def test_cli_evaluate_prints_a_table_and_writes_json(run, people, capsys, tmp_path):
    out, _, _ = run
    folder = people.records[0].image_path.rsplit("/images/", 1)[0]
    assert main(["evaluate", str(out), "--data", f"coco:{folder}/person_keypoints.json",
                 "--json", str(tmp_path / "report.json"), "--flip"]) == 0
    printed = capsys.readouterr().out
    assert "(flip-averaged)" in printed and "PCK@0.2" in printed
    assert "left_wrist" in printed and "COCO keypoints" in printed
    assert json.loads((tmp_path / "report.json").read_text())["persons"] == 8


def test_cli_predict_prints_named_joints_and_draws(run, people, capsys, tmp_path):
    out, _, _ = run
    image = people.records[0].image_path
    assert main(["predict", str(out), image, "--out", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["keypoints"][0]["joint"] == "nose"
    assert len(list(tmp_path.glob("*_pose.png"))) == 1


def test_predict_names_a_corrupt_image_and_a_bad_box(run, people, tmp_path):
    out, _, _ = run
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot decode image .*broken.jpg"):
        predict(out, [str(broken)])
    with pytest.raises(ValueError, match=r"boxes\[0\] must be \(x, y, w, h\) with w, h > 0"):
        predict(out, [people.records[0].image_path], [(0, 0, 0, 10)])
    with pytest.raises(ValueError, match="got 1 images but 2 boxes"):
        predict(out, [people.records[0].image_path], [(0, 0, 5, 5)] * 2)
    with pytest.raises(ValueError, match=r"boxes\[0\] \[5000.0, 5000.0, 100.0, 100.0\] "
                                         r"lies outside its image \(96 x 96 px\)"):
        predict(out, [people.records[0].image_path], [(5000, 5000, 100, 100)])


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, people):
    whole, _ = train("cpm", people, out_dir=tmp_path / "whole", epochs=2, **SMALL)
    train("cpm", people, out_dir=tmp_path / "split", epochs=1, **SMALL)
    resumed, _ = train("cpm", people, out_dir=tmp_path / "split", epochs=2, resume=True,
                       **SMALL)
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=a.path)


def test_a_checkpoint_interrupted_mid_write_leaves_the_previous_one_usable(tmp_path, people,
                                                                           monkeypatch):
    import keras

    from kpose.training import RunCheckpoint

    out = tmp_path / "interrupted"
    model, _ = train("cpm", people, out_dir=out, epochs=1, **SMALL)
    before = (out / "checkpoints/last.keras").read_bytes()

    def save_half_then_die(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(keras.Model, "save", save_half_then_die)
    checkpoint = RunCheckpoint(out / "checkpoints", monitor="loss")
    checkpoint.set_model(model)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.on_epoch_end(1, {"loss": 1.0})
    monkeypatch.undo()
    assert (out / "checkpoints/last.keras").read_bytes() == before
    assert not list((out / "checkpoints").glob(".*tmp*"))
    assert keras.saving.load_model(out / "checkpoints/last.keras") is not None


def test_deeppose_run_trains_the_cascade_and_evaluates_and_predicts(tmp_path, people):
    out = tmp_path / "deeppose"
    model, history = train("deeppose", people, val_data=people, out_dir=out, epochs=1,
                           steps_per_epoch=2, batch_size=4, input_size=64, stages=2, width=0.25,
                           sigma=2.0, strategy="default", verbose=0, crops_per_sample=2)
    for name in ("config.json", "model.keras", "metrics.csv", "stages/stage_1.keras",
                 "stages/refiner_2.keras"):
        assert (out / name).is_file(), name
    assert history["stage"] == [1, 2] and len(history["val_pdj@0.2"]) == 2
    report = evaluate(out, people)
    assert list(report["stages"]) == ["stage_1", "stage_2"] and "PDJ@0.2" in report["final"]
    records = people.records[:2]
    keypoints = predict(out, [r.image_path for r in records], [r.box for r in records])
    assert keypoints.shape == (2, 17, 3) and np.all(keypoints[..., 2] == 1.0)
    assert (out / "stages/errors_2.json").is_file()
    assert list((out / "logs").rglob("*tfevents*")), "no TensorBoard logs"
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["stage"] for row in rows] == ["1", "2"]
    assert float(rows[1]["val_stage_2_pdj@0.2"]) == pytest.approx(history["val_pdj@0.2"][1])
    assert read_state(out / "checkpoints")["epoch"] == 2
    with pytest.raises(ValueError, match="a DeepPose cascade trains with 'auto', 'default'"):
        train("deeppose", people, out_dir=tmp_path / "again", strategy="multiworker")
    with pytest.raises(ValueError, match="model option error_records=list cannot be recorded"):
        train("deeppose", people, out_dir=tmp_path / "again", error_records=people.records)


def test_predict_and_evaluate_run_an_exported_tflite_file_like_the_keras_model(run, people,
                                                                                tmp_path):
    export = pytest.importorskip("export")
    out, _, _ = run
    export.export_model(out, tmp_path / "exported", tflite=True, quantize="none",
                        calibration_data="synthetic:8", verify_samples=4, latency_runs=1,
                        verbose=False)
    tflite = tmp_path / "exported" / "model.tflite"
    records = people.records[:3]
    images, boxes = [r.image_path for r in records], [r.box for r in records]
    np.testing.assert_allclose(predict(tflite, images, boxes)[..., :2],
                               predict(out, images, boxes)[..., :2], atol=0.01)
    report = evaluate(str(tflite), people)
    assert list(report["stages"]) == ["keypoints"] and report["persons"] == 8


def test_lsp_spec_first_index_names_the_test_half(tmp_path):
    """LSP's test half (images 1001-2000) cut into its own joints file reads with FIRST."""
    import scipy.io
    from PIL import Image

    joints = np.zeros((3, 14, 2))
    joints[0] = np.linspace(10, 40, 14)[:, None]
    joints[1] = np.linspace(5, 50, 14)[:, None]  # flag row 2 stays 0: visible in LSP
    scipy.io.savemat(tmp_path / "joints_test.mat", {"joints": joints})
    for number in (1001, 1002):
        Image.new("RGB", (64, 64)).save(tmp_path / f"im{number:04d}.jpg")
    loaded = load_data_spec(f"lsp:{tmp_path / 'joints_test.mat'}:{tmp_path}:1001")
    assert [Path(r.image_path).name for r in loaded.records] == ["im1001.jpg", "im1002.jpg"]
    with pytest.raises(ValueError, match="FIRST_INDEX"):
        load_data_spec(f"lsp:{tmp_path / 'joints_test.mat'}:{tmp_path}:first")


def test_cosine_schedule_decays_and_a_killed_run_resumes_onto_the_same_curve(
        tmp_path, people, monkeypatch):
    options = dict(SMALL, lr_schedule="cosine", learning_rate=1e-2)
    whole, _ = train("cpm", people, out_dir=tmp_path / "whole", epochs=2, **options)
    rate = whole.optimizer.learning_rate  # the schedule's value after the last step
    assert float(np.asarray(rate)) < 1e-2 * 0.2

    resumed = train_killed_and_resumed(monkeypatch, "cpm", people, out_dir=tmp_path / "split",
                                       epochs=2, **options)
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=a.path)


@pytest.mark.parametrize("precision, compute, optimizer", [
    ("bfloat16", "bfloat16", "Adam"), ("float16", "float16", "LossScaleOptimizer")])
def test_mixed_precision_computes_in_16_bits_keeps_float32_losses_and_restores_the_policy(
        tmp_path, people, precision, compute, optimizer):
    import keras

    settings = {**SMALL, "steps_per_epoch": 3}  # 16-bit convolutions are slow on CPUs
    model, history = train("cpm", people, out_dir=tmp_path / precision, epochs=2,
                           mixed_precision=precision, **settings)
    assert keras.config.dtype_policy().name == "float32", "the global policy leaked"
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convolutions} == {compute}
    assert {layer.variable_dtype for layer in convolutions} == {"float32"}
    assert {str(output.dtype) for output in model.outputs} == {"float32"}
    assert type(model.optimizer).__name__ == optimizer
    losses = history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    config = json.loads((tmp_path / precision / "config.json").read_text())
    assert config["mixed_precision"] == precision
    report = evaluate(tmp_path / precision, people)  # reloads the 16-bit run
    assert 0.0 <= report["final"]["PCK@0.2"]["value"] <= 1.0


def test_mixed_precision_auto_picks_bfloat16_without_a_gpu_and_refuses_unknown_names(
        tmp_path, people):
    from kpose.training import mixed_precision_policy

    assert mixed_precision_policy(True) == "mixed_bfloat16"
    assert mixed_precision_policy("none") == mixed_precision_policy(False) == "float32"
    with pytest.raises(ValueError, match="mixed_precision must be"):
        train("cpm", people, out_dir=tmp_path / "bad", mixed_precision="half", **SMALL)
    assert not (tmp_path / "bad").exists()


def test_a_non_finite_loss_stops_the_run_naming_the_step():
    import keras

    from kpose.training.callbacks import StopOnNonFiniteLoss

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((12, 2), np.float32)
    x[9] = np.nan  # the fifth batch of two, in the second epoch of three batches
    with pytest.raises(ValueError, match=r"became nan at step 5 \(epoch 2\); stopped: the "
                                         r"checkpoint of epoch 1 is kept"):
        model.fit(x, np.ones((12, 1)), batch_size=2, epochs=2, steps_per_epoch=3,
                  shuffle=False, verbose=0, callbacks=[StopOnNonFiniteLoss(3)])
