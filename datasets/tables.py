"""Reading tabular inputs (CSV or Parquet) with a checked header, every column as read.

Shared by the policy register and the loss-assessment readers: a missing file, an
unreadable file or a missing/duplicated required column is an :class:`InputError` naming
the file and column (the whole file is refused, exit code 2); everything row-level is left
to the caller, which turns bad rows into rejects. CSV columns are read as text, so a bad
number becomes a row reject rather than a failed read.

An insurer's own export is read as it is, with :class:`TableOptions` (the ``separator``,
``encoding``, ``decimal``, ``thousands``, ``date_format`` and ``columns`` keys of an
input's config section): ``;``-separated, decimal commas, ``dd/mm/yyyy`` dates, a cp1252
file, and its own headers mapped onto panen's (``columns: {kode_kabupaten: district_id}``).

Locations are text lines (:mod:`panen.datasets.csvlines`): a CSV that cannot be parsed —
a record with another number of fields than the header, a quote never closed, a byte that
is not text in the file's encoding — is refused naming the file, the line and (where it
can be told) the column; rejected rows carry their line through :class:`LocatedTable`.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from panen.engine.errors import InputError, Problem
from panen.engine.infra.arrowcols import ISO, TextFormat, check_header
from panen.engine.infra.safetext import INVISIBLE

from .csvlines import RecordLines, decode_error_offset, locate_offset, scan_records

__all__ = ["LocatedTable", "TableOptions", "encoding_problem", "read_csv_table", "read_header", "read_located",
           "read_parquet_table", "read_table", "separator_problem"]

_DICT_TYPE = pa.dictionary(pa.int32(), pa.string())
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def separator_problem(sep: str) -> str | None:
    """Why ``sep`` cannot separate CSV fields, or ``None``."""
    if sep not in _SEPARATORS:
        return f"separator must be one of {', '.join(repr(s) for s in _SEPARATORS)}, got {sep!r}"
    return None


def encoding_problem(encoding: str) -> str | None:
    """Why ``encoding`` cannot be read, or ``None``. Encodings must keep ASCII as ASCII
    (UTF-8, latin-1, cp1252, ...): line ends, quotes and separators are found in the bytes."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        return f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)"
    sample = ",;|\t\"\r\nAZaz09"
    try:
        same = sample.encode(info.name) == sample.encode("ascii") and info.name not in ("utf-16", "utf-32")
    except (UnicodeError, LookupError):
        same = False
    if not same or info.name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
        return f"encoding {encoding!r} does not keep ASCII as ASCII; convert the file to UTF-8 (or cp1252, latin-1)"
    return None


@dataclass(frozen=True)
class TableOptions:
    """How a table file is written: separator, encoding, number and date formats, its own headers.

    Parameters
    ----------
    separator
        Field separator of a CSV: ``,`` (default), ``;``, tab or ``|``.
    encoding
        Text encoding of a CSV (``utf-8`` default; ``cp1252`` or ``latin-1`` for many
        spreadsheet exports). A UTF-8 byte-order mark is ignored.
    columns
        ``{the file's header: panen's column}``, e.g. ``{kode_kabupaten: district_id}``;
        other columns keep their names.
    text
        How numbers and dates are written (:class:`~panen.engine.infra.arrowcols.TextFormat`).
    """

    separator: str = ","
    encoding: str = "utf-8"
    columns: Mapping[str, str] = field(default_factory=dict)
    text: TextFormat = ISO

    def __post_init__(self) -> None:
        problem = separator_problem(self.separator) or encoding_problem(self.encoding)
        if problem:
            raise ValueError(problem)
        targets = list(self.columns.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"columns: more than one column is mapped to {', '.join(map(repr, twice))}")

    @property
    def codec(self) -> str:
        """Python's name of the encoding (``utf-8``, ``cp1252``, ``iso8859-1``)."""
        return codecs.lookup(self.encoding).name

    @property
    def arrow_encoding(self) -> str:
        # Arrow reads UTF-8 natively only under this exact name; anything else is transcoded
        return "utf8" if self.codec in ("utf-8", "utf-8-sig") else self.codec


@dataclass(frozen=True)
class LocatedTable:
    """A table as read, with what locates its rows in the file.

    Attributes
    ----------
    path
        The file.
    table
        Every column as read (CSV: text), named as panen names them (after ``columns:``);
        one contiguous chunk per column. Row ``i`` is data row ``i + 1``.
    lines
        0-based rows → 1-based text lines (:class:`~panen.datasets.csvlines.RecordLines`);
        ``None`` for Parquet.
    source_columns
        panen's column → the file's header, for the columns ``columns:`` renamed.
    text
        How the file writes numbers and dates.
    """

    path: Path
    table: pa.Table
    lines: RecordLines | None = None
    source_columns: Mapping[str, str] = field(default_factory=dict)
    text: TextFormat = ISO


def _clean_name(name: str) -> str:
    """A header cell as a column name: invisible characters and surrounding space removed, NFKC."""
    name = name.translate({ord(ch): None for ch in INVISIBLE})
    return unicodedata.normalize("NFKC", name).strip()


