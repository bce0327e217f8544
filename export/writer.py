"""One export: model in, a folder of checked files out.

:func:`export_model` is what ``kpose-export`` runs. It writes everything into a temporary
folder beside ``out`` and moves it into place only when every file converted and was
verified, so an interrupted or failed export leaves no half-written folder. The folder::

    out/
      model.tflite   (--tflite) the chosen quantisation, model.json embedded
      model.onnx     (--onnx)   float32, opset >= 13
      model.json     what the files hold (export.metadata)
      report.json    verification (export.verify) and the Edge TPU check (export.edgetpu)

Decoder choice for CPM keypoint exports: ``"taylor"`` (exact, but ARG_MAX/GATHER/LOG: not
int8-convertible, not Edge TPU ops) for float exports; ``"local_centroid"`` (Edge TPU ops
only, see :class:`~kpose.models.layers.HeatmapDecoder`) for int8 and ``--edgetpu``. The
ONNX file of the same export uses the same decoder as the ``.tflite``, so both compute
the same thing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

from export.errors import ExportError

__all__ = ["export_model", "ExportResult", "ARTEFACTS"]

TFLITE_NAME = "model.tflite"
ONNX_NAME = "model.onnx"
ARTEFACTS = (TFLITE_NAME, ONNX_NAME, "model.json", "report.json")


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        out: the export folder.
        files: paths of ``model.tflite`` / ``model.onnx``.
        metadata: the ``model.json`` document.
        report: the ``report.json`` document (verification, Edge TPU check).
        text: the printed report.
    """

    out: Path
    files: list[Path]
    metadata: dict
    report: dict
    text: str = ""
    failed_checks: list[str] = field(default_factory=list)


