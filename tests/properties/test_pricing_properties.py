"""Invariants of pricing for any payout-rate history: credibility weights, loadings, burn cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.research.pricing import buhlmann, buhlmann_straub, burn_cost, gross_premium_rate, premium_split

rate = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0, allow_nan=False))


@st.composite
def histories(draw, *, balanced: bool) -> pd.DataFrame:
    """2–5 districts with 2–8 seasons of rates in [0, 1] and exposures > 0."""
    r = draw(st.integers(2, 5))
    n_all = draw(st.integers(2, 8))
    rows = []
    for i in range(r):
        n = n_all if balanced else draw(st.integers(1 if i else 2, 8))
        for j in range(n):
            rows.append({"product_id": "p", "district_id": f"D{i}", "season": 2000 + j,
                         "payout_rate": draw(rate), "exposure": draw(st.floats(0.1, 1e6))})
    return pd.DataFrame(rows)


def _between(values: pd.Series, low: pd.Series, high: pd.Series) -> bool:
    lo, hi = np.minimum(low, high), np.maximum(low, high)
    tol = 1e-12
    return bool(((values >= lo - tol) & (values <= hi + tol)).all())


@settings(max_examples=40, deadline=None)
@given(t=histories(balanced=True))
def test_buhlmann_weight_is_a_probability_and_the_rate_lies_between_the_means(t):
    out = buhlmann(t)
    assert ((out["Z"] >= 0) & (out["Z"] <= 1)).all()
    assert (out["a"] >= 0).all()
    assert _between(out["credibility_rate"], out["district_mean"], out["portfolio_mean"])


@settings(max_examples=40, deadline=None)
@given(t=histories(balanced=False), collective=st.sampled_from(["exposure", "credibility"]))
def test_buhlmann_straub_weight_is_a_probability_and_the_rate_lies_between_the_means(t, collective):
    out = buhlmann_straub(t, collective=collective)
    assert ((out["Z"] >= 0) & (out["Z"] <= 1)).all()
    assert (out["a"] >= 0).all()
    assert _between(out["credibility_rate"], out["district_mean"], out["portfolio_mean"])


@settings(max_examples=40, deadline=None)
@given(t=histories(balanced=False), detrend=st.booleans())
def test_burn_cost_of_rates_in_the_unit_interval_stays_there(t, detrend):
    if detrend:  # a trend needs three seasons per district
        t = t[t.groupby("district_id")["season"].transform("size") >= 3]
        if t.empty:
            return
    out = burn_cost(t, detrend=detrend)
    for column in ("burn_cost", "frequency", "max_rate"):
        assert ((out[column] >= 0) & (out[column] <= 1)).all(), column
    assert (out["burn_cost"] <= out["max_rate"] + 1e-12).all()


@settings(max_examples=100, deadline=None)
@given(pure=st.floats(0.0, 1.0), expense=st.floats(0.0, 2.0), profit=st.floats(0.0, 2.0),
       load=st.sampled_from([None, {"kind": "std", "factor": 0.5}, {"kind": "tail", "quantile": 0.9, "factor": 1.0}]),
       hist=st.lists(rate, min_size=2, max_size=20))
def test_gross_rate_is_never_below_the_pure_rate(pure, expense, profit, load, hist):
    gross = gross_premium_rate(pure, expense_loading=expense, profit_loading=profit, risk_load=load,
                               history=hist if load else None)
    assert gross >= pure


@settings(max_examples=100, deadline=None)
@given(rate_=st.floats(0.0, 0.2), sum_insured=st.integers(0, 10**10), share=st.floats(0.0, 1.0))
def test_subsidy_and_farmer_share_add_up_to_the_premium_to_the_rupiah(rate_, sum_insured, share):
    premium, subsidy, farmer = premium_split(rate_, sum_insured, subsidy_share=share)
    assert subsidy + farmer == premium
    assert 0 <= subsidy <= premium and 0 <= farmer <= premium
