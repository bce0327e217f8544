"""Run folders on disk: the run's configuration, and loading the model a run (or a bare
``.keras`` file) holds. Training writes them (:mod:`kpose.training`); evaluation,
prediction and export read them through here.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras

import kpose.models  # noqa: F401  (registers kpose's layers for keras.saving.load_model)
from kpose.checkpoints import last_checkpoint
from kpose.files import atomic_path
from kpose.zoo import is_pretrained, pretrained

__all__ = ["RunConfig", "load_model", "load_run_model"]


@dataclass
class RunConfig:
    """Everything needed to rebuild a run's model and data pipeline (``config.json``).

    ``learning_rate`` is quoted for a global batch of 16 and scaled linearly with the
    actual global batch (:func:`kpose.distribute.scaled_learning_rate`).
    """

    model: str = "cpm"
    data: str | list[str] = "synthetic:1000"  # a list: several specs trained together
    val_data: str | None = None
    skeleton: str = "coco_17"
    epochs: int = 10
    batch_size: int = 16
    steps_per_epoch: int | None = None
    input_size: int = 368
    stages: int = 6
    width: float = 1.0
    backbone: str | None = None
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    warmup_steps: int = 0  # linear warm-up of the rate (per stage for DeepPose)
    sigma: float | None = None
    seed: int = 0
    strategy: str = "auto"
    mixed_precision: bool | str = False
    val_every: int = 1
    paper: bool = False
    skip_corrupt: bool = False
    model_options: dict = field(default_factory=dict)
    teacher: str | None = None  # distillation (kpose.training.distill)
    distill_weight: float = 0.5
    distill_temperature: float = 1.0
    init: str | None = None  # the trained model the run started from
    augmentation: dict | None = None  # Augmentation fields; None: the defaults

    def to_json(self) -> str:
        """The text of ``config.json``."""
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def save(self, path: Path) -> None:
        with atomic_path(path) as temporary:
            temporary.write_text(self.to_json())

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read run config {path}: {error}") from None
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown fields {sorted(unknown)}; is it a kpose run?")
        return cls(**values)


def load_model(model_or_run: str | Path) -> keras.Model:
    """A saved kpose model: a ``.keras`` file, a run folder's ``model.keras`` (else its
    last checkpoint), or ``"pretrained:NAME"``, a model shipped with kpose
    (:func:`kpose.zoo.pretrained`). ``kpose.load_model`` imports kpose's layers first; plain
    ``keras.saving.load_model`` needs ``import kpose.models`` before it for the same
    reason.

    Raises:
        FileNotFoundError: no such file, or a run folder without a model.
        ValueError: a file that is not ``.keras``.
    """
    return load_run_model(model_or_run)[0]


def load_run_model(model_or_run: str | Path) -> tuple[keras.Model, RunConfig | None]:
    """Load ``model.keras`` (or the last checkpoint) of a run folder, a ``.keras`` file or
    a shipped ``"pretrained:NAME"`` model (no run config)."""
    if is_pretrained(model_or_run):
        return pretrained(model_or_run), None
    path = Path(model_or_run)
    if path.is_dir():
        config = RunConfig.load(path / "config.json") if (path / "config.json").is_file() \
            else None
        for candidate in (path / "model.keras", last_checkpoint(path / "checkpoints")):
            if candidate is not None and candidate.is_file():
                return _load_keras_file(candidate), config
        raise FileNotFoundError(f"{path} holds neither model.keras nor checkpoints/last.keras")
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a .keras model file or a kpose run folder")
    return _load_keras_file(path), None


def _load_keras_file(path: Path) -> keras.Model:
    """``keras.saving.load_model`` of a file checked to be a ``.keras`` archive first, so
    that a wrong file gets one line naming it instead of Keras's own errors."""
    if not zipfile.is_zipfile(path):  # Keras would answer "File not found"
        raise ValueError(f"{path} is not a readable Keras model (not a .keras zip archive)")
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise ValueError(f"{path} is not a readable Keras model (the archive has no "
                             "config.json)")
    return keras.saving.load_model(path)
