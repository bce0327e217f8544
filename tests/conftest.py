"""Shared fixtures: where the real sample data lives, and skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# The real samples sit beside the repository (../shared/realdata); KPOSE_REALDATA overrides.
REALDATA = Path(os.environ.get("KPOSE_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Folder of real COCO/MPII/LSP/LSPET samples; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real sample data not found at {REALDATA} (expected ../shared/realdata "
                    "beside the repository, or set KPOSE_REALDATA)")
    return REALDATA


def train_killed_and_resumed(monkeypatch, *args, **kwargs):
    """``kpose.training.train(*args, **kwargs)`` killed right after its first checkpoint,
    then resumed to the end; returns the resumed run's model."""
    from kpose.training import RunCheckpoint, train

    original = RunCheckpoint.on_epoch_end

    def killed_after_first_checkpoint(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", killed_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(*args, **kwargs)
    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", original)
    return train(*args, resume=True, **kwargs)[0]
