"""Target codecs: how a model's training targets encode keypoints, and how its outputs
decode back, owned in one object per kind.

- :class:`BeliefMapCodec`: Gaussian belief maps at a ``stride`` (CPM: 8; SimpleBaselines
  and Hourglass: 4) with ``sigma`` in map pixels, optionally with CPM's background map.
- :class:`CoordinateCodec`: DeepPose's joint coordinates normalised to the crop,
  ``(p - centre) / size``.

``encode`` runs in the ``tf.data`` pipeline (keypoints in input pixels -> targets);
``decoder()`` returns the Keras layer that turns the model's output back into keypoints
``(B, K, 3)`` ``(x, y, score)`` in input pixels, in evaluation, prediction and inside
exported files. A model carries its codec in its :class:`~kpose.models.card.ModelCard`,
so no caller passes a stride or a sigma of its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from kpose.data.targets import belief_maps, coordinate_targets
from kpose.decoding import HeatmapDecoder, NormalisedToPixels

__all__ = ["BeliefMapCodec", "CoordinateCodec", "codec_from_config"]


@dataclass(frozen=True)
class BeliefMapCodec:
    """Gaussian belief maps (one per joint, plus a background map when ``background``).

    Attributes:
        stride: input pixels per map pixel; map pixel ``j`` is centred on input pixel
            ``stride * j + (stride - 1) / 2``.
        sigma: Gaussian standard deviation in map pixels.
        background: add CPM's ``1 - max`` background map as channel ``K``.
    """

    stride: int = 8
    sigma: float = 1.0
    background: bool = True
    kind = "belief_maps"

    def __post_init__(self):
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(f"belief-map stride must be an integer >= 1, got {self.stride!r}")
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma)
                and self.sigma > 0):
            raise ValueError(f"belief-map sigma must be a positive number of map pixels, got "
                             f"{self.sigma!r}")
        object.__setattr__(self, "sigma", float(self.sigma))

    def channels(self, num_joints: int) -> int:
        """Maps per output: ``K`` (+ 1 with the background)."""
        return num_joints + int(self.background)

    def map_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the maps for an ``(H, W)`` input; the input must be divisible."""
        height, width = input_size
        if height % self.stride or width % self.stride:
            raise ValueError(f"input_size {(height, width)} must be divisible by the "
                             f"belief-map stride {self.stride}")
        return height // self.stride, width // self.stride

    def encode(self, keypoints, input_size: tuple[int, int]):
        """``(B, K, 3)`` ``(x, y, v)`` in input pixels -> ``(B, h, w, channels)`` float32
        (:func:`kpose.data.targets.belief_maps`; background dropped when not used)."""
        self.map_size(input_size)
        maps = belief_maps(keypoints, input_size, stride=self.stride, sigma=self.sigma)
        return maps if self.background else maps[..., :-1]

    def decoder(self, *, method: str = "taylor", frame: str = "pixels", name: str = "keypoints",
                **options) -> HeatmapDecoder:
        """The layer ``(B, h, w, channels)`` -> ``(B, K, 3)`` ``(x, y, score)``."""
        radius = options.pop("radius", max(2, math.ceil(2.0 * self.sigma - 1e-9)))
        return HeatmapDecoder(stride=self.stride, method=method, frame=frame,
                              sigma=self.sigma, radius=radius, background=self.background,
                              name=name, **options)

    def get_config(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class CoordinateCodec:
    """DeepPose's targets: ``(x_n, y_n, w)`` with ``x_n = (x - (W - 1) / 2) / W`` in
    [-0.5, 0.5] inside the crop and ``w`` = 1 for labelled joints (seed 003)."""

    kind = "coords"

    def encode(self, keypoints, input_size: tuple[int, int]):
        """``(B, K, 3)`` in input pixels -> ``(B, K, 3)`` ``(x_n, y_n, w)`` float32."""
        return coordinate_targets(keypoints, input_size)

    def decoder(self, input_size: tuple[int, int], *, frame: str = "pixels",
                name: str = "keypoints") -> NormalisedToPixels:
        """The layer ``(B, K, 2)`` (and visibility logits ``(B, K)``) -> ``(B, K, 3)``."""
        return NormalisedToPixels(input_size, frame, name=name)

    def get_config(self) -> dict:
        return {"kind": self.kind}


def codec_from_config(config: dict) -> BeliefMapCodec | CoordinateCodec:
    """The codec whose :meth:`get_config` gave ``config``."""
    values = dict(config)
    kind = values.pop("kind", None)
    if kind == BeliefMapCodec.kind:
        return BeliefMapCodec(**values)
    if kind == CoordinateCodec.kind:
        return CoordinateCodec()
    raise ValueError(f"unknown codec kind {kind!r}; expected 'belief_maps' or 'coords'")
