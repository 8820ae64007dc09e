"""Area-yield index trigger: pay when a district's realised yield falls short of a threshold.

Three layers, as in :mod:`panen.triggers.weather` and STYLE.md:

1. *Normal yield* — pure functions reducing a district's yield history to one expected
   yield: the mean of the best ``n`` of the last ``m`` years (:func:`normal_yield_best_of`,
   India's PMFBY), the mean of the last ``m`` years (:func:`normal_yield_mean`), or a
   value given in the yields table; optionally after a linear trend adjustment of the
   history to the season year (:func:`linear_trend_adjust`).
2. *Payout formulas* — :func:`threshold_yield`, :func:`shortfall_rate` (PMFBY, former US
   GRP) and :func:`arpi_payment_factor` (US Area Risk Protection Insurance, 7 CFR 407.9).
3. *Product* — :class:`AreaYieldTrigger` wires a term sheet onto the yields table.

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

#: Fewest available history points a linear trend is fitted to.
TREND_MIN_POINTS = 3


# --------------------------------------------------------------------------- normal yield
def _valid(history: np.ndarray) -> np.ndarray:
    """Available years: present and positive (NaN > 0 is False)."""
    return history > 0


def normal_yield_best_of(history, best: int, of: int, min_years: int | None = None) -> np.ndarray:
    """Mean of the best ``best`` of the last ``of`` years' yields [t/ha].

    Parameters
    ----------
    history
        Yields in chronological order along the last axis, shape (..., n) [t/ha]; NaN (or
        a non-positive value) marks a missing year. The last ``of`` entries are the window;
        a history shorter than ``of`` counts its absent years as missing.
    best, of
        Number of highest yields averaged, and window length [years]; ``1 <= best <= of``.
    min_years
        Fewest available years needed (default ``of``); fewer → NaN.

    Returns
    -------
    (...) normal yield [t/ha]: the mean of the ``min(best, n)`` highest of the ``n``
    available yields in the window; NaN where ``n < min_years`` (or ``n == 0``).

    References
    ----------
    PMFBY Operational Guidelines (revamped, effective Kharif 2020), "Assessment of Claims",
    wide-spread calamities (para. 21.1): threshold yield is the average yield of the best 5
    of the past 7 years of that season × indemnity level; illustration 21.1.2.

    Examples
    --------
    >>> float(normal_yield_best_of([4500, 3750, 2000, 4250, 1800, 4300, 1750], best=5, of=7))
    3760.0
    """
    if not 1 <= best <= of:
        raise ValueError(f"best must be between 1 and of ({of}); got {best}")
    h = np.asarray(history, dtype=float)[..., -of:]
    ok = _valid(h)
    n = ok.sum(axis=-1)
    ranked = -np.sort(-np.where(ok, h, -np.inf), axis=-1)[..., :best]  # descending; missing last
    top = np.isfinite(ranked)
    k = top.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(top, ranked, 0.0).sum(axis=-1) / k
    need = of if min_years is None else min_years
    return np.where((n >= max(need, 1)) & (k > 0), mean, np.nan)


def normal_yield_mean(history, years: int, min_years: int | None = None) -> np.ndarray:
    """Mean of the last ``years`` years' available yields [t/ha].

    Parameters
    ----------
    history
        Yields in chronological order along the last axis (..., n) [t/ha]; NaN or
        non-positive = missing.
    years
        Window length [years].
    min_years
        Fewest available years needed (default ``years``); fewer → NaN.

    Returns
    -------
    (...) mean of the available yields in the window [t/ha]; NaN where too few.
    """
    h = np.asarray(history, dtype=float)[..., -years:]
    ok = _valid(h)
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, h, 0.0).sum(axis=-1) / n
    need = years if min_years is None else min_years
    return np.where(n >= max(need, 1), mean, np.nan)


def linear_trend_adjust(history, years, target_year: int,
                        min_points: int = TREND_MIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Detrend a yield history to the target year along an OLS line.

    Fits ``y = a + b·year`` by ordinary least squares to the available points of each
    history (last axis) and returns ``y_adj = y + b·(target_year − year)``.

    Parameters
    ----------
    history
        Yields (..., L) [t/ha]; NaN or non-positive = missing (stays missing).
    years
        (L,) the year of each history column.
    target_year
        Year the history is adjusted to (the season's harvest year).
    min_points
        Fewest available points a line is fitted to (default 3); below it the history
        is returned unadjusted and the slope is NaN.

    Returns
    -------
    adjusted
        (..., L) detrended history [t/ha].
    slope
        (...) fitted slope ``b`` [t/ha per year]; NaN where no line was fitted.

    Examples
    --------
    >>> adj, b = linear_trend_adjust([1.0, 1.5, 2.0], [2001, 2002, 2003], 2004)
    >>> adj.tolist(), float(b)
    ([2.5, 2.5, 2.5], 0.5)
    """
    h = np.asarray(history, dtype=float)
    x = np.asarray(years, dtype=float)
    ok = _valid(h)
    w = ok.astype(float)
    n = w.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * x).sum(axis=-1, keepdims=True) / n
        ym = np.where(ok, h, 0.0).sum(axis=-1, keepdims=True) / n
        dx = np.where(ok, x - xm, 0.0)
        dy = np.where(ok, h - ym, 0.0)
        sxx = (dx * dx).sum(axis=-1, keepdims=True)
        slope = (dx * dy).sum(axis=-1, keepdims=True) / sxx
    fitted = (n >= min_points) & (sxx > 0)
    slope = np.where(fitted, slope, np.nan)
    adjusted = np.where(ok & fitted, h + np.where(fitted, slope, 0.0) * (target_year - x), np.where(ok, h, np.nan))
    return adjusted, slope[..., 0]


