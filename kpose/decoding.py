"""Decoding layers: a model's raw outputs -> keypoints ``(B, K, 3)`` ``(x, y, score)``.

:class:`HeatmapDecoder` reads belief maps (CPM, SimpleBaselines, Hourglass) and
:class:`NormalisedToPixels` reads DeepPose's crop-normalised coordinates. They are Keras
layers, so the same code runs in evaluation, in ``predict`` and inside exported TFLite and
ONNX files. A codec (:mod:`kpose.codecs`) builds the right one for a model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["HeatmapDecoder", "NormalisedToPixels", "DECODING_METHODS", "DECODING_FRAMES",
           "softmax_mean", "map_pixel_grid"]

DECODING_METHODS = ("taylor", "soft_argmax", "local_centroid")
DECODING_FRAMES = ("pixels", "fraction")
# local_centroid: a pixel is (partly) "the peak" when it is within this fraction of the
# map's maximum. It must span several int8 steps: the converter gives the difference
# to the maximum the int8 scale of its product with 1 / tolerance.
_PEAK_TOLERANCE = 0.05


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
    - ``"local_centroid"``: the centroid of the squared map inside a ``(2 radius + 1)``
      square window around the peak, for int8 models and the Edge TPU. The square of a
      Gaussian is a Gaussian, and the centroid of a sampled Gaussian of sigma >= 0.7 is its
      centre to about 1e-4 px (the window's cut adds about 0.002 px at radius 2 for
      sigma-1 maps), so inside the map it is nearly as exact as ``"taylor"``; the window
      keeps noise and second modes out. Only Edge TPU ops (reduce-max, max-pool,
      relu/relu6, add, sub, mul, rsqrt, sum): the window is a max-pooled "is the maximum"
      mask, the normalisation an rsqrt, and the centroid is taken as the peak pixel plus
      an offset of at most ``radius + 1`` px, so that in int8 the normalisation's 1 %
      error scales that small offset and not the absolute position. At the border the
      window is cut and the centroid is pulled inwards; a piecewise-linear correction
      (relu terms, fitted at build time for Gaussians of ``sigma``) undoes that for
      peaks up to half a pixel beyond the edge. Measured like the others (mean error,
      interior / border / noise 0.05 / second mode 0.6): 0.002 / 0.007 / 0.051 / 0.002
      in float; as a full-int8 ``.tflite`` 0.09 / 0.11 / 0.11 / 0.09, about the int8
      output's own step (46 / 255 map px).

    Args:
        num_joints: ``K``; ``None`` takes all channels, but the last when ``background``.
        stride: input pixels per map pixel.
        method: ``"taylor"``, ``"soft_argmax"`` or ``"local_centroid"``.
        beta: softmax sharpness for ``"soft_argmax"`` (maps are about 0..1).
        radius: half-size of the ``"local_centroid"`` window in map pixels; about 2
            sigma of the maps' Gaussians (kpose trains with sigma 1: radius 2).
        sigma: the maps' Gaussian sigma in map pixels, for ``"local_centroid"``'s border
            correction (the training sigma; kpose's default 1).
        frame: ``"pixels"`` returns ``x, y`` in input pixels; ``"fraction"`` returns
            ``(x + 0.5) / W`` and ``(y + 0.5) / H`` (0 and 1 are the input's outer pixel
            edges), which shares one int8 scale with the score in a quantised model.
        background: the input's last channel is a background map, not a joint.
    """

    def __init__(self, num_joints: int | None = None, stride: int = 8, method: str = "taylor",
                 beta: float = 40.0, radius: int = 2, frame: str = "pixels",
                 sigma: float = 1.0, background: bool = True, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if method not in DECODING_METHODS:
            raise ValueError(f"HeatmapDecoder method must be one of {DECODING_METHODS}, "
                             f"got {method!r}")
        if stride < 1:
            raise ValueError(f"HeatmapDecoder stride must be >= 1, got {stride}")
        if num_joints is not None and num_joints < 1:
            raise ValueError(f"HeatmapDecoder num_joints must be >= 1, got {num_joints}")
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
            raise ValueError(f"HeatmapDecoder radius must be an integer >= 1, got {radius!r}")
        if frame not in DECODING_FRAMES:
            raise ValueError(f"HeatmapDecoder frame must be one of {DECODING_FRAMES}, got "
                             f"{frame!r}")
        if not sigma > 0:
            raise ValueError(f"HeatmapDecoder sigma must be positive, got {sigma!r}")
        self.num_joints = num_joints
        self.stride = int(stride)
        self.method = method
        self.beta = float(beta)
        self.radius = int(radius)
        self.frame = frame
        self.sigma = float(sigma)
        self.background = bool(background)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"HeatmapDecoder expects belief maps of rank 4 (B, h, w, C), "
                             f"got shape {tuple(input_shape)}")
        _, height, width, channels = input_shape
        if height is None or width is None or channels is None:
            raise ValueError(f"HeatmapDecoder needs static map sizes, got {tuple(input_shape)}")
        joints = channels - int(self.background) if self.num_joints is None \
            else self.num_joints
        if not 1 <= joints <= channels:
            raise ValueError(f"HeatmapDecoder: belief maps have {channels} channels, too few "
                             f"for {self.num_joints} joints")
        if self.method == "taylor" and (height < 3 or width < 3):
            raise ValueError(f"HeatmapDecoder 'taylor' needs maps of at least 3x3, got "
                             f"{height}x{width}")
        self._joints, self._height, self._width = int(joints), int(height), int(width)
        if self.method == "local_centroid":
            self._border = _border_correction(self.sigma, self.radius)
        self._grid = map_pixel_grid(height, width)

    def call(self, maps):
        maps = ops.cast(maps[..., : self._joints], "float32")
        if self.method == "local_centroid":
            return self._local_centroid(maps)
        batch = ops.shape(maps)[0]
        hw = self._height * self._width
        flat = ops.reshape(ops.transpose(maps, (0, 3, 1, 2)), (batch, self._joints, hw))
        score = ops.max(flat, axis=-1)
        if self.method == "taylor":
            xy = self._taylor(flat)
        else:
            xy = self._soft_argmax(flat)
        if self.frame == "pixels":
            xy = (xy + 0.5) * self.stride - 0.5  # map pixels -> input pixels
        else:
            xy = (xy + 0.5) / np.array([self._width, self._height], "float32")
        return ops.concatenate([xy, score[..., None]], axis=-1)

    def _taylor(self, flat):
        width, height = self._width, self._height
        # top_k, not argmax: Keras's TF argmax adds a bitwise -0.0 fix (BitwiseAnd) that
        # TFLite has no builtin for. Ties go to the lowest index in both.
        index = ops.cast(ops.top_k(flat, 1)[1][..., 0], "int32")  # (B, K)
        cx = ops.clip(index % width, 1, width - 2)
        cy = ops.clip(index // width, 1, height - 2)
        centre = cy * width + cx
        neighbours = ops.stack([centre, centre - 1, centre + 1, centre - width, centre + width],
                               axis=-1)
        values = ops.take_along_axis(flat, neighbours, axis=-1)  # (B, K, 5)
        # A floor that float16 exports can hold (1e-10 is 0 in float16, and log(0) = -inf).
        logs = ops.log(ops.maximum(values, 1e-7))
        dx = _parabola_vertex(logs[..., 1], logs[..., 0], logs[..., 2])
        dy = _parabola_vertex(logs[..., 3], logs[..., 0], logs[..., 4])
        x = ops.cast(cx, "float32") + dx
        y = ops.cast(cy, "float32") + dy
        return ops.stack([x, y], axis=-1)

    def _soft_argmax(self, flat):
        return softmax_mean(flat * self.beta, self._grid)

    def _local_centroid(self, maps):
        """``(B, h, w, K)`` maps -> ``(B, K, 3)``; see the class docstring.

        Each op's float range is the range its int8 tensor gets from calibration, so no
        step relies on a value that only quantisation produces (a correction of an error
        that is exactly 0 in float would be clipped to 0 in int8).
        """
        joints = self._joints
        peak = ops.max(maps, axis=(1, 2), keepdims=True)  # (B, 1, 1, K)
        # Scale to a peak of about 1 first, so the squares keep their int8 precision on
        # weak maps; the factor cancels in the normalisation.
        unit_peak = ops.relu(maps) * ops.rsqrt(ops.maximum(peak * peak, 1e-6))
        # 1 at the maximum, falling to 0 at (1 - tolerance) x the maximum. The maximum is
        # taken again rather than assumed to be 1: in int8, 1 / peak is only good to ~5 %.
        unit_max = ops.max(unit_peak, axis=(1, 2), keepdims=True)
        top = ops.relu((unit_peak - unit_max) * (1.0 / _PEAK_TOLERANCE) + 1.0)
        window = ops.max_pool(top, 2 * self.radius + 1, strides=1, padding="same")
        weights = unit_peak * window
        weights = weights * weights
        total = ops.sum(weights, axis=(1, 2), keepdims=True)
        inverse = ops.rsqrt(ops.maximum(total, 1e-6))
        mass = weights * (inverse * inverse)  # sums to 1 over the window
        x = self._centroid_along(top, ops.sum(mass, axis=1, keepdims=True), self._width,
                                 (1, 1, -1, 1))
        y = self._centroid_along(top, ops.sum(mass, axis=2, keepdims=True), self._height,
                                 (1, -1, 1, 1))
        columns = [ops.reshape(v, (-1, joints, 1)) for v in (x, y, peak)]
        return ops.concatenate(columns, axis=-1)

    def _centroid_along(self, top, marginal, size: int, grid_shape):
        """Centroid along one axis, ``(B, 1, 1, K)``, in the layer's ``frame``.

        ``marginal``: the window's normalised mass summed over the other axis. Positions
        are counted in units of ``(radius + 1) / 3`` map pixels, so that an offset from the
        peak pixel of up to ``radius + 1`` px is one relu6: ``relu6(grid - start)`` with
        ``start`` = the peak pixel's position + 3, taken by a max over the peak mask. The
        offsets are then small numbers, and their int8 steps are fine.
        """
        unit = (self.radius + 1) / 3.0
        positions = np.arange(size, dtype="float32").reshape(grid_shape) / unit
        start = ops.max(top * (positions + 3.0), axis=(1, 2), keepdims=True)
        offsets = ops.relu6((positions + 6.0) - start) - 3.0  # (j - peak) / unit, clipped
        shift = ops.sum(marginal * offsets, axis=(1, 2), keepdims=True)
        # The border: the window is cut there, which pulls the centroid inwards by a known
        # amount for a Gaussian. Undo it at both edges, as a function of the centroid.
        knots, slopes = (value.reshape(1, -1, 1, 1) for value in self._border)
        centroid = (start + shift - 3.0) * unit  # map pixels
        low = ops.sum(ops.relu(knots - centroid) * slopes, axis=1, keepdims=True)
        high = ops.sum(ops.relu(centroid - ((size - 1) - knots)) * slopes, axis=1,
                       keepdims=True)
        shift = shift + (low - high) * (1.0 / unit)
        # Map pixel (start - 3 + shift) * unit -> fraction (pixel + 0.5) / size, or input
        # pixels (pixel + 0.5) * stride - 0.5.
        if self.frame == "fraction":
            return (start + shift) * (unit / size) + (0.5 - 3.0 * unit) / size
        return (start + shift) * (unit * self.stride) + ((0.5 - 3.0 * unit) * self.stride - 0.5)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        joints = self.num_joints if self.num_joints is not None \
            else channels - int(self.background)
        return (input_shape[0], joints, 3)

    def get_config(self):
        return {**super().get_config(), "num_joints": self.num_joints, "stride": self.stride,
                "method": self.method, "beta": self.beta, "radius": self.radius,
                "frame": self.frame, "sigma": self.sigma, "background": self.background}


@keras.saving.register_keras_serializable(package="kpose")
class NormalisedToPixels(keras.layers.Layer):
    """``(B, K, 2)`` crop-normalised joints (and optional visibility logits ``(B, K)``) ->
    ``(B, K, 3)`` ``(x, y, score)``.

    ``frame="pixels"``: input pixels, ``u = x_n * W + (W - 1) / 2`` (likewise y with
    ``H``). ``frame="fraction"`` (int8 exports): ``(u + 0.5) / W``, so that x, y and score
    all lie in about [0, 1] and share one int8 scale. The score is the sigmoid of the
    visibility logits when they are given as a second input, else 1.
    """

    def __init__(self, input_size: tuple[int, int], frame: str = "pixels", **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if frame not in ("pixels", "fraction"):
            raise ValueError(f"frame must be 'pixels' or 'fraction', got {frame!r}")
        self.input_size = tuple(int(s) for s in input_size)
        self.frame = frame

    def call(self, inputs):
        joints, logits = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        joints = keras.ops.cast(joints, "float32")
        height, width = self.input_size
        if self.frame == "fraction":
            xy = joints + 0.5
        else:
            xy = joints * np.array([width, height], "float32") + np.array(
                [(width - 1) / 2.0, (height - 1) / 2.0], "float32")
        if logits is None:
            # From the data rather than a constant, so an exported graph has no constant
            # operand here.
            score = joints[..., :1] * 0.0 + 1.0
        else:
            score = keras.ops.sigmoid(keras.ops.cast(logits, "float32"))[..., None]
        return keras.ops.concatenate([xy, score], axis=-1)

    def compute_output_shape(self, input_shape):
        joints = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple)) else input_shape
        return (*joints[:-1], 3)

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size, "frame": self.frame}


