"""Basis risk of an index product over a historical simulation, season by season.

Pure functions, no I/O. The index product "forecasts" a loss measured by a reference (the
realised yield shortfall rate of a district, or the adjusted AUTP loss rate) with its
payout. Each season of a district falls in one cell of the 2 × 2 contingency table
(WMO forecast-verification scores)::

                      index pays     index pays nothing
    loss              hit  a         miss  b
    no loss           false alarm c  correct negative d

Beside the event scores: the share of loss left unpaid, the payout balance, the Spearman
rank correlation between payout and loss, and the hedging effectiveness of the cover on a
normalised farm income (semivariance below each district's mean, Vedenov & Barnett 2004).
The counts, scores, ρ and HE are computed by :mod:`panen.engine.research.scores`, the one
implementation the per-farmer comparison and the trigger-design search use too.
Confidence intervals come from a bootstrap over seasons (rows resampled with replacement).

Units: payouts, losses, premiums and revenue are rates on one scale — fractions of the sum
insured (a loss rate of 0.3 is 30 % of the insured value lost). Ratios whose denominator
is zero are NaN (never 0/0 → 0). Missing values (NaN) are never "no payout" or "no loss":
such seasons are left out and ``seasons`` counts those compared.

References
----------
WMO (2017), *Forecast Verification: Issues, Methods and FAQ*, WWRP/WGNE Joint Working
Group on Forecast Verification Research (contingency table, POD, FAR, threat score /
critical success index); Jolliffe, I. T. & Stephenson, D. B. (2012), *Forecast
Verification*, 2nd ed., Wiley, Ch. 3.
Vedenov, D. V. & Barnett, B. J. (2004), Efficiency of weather derivatives as primary crop
insurance instruments, *J. Agric. Resour. Econ.* 29(3), 387–403 (semivariance-based
hedging effectiveness).
Efron, B. & Tibshirani, R. J. (1993), *An Introduction to the Bootstrap*, Chapman & Hall,
Ch. 13 (percentile intervals).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from panen.engine.errors import ConfigError, InputError
from panen.engine.research.scores import contingency, hedging_effectiveness, premium_rates, ratio, spearman

__all__ = [
    "BASIS_RISK_COLUMNS",
    "EVENT_METRICS",
    "BootstrapCI",
    "basis_risk_table",
    "bootstrap_ci",
    "event_metrics",
]

#: Keys of :func:`event_metrics`, in order.
EVENT_METRICS: tuple[str, ...] = ("seasons", "hits", "misses", "false_alarms", "correct_negatives", "pod", "far",
                                  "threat_score", "unpaid_loss_share", "loss_years_unpaid_share", "payout_balance",
                                  "spearman")
#: Columns of :func:`basis_risk_table` after the group keys, in order.
BASIS_RISK_COLUMNS: tuple[str, ...] = (
    "seasons", "hits", "misses", "false_alarms", "correct_negatives",
    "pod", "pod_low", "pod_high", "far", "threat_score",
    "unpaid_loss_share", "loss_years_unpaid_share", "payout_balance",
    "spearman", "spearman_low", "spearman_high",
    "premium_rate", "hedging_effectiveness", "hedging_effectiveness_low", "hedging_effectiveness_high",
)


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------


def event_metrics(payout: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray, *,
                  payout_threshold: float = 0.0, loss_threshold: float = 0.0) -> dict[str, float]:
    """Contingency-table scores and loss-weighted basis-risk measures of paired seasons.

    A season is a *payout event* when ``payout > payout_threshold`` and a *loss event*
    when ``loss > loss_threshold`` (strictly). Pairs with a NaN on either side are left
    out.

    Parameters
    ----------
    payout
        ``(n,)`` index payout per season [fraction of sum insured].
    loss
        ``(n,)`` reference loss per season [fraction of sum insured, same scale].
    payout_threshold, loss_threshold
        Event thresholds [same units].

    Returns
    -------
    dict
        Keys :data:`EVENT_METRICS`:

        * ``seasons``: pairs compared; ``hits`` a, ``misses`` b, ``false_alarms`` c,
          ``correct_negatives`` d;
        * ``pod`` = a / (a + b) (probability of detection), ``far`` = c / (a + c) (false
          alarm ratio), ``threat_score`` = a / (a + b + c);
        * ``unpaid_loss_share`` = Σ loss in seasons without a payout event / Σ loss;
        * ``loss_years_unpaid_share`` = b / (a + b) (= 1 − POD);
        * ``payout_balance`` = Σ payout / Σ loss;
        * ``spearman``: Spearman rank correlation of payout and loss (average ranks for
          ties; :func:`panen.engine.research.scores.spearman`); NaN when either is
          constant or n < 2.

        Ratios with a zero denominator are NaN.

    References
    ----------
    WMO (2017), *Forecast Verification* (POD, FAR, threat score).

    Examples
    --------
    >>> m = event_metrics([0.0, 0.2, 0.5, 0.1], [0.3, 0.4, 0.2, 0.0])
    >>> m["hits"], m["misses"], m["false_alarms"], m["pod"]
    (2, 1, 1, 0.6666666666666666)
    """
    p, x = _paired(payout, loss)
    paid = p > payout_threshold
    t = contingency(paid, x > loss_threshold)
    total_loss = float(x.sum())
    return {
        "seasons": int(p.size), "hits": int(t.hits), "misses": int(t.misses), "false_alarms": int(t.false_alarms),
        "correct_negatives": int(t.correct_negatives), "pod": t.pod, "far": t.far, "threat_score": t.threat_score,
        "unpaid_loss_share": ratio(float(x[~paid].sum()), total_loss),
        "loss_years_unpaid_share": t.loss_years_unpaid_share,
        "payout_balance": ratio(float(p.sum()), total_loss),
        "spearman": spearman(p, x),
    }


# ---------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------


class BootstrapCI(NamedTuple):
    """A statistic on the original sample and its bootstrap percentile interval."""

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray


def bootstrap_ci(func: Callable[..., Any], *arrays: Sequence[float] | np.ndarray, n_boot: int = 2000,
                 alpha: float = 0.05, seed: int = 0, vectorized: bool = False) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a statistic of paired seasons.

    Draws ``n_boot`` resamples of the n rows (seasons) with replacement — the same row
    indices for every array, so pairs stay paired — evaluates ``func`` on each, and returns
    the (α/2, 1 − α/2) empirical quantiles (numpy ``method="linear"``) of the replicates.
    Replicates where the statistic is undefined (NaN, e.g. POD of a resample without a
    loss season) are left out of the quantiles; NaN if all are.

    Deterministic: the row indices come from ``numpy.random.default_rng(seed)`` as one
    ``(n_boot, n)`` draw, so a given seed gives the same interval whether or not
    ``vectorized`` is used.

    Parameters
    ----------
    func
        Statistic. Called as ``func(*arrays)`` for the estimate. If ``vectorized`` is False
        it is called once per resample with arrays of the original shapes; if True it is
        called once with each array of shape ``(n_boot, n, ...)`` and must reduce over
        axis 1 (the last axis for 1-D inputs), returning ``(n_boot,)`` or ``(n_boot, k)``.
        It may return a scalar or a ``(k,)`` vector of statistics.
    *arrays
        Arrays with the seasons on axis 0, all of length n ≥ 1.
    n_boot
        Number of resamples (≥ 1).
    alpha
        Two-sided level: a (1 − α) interval, 0 < α < 1.
    seed
        Seed of the generator.
    vectorized
        Whether ``func`` accepts the stacked resamples, see above.

    Returns
    -------
    BootstrapCI
        ``(estimate, low, high)``: floats for a scalar statistic, else arrays of shape (k,).

    References
    ----------
    Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, Ch. 13 (percentile
    interval).

    Examples
    --------
    >>> ci = bootstrap_ci(np.mean, np.arange(20.0), n_boot=500, seed=1)
    >>> ci.low < ci.estimate < ci.high
    True
    """
    if not arrays:
        raise InputError("bootstrap_ci needs at least one array")
    if int(n_boot) < 1 or not 0.0 < alpha < 1.0:
        raise ConfigError(f"bootstrap_ci: n_boot must be ≥ 1 and 0 < alpha < 1; n_boot={n_boot}, alpha={alpha}")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if n < 1 or any(len(a) != n for a in data):
        raise InputError(f"bootstrap_ci: arrays must share a non-zero length; {[len(a) for a in data]} given")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    estimate = np.asarray(func(*data), dtype=np.float64)
    if vectorized:
        stats = np.asarray(func(*(a[idx] for a in data)), dtype=np.float64)
    else:
        stats = np.stack([np.asarray(func(*(a[i] for a in data)), dtype=np.float64) for i in idx])
    if stats.shape[:1] != (int(n_boot),) or stats.shape[1:] != estimate.shape:
        raise InputError(f"bootstrap_ci: the statistic has shape {estimate.shape} on the sample but "
                         f"{stats.shape[1:]} per resample")
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    if np.isnan(stats).any():
        with warnings.catch_warnings():  # all-NaN replicates give a NaN bound, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(stats, q, axis=0)
    else:
        low, high = np.quantile(stats, q, axis=0)
    if estimate.ndim == 0:
        return BootstrapCI(float(estimate), float(low), float(high))
    return BootstrapCI(estimate, low, high)


