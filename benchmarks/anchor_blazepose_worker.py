"""Run MediaPipe BlazePose on whole images and write its 33 landmarks per image as JSON.

The BlazePose half of ``benchmarks/anchors.py``, which runs it with the Python of a
separate virtual environment (``mediapipe==0.10.21`` needs numpy<2 and protobuf 4, which
kpose's own environment cannot hold). It imports only numpy, Pillow and mediapipe, never
kpose.

    python anchor_blazepose_worker.py IMAGE_LIST OUT_JSON

``IMAGE_LIST`` is a text file of image paths, one per line. ``OUT_JSON`` gets
``{"mediapipe": version, "model_complexity": 1, "seconds": ..., "landmarks": [...]}``
with one entry per image, in order: ``null`` when BlazePose finds no person, else 33
``[x, y, visibility]`` in 0-based pixel-centre coordinates (MediaPipe's normalised
``x * width`` measures from the image's left edge, so half a pixel is subtracted).
"""

from __future__ import annotations

import json
import sys
import time

import mediapipe as mp
import numpy as np
from PIL import Image

MODEL_COMPLEXITY = 1


def landmarks(pose, path: str) -> list | None:
    """BlazePose's 33 ``[x, y, visibility]`` on the whole RGB image at ``path``, or
    ``None`` when it finds nobody."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    height, width = rgb.shape[:2]
    found = pose.process(rgb).pose_landmarks
    if found is None:
        return None
    return [[p.x * width - 0.5, p.y * height - 0.5, p.visibility] for p in found.landmark]


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: anchor_blazepose_worker.py IMAGE_LIST OUT_JSON", file=sys.stderr)
        return 2
    with open(sys.argv[1]) as listing:
        paths = [line.strip() for line in listing if line.strip()]
    started = time.perf_counter()
    # Defaults otherwise (detection confidence 0.5), as a user calls it on photos.
    with mp.solutions.pose.Pose(static_image_mode=True,
                                model_complexity=MODEL_COMPLEXITY) as pose:
        found = [landmarks(pose, path) for path in paths]
    result = {"mediapipe": mp.__version__, "model_complexity": MODEL_COMPLEXITY,
              "seconds": round(time.perf_counter() - started, 2), "landmarks": found}
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
