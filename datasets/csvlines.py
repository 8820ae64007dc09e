"""Where a CSV record is in the file as a person sees it: its line, and the column of a byte.

Arrow's CSV reader numbers nothing: a reject or an error must still name the line a
person finds in a text editor. This module re-reads the bytes with the same rules as the
reader (``pyarrow.csv`` with ``newlines_in_values=True`` and ``ignore_empty_lines``):

* a line ends at LF, CR or CRLF — also inside a quoted value, which therefore spans lines;
* a record *starts* on the line given for it (a quoted line break makes the next record
  start further down: lines are text lines, not records);
* empty lines (no characters at all) are no record and are counted as lines;
* a ``"`` opens a quoted value only at the start of a field; inside, ``""`` is a quote;
* line 1 is the header.

The scan is a numba kernel over the raw (decompressed, not decoded) bytes, in blocks. It
runs only when something must be located — a rejected row, a malformed record, a byte
that is not text in the file's encoding — so a clean file is never read twice. Encodings
are ASCII-compatible (checked in the config), so separators, quotes and line ends are the
same bytes in every one of them.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from numba import njit

from panen.engine.errors import InputError

__all__ = ["Located", "RecordLines", "count_line_breaks", "decode_error_offset", "locate_offset", "scan_records"]

_BLOCK = 1 << 22

# state slots carried from block to block
_LINE, _IN_QUOTES, _FIELD_START, _OPEN, _FIELDS, _PREV_CR, _RECORDS, _QUOTE_PENDING, _RECORD_LINE, _DONE = range(10)


def _new_state() -> np.ndarray:
    st = np.zeros(10, np.int64)
    st[_LINE] = 1
    return st


@njit(nogil=True, cache=True)
def _scan(buf, base, sep, st, out_line, out_fields, want, stop):  # pragma: no cover - numba
    """Advance the record state over ``buf`` (absolute offset ``base``).

    Completed records are written to ``out_line`` / ``out_fields`` (index = record number
    within this call) until ``want`` records in total are done. ``stop`` (absolute
    offset, -1 for none): return just before that byte, with the state describing it.
    Returns the number of records written. The state lives in locals while scanning and
    is stored back in ``st`` on return.
    """
    line = st[_LINE]
    in_quotes = st[_IN_QUOTES]
    field_start = st[_FIELD_START]
    is_open = st[_OPEN]
    fields = st[_FIELDS]
    prev_cr = st[_PREV_CR]
    records = st[_RECORDS]
    pending = st[_QUOTE_PENDING]
    record_line = st[_RECORD_LINE]
    done = 0
    emitted = 0
    n = buf.shape[0]
    if records >= want:
        n = 0
        done = 1
    if stop >= 0 and stop - base < n:
        n = max(stop - base, 0)
        done = 1
    i = -1
    while True:
        i += 1
        if i >= n:
            break
        c = buf[i]
        was_cr = prev_cr
        prev_cr = 0
        if in_quotes == 1:
            if pending == 1:
                pending = 0
                if c == 34:  # "" inside quotes: a literal quote
                    continue
                in_quotes = 0  # the quote closed the value; this byte is outside it
            else:
                if c == 34:
                    pending = 1
                elif c == 13:
                    line += 1
                    prev_cr = 1
                elif c == 10:
                    if was_cr == 0:
                        line += 1
                else:  # the common case: quoted text up to the next quote or line end
                    while i + 1 < n:
                        d = buf[i + 1]
                        if d == 34 or d == 10 or d == 13:
                            break
                        i += 1
                continue
        if is_open == 0:
            if c == 10:
                if was_cr == 0:  # an empty line (the LF of a CRLF was counted at its CR)
                    line += 1
                continue
            if c == 13:
                line += 1
                prev_cr = 1
                continue
            is_open = 1
            record_line = line
            fields = 1
            field_start = 1
        if c == sep:
            fields += 1
            field_start = 1
        elif c == 10 or c == 13:
            out_line[emitted] = record_line
            out_fields[emitted] = fields
            emitted += 1
            records += 1
            is_open = 0
            line += 1
            if c == 13:
                prev_cr = 1
            if records >= want:
                done = 1
                break
        elif c == 34 and field_start == 1:
            in_quotes = 1
            field_start = 0
        else:
            field_start = 0
            # the common case: ordinary bytes up to the next separator, quote or line end
            while i + 1 < n:
                d = buf[i + 1]
                if d == sep or d == 10 or d == 13 or d == 34:
                    break
                i += 1
    st[_LINE] = line
    st[_IN_QUOTES] = in_quotes
    st[_FIELD_START] = field_start
    st[_OPEN] = is_open
    st[_FIELDS] = fields
    st[_PREV_CR] = prev_cr
    st[_RECORDS] = records
    st[_QUOTE_PENDING] = pending
    st[_RECORD_LINE] = record_line
    st[_DONE] = done
    return emitted


def _open(path: Path):
    try:
        return pa.input_stream(str(path), compression="detect")
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"cannot read the file: {e}", file=path) from e


@dataclass
class Located:
    """Where the scan stopped: the records before it and the position in the current one."""

    lines: np.ndarray      # start line of each completed record (record 0 = the header)
    fields: np.ndarray     # its number of fields
    line: int              # the line being read at the stop
    record_line: int       # start line of the record being read (0 if between records)
    field: int             # 0-based field index in that record
    in_quotes: bool        # the scan ended inside a quoted value


def _plain_block(block: bytes, buf: np.ndarray, sep: int, st: np.ndarray, limit: int) -> np.ndarray | None:
    """Record start lines of a block without quotes (vectorised), or ``None`` when the kernel must do it.

    A block qualifies when no value is open in quotes, it holds no ``"`` at all, and every
    CR is the first half of a CRLF inside it: then every LF ends a line, and a line with
    anything before its line end is (the end of) a record. Field counts are not kept.
    """
    if st[_IN_QUOTES] or st[_QUOTE_PENDING] or st[_PREV_CR] or buf.size == 0:
        return None
    if block.endswith(b"\r") or b'"' in block:
        return None
    cr = np.flatnonzero(buf == 13)
    if cr.size and (cr[-1] + 1 >= buf.size or (buf[cr + 1] != 10).any()):
        return None
    nl = np.flatnonzero(buf == 10)
    line, is_open = int(st[_LINE]), int(st[_OPEN])
    if nl.size == 0:  # one unfinished line
        if not is_open:
            st[_OPEN], st[_RECORD_LINE] = 1, line
        st[_FIELD_START] = int(buf[-1] == sep)  # a quote next would open a quoted value
        return np.zeros(0, np.int64)
    starts = np.empty(nl.size, np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    content = nl - starts - (buf[np.maximum(nl - 1, 0)] == 13) * (nl > starts) > 0
    record_line = line + np.arange(nl.size, dtype=np.int64)
    if is_open:  # the first line ends a record that began in an earlier block
        content[0] = True
        record_line[0] = st[_RECORD_LINE]
    out = record_line[content]
    room = limit - int(st[_RECORDS])
    if out.size >= room:
        out = out[:room]
        st[_RECORDS] += out.size
        st[_DONE] = 1
        return out
    st[_RECORDS] += out.size
    st[_LINE] = line + nl.size
    tail = buf.size - int(nl[-1]) - 1
    st[_OPEN] = int(tail > 0)
    st[_RECORD_LINE] = st[_LINE] if tail > 0 else 0
    st[_FIELD_START] = int(tail > 0 and buf[-1] == sep)
    return out


def scan_records(path: str | Path, separator: str, *, want: int | None = None, stop: int = -1,
                 lines_only: bool = False) -> Located:
    """Scan a CSV's records: start lines and field counts (the header is record 0).

    ``want``: stop after that many records; ``stop``: stop before that byte offset (of the
    decompressed file); ``lines_only``: the field counts are not needed (blocks without
    quotes are then done with numpy, several times faster).
    """
    p = Path(path)
    sep = ord(separator)
    st = _new_state()
    lines, fields = [], []
    limit = np.iinfo(np.int64).max if want is None else int(want)
    base = 0
    with _open(p) as stream:
        while st[_DONE] == 0:
            block = stream.read(_BLOCK)
            if not block:
                break
            buf = np.frombuffer(block, dtype=np.uint8)
            if lines_only and stop < 0:
                plain = _plain_block(block, buf, sep, st, limit)
                if plain is not None:
                    lines.append(plain)
                    base += buf.size
                    continue
            # a record takes a byte and a line end, and one may end at the block's first byte
            out_line = np.empty(buf.size // 2 + 2, np.int64)
            out_fields = np.empty(buf.size // 2 + 2, np.int64)
            k = _scan(buf, base, sep, st, out_line, out_fields, limit, stop)
            lines.append(out_line[:k].copy())
            fields.append(out_fields[:k].copy())
            base += buf.size
    field_no = int(st[_FIELDS]) - 1 if st[_OPEN] else 0
    if st[_DONE] == 0 and st[_OPEN] == 1 and st[_RECORDS] < limit:  # the last record has no line end
        lines.append(np.array([st[_RECORD_LINE]], np.int64))
        fields.append(np.array([st[_FIELDS]], np.int64))
    return Located(lines=np.concatenate(lines) if lines else np.zeros(0, np.int64),
                   fields=np.concatenate(fields) if fields else np.zeros(0, np.int64),
                   line=int(st[_LINE]), record_line=int(st[_RECORD_LINE]) if st[_OPEN] else 0,
                   field=max(field_no, 0), in_quotes=bool(st[_IN_QUOTES]) and not bool(st[_QUOTE_PENDING]))


def locate_offset(path: str | Path, separator: str, offset: int) -> Located:
    """The line and field of byte ``offset`` of the (decompressed) file."""
    return scan_records(path, separator, stop=offset)


def decode_error_offset(path: str | Path, encoding: str) -> tuple[int, bytes] | None:
    """Offset and bytes of the first byte sequence that is not text in ``encoding`` (``None``: all is)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    base = 0
    with _open(Path(path)) as stream:
        while True:
            block = stream.read(_BLOCK)
            final = not block
            state = decoder.getstate()
            pending = len(state[0]) if isinstance(state, tuple) and isinstance(state[0], bytes) else 0
            try:
                decoder.decode(block, final=final)
            except UnicodeDecodeError as e:
                start = base - pending + e.start
                return start, bytes(e.object[e.start:e.end])
            if final:
                return None
            base += len(block)


