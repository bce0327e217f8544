"""Anchor benchmark: kpose's shipped models against MediaPipe BlazePose on lspet_bench val.

Protocol (kept fixed so that numbers compare across runs):

- Data: lspet_bench val, images im04001-im04500 (500 persons, one per image, 14 LSP
  joints).
- BlazePose: ``mediapipe==0.10.21`` (the last version with the legacy Solutions models),
  ``mediapipe.solutions.pose.Pose(static_image_mode=True, model_complexity=1)`` on each
  whole RGB image, as a user would call it; it is given no box. Its landmarks are mapped by
  name onto LSP's 12 limb joints (ankles, knees, hips, wrists, elbows, shoulders; the
  person's own left and right in both). BlazePose has no neck or head top, so those two
  LSP joints are left out for every model.
- kpose: every shipped model (``kpose.pretrained``), plus any ``--model``, each given the
  person's true box and cropped and decoded as ``kpose evaluate`` does; also with flip
  averaging (``kpose evaluate --flip``) unless ``--no-flip``.
- Metric: PCK@0.1 and PCK@0.2 of the 12 limb joints, normalised by the true torso
  (``kpose.metrics.pck`` on the LSP skeleton; persons without both torso joints are not
  scored). Two groups of persons: *found*, those BlazePose finds, and *all* 500, where a
  person BlazePose misses has all its joints at the centre of its true box.

BlazePose runs in a virtual environment of its own (mediapipe needs numpy<2 and
protobuf 4, which kpose's environment cannot hold): ``<cache>/kpose-anchor-mediapipe``,
where ``<cache>`` is ``$KPOSE_CACHE`` or ``~/.cache/kpose``. The first run creates it and
installs mediapipe into it (about a minute, from PyPI); ``anchor_blazepose_worker.py``
then runs there. Its landmarks are cached under ``<cache>/anchors/``, keyed by the images'
bytes and the mediapipe settings, so later runs only repeat the kpose side.

    python benchmarks/anchors.py

Prints a markdown table and writes ``benchmarks/results/anchors.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_data import DEFAULT_LSPET_BENCH, REPO  # noqa: E402  (beside this script)

MEDIAPIPE = "0.10.21"
VENV_NAME = "kpose-anchor-mediapipe"
WORKER = Path(__file__).resolve().parent / "anchor_blazepose_worker.py"
# BlazePose landmark index for each of LSP's 12 limb joints, in LSP order: right ankle,
# right knee, right hip, left hip, left knee, left ankle, right wrist, right elbow,
# right shoulder, left shoulder, left elbow, left wrist (LSP 12 neck, 13 head top: none).
BLAZEPOSE_FOR_LSP = (28, 26, 24, 23, 25, 27, 16, 14, 12, 11, 13, 15)
LIMBS = len(BLAZEPOSE_FOR_LSP)
ALPHAS = (0.1, 0.2)
PROTOCOL = (
    "lspet_bench val (im04001-im04500, 500 persons). BlazePose: mediapipe Solutions Pose "
    "(static_image_mode=True, model_complexity=1, other settings default) on each whole "
    "RGB image, no box; landmarks mapped by name to LSP's 12 limb joints. kpose models: "
    "given each person's true box, cropped and decoded as kpose evaluate does (+ flip: "
    "flip averaging). Metric: PCK@0.1 / PCK@0.2 over the 12 limb joints (LSP neck and head "
    "top left out), torso-normalised (kpose.metrics.pck, LSP skeleton). found: the persons "
    "BlazePose finds; all: every person, one BlazePose misses scored with all its joints "
    "at the centre of its true box.")


class AnchorError(Exception):
    """A failure the user can act on, reported as one line."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="PATH_OR_RUN",
                        help="also score this run folder or .keras file (repeatable)")
    parser.add_argument("--no-flip", dest="flip", action="store_false",
                        help="leave out the flip-averaged rows of the kpose models")
    parser.add_argument("--lspet-bench", type=Path, default=DEFAULT_LSPET_BENCH)
    parser.add_argument("--cache", type=Path, help="where the mediapipe environment and "
                        "the landmarks go (default: $KPOSE_CACHE or ~/.cache/kpose)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/anchors.json")
    args = parser.parse_args()
    try:
        return run(args)
    except AnchorError as error:
        print(f"anchors: {error}", file=sys.stderr)
        return 1


