"""Ledger invariants: farmer payouts add up to district totals to the rupiah."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.settlement.ledger import build_ledger, district_totals, payments, reconcile
from panen.engine.settlement.policies import ProductRules
from panen.engine.settlement.rates import RateTable
from panen.engine.maths.terms import Terms


@st.composite
def portfolios(draw):
    n_district = draw(st.integers(1, 5))
    n_cohort = draw(st.integers(1, 3))
    cells = n_district * n_cohort
    rate = np.array(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=cells, max_size=cells)))
    flagged = np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells)))
    districts = np.array([f"D{i}" for i in range(n_district)])
    cohorts = np.datetime64("2023-11-01") + np.arange(n_cohort) * 7
    table = RateTable("rain", districts, cohorts.astype("datetime64[D]"), rate.reshape(n_district, n_cohort),
                      flagged.reshape(n_district, n_cohort), anchor="sowing_date")
    n = draw(st.integers(0, 60))
    area_cents = draw(st.lists(st.integers(1, 500), min_size=n, max_size=n))
    farmers = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    d = draw(st.lists(st.integers(0, n_district - 1), min_size=n, max_size=n))
    c = draw(st.lists(st.integers(0, n_cohort - 1), min_size=n, max_size=n))
    policies = pd.DataFrame({
        "policy_id": [f"P{i}" for i in range(n)],
        "farmer_id": [f"F{f}" for f in farmers],
        "district_id": districts[d] if n else np.array([], str),
        "product_id": "rain",
        "area_ha": np.array(area_cents, dtype=float) / 100,
        "sowing_date": pd.to_datetime(cohorts[c]) if n else pd.to_datetime([]),
    })
    per_ha = draw(st.integers(1, 12_000_000))
    terms = draw(st.sampled_from([None, Terms(deductible={"kind": "straight", "amount": 50_000}),
                                  Terms(deductible={"kind": "franchise", "amount": 100_000}, share=0.85),
                                  Terms(limit=2_000_000)]))
    return policies, table, per_ha, terms


@settings(max_examples=40, deadline=None)
@given(portfolio=portfolios())
def test_farmer_payouts_sum_to_the_district_totals_to_the_rupiah(portfolio):
    policies, table, per_ha, terms = portfolio
    ledger = build_ledger(policies, {"rain": table}, {"rain": ProductRules(per_ha, "sowing_date")}, {"rain": terms})
    totals = district_totals(ledger)
    reconcile(ledger, totals)  # raises if any sum disagrees
    frame = ledger.to_pandas()
    by_district = frame.groupby(frame["district_id"].astype(str), observed=True)["net_payout"].sum()
    district_rows = totals[totals["level"] == "district"].set_index("district_id")["net_payout"]
    assert by_district.to_dict() == district_rows.to_dict()
    paid = payments(ledger, by="farmer", season_id="S")
    assert int(paid["amount"].sum()) == int(totals["net_payout"].iloc[-1])
    assert (frame["net_payout"] <= frame["gross_payout"]).all()
    assert (frame["gross_payout"] <= frame["sum_insured"]).all()
    assert len(ledger) == len(policies)
