"""The policy register: sorting its rows into valid policies and rejects.

Two stages, kept apart on purpose:

* :func:`panen.datasets.policies.read_policies` (the ``policies`` reader) reads a CSV or
  Parquet register. Only problems with the *file*
  fail here (missing file, unreadable or unparsable file, a required column missing):
  they raise :class:`~panen.engine.errors.InputError` naming the file and column, and the
  CLI exits 2 with every problem listed.
* :func:`validate_policies` checks every *row* and moves bad rows to a rejects table with a
  reason code and a message naming the file, the 1-based data row (header excluded), the
  text line the row starts on (header = line 1; blank lines and line breaks inside quoted
  values count, as in a text editor) and the column, named as the file names it. No row
  is ever dropped silently: ``len(valid) + len(rejects) == rows read``.

Keys (``policy_id, farmer_id, district_id, product_id, group_id``) are compared as
normalised text (:func:`panen.engine.infra.safetext.normalise_keys`: invisible characters
removed, NFKC, trimmed), and the valid table — hence the ledger and the payments —
carries the normalised key: ``"P001 "`` and ``"P0\u200b01"`` are one policy id, which
occurs twice.

Everything is vectorised over Arrow/numpy arrays (a numba kernel finds duplicate policy
ids by hashing), so a national register of ten million rows validates in seconds.

Register columns (README, "Config reference")::

    policy_id, farmer_id, district_id, product_id, area_ha            required
    sum_insured [Rp], sowing_date (ISO), group_id, actual_value [Rp]   optional
    event_number [1-based], interruption_days [days]                  optional
    no_claim_years [years, >= 0]                                      optional
    daily_loss [Rp/day], event_date (ISO)                             optional

``event_number`` (which event of the policy year the assessed loss is, for a ``dynamic``
deductible) and ``interruption_days`` (length of the interruption, for a ``time_excess``
deductible), ``daily_loss`` (loss per day of the interruption, for a ``time_excess`` paid
per day) and ``event_date`` (date of the loss event, for a deductible limited to the first
months of the policy) are the per-policy context of those term rules (:mod:`panen.engine.maths.terms`); a
product whose terms need one fails on the first policy without it, never pays it
unreduced. ``no_claim_years`` (consecutive claim-free years before the period) earns the
term sheet's no-claim discount on the premium (:mod:`panen.engine.maths.premium`); an
empty cell earns none.

Low-cardinality keys (``district_id``, ``product_id``) are read as Arrow dictionary arrays
(pandas categoricals in the valid table): ten million rows carry a few hundred distinct
districts, and every check on them runs on the dictionary, not the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from panen.engine.api import (REGISTER_KEY_COLUMNS, REGISTER_OPTIONAL_COLUMNS, REGISTER_REQUIRED_COLUMNS,
                              PolicyRegister)
from panen.engine.infra.arrowcols import (TextFormat, as_text, blank, date_column, datetime_column, key_column,
                                         number_column, string_buffers, text_column)
from panen.engine.infra.safetext import line_breaks, normalise_key_dictionary, normalise_keys

__all__ = [
    "KEY_COLUMNS",
    "Limits",
    "OPTIONAL_COLUMNS",
    "REASONS",
    "REJECT_COLUMNS",
    "REQUIRED_COLUMNS",
    "ProductRules",
    "validate_policies",
]

REQUIRED_COLUMNS = REGISTER_REQUIRED_COLUMNS
OPTIONAL_COLUMNS = REGISTER_OPTIONAL_COLUMNS
#: Optional whole-number columns carried as term context, with their lowest valid value.
_COUNT_COLUMNS: dict[str, int] = {"event_number": 1, "interruption_days": 0, "no_claim_years": 0, "daily_loss": 0}
#: Read as dictionary arrays: a few hundred distinct values over millions of rows. (Farmer
#: groups are too many — hundreds of thousands — for per-chunk dictionaries to pay off.)
KEY_COLUMNS = REGISTER_KEY_COLUMNS
#: Leading columns of the rejects table; the row's raw values follow.
REJECT_COLUMNS: tuple[str, ...] = ("file", "row", "line", "column", "policy_id", "product_id", "reason", "message")

#: Reject reason codes, in the order they are checked: a row with several problems is
#: rejected once, for the first.
REASONS: dict[str, str] = {
    "missing_value": "a required value is empty",
    "bad_key": "a key holds a control character or a bidirectional/line-separator format character",
    "unsafe_text": "a key begins with =, +, - or @ (a spreadsheet would run it as a formula)",
    "multiline_value": "a value panen does not parse (an extra column, a sowing date no product uses) spans "
                       "lines (a quote may be missing: the lines may be policies)",
    "duplicate_policy_id": "the policy id occurs more than once in the register",
    "unknown_product": "the product is not configured for this run",
    "unknown_district": "the district is not in the district layer, or not in the data of the product",
    "bad_number": "a number could not be parsed",
    "non_positive_area": "the area is zero or negative",
    "bad_sum_insured": "the sum insured is negative or not a whole number of rupiah",
    "bad_actual_value": "the actual value is not a positive whole number of rupiah",
    "implausible_area": "the area is above the plausible maximum per policy (limits.max_area_ha)",
    "implausible_sum_insured": "the sum insured is above the plausible maximum per policy (limits.max_sum_insured)",
    "implausible_sum_insured_per_ha": "the sum insured per hectare is above the plausible maximum "
                                      "(limits.max_sum_insured_per_ha)",
    "bad_event_number": "the event number is not a whole number >= 1",
    "bad_interruption_days": "the interruption length is not a whole number of days >= 0",
    "bad_date": "a date the product reads (sowing date of a sowing-anchored product; the event date of a term "
                "rule; cover_start, cover_end, harvest_date of a named-peril cover) is not a date (or date and "
                "local time) in the file's format",
    "cover_end_before_start": "the policy's cover_end is before its cover_start",
    "bad_no_claim_years": "the number of claim-free years is not a whole number >= 0",
    "bad_daily_loss": "the daily loss is not a whole number of rupiah >= 0",
    "missing_sowing_date": "the product is anchored on the sowing date but none is given",
    "sowing_date_outside_window": "the sowing date is outside the window the product can assess",
}
_REASON_CODES = {name: i + 1 for i, name in enumerate(REASONS)}  # 0 = valid

_MAX_RUPIAH = float(2**53)  # integers above this are not exact in float64
#: Optional date columns parsed only for the products that read them (a bad one elsewhere is no reject).
_PARSED_IF_USED = ("sowing_date", "cover_start", "cover_end", "harvest_date")


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds of a policy row (``limits:`` in the run config); rows beyond them are
    rejected with the bound named, never paid.

    A register typo moves real money: an area of 1e9 ha paid Rp 1.58 quadrillion, 4,500 ha
    (m² typed as ha) Rp 6.1 bn. The defaults are far above any smallholder policy and far
    below such typos; raise them in the config for a portfolio that needs it.

    Parameters
    ----------
    max_area_ha
        Largest area of one policy [ha] (default 1,000; AUTP insures at most 2 ha per farmer).
    max_sum_insured
        Largest sum insured of one policy [Rp] (default 10,000,000,000), whether given by the
        register or computed from the area.
    max_sum_insured_per_ha
        Largest sum insured per hectare [Rp/ha] (default 100,000,000; AUTP: 6,000,000).
    """

    max_area_ha: float = 1_000.0
    max_sum_insured: int = 10_000_000_000
    max_sum_insured_per_ha: int = 100_000_000