_HEADER_MAX = 1 << 20  # [bytes] a header line is read whole up to this
_NAME_MAX = 1024  # [characters] a column name longer than this is no column name


def _csv_header(p: Path, options: TableOptions) -> list[str]:
    """Column names of a CSV (optionally compressed), from its first line."""
    try:
        with pa.input_stream(str(p), compression="detect") as stream:
            head = stream.read(_HEADER_MAX)
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read the file: {e}", file=p) from e
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    first_line = head[: min(ends)] if ends else head
    codec = "utf-8-sig" if options.codec == "utf-8" else options.codec
    try:
        text = first_line.decode(codec)
    except UnicodeDecodeError as e:
        column = _header_field(first_line[: e.start], options)
        raise InputError(Problem(f"the header is not {options.codec} text (byte {_hex(first_line[e.start:e.end])}); "
                                 f"set the input's `encoding:` (e.g. cp1252)", file=p, row=None, column=column,
                                 line=1)) from e
    if not text.strip():
        raise InputError(Problem("the file is empty: no header row" if not head.strip()
                                 else "line 1 is blank: the header (the column names) must be the first line",
                                 file=p, line=1))
    if text.count('"') % 2:
        raise InputError(Problem("the header has a quote that is not closed on its line", file=p, line=1))
    if not ends and len(head) >= _HEADER_MAX:
        raise InputError(Problem(f"line 1 (the header) is longer than {_HEADER_MAX // 1024} KiB without a line end: "
                                 "not a table's header", file=p, line=1))
    try:
        # the header line is bounded above, so the csv module's per-field limit can be its length
        header = next(csv.reader(io.StringIO(text), delimiter=options.separator), None) or []
    except csv.Error as e:
        why = "a column name is longer than 128 KiB" if "field limit" in str(e) else str(e)
        raise InputError(Problem(f"the header cannot be read as {options.separator!r}-separated CSV: {why}",
                                 file=p, line=1)) from e
    names = [_clean_name(h) for h in header]
    too_long = [i + 1 for i, n in enumerate(names) if len(n) > _NAME_MAX]
    if too_long:
        raise InputError(Problem(f"column {too_long[0]}'s name is {len(names[too_long[0] - 1]):,} characters long "
                                 f"(at most {_NAME_MAX}): not a column name", file=p, line=1,
                                 column=f"column {too_long[0]}"))
    return names


def _header_field(prefix: bytes, options: TableOptions) -> str | None:
    try:
        cells = next(csv.reader(io.StringIO(prefix.decode("latin-1")), delimiter=options.separator), [])
    except csv.Error:
        return None
    return f"column {len(cells) or 1}"


def _hex(b: bytes) -> str:
    return " ".join(f"0x{x:02x}" for x in b) or "?"


def _mapped_names(p: Path, names: list[str], required: Iterable[str], options: TableOptions) -> list[str]:
    """The file's names after ``columns:``; every mapping's source must be in the header."""
    problems = [Problem(f"`columns:` maps {src!r} to {dst!r}, but the header has no column {src!r} "
                        f"(it has: {', '.join(names)})", file=p, column=src, line=1)
                for src, dst in options.columns.items() if src not in names]
    mapped = [options.columns.get(n, n) for n in names]
    for src, dst in options.columns.items():
        if src in names and dst in names and dst != src and dst not in options.columns:
            problems.append(Problem(f"`columns:` maps {src!r} to {dst!r}, but the file already has a column "
                                    f"{dst!r}", file=p, column=dst, line=1))
    if problems:
        raise InputError(problems)
    _check_header(mapped, required, p, names, options)
    return mapped


def _check_header(names: list[str], required: Iterable[str], p: Path, original: list[str],
                  options: TableOptions) -> None:
    try:
        check_header(names, required, p)
    except InputError as e:
        problems = []
        for prob in e.problems:
            message = prob.message
            if "is missing" in message and "separated" not in message:
                message += (f"; the file's columns are {', '.join(original)}" if original else "")
                message += f" (a column of another name is mapped with `columns: {{its_name: {prob.column}}}`)"
            problems.append(Problem(message, file=prob.file, column=prob.column, line=1))
        raise InputError(problems) from None


def read_csv_table(p: Path, required: Iterable[str], *, dictionary_columns: Iterable[str] = (),
                   options: TableOptions = TableOptions()) -> pa.Table:
    """A CSV (optionally compressed) as an Arrow table of text columns (keys dictionary-encoded),
    written as ``options`` say, columns named after ``options.columns``."""
    return _read_csv(p, required, dictionary_columns, options)[0]


def _read_csv(p: Path, required: Iterable[str], dictionary_columns: Iterable[str],
              options: TableOptions) -> tuple[pa.Table, list[str]]:
    original = _csv_header(p, options)
    names = _mapped_names(p, original, required, options)
    keys = set(dictionary_columns)
    types = {n: (_DICT_TYPE if n in keys else pa.string()) for n in names}
    try:
        table = pcsv.read_csv(
            str(p),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, encoding=options.arrow_encoding),
            # quoted line breaks are values: without this Arrow may split a block inside a
            # quoted value and read the rest of it as records
            parse_options=pcsv.ParseOptions(delimiter=options.separator, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                null_values=[""], quoted_strings_can_be_null=True),
        )
    except (pa.ArrowException, OSError, UnicodeError) as e:
        raise _located_error(p, names, original, options, e) from e
    return table, original


