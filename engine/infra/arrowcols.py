"""Arrow columns as read from a table, turned into numpy arrays with "missing" and "bad" masks.

Readers and validators of tabular inputs (the policy register, loss assessments) parse
every column the same way: text stays text (integer ids read as their decimal text),
numbers are plain decimals (``1,5`` is not a number), dates are ISO ``YYYY-MM-DD``
(``2024-02-30`` is not a date, never rolled over), and an empty or whitespace-only cell is
missing. The raw values are kept for rejects files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from panen.engine.errors import InputError, Problem

__all__ = ["as_text", "blank", "check_header", "date_column", "dictionary_codes", "key_column", "number_column",
           "string_buffers", "string_column"]

_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def check_header(names: list[str], required: Iterable[str], file: str | Path) -> None:
    """Refuse duplicated or missing required columns, listing every one."""
    problems, seen = [], set()
    for n in names:
        if n in seen:
            problems.append(Problem(f"column {n!r} appears more than once in the header", file=file, column=n))
        seen.add(n)
    missing = [c for c in required if c not in seen]
    hint = ""
    if missing and any(";" in n or "\t" in n for n in names):
        hint = " (the header looks semicolon- or tab-separated; panen reads comma-separated CSV)"
    problems += [Problem(f"required column {c!r} is missing{hint}", file=file, column=c) for c in missing]
    if problems:
        raise InputError(problems)


def _unsupported(col: pa.ChunkedArray, name: str, file: str | Path, want: str) -> InputError:
    return InputError(f"column has type {col.type}, expected {want}", file=file, column=name)


def dictionary_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """int32 codes (-1 for null) and the string dictionary of a column (encoded if it is not one)."""
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    col = col.unify_dictionaries() if col.num_chunks > 1 else col
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], pa.string())
    values = col.chunk(0).dictionary
    parts = []
    for chunk in col.chunks:
        idx = chunk.indices
        codes = idx.to_numpy(zero_copy_only=False) if idx.null_count == 0 \
            else pc.fill_null(idx, -1).to_numpy(zero_copy_only=False)
        parts.append(codes.astype(np.int32, copy=False))
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    return (np.concatenate(parts) if parts else np.zeros(0, np.int32)), values.cast(pa.string())


def blank(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where a string is null, empty or only whitespace."""
    empty = pc.or_kleene(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values))
    return pc.fill_null(empty, True).to_numpy(zero_copy_only=False)


def string_column(col: pa.ChunkedArray, name: str, file: str | Path) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Plain string column and its missing mask (integer ids are read as their decimal text)."""
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    t = col.type
    if pa.types.is_large_string(t) or pa.types.is_integer(t):
        col = pc.cast(col, pa.string())
    elif not pa.types.is_string(t):
        raise _unsupported(col, name, file, "text")
    return col, blank(col)


def key_column(col: pa.ChunkedArray, name: str, file: str | Path) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Dictionary codes, dictionary values and missing mask of a key column."""
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise _unsupported(col, name, file, "text")
    codes, values = dictionary_codes(col)
    blank_value = blank(values) if len(values) else np.zeros(0, bool)
    missing = codes < 0
    if blank_value.any():
        missing |= blank_value[np.where(missing, 0, codes)] & ~missing
    return codes, values, missing


def number_column(col: pa.ChunkedArray, name: str, file: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 values, missing mask and unparsable mask of a numeric column.

    Text is parsed with Arrow's cast in one pass; only if that fails are the rows told
    apart (trimmed, matched against a plain decimal pattern — digits, an optional ``.``
    fraction and exponent; ``1,5`` is not a number here — and cast again).
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        missing = col.is_null().to_numpy(zero_copy_only=False)
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        missing = blank(col)
        try:
            parsed = pc.cast(col, pa.float64())
        except pa.ArrowInvalid:
            trimmed = pc.utf8_trim_whitespace(col)
            ok = pc.match_substring_regex(trimmed, _NUMBER_RE)
            parsed = pc.cast(pc.if_else(ok, trimmed, pa.scalar(None, trimmed.type)), pa.float64())
        values = parsed.to_numpy(zero_copy_only=False)
    else:
        raise _unsupported(col, name, file, "numbers")
    values = np.asarray(values, dtype=np.float64)
    bad = ~missing & ~np.isfinite(values)
    return values, missing, bad


def date_column(col: pa.ChunkedArray, name: str, file: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 days since 1970-01-01, missing mask and unparsable mask of a date column.

    Text must be an ISO calendar date ``YYYY-MM-DD``; impossible dates (2024-02-30) are
    unparsable, never rolled over.
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        missing = col.is_null().to_numpy(zero_copy_only=False)
        days = pc.cast(col, pa.date32())
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        missing = blank(col)
        try:
            days = pc.cast(col, pa.date32())
        except pa.ArrowInvalid:
            trimmed = pc.utf8_trim_whitespace(col)
            stamp = pc.strptime(trimmed, format="%Y-%m-%d", unit="s", error_is_null=True)
            same = pc.equal(pc.strftime(stamp, format="%Y-%m-%d"), trimmed)
            days = pc.cast(pc.if_else(pc.fill_null(same, False), stamp, pa.scalar(None, stamp.type)), pa.date32())
    else:
        raise _unsupported(col, name, file, "ISO dates")
    null = days.is_null().to_numpy(zero_copy_only=False)
    out = pc.fill_null(pc.cast(days, pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return out, missing, ~missing & null


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """int64 offsets and uint8 bytes of a (large) string array, for numba kernels.

    Nulls read as empty strings. Offsets are absolute positions in the returned bytes.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_string(arr.type):
        width = np.int32
    elif pa.types.is_large_string(arr.type):
        width = np.int64
    else:
        raise TypeError(f"string_buffers: expected a string array, got {arr.type}")
    n = len(arr)
    buffers = arr.buffers()
    if n == 0 or buffers[1] is None:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(buffers[1], dtype=width)[arr.offset: arr.offset + n + 1].astype(np.int64, copy=False)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def as_text(col: pa.ChunkedArray) -> pa.Array:
    """Raw values as a string array, for the rejects table."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = pc.cast(col, t.value_type)
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
