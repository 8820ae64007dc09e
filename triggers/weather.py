"""Weather-index (rainfall) trigger: phased deficit/excess covers on district daily rainfall.

Three layers, as xclim separates its indices from its indicators:

1. *Indices* — pure numpy functions reducing a daily series to one value per window:
   cumulative total, maximum n-day total, longest dry spell, count of rainy days.
2. *Curves* — :mod:`panen.engine.maths.curves` maps an index to a rate (linear tick, step, binary).
3. *Product* — :class:`WeatherIndexTrigger` wires a term sheet's phases: each phase's index
   per district and cohort, its rate × weight, summed and capped at ``season_cap``.

Windows are half-open day ranges ``[start_day, end_day)`` after the anchor (the season
start, or a policy's sowing date). With ``anchor: sowing_date`` the windows of every sowing
cohort are cut from the one district series — nothing is recomputed per farmer.

Monthly rainfall (CHIRPS monthly) reaches the trigger as a daily *equivalent* — each
month's total spread evenly over its days (``valid_for: "total"``): only ``total`` phases
may use it (exact over whole months; a window that cuts a month counts it pro rata, with
a warning); every other index needs true daily rain and is refused, at validation
(:meth:`WeatherIndexTrigger.check_inputs`) and again here.

A trigger-design search re-prices stored index values through the same curves
(:meth:`WeatherIndexTrigger.rates_from_index`): linear phases by strike and exit, binary
phases by strike, and step schedules by moving the whole schedule with its trigger point
(:meth:`WeatherIndexTrigger.with_design`) — a phase never changes kind.

Missing data is never read as zero rain: a day counts only when at least
``min_valid_fraction`` of the district's (area-weighted) cells had data that day, and a
phase window with any day short of that has no index (NaN): the district is flagged for
that cohort and its policies are withheld, not paid.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from panen.engine.api import (DesignTerms, InputInfo, PhaseDesign, ProductParams, Trigger, TriggerInputs,
                              TriggerResult)
from panen.engine.errors import ConfigError, DataQualityError, InputError, Problem
from panen.engine.maths.curves import binary_rate, linear_rate, step_rate

__all__ = [
    "Band",
    "Phase",
    "WeatherIndexParams",
    "WeatherIndexTrigger",
    "dry_spell",
    "max_n_day",
    "rainy_days",
    "total",
    "window_index",
    "with_missing_days",
    "Onset",
    "gather_windows",
    "nearest_date",
]

# --------------------------------------------------------------------------- indices
# Each takes windows ``w`` of shape (..., L) [mm/day] and returns (...) — NaN if any day
# in the window is NaN (numpy's reductions propagate NaN; counts are masked explicitly).


def total(w: np.ndarray) -> np.ndarray:
    """Cumulative rainfall over the window [mm]."""
    return w.sum(axis=-1)


def max_n_day(w: np.ndarray, n: int) -> np.ndarray:
    """Largest total over ``n`` consecutive days inside the window [mm] (flood/excess covers)."""
    if n > w.shape[-1]:
        raise ValueError(f"n={n} is longer than the window ({w.shape[-1]} days)")
    sums = np.lib.stride_tricks.sliding_window_view(w, n, axis=-1).sum(axis=-1)
    return sums.max(axis=-1)


def dry_spell(w: np.ndarray, dry_threshold: float) -> np.ndarray:
    """Longest run of consecutive days with rain below ``dry_threshold`` [days].

    Parameters
    ----------
    w
        Daily rainfall windows [mm/day].
    dry_threshold
        A day is dry when its rain is strictly below this [mm/day] (1 mm is common).
    """
    dry = w < dry_threshold
    run = np.cumsum(dry, axis=-1)
    # subtract the count reached at the last wet day: run length since the last wet day
    reset = np.maximum.accumulate(np.where(~dry, run, 0), axis=-1)
    longest = (run - reset).max(axis=-1).astype(float)
    return np.where(np.isnan(w).any(axis=-1), np.nan, longest)


def rainy_days(w: np.ndarray, wet_threshold: float) -> np.ndarray:
    """Number of days with rain at or above ``wet_threshold`` [days]."""
    count = (w >= wet_threshold).sum(axis=-1).astype(float)
    return np.where(np.isnan(w).any(axis=-1), np.nan, count)


def window_index(x: np.ndarray, anchors: np.ndarray, start_day: int, end_day: int, func, **kwargs) -> np.ndarray:
    """Evaluate ``func`` over ``[anchor + start_day, anchor + end_day)`` for every anchor.

    Parameters
    ----------
    x
        Daily series, shape (..., T) [mm/day].
    anchors
        (C,) integer day offsets of each cohort's anchor into the series.
    start_day, end_day
        Half-open window in days after the anchor.
    func
        An index function taking windows (..., C, L).

    Returns
    -------
    (..., C) index values; NaN for cohorts whose window leaves the series.
    """
    T = x.shape[-1]
    days = np.arange(start_day, end_day)
    idx = np.asarray(anchors, dtype=np.int64)[:, None] + days[None, :]
    outside = (idx < 0) | (idx >= T)
    w = np.take(x, np.clip(idx, 0, max(T - 1, 0)), axis=-1)  # (..., C, L): a gather, no per-farmer series
    if outside.any():
        w = np.where(outside, np.nan, w)
    return func(w, **kwargs)


_INDEX_FUNCS = {"total": total, "max_n_day": max_n_day, "dry_spell": dry_spell, "rainy_days": rainy_days}


def with_missing_days(w: np.ndarray, index: str, max_missing: int, **kwargs) -> np.ndarray:
    """A phase index on windows with up to ``max_missing`` missing days (NaN beyond).

    The term sheet's ``max_missing_days`` allows a few days nobody measured (after every
    back-up station) before the policy is withheld. How each index treats them — never as
    a value:

    * ``total`` and ``rainy_days``: counted on the measured days and scaled to the window
      (× L / L_measured), as a pro-rata estimate;
    * ``max_n_day``: the largest n-day total among the n-day runs of measured days;
    * ``dry_spell``: a missing day neither breaks a dry run nor adds to it (the run goes on
      across it; only a measured wet day ends it).

    With ``max_missing = 0`` every index is exactly the plain one (any missing day → NaN).

    >>> w = np.array([[0.0, 0.0, np.nan, 0.0, 5.0]])
    >>> float(with_missing_days(w, "dry_spell", 1, dry_threshold=1.0)[0]), float(dry_spell(w, 1.0)[0])
    (3.0, nan)
    >>> float(with_missing_days(np.array([2.0, np.nan, 4.0]), "total", 1))  # (2 + 4) × 3 / 2
    9.0
    """
    w = np.asarray(w, dtype=np.float64)
    missing = np.isnan(w).sum(axis=-1)
    length = w.shape[-1]
    measured = length - missing
    with np.errstate(invalid="ignore", divide="ignore"):
        if index == "total":
            value = np.nansum(w, axis=-1) * length / measured
        elif index == "rainy_days":
            value = (w >= kwargs["wet_threshold"]).sum(axis=-1) * length / measured
        elif index == "max_n_day":
            n = kwargs["n"]
            if n > length:
                raise ValueError(f"n={n} is longer than the window ({length} days)")
            sums = np.lib.stride_tricks.sliding_window_view(w, n, axis=-1).sum(axis=-1)
            value = np.where(np.isfinite(sums).any(axis=-1), np.nanmax(np.where(np.isfinite(sums), sums, -np.inf),
                                                                        axis=-1), np.nan)
        elif index == "dry_spell":
            dry = w < kwargs["dry_threshold"]  # NaN compares False: neither dry ...
            wet = w >= kwargs["dry_threshold"]  # ... nor wet
            run = np.cumsum(dry, axis=-1)
            reset = np.maximum.accumulate(np.where(wet, run, 0), axis=-1)
            value = (run - reset).max(axis=-1).astype(float)
        else:
            raise ValueError(f"unknown index {index!r}")
    return np.where((missing > max_missing) | (measured == 0), np.nan, value)
_INDEX_UNITS = {"total": "mm", "max_n_day": "mm", "dry_spell": "days", "rainy_days": "days"}


# --------------------------------------------------------------------------- the crop calendar
_MMDD = re.compile(r"^(\d{2})-(\d{2})$")


def _month_day(text: str, what: str) -> tuple[int, int]:
    m = _MMDD.match(text or "")
    if m is None:
        raise ValueError(f"{what} must be a calendar date 'MM-DD'; got {text!r}")
    month, day = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12 or not 1 <= day <= [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]:
        raise ValueError(f"{what} {text!r} is not a day of the year")
    return month, day


def _on(year: int, month: int, day: int) -> np.datetime64:
    """``year-month-day``; 29 February in a common year is 1 March."""
    if month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        month, day = 3, 1
    return np.datetime64(f"{year:04d}-{month:02d}-{day:02d}", "D")


def nearest_date(anchor: np.datetime64, month: int, day: int) -> np.datetime64:
    """The date ``MM-DD`` nearest to ``anchor`` (the season a calendar date belongs to).

    >>> str(nearest_date(np.datetime64("2023-11-01"), 10, 1)), str(nearest_date(np.datetime64("2023-11-01"), 2, 1))
    ('2023-10-01', '2024-02-01')
    """
    year = int(np.datetime64(anchor, "Y").astype(int)) + 1970
    options = [_on(y, month, day) for y in (year - 1, year, year + 1)]
    gaps = [abs(int((o - anchor).astype(int))) for o in options]
    return options[int(np.argmin(gaps))]


def next_date(after: np.datetime64, month: int, day: int) -> np.datetime64:
    """The first date ``MM-DD`` strictly after ``after``."""
    year = int(np.datetime64(after, "Y").astype(int)) + 1970
    for y in (year, year + 1):
        d = _on(y, month, day)
        if d > after:
            return d
    raise AssertionError("unreachable")


def dekad_start(dekad: int) -> tuple[int, int]:
    """(month, day) of the first day of dekad 1–36 (1 = 1–10 January, 36 = 21–31 December)."""
    month, k = divmod(dekad - 1, 3)
    return month + 1, 1 + 10 * k


class Onset(BaseModel):
    """``onset:`` — phases start at the onset of the rains, detected per district and season.

    The definition (Sivakumar 1988; :mod:`panen.engine.maths.onset`): the first day from
    ``search_start`` to ``deadline`` that begins ``wet_days`` days with at least
    ``wet_total`` mm, unless a dry spell of ``dry_days`` days begins within the
    ``check_days`` after them (a false start). No onset by the deadline is a *failed onset*;
    ``failed_rate`` makes it a payout event.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    search_start: str = Field(description="first day an onset may fall on, 'MM-DD' (the one nearest the season's "
                                          "anchor)")
    deadline: str = Field(description="last day an onset may fall on, 'MM-DD' (the first after search_start)")
    wet_total: float = Field(20.0, gt=0, description="rain needed over the wet days [mm]")
    wet_days: int = Field(3, ge=1, le=30, description="consecutive days summed for the wet start [days]")
    dry_days: int = Field(7, ge=1, le=60, description="a dry spell this long after the wet days is a false start "
                                                      "[days]")
    check_days: int = Field(30, ge=0, le=120, description="days after the wet days checked for a dry spell [days]")
    dry_threshold: float = Field(1.0, gt=0, description="a dry day has less rain than this [mm/day] (per_day), or a "
                                                        "dry spell's total is below it [mm] (total)")
    dry_method: Literal["per_day", "total"] = Field("per_day", description="what makes a dry spell: every day below "
                                                                           "dry_threshold, or the spell's total")
    wet_day: float = Field(1.0, ge=0, description="the onset day itself has at least this much rain [mm]")
    failed_rate: float = Field(0.0, ge=0, le=1, description="paid when no onset comes by the deadline [fraction of "
                                                            "sum insured]; 0: a failed onset pays nothing itself")

    @model_validator(mode="after")
    def _dates(self) -> "Onset":
        _month_day(self.search_start, "onset.search_start")
        _month_day(self.deadline, "onset.deadline")
        return self

    def definition(self):
        from panen.engine.maths.onset import OnsetDefinition

        return OnsetDefinition(wet_total=self.wet_total, wet_days=self.wet_days, dry_days=self.dry_days,
                               check_days=self.check_days, dry_threshold=self.dry_threshold,
                               dry_method=self.dry_method, wet_day=self.wet_day)

    def search(self, anchor: np.datetime64) -> tuple[np.datetime64, np.datetime64]:
        """The search window [first day, deadline] of the season anchored at ``anchor``."""
        first = nearest_date(anchor, *_month_day(self.search_start, "onset.search_start"))
        last = next_date(first - np.timedelta64(1, "D"), *_month_day(self.deadline, "onset.deadline"))
        return first, last


