"""Procedural synthetic people: articulated figures in clutter, with COCO_17 keypoints.

kpose trains and tests offline with these images: no download, any number, same seed ->
same bytes. Each image holds one person built from a 3D kinematic tree (spine, neck/head,
shoulder-elbow-wrist, hip-knee-ankle) posed with random joint angles inside human limits,
seen from a random direction (front, profile, back), projected orthographically (so limbs
foreshorten when they point at the camera), scaled, rotated in the image plane and placed
over a cluttered background, with random objects in front of it.

Rendering is NumPy on small bounding boxes: every body part is a signed-distance shape
(tapered capsules for limbs, hands and feet; convex hulls of elliptical cross-sections for
chest and pelvis; a shaded sphere with hair and a face for the head), so edges are
anti-aliased without supersampling. Parts are painted far to near, which also tells which
part is on top at every pixel; that buffer decides the keypoint visibility.

Conventions (kpose, see ``DESIGN.md``): keypoints are ``(17, 3)`` float32 ``(x, y, v)`` in
:data:`~kpose.skeletons.COCO_17` order, x right, y down, 0-based pixel centres at integer
coordinates; ``v`` is 2 when the joint is seen, 1 when it lies in the image but is covered
(by an occluder, or by another body part drawn over it, or it is a face point on the far
side of the head, or a shoulder/hip on the far side of the torso), 0 when it lies outside
the image, with ``x = y = 0``. A joint is inside the image when
``-0.5 <= x < size - 0.5`` and the same for ``y`` (it falls on one of the pixels). Left and
right are the person's own: a person facing the camera has the left shoulder on the
image's right, as in COCO.

The COCO file written by :func:`write_synthetic_dataset` stores keypoints and boxes in this
same frame (for keypoints that is COCO's own convention: integer = pixel centre), so a COCO
reader needs no shift.
"""

from kpose.data.synthetic.config import ANNOTATION_FILE, IMAGE_DIR, SyntheticConfig
from kpose.data.synthetic.dataset import render_person, write_synthetic_dataset

__all__ = ["SyntheticConfig", "render_person", "write_synthetic_dataset", "ANNOTATION_FILE",
           "IMAGE_DIR"]
