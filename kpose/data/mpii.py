"""Reader for MPII Human Pose: the original MATLAB release and the HRNet/mmpose JSON.

Both use MPII's 16 joints in the :data:`~kpose.skeletons.MPII_16` order (0 right ankle ...
15 left wrist) and MATLAB's 1-based pixel coordinates; both become 0-based here.

- ``mpii_human_pose_v1_u12_1.mat`` holds the struct ``RELEASE``: ``annolist(i).image.name``,
  ``annolist(i).annorect(r)`` with the head box ``x1, y1, x2, y2``, the person ``scale``
  (person height / 200 px) and ``objpos.x/.y`` (rough person centre), and
  ``annopoints.point(p)`` with ``id`` (0-based joint id), ``x``, ``y``, ``is_visible``;
  ``img_train(i)`` (1 train, 0 test) and ``single_person{i}`` (1-based indices of the
  rects that are sufficiently separated people).
- The JSON that HRNet and mmpose derive from it is a list of
  ``{image, center, scale, joints (16 x [x, y]), joints_vis (16)}`` per person.

**Person box.** Neither file has a person box; both have ``objpos``/``center`` and ``scale``.
kpose's box is the square of side ``200 * scale`` px centred at ``center + (0, 15 * scale)``
(0-based). The downward shift is the reference pipelines' (Newell's stacked hourglass,
HRNet, mmpose): MPII's ``objpos`` sits above the body's middle, and on the sample files the
shift brings the centre to within a few px of the joints' vertical midpoint. Those pipelines
also multiply ``scale`` by 1.25; kpose does not, because its crop step adds its own margin:
the record's box is the person, not the crop. The box is not clipped to the image (clipping
would move its centre).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kpose.data.annotation_files import load_json, load_mat
from kpose.data.images import check_images_exist, image_sizes
from kpose.data.records import PoseRecord, box_from_keypoints
from kpose.skeletons import MPII_16

__all__ = ["read_mpii", "read_mpii_mat_people"]

_NUM_JOINTS = 16
# MPII's box convention: scale is the person height in units of 200 px.
_SCALE_UNIT = 200.0
# Downward shift of the centre, in px per unit of scale (stacked hourglass / HRNet).
_CENTRE_SHIFT = 15.0
# MPII's PCKh head segment: SC_BIAS (0.6) times the head box diagonal.
_HEAD_SC_BIAS = 0.6
_SPLITS = ("all", "train", "test")


def read_mpii(annotation: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              *, split: str = "all", single_person_only: bool = False,
              skip_missing: bool = False) -> list[PoseRecord]:
    """Read MPII annotations (``.json`` or ``.mat``, chosen by suffix) into records.

    Args:
        annotation: HRNet/mmpose ``*.json`` or the original ``mpii_human_pose_v1_u12_1.mat``.
        image_dir: folder of the image files; default: the annotation's folder + ``images``
            when that exists, else the annotation's folder.
        split: ``.mat`` only: ``"train"`` (``img_train == 1``), ``"test"`` or ``"all"``.
            The official release has no joints for test images, so there ``"all"`` gives
            the same records as ``"train"``. A JSON file is already one split: only
            ``"all"`` is accepted.
        single_person_only: ``.mat`` only: keep just the rects listed in ``single_person``.
        skip_missing: drop persons whose image is missing (warned) instead of raising.

    Returns:
        One record per person with at least one labelled joint, skeleton ``"mpii_16"``,
        ``keypoints`` ``(16, 3)`` float32 0-based, ``box`` as in the module docstring,
        ``image_size`` from the image header, ``image_id`` the file stem. Visibility:

        - ``.mat``: ``is_visible`` 1 -> v = 2, 0 -> v = 1, no point for a joint -> v = 0.
          Some points carry no ``is_visible`` value; they are labelled, so v = 2.
        - JSON: ``joints_vis`` 1 -> v = 2, 0 -> v = 0. The JSON keeps only "annotated or
          not" and drops MPII's occlusion flag, so no joint gets v = 1.

        ``head_size`` (``.mat``) is 0.6 x the head box diagonal, as in MPII's PCKh; the
        JSON has no head boxes, so it is None. ``extra`` holds ``center`` (0-based, as in
        the file, before the shift) and ``scale``, and for ``.mat`` also ``head_box``
        ``(x1, y1, x2, y2)`` 0-based, ``single_person``, ``annolist_index`` and
        ``annorect_index`` (0-based).

    Raises:
        ValueError: unknown suffix, or the file is not in the expected layout.
        FileNotFoundError: the annotation or (unless ``skip_missing``) an image is missing.
    """
    path = Path(annotation)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"MPII annotation file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        if split != "all" or single_person_only:
            raise ValueError(f"{path}: split and single_person_only apply to the .mat "
                             "release only; a HRNet/mmpose JSON is already one split")
        people = _people_from_json(path)
    elif suffix == ".mat":
        people = _people_from_mat(path, split, single_person_only)
    else:
        raise ValueError(f"{path}: expected an MPII annotation ending in .json (HRNet/mmpose) "
                         f"or .mat (mpii_human_pose_v1_u12_1.mat), got suffix {suffix!r}")
    return _records(people, path, image_dir, skip_missing)


# ---------------------------------------------------------------- HRNet / mmpose JSON


def _people_from_json(path: Path) -> list[dict]:
    data = load_json(path, "the HRNet/mmpose MPII list")
    if not isinstance(data, list):
        keys = f" with keys {sorted(data)[:8]}" if isinstance(data, dict) else ""
        raise ValueError(f"{path}: expected a JSON list of per-person objects {{image, "
                         f"center, scale, joints, joints_vis}}, got a "
                         f"{type(data).__name__}{keys} (COCO files go to read_coco)")
    return [_person_from_json(entry, f"{path}: entry {i}") for i, entry in enumerate(data)]


def _person_from_json(entry, where: str) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    missing = [k for k in ("image", "center", "scale", "joints", "joints_vis")
               if k not in entry]
    if missing:
        raise ValueError(f"{where}: field(s) {missing} missing; an MPII JSON entry has "
                         "image, center, scale, joints (16 x [x, y]) and joints_vis (16)")
    joints = _array(entry["joints"], (_NUM_JOINTS, 2), "joints", where)
    vis = _array(entry["joints_vis"], (_NUM_JOINTS,), "joints_vis", where)
    center = _array(entry["center"], (2,), "center", where) - 1.0
    keypoints = np.zeros((_NUM_JOINTS, 3), dtype=np.float32)
    labelled = vis > 0
    keypoints[labelled, :2] = joints[labelled] - 1.0
    keypoints[labelled, 2] = 2.0
    return {"image": str(entry["image"]), "keypoints": keypoints, "center": center,
            "scale": float(entry["scale"]), "head_size": None, "extra": {}}


def _array(value, shape: tuple, field: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: field {field!r} must be numbers of shape {shape}") from None
    if array.shape != shape:
        raise ValueError(f"{where}: field {field!r} has shape {array.shape}, expected {shape}")
    return array


# ---------------------------------------------------------------- MATLAB RELEASE struct


def read_mpii_mat_people(path: str | os.PathLike, split: str = "train",
                         single_person_only: bool = False) -> list[dict]:
    """The persons of the original ``.mat`` release, without images (for conversion tools).

    Args:
        path: ``mpii_human_pose_v1_u12_1.mat``.
        split: ``"train"`` (``img_train == 1``), ``"test"`` or ``"all"``.
        single_person_only: keep only the rects listed in ``single_person``.

    Returns:
        One dict per annotated person: ``image`` (file name), ``keypoints`` ``(16, 3)``
        float32 (x, y 0-based px, v 2 visible / 1 occluded / 0 unlabelled), ``center``
        ``(2,)`` 0-based px or None, ``scale`` (person height / 200 px) or None,
        ``head_size`` (0.6 x head-box diagonal, px) or None, and ``extra`` with
        ``head_box``, ``single_person``, ``annolist_index`` and ``annorect_index``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    return _people_from_mat(Path(path), split, single_person_only)


