"""Run an exported model file: ``.tflite`` through LiteRT, ``.onnx`` through onnxruntime.

``kpose-export`` writes a ``model.json`` beside every export (and embeds the same JSON in
the ``.tflite`` file). :func:`load_exported` reads it and returns a callable with the
contract of a Keras keypoint model, so ``kpose predict`` and ``kpose evaluate`` measure
the exact file that goes to the phone or the Edge TPU::

    model = load_exported("export/model.tflite")
    keypoints = model(images)  # (B, H, W, 3) float32 0..255 -> (B, K, 3) input pixels

It handles what differs between exports: int8/uint8 input and output (scale and zero
point from the file), the output frame (float exports give input pixels; int8 exports
give fractions of the input size, so that x, y and score share one int8 scale), and the
fixed batch of 1 (a batch runs as a loop of single images).

This module is part of ``kpose`` (it must not import ``export``); LiteRT and onnxruntime are
imported on first use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kpose.skeletons import SKELETONS, Skeleton

__all__ = ["ExportedModel", "load_exported", "read_tflite_metadata", "read_model_json",
           "raw_runner", "to_input_pixels", "METADATA_NAME", "MODEL_JSON", "FORMAT_VERSION",
           "FRAMES"]

MODEL_JSON = "model.json"
# Name of the metadata entry that holds model.json inside a .tflite file.
METADATA_NAME = "kpose.model.json"
FORMAT_VERSION = 1
FRAMES = ("input_pixels", "input_fraction")


@dataclass
class ExportedModel:
    """An exported keypoint model, callable like the Keras model it came from.

    Attributes:
        path: the ``.tflite`` or ``.onnx`` file.
        format: ``"tflite"`` or ``"onnx"``.
        metadata: the parsed ``model.json``.
        skeleton: the joints the model predicts.
        input_size: ``(height, width)`` of its input in pixels.
        threads: CPU threads the runtime may use (``None``: the runtime's default).
        margin: the person box's enlargement for the crop it was trained with
            (``model.json``; 1.25 for exports that predate it).
    """

    path: Path
    format: str
    metadata: dict
    skeleton: Skeleton
    input_size: tuple[int, int]
    threads: int | None = None
    margin: float = 1.25
    _runner: object = field(default=None, repr=False)

    def __call__(self, images, training: bool = False) -> np.ndarray:
        """``images`` ``(B, H, W, 3)`` (or one ``(H, W, 3)``) RGB 0..255 -> ``(B, K, 3)``
        float32 ``(x, y, score)`` in input pixels (0-based, pixel centres at integers).

        ``training`` is accepted (and must be False) so the call matches a Keras model's.
        """
        if training:
            raise ValueError("an exported model runs inference only (training=False)")
        images = np.asarray(images, dtype=np.float32)
        single = images.ndim == 3
        if single:
            images = images[None]
        expected = (*self.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"{self.path.name} takes images (B, {expected[0]}, {expected[1]}, "
                             f"3) RGB 0..255, got shape {images.shape}")
        if self._runner is None:
            self._runner = raw_runner(self.path, threads=self.threads)
        outputs = np.stack([self._runner(image[None])[0] for image in images])
        keypoints = to_input_pixels(outputs, self._file_entry()["output"]["frame"],
                                    self.input_size)
        return keypoints[0] if single else keypoints

    def predict(self, images, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Keras-style alias of ``__call__`` (``batch_size`` and ``verbose`` are ignored:
        exports run one image at a time)."""
        del batch_size, verbose
        return self(images)

    def _file_entry(self) -> dict:
        return self.metadata["files"][self.path.name]


def load_exported(path: str | os.PathLike, *, threads: int | None = None) -> ExportedModel:
    """Open an exported ``.tflite`` or ``.onnx`` keypoint model.

    The metadata comes from ``model.json`` in the same folder, or, for a ``.tflite`` file
    copied on its own, from the JSON embedded in it.

    Args:
        path: the model file.
        threads: CPU threads for the runtime (``None``: its default).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a ``.tflite``/``.onnx`` file, no kpose metadata, or an export of
            raw outputs (belief maps), which is not a keypoint model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    kind = {".tflite": "tflite", ".onnx": "onnx"}.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: expected an exported .tflite or .onnx file")
    metadata = read_model_json(path)
    entry = metadata.get("files", {}).get(path.name)
    if entry is None:
        raise ValueError(f"{path}: its model.json does not describe {path.name!r} (it lists "
                         f"{sorted(metadata.get('files', {}))})")
    if metadata.get("outputs") != "keypoints":
        raise ValueError(f"{path} is an export of raw {metadata.get('outputs')!r} outputs; "
                         "only keypoint exports (kpose-export without --raw-outputs) run "
                         "as a pose model")
    if entry["output"].get("frame") not in FRAMES:
        raise ValueError(f"{path}: unknown output frame {entry['output'].get('frame')!r}")
    height, width = (int(v) for v in metadata["input"]["shape"][1:3])
    return ExportedModel(path, kind, metadata, _skeleton(metadata["skeleton"], path),
                         (height, width), threads, float(metadata.get("margin") or 1.25))


def read_model_json(path: str | os.PathLike) -> dict:
    """The ``model.json`` that describes an exported file: the one beside it, else (for
    ``.tflite``) the copy embedded in the file. Raises ``ValueError`` if there is none."""
    path = Path(path)
    beside = path.parent / MODEL_JSON
    if beside.is_file():
        try:
            return json.loads(beside.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{beside} is not valid JSON: {error}") from None
    if path.suffix.lower() == ".tflite":
        try:
            embedded = read_tflite_metadata(path.read_bytes())
        except Exception as error:  # noqa: BLE001  (flatbuffers raise struct/index errors)
            raise ValueError(f"{path} is not a TFLite flatbuffer ({type(error).__name__})"
                             ) from None
        if embedded is not None:
            return embedded
    raise ValueError(f"{path}: no {MODEL_JSON} beside it"
                     + (" and no kpose metadata inside it" if path.suffix == ".tflite" else "")
                     + "; was it written by kpose-export?")


def read_tflite_metadata(model: bytes) -> dict | None:
    """The JSON kpose embedded in a ``.tflite`` flatbuffer, or ``None`` if it has none."""
    from ai_edge_litert import schema_py_generated as schema  # only when reading a file

    root = schema.Model.GetRootAs(model, 0)
    for index in range(root.MetadataLength()):
        entry = root.Metadata(index)
        if entry.Name() == METADATA_NAME.encode():
            data = root.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode("utf-8"))
    return None


def raw_runner(path: str | os.PathLike, *, threads: int | None = None):
    """A function running one exported file on one image, without its metadata:
    ``(1, H, W, 3)`` float32 0..255 -> the model's output as float32 (dequantised with the
    file's scale and zero point when it is int8/uint8). ``.tflite`` runs in LiteRT,
    ``.onnx`` in onnxruntime (CPU), each with ``threads`` CPU threads if given."""
    path = Path(path)
    if path.suffix.lower() == ".tflite":
        from ai_edge_litert.interpreter import Interpreter  # LiteRT only for .tflite files

        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]
        target = interpreter.get_output_details()[0]

        def run(image):
            interpreter.set_tensor(source["index"], _quantise(image, source))
            interpreter.invoke()
            return _dequantise(interpreter.get_tensor(target["index"]), target)

        return run
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: expected a .tflite or .onnx file")
    import onnxruntime  # only for .onnx files

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda image: session.run(None, {name: image.astype(np.float32)})[0].astype(
        np.float32)


def to_input_pixels(outputs, frame: str, input_size) -> np.ndarray:
    """Keypoints ``(..., K, 3)`` in an export's output ``frame`` -> input pixels.

    ``"input_pixels"`` is returned as is; ``"input_fraction"`` holds ``(x + 0.5) / W`` and
    ``(y + 0.5) / H`` for an input of ``input_size = (H, W)``. The score is unchanged.
    """
    if frame not in FRAMES:
        raise ValueError(f"unknown keypoint frame {frame!r}; expected one of {FRAMES}")
    keypoints = np.array(outputs, dtype=np.float32, copy=True)
    if frame == "input_fraction":
        height, width = input_size
        keypoints[..., 0] = keypoints[..., 0] * width - 0.5
        keypoints[..., 1] = keypoints[..., 1] * height - 0.5
    return keypoints


def _quantise(image: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return image.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(image / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantise(values: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _skeleton(fields: dict, path: Path) -> Skeleton:
    """The skeleton from model.json: the shipped one of that name when it matches, else
    rebuilt from the stored fields (a user's own skeleton)."""
    name = fields.get("name")
    shipped = SKELETONS.get(name)
    if shipped is not None and list(shipped.joint_names) == list(fields.get("joint_names", [])):
        return shipped
    try:
        return Skeleton(**{key: fields[key] for key in
                           ("name", "joint_names", "flip_pairs", "limbs", "torso", "head",
                            "oks_sigmas", "bones") if key in fields})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: the skeleton in model.json is not usable: {error}") from None
