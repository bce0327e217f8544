"""Pose models as Keras functional models: Convolutional Pose Machines (and DeepPose)."""

from kpose.models.cpm import build_cpm, build_cpm_inference, compile_cpm, receptive_field
from kpose.models.layers import CenterMap, HeatmapDecoder, ImageNormalisation
from kpose.models.test_time import flip_belief_maps, predict_belief_maps

__all__ = ["build_cpm", "build_cpm_inference", "compile_cpm", "receptive_field",
           "HeatmapDecoder", "CenterMap", "ImageNormalisation",
           "predict_belief_maps", "flip_belief_maps"]
