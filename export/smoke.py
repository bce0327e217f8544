"""Run exported files once each, as a child process of the export's verification.

LiteRT and onnxruntime are native code: a file that makes one of them abort would take
``kpose-export`` down with it, without a message. The verification therefore runs every
file once here first (:func:`export.verify.check_files_run`); this process prints
``ran NAME`` after each file that ran, so the parent can name the one that did not.

    python -m export.smoke IMAGE.npy FILE [FILE ...]

``IMAGE.npy``: one ``(1, H, W, 3)`` float32 image, 0..255.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from kpose.runtime import raw_runner


def main(argv: list[str]) -> int:
    image = np.load(argv[0])
    for path in argv[1:]:
        raw_runner(path, threads=1)(image)
        print(f"ran {Path(path).name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
