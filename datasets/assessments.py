"""Read AUTP loss assessments (CSV or Parquet) and sort their rows into assessments and rejects.

A loss assessment is what the POPT pest observer (with the PPL extension officer) records
for one natural plot (petak alami), one peril and one event (README, "The AUTP adjuster")::

    policy_id, plot_id, peril, plot_area_ha [ha], damage_intensity_pct [%],
    damaged_area_pct [%], crop_age_days [days after planting, HST], planting_method,
    event_date, notice_date (a date, or a date and a local clock time: 2024-01-10 14:30)

Two kinds of problem, as for the policy register (:mod:`panen.engine.settlement.policies`):

* with the *file* — it is missing, unreadable, or lacks a required column: an
  :class:`~panen.engine.errors.InputError` naming the file (and every missing column);
* with a *row* — it goes to the rejects table with the file, the 1-based data row (header
  excluded), the text line it starts on, the column (as the file names it), a reason code
  (:data:`REASONS`) and a message. No row is ever dropped silently:
  ``len(assessments) + len(rejects) == rows read``.

``policy_id`` and ``plot_id`` are keys: compared, and carried, as normalised text
(:func:`panen.engine.infra.safetext.normalise_keys`: trimmed, NFKC, invisible characters
removed), so ``"P001 "`` finds policy ``P001``; a key with a control character, or one a
spreadsheet would run as a formula, is rejected (``bad_key``, ``unsafe_text``).

The peril and planting method are kept as written (trimmed); whether a peril is known,
covered or excluded is the adjuster's decision (:func:`panen.engine.perils.adjuster.adjust`),
not a reject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from panen.engine.api import ASSESSMENT_COLUMNS
from panen.engine.infra.arrowcols import (ISO, TextFormat, as_text, check_header, datetime_column, number_column,
                                         string_column)
from panen.engine.infra.safetext import line_breaks, normalise_keys
from panen.engine.infra.text import normalise_label

from .tables import TableOptions, read_located

__all__ = ["REASONS", "REJECT_COLUMNS", "read_assessments"]

#: Leading columns of the rejects table; the row's other raw values follow.
REJECT_COLUMNS: tuple[str, ...] = ("file", "row", "line", "column", "policy_id", "plot_id", "reason", "message")

#: Reject reason codes, in the order they are checked: a row with several problems is
#: rejected once, for the first.
REASONS: dict[str, str] = {
    "missing_value": "a required value is empty",
    "bad_key": "a key holds a control character or a bidirectional/line-separator format character",
    "unsafe_text": "a key begins with =, +, - or @ (a spreadsheet would run it as a formula)",
    "multiline_value": "a text value spans lines (a quote may be missing: the lines may be other assessments)",
    "bad_number": "a number could not be parsed",
    "bad_date": "a date is not a date in the file's date format (ISO YYYY-MM-DD by default)",
    "percent_out_of_range": "a percentage is outside 0-100",
    "non_positive_area": "the plot area is zero or negative",
    "bad_crop_age": "the crop age is not a whole number of days >= 0",
    "notice_before_event": "the notice date is before the event date",
    "duplicate_assessment": "(policy_id, plot_id, peril, event_date) occurs more than once",
}
_CODE = {name: i + 1 for i, name in enumerate(REASONS)}  # 0 = valid

_TEXT = ("policy_id", "plot_id", "peril", "planting_method")
_KEYS = ("policy_id", "plot_id")
_NUMBERS = ("plot_area_ha", "damage_intensity_pct", "damaged_area_pct", "crop_age_days")
_DATES = ("event_date", "notice_date")
_KEY = ("policy_id", "plot_id", "peril", "event_date")


def read_assessments(path: str | PathLike[str], *, peril_key: Callable[[str], str | None] | None = None,
                     wording: Any = None, options: TableOptions | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read loss assessments and split them into valid rows and rejects.

    Parameters
    ----------
    path
        ``*.csv`` (also ``.csv.gz``, ``.csv.bz2``, ``.csv.zst``; comma-separated, UTF-8
        unless ``options`` say otherwise) or ``*.parquet`` / ``*.pq``.
    peril_key
        Optional resolver of a peril label to its code (a policy wording's
        ``Wording.peril_code``): duplicates are then found on the code, so ``tikus`` and
        ``rats`` on the same plot and day are one event. Labels it does not resolve, and
        every label without it, compare by their normalised text (case, spaces, ``_`` and
        ``-`` ignored).
    wording
        A policy wording (anything with a ``peril_code(label)`` method): the same as
        ``peril_key=wording.peril_code``.
    options
        How the file is written (separator, encoding, decimal mark, date format, its own
        column names: :class:`~panen.datasets.tables.TableOptions`).

    Returns
    -------
    assessments : pandas.DataFrame
        Accepted rows in file order, the index (named ``row``) being the 1-based data row
        of the file: ``policy_id, plot_id, peril, planting_method`` [str, as written],
        ``plot_area_ha`` [ha], ``damage_intensity_pct, damaged_area_pct`` [%] (float64),
        (``policy_id`` and ``plot_id`` normalised keys)
        ``crop_age_days`` [days, int64], ``event_date, notice_date`` (datetime64).
        ``attrs["source"]`` is the path; for a CSV, ``attrs["lines"]`` maps 0-based data
        rows (index - 1) to the 1-based text lines a text editor shows them on (found only
        when called, e.g. to name a referred claim under ``--strict``).
    rejects : pandas.DataFrame
        :data:`REJECT_COLUMNS` followed by the raw text of the row's other columns,
        sorted by ``row``. Checks, in order (:data:`REASONS`): an empty value
        (``missing_value``); a key with a control character (``bad_key``) or one that
        starts a spreadsheet formula (``unsafe_text``); an unparsable number (``bad_number``, ``1,5`` is not a
        number) or date (``bad_date``, ``2024-02-30`` is not a date); a percentage outside
        0-100; ``plot_area_ha <= 0``; a negative or fractional crop age; a notice before
        the event; and a repeated ``(policy_id, plot_id, peril, event_date)`` —
        *every* occurrence is rejected until the assessor says which one is real.

    Raises
    ------
    InputError
        The file is missing or unreadable, not CSV/Parquet, or lacks required columns
        (each named, with the file).
    """
    located = read_located(path, ASSESSMENT_COLUMNS, what="loss assessments file", options=options or TableOptions())
    if peril_key is None and wording is not None:
        peril_key = wording.peril_code
    valid, rejects = split_assessments(located.table, str(Path(path)), peril_key=peril_key, lines=located.lines,
                                       source_columns=located.source_columns, text=located.text)
    if located.lines is not None:
        valid.attrs["lines"] = _SharedLines(located.lines)
    return valid, rejects


