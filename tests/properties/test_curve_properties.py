"""Invariants of payout curves (hypothesis): rate in [0, 1], monotone, zero on the safe side."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.maths.curves import binary_rate, linear_rate, step_rate

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
strike_exit = st.tuples(st.floats(0, 1e3), st.floats(1e-3, 1e3)).map(lambda t: (t[0] + t[1], t[0]))  # strike > exit


@given(strike_exit, finite, finite)
def test_linear_deficit_rate_in_unit_interval_and_monotone(se, a, b):
    strike, exit_ = se
    lo, hi = sorted((a, b))
    r_lo, r_hi = linear_rate(lo, strike, exit_), linear_rate(hi, strike, exit_)
    assert 0.0 <= r_hi <= r_lo <= 1.0  # less rain never pays less under a deficit cover


@given(strike_exit, finite)
def test_linear_pays_nothing_on_the_safe_side_of_the_strike(se, x):
    strike, exit_ = se
    if x >= strike:
        assert linear_rate(x, strike, exit_, "below") == 0.0
    # the excess cover mirrors it: strike' = exit, exit' = strike
    if x <= exit_:
        assert linear_rate(x, exit_, strike, "above") == 0.0
    if x <= exit_:
        assert linear_rate(x, strike, exit_, "below") == 1.0


@given(strike_exit, finite, finite)
def test_linear_excess_rate_monotone_increasing(se, a, b):
    strike, exit_ = se
    lo, hi = sorted((a, b))
    assert 0.0 <= linear_rate(lo, exit_, strike, "above") <= linear_rate(hi, exit_, strike, "above") <= 1.0


@given(finite, finite)
def test_binary_is_zero_or_one_and_zero_at_or_above_strike(strike, x):
    r = binary_rate(x, strike, "below")
    assert r in (0.0, 1.0)
    assert (r == 1.0) == (x < strike)


@settings(max_examples=200)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=6), finite)
def test_step_rate_in_unit_interval(rates, x):
    edges = np.linspace(0, 100, len(rates) + 1)
    r = float(step_rate(x, edges[:-1], edges[1:], sorted(rates, reverse=True)))
    assert 0.0 <= r <= 1.0


def test_nan_index_gives_nan_rate_for_every_curve():
    assert np.isnan(linear_rate(np.nan, 100, 50))
    assert np.isnan(binary_rate(np.nan, 100))
    assert np.isnan(step_rate(np.nan, [0], [10], [1.0]))