def count_line_breaks(path: str | Path) -> tuple[int, bool]:
    """Line breaks in a file (LF, CR and CRLF each one) and whether it ends with one (vectorised counts)."""
    total, prev_cr, last = 0, False, 0
    with _open(Path(path)) as stream:
        while True:
            block = stream.read(_BLOCK)
            if not block:
                break
            buf = np.frombuffer(block, dtype=np.uint8)
            cr = buf == 13
            n_cr = int(np.count_nonzero(cr))
            total += int(np.count_nonzero(buf == 10)) + n_cr
            if n_cr:  # a CRLF is one line break
                total -= int(np.count_nonzero(cr[:-1] & (buf[1:] == 10)))
            if prev_cr and buf[0] == 10:
                total -= 1
            prev_cr, last = bool(buf[-1] == 13), int(buf[-1])
    return total, last in (10, 13)


@dataclass
class RecordLines:
    """Text lines of a CSV's data rows, found on demand (only when a row must be located).

    Calling it with 0-based data rows (the order the reader returned them) gives their
    1-based lines. The file's size and modification time are remembered when it is read:
    if the file changed since, locating refuses with an :class:`InputError` rather than
    name a wrong line.

    With ``rows`` (the number of data rows the reader returned) a file without blank lines
    and without line breaks inside values is recognised by counting its line breaks alone
    (one record per line: row ``i`` is line ``i + 2``); any other file is scanned record
    by record.
    """

    path: Path
    separator: str
    size: int
    mtime_ns: int
    rows: int | None = None
    _lines: np.ndarray | None = field(default=None, repr=False)
    _one_per_line: bool | None = field(default=None, repr=False)

    @classmethod
    def of(cls, path: str | Path, separator: str) -> "RecordLines":
        st = os.stat(path)
        return cls(Path(path), separator, st.st_size, st.st_mtime_ns)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return np.zeros(0, np.int64)
        st = os.stat(self.path)
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            raise InputError("the file changed while it was being read; run again", file=self.path)
        if self._one_per_line is None and self.rows is not None:
            breaks, ends_with_break = count_line_breaks(self.path)
            records = self.rows + 1  # and the header
            self._one_per_line = breaks == records - (0 if ends_with_break else 1)
        if self._one_per_line:
            return rows + 2
        need = int(rows.max()) + 2  # + the header
        if self._lines is None or self._lines.size < need:
            self._lines = scan_records(self.path, self.separator, want=need, lines_only=True).lines
        if self._lines.size < need:  # cannot happen for rows the reader returned
            raise InputError(f"row {int(rows.max()) + 1} not found when locating lines", file=self.path)
        return self._lines[rows + 1]
