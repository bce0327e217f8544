"""Reader for FLIC (Frames Labeled In Cinema) ``examples.mat``.

``examples.mat`` holds the struct array ``examples``, one element per frame, with fields
``coords`` (2 x 29 MATLAB 1-based pixel coordinates, NaN where a part is not labelled),
``filepath`` (image file name), ``imgdims`` (``[height, width, 3]``), ``torsobox``
(``[x1 y1 x2 y2]``), ``istrain``, ``istest``, ``isbad``, ``isunchecked``, ``moviename`` and
``currframe``. The 29 columns follow FLIC's part list (:data:`FLIC_PARTS`); only the eleven
joints of the :data:`~kpose.skeletons.FLIC` skeleton are labelled. Left and right are the
person's own.

**Person box.** The box is the labelled joints' extent grown by ``box_margin`` on each side
and clipped to the image, as for LSP. ``torsobox`` covers the torso only (the arms reach
outside it), so it is kept in ``extra`` rather than used as the person box.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kpose.data.annotation_files import load_mat
from kpose.data.images import check_images_exist, image_sizes
from kpose.data.records import PoseRecord, box_from_keypoints
from kpose.skeletons import FLIC

__all__ = ["read_flic", "FLIC_PARTS"]

# FLIC's 29 parts in ``coords`` column order (its lookupPart list; MATLAB index = position + 1).
FLIC_PARTS = ("lsho", "lelb", "lwri", "rsho", "relb", "rwri", "lhip", "lkne", "lank",
              "rhip", "rkne", "rank", "leye", "reye", "lear", "rear", "nose", "msho",
              "mhip", "mear", "mtorso", "mluarm", "mruarm", "mllarm", "mrlarm", "mluleg",
              "mruleg", "mllleg", "mrlleg")

# The FLIC part behind each joint of kpose's FLIC skeleton, in skeleton order.
_SKELETON_PARTS = ("lsho", "lelb", "lwri", "rsho", "relb", "rwri", "lhip", "rhip", "leye",
                   "reye", "nose")
_COLUMNS = tuple(FLIC_PARTS.index(p) for p in _SKELETON_PARTS)
_SPLITS = ("all", "train", "test")


def read_flic(examples_mat: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              split: str = "all", *, box_margin: float = 0.15,
              skip_missing: bool = False) -> list[PoseRecord]:
    """Read FLIC's ``examples.mat`` into one record per frame.

    Args:
        examples_mat: the ``.mat`` file with the struct array ``examples``.
        image_dir: folder holding the ``filepath`` files; default: the ``.mat``'s folder +
            ``images`` (FLIC's own layout).
        split: ``"all"``, ``"train"`` (``istrain``) or ``"test"`` (``istest``).
        box_margin: fraction of the joints' extent added on each side of the person box.
        skip_missing: drop frames whose image is missing (warned) instead of raising.

    Returns:
        Records in file order, skeleton ``"flic"``: ``keypoints`` ``(11, 3)`` float32,
        0-based (file value - 1), v = 2 where labelled and v = 0 (x = y = 0) where NaN
        (FLIC has no occlusion flag); ``image_size`` from ``imgdims`` (from the header when
        absent); ``box`` as in the module docstring; ``image_id`` the file stem; ``extra``
        with ``torsobox`` (0-based ``x1, y1, x2, y2``), ``moviename``, ``currframe``,
        ``isbad`` and ``isunchecked`` where present. Frames without any labelled joint are
        skipped.

    Raises:
        ValueError: not a FLIC ``examples.mat``, or a field has the wrong shape.
        FileNotFoundError: the ``.mat`` or (unless ``skip_missing``) an image is missing.
    """
    path = Path(examples_mat)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    examples = _load_examples(path)
    frames = []
    for i, example in enumerate(examples):
        where = f"{path}: examples({i + 1})"
        if split != "all" and not _flag(example, "is" + split, where, required=True):
            continue
        keypoints = _keypoints(example, where)
        if np.any(keypoints[:, 2] > 0):
            frames.append((example, keypoints, _file_name(example, where), where))

    folder = Path(image_dir) if image_dir is not None else path.parent / "images"
    paths = [str(folder / name) for _, _, name, _ in frames]
    present = check_images_exist(paths, skip_missing=skip_missing, source=path)
    kept = [i for i, ok in enumerate(present) if ok]
    sizes = _image_sizes([frames[i] for i in kept], [paths[i] for i in kept])
    records = []
    for i, size in zip(kept, sizes):
        example, keypoints, name, where = frames[i]
        records.append(PoseRecord(
            image_path=paths[i], box=box_from_keypoints(keypoints, size, margin=box_margin),
            keypoints=keypoints, skeleton=FLIC.name, image_size=size,
            image_id=Path(name).stem, extra=_extra(example, where)))
    return records


def _load_examples(path: Path) -> list:
    examples = load_mat(path, "FLIC's examples.mat", "examples", struct_as_record=False,
                        squeeze_me=True)
    # squeeze_me unwraps a one-element struct array.
    examples = list(examples.ravel()) if isinstance(examples, np.ndarray) else [examples]
    for field in ("coords", "filepath"):
        if examples and not hasattr(examples[0], field):
            raise ValueError(f"{path}: examples has no field {field!r}; a FLIC example has "
                             "coords (2 x 29), filepath, imgdims, torsobox, istrain, istest")
    return examples


def _keypoints(example, where: str) -> np.ndarray:
    coords = np.asarray(example.coords, dtype=np.float64)
    if coords.shape != (2, len(FLIC_PARTS)):
        raise ValueError(f"{where}: field 'coords' has shape {coords.shape}, expected "
                         f"(2, {len(FLIC_PARTS)}) (x and y rows for FLIC's 29 parts)")
    xy = coords[:, _COLUMNS].T - 1.0  # MATLAB 1-based -> 0-based pixel centres
    labelled = np.all(np.isfinite(xy), axis=1)
    keypoints = np.zeros((len(_COLUMNS), 3), dtype=np.float32)
    keypoints[labelled, :2] = xy[labelled]
    keypoints[labelled, 2] = 2.0
    return keypoints


def _file_name(example, where: str) -> str:
    name = example.filepath
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: field 'filepath' must be a file name, got {name!r}")
    return name


def _image_sizes(frames: list, paths: list[str]) -> list[tuple[int, int]]:
    """``(width, height)`` from ``imgdims`` ([h, w, 3]); from the header where absent."""
    sizes: list = [None] * len(frames)
    for i, (example, _, _, where) in enumerate(frames):
        dims = np.asarray(getattr(example, "imgdims", []), dtype=np.float64).ravel()
        if dims.size:
            if dims.size < 2 or not np.all(dims[:2] > 0):
                raise ValueError(f"{where}: field 'imgdims' must be [height, width, 3], got "
                                 f"{dims.tolist()}")
            sizes[i] = (int(dims[1]), int(dims[0]))
    to_read = [i for i, s in enumerate(sizes) if s is None]
    for i, size in zip(to_read, image_sizes([paths[i] for i in to_read])):
        sizes[i] = size
    return sizes


def _flag(example, field: str, where: str, required: bool = False) -> bool | None:
    value = getattr(example, field, None)
    array = np.asarray(value if value is not None else [], dtype=np.float64).ravel()
    if array.size == 0:
        if required:
            raise ValueError(f"{where}: field {field!r} is missing; it is needed to select "
                             "the split")
        return None
    return bool(array[0])


def _extra(example, where: str) -> dict:
    extra: dict = {}
    torsobox = np.asarray(getattr(example, "torsobox", []), dtype=np.float64).ravel()
    if torsobox.size == 4:
        extra["torsobox"] = tuple(float(v) - 1.0 for v in torsobox)
    movie = getattr(example, "moviename", None)
    if isinstance(movie, str):
        extra["moviename"] = movie
    frame = np.asarray(getattr(example, "currframe", []), dtype=np.float64).ravel()
    if frame.size == 1:
        extra["currframe"] = int(frame[0])
    for field in ("isbad", "isunchecked"):
        flag = _flag(example, field, where)
        if flag is not None:
            extra[field] = flag
    return extra