# --------------------------------------------------------------------------- payout formulas
def threshold_yield(normal, level):
    """Threshold (trigger) yield = indemnity level × normal yield [t/ha].

    Parameters
    ----------
    normal
        Normal (expected) yield [t/ha].
    level
        Indemnity level / coverage level [fraction, 0..1], e.g. 0.7, 0.8, 0.9.

    References
    ----------
    PMFBY Operational Guidelines (2020), "Assessment of Claims", para. 21.1.

    Examples
    --------
    >>> [round(threshold_yield(3760, lv), 6) for lv in (0.9, 0.8, 0.7)]
    [3384.0, 3008.0, 2632.0]
    """
    return normal * level


def shortfall_rate(threshold, actual):
    """PMFBY / former US GRP shortfall payout rate ``max(0, (T − A) / T)``, capped at 1.

    Parameters
    ----------
    threshold
        Threshold yield ``T`` [t/ha]; must be positive (NaN otherwise).
    actual
        Actual (realised) area yield ``A`` [t/ha].

    Returns
    -------
    Payout rate [fraction of sum insured, 0..1]; NaN where either input is NaN.

    References
    ----------
    PMFBY Operational Guidelines (2020), "Assessment of Claims", para. 21.1.1: claim =
    (threshold yield − actual yield) / threshold yield × sum insured.

    Examples
    --------
    >>> round(float(shortfall_rate(3384, 2500)) * 30_000, 2)
    7836.88
    """
    threshold = _nan_unless(_numeric(threshold) > 0, _numeric(threshold))  # no division by zero, even lazily
    return _clip01((threshold - _numeric(actual)) / threshold)


def arpi_payment_factor(expected, coverage, final, loss_limit_factor=0.18):
    """US Area Yield Protection payment factor.

    ``trigger = expected × coverage``;
    ``factor = min(1, max(0, (trigger − final) / (trigger − expected × loss_limit_factor)))``.

    Parameters
    ----------
    expected
        Expected area yield [t/ha] (here: the normal yield); must be positive.
    coverage
        Coverage level [fraction] (here: the indemnity level).
    final
        Final area yield [t/ha] (here: the season's actual yield).
    loss_limit_factor
        Share of the expected yield below which no further loss is paid (0.18 unless the
        special provisions say otherwise); must be below ``coverage``.

    Returns
    -------
    Payment factor [fraction of the policy protection, 0..1]; NaN where an input is NaN.

    References
    ----------
    7 CFR 407.9, Area Risk Protection Insurance Basic Provisions, Area Yield Protection
    indemnity (payment factor with the loss limit factor).

    Examples
    --------
    >>> round(float(arpi_payment_factor(150, 0.9, 110)), 6)
    0.231481
    >>> float(arpi_payment_factor(100, 0.9, 10))
    1.0
    """
    expected = _nan_unless(_numeric(expected) > 0, _numeric(expected))
    trigger = expected * coverage
    return _clip01((trigger - _numeric(final)) / (trigger - expected * loss_limit_factor))