# --------------------------------------------------------------------------- term sheet
class Band(BaseModel):
    """One band of a stepped schedule: index in ``[min, max)`` pays ``rate``.

    An edge left out is open (−∞ for ``min``, +∞ for ``max``). A written edge must be a
    finite number: ``.inf`` or ``.nan`` in a term sheet is refused, as everywhere.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    min: float = Field(-np.inf, description="lower edge, inclusive [index units]")
    max: float = Field(np.inf, description="upper edge, exclusive [index units]")
    rate: float = Field(ge=0, le=1, description="payout rate of the band [fraction of phase liability]")

    @model_validator(mode="after")
    def _ordered(self) -> "Band":
        if np.isnan(self.min) or np.isnan(self.max):
            raise ValueError("band edges must be numbers (use no key for an open edge)")
        if not self.min < self.max:
            raise ValueError(f"band min must be < max (got min={self.min}, max={self.max})")
        return self


class Phase(BaseModel):
    """One phase of a weather-index cover."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(min_length=1)
    start_day: int | None = Field(None, ge=0, description="first day of the window after the anchor (or the onset) "
                                                          "[days]")
    end_day: int | None = Field(None, gt=0, le=366, description="end of the window, exclusive [days]")
    start: str | None = Field(None, description="first day of the window as a calendar date 'MM-DD' (the one "
                                                "nearest the season's anchor)")
    end: str | None = Field(None, description="end of the window, exclusive, 'MM-DD' (the first after start)")
    start_dekad: int | None = Field(None, ge=1, le=36, description="first dekad of the window (1 = 1-10 January, "
                                                                   "36 = 21-31 December)")
    end_dekad: int | None = Field(None, ge=1, le=36, description="last dekad of the window, inclusive")
    index: Literal["total", "max_n_day", "dry_spell", "rainy_days"]
    n: int | None = Field(None, ge=1, description="days summed by max_n_day [days]")
    dry_threshold: float | None = Field(None, gt=0, description="dry day: rain below this [mm/day]")
    wet_threshold: float | None = Field(None, gt=0, description="rainy day: rain at or above this [mm/day]")
    direction: Literal["below", "above"]
    strike: float = Field(description="index value where payment starts [mm or days]")
    exit: float | None = Field(None, description="index value of full payment (linear curve) [mm or days]")
    weight: float = Field(gt=0, le=1, description="share of the sum insured this phase can pay [fraction]")
    max_missing_days: int = Field(
        0, ge=0, description="days of the window allowed missing (after back-up stations) before the policy is "
                             "withheld; total and rainy days are scaled to the window, a dry run goes on across a "
                             "missing day [days]")
    curve: Literal["linear", "step", "binary"] = "linear"
    bands: list[Band] | None = Field(None, description="index bands of a step curve")

    @model_validator(mode="after")
    def _consistent(self) -> "Phase":
        errors: list[str] = []
        forms = [(self.start_day, self.end_day), (self.start, self.end), (self.start_dekad, self.end_dekad)]
        given = [i for i, (a, b) in enumerate(forms) if a is not None or b is not None]
        if len(given) != 1 or any(v is None for v in forms[given[0]]):
            raise ValueError("give the window as start_day and end_day (days after the anchor), start and end "
                             "(calendar dates 'MM-DD'), or start_dekad and end_dekad (1-36) — one pair")
        if self.start is not None:
            _month_day(self.start, "start")
            _month_day(self.end, "end")
        if self.start_day is not None and self.end_day <= self.start_day:
            errors.append(f"end_day must be > start_day ({self.start_day}); got {self.end_day}")
        length = self.length
        needs = {"max_n_day": "n", "dry_spell": "dry_threshold", "rainy_days": "wet_threshold"}
        for idx, key in needs.items():
            if self.index == idx and getattr(self, key) is None:
                errors.append(f"{key} is required for index {idx!r}")
            if self.index != idx and getattr(self, key) is not None:
                errors.append(f"{key} only applies to index {idx!r}, not {self.index!r}")
        if self.index == "max_n_day" and self.n is not None and self.n > length > 0:
            errors.append(f"n must be between 1 and the window length ({length} days); got {self.n}")
        if length > 0 and self.max_missing_days >= length:
            errors.append(f"max_missing_days must be below the window length ({length} days); got "
                          f"{self.max_missing_days}")
        for key in ("strike", "exit"):
            value = getattr(self, key)
            if value is not None and not np.isfinite(value):
                errors.append(f"{key} must be a finite number; got {value}")
        if self.strike < 0:
            errors.append(f"strike must be >= 0; got {self.strike}")
        if self.curve == "linear":
            if self.exit is None:
                errors.append("exit is required for a linear curve")
            elif self.direction == "below" and not self.exit < self.strike:
                errors.append(f"exit must be < strike ({self.strike}) for a 'below' (deficit) phase; got {self.exit}")
            elif self.direction == "above" and not self.exit > self.strike:
                errors.append(f"exit must be > strike ({self.strike}) for an 'above' (excess) phase; got {self.exit}")
            elif self.exit < 0:
                errors.append(f"exit must be >= 0; got {self.exit}")
        if self.curve == "step":
            if not self.bands:
                errors.append("bands are required for a step curve")
            else:
                bands = sorted(self.bands, key=lambda b: b.min)
                for a, b in zip(bands, bands[1:]):
                    if b.min < a.max:
                        errors.append(f"bands [{a.min}, {a.max}) and [{b.min}, {b.max}) overlap")
                rates = [b.rate for b in bands]
                monotone = (all(x >= y for x, y in zip(rates, rates[1:])) if self.direction == "below"
                            else all(x <= y for x, y in zip(rates, rates[1:])))
                if not monotone:
                    errors.append(f"band rates must {'fall' if self.direction == 'below' else 'rise'} as the "
                                  f"index rises for a {self.direction!r} phase; got {rates}")
        elif self.bands is not None:
            errors.append("bands only apply to curve 'step'")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def calendar(self) -> bool:
        """The window is given by calendar dates or dekads (fixed in the calendar, whatever the anchor)."""
        return self.start_day is None

    @property
    def length(self) -> int:
        """Days in the window (a calendar window: in a common year, 2001) [days]."""
        if self.start_day is not None:
            return self.end_day - self.start_day
        s, e = self.bounds(np.datetime64("2001-07-02"))
        return int((e - s).astype(int))

    def bounds(self, anchor) -> tuple[np.datetime64, np.datetime64]:
        """The window ``[first day, end)`` of the season anchored at ``anchor`` [dates].

        Days after the anchor; or the calendar date (or dekad start) nearest the anchor, to the
        first end date after it — a wet-season window 11-01 → 02-01 crosses the new year.
        """
        a = np.datetime64(anchor, "D")
        if self.start_day is not None:
            return a + np.timedelta64(self.start_day, "D"), a + np.timedelta64(self.end_day, "D")
        if self.start is not None:
            first = nearest_date(a, *_month_day(self.start, "start"))
            return first, next_date(first, *_month_day(self.end, "end"))
        first = nearest_date(a, *dekad_start(self.start_dekad))
        return first, next_date(first, *dekad_start(self.end_dekad % 36 + 1))

    def rate(self, index):
        """Phase payout rate before weighting [fraction, 0..1]; NaN where the index is NaN.

        ``index`` [mm or days] is a numpy or dask array (kept lazy) or an xarray object.
        """
        if isinstance(index, xr.DataArray):
            return xr.apply_ufunc(self.rate, index, dask="parallelized", output_dtypes=[float])
        if self.curve == "linear":
            return linear_rate(index, self.strike, self.exit, self.direction)
        if self.curve == "binary":
            return binary_rate(index, self.strike, self.direction)
        b = self.bands or []
        return step_rate(index, [x.min for x in b], [x.max for x in b], [x.rate for x in b])


