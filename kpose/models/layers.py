"""Custom Keras layers shared by the models: belief-map decoding and the CPM center map.

Both are registered for ``.keras`` serialisation and run inside exported models.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["HeatmapDecoder", "CenterMap", "ImageNormalisation", "DECODING_METHODS",
           "center_map"]

DECODING_METHODS = ("taylor", "soft_argmax")


@keras.saving.register_keras_serializable(package="kpose")
class HeatmapDecoder(keras.layers.Layer):
    """Belief maps -> keypoints ``(x, y, score)`` in input pixels, with sub-pixel refinement.

    Input ``(B, h, w, C)``: the first ``num_joints`` channels are joint belief maps (a
    trailing background map, CPM's ``K + 1``-th, is ignored). Map pixel ``j`` is centred
    on input pixel ``stride * j + (stride - 1) / 2``.

    Output ``(B, K, 3)`` float32: ``x, y`` in input pixels (0-based, pixel centres at
    integers) and ``score`` = the map's maximum (about 1 at a confident Gaussian peak,
    about 0 for an empty map).

    Methods (``benchmarks/decoding.py`` measures both on 46 x 46 Gaussian maps, sigma 1;
    mean error in map pixels, interior / border / noise 0.05: arg-max alone 0.40 / 0.39 /
    0.39, taylor 0.000 / 0.000 / 0.084, soft-argmax at beta 40 0.32 / 0.34 / 0.32):

    - ``"taylor"`` (default): arg-max, then the vertex of the parabola through the log
      of the peak and its two neighbours along x and along y (at the border the three
      samples nearest the peak are used). The log of a Gaussian is a parabola, so a
      Gaussian peak is recovered exactly wherever it lies, on the border included, and a
      second mode elsewhere in the map does not pull it.
    - ``"soft_argmax"``: integral regression, the mean position under
      ``softmax(beta * map)``. Built only from ops the Edge TPU maps (reshape, softmax,
      fully connected, reduce-max). Over the whole map it is no better than arg-max:
      a low beta drifts to the centre, a high one loses the sub-pixel part.

    Args:
        num_joints: ``K``; ``None`` takes all channels but the last (the background).
        stride: input pixels per map pixel.
        method: ``"taylor"`` or ``"soft_argmax"``.
        beta: softmax sharpness for ``"soft_argmax"`` (maps are about 0..1).
    """

    def __init__(self, num_joints: int | None = None, stride: int = 8, method: str = "taylor",
                 beta: float = 40.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in DECODING_METHODS:
            raise ValueError(f"HeatmapDecoder method must be one of {DECODING_METHODS}, "
                             f"got {method!r}")
        if stride < 1:
            raise ValueError(f"HeatmapDecoder stride must be >= 1, got {stride}")
        if num_joints is not None and num_joints < 1:
            raise ValueError(f"HeatmapDecoder num_joints must be >= 1, got {num_joints}")
        self.num_joints = num_joints
        self.stride = int(stride)
        self.method = method
        self.beta = float(beta)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"HeatmapDecoder expects belief maps of rank 4 (B, h, w, C), "
                             f"got shape {tuple(input_shape)}")
        _, height, width, channels = input_shape
        if height is None or width is None or channels is None:
            raise ValueError(f"HeatmapDecoder needs static map sizes, got {tuple(input_shape)}")
        joints = channels - 1 if self.num_joints is None else self.num_joints
        if not 1 <= joints <= channels:
            raise ValueError(f"HeatmapDecoder: belief maps have {channels} channels, too few "
                             f"for {self.num_joints} joints")
        if self.method == "taylor" and (height < 3 or width < 3):
            raise ValueError(f"HeatmapDecoder 'taylor' needs maps of at least 3x3, got "
                             f"{height}x{width}")
        self._joints, self._height, self._width = int(joints), int(height), int(width)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self._grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (h*w, 2) as (x, y)

    def call(self, maps):
        maps = ops.cast(maps[..., : self._joints], "float32")
        batch = ops.shape(maps)[0]
        hw = self._height * self._width
        flat = ops.reshape(ops.transpose(maps, (0, 3, 1, 2)), (batch, self._joints, hw))
        score = ops.max(flat, axis=-1)
        if self.method == "taylor":
            xy = self._taylor(flat)
        else:
            xy = self._soft_argmax(flat, batch)
        xy = (xy + 0.5) * self.stride - 0.5  # map pixels -> input pixels
        return ops.concatenate([xy, score[..., None]], axis=-1)

    def _taylor(self, flat):
        width, height = self._width, self._height
        index = ops.cast(ops.argmax(flat, axis=-1), "int32")  # (B, K)
        cx = ops.clip(index % width, 1, width - 2)
        cy = ops.clip(index // width, 1, height - 2)
        centre = cy * width + cx
        neighbours = ops.stack([centre, centre - 1, centre + 1, centre - width, centre + width],
                               axis=-1)
        values = ops.take_along_axis(flat, neighbours, axis=-1)  # (B, K, 5)
        logs = ops.log(ops.maximum(values, 1e-10))
        dx = _parabola_vertex(logs[..., 1], logs[..., 0], logs[..., 2])
        dy = _parabola_vertex(logs[..., 3], logs[..., 0], logs[..., 4])
        x = ops.cast(cx, "float32") + dx
        y = ops.cast(cy, "float32") + dy
        return ops.stack([x, y], axis=-1)

    def _soft_argmax(self, flat, batch):
        weights = ops.softmax(flat * self.beta, axis=-1)
        rows = ops.reshape(weights, (batch * self._joints, self._height * self._width))
        # A constant right-hand side keeps this a FULLY_CONNECTED op in TFLite.
        xy = ops.matmul(rows, ops.convert_to_tensor(self._grid))
        return ops.reshape(xy, (batch, self._joints, 2))

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        joints = self.num_joints if self.num_joints is not None else channels - 1
        return (input_shape[0], joints, 3)

    def get_config(self):
        return {**super().get_config(), "num_joints": self.num_joints, "stride": self.stride,
                "method": self.method, "beta": self.beta}


@keras.saving.register_keras_serializable(package="kpose")
class ImageNormalisation(keras.layers.Layer):
    """First layer of every kpose model: checks the image and scales it.

    Input ``(B, H, W, 3)`` RGB in 0..255 (any float or int dtype); output
    ``pixels * scale + offset`` in the compute dtype. A tensor of another rank or channel
    count is refused with an error that names the model input, instead of a shape error
    from some convolution deep inside.
    """

    def __init__(self, scale: float, offset: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = float(offset)

    def call(self, images):
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"the model input 'image' must be RGB images (B, H, W, 3) in "
                             f"0..255, got shape {shape}")
        return ops.cast(images, self.compute_dtype) * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


@keras.saving.register_keras_serializable(package="kpose")
class CenterMap(keras.layers.Layer):
    """CPM's center map: a Gaussian at the crop centre, pooled to the belief-map grid.

    The top-down crop puts the person at the centre of the input, so the map is a
    constant: a Gaussian of ``sigma`` input pixels at the input centre, averaged over each
    ``stride x stride`` block (the paper pools it to stride 8). The layer takes the image
    batch only for its batch size.

    Input ``(B, H, W, 3)``; output ``(B, H / stride, W / stride, 1)`` float32.
    """

    def __init__(self, input_size: tuple[int, int], stride: int = 8, sigma: float = 21.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_size = tuple(int(s) for s in input_size)
        self.stride = int(stride)
        self.sigma = float(sigma)
        self._map = center_map(self.input_size, stride=self.stride, sigma=self.sigma)

    def call(self, images):
        constant = ops.convert_to_tensor(self._map[None, ..., None], dtype=self.compute_dtype)
        return ops.tile(constant, (ops.shape(images)[0], 1, 1, 1))

    def compute_output_shape(self, input_shape):
        height, width = self._map.shape
        return (input_shape[0], height, width, 1)

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "stride": self.stride,
                "sigma": self.sigma}


def center_map(input_size: tuple[int, int], *, stride: int = 8, sigma: float = 21.0
               ) -> np.ndarray:
    """``(H / stride, W / stride)`` float32: a centred Gaussian (``sigma`` in input px),
    block-averaged to the belief-map grid."""
    height, width = input_size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    gaussian = np.exp(-((xs - (width - 1) / 2) ** 2 + (ys - (height - 1) / 2) ** 2)
                      / (2 * sigma**2))
    pooled = gaussian.reshape(height // stride, stride, width // stride, stride).mean((1, 3))
    return pooled.astype(np.float32)


def _parabola_vertex(left, centre, right):
    """Offset of the vertex of the parabola through (-1, left), (0, centre), (1, right).

    Falls back to 0 where the samples do not curve downwards (no peak to refine), and is
    clipped to 1.5 samples: a peak half a pixel beyond the last sample is still found.
    """
    curvature = left + right - 2.0 * centre
    peaked = curvature < -1e-6
    offset = 0.5 * (left - right) / ops.where(peaked, curvature, -1.0)
    return ops.where(peaked, ops.clip(offset, -1.5, 1.5), 0.0)