@dataclass(frozen=True)
class ProductRules:
    """What the register checks and the ledger need to know about one product.

    Parameters
    ----------
    sum_insured_per_ha
        Sum insured per hectare [Rp/ha] (AUTP: 6,000,000), used when a policy row gives
        no ``sum_insured``.
    anchor
        ``"season_start"`` (one window for everybody) or ``"sowing_date"`` (the window
        starts at each policy's sowing date, which is then required).
    sowing_window
        ``(first, last)`` sowing dates, inclusive, that the product's data can assess;
        policies of a sowing-date product sown outside it are rejected. ``None``: no check.
    districts
        The districts the product's own data knows (e.g. those of the yields table an
        area-yield product settles on); a policy in another district is rejected
        ``unknown_district``. ``None``: only the run's district layer (if any) is checked.
    districts_source
        What ``districts`` come from, for the reject message (e.g. ``"the yields table
        (inputs.yields)"``).
    cover_times
        For a product that reads each policy's own cover period (the register's
        ``cover_start``, ``cover_end``: dates, or dates with a local clock time): the time
        of day [s after midnight] a date written without a time starts and ends cover
        (AUTP: 12:00 noon, 43,200 s, on both). ``None``: the product does not read them.
    harvest_date
        Whether the product reads the register's ``harvest_date`` (a post-harvest cover).
    sum_insured_factor
        Multiplier of each policy's sum insured (given or area × Rp/ha), e.g. ARPI's
        protection factor (:attr:`panen.engine.api.ProductParams.sum_insured_factor`);
        the ledger rounds the product to the rupiah. Default 1.
    """

    sum_insured_per_ha: int
    anchor: Literal["season_start", "sowing_date"] = "season_start"
    sowing_window: tuple[date, date] | None = None
    districts: frozenset[str] | None = None
    districts_source: str = "the product's data"
    cover_times: tuple[int, int] | None = None
    harvest_date: bool = False
    sum_insured_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sum_insured_factor) and self.sum_insured_factor > 0):
            raise ValueError(f"sum_insured_factor must be a positive number, got {self.sum_insured_factor!r}")
        if isinstance(self.sum_insured_per_ha, bool) or not isinstance(self.sum_insured_per_ha, (int, np.integer)) \
                or self.sum_insured_per_ha <= 0:
            raise ValueError(f"sum_insured_per_ha must be a positive whole number of rupiah, "
                             f"got {self.sum_insured_per_ha!r}")
        if self.anchor not in ("season_start", "sowing_date"):
            raise ValueError(f"anchor must be 'season_start' or 'sowing_date', got {self.anchor!r}")
        if self.sowing_window is not None:
            first, last = self.sowing_window
            if first > last:
                raise ValueError(f"sowing_window starts after it ends: {first} > {last}")


# --------------------------------------------------------------------------- column decoding
# Each helper turns one raw column into numpy arrays plus "missing" and "bad" masks; the
# raw values are kept for the rejects table.