def _people_from_mat(path: Path, split: str, single_person_only: bool) -> list[dict]:
    release = _load_release(path)
    annolist = _items(release.annolist)
    img_train = np.atleast_1d(np.asarray(release.img_train)).ravel()
    if len(img_train) != len(annolist):
        raise ValueError(f"{path}: RELEASE.img_train has {len(img_train)} entries but "
                         f"RELEASE.annolist has {len(annolist)}; expected one per image")
    single = _single_person_lists(release, len(annolist), path)
    people = []
    for i, image in enumerate(annolist):
        if split != "all" and int(img_train[i]) != (1 if split == "train" else 0):
            continue
        name = _image_name(image, f"{path}: RELEASE.annolist({i + 1})")
        for r, rect in enumerate(_items(getattr(image, "annorect", None))):
            is_single = (r + 1) in single[i]
            if single_person_only and not is_single:
                continue
            where = f"{path}: RELEASE.annolist({i + 1}).annorect({r + 1})"
            person = _person_from_rect(rect, name, where)
            if person is not None:
                person["extra"].update(single_person=is_single, annolist_index=i,
                                       annorect_index=r)
                people.append(person)
    return people


def _load_release(path: Path):
    release = load_mat(path, "MPII's mpii_human_pose_v1_u12_1.mat", "RELEASE",
                       struct_as_record=False, squeeze_me=True)
    for field in ("annolist", "img_train"):
        if not hasattr(release, field):
            raise ValueError(f"{path}: RELEASE has no field {field!r}; expected the MPII "
                             "struct with annolist, img_train and single_person")
    return release


def _single_person_lists(release, count: int, path: Path) -> list[set[int]]:
    """``single_person{i}`` as sets of 1-based rect indices (empty when absent)."""
    if not hasattr(release, "single_person"):
        return [set() for _ in range(count)]
    # squeeze_me unwraps a 1 x 1 cell to its content, which may itself be an array.
    cells = [release.single_person] if count == 1 else _items(release.single_person)
    if len(cells) != count:
        raise ValueError(f"{path}: RELEASE.single_person has {len(cells)} cells, expected "
                         f"{count} (one per image)")
    return [{int(r) for r in np.atleast_1d(np.asarray(c, dtype=np.float64)).ravel()}
            for c in cells]