def _numeric(x):
    """Python numbers and lists as numpy (IEEE division: x / 0 is inf or NaN); arrays as they are."""
    return np.asarray(x, dtype=float) if isinstance(x, (int, float, list, tuple)) else x


def _clip01(x):
    """Clip to [0, 1], NaN kept; the method form stays lazy on dask-backed xarray (np.clip would compute)."""
    return x.clip(0.0, 1.0) if hasattr(x, "clip") else np.clip(x, 0.0, 1.0)


def _nan_unless(condition, value):
    """``value`` where ``condition`` holds, else NaN; keeps xarray dims and dask laziness."""
    if isinstance(value, xr.DataArray) or isinstance(condition, xr.DataArray):
        return xr.where(condition, value, np.nan)
    return np.where(condition, value, np.nan)  # dispatches to dask for dask arrays (NEP 18)


# --------------------------------------------------------------------------- term sheet
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BestOfNormal(_Strict):
    """Normal yield = mean of the best ``best`` of the last ``of`` years (PMFBY: 5 of 7)."""

    method: Literal["best_of"]
    best: int = Field(ge=1, description="number of highest yields averaged [years]")
    of: int = Field(ge=1, le=50, description="history window before the season year [years]")

    @model_validator(mode="after")
    def _best_within_of(self) -> "BestOfNormal":
        if self.best > self.of:
            raise ValueError(f"best must be between 1 and of ({self.of}); got {self.best}")
        return self

    @property
    def window(self) -> int:
        return self.of


class MeanNormal(_Strict):
    """Normal yield = mean of the last ``years`` years."""

    method: Literal["mean"]
    years: int = Field(ge=1, le=50, description="history window before the season year [years]")

    @property
    def window(self) -> int:
        return self.years


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
        wide = _wide(table, "yield", text_keys)

        actual = _column(wide, year)
        spec = params.normal_yield
        slope = None
        if spec.method == "given":
            expected = _column(_wide(table, spec.column, text_keys), year)
            expected = np.where(expected > 0, expected, np.nan)
            normal = expected
            available = np.isfinite(expected).astype(float)
            valid_fraction = available
        else:
            window_years = np.arange(year - spec.window, year)
            history = np.stack([_column(wide, y) for y in window_years], axis=-1) if spec.window else np.empty(
                (len(keys), 0))
            available = _valid(history).sum(axis=-1).astype(float)
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
        data = {
            "payout_rate": payout_rate,
            "flagged": payout_rate.isnull(),
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
    if "season" in table.columns:
        seasons = sorted(pd.unique(table["season"].astype(str)))
        if params.yield_season is None:
            if len(seasons) > 1:
                raise DataQualityError(f"{label}: the yields table has several seasons ({', '.join(seasons)}); "
                                       f"set yield_season to one of them")
        else:
            table = table[table["season"].astype(str) == params.yield_season]
    elif params.yield_season is not None:
        raise DataQualityError(f"{label}: yield_season is {params.yield_season!r} but the yields table "
                               f"has no season column")
    key = table[["district_id", "year"]].astype({"district_id": str})
    dup = key.duplicated(keep=False)
    if dup.any():
        first = key[dup].iloc[0]
        raise DataQualityError(f"{label}: the yields table has {int(dup.sum())} rows sharing a (district, year), "
                               f"e.g. district {first['district_id']!r}, year {int(first['year'])}")
    return table


def _wide(table: pd.DataFrame, column: str, district_keys: list[str]) -> pd.DataFrame:
    """District × year matrix of one column, rows in ``district_keys`` order; absent → NaN."""
    values = pd.to_numeric(table[column], errors="coerce").astype(float)
    frame = pd.DataFrame({"district_id": table["district_id"].astype(str).to_numpy(),
                          "year": table["year"].astype(np.int64).to_numpy(), "value": values.to_numpy()})
    wide = frame.pivot(index="district_id", columns="year", values="value")
    return wide.reindex(index=pd.Index(district_keys, dtype=object))


def _column(wide: pd.DataFrame, year: int) -> np.ndarray:
    """One year's values per district [t/ha]; absent year → NaN; non-positive → NaN."""
    if year not in wide.columns:
        return np.full(len(wide.index), np.nan)
    v = wide[year].to_numpy(dtype=float, na_value=np.nan)
    return np.where(v > 0, v, np.nan)
