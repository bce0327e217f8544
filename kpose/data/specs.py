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

Several specs train one model (:func:`load_data_specs`): their persons are pooled, so
each data set is sampled in proportion to its size. The first spec's skeleton is the
model's; the others are mapped onto it by joint name (:data:`JOINT_SYNONYMS` lists the
few joints that two data sets name differently), which works when every joint of the
model's skeleton is found in theirs: MPII's 16 joints cover LSP's 14, as in the CPM
paper's MPII + LSP training.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kpose.data.coco import read_coco
from kpose.data.flic import read_flic
from kpose.data.lsp import read_lsp
from kpose.data.mpii import read_mpii
from kpose.data.records import PoseRecord
from kpose.data.synthetic import write_synthetic_dataset
from kpose.skeletons import COCO_17, FLIC, LSP_14, MPII_16, Skeleton

__all__ = ["LoadedData", "load_data_spec", "load_data_specs", "map_to_skeleton", "cache_dir",
           "DATA_SPEC_HELP", "JOINT_SYNONYMS"]

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


# Joints that two shipped skeletons name differently but that mark the same place: LSP's
# "neck" is MPII's "upper_neck" (the usual LSP -> MPII joint mapping).
JOINT_SYNONYMS: dict[str, tuple[str, ...]] = {"neck": ("upper_neck",),
                                              "upper_neck": ("neck",)}


def load_data_specs(specs: str | Sequence[str | LoadedData], *, synthetic_size: int = 256,
                    skip_missing: bool = False, verbose: bool = False) -> LoadedData:
    """Read one spec, or several pooled into one data set on the first one's skeleton.

    Pooling the persons samples each data set in proportion to its size. The persons of
    a data set on another skeleton are mapped onto the first by joint name
    (:func:`map_to_skeleton`). ``verbose`` prints each spec with its count of persons.
    The result's ``spec`` is the spec itself for one spec, and the specs joined with
    ``" + "`` for several.

    Raises:
        ValueError: no spec, a spec that does not parse or holds no person, or a data set
            whose skeleton lacks joints of the first one's (named).
    """
    if isinstance(specs, (str, LoadedData)):
        specs = [specs]
    specs = list(specs)
    if not specs:
        raise ValueError(f"give at least one data spec ({DATA_SPEC_HELP})")
    loaded = [spec if isinstance(spec, LoadedData) else
              load_data_spec(spec, synthetic_size=synthetic_size, skip_missing=skip_missing)
              for spec in specs]
    if verbose and len(loaded) > 1:
        total = sum(len(part.records) for part in loaded)
        for part in loaded:
            print(f"data {part.spec}: {len(part.records)} persons "
                  f"({100 * len(part.records) / total:.0f} % of the samples)", flush=True)
    if len(loaded) == 1:
        return loaded[0]
    skeleton = loaded[0].skeleton
    records = [record for part in loaded
               for record in map_to_skeleton(part, skeleton).records]
    return LoadedData(" + ".join(part.spec for part in loaded), records, skeleton)


def map_to_skeleton(data: LoadedData, skeleton: Skeleton) -> LoadedData:
    """``data`` with every person's keypoints re-ordered onto ``skeleton`` by joint name.

    Each joint of ``skeleton`` takes the row of the joint of ``data.skeleton`` with the
    same name (or a :data:`JOINT_SYNONYMS` name); joints of ``data`` that ``skeleton``
    lacks are dropped. Boxes, head sizes and areas are kept.

    Raises:
        ValueError: ``data.skeleton`` lacks joints of ``skeleton``, naming them.
    """
    if data.skeleton == skeleton:
        return data
    source = data.skeleton.joint_names
    rows, missing = [], []
    for name in skeleton.joint_names:
        found = [n for n in (name, *JOINT_SYNONYMS.get(name, ())) if n in source]
        if found:
            rows.append(source.index(found[0]))
        else:
            missing.append(name)
    if missing:
        raise ValueError(f"data {data.spec!r} follows skeleton {data.skeleton.name!r}, which "
                         f"lacks joints {', '.join(missing)} of {skeleton.name!r}; it cannot "
                         "train the same model")
    records = [dataclasses.replace(record, keypoints=record.keypoints[rows],
                                   skeleton=skeleton.name) for record in data.records]
    return LoadedData(data.spec, records, skeleton)


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
