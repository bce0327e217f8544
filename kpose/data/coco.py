"""Reader for COCO ``person_keypoints`` JSON files and other files in that layout.

The COCO layout is ``{"images": [...], "annotations": [...], "categories": [...]}`` with one
annotation per person: ``keypoints`` is a flat list of ``K`` triples ``x, y, v``, already in
the kpose convention (0-based pixels, x right, y down, v = 0 / 1 / 2), ``bbox`` is
``[x, y, w, h]`` and ``area`` the segmentation area in px^2 (the OKS scale s^2).

Besides COCO itself this reads OCHuman (same 17 joints) and, given a matching
:class:`~kpose.skeletons.Skeleton`, CrowdPose and mmpose's AI Challenger conversion
(14 joints each).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from kpose.data.annotation_files import load_json
from kpose.data.images import check_images_exist, image_sizes
from kpose.data.records import PoseRecord, box_from_keypoints
from kpose.skeletons import COCO_17, Skeleton, get_skeleton

__all__ = ["read_coco"]


def read_coco(annotation_json: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              *, skeleton: str | Skeleton = COCO_17,
              skip_missing: bool = False) -> list[PoseRecord]:
    """Read a COCO-format person-keypoints file into one record per labelled person.

    A person becomes a record when it is not a crowd (``iscrowd`` absent or 0) and has at
    least one labelled keypoint (v > 0). Keypoints are copied as they are: COCO already uses
    the kpose convention. ``v`` may be stored as a float (OCHuman writes ``2.0``) but must be
    0, 1 or 2; unlabelled joints get x = y = 0 whatever the file says.

    Args:
        annotation_json: the JSON file.
        image_dir: folder that ``images[].file_name`` is relative to. Default: the JSON's
            folder + ``images`` when that folder exists, else the JSON's folder.
        skeleton: the layout of the keypoint rows; its joint count must equal the file's
            ``K`` (CrowdPose and AIC have 14: pass a 14-joint skeleton).
        skip_missing: drop persons whose image file is missing (with a warning) instead of
            raising ``FileNotFoundError``.

    Returns:
        Records in annotation order, with ``keypoints`` ``(K, 3)`` float32, ``box`` from
        ``bbox`` (from the keypoints when ``bbox`` is absent or empty), ``area`` from
        ``area`` (``w * h`` of the box when absent), ``image_size`` from ``images[]``
        ``width``/``height`` (from the image header when absent), ``image_id`` and
        ``annotation_id`` from the file.

    Raises:
        ValueError: the file is not COCO person-keypoints data, or ``K`` differs from the
            skeleton's joint count, or a keypoint list or visibility value is malformed.
        FileNotFoundError: the JSON or (unless ``skip_missing``) an image file is missing.
    """
    path = Path(annotation_json)
    skeleton = get_skeleton(skeleton)
    data = _load_json(path)
    images = _images_by_id(data, path)
    category_id, names = _keypoint_category(data, path)
    k = _joint_count(data, names, path)
    _check_skeleton(skeleton, k, names, path)
    folder = Path(image_dir) if image_dir is not None else _default_image_dir(path)

    people = []
    for index, ann in enumerate(data["annotations"]):
        if category_id is not None and ann.get("category_id", category_id) != category_id:
            continue
        if ann.get("iscrowd", 0):
            continue
        where = f"{path}: annotations[{index}] (id {ann.get('id')})"
        keypoints = _keypoints(ann, k, where)
        if not np.any(keypoints[:, 2] > 0):
            continue
        image = images.get(ann.get("image_id"))
        if image is None:
            raise ValueError(f"{where}: image_id {ann.get('image_id')!r} is not in images[]")
        people.append((ann, keypoints, image, str(folder / image["file_name"])))

    present = check_images_exist([p[3] for p in people], skip_missing=skip_missing,
                                 source=path)
    people = [p for p, ok in zip(people, present) if ok]
    sizes = _image_sizes(people)
    return [_record(ann, keypoints, image_path, size, skeleton)
            for (ann, keypoints, _, image_path), size in zip(people, sizes)]


def _load_json(path: Path) -> dict:
    data = load_json(path, "COCO person keypoints")
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a COCO object with 'images' and 'annotations', got a JSON "
            f"{type(data).__name__} (a detection-results list or an MPII JSON? MPII files "
            "go to read_mpii)")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            found = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise ValueError(f"{path}: field {key!r} is {found}; a COCO person-keypoints "
                             f"file has a list under {key!r} (top-level keys: "
                             f"{sorted(data)})")
    return data


def _images_by_id(data: dict, path: Path) -> dict:
    images = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{path}: images[{index}] must be an object with 'id' and "
                             f"'file_name', got {image!r:.200}")
        images[image["id"]] = image
    return images


def _keypoint_category(data: dict, path: Path) -> tuple[int | None, list[str] | None]:
    """The category whose annotations carry keypoints (person), and its keypoint names."""
    categories = [c for c in data.get("categories", []) or []
                  if isinstance(c, dict) and c.get("keypoints")]
    if not categories:
        return None, None
    # A file may hold several categories; keypoints belong to the person category.
    chosen = next((c for c in categories if c.get("name") == "person"), categories[0])
    return chosen.get("id"), list(chosen["keypoints"])


def _joint_count(data: dict, names: list[str] | None, path: Path) -> int:
    if names:
        return len(names)
    for ann in data["annotations"]:
        if "keypoints" in ann:
            return len(ann["keypoints"]) // 3
    raise ValueError(f"{path}: no annotation has a 'keypoints' field and no category lists "
                     "'keypoints'; this is not a person-keypoints file (an instances file?)")


def _check_skeleton(skeleton: Skeleton, k: int, names: list[str] | None, path: Path) -> None:
    if k != skeleton.num_joints:
        raise ValueError(
            f"{path}: persons have {k} keypoints but skeleton {skeleton.name!r} has "
            f"{skeleton.num_joints} joints; pass skeleton= a Skeleton with {k} joints in the "
            f"file's order" + (f" ({names})" if names else ""))
    if names and [_plain(n) for n in names] != [_plain(n) for n in skeleton.joint_names]:
        # Same count, other joints (PoseTrack's head_bottom/head_top, say): the rows would
        # be misread silently, but a user skeleton may just spell names differently.
        warnings.warn(
            f"{path}: keypoint names {names} differ from skeleton {skeleton.name!r} joint "
            f"names {list(skeleton.joint_names)}; rows are read in file order", stacklevel=3)


def _plain(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _keypoints(ann: dict, k: int, where: str) -> np.ndarray:
    """``(K, 3)`` float32 from COCO's flat list, v checked to be 0, 1 or 2."""
    if "keypoints" not in ann:
        raise ValueError(f"{where}: field 'keypoints' is missing (a person-keypoints "
                         "annotation has 3*K numbers there)")
    try:
        flat = np.asarray(ann["keypoints"], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'keypoints' must be a flat list of numbers") from None
    if flat.shape != (3 * k,):
        raise ValueError(f"{where}: 'keypoints' has shape {flat.shape}, expected {3 * k} "
                         f"numbers ({k} joints x [x, y, v])")
    kp = flat.reshape(k, 3)
    if not np.all(np.isfinite(kp)):
        raise ValueError(f"{where}: 'keypoints' contains NaN or infinity")
    v = kp[:, 2]
    if not np.all(np.isin(v, (0.0, 1.0, 2.0))):
        raise ValueError(f"{where}: keypoint visibility v must be 0, 1 or 2, got "
                         f"{sorted(set(v.tolist()) - {0.0, 1.0, 2.0})}")
    kp[v == 0, :2] = 0.0
    return kp.astype(np.float32)


def _default_image_dir(path: Path) -> Path:
    images = path.parent / "images"
    return images if images.is_dir() else path.parent


def _image_sizes(people: list) -> list[tuple[int, int]]:
    """Sizes from ``images[]`` where given; the others from the image headers."""
    sizes: list = [None] * len(people)
    to_read = []
    for i, (_, _, image, image_path) in enumerate(people):
        width, height = image.get("width"), image.get("height")
        if width and height:
            sizes[i] = (int(width), int(height))
        else:
            to_read.append(i)
    for i, size in zip(to_read, image_sizes([people[i][3] for i in to_read])):
        sizes[i] = size
    return sizes


def _record(ann: dict, keypoints: np.ndarray, image_path: str, size: tuple[int, int],
            skeleton: Skeleton) -> PoseRecord:
    box = _box(ann.get("bbox"))
    if box is None:
        box = box_from_keypoints(keypoints, size)
    area = ann.get("area")
    area = float(area) if area is not None else box[2] * box[3]
    return PoseRecord(image_path=image_path, box=box, keypoints=keypoints,
                      skeleton=skeleton.name, image_size=size, image_id=ann.get("image_id"),
                      area=area, annotation_id=ann.get("id"))


def _box(bbox) -> tuple[float, float, float, float] | None:
    """COCO ``[x, y, w, h]``, or None when absent or degenerate (then the joints decide)."""
    if bbox is None:
        return None
    values = np.asarray(bbox, dtype=np.float64).ravel()
    if values.shape != (4,) or not np.all(np.isfinite(values)) or min(values[2:]) <= 0:
        return None
    return tuple(float(b) for b in values)