class WeatherIndexParams(ProductParams):
    """Term sheet of a phased rainfall-index product (``trigger: weather_index``)."""

    trigger: Literal["weather_index"] = "weather_index"
    phases: list[Phase] = Field(min_length=1, description="phases, each an index window with its curve")
    season_cap: float = Field(1.0, gt=0, le=1, description="cap on the summed phase rates [fraction of sum insured]")
    min_valid_fraction: float = Field(
        0.5, ge=0, le=1,
        description="share of the district's area with valid data needed for a day to count [fraction]",
    )
    source: Literal["grid", "stations"] = Field(
        "grid", description="rain from the gridded inputs.rainfall, or measured at the weather stations of "
                            "inputs.stations (each district on its reference station, gaps from its back-ups)")
    onset: Onset | None = Field(None, description="phases in days start at the onset of the rains detected per "
                                                   "district and season (a failed onset may pay failed_rate)")
    daily_cap: float | None = Field(
        None, gt=0, description="rain above this in a day counts as this [mm/day] (term sheets cap extreme days); "
                                "at least every phase's dry_threshold, so a capped day stays wet")

    @model_validator(mode="after")
    def _unique_phase_names(self) -> "WeatherIndexParams":
        names = [p.name for p in self.phases]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"phase names must be unique; repeated: {', '.join(dupes)}")
        if self.daily_cap is not None:
            low = [p.name for p in self.phases if p.dry_threshold is not None and p.dry_threshold > self.daily_cap]
            if low:
                raise ValueError(f"daily_cap ({self.daily_cap:g} mm) must be at least the dry_threshold of every phase "
                                 f"(a capped day would turn dry): {', '.join(low)}")
        return self

    @property
    def reach(self) -> tuple[int, int] | None:
        """Earliest start and latest end of any phase window [days after the anchor].

        ``None`` when a window is fixed in the calendar or moves with the onset of the rains:
        it is not a fixed offset from the anchor, so the engine reads the rainfall input whole
        (and does not narrow the sowing dates it can assess).
        """
        if self.onset is not None or any(p.calendar for p in self.phases):
            return None
        return min(p.start_day for p in self.phases), max(p.end_day for p in self.phases)


