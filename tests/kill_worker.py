"""Train a tiny run and SIGKILL this process at one instant of one of its checkpoint
commits (tests/test_run_folders.py).

Usage: ``kill_worker.py ANNOTATIONS RUN_DIR POINT [MODEL [COMMIT]]``: MODEL ``cpm``
(default; 3 epochs) or ``deeppose`` (2 stages of 2 epochs: commits 1-2 train stage 1,
3-4 the refiner), killed in commit number COMMIT (default 2).

POINTs: ``mid-model`` (the epoch's model file half written), ``before-manifest`` (the
model files complete, ``state.json`` not yet renamed), ``after-manifest`` (the manifest
committed, the old files and the ``last.keras`` link not yet updated; for the last
commit of a DeepPose stage, also before the finished stage is saved in ``stages/``).
"""

import os
import signal
import sys

import keras

from kpose.data.specs import LoadedData
from kpose.data import read_coco
from kpose.skeletons import COCO_17
from kpose.training import train

annotations, run_dir, point = sys.argv[1:4]
model = sys.argv[4] if len(sys.argv) > 4 else "cpm"
kill_at = int(sys.argv[5]) if len(sys.argv) > 5 else 2
commits = {"state": 0}
real_replace = os.replace
real_save = keras.Model.save


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def replace(source, target, *args, **kwargs):
    name = os.path.basename(str(target))
    if name == "state.json":
        commits["state"] += 1
        if point == "before-manifest" and commits["state"] == kill_at:
            die()
    real_replace(source, target, *args, **kwargs)
    if point == "after-manifest" and name == "state.json" and commits["state"] == kill_at:
        die()


def save(self, filepath, *args, **kwargs):
    if point == "mid-model" and commits["state"] == kill_at - 1 and \
            f"last.e{kill_at:04d}" in str(filepath):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        die()
    return real_save(self, filepath, *args, **kwargs)


os.replace = replace
keras.Model.save = save
people = LoadedData("synthetic:8:5", read_coco(annotations), COCO_17)
if model == "deeppose":
    train("deeppose", people, out_dir=run_dir, epochs=2, input_size=64, stages=2, width=0.25,
          batch_size=4, steps_per_epoch=2, sigma=2.0, crops_per_sample=2, strategy="default",
          verbose=0)
else:
    train("cpm", people, out_dir=run_dir, epochs=3, input_size=64, stages=2, width=0.25,
          batch_size=4, steps_per_epoch=2, strategy="default", verbose=0)
