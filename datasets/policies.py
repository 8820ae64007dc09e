"""Read a policy register (CSV or Parquet) as it is, for the engine to check row by row.

Only problems with the *file* fail here (missing file, unreadable or unparsable file, a
required column missing): they raise :class:`~panen.engine.errors.InputError` naming the
file, the line and the column. Every row-level check (keys, duplicates, unknown products
or districts, bad numbers and dates) is the engine's
:func:`panen.engine.settlement.policies.validate_policies`, which turns bad rows into
rejects. CSV columns are read as text, so a bad number becomes a row reject rather than a
failed read.
"""

from __future__ import annotations

from pathlib import Path

from panen.engine.api import REGISTER_KEY_COLUMNS, REGISTER_REQUIRED_COLUMNS, PolicyRegister

from .tables import TableOptions, read_located

__all__ = ["read_policies"]


def read_policies(path: str | Path, options: TableOptions | None = None) -> PolicyRegister:
    """Read a policy register from CSV (optionally compressed) or Parquet.

    Parameters
    ----------
    path
        ``*.csv`` (also ``.csv.gz``, ``.csv.bz2``, ``.csv.zst``) or ``*.parquet`` / ``*.pq``.
    options
        How the file is written (separator, encoding, decimal mark, date format, its own
        column names: :class:`~panen.datasets.tables.TableOptions`); default: comma
        separated UTF-8 with panen's column names, ``.`` decimals and ISO dates.

    Returns
    -------
    PolicyRegister
        Rows as read, columns named as panen names them; the key columns
        (``district_id``, ``product_id``) as dictionary arrays, one contiguous chunk per
        column; with the rows' text lines (CSV), the file's own column names and its
        number and date format, for the engine's checks and rejects.

    Raises
    ------
    InputError
        The file is missing, unreadable, not a CSV/Parquet file, cannot be parsed (the
        line and, for a byte that is not text in the file's encoding, the column are
        named), or lacks a required column (every missing column is listed, each with the
        file and column named).
    """
    options = options or TableOptions()
    # one contiguous chunk per column: every later step (hashing, sorting, gathering)
    # would otherwise concatenate the readers' many small chunks again, each time
    located = read_located(path, REGISTER_REQUIRED_COLUMNS, what="policy register",
                           dictionary_columns=REGISTER_KEY_COLUMNS, options=options)
    return PolicyRegister(str(Path(path)), located.table, lines=located.lines,
                          source_columns=dict(located.source_columns), text=located.text)
