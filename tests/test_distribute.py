"""Distribution strategies: choice by name, and mirrored training equals one device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kpose.data import write_synthetic_dataset
from kpose.distribute import resolve_strategy, scaled_learning_rate


def test_unknown_and_unavailable_strategies_are_refused():
    with pytest.raises(ValueError, match="strategy must be one of"):
        resolve_strategy("parameter_server")
    with pytest.raises(ValueError, match="no TPU is reachable"):
        resolve_strategy("tpu")


def test_learning_rate_scales_linearly_with_the_global_batch():
    assert scaled_learning_rate(1e-3, 16) == pytest.approx(1e-3)
    assert scaled_learning_rate(1e-3, 64) == pytest.approx(4e-3)


@pytest.mark.parametrize("model", ["cpm", "deeppose"])
def test_mirrored_over_two_cpus_follows_the_single_device_loss_curve(model, tmp_path):
    write_synthetic_dataset(tmp_path, num=8, seed=2, size=96, progress=False)
    script = Path(__file__).with_name("distributed_fit.py")
    result = subprocess.run([sys.executable, str(script), str(tmp_path), model],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("CURVES "))
    curves = json.loads(line[len("CURVES "):])
    single, mirrored = np.array(curves["default"]), np.array(curves["mirrored"])
    assert len(single) == 4  # DeepPose: 2 epochs of stage 1, then 2 of the refiner
    assert single[1] < single[0]  # it trained
    np.testing.assert_allclose(mirrored, single, rtol=2e-3)
