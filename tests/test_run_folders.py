"""A run folder is a transaction: nothing a user has is changed by a run that fails, and a
run killed at any instant resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kpose.checkpoints import last_checkpoint, read_state
from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.prediction import predict
from kpose.skeletons import COCO_17
from kpose.training import train

HERE = Path(__file__).parent
TINY = dict(input_size=64, stages=2, width=0.25, batch_size=4, steps_per_epoch=2,
            strategy="default", verbose=0)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    folder = tmp_path_factory.mktemp("people")
    annotations = write_synthetic_dataset(folder, num=8, seed=5, size=96, progress=False)
    return LoadedData("synthetic:8:5", read_coco(annotations), COCO_17), annotations


@pytest.fixture(scope="module")
def uninterrupted(people, tmp_path_factory):
    model, _ = train("cpm", people[0], out_dir=tmp_path_factory.mktemp("whole") / "run",
                     epochs=3, **TINY)
    return model


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("point", ["mid-model", "before-manifest", "after-manifest"])
def test_a_run_killed_during_a_commit_resumes_to_the_uninterrupted_weights(
        point, people, uninterrupted, tmp_path):
    data, annotations = people
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(HERE / "kill_worker.py"), str(annotations),
                             str(run), point], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    # The manifest names complete files of one epoch.
    committed = read_state(run / "checkpoints")["epoch"]
    assert committed == (2 if point == "after-manifest" else 1)
    resumed, _ = train("cpm", data, out_dir=run, epochs=3, resume=True, **TINY)
    for a, b in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=a.path)
    state = read_state(run / "checkpoints")
    assert state["epoch"] == 3
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert left == sorted({"state.json", "last.keras", "best.keras", state["last"],
                           state["best_file"]}), left
    assert not list(run.rglob(".*tmp*"))
    assert (run / "checkpoints" / "last.keras").read_bytes() == \
        last_checkpoint(run / "checkpoints").read_bytes()


DEEPPOSE = dict(input_size=64, stages=2, width=0.25, batch_size=4, steps_per_epoch=2,
                sigma=2.0, crops_per_sample=2, strategy="default", verbose=0)


@pytest.fixture(scope="module")
def uninterrupted_cascade(people, tmp_path_factory):
    run = tmp_path_factory.mktemp("whole-cascade") / "run"
    model, history = train("deeppose", people[0], out_dir=run, epochs=2, **DEEPPOSE)
    return model, history, run


# Commit 2 ends stage 1 (killed after its manifest: before stages/stage_1.keras is saved);
# commit 4 is the refiner's second epoch (killed before its manifest: resumed inside the
# refiner's stage, one epoch in).
@pytest.mark.parametrize("point, commit", [("after-manifest", 2), ("before-manifest", 4),
                                           ("mid-model", 3)])
def test_a_killed_deeppose_run_resumes_inside_its_stage_to_the_uninterrupted_weights(
        point, commit, people, uninterrupted_cascade, tmp_path):
    data, annotations = people
    whole, whole_history, whole_run = uninterrupted_cascade
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(HERE / "kill_worker.py"), str(annotations),
                             str(run), point, "deeppose", str(commit)],
                            capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    committed = read_state(run / "checkpoints")["epoch"]
    assert committed == (commit if point == "after-manifest" else commit - 1)
    resumed, history = train("deeppose", data, out_dir=run, epochs=2, resume=True, **DEEPPOSE)
    assert history["stage"] == [1, 2, 2, 2][committed:]
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6,
                                   err_msg=a.path)
    assert sorted(p.name for p in (run / "stages").iterdir()) == \
        sorted(p.name for p in (whole_run / "stages").iterdir())
    assert read_state(run / "checkpoints")["epoch"] == 4
    assert not list(run.rglob(".*tmp*"))


def test_a_deeppose_resume_may_not_move_its_stage_boundaries(people, uninterrupted_cascade):
    _, _, run = uninterrupted_cascade
    before = _snapshot(run)
    with pytest.raises(ValueError, match=r"other settings \(epochs: run 2, now 3\); only "
                                         r"strategy may change"):
        train("deeppose", people[0], out_dir=run, epochs=3, resume=True, **DEEPPOSE)
    assert _snapshot(run) == before


def test_a_resume_with_other_settings_changes_nothing(people, tmp_path):
    data, _ = people
    run = tmp_path / "run"
    train("cpm", data, out_dir=run, epochs=1, **TINY)
    # A user's own copy under a kpose-like name is not the refused run's to delete.
    (run / "checkpoints" / "last.e0099.keras").write_bytes(b"my copy")
    before = _snapshot(run)
    with pytest.raises(ValueError, match=r"cannot resume .* with other settings "
                                         r"\(stages: run 2, now 3\)"):
        train("cpm", data, out_dir=run, epochs=2, resume=True, **{**TINY, "stages": 3})
    assert _snapshot(run) == before
    assert predict(run, [data.records[0].image_path]).shape == (1, 17, 3)


def test_a_resume_from_a_damaged_checkpoint_is_refused_naming_it(people, tmp_path):
    data, _ = people
    run = tmp_path / "run"
    train("cpm", data, out_dir=run, epochs=1, **TINY)
    newest = last_checkpoint(run / "checkpoints")
    newest.write_bytes(newest.read_bytes()[:2000])  # a copy cut short
    before = _snapshot(run)
    with pytest.raises(ValueError, match=f"cannot resume: the checkpoint .*{newest.name} is "
                                         "damaged .*nothing was changed"):
        train("cpm", data, out_dir=run, epochs=2, resume=True, **TINY)
    assert _snapshot(run) == before


def test_a_keras_project_folder_is_refused_but_a_killed_runs_leftovers_are_cleared(
        people, tmp_path):
    """``checkpoints/`` and ``logs/`` are kpose's to clear only when a kpose run was killed
    in the folder (its stale lock says so); a plain Keras project's are refused."""
    import time

    from kpose.training.run_lock import LOCK_NAME

    data, _ = people
    project = tmp_path / "project"
    for name in ("checkpoints/best.keras", "checkpoints/last.keras",
                 "logs/train/events.out.tfevents.1.host"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(b"the user's")
    before = _snapshot(project)
    with pytest.raises(ValueError, match=r"holds files kpose did not write \(checkpoints, "
                                         r"logs\)"):
        train("cpm", data, out_dir=project, epochs=1, **TINY)
    assert _snapshot(project) == before
    # The same files beside the lock of a kpose run whose process is gone: its leftovers.
    (project / LOCK_NAME).write_text(json.dumps({"pid": 2**22 + 7, "host": _host(),
                                                 "started": time.time()}))
    train("cpm", data, out_dir=project, epochs=1, **TINY)
    assert not (project / "logs/train/events.out.tfevents.1.host").exists()
    assert read_state(project / "checkpoints")["epoch"] == 1


def test_a_folder_with_files_kpose_did_not_write_is_refused_naming_them(people, tmp_path):
    data, _ = people
    run = tmp_path / "mine"
    run.mkdir()
    (run / "model.keras").write_bytes(b"the user's own model")
    with pytest.raises(ValueError, match=r"holds files kpose did not write \(model.keras\)"):
        train("cpm", data, out_dir=run, epochs=1, **TINY)
    assert _snapshot(run) == {"model.keras": b"the user's own model"}


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_trace(people, tmp_path):
    data, _ = people
    fresh, empty = tmp_path / "fresh", tmp_path / "empty"
    empty.mkdir()
    for folder in (fresh, empty):
        with pytest.raises(ValueError, match="input_size"):
            train("cpm", data, out_dir=folder, epochs=1, **{**TINY, "input_size": 60})
    assert not fresh.exists()
    assert list(empty.iterdir()) == []
    # ... so the same folder takes the corrected run at once.
    train("cpm", data, out_dir=empty, epochs=1, **TINY)
    assert json.loads((empty / "config.json").read_text())["input_size"] == 64


def test_a_second_run_into_a_folder_being_written_is_refused_naming_the_first(tmp_path):
    import subprocess
    import sys
    import time

    from kpose.training.run_lock import LOCK_NAME, run_lock

    out = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": _host(),
                                                 "started": time.time()}))
        with pytest.raises(ValueError, match=f"being written by another run \\(process "
                                             f"{sleeper.pid} on"):
            with run_lock(out):
                pass
        assert (out / LOCK_NAME).is_file()  # the first run's lock is left alone
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its process is gone: the lock is stale and the next run takes it over, then lets go.
    with run_lock(out) as held:
        assert held.existed and held.took_over
        assert json.loads((out / LOCK_NAME).read_text())["pid"] != sleeper.pid
    assert not (out / LOCK_NAME).exists()


def test_a_lock_on_a_new_folder_leaves_nothing_behind_when_the_run_is_refused(tmp_path):
    from kpose.training.run_lock import run_lock

    out = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with run_lock(out) as held:
            assert not held.existed and not held.took_over and out.is_dir()
            raise RuntimeError("refused")
    assert not out.exists()


def _host() -> str:
    import socket

    return socket.gethostname()
