"""Image files as the readers see them: does each exist, and how large is it.

Readers never decode pixels. They need two facts about an image: that the file is there
(missing files are collected and reported together, by name) and its ``(width, height)``
when the annotation does not carry it, which PIL reads from the header alone.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import Image, UnidentifiedImageError

__all__ = ["image_size", "image_sizes", "check_images_exist"]

# Header reads are I/O bound; a few threads hide disk or network-file-system latency.
_MAX_WORKERS = 8
# Below this many files a thread pool costs more than it saves.
_POOL_THRESHOLD = 64
# How many missing names an error or warning lists before it only gives the count.
_LIST_FIRST = 5


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of the image at ``path``, read from its header only.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file exists but PIL cannot identify it as an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read the image header of {path}: {err}") from None
    return int(width), int(height)


def image_sizes(paths: Sequence[str | os.PathLike]) -> list[tuple[int, int]]:
    """``(width, height)`` of every image in ``paths``, in order (repeated paths read once)."""
    unique = list(dict.fromkeys(str(p) for p in paths))
    if len(unique) < _POOL_THRESHOLD:
        sizes = [image_size(p) for p in unique]
    else:
        with ThreadPoolExecutor(max_workers=_MAX_WORKERS) as pool:
            sizes = list(pool.map(image_size, unique))
    by_path = dict(zip(unique, sizes))
    return [by_path[str(p)] for p in paths]


def check_images_exist(paths: Sequence[str | os.PathLike], *, skip_missing: bool = False,
                       source: str | os.PathLike = "") -> list[bool]:
    """Which of ``paths`` exist; report the missing ones all at once.

    Args:
        paths: image paths, one per record (repeats allowed).
        skip_missing: when False a missing file is an error; when True missing files are
            dropped with one warning.
        source: the annotation file the paths came from, named in the message.

    Returns:
        ``len(paths)`` booleans, True where the file exists.

    Raises:
        FileNotFoundError: some files are missing and ``skip_missing`` is False. The message
            gives the count, the first few names and the folder that was searched.
    """
    exists = {p: os.path.isfile(p) for p in dict.fromkeys(str(p) for p in paths)}
    missing = [p for p, ok in exists.items() if not ok]
    if missing:
        message = _missing_message(missing, source)
        if not skip_missing:
            raise FileNotFoundError(f"{message}; pass --skip-corrupt (skip_missing=True to "
                                    "a reader) to leave their persons out")
        # stacklevel 3: point at the reader's caller, not at the reader.
        warnings.warn(f"{message}; their annotations are skipped", stacklevel=3)
    return [exists[str(p)] for p in paths]


def _missing_message(missing: list[str], source: str | os.PathLike) -> str:
    names = ", ".join(Path(p).name for p in missing[:_LIST_FIRST])
    more = f" and {len(missing) - _LIST_FIRST} more" if len(missing) > _LIST_FIRST else ""
    folders = sorted({str(Path(p).parent) for p in missing})
    where = folders[0] if len(folders) == 1 else f"{len(folders)} folders"
    origin = f" named in {source}" if source else ""
    return (f"{len(missing)} image file(s){origin} not found in {where}: {names}{more}")
