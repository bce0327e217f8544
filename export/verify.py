"""Check every exported file against the Keras graph it came from, on held-out images.

For each file: the largest and mean keypoint distance to Keras in input pixels, PCK@0.2
(torso) of the file next to Keras's, the file size, and the median latency over single-
image runs on this machine (LiteRT with 1 thread and with all threads; onnxruntime),
next to Keras's own. Files run through :func:`kpose.runtime.raw_runner`, the loader
``kpose predict`` uses: LiteRT (``ai_edge_litert``), never the deprecated
``tf.lite.Interpreter``, whose default XNNPACK delegate has returned wrong int8 results.

The acceptance criteria (:data:`CRITERIA`): float32 TFLite and ONNX within 0.01 px of
Keras, float16 within 0.5 px, int8 and dynamic-range PCK@0.2 within 2 points of Keras's.

Float16 and ties. Where two belief-map pixels hold (nearly) the same top value, the
arg-max is decided by the last bits, and any change to the weights, float16 rounding
included, may move that keypoint to the other pixel's sub-pixel estimate (measured: a
1 px jump between two pixels tied to 5 digits, in Keras alone with its weights rounded to
float16). No export can keep such a keypoint, so the float16 check runs Keras once more
with its weights rounded to float16: keypoints that this alone moves by more than the
limit are reported as ``ties`` and left out of ``max_px_untied``, which is held to the
limit. So are keypoints the file moves to a peak of the same height: the file's score
within :data:`TIE_SCORE_TOLERANCE` of Keras's (measured: a 26.6 px jump between two peaks
of a MobileNetV2 heatmap that rounding in Keras did not flip, but LiteRT's summation
order did). Ties may be at most :data:`MAX_TIE_FRACTION` of the keypoints; a broken
conversion moves keypoints that rounding does not, to peaks of other heights, and fails.

Flat maps. On the nearly flat maps of a barely trained model the sub-pixel step, which
divides by the peak's curvature, turns float noise into keypoint motion (measured: 0.054
px between ONNX and Keras for a CPM after one epoch, where 0.01 px is the limit). The
float32 and ONNX checks therefore widen the limit of a keypoint whose peak is low
(:func:`peak_tolerances`), and the report counts the keypoints so judged. A wrong
conversion moves keypoints by pixels, far past the widened limits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import ExportError
from kpose.runtime import raw_runner, to_input_pixels

__all__ = ["ExportedFile", "verify_exports", "check_files_run", "format_report",
           "peak_tolerances", "CRITERIA"]

FRAME_NAMES = {"pixels": "input_pixels", "fraction": "input_fraction"}
# quantisation -> (measure, limit): "max_px" in input pixels, "pck_points" in PCK points.
CRITERIA = {"none": ("max_px", 0.01), "onnx": ("max_px", 0.01), "float16": ("max_px", 0.5),
            "dynamic": ("pck_points", 2.0), "int8": ("pck_points", 2.0)}
RAW_CRITERIA = {"none": 1e-3, "onnx": 1e-3, "float16": 0.05}
# 5 %: a one-epoch mobile CPM's nearly flat maps showed 4 ties in 272 keypoints (1.5 %)
# on a correct file on one processor (AVX-512), 10 (3.7 %) on another (AVX2 only); a
# broken conversion moves most keypoints
MAX_TIE_FRACTION = 0.05
TIE_SCORE_TOLERANCE = 0.01  # relative to Keras's score
# Float32 and ONNX on flat maps: a keypoint whose Keras score (its map's peak, where a
# target peaks at 1) is below SHARP_PEAK has its limit widened by SHARP_PEAK / score, at
# most MAX_WIDENING times. The sub-pixel step divides by the peak's curvature, which
# scales with its height, so float noise moves a keypoint in inverse proportion to it.
SHARP_PEAK = 0.5
MAX_WIDENING = 100.0


@dataclass
class ExportedFile:
    """One file to verify.

    Attributes:
        name: file name in the export folder.
        path: where it is now.
        format: ``"tflite"`` or ``"onnx"``.
        quantization: ``"none"``, ``"float16"``, ``"dynamic"`` or ``"int8"``.
        reference: the Keras graph it was converted from.
        frame: ``"pixels"`` or ``"fraction"`` for keypoint outputs, ``None`` for raw.
    """

    name: str
    path: os.PathLike
    format: str
    quantization: str
    reference: object
    frame: str | None


def verify_exports(files: list[ExportedFile], images, *, skeleton, input_size,
                   latency_runs: int = 50) -> dict:
    """Run every file and its Keras graph on ``images.verification``; return the report.

    Args:
        files: the exported files.
        images: :class:`~export.calibration.ExportImages` (``truth`` may be ``None``: then
            no PCK).
        skeleton: the model's skeleton (PCK's torso joints).
        input_size: ``(H, W)``.
        latency_runs: single-image runs per latency measurement (median reported).
    """
    from kpose.metrics import pck

    batch = images.verification
    truth = images.truth
    check_files_run([item.path for item in files], batch[:1])
    keras_outputs: dict[int, np.ndarray] = {}
    keras_latency: dict[int, float] = {}
    rows = []
    for item in files:
        model_key = id(item.reference)
        if model_key not in keras_outputs:
            keras_outputs[model_key] = np.asarray(item.reference.predict(batch, batch_size=16,
                                                                         verbose=0), np.float32)
            keras_latency[model_key] = _keras_latency(item.reference, batch[:1], latency_runs)
        reference = keras_outputs[model_key]
        runner = raw_runner(item.path, threads=1)
        outputs = np.stack([runner(image[None])[0] for image in batch])
        row = {"file": item.name, "format": item.format, "quantization": item.quantization,
               "size_bytes": os.path.getsize(item.path)}
        if item.frame is not None:
            frame = FRAME_NAMES[item.frame]
            expected = to_input_pixels(reference, frame, input_size)
            found = to_input_pixels(outputs, frame, input_size)
            distance = np.linalg.norm(found[..., :2] - expected[..., :2], axis=-1)
            row.update(max_px=float(distance.max()), mean_px=float(distance.mean()),
                       max_score_difference=float(np.abs(found[..., 2] - expected[..., 2])
                                                  .max()))
            criterion = "onnx" if item.format == "onnx" else item.quantization
            if CRITERIA[criterion][0] == "max_px" and criterion != "float16":
                tolerance = peak_tolerances(expected[..., 2], CRITERIA[criterion][1])
                row.update(keypoints=int(distance.size),
                           flat=int((tolerance > CRITERIA[criterion][1]).sum()),
                           max_excess=float((distance / tolerance).max()))
            if item.quantization == "float16":
                rounded = to_input_pixels(_with_float16_weights(item.reference, batch), frame,
                                          input_size)
                ties = float16_ties(distance, found[..., 2], expected[..., 2],
                                    np.linalg.norm(rounded[..., :2] - expected[..., :2],
                                                   axis=-1))
                row.update(keypoints=int(distance.size), ties=int(ties.sum()),
                           max_px_untied=float(distance[~ties].max(initial=0.0)))
            if truth is not None:
                row["pck@0.2"] = 100.0 * pck(found, truth, skeleton, alpha=0.2).value
                row["keras_pck@0.2"] = 100.0 * pck(expected, truth, skeleton, alpha=0.2).value
                row["pck_points"] = abs(row["pck@0.2"] - row["keras_pck@0.2"])
        else:
            difference = np.abs(outputs - reference)
            row.update(max_abs=float(difference.max()), mean_abs=float(difference.mean()))
        row["latency_ms"] = _file_latency(item, batch[:1], latency_runs)
        row["keras_latency_ms"] = keras_latency[model_key]
        row["check"] = _check(row, item)
        rows.append(row)
    return {"verification_images": int(len(batch)), "data": images.spec,
            "latency_runs": int(latency_runs), "cpu_threads": os.cpu_count(),
            "files": rows}


def check_files_run(paths: list[os.PathLike], image: np.ndarray, *,
                    timeout: float = 900.0) -> None:
    """Run every file once on ``image`` (``(1, H, W, 3)`` float32, 0..255) in a child
    process (:mod:`export.smoke`) before this process runs them.

    Raises:
        ExportError: naming the first file whose runtime ended the child (a native abort
            or crash), or the child's last error line.
    """
    if not paths:
        return
    with tempfile.TemporaryDirectory(prefix="kpose-smoke-") as scratch:
        image_path = Path(scratch) / "image.npy"
        np.save(image_path, np.asarray(image, np.float32))
        try:
            child = subprocess.run(_smoke_command(image_path, paths), capture_output=True,
                                   text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise ExportError(f"running the exported files took over {timeout:g} s in a "
                              "test process; nothing was written to --out") from error
    if child.returncode == 0:
        return
    ran = {line[4:] for line in child.stdout.splitlines() if line.startswith("ran ")}
    failing = next((Path(p).name for p in paths if Path(p).name not in ran), "a file")
    if child.returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-child.returncode).name}"
        except ValueError:
            how = f"was killed by signal {-child.returncode}"
    else:
        lines = child.stderr.strip().splitlines()
        how = f"failed ({lines[-1] if lines else f'exit status {child.returncode}'})"
    raise ExportError(f"{failing}: its runtime {how} while running the file once on a "
                      "verification image; nothing was written to --out")


def _smoke_command(image_path: Path, paths) -> list[str]:
    # Not ``-m export.smoke``: that puts the working folder first on the child's path, where
    # a user's own ``export`` package would shadow this one.
    code = ("import sys; sys.path.pop(0); from export.smoke import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, str(image_path), *map(str, paths)]


def format_report(report: dict) -> str:
    """The verification report as a table (one row per file, then Keras)."""
    header = (f"{'file':22s} {'quant':8s} {'size':>9s} {'max px':>8s} {'mean px':>8s} "
              f"{'PCK':>6s} {'Keras':>6s} {'LiteRT 1t':>10s} {'all':>8s} {'ORT':>8s} "
              f"{'Keras':>8s}  check")
    lines = [f"verification on {report['verification_images']} held-out images of "
             f"{report['data']} (latency: median of {report['latency_runs']} single-image "
             f"runs, {report['cpu_threads']} CPU threads)", header]
    if report.get("keras_taylor_pck@0.2") is not None:
        lines.insert(1, f"(Keras with the exact 'taylor' decoder: PCK@0.2 "
                        f"{report['keras_taylor_pck@0.2']:.1f})")
    for row in report["files"]:
        latency = row["latency_ms"]
        if "max_px" in row:
            accuracy = f"{row['max_px']:8.4f} {row['mean_px']:8.4f}"
        else:
            accuracy = f"{row['max_abs']:8.2e} {row['mean_abs']:8.2e}"
        pck = (f"{row['pck@0.2']:6.1f} {row['keras_pck@0.2']:6.1f}" if "pck@0.2" in row
               else f"{'-':>6s} {'-':>6s}")
        check = row["check"]
        verdict = ("ok" if check["passed"] else "FAILED") if check["passed"] is not None \
            else "-"
        lines.append(
            f"{row['file']:22s} {row['quantization']:8s} {_size(row['size_bytes']):>9s} "
            f"{accuracy} {pck} {_ms(latency.get('litert_1_thread')):>10s} "
            f"{_ms(latency.get('litert_all_threads')):>8s} "
            f"{_ms(latency.get('onnxruntime')):>8s} {_ms(row['keras_latency_ms']):>8s}  "
            f"{verdict} ({check['criterion']})")
    return "\n".join(lines)


def float16_ties(distance: np.ndarray, scores: np.ndarray, keras_scores: np.ndarray,
                 rounding_distance: np.ndarray) -> np.ndarray:
    """Which keypoints of a float16 file sit on a (near) tie of two heatmap peaks.

    Args:
        distance: ``(N, K)`` input pixels between the file's keypoints and Keras's.
        scores, keras_scores: ``(N, K)`` the file's and Keras's keypoint scores.
        rounding_distance: ``(N, K)`` input pixels that rounding Keras's own weights to
            float16 moves its keypoints.

    Returns:
        ``(N, K)`` bool: keypoints that rounding alone moves beyond the float16 limit, or
        that the file moves beyond it to a peak whose score is within
        :data:`TIE_SCORE_TOLERANCE` (relative) of Keras's.
    """
    limit = CRITERIA["float16"][1]
    same_height = np.abs(scores - keras_scores) <= \
        TIE_SCORE_TOLERANCE * np.maximum(np.abs(keras_scores), 1e-6)
    return (rounding_distance > limit) | ((distance > limit) & same_height)


def peak_tolerances(scores: np.ndarray, limit: float) -> np.ndarray:
    """Per-keypoint distance limits in input pixels: ``limit`` where Keras's score (the
    peak of the keypoint's map) is at least :data:`SHARP_PEAK`, else ``limit * SHARP_PEAK
    / score``, at most :data:`MAX_WIDENING` times ``limit``. ``scores`` is ``(N, K)``;
    returns ``(N, K)``."""
    height = np.maximum(np.asarray(scores, np.float64), SHARP_PEAK / MAX_WIDENING)
    return limit * np.clip(SHARP_PEAK / height, 1.0, MAX_WIDENING)


def _check(row: dict, item: ExportedFile) -> dict:
    key = "onnx" if item.format == "onnx" else item.quantization
    if item.frame is None:
        limit = RAW_CRITERIA.get(key)
        if limit is None:
            return {"criterion": "no limit for quantised raw outputs", "passed": None}
        return {"criterion": f"max |difference| <= {limit:g}",
                "passed": bool(row["max_abs"] <= limit)}
    measure, limit = CRITERIA[key]
    if "ties" in row:
        allowed = int(MAX_TIE_FRACTION * row["keypoints"])
        return {"criterion": f"max distance <= {limit:g} px except {row['ties']} ties "
                             f"(at most {allowed})",
                "passed": bool(row["max_px_untied"] <= limit and row["ties"] <= allowed)}
    if measure == "max_px" and "flat" in row:
        widened = (f", widened on {row['flat']} of {row['keypoints']} keypoints with low "
                   "peaks") if row["flat"] else ""
        return {"criterion": f"max distance <= {limit:g} px{widened}",
                "passed": bool(row["max_excess"] <= 1.0)}
    if measure == "max_px":
        return {"criterion": f"max distance <= {limit:g} px",
                "passed": bool(row["max_px"] <= limit)}
    if "pck_points" not in row:
        return {"criterion": "PCK needs data of the model's skeleton", "passed": None}
    return {"criterion": f"PCK@0.2 within {limit:g} points of Keras",
            "passed": bool(row["pck_points"] <= limit)}


def _with_float16_weights(model, images: np.ndarray) -> np.ndarray:
    """``model``'s outputs on ``images`` with its float weights rounded to float16 (what a
    float16 export stores); the weights are put back afterwards."""
    original = model.get_weights()
    rounded = [w.astype(np.float16).astype(w.dtype) if w.dtype.kind == "f" else w
               for w in original]
    try:
        model.set_weights(rounded)
        return np.asarray(model.predict(images, batch_size=16, verbose=0), np.float32)
    finally:
        model.set_weights(original)


def _file_latency(item: ExportedFile, image: np.ndarray, runs: int) -> dict:
    if item.format == "onnx":
        return {"onnxruntime": _median_ms(raw_runner(item.path), image, runs)}
    return {"litert_1_thread": _median_ms(raw_runner(item.path, threads=1), image, runs),
            "litert_all_threads": _median_ms(raw_runner(item.path, threads=os.cpu_count()),
                                             image, runs)}


def _keras_latency(model, image: np.ndarray, runs: int) -> float:
    """Keras float32 on one image through a traced ``tf.function`` (no Python overhead of
    ``predict``), the fair baseline for a deployed file."""
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False))
    tensor = tf.constant(image)
    return _median_ms(lambda x: call(x).numpy(), tensor, runs)


def _median_ms(run, image, runs: int) -> float:
    for _ in range(min(3, runs)):
        run(image)  # warm-up: allocation, tracing, caches
    times = []
    for _ in range(max(1, int(runs))):
        start = time.perf_counter()
        run(image)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _ms(value) -> str:
    return "-" if value is None else f"{value:.2f}ms"


def _size(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"
