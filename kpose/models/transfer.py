"""Start a model from a trained one: copy the weights that fit, map per-joint channels.

A weight is named by its path in the model: the names of the nested models it sits in,
then its own path (``resnet/resnet_stem_conv/kernel``, ``stage_1_maps/bias``). Two models
of one family and options share every path; a SimpleBaselines model and a CPM on the same
MobileNetV2 share the backbone's.

A weight of the target whose path exists in the source with the same shape is copied. A
convolution kernel that reads more input channels than its source (IEF's first
convolution reads the image and ``K`` drawn joints) gets the source's kernel on the
channels they share and zeros on the others, so it computes what the source did until
training teaches it the new channels.
The per-joint heads are copied joint by joint where the two skeletons name a joint alike
(by exact name: COCO's 17 joints and LSP's 14 share 12), so a model for another skeleton
keeps what its predecessor learnt about the joints they share: the belief-map heads
(layers ``stage_N_maps``: one output channel per joint, plus the CPM's background map),
and the coordinate heads of DeepPose and IEF (``keypoints_dense``,
``displacements_dense``, ``correction_dense``: output units ``2j, 2j + 1`` are joint
``j``'s x and y; IEF's ``initial_pose``: row ``j``). Every other weight keeps its fresh
initial value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dataclasses

import keras
import numpy as np

from kpose.models.card import ModelCard, describe

__all__ = ["TransferReport", "transfer_weights", "weight_paths", "record_init", "INIT_KEY"]

# The card option that records the card of the model a model started from.
INIT_KEY = "init_from"


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, by weight path and joint name."""

    source: str
    copied: list[str] = field(default_factory=list)
    per_joint: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    joints_copied: list[str] = field(default_factory=list)
    joints_fresh: list[str] = field(default_factory=list)
    values_copied: int = 0
    values_total: int = 0

    def summary(self) -> str:
        """A few lines for the console: counts, the joints, and the fresh weights."""
        share = self.values_copied / max(1, self.values_total)
        lines = [f"init from {self.source}: copied {len(self.copied)} weights whole and "
                 f"{len(self.per_joint)} per joint ({100 * share:.1f} % of the values); "
                 f"{len(self.fresh)} start fresh"]
        if self.widened:
            lines.append(f"  more input channels, copied on the shared ones and zero on "
                         f"the others: {', '.join(self.widened)}")
        if self.per_joint:
            lines.append(f"  joints copied: {', '.join(self.joints_copied) or 'none'}")
            lines.append(f"  joints fresh: {', '.join(self.joints_fresh) or 'none'}")
        if self.fresh:
            shown = ", ".join(self.fresh[:8]) + (" ..." if len(self.fresh) > 8 else "")
            lines.append(f"  fresh: {shown}")
        return "\n".join(lines)


def weight_paths(model: keras.Model, prefix: str = "") -> dict[str, keras.Variable]:
    """Every weight of ``model`` (trainable or not) by its path: nested models' names,
    then the weight's own path."""
    found: dict[str, keras.Variable] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(weight_paths(layer, f"{prefix}{layer.name}/"))
            continue
        for variable in layer.weights:
            found.setdefault(f"{prefix}{variable.path}", variable)
    return found