# --------------------------------------------------------------------------- product
class WeatherIndexTrigger(Trigger):
    """Phased rainfall index per district: deficit and excess covers with linear, step or binary curves.

    References
    ----------
    World Bank (2011), *Weather Index Insurance for Agriculture: Guidance for Development
    Practitioners* — phased deficit/excess rainfall covers with strike, exit and tick.
    """

    name = "weather_index"
    Params = WeatherIndexParams
    inputs = ("rainfall", "stations")  # one of them, as the term sheet's source says

    @classmethod
    def required_inputs(cls, params: WeatherIndexParams) -> tuple[str, ...]:
        """``rainfall`` (a grid reduced to districts), or ``stations`` with ``source: stations``."""
        return ("stations",) if params.source == "stations" else ("rainfall",)
    description = "phased rainfall index (total, max n-day, dry spell, rainy days) on daily district rainfall"

    @classmethod
    def check_inputs(cls, params: WeatherIndexParams, info: dict[str, InputInfo]) -> list[str]:
        """Monthly or dekadal rainfall feeds only ``total`` phases (daily rain is never invented)."""
        rain = info.get(cls.required_inputs(params)[0])
        if rain is None or rain.frequency not in ("month", "dekad"):
            return []
        word, unit = ("monthly", "mm/month") if rain.frequency == "month" else ("dekadal", "mm/dekad")
        onset = ([f"onset: the onset of the rains is found in daily rain; the rainfall input is {word} [{unit}] "
                  f"({rain.path})"] if params.onset is not None else [])
        return onset + [f"phase {ph.name!r}: index {ph.index!r} needs true daily rainfall; the rainfall input is "
                        f"{word} [{unit}] ({rain.path}), from which only 'total' phases can be computed (panen never "
                        f"invents daily rain)" for ph in params.phases if ph.index != "total"]

    @classmethod
    def settles(cls, params: WeatherIndexParams, info: dict[str, InputInfo]) -> dict[str, str]:
        """Per phase, how the rainfall input settles it (for ``panen validate``)."""
        rain = info.get(cls.required_inputs(params)[0])
        freq = getattr(rain, "frequency", None)
        out = {}
        for ph in params.phases:
            if freq in ("month", "dekad"):
                out[ph.name] = (f"{ph.index} on {freq} totals (whole {freq}s exact, cut {freq}s pro rata)"
                                if ph.index == "total" else f"cannot: {ph.index} needs daily rainfall")
            else:
                out[ph.name] = f"{ph.index} on daily rainfall"
        return out

    def evaluate(self, params: WeatherIndexParams, inputs: TriggerInputs) -> TriggerResult:
        ds = inputs.series[self.required_inputs(params)[0]]
        mean, valid = ds["mean"], ds["valid_fraction"]
        if mean.attrs.get("valid_for") == "total":  # daily equivalents of monthly or dekadal totals
            _check_monthly(params, np.asarray(inputs.cohorts, dtype="datetime64[D]"), mean.attrs.get("period", "month"))
        units = mean.attrs.get("units")
        if units != "mm/day":
            raise DataQualityError(
                f"product {params.id!r}: weather_index phases are windows of days and need daily rainfall "
                f"[mm/day]; the rainfall input is in {units!r}"
            )
        times = mean["time"].values.astype("datetime64[D]")
        if times.size > 1 and not (np.diff(times) == np.timedelta64(1, "D")).all():
            raise DataQualityError(f"product {params.id!r}: weather_index needs a gap-free daily rainfall series")
        anchors = (np.asarray(inputs.cohorts, dtype="datetime64[D]") - times[0]).astype(np.int64)
        rain = mean.where(valid >= params.min_valid_fraction)
        if params.daily_cap is not None:  # a capped day counts as the cap; a missing day stays missing
            rain = rain.clip(max=params.daily_cap)
        rain = rain.transpose("district", "time").chunk({"time": -1}) if rain.chunks else rain.transpose("district", "time")
        validt = valid.transpose("district", "time")
        validt = validt.chunk({"time": -1}) if validt.chunks else validt

        cohort = xr.DataArray(np.asarray(inputs.cohorts, dtype="datetime64[ns]"), dims="cohort")
        if params.onset is not None or any(p.calendar for p in params.phases):
            return self._evaluate_calendar(params, rain, validt, times, np.asarray(inputs.cohorts, "datetime64[D]"))
        indices, fractions = [], []
        for phase in params.phases:
            kwargs = _index_kwargs(phase)
            if phase.max_missing_days:
                idx = _apply_window(rain, anchors, phase.start_day, phase.end_day, with_missing_days,
                                    {"index": phase.index, "max_missing": phase.max_missing_days, **kwargs})
            else:
                idx = _apply_window(rain, anchors, phase.start_day, phase.end_day, _INDEX_FUNCS[phase.index], kwargs)
            frac = _apply_window(validt, anchors, phase.start_day, phase.end_day, _mean_last, {})
            indices.append(idx.assign_attrs(units=_INDEX_UNITS[phase.index]))
            fractions.append(frac)
        phase_coord = xr.DataArray([p.name for p in params.phases], dims="phase")
        index_value = xr.concat(indices, dim=phase_coord, coords="minimal", compat="override")
        phase_rate = self.rates_from_index(params, index_value)  # the one curve rule, as the design search
        valid_fraction = xr.concat(fractions, dim=phase_coord, coords="minimal", compat="override")
        # NaN in any phase -> not assessable: sum with skipna=False keeps NaN
        payout_rate = phase_rate.sum("phase", skipna=False).clip(max=params.season_cap)
        out = xr.Dataset(
            {
                "payout_rate": payout_rate,
                "flagged": payout_rate.isnull(),
                "index_value": index_value,
                "phase_rate": phase_rate,
                "valid_fraction": valid_fraction,
            }
        ).assign_coords(cohort=cohort.values)
        return TriggerResult(out)

    # ------------------------------------------------------------------ in-season settlement
    @classmethod
    def guaranteed_rate(cls, params: WeatherIndexParams, inputs: TriggerInputs, result: xr.Dataset) -> xr.DataArray:
        """The payout rate no later rain can lower, from the days up to ``inputs.as_of`` [fraction].

        Per phase, on the days of its window up to ``as_of`` (the *elapsed* days):

        * a window already closed is final: its rate;
        * an open ``above`` (excess) phase whose curve never falls as the index rises (linear,
          binary, a step schedule without gaps whose top band is open above — else it
          guarantees 0) guarantees the rate of a lower bound of its final index. Every index panen has only grows as days are added, rain being never
          negative: the ``total`` of the elapsed days, the ``max_n_day`` over n-day runs
          with the unknown days counted as 0 mm (an n-day run reaching past ``as_of`` holds
          at least its elapsed rain), the longest ``dry_spell`` among the elapsed days (a run
          only lengthens, and a later run can only be longer), the ``rainy_days`` so far;
          an ``above`` curve never falls as its index rises, so the rate of the bound is a
          bound of the rate. A window not yet begun guarantees the rate of index 0;
        * an open ``below`` (deficit) phase guarantees 0 (later rain lowers its rate).

        Phases add up and the season cap applies: ``min(cap, Σ)`` never falls when a phase
        rises, so it is a bound too. A missing elapsed day (too little valid area, or a day
        the series lacks) in any phase makes the district and cohort NaN — withheld, as the
        final settlement on the same days would withhold it: nothing is guaranteed on
        missing data. Where the result already has a rate (every window closed by
        ``as_of``), the guarantee is that rate, exactly.

        References
        ----------
        World Bank (2011), *Weather Index Insurance for Agriculture: Guidance for Development
        Practitioners* (excess-rain and dry-spell covers accumulate over the window).
        """
        rate = result["payout_rate"]
        if inputs.as_of is None:
            return rate.copy()
        if params.onset is not None:
            # the windows move with an onset that later days may still decide: nothing is guaranteed before
            # every window (and the onset search) has closed, when the assessed rate is the guarantee
            return xr.where(rate.notnull(), rate, 0.0).rename("guaranteed_rate")
        ds = inputs.series[cls.required_inputs(params)[0]]
        mean, valid = ds["mean"], ds["valid_fraction"]
        times = mean["time"].values.astype("datetime64[D]")
        cohort_days = np.asarray(inputs.cohorts, dtype="datetime64[D]")
        elapsed_end = int((np.datetime64(inputs.as_of, "D") - times[0]).astype(np.int64)) + 1  # first unknown day
        rain = mean.where(valid >= params.min_valid_fraction).transpose("district", "time")
        if params.daily_cap is not None:  # the final reads capped rain: so does its lower bound
            rain = rain.clip(max=params.daily_cap)
        rain = rain.chunk({"time": -1}) if rain.chunks else rain
        parts = []
        for phase in params.phases:
            parts.append(_guaranteed_windows(rain, phase, cohort_days, times[0], elapsed_end) * phase.weight)
        summed = sum(parts[1:], parts[0]).clip(max=params.season_cap)
        summed = summed.assign_coords(cohort=rate["cohort"].values, district=rate["district"].values)
        summed = summed.transpose("district", "cohort")
        return xr.where(rate.notnull(), rate, summed).rename("guaranteed_rate")

    def _evaluate_calendar(self, params: WeatherIndexParams, rain: xr.DataArray, validt: xr.DataArray,
                           times: np.ndarray, cohorts: np.ndarray) -> TriggerResult:
        """Phases on calendar dates or dekads, and phases counted from the onset of the rains.

        Each (district, cohort) has its own window start (the onset differs by district), so
        the windows are gathered from the computed district series (small: time × district).
        With ``onset:``, a phase ``onset`` is added: its index is the onset's day counted
        from the search start [days] (the search length + 1 for a failed onset), and it pays
        ``failed_rate`` when the onset failed — the other phases of a failed onset pay 0; an
        onset that missing data leave undetermined (or a season still open) withholds.
        """
        from panen.engine.maths.onset import STATUS, detect_onset

        x = np.asarray(rain.values, dtype=np.float64)  # (district, time)
        v = np.asarray(validt.values, dtype=np.float64)
        n_d, n_t = x.shape
        t0 = times[0]

        def offset(day) -> int:
            return int((np.datetime64(day, "D") - t0).astype(np.int64))

        onset = params.onset
        onset_at = status = search0 = search_len = None
        if onset is not None:
            onset_at = np.full((n_d, cohorts.size), _NOWHERE, dtype=np.int64)
            status = np.full((n_d, cohorts.size), STATUS.index("undetermined"), dtype=np.int64)
            search0 = np.zeros(cohorts.size, dtype=np.int64)
            search_len = np.zeros(cohorts.size, dtype=np.int64)
            for c, anchor in enumerate(cohorts):
                first, last = onset.search(anchor)
                s, e = offset(first), offset(last)
                search0[c], search_len[c] = s, e - s + 1
                if s < 0:
                    continue  # the series starts after the search does: nothing can be said
                found = detect_onset(x, s, min(e, n_t - 1), onset.definition())
                st = found.status.copy()
                if e > n_t - 1:  # the deadline is past the data: no onset yet is not a failure
                    st = np.where(st == STATUS.index("failed"), STATUS.index("open"), st)
                status[:, c] = st
                onset_at[:, c] = np.where(st == STATUS.index("onset"), found.day, _NOWHERE)
        indices, fractions = [], []
        for phase in params.phases:
            if phase.calendar or onset is None:
                bounds = [phase.bounds(a) for a in cohorts]
                starts = np.broadcast_to(np.array([offset(b[0]) for b in bounds], dtype=np.int64), (n_d, cohorts.size))
                lengths = np.array([int((b[1] - b[0]).astype(int)) for b in bounds], dtype=np.int64)
            else:  # days counted from each district's onset
                starts = np.where(onset_at == _NOWHERE, _NOWHERE, onset_at + phase.start_day)
                lengths = np.full(cohorts.size, phase.end_day - phase.start_day, dtype=np.int64)
            kwargs = _index_kwargs(phase)
            if phase.max_missing_days:
                func, kwargs = with_missing_days, {"index": phase.index, "max_missing": phase.max_missing_days, **kwargs}
            else:
                func = _INDEX_FUNCS[phase.index]
            indices.append(gather_windows(x, starts, lengths, func, **kwargs))
            fractions.append(gather_windows(v, starts, lengths, _mean_last))
        coords = {"phase": [p.name for p in params.phases], "district": rain["district"].values,
                  "cohort": cohorts.astype("datetime64[ns]")}
        index_value = xr.DataArray(np.stack(indices), dims=("phase", "district", "cohort"), coords=coords)
        phase_rate = self.rates_from_index(params, index_value)
        valid_fraction = xr.DataArray(np.stack(fractions), dims=("phase", "district", "cohort"), coords=coords)
        if onset is not None:
            failed = status == STATUS.index("failed")
            known = failed | (status == STATUS.index("onset"))
            phase_rate = phase_rate.where(~failed, 0.0)  # a failed onset: no phase window to measure, nothing owed
            days = np.where(status == STATUS.index("onset"), onset_at - search0[None, :], np.nan)
            days = np.where(failed, np.broadcast_to(search_len[None, :], failed.shape).astype(float), days)
            rate = np.where(failed, onset.failed_rate, np.where(known, 0.0, np.nan))
            extra = {"phase": ["onset"], "district": coords["district"], "cohort": coords["cohort"]}
            index_value = xr.concat([index_value, xr.DataArray(days[None], dims=index_value.dims, coords=extra)],
                                    dim="phase")
            phase_rate = xr.concat([phase_rate, xr.DataArray(rate[None], dims=phase_rate.dims, coords=extra)],
                                   dim="phase")
            first = [offset(onset.search(a)[0]) for a in cohorts]
            search_valid = gather_windows(v, np.broadcast_to(np.array(first, dtype=np.int64), (n_d, cohorts.size)),
                                          np.maximum(search_len, 1), _mean_last)
            valid_fraction = xr.concat([valid_fraction, xr.DataArray(search_valid[None], dims=valid_fraction.dims,
                                                                     coords=extra)], dim="phase")
        payout_rate = phase_rate.sum("phase", skipna=False).clip(max=params.season_cap)
        out = xr.Dataset({"payout_rate": payout_rate, "flagged": payout_rate.isnull(), "index_value": index_value,
                          "phase_rate": phase_rate, "valid_fraction": valid_fraction})
        return TriggerResult(out)

    # ------------------------------------------------------------------ trigger design
    @classmethod
    def rates_from_index(cls, params: WeatherIndexParams | Sequence[WeatherIndexParams],
                         index_value: xr.DataArray) -> xr.DataArray:
        """Weighted phase rates [fraction] of stored index values: ``weight × Phase.rate(index)``.

        The rule :meth:`evaluate` applies to the index it computes (it calls this method),
        so a design search prices candidates exactly as a run would pay them.

        Parameters
        ----------
        params
            A term sheet, or a sequence of candidate term sheets.
        index_value
            Index values [mm or days] with a ``phase`` dim naming phases of the term
            sheet(s); numpy- or dask-backed (stays lazy).

        Returns
        -------
        xarray.DataArray
            The dims of ``index_value`` (a leading ``candidate`` dim for a sequence), rates in
            [0, weight], NaN where the index is NaN.

        Raises
        ------
        InputError
            ``index_value`` has no ``phase`` dim.
        ConfigError
            A phase of ``index_value`` is not in a term sheet.
        """
        if "phase" not in index_value.dims:
            raise InputError(f"weather_index rates_from_index: the index values need a 'phase' dim; they have "
                             f"{tuple(index_value.dims)}")
        single = isinstance(params, ProductParams)
        sheets = [params] if single else list(params)
        x = index_value.transpose("phase", ...)
        names = [str(n) for n in x["phase"].values.tolist()]
        data = x.data
        stacked = []
        for sheet in sheets:
            phases = {p.name: p for p in sheet.phases}
            unknown = [n for n in names if n not in phases]
            if unknown:
                raise ConfigError(f"product {sheet.id!r}: the index values have phase(s) "
                                  f"{', '.join(map(repr, unknown))} that the term sheet lacks "
                                  f"(it has {', '.join(map(repr, phases))})")
            stacked.append(np.stack([phases[n].rate(data[i]) * phases[n].weight for i, n in enumerate(names)]))
        if single:
            return xr.DataArray(stacked[0], dims=x.dims, coords=x.coords, name="phase_rate").transpose(
                *index_value.dims)
        out = np.stack(stacked) if stacked else np.empty((0, *data.shape))
        return xr.DataArray(out, dims=("candidate", *x.dims), coords=x.coords, name="phase_rate").transpose(
            "candidate", *index_value.dims)

    @classmethod
    def design_terms(cls, params: WeatherIndexParams) -> DesignTerms:
        """Every phase's strike (and exit, for a linear curve) and weight, and the season cap.

        * linear: strike and exit;
        * binary: the strike (pays 1 beyond it);
        * step: the schedule's *trigger point* — the upper edge of its highest-index paying
          band for a ``below`` phase, the lower edge of its lowest paying band for
          ``above`` — is its strike; :meth:`with_design` moves the whole schedule with it.

        Raises
        ------
        ConfigError
            A step schedule without a trigger point: it pays in no band, or its paying band
            is open towards the safe side (it pays at any index value).
        """
        if params.onset is not None:
            raise ConfigError(f"product {params.id!r}: an onset-anchored product cannot be redesigned by re-pricing "
                              f"stored index values (its windows move with the onset, and a failed onset pays on "
                              f"its own)")
        return DesignTerms(tuple(_phase_design(params.id, p) for p in params.phases), float(params.season_cap))

    @classmethod
    def with_design(cls, params: WeatherIndexParams, terms: DesignTerms) -> WeatherIndexParams:
        """The term sheet with the strikes, exits, weights and season cap of ``terms``.

        A linear phase takes the new strike and exit, a binary phase the new strike. A step
        phase is moved as a whole: every finite band edge shifts by (new strike − trigger
        point), band rates unchanged — the step analogue of moving a tick contract's strike
        and exit together, so the schedule keeps its shape in index units (edges rounded to
        1e-9 index units). Windows, index definitions and curves are kept.

        Raises
        ------
        ConfigError
            ``terms`` names other phases, changes a curve or direction, gives an exit to a
            curve without one (or none to a linear phase), or breaks a term-sheet constraint.
        """
        now = cls.design_terms(params)
        given = {p.name: p for p in terms.phases}
        problems = []
        names = [p.name for p in now.phases]
        if sorted(given) != sorted(names) or len(given) != len(terms.phases):
            problems.append(f"the design names phases {sorted(given)}; the term sheet has {names}")
        data = params.model_dump()
        for raw, old in zip(data["phases"], now.phases):
            new = given.get(old.name)
            if new is None:
                continue
            if (new.curve, new.direction) != (old.curve, old.direction):
                problems.append(f"phase {old.name!r} is a {old.direction!r} {old.curve} phase; the design has a "
                                f"{new.direction!r} {new.curve} one (a search never changes a phase's kind)")
                continue
            if (new.exit is None) != (old.exit is None):
                problems.append(f"phase {old.name!r} ({old.curve}) " + (
                    "needs an exit" if old.exit is not None else "has no exit to set"))
                continue
            raw.update(strike=float(new.strike), weight=float(new.weight))
            if old.curve == "linear":
                raw["exit"] = float(new.exit)
            elif old.curve == "step":
                for band in raw["bands"]:
                    for edge in ("min", "max"):
                        if np.isfinite(band[edge]):
                            band[edge] = round(float(new.strike) + (band[edge] - old.strike), 9)
                        else:
                            del band[edge]  # an open edge is a left-out key (infinity is never a term)
        if problems:
            raise ConfigError([Problem(f"product {params.id!r}: {p}") for p in problems])
        data["season_cap"] = float(terms.season_cap)
        try:
            return type(params).model_validate(data)
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"product {params.id!r}: the redesigned term sheet is invalid: {details}") from None