def run(args) -> int:
    started = time.perf_counter()
    records = val_records(args.lspet_bench)
    from kpose.data.specs import cache_dir

    cache = args.cache or cache_dir()
    truth = np.stack([r.keypoints for r in records])
    landmarks, blaze_seconds = blazepose_landmarks(records, cache)
    found = np.array([points is not None for points in landmarks])
    rows = [{"name": f"BlazePose (mediapipe {MEDIAPIPE})", "seconds": blaze_seconds,
             **scores(blazepose_as_lsp(landmarks, records), truth, found)}]
    from kpose.zoo import pretrained_names

    models = [(name, f"pretrained:{name}") for name in pretrained_names()]
    models += [(Path(path).name, path) for path in args.model]
    for name, path in models:
        for flip in (False, True) if args.flip else (False,):
            tic = time.perf_counter()
            keypoints = kpose_keypoints(path, records, flip)
            if keypoints is None:
                continue  # flip averaging applies to belief-map models only
            rows.append({"name": name + (" + flip" if flip else ""),
                         "seconds": round(time.perf_counter() - tic, 1),
                         **scores(keypoints, truth, found)})
    print(table(rows, int(found.sum()), len(records)))
    report = {"benchmark": "anchors", "protocol": PROTOCOL, "mediapipe": MEDIAPIPE,
              "persons": len(records), "found": int(found.sum()),
              "joints": list(limb_names()),
              "results": rows, "seconds": round(time.perf_counter() - started, 1)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def val_records(lspet_bench: Path) -> list:
    """The 500 persons of lspet_bench val."""
    mat, images = lspet_bench / "joints_val.mat", lspet_bench / "images"
    if not mat.is_file() or not images.is_dir():
        raise AnchorError(f"lspet_bench not found at {lspet_bench} (expected joints_val.mat "
                          "and images/); give its folder with --lspet-bench")
    from kpose.data import read_lsp

    return read_lsp(mat, images, variant="lspet", first_index=4001)


def limb_names() -> tuple[str, ...]:
    from kpose.skeletons import LSP_14

    return LSP_14.joint_names[:LIMBS]


# --- BlazePose ---------------------------------------------------------------------------


def blazepose_landmarks(records, cache: Path) -> tuple[list, float]:
    """Per record ``None`` (no person found) or ``(33, 3)`` pixel x, y, visibility, and
    the seconds BlazePose took; read from the cache when these images were run before."""
    digest = hashlib.sha256(f"mediapipe {MEDIAPIPE} complexity 1 static".encode())
    for record in records:
        digest.update(Path(record.image_path).name.encode())
        digest.update(Path(record.image_path).read_bytes())
    cached = cache / "anchors" / f"blazepose-{digest.hexdigest()[:20]}.json"
    if not cached.is_file():
        python = mediapipe_python(cache / VENV_NAME)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            listing, out = Path(scratch) / "images.txt", Path(scratch) / "landmarks.json"
            listing.write_text("".join(f"{Path(r.image_path).resolve()}\n" for r in records))
            print(f"running BlazePose on {len(records)} images ...", file=sys.stderr)
            done = subprocess.run([str(python), str(WORKER), str(listing), str(out)],
                                  capture_output=True, text=True)
            if done.returncode != 0 or not out.is_file():
                raise AnchorError(f"the BlazePose worker failed: {last_line(done.stderr)}")
            os.replace(out, cached)
    result = json.loads(cached.read_text())
    if len(result["landmarks"]) != len(records):
        raise AnchorError(f"{cached} does not match the data; delete it and run again")
    return ([None if p is None else np.asarray(p, np.float64) for p in result["landmarks"]],
            result["seconds"])


def mediapipe_python(venv: Path) -> Path:
    """The Python of the virtual environment holding mediapipe, created when missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import mediapipe; print(mediapipe.__version__)"]
    if python.is_file():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == MEDIAPIPE:
            return python
    print(f"creating {venv} and installing mediapipe=={MEDIAPIPE} (about a minute) ...",
          file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise AnchorError(f"could not create a virtual environment at {venv}: "
                          f"{last_line(done.stderr)}")
    log = venv / "pip-install.log"
    with log.open("w") as out:
        done = subprocess.run([str(python), "-m", "pip", "install", f"mediapipe=={MEDIAPIPE}",
                               "numpy<2", "scipy", "pillow"], stdout=out,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise AnchorError(f"installing mediapipe=={MEDIAPIPE} into {venv} failed; see {log}")
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        raise AnchorError(f"mediapipe does not import in {venv}: {last_line(done.stderr)}")
    return python


def blazepose_as_lsp(landmarks: list, records) -> np.ndarray:
    """``(N, 14, 2)`` BlazePose joints in LSP order; neck and head top (never scored) and
    every joint of a person BlazePose misses are at the centre of the true box."""
    centres = np.array([(x + w / 2, y + h / 2) for x, y, w, h in (r.box for r in records)])
    joints = np.repeat(centres[:, None, :], records[0].keypoints.shape[0], axis=1)
    for n, points in enumerate(landmarks):
        if points is not None:
            joints[n, :LIMBS] = points[list(BLAZEPOSE_FOR_LSP), :2]
    return joints


# --- kpose -------------------------------------------------------------------------------


def kpose_keypoints(path: str, records, flip: bool) -> np.ndarray | None:
    """``(N, 14, 3)`` keypoints of the kpose model at ``path`` given each true box, as
    ``kpose evaluate`` computes them; ``None`` for ``flip`` on a model without belief
    maps."""
    from kpose.inference import predict_stage_keypoints
    from kpose.models.card import describe, stage_outputs
    from kpose.prediction import inference_model, predict
    from kpose.runs import load_run_model
    from kpose.skeletons import LSP_14

    try:
        model, _ = load_run_model(path)
    except (FileNotFoundError, ValueError) as error:
        raise AnchorError(str(error)) from None
    if stage_outputs(model) and describe(model).codec.kind == "belief_maps":
        stages = predict_stage_keypoints(model, records, LSP_14, flip=flip)
        return stages[stage_outputs(model)[-1]]
    if flip:
        return None
    return predict(inference_model(model), [r.image_path for r in records],
                   [r.box for r in records])


# --- scoring -----------------------------------------------------------------------------


def scores(predicted: np.ndarray, truth: np.ndarray, found: np.ndarray) -> dict:
    """PCK of the 12 limb joints on the found persons and on all, and on all per joint."""
    from kpose.metrics import pck
    from kpose.skeletons import LSP_14

    predicted = np.asarray(predicted, np.float64)[..., :2]
    result = {}
    for group, rows in (("found", found), ("all", np.ones_like(found))):
        values = {}
        for alpha in ALPHAS:
            counts = pck(predicted[rows], truth[rows], LSP_14, alpha=alpha)
            correct, total = sum(counts.correct[:LIMBS]), sum(counts.total[:LIMBS])
            values[f"PCK@{alpha:g}"] = round(100 * correct / total, 2)
        result[group] = {"persons": int(rows.sum()), "joints": total, **values}
    per_joint = pck(predicted, truth, LSP_14, alpha=0.2).per_part
    result["all"]["PCK@0.2 per joint"] = {name: round(100 * per_joint[name], 1)
                                          for name in limb_names()}
    return result


def table(rows: list, found: int, persons: int) -> str:
    """The results as a markdown table."""
    lines = [f"| model | found ({found}/{persons}) PCK@0.1 | found PCK@0.2 "
             f"| all ({persons}) PCK@0.1 | all PCK@0.2 |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        cells = [f"{row[g][f'PCK@{a:g}']:.1f}" for g in ("found", "all") for a in ALPHAS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def last_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


if __name__ == "__main__":
    sys.exit(main())
