"""The crop calendar: phases on calendar dates or dekads, and phases counted from the onset of the rains.

Hand tables on synthetic district series (every day's rain chosen so that windows, onsets
and false starts can be read off by eye), and the onset on the real daily CHIRPS pixel at
Semarang, checked against the raw numbers for El Niño and La Niña years.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SHARED_DATA
from pydantic import ValidationError

from panen.engine.api import Season, TriggerInputs
from panen.engine.maths.onset import STATUS, detect_onset
from panen.triggers.weather import Phase, WeatherIndexParams, WeatherIndexTrigger, nearest_date

SEMARANG = SHARED_DATA / "rainfall" / "chirps_semarang_point_daily_1981_2021.csv"


def day(s: str) -> np.datetime64:
    return np.datetime64(s, "D")


def phase(**kw) -> dict:
    base = {"name": "p", "index": "total", "direction": "below", "strike": 10_000, "exit": 0, "weight": 1.0}
    return base | kw


def series(rain: dict[str, np.ndarray], start: str) -> xr.Dataset:
    ids = list(rain)
    values = np.stack([np.asarray(rain[k], float) for k in ids], axis=1)
    return xr.Dataset({"mean": (("time", "district"), values, {"units": "mm/day"}),
                       "valid_fraction": (("time", "district"), np.isfinite(values).astype(float))},
                      coords={"time": pd.date_range(start, periods=values.shape[0]), "district": ids})


def evaluate(params: WeatherIndexParams, ds: xr.Dataset, cohorts=("2023-11-01",)) -> xr.Dataset:
    c = np.array(cohorts, dtype="datetime64[D]")
    inputs = TriggerInputs(season=Season("t", c[0], c[0] + 150, 2024), cohorts=c,
                           district_ids=ds["district"].values, series={"rainfall": ds})
    return WeatherIndexTrigger().evaluate(params, inputs).data


# --------------------------------------------------------------------------- calendar windows
def test_a_calendar_window_is_the_season_s_dates_across_the_new_year():
    p = Phase(**phase(start="11-01", end="02-01"))
    assert p.bounds(day("2023-11-15")) == (day("2023-11-01"), day("2024-02-01"))
    assert p.bounds(day("2024-10-20")) == (day("2024-11-01"), day("2025-02-01"))  # the nearest 1 November
    assert Phase(**phase(start="02-01", end="03-01")).bounds(day("2024-01-10")) == (day("2024-02-01"),
                                                                                     day("2024-03-01"))  # 29 days
    assert str(nearest_date(day("2022-11-01"), 2, 29)) == "2023-03-01"  # 29 February in a common year is 1 March


def test_dekads_are_calendar_windows_of_whole_dekads():
    # dekad 31 = 1-10 November; dekad 3 = 21-31 January: the window ends on 1 February
    p = Phase(**phase(start_dekad=31, end_dekad=3))
    assert p.bounds(day("2023-11-20")) == (day("2023-11-01"), day("2024-02-01"))
    assert Phase(**phase(start_dekad=5, end_dekad=5)).bounds(day("2024-02-05")) == (day("2024-02-11"),
                                                                                     day("2024-02-21"))


@pytest.mark.parametrize("bad, message", [
    ({"start": "11-01"}, "one pair"),
    ({"start_day": 0, "end_day": 10, "start": "11-01", "end": "12-01"}, "one pair"),
    ({"start": "13-01", "end": "12-01"}, "not a day of the year"),
    ({"start": "1-11", "end": "12-01"}, "'MM-DD'"),
    ({"start_dekad": 0, "end_dekad": 3}, "greater than or equal to 1"),
])
def test_a_window_given_wrong_is_refused(bad, message):
    with pytest.raises(ValidationError, match=message):
        Phase(**phase(**bad))


def test_a_calendar_phase_measures_the_same_days_as_the_equivalent_day_phase():
    rng = np.random.default_rng(3)
    rain = rng.gamma(0.6, 12.0, 200)
    ds = series({"A": rain, "B": rain[::-1]}, "2023-10-01")
    by_days = evaluate(WeatherIndexParams(id="w", trigger="weather_index", sum_insured_per_ha=1,
                                          phases=[phase(start_day=0, end_day=92)]), ds)
    by_date = evaluate(WeatherIndexParams(id="w", trigger="weather_index", sum_insured_per_ha=1,
                                          phases=[phase(start="11-01", end="02-01")]), ds)
    by_dekad = evaluate(WeatherIndexParams(id="w", trigger="weather_index", sum_insured_per_ha=1,
                                           phases=[phase(start_dekad=31, end_dekad=3)]), ds)
    expect = [rain[31:123].sum(), rain[::-1][31:123].sum()]  # 1 Nov 2023 is day 31 of the series; 92 days
    for out in (by_days, by_date, by_dekad):
        assert out["index_value"].sel(phase="p").values.ravel() == pytest.approx(expect, rel=1e-12)


# --------------------------------------------------------------------------- onset-anchored phases
ONSET = {"search_start": "10-01", "deadline": "12-31", "failed_rate": 0.3}


def onset_params(**kw) -> WeatherIndexParams:
    return WeatherIndexParams(id="w", trigger="weather_index", sum_insured_per_ha=1_000_000, onset=ONSET | kw,
                              phases=[phase(name="establishment", start_day=0, end_day=30, strike=300, exit=100)])


def test_phases_count_from_each_district_s_onset_and_a_failed_onset_pays_its_rate():
    n = 240  # 1 Sep 2023 .. 27 Apr 2024
    a = np.full(n, 2.0)  # district A: 2 mm a day; the rains start on 20 October (day 49)
    a[49:52] = [10.0, 8.0, 6.0]
    a[:49] = 0.0
    b = np.full(n, 0.4)  # district B: never 1 mm a day: a failed onset
    c = a.copy()
    c[40] = np.nan  # district C: a missing day in the search with no onset before it: undetermined
    ds = series({"A": a, "B": b, "C": c}, "2023-09-01")
    out = evaluate(onset_params(), ds)
    idx = out["index_value"].sel(cohort="2023-11-01")
    # A: onset 20 Oct; window 20 Oct + [0, 30): 10 + 8 + 6 + 27 days x 2 mm = 78 mm (below 100: full weight)
    assert float(idx.sel(phase="establishment", district="A")) == pytest.approx(78.0)
    assert float(idx.sel(phase="onset", district="A")) == 19  # days after the 1 October search start
    assert float(out["payout_rate"].sel(district="A").item()) == pytest.approx(1.0)
    # B: failed onset: pays failed_rate, the establishment phase owes nothing
    assert float(out["payout_rate"].sel(district="B").item()) == pytest.approx(0.3)
    assert float(out["phase_rate"].sel(phase="establishment", district="B").item()) == 0.0
    assert float(idx.sel(phase="onset", district="B")) == 92  # 1 Oct .. 31 Dec: no onset in 92 days
    # C: undetermined: withheld
    assert bool(out["flagged"].sel(district="C").item())


def test_an_onset_search_past_the_data_is_open_not_failed():
    ds = series({"A": np.full(60, 0.2)}, "2023-09-01")  # data end 30 October, before the deadline
    out = evaluate(onset_params(), ds)
    assert bool(out["flagged"].item())  # not paid as a failed onset: the season is still open


def test_onset_needs_daily_rain_and_cannot_be_redesigned():
    from panen.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="onset-anchored"):
        WeatherIndexTrigger.design_terms(onset_params())


@pytest.mark.skipif(not SEMARANG.is_file(), reason="real CHIRPS Semarang point absent")
def test_onset_at_semarang_hand_checked_against_the_raw_chirps_days():
    s = pd.read_csv(SEMARANG, parse_dates=["date"]).set_index("date")["precip_mm"]
    full = s.reindex(pd.date_range(s.index.min(), s.index.max()))
    assert full.notna().all() and len(full) == 14_975  # 1981-01-01 .. 2021-12-31, gap-free
    x = full.to_numpy()[None, :]

    def onset(year: int):
        a = full.index.get_loc(pd.Timestamp(year, 9, 1))
        e = full.index.get_loc(pd.Timestamp(year, 12, 31))
        r = detect_onset(x, a, e)
        return (STATUS[int(r.status[0])], full.index[r.day[0]].strftime("%Y-%m-%d") if r.day[0] >= 0 else None,
                int(r.false_starts[0]))

    # 1982 (El Niño): 34.0 mm on 12 Oct, then 15-21 Oct dry: a false start; then 6-8 Nov 16.3, 18.7, 16.3 mm
    assert onset(1982) == ("onset", "1982-11-06", 1)
    # 1997 (El Niño): 26.7 mm on 14 Nov (the 12th and 13th were dry), no 7-day spell in the next 30 days
    assert onset(1997) == ("onset", "1997-11-14", 0)
    # 2010 (La Niña): 20.4 mm on 6 Sep, 0 and 20.4 after; the longest dry run before 8 Oct is 27-30 Sep (4 days)
    assert onset(2010) == ("onset", "2010-09-06", 0)
    got = {y: onset(y) for y in range(1981, 2021)}
    assert all(status == "onset" for status, _, _ in got.values())  # every season's rains came by 31 Dec
    days = {y: (pd.Timestamp(got[y][1]) - pd.Timestamp(y, 9, 1)).days for y in got}
    q75 = np.percentile(list(days.values()), 75)
    # the three strong El Niño years (1982, 1997, 2015) all have a later onset than three seasons in four
    assert all(days[y] > q75 for y in (1982, 1997, 2015))
    assert np.median(list(days.values())) == 46  # 17 October, the middle of the 40 seasons


def test_onset_on_the_zambia_daily_grid_hand_checked_at_two_pixels():
    path = SHARED_DATA / "rainfall" / "chirps_zambia_daily" / "chirps_zambia_daily_20161025_20161121.nc"
    if not path.is_file():
        pytest.skip(f"real CHIRPS Zambia daily grid {path} is absent")
    from panen.datasets.gridded import open_rainfall
    from panen.engine.maths.onset import OnsetDefinition

    da = open_rainfall(path).load()  # 25 Oct - 21 Nov 2016
    short = OnsetDefinition(check_days=10, dry_days=4)  # 28 days of data: a 10-day check window
    x = da.values.reshape(da.sizes["time"], -1).T
    land = np.isfinite(x).all(axis=1)
    r = detect_onset(np.where(land[:, None], x, np.nan), 0, 10, short)
    counts = {s: int(((r.status == k) & land).sum()) for k, s in enumerate(STATUS)}
    assert counts["undetermined"] == counts["open"] == 0 and counts["onset"] + counts["failed"] == int(land.sum())
    assert counts["failed"] > counts["onset"] > 0  # the 2016/17 rains had mostly not begun by 4 November

    def at(lat, lon):
        v = da.sel(y=lat, x=lon, method="nearest").values
        out = detect_onset(v[None, :], 0, 10, short)
        return STATUS[int(out.status[0])], int(out.day[0]), int(out.false_starts[0])

    # 9.175 S 25.725 E: 5.5 + 5.5 + 11.0 = 22 mm from 28 Oct (day 3); days 6-15 hold no 4 dry days in a row
    assert at(-9.175, 25.725) == ("onset", 3, 0)
    # 9.325 S 25.575 E: 14.2 + 0 + 7.6 mm from 25 Oct, then 31 Oct - 3 Nov dry: a false start; 7.6 + 15.1 + 0 mm
    # from 29 Oct (day 4), after which the longest dry run is 3 days
    assert at(-9.325, 25.575) == ("onset", 4, 1)