@njit(nogil=True, cache=True)
def _occurrence_counts(offsets, data, use):  # pragma: no cover - numba
    """Per row: how many ``use`` rows hold the same string, and the first such row (-1 if unused).

    Open addressing over a 64-bit hash of each string (8 bytes at a time). A slot packs
    the hash's top 32 bits with the row number, so a probe costs one memory access;
    equal tags are confirmed byte by byte, so the result is exact.
    """
    n = offsets.shape[0] - 1
    cap = 16
    while cap < n + n // 2:
        cap *= 2
    mask = np.uint64(cap - 1)
    slots = np.zeros(cap, np.uint64)  # 0 = empty, else (tag << 32) | (row + 1)
    first = np.full(n, -1, np.int64)
    counts = np.zeros(n, np.int64)
    low = np.uint64(0xFFFFFFFF)
    for i in range(n):
        if not use[i]:
            continue
        s = offsets[i]
        e = offsets[i + 1]
        h = np.uint64(e - s) * np.uint64(0x9E3779B97F4A7C15)
        k = s
        while k + 8 <= e:
            w = np.uint64(0)
            for b in range(8):
                w = w | (np.uint64(data[k + b]) << np.uint64(8 * b))
            h = (h ^ w) * np.uint64(0xFF51AFD7ED558CCD)
            h ^= h >> np.uint64(32)
            k += 8
        w = np.uint64(0)
        b = 0
        while k < e:
            w = w | (np.uint64(data[k]) << np.uint64(8 * b))
            k += 1
            b += 1
        h = (h ^ w) * np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(29)
        tag = h >> np.uint64(32)
        slot = h & mask
        while True:
            entry = slots[slot]
            if entry == 0:
                slots[slot] = (tag << np.uint64(32)) | np.uint64(i + 1)
                first[i] = i
                counts[i] = 1
                break
            if entry >> np.uint64(32) == tag:
                j = np.int64(entry & low) - 1
                sj = offsets[j]
                if offsets[j + 1] - sj == e - s:
                    same = True
                    for q in range(e - s):
                        if data[s + q] != data[sj + q]:
                            same = False
                            break
                    if same:
                        first[i] = j
                        counts[j] += 1
                        break
            slot = (slot + np.uint64(1)) & mask
    per_row = np.zeros(n, np.int64)
    for i in range(n):
        if first[i] >= 0:
            per_row[i] = counts[first[i]]
    return per_row, first


