"""Pose models as Keras functional models: Convolutional Pose Machines, DeepPose,
SimpleBaselines and Stacked Hourglass; each carries a model card (:mod:`kpose.models.card`).
"""

from kpose.models.belief_merging import flip_belief_maps, predict_belief_maps
from kpose.models.card import ModelCard, ModelInfo, describe, model_family, stage_outputs
from kpose.models.cpm import build_cpm, build_cpm_inference, compile_cpm, receptive_field
from kpose.models.deeppose import (build_deeppose, build_deeppose_cascade,
                                   build_deeppose_inference, build_deeppose_refiner,
                                   build_refinement_step, compile_deeppose,
                                   without_training_outputs)
from kpose.models.families import RECIPES, build_heatmap_model
from kpose.models.heatmaps import build_heatmap_inference, compile_belief_model
from kpose.models.hourglass import build_hourglass
from kpose.models.layers import (CenterMap, HeatmapDecoder, ImageNormalisation, JointBoxes,
                                 JointCrops, RefineJoints)
from kpose.models.precision import float32_model, uses_mixed_precision
from kpose.models.simplebaseline import build_simplebaseline

__all__ = ["build_cpm", "build_cpm_inference", "compile_cpm", "receptive_field",
           "build_simplebaseline", "build_hourglass", "build_heatmap_model", "RECIPES",
           "build_heatmap_inference", "compile_belief_model",
           "describe", "model_family", "stage_outputs", "ModelCard", "ModelInfo",
           "HeatmapDecoder", "CenterMap", "ImageNormalisation",
           "predict_belief_maps", "flip_belief_maps",
           "build_deeppose", "build_deeppose_refiner", "build_deeppose_cascade",
           "build_deeppose_inference", "without_training_outputs",
           "build_refinement_step", "compile_deeppose", "JointCrops", "JointBoxes",
           "RefineJoints", "float32_model", "uses_mixed_precision"]
