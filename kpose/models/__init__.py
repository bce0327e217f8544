"""Pose models as Keras functional models: Convolutional Pose Machines (and DeepPose)."""

from kpose.models.cpm import build_cpm, build_cpm_inference, compile_cpm, receptive_field
from kpose.models.layers import CenterMap, HeatmapDecoder

__all__ = ["build_cpm", "build_cpm_inference", "compile_cpm", "receptive_field",
           "HeatmapDecoder", "CenterMap"]