def _occurrences(col: pa.ChunkedArray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how often its value occurs among ``use`` rows, and the first such row."""
    offsets, data = string_buffers(col)
    if len(use) >= 2**32 - 1:
        raise ValueError("more than 2**32 policies in one register")
    return _occurrence_counts(offsets, data, np.ascontiguousarray(use))


# --------------------------------------------------------------------------- validation


def validate_policies(register: PolicyRegister, *, district_ids: Iterable[str] | None = None,
                      products: Mapping[str, ProductRules],
                      limits: Limits | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a register into valid policies and rejects (no row is ever dropped).

    Checks, in order (a row is rejected once, for the first problem found; see
    :data:`REASONS`): a required value is empty (``missing_value``, naming the column;
    a key of nothing but spaces and invisible characters is empty); a key holds a
    control or bidirectional/line-separator character (``bad_key``) or would start a
    spreadsheet formula (``unsafe_text``: ``=``, ``+``, ``-``, ``@``, unless a plain
    signed number); a value panen does not otherwise parse (an extra column, the sowing
    date) spans lines (``multiline_value``: a missing quote may have swallowed policies);
    the normalised policy id occurs more than once (``duplicate_policy_id`` — *every* occurrence is
    rejected); unknown product; unknown district; an unparsable number (``bad_number``)
    in ``area_ha``, ``sum_insured``, ``actual_value``, ``event_number`` or
    ``interruption_days``; ``area_ha <= 0``
    (``non_positive_area``); a negative, fractional or absurd (>= 2**53) ``sum_insured``
    (``bad_sum_insured``); an ``actual_value`` that is not a positive whole number of
    rupiah (``bad_actual_value``); an ``event_number`` below 1, an
    ``interruption_days`` or ``no_claim_years`` below 0, or any of them fractional
    (``bad_event_number``, ``bad_interruption_days``, ``bad_no_claim_years``); and for products anchored on the sowing date (only
    theirs: a sowing date no product uses is not parsed), an unparsable ``sowing_date``
    (``bad_date``), a missing sowing date
    (``missing_sowing_date``) or one outside the product's ``sowing_window``
    (``sowing_date_outside_window``, inclusive bounds); for named-peril covers that read
    them (:attr:`ProductRules.cover_times`, ``harvest_date``), an unparsable
    ``cover_start``, ``cover_end`` or ``harvest_date`` (``bad_date``; a value with a time
    zone or UTC offset is unparsable: times are the plot's local time as written), and a
    ``cover_end`` before the ``cover_start`` (``cover_end_before_start``; equal instants
    are allowed). A date written without a clock time takes the cover's time of day.

    Parameters
    ----------
    register
        As returned by :func:`read_policies` or :meth:`PolicyRegister.from_frame`; its
        ``text`` format says how numbers and dates are written (decimal comma,
        ``dd/mm/yyyy``), its ``lines`` and ``source_columns`` locate rejects.
    district_ids
        Every district id of the district layer; ``None`` when the run has no district
        layer (each product's ``districts`` are then its own data's).
    products
        Configured products by ``product_id``.
    limits
        Plausibility bounds (:class:`Limits`; default its defaults): an area, a sum insured
        (given, or area × the product's Rp/ha) or a sum insured per hectare above them is
        rejected (``implausible_area``, ``implausible_sum_insured``,
        ``implausible_sum_insured_per_ha``).

    Returns
    -------
    valid : pandas.DataFrame
        One row per accepted policy, in file order, typed: ids as normalised strings,
        ``district_id`` / ``product_id`` / ``group_id`` as categoricals, ``area_ha``
        float64 [ha], ``sum_insured`` and ``actual_value`` nullable Int64 [Rp],
        ``event_number`` and ``interruption_days`` nullable Int64, ``sowing_date``
        datetime64 (``NaT`` for policies of products not anchored on it), ``cover_start,
        cover_end`` datetime64[s] (local instants, the time of day applied; ``NaT`` when
        not given or not read) and ``harvest_date`` datetime64[s]. Optional columns appear only if the register has them; columns
        outside the contract are not carried.
    rejects : pandas.DataFrame
        ``file, row, line, column, policy_id, product_id, reason, message`` followed by
        the raw values of every other register column (as text, under the file's names),
        sorted by ``row`` (1-based data row of the file, header excluded); ``line`` is
        the text line the row starts on (nullable: ``<NA>`` for Parquet and in-memory
        registers).

    Raises
    ------
    InputError
        A column has a type that cannot hold its values at all (e.g. a nested list).
    """
    t = register.table
    file = register.path
    n = t.num_rows
    names = t.column_names
    reason = np.zeros(n, np.int8)
    column = np.zeros(n, np.int16)  # an export may have hundreds of columns
    # every optional column has a code, present or not: a missing sowing_date column is still
    # the column a "missing_sowing_date" reject names
    col_names = list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)
    col_index = {c: i for i, c in enumerate(col_names)}
    extra = [c for c in names if c not in col_index]  # columns outside the contract, named in rejects too
    col_names += extra
    col_index.update({c: len(col_index) + i for i, c in enumerate(extra)})

    def flag(mask: np.ndarray, why: str, col: str) -> None:
        if not mask.any():
            return
        sel = mask & (reason == 0)
        reason[sel] = _REASON_CODES[why]
        column[sel] = col_index[col]

    # Keys are compared as normalised text (trimmed, NFKC, invisible characters removed):
    # "P001 " and "P0\u200b01" are one policy, "3271 " is district 3271. A key that is still
    # unusable (control or bidirectional characters; a formula a spreadsheet would run) is
    # rejected, never rewritten: the ledger's ids are the CSV's ids.
    policy_id, policy_missing, policy_bad, policy_unsafe = _text_key(t["policy_id"], "policy_id", file)
    farmer_id, farmer_missing, farmer_bad, farmer_unsafe = _text_key(t["farmer_id"], "farmer_id", file)
    d_codes, d_values, d_missing, d_bad, d_unsafe = _dictionary_key(t["district_id"], "district_id", file)
    p_codes, p_values, p_missing, p_bad, p_unsafe = _dictionary_key(t["product_id"], "product_id", file)
    group = None
    if "group_id" in names:  # optional: an empty group id is a missing one
        group_values, group_blank, group_bad, group_unsafe = _text_key(t["group_id"], "group_id", file)
        group = (group_values, group_blank)
    text_format = register.text
    area, area_missing, area_bad = number_column(t["area_ha"], "area_ha", file, text_format)

    for col, missing in (("policy_id", policy_missing), ("farmer_id", farmer_missing),
                         ("district_id", d_missing), ("product_id", p_missing), ("area_ha", area_missing)):
        flag(missing, "missing_value", col)
    keys = [("policy_id", policy_bad, policy_unsafe), ("farmer_id", farmer_bad, farmer_unsafe),
            ("district_id", d_bad, d_unsafe), ("product_id", p_bad, p_unsafe)]
    if group is not None:
        keys.append(("group_id", group_bad, group_unsafe))
    for col, bad, _ in keys:
        flag(bad, "bad_key", col)
    for col, _, unsafe in keys:
        flag(unsafe, "unsafe_text", col)
    # A quoted value may hold line breaks; in a column panen does not read (a note, an
    # address) it could also hold whole lines of policies swallowed by a missing quote,
    # which would then be neither paid nor rejected. Such rows are rejected.
    # (sowing_date too: it is parsed only for the products anchored on it)
    for name in extra + [c for c in _PARSED_IF_USED if c in names]:
        if _is_text(t[name].type):
            flag(line_breaks(t[name]), "multiline_value", name)

    # An insurer must decide which of two rows with one policy id is the real policy;
    # keeping the first would pay on whichever row happened to come first in the file,
    # so every occurrence is rejected until the register is corrected.
    counts, first_row = _occurrences(policy_id, ~policy_missing)
    flag(counts > 1, "duplicate_policy_id", "policy_id")

    p_names = p_values.to_pylist()
    # lookups by dictionary code carry one sentinel entry at the end: code -1 (missing) hits it
    product_known = np.array([v in products for v in p_names] + [False], bool)
    flag(~product_known[p_codes], "unknown_product", "product_id")
    in_layer = None
    if district_ids is not None:
        district_set = pa.array(sorted({str(d) for d in district_ids}), pa.string())
        in_layer = pc.is_in(d_values, value_set=district_set).to_numpy(zero_copy_only=False)
        district_known = np.append(in_layer, False)
        flag(~district_known[d_codes], "unknown_district", "district_id")
    # each product's own districts (its data's), by (product code, district code)
    for code, name in enumerate(p_names):
        rules_p = products.get(name)
        if rules_p is None or rules_p.districts is None:
            continue
        own = pa.array(sorted(rules_p.districts), pa.string())
        known = np.append(pc.is_in(d_values, value_set=own).to_numpy(zero_copy_only=False), False)
        flag((p_codes == code) & ~known[d_codes], "unknown_district", "district_id")

    flag(area_bad, "bad_number", "area_ha")
    sum_insured = actual_value = sowing = None
    if "sum_insured" in names:
        sum_insured, si_missing, si_bad = number_column(t["sum_insured"], "sum_insured", file, text_format)
        flag(si_bad, "bad_number", "sum_insured")
    if "actual_value" in names:
        actual_value, av_missing, av_bad = number_column(t["actual_value"], "actual_value", file, text_format)
        flag(av_bad, "bad_number", "actual_value")
    flag(~area_missing & ~area_bad & ~(area > 0), "non_positive_area", "area_ha")
    if sum_insured is not None:
        ok = (sum_insured >= 0) & (sum_insured == np.floor(sum_insured)) & (sum_insured < _MAX_RUPIAH)
        flag(~si_missing & ~si_bad & ~ok, "bad_sum_insured", "sum_insured")
    if actual_value is not None:
        ok = (actual_value > 0) & (actual_value == np.floor(actual_value)) & (actual_value < _MAX_RUPIAH)
        flag(~av_missing & ~av_bad & ~ok, "bad_actual_value", "actual_value")
    # plausibility: the bounds of `limits`, on the area and on the sum insured each row would get
    limits = limits or Limits()
    area_ok = ~area_missing & ~area_bad & (area > 0)
    flag(area_ok & (area > limits.max_area_ha), "implausible_area", "area_ha")
    per_ha = np.array([r.sum_insured_per_ha if r is not None else 0 for r in
                       [products.get(v) for v in p_values.to_pylist()]] + [0], np.float64)[p_codes]
    effective = np.where(area_ok, area, 0.0) * per_ha
    si_col = "area_ha"
    if sum_insured is not None:
        given = ~si_missing & ~si_bad
        effective = np.where(given, np.where(np.isfinite(sum_insured), sum_insured, 0.0), effective)
        si_col_given = given
    else:
        si_col_given = np.zeros(n, bool)
    flag(area_ok & (effective > limits.max_sum_insured) & si_col_given, "implausible_sum_insured", "sum_insured")
    flag(area_ok & (effective > limits.max_sum_insured) & ~si_col_given, "implausible_sum_insured", si_col)
    with np.errstate(divide="ignore", invalid="ignore"):
        flag(area_ok & (effective / np.where(area_ok, area, 1.0) > limits.max_sum_insured_per_ha),
             "implausible_sum_insured_per_ha", "sum_insured")
    counts_columns: dict[str, np.ndarray] = {}
    for name, minimum in _COUNT_COLUMNS.items():
        if name in names:
            values, c_missing, c_bad = number_column(t[name], name, file, text_format)
            flag(c_bad, "bad_number", name)
            ok = (values >= minimum) & (values == np.floor(values)) & (values < _MAX_RUPIAH)
            flag(~c_missing & ~c_bad & ~ok, f"bad_{name}", name)
            counts_columns[name] = values

    # per-product rules, looked up by product code (index len(p_names) = unknown product)
    rules = [products.get(v) for v in p_names] + [None]
    sowing_products = np.array([r is not None and r.anchor == "sowing_date" for r in rules], bool)
    by_sowing = sowing_products[p_codes]
    # The sowing date matters only to products anchored on it: it is parsed (and a bad one
    # rejected) only for their policies; a sowing_date column no product uses is not read.
    sd_missing = np.ones(n, bool)
    sd_bad = np.zeros(n, bool)
    if "sowing_date" in names and by_sowing.any():
        sowing, sd_missing, sd_bad = date_column(t["sowing_date"], "sowing_date", file, text_format)
        if not by_sowing.all():
            sd_missing, sd_bad = sd_missing | ~by_sowing, sd_bad & by_sowing
            sowing = np.where(by_sowing, sowing, 0)
        flag(sd_bad, "bad_date", "sowing_date")
    flag(by_sowing & sd_missing, "missing_sowing_date", "sowing_date")
    if sowing is not None:
        lo = np.array([_days(r.sowing_window[0]) if r is not None and r.sowing_window else np.iinfo(np.int64).min
                       for r in rules], np.int64)[p_codes]
        hi = np.array([_days(r.sowing_window[1]) if r is not None and r.sowing_window else np.iinfo(np.int64).max
                       for r in rules], np.int64)[p_codes]
        flag(by_sowing & ~sd_missing & ~sd_bad & ((sowing < lo) | (sowing > hi)),
             "sowing_date_outside_window", "sowing_date")
    elif "sowing_date" in names:  # carried (as not given) so the valid table keeps its columns
        sowing = np.zeros(n, np.int64)

    # A named-peril cover's own cover period and harvest date, parsed only for its policies.
    # A date alone takes the cover's time of day (AUTP: 12:00 noon); a date and a local
    # clock time is that instant. A blank value falls back to the season in the adjuster.
    cover_times = [r.cover_times if r is not None else None for r in rules]
    reads_cover = np.array([c is not None for c in cover_times], bool)[p_codes]
    cover: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, name in enumerate(("cover_start", "cover_end")):
        if name not in names or not reads_cover.any():
            continue
        secs, timed, c_missing, c_bad = datetime_column(t[name], name, file, text_format)
        flag(reads_cover & c_bad, "bad_date", name)
        of_day = np.array([c[i] if c is not None else 0 for c in cover_times], np.int64)[p_codes]
        secs = np.where(timed, secs, secs + of_day)
        cover[name] = (secs, ~reads_cover | c_missing | c_bad)
    if len(cover) == 2:
        (s0, no_start), (s1, no_end) = cover["cover_start"], cover["cover_end"]
        flag(~no_start & ~no_end & (s1 < s0), "cover_end_before_start", "cover_end")
    reads_harvest = np.array([r is not None and r.harvest_date for r in rules], bool)[p_codes]
    harvest = None
    if "harvest_date" in names and reads_harvest.any():
        h_days, h_missing, h_bad = date_column(t["harvest_date"], "harvest_date", file, text_format)
        flag(reads_harvest & h_bad, "bad_date", "harvest_date")
        harvest = (h_days * 86_400, ~reads_harvest | h_missing | h_bad)
    if harvest is not None:
        cover["harvest_date"] = harvest

    event_date = None
    if "event_date" in names:  # the loss event's date (term context): a bad one is rejected, an empty one absent
        event_date, ed_missing, ed_bad = date_column(t["event_date"], "event_date", file, text_format)
        flag(ed_bad, "bad_date", "event_date")
        event_date = (event_date, ed_missing | ed_bad)

    rejected = reason != 0
    rejects = _rejects_frame(register, rejected, reason, column, col_names, counts, first_row,
                             (p_codes, p_values), products, policy_id, limits)
    valid = _valid_frame(
        ~rejected, policy_id=policy_id, farmer_id=farmer_id, district=(d_codes, d_values),
        product=(p_codes, p_values), area=area, sum_insured=sum_insured,
        sowing=None if sowing is None else (sowing, sd_missing | sd_bad),
        group=group, actual_value=actual_value, counts=counts_columns, instants=cover, event_date=event_date,
    )
    if len(valid) + len(rejects) != n:  # the one rule of this module; cannot happen
        raise RuntimeError(f"validate_policies lost rows: {len(valid)} + {len(rejects)} != {n}")
    return valid, rejects


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _text_key(col: pa.ChunkedArray, name: str, file: str) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised keys of a text column; missing (empty once normalised), bad and unsafe masks."""
    keys = normalise_keys(text_column(col, name, file))
    return keys.values, keys.missing, keys.bad, keys.unsafe


def _dictionary_key(col: pa.ChunkedArray, name: str, file: str
                    ) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_text_key` of a dictionary-encoded key column, worked on its dictionary."""
    codes, values, _ = key_column(col, name, file)
    codes, values, bad, unsafe = normalise_key_dictionary(codes, values)
    missing = codes < 0
    blank_value = blank(values) if len(values) else np.zeros(0, bool)
    if blank_value.any():
        missing |= blank_value[np.where(missing, 0, codes)] & ~missing
    return codes, values, missing, bad, unsafe


