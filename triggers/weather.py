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
    start_day: int = Field(ge=0, description="first day of the window after the anchor [days]")
    end_day: int = Field(gt=0, le=366, description="end of the window, exclusive [days]")
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
        if self.end_day <= self.start_day:
            errors.append(f"end_day must be > start_day ({self.start_day}); got {self.end_day}")
        length = self.end_day - self.start_day
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
    def reach(self) -> tuple[int, int]:
        """Earliest start and latest end of any phase window [days after the anchor]."""
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
    inputs = ("rainfall",)

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
        return [f"phase {ph.name!r}: index {ph.index!r} needs true daily rainfall; the rainfall input is {word} "
                f"[{unit}] ({rain.path}), from which only 'total' phases can be computed (panen never invents "
                f"daily rain)" for ph in params.phases if ph.index != "total"]

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
        indices, fractions = [], []
        for phase in params.phases:
            kwargs = {"n": phase.n} if phase.index == "max_n_day" else (
                {"dry_threshold": phase.dry_threshold} if phase.index == "dry_spell" else (
                    {"wet_threshold": phase.wet_threshold} if phase.index == "rainy_days" else {}))
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
    daily = [ph.name for ph in params.phases if ph.index != "total"]
    if daily:
        raise DataQualityError(f"product {params.id!r}: phase(s) {', '.join(map(repr, daily))} need true daily "
                               f"rainfall; the rainfall series is {word} totals spread over each {period}'s days, "
                               f"valid for 'total' phases only")
    for ph in params.phases:
        for edge in (ph.start_day, ph.end_day):
            d = anchors + np.timedelta64(edge, "D")
            if (d != _period_start(d, period)).any():
                warnings.warn(f"rainfall is {word}: phase windows of product {params.id!r} cut calendar {period}s in "
                              f"some seasons; those {period}s count pro rata (days in the window × the {period}'s "
                              f"mean daily rain)", UserWarning, stacklevel=3)
                return


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
