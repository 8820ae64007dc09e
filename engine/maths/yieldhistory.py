"""District yield histories: normal yield, threshold and shortfall, shared by trigger and backtest.

The area-yield trigger (:mod:`panen.triggers.area_yield`) settles a season on these
functions, and the backtest's loss reference (:func:`panen.engine.research.simulation.yield_losses`)
measures the realised loss of every past season with the same ones, so the two can never
disagree on what a district's normal yield or shortfall was. Layers, as in xclim's indices and indicators:

1. *Tables* — :func:`select_season` (the crop season a product or loss reference reads),
   :func:`wide_table` and :func:`year_columns` (district × year matrices of the yields
   table the reader returns, :func:`panen.datasets.yields.read_yields`).
2. *Normal yield* — pure functions reducing a district's yield history to one expected
   yield: the mean of the best ``n`` of the last ``m`` years (:func:`normal_yield_best_of`,
   India's PMFBY) or the mean of the last ``m`` years (:func:`normal_yield_mean`);
   optionally after a linear trend adjustment of the history to the season year
   (:func:`linear_trend_adjust`). Their term-sheet models are :class:`BestOfNormal` and
   :class:`MeanNormal`.
3. *Payout formulas* — :func:`threshold_yield`, :func:`shortfall_rate` (PMFBY, former US
   GRP) and :func:`arpi_payment_factor` (US Area Risk Protection Insurance, 7 CFR 407.9).

Rules (the product's full rules are in :mod:`panen.triggers.area_yield`):

* **Window.** The history of season year ``Y`` is the ``L`` harvest years immediately
  before it, ``Y − L … Y − 1``. The season's own yield is the *actual* yield and never part
  of its normal yield.
* **Missing years are missing, never zero.** A year is *available* when the table has a
  positive yield for it; blank, missing-coded, non-positive and absent years are not. With
  fewer than ``min_years`` available (default ``L``: a complete window) the normal yield is
  NaN. With enough years, ``best_of`` averages the best ``min(best, n)`` of the ``n``
  available years and ``mean`` averages the ``n`` available years.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, model_validator

from panen.engine.errors import DataQualityError

__all__ = [
    "TREND_MIN_POINTS",
    "BestOfNormal",
    "MeanNormal",
    "arpi_payment_factor",
    "linear_trend_adjust",
    "normal_yield_best_of",
    "normal_yield_mean",
    "select_season",
    "shortfall_rate",
    "threshold_yield",
    "wide_table",
    "year_columns",
]

#: Fewest available history points a linear trend is fitted to.
TREND_MIN_POINTS = 3


# --------------------------------------------------------------------------- tables
def select_season(table: pd.DataFrame, yield_season: str | None, *, label: str,
                  setting: str = "yield_season") -> pd.DataFrame:
    """The yields rows of one crop season.

    Parameters
    ----------
    table
        Yields table, ``district_id, year, yield`` (+ ``season``) as
        :func:`panen.datasets.yields.read_yields` returns.
    yield_season
        Value of the ``season`` column to keep; ``None`` when the table holds one season.
    label
        What reads the table, to start error messages (e.g. ``"product 'yield'"``).
    setting
        The key that sets ``yield_season``, as the several-seasons message names it.

    Returns
    -------
    pandas.DataFrame
        The rows of ``yield_season`` (the whole table without a season column, or with
        one season and ``yield_season`` unset).

    Raises
    ------
    DataQualityError
        Several seasons in the table and ``yield_season`` unset, or ``yield_season`` set
        and the table has no season column.
    """
    if "season" in table.columns:
        seasons = sorted(pd.unique(table["season"].astype(str)))
        if yield_season is None:
            if len(seasons) > 1:
                raise DataQualityError(f"{label}: the yields table has several seasons ({', '.join(seasons)}); "
                                       f"set {setting} to one of them")
        else:
            table = table[table["season"].astype(str) == yield_season]
    elif yield_season is not None:
        raise DataQualityError(f"{label}: yield_season is {yield_season!r} but the yields table "
                               f"has no season column")
    return table


def wide_table(table: pd.DataFrame, column: str, district_keys: list[str]) -> pd.DataFrame:
    """District × year matrix of one column, rows in ``district_keys`` order; absent → NaN.

    Parameters
    ----------
    table
        ``district_id, year`` and ``column`` (one row per district and year).
    column
        Column to spread, e.g. ``yield`` [t/ha]; unparsable values become NaN.
    district_keys
        District keys (text) of the rows.

    Returns
    -------
    pandas.DataFrame
        Index ``district_id`` (``district_keys``), one column per year in the table.
    """
    values = pd.to_numeric(table[column], errors="coerce").astype(float)
    frame = pd.DataFrame({"district_id": table["district_id"].astype(str).to_numpy(),
                          "year": table["year"].astype(np.int64).to_numpy(), "value": values.to_numpy()})
    wide = frame.pivot(index="district_id", columns="year", values="value")
    return wide.reindex(index=pd.Index(district_keys, dtype=object))


def year_columns(wide: pd.DataFrame, years: Sequence[int] | np.ndarray) -> np.ndarray:
    """Some years' values per district [t/ha]; absent year → NaN; non-positive → NaN.

    Parameters
    ----------
    wide
        District × year matrix from :func:`wide_table`.
    years
        Years wanted, in the order of the output columns.

    Returns
    -------
    numpy.ndarray
        ``(districts, len(years))`` [t/ha], NaN where unavailable.
    """
    v = wide.reindex(columns=pd.Index(years)).to_numpy(dtype=float, na_value=np.nan)
    return np.where(v > 0, v, np.nan)


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

    Examples
    --------
    >>> float(normal_yield_mean([4.0, float("nan"), 5.0], years=3, min_years=2))
    4.5
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


# --------------------------------------------------------------------------- term-sheet models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BestOfNormal(_Strict):
    """Normal yield = mean of the best ``best`` of the ``of`` years before the season year (PMFBY: 5 of 7)."""

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
        """History window [years]."""
        return self.of


class MeanNormal(_Strict):
    """Normal yield = mean of the available yields of the ``years`` years before the season year."""

    method: Literal["mean"]
    years: int = Field(ge=1, le=50, description="history window before the season year [years]")

    @property
    def window(self) -> int:
        """History window [years]."""
        return self.years
