"""Training from one call: ``kpose.train(model="cpm", data=..., out_dir=...)``, for every
family: the belief-map models (:mod:`kpose.training.run`) and the DeepPose cascade
(:mod:`kpose.training.cascade`) share the strategy, run folder, checkpoints and resume.

A run folder holds everything about one training run:

```
RUN_DIR/
  config.json            how to rebuild the model and the data pipeline
  checkpoints/state.json the manifest: epoch counter, best value and the two files below
  checkpoints/last.eNNNN.keras  model + optimiser state after the latest epoch
  checkpoints/best.eNNNN.keras  the epoch with the best validation PCK@0.2 (or lowest loss)
  checkpoints/last.keras, best.keras  links to those two files
  model.keras            the final model
  stages/                DeepPose: each finished stage and its refiner's error distribution
  metrics.csv            one row of losses and validation metrics per epoch
  logs/                  TensorBoard
```

Every file is written under a temporary name and renamed, and a checkpoint is committed
by its manifest (:mod:`kpose.checkpoints`), so a run killed at any moment resumes exactly.
Nothing in the folder changes before the run is known to be valid, and a run that fails
before its first checkpoint leaves the folder as it found it.
"""

from kpose.runs import RunConfig, load_model, load_run_model
from kpose.training.callbacks import EpochSummaries, RunCheckpoint, ValidationPCK, ValidationPDJ
from kpose.training.cascade import DeepPoseTraining, train_deeppose_cascade
from kpose.training.run import MODELS, mixed_precision_policy, train

__all__ = ["train", "train_deeppose_cascade", "DeepPoseTraining", "mixed_precision_policy",
           "MODELS", "RunConfig", "load_model", "load_run_model", "ValidationPCK",
           "ValidationPDJ", "EpochSummaries", "RunCheckpoint"]
