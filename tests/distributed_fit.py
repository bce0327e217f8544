"""Subprocess for test_distribute.py: train the same run on one device and mirrored over
two logical CPU devices, print both loss curves as JSON.

Usage: ``distributed_fit.py DATA_DIR [MODEL]`` with MODEL ``cpm`` (default) or ``deeppose``
(two stages; without dropout, whose masks are drawn per replica and so differ from one
device's by design)."""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from kpose.data import read_coco  # noqa: E402
from kpose.data.specs import LoadedData  # noqa: E402
from kpose.skeletons import COCO_17  # noqa: E402
from kpose.training import train  # noqa: E402

records = read_coco(os.path.join(sys.argv[1], "person_keypoints.json"))
data = LoadedData("synthetic", records, COCO_17)
model = sys.argv[2] if len(sys.argv) > 2 else "cpm"
settings = dict(epochs=4) if model == "cpm" else dict(epochs=2, sigma=2.0, crops_per_sample=2,
                                                       dropout=0.0)
curves = {}
with tempfile.TemporaryDirectory() as scratch:
    for strategy in ("default", "mirrored"):
        _, history = train(model, data, out_dir=os.path.join(scratch, strategy),
                           steps_per_epoch=2, batch_size=8, input_size=64, stages=2,
                           width=0.25, strategy=strategy, verbose=0, **settings)
        curves[strategy] = history["loss"]
print("CURVES " + json.dumps(curves))
