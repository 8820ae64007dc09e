"""District and season ids of whole-file inputs (yields, district layers) as normalised keys.

The same identity as the policy register's keys
(:func:`panen.engine.infra.safetext.normalise_keys`): ``"3271 "``, ``"3271\\u200b"`` and
``"３２７１"`` are district ``3271``. These inputs are refused whole on a bad id (there is
no rejects table for a district), with a problem naming the file, row, line and column.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from panen.engine.errors import Problem
from panen.engine.infra.arrowcols import blank
from panen.engine.infra.safetext import normalise_keys

__all__ = ["id_problems", "ids_as_keys"]


def ids_as_keys(values: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Ids as normalised text (object dtype, ``NaN`` for null/blank), and bad / unsafe masks.

    Integer-valued numbers (a Shapefile, GeoPackage or Parquet may store ``3212`` as int
    or float) become ``"3212"``, never ``"3212.0"``.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if (finite == np.round(finite)).all():
            values = values.astype("Int64")
    text = values.astype("string")
    keys = normalise_keys(pa.array(text.array, type=pa.string(), from_pandas=True))
    missing = blank(keys.values)
    out = pd.Series(np.asarray(keys.values.to_pandas(), dtype=object), index=values.index)
    out[missing] = np.nan
    return out, keys.bad & ~missing, keys.unsafe & ~missing


def id_problems(raw: pd.Series, bad: np.ndarray, unsafe: np.ndarray, *, file: str | Path, column: str, what: str,
                lines: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Problem]:
    """One problem per bad or unsafe id (its raw text quoted, with control characters escaped)."""
    rows = np.flatnonzero(bad | unsafe)
    if rows.size == 0:
        return []
    at = lines(rows) if lines is not None else [None] * rows.size
    out = []
    for i, line in zip(rows.tolist(), list(at)):
        value = repr(str(raw.iloc[i]))
        why = ("holds a control character or a bidirectional/line-separator format character" if bad[i]
               else "begins with '=', '+', '-' or '@' (a spreadsheet would run it as a formula)")
        out.append(Problem(f"{what} {value} {why}", file=file, row=i + 1, column=column,
                           line=None if line is None else int(line)))
    return out