def _located_error(p: Path, names: list[str], original: list[str], options: TableOptions,
                   error: BaseException) -> InputError:
    """Why a CSV cannot be parsed, with the line (and column) where it goes wrong."""
    try:
        bad = decode_error_offset(p, options.codec)
    except InputError as e:
        return e
    if bad is not None:
        offset, raw = bad
        at = locate_offset(p, options.separator, offset)
        column = original[at.field] if at.record_line and at.field < len(original) else None
        hint = "set the input's `encoding:` (spreadsheet exports are often cp1252)" \
            if options.codec == "utf-8" else "check the input's `encoding:`"
        return InputError(Problem(f"byte {_hex(raw)} is not {options.codec} text; {hint}", file=p,
                                  column=column, line=at.line))
    scan = scan_records(p, options.separator)
    wrong = [i for i in range(1, scan.fields.size) if scan.fields[i] != len(names)][:1]
    if wrong:
        i = wrong[0]
        sep = _SEPARATORS[options.separator]
        return InputError(Problem(f"this record has {int(scan.fields[i])} fields, the header {len(names)} "
                                  f"(separator: {sep}; a value holding the separator must be quoted)",
                                  file=p, line=int(scan.lines[i])))
    if scan.in_quotes:
        return InputError(Problem("a quoted value starting in this record is never closed", file=p,
                                  line=int(scan.record_line or scan.line)))
    return InputError(Problem(f"cannot parse the CSV: {type(error).__name__}", file=p))


def read_parquet_table(p: Path, required: Iterable[str], *, dictionary_columns: Iterable[str] = (),
                       options: TableOptions = TableOptions()) -> pa.Table:
    """A Parquet file as an Arrow table in its own types (string keys dictionary-encoded)."""
    try:
        schema = pq.read_schema(str(p))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable Parquet file: {e}", file=p) from e
    names = _mapped_names(p, list(schema.names), required, options)
    source = {new: old for old, new in zip(schema.names, names)}
    as_dict = [source[n] for n in dictionary_columns if n in source
               and (pa.types.is_string(schema.field(source[n]).type)
                    or pa.types.is_large_string(schema.field(source[n]).type))]
    try:
        table = pq.read_table(str(p), read_dictionary=as_dict or None)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"cannot read the Parquet file: {e}", file=p) from e
    return table.replace_schema_metadata(None).rename_columns(names)


def _table_format(path: str | Path, what: str) -> tuple[Path, str]:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", file=p)
    if not p.is_file():
        raise InputError(f"{what} is not a file", file=p)
    name = p.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return p, "parquet"
    if any(name.endswith(".csv" + ext) for ext in ("", ".gz", ".bz2", ".zst")):
        return p, "csv"
    raise InputError(f"unsupported {what} format: expected .csv or .parquet", file=p)


def read_header(path: str | Path, required: Iterable[str], *, what: str,
                options: TableOptions = TableOptions()) -> list[str]:
    """The column names of a CSV or Parquet table, checked like :func:`read_table` (no rows read)."""
    p, fmt = _table_format(path, what)
    if fmt == "parquet":
        try:
            names = pq.read_schema(str(p)).names
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"not a readable Parquet file: {e}", file=p) from e
    else:
        names = _csv_header(p, options)
    return _mapped_names(p, list(names), required, options)


def read_located(path: str | Path, required: Iterable[str], *, what: str, dictionary_columns: Iterable[str] = (),
                 options: TableOptions = TableOptions()) -> LocatedTable:
    """A CSV (``.csv``, ``.csv.gz|.bz2|.zst``) or Parquet (``.parquet``, ``.pq``) file, with its rows' lines.

    ``what`` names the input in errors ("policy register", "loss assessments"). The table
    has one contiguous chunk per column, named after ``options.columns``.
    """
    p, fmt = _table_format(path, what)
    if fmt == "parquet":
        table = read_parquet_table(p, required, dictionary_columns=dictionary_columns, options=options)
        lines = None
    else:
        lines = RecordLines.of(p, options.separator)
        table, _ = _read_csv(p, required, dictionary_columns, options)
        lines.rows = table.num_rows
    # every source of `columns:` is in the header (checked when reading it)
    source = {dst: src for src, dst in options.columns.items() if src != dst}
    return LocatedTable(path=p, table=table.combine_chunks(), lines=lines, source_columns=source, text=options.text)


def read_table(path: str | Path, required: Iterable[str], *, what: str,
               dictionary_columns: Iterable[str] = (), options: TableOptions = TableOptions()) -> pa.Table:
    """:func:`read_located`'s table alone."""
    return read_located(path, required, what=what, dictionary_columns=dictionary_columns, options=options).table
