"""Invariants of the area-yield formulas (hypothesis): rate in [0, 1], monotone, zero above the threshold."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from panen.triggers.area_yield import (
    arpi_payment_factor,
    normal_yield_best_of,
    normal_yield_mean,
    shortfall_rate,
    threshold_yield,
)

yields = st.floats(min_value=1e-3, max_value=20.0, allow_nan=False)      # [t/ha]
actuals = st.floats(min_value=0.0, max_value=40.0, allow_nan=False)      # [t/ha]
levels = st.floats(min_value=0.05, max_value=1.0)
# ARPI: loss limit factor strictly below the coverage level
arpi_terms = st.tuples(levels, st.floats(0.0, 0.99)).map(lambda t: (t[0], t[1] * t[0]))


@given(yields, levels, actuals, actuals)
def test_shortfall_rate_in_unit_interval_and_non_increasing_in_actual(normal, level, a, b):
    t = threshold_yield(normal, level)
    lo, hi = sorted((a, b))
    r_lo, r_hi = float(shortfall_rate(t, lo)), float(shortfall_rate(t, hi))
    assert 0.0 <= r_hi <= r_lo <= 1.0


@given(yields, levels, actuals)
def test_shortfall_pays_nothing_at_or_above_the_threshold(normal, level, actual):
    t = threshold_yield(normal, level)
    if actual >= t:
        assert float(shortfall_rate(t, actual)) == 0.0
    else:
        assert float(shortfall_rate(t, actual)) > 0.0


@given(yields, arpi_terms, actuals, actuals)
def test_arpi_factor_in_unit_interval_and_non_increasing_in_final_yield(expected, terms, a, b):
    coverage, llf = terms
    lo, hi = sorted((a, b))
    f_lo = float(arpi_payment_factor(expected, coverage, lo, llf))
    f_hi = float(arpi_payment_factor(expected, coverage, hi, llf))
    assert 0.0 <= f_hi <= f_lo <= 1.0


@given(yields, arpi_terms, actuals)
def test_arpi_pays_nothing_at_or_above_the_trigger_and_all_below_the_loss_limit(expected, terms, final):
    coverage, llf = terms
    f = float(arpi_payment_factor(expected, coverage, final, llf))
    if final >= expected * coverage:
        assert f == 0.0
    if final <= expected * llf:
        assert f == 1.0


histories = st.lists(st.one_of(yields, st.just(np.nan)), min_size=1, max_size=12)


@given(histories, st.integers(1, 12), st.integers(0, 12))
def test_best_of_normal_lies_between_the_mean_and_the_maximum_of_available_years(h, best, extra):
    of = len(h)
    best = min(best, of)
    h = np.asarray(h)
    available = h[~np.isnan(h)]
    normal = float(normal_yield_best_of(h, best, of, min_years=1))
    if available.size == 0:
        assert np.isnan(normal)
        return
    mean = float(normal_yield_mean(h, of, min_years=1))
    assert mean - 1e-9 <= normal <= available.max() + 1e-9
    assert np.isclose(mean, available.mean())  # missing years are left out, not averaged in as zero
    assert np.isnan(normal_yield_best_of(h, best, of, min_years=available.size + 1))