def _days(d: date) -> int:
    return int(np.datetime64(d, "D").astype(np.int64))


def _valid_frame(keep: np.ndarray, *, policy_id: pa.ChunkedArray, farmer_id: pa.ChunkedArray,
                 district: tuple[np.ndarray, pa.Array], product: tuple[np.ndarray, pa.Array],
                 area: np.ndarray, sum_insured: np.ndarray | None,
                 sowing: tuple[np.ndarray, np.ndarray] | None,
                 group: tuple[pa.ChunkedArray, np.ndarray] | None,
                 actual_value: np.ndarray | None, counts: Mapping[str, np.ndarray],
                 instants: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 event_date: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    everything = bool(keep.all())
    keep_arrow = pa.array(keep)

    def rows(a: np.ndarray) -> np.ndarray:
        return a if everything else a[keep]

    def strings(col: pa.ChunkedArray) -> pd.Series:  # filter works chunk by chunk; take would concatenate
        return (col if everything else col.filter(keep_arrow)).to_pandas()

    def categorical(codes: np.ndarray, values: pa.Array) -> pd.Categorical:
        return pd.Categorical.from_codes(rows(codes), categories=pd.Index(values.to_pylist(), dtype="str"))

    def rupiah(values: np.ndarray) -> pd.arrays.IntegerArray:
        v = rows(values)
        missing = np.isnan(v)
        return pd.arrays.IntegerArray(np.where(missing, 0, v).astype(np.int64), missing)

    out: dict[str, object] = {
        "policy_id": strings(policy_id),
        "farmer_id": strings(farmer_id),
        "district_id": categorical(*district),
        "product_id": categorical(*product),
        "area_ha": rows(area),
    }
    if sum_insured is not None:
        out["sum_insured"] = rupiah(sum_insured)
    if sowing is not None:
        days, missing = sowing
        dates = rows(days).astype("datetime64[D]")
        dates[rows(missing)] = np.datetime64("NaT")
        out["sowing_date"] = dates.astype("datetime64[s]")
    if group is not None:  # optional: an empty group id is a missing one
        values, blank = group
        out["group_id"] = strings(pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), values))
    if actual_value is not None:
        out["actual_value"] = rupiah(actual_value)
    for name, values in counts.items():  # whole numbers, NaN = not given
        out[name] = rupiah(values)
    for name, (secs, missing) in (instants or {}).items():  # [s] local time; NaT = not given
        stamps = rows(secs).astype("datetime64[s]")
        stamps[rows(missing)] = np.datetime64("NaT")
        out[name] = stamps
    if event_date is not None:
        days, missing = event_date
        dates = rows(days).astype("datetime64[D]")
        dates[rows(missing)] = np.datetime64("NaT")
        out["event_date"] = dates.astype("datetime64[s]")
    return pd.DataFrame(out, copy=False)


