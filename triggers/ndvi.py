"""NDVI satellite-index trigger: cumulative standardised NDVI per district, linear or percentile payout.

Three layers, as in xclim (indices / indicators):

1. *Index* — pure numpy functions on a district's composite series: the composite period
   (:func:`composite_period`, day of year), the baseline climatology and z-scores
   (:func:`standardize`), and the cumulative z over a season window (:func:`cumulative_z`).
2. *Curves* — :func:`linear_payout` (strike/exit on the cumulative z, via
   :func:`panen.engine.maths.curves.linear_rate`) and :func:`percentile_payout` against
   :func:`percentile_threshold` of the same index over the baseline seasons.
3. *Product* — :class:`NdviTrigger` wires a term sheet onto the engine's zonal district
   series, lazily.

Definitions
-----------
* **Composite period** p: read from the data's own dates (:func:`calendar_of`): the day of
  year of a MODIS composite (16-day: 1, 17, …, 353; 8-day: 1, 9, …, 361 — the grid restarts
  every 1 January, leap or not), or the dekad of the month (1–36) of a dekadal series
  (eMODIS), dated by its first or its last day — a dekad is the same period in a leap year.
* **z-score** (Chantarat et al. 2013, IBLI): z(d, p, y) = (NDVI(d, p, y) − mean_b(d, p)) / sd_b(d, p), mean and
  sample standard deviation (ddof = 1) over the composites of period p whose calendar year
  is in ``baseline_years`` (inclusive), skipping missing ones. A (district, period) with
  fewer than ``min_baseline_years`` valid baseline values, or a zero sd, has no
  climatology: its composites are missing.
* **Missing composite**: a composite counts for a district only when at least
  ``min_valid_fraction`` of the district's area had valid (QA-passed) pixels. A composite
  absent from the series (a missing file) is missing too: windows are laid on the full
  composite calendar (the 16-day grid of the periods seen), not on the dates present.
  Missing is never zero vegetation and never z = 0.
* **Window**: composites whose date falls in ``[anchor + start_day, anchor + end_day)``;
  the anchor is the season start or a sowing date (one cohort each); the season year is
  the anchor's calendar year.
* **Cumulative z** (the index, ``index_value``): the sum of z over the window's n
  composites. With ``min_composites`` unset (default) every composite must be valid, else
  the district is flagged for that cohort (as the weather trigger does for a missing day).
  With ``min_composites = k``, a window with n_valid ≥ min(k, n) valid composites is
  rescaled to the full window, ``Σ valid z × n / n_valid`` (so it stays comparable with
  full windows and with the strike), and one with fewer is flagged.
* **Linear payout**: rate = ``max_rate`` × clip((strike_z − I) / (strike_z − exit_z), 0, 1)
  on the *cumulative* z I — the value reported as ``index_value`` is the value the curve
  reads. Strike and exit are therefore in cumulative-z units: a single-composite normal
  quantile (−0.842 ≈ 20 %) triggers far more often on a sum of n z-scores (their sd is
  √n for independent composites and up to n for correlated ones); scale the strike to
  the window, or use the percentile payout, which calibrates itself.
* **Percentile payout** (IBLI Borana): the same cumulative z is computed for the same
  window in every baseline year (the anchor moved to that year on the same composite
  periods); the threshold is the p-th percentile of those values (numpy
  ``method="linear"``, Hyndman & Fan type 7, over the valid ones; at least
  ``min_baseline_years`` of them, else flagged). The season pays ``max_rate`` when its
  cumulative z is strictly below the threshold, else 0.

References
----------
Chantarat, S., Mude, A. G., Barrett, C. B., Carter, M. R. (2013), "Designing Index-Based
Livestock Insurance for Managing Asset Risk in Northern Kenya", *J. Risk and Insurance*
80(1) — cumulative standardised NDVI. ILRI IBLI Borana (Ethiopia) contract: pays below
the 15th percentile of the historical seasonal cumulative index.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from panen.engine.api import ProductParams, Trigger, TriggerInputs, TriggerResult
from panen.engine.maths.curves import linear_rate
from panen.engine.errors import DataQualityError

__all__ = [
    "LinearPayout",
    "NdviParams",
    "NdviTrigger",
    "NdviWindow",
    "PercentilePayout",
    "CompositeCalendar",
    "calendar_of",
    "composite_calendar",
    "composite_period",
    "cumulative_z",
    "linear_payout",
    "percentile_linear_payout",
    "percentile_payout",
    "percentile_threshold",
    "standardize",
    "window_composites",
]

_COMPOSITE_DAYS = 16  # MOD13Q1 compositing period [days]
_SHORTEST_COMPOSITE = 8  # 8-day composites (MOD09Q1-style), the densest calendar read [days]
_ABSENT = -1  # gather index: composite expected in the window but not in the series
_PAD = -2  # gather index: padding (the window holds fewer composites)


# --------------------------------------------------------------------------- index layer
def composite_period(times) -> np.ndarray:
    """Composite period key: the day of year (1..366) of each composite date.

    >>> composite_period(np.array(["2011-01-17", "2012-03-05"], dtype="datetime64[D]")).tolist()
    [17, 65]
    """
    t = np.asarray(times, dtype="datetime64[D]")
    return (t - t.astype("datetime64[Y]")).astype(np.int64) + 1


def composite_calendar(periods) -> np.ndarray:
    """The composite days of year of every year, from those seen in a series.

    When every period lies on one 16-day grid (MOD13Q1: 1, 17, …, 353; MYD13Q1: 9, 25, …,
    361), the whole grid is returned, so a composite missing from every year of the series
    is still known to exist; otherwise the sorted distinct periods seen.

    >>> composite_calendar([17, 33, 353])[:3].tolist(), composite_calendar([17, 33, 353]).size
    ([1, 17, 33], 23)
    """
    seen = np.unique(np.asarray(periods, dtype=np.int64))
    if seen.size and np.unique((seen - 1) % _COMPOSITE_DAYS).size == 1:
        return np.arange((seen[0] - 1) % _COMPOSITE_DAYS + 1, 367, _COMPOSITE_DAYS)
    return seen


@dataclass(frozen=True)
class CompositeCalendar:
    """The compositing calendar of an NDVI series, read from the data's own dates.

    ``doy``
        A day-of-year grid restarting every 1 January: MOD13Q1/MYD13Q1 16-day composites
        (days 1, 17, …, 353, or 9, 25, …, 361) and 8-day products (1, 9, …, 361). A
        period is a day of year; in a year without day 361 or 366 the composite is absent.
    ``dekad``
        Dekads of the month (eMODIS and the later IBLI contracts): three per month, days
        1–10, 11–20 and 21 to the month's end, dated by their first day (1/11/21) or their
        last (10/20/28–31) — 36 periods every year, leap years included (a dekad is a
        dekad, whatever day of the year it starts on).
    ``seen``
        Any other regular calendar: the distinct days of year seen (periods that
        never appear are not known to exist).
    """

    kind: Literal["doy", "dekad", "seen"]
    periods: np.ndarray  # doy/seen: the days of year; dekad: 0..35
    step: int  # nominal composite length [days]
    end_dated: bool = False  # dekads dated by their last day

    @property
    def n_periods(self) -> int:
        return int(self.periods.size)

    def period_of(self, times) -> np.ndarray:
        """Index 0..n_periods−1 of each composite date's period."""
        t = np.asarray(times, dtype="datetime64[D]")
        if self.kind == "dekad":
            month = (t.astype("datetime64[M]").astype(np.int64) % 12)
            day = (t - t.astype("datetime64[M]")).astype(np.int64) + 1
            return month * 3 + np.minimum((day - 1) // 10, 2)
        return np.searchsorted(self.periods, composite_period(t))

    def date_of(self, year: int, period: int) -> np.datetime64 | None:
        """The composite date of ``period`` in ``year`` (None: that year has no such composite)."""
        if self.kind == "dekad":
            month, k = divmod(int(period), 3)
            first = np.datetime64(f"{year:04d}-{month + 1:02d}-01", "D")
            if not self.end_dated:
                return first + np.timedelta64(10 * k, "D")
            if k < 2:
                return first + np.timedelta64(10 * k + 9, "D")
            return (first.astype("datetime64[M]") + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
        doy = int(self.periods[int(period)])
        if doy > (366 if _leap(year) else 365):
            return None
        return np.datetime64(f"{year:04d}-01-01", "D") + np.timedelta64(doy - 1, "D")

    def window(self, anchor, start_day: int, end_day: int) -> list[tuple[int, int]]:
        """Composites dated in ``[anchor + start_day, anchor + end_day)`` as (year offset, period).

        The year offset is relative to the anchor's year; the same list applied to
        another year selects the same periods (the basis of the baseline seasons).
        """
        a = np.datetime64(anchor, "D")
        lo, hi = a + np.timedelta64(start_day, "D"), a + np.timedelta64(end_day, "D")
        year = int(a.astype("datetime64[Y]").astype(int)) + 1970
        out = []
        for r in range(0, (end_day // 365) + 2):
            for k in range(self.n_periods):
                d = self.date_of(year + r, k)
                if d is not None and lo <= d < hi:
                    out.append((r, k))
        return out


def calendar_of(times) -> CompositeCalendar:
    """The :class:`CompositeCalendar` a series' composite dates follow.

    >>> calendar_of(np.array(["2020-02-21", "2020-03-01", "2021-03-11"], dtype="datetime64[D]")).kind
    'dekad'
    >>> cal = calendar_of(np.array(["2011-01-01", "2011-01-17"], dtype="datetime64[D]"))
    >>> cal.kind, cal.step, cal.n_periods
    ('doy', 16, 23)
    """
    t = np.unique(np.asarray(times, dtype="datetime64[D]"))
    doy = composite_period(t)
    day = (t - t.astype("datetime64[M]")).astype(np.int64) + 1
    month_end = (t.astype("datetime64[M]") + np.timedelta64(1, "M")).astype("datetime64[D]") - np.timedelta64(1, "D")
    if t.size >= 2:
        if np.isin(day, (1, 11, 21)).all() and not np.unique((doy - 1) % _COMPOSITE_DAYS).size == 1:
            return CompositeCalendar("dekad", np.arange(36), 10)
        if (np.isin(day, (10, 20)) | (t == month_end)).all() and not np.unique((doy - 1) % 8).size == 1:
            return CompositeCalendar("dekad", np.arange(36), 10, end_dated=True)
        for step in (_COMPOSITE_DAYS, 8):
            if np.unique((doy - 1) % step).size == 1:
                first = int((doy[0] - 1) % step) + 1
                return CompositeCalendar("doy", np.arange(first, 367, step), step)
    elif t.size == 1:
        first = int((doy[0] - 1) % _COMPOSITE_DAYS) + 1
        return CompositeCalendar("doy", np.arange(first, 367, _COMPOSITE_DAYS), _COMPOSITE_DAYS)
    seen = np.unique(doy)
    step = int(np.median(np.diff(seen))) if seen.size > 1 else _COMPOSITE_DAYS
    return CompositeCalendar("seen", seen, max(step, 1))


def standardize(x: np.ndarray, period_index: np.ndarray, in_baseline: np.ndarray, n_periods: int,
                min_years: int) -> np.ndarray:
    """z-scores of each composite against its period's baseline climatology.

    Parameters
    ----------
    x
        (..., T) NDVI [1] per composite; NaN = missing.
    period_index
        (T,) index 0..n_periods−1 of each composite's period.
    in_baseline
        (T,) bool: the composite's calendar year is a baseline year.
    n_periods
        Number of periods.
    min_years
        Fewest valid baseline values a period needs for a climatology (≥ 2).

    Returns
    -------
    (..., T) z [1]: (x − mean_b) / sd_b with the sample sd (ddof = 1); NaN where x is
    missing or the period has no climatology (too few values, or sd = 0).

    Examples
    --------
    Five baseline values 0.5, 0.6, 0.7, 0.8, 0.9 (mean 0.7, sd 0.158114) and a season at 0.4:

    >>> x = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.4])
    >>> z = standardize(x, np.zeros(6, int), np.arange(6) < 5, 1, 3)
    >>> round(float(z[-1]), 4)
    -1.8974
    """
    x = np.asarray(x, dtype=np.float64)
    member = np.zeros((period_index.size, n_periods))
    member[np.arange(period_index.size), period_index] = in_baseline
    ok = np.isfinite(x)
    x0 = np.where(ok, x, 0.0)
    count = ok.astype(np.float64) @ member  # (..., P)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (x0 @ member) / count
        dev = x - np.take(mean, period_index, axis=-1)
        ss = np.where(ok, dev, 0.0) ** 2 @ member
        sd = np.sqrt(ss / (count - 1))
        good = (count >= min_years) & (sd > 0)
        sd = np.where(good, sd, np.nan)
        return dev / np.take(sd, period_index, axis=-1)


def window_composites(anchor, start_day: int, end_day: int, calendar: np.ndarray) -> list[tuple[int, int]]:
    """Composites in ``[anchor + start_day, anchor + end_day)`` as (year offset, day of year).

    The year offset is relative to the anchor's year; the same list, applied to another
    year, selects the same composite periods (the basis of the baseline seasons).

    >>> window_composites(np.datetime64("2023-12-03"), 0, 30, np.arange(1, 367, 16))
    [(0, 337), (0, 353), (1, 1)]
    """
    a = np.datetime64(anchor, "D")
    lo, hi = a + np.timedelta64(start_day, "D"), a + np.timedelta64(end_day, "D")
    year = int(a.astype("datetime64[Y]").astype(int)) + 1970
    out = []
    for r in range(0, (end_day // 365) + 2):
        jan1 = np.datetime64(f"{year + r:04d}-01-01", "D")
        days = 366 if _leap(year + r) else 365
        for k in calendar:
            if k <= days and lo <= jan1 + np.timedelta64(int(k) - 1, "D") < hi:
                out.append((r, int(k)))
    return out


def cumulative_z(z: np.ndarray, gather: np.ndarray, min_composites: int | None) -> np.ndarray:
    """Cumulative z over windows of composites, missing composites handled explicitly.

    Parameters
    ----------
    z
        (..., T) z-scores; NaN = missing composite.
    gather
        (..., L) integer positions of each window's composites in ``T``; ``-1`` marks a
        composite the window expects but the series lacks (missing), ``-2`` padding.
    min_composites
        None: every expected composite must be valid. k: at least k valid (all n when the
        window holds n < k), the sum then rescaled by n / n_valid to the full window.

    Returns
    -------
    (..., *gather.shape[:-1]) cumulative z [1]; NaN where flagged (too few valid
    composites, or a window with none).

    >>> z = np.array([-1.0, np.nan, -2.0])
    >>> float(cumulative_z(z, np.array([0, 1, 2]), None)), float(cumulative_z(z, np.array([0, 1, 2]), 2))
    (nan, -4.5)
    """
    g = np.asarray(gather)
    w = np.take(np.asarray(z, dtype=np.float64), np.clip(g, 0, None), axis=-1)
    w = np.where(g < 0, np.nan, w)
    expected = (g != _PAD).sum(axis=-1)
    valid = np.isfinite(w).sum(axis=-1)
    need = expected if min_composites is None else np.minimum(expected, min_composites)
    total = np.where(np.isfinite(w), w, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = total * expected / valid
    return np.where((valid >= need) & (valid > 0), scaled, np.nan)


def percentile_threshold(history: np.ndarray, percentile: float, min_count: int) -> np.ndarray:
    """p-th percentile (numpy ``method="linear"``) of the valid values along the last axis.

    NaN where fewer than ``min_count`` values are valid.

    >>> float(percentile_threshold(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 15, 3))  # 1 + 0.6 × (2 − 1)
    1.6
    """
    h = np.asarray(history, dtype=np.float64)
    count = np.isfinite(h).sum(axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices, masked below
        q = np.nanpercentile(h, percentile, axis=-1, method="linear") if h.shape[-1] else np.full(h.shape[:-1], np.nan)
    return np.where(count >= min_count, q, np.nan)


# --------------------------------------------------------------------------- curves
def linear_payout(index, strike_z: float, exit_z: float, max_rate: float = 1.0):
    """Deficit payout rate on the cumulative z: ``max_rate`` × linear (strike → exit).

    >>> [round(float(linear_payout(z, -0.842, -2.326, 0.5)), 4) for z in (-1.584, -2.326, -3.0, -0.842, 0.0)]
    [0.25, 0.5, 0.5, 0.0, 0.0]
    """
    return max_rate * linear_rate(index, strike_z, exit_z, "below")


def percentile_payout(index, threshold, max_rate: float = 1.0):
    """``max_rate`` when the index is strictly below the threshold, else 0; NaN if either is NaN.

    >>> [float(percentile_payout(i, 1.6, 1.0)) for i in (1.0, 1.6, 2.0)]
    [1.0, 0.0, 0.0]
    """
    index = np.asarray(index, dtype=np.float64)
    threshold = np.asarray(threshold, dtype=np.float64)
    rate = np.where(index < threshold, max_rate, 0.0)
    return np.where(np.isnan(index) | np.isnan(threshold), np.nan, rate)


def percentile_linear_payout(index, trigger, exit, max_rate: float = 1.0):
    """``max_rate`` × (trigger − I) / (trigger − exit), clipped to 0..1, on per-district thresholds.

    A district whose two percentiles coincide (a flat history) pays all-or-nothing below
    them. NaN where the index or a threshold is NaN.

    >>> [float(percentile_linear_payout(i, -1.0, -3.0, 0.5)) for i in (0.0, -1.0, -2.0, -3.0, -4.0)]
    [0.0, 0.0, 0.25, 0.5, 0.5]
    """
    index = np.asarray(index, dtype=np.float64)
    trigger = np.asarray(trigger, dtype=np.float64)
    exit = np.asarray(exit, dtype=np.float64)
    span = trigger - exit
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(span > 0, np.clip((trigger - index) / np.where(span > 0, span, 1.0), 0.0, 1.0),
                         (index < trigger).astype(np.float64))
    return np.where(np.isnan(index) | np.isnan(trigger) | np.isnan(exit), np.nan, max_rate * share)


# --------------------------------------------------------------------------- term sheet
class NdviWindow(BaseModel):
    """Season window in days after the anchor, half-open ``[start_day, end_day)``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    start_day: int = Field(ge=0, description="first day of the window after the anchor [days]")
    end_day: int = Field(gt=0, le=366, description="end of the window, exclusive [days]")

    @model_validator(mode="after")
    def _long_enough(self) -> "NdviWindow":
        if self.end_day - self.start_day < _SHORTEST_COMPOSITE:
            raise ValueError(f"end_day must be at least start_day + {_SHORTEST_COMPOSITE} "
                             f"({self.start_day + _SHORTEST_COMPOSITE}) so the window holds a composite (8-day, "
                             f"dekadal or 16-day); got {self.end_day}")
        return self

    @property
    def max_composites(self) -> int:
        """Most composites the window can hold on the densest calendar panen reads (8-day);
        the data's own calendar is checked when the product is evaluated."""
        return math.ceil((self.end_day - self.start_day) / _SHORTEST_COMPOSITE)


class LinearPayout(BaseModel):
    """Linear deficit curve on the cumulative z: pays from ``strike_z`` down to ``exit_z``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    strike_z: float = Field(description="cumulative z where payment starts [1]")
    exit_z: float = Field(description="cumulative z of full payment (max_rate) [1]; below strike_z")
    max_rate: float = Field(1.0, gt=0, le=1, description="rate paid at or below exit_z [fraction of sum insured]")

    @model_validator(mode="after")
    def _ordered(self) -> "LinearPayout":
        if not (math.isfinite(self.strike_z) and math.isfinite(self.exit_z)):
            raise ValueError("strike_z and exit_z must be finite numbers")
        if not self.exit_z < self.strike_z:
            raise ValueError(f"exit_z must be < strike_z ({self.strike_z}) for a deficit cover; got {self.exit_z}")
        return self


class PercentilePayout(BaseModel):
    """Pays below the district's historical p-th percentile (IBLI Borana: 15): all of ``max_rate``,
    or, with ``exit_percentile``, linearly from the trigger percentile down to the exit one."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    percentile: float = Field(gt=0, lt=100, description="trigger percentile of the baseline seasons [%]")
    exit_percentile: float | None = Field(
        None, ge=0, lt=100, description="percentile of full payment (below percentile): the rate rises linearly "
                                        "from 0 at the trigger to max_rate here [%]; None: all-or-nothing")
    max_rate: float = Field(1.0, gt=0, le=1, description="rate paid below the percentile [fraction of sum insured]")

    @model_validator(mode="after")
    def _exit_below_trigger(self) -> "PercentilePayout":
        if self.exit_percentile is not None and not self.exit_percentile < self.percentile:
            raise ValueError(f"exit_percentile must be < percentile ({self.percentile}); got {self.exit_percentile}")
        return self


def _payout_kind(value) -> str:
    if isinstance(value, dict):
        return "percentile" if "percentile" in value else "linear"
    return "percentile" if isinstance(value, PercentilePayout) else "linear"


Payout = Annotated[
    Annotated[LinearPayout, Tag("linear")] | Annotated[PercentilePayout, Tag("percentile")],
    Discriminator(_payout_kind),
]


class NdviParams(ProductParams):
    """Term sheet of an NDVI product (``trigger: ndvi``); see the module docstring."""

    trigger: Literal["ndvi"] = "ndvi"
    baseline_years: tuple[int, int] = Field(
        description="first and last calendar year of the climatology, inclusive; at least 3 years")
    window: NdviWindow = Field(description="season window after the anchor [days]")
    payout: Payout = Field(description="{strike_z, exit_z, max_rate} or {percentile, max_rate}")
    min_valid_fraction: float = Field(
        0.5, ge=0, le=1,
        description="share of the district's area with valid pixels needed for a composite to count [fraction]")
    min_composites: int | None = Field(
        None, ge=1,
        description="valid window composites needed (sum rescaled by n/n_valid); None = all of them")
    min_baseline_years: int = Field(
        3, ge=2, description="valid baseline values a period (and the percentile) needs [years]")

    @model_validator(mode="after")
    def _consistent(self) -> "NdviParams":
        errors = []
        first, last = self.baseline_years
        if not 1900 <= first <= 2200 or not 1900 <= last <= 2200:
            errors.append(f"baseline_years must be calendar years (1900..2200); got [{first}, {last}]")
        elif first > last:
            errors.append(f"baseline_years must be [first, last] with first <= last; got [{first}, {last}]")
        elif last - first + 1 < 3:
            errors.append(f"baseline_years must span at least 3 years; got [{first}, {last}] "
                          f"({last - first + 1} year{'s' if last > first else ''})")
        elif self.min_baseline_years > last - first + 1:
            errors.append(f"min_baseline_years must be between 2 and the baseline length ({last - first + 1}); "
                          f"got {self.min_baseline_years}")
        if self.min_composites is not None and self.min_composites > self.window.max_composites:
            errors.append(f"min_composites must be between 1 and the composites the window holds "
                          f"({self.window.max_composites} for {self.window.end_day - self.window.start_day} days); "
                          f"got {self.min_composites}")
        if errors:
            raise ValueError("; ".join(errors))
        return self


# --------------------------------------------------------------------------- product
class NdviTrigger(Trigger):
    """Cumulative standardised NDVI per district: linear strike/exit or historical-percentile payout.

    References
    ----------
    Chantarat et al. (2013), IBLI; ILRI IBLI Borana contract (15th percentile trigger).
    """

    name = "ndvi"
    Params = NdviParams
    inputs = ("ndvi",)
    description = "cumulative NDVI z-score over a season window (per composite period vs a baseline climatology)"

    @classmethod
    def thresholds(cls, params: NdviParams) -> dict[str, tuple[float, float]]:
        """The linear payout's strike and exit on the cumulative z (none for a percentile trigger,
        whose strike is per district)."""
        pay = params.payout
        if isinstance(pay, PercentilePayout):
            return {}
        return {"season": (float(pay.strike_z), float(pay.exit_z))}

    @classmethod
    def guaranteed_rate(cls, params: NdviParams, inputs: TriggerInputs, result: xr.Dataset) -> xr.DataArray:
        """The payout rate no later composite can lower [fraction]: the rate once the window has closed, else 0.

        A z-score moves both ways as composites are added (a green composite raises the
        cumulative z, a brown one lowers it), so an open window guarantees nothing — even
        when ``min_composites`` lets it be rescaled from the composites so far. A window is
        closed when its last day (``anchor + end_day − 1``) is on or before ``inputs.as_of``:
        every composite it holds is then dated by the day, and its rate (NaN, withheld,
        where a composite is missing) is final.

        References
        ----------
        Chantarat et al. (2013), *Designing index-based livestock insurance for managing asset
        risk in northern Kenya*, J. Risk Insur. 80(1) — the index is settled at the season's
        end from the whole window.
        """
        rate = result["payout_rate"]
        if inputs.as_of is None:
            return rate.copy()
        last = np.asarray(inputs.cohorts, dtype="datetime64[D]") + np.timedelta64(params.window.end_day - 1, "D")
        closed = xr.DataArray(last <= np.datetime64(inputs.as_of, "D"), dims="cohort")
        return xr.where(closed, rate, 0.0).transpose("district", "cohort").rename("guaranteed_rate")

    def evaluate(self, params: NdviParams, inputs: TriggerInputs) -> TriggerResult:
        ds = inputs.series["ndvi"]
        if inputs.district_ids is not None and len(inputs.district_ids) and (
                ds.sizes["district"] != len(inputs.district_ids)
                or not np.array_equal(ds["district"].values.astype(str), np.asarray(inputs.district_ids).astype(str))):
            ds = ds.reindex(district=np.asarray(inputs.district_ids))
        mean, valid = ds["mean"], ds["valid_fraction"]
        units = mean.attrs.get("units")
        if units not in (None, "", "1"):
            raise DataQualityError(f"product {params.id!r}: the ndvi input must be NDVI [1]; it is in {units!r}")
        times = np.asarray(mean["time"].values)
        if times.dtype.kind != "M":
            raise DataQualityError(f"product {params.id!r}: the ndvi series' time is not dates")
        times = times.astype("datetime64[D]")
        if np.unique(times).size != times.size:
            raise DataQualityError(f"product {params.id!r}: the ndvi series has duplicate composite dates")
        years = times.astype("datetime64[Y]").astype(np.int64) + 1970
        first, last = params.baseline_years
        in_baseline = (years >= first) & (years <= last)
        if not in_baseline.any():
            span = f"{years.min()}..{years.max()}" if years.size else "none"
            raise DataQualityError(f"product {params.id!r}: no NDVI composite falls in baseline_years "
                                   f"[{first}, {last}] (the series covers {span})")
        calendar = calendar_of(times)  # from the data's own dates: 16-day, 8-day or dekadal composites
        period_index = calendar.period_of(times)
        cohorts = np.asarray(inputs.cohorts, dtype="datetime64[D]")
        targets = (None,) + (tuple(range(first, last + 1)) if isinstance(params.payout, PercentilePayout) else ())
        gather = _gather(times, cohorts, targets, params.window, calendar)  # (C, Y, L)
        held = (gather[:, 0, :] != _PAD).sum(axis=-1)
        if held.size and held.min() == 0:
            raise DataQualityError(f"product {params.id!r}: the window [{params.window.start_day}, "
                                   f"{params.window.end_day}) days holds no composite of the ndvi series' "
                                   f"{calendar.kind} calendar (every {calendar.step} days)")
        if params.min_composites is not None and held.size and params.min_composites > held.max():
            raise DataQualityError(f"product {params.id!r}: min_composites {params.min_composites} is more than the "
                                   f"window holds ({int(held.max())} composites of the ndvi series' {calendar.kind} "
                                   f"calendar)")

        x = mean.where(valid >= params.min_valid_fraction).transpose("district", "time")
        vf = valid.fillna(0.0).transpose("district", "time")
        if x.chunks:
            x, vf = x.chunk({"time": -1}), vf.chunk({"time": -1})

        cum = xr.apply_ufunc(
            _season_index, x,
            input_core_dims=[["time"]], output_core_dims=[["cohort", "target"]],
            kwargs={"period_index": period_index, "in_baseline": in_baseline, "n_periods": calendar.n_periods,
                    "min_years": params.min_baseline_years, "gather": gather,
                    "min_composites": params.min_composites},
            dask="parallelized", output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {"cohort": gather.shape[0], "target": gather.shape[1]}},
        )
        season_gather = gather[:, 0, :]
        window_valid = xr.apply_ufunc(
            _window_mean, vf,
            input_core_dims=[["time"]], output_core_dims=[["cohort"]],
            kwargs={"gather": season_gather},
            dask="parallelized", output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {"cohort": season_gather.shape[0]}},
        )
        index = cum.isel(target=0, drop=True)
        payout = params.payout
        if isinstance(payout, PercentilePayout):
            strike = xr.apply_ufunc(
                percentile_threshold, cum.isel(target=slice(1, None)),
                input_core_dims=[["target"]],
                kwargs={"percentile": payout.percentile, "min_count": params.min_baseline_years},
                dask="parallelized", output_dtypes=[np.float64],
            )
            if payout.exit_percentile is None:
                rate = xr.apply_ufunc(percentile_payout, index, strike, kwargs={"max_rate": payout.max_rate},
                                      dask="parallelized", output_dtypes=[np.float64])
            else:
                exit_ = xr.apply_ufunc(
                    percentile_threshold, cum.isel(target=slice(1, None)),
                    input_core_dims=[["target"]],
                    kwargs={"percentile": payout.exit_percentile, "min_count": params.min_baseline_years},
                    dask="parallelized", output_dtypes=[np.float64],
                )
                rate = xr.apply_ufunc(percentile_linear_payout, index, strike, exit_,
                                      kwargs={"max_rate": payout.max_rate},
                                      dask="parallelized", output_dtypes=[np.float64])
        else:
            strike = xr.full_like(index, payout.strike_z)
            rate = xr.apply_ufunc(linear_payout, index,
                                  kwargs={"strike_z": payout.strike_z, "exit_z": payout.exit_z,
                                          "max_rate": payout.max_rate},
                                  dask="parallelized", output_dtypes=[np.float64])

        phase = xr.DataArray(["season"], dims="phase")
        index_value = index.expand_dims(phase=phase.values).assign_attrs(
            units="1", long_name="cumulative NDVI z-score over the season window")
        out = xr.Dataset(
            {
                "payout_rate": rate,
                "flagged": rate.isnull(),
                "index_value": index_value,
                "phase_rate": rate.expand_dims(phase=phase.values),
                "valid_fraction": window_valid.expand_dims(phase=phase.values),
                "strike": strike.assign_attrs(units="1", long_name="cumulative z below which the season pays"),
            }
        ).assign_coords(cohort=cohorts.astype("datetime64[ns]"))
        return TriggerResult(out)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _gather(times: np.ndarray, cohorts: np.ndarray, targets: tuple, window: NdviWindow,
            calendar: CompositeCalendar) -> np.ndarray:
    """(C, Y, L) positions in ``times`` of each cohort's window composites in each target
    year (None = the anchor's own year; else a baseline year), -1 absent, -2 padding."""
    lookup = {t: i for i, t in enumerate(np.asarray(times, dtype="datetime64[D]").tolist())}
    per_cohort = [calendar.window(a, window.start_day, window.end_day) for a in cohorts]
    width = max([len(c) for c in per_cohort] + [1])
    out = np.full((len(cohorts), len(targets), width), _PAD, dtype=np.int64)
    for c, (anchor, comps) in enumerate(zip(cohorts, per_cohort)):
        own = int(anchor.astype("datetime64[Y]").astype(int)) + 1970
        for y, target in enumerate(targets):
            year = own if target is None else target
            for j, (r, k) in enumerate(comps):
                date = calendar.date_of(year + r, k)
                out[c, y, j] = _ABSENT if date is None else lookup.get(date.item(), _ABSENT)
    return out


def _season_index(x: np.ndarray, *, period_index, in_baseline, n_periods, min_years, gather,
                  min_composites) -> np.ndarray:
    """(..., T) NDVI → (..., C, Y) cumulative z: the index layer composed, per block."""
    z = standardize(x, period_index, in_baseline, n_periods, min_years)
    return cumulative_z(z, gather, min_composites)


def _window_mean(v: np.ndarray, *, gather) -> np.ndarray:
    """Mean valid fraction over each window's expected composites (absent ones count 0)."""
    w = np.take(v, np.clip(gather, 0, None), axis=-1)
    w = np.where(gather == _ABSENT, 0.0, w)
    n = (gather != _PAD).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gather == _PAD, 0.0, w).sum(axis=-1) / n
