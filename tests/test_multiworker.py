"""Two training workers on 127.0.0.1 with MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kpose.data import read_coco, write_synthetic_dataset
from kpose.data.specs import LoadedData
from kpose.skeletons import COCO_17
from kpose.training import train


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_the_same_weights_as_one_device(tmp_path):
    write_synthetic_dataset(tmp_path / "data", num=8, seed=4, size=96, progress=False)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    script = Path(__file__).with_name("multiworker_worker.py")
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config)}
        processes.append(subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "run"),
             str(tmp_path / f"worker{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    chief, other = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    for key in chief.files:
        np.testing.assert_array_equal(chief[key], other[key], err_msg=key)
    # Only the chief writes the run folder, and it is complete.
    for name in ("config.json", "model.keras", "metrics.csv", "checkpoints/last.keras"):
        assert (tmp_path / "run" / name).is_file(), name
    assert len((tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()) == 3
    # Sharded input pipelines serve the single-device batches: same loss curve.
    records = read_coco(tmp_path / "data" / "person_keypoints.json")
    _, history = train("cpm", LoadedData("synthetic", records, COCO_17),
                       out_dir=tmp_path / "single", epochs=2, steps_per_epoch=2, batch_size=4,
                       input_size=64, stages=2, width=0.25, strategy="default", verbose=0)
    np.testing.assert_allclose(chief["loss"], history["loss"], rtol=2e-3)


def test_multiworker_without_tf_config_is_explained(tmp_path, monkeypatch):
    from kpose.distribute import resolve_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        resolve_strategy("multiworker")
