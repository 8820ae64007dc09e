"""The payout ledger: one row per valid policy of every cover, money in integer rupiah.

The money path is fixed (README "Rules that always hold"; the order of OasisLMF's financial
module)::

    payout rate [0..1] (RateTable, per district and cohort)
      -> × sum insured [Rp] -> round to rupiah = gross payout
      -> average clause -> deductible -> limit -> share, each rounded to rupiah = net payout  (panen.engine.maths.terms)
      -> district totals (reconciled to the rupiah) -> payments per farmer or group

The ledger never builds per-farmer series: each policy finds its rate by integer codes —
district → row of the product's :class:`~panen.engine.settlement.rates.RateTable`, sowing date →
cohort column by a dense day lookup — and one gather from the small rate matrix. Rows are
ordered by ``(product_id, district_id, policy_id)`` (byte-wise, i.e. Unicode code point
order) with a numba radix sort, so the ledger, and every file written from it, is the
same bytes for the same inputs. After the sort, rows are built one Parquet row group
(2**20 rows) at a time; :func:`build_ledger` can hand each to a writer thread as it is
ready (``parquet_path=``), so building and encoding overlap and the file equals, byte for
byte, the one written from the whole table afterwards.

Ledger columns (the contract, README "Outputs")::

    policy_id, farmer_id, district_id, product_id, sum_insured [Rp], payout_rate [fraction],
    gross_payout [Rp], deductible [Rp], net_payout [Rp]

followed by ``area_ha`` [ha], ``cohort`` (window anchor date), ``status`` (:data:`STATUS_VALUES`)
and ``group_id`` when the register has it.
``district_id``, ``product_id``, ``status`` and ``group_id`` are Arrow dictionary columns
(categoricals in pandas).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from panen.engine.errors import DataQualityError, PanenError
from panen.engine.infra.atomic import PARQUET_OPTIONS, BackgroundParquet
from panen.engine.infra.arrowcols import dictionary_codes, string_buffers
from panen.engine.settlement.policies import ProductRules
from panen.engine.settlement.rates import POLICY_OUTCOMES, PolicyAmounts, RateTable
from panen.engine.maths.terms import Instalments, Terms, add_months, apply_terms, round_rupiah

__all__ = [
    "LEDGER_COLUMNS",
    "MONEY_COLUMNS",
    "STATUS_VALUES",
    "ReconciliationError",
    "build_ledger",
    "district_totals",
    "payments",
    "reconcile",
    "round_rupiah",
]

#: The contract columns of payouts.parquet / payouts.csv, in order.
LEDGER_COLUMNS: tuple[str, ...] = ("policy_id", "farmer_id", "district_id", "product_id", "sum_insured",
                                   "payout_rate", "gross_payout", "deductible", "net_payout")
MONEY_COLUMNS: tuple[str, ...] = ("sum_insured", "gross_payout", "deductible", "net_payout")
#: ``paid``: net payout > 0; ``no_payout``: assessed, nothing due; ``withheld_missing_data``:
#: the district/cohort was flagged for too little valid data — rate null, no money, not a
#: reject; ``declined``: a named-peril cover assessed the policy's claims and declined them
#: all (``reason`` says why); ``not_assessed``: a named-peril policy with no loss assessment;
#: ``referred``: a named-peril policy with nothing paid and a claim referred to a person
#: (e.g. ``unknown_peril``) — no money yet, like ``declined`` in every total and payment.
STATUS_VALUES: tuple[str, ...] = ("paid", "no_payout", "withheld_missing_data", "declined", "not_assessed",
                                  "referred")
_PAID, _NO_PAYOUT, _WITHHELD, _DECLINED, _NOT_ASSESSED, _REFERRED = 0, 1, 2, 3, 4, 5
_OUTCOME_STATUS = {"paid": _PAID, "no_payout": _NO_PAYOUT, "declined": _DECLINED, "not_assessed": _NOT_ASSESSED,
                   "referred": _REFERRED}
#: Reason of a named-peril policy without any assessment.
NOT_ASSESSED_REASON = "no_assessment"



class ReconciliationError(PanenError):
    """District totals do not add up to the ledger to the rupiah (an internal failure)."""


# --------------------------------------------------------------------------- sorting kernels


@njit(nogil=True, cache=True)
def _word(data, s, e):  # pragma: no cover - numba
    """Big-endian uint64 of bytes ``data[s:s+8]``, zero-padded past ``e``."""
    k = np.uint64(0)
    for b in range(8):
        k = k << np.uint64(8)
        if s + b < e:
            k = k | np.uint64(data[s + b])
    return k


@njit(nogil=True, cache=True)
def _scatter_pairs(src_hi, src_lo, src_o, first, m, dst_hi, dst_lo, dst_o, base, pos, shift,
                   use_lo):  # pragma: no cover - numba
    """One stable counting-sort pass of rows ``first..first+m`` on one key byte."""
    for i in range(first, first + m):
        k = src_lo[i] if use_lo else src_hi[i]
        v = np.int64((k >> shift) & np.uint64(255))
        p = base + pos[v]
        dst_hi[p] = src_hi[i]
        dst_lo[p] = src_lo[i]
        dst_o[p] = src_o[i]
        pos[v] += 1


@njit(nogil=True, cache=True)
def _radix_pairs(hi, lo, order, a, b, t_hi, t_lo, t_o, hist):  # pragma: no cover - numba
    """Stable LSD radix sort of rows ``a..b`` on the 16-byte key ``(hi, lo)``, carrying ``order``.

    Key bytes that are constant over the rows are skipped: a shared prefix costs one
    counting pass, not a scatter. Every array is passed whole with a row range, so each
    kernel compiles once.
    """
    m = b - a
    if m < 2:
        return
    if m <= 16:
        for i in range(a + 1, b):
            x = hi[i]
            y = lo[i]
            o = order[i]
            j = i - 1
            while j >= a and (hi[j] > x or (hi[j] == x and lo[j] > y)):
                hi[j + 1] = hi[j]
                lo[j + 1] = lo[j]
                order[j + 1] = order[j]
                j -= 1
            hi[j + 1] = x
            lo[j + 1] = y
            order[j + 1] = o
        return
    for q in range(16):
        for v in range(256):
            hist[q, v] = 0
    for i in range(a, b):
        x = hi[i]
        y = lo[i]
        for q in range(8):
            sh = np.uint64(56 - 8 * q)
            hist[q, np.int64((x >> sh) & np.uint64(255))] += 1
            hist[8 + q, np.int64((y >> sh) & np.uint64(255))] += 1
    pos = np.empty(256, np.int64)
    in_tmp = False
    for q in range(15, -1, -1):
        constant = False
        for v in range(256):
            c = hist[q, v]
            if c == m:
                constant = True
                break
            if c != 0:
                break
        if constant:
            continue
        acc = 0
        for v in range(256):
            pos[v] = acc
            acc += hist[q, v]
        shift = np.uint64(56 - 8 * (q % 8))
        if in_tmp:
            _scatter_pairs(t_hi, t_lo, t_o, 0, m, hi, lo, order, a, pos, shift, q >= 8)
        else:
            _scatter_pairs(hi, lo, order, a, m, t_hi, t_lo, t_o, 0, pos, shift, q >= 8)
        in_tmp = not in_tmp
    if in_tmp:
        for i in range(m):
            hi[a + i] = t_hi[i]
            lo[a + i] = t_lo[i]
            order[a + i] = t_o[i]


@njit(nogil=True, cache=True)
def _insertion_ties(order, a, b, offsets, data, start):  # pragma: no cover - numba
    """Stable insertion sort of rows ``a..b`` (a few) whose first ``start`` bytes tie."""
    for i in range(a + 1, b):
        r = order[i]
        j = i
        while j > a:
            q = order[j - 1]
            sr = offsets[r] + start
            sq = offsets[q] + start
            lr = max(offsets[r + 1] - sr, 0)
            lq = max(offsets[q + 1] - sq, 0)
            c = 0
            for k in range(min(lr, lq)):
                x = data[sr + k]
                y = data[sq + k]
                if x != y:
                    c = -1 if x < y else 1
                    break
            if c == 0:
                c = -1 if lr < lq else (1 if lr > lq else 0)
            if c < 0:
                order[j] = q
                j -= 1
            else:
                break
        order[j] = r


@njit(nogil=True, cache=True)
def _group_string_order(group, n_groups, offsets, data):  # pragma: no cover - numba
    """Stable permutation sorting rows by ``(group, string)``, strings compared byte-wise.

    A counting sort places rows by group; inside a group an LSD radix sort orders the 16
    bytes that follow the prefix every string shares; runs still tied are re-keyed on the
    next 16 bytes (an explicit stack, no recursion). Equal strings keep input order.
    """
    n = group.shape[0]
    order = np.empty(n, np.int64)
    if n == 0:
        return order
    lcp = offsets[1] - offsets[0]
    s0 = offsets[0]
    for i in range(n):
        if lcp == 0:
            break
        si = offsets[i]
        m = min(lcp, offsets[i + 1] - si)
        j = 0
        while j < m and data[si + j] == data[s0 + j]:
            j += 1
        lcp = j
    starts = np.zeros(n_groups + 1, np.int64)
    for i in range(n):
        starts[group[i] + 1] += 1
    biggest = 0
    for g in range(n_groups):
        biggest = max(biggest, starts[g + 1])
        starts[g + 1] += starts[g]
    pos = starts[:-1].copy()
    hi = np.empty(n, np.uint64)
    lo = np.empty(n, np.uint64)
    for i in range(n):
        g = group[i]
        p = pos[g]
        order[p] = i
        s = offsets[i] + lcp
        e = offsets[i + 1]
        hi[p] = _word(data, s, e)
        lo[p] = _word(data, s + 8, e)
        pos[g] = p + 1
    t_hi = np.empty(biggest, np.uint64)  # a tied run never outgrows its group
    t_lo = np.empty(biggest, np.uint64)
    t_o = np.empty(biggest, np.int64)
    hist = np.empty((16, 256), np.int64)
    # (first, stop, byte the keys start at); groups first, then tied runs on later bytes
    stack = [(np.int64(0), np.int64(0), np.int64(0))]
    stack.pop()
    for g in range(n_groups - 1, -1, -1):
        if starts[g + 1] - starts[g] > 1:
            stack.append((starts[g], starts[g + 1], lcp))
    while len(stack) > 0:
        a, b, at = stack.pop()
        if at > lcp:  # a tied run: keys for the next 16 bytes
            longest = 0
            for k in range(a, b):
                r = order[k]
                longest = max(longest, offsets[r + 1] - offsets[r])
            if b - a <= 16 or longest <= at:
                _insertion_ties(order, a, b, offsets, data, at)
                continue
            for k in range(a, b):
                r = order[k]
                hi[k] = _word(data, offsets[r] + at, offsets[r + 1])
                lo[k] = _word(data, offsets[r] + at + 8, offsets[r + 1])
        _radix_pairs(hi, lo, order, a, b, t_hi, t_lo, t_o, hist)
        i = a
        while i < b:
            j = i + 1
            while j < b and hi[j] == hi[i] and lo[j] == lo[i]:
                j += 1
            if j - i > 1:
                stack.append((i, j, at + 16))
            i = j
    return order


def sort_order(group: np.ndarray, n_groups: int, strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Stable permutation that orders rows by ``(group, string)``.

    Parameters
    ----------
    group
        Integer group per row, ``0 <= group < n_groups`` (e.g. product × district rank).
    n_groups
        Number of groups.
    strings
        A string per row (nulls sort as empty strings), compared byte-wise (UTF-8 bytes,
        i.e. Unicode code point order — never locale dependent).

    Returns
    -------
    numpy.ndarray
        int64 row indices.
    """
    offsets, data = string_buffers(strings)
    g = np.ascontiguousarray(group, dtype=np.int64)
    if g.size and (g.min() < 0 or g.max() >= n_groups):
        raise ValueError("sort_order: group codes must lie in [0, n_groups)")
    return _group_string_order(g, int(n_groups), offsets, data)


