"""Invariants of the analogue-year projection (hypothesis): whatever the past years' weather and the as-of date,
no analogue year pays less than the closed windows guarantee, probabilities are shares of the usable years, and
the quantiles are ordered."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panen.engine.api import PolicyRegister, Season
from panen.engine.registry import get_trigger
from panen.engine.research.projection import project_rates, projection_table
from panen.engine.settlement.policies import ProductRules, validate_policies

SEASON = Season("2024-MT1", np.datetime64("2023-11-01"), np.datetime64("2024-03-31"), 2024)
WEATHER = get_trigger("weather_index")
RULES = ProductRules(sum_insured_per_ha=6_000_000)
PARAMS = WEATHER.Params.model_validate({
    "id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "season_cap": 0.9,
    "phases": [
        {"name": "early", "start_day": 0, "end_day": 30, "index": "total", "direction": "below", "strike": 120.0,
         "exit": 20.0, "weight": 0.4},
        {"name": "spell", "start_day": 0, "end_day": 100, "index": "dry_spell", "dry_threshold": 1.0,
         "direction": "above", "strike": 5.0, "exit": 20.0, "weight": 0.4},
        {"name": "flood", "start_day": 10, "end_day": 110, "index": "max_n_day", "n": 3, "direction": "above",
         "strike": 60.0, "exit": 150.0, "weight": 0.4},
        {"name": "late", "start_day": 60, "end_day": 120, "index": "total", "direction": "below", "strike": 400.0,
         "exit": 100.0, "weight": 0.4, "curve": "binary"}]})
YEARS = list(range(2016, 2024))
DAYS = np.arange(np.datetime64("2015-09-01"), np.datetime64("2023-08-31") + 1, dtype="datetime64[D]")
SEASON_DAYS = np.arange(np.datetime64("2023-11-01"), np.datetime64("2024-03-31") + 1, dtype="datetime64[D]")
VALID, _ = validate_policies(PolicyRegister.from_frame(pd.DataFrame(
    [{"policy_id": "P1", "farmer_id": "F1", "district_id": "A", "product_id": "rain", "area_ha": 0.37},
     {"policy_id": "P2", "farmer_id": "F2", "district_id": "A", "product_id": "rain", "area_ha": 1.5}])),
    products={"rain": RULES})


def series(days, values) -> xr.Dataset:
    values = np.asarray(values, dtype=float)[:, None]
    return xr.Dataset({"mean": (("time", "district"), values, {"units": "mm/day"}),
                       "valid_fraction": (("time", "district"), np.ones_like(values))},
                      coords={"time": days.astype("datetime64[ns]"), "district": ["A"]})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), as_of_day=st.integers(0, 150), wet=st.floats(0.05, 0.95),
       scale=st.floats(0.5, 40.0))
def test_no_analogue_year_pays_less_than_the_closed_windows_and_the_figures_are_ordered(seed, as_of_day, wet, scale):
    rng = np.random.default_rng(seed)
    rain = lambda n: np.where(rng.random(n) < wet, rng.gamma(0.8, scale, n), 0.0)  # noqa: E731
    observed, history = series(SEASON_DAYS, rain(len(SEASON_DAYS))), series(DAYS, rain(len(DAYS)))
    as_of = (SEASON.start + np.timedelta64(as_of_day, "D")).astype(dt.date)
    p = project_rates(WEATHER, PARAMS, season=SEASON, cohorts=np.array([SEASON.start]), district_ids=np.array(["A"]),
                      observed={"rainfall": observed}, history={"rainfall": history}, as_of=as_of, years=YEARS)
    assert (p.rate[0, 0] >= p.closed_rate[0, 0] - 1e-12).all()
    # raises if an analogue year paid less than the guaranteed minimum
    table, _ = projection_table(p, VALID, RULES, None, anchor="season_start", season_end=SEASON.end, min_years=1)
    row = table.iloc[0]
    assert row["years"] == len(YEARS)
    assert row["guaranteed"] <= row["q10"] <= row["q50"] <= row["q90"]
    assert 0.0 <= row["p_payout"] <= 1.0 and (row["p_payout"] * len(YEARS)) % 1 < 1e-9
    assert row["expected_payout"] >= row["guaranteed"]
