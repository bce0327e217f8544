"""Custom Keras layers shared by the models: belief-map decoding, the CPM center map, and
DeepPose's in-graph joint crops and refinement steps.

All are registered for ``.keras`` serialisation and run inside exported models.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kpose.data.transforms import joint_boxes

__all__ = ["HeatmapDecoder", "CenterMap", "ImageNormalisation", "DECODING_METHODS",
           "center_map", "JointCrops", "JointBoxes", "RefineJoints",
           "LocalResponseNormalisation", "CaffeNormalisation", "ResizeImages"]

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
        num_joints: ``K``; ``None`` takes all channels but the last (the background).
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
    """

    def __init__(self, num_joints: int | None = None, stride: int = 8, method: str = "taylor",
                 beta: float = 40.0, radius: int = 2, frame: str = "pixels",
                 sigma: float = 1.0, **kwargs):
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
        if self.method == "local_centroid":
            self._border = _border_correction(self.sigma, self.radius)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self._grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (h*w, 2) as (x, y)

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
            xy = self._soft_argmax(flat, batch)
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

    def _soft_argmax(self, flat, batch):
        weights = ops.softmax(flat * self.beta, axis=-1)
        rows = ops.reshape(weights, (batch * self._joints, self._height * self._width))
        # A constant right-hand side keeps this a FULLY_CONNECTED op in TFLite.
        xy = ops.matmul(rows, ops.convert_to_tensor(self._grid))
        return ops.reshape(xy, (batch, self._joints, 2))

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
        joints = self.num_joints if self.num_joints is not None else channels - 1
        return (input_shape[0], joints, 3)

    def get_config(self):
        return {**super().get_config(), "num_joints": self.num_joints, "stride": self.stride,
                "method": self.method, "beta": self.beta, "radius": self.radius,
                "frame": self.frame, "sigma": self.sigma}


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


@keras.saving.register_keras_serializable(package="kpose")
class JointCrops(keras.layers.Layer):
    """Crop and resize one box per joint with TFLite builtin ops only.

    The same numbers as ``tf.image.crop_and_resize`` (bilinear, align-corners sampling,
    ``extrapolation_value`` outside the image), which is not a TFLite builtin (it needs
    Flex ops, which int8 and the Edge TPU cannot run). Bilinear sampling is separable: a
    crop is ``Wy @ image @ Wx^T`` with tent weights ``relu(1 - |grid - coordinate|)``, so it
    is two batched matrix products per image.

    Inputs ``[images, boxes]``:

    - ``images``: ``(B, H, W, C)`` float (static ``H, W >= 2`` and ``C``).
    - ``boxes``: ``(B, K, 4)`` float ``(y1, x1, y2, x2)`` in ``crop_and_resize``'s frame:
      row ``y1 * (H - 1)`` (so 0 and 1 are the centres of the first and last pixel rows),
      the first crop row samples ``y1`` and the last ``y2``; likewise for x. Use
      :func:`kpose.data.transforms.joint_boxes` for boxes around points.

    Output ``(B * K, h, w, C)`` float32: the crop of box ``k`` of image ``b`` is row
    ``b * K + k``, the order of ``crop_and_resize`` with ``box_indices = [0]*K + [1]*K ...``.

    Args:
        crop_size: ``h`` or ``(h, w)`` in pixels.
        extrapolation_value: value of samples outside the image.
    """

    def __init__(self, crop_size, extrapolation_value: float = 0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        size = (crop_size, crop_size) if isinstance(crop_size, (int, np.integer)) else crop_size
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"JointCrops crop_size must be a positive int or (h, w), got "
                             f"{crop_size!r}")
        self.crop_size = size
        self.extrapolation_value = float(extrapolation_value)

    def build(self, input_shape):
        image_shape, box_shape = (tuple(s) for s in input_shape)
        if len(image_shape) != 4 or None in image_shape[1:]:
            raise ValueError(f"JointCrops: images must be (B, H, W, C) with static H, W, C, "
                             f"got shape {image_shape}")
        if min(image_shape[1:3]) < 2:
            raise ValueError(f"JointCrops: images must be at least 2 x 2 px, got {image_shape}")
        if len(box_shape) != 3 or box_shape[-1] != 4 or box_shape[1] is None:
            raise ValueError(f"JointCrops: boxes must be (B, K, 4) (y1, x1, y2, x2) with a "
                             f"static K, got shape {box_shape}")

    def call(self, inputs):
        images, boxes = inputs
        for name, tensor in (("images", images), ("boxes", boxes)):
            dtype = keras.backend.standardize_dtype(tensor.dtype)
            if not (dtype.startswith("float") or dtype.startswith("int")
                    or dtype.startswith("uint") or dtype == "bfloat16"):
                raise ValueError(f"JointCrops: {name} must be a real number tensor, got "
                                 f"dtype {dtype}")
        _, height, width, channels = images.shape
        joints = boxes.shape[1]
        crop_h, crop_w = self.crop_size
        batch = ops.shape(images)[0]
        images = ops.cast(images, "float32")
        boxes = ops.cast(boxes, "float32")
        wy, inside_y = _tent_weights(boxes[..., 0], boxes[..., 2], height, crop_h)
        wx, inside_x = _tent_weights(boxes[..., 1], boxes[..., 3], width, crop_w)
        # Rows first: (B, K*h, H) @ (B, H, W*C) -> (B, K*h, W*C).
        rows = ops.matmul(ops.reshape(wy, (batch, joints * crop_h, height)),
                          ops.reshape(images, (batch, height, width * channels)))
        rows = ops.reshape(rows, (batch * joints, crop_h, width, channels))
        rows = ops.reshape(ops.transpose(rows, (0, 2, 1, 3)),
                           (batch * joints, width, crop_h * channels))
        # Then columns: (B*K, w, W) @ (B*K, W, h*C) -> (B*K, w, h*C).
        crops = ops.matmul(ops.reshape(wx, (batch * joints, crop_w, width)), rows)
        crops = ops.transpose(ops.reshape(crops, (batch * joints, crop_w, crop_h, channels)),
                              (0, 2, 1, 3))
        if self.extrapolation_value != 0.0:
            inside = (ops.reshape(inside_y, (batch * joints, crop_h, 1, 1))
                      * ops.reshape(inside_x, (batch * joints, 1, crop_w, 1)))
            crops = crops + (1.0 - inside) * self.extrapolation_value
        return crops

    def compute_output_shape(self, input_shape):
        image_shape, box_shape = input_shape
        batch = None if image_shape[0] is None or box_shape[1] is None else (
            image_shape[0] * box_shape[1])
        return (batch, *self.crop_size, image_shape[-1])

    def get_config(self):
        return {**super().get_config(), "crop_size": self.crop_size,
                "extrapolation_value": self.extrapolation_value}


