"""MATLAB struct arrays for tests that write MPII-style ``.mat`` files with scipy."""

from __future__ import annotations

import numpy as np


def struct_array(rows: list[dict], fields: tuple[str, ...]) -> np.ndarray:
    """A 1 x N MATLAB struct array; a field a row leaves out is MATLAB's empty []."""
    array = np.zeros((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        for f in fields:
            array[0, i][f] = row.get(f, np.zeros((0, 0)))
    return array