def _border_correction(sigma: float, radius: int, knots: int = 8):
    """``local_centroid``'s border correction: ``(knots, slopes)`` float32 arrays with
    ``true - centroid ~= sum slopes * relu(knots - centroid)`` near the map's first pixel.

    Fitted by least squares to the centroid that the decoder finds (squared Gaussian of
    ``sigma``, window ``radius`` around the peak pixel, cut at the edge) for peaks from half
    a pixel beyond the edge to well inside; knots packed towards the edge, where the cut
    bites hardest (about 0.02 px worst error for sigma 1).
    """
    pixels = np.arange(int(4 * radius + 8 * sigma + 8))
    peaks = np.linspace(-0.5, radius + 2.0, 400)
    found = np.empty_like(peaks)
    for index, peak in enumerate(peaks):
        gaussian = np.exp(-((pixels - peak) ** 2) / (2.0 * sigma**2))
        window = np.abs(pixels - np.argmax(gaussian)) <= radius
        weights = np.where(window, gaussian, 0.0) ** 2
        found[index] = np.sum(weights * pixels) / np.sum(weights)
    start = found.min()
    points = start + (radius + 1.0 - start) * np.linspace(0.0, 1.0, knots) ** 2
    basis = np.maximum(points[None, :] - found[:, None], 0.0)
    slopes = np.linalg.lstsq(basis, peaks - found, rcond=None)[0]
    return points.astype("float32"), slopes.astype("float32")