def _rejects_frame(register: PolicyRegister, rejected: np.ndarray, reason: np.ndarray, column: np.ndarray,
                   col_names: list[str], counts: np.ndarray, first_row: np.ndarray,
                   product: tuple[np.ndarray, pa.Array], products: Mapping[str, ProductRules],
                   policy_id: pa.Array, limits: Limits) -> pd.DataFrame:
    idx = np.flatnonzero(rejected)
    raw = register.table.filter(pa.array(rejected))  # chunk-wise; take would concatenate every column
    text = {name: as_text(raw[name]) for name in raw.column_names}
    reasons = pa.DictionaryArray.from_arrays(pa.array(reason[idx].astype(np.int32) - 1),
                                             pa.array(list(REASONS))).cast(pa.string())
    columns = pa.DictionaryArray.from_arrays(pa.array(column[idx].astype(np.int32)),
                                             pa.array(col_names)).cast(pa.string())
    # the column as the file names it (a reader may have mapped the insurer's header)
    shown = [register.source_columns.get(c, c) for c in col_names]
    shown_columns = pa.DictionaryArray.from_arrays(pa.array(column[idx].astype(np.int32)),
                                                   pa.array(shown)).cast(pa.string())
    p_codes, p_values = product
    windows = pa.array([_window_text(products.get(v)) for v in p_values.to_pylist()] + [None], pa.string())
    sources = pa.array([_district_source(products.get(v)) for v in p_values.to_pylist()] + ["the district layer"],
                       pa.string())
    codes = p_codes[idx]
    at = pa.array(np.where(codes < 0, len(windows) - 1, codes))
    window, source = windows.take(at), sources.take(at)
    first = first_row[idx]
    lines = first_lines = None
    if register.lines is not None and len(idx):
        located = np.asarray(register.lines(np.concatenate([idx, np.where(first >= 0, first, 0)])), np.int64)
        lines, first_lines = located[:len(idx)], located[len(idx):]
    messages = _messages(reasons, columns, shown_columns, text, counts[idx], first, first_lines, window, source,
                         products, policy_id.take(pa.array(idx)), register.text, limits)
    out = {
        "file": pd.Series(np.full(len(idx), register.path, dtype=object), dtype="str"),
        "row": pd.Series(idx + 1, dtype="int64"),
        "line": pd.Series(pd.array(lines if lines is not None else [None] * len(idx), dtype="Int64")),
        "column": shown_columns.to_pandas(),
        "policy_id": text["policy_id"].to_pandas(),
        "product_id": text["product_id"].to_pandas(),
        "reason": reasons.to_pandas(),
        "message": messages.to_pandas(),
    }
    for name in raw.column_names:
        if name not in ("policy_id", "product_id"):
            key = register.source_columns.get(name, name)
            out[key if key not in REJECT_COLUMNS else f"raw_{key}"] = text[name].to_pandas()
    return pd.DataFrame(out)


