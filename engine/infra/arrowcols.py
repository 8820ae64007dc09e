"""Arrow columns as read from a table, turned into numpy arrays with "missing" and "bad" masks.

Readers and validators of tabular inputs (the policy register, loss assessments) parse
every column the same way: text stays text (integer ids read as their decimal text),
numbers are plain decimals, dates are calendar dates (``2024-02-30`` is not a date, never
rolled over), and an empty or whitespace-only cell is missing. The raw values are kept
for rejects files.

How numbers and dates are written is a file's :class:`TextFormat`: by default ``.`` is
the decimal mark (``1,5`` is not a number) and dates are ISO ``YYYY-MM-DD``; an insurer's
spreadsheet export may say ``decimal: ","`` (then ``1.5`` is not a number: in such a file
it is ambiguous), a thousands separator (``6.000.000``: strictly groups of three digits,
so ``1.5`` is still not a number) and ``date_format: "%d/%m/%Y"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from panen.engine.errors import InputError, Problem

__all__ = ["ISO", "TextFormat", "as_text", "blank", "check_header", "date_column", "datetime_column", "dictionary_codes", "key_column",
           "number_column", "string_buffers", "string_column", "text_column"]

_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
#: Directives a ``date_format`` may use (day, month, 4- or 2-digit year).
DATE_DIRECTIVES = ("%d", "%m", "%Y", "%y")


@dataclass(frozen=True)
class TextFormat:
    """How a text file writes numbers and dates.

    Parameters
    ----------
    decimal
        Decimal mark, ``"."`` or ``","``. With ``","`` a ``.`` in a number is an error
        unless it is the thousands separator.
    thousands
        Thousands separator (``"."``, ``","``, ``" "`` or ``None``): digits must then come
        in groups of three (``6.000.000``; ``60.00`` is not a number).
    date_format
        ``strptime`` pattern of the dates, from %d, %m, %Y, %y and literal separators,
        e.g. ``"%d/%m/%Y"``; day and month may be written with or without a leading zero.
    """

    decimal: str = "."
    thousands: str | None = None
    date_format: str = "%Y-%m-%d"

    def __post_init__(self) -> None:
        if self.decimal not in (".", ","):
            raise ValueError(f"decimal mark must be '.' or ',', got {self.decimal!r}")
        if self.thousands is not None and (self.thousands not in (".", ",", " ") or self.thousands == self.decimal):
            raise ValueError(f"thousands separator must be '.', ',' or ' ' and differ from the decimal mark, "
                             f"got {self.thousands!r}")
        problem = date_format_problem(self.date_format)
        if problem:
            raise ValueError(problem)

    @property
    def plain(self) -> bool:
        return self.decimal == "." and self.thousands is None

    def describe_dates(self) -> str:
        """How dates must be written, for messages: ``an ISO date (YYYY-MM-DD)``."""
        if self.date_format == "%Y-%m-%d":
            return "an ISO date (YYYY-MM-DD)"
        example = self.date_format.replace("%d", "31").replace("%m", "12").replace("%Y", "2024").replace("%y", "24")
        return f"a date written {self.date_format} (e.g. {example})"

    def example_number(self) -> str:
        """``1234.5`` as this format writes it (for messages)."""
        grouped = "1" + (self.thousands or "") + "234"
        return grouped + self.decimal + "5"


def date_format_problem(fmt: str) -> str | None:
    """Why ``fmt`` is not a usable date pattern, or ``None``."""
    import re

    directives = re.findall(r"%.", fmt)
    unknown = [d for d in directives if d not in DATE_DIRECTIVES]
    if unknown:
        return f"date_format {fmt!r} uses {', '.join(unknown)}; allowed: {', '.join(DATE_DIRECTIVES)}"
    have = set(directives)
    if not ("%d" in have and "%m" in have and ({"%Y", "%y"} & have)) or len(directives) != len(have):
        return f"date_format {fmt!r} must name the day (%d), month (%m) and year (%Y or %y) once each"
    if "%" in re.sub(r"%.", "", fmt) or any(ch.isdigit() for ch in re.sub(r"%.", "", fmt)):
        return f"date_format {fmt!r}: only separators may stand between the directives"
    return None


#: The default: ``.`` decimals, ISO dates.
ISO = TextFormat()


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
        hint = " (the header looks semicolon- or tab-separated: say so with the input's `separator:`)"
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
    col = text_column(col, name, file)
    return col, blank(col)


def text_column(col: pa.ChunkedArray, name: str, file: str | Path) -> pa.ChunkedArray:
    """The column as plain strings (integer ids as their decimal text); other types are an error."""
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    t = col.type
    if pa.types.is_large_string(t) or pa.types.is_integer(t):
        col = pc.cast(col, pa.string())
    elif not pa.types.is_string(t):
        raise _unsupported(col, name, file, "text")
    return col


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


def number_column(col: pa.ChunkedArray, name: str, file: str | Path,
                  fmt: TextFormat = ISO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 values, missing mask and unparsable mask of a numeric column.

    Text is parsed with Arrow's cast in one pass; only if that fails are the rows told
    apart (trimmed, matched against a plain decimal pattern — digits, an optional ``.``
    fraction and exponent; ``1,5`` is not a number here — and cast again). With a
    :class:`TextFormat` other than the default, thousands separators (in strict groups
    of three) are removed and the decimal mark made ``.`` first; a ``.`` in a
    decimal-comma file is never read as a decimal point.
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        missing = col.is_null().to_numpy(zero_copy_only=False)
        values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        missing = blank(col)
        if not fmt.plain:
            col = _as_plain_numbers(col, fmt)
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


def _as_plain_numbers(col: pa.ChunkedArray, fmt: TextFormat) -> pa.ChunkedArray:
    """Numbers written in ``fmt`` as plain ``.``-decimal text; text that is not such a number → ``"x"``."""
    import re

    trimmed = pc.utf8_trim_whitespace(col)
    d, k = re.escape(fmt.decimal), re.escape(fmt.thousands) if fmt.thousands else None
    digits = f"([0-9]+({d}[0-9]*)?|{d}[0-9]+)"
    if k:
        digits = f"([0-9]{{1,3}}({k}[0-9]{{3}})+({d}[0-9]*)?|{digits})"
    ok = pc.match_substring_regex(trimmed, f"^[+-]?{digits}([eE][+-]?[0-9]+)?$")
    text = trimmed
    if fmt.thousands:
        text = pc.replace_substring(text, fmt.thousands, "")
    if fmt.decimal != ".":
        text = pc.replace_substring(text, fmt.decimal, ".")
    # an empty cell stays empty (missing); anything else unparsable becomes "x" (bad)
    return pc.if_else(pc.or_kleene(ok, pc.equal(trimmed, "")), text, pa.scalar("x", text.type))


def date_column(col: pa.ChunkedArray, name: str, file: str | Path,
                fmt: TextFormat = ISO) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int64 days since 1970-01-01, missing mask and unparsable mask of a date column.

    Text must be a calendar date in ``fmt.date_format`` (ISO ``YYYY-MM-DD`` by default);
    impossible dates (2024-02-30) are unparsable, never rolled over. With another format,
    day and month may lack their leading zero, and a year before 1900 or after 2199 is
    unparsable (``01/02/24`` read with ``%Y`` is not the year 24).
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        missing = col.is_null().to_numpy(zero_copy_only=False)
        days = pc.cast(col, pa.date32())
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        missing = blank(col)
        if fmt.date_format == ISO.date_format:
            try:
                days = pc.cast(col, pa.date32())
            except pa.ArrowInvalid:
                days = _strict_dates(col, "%Y-%m-%d", unpadded=False)
        else:
            days = _strict_dates(col, fmt.date_format, unpadded=True)
    else:
        raise _unsupported(col, name, file, "dates")
    null = days.is_null().to_numpy(zero_copy_only=False)
    out = pc.fill_null(pc.cast(days, pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return out, missing, ~missing & null


_CLOCK = r"^(?P<date>.*?)(?:[T ]+(?P<hh>[0-9]{1,2}):(?P<mm>[0-9]{2})(?::(?P<ss>[0-9]{2}))?)?$"


def datetime_column(col: pa.ChunkedArray, name: str, file: str | Path,
                    fmt: TextFormat = ISO) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """int64 seconds since 1970-01-01 00:00 (local time as written), time-given mask, missing and unparsable masks.

    Text is a date in ``fmt.date_format`` (read as :func:`date_column` reads it),
    optionally followed by ``T`` or spaces and a clock time ``HH:MM`` or ``HH:MM:SS``
    (00:00 to 23:59:59). A date alone gives 00:00 and ``False`` in the time-given mask, so
    the caller decides what a date without a time means. Times are wall-clock times as
    written, with no time zone: a value carrying a zone or UTC offset (``Z``, ``+07:00``)
    is unparsable, never converted (Indonesia spans WIB, WITA and WIT; a cover period is
    written in the plot's local time). A date or naive timestamp column (Parquet) is taken
    as is; a timestamp with a time zone is read as its wall-clock time in that zone.
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = pc.cast(col, t.value_type), t.value_type
    if pa.types.is_date(t):
        days, missing, bad = date_column(col, name, file, fmt)
        return days * 86_400, np.zeros(len(days), bool), missing, bad
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            col = pc.local_timestamp(col)
        missing = col.is_null().to_numpy(zero_copy_only=False)
        secs = pc.fill_null(pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()), 0).to_numpy(
            zero_copy_only=False).astype(np.int64)
        return secs, secs % 86_400 != 0, missing, np.zeros(len(secs), bool)
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        raise _unsupported(col, name, file, "dates")
    missing = blank(col)
    parts = pc.extract_regex(pc.utf8_trim_whitespace(col), _CLOCK)
    matched = ~parts.is_null().to_numpy(zero_copy_only=False)
    date_text = pc.struct_field(parts, "date")
    if not isinstance(date_text, pa.ChunkedArray):
        date_text = pa.chunked_array([date_text])
    days, _, bad_day = date_column(pc.fill_null(date_text, ""), name, file, fmt)

    def number(field: str) -> np.ndarray:
        v = pc.fill_null(pc.struct_field(parts, field), "")
        v = pc.if_else(pc.equal(v, ""), "0", v)
        return pc.cast(v, pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64)

    hh, mm, ss = number("hh"), number("mm"), number("ss")
    hh_text = pc.fill_null(pc.struct_field(parts, "hh"), "")
    has_time = pc.not_equal(hh_text, "").to_numpy(zero_copy_only=False)
    clock_ok = (hh < 24) & (mm < 60) & (ss < 60)
    bad = ~missing & (~matched | bad_day | ~clock_ok)
    secs = np.where(bad | missing, 0, days * 86_400 + hh * 3600 + mm * 60 + ss)
    return secs, has_time & ~bad & ~missing, missing, bad


_LEADING_ZERO = r"(^|[^0-9])0+([0-9])"


def _strict_dates(col: pa.ChunkedArray, pattern: str, *, unpadded: bool) -> pa.ChunkedArray:
    """date32 of the texts that are real dates in ``pattern`` (parsed, then written back the same), else null."""
    trimmed = pc.utf8_trim_whitespace(col)
    stamp = pc.strptime(trimmed, format=pattern, unit="s", error_is_null=True)
    back = pc.strftime(stamp, format=pattern)
    if unpadded:  # 1/2/2024 and 01/02/2024 are the same date; 30/02/2024 is no date at all
        back = pc.replace_substring_regex(back, _LEADING_ZERO, "\\1\\2")
        given = pc.replace_substring_regex(trimmed, _LEADING_ZERO, "\\1\\2")
        year = pc.year(stamp)
        plausible = pc.and_(pc.greater_equal(year, 1900), pc.less(year, 2200))
        same = pc.and_kleene(pc.equal(back, given), plausible)
    else:
        same = pc.equal(back, trimmed)
    return pc.cast(pc.if_else(pc.fill_null(same, False), stamp, pa.scalar(None, stamp.type)), pa.date32())


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
