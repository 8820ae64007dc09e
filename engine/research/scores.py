"""Contingency scores, rank correlation and hedging effectiveness: the one implementation.

The per-farmer comparison with the AUTP adjuster (:mod:`panen.engine.research.compare`), the
basis risk of a backtest (:mod:`panen.engine.research.basis`) and the trigger-design search
(:mod:`panen.engine.research.design`) all score an index product the same way, with the
functions here. They are vectorised: seasons (or farmers) on the last axis, any leading
axes (bootstrap resamples, thousands of design candidates) evaluated at once — or, for
:func:`contingency`, per group code.

**Events.** A unit (a season of a district, a farmer) is a *payout event* when the index
pays and a *loss event* when the reference records a loss; it falls in one cell of the
2 × 2 table::

                      index pays     index pays nothing
    loss              hit  a         miss  b
    no loss           false alarm c  correct negative d

POD = a / (a + b) (probability of detection), FAR = c / (a + c) (false alarm *ratio*),
threat score TS = a / (a + b + c) (critical success index), and the share of loss events
left unpaid b / (a + b) = 1 − POD.

**Rank correlation.** Spearman's ρ between payout and loss: the Pearson correlation of
their ranks, tied values sharing their average rank.

**Hedging effectiveness** (semivariance, Vedenov & Barnett 2004). With uninsured income
Y0 = revenue and insured income Y = revenue − premium + payout, per season s of district
d(s)::

    HE = 1 − Σ_s min(Y_s − μ_d(s), 0)² / Σ_s min(Y0_s − μ_d(s), 0)²

where μ_d is district d's mean uninsured income over its compared seasons: the downside
is measured below each farmer's own expected income, and the sums pool the seasons of
every district compared (for one district this is 1 − SV(Y) / SV(Y0) with
SV(X) = E[min(X − E[Y0], 0)²]). Pooling districts about one common mean would count the
permanent difference between a poorer and a richer district as "downside" that an index
is rewarded or punished for; Vedenov & Barnett measure it farm by farm. The premium is
:func:`premium_rates`: each district's burn cost over its compared seasons, loaded by the
expense and profit loadings — what the district's farmers pay under the pricing of
:func:`panen.engine.research.pricing.gross_premium_rate` — so a cover that replicates each
district's loss exactly at a fair premium (no loadings) reaches HE = 1.

Ratios whose denominator is zero are NaN, never 0 (0/0 is "undefined", not "perfect" or
"useless").

References
----------
WMO (2017), *Forecast Verification: Issues, Methods and FAQ*, WWRP/WGNE Joint Working
Group on Forecast Verification Research (contingency table, POD, FAR, threat score);
Jolliffe, I. T. & Stephenson, D. B. (eds., 2012), *Forecast Verification: A Practitioner's
Guide in Atmospheric Science*, 2nd ed., Wiley, ch. 3.
Spearman, C. (1904), The proof and measurement of association between two things, *Am. J.
Psychol.* 15(1), 72–101.
Vedenov, D. V. & Barnett, B. J. (2004), Efficiency of weather derivatives as primary crop
insurance instruments, *J. Agric. Resour. Econ.* 29(3), 387–403 (semivariance hedging
effectiveness, evaluated per farm).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from panen.engine.errors import InputError

__all__ = [
    "Contingency",
    "average_ranks",
    "contingency",
    "district_means",
    "hedging_effectiveness",
    "premium_rates",
    "ratio",
    "spearman",
]


def ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator`` elementwise, NaN where the denominator is 0 (never 0/0 → 0).

    Returns a float for scalar input, else an array of the broadcast shape.

    >>> ratio(1, 4), ratio(0, 0)
    (0.25, nan)
    """
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den != 0)
    return float(out) if out.ndim == 0 else out


