"""Reader for Leeds Sports Pose (LSP) and LSP Extended (LSPET) ``joints.mat`` files.

Both files hold one MATLAB variable ``joints`` with 14 joints per image, in LSP's order
(the :data:`~kpose.skeletons.LSP_14` order), and column ``i`` belongs to image number
``first_index + i``. They differ in layout and in what the flag means:

========  ==============  =================  ============================================
variant   shape           file names         flag
========  ==============  =================  ============================================
lsp       ``(3, 14, N)``  ``im0001.jpg``     0 visible, 1 occluded (coordinates are real)
lspet     ``(14, 3, N)``  ``im00001.jpg``    1 visible, 0 not visible (coordinates unusable)
========  ==============  =================  ============================================

Coordinates are MATLAB's 1-based pixel coordinates (centre of the top-left pixel at
(1, 1)); subtracting 1 gives kpose's 0-based pixel centres.

Two entry points: :func:`read_lsp_keypoints` converts the annotations alone (no images
needed, e.g. to score predictions or when only ``joints.mat`` is at hand) and
:func:`read_lsp` pairs them with the image files into :class:`~kpose.data.PoseRecord`\\ s.
:func:`read_lsp` needs the images: a record's ``image_size`` and clipped box come from the
image, and inventing a size from the joints would hand the pipeline a wrong frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from kpose.data.annotation_files import load_mat
from kpose.data.images import check_images_exist, image_sizes
from kpose.data.records import PoseRecord, box_from_keypoints
from kpose.skeletons import LSP_14

__all__ = ["read_lsp", "read_lsp_keypoints", "lsp_image_names"]

_VARIANTS = ("lsp", "lspet")
_NUM_JOINTS = 14


def read_lsp(joints_mat: str | os.PathLike, image_dir: str | os.PathLike | None = None,
             variant: str = "lsp", first_index: int = 1, *, box_margin: float = 0.15,
             skip_missing: bool = False) -> list[PoseRecord]:
    """Read an LSP or LSPET ``joints.mat`` and its images into one record per image.

    Args:
        joints_mat: the ``.mat`` file with variable ``joints``.
        image_dir: folder holding the ``imNNNN(N).jpg`` files; default: the ``.mat``'s
            folder + ``images``.
        variant: ``"lsp"`` (``(3, 14, N)``, flag 0 = visible) or ``"lspet"``
            (``(14, 3, N)``, flag 1 = visible).
        first_index: image number of column 0 (1 for the full files; 4001 for a split
            that starts at ``im04001.jpg``).
        box_margin: fraction of the joints' extent added on each side of the person box.
        skip_missing: drop images that are missing (with a warning) instead of raising.

    Returns:
        Records in column order: ``keypoints`` ``(14, 3)`` float32 as in
        :func:`read_lsp_keypoints`; ``box`` around the labelled joints grown by
        ``box_margin`` and clipped to the image; ``image_size`` from the image header;
        ``image_id`` the file stem (``"im04001"``); skeleton ``"lsp_14"``; ``area`` None.
        An image whose labelled joints all lie outside it gets no record (warned).

    Raises:
        ValueError: not an LSP/LSPET file, or the layout does not match ``variant``.
        FileNotFoundError: the ``.mat`` or (unless ``skip_missing``) an image is missing.
    """
    path = Path(joints_mat)
    keypoints = read_lsp_keypoints(path, variant)
    folder = Path(image_dir) if image_dir is not None else path.parent / "images"
    names = lsp_image_names(len(keypoints), variant, first_index)
    paths = [str(folder / name) for name in names]

    present = check_images_exist(paths, skip_missing=skip_missing, source=path)
    kept = [i for i, ok in enumerate(present) if ok]
    sizes = image_sizes([paths[i] for i in kept])
    records, outside = [], []
    for i, size in zip(kept, sizes):
        try:
            box = box_from_keypoints(keypoints[i], size, margin=box_margin)
        except ValueError:
            outside.append(names[i])
            continue
        records.append(PoseRecord(image_path=paths[i], box=box, keypoints=keypoints[i],
                                  skeleton=LSP_14.name, image_size=size,
                                  image_id=Path(names[i]).stem))
    if outside:
        warnings.warn(f"{path}: {len(outside)} image(s) have no labelled joint inside the "
                      f"image and were skipped: {', '.join(outside[:5])}", stacklevel=2)
    _check_pairing(path, records, len(kept), first_index)
    return records


# Joints farther outside their image than this fraction of its longer side are not
# plausible labels; when many persons have them, the joints are paired with the wrong
# images (a split read without its FIRST_INDEX). Correct real files have none (LSPET:
# 0 of 4,500; lspet_bench val read from image 1 instead of 4001: 10.5 %).
_OUTSIDE_TOLERANCE = 0.1
_MISPAIRED_FRACTION = 0.05


def _check_pairing(path: Path, records: list[PoseRecord], read: int, first_index: int) -> None:
    """Refuse joints that do not fit their images, naming the first such image."""
    implausible = []
    for record in records:
        width, height = record.image_size
        tolerance = _OUTSIDE_TOLERANCE * max(width, height)
        labelled = record.keypoints[record.keypoints[:, 2] > 0]
        x, y = labelled[:, 0], labelled[:, 1]
        if ((x < -tolerance) | (x > width - 1 + tolerance) | (y < -tolerance)
                | (y > height - 1 + tolerance)).any():
            implausible.append(record)
    lost = read - len(records)  # images none of whose joints lie inside them
    if len(implausible) + lost >= max(3, _MISPAIRED_FRACTION * max(read, 1)):
        first = implausible[0] if implausible else None
        example = f"; first {Path(first.image_path).name} ({first.image_size[0]} x " \
            f"{first.image_size[1]} px)" if first else ""
        raise ValueError(f"{path}: the joints of {len(implausible) + lost} of {read} persons "
                         f"lie far outside their images{example}: are the joints paired "
                         f"with the right images? Column 0 was read as image {first_index} "
                         "(give FIRST_INDEX in the spec, e.g. lspet:joints.mat:images:4001)")


def read_lsp_keypoints(joints_mat: str | os.PathLike, variant: str = "lsp") -> np.ndarray:
    """The annotations of an LSP/LSPET ``joints.mat`` in the kpose convention, no images.

    Args:
        joints_mat: the ``.mat`` file with variable ``joints``.
        variant: ``"lsp"`` or ``"lspet"`` (see the module docstring).

    Returns:
        ``(N, 14, 3)`` float32 ``(x, y, v)``, row ``i`` for column ``i`` of the file:
        0-based pixels (file value - 1). LSP: flag 0 -> v = 2, flag 1 -> v = 1 (occluded,
        coordinates kept). LSPET: flag 1 -> v = 2, flag 0 -> v = 0 and x = y = 0 (the file's
        coordinates for such joints lie outside the image and mean nothing).
    """
    path = Path(joints_mat)
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    joints = _load_joints(path)
    expected = (3, _NUM_JOINTS) if variant == "lsp" else (_NUM_JOINTS, 3)
    if joints.ndim != 3 or joints.shape[:2] != expected:
        raise ValueError(_layout_message(path, joints.shape, variant))
    # Both layouts to (N, 14, 3) rows of (x, y, flag).
    rows = joints.transpose(2, 1, 0) if variant == "lsp" else joints.transpose(2, 0, 1)
    return _convert(rows, variant, path)


def lsp_image_names(count: int, variant: str = "lsp", first_index: int = 1) -> list[str]:
    """File names of ``count`` consecutive images: ``im0001.jpg`` (LSP) or ``im00001.jpg``."""
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    if first_index < 1:
        raise ValueError(f"first_index is the 1-based number of the first image, got "
                         f"{first_index}")
    digits = 4 if variant == "lsp" else 5
    return [f"im{first_index + i:0{digits}d}.jpg" for i in range(count)]


def _load_joints(path: Path) -> np.ndarray:
    joints = load_mat(path, "an LSP/LSPET joints.mat", "joints")
    if not np.issubdtype(joints.dtype, np.number):
        raise ValueError(f"{path}: 'joints' must be a numeric array, got dtype "
                         f"{joints.dtype}")
    return joints.astype(np.float64)


def _layout_message(path: Path, shape: tuple, variant: str) -> str:
    expected = "(3, 14, N)" if variant == "lsp" else "(14, 3, N)"
    other = "lspet" if variant == "lsp" else "lsp"
    other_shape = "(14, 3, N)" if variant == "lsp" else "(3, 14, N)"
    hint = ""
    if len(shape) == 3 and shape[:2] == ((_NUM_JOINTS, 3) if variant == "lsp" else (3, 14)):
        hint = f"; this looks like the {other} layout {other_shape}: pass variant={other!r}"
    return (f"{path}: 'joints' has shape {shape}, but variant={variant!r} expects "
            f"{expected}{hint}")


def _convert(rows: np.ndarray, variant: str, path: Path) -> np.ndarray:
    flags = rows[..., 2]
    if not np.all(np.isin(flags, (0.0, 1.0))):
        raise ValueError(f"{path}: visibility flags must be 0 or 1, got "
                         f"{sorted(set(np.unique(flags).tolist()) - {0.0, 1.0})}")
    out = np.zeros(rows.shape, dtype=np.float32)
    out[..., :2] = rows[..., :2] - 1.0  # MATLAB 1-based -> 0-based pixel centres
    if variant == "lsp":
        out[..., 2] = np.where(flags == 0, 2.0, 1.0)
    else:
        out[..., 2] = np.where(flags == 1, 2.0, 0.0)
    out[out[..., 2] == 0, :2] = 0.0
    labelled = out[..., 2] > 0
    if not np.all(np.isfinite(out[labelled])):
        raise ValueError(f"{path}: labelled joints have NaN or infinite coordinates")
    return out
