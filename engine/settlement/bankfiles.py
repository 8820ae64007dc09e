"""Bank files of the settlement store: the payment file an export writes, the return file a bank sends back.

Payment file (:data:`EXPORT_COLUMNS`, written by :meth:`SettlementStore.export
<panen.engine.settlement.store.SettlementStore.export>`): CSV, UTF-8, a header row, one
row per payment — ``payment_id, season_id, product_id, payee_type, district_id,
payee_id, amount, reissue_of`` — money as integer rupiah, ``reissue_of`` empty for a
first payment and the failed payment's id for a re-issue. The column set and order are
part of panen's interface: they change only with a new column appended, never renamed.

Return file (:func:`read_returns`): what the bank or mobile-money operator says became of
each payment, CSV with exactly the columns ``payment_id, status, reason`` (any order):

- ``status`` ``paid`` or ``confirmed``: the payee was credited;
  ``failed`` or ``rejected``: the payment did not reach the payee (a rejection at the
  bank's intake and a failure at the payee's account are the same to the insurer: the
  money is still owed, and the next export re-issues it). Case and surrounding spaces
  do not matter.
- ``reason``: required for a failure (it is recorded and shown; a re-issue that fails for
  the same reason again is a person's matter); optional otherwise.

A return file moves money, so it is read with suspicion: it must be UTF-8 (a byte-order
mark is allowed: spreadsheets write one), have those three columns and no others, every
row the header's number of fields, no blank payment id, a known status, and each payment
once (the same payment twice is refused, more so with two statuses). Every problem is
listed at once, located by file, line and column, and nothing is applied
(:class:`~panen.engine.errors.InputError`).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from panen.engine.errors import InputError, Problem

__all__ = ["EXPORT_COLUMNS", "RETURN_COLUMNS", "RETURN_STATUSES", "ReturnRow", "read_returns"]

#: The payment file's columns, in order.
EXPORT_COLUMNS = ("payment_id", "season_id", "product_id", "payee_type", "district_id", "payee_id", "amount",
                  "reissue_of")
#: The return file's columns.
RETURN_COLUMNS = ("payment_id", "status", "reason")
#: A return file's statuses and the payment status each records.
RETURN_STATUSES = {"paid": "confirmed", "confirmed": "confirmed", "failed": "failed", "rejected": "failed"}
_MAX_PROBLEMS = 50  # listed; the count of the rest is given


@dataclass(frozen=True)
class ReturnRow:
    """One row of a return file: the payment, the status it records (``confirmed`` or
    ``failed``), the reason as written (stripped), and the line it starts on."""

    payment_id: str
    status: str
    reason: str
    line: int


def _decode(data: bytes, path: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(Problem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the "
                                 f"return file as UTF-8 CSV", file=path, line=line)) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(Problem("a NUL character: this is not a CSV text file", file=path, line=line))
    return text


def read_returns(path: str | os.PathLike) -> list[ReturnRow]:
    """Read and check a bank or mobile-money return file (module docstring).

    Parameters
    ----------
    path
        The return file (CSV, UTF-8).

    Returns
    -------
    list[ReturnRow]
        One per data row, in file order; blank lines are skipped.

    Raises
    ------
    InputError
        An unreadable file, another encoding, missing or unknown columns, a row with another
        number of fields, a blank payment id, an unknown status, a failure without a reason,
        a payment listed twice (with its first line). Every problem, located.
    """
    shown = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(Problem(f"cannot read the return file: {exc.strerror or exc}", file=shown)) from None
    text = _decode(data, shown)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[Problem] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(Problem(f"not a CSV header: {exc}", file=shown, line=1)) from None
    if header is None or not any(h.strip() for h in header):
        raise InputError(Problem(f"empty: a return file has a header row {', '.join(RETURN_COLUMNS)}",
                                 file=shown, line=1))
    names = [h.strip() for h in header]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(Problem("column named twice", file=shown, line=1, column=name))
    unknown = [n for n in names if n not in RETURN_COLUMNS]
    missing = [c for c in RETURN_COLUMNS if c not in names]
    if missing:
        problems.append(Problem(f"missing column(s) {', '.join(missing)}; a return file has exactly the columns "
                                f"{', '.join(RETURN_COLUMNS)}", file=shown, line=1))
    for name in unknown:
        problems.append(Problem(f"unknown column; a return file has exactly the columns {', '.join(RETURN_COLUMNS)}",
                                file=shown, line=1, column=name))
    if problems:
        raise InputError(problems)
    at = {c: names.index(c) for c in RETURN_COLUMNS}
    rows: list[ReturnRow] = []
    first: dict[str, ReturnRow] = {}
    line = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(f"not valid CSV: {exc}", file=shown, line=line))
            break
        start, line = line, reader.line_num + 1
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line
        if len(fields) != len(names):
            problems.append(Problem(f"{len(fields)} field(s), the header has {len(names)}", file=shown, line=start))
            continue
        payment_id = fields[at["payment_id"]].strip()
        raw_status = fields[at["status"]].strip()
        reason = fields[at["reason"]].strip()
        status = RETURN_STATUSES.get(raw_status.lower())
        bad = False
        if not payment_id:
            problems.append(Problem("blank payment id", file=shown, line=start, column="payment_id"))
            bad = True
        if status is None:
            problems.append(Problem(f"unknown status {raw_status!r}; one of {', '.join(RETURN_STATUSES)}",
                                    file=shown, line=start, column="status"))
            bad = True
        elif status == "failed" and not reason:
            problems.append(Problem(f"a {raw_status.lower()} payment needs a reason (why it did not reach the payee)",
                                    file=shown, line=start, column="reason"))
            bad = True
        if payment_id:
            earlier = first.get(payment_id)
            if earlier is not None:
                same = earlier.status == raw_status.lower() and earlier.reason == reason
                problems.append(Problem(
                    f"payment {payment_id} is listed again (first on line {earlier.line}"
                    + ("" if same else f" as {earlier.status or 'blank'}, here {raw_status.lower() or 'blank'}")
                    + "): each payment once", file=shown, line=start, column="payment_id"))
                bad = True
            else:
                first[payment_id] = ReturnRow(payment_id, raw_status.lower(), reason, start)
        if not bad:
            rows.append(ReturnRow(payment_id, status, reason, start))
    if problems:
        raise InputError(_capped(problems))
    return rows


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= _MAX_PROBLEMS:
        return problems
    rest = len(problems) - _MAX_PROBLEMS
    return [*problems[:_MAX_PROBLEMS], Problem(f"... and {rest} more problem(s) of the same file",
                                               file=problems[0].file)]