def _image_name(image, where: str) -> str:
    name = getattr(getattr(image, "image", None), "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: field image.name is missing or not a string")
    return name


def _person_from_rect(rect, name: str, where: str) -> dict | None:
    """One person from ``annorect(r)``; None when it has no labelled point."""
    points = _items(getattr(getattr(rect, "annopoints", None), "point", None))
    if not points:
        return None
    keypoints = np.zeros((_NUM_JOINTS, 3), dtype=np.float32)
    for point in points:
        joint = _number(getattr(point, "id", None))
        x, y = _number(getattr(point, "x", None)), _number(getattr(point, "y", None))
        if joint is None or x is None or y is None:
            raise ValueError(f"{where}: annopoints.point needs numeric id, x and y")
        if joint != int(joint) or not 0 <= joint < _NUM_JOINTS:
            raise ValueError(f"{where}: point id {joint} is not a joint id 0..15")
        keypoints[int(joint)] = (x - 1.0, y - 1.0, _visibility(point, where))
    head_box = [_number(getattr(rect, k, None)) for k in ("x1", "y1", "x2", "y2")]
    head_box = None if None in head_box else tuple(v - 1.0 for v in head_box)
    head_size = (None if head_box is None else
                 _HEAD_SC_BIAS * float(np.hypot(head_box[2] - head_box[0],
                                                head_box[3] - head_box[1])))
    objpos = getattr(rect, "objpos", None)
    cx, cy = _number(getattr(objpos, "x", None)), _number(getattr(objpos, "y", None))
    center = None if cx is None or cy is None else np.array([cx - 1.0, cy - 1.0])
    return {"image": name, "keypoints": keypoints, "center": center,
            "scale": _number(getattr(rect, "scale", None)), "head_size": head_size,
            "extra": {"head_box": head_box}}


def _visibility(point, where: str) -> float:
    """MPII ``is_visible`` (1 visible, 0 occluded; stored as number, string or empty)."""
    flag = getattr(point, "is_visible", None)
    if isinstance(flag, str):
        flag = flag.strip() or None
    if flag is None or isinstance(flag, np.ndarray) and flag.size == 0:
        return 2.0  # labelled, occlusion not recorded
    try:
        flag = int(float(np.asarray(flag).ravel()[0]))
    except (TypeError, ValueError):
        raise ValueError(f"{where}: is_visible {flag!r} is not 0 or 1") from None
    if flag not in (0, 1):
        raise ValueError(f"{where}: is_visible {flag!r} is not 0 or 1")
    return 2.0 if flag == 1 else 1.0


def _items(value) -> list:
    """A MATLAB array loaded with ``squeeze_me``: a 1-element array arrives unwrapped and an
    empty one as an empty ndarray, so normalise both to a Python list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [value]


def _number(value) -> float | None:
    """A MATLAB scalar as float, None when empty or absent."""
    if value is None or isinstance(value, str):
        return None
    array = np.asarray(value, dtype=np.float64).ravel()
    return float(array[0]) if array.size == 1 and np.isfinite(array[0]) else None


# ---------------------------------------------------------------- records


def _records(people: list[dict], path: Path, image_dir, skip_missing: bool) -> list[PoseRecord]:
    people = [p for p in people if np.any(p["keypoints"][:, 2] > 0)]
    folder = Path(image_dir) if image_dir is not None else _default_image_dir(path)
    paths = [str(folder / p["image"]) for p in people]
    present = check_images_exist(paths, skip_missing=skip_missing, source=path)
    kept = [i for i, ok in enumerate(present) if ok]
    sizes = image_sizes([paths[i] for i in kept])
    records = []
    for i, size in zip(kept, sizes):
        person = people[i]
        extra = dict(person["extra"])
        if person["center"] is not None:
            extra["center"] = tuple(float(c) for c in person["center"])
        extra["scale"] = person["scale"]
        records.append(PoseRecord(
            image_path=paths[i], box=_person_box(person, size),
            keypoints=person["keypoints"], skeleton=MPII_16.name, image_size=size,
            image_id=Path(person["image"]).stem, head_size=person["head_size"], extra=extra))
    return records


def _person_box(person: dict, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """Square of side 200*scale centred 15*scale px below ``center``; see module docstring.

    Falls back to the joints' box when the rect has no usable centre or scale.
    """
    center, scale = person["center"], person["scale"]
    if center is None or scale is None or not scale > 0:
        return box_from_keypoints(person["keypoints"], size)
    side = _SCALE_UNIT * scale
    cx, cy = center[0], center[1] + _CENTRE_SHIFT * scale
    return (cx - side / 2, cy - side / 2, side, side)


def _default_image_dir(path: Path) -> Path:
    images = path.parent / "images"
    return images if images.is_dir() else path.parent