class Contingency(NamedTuple):
    """Counts of the 2 × 2 contingency table and the scores derived from them.

    Attributes
    ----------
    hits, misses, false_alarms, correct_negatives
        a, b, c, d [count]: int64 arrays (0-d for a single table).
    """

    hits: np.ndarray
    misses: np.ndarray
    false_alarms: np.ndarray
    correct_negatives: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """a + b + c + d [count]."""
        return self.hits + self.misses + self.false_alarms + self.correct_negatives

    @property
    def pod(self) -> Any:
        """Probability of detection a / (a + b) [fraction]; NaN without a loss event."""
        return ratio(self.hits, self.hits + self.misses)

    @property
    def far(self) -> Any:
        """False alarm ratio c / (a + c) [fraction]; NaN without a payout event."""
        return ratio(self.false_alarms, self.hits + self.false_alarms)

    @property
    def threat_score(self) -> Any:
        """Threat score (critical success index) a / (a + b + c) [fraction]; NaN without any event."""
        return ratio(self.hits, self.hits + self.misses + self.false_alarms)

    @property
    def loss_years_unpaid_share(self) -> Any:
        """Share of loss events without a payout b / (a + b) = 1 − POD [fraction]; NaN without a loss event."""
        return ratio(self.misses, self.hits + self.misses)


def contingency(paid: Any, lost: Any, *, group: np.ndarray | None = None, n_groups: int | None = None) -> Contingency:
    """The 2 × 2 contingency table of payout events against loss events.

    Parameters
    ----------
    paid, lost
        Boolean arrays (broadcastable to one shape): the index paid / the reference recorded
        a loss. Units on the last axis; leading axes (resamples, design candidates) give
        one table each. Decide NaN before calling: a unit that cannot be judged must be
        left out, never passed as False.
    group
        Optional ``(n,)`` integer codes 0 … ``n_groups`` − 1 of 1-D ``paid`` / ``lost``: one
        table per group instead of per leading index.
    n_groups
        Number of groups (default ``group.max() + 1``).

    Returns
    -------
    Contingency
        Counts of shape ``broadcast(paid, lost).shape[:-1]``, or ``(n_groups,)``.

    Examples
    --------
    >>> t = contingency([True, True, False, False, True], [True, False, True, False, True])
    >>> int(t.hits), int(t.misses), int(t.false_alarms), int(t.correct_negatives), t.pod
    (2, 1, 1, 1, 0.6666666666666666)
    """
    p = np.asarray(paid, dtype=bool)
    x = np.asarray(lost, dtype=bool)
    if group is not None:
        g = np.asarray(group, dtype=np.int64)
        if p.ndim != 1 or x.ndim != 1 or p.shape != x.shape or g.shape != p.shape:
            raise InputError(f"contingency by group needs 1-D paid {p.shape}, lost {x.shape} and group {g.shape} "
                             "of one length")
        n = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 0)
        a = np.bincount(g, weights=p & x, minlength=n).astype(np.int64)
        n_paid = np.bincount(g, weights=p, minlength=n).astype(np.int64)
        n_lost = np.bincount(g, weights=x, minlength=n).astype(np.int64)
        units = np.bincount(g, minlength=n).astype(np.int64)
    else:
        shape = np.broadcast(p, x).shape
        if len(shape) < 1:
            raise InputError("contingency needs arrays with the units on the last axis")
        a = np.sum(p & x, axis=-1, dtype=np.int64)
        n_paid = np.broadcast_to(np.sum(p, axis=-1, dtype=np.int64), shape[:-1])
        n_lost = np.broadcast_to(np.sum(x, axis=-1, dtype=np.int64), shape[:-1])
        units = np.full(shape[:-1], shape[-1], dtype=np.int64)
    b = n_lost - a
    c = n_paid - a
    return Contingency(a, b, c, units - a - b - c)


