"""Checkpoints committed as one unit: a run killed at any instant resumes exactly.

A checkpoint is the model of one epoch (``last.eNNNN.keras``), the best model so far
(``best.eNNNN.keras``, a hard link to the epoch's file when that epoch improved) and the
manifest ``state.json`` that names both. The model files are complete under their final
names before the manifest is renamed over the previous one, and the files the previous
manifest names are removed only afterwards, so at every instant the manifest on disk
names complete files of one epoch: resuming reads the manifest, never guesses.

``last.keras`` and ``best.keras`` are convenience links refreshed after each commit (and
on the next start, if a kill came first); kpose itself reads the manifest.

    checkpoints/
      state.json            {"epoch", "monitor", "best", "last", "best_file"}
      last.e0007.keras      the model and optimiser after epoch 7
      best.e0005.keras      the best epoch so far
      last.keras, best.keras  links to those two
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras

from kpose.files import atomic_path

__all__ = ["STATE_FILE", "commit_checkpoint", "read_state", "last_checkpoint",
           "recover_checkpoints", "is_checkpoint_file"]

STATE_FILE = "state.json"
_VIEWS = {"last": "last.keras", "best_file": "best.keras"}


def is_checkpoint_file(name: str) -> bool:
    """Whether a file name is one a checkpoint commit writes before its manifest: an epoch
    model (``last.eNNNN.keras``, ``best.eNNNN.keras``), a link view or a temporary."""
    return name.startswith((".", "last.", "best.")) and ".keras" in name


def read_state(folder: str | Path) -> dict | None:
    """The manifest of a checkpoints folder, ``None`` when it has none.

    Raises:
        ValueError: the manifest is there but is not a kpose checkpoint manifest.
    """
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a kpose checkpoint manifest "
                         f"({type(error).__name__}: {error})") from None
    return state


def last_checkpoint(folder: str | Path) -> Path | None:
    """The model file the manifest names as the latest epoch's (a run of an older kpose,
    whose manifest names none: ``last.keras``); ``None`` when there is no checkpoint."""
    folder = Path(folder)
    state = read_state(folder)
    if state is None:
        return None
    path = folder / state.get("last", "last.keras")
    return path if path.is_file() else None


def commit_checkpoint(folder: str | Path, model: keras.Model, *, epoch: int, monitor: str,
                      best: float | None, improved: bool,
                      also: dict[Path, str] | None = None) -> dict:
    """Save ``model`` as the checkpoint after ``epoch`` (1-based count of finished epochs).

    Args:
        folder: the run's ``checkpoints/`` folder (created when missing).
        model: the compiled model (its optimiser state is saved with it).
        epoch: epochs finished, the epoch a resumed run starts from.
        monitor, best: the monitored metric and its best value so far.
        improved: this epoch is the new best (``best.eNNNN.keras`` becomes this epoch's).
        also: other text files ``{path: content}`` that belong to this commit (a resumed
            run's new ``config.json``), written just before the manifest.

    Returns:
        The manifest written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    previous = read_state(folder) or {}
    last = f"last.e{epoch:04d}.keras"
    with atomic_path(folder / last) as temporary:
        model.save(temporary)
    best_file = previous.get("best_file")
    if improved or best_file is None or not (folder / best_file).is_file():
        best_file = f"best.e{epoch:04d}.keras"
        _link(folder / last, folder / best_file)
    for path, text in (also or {}).items():
        with atomic_path(path) as temporary:
            temporary.write_text(text)
    state = {"epoch": epoch, "monitor": monitor, "best": best, "last": last,
             "best_file": best_file}
    with atomic_path(folder / STATE_FILE) as temporary:
        temporary.write_text(json.dumps(state, indent=2) + "\n")
    _tidy(folder, state)
    return state


def recover_checkpoints(folder: str | Path) -> None:
    """Finish what a killed run left undone: remove temporary files and model files the
    manifest does not name, and point ``last.keras`` / ``best.keras`` at the manifest's
    files. Does nothing to a folder without a manifest except remove temporary files."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for stale in folder.glob(".*.tmp*"):
        stale.unlink()
    state = read_state(folder)
    if state is not None and "last" in state:
        _tidy(folder, state)


def _tidy(folder: Path, state: dict) -> None:
    """Refresh the convenience links, then drop epoch files the manifest does not name."""
    for key, view in _VIEWS.items():
        target = folder / state[key]
        if target.is_file():
            _link(target, folder / view)
    named = {state["last"], state["best_file"]}
    for path in [*folder.glob("last.e*.keras"), *folder.glob("best.e*.keras")]:
        if path.name not in named:
            path.unlink()


def _link(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where links are not supported),
    replacing ``target`` atomically."""
    with atomic_path(target) as temporary:
        temporary.unlink()
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