@keras.saving.register_keras_serializable(package="kpose")
class JointBoxes(keras.layers.Layer):
    """DeepPose's refinement boxes around the joints of a pose estimate.

    Box ``i`` is centred on joint ``i`` and has side ``sigma * diam(y)``, where ``diam`` is
    the distance between the two ``torso`` joints of the estimate ``y`` (in pixels, at
    least 1 px so a collapsed estimate still gives a box).

    Input ``(B, K, 2)`` joints in normalised coordinates of an image of ``image_size``
    (kpose's frame: ``(u - (W - 1) / 2) / W``). Output ``(B, K, 4)`` float32 boxes for
    :class:`JointCrops` (see :func:`kpose.data.transforms.joint_boxes`): crop ``i`` then
    has the normalised frame ``(p - y_i) / side``.

    Args:
        image_size: ``(height, width)`` of the image the crops are cut from.
        crop_size: side of the crops in pixels.
        torso: the two torso joint indices.
        sigma: box side in torso diameters.
    """

    def __init__(self, image_size, crop_size: int, torso, sigma: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        self.crop_size = int(crop_size)
        self.torso = tuple(int(t) for t in torso)
        self.sigma = float(sigma)

    def call(self, keypoints):
        centres, sides = _refinement_geometry(keypoints, self.image_size, self.torso,
                                              self.sigma)
        return joint_boxes(centres, sides[:, None], self.image_size, self.crop_size)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], 4)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "crop_size": self.crop_size, "torso": self.torso, "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="kpose")
