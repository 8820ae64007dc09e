"""In-season settlement (``panen run CONFIG --as-of DATE``): the guaranteed minimum and the on-account batch.

With data up to a day, each cover's *guaranteed minimum* is the part of its payout that no
later data can lower. The plugins own the rule (:meth:`panen.engine.api.Trigger.guaranteed_rate`:
a closed window is final; an index that only grows guarantees its current rate on an
``above`` curve; anything that can still move guarantees 0); the engine only

1. cuts every district series at the day (:func:`as_of_series`: later days are unknown —
   NaN, valid fraction 0 — never zero rain or zero vegetation);
2. settles the guaranteed rates through the one ledger (:func:`guaranteed_sources`: sum
   insured, terms, rounding, reconciliation — every term rule is monotone in the gross, so
   the net of a lower bound is a lower bound of the net);
3. builds the on-account due per payee (:func:`on_account_due`): a share of the guaranteed
   minimum, or a trigger's PMFBY-style advance where larger (flagged recoverable: it is a
   share of the *likely* claim, which the final may not reach).

A named-peril cover guarantees nothing in season: a field report filed later can
re-assess a plot, and the cover's per-farmer area cap can move claims between plots, so
its claims are paid by the final batch.

References
----------
PMFBY revised operational guidelines (2020), para 21 — on-account payment of up to 25 % of
the likely claim on mid-season adversity, adjusted at final settlement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine.api import Season
from panen.engine.errors import InputError, Problem
from panen.engine.maths.terms import apply_share
from panen.engine.pipeline.covers import Cover, IndexCover
from panen.engine.settlement.ledger import payments
from panen.engine.settlement.rates import POLICY_OUTCOMES, PolicyAmounts, RateTable

__all__ = ["IN_SEASON_REASON", "as_of_series", "check_as_of", "guaranteed_sources", "on_account_due"]

#: Reason of a named-peril cover's policies in an in-season run (nothing guaranteed before the final batch).
IN_SEASON_REASON = "in_season: named-peril claims are settled by the final batch"


def check_as_of(as_of: dt.date | None, season: Season) -> np.datetime64 | None:
    """The in-season day as ``datetime64[D]``; ``None`` for a final settlement.

    Raises
    ------
    InputError
        ``as_of`` before the season's start (nothing of the season is known: refused, exit 2).
    """
    if as_of is None:
        return None
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise InputError(Problem(f"--as-of must be a date (YYYY-MM-DD); got {as_of!r}", key="--as-of"))
    day = np.datetime64(as_of, "D")
    if day < np.datetime64(season.start, "D"):
        raise InputError(Problem(f"--as-of {as_of.isoformat()} is before the start of season {season.id} "
                                 f"({np.datetime64(season.start, 'D')}): nothing of it is known yet", key="--as-of"))
    return day


def as_of_series(series: Mapping[str, xr.Dataset], as_of: np.datetime64,
                 notes: list[str] | None = None) -> dict[str, xr.Dataset]:
    """Every district series with the days after ``as_of`` unknown (``mean`` NaN, ``valid_fraction`` 0).

    The time axis is kept (windows keep their place); a series that ends before ``as_of``
    is noted — its days up to ``as_of`` are missing, so a window needing them guarantees
    nothing (its district is withheld) until the data arrive.
    """
    out = {}
    for name, ds in series.items():
        times = ds["time"].values.astype("datetime64[D]")
        known = xr.DataArray(times <= as_of, dims="time", coords={"time": ds["time"]})
        out[name] = ds.assign(mean=ds["mean"].where(known), valid_fraction=ds["valid_fraction"].where(known, 0.0))
        out[name]["mean"].attrs.update(ds["mean"].attrs)
        if notes is not None and times.size and times[-1] < as_of:
            notes.append(f"{name}: the data end on {times[-1]}, before --as-of {as_of}: the days between are "
                         f"missing, and a window that needs them guarantees nothing")
    return out


def guaranteed_sources(results: Mapping[str, xr.Dataset], covers: list[Cover], zoned,
                       named_peril: Mapping[str, PolicyAmounts], as_of: np.datetime64) -> dict:
    """The ledger's sources of an in-season run: each cover's guaranteed minimum.

    Index covers: a :class:`RateTable` of the result's ``guaranteed_rate`` (NaN: withheld,
    the reason saying that data up to ``as_of`` are missing). Named-peril covers: their
    policies with gross 0, ``not_assessed`` and :data:`IN_SEASON_REASON` (the cover's own
    sum insured kept).
    """
    out: dict = {}
    for c in covers:
        if isinstance(c, IndexCover):
            ds = results[c.id].transpose("district", "cohort", ...)
            rate = np.asarray(ds["guaranteed_rate"].transpose("district", "cohort").values, dtype=float)
            flagged = np.isnan(rate)
            reason = np.where(flagged, f"missing data up to {as_of}: nothing is guaranteed", "").astype(object)
            out[c.id] = RateTable(product_id=c.id, district_ids=np.asarray(zoned.by_cover[c.id]),
                                  cohorts=ds["cohort"].values.astype("datetime64[D]"), rate=rate, flagged=flagged,
                                  anchor=c.anchor, reason=reason)
        elif c.id in named_peril:
            a = named_peril[c.id]
            n = len(a.policy_ids)
            out[c.id] = PolicyAmounts(product_id=a.product_id, policy_ids=a.policy_ids,
                                      gross=np.zeros(n, np.int64),
                                      outcome=np.full(n, POLICY_OUTCOMES.index("not_assessed"), np.int8),
                                      reason=np.full(n, IN_SEASON_REASON, dtype=object), cohort=a.cohort,
                                      sum_insured=a.sum_insured, anchor=a.anchor, rows=a.rows)
    return out


#: Payee key of the settlement store (:data:`panen.engine.settlement.store.PAYEE_KEY`).
_PAYEE = ["product_id", "payee_type", "district_id", "payee_id"]


def on_account_due(guaranteed: pd.DataFrame, advance: pd.DataFrame | None, valid: pd.DataFrame, *,
                   by: str, season_id: str, share: float) -> pd.DataFrame:
    """What an on-account batch is due per payee: a share of the guaranteed minimum, or the advance where larger.

    Parameters
    ----------
    guaranteed
        ``payments.csv`` of the guaranteed-minimum ledger (:func:`panen.engine.settlement.ledger.payments`):
        per payee and product, the net guaranteed amount [Rp].
    advance
        ``on_account.csv`` (:func:`panen.engine.pipeline.steps.on_account`): per policy a
        trigger's advance on the *likely* claim [Rp] (PMFBY mid-season adversity), or ``None``.
    valid
        The valid policies (their ``group_id`` when paying by group).
    by
        ``farmer`` or ``group`` (the run's ``payments_by``).
    share
        Share of the guaranteed minimum paid on account [fraction, (0, 1]].

    Returns
    -------
    pandas.DataFrame
        ``product_id, payee_type, district_id, payee_id, guaranteed, advance, amount,
        recoverable``, one row per payee due something: ``share × guaranteed`` rounded down
        to the rupiah (never above the guaranteed minimum: no clawback risk), or the
        payee's advance where that is larger — then ``recoverable`` is true, since the
        advance rests on a projection the final claim may not reach (PMFBY para 21).
        The two never add up: both are paid against the same final claim.
    """
    g = guaranteed.assign(district_id=guaranteed["district_id"].fillna("").astype(str)).groupby(
        _PAYEE, sort=True, as_index=False)["amount"].sum().rename(columns={"amount": "guaranteed"})
    if advance is not None and len(advance):
        cols = ["policy_id", "product_id"] + (["group_id"] if by == "group" else [])
        pol = advance.merge(valid[cols].astype(str), on=["policy_id", "product_id"], how="left") if by == "group" \
            else advance
        frame = pd.DataFrame({"farmer_id": pol["farmer_id"].astype(str), "district_id": pol["district_id"].astype(str),
                              "product_id": pol["product_id"].astype(str),
                              "net_payout": pol["on_account_payout"].astype(np.int64)})
        if by == "group":
            frame["group_id"] = pol["group_id"].astype(str)
        a = payments(frame, by=by, season_id=season_id)
        a = a.assign(district_id=a["district_id"].fillna("").astype(str)).groupby(
            _PAYEE, sort=True, as_index=False)["amount"].sum().rename(columns={"amount": "advance"})
        due = g.merge(a, on=_PAYEE, how="outer")
    else:
        due = g.assign(advance=0)
    due["guaranteed"] = due["guaranteed"].fillna(0).astype(np.int64)
    due["advance"] = due["advance"].fillna(0).astype(np.int64)
    part = apply_share(due["guaranteed"].to_numpy(np.int64), share, "down")
    due["amount"] = np.maximum(part, due["advance"].to_numpy(np.int64)).astype(np.int64)
    due["recoverable"] = due["advance"].to_numpy() > part
    due = due[due["amount"] > 0]
    return due.sort_values(_PAYEE, kind="stable").reset_index(drop=True)[
        [*_PAYEE, "guaranteed", "advance", "amount", "recoverable"]]
