"""Trained models shipped inside the package: ``kpose.pretrained(name)``.

Each shipped model is two files in ``kpose/weights/``:

- ``NAME.json``: the Keras architecture (its model card included, so the model knows its
  family, skeleton, codec and input size), how it was trained (command, data, steps) and
  what it scored on held-out images, and the SHA-256 of the weights file.
- ``NAME.npz``: the weights by variable path (the ``n``-th repeat of a path, as in the
  stages of a DeepPose cascade, which are networks of the same layer names, as
  ``path#n``), stored as float16 where that keeps them to a relative error of 1e-3
  (float32 otherwise), which halves the package size; they load back as float32.

Wherever a model path is accepted (``kpose predict``, ``kpose evaluate``,
``kpose-export``, :func:`kpose.load_model`), ``pretrained:NAME`` names a shipped model.
Nothing is downloaded: the files are part of the installed package.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import keras
import numpy as np

import kpose.models  # noqa: F401  (registers kpose's layers for model_from_json)
from kpose.files import atomic_path

__all__ = ["PRETRAINED_PREFIX", "WEIGHTS_DIR", "pretrained", "pretrained_names",
           "pretrained_info", "is_pretrained", "save_pretrained", "weight_keys"]

PRETRAINED_PREFIX = "pretrained:"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# float16 keeps a weight array when no element moves by more than this, relative to the
# array's largest magnitude (BatchNorm variances can exceed float16's range: kept float32).
_FLOAT16_TOLERANCE = 1e-3


def is_pretrained(model: object) -> bool:
    """Whether ``model`` is a ``"pretrained:NAME"`` reference."""
    return isinstance(model, str) and model.startswith(PRETRAINED_PREFIX)


def pretrained_names(folder: Path | None = None) -> list[str]:
    """Names of the shipped models, sorted (``folder``: :data:`WEIGHTS_DIR`)."""
    folder = Path(folder or WEIGHTS_DIR)
    return sorted(p.stem for p in folder.glob("*.json")
                  if (p.with_suffix(".npz")).is_file())


def pretrained_info(name: str, folder: Path | None = None) -> dict:
    """What a shipped model is and how it was made: ``description``, ``command``,
    ``data``, ``steps``, ``batch_size``, ``scores`` (held-out PCK), ``license``.

    Raises:
        ValueError: no shipped model of that name (the message lists the names).
    """
    return _read_card(_strip(name), Path(folder or WEIGHTS_DIR))["metadata"]


def pretrained(name: str, folder: Path | None = None) -> keras.Model:
    """The shipped model ``name`` (e.g. ``"lsp-simplebaseline-r18"``) as a Keras model.

    It is the trained model itself (belief maps of every stage, like a run's
    ``model.keras``), not compiled; :func:`kpose.prediction.inference_model` turns it into
    images -> keypoints, and ``kpose-export`` into TFLite or ONNX. ``name`` may carry the
    ``pretrained:`` prefix.

    Raises:
        ValueError: no shipped model of that name, or its files do not match each other
            (a damaged installation).
    """
    name = _strip(name)
    folder = Path(folder or WEIGHTS_DIR)
    card = _read_card(name, folder)
    weights_path = folder / f"{name}.npz"
    payload = weights_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != card["weights_sha256"]:
        raise ValueError(f"{weights_path} does not match its checksum in {name}.json: the "
                         "installation is damaged; reinstall kpose")
    model = keras.models.model_from_json(json.dumps(card["architecture"]))
    keys = weight_keys(model)
    expected = set(keys)
    with np.load(io.BytesIO(payload)) as stored:
        found = set(stored.files)
        if found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            raise ValueError(f"{weights_path} does not fit its architecture (missing "
                             f"{missing[:3]}, unexpected {extra[:3]})")
        for key, variable in zip(keys, model.weights):
            variable.assign(stored[key].astype(variable.dtype))
    return model


def weight_keys(model: keras.Model) -> list[str]:
    """One unique key per variable of ``model``, in ``model.weights`` order: its path, or
    ``path#n`` for the ``n``-th variable of a path already taken (nested models with the
    same layer names, such as a cascade's stages)."""
    seen: dict[str, int] = {}
    keys = []
    for variable in model.weights:
        seen[variable.path] = seen.get(variable.path, 0) + 1
        count = seen[variable.path]
        keys.append(variable.path if count == 1 else f"{variable.path}#{count}")
    return keys


def save_pretrained(model: keras.Model, name: str, metadata: dict,
                    folder: Path | None = None) -> tuple[Path, Path]:
    """Write ``model`` as the shipped model ``name``: ``NAME.npz`` and ``NAME.json``.

    ``metadata`` is stored as given (see :func:`pretrained_info` for the fields users
    read). Both files are written atomically, the weights first.

    Returns:
        The paths of the ``.json`` and ``.npz`` files.
    """
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"a shipped model's name is a plain file stem, got {name!r}")
    folder = Path(folder or WEIGHTS_DIR)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: _compact(np.asarray(v.numpy()))
                                   for key, v in zip(weight_keys(model), model.weights)})
    payload = buffer.getvalue()
    weights_path, card_path = folder / f"{name}.npz", folder / f"{name}.json"
    with atomic_path(weights_path) as temporary:
        temporary.write_bytes(payload)
    card = {"name": name, "metadata": metadata,
            "weights_sha256": hashlib.sha256(payload).hexdigest(),
            "architecture": json.loads(model.to_json())}
    with atomic_path(card_path) as temporary:  # compact: the architecture is most of it
        temporary.write_text(json.dumps(card, separators=(",", ":")) + "\n")
    return card_path, weights_path


def _compact(array: np.ndarray) -> np.ndarray:
    """``array`` as float16 when that is faithful to :data:`_FLOAT16_TOLERANCE`."""
    if array.dtype != np.float32 or array.size == 0:
        return array
    half = array.astype(np.float16)
    scale = float(np.max(np.abs(array)))
    if not np.all(np.isfinite(half)):
        return array
    error = float(np.max(np.abs(half.astype(np.float32) - array)))
    return half if error <= _FLOAT16_TOLERANCE * max(scale, 1e-30) else array


def _strip(name: str) -> str:
    return name[len(PRETRAINED_PREFIX):] if is_pretrained(name) else name


def _read_card(name: str, folder: Path) -> dict:
    names = pretrained_names(folder)
    if name not in names:
        offered = ", ".join(names) if names else "none are installed"
        raise ValueError(f"no shipped model named {name!r}; kpose ships: {offered}")
    return json.loads((folder / f"{name}.json").read_text())
