"""Weather-index trigger: indices, curves, phases and cohorts against hand-computed values."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pydantic import ValidationError

from panen.engine.api import Season, TriggerInputs
from panen.triggers.weather import (
    WeatherIndexParams,
    WeatherIndexTrigger,
    dry_spell,
    max_n_day,
    rainy_days,
    total,
    window_index,
)

START = np.datetime64("2024-01-01", "D")


def rain_series(values, *, districts=None, start="2024-01-01", valid=None, units="mm/day") -> xr.Dataset:
    """District daily rainfall as the zonal engine hands it to triggers: (time, district)."""
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[:, None]
    districts = districts or [f"d{i}" for i in range(v.shape[1])]
    valid = np.where(np.isnan(v), 0.0, 1.0) if valid is None else np.asarray(valid, dtype=float).reshape(v.shape)
    t = pd.date_range(start, periods=v.shape[0], freq="D")
    return xr.Dataset(
        {"mean": (("time", "district"), v, {"units": units}), "valid_fraction": (("time", "district"), valid)},
        coords={"time": t, "district": districts},
    )


def product(phases, **kw) -> WeatherIndexParams:
    return WeatherIndexParams(id=kw.pop("id", "rain"), trigger="weather_index", sum_insured_per_ha=6_000_000,
                              phases=phases, **kw)


def evaluate(params, ds, cohorts=("2024-01-01",)) -> xr.Dataset:
    inputs = TriggerInputs(season=Season("t", START, START + 120, 2024),
                           cohorts=np.array(cohorts, dtype="datetime64[D]"),
                           district_ids=ds["district"].values, series={"rainfall": ds})
    return WeatherIndexTrigger().evaluate(params, inputs).data


TICK = dict(name="p", start_day=0, end_day=10, index="total", direction="below", strike=100, exit=50, weight=1.0)


# ---- the worked example of the product specification: strike 100, exit 50, liability 50,000
@pytest.mark.parametrize("realized, payout", [(90, 10_000), (50, 50_000), (20, 50_000), (100, 0), (130, 0), (75, 25_000)])
def test_tick_contract_worked_example(realized, payout):
    ds = rain_series(np.full(10, realized / 10))
    rate = float(evaluate(product([TICK]), ds)["payout_rate"].item())
    assert round(rate * 50_000) == payout


# ---- indices by hand
def test_total_sums_the_window():
    assert total(np.array([[1.0, 2.0, 3.5]])).tolist() == [6.5]


def test_max_n_day_finds_largest_consecutive_total():
    assert max_n_day(np.array([1.0, 5.0, 10.0, 2.0, 9.0]), 2).item() == 15.0
    assert max_n_day(np.array([1.0, 5.0, 10.0, 2.0, 9.0]), 3).item() == 21.0


def test_dry_spell_is_longest_run_below_threshold():
    w = np.array([0.0, 0.5, 3.0, 0.0, 0.0, 0.0, 2.0, 0.2])
    assert dry_spell(w, 1.0).item() == 3.0
    assert dry_spell(np.zeros(7), 1.0).item() == 7.0
    assert dry_spell(np.full(7, 5.0), 1.0).item() == 0.0
    assert dry_spell(np.array([1.0, 0.99, 1.0]), 1.0).item() == 1.0  # 1.0 mm is not dry (strictly below)


def test_rainy_days_counts_days_at_or_above_threshold():
    assert rainy_days(np.array([0.0, 1.0, 2.5, 0.9]), 1.0).item() == 2.0


@pytest.mark.parametrize("func, kw", [(total, {}), (dry_spell, {"dry_threshold": 1.0}),
                                      (rainy_days, {"wet_threshold": 1.0}), (max_n_day, {"n": 2})])
def test_missing_day_gives_no_index(func, kw):
    w = np.array([3.0, np.nan, 0.0, 4.0])
    assert np.isnan(func(w, **kw))


def test_window_index_cuts_each_cohort_window_from_one_series():
    x = np.arange(30, dtype=float)[None, :]  # one district, day t has t mm
    got = window_index(x, np.array([0, 5, 25]), 2, 6, total)
    assert got[0, :2].tolist() == [2 + 3 + 4 + 5, 7 + 8 + 9 + 10]
    assert np.isnan(got[0, 2])  # window 27..30 leaves the 30-day series: not assessable


# ---- product evaluation
def test_phases_add_up_and_are_capped_by_season_cap():
    rain = np.r_[np.full(10, 6.0), np.zeros(20)]  # 60 mm in phase 1, then a 20-day dry spell
    phases = [TICK | {"name": "veg", "weight": 0.6},
              dict(name="dry", start_day=10, end_day=30, index="dry_spell", dry_threshold=1.0, direction="above",
                   strike=5, exit=15, weight=0.6)]
    ds = evaluate(product(phases, season_cap=1.0), rain_series(rain))
    # veg: (100-60)/50 = 0.8 x 0.6 = 0.48 ; dry spell 20 >= exit 15 -> 1.0 x 0.6 = 0.6 ; sum 1.08 -> cap 1.0
    assert ds["phase_rate"].sel(phase="veg").item() == pytest.approx(0.48)
    assert ds["phase_rate"].sel(phase="dry").item() == pytest.approx(0.6)
    assert ds["payout_rate"].item() == pytest.approx(1.0)
    ds2 = evaluate(product(phases, season_cap=0.75), rain_series(rain))
    assert ds2["payout_rate"].item() == pytest.approx(0.75)


def test_step_curve_follows_the_band_table():
    # Saskatchewan-style schedule on the window total (percent of a 100 mm normal)
    bands = [{"max": 32, "rate": 1.0}, {"min": 50, "max": 52, "rate": 0.55},
             {"min": 70, "max": 72, "rate": 0.175}, {"min": 80, "rate": 0.0}]
    phase = dict(name="s", start_day=0, end_day=10, index="total", direction="below", strike=80,
                 weight=1.0, curve="step", bands=bands)
    for realized, rate in [(71, 0.175), (51, 0.55), (20, 1.0), (85, 0.0), (60, 0.0)]:
        got = evaluate(product([phase]), rain_series(np.full(10, realized / 10)))["payout_rate"].item()
        assert got == pytest.approx(rate), realized


def test_binary_curve_pays_all_or_nothing():
    phase = dict(name="b", start_day=0, end_day=5, index="max_n_day", n=2, direction="above", strike=100,
                 weight=0.5, curve="binary")
    flood = evaluate(product([phase]), rain_series([10, 60, 45, 0, 0]))
    calm = evaluate(product([phase]), rain_series([10, 60, 40, 0, 0]))
    assert flood["payout_rate"].item() == 0.5 and calm["payout_rate"].item() == 0.0


def test_missing_rain_is_flagged_not_paid():
    rain = np.full((10, 2), 2.0)
    rain[4, 1] = np.nan  # one missing day in district d1's window
    ds = evaluate(product([TICK]), rain_series(rain))
    assert ds["payout_rate"].sel(district="d0").item() == pytest.approx(1.0)  # 20 mm: a real drought, paid
    assert np.isnan(ds["payout_rate"].sel(district="d1").item())
    assert bool(ds["flagged"].sel(district="d1")) and not bool(ds["flagged"].sel(district="d0"))


def test_day_with_too_little_valid_area_counts_as_missing():
    rain = np.full(10, 20.0)
    valid = np.ones(10)
    valid[3] = 0.3  # only 30 % of the district had data that day
    ds = evaluate(product([TICK], min_valid_fraction=0.5), rain_series(rain, valid=valid))
    assert np.isnan(ds["payout_rate"].item())
    ds = evaluate(product([TICK], min_valid_fraction=0.25), rain_series(rain, valid=valid))
    assert ds["payout_rate"].item() == 0.0
    assert ds["valid_fraction"].item() == pytest.approx((9 + 0.3) / 10)


def test_sowing_cohorts_match_a_direct_computation_per_cohort():
    rng = np.random.default_rng(1)
    rain = rng.gamma(0.6, 12.0, size=(60, 3))
    cohorts = ["2024-01-01", "2024-01-08", "2024-01-20"]
    ds = evaluate(product([TICK | {"start_day": 3, "end_day": 23}], anchor="sowing_date"), rain_series(rain), cohorts)
    for j, c in enumerate(cohorts):
        off = (np.datetime64(c) - START).astype(int)
        expected_total = rain[off + 3: off + 23].sum(axis=0)
        np.testing.assert_allclose(ds["index_value"].isel(phase=0, cohort=j).values, expected_total)
        np.testing.assert_allclose(ds["payout_rate"].isel(cohort=j).values,
                                   np.clip((100 - expected_total) / 50, 0, 1))


def test_dask_input_stays_lazy_and_matches_numpy():
    rng = np.random.default_rng(2)
    rain = rng.gamma(0.6, 12.0, size=(40, 7))
    eager = evaluate(product([TICK]), rain_series(rain), ["2024-01-01", "2024-01-05"])
    calls = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(1)

    lazy_in = rain_series(rain).chunk({"time": 8, "district": 3})
    with Count():
        lazy = evaluate(product([TICK]), lazy_in, ["2024-01-01", "2024-01-05"])
        assert isinstance(lazy["payout_rate"].data, da.Array)
        assert not calls, "evaluate() computed something before being asked"
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert lazy["payout_rate"].dims == ("district", "cohort")


def test_monthly_rainfall_is_refused_for_day_windows():
    from panen.engine.errors import DataQualityError

    with pytest.raises(DataQualityError, match="mm/month"):
        evaluate(product([TICK]), rain_series(np.full(10, 5.0), units="mm/month"))


# ---- term-sheet constraints checked at load time
@pytest.mark.parametrize("change, needle", [
    ({"exit": 120}, "exit must be < strike (100.0)"),
    ({"direction": "above"}, "exit must be > strike"),
    ({"end_day": 0}, "end_day"),
    ({"weight": 1.5}, "less than or equal to 1"),
    ({"index": "max_n_day"}, "n is required"),
    ({"index": "dry_spell"}, "dry_threshold is required"),
    ({"curve": "step"}, "bands are required"),
    ({"exit": None}, "exit is required"),
])
def test_bad_phase_parameters_are_rejected_with_the_range(change, needle):
    with pytest.raises(ValidationError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        product([TICK | change])


def test_duplicate_phase_names_are_rejected():
    with pytest.raises(ValidationError, match="unique"):
        product([TICK, TICK])


# ---- trigger design hooks: the plugin's own curves on stored index values
BINARY = dict(name="spell", start_day=0, end_day=10, index="dry_spell", dry_threshold=1.0, direction="above",
              strike=4, curve="binary", weight=0.3)
# Saskatchewan-style deficit schedule; its trigger point (top of the highest paying band) is 72
STEP = dict(name="sask", start_day=0, end_day=10, index="total", direction="below", strike=72, curve="step",
            weight=0.5, bands=[{"max": 32, "rate": 1.0}, {"min": 50, "max": 52, "rate": 0.55},
                               {"min": 70, "max": 72, "rate": 0.175}, {"min": 80, "rate": 0.0}])


def test_rates_from_index_gives_evaluates_phase_rates_for_binary_and_step_phases():
    # d0: 10 days of 7.1 mm → total 71 (band [70, 72): 0.175), no dry day → spell 0 (no pay)
    # d1: 5.1 mm on days 0–9 but dry days 2–6 → total 25.5 (band < 32: 1.0), spell 5 > 4 → 1
    d1 = np.full(10, 5.1)
    d1[2:7] = 0.0
    ds = rain_series(np.stack([np.full(10, 7.1), d1], axis=1))
    params = product([BINARY, STEP])
    out = evaluate(params, ds)
    expected = np.array([[0.0, 0.3], [0.5 * 0.175, 0.5 * 1.0]])  # (phase, district) = weight × curve
    np.testing.assert_allclose(out["phase_rate"].values[:, :, 0], expected)
    again = WeatherIndexTrigger.rates_from_index(params, out["index_value"])
    np.testing.assert_array_equal(again.values, out["phase_rate"].values)
    # a batch of candidate term sheets: one evaluation, a leading candidate dim
    lower = WeatherIndexTrigger.with_design(params, _moved(params, sask=60.0, spell=5.0))
    batch = WeatherIndexTrigger.rates_from_index([params, lower], out["index_value"].sel(phase=["sask"]))
    # moved down by 12: bands < 20 → 1, [38, 40) → .55, [58, 60) → .175; 71 and 25.5 pay nothing
    np.testing.assert_allclose(batch.values[:, 0, :, 0], [[0.5 * 0.175, 0.5], [0.0, 0.0]])
    assert np.isnan(WeatherIndexTrigger.rates_from_index(params, out["index_value"].where(False)).values).all()


def _moved(params, **strikes):
    from dataclasses import replace

    from panen.engine.api import DesignTerms

    terms = WeatherIndexTrigger.design_terms(params)
    return DesignTerms(tuple(replace(p, strike=strikes.get(p.name, p.strike)) for p in terms.phases),
                       terms.season_cap)


def test_design_terms_and_with_design_keep_each_phases_curve():
    params = product([TICK, BINARY, STEP], season_cap=0.9)
    terms = WeatherIndexTrigger.design_terms(params)
    assert [(p.name, p.curve, p.strike, p.exit) for p in terms.phases] == [
        ("p", "linear", 100.0, 50.0), ("spell", "binary", 4.0, None), ("sask", "step", 72.0, None)]
    assert terms.season_cap == 0.9
    assert WeatherIndexTrigger.with_design(params, terms) == params  # unchanged terms: the same term sheet
    moved = WeatherIndexTrigger.with_design(params, _moved(params, sask=62.5, spell=6.0))
    step = moved.phases[2]
    assert step.curve == "step" and step.strike == 62.5
    assert [(b.min, b.max, b.rate) for b in step.bands] == [
        (-np.inf, 22.5, 1.0), (40.5, 42.5, 0.55), (60.5, 62.5, 0.175), (70.5, np.inf, 0.0)]
    assert moved.phases[1].curve == "binary" and moved.phases[1].strike == 6.0 and moved.phases[1].exit is None
    assert moved.phases[0] == params.phases[0] and params.phases[2].strike == 72  # the input is not modified


def test_with_design_refuses_to_change_a_phase_kind_or_an_open_schedule():
    from dataclasses import replace

    from panen.engine.api import DesignTerms
    from panen.engine.errors import ConfigError

    params = product([TICK, BINARY])
    terms = WeatherIndexTrigger.design_terms(params)
    as_linear = DesignTerms((terms.phases[0], replace(terms.phases[1], curve="linear", exit=10.0)))
    with pytest.raises(ConfigError, match="never changes a phase's kind"):
        WeatherIndexTrigger.with_design(params, as_linear)
    with pytest.raises(ConfigError, match="has no exit to set"):
        WeatherIndexTrigger.with_design(params, DesignTerms((terms.phases[0], replace(terms.phases[1], exit=10.0))))
    with pytest.raises(ConfigError, match="exit must be < strike"):
        WeatherIndexTrigger.with_design(params, DesignTerms((replace(terms.phases[0], exit=120.0), terms.phases[1])))
    always = product([{**STEP, "bands": [{"min": 0, "rate": 0.5}]}])  # pays at any index: nothing to move
    with pytest.raises(ConfigError, match="no trigger point"):
        WeatherIndexTrigger.design_terms(always)
