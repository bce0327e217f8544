"""Settings of the synthetic-people renderer, and the data set's file layout."""

from __future__ import annotations

from dataclasses import dataclass

from kpose.skeletons import COCO_17


NUM_JOINTS = COCO_17.num_joints


IMAGE_DIR = "images"


ANNOTATION_FILE = "person_keypoints.json"


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges the renderer samples from. Lengths are fractions of the image side.

    Attributes:
        height_range: person stature (standing height, before foreshortening) as a
            fraction of the image side.
        child_prob: probability of child proportions (bigger head, shorter limbs).
        build_range: limb and torso thickness factor (thin .. heavy).
        max_roll_deg: the usual in-plane rotation of the whole figure is a normal with a
            third of this as its standard deviation, clipped to +-this.
        tilted_prob: probability of a strongly tilted figure (lying, cartwheel): roll up to
            +-100 degrees.
        upside_down_prob: probability of any roll in +-180 degrees.
        occluder_prob: probability of 1..``max_occluders`` objects in front of the person.
        max_occluders: see ``occluder_prob``.
        clutter_range: number of flat background shapes (rectangles, ellipses, polygons,
            lines), inclusive range.
        distractor_range: number of limb-like capsule chains and shaded shapes drawn behind
            the person, so that "elongated shaded thing" does not mean "person".
        truncation: how far (fraction of the figure's extent) the figure may stick out of
            the image on each side when it would otherwise fit.
        noise_std_range: per-pixel Gaussian noise, in 0..255 units.
        blur_prob: probability of blurring the whole image slightly (defocus).
    """

    height_range: tuple[float, float] = (0.35, 1.0)
    child_prob: float = 0.15
    build_range: tuple[float, float] = (0.75, 1.45)
    max_roll_deg: float = 45.0
    tilted_prob: float = 0.08
    upside_down_prob: float = 0.03
    occluder_prob: float = 0.45
    max_occluders: int = 2
    clutter_range: tuple[int, int] = (8, 40)
    distractor_range: tuple[int, int] = (1, 6)
    truncation: float = 0.2
    noise_std_range: tuple[float, float] = (0.0, 8.0)
    blur_prob: float = 0.15

    def __post_init__(self) -> None:
        lo, hi = self.height_range
        if not 0 < lo <= hi:
            raise ValueError(f"height_range must satisfy 0 < low <= high, got {self.height_range}")
        for name in ("child_prob", "tilted_prob", "upside_down_prob", "occluder_prob",
                     "blur_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], "
                                 f"got {getattr(self, name)}")
