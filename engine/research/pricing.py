"""Pricing of index products from a historical simulation: burn cost, loadings, subsidy
split, credibility and the tail of the portfolio payout.

Pure functions on tidy tables, no I/O. The input is the output of a backtest: one row per
district, product and season with the simulated payout rate::

    district_id, product_id, season [int year], payout_rate [fraction of sum insured, 0..1]
    (+ optional exposure [Rp or ha], index_value)

Missing data is never a zero payout: a NaN ``payout_rate`` is a season that could not be
assessed; it is left out of every statistic here and counted (``missing``), and a portfolio
season with a missing district has an unknown total (``<NA>``), not a smaller one.

The formulas (references below):

* burn cost (pure premium rate) = mean over historical seasons of the payout rate;
* gross rate = pure × (1 + expense loading + profit loading) (+ an optional risk load);
* Bühlmann and Bühlmann–Straub credibility between a district's own experience and the
  product's portfolio;
* empirical 1-in-N year portfolio payouts (return periods, probable maximum loss).

References
----------
Bühlmann, H. & Gisler, A. (2005). *A Course in Credibility Theory and its Applications*.
Springer. Ch. 3 (Bühlmann model), Ch. 4 (Bühlmann–Straub model).
Klugman, S. A., Panjer, H. H. & Willmot, G. E. (2012). *Loss Models: From Data to
Decisions*, 4th ed. Wiley. Ch. 17–19 (credibility, empirical Bayes estimation).
World Bank (2011). *Weather Index Insurance for Agriculture: Guidance for Development
Practitioners*. Agriculture and Rural Development Discussion Paper 50 (burn cost, loadings).
Hyndman, R. J. & Fan, Y. (1996). Sample quantiles in statistical packages. *The American
Statistician* 50(4), 361–365 (quantile definitions 6 "Weibull" and 7 "linear").
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from panen.engine.errors import ConfigError, DataQualityError, InputError
from panen.engine.maths.premium import split_subsidy
from panen.engine.maths.terms import round_rupiah

__all__ = [
    "PremiumSplit",
    "buhlmann",
    "buhlmann_straub",
    "burn_cost",
    "detrend_linear",
    "gross_premium_rate",
    "portfolio_payouts",
    "premium_split",
    "season_portfolio",
    "probable_maximum_loss",
    "return_period_losses",
]

#: Columns of :func:`burn_cost` after the group keys, in order.
BURN_COST_COLUMNS: tuple[str, ...] = ("seasons", "missing", "burn_cost", "std", "standard_error", "frequency",
                                      "max_rate")
#: Columns of :func:`buhlmann` after the group keys and ``district_id``, in order.
BUHLMANN_COLUMNS: tuple[str, ...] = ("seasons", "district_mean", "portfolio_mean", "s2", "a", "k", "Z",
                                     "credibility_rate")
#: Columns of :func:`buhlmann_straub` after the group keys and ``district_id``, in order.
BUHLMANN_STRAUB_COLUMNS: tuple[str, ...] = ("seasons", "exposure", "district_mean", "portfolio_mean", "s2", "a",
                                            "k", "Z", "credibility_rate")

_RETURN_PERIOD_METHODS = ("weibull", "linear")


# ---------------------------------------------------------------------------------------
# burn cost
# ---------------------------------------------------------------------------------------


def detrend_linear(values: Sequence[float] | np.ndarray, seasons: Sequence[int] | np.ndarray, *,
                   to_season: float | None = None) -> np.ndarray:
    """Remove a linear trend over seasons, re-centred at the latest (or a given) season.

    Fits ``y = α + β t`` by ordinary least squares on the finite values and returns
    ``y_t − β (t − t_ref)``: each season's value as if it had happened under the trend level
    of ``t_ref`` (the residual plus the fitted value at ``t_ref``). NaN stays NaN.

    Use it on an *index* history (``index_value``: yields, rainfall totals) before a payout
    curve is applied — the usual trend adjustment of an area-yield history — or on payout
    rates, as :func:`burn_cost` does with ``detrend=True``.

    Parameters
    ----------
    values
        ``(n,)`` series [any unit]; NaN for missing seasons.
    seasons
        ``(n,)`` season of each value [year]. Repeated seasons are allowed (pooled rows).
    to_season
        Season the history is re-centred at [year]; default the latest of ``seasons``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 detrended values [same unit as ``values``].

    Raises
    ------
    DataQualityError
        Fewer than three distinct seasons with a finite value (a trend through two points
        leaves no residual variation; through one it is undefined).

    Examples
    --------
    >>> detrend_linear([1.0, 2.0, 3.0, 4.0], [2001, 2002, 2003, 2004]).tolist()
    [4.0, 4.0, 4.0, 4.0]
    """
    y = np.asarray(values, dtype=np.float64)
    t = np.asarray(seasons, dtype=np.float64)
    if y.shape != t.shape or y.ndim != 1:
        raise InputError(f"detrend_linear: values {y.shape} and seasons {t.shape} must be 1-D of equal length")
    ok = np.isfinite(y)
    if np.unique(t[ok]).size < 3:
        raise DataQualityError("a linear trend needs at least three distinct seasons with a value; "
                               f"{np.unique(t[ok]).size} given")
    tc = t[ok] - t[ok].mean()
    beta = float(np.sum(tc * (y[ok] - y[ok].mean())) / np.sum(tc * tc))
    ref = float(t.max()) if to_season is None else float(to_season)
    return y - beta * (t - ref)


def burn_cost(rates: pd.DataFrame, *, by: Iterable[str] = ("product_id", "district_id"), detrend: bool = False,
              rate_column: str = "payout_rate", season_column: str = "season") -> pd.DataFrame:
    """Burn cost (pure premium rate) and its sampling error per group of the history.

    Per group of rows (default: one product in one district):

    * ``seasons`` n: rows with a payout rate (seasons; district-seasons when ``by`` pools
      districts); ``missing``: rows whose rate is NaN (left out of everything);
    * ``burn_cost`` = mean payout rate [fraction of sum insured] — the pure premium rate;
    * ``std``: sample standard deviation (ddof = 1) [fraction]; NaN when n < 2;
    * ``standard_error`` = std / √n [fraction]: the standard error of the burn cost;
    * ``frequency`` = share of seasons with a payout rate > 0 [fraction];
    * ``max_rate``: largest payout rate [fraction].

    Parameters
    ----------
    rates
        Tidy table with ``season_column``, ``rate_column`` [fraction 0..1, NaN = missing]
        and the ``by`` columns. Not modified.
    by
        Group keys; ``()`` for one group over all rows.
    detrend
        If True, the **payout rates** of each group are detrended before the statistics:
        a linear trend of the rate over seasons is fitted by least squares and removed,
        re-centred at the group's latest season (:func:`detrend_linear`), and the result is
        clipped to [0, 1]. The rate history is all this function sees; a trend in the
        underlying *index* (yield technology, rainfall) is better removed from
        ``index_value`` with :func:`detrend_linear` before the payout curve is applied,
        because a trend removed from rates is distorted by the curve's kinks and by the
        clipping (which can move the mean). Needs ≥ 3 distinct seasons per group.
    rate_column, season_column
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns then :data:`BURN_COST_COLUMNS`, sorted by
        the keys.

    Raises
    ------
    InputError
        A column is missing, or a payout rate lies outside [0, 1] (row and column named).
    DataQualityError
        ``detrend=True`` and a group has fewer than three distinct seasons.

    References
    ----------
    World Bank (2011), *Weather Index Insurance for Agriculture*, §"Pricing": burn analysis
    (historical burn cost) as the pure premium; IBLI pricing notes (ILRI).

    Examples
    --------
    >>> t = pd.DataFrame({"season": [2001, 2002, 2003, 2004], "payout_rate": [0.0, 0.1, 0.0, 0.3]})
    >>> burn_cost(t, by=())[["seasons", "burn_cost", "frequency"]].iloc[0].tolist()
    [4.0, 0.1, 0.5]
    """
    keys = list(by)
    _require_columns(rates, [*keys, season_column, rate_column], "payout-rate table")
    rate = _checked_rates(rates, rate_column)
    frame = rates[[*keys, season_column]].copy()
    frame["_rate"] = rate
    rows = []
    for key, part in _groups(frame, keys):
        r = part["_rate"].to_numpy(np.float64)
        if detrend:
            try:
                r = np.clip(detrend_linear(r, part[season_column].to_numpy(np.float64)), 0.0, 1.0)
            except DataQualityError as exc:
                raise DataQualityError(f"burn cost of {_describe(keys, key)}: {exc}") from None
        ok = np.isfinite(r)
        x = r[ok]
        n = x.size
        std = float(np.std(x, ddof=1)) if n >= 2 else np.nan
        rows.append((*key, n, int((~ok).sum()),
                     float(x.mean()) if n else np.nan, std,
                     std / np.sqrt(n) if n >= 2 else np.nan,
                     float((x > 0).mean()) if n else np.nan,
                     float(x.max()) if n else np.nan))
    out = pd.DataFrame(rows, columns=[*keys, *BURN_COST_COLUMNS])
    return out.astype({"seasons": np.int64, "missing": np.int64})


# ---------------------------------------------------------------------------------------
# loadings and subsidy
# ---------------------------------------------------------------------------------------


def gross_premium_rate(pure: float | np.ndarray | pd.Series, *, expense_loading: float, profit_loading: float,
                       risk_load: Mapping[str, Any] | None = None,
                       history: np.ndarray | pd.DataFrame | Sequence[float] | None = None
                       ) -> float | np.ndarray | pd.Series:
    """Gross premium rate from the pure premium rate and proportional loadings.

    ``gross = pure × (1 + expense_loading + profit_loading) + risk load``, where the
    optional risk load (added once, not itself loaded) is

    * ``{"kind": "std", "factor": k}`` → ``k × sd(history)`` (ddof = 1), a
      standard-deviation principle load;
    * ``{"kind": "tail", "quantile": q, "factor": k}`` → ``k × max(VaR_q − mean, 0)``,
      VaR_q the empirical q-quantile of ``history`` (numpy ``method="linear"``) and
      ``mean`` the mean of ``history``; floored at 0 because with rare large payouts the
      quantile can sit below the mean.

    Parameters
    ----------
    pure
        Pure premium rate(s) (burn cost) [fraction of sum insured], ≥ 0; NaN propagates.
    expense_loading, profit_loading
        Proportional loadings [fraction of the pure rate], ≥ 0 (25 % → 0.25).
    risk_load
        ``None`` or one of the mappings above; unknown keys are errors.
    history
        Payout-rate history the risk load is measured on [fraction]: ``(n,)`` for a scalar
        ``pure``, else ``pure.shape + (n,)`` (seasons on the last axis; a DataFrame is one
        row per entry of ``pure``). NaN seasons are ignored. Required with ``risk_load``.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        Gross premium rate(s) [fraction of sum insured], same shape (and index) as ``pure``.

    Raises
    ------
    ConfigError
        A negative loading or factor, a quantile outside (0, 1), an unknown ``kind`` or
        key, or a risk load without ``history``.

    References
    ----------
    World Bank (2011), *Weather Index Insurance for Agriculture*, §"Pricing" (pure
    premium plus administrative and profit loadings, risk load from the standard deviation
    or a tail quantile of the payout distribution); Mude, A. et al. (2012), IBLI pricing
    (ILRI).

    Examples
    --------
    The seed's example: 25 % expenses and 10 % profit on a 0.4 % pure rate.

    >>> round(gross_premium_rate(0.004, expense_loading=0.25, profit_loading=0.10), 10)
    0.0054
    """
    _check_loading("expense_loading", expense_loading)
    _check_loading("profit_loading", profit_loading)
    index = pure.index if isinstance(pure, pd.Series) else None
    p = np.asarray(pure, dtype=np.float64)
    if np.any(p[np.isfinite(p)] < 0):
        raise ConfigError("gross_premium_rate: pure premium rates must be ≥ 0")
    gross = p * (1.0 + expense_loading + profit_loading)
    if risk_load is not None:
        gross = gross + _risk_load(risk_load, history, p.shape)
    if index is not None:
        return pd.Series(gross, index=index, name="gross_rate")
    return float(gross) if gross.ndim == 0 else gross


class PremiumSplit(NamedTuple):
    """Premium and its split between the government subsidy and the farmer [Rp, integer]."""

    premium: int | np.ndarray
    subsidy: int | np.ndarray
    farmer: int | np.ndarray


def premium_split(gross_rate: float | np.ndarray, sum_insured: float | np.ndarray,
                  subsidy_share: float = 0.8) -> PremiumSplit:
    """Premium in whole rupiah and its split into government subsidy and farmer share.

    ``premium = round(gross_rate × sum_insured)``; ``subsidy = round(premium ×
    subsidy_share)``; ``farmer = premium − subsidy``. Rounding is half up
    (:func:`panen.engine.maths.terms.round_rupiah`), once per amount, the subsidy by
    :func:`panen.engine.maths.premium.split_subsidy`; the **farmer share absorbs
    the rounding** (it is the remainder), so ``subsidy + farmer == premium`` exactly.

    Parameters
    ----------
    gross_rate
        Gross premium rate(s) [fraction of sum insured], ≥ 0.
    sum_insured
        Sum(s) insured [Rp], ≥ 0; broadcast against ``gross_rate``.
    subsidy_share
        Government share of the premium [fraction, 0..1]; AUTP 0.8.

    Returns
    -------
    PremiumSplit
        ``(premium, subsidy, farmer)`` [Rp]: Python ints for scalar inputs, else int64
        arrays.

    References
    ----------
    AUTP: Kepmentan / Permentan No. 40/2015 on agricultural insurance facilitation —
    premium 3 % of Rp 6,000,000/ha = Rp 180,000, of which the government pays 80 %
    (Rp 144,000) and the farmer 20 % (Rp 36,000).

    Examples
    --------
    >>> premium_split(0.03, 6_000_000)
    PremiumSplit(premium=180000, subsidy=144000, farmer=36000)
    """
    if not 0.0 <= subsidy_share <= 1.0:
        raise ConfigError(f"premium_split: subsidy_share must lie in [0, 1]; {subsidy_share} given")
    rate = np.asarray(gross_rate, dtype=np.float64)
    si = np.asarray(sum_insured, dtype=np.float64)
    if not (np.isfinite(rate).all() and np.isfinite(si).all()) or (rate < 0).any() or (si < 0).any():
        raise InputError("premium_split: gross rates and sums insured must be finite and ≥ 0")
    premium = round_rupiah(rate * si)
    subsidy, farmer = split_subsidy(premium, subsidy_share)  # the one subsidy rule (maths.premium)
    if np.ndim(premium) == 0:
        return PremiumSplit(int(premium), int(subsidy), int(farmer))
    return PremiumSplit(premium, subsidy, farmer)


# ---------------------------------------------------------------------------------------
# credibility
# ---------------------------------------------------------------------------------------


def buhlmann(rates: pd.DataFrame, *, by: Iterable[str] = ("product_id",), district_column: str = "district_id",
             rate_column: str = "payout_rate") -> pd.DataFrame:
    """Bühlmann credibility rates of each district within its product's portfolio.

    Per group (default: a product) of r districts with n seasons each (NaN rates dropped;
    every district must then have the same n — for unequal n use :func:`buhlmann_straub`
    with unit weights):

    * X̄_i district mean; X̄ portfolio mean (mean of the X̄_i = overall mean);
    * ``s2`` = s² = mean of the within-district variances (ddof = 1) — expected process
      variance;
    * ``a`` = variance of the district means (ddof = 1) − s² / n, floored at 0 — variance
      of the hypothetical means;
    * ``k`` = s² / a (``inf`` when a = 0); ``Z`` = n / (n + k) (0 when a = 0, 1 when
      s² = 0 < a);
    * ``credibility_rate`` = Z × X̄_i + (1 − Z) × X̄ [fraction of sum insured].

    Parameters
    ----------
    rates
        Tidy table with ``district_column``, ``rate_column`` [fraction] and the ``by``
        columns; one row per district and season. Not modified.
    by
        Keys of the portfolio the districts share; ``()`` for one portfolio.

    Returns
    -------
    pandas.DataFrame
        One row per group and district: the ``by`` columns, ``district_id`` (named
        ``district_column``) and :data:`BUHLMANN_COLUMNS`.

    Raises
    ------
    InputError
        A column is missing or a rate lies outside [0, 1].
    DataQualityError
        Fewer than two districts or two seasons, or districts with different numbers of
        seasons.

    References
    ----------
    Bühlmann & Gisler (2005), *A Course in Credibility Theory*, §3.2 and §4.8 (estimators
    of σ² and τ²); Klugman, Panjer & Willmot, *Loss Models*, §19.2 (nonparametric
    empirical Bayes, Bühlmann model).
    """
    keys = list(by)
    _require_columns(rates, [*keys, district_column, rate_column], "payout-rate table")
    frame = rates[[*keys, district_column]].copy()
    frame["_rate"] = _checked_rates(rates, rate_column)
    frame = frame[np.isfinite(frame["_rate"].to_numpy(np.float64))]
    parts = []
    for key, part in _groups(frame, keys):
        stats = part.groupby(district_column, sort=True)["_rate"].agg(["size", "mean", "var"])
        what = _describe(keys, key)
        if len(stats) < 2:
            raise DataQualityError(f"Bühlmann credibility of {what} needs at least two districts; {len(stats)} given")
        n_values = stats["size"].unique()
        if n_values.size != 1:
            raise DataQualityError(f"Bühlmann credibility of {what} needs the same number of seasons in every "
                                   f"district ({sorted(n_values.tolist())} found); use buhlmann_straub with unit "
                                   "weights for unequal histories")
        n = int(n_values[0])
        if n < 2:
            raise DataQualityError(f"Bühlmann credibility of {what} needs at least two seasons per district")
        means = stats["mean"].to_numpy(np.float64)
        s2 = float(stats["var"].mean())
        a = max(float(np.var(means, ddof=1)) - s2 / n, 0.0)
        k, z = _credibility_factor(s2, a, np.full(means.shape, float(n)))
        collective = float(means.mean())
        out = pd.DataFrame({district_column: stats.index.to_numpy(), "seasons": n, "district_mean": means,
                            "portfolio_mean": collective, "s2": s2, "a": a, "k": k, "Z": z,
                            "credibility_rate": z * means + (1.0 - z) * collective})
        parts.append(_with_keys(out, keys, key))
    return _concat(parts, [*keys, district_column, *BUHLMANN_COLUMNS])


def buhlmann_straub(rates: pd.DataFrame, weight_column: str = "exposure", *, by: Iterable[str] = ("product_id",),
                    district_column: str = "district_id", rate_column: str = "payout_rate",
                    collective: str = "exposure") -> pd.DataFrame:
    """Bühlmann–Straub credibility rates with exposure weights and unequal histories.

    Per group (default: a product) of r districts i with seasons j, rates X_ij and
    weights m_ij > 0 (rows with a NaN rate dropped); m_i = Σ_j m_ij, m = Σ_i m_i:

    * X̄_i = Σ_j m_ij X_ij / m_i (``district_mean``); X̄ = Σ_i m_i X̄_i / m;
    * ŝ² = Σ_i Σ_j m_ij (X_ij − X̄_i)² / Σ_i (n_i − 1) (``s2``);
    * â = (Σ_i m_i (X̄_i − X̄)² − ŝ² (r − 1)) / (m − Σ_i m_i² / m), floored at 0 (``a``);
    * ``k`` = ŝ² / â (``inf`` when â = 0); Z_i = m_i / (m_i + k) (0 when â = 0, 1 when
      ŝ² = 0 < â);
    * ``credibility_rate`` = Z_i X̄_i + (1 − Z_i) × collective, where the collective
      (``portfolio_mean``) is X̄ (``collective="exposure"``) or the
      credibility-weighted mean Σ Z_i X̄_i / Σ Z_i (``collective="credibility"``,
      Bühlmann & Gisler Thm 4.4; falls back to X̄ when every Z_i = 0).

    Parameters
    ----------
    rates
        Tidy table with ``district_column``, ``rate_column`` [fraction], ``weight_column``
        and the ``by`` columns. Not modified.
    weight_column
        Exposure weights m_ij [Rp sum insured, or ha], finite and > 0.
    by
        Keys of the portfolio the districts share; ``()`` for one portfolio.
    collective
        ``"exposure"`` or ``"credibility"``, see above.

    Returns
    -------
    pandas.DataFrame
        One row per group and district: the ``by`` columns, ``district_id`` (named
        ``district_column``) and :data:`BUHLMANN_STRAUB_COLUMNS` (``seasons`` n_i,
        ``exposure`` m_i).

    Raises
    ------
    InputError
        A column is missing, a rate lies outside [0, 1], or a weight is not finite and > 0.
    DataQualityError
        Fewer than two districts, or no district with two seasons (Σ (n_i − 1) = 0).

    References
    ----------
    Bühlmann & Gisler (2005), *A Course in Credibility Theory*, §4.2 (model), §4.8
    (estimators of σ² and τ², with the truncation at 0); Klugman, Panjer & Willmot, *Loss
    Models*, §19.2 (nonparametric estimation, Bühlmann–Straub model).
    """
    if collective not in ("exposure", "credibility"):
        raise ConfigError(f"buhlmann_straub: collective must be 'exposure' or 'credibility'; {collective!r} given")
    keys = list(by)
    _require_columns(rates, [*keys, district_column, rate_column, weight_column], "payout-rate table")
    frame = rates[[*keys, district_column]].copy()
    frame["_rate"] = _checked_rates(rates, rate_column)
    weight = pd.to_numeric(rates[weight_column], errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(weight) & (weight > 0))
    if bad.any():
        raise InputError(f"weights must be finite and > 0; {weight_column}={rates[weight_column].iloc[bad.argmax()]!r}",
                         row=int(bad.argmax()) + 1, column=weight_column)
    frame["_m"] = weight
    frame = frame[np.isfinite(frame["_rate"].to_numpy(np.float64))]
    parts = []
    for key, part in _groups(frame, keys):
        what = _describe(keys, key)
        codes, districts = pd.factorize(part[district_column], sort=True)
        r = districts.size
        if r < 2:
            raise DataQualityError(f"Bühlmann–Straub credibility of {what} needs at least two districts; {r} given")
        x = part["_rate"].to_numpy(np.float64)
        w = part["_m"].to_numpy(np.float64)
        n_i = np.bincount(codes, minlength=r)
        if int((n_i - 1).sum()) < 1:
            raise DataQualityError(f"Bühlmann–Straub credibility of {what} needs a district with two seasons")
        m_i = np.bincount(codes, weights=w, minlength=r)
        m = m_i.sum()
        xbar_i = np.bincount(codes, weights=w * x, minlength=r) / m_i
        xbar = float((m_i * xbar_i).sum() / m)
        s2 = float(np.bincount(codes, weights=w * (x - xbar_i[codes]) ** 2, minlength=r).sum() / (n_i - 1).sum())
        a = (float((m_i * (xbar_i - xbar) ** 2).sum()) - s2 * (r - 1)) / (m - float((m_i**2).sum()) / m)
        a = max(a, 0.0)
        k, z = _credibility_factor(s2, a, m_i)
        centre = xbar
        if collective == "credibility" and z.sum() > 0:
            centre = float((z * xbar_i).sum() / z.sum())
        out = pd.DataFrame({district_column: districts.to_numpy(), "seasons": n_i.astype(np.int64), "exposure": m_i,
                            "district_mean": xbar_i, "portfolio_mean": centre, "s2": s2, "a": a, "k": k, "Z": z,
                            "credibility_rate": z * xbar_i + (1.0 - z) * centre})
        parts.append(_with_keys(out, keys, key))
    return _concat(parts, [*keys, district_column, *BUHLMANN_STRAUB_COLUMNS])


# ---------------------------------------------------------------------------------------
# portfolio tail
# ---------------------------------------------------------------------------------------


#: Columns of :func:`season_portfolio` after the season and the ``by`` keys, in order.
SEASON_PORTFOLIO_COLUMNS: tuple[str, ...] = ("districts", "districts_triggered", "districts_flagged", "exposure",
                                             "exposure_assessed", "payout", "payout_rate", "complete")


def season_portfolio(rates: pd.DataFrame, exposure: str | pd.Series | pd.DataFrame, *,
                     by: Iterable[str] = (), value_column: str = "sum_insured", rate_column: str = "payout_rate",
                     season_column: str = "season") -> pd.DataFrame:
    """The portfolio payout of every season [Rp], with the one rule for missing data.

    The portfolio's units are the distinct (district_id[, product_id]) pairs of ``rates``,
    each with its sum insured. In a season, a unit is *assessed* when it has a finite
    payout rate (a NaN rate, or no row for a season its group has, is not assessed — never
    a zero payout). Then, per season (and ``by`` group):

    * ``payout`` = Σ over the assessed units of round(payout rate × sum insured), each unit
      rounded to whole rupiah (half up) before the sum, as in the ledger;
    * ``complete`` = every unit with a sum insured > 0 was assessed (and there is one): the
      total is the season's portfolio payout. Otherwise ``payout`` only adds up the
      assessed units — a lower bound, reported with ``complete = False``, and never used
      as the season's total (:func:`portfolio_payouts`, return periods). A unit with no sum
      insured pays nothing whatever its index, so it never makes a season incomplete;
    * ``districts`` units, ``districts_triggered`` assessed with a rate > 0,
      ``districts_flagged`` not assessed; ``exposure`` = Σ sum insured [Rp],
      ``exposure_assessed`` = Σ sum insured of the assessed units [Rp];
      ``payout_rate`` = payout / exposure_assessed [fraction] (NaN when nothing assessed).

    Parameters
    ----------
    rates
        Tidy table with ``district_id``, ``season_column``, ``rate_column`` [fraction, 0..1;
        NaN = not assessed] and optionally ``product_id`` and the ``by`` keys. Not modified.
    exposure
        Sums insured [Rp], one of: the name of a column of ``rates``; a Series indexed by
        ``district_id``; a DataFrame with ``district_id`` (and ``product_id`` to price per
        product) and ``value_column``. Every unit of ``rates`` needs an exposure and every
        exposure a unit of ``rates``.
    by
        Keys of ``rates`` (e.g. ``("product_id",)``) giving one portfolio each; ``()``: one.
    value_column
        Column of an exposure DataFrame holding the sum insured [Rp].

    Returns
    -------
    pandas.DataFrame
        ``season_column``, the ``by`` keys, then :data:`SEASON_PORTFOLIO_COLUMNS`; one row
        per season (of each group), sorted. ``payout`` is int64 [Rp].

    Raises
    ------
    InputError
        Missing columns, rates outside [0, 1], sums insured not finite and ≥ 0, duplicate
        exposure keys, duplicate (unit, season) rows, or units without exposure (or
        exposure without rates).

    Examples
    --------
    >>> t = pd.DataFrame({"district_id": ["A", "B", "A", "B"], "season": [2001, 2001, 2002, 2002],
    ...                   "payout_rate": [0.1, 0.25, 0.5, np.nan]})
    >>> out = season_portfolio(t, pd.Series({"A": 1000.0, "B": 2000.0}))
    >>> out[["season", "payout", "exposure_assessed", "complete"]].values.tolist()
    [[2001, 600, 3000.0, True], [2002, 500, 1000.0, False]]
    """
    keys = list(by)
    frame, unit = _portfolio_units(rates, exposure, keys, value_column=value_column, rate_column=rate_column,
                                   season_column=season_column)
    # every unit of a group in every season its group has: a missing row is a unit not assessed
    attrs = [k for k in keys if k not in unit]
    units = frame[[*unit, *attrs, "_si"]].drop_duplicates(unit)
    seasons = frame[[*keys, season_column]].drop_duplicates()
    grid = units.merge(seasons, on=keys, how="inner") if keys else units.merge(seasons, how="cross")
    full = grid.merge(frame[[*unit, season_column, "_rate"]], on=[*unit, season_column], how="left")
    if full.empty:
        return pd.DataFrame(columns=[season_column, *keys, *SEASON_PORTFOLIO_COLUMNS])
    rate = full["_rate"].to_numpy(np.float64)
    si = full["_si"].to_numpy(np.float64)
    assessed = np.isfinite(rate)
    amount = np.zeros(rate.shape, dtype=np.int64)
    amount[assessed] = round_rupiah(rate[assessed] * si[assessed])
    cells = pd.DataFrame({
        "districts": 1, "districts_triggered": assessed & (np.where(assessed, rate, 0.0) > 0),
        "districts_flagged": ~assessed, "exposure": si, "exposure_assessed": np.where(assessed, si, 0.0),
        "payout": amount, "_blocking": ~assessed & (si > 0), "_insured": si > 0,
    })
    for c in [season_column, *keys]:
        cells[c] = full[c].to_numpy()
    g = cells.groupby([season_column, *keys], sort=True)
    out = g[["districts", "districts_triggered", "districts_flagged", "exposure", "exposure_assessed",
             "payout"]].sum().reset_index()
    out["complete"] = (g["_blocking"].sum().to_numpy() == 0) & (g["_insured"].sum().to_numpy() > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["payout_rate"] = np.where(out["exposure_assessed"] > 0, out["payout"] / out["exposure_assessed"], np.nan)
    for c in ("districts", "districts_triggered", "districts_flagged", "payout"):
        out[c] = out[c].astype(np.int64)
    return out[[season_column, *keys, *SEASON_PORTFOLIO_COLUMNS]]


def portfolio_payouts(rates: pd.DataFrame, exposure: str | pd.Series | pd.DataFrame, *,
                      value_column: str = "sum_insured", rate_column: str = "payout_rate",
                      season_column: str = "season") -> pd.Series:
    """Total portfolio payout per season [Rp]: Σ payout rate × sum insured, complete seasons only.

    The ``payout`` of :func:`season_portfolio` where the season is complete; ``<NA>`` where
    it is not (a unit with a sum insured not assessed — a missing rate, or no row that
    season): the total is unknown, never a smaller number. Parameters as there.

    Returns
    -------
    pandas.Series
        Nullable ``Int64`` payout [Rp] indexed by ``season`` (sorted), named ``payout``.

    Raises
    ------
    InputError
        As :func:`season_portfolio`.
    """
    port = season_portfolio(rates, exposure, value_column=value_column, rate_column=rate_column,
                            season_column=season_column)
    total = pd.Series(port["payout"].to_numpy(np.int64), index=pd.Index(port[season_column].to_numpy(), name="season"),
                      name="payout").astype("Int64")
    total[~port["complete"].to_numpy(bool)] = pd.NA
    return total


def _portfolio_units(rates: pd.DataFrame, exposure: str | pd.Series | pd.DataFrame, keys: list[str], *,
                     value_column: str, rate_column: str, season_column: str) -> tuple[pd.DataFrame, list[str]]:
    """``rates`` with ``_rate`` [fraction] and each unit's sum insured ``_si`` [Rp], checked; the unit
    columns (``district_id`` [, ``product_id``])."""
    _require_columns(rates, ["district_id", season_column, rate_column, *keys], "payout-rate table")
    unit = ["district_id"] + (["product_id"] if "product_id" in rates.columns else [])
    frame = rates[list(dict.fromkeys([*unit, *keys, season_column]))].copy()
    frame["_rate"] = _checked_rates(rates, rate_column)
    if isinstance(exposure, str):
        _require_columns(rates, [exposure], "payout-rate table")
        frame["_si"] = pd.to_numeric(rates[exposure], errors="coerce").to_numpy(np.float64)
        si_name = exposure
    else:
        if isinstance(exposure, pd.Series):
            table = pd.DataFrame({"district_id": exposure.index.to_numpy(), "_si": exposure.to_numpy()})
        else:
            _require_columns(exposure, ["district_id", value_column], "exposure table")
            on = [c for c in unit if c in exposure.columns]
            table = exposure[on + [value_column]].rename(columns={value_column: "_si"})
        on = [c for c in unit if c in table.columns]
        if table.duplicated(on).any():
            raise InputError(f"exposure has duplicate keys ({', '.join(on)})")
        table["_si"] = pd.to_numeric(table["_si"], errors="coerce")
        merged = frame.merge(table, on=on, how="outer", indicator=True)
        no_exposure = merged.loc[merged["_merge"] == "left_only", unit].drop_duplicates()
        no_rates = merged.loc[merged["_merge"] == "right_only", on].drop_duplicates()
        if len(no_exposure):
            raise InputError(f"no sum insured for {len(no_exposure)} unit(s) of the payout-rate table, e.g. "
                             f"{no_exposure.iloc[0].to_dict()}")
        if len(no_rates):
            raise InputError(f"no payout rates for {len(no_rates)} exposure row(s), e.g. {no_rates.iloc[0].to_dict()}")
        frame = merged.drop(columns="_merge")
        si_name = value_column
    si = frame["_si"].to_numpy(np.float64)
    bad = ~(np.isfinite(si) & (si >= 0))
    if bad.any():
        raise InputError("sums insured must be finite and ≥ 0", column=si_name)
    if frame.duplicated([*unit, season_column]).any():
        raise InputError(f"more than one payout rate for a ({', '.join(unit)}, {season_column}) pair")
    spread = frame.groupby(unit, sort=False)[[k for k in keys if k not in unit]].nunique()
    if len(spread.columns) and (spread > 1).any().any():
        raise InputError(f"a ({', '.join(unit)}) unit lies in more than one portfolio ({', '.join(keys)})")
    return frame, unit


def return_period_losses(season_totals: pd.Series | Sequence[float] | np.ndarray,
                         periods: Iterable[float] = (5, 10, 20), *, method: str = "weibull") -> pd.Series:
    """Empirical 1-in-N year portfolio payouts from a history of season totals.

    The 1-in-N year loss is the empirical quantile at non-exceedance probability
    p = 1 − 1/N of the n season totals x_(1) ≤ … ≤ x_(n), interpolated linearly between
    order statistics:

    * ``method="weibull"`` (default): Weibull plotting positions p_k = k / (n + 1)
      (Hyndman & Fan type 6, numpy ``method="weibull"``): the k-th smallest total has
      return period (n + 1) / (n + 1 − k), so the largest of n seasons is a 1-in-(n + 1)
      year loss. Return periods beyond n + 1 cannot be read off the record and are NaN
      (extrapolation needs a fitted distribution).
    * ``method="linear"``: p_k = (k − 1) / (n − 1) (type 7, numpy's default); the largest
      total is reached only at N = ∞.

    Parameters
    ----------
    season_totals
        Portfolio payout per season [Rp] (e.g. :func:`portfolio_payouts`); no missing values.
    periods
        Return periods N [years], each > 1.
    method
        ``"weibull"`` or ``"linear"``, see above.

    Returns
    -------
    pandas.Series
        float64 loss [Rp] indexed by ``return_period``, named ``loss``.

    Raises
    ------
    DataQualityError
        A season total is missing (drop incomplete seasons explicitly first), or none given.
    ConfigError
        A return period ≤ 1 or an unknown method.

    References
    ----------
    Weibull, W. (1939); Makkonen, L. (2006), Plotting positions in extreme value analysis,
    *J. Appl. Meteor. Climatol.* 45, 334–340 (the case for k / (n + 1)); Hyndman & Fan
    (1996); Klugman, Panjer & Willmot, *Loss Models*, Ch. 3 (VaR as a quantile).

    Examples
    --------
    >>> return_period_losses(np.arange(1.0, 10.0), [2, 5]).tolist()
    [5.0, 8.0]
    """
    if method not in _RETURN_PERIOD_METHODS:
        raise ConfigError(f"return period method must be one of {', '.join(_RETURN_PERIOD_METHODS)}; {method!r} given")
    x = _season_totals(season_totals)
    n_periods = np.asarray(list(periods), dtype=np.float64)
    if n_periods.size and not (n_periods > 1).all():
        raise ConfigError("return periods must be > 1 year")
    p = 1.0 - 1.0 / n_periods
    loss = np.quantile(x, p, method=method) if n_periods.size else np.empty(0)
    if method == "weibull":
        loss = np.where(n_periods <= x.size + 1, loss, np.nan)
    return pd.Series(np.asarray(loss, dtype=np.float64), index=pd.Index(n_periods, name="return_period"),
                     name="loss")


def probable_maximum_loss(season_totals: pd.Series | Sequence[float] | np.ndarray, return_period: float, *,
                          method: str = "weibull") -> float:
    """Probable maximum loss: the 1-in-``return_period`` year portfolio payout [Rp].

    The empirical aggregate (season-total) quantile at 1 − 1/N, exactly as
    :func:`return_period_losses` (same ``method``); NaN when N exceeds n + 1 under Weibull
    plotting positions.

    Examples
    --------
    >>> probable_maximum_loss(np.arange(1.0, 10.0), 5)
    8.0
    """
    return float(return_period_losses(season_totals, (return_period,), method=method).iloc[0])


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {', '.join(missing)}")


def _checked_rates(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Payout rates as float64 [0, 1] with NaN for missing; anything else is an InputError."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (raw.notna().to_numpy() & np.isnan(values)) | np.isinf(values) | (values < 0) | (values > 1)
    if bad.any():
        i = int(bad.argmax())
        raise InputError(f"payout rates must lie in [0, 1] (NaN for missing); {raw.iloc[i]!r} given",
                         row=i + 1, column=column)
    return values


def _groups(frame: pd.DataFrame, keys: list[str]):
    """(key tuple, part) per group, sorted by the keys; one group ``()`` without keys."""
    if not keys:
        yield (), frame
        return
    if frame[keys].isna().any().any():
        raise InputError(f"group keys ({', '.join(keys)}) must not be missing")
    for key, part in frame.groupby(keys, sort=True):
        yield (key if isinstance(key, tuple) else (key,)), part


def _describe(keys: list[str], key: tuple) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True)) or "the portfolio"


def _with_keys(frame: pd.DataFrame, keys: list[str], key: tuple) -> pd.DataFrame:
    for name, value in reversed(list(zip(keys, key, strict=True))):
        frame.insert(0, name, value)
    return frame


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def _credibility_factor(s2: float, a: float, volume: np.ndarray) -> tuple[float, np.ndarray]:
    """k = s² / a and Z = volume / (volume + k), with Z = 0 when a = 0 and k = 0 when s² = 0 < a."""
    if a <= 0.0:
        return float("inf"), np.zeros(volume.shape)
    k = s2 / a
    return k, volume / (volume + k)


def _check_loading(name: str, value: float) -> None:
    if not (np.isfinite(value) and value >= 0):
        raise ConfigError(f"gross_premium_rate: {name} must be a finite fraction ≥ 0; {value!r} given")


def _risk_load(spec: Mapping[str, Any], history: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The risk load [fraction of sum insured] of :func:`gross_premium_rate`, shape ``shape``."""
    if not isinstance(spec, Mapping) or spec.get("kind") not in ("std", "tail"):
        raise ConfigError("risk_load must be {'kind': 'std', 'factor': k} or "
                          "{'kind': 'tail', 'quantile': q, 'factor': k}")
    allowed = {"kind", "factor"} | ({"quantile"} if spec["kind"] == "tail" else set())
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"risk_load of kind {spec['kind']!r}: unknown key(s) {', '.join(map(str, unknown))}")
    if "factor" not in spec or not (np.isfinite(spec["factor"]) and spec["factor"] >= 0):
        raise ConfigError("risk_load: factor must be given, finite and ≥ 0")
    if history is None:
        raise ConfigError("risk_load needs the payout-rate history it is measured on (history=...)")
    h = np.asarray(history, dtype=np.float64)
    if h.shape[:-1] != shape or h.shape[-1] < 1:
        raise InputError(f"risk-load history has shape {h.shape}; expected {shape + ('n_seasons',)}")
    factor = float(spec["factor"])
    q = spec.get("quantile")
    if spec["kind"] == "tail" and (q is None or not 0.0 < float(q) < 1.0):
        raise ConfigError("risk_load of kind 'tail': quantile must lie in (0, 1)")
    with warnings.catch_warnings():  # an all-NaN history gives a NaN load, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        if spec["kind"] == "std":
            return factor * np.nanstd(h, axis=-1, ddof=1)
        var_q = np.nanquantile(h, float(q), axis=-1, method="linear")
        return factor * np.maximum(var_q - np.nanmean(h, axis=-1), 0.0)


def _season_totals(season_totals: Any) -> np.ndarray:
    s = pd.Series(season_totals) if not isinstance(season_totals, pd.Series) else season_totals
    if s.isna().any():
        raise DataQualityError(f"{int(s.isna().sum())} season total(s) are missing (incomplete seasons); "
                               "drop them explicitly (e.g. .dropna()) to price on the complete seasons")
    if s.empty:
        raise DataQualityError("no season totals given")
    return s.to_numpy(dtype=np.float64)
