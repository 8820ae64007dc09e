"""Area-yield index trigger: pay when a district's realised yield falls short of a threshold.

Three layers, as in :mod:`panen.triggers.weather`:

1. *Normal yield* — pure functions reducing a district's yield history to one expected
   yield: the mean of the best ``n`` of the last ``m`` years (:func:`normal_yield_best_of`,
   India's PMFBY), the mean of the last ``m`` years (:func:`normal_yield_mean`), or a
   value given in the yields table; optionally after a linear trend adjustment of the
   history to the season year (:func:`linear_trend_adjust`).
2. *Payout formulas* — :func:`threshold_yield`, :func:`shortfall_rate` (PMFBY, former US
   GRP) and :func:`arpi_payment_factor` (US Area Risk Protection Insurance, 7 CFR 407.9).
3. *Product* — :class:`AreaYieldTrigger` wires a term sheet onto the yields table.

Layers 1 and 2, the ``best_of`` and ``mean`` term-sheet models and the yields-table
helpers live in :mod:`panen.engine.maths.yieldhistory`, which the backtest's loss reference
shares; they are re-exported here.

Rules (documented here once, tested in ``tests/test_area_yield.py``):

* **Window.** The history of season year ``Y`` is the ``L`` harvest years immediately
  before it, ``Y − L … Y − 1`` (``L = of`` for ``best_of``, ``years`` for ``mean``). The
  season's own yield is the *actual* yield and never part of its normal yield.
* **Missing years are missing, never zero.** A year is *available* when the table has a
  positive yield for it; blank, missing-coded, non-positive and absent years are not.
  ``valid_fraction`` = available years / ``L``. With fewer than ``min_years`` available
  (default ``L``: a complete window) the district is flagged: normal yield, threshold and
  payout rate are NaN and its policies are withheld, not paid. With enough years,
  ``best_of`` averages the best ``min(best, n)`` of the ``n`` available years and ``mean``
  averages the ``n`` available years — the missing years are simply left out.
* **Trend** (``trend: {method: linear}``). Before the normal yield is taken, an ordinary
  least-squares line ``y = a + b·year`` is fitted to the available ``(year, yield)`` points
  of the window, and each year's yield is moved along it to the season year:
  ``y_adj = y + b·(Y − year)``. The slope is used with its sign (falling trends lower the
  normal yield). With fewer than 3 available points no line is fitted and the history is
  used unadjusted (``trend_slope`` is NaN). A perfect line detrends to a flat history at
  its season-year value. Availability (``valid_fraction``, ``min_years``) is counted on the
  raw history; a year a steep falling trend would adjust to zero or below drops out of the
  normal yield like a missing year.
* **Actual yield.** The table's yield for ``(district, Y)``; missing or absent → flagged.
  Districts absent from the table → flagged.
* **Cohorts.** Area yield has no sowing window: every cohort gets the same values.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from panen.engine.api import ProductParams, Trigger, TriggerInputs, TriggerResult
from panen.engine.errors import DataQualityError
from panen.engine.maths.yieldhistory import (  # layers 1 and 2 are re-exported (__all__)
    BestOfNormal,
    MeanNormal,
    arpi_payment_factor,
    linear_trend_adjust,
    normal_yield_best_of,
    normal_yield_mean,
    select_season,
    shortfall_rate,
    threshold_yield,
    wide_table,
    year_columns,
)

__all__ = [
    "AreaYieldParams",
    "AreaYieldTrigger",
    "BestOfNormal",
    "GivenNormal",
    "LinearTrend",
    "MeanNormal",
    "arpi_payment_factor",
    "linear_trend_adjust",
    "normal_yield_best_of",
    "normal_yield_mean",
    "shortfall_rate",
    "threshold_yield",
]


# --------------------------------------------------------------------------- term sheet
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GivenNormal(_Strict):
    """Normal (expected) yield read from a column of the yields table, on the season year's row."""

    method: Literal["given"]
    column: str = Field(min_length=1, description="yields-table column holding the expected yield [t/ha]")

    @property
    def window(self) -> int:
        return 0


class LinearTrend(_Strict):
    """Linear (OLS) trend adjustment of the history to the season year."""

    method: Literal["linear"]


NormalYield = Annotated[BestOfNormal | MeanNormal | GivenNormal, Field(discriminator="method")]