def _parabola_vertex(left, centre, right):
    """Offset of the vertex of the parabola through (-1, left), (0, centre), (1, right).

    Falls back to 0 where the samples do not curve downwards (no peak to refine), and is
    clipped to 1.5 samples: a peak half a pixel beyond the last sample is still found.
    """
    curvature = left + right - 2.0 * centre
    peaked = curvature < -1e-6
    offset = 0.5 * (left - right) / ops.where(peaked, curvature, -1.0)
    return ops.where(peaked, ops.clip(offset, -1.5, 1.5), 0.0)


def map_pixel_grid(height: int, width: int) -> np.ndarray:
    """``(h * w, 2)`` float32 ``(x, y)`` of every pixel of an ``(h, w)`` map, row-major
    (the order of a map flattened over its two axes), in map pixels: pixel ``(i, j)`` is
    at ``(j, i)``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def softmax_mean(logits, positions: np.ndarray):
    """Soft-argmax: each row of ``logits`` as a distribution (a softmax over its pixels),
    and the mean position under it.

    Args:
        logits: ``(B, K, h * w)`` float32 map values already scaled (by ``beta``), each
            joint's map flattened row-major.
        positions: ``(h * w, 2)`` constant ``(x, y)`` of those pixels in the frame the
            result should be in (:func:`map_pixel_grid`, or a rescaling of it).

    Returns:
        ``(B, K, 2)`` float32 ``(x, y)``.
    """
    joints, pixels = logits.shape[1], logits.shape[2]
    weights = ops.softmax(logits, axis=-1)  # over the last axis, as TFLite's SOFTMAX
    # A 2-D product with a constant right-hand side is TFLite's FULLY_CONNECTED. The Edge
    # TPU takes neither this nor a softmax over more than one row: an exported model ends
    # on the CPU from its SOFTMAX on.
    xy = ops.matmul(ops.reshape(weights, (-1, pixels)),
                    ops.convert_to_tensor(np.asarray(positions, np.float32)))
    return ops.reshape(xy, (-1, joints, 2))