class RefineJoints(keras.layers.Layer):
    """A DeepPose refinement step: ``y_i <- y_i + side * d_i`` for every joint ``i``.

    One refiner network serves all joints: it runs on each joint's crop and predicts all
    ``K`` joints; for the crop of joint ``i`` only its prediction for joint ``i`` is used.

    Inputs ``[keypoints, displacements]``:

    - ``keypoints``: ``(B, K, 2)`` the previous stage's joints, normalised to the image.
    - ``displacements``: ``(B * K, K, 2)`` the refiner's outputs on the crops of
      :class:`JointCrops` (row ``b * K + i`` is the crop of joint ``i`` of image ``b``), in
      each crop's normalised frame.

    Output ``(B, K, 2)`` float32 refined joints, normalised to the image. ``image_size``,
    ``torso`` and ``sigma`` must be those of the :class:`JointBoxes` that cut the crops.
    """

    def __init__(self, image_size, torso, sigma: float, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        self.torso = tuple(int(t) for t in torso)
        self.sigma = float(sigma)

    def call(self, inputs):
        keypoints, displacements = inputs
        joints = keypoints.shape[1]
        keypoints = ops.cast(keypoints, "float32")
        displacements = ops.reshape(ops.cast(displacements, "float32"), (-1, joints, joints, 2))
        # The diagonal: crop i's prediction for joint i (a mask and a sum, both builtins).
        own = ops.sum(displacements * np.eye(joints, dtype="float32")[None, :, :, None], axis=2)
        centres, sides = _refinement_geometry(keypoints, self.image_size, self.torso,
                                              self.sigma)
        refined = centres + own * sides[:, None, None]
        height, width = self.image_size
        return _pixels_to_normalised(refined, height, width)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "torso": self.torso,
                "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="kpose")
class LocalResponseNormalisation(keras.layers.Layer):
    """AlexNet's local response normalisation across channels.

    ``b_c = a_c / (bias + alpha * sum_{|c' - c| <= depth_radius} a_{c'}^2) ^ beta`` (the
    definition of ``tf.nn.local_response_normalization``; AlexNet: radius 2, i.e. n = 5,
    bias 2, alpha 1e-4, beta 0.75). The windowed sum is a product with a constant banded
    matrix, which converts to TFLite builtins. Input and output ``(B, H, W, C)``.
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4,
                 beta: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape):
        channels = input_shape[-1]
        index = np.arange(channels)
        self._band = (np.abs(index[:, None] - index[None, :]) <= self.depth_radius
                      ).astype("float32")

    def call(self, inputs):
        window = ops.matmul(ops.square(inputs), ops.cast(self._band, inputs.dtype))
        return inputs * ops.power(self.bias + self.alpha * window, -self.beta)

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="kpose")
class CaffeNormalisation(keras.layers.Layer):
    """``keras.applications`` "caffe" input: RGB -> BGR minus the ImageNet channel means.

    What ResNet50's ImageNet weights expect. Input ``(B, H, W, 3)`` RGB 0..255 (put
    :class:`ImageNormalisation` with scale 1 and offset 0 in front to check the image).
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, images):
        bgr = ops.flip(ops.cast(images, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(np.array(self.MEAN_BGR, "float32"),
                                           dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="kpose")
class ResizeImages(keras.layers.Layer):
    """Bilinear resize (half-pixel centres, no antialiasing): RESIZE_BILINEAR in TFLite.

    Pixel edges map to pixel edges, so kpose's normalised coordinates mean the same point
    before and after. Used instead of ``keras.layers.Resizing``, whose ``call`` defaults
    to ``training=True`` and, in Keras 3.15, passes that on to the layers after it when a
    model is called without ``training`` (BatchNorm and Dropout then run in training mode).

    Input ``(B, H, W, C)``; output ``(B, height, width, C)`` float32.
    """

    def __init__(self, height: int, width: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, images):
        return ops.image.resize(ops.cast(images, "float32"), (self.height, self.width),
                                interpolation="bilinear", antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def _tent_weights(start, end, size: int, samples: int):
    """Bilinear sampling weights of ``crop_and_resize`` along one axis.

    ``start``, ``end``: ``(B, K)`` box edges in ``crop_and_resize``'s normalised frame.
    Returns ``(B, K, samples, size)`` weights and ``(B, K, samples)`` 0/1 "inside" flags;
    a sample outside ``[0, size - 1]`` gets all-zero weights, as the op extrapolates there.
    """
    if samples > 1:
        # The op's own arithmetic, in its order, so boxes on the border round the same way.
        step = (end - start) * (size - 1) / (samples - 1)
        index = np.arange(samples, dtype="float32")
        coords = start[..., None] * (size - 1) + index * step[..., None]
    else:
        coords = (0.5 * (start + end) * (size - 1))[..., None]
    inside = ops.cast(ops.logical_and(coords >= 0.0, coords <= size - 1.0), "float32")
    grid = np.arange(size, dtype="float32")
    weights = ops.relu(1.0 - ops.abs(grid - coords[..., None])) * inside[..., None]
    return weights, inside


def _refinement_geometry(keypoints, image_size, torso, sigma):
    """Joints in pixels ``(B, K, 2)`` and box sides ``sigma * diam`` in pixels ``(B,)``."""
    height, width = image_size
    scale = np.array([width, height], "float32")
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0], "float32")
    pixels = ops.cast(keypoints, "float32") * scale + centre
    torso_vector = pixels[:, torso[0]] - pixels[:, torso[1]]
    diameter = ops.sqrt(ops.sum(ops.square(torso_vector), axis=-1))
    return pixels, sigma * ops.maximum(diameter, 1.0)


def _pixels_to_normalised(pixels, height: int, width: int):
    scale = np.array([width, height], "float32")
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0], "float32")
    return (pixels - centre) / scale