class AreaYieldParams(ProductParams):
    """Term sheet of an area-yield index product (``trigger: area_yield``).

    ``loss_limit_factor`` must satisfy ``0 <= loss_limit_factor < indemnity_level``: the
    ARPI denominator is ``expected × (coverage − loss_limit_factor)``, which must be
    positive for the payment factor to rise from 0 at the trigger yield to 1 at
    ``expected × loss_limit_factor``. It only applies to ``formula: arpi``; setting it for
    ``shortfall`` is an error rather than silently ignored.
    """

    trigger: Literal["area_yield"] = "area_yield"
    normal_yield: NormalYield = Field(
        description="{method: best_of, best, of} | {method: mean, years} | {method: given, column}")
    trend: LinearTrend | None = Field(None, description="{method: linear}: detrend the history to the season year")
    indemnity_level: float = Field(gt=0, le=1, description="threshold = level × normal yield [fraction]")
    formula: Literal["shortfall", "arpi"] = Field(
        "shortfall", description="shortfall: (T − A)/T (PMFBY); arpi: 7 CFR 407.9 payment factor")
    loss_limit_factor: float = Field(
        0.18, ge=0, lt=1, description="ARPI loss limit factor [fraction of expected yield], < indemnity_level")
    min_years: int | None = Field(
        None, ge=1, description="available history years needed, else flagged; None = the whole window")
    yield_season: str | None = Field(
        None, description="value of the yields table's season column this product settles on")

    @model_validator(mode="after")
    def _consistent(self) -> "AreaYieldParams":
        errors: list[str] = []
        window = self.normal_yield.window
        method = self.normal_yield.method
        if method == "given":
            if self.min_years is not None:
                errors.append("min_years only applies to normal_yield methods best_of and mean, not 'given'")
            if self.trend is not None:
                errors.append("trend only applies to normal_yield methods best_of and mean, not 'given'")
        elif self.min_years is not None and self.min_years > window:
            key = "of" if method == "best_of" else "years"
            errors.append(f"min_years must be between 1 and the history window ({key} = {window}); "
                          f"got {self.min_years}")
        if self.formula == "arpi":
            if not self.loss_limit_factor < self.indemnity_level:
                errors.append(f"loss_limit_factor must be >= 0 and < indemnity_level ({self.indemnity_level}); "
                              f"got {self.loss_limit_factor}")
        elif "loss_limit_factor" in self.model_fields_set:
            errors.append("loss_limit_factor only applies to formula 'arpi', not 'shortfall'")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def required_years(self) -> int:
        """Available history years needed (0 for a given normal yield)."""
        if self.normal_yield.method == "given":
            return 0
        return self.normal_yield.window if self.min_years is None else self.min_years


