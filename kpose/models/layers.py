"""Custom Keras layers shared by the models: belief-map decoding, the CPM center map, and
DeepPose's in-graph joint crops and refinement steps.

All are registered for ``.keras`` serialisation and run inside exported models.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from kpose.data.transforms import joint_boxes
from kpose.decoding import DECODING_METHODS, HeatmapDecoder, map_pixel_grid, softmax_mean


__all__ = ["HeatmapDecoder", "CenterMap", "ImageNormalisation", "DECODING_METHODS",
           "center_map", "JointCrops", "JointBoxes", "RefineJoints",
           "LocalResponseNormalisation", "CaffeNormalisation", "ResizeImages", "SoftArgmax"]

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
        # Rows first: (B, K*h, H) @ (B, H, W*C) -> (B, K*h, W*C). Both products are on
        # operands of symmetric range (below), the image centred on IMAGE_MIDDLE.
        rows = _matmul_symmetric(ops.reshape(wy, (batch, joints * crop_h, height)),
                                 ops.reshape(images - IMAGE_MIDDLE,
                                             (batch, height, width * channels)))
        rows = ops.reshape(rows, (batch * joints, crop_h, width, channels))
        rows = ops.reshape(ops.transpose(rows, (0, 2, 1, 3)),
                           (batch * joints, width, crop_h * channels))
        # Then columns: (B*K, w, W) @ (B*K, W, h*C) -> (B*K, w, h*C).
        crops = _matmul_symmetric(ops.reshape(wx, (batch * joints, crop_w, width)), rows)
        crops = ops.transpose(ops.reshape(crops, (batch * joints, crop_w, crop_h, channels)),
                              (0, 2, 1, 3))
        # A sample inside the image has weights summing to 1, so it gets the centre back.
        inside = (ops.reshape(inside_y, (batch * joints, crop_h, 1, 1))
                  * ops.reshape(inside_x, (batch * joints, 1, crop_w, 1)))
        crops = crops + inside * IMAGE_MIDDLE + (1.0 - inside) * self.extrapolation_value
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
class SoftArgmax(keras.layers.Layer):
    """Integral regression (Sun et al., ECCV 2018): each joint's map, scaled by a learnt
    per-joint factor ``beta`` and normalised by a softmax over its pixels, read as a
    distribution whose mean is the joint.

    Input ``(B, h, w, K)`` maps (any scale) covering the whole image the model sees;
    output ``(B, K, 2)`` float32 ``(x, y)`` in kpose's normalised coordinates of that
    image: map pixel ``(i, j)`` is at ``((j + 0.5) / w - 0.5, (i + 0.5) / h - 0.5)``, the
    centre of the input pixels it covers (:func:`kpose.data.targets.input_to_map`).
    The mean of a softmax is differentiable everywhere, so a coordinate loss trains the
    maps; ``beta`` (stored as its logarithm, initial value ``beta``) sets how peaked the
    distribution is: a map trained as a heatmap (peak about 1) reads as its peak with
    ``beta`` about 20.
    """

    def __init__(self, beta: float = 20.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not beta > 0:
            raise ValueError(f"SoftArgmax beta must be positive, got {beta!r}")
        self.beta = float(beta)

    def build(self, input_shape):
        joints = input_shape[-1]
        self.log_beta = self.add_weight(
            name="log_beta", shape=(joints,),
            initializer=keras.initializers.Constant(float(np.log(self.beta))))

    def call(self, maps):
        _, height, width, joints = maps.shape
        maps = ops.cast(maps, "float32") * ops.exp(self.log_beta)
        # (B, K, h * w): one distribution per joint on the last axis.
        flat = ops.transpose(ops.reshape(maps, (-1, height * width, joints)), (0, 2, 1))
        normalised = (map_pixel_grid(height, width) + 0.5) \
            / np.array([width, height], np.float32) - 0.5
        return softmax_mean(flat, normalised)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1], 2)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


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
    """Resize without antialiasing, half-pixel centres: bilinear (RESIZE_BILINEAR in
    TFLite) or nearest-neighbour (RESIZE_NEAREST_NEIGHBOR; at an integer factor each pixel
    is repeated).

    Pixel edges map to pixel edges, so kpose's normalised coordinates mean the same point
    before and after. Used instead of ``keras.layers.Resizing``, whose ``call`` defaults
    to ``training=True`` and, in Keras 3.15, passes that on to the layers after it when a
    model is called without ``training`` (BatchNorm and Dropout then run in training mode,
    and a converted TFLite file updates BatchNorm statistics at every call). Instead of
    ``keras.layers.UpSampling2D`` too, which Keras builds from ``repeat`` ops that LiteRT
    cannot run as one integer op.

    Input ``(B, H, W, C)``; output ``(B, height, width, C)`` in the layer's compute dtype
    (float32 unless a ``dtype`` is given).
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got "
                             f"{interpolation!r}")
        self.height, self.width = int(height), int(width)
        self.interpolation = interpolation

    def call(self, images):
        return ops.image.resize(ops.cast(images, self.compute_dtype),
                                (self.height, self.width),
                                interpolation=self.interpolation, antialias=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation}


