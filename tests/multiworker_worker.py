"""One worker of test_multiworker.py. Usage: multiworker_worker.py DATA_DIR RUN_DIR OUT.npz

TF_CONFIG (set by the test) names the cluster and this worker. Trains a tiny CPM with
strategy "multiworker", then saves its weights and loss curve to OUT.npz."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kpose.data import read_coco  # noqa: E402
from kpose.data.specs import LoadedData  # noqa: E402
from kpose.skeletons import COCO_17  # noqa: E402
from kpose.training import train  # noqa: E402

data_dir, run_dir, out = sys.argv[1:4]
records = read_coco(os.path.join(data_dir, "person_keypoints.json"))
model, history = train("cpm", LoadedData("synthetic", records, COCO_17), out_dir=run_dir,
                       epochs=2, steps_per_epoch=2, batch_size=4, input_size=64, stages=2,
                       width=0.25, strategy="multiworker", verbose=0)
np.savez(out, loss=np.array(history["loss"]),
         **{f"w{i}": np.asarray(w) for i, w in enumerate(model.weights)})
print("DONE " + json.dumps(history["loss"]))