def _phase_design(product_id: str, p: Phase) -> PhaseDesign:
    """How a design search sees one phase (see :meth:`WeatherIndexTrigger.design_terms`)."""
    if p.curve == "linear":
        return PhaseDesign(p.name, "linear", p.direction, float(p.strike), float(p.exit), float(p.weight))
    if p.curve == "binary":
        return PhaseDesign(p.name, "binary", p.direction, float(p.strike), None, float(p.weight))
    paying = [b for b in p.bands or [] if b.rate > 0]
    where = f"product {product_id!r}, phase {p.name!r}: the step schedule"
    if not paying:
        raise ConfigError(f"{where} pays in no band: it has no trigger point to move")
    point = max(b.max for b in paying) if p.direction == "below" else min(b.min for b in paying)
    if not np.isfinite(point):
        raise ConfigError(f"{where} has a paying band open towards the safe side (it pays at any index value): it has "
                          "no trigger point to move, so a design search cannot vary it")
    return PhaseDesign(p.name, "step", p.direction, float(point), None, float(p.weight))


def _period_start(d: np.ndarray, period: str) -> np.ndarray:
    """The first day of each date's month or dekad (days 1–10, 11–20, 21 to the month's end)."""
    month = d.astype("datetime64[M]").astype("datetime64[D]")
    if period == "month":
        return month
    k = np.minimum((d - month).astype(np.int64) // 10, 2)
    return month + (10 * k).astype("timedelta64[D]")


def _check_monthly(params: WeatherIndexParams, anchors: np.ndarray, period: str = "month") -> None:
    """Refuse non-total phases on monthly/dekadal equivalents; warn when a window cuts a period (pro rata)."""
    word = "monthly" if period == "month" else "dekadal"
    if params.onset is not None:
        raise DataQualityError(f"product {params.id!r}: the onset of the rains is found in daily rain; the rainfall "
                               f"series is {word} totals")
    daily = [ph.name for ph in params.phases if ph.index != "total"]
    if daily:
        raise DataQualityError(f"product {params.id!r}: phase(s) {', '.join(map(repr, daily))} need true daily "
                               f"rainfall; the rainfall series is {word} totals spread over each {period}'s days, "
                               f"valid for 'total' phases only")
    for ph in params.phases:
        bounds = [ph.bounds(a) for a in anchors]
        for d in (np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])):
            if (d != _period_start(d, period)).any():
                warnings.warn(f"rainfall is {word}: phase windows of product {params.id!r} cut calendar {period}s in "
                              f"some seasons; those {period}s count pro rata (days in the window × the {period}'s "
                              f"mean daily rain)", UserWarning, stacklevel=3)
                return


