"""Read a policy register (CSV or Parquet) as it is, for the engine to check row by row.

Only problems with the *file* fail here (missing file, unreadable or unparsable file, a
required column missing): they raise :class:`~panen.engine.errors.InputError` naming the
file and column. Every row-level check (duplicates, unknown products or districts, bad
numbers and dates) is the engine's :func:`panen.engine.settlement.policies.validate_policies`,
which turns bad rows into rejects. CSV columns are read as text, so a bad number becomes a
row reject rather than a failed read.
"""

from __future__ import annotations

from pathlib import Path

from panen.engine.api import REGISTER_KEY_COLUMNS, REGISTER_REQUIRED_COLUMNS, PolicyRegister

from .tables import read_table

__all__ = ["read_policies"]


def read_policies(path: str | Path) -> PolicyRegister:
    """Read a policy register from CSV (optionally compressed) or Parquet.

    Parameters
    ----------
    path
        ``*.csv`` (also ``.csv.gz``, ``.csv.bz2``, ``.csv.zst``) or ``*.parquet`` / ``*.pq``.

    Returns
    -------
    PolicyRegister
        Rows as read; the key columns (``district_id``, ``product_id``) as dictionary
        arrays, one contiguous chunk per column.

    Raises
    ------
    InputError
        The file is missing, unreadable, not a CSV/Parquet file, or lacks a required
        column (every missing column is listed, each with the file and column named).
    """
    # one contiguous chunk per column: every later step (hashing, sorting, gathering)
    # would otherwise concatenate the readers' many small chunks again, each time
    table = read_table(path, REGISTER_REQUIRED_COLUMNS, what="policy register", dictionary_columns=REGISTER_KEY_COLUMNS)
    return PolicyRegister(str(Path(path)), table)
