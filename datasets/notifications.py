"""Notifications of an insurance unit (district): prevented sowing and mid-season adversity.

Under India's PMFBY the state government *notifies* an insurance unit when a season goes
wrong before harvest, and the notification — not the yield — starts the claim:

* ``prevented_sowing`` — the area sown in the unit fell below 75 % of the normal sown area
  because of adverse weather (Revised Operational Guidelines 2020, para. 21, prevented /
  failed sowing): policies there are paid up to 25 % of the sum insured and the cover ends;
* ``mid_season_adversity`` — floods, prolonged dry spells or severe drought mid-season are
  expected to cut the unit's yield below 50 % of normal (para. 21, mid-season adversity):
  an on-account payment of up to 25 % of the likely claim, computed from the estimated
  yield of the notification, adjusted at final settlement.

A notifications table has one row per notification: ``district_id, product_id, kind,
date`` and, for ``mid_season_adversity``, ``estimated_yield`` (in ``units``, normalised to
t/ha like the yields table). ``product_id`` is ``all`` (in any case) for a notification of
every product in the district. The table is distrusted: a blank id, a kind that is not one of
:data:`NOTIFICATION_KINDS`, an unparsable date, a missing or non-positive estimated yield on
a mid-season row (or one given on a prevented-sowing row), and two rows of one district,
product and kind (an ``all`` row counts for every product) are each a located problem
(file, line, column) and the whole file is refused (exit 2): a notification pays money,
so a doubtful one is never half-read. Whether its districts exist is the product's check
(:class:`panen.triggers.area_yield.AreaYieldTrigger`), which knows the districts it settles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from panen.engine.errors import InputError, Problem
from panen.engine.infra.arrowcols import date_column, number_column

from .ids import id_problems, ids_as_keys
from .tables import TableOptions, read_located
from .yields import _DIVISOR

__all__ = ["ALL_PRODUCTS", "NOTIFICATION_COLUMNS", "NOTIFICATION_KINDS", "read_notifications"]

#: What a notification may announce.
NOTIFICATION_KINDS: tuple[str, ...] = ("prevented_sowing", "mid_season_adversity")
#: The ``product_id`` of a notification that applies to every product in its district.
ALL_PRODUCTS = "all"
#: Required columns (``estimated_yield`` is required only when a row is mid-season adversity).
NOTIFICATION_COLUMNS: tuple[str, ...] = ("district_id", "product_id", "kind", "date")


def _text(col: pa.ChunkedArray) -> pd.Series:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return pd.Series(np.asarray(col.to_pandas(), dtype=object))


def read_notifications(path: str | Path, *, units: str = "t/ha",
                       options: TableOptions | None = None) -> pd.DataFrame:
    """Read and check a notifications table (CSV or Parquet).

    Parameters
    ----------
    path
        The file.
    units
        Units of ``estimated_yield``: ``t/ha``, ``ku/ha``, ``q/ha`` or ``kg/ha``.
    options
        How the file is written (separator, decimal mark, date format, its own headers).

    Returns
    -------
    pandas.DataFrame
        In file order: ``district_id`` [str], ``product_id`` [str, ``all`` for every
        product], ``kind`` [str], ``date`` [datetime64[D]], ``estimated_yield`` [t/ha, NaN
        on prevented-sowing rows], ``line`` [int, the row's text line; 0 for Parquet].
        ``attrs``: ``source`` (the path) and ``units`` (``"t/ha"``).

    Raises
    ------
    InputError
        Every problem at once, each naming file, line and column (see the module docstring).
    """
    options = options or TableOptions()
    if units not in _DIVISOR:
        raise InputError(f"unknown yield units {units!r}; allowed: {', '.join(_DIVISOR)}", file=path,
                         column="estimated_yield")
    located = read_located(path, NOTIFICATION_COLUMNS, what="notifications table", options=options)
    t, p = located.table, located.path
    n = t.num_rows
    lines = (located.lines(np.arange(n)) if located.lines is not None and n else np.zeros(n, np.int64))
    shown = {dst: src for src, dst in options.columns.items()}
    problems: list[Problem] = []

    def problem(i: int, column: str, message: str) -> None:
        problems.append(Problem(message, file=p, row=i + 1, column=shown.get(column, column),
                                line=int(lines[i]) or None))

    keys = {}
    for column, what in (("district_id", "district id"), ("product_id", "product id"), ("kind", "kind")):
        raw = _text(t[column])
        ids, bad, unsafe = ids_as_keys(raw)
        problems += id_problems(raw, bad, unsafe, file=p, column=shown.get(column, column), what=what,
                                lines=(lambda rows: lines[rows]) if located.lines is not None else None)
        for i in np.flatnonzero(ids.isna().to_numpy() & ~bad & ~unsafe):
            problem(int(i), column, f"{what} is empty")
        keys[column] = ids
    product = keys["product_id"]
    every = product.notna().to_numpy() & (product.astype(str).str.lower() == ALL_PRODUCTS).to_numpy()
    keys["product_id"] = product.mask(every, ALL_PRODUCTS)  # ALL, All: every product, never a product "All"
    kind = keys["kind"]
    for i in np.flatnonzero(kind.notna().to_numpy() & ~kind.isin(NOTIFICATION_KINDS).to_numpy()):
        problem(int(i), "kind", f"kind {kind.iloc[i]!r} is not one of {', '.join(NOTIFICATION_KINDS)}")

    days, missing, bad = date_column(t["date"], "date", p, located.text)
    for i in np.flatnonzero(missing):
        problem(int(i), "date", "date is empty")
    for i in np.flatnonzero(bad):
        problem(int(i), "date", f"date {t['date'][int(i)].as_py()!r} is not a date in {located.text.describe_dates()}")

    mid = (kind == "mid_season_adversity").to_numpy()
    if "estimated_yield" in t.column_names:
        est, e_missing, e_bad = number_column(t["estimated_yield"], "estimated_yield", p, located.text)
        est = np.where(e_missing | e_bad, np.nan, est)
        for i in np.flatnonzero(e_bad):
            problem(int(i), "estimated_yield", f"estimated yield {t['estimated_yield'][int(i)].as_py()!r} "
                                               f"is not a number")
        for i in np.flatnonzero(mid & ~e_bad & ~(est > 0)):
            problem(int(i), "estimated_yield", "a mid-season adversity notification needs the estimated yield "
                                               "(a positive number) its on-account payment is computed from")
        for i in np.flatnonzero(~mid & kind.notna().to_numpy() & np.isfinite(est)):
            problem(int(i), "estimated_yield", f"an estimated yield only belongs on a mid_season_adversity row, "
                                               f"not {kind.iloc[i]!r}")
        est = np.where(np.isfinite(est) & (est > 0), est, np.nan) / _DIVISOR[units]
    else:
        est = np.full(n, np.nan)
        for i in np.flatnonzero(mid):
            problem(int(i), "estimated_yield", "a mid-season adversity notification needs the estimated yield; "
                                               "the table has no estimated_yield column")

    frame = pd.DataFrame({"district_id": keys["district_id"], "product_id": keys["product_id"], "kind": kind})
    usable = frame.notna().all(axis=1).to_numpy()
    seen: dict[tuple[str, str, str], int] = {}
    for i in np.flatnonzero(usable):
        d, pid, k = frame.iloc[i]
        for key in ((d, pid, k),) + (((d, ALL_PRODUCTS, k),) if pid != ALL_PRODUCTS else ()):
            if key in seen:
                first = seen[key]
                also = f"line {int(lines[first])}" if lines[first] else f"row {first + 1}"
                scope = "every product ('all')" if ALL_PRODUCTS in (pid, frame.iloc[first]["product_id"]) \
                    else f"product {pid!r}"
                problem(int(i), "district_id", f"a second {k} notification for district {d!r} and {scope} "
                                               f"(the first is on {also})")
                break
        seen.setdefault((d, pid, k), int(i))
        if pid == ALL_PRODUCTS:
            for (d2, p2, k2), j in list(seen.items()):
                if d2 == d and k2 == k and p2 != ALL_PRODUCTS and j != i:
                    also = f"line {int(lines[j])}" if lines[j] else f"row {j + 1}"
                    problem(int(i), "district_id", f"a {k} notification for district {d!r} and every product "
                                                   f"('all') beside one for product {p2!r} (on {also})")
    if problems:
        raise InputError(problems)
    out = pd.DataFrame({
        "district_id": frame["district_id"].astype(str).to_numpy(),
        "product_id": frame["product_id"].astype(str).to_numpy(),
        "kind": frame["kind"].astype(str).to_numpy(),
        "date": days.astype("datetime64[D]"),
        "estimated_yield": est.astype(float),
        "line": np.asarray(lines, dtype=np.int64),
    })
    out.attrs.update(source=str(p), units="t/ha")
    return out
