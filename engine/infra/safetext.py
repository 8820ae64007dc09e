"""Text that moves money: one identity for keys, and CSV cells a spreadsheet cannot run.

Keys
    Policy, farmer, district, product, group and plot ids are compared (duplicates, joins,
    payees) only after :func:`normalise_keys`: invisible characters removed (zero-width
    space, joiners, word joiner, BOM, soft hyphen: U+200B–U+200D, U+2060–U+2064, U+FEFF,
    U+00AD), Unicode NFKC (full-width ``Ｐ００１`` is ``P001``, a no-break space is a space),
    and surrounding white space trimmed. ``"P001 "``, ``"P0\\u200b01"`` and ``"\\ufeffP001"``
    are then all ``P001``, and the ledger and payments carry ``P001``.

    A key that still holds a control character (NUL, tab, line break, DEL, C1) or a
    bidirectional or line-separator format character (U+200E, U+200F, U+2028–U+202E,
    U+2066–U+2069, which make text display in another order than it is stored) is *bad*;
    a key that begins with ``=``, ``+``, ``-`` or ``@`` is *unsafe* — a spreadsheet opening
    the CSV would run it as a formula — unless it is a plain signed number (``-12``,
    ``+6281234567``, which a spreadsheet reads as the same number). Readers reject both
    (reasons ``bad_key`` and ``unsafe_text``): keys are never rewritten to be made safe,
    so ``payouts.parquet`` and ``payouts.csv`` always carry the same ids.

CSV cells
    Every text cell panen writes to a CSV passes :func:`csv_safe_text`: control and
    invisible format characters are shown as escapes (``\\x00``, ``\\n``, ``\\u202e``: a
    cell is one line of text, and what it holds is visible), and a cell that begins with a
    formula character (``= + - @``, their full-width forms, or a tab / carriage return) and
    is not a plain signed number gets a leading ``'``, which spreadsheets read as "this is
    text". Only free text can need this (reject messages and the raw values they echo,
    peril names as written); keys were checked when read.

Everything is vectorised: a numba pass over the string bytes finds the few rows that need
work (none, in a clean file), and only those go through Arrow's Unicode kernels.

References: OWASP, "CSV Injection"; Unicode Standard Annex #15 (normalization forms),
#31 (identifiers: default-ignorable and bidirectional format characters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

__all__ = ["NormalisedKeys", "csv_safe_table", "csv_safe_text", "formula_like", "line_breaks",
           "normalise_key_dictionary", "normalise_keys"]

#: Removed from keys before any comparison (they are invisible).
INVISIBLE = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"
#: Never allowed in a key (control characters; bidirectional and line-separator formatting).
_FORMAT = "\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_RE = "[" + INVISIBLE + "]"
_BAD_KEY_RE = "[\\x00-\\x1f\\x7f-\\x9f" + _FORMAT + "]"
#: A cell starting with one of these is run as a formula by spreadsheets (OWASP; the
#: full-width forms by some East Asian spreadsheet locales).
FORMULA_START = "=+-@\t\r\uff1d\uff0b\uff0d\uff20"
_FORMULA_START_RE = "^[=+\\-@\\t\\r\uff1d\uff0b\uff0d\uff20]"
#: ...unless it is a plain signed number, which a spreadsheet reads as that number.
_SIGNED_NUMBER_RE = "^[+-][0-9]+([.,][0-9]+)?$"

_CTRL, _NONASCII, _EDGE_SPACE, _FORMULA = 1, 2, 4, 8


@njit(nogil=True, cache=True)
def _edge_flags(offsets, data):  # pragma: no cover - numba
    """Per string of printable ASCII: space at either end (4), formula first byte (8)."""
    n = offsets.shape[0] - 1
    out = np.zeros(n, np.uint8)
    for i in range(n):
        s = offsets[i]
        e = offsets[i + 1]
        if e > s:
            first = data[s]
            f = 0
            if first == 61 or first == 43 or first == 45 or first == 64:  # = + - @
                f = 8
            if first == 32 or data[e - 1] == 32:
                f |= 4
            out[i] = f
    return out


@njit(nogil=True, cache=True)
def _row_flags(offsets, data):  # pragma: no cover - numba
    """:func:`_edge_flags`, plus a control byte (1) or a non-ASCII byte (2) anywhere."""
    out = _edge_flags(offsets, data)
    for i in range(offsets.shape[0] - 1):
        ctrl = False
        high = 0
        for k in range(offsets[i], offsets[i + 1]):
            b = data[k]
            ctrl |= (b < 32) | (b == 127)
            high |= b
        out[i] |= np.uint8(ctrl) | np.uint8((high >> 7) << 1)
    return out


def _flags(arr: pa.Array) -> np.ndarray:
    """Per string: the ``_CTRL | _NONASCII | _EDGE_SPACE | _FORMULA`` bits (a byte scan)."""
    n = len(arr)
    buffers = arr.buffers()
    if n == 0 or buffers[2] is None:
        return np.zeros(n, np.uint8)
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset: arr.offset + n + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    offsets = offsets - offsets[0] if offsets[0] else offsets
    if data.size == 0:
        return np.zeros(n, np.uint8)
    if data.min() >= 32 and data.max() < 127:  # printable ASCII (a clean file): only the ends matter
        return _edge_flags(offsets, data)
    return _row_flags(offsets, data)


def _one_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    return values


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)


@dataclass(frozen=True)
class NormalisedKeys:
    """Keys after :func:`normalise_keys`, and which of them cannot be used.

    Attributes
    ----------
    values
        The normalised keys (a string array, nulls kept; a key of nothing but white space
        and invisible characters becomes ``""``).
    bad
        Holds a control or bidirectional/line-separator format character.
    unsafe
        Begins with a formula character and is not a plain signed number.
    changed
        Normalisation changed the key (trailing space, invisible character, NFKC).
    missing
        Null, or empty once normalised (nothing but white space and invisible characters).
    """

    values: pa.Array
    bad: np.ndarray
    unsafe: np.ndarray
    changed: np.ndarray
    missing: np.ndarray


def normalise_keys(values: pa.Array | pa.ChunkedArray) -> NormalisedKeys:
    """Keys as they are compared: invisible characters removed, NFKC, trimmed; bad and unsafe marked.

    Only rows with a non-ASCII or control byte go through the Unicode kernels; rows of
    printable ASCII are at most trimmed. A clean column is returned as it is.

    >>> k = normalise_keys(pa.array(["P001 ", "P0\\u200b01", "\\ufeffP001", "Ｐ００１", "P\\x0001", "=1+2", "-5"]))
    >>> k.values.to_pylist()[:4], k.bad.tolist()[4], k.unsafe.tolist()[5:]
    (['P001', 'P001', 'P001', 'P001'], True, [True, False])
    """
    arr = _one_array(values)
    n = len(arr)
    flags = _flags(arr)
    seen = int(np.bitwise_or.reduce(flags)) if n else 0  # every flag any row has: clean columns stop here
    bad = np.zeros(n, bool)
    out = arr
    changed = np.zeros(n, bool)
    if seen & (_CTRL | _NONASCII | _EDGE_SPACE):
        work = (flags & (_CTRL | _NONASCII | _EDGE_SPACE)) != 0
        part = arr.take(pa.array(np.flatnonzero(work)))
        # invisible characters out, NFKC, then the ends trimmed of plain white space (space,
        # tab, CR, LF, FF) before looking for control characters: a trailing tab is
        # trimmed, a trailing NUL or information separator is bad
        folded = pc.utf8_normalize(pc.replace_substring_regex(part, _INVISIBLE_RE, ""), "NFKC")
        trimmed = pc.replace_substring_regex(folded, "^[ \\t\\n\\r\\f]+|[ \\t\\n\\r\\f]+$", "")
        bad[work] = _mask(pc.match_substring_regex(trimmed, _BAD_KEY_RE))
        fixed = pc.utf8_trim_whitespace(trimmed)  # other Unicode spaces (NFKC made most of them ' ')
        out = pc.replace_with_mask(arr, pa.array(work), fixed)
        flags = _flags(out)
        seen = int(np.bitwise_or.reduce(flags))
        changed[work] = ~_mask(pc.equal(fixed, part))
    unsafe = _formula_rows(out, flags) if seen & _FORMULA else np.zeros(n, bool)
    return NormalisedKeys(values=out, bad=bad, unsafe=unsafe, changed=changed, missing=_empty(out))


def _empty(arr: pa.Array) -> np.ndarray:
    """Null or zero-length (normalised keys are trimmed: a blank one is empty)."""
    n = len(arr)
    buffers = arr.buffers()
    if n == 0:
        return np.zeros(0, bool)
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[arr.offset: arr.offset + n + 1]
    out = offsets[1:] == offsets[:-1]
    if arr.null_count:
        out |= arr.is_null().to_numpy(zero_copy_only=False)
    return out


def _formula_rows(arr: pa.Array, flags: np.ndarray) -> np.ndarray:
    """Rows whose (already normalised, ASCII-first) text starts a formula and is no plain number."""
    unsafe = np.zeros(len(arr), bool)
    candidates = np.flatnonzero((flags & _FORMULA) != 0)
    if candidates.size:
        number = _mask(pc.match_substring_regex(arr.take(pa.array(candidates)), _SIGNED_NUMBER_RE))
        unsafe[candidates] = ~number
    return unsafe


def normalise_key_dictionary(codes: np.ndarray, values: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """:func:`normalise_keys` on a dictionary-encoded key column (work on the dictionary only).

    Parameters
    ----------
    codes
        int32 dictionary codes per row, -1 for null.
    values
        The dictionary (string array).

    Returns
    -------
    codes, values, bad, unsafe
        New codes into a dictionary of distinct normalised keys (two entries that
        normalise alike, ``"3271"`` and ``"3271 "``, become one), and per-row masks.
    """
    keys = normalise_keys(values)
    n = len(codes)
    bad_row = np.append(keys.bad, False)[codes] if keys.bad.any() else np.zeros(n, bool)
    unsafe_row = np.append(keys.unsafe, False)[codes] if keys.unsafe.any() else np.zeros(n, bool)
    if not keys.changed.any():
        return codes, keys.values, bad_row, unsafe_row
    unique = pc.unique(keys.values)
    remap = pc.index_in(keys.values, value_set=unique).to_numpy(zero_copy_only=False).astype(np.int32)
    new_codes = np.where(codes >= 0, np.append(remap, -1)[codes], -1).astype(np.int32)
    return new_codes, unique, bad_row, unsafe_row


def line_breaks(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each text holds a line break (LF or CR) — a value that spans lines of its file.

    >>> line_breaks(pa.array(["a", "b\\nc", None, "d\\r"])).tolist()
    [False, True, False, True]
    """
    arr = _one_array(values)
    rows = np.flatnonzero((_flags(arr) & _CTRL) != 0)
    out = np.zeros(len(arr), bool)
    if rows.size:
        out[rows] = _mask(pc.match_substring_regex(arr.take(pa.array(rows)), "[\\r\\n]"))
    return out


