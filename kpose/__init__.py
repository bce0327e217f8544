"""kpose: human pose estimation in Keras (DeepPose, Convolutional Pose Machines, SimpleBaselines,
Stacked Hourglass), from Colab to phones and Edge TPUs.

``import kpose`` is light (no TensorFlow); ``kpose.train``, ``kpose.evaluate``,
``kpose.predict``, ``kpose.load_model`` and ``kpose.pretrained`` (models shipped with
the package, :mod:`kpose.zoo`) load TensorFlow on first use.
"""

__version__ = "0.1.0"

from importlib import import_module  # noqa: E402

from kpose import skeletons  # noqa: E402
from kpose.skeletons import COCO_17, FLIC, LSP_14, MPII_16, Skeleton  # noqa: E402

_LAZY = {"train": "kpose.training", "evaluate": "kpose.evaluation",
         "predict": "kpose.prediction", "load_model": "kpose.runs",
         "pretrained": "kpose.zoo", "pretrained_names": "kpose.zoo",
         "pretrained_info": "kpose.zoo"}

__all__ = ["__version__", "skeletons", "Skeleton", "COCO_17", "MPII_16", "LSP_14", "FLIC",
           *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kpose' has no attribute {name!r}")
