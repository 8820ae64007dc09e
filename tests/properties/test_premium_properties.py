"""Invariants of the premium rule (panen.engine.maths.premium) for any policy and term sheet."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.maths.premium import PremiumTerms, TariffBand, policy_premiums

fraction = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def books(draw):
    n = draw(st.integers(1, 20))
    si = draw(st.lists(st.integers(0, 10**11), min_size=n, max_size=n))
    rate = draw(st.lists(fraction, min_size=n, max_size=n))
    years = draw(st.lists(st.one_of(st.just(np.nan), st.integers(0, 30).map(float)), min_size=n, max_size=n))
    floor = draw(st.floats(0.0, 0.5))
    band = draw(st.one_of(st.none(), st.just(TariffBand(floor=floor, ceiling=floor + draw(st.floats(0.001, 0.5))))))
    terms = PremiumTerms(subsidy_share=draw(fraction), policy_fee=draw(st.integers(0, 100_000)),
                         stamp_duty=draw(st.integers(0, 20_000)),
                         no_claim_discount=draw(st.lists(st.floats(0.0, 0.99), max_size=5)), tariff=band)
    return np.array(si, np.float64), np.array(rate), np.array(years), terms


@given(books())
@settings(max_examples=200, deadline=None)
def test_every_premium_reconciles_and_each_part_is_bounded(book):
    si, rate, years, terms = book
    p = policy_premiums(si, rate, terms=terms, no_claim_years=years)
    assert (p["subsidy"] + p["farmer_share"] == p["premium"]).all()
    assert (p["gross_premium"] - p["no_claim_discount"] + p["charges"] == p["premium"]).all()
    assert (p["no_claim_discount"] >= 0).all() and (p["no_claim_discount"] <= p["gross_premium"]).all()
    assert (p["subsidy"] >= 0).all() and (p["subsidy"] <= p["rate_premium"]).all()
    assert (p["farmer_share"] >= p["charges"]).all()          # the charges are never subsidised
    assert (p["charges"] == terms.policy_fee + terms.stamp_duty).all()
    if terms.tariff is not None:
        r = p["premium_rate"].to_numpy()
        assert (r >= terms.tariff.floor - 1e-15).all() and (r <= terms.tariff.ceiling + 1e-15).all()
        assert ((p["tariff_flag"] != "") == (r != rate)).all()  # flagged exactly when clamped
    else:
        assert (p["tariff_flag"] == "").all()
    assert (np.abs(p["gross_premium"] - si * p["premium_rate"]) <= 0.5 + 1e-6).all()
