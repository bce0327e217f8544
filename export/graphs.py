"""Which model is being exported, and the batch-1 graphs that go into the files.

:func:`load_pose_model` opens a ``.keras`` file or a run folder and reads what it is from
its model card (:func:`kpose.models.card.describe`): a belief-map model (CPM,
SimpleBaselines, hourglass: outputs ``stage_1`` ... ``stage_T``) or DeepPose (stage 1 or
a cascade, output ``keypoints`` normalised to the image), with its skeleton, codec and
input size.

:func:`keypoint_graph` builds the graph of a keypoint export: image ``(1, H, W, 3)``
float32 RGB 0..255 in, keypoints ``(1, K, 3)`` out, the same layout for every family:

- belief maps: the last stage through its codec's
  :class:`~kpose.decoding.HeatmapDecoder` (``x, y`` and score = the map's maximum).
- DeepPose: the cascade as it is (its joint crops are already inside the graph), its
  normalised coordinates ``x_n = (u - (W - 1) / 2) / W`` turned into input pixels
  ``u = W x_n + (W - 1) / 2``, and score = 1, or the visibility probability when stage 1
  predicts visibility.

With ``frame="fraction"`` (int8 exports) ``x, y`` are ``(u + 0.5) / W`` instead: then x, y
and score all lie in about [0, 1] and share one int8 scale; in pixels the score would be
quantised in steps of ``W / 255`` px.

:func:`raw_graph` builds a ``--raw-outputs`` export: the last stage's belief maps, or
DeepPose's normalised coordinates.
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import ops

from export.errors import ExportError
from export.subpixel import with_subpixel_upsampling
from kpose.decoding import DECODING_METHODS, HeatmapDecoder
from kpose.models.card import ModelInfo, describe, stage_outputs
from kpose.models.deeppose import without_training_outputs
from kpose.models.layers import CenterMap
from kpose.models.precision import float32_model
from kpose.runs import load_run_model
from kpose.skeletons import Skeleton, get_skeleton
from kpose.zoo import is_pretrained

__all__ = ["PoseModel", "load_pose_model", "keypoint_graph", "raw_graph"]

# An Edge TPU graph adds this x (first image channel / 255, pooled) to the CPM center map:
# far below one int8 step of the map (1/255), but it makes the map an activation rather
# than a constant, and the Edge TPU cannot concatenate a non-zero constant (Coral's
# Concatenation limitation).
# A CPM built with center_map="input" does not record its center-map sigma: build_cpm's
# default (input pixels) is used for its export.
_INPUT_CENTER_SIGMA = 21.0
_CENTER_MAP_LEAK = 1e-3


@dataclass
class PoseModel:
    """A kpose model to export.

    Attributes:
        network: the Keras model: a belief-map model (stage outputs) or DeepPose
            (keypoints output).
        family: its family (``"cpm"``, ``"simplebaseline"``, ``"hourglass"``,
            ``"deeppose"``).
        skeleton: its joints.
        input_size: ``(H, W)`` of its image input.
        source: the file or run folder it came from (``None`` for an in-memory model).
        run_config: the run's ``config.json`` as a dict, when it came from a run folder.
        sigma: the belief-map Gaussian sigma it was trained with (map pixels).
        visibility: DeepPose stage 1 predicts visibility logits.
        center_map_input: the CPM takes its center map as a second input.
        info: the model card (:func:`kpose.models.card.describe`).
    """

    network: keras.Model
    family: str
    skeleton: Skeleton
    input_size: tuple[int, int]
    source: str | None = None
    run_config: dict | None = None
    sigma: float | None = None
    visibility: bool = False
    center_map_input: bool = False
    info: ModelInfo | None = None

    @property
    def heatmaps(self) -> bool:
        """Whether the model outputs belief maps (decoded by its codec's decoder)."""
        return self.info.codec.kind == "belief_maps"


def load_pose_model(model, *, skeleton: Skeleton | str | None = None) -> PoseModel:
    """Open and identify the model to export.

    Args:
        model: a ``keras.Model``, a ``.keras`` file, a kpose run folder
            (``config.json`` + ``model.keras`` or ``checkpoints/last.keras``) or
            ``"pretrained:NAME"`` (a model shipped with kpose).
        skeleton: optional; must name the skeleton the model carries in its card.

    Raises:
        ExportError: not a Keras model, not a kpose model, or another skeleton.
    """
    config = None
    source = None
    if isinstance(model, keras.Model):
        network = model
    else:
        source = str(model)
        if not is_pretrained(model):  # pretrained:NAME is resolved by load_run_model
            path = Path(model)
            if not path.exists():
                raise ExportError(f"model not found: {path}")
            if path.is_file() and path.suffix != ".keras":
                raise ExportError(f"{path} is not a Keras model: expected a .keras file or a "
                                  "kpose run folder")
        try:  # a non-zip .keras file is refused there, naming it
            network, run = load_run_model(model)
        except (FileNotFoundError, ValueError) as error:
            raise ExportError(str(error).splitlines()[0]) from None
        except (zipfile.BadZipFile, OSError, TypeError, KeyError) as error:
            raise ExportError(f"{source} is not a readable Keras model "
                              f"({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''})") from None
        config = dataclasses.asdict(run) if run is not None else None
        if not isinstance(network, keras.Model):
            raise ExportError(f"{source} holds a {type(network).__name__}, not a Keras model")
    info, network = _identify(network, source)
    family = info.family
    network = float32_model(network)  # a mixed-precision run's 16-bit ops do not convert
    if family == "deeppose":  # an RLE stage 1's scale and flow are not exported
        network = without_training_outputs(network)
    shapes = [tuple(t.shape) for t in network.inputs]
    image_shape = shapes[0]
    if len(image_shape) != 4 or image_shape[-1] != 3 or None in image_shape[1:3]:
        raise ExportError(f"{_label(source, network)}: the first input must be images (B, H, "
                          f"W, 3) of a fixed size, got {image_shape}")
    center_input = family == "cpm" and len(shapes) == 2
    if len(shapes) > (2 if family == "cpm" else 1):
        raise ExportError(f"{_label(source, network)}: expected one image input, got "
                          f"{len(shapes)} inputs")
    chosen = _skeleton(skeleton, info.skeleton, _label(source, network))
    visibility = family == "deeppose" and isinstance(network.output, dict) \
        and "visibility" in network.output
    sigma = info.codec.sigma if info.codec.kind == "belief_maps" else None
    return PoseModel(network, family, chosen, (int(image_shape[1]), int(image_shape[2])),
                     source, config, sigma, visibility, center_input, info)


def keypoint_graph(pose: PoseModel, *, decoder: str = "taylor", frame: str = "pixels",
                   edgetpu: bool = False, subpixel: bool = False) -> keras.Model:
    """Image in, keypoints ``(B, K, 3)`` out (module docstring); shares ``pose``'s weights.

    Args:
        decoder: belief-map decoding method (:data:`~kpose.decoding.DECODING_METHODS`).
        frame: ``"pixels"`` or ``"fraction"`` for ``x, y``.
        edgetpu: build the CPM's center map so that the graph maps onto the Edge TPU.
        subpixel: rewrite 4 x 4 stride-2 transposed convolutions (and the BatchNorm and
            ReLU after them) as sub-pixel convolutions, the same function
            (:mod:`export.subpixel`); for int8 LiteRT files. The weights are copied.
    """
    if decoder not in DECODING_METHODS:
        raise ExportError(f"decoder must be one of {DECODING_METHODS}, got {decoder!r}")
    image = keras.Input((*pose.input_size, 3), name="image")
    if pose.heatmaps:
        maps = _last_stage(pose, image, edgetpu, subpixel)
        keypoints = pose.info.codec.decoder(method=decoder, frame=frame,
                                            name="keypoints")(maps)
    else:
        outputs = pose.network(image)
        coordinates = outputs["keypoints"] if isinstance(outputs, dict) else outputs
        visibility = outputs.get("visibility") if isinstance(outputs, dict) else None
        keypoints = pose.info.codec.decoder(pose.input_size, frame=frame)(
            coordinates if visibility is None else [coordinates, visibility])
    return keras.Model(image, keypoints, name=f"{pose.family}_keypoints_export")


def raw_graph(pose: PoseModel, *, edgetpu: bool = False,
              subpixel: bool = False) -> keras.Model:
    """Image in; the last stage's belief maps ``(B, h, w, C)``, or DeepPose's
    normalised coordinates ``(B, K, 2)``, out. Options as in :func:`keypoint_graph`."""
    image = keras.Input((*pose.input_size, 3), name="image")
    if pose.heatmaps:
        maps = _last_stage(pose, image, edgetpu, subpixel)
        output = keras.layers.Identity(name="belief_maps")(maps)
    else:
        outputs = pose.network(image)
        coordinates = outputs["keypoints"] if isinstance(outputs, dict) else outputs
        output = keras.layers.Identity(name="normalised_coordinates")(coordinates)
    return keras.Model(image, output, name=f"{pose.family}_raw_export")


class ExportCenterMap(keras.layers.Layer):
    """A CPM center map computed from the image, for export graphs.

    ``pooled=True``: :class:`~kpose.models.layers.CenterMap`'s map at stride 8
    (``(B, H/8, W/8, 1)``), replacing that layer; ``pooled=False``: the Gaussian at input
    resolution (``(B, H, W, 1)``), for a CPM built with ``center_map="input"``. With
    ``leak > 0`` it adds ``leak x`` the image's first channel / 255, cut to the map's size
    at the top-left corner: numerically nothing (below one int8 step of the map), but
    then the map is not a constant, which the Edge TPU cannot concatenate. A cut, not a
    pooled full image: at 192 px, pooling the image cost 0.12 ms of a 0.92 ms int8 file.
    """

    def __init__(self, input_size, stride: int, sigma: float, pooled: bool, leak: float = 0.0,
                 **kwargs):
        super().__init__(dtype="float32", **kwargs)
        from kpose.models.layers import center_map

        self.input_size = tuple(int(v) for v in input_size)
        self.stride, self.pooled, self.leak = int(stride), bool(pooled), float(leak)
        self._map = (center_map(self.input_size, stride=self.stride, sigma=sigma) if pooled
                     else center_map(self.input_size, stride=1, sigma=sigma))

    def call(self, images):
        constant = ops.convert_to_tensor(self._map[None, ..., None], dtype="float32")
        if self.leak <= 0:
            return ops.tile(constant, (ops.shape(images)[0], 1, 1, 1))
        height, width = self._map.shape
        corner = ops.cast(images[:, :height, :width, :1], "float32")
        return constant + corner * (self.leak / 255.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._map.shape, 1)


def _last_stage(pose: PoseModel, image, edgetpu: bool, subpixel: bool = False):
    """The last-stage belief maps for ``image``, a CPM's center map export-ready."""
    network = _export_network(pose, edgetpu)
    if subpixel:
        network = with_subpixel_upsampling(network)
    if pose.center_map_input:
        centre = ExportCenterMap(pose.input_size, pose.info.codec.stride, _INPUT_CENTER_SIGMA,
                                 pooled=False, leak=_CENTER_MAP_LEAK if edgetpu else 0.0,
                                 name="center_map_export")(image)
        outputs = network([image, centre])
    else:
        outputs = network(image)
    return outputs[stage_outputs(network)[-1]]


def _export_network(pose: PoseModel, edgetpu: bool) -> keras.Model:
    """The CPM with its layers swapped for export (shared weights), or as it is."""
    network = pose.network

    def replace(layer):
        if edgetpu and isinstance(layer, CenterMap):
            # The same map, computed from the image (see ExportCenterMap).
            return ExportCenterMap(pose.input_size, layer.stride, layer.sigma, pooled=True,
                                   leak=_CENTER_MAP_LEAK, name=layer.name)
        return layer

    if not any(replace(layer) is not layer for layer in network.layers):
        return network
    return keras.models.clone_model(network, clone_function=replace)


def _identify(network: keras.Model, source) -> tuple[ModelInfo, keras.Model]:
    """The model's card and the network to export: the model itself, or the belief-map
    model inside a keypoint wrapper (``build_heatmap_inference``)."""
    try:
        info = describe(network)
    except ValueError as error:
        raise ExportError(f"{_label(source, network)}: {error}") from None
    if info.codec.kind == "belief_maps" and not stage_outputs(network):
        inner = [layer for layer in network.layers
                 if isinstance(layer, keras.Model) and stage_outputs(layer)]
        if inner and any(isinstance(layer, HeatmapDecoder) for layer in network.layers):
            return info, inner[0]
        raise ExportError(f"{_label(source, network)} is a {info.family} model without "
                          "stage_N belief-map outputs")
    return info, network


def _skeleton(requested, carried: Skeleton, label: str) -> Skeleton:
    if requested is None:
        return carried
    try:
        chosen = get_skeleton(requested)
    except (KeyError, ValueError) as error:
        raise ExportError(str(error).strip("'\"")) from None
    if chosen.joint_names != carried.joint_names:
        raise ExportError(f"{label} predicts skeleton {carried.name!r} "
                          f"({carried.num_joints} joints), not {chosen.name!r}")
    return carried


def _label(source, network) -> str:
    return source if source else f"model {network.name!r}"
