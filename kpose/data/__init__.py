"""Data: readers for COCO, MPII, LSP/LSPET and FLIC, synthetic people, the tf.data pipeline.

Readers and records need only NumPy, SciPy and Pillow. The pipeline names
(``make_dataset``, ``Augmentation``, the transforms) import TensorFlow, so they load on
first use.
"""

from importlib import import_module

from kpose.data.coco import read_coco
from kpose.data.flic import read_flic
from kpose.data.lsp import read_lsp
from kpose.data.mpii import read_mpii
from kpose.data.records import PoseRecord, box_from_keypoints

_LAZY = {
    "make_dataset": "kpose.data.pipeline",
    "Augmentation": "kpose.data.augment",
    "NO_AUGMENTATION": "kpose.data.augment",
    "belief_maps": "kpose.data.targets",
    "coordinate_targets": "kpose.data.targets",
    "crop_matrix": "kpose.data.transforms",
    "keypoints_to_image": "kpose.data.transforms",
    "keypoints_to_input": "kpose.data.transforms",
    "write_synthetic_dataset": "kpose.data.synthetic",
    "render_person": "kpose.data.synthetic",
}

__all__ = ["PoseRecord", "box_from_keypoints", "read_coco", "read_flic", "read_lsp",
           "read_mpii", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kpose.data' has no attribute {name!r}")
