"""One entry point for every belief-map family, so that training and the command line
build any of them from the same few arguments.

A new heatmap family is one builder (returning a model with a model card and ``stage_N``
outputs) and one line in :data:`HEATMAP_BUILDERS`; training, evaluation, prediction and
export take it from its card.
"""

from __future__ import annotations

import keras

from kpose.models.cpm import build_cpm
from kpose.models.hourglass import build_hourglass
from kpose.models.hrnet import build_hrnet
from kpose.models.simplebaseline import build_simplebaseline
from kpose.skeletons import Skeleton

__all__ = ["HEATMAP_BUILDERS", "DEFAULT_BACKBONES", "RECIPES", "build_heatmap_model"]

HEATMAP_BUILDERS = {"cpm": build_cpm, "simplebaseline": build_simplebaseline,
                    "hourglass": build_hourglass, "hrnet": build_hrnet}
DEFAULT_BACKBONES = {"cpm": "cpm", "simplebaseline": "resnet", "hourglass": None,
                     "hrnet": None}
# The training recipe: builder options that ``kpose.train`` uses unless told otherwise or
# asked for the papers' models (``paper=True``, the builders' own defaults). Each was
# measured on lspet_bench (benchmarks/learning_curve.py; README "A recipe that learns").
RECIPES = {
    "cpm": {"batchnorm": True, "foreground_weight": 10.0, "shared_features": True,
            "residual_stages": True},
    "simplebaseline": {"foreground_weight": 10.0},
    "hourglass": {"foreground_weight": 10.0},
    "hrnet": {"foreground_weight": 10.0},
}


def build_heatmap_model(family: str, skeleton: Skeleton | str, *, stages: int | None = None,
                        backbone: str | None = None, paper: bool = False,
                        **options) -> keras.Model:
    """Build a belief-map model of ``family`` (``"cpm"``, ``"simplebaseline"``,
    ``"hourglass"`` or ``"hrnet"``).

    Args:
        stages: CPM stages or hourglass stacks; SimpleBaselines has one (``None`` or 1).
        backbone: the family's backbone (``None``: its default); the hourglass has none.
        paper: the builder's own defaults (the paper's model); ``False`` adds the
            family's :data:`RECIPES` under ``options``.
        **options: the builder's keyword arguments (``input_size``, ``width``, ``sigma``,
            ``margin``, ``learning_rate`` ...); they win over the recipe.
    """
    if family not in HEATMAP_BUILDERS:
        raise ValueError(f"unknown heatmap model family {family!r}; expected one of "
                         f"{sorted(HEATMAP_BUILDERS)}")
    if family == "cpm":
        extra = {"stages": stages} if stages is not None else {}
        extra["backbone"] = backbone or DEFAULT_BACKBONES["cpm"]
    elif family == "hourglass":
        if backbone not in (None, "hourglass"):
            raise ValueError(f"the hourglass has no backbone option, got {backbone!r}")
        extra = {"stacks": stages} if stages is not None else {}
    elif family == "hrnet":
        if backbone not in (None, "hrnet"):
            raise ValueError(f"HRNet is its own backbone; it has no backbone option, got "
                             f"{backbone!r}")
        if stages not in (None, 1):
            raise ValueError(f"HRNet has one output stage, got stages={stages} (its "
                             "branches and modules are options: branches=, modules=)")
        extra = {}
    else:
        if stages not in (None, 1):
            raise ValueError(f"SimpleBaselines has one stage, got stages={stages}")
        extra = {"backbone": backbone or DEFAULT_BACKBONES["simplebaseline"]}
    recipe = {} if paper else RECIPES[family]
    return HEATMAP_BUILDERS[family](skeleton, **extra, **{**recipe, **options})
