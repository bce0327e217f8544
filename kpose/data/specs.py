"""Data specs: one string names a data set on the command line or in ``kpose.train``.

=====================================  ===============================================
spec                                   meaning
=====================================  ===============================================
``coco:ANNOTATIONS.json[:IMAGE_DIR]``  COCO person keypoints (``read_coco``)
``mpii:ANNOTATIONS[:IMAGE_DIR]``       MPII ``.json`` or ``.mat`` (``read_mpii``)
``lsp:joints.mat:IMAGE_DIR[:FIRST]``   LSP (``read_lsp(variant="lsp")``)
``lspet:joints.mat:IMAGE_DIR[:FIRST]`` LSP Extended (``FIRST``: image number of column 0)
``flic:examples.mat:IMAGE_DIR``        FLIC (``read_flic``)
``synthetic[:N[:SEED]]``               N synthetic people (default 1000, seed 0),
                                       rendered once into a cache folder
=====================================  ===============================================

The cache folder is ``$KPOSE_CACHE`` if set, else ``~/.cache/kpose``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kpose.data.coco import read_coco
from kpose.data.flic import read_flic
from kpose.data.lsp import read_lsp
from kpose.data.mpii import read_mpii
from kpose.data.records import PoseRecord
from kpose.data.synthetic import write_synthetic_dataset
from kpose.skeletons import COCO_17, FLIC, LSP_14, MPII_16, Skeleton

__all__ = ["LoadedData", "load_data_spec", "cache_dir", "DATA_SPEC_HELP"]

DATA_SPEC_HELP = ("coco:ANNOTATIONS.json[:IMAGE_DIR], mpii:ANNOTATIONS[:IMAGE_DIR], "
                  "lsp:joints.mat:IMAGE_DIR[:FIRST_INDEX], "
                  "lspet:joints.mat:IMAGE_DIR[:FIRST_INDEX], "
                  "flic:examples.mat:IMAGE_DIR or synthetic[:N[:SEED]]")


@dataclass(frozen=True)
class LoadedData:
    """Records read from a spec, with the skeleton they follow."""

    spec: str
    records: list[PoseRecord]
    skeleton: Skeleton


def load_data_spec(spec: str, *, synthetic_size: int = 256,
                   skip_missing: bool = False) -> LoadedData:
    """Read the data set a spec names (see the module docstring for the forms).

    ``skip_missing`` drops the persons of missing image files (with a warning) instead
    of refusing the data set.

    Raises:
        ValueError: the spec does not parse, or the data set holds no person.
        FileNotFoundError: a named file or folder does not exist.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data spec must be a non-empty string like {DATA_SPEC_HELP}; "
                         f"got {spec!r}")
    kind, *parts = spec.split(":")
    readers = {"coco": _coco, "mpii": _mpii, "lsp": _lsp, "lspet": _lspet, "flic": _flic,
               "synthetic": lambda p, skip: _synthetic(p, synthetic_size)}
    if kind not in readers:
        raise ValueError(f"unknown data spec {spec!r}: it must start with one of "
                         f"{sorted(readers)} ({DATA_SPEC_HELP})")
    records, skeleton = readers[kind](parts, skip_missing)
    if not records:
        raise ValueError(f"data spec {spec!r} holds no labelled person")
    return LoadedData(spec, records, skeleton)


def cache_dir() -> Path:
    """Where kpose keeps generated data: ``$KPOSE_CACHE`` or ``~/.cache/kpose``."""
    return Path(os.environ.get("KPOSE_CACHE", Path.home() / ".cache" / "kpose"))


def _arity(kind: str, parts: list[str], low: int, high: int, form: str) -> None:
    if not low <= len(parts) <= high or any(not p for p in parts):
        raise ValueError(f"data spec '{kind}:{':'.join(parts)}' does not parse; expected {form}")


def _coco(parts, skip):
    _arity("coco", parts, 1, 2, "coco:ANNOTATIONS.json[:IMAGE_DIR]")
    return read_coco(parts[0], parts[1] if len(parts) > 1 else None,
                     skip_missing=skip), COCO_17


def _mpii(parts, skip):
    _arity("mpii", parts, 1, 2, "mpii:ANNOTATIONS[:IMAGE_DIR]")
    return read_mpii(parts[0], parts[1] if len(parts) > 1 else None,
                     skip_missing=skip), MPII_16


def _lsp(parts, skip):
    return _lsp_variant("lsp", parts, skip)


def _lspet(parts, skip):
    return _lsp_variant("lspet", parts, skip)


def _lsp_variant(variant, parts, skip):
    _arity(variant, parts, 2, 3, f"{variant}:joints.mat:IMAGE_DIR[:FIRST_INDEX]")
    first = _integer(parts[2], "FIRST_INDEX") if len(parts) == 3 else 1
    return read_lsp(parts[0], parts[1], variant=variant, first_index=first,
                    skip_missing=skip), LSP_14


def _flic(parts, skip):
    _arity("flic", parts, 2, 2, "flic:examples.mat:IMAGE_DIR")
    return read_flic(parts[0], parts[1], skip_missing=skip), FLIC


def _synthetic(parts, size):
    _arity("synthetic", parts, 0, 2, "synthetic[:N[:SEED]]")
    num = _integer(parts[0], "N") if parts else 1000
    seed = _integer(parts[1], "SEED") if len(parts) > 1 else 0
    if num < 1:
        raise ValueError(f"synthetic:N needs N >= 1, got {num}")
    folder = cache_dir() / f"synthetic-n{num}-seed{seed}-size{size}"
    annotations = folder / "person_keypoints.json"
    if not annotations.is_file():  # the JSON is written last: present means complete
        print(f"rendering {num} synthetic people into {folder}", flush=True)
        write_synthetic_dataset(folder, num, seed=seed, size=size)
    return read_coco(annotations), COCO_17


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} in a data spec must be an integer, got {text!r}") from None