def formula_like(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each text would be run as a formula by a spreadsheet (see the module docstring).

    >>> formula_like(pa.array(["=HYPERLINK(1)", "+62812", "@x", "-", "P-1", None, "\\tcmd"])).tolist()
    [True, False, True, True, False, False, True]
    """
    arr = _one_array(values)
    starts = _mask(pc.match_substring_regex(arr, _FORMULA_START_RE))
    if not starts.any():
        return starts
    at = np.flatnonzero(starts)
    starts[at] = ~_mask(pc.match_substring_regex(arr.take(pa.array(at)), _SIGNED_NUMBER_RE))
    return starts


_ESCAPES: dict[str, str] = {chr(c): f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({"\t": "\\t", "\n": "\\n", "\r": "\\r"})
_ESCAPES.update({ch: f"\\u{ord(ch):04x}" for ch in INVISIBLE + _FORMAT})
_ESCAPE_RE = "[\\x00-\\x1f\\x7f-\\x9f" + INVISIBLE + _FORMAT + "]"


def csv_safe_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Text as it is written to a CSV cell: invisible characters escaped, formulas defused.

    Control and invisible format characters become visible escapes (``\\x00``, ``\\t``,
    ``\\n``, ``\\u200b``); then a cell that begins with ``= + - @`` (or a full-width form)
    and is not a plain signed number gets a leading ``'`` (a leading tab or carriage
    return is already an escape by then, which no spreadsheet runs). Clean text is
    returned as it is (a byte scan finds the cells that need work).

    >>> csv_safe_text(pa.array(["=1+2", "-5", "P\\x00\\n1", "ok", "\\t=cmd"])).to_pylist()
    ["'=1+2", '-5', 'P\\\\x00\\\\n1', 'ok', '\\\\t=cmd']
    """
    arr = _one_array(values)
    flags = _flags(arr)
    unicode_rows = (flags & (_CTRL | _NONASCII)) != 0
    out = arr
    if unicode_rows.any():
        at = np.flatnonzero(unicode_rows)
        part = arr.take(pa.array(at))
        hit = _mask(pc.match_substring_regex(part, _ESCAPE_RE))
        if hit.any():
            rows = at[hit]
            texts = arr.take(pa.array(rows)).to_pylist()  # only the (rare) cells holding such characters
            table = str.maketrans(_ESCAPES)
            fixed = pa.array([t.translate(table) for t in texts], pa.string())
            mask = np.zeros(len(arr), bool)
            mask[rows] = True
            out = pc.replace_with_mask(arr, pa.array(mask), fixed)
            flags = _flags(out)
            unicode_rows = (flags & _NONASCII) != 0
    # formula starts: ASCII first bytes (numba flags), full-width ones among non-ASCII rows
    formula = _formula_rows(out, flags)
    wide = np.flatnonzero(unicode_rows)
    if wide.size:
        formula[wide] |= formula_like(out.take(pa.array(wide)))
    if formula.any():
        at = pa.array(np.flatnonzero(formula))
        prefixed = pc.binary_join_element_wise("'", out.take(at), "")
        out = pc.replace_with_mask(out, pa.array(formula), prefixed)
    return out


def csv_safe_table(table: pa.Table) -> pa.Table:
    """Every text column (dictionary-encoded ones by their dictionary) through :func:`csv_safe_text`."""
    columns = []
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
            chunks = []
            for chunk in col.chunks:
                safe = csv_safe_text(chunk.dictionary)
                chunks.append(pa.DictionaryArray.from_arrays(chunk.indices, safe))
            col = pa.chunked_array(chunks, type=pa.dictionary(t.index_type, pa.string())) if chunks else col
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = pa.chunked_array([csv_safe_text(c) for c in col.chunks], type=pa.string()) \
                if col.num_chunks else col.cast(pa.string())
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)