def _never_falls(phase: Phase) -> bool:
    """Whether the phase's curve never falls as its index rises (on every index value).

    Linear and binary ``above`` curves never do. A step schedule does only when its bands
    leave no gap and the top band is open above: an index past a closed top band, or in a
    gap, is in no band and pays 0 — so a schedule such as ``[0, 300) → 0.5`` pays less at
    310 mm than at 290 mm, and its open window guarantees nothing.
    """
    if phase.direction != "above":
        return False
    if phase.curve != "step":
        return True
    bands = sorted(phase.bands or [], key=lambda b: b.min)
    return bool(bands) and np.isinf(bands[-1].max) and all(a.max == b.min for a, b in zip(bands, bands[1:]))


def _guaranteed_windows(rain: xr.DataArray, phase: Phase, cohorts: np.ndarray, t0: np.datetime64,
                        elapsed_end: int) -> xr.DataArray:
    """A phase's guaranteed rate (before weighting) per district and cohort, whatever form its window has.

    A window in days after the anchor is the same offsets for every cohort; a calendar window
    (dates, dekads) is resolved per cohort to its first day and length, and evaluated as the
    equivalent day window from that first day.
    """
    if not phase.calendar:
        anchors = (cohorts - t0).astype(np.int64)
        return xr.apply_ufunc(
            _guaranteed_phase, rain, input_core_dims=[["time"]], output_core_dims=[["cohort"]],
            kwargs={"anchors": anchors, "elapsed_end": elapsed_end, "phase": phase},
            dask="parallelized", output_dtypes=[float], dask_gufunc_kwargs={"output_sizes": {"cohort": len(anchors)}})
    x = np.asarray(rain.values, dtype=np.float64)
    out = np.empty((x.shape[0], cohorts.size))
    for c, anchor in enumerate(cohorts):
        first, end = phase.bounds(anchor)
        days = phase.model_copy(update={"start_day": 0, "end_day": int((end - first).astype(int)), "start": None,
                                        "end": None, "start_dekad": None, "end_dekad": None})
        out[:, c] = _guaranteed_phase(x, np.array([int((first - t0).astype(int))]), elapsed_end, days)[:, 0]
    return xr.DataArray(out, dims=("district", "cohort"), coords={"district": rain["district"].values})


