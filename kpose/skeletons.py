"""Skeleton definitions: joint names, left/right pairs, limbs and normalisation segments.

A :class:`Skeleton` is everything a reader, the pipeline, a metric or a plot needs to know
about a keypoint layout. Joint indices are 0-based positions in the ``(K, 3)`` keypoint
arrays of that layout.

Shipped layouts: :data:`COCO_17`, :data:`MPII_16`, :data:`LSP_14` and :data:`FLIC`.
Define your own with :func:`Skeleton` directly; it validates itself on construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Skeleton", "COCO_17", "MPII_16", "LSP_14", "FLIC", "SKELETONS", "get_skeleton"]


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout.

    Attributes:
        name: short identifier stored in every :class:`~kpose.data.PoseRecord`.
        joint_names: ``K`` unique joint names, in array order.
        flip_pairs: ``(left, right)`` index pairs swapped by a horizontal flip. Every joint
            appears in at most one pair; joints on the body's midline appear in none.
        limbs: ``(name, a, b)`` segments scored by PCP (a limb is correct when both
            predicted end points lie within half the true limb length of the truth).
        torso: ``(a, b)`` joints whose distance is the torso diameter used by PDJ and
            torso-normalised PCK (DeepPose: left shoulder to right hip).
        head: ``(a, b)`` joints whose distance is the head segment used by PCKh when no
            head box is given.
        oks_sigmas: ``K`` per-joint standard deviations ``sigma_i`` of COCO's OKS (its
            falloff constant is ``k_i = 2 sigma_i``, relative to the object scale).
        bones: joint pairs drawn as lines by the plotting functions (defaults to the limbs).
    """

    name: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    limbs: tuple[tuple[str, int, int], ...]
    torso: tuple[int, int]
    head: tuple[int, int]
    oks_sigmas: tuple[float, ...]
    bones: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise containers to tuples through object.__setattr__.
        for attr in ("joint_names", "oks_sigmas"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "flip_pairs", tuple(tuple(p) for p in self.flip_pairs))
        object.__setattr__(self, "limbs", tuple(tuple(l) for l in self.limbs))
        object.__setattr__(self, "torso", tuple(self.torso))
        object.__setattr__(self, "head", tuple(self.head))
        bones = self.bones or tuple((a, b) for _, a, b in self.limbs)
        object.__setattr__(self, "bones", tuple(tuple(b) for b in bones))
        self._validate()

    @property
    def num_joints(self) -> int:
        """Number of joints ``K``."""
        return len(self.joint_names)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """Index permutation ``perm`` with ``flipped[k] = original[perm[k]]`` after a mirror."""
        perm = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return tuple(perm)

    def index(self, joint_name: str) -> int:
        """Index of ``joint_name``; raises ``KeyError`` listing the known names."""
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise KeyError(
                f"skeleton {self.name!r} has no joint {joint_name!r}; "
                f"joints are {list(self.joint_names)}"
            ) from None

    def to_config(self) -> dict:
        """The whole definition as plain JSON values (saved inside every kpose model)."""
        return {"name": self.name, "joint_names": list(self.joint_names),
                "flip_pairs": [list(p) for p in self.flip_pairs],
                "limbs": [list(limb) for limb in self.limbs], "torso": list(self.torso),
                "head": list(self.head), "oks_sigmas": list(self.oks_sigmas),
                "bones": [list(b) for b in self.bones]}

    @classmethod
    def from_config(cls, config: dict) -> Skeleton:
        """The skeleton :meth:`to_config` wrote (validated again)."""
        try:
            return cls(**config)
        except TypeError as error:
            raise ValueError(f"not a skeleton definition: {error}") from None

    def side(self, joint: int) -> str:
        """``"left"``, ``"right"`` or ``"centre"``: the first joint of a flip pair is left."""
        for left, right in self.flip_pairs:
            if joint == left:
                return "left"
            if joint == right:
                return "right"
        return "centre"

    def _validate(self) -> None:
        k = self.num_joints
        where = f"skeleton {self.name!r}"
        if k == 0:
            raise ValueError(f"{where}: joint_names is empty")
        if len(set(self.joint_names)) != k:
            dupes = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise ValueError(f"{where}: joint names must be unique, repeated: {dupes}")

        def check_index(i: int, what: str) -> None:
            if not isinstance(i, int) or not 0 <= i < k:
                raise ValueError(f"{where}: {what} index {i!r} is out of range 0..{k - 1}")

        seen: set[int] = set()
        for pair in self.flip_pairs:
            if len(pair) != 2:
                raise ValueError(f"{where}: flip pair {pair!r} must have two indices")
            for i in pair:
                check_index(i, f"flip pair {pair!r}")
            if pair[0] == pair[1]:
                raise ValueError(f"{where}: flip pair {pair!r} pairs a joint with itself")
            if seen & set(pair):
                raise ValueError(
                    f"{where}: flip pair {pair!r} reuses a joint already in another pair; "
                    "each joint may be mirrored to exactly one other joint"
                )
            seen.update(pair)
        for limb in self.limbs:
            if len(limb) != 3:
                raise ValueError(f"{where}: limb {limb!r} must be (name, a, b)")
            check_index(limb[1], f"limb {limb[0]!r}")
            check_index(limb[2], f"limb {limb[0]!r}")
        for what, pair in (("torso", self.torso), ("head", self.head)):
            if len(pair) != 2:
                raise ValueError(f"{where}: {what} must be a pair of joint indices")
            for i in pair:
                check_index(i, what)
        for bone in self.bones:
            for i in bone:
                check_index(i, f"bone {bone!r}")
        if len(self.oks_sigmas) != k:
            raise ValueError(
                f"{where}: oks_sigmas has {len(self.oks_sigmas)} values, expected one per "
                f"joint ({k})"
            )
        if any(not s > 0 for s in self.oks_sigmas):
            raise ValueError(f"{where}: oks_sigmas must all be positive")


