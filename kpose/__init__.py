"""kpose: DeepPose and Convolutional Pose Machines in Keras, from Colab to phones and Edge TPUs."""

__version__ = "0.1.0"

from kpose import skeletons  # noqa: E402  (light: no TensorFlow import)
from kpose.skeletons import COCO_17, FLIC, LSP_14, MPII_16, Skeleton  # noqa: E402

__all__ = ["__version__", "skeletons", "Skeleton", "COCO_17", "MPII_16", "LSP_14", "FLIC"]