class _SharedLines:
    """Rows -> text lines, carried in ``DataFrame.attrs``: pandas deep-copies attrs on every
    derived frame, and this shares the one (lazily scanned) locator instead of copying it."""

    def __init__(self, lines: Callable[[np.ndarray], np.ndarray]) -> None:
        self._lines = lines

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self._lines(rows)

    def __deepcopy__(self, memo: dict) -> _SharedLines:
        return self


def split_assessments(table: pa.Table | pd.DataFrame, file: str = "<memory>", *,
                      peril_key: Callable[[str], str | None] | None = None,
                      lines: Callable[[np.ndarray], np.ndarray] | None = None,
                      source_columns: Mapping[str, str] | None = None,
                      text: TextFormat = ISO) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every row of an in-memory assessments table; see :func:`read_assessments`.

    ``lines`` maps 0-based rows to text lines and ``source_columns`` panen's column names
    to the file's, for the rejects; ``text`` is how the file writes numbers and dates.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    check_header(table.column_names, ASSESSMENT_COLUMNS, file)
    n = table.num_rows
    reason = np.zeros(n, np.int8)
    column = np.zeros(n, np.int16)
    extra = [c for c in table.column_names if c not in ASSESSMENT_COLUMNS]
    all_columns = list(ASSESSMENT_COLUMNS) + extra
    col_index = {c: i for i, c in enumerate(all_columns)}

    def flag(mask: np.ndarray, why: str, col: str) -> None:
        sel = mask & (reason == 0)
        reason[sel] = _CODE[why]
        column[sel] = col_index[col]

    text_format = text
    text = {c: string_column(table[c], c, file) for c in _TEXT}
    keys = {}
    for c in _KEYS:  # keys as they are compared and carried
        keys[c] = normalise_keys(text[c][0])
        text[c] = (keys[c].values, keys[c].missing)
    numbers = {c: number_column(table[c], c, file, text_format) for c in _NUMBERS}
    # (seconds, time given, missing, unparsable): a date, or a date and a local clock time
    stamps = {c: datetime_column(table[c], c, file, text_format) for c in _DATES}
    dates = {c: (v[0], v[2], v[3]) for c, v in stamps.items()}
    missing = {c: v[1] for c, v in text.items()} | {c: v[1] for c, v in numbers.items()} \
        | {c: v[1] for c, v in dates.items()}
    for c in ASSESSMENT_COLUMNS:
        flag(missing[c], "missing_value", c)
    for c in _KEYS:
        flag(keys[c].bad, "bad_key", c)
    for c in _KEYS:
        flag(keys[c].unsafe, "unsafe_text", c)
    # a line break in a text value: a missing quote may have swallowed whole lines (other
    # assessments), which would then be neither adjusted nor rejected
    for c in ("peril", "planting_method", *extra):
        col = table[c]
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            flag(line_breaks(col), "multiline_value", c)
    for c in _NUMBERS:
        flag(numbers[c][2], "bad_number", c)
    for c in _DATES:
        flag(dates[c][2], "bad_date", c)
    ok = {c: ~missing[c] & ~numbers[c][2] for c in _NUMBERS}
    for c in ("damage_intensity_pct", "damaged_area_pct"):
        v = numbers[c][0]
        flag(ok[c] & ~((v >= 0) & (v <= 100)), "percent_out_of_range", c)
    area = numbers["plot_area_ha"][0]
    flag(ok["plot_area_ha"] & ~(area > 0), "non_positive_area", "plot_area_ha")
    age = numbers["crop_age_days"][0]
    flag(ok["crop_age_days"] & ~((age >= 0) & (age == np.floor(age)) & (age < 2**31)), "bad_crop_age",
         "crop_age_days")
    event, notice = dates["event_date"][0], dates["notice_date"][0]
    dates_ok = ~missing["event_date"] & ~dates["event_date"][2] & ~missing["notice_date"] & ~dates["notice_date"][2]
    # with both clock times the instants are compared, else the calendar days
    timed = stamps["event_date"][1] & stamps["notice_date"][1]
    flag(dates_ok & np.where(timed, notice < event, notice // 86_400 < event // 86_400), "notice_before_event",
         "notice_date")

    # duplicates among rows whose key is readable, whatever else is wrong with them
    key_ok = ~missing["policy_id"] & ~missing["plot_id"] & ~missing["peril"] & ~missing["event_date"] \
        & ~dates["event_date"][2]
    counts, first = _duplicates(text, event, key_ok, peril_key)
    flag(counts > 1, "duplicate_assessment", "peril")

    rejected = reason != 0
    rejects = _rejects(table, file, rejected, reason, column, counts, first, lines, dict(source_columns or {}),
                       text_format, all_columns)
    keep = ~rejected
    valid = pd.DataFrame({
        **{c: _strings(text[c][0], keep) for c in _TEXT},
        "plot_area_ha": area[keep],
        "damage_intensity_pct": numbers["damage_intensity_pct"][0][keep],
        "damaged_area_pct": numbers["damaged_area_pct"][0][keep],
        "crop_age_days": age[keep].astype(np.int64),
        "event_date": event[keep].astype("datetime64[s]"),
        "notice_date": notice[keep].astype("datetime64[s]"),
    }, columns=list(ASSESSMENT_COLUMNS), index=pd.Index(np.flatnonzero(keep) + 1, name="row"))
    valid.attrs["source"] = file
    if len(valid) + len(rejects) != n:  # the one rule of this module; cannot happen
        raise RuntimeError(f"read_assessments lost rows: {len(valid)} + {len(rejects)} != {n}")
    return valid, rejects


# --------------------------------------------------------------------------- reading


# --------------------------------------------------------------------------- helpers


def _strings(col: pa.ChunkedArray, keep: np.ndarray) -> pd.Series:
    """Kept rows of a text column, trimmed, as a pandas ``str`` array."""
    trimmed = pc.utf8_trim_whitespace(col.filter(pa.array(keep)))
    return pd.Series(trimmed.to_pandas(), dtype="str").array


def _duplicates(text: dict, event: np.ndarray, use: np.ndarray, peril_key: Callable[[str], str | None] | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many readable rows share its key, and the first such row (-1 if unused)."""
    n = len(use)
    counts = np.zeros(n, np.int64)
    first = np.full(n, -1, np.int64)
    if not use.any():
        return counts, first
    rows = np.flatnonzero(use)
    take = pa.array(rows)
    peril = pd.Series(pc.utf8_trim_whitespace(text["peril"][0].take(take)).to_pandas(), dtype="str")
    labels, uniques = pd.factorize(peril)
    canon = [normalise_label(u) for u in uniques]
    if peril_key is not None:
        canon = [peril_key(u) or c for u, c in zip(uniques, canon)]
    peril_key = pd.factorize(np.asarray(canon, dtype=object))[0][labels]
    keys = pd.DataFrame({
        "policy_id": pd.factorize(text["policy_id"][0].take(take).to_pandas())[0],  # normalised keys
        "plot_id": pd.factorize(text["plot_id"][0].take(take).to_pandas())[0],
        "peril": peril_key,
        "event": event[rows],
    })
    group = keys.groupby(list(keys.columns), sort=False).ngroup().to_numpy()
    size = np.bincount(group)
    start = np.full(size.size, n, np.int64)
    np.minimum.at(start, group, rows)
    counts[rows] = size[group]
    first[rows] = start[group]
    return counts, first


def _rejects(table: pa.Table, file: str, rejected: np.ndarray, reason: np.ndarray, column: np.ndarray,
             counts: np.ndarray, first: np.ndarray, lines: Callable[[np.ndarray], np.ndarray] | None,
             source_columns: dict[str, str], text_format: TextFormat, all_columns: list[str]) -> pd.DataFrame:
    idx = np.flatnonzero(rejected)
    raw = table.filter(pa.array(rejected))
    text = {name: pd.Series(as_text(raw[name]).to_pandas(), dtype="str") for name in raw.column_names}
    why = pd.Series(np.asarray(list(REASONS), dtype=object)[reason[idx] - 1], dtype="str")
    col = pd.Series(np.asarray(all_columns, dtype=object)[column[idx]], dtype="str")
    # the column as the file names it (a reader may have mapped the insurer's header)
    shown = pd.Series(np.asarray([source_columns.get(c, c) for c in all_columns],
                                 dtype=object)[column[idx]], dtype="str")
    first_at = pd.Series((first[idx] + 1).astype(str), dtype="str")
    line = None
    if lines is not None and len(idx):
        located = np.asarray(lines(np.concatenate([idx, np.where(first[idx] >= 0, first[idx], 0)])), np.int64)
        line = located[:len(idx)]
        first_at = first_at + ", line " + pd.Series(located[len(idx):].astype(str), dtype="str")
    value = pd.Series([None] * len(idx), dtype="str")
    for c in all_columns:
        at = (col == c).to_numpy()
        if at.any():
            value[at] = text[c][at]
    quoted = ("'" + value + "'").fillna("''")
    number_rule = (f" is not a number (written like {text_format.example_number()}: decimal mark "
                   f"'{text_format.decimal}', " + (f"thousands separator '{text_format.thousands}' in groups of three)"
                                                 if text_format.thousands else "no thousands separator)"))
    templates = {
        "missing_value": shown + " is empty, and it is required",
        "bad_key": shown + " " + quoted + " holds a control character (NUL, tab, line break, ...) or a "
                                          "bidirectional/line-separator format character; ids must be printable text",
        "unsafe_text": shown + " " + quoted + " begins with '=', '+', '-' or '@': a spreadsheet opening the CSV "
                                              "would run it as a formula (a plain signed number is allowed)",
        "multiline_value": shown + " " + quoted + " spans several lines: a quote may be missing, and the lines "
                                                  "it holds may be other assessments; quote it or remove the line breaks",
        "bad_number": shown + " " + quoted + number_rule,
        "bad_date": shown + " " + quoted + f" is not {text_format.describe_dates()}, optionally with a local "
                                            "clock time (HH:MM, no time zone)",
        "percent_out_of_range": shown + " must be between 0 and 100 %, got " + quoted,
        "non_positive_area": "plot_area_ha must be > 0 ha, got " + quoted,
        "bad_crop_age": "crop_age_days must be a whole number of days >= 0, got " + quoted,
        "notice_before_event": "notice_date " + quoted + " is before event_date '"
                               + text["event_date"].fillna("") + "'",
        "duplicate_assessment": "policy " + text["policy_id"].fillna("") + ", plot "
                                + text["plot_id"].fillna("") + ", peril " + quoted + ", event "
                                + text["event_date"].fillna("") + " occurs "
                                + pd.Series(counts[idx].astype(str), dtype="str") + " times (first at row "
                                + first_at + "); every occurrence is rejected until the assessor says which is real",
    }
    message = pd.Series([None] * len(idx), dtype="str")
    for name, template in templates.items():
        at = (why == name).to_numpy()
        if at.any():
            message[at] = template[at]
    out = {
        "file": pd.Series([file] * len(idx), dtype="str"),
        "row": pd.Series(idx + 1, dtype="int64"),
        "line": pd.Series(pd.array(line if line is not None else [None] * len(idx), dtype="Int64")),
        "column": shown,
        "policy_id": text["policy_id"],
        "plot_id": text["plot_id"],
        "reason": why,
        "message": message,
    }
    for name in raw.column_names:
        if name not in ("policy_id", "plot_id"):
            key = source_columns.get(name, name)
            out[key if key not in REJECT_COLUMNS else f"raw_{key}"] = text[name]
    return pd.DataFrame(out)
