"""Invariants of the NDVI payouts (hypothesis): rate in [0, max_rate], monotone non-increasing
in the cumulative z, zero at or above the strike, NaN in → NaN out, and monotone in NDVI
through the whole trigger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.api import Season, TriggerInputs
from panen.triggers.ndvi import NdviParams, NdviTrigger, cumulative_z, linear_payout, percentile_payout

z_values = st.floats(min_value=-50, max_value=50, allow_nan=False)
max_rates = st.floats(min_value=1e-3, max_value=1.0)
# strike > exit on the cumulative z
strike_exit = st.tuples(st.floats(-10, 5), st.floats(1e-3, 10)).map(lambda t: (t[0], t[0] - t[1]))


@given(strike_exit, max_rates, z_values, z_values)
def test_linear_rate_in_range_and_monotone_non_increasing(se, max_rate, a, b):
    strike, exit_ = se
    lo, hi = sorted((a, b))
    r_lo, r_hi = float(linear_payout(lo, strike, exit_, max_rate)), float(linear_payout(hi, strike, exit_, max_rate))
    assert 0.0 <= r_hi <= r_lo <= max_rate  # a worse (lower) season never pays less


@given(strike_exit, max_rates, z_values)
def test_linear_zero_at_or_above_strike_and_max_at_or_below_exit(se, max_rate, z):
    strike, exit_ = se
    r = float(linear_payout(z, strike, exit_, max_rate))
    if z >= strike:
        assert r == 0.0
    if z <= exit_:
        assert r == max_rate


@given(z_values, max_rates, z_values, z_values)
def test_percentile_rate_in_range_monotone_and_zero_at_or_above_threshold(threshold, max_rate, a, b):
    lo, hi = sorted((a, b))
    r_lo, r_hi = float(percentile_payout(lo, threshold, max_rate)), float(percentile_payout(hi, threshold, max_rate))
    assert r_hi <= r_lo and {r_lo, r_hi} <= {0.0, max_rate}
    assert (r_hi == 0.0) if hi >= threshold else (r_hi == max_rate)


def test_nan_index_or_threshold_gives_nan_rate():
    assert np.isnan(linear_payout(np.nan, -1.0, -2.0, 0.5))
    assert np.isnan(percentile_payout(np.nan, -1.0)) and np.isnan(percentile_payout(-3.0, np.nan))


@given(st.lists(st.one_of(z_values, st.just(np.nan)), min_size=1, max_size=8), st.integers(1, 8))
def test_cumulative_z_is_flagged_below_min_composites_and_otherwise_finite(z, k):
    z = np.asarray(z, dtype=float)
    got = float(cumulative_z(z, np.arange(z.size), k))
    valid = int(np.isfinite(z).sum())
    assert np.isnan(got) == (valid < min(k, z.size) or valid == 0)
    if valid == z.size:
        assert got == float(cumulative_z(z, np.arange(z.size), None))


_BASE_YEARS = list(range(2015, 2020))


def _evaluate(values: np.ndarray, payout: dict) -> float:
    """One district, one composite period (day 1), 2015..2019 baseline + the 2020 season."""
    times = pd.to_datetime([f"{y}-01-01" for y in [*_BASE_YEARS, 2020]])
    ds = xr.Dataset({"mean": (("time", "district"), values[:, None], {"units": "1"}),
                     "valid_fraction": (("time", "district"), np.ones((6, 1)))},
                    coords={"time": times, "district": ["d"]})
    p = NdviParams(id="n", sum_insured_per_ha=1, baseline_years=[2015, 2019],
                   window={"start_day": 0, "end_day": 16}, payout=payout)
    c = np.array(["2020-01-01"], dtype="datetime64[D]")
    inputs = TriggerInputs(season=Season("s", c[0], c[0] + 16, 2020), cohorts=c, district_ids=np.array(["d"]),
                           series={"ndvi": ds})
    return float(NdviTrigger().evaluate(p, inputs).data["payout_rate"].item())


ndvi = st.floats(min_value=-0.2, max_value=1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(ndvi, min_size=5, max_size=5, unique=True), ndvi, ndvi,
       st.sampled_from([{"strike_z": -0.842, "exit_z": -2.326, "max_rate": 0.5}, {"percentile": 15}]))
def test_trigger_pays_no_less_when_the_season_is_greener_less(baseline, a, b, payout):
    lo, hi = sorted((a, b))
    r_lo = _evaluate(np.array([*baseline, lo]), payout)
    r_hi = _evaluate(np.array([*baseline, hi]), payout)
    cap = payout.get("max_rate", 1.0)
    assert 0.0 <= r_hi <= r_lo <= cap