def transfer_weights(source: keras.Model, target: keras.Model, *,
                     source_name: str | None = None) -> TransferReport:
    """Copy ``source``'s weights into ``target`` where path and shape match, and the
    belief-map heads' channels of the joints both skeletons name (module docstring).

    Args:
        source: a trained kpose model.
        target: a freshly built kpose model (changed in place).
        source_name: how the report and errors name the source.

    Returns:
        A :class:`TransferReport`.

    Raises:
        ValueError: nothing of ``source`` fits ``target`` (no weight copied whole: a head
            alone is no start), naming it. ``target`` may then hold a mapped head.
    """
    name = source_name or source.name
    mapping = _joint_mapping(source, target)
    given = weight_paths(source)
    report = TransferReport(source=name)
    for path, variable in weight_paths(target).items():
        size = int(np.prod(variable.shape))
        report.values_total += size
        match = given.get(path)
        head = _head_kind(path)
        if match is not None and tuple(match.shape) == tuple(variable.shape) and (
                mapping is None or head is None):
            variable.assign(match.value)
            report.copied.append(path)
            report.values_copied += size
        elif match is not None and mapping is not None and head is not None and \
                _fits_per_joint(head, match.shape, variable.shape):
            value = keras.ops.convert_to_numpy(variable.value).copy()
            old = keras.ops.convert_to_numpy(match.value)
            for new_index, old_index in mapping.items():
                if head == "maps":
                    value[..., new_index] = old[..., old_index]
                elif head == "coordinates":  # units 2j, 2j + 1
                    value[..., 2 * new_index:2 * new_index + 2] = \
                        old[..., 2 * old_index:2 * old_index + 2]
                elif new_index < value.shape[0]:  # rows: IEF's initial pose
                    value[new_index] = old[old_index]
            variable.assign(value)
            report.per_joint.append(path)
            report.values_copied += size * len(mapping) // _joints_in(head, variable.shape)
        elif match is not None and _widens(match.shape, variable.shape):
            value = np.zeros(variable.shape, keras.ops.convert_to_numpy(variable.value).dtype)
            value[..., :match.shape[-2], :] = keras.ops.convert_to_numpy(match.value)
            variable.assign(value)
            report.widened.append(path)
            report.values_copied += int(np.prod(match.shape))
        else:
            report.fresh.append(path)
    if not report.copied:  # a head alone, on features it never saw, is worth nothing
        raise ValueError(f"nothing of {name} fits the new model: no weight has the same "
                         "layer path and shape (another family or backbone, or other "
                         "widths); start it from nothing or choose a model it can grow from")
    if mapping is not None:
        target_joints = describe(target).skeleton.joint_names
        report.joints_copied = [target_joints[i] for i in sorted(mapping)
                                if i < len(target_joints)]
        report.joints_fresh = [n for i, n in enumerate(target_joints) if i not in mapping]
    return report


def record_init(model: keras.Model, source: keras.Model, source_name: str) -> None:
    """Write ``source``'s name and card into ``model``'s card (option ``init_from``), so
    the saved model says what it grew from."""
    card = next(layer for layer in model.layers if isinstance(layer, ModelCard))
    grown = describe(source).get_config()
    grown["options"] = {k: v for k, v in grown["options"].items() if k != INIT_KEY}
    card.info = dataclasses.replace(card.info, options={
        **(card.info.options or {}), INIT_KEY: {"model": source_name, "card": grown}})


def _widens(old, new) -> bool:
    """A convolution kernel ``(kh, kw, C_in, C_out)`` that reads more input channels."""
    old, new = tuple(old), tuple(new)
    return len(old) == len(new) == 4 and old[:2] == new[:2] and old[3] == new[3] \
        and new[2] > old[2]


# Layers whose weights hold one slice per joint (module docstring).
COORDINATE_HEADS = ("keypoints_dense", "displacements_dense", "correction_dense",
                    "rle_scale_dense")


def _head_kind(path: str) -> str | None:
    """``"maps"`` (``stage_N_maps``: a channel per joint, last axis), ``"coordinates"``
    (a coordinate head: units ``2j, 2j + 1``, last axis), ``"rows"`` (IEF's initial pose:
    a row per joint) or ``None`` for a weight that is not per joint."""
    layer = path.rsplit("/", 2)[-2] if path.count("/") >= 1 else path
    if layer.startswith("stage_") and layer.endswith("_maps"):
        return "maps"
    if layer in COORDINATE_HEADS:
        return "coordinates"
    if layer == "initial_pose":
        return "rows"
    return None


def _fits_per_joint(head: str, old, new) -> bool:
    """The two weights differ only in their joint axis."""
    old, new = tuple(old), tuple(new)
    if head == "rows":
        return old[1:] == new[1:]
    return old[:-1] == new[:-1]


def _joints_in(head: str, shape) -> int:
    return int(shape[0]) if head == "rows" else (
        int(shape[-1]) // 2 if head == "coordinates" else int(shape[-1]))


def _joint_mapping(source: keras.Model, target: keras.Model) -> dict[int, int] | None:
    """``{target channel: source channel}`` of the belief-map heads when the skeletons
    differ (``None`` when they are the same); the background map, where both have one,
    maps onto itself."""
    try:
        taught, learner = describe(source), describe(target)
    except ValueError:  # a part without a card (a DeepPose refiner): no skeleton to map
        return None
    old, new = taught.skeleton.joint_names, learner.skeleton.joint_names
    if old == new:
        return None
    mapping = {new.index(joint): old.index(joint) for joint in new if joint in old}
    background = getattr(taught.codec, "background", False) and \
        getattr(learner.codec, "background", False)
    if background:
        mapping[len(new)] = len(old)
    return mapping
