"""Writing files so that an interrupted run never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name ends with ``path``'s own suffix (``.model.k3j2.tmp.keras``), so
    writers that pick a format from the extension (Keras, Pillow, matplotlib) work. It
    lives in the same folder, so the final ``os.replace`` is atomic on
    POSIX and Windows. On an exception the temporary file is removed and ``path`` is left
    as it was. The parent folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                         dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    # mkstemp makes an owner-only file; give the result the permissions a plain open()
    # would have given it (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