# --------------------------------------------------------------------------- ledger


def _as_table(frame: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False)


def _sorted_codes(col: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Codes into the byte-wise sorted dictionary of the values actually used (-1 = null)."""
    codes, values = dictionary_codes(col)
    used = np.bincount(codes[codes >= 0], minlength=len(values)) > 0
    order = pc.array_sort_indices(values).to_numpy()
    keep = order[used[order]]
    remap = np.full(len(values) + 1, -1, np.int32)  # last entry: code -1 stays -1
    remap[keep] = np.arange(len(keep), dtype=np.int32)
    return remap[codes], values.take(pa.array(keep, pa.int64()))


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    return pc.cast(col, pa.string())


def _one_chunk(col: pa.ChunkedArray) -> pa.Array:
    """The column as one contiguous array (Arrow's take would concatenate on every call)."""
    return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)


def _optional_column(table: pa.Table, name: str,
                     perm: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Values (0 where null) and a present mask of an optional column, in ``perm`` order
    (input order if ``perm`` is None).

    ``sowing_date`` and ``event_date`` as int32 days since 1970-01-01; every other column
    (money [Rp], counts) as int64. ``None`` if the column is absent.
    """
    if name not in table.column_names:
        return None
    col = table[name]
    if name in ("sowing_date", "event_date"):
        col = pc.cast(col if pa.types.is_date32(col.type) else pc.cast(col, pa.date32()), pa.int32())
    else:
        col = pc.cast(col, pa.int64())
    present = None if col.null_count == 0 else col.is_valid().to_numpy(zero_copy_only=False)
    values = (col if col.null_count == 0 else pc.fill_null(col, 0)).to_numpy(zero_copy_only=False)
    if perm is not None:
        values = values[perm]
        present = None if present is None else present[perm]
    return values, np.ones(len(values), bool) if present is None else present


def _part(column: tuple[np.ndarray, np.ndarray] | None, rows: slice) -> tuple[np.ndarray, np.ndarray] | None:
    return None if column is None else (column[0][rows], column[1][rows])


def _district_rows(rt: RateTable, districts: pa.Array) -> np.ndarray:
    """Row of ``rt`` for each district dictionary value (-1 if the table lacks it)."""
    table_ids = pa.array([str(d) for d in np.asarray(rt.district_ids).tolist()], pa.string())
    return pc.fill_null(pc.index_in(districts, value_set=table_ids), -1).to_numpy(zero_copy_only=False)


@njit(nogil=True, cache=True)
def _gather_rates(district, days, district_row, cohort_lookup, first_day, rate, flagged):  # pragma: no cover
    """Payout rate per policy by integer codes: one pass, no per-farmer series.

    ``district`` holds dictionary codes, mapped to RateTable rows by ``district_row``;
    ``days`` (days since 1970-01-01) map to cohort columns by ``cohort_lookup[days -
    first_day]`` (-1: no such cohort). With an empty ``days`` every policy is in column 0
    (anchor ``season_start``). Returns the rate (0 where withheld), the withheld flag
    (flagged cell or NaN rate), the cohort column and the first row whose district or
    sowing date the table lacks (-1 if none).
    """
    n = district.shape[0]
    n_cohort = rate.shape[1]
    out_rate = np.empty(n, np.float64)
    withheld = np.empty(n, np.bool_)
    column = np.zeros(n, np.int32)
    row = np.zeros(n, np.int32)
    by_date = days.shape[0] == n and n > 0 and cohort_lookup.shape[0] > 0
    for i in range(n):
        r = district_row[district[i]]
        c = 0
        if by_date:
            k = days[i] - first_day
            c = cohort_lookup[k] if 0 <= k < cohort_lookup.shape[0] else -1
        elif n_cohort != 1:
            c = -1
        if r < 0 or c < 0:
            return out_rate, withheld, column, row, i
        x = rate[r, c]
        w = flagged[r, c] or not np.isfinite(x)
        out_rate[i] = 0.0 if w else x
        withheld[i] = w
        column[i] = c
        row[i] = r
    return out_rate, withheld, column, row, -1


def _rates_for(rt: RateTable, districts: pa.Array, district_codes: np.ndarray,
               sowing: tuple[np.ndarray, np.ndarray] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rate [fraction], withheld flag, cohort date [days] and the table's row and column for
    one product's policies.

    Raises
    ------
    ValueError
        The table lacks a district or a sowing-date cohort of these policies.
    """
    cohorts = np.asarray(rt.cohorts).astype("datetime64[D]").astype(np.int64)
    if len(np.unique(cohorts)) != len(cohorts):
        raise ValueError(f"RateTable {rt.product_id!r}: cohorts must be distinct dates")
    if rt.anchor == "season_start":
        if len(cohorts) != 1:
            raise ValueError(f"RateTable {rt.product_id!r}: anchor 'season_start' needs exactly one cohort, "
                             f"got {len(cohorts)}")
        days, lookup, first = np.zeros(0, np.int32), np.zeros(0, np.int32), 0
    else:
        if sowing is None or not sowing[1].all():
            raise ValueError(f"product {rt.product_id!r} is anchored on the sowing date, but some policies "
                             "have none (validate_policies rejects them)")
        days = sowing[0]
        first = int(cohorts.min()) if len(cohorts) else 0
        lookup = np.full(int(cohorts.max()) - first + 1 if len(cohorts) else 0, -1, np.int32)
        lookup[cohorts - first] = np.arange(len(cohorts), dtype=np.int32)
    district_row = _district_rows(rt, districts)
    rate, withheld, column, row, bad = _gather_rates(
        district_codes, days, district_row, lookup, first,
        np.ascontiguousarray(rt.rate, dtype=np.float64), np.ascontiguousarray(rt.flagged, dtype=np.bool_))
    if bad >= 0:
        lacking = districts.take(pa.array(np.unique(district_codes[district_row[district_codes] < 0]))).to_pylist()
        if lacking:
            raise ValueError(f"RateTable {rt.product_id!r} has no rates for district(s) {lacking[:10]}")
        day = np.datetime64(int(days[bad]), "D")
        raise ValueError(f"RateTable {rt.product_id!r} has no cohort for sowing date {day}: the trigger must "
                         "assess every sowing date in the register")
    return rate, withheld, cohorts[column] if len(cohorts) else np.zeros(0, np.int64), row, column


def build_ledger(policies: pd.DataFrame | pa.Table, rate_tables: Mapping[str, RateTable | PolicyAmounts],
                 products: Mapping[str, ProductRules],
                 terms: Mapping[str, Terms | None] | None = None, *,
                 parquet_path: str | Path | None = None, season_end: Any = None) -> pa.Table:
    """One ledger row per valid policy: rate → sum insured → gross → terms → net [Rp].

    Parameters
    ----------
    policies
        Valid policies (the first table of :func:`~panen.engine.settlement.policies.validate_policies`):
        ``policy_id, farmer_id, district_id, product_id, area_ha`` [ha] and optionally
        ``sum_insured`` [Rp], ``sowing_date``, ``group_id``, ``actual_value`` [Rp],
        ``event_number``, ``interruption_days`` [days], ``daily_loss`` [Rp/day],
        ``event_date`` (the last five: term context). Not modified.
    rate_tables
        What each cover decided (``product_id`` →): the payout rates per district and cohort
        of an index cover (:class:`~panen.engine.settlement.rates.RateTable`), or the gross
        amount, outcome and reason per policy of a named-peril cover
        (:class:`~panen.engine.settlement.rates.PolicyAmounts`).
    products
        ``product_id`` → :class:`~panen.engine.settlement.policies.ProductRules`.
    terms
        ``product_id`` → :class:`~panen.engine.maths.terms.Terms` (missing or ``None``: no terms).
    parquet_path
        If given, the ledger is also written there as Parquet, atomically, one row group
        at a time while later rows are still being built (a writer thread; Arrow's encoder
        releases the GIL). The file is byte-identical to
        ``write_table_atomic(ledger, parquet_path)``; on any error nothing is left behind.
    season_end
        The season's last day (date). Term context for a deductible limited to the first
        months of the policy (``first_months``): a policy of an **index** cover without an
        ``event_date`` takes the season end as its event date — an index loss has no day
        of its own; it is established when the season's window closes. A named-peril
        policy without one has no event date (its terms then fail, naming it). The policy
        start is the policy's cohort: the sowing date of a sowing-anchored cover, else the
        season start.

    Returns
    -------
    pyarrow.Table
        Sorted by ``(product_id, district_id, policy_id)``; columns :data:`LEDGER_COLUMNS`
        then ``area_ha, cohort, status, reason`` and ``group_id`` if given; one chunk per
        ``PARQUET_OPTIONS["row_group_size"]`` rows. Per policy:

        * ``sum_insured`` = given ``sum_insured``, else ``round_rupiah(area_ha ×
          sum_insured_per_ha)`` (AUTP: Rp 6,000,000/ha, proportional for other areas); with a
          product's ``sum_insured_factor`` ≠ 1 (ARPI's protection factor) that amount × the
          factor, rounded once;
        * ``gross_payout`` = ``round_rupiah(sum_insured × payout_rate)``;
        * ``deductible``, ``net_payout`` from :func:`~panen.engine.maths.terms.apply_terms`;
        * in a flagged district/cohort (or where the rate is NaN): ``payout_rate`` null,
          all payouts 0, ``status = withheld_missing_data`` and ``reason`` the cover's
          reason (``missing data`` unless the trigger said more) — never paid on garbage;
        * named-peril covers: ``sum_insured`` as the cover fixes it (else as above),
          ``gross_payout`` = the cover's amount, ``payout_rate`` = gross / sum insured;
          status ``paid`` / ``no_payout`` by the net amount after terms, else the cover's
          ``declined`` (reason codes) or ``not_assessed`` (reason ``no_assessment``).

    Raises
    ------
    ValueError
        The rate tables do not cover the policies (a product, district or sowing-date
        cohort without a rate): the trigger and the register disagree.
    """
    t = _as_table(policies)
    need = ("policy_id", "farmer_id", "district_id", "product_id", "area_ha")
    absent = [c for c in need if c not in t.column_names]
    if absent:
        raise ValueError(f"build_ledger: policies lack column(s) {absent}")
    terms = terms or {}
    n = t.num_rows
    p_codes, p_values = _sorted_codes(t["product_id"])
    d_codes, d_values = _sorted_codes(t["district_id"])
    if (p_codes < 0).any() or (d_codes < 0).any():
        raise ValueError("build_ledger: product_id and district_id must not be null (validate_policies first)")
    product_ids = p_values.to_pylist()
    for pid in product_ids:
        if pid not in rate_tables or pid not in products:
            raise ValueError(f"build_ledger: product {pid!r} has no rate table or no product rules")
        if isinstance(rate_tables[pid], PolicyAmounts):
            if products[pid].anchor != "season_start":
                raise ValueError(f"build_ledger: product {pid!r} settles per policy; its anchor must be season_start")
            continue
        if products[pid].anchor != rate_tables[pid].anchor:
            raise ValueError(f"build_ledger: product {pid!r} is anchored on {products[pid].anchor!r} but its "
                             f"rate table on {rate_tables[pid].anchor!r}")

    # 1. order: product, district (ranks of the sorted dictionaries), then policy id
    n_dist = max(len(d_values), 1)
    n_groups = max(len(p_values), 1) * n_dist
    group = p_codes.astype(np.int64) * n_dist + d_codes
    del p_codes, d_codes
    policy_id = _one_chunk(_as_strings(t["policy_id"]))
    perm = sort_order(group, n_groups, policy_id)
    # the sorted group codes need no gather: they are each group repeated by its count
    group_counts = np.bincount(group, minlength=n_groups)
    group_sorted = np.repeat(np.arange(n_groups, dtype=np.int32), group_counts)
    del group
    p_s, d_s = np.divmod(group_sorted, np.int32(n_dist))
    del group_sorted
    bounds = np.concatenate([[0], np.cumsum(group_counts.reshape(-1, n_dist).sum(axis=1))]).astype(np.int64)
    sowing = _optional_column(t, "sowing_date", perm)

    # 2. rates (index covers) or amounts (named-peril covers) for every policy, one product
    # (a contiguous block of rows) at a time, so that a district or cohort without a rate
    # fails before any row is written
    rate = np.zeros(n, np.float64)
    withheld = np.zeros(n, bool)
    cohort = np.empty(n, np.int32)
    reasons = _Reasons()
    reason = np.full(n, -1, np.int32)  # code into reasons.values; -1 = no reason
    amounts: dict[str, _CoverAmounts] = {}
    for k, pid in enumerate(product_ids):
        rows = slice(int(bounds[k]), int(bounds[k + 1]))
        source = rate_tables[pid]
        if isinstance(source, PolicyAmounts):
            amounts[pid] = a = _cover_amounts(source, policy_id.take(pa.array(perm[rows])), perm[rows], n, reasons)
            cohort[rows] = int(np.datetime64(source.cohort, "D").astype(np.int64))
            reason[rows] = a.reason
            continue
        r, w, c, row, col = _rates_for(source, d_values, d_s[rows], _part(sowing, rows))  # rate 0 where withheld
        rate[rows], withheld[rows], cohort[rows] = r, w, c
        if w.any():
            codes = reasons.codes_of_table(source)
            reason[rows] = np.where(w, codes[row, col] if codes is not None else reasons.code("missing data"), -1)
    del sowing

    # 3. money and text, one row group at a time, handed to the writer as each is ready
    inputs = _LedgerInputs(t, policy_id, perm, d_s, p_s, d_values, p_values, bounds, product_ids,
                           rate, withheld, cohort, products, terms, amounts, reason, reasons.values())
    if season_end is not None:
        inputs.season_end = int(np.datetime64(season_end, "D").astype(np.int64))
    step = int(PARQUET_OPTIONS["row_group_size"])
    starts = range(0, n, step) if n else [0]
    # Row groups are built in order by a thread pool (most of the time goes to Arrow's
    # string takes and numpy, which release the GIL); when streaming, the writer thread
    # encodes them as they come. Measured on 10M policies (benchmarks/ledger.py, 2 cores):
    # in memory, one builder 6.9 s, two 4.6 s; streamed, one builder beside the writer
    # 8.0 s, two 8.9 s (three busy threads on two cores starve the writer, which is the
    # longer of the two pipelines at 4.9 s).
    pool = ThreadPoolExecutor(max_workers=2 if parquet_path is None else 1, thread_name_prefix="panen-ledger")
    try:
        built = pool.map(lambda a: inputs.batch(a, min(a + step, n)), starts)  # results in order
        if parquet_path is None:
            return pa.Table.from_batches(list(built))
        with BackgroundParquet(parquet_path) as sink:
            batches = []
            for batch in built:  # the first failing row group (in ledger order) raises here
                batches.append(batch)
                sink.put(batch)
        return pa.Table.from_batches(batches)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after an error, build no more


class _Reasons:
    """One dictionary of reason texts for the whole ledger (codes are int32, -1 = none)."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def code(self, text: str) -> int:
        return self._index.setdefault(text, len(self._index))

    def codes(self, texts: np.ndarray) -> np.ndarray:
        """Codes of an array of texts ("" and None → -1)."""
        flat = np.asarray(texts, dtype=object).ravel()
        uniques, inverse = np.unique(np.array(["" if x is None else str(x) for x in flat], dtype=object),
                                     return_inverse=True)
        table = np.array([-1 if u == "" else self.code(u) for u in uniques.tolist()], np.int32)
        return table[inverse].reshape(np.shape(texts)) if len(flat) else np.zeros(np.shape(texts), np.int32)

    def codes_of_table(self, rt: RateTable) -> np.ndarray | None:
        return None if rt.reason is None else self.codes(rt.reason)

    def values(self) -> pa.Array:
        return pa.array(list(self._index), pa.string())


class _CoverAmounts:
    """A named-peril cover's amounts, in ledger order for one product block."""

    def __init__(self, gross: np.ndarray, status: np.ndarray, reason: np.ndarray,
                 sum_insured: np.ndarray | None) -> None:
        self.gross, self.status, self.reason, self.sum_insured = gross, status, reason, sum_insured


def _cover_amounts(source: PolicyAmounts, policy_ids: pa.Array, input_rows: np.ndarray, n_input: int,
                   reasons: _Reasons) -> _CoverAmounts:
    """Look each policy of the block up in the cover's table (absent: not assessed).

    With the cover's ``rows`` hint (its policies' rows in the ledger's input table), a
    policy's entry is found by position — used only when it pairs every policy of the block
    with one entry of the cover's table and the ids agree; otherwise the ids are matched by
    hashing.
    """
    ids = source.policy_ids
    ids = _one_chunk(ids) if isinstance(ids, pa.ChunkedArray) else ids
    pos = None
    rows = source.rows
    if rows is not None and len(rows) == len(ids) and (len(rows) == 0 or (rows.min() >= 0 and rows.max() < n_input)):
        where = np.full(n_input, -1, np.int64)
        where[rows] = np.arange(len(rows))
        pos = where[input_rows]
        paired = len(pos) == len(ids) and bool((pos >= 0).all())
        if not (paired and pc.all(pc.equal(ids.take(pa.array(pos)), policy_ids)).as_py() is not False):
            pos = None
    if pos is None:
        pos = pc.fill_null(pc.index_in(policy_ids, value_set=ids), -1).to_numpy(zero_copy_only=False)
    found = pos >= 0
    at = np.where(found, pos, 0)
    n_src = len(source.gross)
    gross = np.where(found, source.gross.astype(np.int64)[at], 0) if n_src else np.zeros(len(pos), np.int64)
    outcome = np.asarray([_OUTCOME_STATUS[o] for o in POLICY_OUTCOMES], np.int8)[source.outcome]
    status = np.where(found, outcome[at], _NOT_ASSESSED).astype(np.int8) if n_src else \
        np.full(len(pos), _NOT_ASSESSED, np.int8)
    codes = _text_codes(source.reason, reasons)
    reason = np.where(found, codes[at] if n_src else -1, reasons.code(NOT_ASSESSED_REASON)).astype(np.int32)
    si = None
    if source.sum_insured is not None:
        si = np.where(found, np.asarray(source.sum_insured, np.int64)[at], -1) if n_src else np.full(len(pos), -1)
        if len(pos) and (si < 0).any():  # a policy the cover did not list: it must still say its sum insured
            raise ValueError(f"PolicyAmounts {source.product_id!r} gives sums insured but not for every policy "
                             f"of the cover")
    return _CoverAmounts(gross.astype(np.int64), status, reason, si)


def _text_codes(values: pa.Array | pa.ChunkedArray, reasons: _Reasons) -> np.ndarray:
    """Reason codes (-1 for null or empty) of a string or dictionary array, through its dictionary."""
    if isinstance(values, pa.ChunkedArray):
        values = _one_chunk(values)
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values)
    table = np.array([-1 if not v else reasons.code(v) for v in values.dictionary.to_pylist()] + [-1], np.int32)
    idx = pc.fill_null(values.indices, len(values.dictionary)).to_numpy(zero_copy_only=False)
    return table[idx]


class _LedgerInputs:
    """Everything a ledger row group needs, in ledger (sorted) order or by ``perm``."""

    def __init__(self, t: pa.Table, policy_id: pa.Array, perm: np.ndarray, d_s: np.ndarray, p_s: np.ndarray,
                 d_values: pa.Array, p_values: pa.Array, bounds: np.ndarray, product_ids: list,
                 rate: np.ndarray, withheld: np.ndarray, cohort: np.ndarray,
                 products: Mapping[str, ProductRules], terms: Mapping[str, Terms | None],
                 amounts: Mapping[str, _CoverAmounts], reason: np.ndarray, reason_values: pa.Array) -> None:
        self.perm, self.d_s, self.p_s = perm, d_s, p_s
        self.amounts, self.reason, self.reason_values = amounts, reason, reason_values
        self.d_values, self.p_values, self.bounds, self.product_ids = d_values, p_values, bounds, product_ids
        self.rate, self.withheld, self.cohort = rate, withheld, cohort
        self.products, self.terms = products, terms
        self.area = pc.cast(t["area_ha"], pa.float64()).to_numpy(zero_copy_only=False)  # input order
        self.given_si = _optional_column(t, "sum_insured", None)
        # per-policy term context from the register: missing values are masked, never 0
        self.context = {name: col for name in ("actual_value", "event_number", "interruption_days", "daily_loss",
                                               "event_date")
                        if (col := _optional_column(t, name, None)) is not None}
        self.season_end: int | None = None  # days since 1970: an index cover's event date where none is given
        self.text = {"policy_id": policy_id, "farmer_id": _one_chunk(_as_strings(t["farmer_id"]))}
        if "group_id" in t.column_names:
            self.text["group_id"] = _one_chunk(_as_strings(t["group_id"]))
        self.status_values = pa.array(STATUS_VALUES)

    def batch(self, a: int, b: int) -> pa.RecordBatch:
        """Ledger rows ``a:b`` as one record batch."""
        perm = self.perm[a:b]
        perm_arrow = pa.array(perm)
        area = self.area[perm]
        rate, withheld = self.rate[a:b].copy(), self.withheld[a:b]
        outcome = np.full(b - a, -1, np.int8)  # a named-peril cover's own status where it pays nothing
        sum_insured = np.empty(b - a, np.int64)
        gross = np.empty(b - a, np.int64)
        deductible = np.empty(b - a, np.int64)
        net = np.empty(b - a, np.int64)
        for k, pid in enumerate(self.product_ids):
            lo, hi = max(int(self.bounds[k]), a), min(int(self.bounds[k + 1]), b)
            if lo >= hi:
                continue
            rows, rel = slice(lo, hi), slice(lo - a, hi - a)
            factor = self.products[pid].sum_insured_factor  # e.g. ARPI's protection factor; 1 for most
            si = round_rupiah(area[rel] * self.products[pid].sum_insured_per_ha * factor)
            if self.given_si is not None:
                present = self.given_si[1][perm[rel]]
                given = self.given_si[0][perm[rel]]
                si = np.where(present, given if factor == 1.0 else round_rupiah(given * factor), si)
            cover = self.amounts.get(pid)
            if cover is None:
                g = round_rupiah(si * self.rate[rows])
            else:  # a named-peril cover decided each policy: its amount is the gross
                block = slice(lo - int(self.bounds[k]), hi - int(self.bounds[k]))
                if cover.sum_insured is not None:
                    si = cover.sum_insured[block]
                g = cover.gross[block]
                with np.errstate(divide="ignore", invalid="ignore"):
                    rate[rel] = np.where(si > 0, g / np.maximum(si, 1), 0.0)
                outcome[rel] = cover.status[block]
            term, context = self.terms.get(pid), {"sum_insured": si}
            for name, (values, present) in self.context.items():  # null -> masked: missing, never 0
                context[name] = np.ma.MaskedArray(values[perm[rel]], mask=~present[perm[rel]])
            context["policy_start"] = self.cohort[rows]
            if (cover is None and self.season_end is not None and term is not None
                    and "event_date" in term.context_columns):  # an index loss is known when the season closes
                given = context.get("event_date")
                context["event_date"] = (np.full(hi - lo, self.season_end, np.int64) if given is None
                                         else np.ma.filled(given.astype(np.int64), self.season_end))
            ids = (self.text["policy_id"].take(perm_arrow.slice(rel.start, rel.stop - rel.start))
                   if term is not None and term.context_columns else None)  # only to name policies in errors
            ded, nt = apply_terms(g, term, context=context, product=pid, policy_ids=ids)
            sum_insured[rel], gross[rel], deductible[rel], net[rel] = si, g, ded, nt
        status = np.where(withheld, _WITHHELD, np.where(net > 0, _PAID, _NO_PAYOUT)).astype(np.int8)
        status = np.where((outcome >= 0) & (gross == 0), outcome, status).astype(np.int8)
        text = {name: col.take(perm_arrow) for name, col in self.text.items()}
        # dictionary columns for the keys: small in memory, fast to write
        columns = {
            "policy_id": text["policy_id"],
            "farmer_id": text["farmer_id"],
            "district_id": pa.DictionaryArray.from_arrays(pa.array(self.d_s[a:b], pa.int32()), self.d_values),
            "product_id": pa.DictionaryArray.from_arrays(pa.array(self.p_s[a:b], pa.int32()), self.p_values),
            "sum_insured": pa.array(sum_insured),
            "payout_rate": pa.array(rate, mask=withheld),
            "gross_payout": pa.array(gross),
            "deductible": pa.array(deductible),
            "net_payout": pa.array(net),
            "area_ha": pa.array(area),
            "cohort": pc.cast(pa.array(self.cohort[a:b]), pa.date32()),
            "status": pa.DictionaryArray.from_arrays(pa.array(status), self.status_values),
            "reason": pa.DictionaryArray.from_arrays(pa.array(self.reason[a:b], mask=self.reason[a:b] < 0),
                                                     self.reason_values),
        }
        if "group_id" in text:
            group_id = text["group_id"]  # an empty group id is a missing one
            columns["group_id"] = pc.if_else(pc.equal(pc.binary_length(group_id), 0),
                                             pa.scalar(None, pa.string()), group_id)
        return pa.RecordBatch.from_pydict(columns)


# --------------------------------------------------------------------------- totals


_TOTAL_COLUMNS = ("level", "product_id", "district_id", "policies", "withheld", "referred", "area_ha",
                  "sum_insured", "gross_payout", "deductible", "net_payout")


def district_totals(ledger: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """Totals per ``(product_id, district_id)`` and a grand total row.

    Parameters
    ----------
    ledger
        As built by :func:`build_ledger`.

    Returns
    -------
    pandas.DataFrame
        Columns ``level`` (``district`` | ``total``), ``product_id``, ``district_id``
        (null on the total row), ``policies``, ``withheld`` (policies withheld for missing
        data), ``referred`` (named-peril policies with nothing paid and a claim referred to a
        person), ``area_ha`` [ha], ``sum_insured``, ``gross_payout``, ``deductible``,
        ``net_payout`` [Rp, int64]. Sorted by product then district. The total row is
        summed from the ledger itself, not from the district rows, so :func:`reconcile`
        compares two independent sums.
    """
    t = _as_table(ledger)
    keys = pa.table({
        "product_id": _as_strings(t["product_id"]),
        "district_id": _as_strings(t["district_id"]),
        "policy_id": t["policy_id"],
        "withheld": pc.cast(pc.equal(_as_strings(t["status"]), "withheld_missing_data"), pa.int64()),
        "referred": pc.cast(pc.equal(_as_strings(t["status"]), "referred"), pa.int64()),
        "area_ha": t["area_ha"],
        **{m: t[m] for m in MONEY_COLUMNS},
    })
    aggregations = [("policy_id", "count"), ("withheld", "sum"), ("referred", "sum"), ("area_ha", "sum")]
    aggregations += [(m, "sum") for m in MONEY_COLUMNS]
    grouped = keys.group_by(["product_id", "district_id"], use_threads=False).aggregate(aggregations)
    grouped = grouped.sort_by([("product_id", "ascending"), ("district_id", "ascending")])
    frame = pd.DataFrame({
        "level": "district",
        "product_id": grouped["product_id"].to_pandas(),
        "district_id": grouped["district_id"].to_pandas(),
        "policies": grouped["policy_id_count"].to_numpy().astype(np.int64),
        "withheld": grouped["withheld_sum"].to_numpy().astype(np.int64),
        "referred": grouped["referred_sum"].to_numpy().astype(np.int64),
        "area_ha": grouped["area_ha_sum"].to_numpy().astype(np.float64),
        **{m: grouped[f"{m}_sum"].to_numpy().astype(np.int64) for m in MONEY_COLUMNS},
    })
    total = {
        "level": "total", "product_id": None, "district_id": None,
        "policies": t.num_rows,
        "withheld": int(pc.sum(keys["withheld"]).as_py() or 0),
        "referred": int(pc.sum(keys["referred"]).as_py() or 0),
        "area_ha": float(pc.sum(t["area_ha"]).as_py() or 0.0),
        **{m: int(np.sum(t[m].to_numpy(), dtype=np.int64)) for m in MONEY_COLUMNS},
    }
    out = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    for c in ("policies", "withheld", "referred", *MONEY_COLUMNS):
        out[c] = out[c].astype(np.int64)
    out["level"] = out["level"].astype("str")
    out["product_id"] = out["product_id"].astype("str")
    out["district_id"] = out["district_id"].astype("str")
    # areas are summed in float64: show them to the m² (1e-4 ha), not with binary noise
    out["area_ha"] = out["area_ha"].round(4)
    return out[list(_TOTAL_COLUMNS)]


def reconcile(ledger: pa.Table | pd.DataFrame, totals: pd.DataFrame) -> None:
    """Check that district totals add up to the ledger, to the rupiah.

    Three independent sums must agree exactly, for the policy count and every money
    column: each district row against the ledger's own rows of that district (summed
    again here with integer arithmetic), the district rows against the total row, and
    the total row against the whole ledger. And no row pays more than its sum insured or
    its gross payout, or less than nothing.

    Raises
    ------
    ReconciliationError
        Listing every disagreement (an internal failure: the CLI exits 1).
    """
    t = _as_table(ledger)
    problems: list[str] = []
    districts = totals[totals["level"] == "district"]
    total_rows = totals[totals["level"] == "total"]
    if len(total_rows) != 1:
        raise ReconciliationError(f"expected exactly one total row, found {len(total_rows)}")
    total = total_rows.iloc[0]
    measures = ("policies", *MONEY_COLUMNS)

    codes_p, values_p = dictionary_codes(t["product_id"])
    codes_d, values_d = dictionary_codes(t["district_id"])
    n_d = max(len(values_d), 1)
    key = codes_p.astype(np.int64) * n_d + codes_d
    recount = {"policies": np.zeros(max(len(values_p), 1) * n_d, np.int64)}
    np.add.at(recount["policies"], key, 1)
    for m in MONEY_COLUMNS:
        recount[m] = np.zeros_like(recount["policies"])
        np.add.at(recount[m], key, t[m].to_numpy().astype(np.int64))
    p_index = {v: i for i, v in enumerate(values_p.to_pylist())}
    d_index = {v: i for i, v in enumerate(values_d.to_pylist())}
    seen = np.zeros(len(recount["policies"]), bool)
    for row in districts.itertuples(index=False):  # one iteration per district, not per policy
        i = p_index.get(row.product_id, -1)
        j = d_index.get(row.district_id, -1)
        if i < 0 or j < 0:
            problems.append(f"{row.product_id}/{row.district_id}: in the totals but not in the ledger")
            continue
        cell = i * n_d + j
        seen[cell] = True
        for m in measures:
            if int(getattr(row, m)) != int(recount[m][cell]):
                problems.append(f"{row.product_id}/{row.district_id} {m}: totals {int(getattr(row, m))} "
                                f"!= ledger {int(recount[m][cell])}")
    if (recount["policies"][~seen] > 0).any():
        problems.append(f"{int((recount['policies'][~seen] > 0).sum())} product/district cell(s) of the "
                        "ledger are missing from the totals")
    for m in measures:
        ledger_sum = t.num_rows if m == "policies" else int(np.sum(t[m].to_numpy(), dtype=np.int64))
        district_sum = int(districts[m].sum())
        if district_sum != int(total[m]):
            problems.append(f"{m}: district rows sum to {district_sum} but the total row says {int(total[m])}")
        if ledger_sum != int(total[m]):
            problems.append(f"{m}: ledger sums to {ledger_sum} but the total row says {int(total[m])}")
    # no policy is ever paid more than its sum insured, nor less than nothing
    si, gross, net = (t[c].to_numpy().astype(np.int64) for c in ("sum_insured", "gross_payout", "net_payout"))
    over = (gross > si) | (net > si) | (net < 0) | (net > gross)
    if over.any():
        problems.append(f"{int(over.sum())} ledger row(s) pay more than the sum insured or the gross, or less than "
                        f"nothing (first at row {int(np.argmax(over))})")
    if problems:
        raise ReconciliationError("district totals do not reconcile with the ledger:\n  " + "\n  ".join(problems))


# --------------------------------------------------------------------------- payments


def payment_id(season_id: str, product_id: str, payee_type: str, payee_id: str) -> str:
    """Deterministic payment id: first 16 hex digits of sha256("season|product|type:payee").

    The same season, product and payee always get the same id, so a rerun of a season
    produces the same ids and a bank or mobile-money batch can refuse a second payment
    with an id it has already paid (never double-pay).
    """
    text = f"{season_id}|{product_id}|{payee_type}:{payee_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def payments(ledger: pa.Table | pd.DataFrame, *, by: Literal["farmer", "group"] = "farmer",
             season_id: str, instalments: Mapping[str, Instalments | None] | None = None,
             due: Any = None) -> pd.DataFrame:
    """Payable net amounts per payee (farmer, or farmer group), ready for a bank batch.

    Parameters
    ----------
    ledger
        As built by :func:`build_ledger` (every cover, index and named-peril alike).
    by
        ``"farmer"`` pays each ``farmer_id``; ``"group"`` pays each farmer group (AUTP pays
        into the kelompok tani's account). A group is a ``group_id`` *within its district*:
        group names such as "Tani Maju" repeat across Indonesia, and two districts' groups
        of one name are two payees, never one.
    season_id
        The season, part of every payment id.
    instalments
        ``product_id`` → :class:`~panen.engine.maths.terms.Instalments` (the product's
        ``terms.instalments``; missing or ``None``: one payment).
    due
        The date the season's payments fall due (the season's end in a run): the due date
        of a single payment and of a first instalment. ``None``: ``due_date`` is empty.

    Returns
    -------
    pandas.DataFrame
        ``payment_id, season_id, product_id, payee_type, payee_id, district_id, policies,
        instalment, due_date, amount`` [Rp, int64]; one row per product and payee with a
        positive amount — one per instalment for a product paid in instalments — sorted
        by product, district (groups), payee and instalment. ``district_id`` is the group's
        district (empty for farmers). Per payee and product, ``amount`` (summed over the
        instalments) is the sum of the payee's net payouts to the rupiah. A payment id
        (:func:`payment_id`; for a group the payee key is ``district_id/group_id``)
        identifies the payee's payment for the season and product, not the amount: if a
        corrected rerun changes an amount, the id stays the same and the batch must treat
        it as an adjustment, not a second payment. An instalment's id is that id with
        ``/k`` appended (``/1`` … ``/6``), ``instalment`` is k and ``due_date`` (ISO) is
        ``due`` plus ``(k − 1) × every_months`` calendar months; the rupiah left by an even
        split (fewer than ``count``) is paid with the first instalment, and an instalment
        of 0 (an amount below ``count`` rupiah) is not listed.

    Raises
    ------
    DataQualityError
        ``by="group"`` but a policy with a positive payout has no ``group_id``.
    """
    if by not in ("farmer", "group"):
        raise ValueError(f"payments: by must be 'farmer' or 'group', got {by!r}")
    t = _as_table(ledger)
    column = "farmer_id" if by == "farmer" else "group_id"
    if column not in t.column_names:
        raise DataQualityError(f"cannot pay by {by}: the ledger has no {column} column", column=column)
    payable = t.filter(pc.greater(t["net_payout"], 0))
    payee = _as_strings(payable[column])
    no_payee = int(pc.sum(pc.cast(pc.fill_null(pc.equal(pc.binary_length(payee), 0), True), pa.int64())).as_py() or 0)
    if no_payee:
        raise DataQualityError(f"{no_payee} polic{'y' if no_payee == 1 else 'ies'} with a positive payout "
                               f"ha{'s' if no_payee == 1 else 've'} no {column}; cannot pay by {by}", column=column)
    district = _as_strings(payable["district_id"]) if by == "group" else pa.array([""] * payable.num_rows, pa.string())
    grouped = pa.table({
        "product_id": _as_strings(payable["product_id"]),
        "district_id": district,
        "payee_id": payee,
        "net_payout": payable["net_payout"],
    }).group_by(["product_id", "district_id", "payee_id"], use_threads=False).aggregate(
        [("net_payout", "count"), ("net_payout", "sum")])
    grouped = grouped.sort_by([("product_id", "ascending"), ("district_id", "ascending"),
                               ("payee_id", "ascending")])
    products = grouped["product_id"].to_pylist()
    payees = grouped["payee_id"].to_pylist()
    districts = grouped["district_id"].to_pylist()
    keys = payees if by == "farmer" else [f"{d}/{q}" for d, q in zip(districts, payees)]
    ids = [payment_id(season_id, p, by, q) for p, q in zip(products, keys)]  # one per payment
    frame = pd.DataFrame({
        "payment_id": pd.Series(ids, dtype="str"),
        "season_id": pd.Series([season_id] * len(ids), dtype="str"),
        "product_id": pd.Series(products, dtype="str"),
        "payee_type": pd.Series([by] * len(ids), dtype="str"),
        "payee_id": pd.Series(payees, dtype="str"),
        "district_id": pd.Series(districts, dtype="str"),
        "policies": grouped["net_payout_count"].to_numpy().astype(np.int64),
        "instalment": np.ones(len(ids), np.int64),
        "due_date": pd.Series([_iso(due)] * len(ids), dtype="str"),
        "amount": grouped["net_payout_sum"].to_numpy().astype(np.int64),
    })
    schedules = {p: i for p, i in (instalments or {}).items() if i is not None}
    if not schedules:
        return frame
    return _in_instalments(frame, schedules, due)


def _iso(day: Any) -> str:
    return "" if day is None else str(np.datetime64(day, "D"))


def _in_instalments(frame: pd.DataFrame, schedules: Mapping[str, Instalments], due: Any) -> pd.DataFrame:
    """Split the payments of products paid in instalments: one row per instalment.

    ``amount = q × count + r`` (``0 <= r < count``): the first instalment is ``q + r``,
    the others ``q``, so every payee's instalments add up to the amount exactly.
    """
    count = frame["product_id"].map(lambda p: schedules[p].count if p in schedules else 1).to_numpy(np.int64)
    every = frame["product_id"].map(lambda p: schedules[p].every_months if p in schedules else 0).to_numpy(np.int64)
    rows = np.repeat(np.arange(len(frame)), count)
    k = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count) + 1  # 1..count within each payment
    amount = frame["amount"].to_numpy(np.int64)
    q, r = np.divmod(amount, count)
    part = q[rows] + np.where(k == 1, r[rows], 0)
    out = frame.iloc[rows].reset_index(drop=True)
    split = count[rows] > 1
    out["payment_id"] = np.where(split, out["payment_id"] + "/" + pd.Series(k).astype(str), out["payment_id"])
    out["instalment"] = k.astype(np.int64)
    if due is not None:
        start = np.full(len(rows), np.datetime64(due, "D").astype(np.int64))
        months = (k - 1) * every[rows]
        days = add_months(start, months)
        out["due_date"] = pd.Series(days.astype("datetime64[D]").astype(str), dtype="str")
    out["amount"] = part.astype(np.int64)
    out = out[part > 0].reset_index(drop=True)
    if int(out["amount"].sum()) != int(amount.sum()):  # the one rule of this function; cannot happen
        raise ReconciliationError("instalments do not add up to the payments they split")
    return out