def _guaranteed_phase(x: np.ndarray, anchors: np.ndarray, elapsed_end: int, phase: Phase) -> np.ndarray:
    """A phase's guaranteed rate before weighting, per cohort, from the days before ``elapsed_end``.

    ``x`` (..., T) [mm/day] with too-little-valid days already NaN; ``anchors`` (C,) day
    offsets into it; ``elapsed_end`` the offset of the first unknown day. Returns (..., C):
    the phase's rate when its window is closed, the rate of a lower bound of its index for
    an open ``above`` phase, 0 for an open ``below`` phase, NaN where an elapsed day is
    missing (see :meth:`WeatherIndexTrigger.guaranteed_rate`).
    """
    T = x.shape[-1]
    days = np.arange(phase.start_day, phase.end_day)
    idx = np.asarray(anchors, dtype=np.int64)[:, None] + days[None, :]  # (C, L)
    elapsed = idx < elapsed_end
    w = np.take(x, np.clip(idx, 0, max(T - 1, 0)), axis=-1)  # (..., C, L)
    w = np.where((idx < 0) | (idx >= T), np.nan, w)
    missing = (np.isnan(w) & elapsed).any(axis=-1)
    closed = elapsed.all(axis=-1)  # (C,)
    known = np.where(elapsed, w, 0.0)  # unknown days as 0 mm: a lower bound of every growing index
    known = np.where(np.isnan(known), 0.0, known)  # missing elapsed days are NaN-ed below, via `missing`
    if phase.index == "total":
        bound = known.sum(axis=-1)
    elif phase.index == "max_n_day":
        bound = np.lib.stride_tricks.sliding_window_view(known, phase.n, axis=-1).sum(axis=-1).max(axis=-1)
    elif phase.index == "dry_spell":
        bound = dry_spell(np.where(elapsed, known, np.inf), phase.dry_threshold)  # unknown days never dry
    else:
        bound = (np.where(elapsed, known, -np.inf) >= phase.wet_threshold).sum(axis=-1).astype(float)
    rate = np.asarray(phase.rate(bound), dtype=float)
    if phase.direction == "below" or not _never_falls(phase):
        rate = np.where(closed, rate, 0.0)
    return np.where(missing, np.nan, rate)