def export_model(model, out, *, tflite: bool = True, quantize: str = "none",
                 edgetpu: bool = False, onnx: bool = False, calibration_data=None,
                 calibration_samples: int = 200, verify_samples: int = 50,
                 raw_outputs: bool = False, io_type: str = "uint8", decoder: str | None = None,
                 skeleton=None, opset: int = 13, latency_runs: int = 50,
                 overwrite: bool = False, verbose: bool = True) -> ExportResult:
    """Export a kpose model and check every file against Keras.

    Args:
        model: ``.keras`` file, run folder, ``"pretrained:NAME"`` (a model shipped with
            kpose) or ``keras.Model``, of any kpose family.
        out: export folder; must not exist or be empty, or with ``overwrite`` hold only
            a previous export (replaced once the new files are complete and checked).
        tflite: write ``model.tflite``.
        quantize: ``"none"``, ``"float16"``, ``"dynamic"`` or ``"int8"`` (full integer).
        edgetpu: int8 for the Edge TPU: checks the file against the compiler's
            requirements and fails if an op would not map.
        onnx: write ``model.onnx`` (float32).
        calibration_data: data spec or ``LoadedData`` for int8 calibration and for the
            verification images (default: the run's validation data, else synthetic).
        calibration_samples: calibration images.
        verify_samples: verification images (not used for calibration).
        raw_outputs: export belief maps (CPM) or normalised coordinates (DeepPose)
            instead of keypoints.
        io_type: ``"uint8"`` or ``"int8"`` input and output of an int8 file.
        decoder: CPM decoder inside the graph (default: see the module docstring).
        skeleton: optional check: the skeleton the model must carry in its card.
        opset: ONNX opset (>= 13).
        latency_runs: single-image runs per latency median.
        overwrite: replace a previous export in ``out``; without it one is refused.
        verbose: print the report.

    Raises:
        ExportError: with a one-line reason, for every bad input; nothing is left in
            ``out``.
    """
    from export.calibration import default_spec, load_export_images
    from export.graphs import keypoint_graph, load_pose_model, raw_graph
    from export.tflite import IO_TYPES, QUANTIZATIONS, SAVEDMODEL_PREFIX
    from kpose.models.layers import DECODING_METHODS

    if quantize not in QUANTIZATIONS:
        raise ExportError(f"--quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
    if edgetpu:
        if quantize not in ("none", "int8"):
            raise ExportError(f"--edgetpu needs full-integer int8, not --quantize {quantize}")
        tflite, quantize = True, "int8"
    if not (tflite or onnx):
        raise ExportError("nothing to export: pass --tflite and/or --onnx")
    for flag, value, low in (("--calibration-samples", calibration_samples, 1),
                             ("--verify-samples", verify_samples, 1),
                             ("--latency-runs", latency_runs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ExportError(f"{flag} must be an integer >= {low}, got {value!r}")
    if io_type not in IO_TYPES:
        raise ExportError(f"--io-type must be one of {IO_TYPES}, got {io_type!r}")
    if decoder is not None and decoder not in DECODING_METHODS:
        raise ExportError(f"--decoder must be one of {DECODING_METHODS}, got {decoder!r}")
    int8 = tflite and quantize == "int8"
    if int8 and decoder == "taylor":
        raise ExportError("the 'taylor' decoder (ARG_MAX, GATHER, LOG) does not quantise to "
                          "int8; use --decoder local_centroid (the default for int8)")
    out = Path(out)
    _check_out_folder(out, overwrite=overwrite)

    pose = load_pose_model(model, skeleton=skeleton)
    chosen = decoder or ("local_centroid" if int8 else "taylor")
    spec = calibration_data if calibration_data is not None else default_spec(pose.run_config)
    images = load_export_images(spec, pose.skeleton, pose.input_size,
                                samples=calibration_samples, verify=verify_samples,
                                for_int8=int8)
    outputs = "keypoints" if not raw_outputs else (
        "belief_maps" if pose.heatmaps else "normalised_coordinates")

    def graph(frame, for_edgetpu=False, subpixel=False):
        if raw_outputs:
            return raw_graph(pose, edgetpu=for_edgetpu, subpixel=subpixel)
        return keypoint_graph(pose, decoder=chosen, frame=frame, edgetpu=for_edgetpu,
                              subpixel=subpixel)

    out.parent.mkdir(parents=True, exist_ok=True)
    # A killed export leaves its staging folder (and a SavedModel in the temporary
    # folder); the next export cleans those of processes that no longer run.
    clean_stale(out.parent, f".{out.name}.")
    clean_stale(Path(tempfile.gettempdir()), SAVEDMODEL_PREFIX)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".partial",
                                    dir=out.parent))
    # mkdtemp makes an owner-only folder; the export gets what mkdir would have given it.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    try:
        result = _write(pose, images, staging, graph=graph, tflite=tflite, onnx=onnx,
                        quantize=quantize, edgetpu=edgetpu, io_type=io_type, opset=opset,
                        outputs=outputs, decoder=chosen if pose.heatmaps and
                        not raw_outputs else None, latency_runs=latency_runs,
                        progress=verbose)
        _move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    result.out = out
    result.files = [out / path.name for path in result.files]
    if verbose:
        print(result.text)
    return result


def _write(pose, images, folder: Path, *, graph, tflite, onnx, quantize, edgetpu, io_type,
           opset, outputs, decoder, latency_runs, progress=False) -> ExportResult:
    """Convert, describe, verify; every file goes into ``folder`` (``progress``: a bar
    over the int8 calibration images)."""
    from export.edgetpu import check_edgetpu
    from export.metadata import dumps, embed_metadata, file_entry, model_document
    from export.onnx_export import convert_onnx
    from export.tflite import convert_tflite
    from export.verify import ExportedFile, format_report, verify_exports

    keypoints = outputs == "keypoints"
    int8 = quantize == "int8"
    float_graph = graph("pixels")
    entries, exported, converted = {}, [], {}
    report: dict = {}
    if tflite:
        tflite_graph = graph("fraction" if int8 else "pixels", for_edgetpu=edgetpu)
        frame = ("fraction" if int8 else "pixels") if keypoints else None
        # An int8 file gets its transposed convolutions as sub-pixel convolutions (the
        # same function, several times faster in LiteRT's int8 kernels); it is verified
        # and timed against the graph as the model has it.
        converted_graph = graph("fraction", for_edgetpu=edgetpu, subpixel=True) \
            if int8 else tflite_graph
        model = convert_tflite(converted_graph, pose.input_size, quantization=quantize,
                               representative=_calibration(images, progress) if int8
                               else None,
                               io_type=io_type)
        details = _litert_details(model)
        extra = {}
        if int8:
            extra["float_ops"] = _float_ops(model)
        if edgetpu:
            check = check_edgetpu(model)
            report["edgetpu"] = check.as_dict()
            report["edgetpu_text"] = check.format()
            extra["edgetpu"] = {"fully_mapped": check.fully_mapped,
                                "supported_ops": check.supported, "ops": len(check.ops)}
        entries[TFLITE_NAME] = file_entry(
            format="tflite", quantization=quantize, input_detail=details[0],
            output_detail=details[1], frame=_frame_name(frame), extra=extra)
        converted[TFLITE_NAME] = model
        exported.append(ExportedFile(TFLITE_NAME, folder / TFLITE_NAME, "tflite", quantize,
                                     tflite_graph, frame))
    if onnx:
        converted[ONNX_NAME] = convert_onnx(float_graph, pose.input_size, opset=opset)
        entries[ONNX_NAME] = file_entry(format="onnx", quantization="none", input_detail=None,
                                        output_detail=None,
                                        frame=_frame_name("pixels" if keypoints else None),
                                        extra={"opset": int(opset)})
        exported.append(ExportedFile(ONNX_NAME, folder / ONNX_NAME, "onnx", "none",
                                     float_graph, "pixels" if keypoints else None))

    score = None
    if keypoints:
        score = "heatmap_peak" if pose.heatmaps else (
            "deeppose_visibility" if pose.visibility else "deeppose")
    document = model_document(
        model=pose.family, skeleton=pose.skeleton, input_size=pose.input_size,
        outputs=outputs, decoder=decoder, score=score, card=pose.info.get_config(),
        source={"path": pose.source, "run_config": pose.run_config,
                "calibration_data": images.spec if int8 else None,
                "calibration_images": int(len(images.calibration)) if int8 else 0},
        files=entries)
    text = dumps(document)
    for name, content in converted.items():
        if name == TFLITE_NAME:
            content = embed_metadata(content, text)
        (folder / name).write_bytes(content)
    (folder / "model.json").write_text(text)

    report.update(verify_exports(exported, images, skeleton=pose.skeleton,
                                 input_size=pose.input_size, latency_runs=latency_runs))
    if decoder not in (None, "taylor") and images.truth is not None:
        # The file is compared with Keras running the same decoder; this is how far that
        # decoder is from the exact one a float export (and kpose evaluate) uses.
        report["keras_taylor_pck@0.2"] = _taylor_pck(pose, images)
    printed = format_report(report)
    failed = [f"{row['file']}: {row['check']['criterion']}" for row in report["files"]
              if row["check"]["passed"] is False]
    if edgetpu:
        printed = report.pop("edgetpu_text") + "\n\n" + printed
        if not report["edgetpu"]["fully_mapped"]:
            failed.append(f"{TFLITE_NAME}: not every op maps onto the Edge TPU")
    report["decoder"] = decoder
    report["failed_checks"] = failed
    (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        printed += "\nFAILED: " + "; ".join(failed)
    return ExportResult(folder, [folder / name for name in converted], document, report,
                        printed, failed)


def _calibration(images, progress: bool):
    """``images.representative``, with a progress bar over its images when ``progress``:
    the converter runs the float model on every one of them, which takes minutes for a
    large model and many samples."""
    if not progress:
        return images.representative

    def representative():
        from keras.utils import Progbar

        print("calibrating int8 ranges:")
        bar = Progbar(len(images.calibration), unit_name="image")
        for image in images.representative():
            yield image
            bar.add(1)

    return representative


def _taylor_pck(pose, images) -> float:
    from export.graphs import keypoint_graph
    from kpose.metrics import pck

    graph = keypoint_graph(pose, decoder="taylor", frame="pixels")
    keypoints = graph.predict(images.verification, batch_size=16, verbose=0)
    return 100.0 * pck(keypoints, images.truth, pose.skeleton, alpha=0.2).value


def _check_out_folder(out: Path, *, overwrite: bool = False) -> None:
    """Refuse a folder that holds anything but a previous export, and a previous export
    unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    existing = out.absolute().parent  # the files are staged beside --out, then moved in
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"--out {out} cannot be written ({existing} is not a writable "
                          "folder)")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in ARTEFACTS)
        if others:
            raise ExportError(f"--out {out} already holds other files ({', '.join(others[:3])}"
                              f"{', ...' if len(others) > 3 else ''}); choose an empty or new "
                              "folder")
        previous = sorted(p.name for p in out.iterdir() if p.name in ARTEFACTS)
        if previous and not overwrite:
            raise ExportError(f"--out {out} already holds an export ({', '.join(previous)}); "
                              "pass --overwrite to replace it, or choose a new folder")


def clean_stale(folder: Path, prefix: str) -> list[Path]:
    """Remove the folders ``PREFIX<pid>.*`` in ``folder`` (staging folders, previous
    exports being swapped out, SavedModels) whose process ``<pid>`` no longer runs on
    this machine; returns those removed."""
    removed = []
    for path in folder.glob(f"{glob_escape(prefix)}*"):
        rest = path.name[len(prefix):]
        pid = rest.split(".")[0].split("-")[-1]
        if not path.is_dir() or not pid.isdigit() or _running(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _move_into_place(staging: Path, out: Path) -> None:
    """Swap the finished folder in; a previous export is removed only after the swap."""
    previous = None
    if out.exists():
        previous = out.with_name(f".{out.name}.previous-{os.getpid()}.partial")
        os.replace(out, previous)
    try:
        os.replace(staging, out)
    except OSError:
        if previous is not None:
            os.replace(previous, out)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _litert_details(model: bytes) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def _float_ops(model: bytes) -> list[str]:
    """Ops of an int8 file that still compute in float (the converter keeps an op in float
    when it has no int8 kernel, even with TFLITE_BUILTINS_INT8)."""
    from ai_edge_litert import schema_py_generated as schema

    from export.edgetpu import op_names

    flat = schema.ModelT.InitFromPackedBuf(model, 0)
    graph = flat.subgraphs[0]
    names = op_names(flat)
    found = set()
    for name, op in zip(names, graph.operators, strict=True):
        if any(graph.tensors[i].type == schema.TensorType.FLOAT32 for i in op.outputs):
            found.add(name)
    return sorted(found)


def _frame_name(frame: str | None) -> str | None:
    return {"pixels": "input_pixels", "fraction": "input_fraction"}.get(frame)
