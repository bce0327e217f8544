"""Train a tiny CPM and SIGKILL this process at one instant of its second checkpoint
commit (tests/test_run_folders.py). Usage: ``kill_worker.py ANNOTATIONS RUN_DIR POINT``.

POINTs: ``mid-model`` (the epoch's model file half written), ``before-manifest`` (the
model files complete, ``state.json`` not yet renamed), ``after-manifest`` (the manifest
committed, the old files and the ``last.keras`` link not yet updated).
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
commits = {"state": 0}
real_replace = os.replace
real_save = keras.Model.save


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def replace(source, target, *args, **kwargs):
    name = os.path.basename(str(target))
    if name == "state.json":
        commits["state"] += 1
        if point == "before-manifest" and commits["state"] == 2:
            die()
    real_replace(source, target, *args, **kwargs)
    if point == "after-manifest" and name == "state.json" and commits["state"] == 2:
        die()


def save(self, filepath, *args, **kwargs):
    if point == "mid-model" and commits["state"] == 1 and "last.e0002" in str(filepath):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        die()
    return real_save(self, filepath, *args, **kwargs)


os.replace = replace
keras.Model.save = save
people = LoadedData("synthetic:8:5", read_coco(annotations), COCO_17)
train("cpm", people, out_dir=run_dir, epochs=3, input_size=64, stages=2, width=0.25,
      batch_size=4, steps_per_epoch=2, strategy="default", verbose=0)
