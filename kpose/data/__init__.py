"""Data: readers for COCO, MPII, LSP/LSPET and FLIC, synthetic people, the tf.data pipeline."""

from kpose.data.records import PoseRecord, box_from_keypoints

__all__ = ["PoseRecord", "box_from_keypoints"]