# COCO's official per-keypoint sigmas (cocoapi, COCOeval.computeOks), in array order.
_COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
                0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)

# Sigmas for joints COCO also has are COCO's; joints COCO lacks (pelvis, thorax, neck,
# head top) take the shoulder's value, a conservative choice for a torso-scale joint.
_ANKLE, _KNEE, _HIP = 0.089, 0.087, 0.107
_WRIST, _ELBOW, _SHOULDER = 0.062, 0.072, 0.079

COCO_17 = Skeleton(
    name="coco_17",
    joint_names=("nose", "left_eye", "right_eye", "left_ear", "right_ear",
                 "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                 "left_wrist", "right_wrist", "left_hip", "right_hip",
                 "left_knee", "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    limbs=(("left_upper_arm", 5, 7), ("right_upper_arm", 6, 8),
           ("left_lower_arm", 7, 9), ("right_lower_arm", 8, 10),
           ("left_upper_leg", 11, 13), ("right_upper_leg", 12, 14),
           ("left_lower_leg", 13, 15), ("right_lower_leg", 14, 16)),
    torso=(5, 12),
    head=(3, 4),
    oks_sigmas=_COCO_SIGMAS,
    bones=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
           (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
           (3, 5), (4, 6)),
)

MPII_16 = Skeleton(
    name="mpii_16",
    joint_names=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee",
                 "left_ankle", "pelvis", "thorax", "upper_neck", "head_top",
                 "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
                 "left_elbow", "left_wrist"),
    flip_pairs=((3, 2), (4, 1), (5, 0), (13, 12), (14, 11), (15, 10)),
    limbs=(("head", 8, 9), ("torso", 7, 6),
           ("left_upper_arm", 13, 14), ("right_upper_arm", 12, 11),
           ("left_lower_arm", 14, 15), ("right_lower_arm", 11, 10),
           ("left_upper_leg", 3, 4), ("right_upper_leg", 2, 1),
           ("left_lower_leg", 4, 5), ("right_lower_leg", 1, 0)),
    torso=(13, 2),
    head=(8, 9),
    oks_sigmas=(_ANKLE, _KNEE, _HIP, _HIP, _KNEE, _ANKLE, _SHOULDER, _SHOULDER, _SHOULDER,
                _SHOULDER, _WRIST, _ELBOW, _SHOULDER, _SHOULDER, _ELBOW, _WRIST),
    bones=((0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
           (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15)),
)

LSP_14 = Skeleton(
    name="lsp_14",
    joint_names=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee",
                 "left_ankle", "right_wrist", "right_elbow", "right_shoulder",
                 "left_shoulder", "left_elbow", "left_wrist", "neck", "head_top"),
    flip_pairs=((3, 2), (4, 1), (5, 0), (9, 8), (10, 7), (11, 6)),
    limbs=(("head", 12, 13),
           ("left_upper_arm", 9, 10), ("right_upper_arm", 8, 7),
           ("left_lower_arm", 10, 11), ("right_lower_arm", 7, 6),
           ("left_upper_leg", 3, 4), ("right_upper_leg", 2, 1),
           ("left_lower_leg", 4, 5), ("right_lower_leg", 1, 0)),
    torso=(9, 2),
    head=(12, 13),
    oks_sigmas=(_ANKLE, _KNEE, _HIP, _HIP, _KNEE, _ANKLE, _WRIST, _ELBOW, _SHOULDER,
                _SHOULDER, _ELBOW, _WRIST, _SHOULDER, _SHOULDER),
    bones=((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 12), (9, 12),
           (9, 10), (10, 11), (12, 13), (8, 2), (9, 3)),
)

# The eleven joints FLIC's evaluation uses, in the order of FLIC's own part list.
FLIC = Skeleton(
    name="flic",
    joint_names=("left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
                 "right_elbow", "right_wrist", "left_hip", "right_hip", "left_eye",
                 "right_eye", "nose"),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 7), (8, 9)),
    limbs=(("left_upper_arm", 0, 1), ("right_upper_arm", 3, 4),
           ("left_lower_arm", 1, 2), ("right_lower_arm", 4, 5)),
    torso=(0, 7),
    head=(8, 9),
    oks_sigmas=(_SHOULDER, _ELBOW, _WRIST, _SHOULDER, _ELBOW, _WRIST, _HIP, _HIP,
                0.025, 0.025, 0.026),
    bones=((0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (0, 6), (3, 7), (6, 7), (8, 10),
           (9, 10)),
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO_17, MPII_16, LSP_14, FLIC)}


def get_skeleton(skeleton: str | Skeleton) -> Skeleton:
    """Return ``skeleton`` itself, or the shipped skeleton with that name."""
    if isinstance(skeleton, Skeleton):
        return skeleton
    try:
        return SKELETONS[skeleton]
    except KeyError:
        raise ValueError(
            f"unknown skeleton {skeleton!r}; shipped skeletons are {sorted(SKELETONS)}"
        ) from None