# --------------------------------------------------------------------------- product
class AreaYieldTrigger(Trigger):
    """Area-yield index per district: pay the shortfall of the actual yield below a threshold.

    See the module docstring for the window, missing-year and trend rules.

    References
    ----------
    PMFBY Operational Guidelines (revamped, effective Kharif 2020), "Assessment of Claims",
    para. 21.1 (threshold yield, claim formula). 7 CFR 407.9, Area Risk Protection
    Insurance Basic Provisions (Area Yield Protection payment factor).
    """

    name = "area_yield"
    Params = AreaYieldParams
    inputs = ("yields",)
    description = "area-yield index: threshold = level × normal yield (best n of m, mean, given); shortfall or ARPI"

    def evaluate(self, params: AreaYieldParams, inputs: TriggerInputs) -> TriggerResult:
        table = _season_rows(params, inputs.tables.get("yields"))
        units = table.attrs.get("units", "t/ha")
        year = int(inputs.season.year)
        keys = np.asarray(inputs.district_ids)
        text_keys = [str(k) for k in keys]
        wide = wide_table(table, "yield", text_keys)

        actual = year_columns(wide, [year])[:, 0]
        spec = params.normal_yield
        slope = None
        if spec.method == "given":
            expected = year_columns(wide_table(table, spec.column, text_keys), [year])[:, 0]  # positive or NaN
            normal = expected
            available = np.isfinite(expected).astype(float)
            valid_fraction = available
        else:
            window_years = np.arange(year - spec.window, year)
            history = year_columns(wide, window_years)
            available = (history > 0).sum(axis=-1).astype(float)
            valid_fraction = available / spec.window
            if params.trend is not None:
                history, slope = linear_trend_adjust(history, window_years, year)
            if spec.method == "best_of":
                normal = normal_yield_best_of(history, spec.best, spec.of, params.required_years)
            else:
                normal = normal_yield_mean(history, spec.years, params.required_years)

        threshold = threshold_yield(normal, params.indemnity_level)
        if params.formula == "arpi":
            rate = arpi_payment_factor(normal, params.indemnity_level, actual, params.loss_limit_factor)
        else:
            rate = shortfall_rate(threshold, actual)

        cohorts = np.asarray(inputs.cohorts, dtype="datetime64[ns]")
        every_cohort = xr.DataArray(np.ones(len(cohorts)), dims="cohort")  # same value for every cohort
        payout_rate = _per_district(rate) * every_cohort
        reason = _reasons(rate, actual, normal, available, params, year, units)
        data = {
            "payout_rate": payout_rate,
            "flagged": payout_rate.isnull(),
            "reason": xr.DataArray(np.repeat(reason[:, None], len(cohorts), axis=1), dims=("district", "cohort")),
            "index_value": _one_phase(_per_district(actual) * every_cohort).assign_attrs(units=units),
            "phase_rate": _one_phase(payout_rate),
            "valid_fraction": _one_phase(_per_district(valid_fraction) * every_cohort),
            "normal_yield": _per_district(normal, units=units),
            "threshold_yield": _per_district(threshold, units=units),
            "history_years": xr.DataArray(available.astype(np.int64), dims="district"),
        }
        if slope is not None:
            data["trend_slope"] = _per_district(slope, units=f"{units} per year")
        out = xr.Dataset(data, coords={"district": keys, "cohort": cohorts},
                         attrs={"season_year": year, "normal_yield_method": spec.method, "formula": params.formula})
        return TriggerResult(out)


def _reasons(rate: np.ndarray, actual: np.ndarray, normal: np.ndarray, available: np.ndarray,
             params: AreaYieldParams, year: int, units: str) -> np.ndarray:
    """Why a district could not be assessed, for the audit trail ("" where it was)."""
    out = np.full(len(rate), "", dtype=object)
    missing = ~np.isfinite(rate)
    need = params.required_years
    for i in np.flatnonzero(missing):
        if not np.isfinite(actual[i]):
            out[i] = f"no {year} yield in the yields table"
        elif params.normal_yield.method == "given":
            out[i] = f"no expected yield ({params.normal_yield.column}) for {year}"
        elif available[i] < need:
            out[i] = (f"yield history of {int(available[i])} year(s) in the {params.normal_yield.window} before "
                      f"{year}; the normal yield needs {need}")
        elif not np.isfinite(normal[i]) or normal[i] <= 0:
            out[i] = f"no usable normal yield [{units}]"
        else:
            out[i] = "not assessable"
    return out


def _per_district(values, **attrs) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), dims="district", attrs=attrs)


def _one_phase(da: xr.DataArray) -> xr.DataArray:
    """Area yield has one phase, the whole season."""
    return da.expand_dims(phase=["season"])


def _season_rows(params: AreaYieldParams, table: pd.DataFrame | None) -> pd.DataFrame:
    """The yields rows this product settles on; checks the frame the reader promises."""
    label = f"product {params.id!r}"
    if table is None:
        raise DataQualityError(f"{label}: area_yield needs the 'yields' table (inputs.yields)")
    needed = ["district_id", "year", "yield"]
    if params.normal_yield.method == "given":
        needed.append(params.normal_yield.column)
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise DataQualityError(f"{label}: the yields table has no column(s) {', '.join(map(repr, absent))}; "
                               f"available: {', '.join(map(str, table.columns))}")
    table = select_season(table, params.yield_season, label=label)
    key = table[["district_id", "year"]].astype({"district_id": str})
    dup = key.duplicated(keep=False)
    if dup.any():
        first = key[dup].iloc[0]
        raise DataQualityError(f"{label}: the yields table has {int(dup.sum())} rows sharing a (district, year), "
                               f"e.g. district {first['district_id']!r}, year {int(first['year'])}")
    return table