def _district_source(rules: ProductRules | None) -> str:
    """Where the districts a reject was checked against come from."""
    if rules is None or rules.districts is None:
        return "the district layer"
    return rules.districts_source


def _window_text(rules: ProductRules | None) -> str | None:
    if rules is None or rules.sowing_window is None:
        return None
    return f"{rules.sowing_window[0]}..{rules.sowing_window[1]}"


def _messages(reasons: pa.Array, columns: pa.Array, shown: pa.Array, text: dict[str, pa.Array], counts: np.ndarray,
              first_row: np.ndarray, first_line: np.ndarray | None, window: pa.Array, source: pa.Array,
              products: Mapping[str, ProductRules], policy_id: pa.Array, text_format: TextFormat,
              limits: Limits) -> pa.Array:
    """One human message per reject, built with vectorised string kernels."""
    n = len(reasons)
    if n == 0:
        return pa.array([], pa.string())
    value = pa.nulls(n, pa.string())
    for col in pc.unique(columns).to_pylist():
        if col in text:  # an absent optional column (e.g. no sowing_date at all) has no value to quote
            value = pc.if_else(pc.equal(columns, col), text[col], value)
    quoted = pc.fill_null(pc.binary_join_element_wise("'", value, "'", ""), "''")
    product = pc.fill_null(pc.binary_join_element_wise("'", text["product_id"], "'", ""), "''")
    configured = ", ".join(sorted(products)) or "none"
    # a duplicate found on the normalised id says what it was read as
    raw_id = pc.fill_null(text["policy_id"], "")
    read_as = pc.if_else(pc.equal(raw_id, pc.fill_null(policy_id, "")), "",
                         pc.binary_join_element_wise(" (read as '", pc.fill_null(policy_id, ""), "')", ""))
    first_at = pc.cast(pa.array(first_row + 1), pa.string())
    if first_line is not None:
        first_at = pc.binary_join_element_wise(first_at, ", line ", pc.cast(pa.array(first_line), pa.string()), "")

    def join(*parts):
        return pc.binary_join_element_wise(*parts, "")

    templates = {
        "missing_value": join(shown, " is empty, and it is required"),
        "bad_key": join(shown, " ", quoted, " holds a control character (NUL, tab, line break, ...) or a "
                        "bidirectional/line-separator format character; ids must be printable text"),
        "unsafe_text": join(shown, " ", quoted, " begins with '=', '+', '-' or '@': a spreadsheet opening the "
                            "CSV would run it as a formula (a plain signed number is allowed)"),
        "multiline_value": join(shown, " ", quoted, " spans several lines: a quote may be missing, and the lines "
                                "it holds may be other policies; quote the value or remove the line breaks"),
        "duplicate_policy_id": join("policy_id ", quoted, read_as, " occurs ", pc.cast(pa.array(counts), pa.string()),
                                    " times (first at row ", first_at,
                                    "); every occurrence is rejected until the insurer resolves which is real"),
        "unknown_product": join("product_id ", quoted, f" is not a configured product ({configured})"),
        "unknown_district": join("district_id ", quoted, " is not in ", source),
        "bad_number": join(shown, " ", quoted, f" is not a number (written like {text_format.example_number()}: "
                           f"decimal mark '{text_format.decimal}', "
                           + (f"thousands separator '{text_format.thousands}' in groups of three)"
                              if text_format.thousands else "no thousands separator)")),
        "non_positive_area": join("area_ha must be > 0 ha, got ", quoted),
        "bad_sum_insured": join("sum_insured must be a non-negative whole number of rupiah, got ", quoted),
        "bad_actual_value": join("actual_value must be a positive whole number of rupiah, got ", quoted),
        "implausible_area": join("area_ha ", quoted, f" is above the plausible maximum of {limits.max_area_ha:,g} ha "
                                 "per policy (limits.max_area_ha); if it is real, raise the limit in the config"),
        "implausible_sum_insured": join(columns, " ", quoted, " gives a sum insured above the plausible maximum of "
                                        f"Rp {limits.max_sum_insured:,} per policy (limits.max_sum_insured)"),
        "implausible_sum_insured_per_ha": join("the sum insured per hectare (sum insured / area_ha) is above the "
                                               f"plausible maximum of Rp {limits.max_sum_insured_per_ha:,}/ha "
                                               "(limits.max_sum_insured_per_ha)"),
        "bad_event_number": join("event_number must be a whole number >= 1 (1 = the first event of the "
                                 "policy year), got ", quoted),
        "bad_interruption_days": join("interruption_days must be a whole number of days >= 0, got ", quoted),
        "bad_date": join(shown, " ", quoted, f" is not {text_format.describe_dates()}",
                         pc.if_else(pc.is_in(columns, pa.array(["cover_start", "cover_end"])),
                                    ", optionally with a local clock time (HH:MM, no time zone)", "")),
        "cover_end_before_start": join("cover_end ", quoted, " is before cover_start '",
                                       pc.fill_null(text.get("cover_start", pa.nulls(n, pa.string())), ""),
                                       "': the policy would cover nothing"),
        "bad_no_claim_years": join("no_claim_years must be a whole number of claim-free years >= 0, got ", quoted),
        "bad_daily_loss": join("daily_loss must be a whole number of rupiah per day >= 0, got ", quoted),
        "missing_sowing_date": join("product ", product, " is anchored on the sowing date, but sowing_date is empty"),
        "sowing_date_outside_window": join("sowing_date ", quoted, " is outside the sowing window ",
                                           pc.fill_null(window, "?"), " of product ", product),
    }
    missing = set(REASONS) - set(templates)
    if missing:  # every reason has its message (a new reason without one would print nothing)
        raise RuntimeError(f"no reject message for {sorted(missing)}")
    out = pa.nulls(n, pa.string())
    for why, message in templates.items():
        out = pc.if_else(pc.equal(reasons, why), message, out)
    return out
