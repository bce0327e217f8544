"""Opening annotation files for the readers, with errors that name the file and the format.

Both functions check that the file exists and turn a parse failure into a ``ValueError``
naming the file and what was expected; the readers keep their own checks of the content.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import scipy.io

__all__ = ["load_json", "load_mat"]


def load_json(path: str | os.PathLike, expected: str) -> Any:
    """The parsed content of a UTF-8 JSON annotation file.

    Args:
        path: the JSON file.
        expected: the format the caller wants, for error messages, e.g.
            ``"COCO person keypoints"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder, or the file is not valid UTF-8 JSON.
    """
    path = _existing(path, expected)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a JSON file (expected {expected}): {err}") from None


def load_mat(path: str | os.PathLike, expected: str, variable: str | None = None,
             **loadmat_kwargs) -> Any:
    """A MATLAB ``.mat`` annotation file, or one variable of it.

    Args:
        path: the ``.mat`` file.
        expected: the format the caller wants, for error messages, e.g.
            ``"FLIC's examples.mat"``.
        variable: when given, return this variable and raise if the file lacks it;
            otherwise return the whole dict from :func:`scipy.io.loadmat`.
        **loadmat_kwargs: passed to :func:`scipy.io.loadmat` (``squeeze_me`` etc.).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder; the file is not a MATLAB file, or a v7.3 (HDF5)
            one; or ``variable`` is not in it (the message lists the variables found).
    """
    path = _existing(path, expected)
    try:
        mat = scipy.io.loadmat(path, **loadmat_kwargs)
    except NotImplementedError:  # scipy's answer to MATLAB's HDF5-based format
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file, which kpose does not read "
                         f"(expected {expected}); save it again in MATLAB with "
                         "save(FILE, VARIABLE, '-v7')") from None
    except Exception as err:  # scipy raises several types for non-MAT input
        holding = f" with variable {variable!r}" if variable is not None else ""
        raise ValueError(f"{path} is not a MATLAB .mat file (expected {expected}"
                         f"{holding}): {err}") from None
    if variable is None:
        return mat
    if variable not in mat:
        variables = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path}: variable {variable!r} not found (variables: {variables}); "
                         f"expected {expected}")
    return mat[variable]


def _existing(path: str | os.PathLike, expected: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the annotation file itself "
                         f"(expected {expected})")
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path} (expected {expected})")
    return path