def average_ranks(x: Any) -> np.ndarray:
    """1-based ranks along the last axis, tied values sharing their average rank.

    As ``scipy.stats.rankdata(method="average")`` row by row, for finite input, in
    O(n log n) per row and vectorised over leading axes.

    >>> average_ranks([10.0, 30.0, 20.0, 20.0]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, axis=-1)
    pos = np.broadcast_to(np.arange(n), s.shape)
    first = np.ones(s.shape, dtype=bool)  # first of a run of equal values
    first[..., 1:] = s[..., 1:] != s[..., :-1]
    last = np.ones(s.shape, dtype=bool)   # last of a run
    last[..., :-1] = first[..., 1:]
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=-1)
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, n), axis=-1), axis=-1), axis=-1)
    ranks = np.empty(s.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (start + end) / 2.0 + 1.0, axis=-1)
    return ranks


def spearman(x: Any, y: Any) -> Any:
    """Spearman rank correlation of ``x`` and ``y`` along the last axis.

    The Pearson correlation of the average ranks (:func:`average_ranks`), as
    :func:`scipy.stats.spearmanr`, vectorised over leading axes. NaN where there are fewer
    than two pairs or a side is constant (the correlation is undefined there). Input must
    be finite: leave missing pairs out before calling.

    Returns
    -------
    float or numpy.ndarray
        ρ in [−1, 1]; a float for 1-D input.

    Examples
    --------
    >>> spearman([0, 10, 20], [0, 5, 40]), spearman([0, 0, 0], [1, 2, 3])
    (1.0, nan)
    """
    a = np.asarray(x if hasattr(x, "__len__") else list(x), dtype=np.float64)
    b = np.asarray(y if hasattr(y, "__len__") else list(y), dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    if a.ndim == 0:
        raise InputError("spearman needs arrays with the pairs on the last axis")
    if a.shape[-1] < 2:
        out = np.full(a.shape[:-1], np.nan)
        return float(out) if out.ndim == 0 else out
    ra = average_ranks(a)
    rb = average_ranks(b)
    ra -= ra.mean(axis=-1, keepdims=True)
    rb -= rb.mean(axis=-1, keepdims=True)
    den = np.sqrt(np.sum(ra * ra, axis=-1) * np.sum(rb * rb, axis=-1))
    rho = np.clip(ratio(np.sum(ra * rb, axis=-1), den), -1.0, 1.0)  # constant side: all-zero deviations
    return float(rho) if np.ndim(rho) == 0 else rho


def district_means(values: Any, district: Any | None = None) -> np.ndarray:
    """Each unit's district mean of ``values`` along the last axis, same shape as the input.

    Parameters
    ----------
    values
        ``(..., n)`` values.
    district
        Integer codes 0 … D − 1 (e.g. from :func:`pandas.factorize`) of the n units,
        broadcastable to ``values`` (a ``(n,)`` vector, or one row per leading index as in
        a bootstrap); ``None``: one district.

    >>> district_means([1.0, 3.0, 10.0, 20.0], [0, 0, 1, 1]).tolist()
    [2.0, 2.0, 15.0, 15.0]
    """
    v = np.asarray(values, dtype=np.float64)
    if district is None:
        return np.broadcast_to(v.mean(axis=-1, keepdims=True), v.shape)
    v, codes = np.broadcast_arrays(v, np.asarray(district, dtype=np.int64))
    if v.ndim == 0:
        raise InputError("district_means needs arrays with the units on the last axis")
    if codes.size and codes.min() < 0:
        raise InputError("district codes must be ≥ 0")
    d = int(codes.max()) + 1 if codes.size else 1
    rows = int(np.prod(v.shape[:-1], dtype=np.int64))
    flat = (np.arange(rows, dtype=np.int64)[:, None] * d + codes.reshape(rows, -1)).ravel()
    sums = np.bincount(flat, weights=v.reshape(-1), minlength=rows * d)
    counts = np.bincount(flat, minlength=rows * d)
    means = sums / np.maximum(counts, 1)
    return means[flat].reshape(v.shape)


def premium_rates(payout: Any, district: Any | None = None, *, expense_loading: float = 0.0,
                  profit_loading: float = 0.0) -> np.ndarray:
    """The premium of the hedging effectiveness: each district's loaded burn cost, per season.

    premium_s = burn_d(s) × (1 + expense loading + profit loading), where burn_d is the
    mean payout rate of district d over the seasons given (the pure premium rate,
    :func:`panen.engine.research.pricing.gross_premium_rate` without a risk load).

    Parameters
    ----------
    payout
        ``(..., n)`` payout rates [fraction of sum insured]; finite.
    district
        District codes of the n seasons, as for :func:`district_means`; ``None``: one district.
    expense_loading, profit_loading
        Proportional loadings [fraction of the pure rate], ≥ 0.

    Returns
    -------
    numpy.ndarray
        Premium rate of each season [fraction of sum insured], the shape of ``payout``.

    Examples
    --------
    >>> premium_rates([0.0, 0.2, 0.1, 0.1], [0, 0, 1, 1], expense_loading=0.25, profit_loading=0.1).tolist()
    [0.135, 0.135, 0.135, 0.135]
    """
    from panen.engine.research.pricing import gross_premium_rate

    burn = district_means(payout, district)
    return np.asarray(gross_premium_rate(burn, expense_loading=expense_loading, profit_loading=profit_loading),
                      dtype=np.float64)


def hedging_effectiveness(revenue: Any, premium: Any, payout: Any, district: Any | None = None) -> Any:
    """Hedging effectiveness of a cover on income, by semivariance about each district's mean.

    HE = 1 − Σ min(Y − μ_d, 0)² / Σ min(Y0 − μ_d, 0)² over the seasons (last axis), with
    Y0 = revenue, Y = revenue − premium + payout, and μ_d the mean uninsured revenue of the
    season's district (see the module docstring). HE = 1: the cover removes every income
    shortfall below the district means; 0: no change; < 0: the cover (a premium with
    payouts in the wrong seasons) makes the downside worse. NaN when there is no downside
    to hedge (Σ min(Y0 − μ_d, 0)² = 0); a NaN input makes the result NaN.

    Parameters
    ----------
    revenue
        Uninsured income per season [fraction of sum insured, or any money unit], ``(..., n)``.
    premium
        Premium per season [same unit]; broadcastable (a scalar, ``(n,)``, or ``(..., n)``
        — e.g. :func:`premium_rates`).
    payout
        Payout per season [same unit], broadcastable.
    district
        Integer district codes of the seasons (:func:`district_means`); ``None``: one
        district, so μ is the mean revenue over all seasons.

    Returns
    -------
    float or numpy.ndarray
        HE [dimensionless]; a float when the broadcast inputs are 1-D, else their leading
        shape.

    References
    ----------
    Vedenov, D. V. & Barnett, B. J. (2004), *J. Agric. Resour. Econ.* 29(3), 387–403.

    Examples
    --------
    A cover paying exactly the shortfall below the mean at no premium hedges it all:

    >>> r = np.array([1.0, 0.6, 0.8, 1.0])          # mean 0.85
    >>> hedging_effectiveness(r, 0.0, np.maximum(0.85 - r, 0.0))
    1.0
    """
    y0 = np.asarray(revenue, dtype=np.float64)
    if y0.ndim == 0:
        raise InputError("hedging_effectiveness needs the seasons on the last axis")
    y = y0 - np.asarray(premium, dtype=np.float64) + np.asarray(payout, dtype=np.float64)
    if y.shape[-1] != y0.shape[-1]:
        raise InputError(f"hedging_effectiveness: payout {np.shape(payout)} and premium {np.shape(premium)} "
                         f"must have the seasons of revenue {y0.shape} on their last axis")
    mu = district_means(y0, district)
    sv0 = np.sum(np.square(np.minimum(y0 - mu, 0.0)), axis=-1)
    sv = np.sum(np.square(np.minimum(y - mu, 0.0)), axis=-1)
    he = 1.0 - ratio(sv, sv0)
    return float(he) if np.ndim(he) == 0 else he