# JointCrops centres images on this value (the middle of 0..255 pixels) before its
# products, so that an int8 file quantises them with a zero point of 0.
IMAGE_MIDDLE = 128.0


def _matmul_symmetric(weights, values):
    """``weights @ values`` for ``(N, R, S)`` sampling weights in ``[0, 1]`` and ``(N, S, T)``
    values, the same numbers in float.

    LiteRT's int8 BATCH_MATMUL is far off (crops tens of grey levels away, measured with
    LiteRT 2.x) unless its operands' zero points are 0, that is unless their calibrated
    ranges are symmetric about 0. The weights get one extra row, -1 on its first column
    (its product, minus the values' first row, keeps the product's range and is dropped),
    so their range is [-1, 1] rather than [0, 1]; the caller centres the values.
    """
    rows, size = weights.shape[1], weights.shape[2]
    extra = np.zeros((1, 1, size), "float32")
    extra[..., 0] = -1.0
    padded = ops.concatenate([weights, ops.zeros_like(weights[:, :1]) + extra], axis=1)
    return ops.matmul(padded, values)[:, :rows]


def _tent_weights(start, end, size: int, samples: int):
    """Bilinear sampling weights of ``crop_and_resize`` along one axis.

    ``start``, ``end``: ``(B, K)`` box edges in ``crop_and_resize``'s normalised frame.
    Returns ``(B, K, samples, size)`` weights and ``(B, K, samples)`` 0/1 "inside" flags;
    a sample outside ``[0, size - 1]`` gets all-zero weights, as the op extrapolates there.
    """
    if samples > 1:
        # Both edges in pixels first, then their difference: the int8 converter gives
        # ``(end - start) * (size - 1)``'s difference the range of the product, so the
        # box side came out as one quantisation step (measured, TF 2.x).
        first, last = start * (size - 1), end * (size - 1)
        step = (last - first) / (samples - 1)
        index = np.arange(samples, dtype="float32")
        coords = first[..., None] + index * step[..., None]
    else:
        coords = (0.5 * (start + end) * (size - 1))[..., None]
    # Int8 files: a tensor's range sets its resolution (1/255 of it), so keep every range
    # no wider than it must be. A sample further than one pixel outside the image has no
    # weight and no "inside" flag whether or not it is clipped to [-1, size], which keeps
    # the positions to about 1 px steps. The distance to a pixel matters only within one
    # pixel (the tent), so it is clipped to [-1, 1] before its absolute value: about 0.01 px
    # steps instead of the positions' whole span. And two comparisons with zero (LiteRT
    # 2.x aborts the process on an int8 LESS_EQUAL against the constant size - 1; a
    # MINIMUM of the two would tie the positions' range to the smaller of them).
    coords = ops.clip(coords, -1.0, float(size))
    inside = ops.cast(ops.logical_and(coords >= 0.0, (size - 1.0) - coords >= 0.0), "float32")
    grid = np.arange(size, dtype="float32")
    distance = ops.clip(grid - coords[..., None], -1.0, 1.0)
    weights = (1.0 - ops.abs(distance)) * inside[..., None]
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
