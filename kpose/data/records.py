"""`PoseRecord`: one annotated person, the unit every reader returns and the pipeline eats."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["PoseRecord", "box_from_keypoints", "MAX_BOX_SCALE"]

# A person box may be at most this many times its image on a side (a box of 1e12 px is a
# unit error, not a person).
MAX_BOX_SCALE = 10.0


@dataclass(frozen=True, eq=False)
class PoseRecord:
    """One annotated person in one image.

    Attributes:
        image_path: path of the image file (JPEG or PNG).
        box: person box ``(x, y, w, h)`` in image pixels, ``w, h > 0``; same frame as the
            keypoints (x right, y down, 0-based pixel centres at integer coordinates).
        keypoints: ``(K, 3)`` float32 ``(x, y, v)`` with COCO visibility: 0 not labelled
            (x = y = 0), 1 labelled but occluded, 2 visible.
        skeleton: name of the :class:`~kpose.skeletons.Skeleton` the rows follow.
        image_size: ``(width, height)`` of the image in pixels.
        image_id: the data set's image identifier (COCO ``image_id``, file stem otherwise).
        area: person area in px^2, the OKS scale ``s^2`` (COCO segmentation area).
        head_size: head segment length in px for PCKh (MPII: 0.6 x head box diagonal),
            ``None`` when the data set has no head boxes.
        annotation_id: the data set's id of this person, when it has one.
    """

    image_path: str
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    skeleton: str
    image_size: tuple[int, int]
    image_id: int | str | None = None
    area: float | None = None
    head_size: float | None = None
    annotation_id: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_path", str(self.image_path))
        where = f"record for {self.image_path}"
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 2 or kp.shape[1] != 3:
            raise ValueError(f"{where}: keypoints must have shape (K, 3), got {kp.shape}")
        if not np.all(np.isin(kp[:, 2], (0.0, 1.0, 2.0))):
            raise ValueError(f"{where}: keypoint visibility must be 0, 1 or 2, got "
                             f"{sorted(set(kp[:, 2].tolist()))}")
        object.__setattr__(self, "keypoints", kp)
        box = tuple(float(b) for b in self.box)
        if len(box) != 4 or not np.all(np.isfinite(box)):
            raise ValueError(f"{where}: box must be four finite numbers (x, y, w, h), "
                             f"got {self.box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"{where}: box {box} must have positive width and height")
        object.__setattr__(self, "box", box)
        size = tuple(int(s) for s in self.image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"{where}: image_size must be (width, height) > 0, "
                             f"got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        width, height = size
        labelled = kp[kp[:, 2] > 0, :2]
        if labelled.size and (not np.all(np.isfinite(labelled)) or np.any(
                np.abs(labelled - np.array([width, height]) / 2)
                > 1.5 * np.array([width, height]))):
            raise ValueError(f"{where}: labelled keypoints must lie within one image size of "
                             f"the {width} x {height} px image, got x {labelled[:, 0].min():g}"
                             f"..{labelled[:, 0].max():g}, y {labelled[:, 1].min():g}.."
                             f"{labelled[:, 1].max():g} (coordinates in another unit or "
                             "frame?)")
        if box[2] > MAX_BOX_SCALE * width or box[3] > MAX_BOX_SCALE * height:
            raise ValueError(f"{where}: box {box} is more than {MAX_BOX_SCALE:g} times its "
                             f"{width} x {height} px image")

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def labelled(self) -> np.ndarray:
        """``(K,)`` bool: joints with a usable position (``v > 0``)."""
        return self.keypoints[:, 2] > 0

    @property
    def file_name(self) -> str:
        return Path(self.image_path).name


def box_from_keypoints(keypoints: np.ndarray, image_size: tuple[int, int] | None = None,
                       margin: float = 0.15) -> tuple[float, float, float, float]:
    """Tight box around the labelled joints, grown by ``margin`` of its size on each side.

    Args:
        keypoints: ``(K, 3)`` array in the kpose convention.
        image_size: ``(width, height)``; when given the box is clipped to the image.
        margin: fraction of the box width/height added on each side.

    Returns:
        ``(x, y, w, h)``. Raises ``ValueError`` when no joint is labelled.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    pts = kp[kp[:, 2] > 0, :2]
    if len(pts) == 0:
        raise ValueError("cannot derive a box: no keypoint is labelled")
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    # A single joint, or collinear joints, still needs an area: use the larger side.
    # A single joint gives no extent at all; such a box is at least 1 px on each side.
    side = max(x1 - x0, y1 - y0, 1.0)
    w, h = max(x1 - x0, 0.1 * side, 1.0), max(y1 - y0, 0.1 * side, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if image_size is not None:
        width, height = image_size
        x0, y0 = max(x0, -0.5), max(y0, -0.5)
        x1, y1 = min(x1, width - 0.5), min(y1, height - 0.5)
        if x1 <= x0 or y1 <= y0:
            raise ValueError("cannot derive a box: the labelled joints lie outside the image")
    return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
