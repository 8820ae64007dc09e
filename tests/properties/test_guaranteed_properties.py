"""The in-season guaranteed minimum is a true lower bound (hypothesis).

For any rain up to the as-of day and *any* continuation after it, the final payout — rate,
gross and net after a straight, franchise or percent-of-loss deductible and a limit, through
the same rounding — is never below what ``WeatherIndexTrigger.guaranteed_rate`` guaranteed
on the days so far;
once every window has closed the two are equal. Every index kind (total, max n-day, dry
spell, rainy days), both directions, linear, binary and step curves, and a season cap are
drawn. The engine's own cut of the series (``as_of_series``) hides the continuation.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panen.engine.api import Season, TriggerInputs, check_guaranteed_rate, check_result_values, standardise_result
from panen.engine.maths.terms import Terms, apply_terms, round_rupiah
from panen.engine.pipeline.inseason import as_of_series
from panen.triggers.weather import WeatherIndexParams, WeatherIndexTrigger

T = 80  # days of series
START = np.datetime64("2024-01-01")
DISTRICTS = np.array(["A", "B"], dtype=object)
rain_day = st.one_of(st.just(0.0), st.floats(0.0, 0.9), st.floats(0.0, 120.0))


@st.composite
def phases(draw) -> dict:
    index = draw(st.sampled_from(["total", "max_n_day", "dry_spell", "rainy_days"]))
    direction = draw(st.sampled_from(["above", "below"]))
    curve = draw(st.sampled_from(["linear", "binary", "step"]))
    start = draw(st.integers(0, 25))
    end = draw(st.integers(start + 3, start + 40))
    scale = {"total": 600.0, "max_n_day": 250.0}.get(index, float(end - start))
    a, b = sorted(draw(st.tuples(st.floats(0.0, scale), st.floats(0.0, scale))))
    if b - a < 1e-3:
        b = a + 1.0
    strike, exit_ = (a, b) if direction == "above" else (b, a)
    phase = {"name": "p", "start_day": start, "end_day": end, "index": index, "direction": direction,
             "strike": strike, "weight": draw(st.floats(0.05, 1.0)), "curve": curve}
    if curve == "linear":
        phase["exit"] = exit_
    if curve == "step":
        edges = sorted(draw(st.lists(st.floats(0.0, scale), min_size=2, max_size=4, unique=True)))
        rates = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=len(edges) - 1, max_size=len(edges) - 1)))
        if direction == "below":
            rates = rates[::-1]
        phase["bands"] = [{"min": lo, "max": hi, "rate": r} for lo, hi, r in zip(edges, edges[1:], rates)]
        if draw(st.booleans()):  # an open top band: an above schedule that never falls (it then guarantees)
            del phase["bands"][-1]["max"]
    if index == "max_n_day":
        phase["n"] = draw(st.integers(1, end - start))
    if index == "dry_spell":
        phase["dry_threshold"] = draw(st.sampled_from([1.0, 2.5]))
    if index == "rainy_days":
        phase["wet_threshold"] = draw(st.sampled_from([1.0, 10.0]))
    return phase


@st.composite
def cases(draw):
    sheet = draw(st.lists(phases(), min_size=1, max_size=3))
    for i, p in enumerate(sheet):
        p["name"] = f"p{i}"
    params = WeatherIndexParams(id="rain", trigger="weather_index", sum_insured_per_ha=6_000_000,
                                season_cap=draw(st.floats(0.1, 1.0)), phases=sheet)
    anchors = sorted(set(draw(st.lists(st.integers(0, 10), min_size=1, max_size=3))))
    k = draw(st.integers(0, T - 1))  # the as-of day's offset
    history = np.array(draw(st.lists(rain_day, min_size=2 * T, max_size=2 * T)), dtype=float).reshape(2, T)
    continuation = np.array(draw(st.lists(rain_day, min_size=2 * T, max_size=2 * T)), dtype=float).reshape(2, T)
    rain = np.where(np.arange(T) <= k, history, continuation)
    kind = draw(st.sampled_from(["straight", "franchise", "percent_of_loss"]))
    amount = draw(st.integers(0, 800_000))
    deductible = ({"kind": kind, "rate": draw(st.sampled_from([0.05, 0.1, 0.25])), "minimum": amount}
                  if kind == "percent_of_loss" else {"kind": kind, "amount": amount})
    return params, np.asarray([START + a for a in anchors]), k, rain, Terms(deductible=deductible,
                                                                            limit=draw(st.none() | st.integers(1, 10**7)))


def series(rain: np.ndarray) -> xr.Dataset:
    times = START + np.arange(T)
    ds = xr.Dataset({"mean": (("time", "district"), rain.T), "valid_fraction": (("time", "district"), np.ones((T, 2)))},
                    coords={"time": times.astype("datetime64[ns]"), "district": DISTRICTS})
    ds["mean"].attrs["units"] = "mm/day"
    return ds


def evaluate(params, cohorts, ds, as_of=None) -> xr.Dataset:
    inputs = TriggerInputs(season=Season("s", START, START + T - 1, 2024), cohorts=cohorts, district_ids=DISTRICTS,
                           series={"rainfall": ds}, as_of=as_of)
    out = standardise_result(WeatherIndexTrigger().evaluate(params, inputs), trigger="weather_index",
                             product_id="rain", district_ids=DISTRICTS, cohorts=cohorts)
    out = check_result_values(out.compute(), trigger="weather_index", product_id="rain")
    if as_of is None:
        return out
    g = WeatherIndexTrigger.guaranteed_rate(params, inputs, out)
    return out.assign(guaranteed_rate=check_guaranteed_rate(g, out, trigger="weather_index", product_id="rain"))


def net(rate: np.ndarray, terms: Terms) -> np.ndarray:
    sum_insured = np.array([2_220_000, 6_000_000, 11_980_000], dtype=np.int64)
    gross = round_rupiah(np.asarray(rate).ravel()[:, None] * sum_insured[None, :]).astype(np.int64).ravel()
    return apply_terms(gross, terms)[1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_no_continuation_of_the_weather_pays_less_than_the_guaranteed_minimum(case):
    params, cohorts, k, rain, terms = case
    as_of = START + k
    final = evaluate(params, cohorts, series(rain))["payout_rate"].values
    inseason = evaluate(params, cohorts, as_of_series({"rainfall": series(rain)}, as_of)["rainfall"], as_of)
    guaranteed = inseason["guaranteed_rate"].values
    assert not np.isnan(guaranteed).any()  # no missing day: something (maybe 0) is guaranteed everywhere
    assert (final >= guaranteed - 1e-12).all()
    assert (net(final, terms) >= net(guaranteed, terms)).all()  # a deductible keeps the order (monotone)
    last = max(p.end_day for p in params.phases) - 1 + (cohorts - START).astype(int).max()
    if k >= last:  # every window closed by the day: the guarantee is the final payout, exactly
        assert np.array_equal(final, guaranteed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, T - 1))
def test_a_missing_day_so_far_guarantees_nothing_exactly_where_the_final_would_withhold(case, gap):
    params, cohorts, k, rain, _ = case
    gap = min(gap, k)  # a day already elapsed
    rain = rain.copy()
    rain[0, gap] = np.nan
    as_of = START + k
    final = evaluate(params, cohorts, series(rain))["payout_rate"].values
    guaranteed = evaluate(params, cohorts, as_of_series({"rainfall": series(rain)}, as_of)["rainfall"],
                          as_of)["guaranteed_rate"].values
    assert np.array_equal(np.isnan(final), np.isnan(guaranteed))  # withheld both, or neither
    both = ~np.isnan(final)
    assert (final[both] >= guaranteed[both] - 1e-12).all()
