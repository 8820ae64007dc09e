"""Reading tabular inputs (CSV or Parquet) with a checked header, every column as read.

Shared by the policy register and the loss-assessment readers: a missing file, an
unreadable file or a missing/duplicated required column is an :class:`InputError` naming
the file and column (the whole file is refused, exit code 2); everything row-level is left
to the caller, which turns bad rows into rejects. CSV columns are read as text, so a bad
number becomes a row reject rather than a failed read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from panen.engine.errors import InputError
from panen.engine.infra.arrowcols import check_header

__all__ = ["read_csv_table", "read_header", "read_parquet_table", "read_table"]

_DICT_TYPE = pa.dictionary(pa.int32(), pa.string())


def _csv_header(p: Path) -> list[str]:
    """Column names of a CSV (optionally compressed), from its first line."""
    try:
        with pa.input_stream(str(p), compression="detect") as stream:
            head = stream.read(1 << 20)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read the file: {e}", file=p) from e
    first_line = head[: head.find(b"\n")] if b"\n" in head else head
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("the header is not UTF-8 text", file=p) from e
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or all(not h.strip() for h in header):
        raise InputError("the file is empty: no header row", file=p)
    return [h.strip() for h in header]


def read_csv_table(p: Path, required: Iterable[str], *, dictionary_columns: Iterable[str] = ()) -> pa.Table:
    """A CSV (optionally compressed) as an Arrow table of text columns (keys dictionary-encoded)."""
    names = _csv_header(p)
    check_header(names, required, p)
    keys = set(dictionary_columns)
    types = {n: (_DICT_TYPE if n in keys else pa.string()) for n in names}
    try:
        return pcsv.read_csv(
            str(p),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                null_values=[""], quoted_strings_can_be_null=True),
        )
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot parse the CSV: {e}", file=p) from e


def read_parquet_table(p: Path, required: Iterable[str], *, dictionary_columns: Iterable[str] = ()) -> pa.Table:
    """A Parquet file as an Arrow table in its own types (string keys dictionary-encoded)."""
    try:
        schema = pq.read_schema(str(p))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable Parquet file: {e}", file=p) from e
    check_header(schema.names, required, p)
    as_dict = [n for n in dictionary_columns if n in schema.names
               and (pa.types.is_string(schema.field(n).type) or pa.types.is_large_string(schema.field(n).type))]
    try:
        table = pq.read_table(str(p), read_dictionary=as_dict or None)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot read the Parquet file: {e}", file=p) from e
    return table.replace_schema_metadata(None)


def _table_format(path: str | Path, what: str) -> tuple[Path, str]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", file=p)
    if not p.is_file():
        raise InputError(f"{what} is not a file", file=p)
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        return p, "parquet"
    if any(name.endswith(".csv" + ext) for ext in ("", ".gz", ".bz2", ".zst")):
        return p, "csv"
    raise InputError(f"unsupported {what} format: expected .csv or .parquet", file=p)


def read_header(path: str | Path, required: Iterable[str], *, what: str) -> list[str]:
    """The column names of a CSV or Parquet table, checked like :func:`read_table` (no rows read)."""
    p, fmt = _table_format(path, what)
    if fmt == "parquet":
        try:
            names = pq.read_schema(str(p)).names
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"not a readable Parquet file: {e}", file=p) from e
    else:
        names = _csv_header(p)
    check_header(names, required, p)
    return names


def read_table(path: str | Path, required: Iterable[str], *, what: str,
               dictionary_columns: Iterable[str] = ()) -> pa.Table:
    """A CSV (``.csv``, ``.csv.gz|.bz2|.zst``) or Parquet (``.parquet``, ``.pq``) file as one Arrow table.

    ``what`` names the input in errors ("policy register", "loss assessments"). The table
    has one contiguous chunk per column.
    """
    p, fmt = _table_format(path, what)
    if fmt == "parquet":
        table = read_parquet_table(p, required, dictionary_columns=dictionary_columns)
    else:
        table = read_csv_table(p, required, dictionary_columns=dictionary_columns)
    return table.combine_chunks()