# ---------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------


def basis_risk_table(sim: pd.DataFrame, losses: pd.DataFrame, *, by: Iterable[str] = ("product_id", "district_id"),
                     n_boot: int = 1000, alpha: float = 0.05, seed: int = 0, payout_threshold: float = 0.0,
                     loss_threshold: float = 0.0, premium: float | str | None = None,
                     loadings: tuple[float, float] = (0.0, 0.0), revenue_column: str | None = None, rate_column: str = "payout_rate",
                     loss_column: str = "loss") -> pd.DataFrame:
    """Basis-risk metrics with bootstrap intervals per group of a historical simulation.

    ``sim`` (``district_id, season, payout_rate`` + the ``by`` keys, e.g. ``product_id``)
    is inner-joined with ``losses`` (``district_id, season, loss``) on
    ``(district_id, season)``: only seasons present in both, with a finite payout and loss
    (and revenue, premium), are compared; ``seasons`` counts them.

    Per group: every :func:`event_metrics` value, and the hedging effectiveness
    (:func:`panen.engine.research.scores.hedging_effectiveness`: semivariance below each
    district's own mean uninsured income, pooled over the group's district-seasons) of the
    cover on a normalised income:

    * revenue: ``revenue_column`` if given (a column of ``sim`` or ``losses``, on the same
      scale as the payout rate), else **revenue = 1 − loss** (income as a fraction of the
      insured value, so a loss rate of 0.3 leaves 0.7);
    * premium: ``None`` → each district's burn cost over its compared seasons, loaded by
      ``loadings`` (:func:`panen.engine.research.scores.premium_rates`; with the default
      ``(0, 0)`` the actuarially fair premium: HE then measures risk reduction with no
      expected subsidy or charge) — the premium the trigger-design search uses, so both
      report the same HE for the same term sheet; a float → that rate for every season;
      a str → a premium-rate column of ``sim``. The premium is fixed per season;
      resamples do not re-price it.

    Percentile bootstrap intervals (:func:`bootstrap_ci`, rows of the group resampled with
    replacement, the same ``seed`` for every group) are given for POD, Spearman and HE.
    When ``by`` pools districts (e.g. ``("product_id",)``), the rows resampled are
    district-seasons, treated as independent; spatially correlated districts make the
    true interval wider than this one. HE is a ratio of semivariances: a resample with
    little downside in the uninsured income gives an extreme value, so on short histories
    its interval can be very wide (and very asymmetric).

    Parameters
    ----------
    sim
        Simulation table; ``rate_column`` [fraction of sum insured]. Not modified.
    losses
        Loss reference; ``loss_column`` [fraction of sum insured]; one row per
        ``(district_id, season)``. Not modified.
    by
        Group keys (columns of the joined table); ``()`` for one group.
    n_boot, alpha, seed
        Bootstrap resamples, two-sided level, seed.
    payout_threshold, loss_threshold
        Event thresholds of :func:`event_metrics`.
    premium, revenue_column
        See above.
    loadings
        ``(expense_loading, profit_loading)`` [fraction of the pure rate] of the burn-cost
        premium (``premium=None`` only).
    rate_column, loss_column
        Column names.

    Returns
    -------
    pandas.DataFrame
        One row per group with at least one compared season: the ``by`` columns then
        :data:`BASIS_RISK_COLUMNS`, sorted by the keys.

    Raises
    ------
    InputError
        A missing column, or a duplicate ``(district_id, season)`` in ``losses``.

    References
    ----------
    WMO (2017), *Forecast Verification*; Vedenov & Barnett (2004); Efron & Tibshirani
    (1993).
    """
    keys = list(by)
    join = ["district_id", "season"]
    premium_column = premium if isinstance(premium, str) else None
    if premium is not None and premium_column is None and not (np.isfinite(premium) and premium >= 0):
        raise ConfigError(f"basis_risk_table: premium must be a finite rate ≥ 0; {premium!r} given")
    if len(loadings) != 2:
        raise ConfigError(f"basis_risk_table: loadings must be (expense_loading, profit_loading); {loadings!r} given")
    expense, profit = (float(v) for v in loadings)
    if premium is not None and (expense, profit) != (0.0, 0.0):
        raise ConfigError("basis_risk_table: loadings apply to the burn-cost premium (premium=None) only")
    _require(sim, [*join, rate_column] + ([premium_column] if premium_column else []), "simulation table")
    _require(losses, [*join, loss_column], "loss reference")
    if revenue_column is not None and revenue_column not in sim.columns:
        _require(losses, [revenue_column], "loss reference (revenue)")
    others = [k for k in keys if k not in join]
    absent = [k for k in others if k not in sim.columns and k not in losses.columns]
    if absent:
        raise InputError(f"group key(s) {', '.join(absent)} are in neither the simulation nor the loss table")
    sim_take = [k for k in others if k in sim.columns]
    sim_take += [c for c in (premium_column, revenue_column) if c is not None and c in sim.columns]
    loss_take = [k for k in others if k not in sim.columns]
    loss_take += [revenue_column] if revenue_column is not None and revenue_column not in sim.columns else []
    if losses.duplicated(join).any():
        row = int(np.argmax(losses.duplicated(join).to_numpy())) + 1
        raise InputError("loss reference has more than one row for a (district_id, season)", row=row)
    left = sim[list(dict.fromkeys([*join, *sim_take, rate_column]))].rename(columns={rate_column: "_payout"})
    right = losses[list(dict.fromkeys([*join, *loss_take, loss_column]))].rename(columns={loss_column: "_loss"})
    frame = left.merge(right, on=join, how="inner")
    if keys and frame[keys].isna().any().any():
        raise InputError(f"group keys ({', '.join(keys)}) must not be missing")
    frame["_payout"] = _numeric(frame["_payout"])
    frame["_loss"] = _numeric(frame["_loss"])
    frame["_revenue"] = 1.0 - frame["_loss"] if revenue_column is None else _numeric(frame[revenue_column])
    if premium_column is not None:
        frame["_premium"] = _numeric(frame[premium_column])
    finite = np.isfinite(frame[["_payout", "_loss", "_revenue"]
                               + (["_premium"] if premium_column else [])].to_numpy(np.float64)).all(axis=1)
    frame = frame[finite]

    rows = []
    groups = frame.groupby(keys, sort=True) if keys else [((), frame)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        p = part["_payout"].to_numpy(np.float64)
        x = part["_loss"].to_numpy(np.float64)
        rev = part["_revenue"].to_numpy(np.float64)
        district = pd.factorize(part["district_id"])[0]
        if premium_column is not None:
            prem = part["_premium"].to_numpy(np.float64)
        elif premium is None:
            prem = premium_rates(p, district, expense_loading=expense, profit_loading=profit)
        else:
            prem = np.full(p.shape, float(premium))
        m = event_metrics(p, x, payout_threshold=payout_threshold, loss_threshold=loss_threshold)
        he = hedging_effectiveness(rev, prem, p, district)

        def stats(p_, x_, rev_, prem_, district_):
            return np.stack([contingency(p_ > payout_threshold, x_ > loss_threshold).pod, spearman(p_, x_),
                             hedging_effectiveness(rev_, prem_, p_, district_)], axis=-1)

        ci = bootstrap_ci(stats, p, x, rev, prem, district, n_boot=n_boot, alpha=alpha, seed=seed,
                          vectorized=True)
        rows.append((*key, *(m[c] for c in EVENT_METRICS[:6]), ci.low[0], ci.high[0], m["far"], m["threat_score"],
                     m["unpaid_loss_share"], m["loss_years_unpaid_share"], m["payout_balance"],
                     m["spearman"], ci.low[1], ci.high[1], float(prem.mean()), he, ci.low[2], ci.high[2]))
    out = pd.DataFrame(rows, columns=[*keys, *BASIS_RISK_COLUMNS])
    counts = ["seasons", "hits", "misses", "false_alarms", "correct_negatives"]
    return out.astype(dict.fromkeys(counts, np.int64))


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _paired(payout: Any, loss: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(payout, dtype=np.float64)
    x = np.asarray(loss, dtype=np.float64)
    if p.shape != x.shape or p.ndim != 1:
        raise InputError(f"payout {p.shape} and loss {x.shape} must be 1-D of equal length")
    ok = np.isfinite(p) & np.isfinite(x)
    return p[ok], x[ok]


def _numeric(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce").astype(np.float64)


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks the column(s) {', '.join(missing)}")
