"""A run folder as a transaction: checked before anything in it changes, and put back as
it was found when a run fails before its first checkpoint."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kpose.checkpoints import is_checkpoint_file, last_checkpoint, read_state, recover_checkpoints
from kpose.runs import RunConfig
from kpose.training.run_lock import LOCK_NAME

__all__ = ["RunStart", "open_run_folder", "roll_back"]


@dataclass(frozen=True)
class RunStart:
    """Where a run starts: its epoch and best value, the ``config.json`` text to commit
    with its first checkpoint (``None``: unchanged), and the folder's paths before it."""

    initial_epoch: int
    best: float | None
    config_text: str | None
    existed: frozenset[str]
    folder_existed: bool


# What a kpose run leaves in its folder before its first checkpoint commits.
_LEFTOVERS = ("logs", "checkpoints")
# Fields a resumed run may change: its length, and where it runs.
_RESUMABLE_CHANGES = ("epochs", "strategy")


def open_run_folder(out_dir: Path, config: RunConfig, resume: bool, *,
                    write: bool = True, resumable: tuple[str, ...] | None = None,
                    killed_run: bool = False) -> RunStart:
    """Check the folder against the run before anything in it changes.

    A new run needs a new or empty folder, or the leftovers of a kpose run killed in it
    before its first checkpoint (``killed_run``: the folder held that run's stale lock;
    without it, ``logs/`` and ``checkpoints/`` are someone else's, such as a plain Keras
    project's, and are refused, not removed); a resumed one needs a committed, intact
    checkpoint and the same settings apart from ``resumable`` (default
    :data:`_RESUMABLE_CHANGES`). Only a
    resume that passes these checks tidies ``checkpoints/`` (temporaries and epoch files
    the manifest does not name); the config is committed with the first checkpoint.
    """
    folder_existed = out_dir.exists()
    if folder_existed and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a run folder")
    checkpoints = out_dir / "checkpoints"
    existed = frozenset(str(p.relative_to(out_dir)) for p in out_dir.rglob("*")) \
        if folder_existed else frozenset()
    text = config.to_json()
    resumable = _RESUMABLE_CHANGES if resumable is None else resumable
    if resume:
        state = read_state(checkpoints)
        if state is None or last_checkpoint(checkpoints) is None:
            raise FileNotFoundError(f"cannot resume: {out_dir} has no committed checkpoint "
                                    "(checkpoints/state.json and the model it names)")
        previous = RunConfig.load(out_dir / "config.json")
        changed = [f.name for f in dataclasses.fields(RunConfig)
                   if f.name not in resumable
                   and getattr(previous, f.name) != getattr(config, f.name)]
        if changed:
            details = "; ".join(f"{name}: run {getattr(previous, name)!r}, now "
                                f"{getattr(config, name)!r}" for name in changed[:3])
            raise ValueError(f"cannot resume {out_dir} with other settings ({details}); "
                             f"only {' and '.join(resumable)} may change")
        _check_intact(last_checkpoint(checkpoints))
        if write:  # the run is valid: now finish what a killed run left undone
            recover_checkpoints(checkpoints)
        unchanged = dataclasses.asdict(previous) == dataclasses.asdict(config)
        return RunStart(int(state["epoch"]), state.get("best"), None if unchanged else text,
                        existed, folder_existed)
    if not write:  # a worker other than the chief: the chief checks and writes the folder
        return RunStart(0, None, text, existed, folder_existed)
    if folder_existed:
        if (out_dir / "config.json").exists() or read_state(checkpoints) is not None:
            raise ValueError(f"{out_dir} already holds a run; pass resume=True (--resume) to "
                             "continue it, or choose another folder")
        foreign = sorted(p.name for p in out_dir.iterdir()
                         if not p.name.startswith(LOCK_NAME)
                         and (not killed_run or p.name not in _LEFTOVERS
                              or not _is_leftover(p)))
        if foreign:
            raise ValueError(f"{out_dir} holds files kpose did not write "
                             f"({', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''})"
                             ": train into a new or empty folder")
        for name in _LEFTOVERS:
            shutil.rmtree(out_dir / name, ignore_errors=True)
        existed = frozenset()
    out_dir.mkdir(parents=True, exist_ok=True)
    return RunStart(0, None, text, existed, folder_existed)


def _check_intact(path: Path) -> None:
    """Refuse to resume from a checkpoint file that is not a whole ``.keras`` archive (a
    disk that filled up, a copy cut short), naming it, before anything changes."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"cannot resume: the checkpoint {path} is damaged ({error}); "
                         "nothing was changed") from None
    if broken is not None or "config.json" not in names:
        raise ValueError(f"cannot resume: the checkpoint {path} is damaged "
                         f"({'member ' + broken + ' fails its CRC' if broken else 'no config.json'}"
                         "); nothing was changed")


def _is_leftover(path: Path) -> bool:
    """Whether ``path`` (``logs/`` or ``checkpoints/``) holds only what a kpose run writes
    before its first commit: TensorBoard event files, epoch model files, temporaries."""
    if not path.is_dir():
        return False
    for item in path.rglob("*"):
        if item.is_file() and "tfevents" not in item.name and not is_checkpoint_file(item.name):
            return False
    return True


def roll_back(out_dir: Path, start: RunStart) -> None:
    """After a failure before the run's first commit, remove what the run created, so the
    folder is as it was found. A run that committed a checkpoint is kept (resume it)."""
    state = read_state(out_dir / "checkpoints") if out_dir.is_dir() else None
    if state is not None and int(state["epoch"]) > start.initial_epoch:
        return
    if not start.folder_existed:
        shutil.rmtree(out_dir, ignore_errors=True)
        return
    created = [p for p in out_dir.rglob("*") if str(p.relative_to(out_dir)) not in
               start.existed]
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