#: A window start meaning "no window" (no onset): far outside any series.
_NOWHERE = -(10 ** 9)


def _index_kwargs(phase: Phase) -> dict:
    return {"n": phase.n} if phase.index == "max_n_day" else (
        {"dry_threshold": phase.dry_threshold} if phase.index == "dry_spell" else (
            {"wet_threshold": phase.wet_threshold} if phase.index == "rainy_days" else {}))


def gather_windows(x: np.ndarray, starts: np.ndarray, lengths: np.ndarray, func, **kwargs) -> np.ndarray:
    """``func`` over per-(district, cohort) windows ``[start, start + length)`` of ``x`` (district, time).

    Parameters
    ----------
    x
        (D, T) daily series.
    starts
        (D, C) window starts [day offsets into ``x``]; a window leaving the series is NaN.
    lengths
        (C,) window lengths [days] (a calendar window is a day longer in a leap year).

    Returns
    -------
    (D, C) index values.
    """
    n_d, n_t = x.shape
    starts = np.asarray(starts, dtype=np.int64)
    out = np.full(starts.shape, np.nan)
    for length in np.unique(lengths):
        cs = np.flatnonzero(lengths == length)
        idx = starts[:, cs, None] + np.arange(int(length))[None, None, :]  # (D, c, L)
        outside = (idx < 0) | (idx >= n_t)
        w = np.take_along_axis(x, np.clip(idx, 0, max(n_t - 1, 0)).reshape(n_d, -1), axis=1).reshape(idx.shape)
        w = np.where(outside, np.nan, w)
        out[:, cs] = func(w, **kwargs)
    return out


def _mean_last(w: np.ndarray) -> np.ndarray:
    return w.mean(axis=-1)


def _apply_window(da: xr.DataArray, anchors: np.ndarray, start: int, end: int, func, kwargs) -> xr.DataArray:
    """Apply a window index along ``time`` lazily (dask-parallelised over districts)."""
    return xr.apply_ufunc(
        window_index,
        da,
        input_core_dims=[["time"]],
        output_core_dims=[["cohort"]],
        kwargs={"anchors": anchors, "start_day": start, "end_day": end, "func": func, **kwargs},
        dask="parallelized",
        output_dtypes=[float],
        dask_gufunc_kwargs={"output_sizes": {"cohort": len(anchors)}},
    )
