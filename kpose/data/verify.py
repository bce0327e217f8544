"""Find images that cannot be decoded, before TensorFlow meets them mid-epoch."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

__all__ = ["find_unreadable_images", "unreadable_message", "drop_unreadable"]


def find_unreadable_images(paths: Sequence[str], *, progress: bool = True) -> dict[str, str]:
    """Decode every image fully with Pillow and collect the ones that fail.

    Args:
        paths: image files.
        progress: show a progress bar on standard output for long lists.

    Returns:
        ``{path: reason}`` for every file that is missing, truncated or not an image.
    """
    bar = None
    if progress and len(paths) > 200:
        from keras.utils import Progbar  # Keras (and TensorFlow) only for long checks

        bar = Progbar(len(paths), unit_name="image")
    bad: dict[str, str] = {}
    with ThreadPoolExecutor() as pool:
        for i, (path, reason) in enumerate(zip(paths, pool.map(_decode_error, paths))):
            if reason is not None:
                bad[path] = reason
            if bar is not None and (i + 1) % 100 == 0:
                bar.update(i + 1)
    if bar is not None:
        bar.update(len(paths), finalize=True)
    return bad


def unreadable_message(bad: dict[str, str], total: int) -> str:
    """One line naming the first unreadable image of ``bad`` (``{path: reason}``) and
    how many more there are, out of ``total`` images."""
    first, reason = next(iter(bad.items()))
    more = f" and {len(bad) - 1} more of the {total} images" if len(bad) > 1 else \
        f" (1 of {total} images)"
    return (f"{first} cannot be decoded ({reason}){more}; fix or remove it, or pass "
            "--skip-corrupt (skip_corrupt=True) to leave such persons out")


def drop_unreadable(records: Sequence, *, skip: bool, progress: bool = True) -> list:
    """``records`` whose images all decode: with ``skip``, those of unreadable images are
    dropped (and counted on standard output); without it, the first one is an error.

    Raises:
        ValueError: an unreadable image and not ``skip``, naming it; or nothing left.
    """
    paths = sorted({r.image_path for r in records})
    bad = find_unreadable_images(paths, progress=progress)
    if not bad:
        return list(records)
    if not skip:
        raise ValueError(unreadable_message(bad, len(paths)))
    kept = [r for r in records if r.image_path not in bad]
    print(f"skipping {len(records) - len(kept)} of {len(records)} persons: {len(bad)} "
          f"unreadable image(s), first {next(iter(bad))}", flush=True)
    if not kept:
        raise ValueError("no readable image is left after skipping the corrupt ones")
    return kept


def _decode_error(path: str) -> str | None:
    try:
        with Image.open(path) as image:
            image.load()  # full decode: catches truncated files, not just bad headers
            if image.mode not in ("RGB", "L", "RGBA", "P", "CMYK", "LA", "I;16", "I"):
                return f"unsupported image mode {image.mode}"
    except FileNotFoundError:
        return "file not found"
    except Exception as error:  # Pillow raises many types for bad data
        return f"{type(error).__name__}: {error}"
    return None
