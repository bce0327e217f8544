"""One writer per run folder: a lock file that names the process holding it.

``RUN/.kpose-lock`` is created atomically (``O_EXCL``) when a run starts writing its folder
and removed when it ends, however it ends. A second run into the same folder is refused,
naming the first one's process. A lock left by a process that no longer runs (killed,
or its machine restarted) is stale and is taken over with a note.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

__all__ = ["LOCK_NAME", "LockHeld", "run_lock"]

LOCK_NAME = ".kpose-lock"


class LockHeld(NamedTuple):
    """What :func:`run_lock` found: whether the folder existed before, and whether it held
    the stale lock of a kpose run that was killed in it (whose leftovers are then kpose's,
    not the user's)."""

    existed: bool
    took_over: bool


@contextmanager
def run_lock(out_dir: Path, *, enabled: bool = True) -> Iterator[LockHeld]:
    """Hold ``out_dir``'s lock for the ``with`` block; yields a :class:`LockHeld` (the
    folder is created to hold the lock, and removed again if it is left empty).

    Raises:
        ValueError: another live process holds the lock (named), or ``out_dir`` is a file.
    """
    out_dir = Path(out_dir)
    existed = out_dir.exists()
    if not enabled:
        yield LockHeld(existed, False)
        return
    if existed and not out_dir.is_dir():
        raise ValueError(f"{out_dir} is a file, not a run folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = out_dir / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    try:
        took_over = _take(lock, mine)
    except BaseException:
        if not existed:
            _remove_if_empty(out_dir)
        raise
    try:
        yield LockHeld(existed, took_over)
    finally:
        if _holder(lock) == mine:
            lock.unlink(missing_ok=True)
        if not existed:
            _remove_if_empty(out_dir)


def _take(lock: Path, mine: dict) -> bool:
    """Create the lock, or take over a stale one (then ``True``)."""
    text = json.dumps(mine)
    try:
        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        holder = _holder(lock)
        if holder is not None and _alive(holder):
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
            raise ValueError(f"{lock.parent} is being written by another run (process "
                             f"{holder['pid']} on {holder['host']}, started {started}); "
                             "wait for it to end or stop it") from None
        print(f"taking over the stale lock of {lock.parent} (its process no longer runs)",
              flush=True)
        temporary = lock.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
        temporary.write_text(text)
        os.replace(temporary, lock)
        return True
    with os.fdopen(handle, "w") as file:
        file.write(text)
    return False


def _holder(lock: Path) -> dict | None:
    """The lock's content, ``None`` when it is missing or not a kpose lock."""
    try:
        holder = json.loads(lock.read_text())
        int(holder["pid"]), str(holder["host"]), float(holder["started"])
        return holder
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(holder: dict) -> bool:
    """Whether the holder may still run: a live process on this machine, or any process
    on another machine (which cannot be checked from here)."""
    if holder["host"] != socket.gethostname():
        return True
    if int(holder["pid"]) == os.getpid():
        return False  # this process's own lock, left by an earlier run in it
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (or gone): leave it
