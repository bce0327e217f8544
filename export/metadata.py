"""``model.json``: what an exported file contains, beside it and inside the ``.tflite``.

One document describes every file of an export folder: the skeleton (joint names, flip
pairs and the rest of :class:`~kpose.skeletons.Skeleton`, so a user's own skeleton
survives), the input (shape, RGB 0..255), the output layout, the decoder inside the graph,
and per file its format, quantisation and the scale and zero point of its input and
output. The same text is embedded in the ``.tflite`` metadata (entry
:data:`kpose.runtime.METADATA_NAME`), written with the flatbuffer schema that ships with
``ai_edge_litert`` (tflite-support cannot be installed beside current TensorFlow).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from kpose import __version__
from kpose.runtime import FORMAT_VERSION, METADATA_NAME, read_tflite_metadata

__all__ = ["model_document", "file_entry", "dumps", "embed_metadata", "read_tflite_metadata"]

OUTPUT_LAYOUTS = {
    "keypoints": "(1, K, 3): x, y, score per joint in skeleton order",
    "belief_maps": "(1, h, w, C): the last stage's belief maps at the model's stride "
                   "(model.json 'codec'), joints in skeleton order, then the background "
                   "map when the codec has one",
    "normalised_coordinates": "(1, K, 2): x, y normalised to the input, "
                              "(u - (W - 1) / 2) / W",
}
SCORES = {
    "heatmap_peak": "the joint's belief-map maximum (about 1 for a confident joint, 0 for "
                    "none)",
    "deeppose": "1 (DeepPose regresses every joint; it has no confidence)",
    "deeppose_visibility": "the predicted probability that the joint is labelled",
}


def model_document(*, model: str, skeleton, input_size, outputs: str, decoder: str | None,
                   score: str | None, source: dict, files: dict,
                   card: dict | None = None) -> dict:
    """The ``model.json`` document.

    Args:
        model: the family: ``"cpm"``, ``"simplebaseline"``, ``"hourglass"`` or
            ``"deeppose"``.
        skeleton: the :class:`~kpose.skeletons.Skeleton`.
        input_size: ``(H, W)``.
        outputs: ``"keypoints"``, ``"belief_maps"`` or ``"normalised_coordinates"``.
        decoder: the HeatmapDecoder method inside a CPM keypoint graph, else ``None``.
        score: key of :data:`SCORES` for keypoint exports.
        source: where the model came from (``path``, ``run_config``).
        files: file name -> :func:`file_entry`.
        card: the model card (:meth:`kpose.models.card.ModelInfo.get_config`): codec,
            crop margin and the builder's options.
    """
    height, width = (int(v) for v in input_size)
    return {
        "format_version": FORMAT_VERSION,
        "kpose_version": __version__,
        "model": model,
        "source": source,
        "skeleton": {key: _plain(value) for key, value in dataclasses.asdict(skeleton).items()},
        "input": {"name": "image", "shape": [1, height, width, 3], "layout": "NHWC",
                  "color": "RGB", "value_range": [0, 255],
                  "note": "the whole person crop, as kpose's pipeline makes it; float32 "
                          "pixels, or uint8/int8 through the file's input scale and zero "
                          "point"},
        "codec": card["codec"] if card else None,
        "margin": card["margin"] if card else None,
        "options": card["options"] if card else None,
        "outputs": outputs,
        "output": {
            "layout": OUTPUT_LAYOUTS[outputs],
            "decoder": decoder,
            "score": SCORES.get(score) if score else None,
            "frames": {
                "input_pixels": "x right, y down in input pixels, 0-based, pixel centres "
                                "at integers",
                "input_fraction": "(x + 0.5) / W and (y + 0.5) / H: 0 and 1 are the input's "
                                  "outer pixel edges (int8 exports, so that x, y and score "
                                  "share one int8 scale)",
            } if outputs == "keypoints" else None,
        },
        "files": files,
    }


def file_entry(*, format: str, quantization: str, input_detail: dict | None,
               output_detail: dict | None, frame: str | None, extra: dict | None = None
               ) -> dict:
    """One file's entry: format, quantisation, input and output dtype, scale, zero point.

    ``input_detail``/``output_detail`` are LiteRT tensor details (``dtype``,
    ``quantization``); ``None`` means float32 (ONNX).
    """
    entry = {"format": format, "quantization": quantization,
             "input": _tensor(input_detail), "output": _tensor(output_detail)}
    if frame is not None:
        entry["output"]["frame"] = frame
    entry.update(extra or {})
    return entry


def dumps(document: dict) -> str:
    """The exact text written to ``model.json`` and embedded in the ``.tflite``."""
    return json.dumps(document, indent=2) + "\n"


def embed_metadata(model: bytes, text: str) -> bytes:
    """``model`` (a ``.tflite`` flatbuffer) with ``text`` as its kpose metadata entry.

    An entry of the same name is replaced; the rest of the model is unchanged, and it runs
    as before (buffers are copied, not re-laid out by hand).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    flat = schema.ModelT.InitFromPackedBuf(model, 0)
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    flat.metadata = [entry for entry in (flat.metadata or [])
                     if _name(entry.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = data
    flat.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(flat.buffers) - 1
    flat.metadata.append(entry)
    builder = flatbuffers.Builder(len(model) + len(data) + 4096)
    builder.Finish(flat.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor(detail: dict | None) -> dict:
    if detail is None:
        return {"dtype": "float32"}
    dtype = np.dtype(detail["dtype"]).name
    result = {"dtype": dtype}
    if dtype in ("int8", "uint8"):
        scale, zero_point = detail["quantization"]
        result.update(scale=float(scale), zero_point=int(zero_point))
    return result


def _name(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value
