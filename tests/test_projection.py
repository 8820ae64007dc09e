"""The in-season projection (FEWS NET's extended-WRSI method): open windows filled with each past year's weather.

The climatologies are synthetic and built so the answer is known by hand: k of n analogue
years carry too little rain for an open ``below`` total phase, so the probability of a
payout is exactly k / n and the expected payout k / n of the one paying amount.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from panen.engine.api import PolicyRegister, Season
from panen.engine.errors import DataQualityError
from panen.engine.registry import get_trigger
from panen.engine.research.projection import (
    analogue_days,
    analogue_start,
    not_projectable,
    project_rates,
    projection_table,
)
from panen.engine.settlement.policies import ProductRules, validate_policies

SEASON = Season("2024-MT1", np.datetime64("2023-11-01"), np.datetime64("2024-03-31"), 2024)
WEATHER = get_trigger("weather_index")
RULES = ProductRules(sum_insured_per_ha=6_000_000)


def series(days: np.ndarray, values: np.ndarray, districts=("A",)) -> xr.Dataset:
    """District series ``mean`` [mm/day] and ``valid_fraction`` on (time, district)."""
    values = np.asarray(values, dtype=float).reshape(len(days), -1) * np.ones((1, len(districts)))
    return xr.Dataset({"mean": (("time", "district"), values, {"units": "mm/day"}),
                       "valid_fraction": (("time", "district"), np.where(np.isnan(values), 0.0, 1.0))},
                      coords={"time": days.astype("datetime64[ns]"), "district": list(districts)})


def days(first: str, last: str) -> np.ndarray:
    return np.arange(np.datetime64(first), np.datetime64(last) + 1, dtype="datetime64[D]")


def product(**phase) -> object:
    base = {"name": "deficit", "start_day": 0, "end_day": 120, "index": "total", "direction": "below",
            "strike": 300.0, "exit": 100.0, "weight": 1.0}
    return WEATHER.Params.model_validate({"id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000,
                                          "phases": [{**base, **phase}], "terms": None})


def history_by_season(rain_of: dict[int, float]) -> xr.Dataset:
    """Daily history where every day of the season harvested in year y rains ``rain_of[y]`` mm."""
    t = days("2003-09-01", "2023-06-30")
    harvest = pd.DatetimeIndex(t).year + (pd.DatetimeIndex(t).month >= 9)
    return series(t, np.array([rain_of.get(int(y), np.nan) for y in harvest]))


def policies(*areas: float, districts=("A",)) -> pd.DataFrame:
    rows = [{"policy_id": f"P{i}", "farmer_id": f"F{i}", "district_id": d, "product_id": "rain", "area_ha": a}
            for i, (a, d) in enumerate(zip(areas, districts * len(areas)))]
    valid, rejects = validate_policies(PolicyRegister.from_frame(pd.DataFrame(rows)), products={"rain": RULES})
    assert len(rejects) == 0
    return valid


def project(params, observed, history, as_of, years, districts=("A",)):
    return project_rates(WEATHER, params, season=SEASON, cohorts=np.array([SEASON.start]),
                         district_ids=np.array(districts), observed={"rainfall": observed},
                         history={"rainfall": history}, as_of=as_of, years=years)


# --------------------------------------------------------------------------- day mapping
def test_an_analogue_year_supplies_the_same_day_of_season_offsets_across_the_year_boundary_and_leap_days():
    assert analogue_start(np.datetime64("2023-11-01"), 1) == np.datetime64("2022-11-01")
    assert analogue_start(np.datetime64("2024-02-29"), 1) == np.datetime64("2023-02-28")
    got = analogue_days(np.array(["2023-12-31", "2024-01-01", "2024-02-28", "2024-02-29", "2024-03-01"], "M8[D]"),
                        SEASON, 2023)
    # offsets 60..121 from 1 November: 2022/23 has no 29 February, so the offsets run on into March
    assert [str(d) for d in got] == ["2022-12-31", "2023-01-01", "2023-02-28", "2023-03-01", "2023-03-02"]
    leap = analogue_days(np.array(["2024-02-29"], "M8[D]"), SEASON, 2020)  # the 2019/20 season has one
    assert str(leap[0]) == "2020-02-29"


# --------------------------------------------------------------------------- the known probability
@pytest.mark.parametrize("k", [0, 3, 7, 20])
def test_k_dry_analogue_years_of_n_give_a_payout_probability_of_k_over_n_and_the_hand_expected_payout(k):
    years = list(range(2004, 2024))  # n = 20 analogue years
    dry = set(years[::3][:k]) if k <= 7 else set(years)
    rain = {y: (1.0 if y in dry else 5.0) for y in years}
    as_of = dt.date(2023, 12, 31)  # 61 days observed (1 Nov .. 31 Dec) at 2 mm: 122 mm
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0))
    # the rest of the window [0, 120): 1 Jan .. 28 Feb 2024 = 59 days; a dry year adds 59 mm (181 mm),
    # a wet one 295 mm (417 mm); strike 300, exit 100: a dry year pays (300 - 181) / 200 = 0.595
    p = project(product(), observed, history_by_season(rain), as_of, years)
    np.testing.assert_allclose(p.rate[0, 0], [0.595 if y in dry else 0.0 for y in years])
    assert not p.flagged.any()
    table, notes = projection_table(p, policies(1.0, 0.37), RULES, None, anchor="season_start",
                                    season_end=SEASON.end, min_years=10)
    row = table.iloc[0]
    # sums insured 6,000,000 and 2,220,000; a dry year pays 3,570,000 + 1,320,900 = 4,890,900
    assert row["years"] == 20 and row["sum_insured"] == 8_220_000
    assert row["p_payout"] == pytest.approx(len(dry) / 20)
    assert row["expected_rate"] == pytest.approx(0.595 * len(dry) / 20)
    assert row["expected_payout"] == int(4_890_900 * len(dry) / 20 + 0.5)
    ordered = np.sort(np.where([y in dry for y in years], 4_890_900, 0))
    assert [row["q10"], row["q50"], row["q90"]] == [int(np.quantile(ordered, q) + 0.5) for q in (0.1, 0.5, 0.9)]
    assert row["guaranteed"] == 0  # a below phase guarantees nothing while open
    assert notes == []


def test_the_quantiles_interpolate_between_analogue_years_as_computed_by_hand():
    years = list(range(2004, 2014))  # 10 years, daily rain 0, 0.5, ..., 4.5 mm after the as-of date
    rain = {y: 0.5 * i for i, y in enumerate(years)}
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0))
    p = project(product(), observed, history_by_season(rain), dt.date(2023, 12, 31), years)
    totals = 122 + 59 * np.array([rain[y] for y in years])
    rates = np.clip((300 - totals) / 200, 0, 1)
    np.testing.assert_allclose(p.rate[0, 0], rates)
    table, _ = projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end,
                                min_years=10)
    paid = np.floor(6_000_000 * rates + 0.5)
    row = table.iloc[0]
    assert row["p_payout"] == pytest.approx((paid > 0).mean())
    assert row["expected_payout"] == int(np.floor(paid.mean() + 0.5))
    # numpy's default (Hyndman & Fan type 7): h = (n - 1) p, between the order statistics around it
    s = np.sort(paid)
    by_hand = [s[1] + 0.9 * (s[2] - s[1]), s[4] + 0.5 * (s[5] - s[4]), s[8] + 0.1 * (s[9] - s[8])]
    assert [row["q10"], row["q50"], row["q90"]] == [int(np.floor(v + 0.5)) for v in by_hand]


def test_a_window_crossing_the_year_boundary_takes_december_and_january_of_each_analogue_season():
    # window [30, 90): 1 Dec 2023 .. 29 Jan 2024; observed up to 15 Dec (15 days, 0 mm)
    t = days("2003-09-01", "2023-06-30")
    di = pd.DatetimeIndex(t)
    # December of the analogue season: 1 mm/day; January: the harvest year / 1000 mm/day (distinct per year)
    values = np.where(di.month == 12, 1.0, np.where(di.month == 1, di.year / 1000.0, 50.0))
    observed = series(days("2023-11-01", "2024-03-31"), np.zeros(152))
    params = product(start_day=30, end_day=90, strike=400.0, exit=0.0)
    years = [2010, 2016, 2023]
    p = project(params, observed, series(t, values), dt.date(2023, 12, 15), years)
    totals = np.array([16 * 1.0 + 29 * y / 1000.0 for y in years])  # 16 December days, 29 January days
    np.testing.assert_allclose(p.rate[0, 0], (400 - totals) / 400)


def test_a_leap_day_in_the_season_takes_the_analogue_day_of_the_same_offset():
    # window [90, 122): 30 Jan .. 1 Mar 2024, 32 days with 29 Feb; in 2022/23 the offsets end on 2 March
    t = days("2003-09-01", "2023-06-30")
    values = np.where(t == np.datetime64("2023-03-02"), 100.0, 1.0)
    observed = series(days("2023-11-01", "2024-03-31"), np.zeros(152))
    params = product(start_day=90, end_day=122, strike=500.0, exit=0.0)
    p = project(params, observed, series(t, values), dt.date(2024, 1, 10), [2020, 2023])
    np.testing.assert_allclose(p.rate[0, 0], [(500 - 32) / 500, (500 - 131) / 500])


# --------------------------------------------------------------------------- missing history
def test_an_analogue_year_without_full_history_is_skipped_and_too_few_years_are_flagged():
    years = list(range(2004, 2024))
    rain = {y: 1.0 if y < 2008 else 5.0 for y in years}
    history = history_by_season(rain)
    # a day of the window missing in the 2015 and 2016 analogue seasons
    hole = history["mean"].values.copy()
    hole[(history["time"].values == np.datetime64("2015-01-20")) | (history["time"].values == np.datetime64("2016-02-02"))] = np.nan
    history = history.assign(mean=(("time", "district"), hole), valid_fraction=(("time", "district"),
                                                                                  np.where(np.isnan(hole), 0.0, 1.0)))
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0))
    p = project(product(), observed, history, dt.date(2023, 12, 31), years)
    assert p.flagged[0, 0].sum() == 2
    table, notes = projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end,
                                    min_years=10)
    row = table.iloc[0]
    assert row["years"] == 18
    assert row["p_payout"] == pytest.approx(4 / 18)  # 2004..2007 dry, of the 18 usable years
    assert notes and "2015 (1)" in notes[0] and "2016 (1)" in notes[0]
    short, _ = projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end,
                                min_years=19)
    assert short.iloc[0]["years"] == 18 and pd.isna(short.iloc[0]["expected_payout"])
    assert pd.isna(short.iloc[0]["p_payout"]) and "only 18 usable analogue year(s) of 20" in short.iloc[0]["reason"]


def test_history_that_misses_the_years_entirely_leaves_no_usable_year():
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0))
    p = project(product(), observed, history_by_season({y: 1.0 for y in range(2004, 2024)}),
                dt.date(2023, 12, 31), [1990, 1991])
    assert p.flagged.all()
    table, notes = projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end,
                                    min_years=1)
    assert table.iloc[0]["years"] == 0 and pd.isna(table.iloc[0]["q50"])
    assert "1990 (1)" in notes[0]


def test_policies_the_observed_days_already_withhold_are_left_out_never_projected_as_dry():
    # district B misses a day before the as-of date inside the window: withheld whatever weather follows
    values = np.full((152, 2), 2.0)
    values[10, 1] = np.nan
    observed = series(days("2023-11-01", "2024-03-31"), values, ("A", "B"))
    years = list(range(2004, 2024))
    history = history_by_season({y: 1.0 if y < 2010 else 5.0 for y in years})
    history = series(history["time"].values.astype("datetime64[D]"), history["mean"].values, ("A", "B"))
    p = project(product(), observed, history, dt.date(2023, 12, 31), years, districts=("A", "B"))
    assert p.observed_flagged.tolist() == [[False], [True]]
    table, notes = projection_table(p, policies(1.0, 1.0, districts=("A", "B")), RULES, None,
                                    anchor="season_start", season_end=SEASON.end, min_years=10)
    a, b = table.iloc[0], table.iloc[1]
    assert a["years"] == 20 and a["p_payout"] == pytest.approx(6 / 20)
    assert b["years"] == 0 and pd.isna(b["expected_payout"]) and pd.isna(b["p_payout"])
    assert b["reason"].startswith("1 of 1 policies withheld for missing observed data") and b["guaranteed"] == 0
    assert notes == []  # no analogue year is blamed for the observed gap


# --------------------------------------------------------------------------- the guaranteed minimum
def test_a_closed_window_is_guaranteed_and_every_analogue_pays_at_least_it():
    # two phases: [0, 30) closed on 31 December (30 days at 2 mm = 60 mm: pays (300-60)/200 capped at 1 x 0.3),
    # [0, 120) open
    params = WEATHER.Params.model_validate({
        "id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "season_cap": 1.0,
        "phases": [{"name": "early", "start_day": 0, "end_day": 30, "index": "total", "direction": "below",
                    "strike": 100.0, "exit": 40.0, "weight": 0.3},
                   {"name": "season", "start_day": 0, "end_day": 120, "index": "total", "direction": "below",
                    "strike": 300.0, "exit": 100.0, "weight": 0.7}]})
    years = list(range(2004, 2024))
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0))
    p = project(params, observed, history_by_season({y: 1.0 if y % 2 else 5.0 for y in years}),
                dt.date(2023, 12, 31), years)
    early = (100 - 60) / 60 * 0.3  # closed: 0.2
    np.testing.assert_allclose(p.closed_rate, [[early]])
    np.testing.assert_allclose(p.rate[0, 0], [early + (0.595 * 0.7 if y % 2 else 0.0) for y in years])
    table, _ = projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end,
                                min_years=10)
    row = table.iloc[0]
    assert row["guaranteed"] == 1_200_000  # 0.2 x 6,000,000
    assert row["q10"] >= row["guaranteed"]
    # a guaranteed minimum above what some analogue pays is refused: it would not be guaranteed
    with pytest.raises(DataQualityError, match="below its guaranteed minimum"):
        projection_table(p, policies(1.0), RULES, None, anchor="season_start", season_end=SEASON.end, min_years=10,
                         guaranteed=pd.Series({"A": 1_300_000}))


# --------------------------------------------------------------------------- what cannot be projected
def test_products_that_cannot_be_continued_with_past_weather_say_why():
    area = get_trigger("area_yield")
    ay = area.Params.model_validate({"id": "y", "trigger": "area_yield", "sum_insured_per_ha": 1,
                                     "normal_yield": {"method": "mean", "years": 5}, "indemnity_level": 0.8})
    assert "not a daily weather series" in not_projectable(area, ay, {"yields": "table"}, {"rainfall": "rainfall"})
    ndvi = get_trigger("ndvi")
    nd = ndvi.Params.model_validate({"id": "n", "trigger": "ndvi", "sum_insured_per_ha": 1,
                                     "baseline_years": [2003, 2022], "window": {"start_day": 0, "end_day": 112},
                                     "payout": {"percentile": 15}})
    assert "declares no reach" in not_projectable(ndvi, nd, {"ndvi": "grid"}, {"ndvi": "ndvi"})
    assert "no history configured for inputs.rainfall" in not_projectable(WEATHER, product(), {"rainfall": "grid"}, {})
    assert not_projectable(WEATHER, product(), {"rainfall": "grid"}, {"rainfall": "rainfall_history"}) is None


def test_many_districts_and_years_are_one_evaluation_and_each_district_keeps_its_own_weather():
    districts = [f"D{i}" for i in range(6)]
    years = list(range(2004, 2024))
    t = days("2003-09-01", "2023-06-30")
    harvest = pd.DatetimeIndex(t).year + (pd.DatetimeIndex(t).month >= 9)
    # district i is dry in the years whose harvest year ends in a digit < i
    values = np.stack([np.where(harvest % 10 < i, 1.0, 5.0) for i in range(6)], axis=1)
    history = series(t, values, districts)
    observed = series(days("2023-11-01", "2024-03-31"), np.full(152, 2.0), districts)
    p = project(product(), observed, history, dt.date(2023, 12, 31), years, districts=districts)
    table, _ = projection_table(p, policies(*[1.0] * 6, districts=tuple(districts)), RULES, None,
                                anchor="season_start", season_end=SEASON.end, min_years=10)
    assert table["p_payout"].tolist() == pytest.approx([i / 10 for i in range(6)])
