"""Nothing of the user's is lost: outputs never collide or replace files silently, and a
training run stopped with Ctrl-C says where it stopped and resumes from there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from kpose.cli import main
from kpose.data import write_synthetic_dataset
from kpose.training import train
from kpose.training.run_lock import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    annotations = write_synthetic_dataset(root / "people", num=4, seed=3, size=64,
                                          progress=False)
    out = root / "run"
    train("simplebaseline", f"coco:{annotations}", out_dir=out, input_size=64, width=0.25,
          backbone="mobilenetv2", epochs=1, steps_per_epoch=1, batch_size=2,
          strategy="default", verbose=0)
    return out, sorted((root / "people" / "images").iterdir())[0]


def test_two_images_of_one_name_get_two_overlays(run, tmp_path, capsys):
    out, image = run
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.open(image).save(tmp_path / folder / "x.jpg")
    overlays = tmp_path / "overlays"
    assert main(["predict", str(out), str(tmp_path / "a/x.jpg"), str(tmp_path / "b/x.jpg"),
                 "--out", str(overlays)]) == 0
    assert sorted(p.name for p in overlays.iterdir()) == ["x_2_pose.png", "x_pose.png"]
    first = (overlays / "x_pose.png").read_bytes()
    # A second call is refused before any work; --overwrite replaces the files.
    assert main(["predict", str(out), str(tmp_path / "a/x.jpg"), "--out",
                 str(overlays)]) == 1
    assert "x_pose.png already exists" in capsys.readouterr().err
    assert main(["predict", str(out), str(tmp_path / "a/x.jpg"), "--out", str(overlays),
                 "--overwrite"]) == 0
    assert (overlays / "x_pose.png").read_bytes() == first  # the same model, the same image


def test_predict_of_many_images_shows_progress_on_stderr_and_keeps_stdout_json(
        run, capsys):
    import json

    from kpose.prediction import PROGRESS_FROM

    out, image = run
    images = [str(image)] * (PROGRESS_FROM + 1)
    assert main(["predict", str(out), *images]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == len(images)  # nothing but the keypoints
    assert f"{len(images)}/{len(images)}" in captured.err


def test_evaluate_json_needs_overwrite_to_replace_a_report(run, tmp_path, capsys):
    out, image = run
    data = f"coco:{image.parents[1] / 'person_keypoints.json'}"
    report = tmp_path / "report.json"
    report.write_text("an earlier report")
    assert main(["evaluate", str(out), "--data", data, "--json", str(report)]) == 1
    assert report.read_text() == "an earlier report"
    assert main(["evaluate", str(out), "--data", data, "--json", str(report),
                 "--overwrite"]) == 0
    assert report.read_text().startswith("{")


def test_a_second_run_is_refused_and_ctrl_c_stops_the_first_with_one_line(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "kpose", "train", "--model", "simplebaseline",
               "--backbone", "mobilenetv2", "--data", "synthetic:8:4", "--out", str(out),
               "--input-size", "64", "--width", "0.25", "--epochs", "5000",
               "--steps-per-epoch", "2", "--batch-size", "2", "--strategy", "default"]
    environment = {**os.environ, "KPOSE_CACHE": str(tmp_path / "cache"),
                   "PYTHONPATH": str(REPO)}
    # A child of a non-interactive shell ignores SIGINT unless it is restored.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=environment,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while not state.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state.is_file(), child.communicate(timeout=60)
    # A second run into the folder the first is writing is refused, naming the first,
    # and changes none of its files.
    lock = (out / LOCK_NAME).read_text()
    config = (out / "config.json").read_bytes()
    second = subprocess.run(command, capture_output=True, text=True, env=environment,
                            timeout=240)
    assert child.poll() is None, "the first run ended before the second one was refused"
    assert second.returncode == 1, second.stderr[-2000:]
    refused = [line for line in second.stderr.splitlines() if line.startswith("kpose")]
    assert len(refused) == 1 and "Traceback" not in second.stderr, second.stderr[-2000:]
    assert f"being written by another run (process {child.pid} on" in refused[0]
    assert (out / LOCK_NAME).read_text() == lock
    assert (out / "config.json").read_bytes() == config
    child.send_signal(signal.SIGINT)
    _, error = child.communicate(timeout=120)
    assert child.returncode == 130, error[-2000:]
    ours = [line for line in error.splitlines() if line.startswith("kpose")]
    assert len(ours) == 1 and "Traceback" not in error, error[-2000:]
    assert "interrupted after epoch" in ours[0] and "--resume" in ours[0]
    epoch = int(ours[0].split("after epoch ")[1].split(";")[0])
    assert 1 <= epoch < 5000
    resumed = subprocess.run([*command[:command.index("--epochs") + 1], str(epoch + 1),
                              *command[command.index("--epochs") + 2:], "--resume"],
                             capture_output=True, text=True, env=environment, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / "model.keras").is_file()
