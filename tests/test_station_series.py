"""Reference and back-up stations, satellite gap filling with bias adjustment, and the audit trail.

Hand tables: positions whose distances are known (one degree of latitude is 2πR/360 =
111.195 km), series whose fills can be read off by eye, bias factors set by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import SHARED_DATA
from panen.engine.errors import InputError
from panen.engine.maths.stations import (
    SOURCE_MISSING,
    SOURCE_SATELLITE,
    assign_stations,
    bias_adjust,
    haversine_km,
    settlement_series,
)

BMKG = SHARED_DATA / "rainfall" / "bmkg_jabar_daily_2024"


def stations(rain: dict[str, list[float]], pos: dict[str, tuple[float, float]] | None = None,
             start: str = "2024-01-01") -> xr.Dataset:
    ids = sorted(rain)
    n = len(next(iter(rain.values())))
    pos = pos or {s: (0.0, float(i)) for i, s in enumerate(ids)}
    return xr.Dataset({"rain": (("station", "time"), np.array([rain[s] for s in ids], float))},
                      coords={"station": ids, "time": pd.date_range(start, periods=n),
                              "lat": ("station", [pos[s][0] for s in ids]),
                              "lon": ("station", [pos[s][1] for s in ids])})


def test_one_degree_of_latitude_is_111_195_km():
    assert haversine_km(0.0, 0.0, 1.0, 0.0) == pytest.approx(2 * np.pi * 6371.0088 / 360, rel=1e-12)


def test_nearest_station_is_the_reference_and_the_next_are_back_ups_within_the_limit():
    ds = stations({"A": [0], "B": [0], "C": [0], "D": [0]},
                  pos={"A": (0.0, 0.1), "B": (0.0, 0.3), "C": (0.0, 0.2), "D": (0.0, 2.0)})
    zones = pd.DataFrame({"zone": ["z1"], "lat": [0.0], "lon": [0.0]})
    (a,) = assign_stations(zones, ds, max_distance_km=100.0, backups=5)
    assert (a.reference, a.backups) == ("A", ("C", "B"))  # D is 222 km away: never used
    assert a.distances_km == pytest.approx((11.1195, 22.239, 33.3585), rel=1e-4)
    with pytest.raises(InputError, match="z1 has no station within 5 km"):
        assign_stations(zones, ds, max_distance_km=5.0)


def test_equal_distances_go_to_the_lower_station_id():
    ds = stations({"B": [0], "A": [0]}, pos={"A": (0.0, -0.1), "B": (0.0, 0.1)})
    (a,) = assign_stations(pd.DataFrame({"zone": ["z"], "lat": [0.0], "lon": [0.0]}), ds, backups=1)
    assert (a.reference, a.backups) == ("A", ("B",))


def test_explicit_stations_and_back_ups_are_checked():
    ds = stations({"A": [0], "B": [0]})
    zones = pd.DataFrame({"zone": ["z1", "z2"], "station": ["A", "B"], "backup": ["B", None]})
    got = assign_stations(zones, ds, station_column="station", backup_column="backup")
    assert [(a.reference, a.backups) for a in got] == [("A", ("B",)), ("B", ())]
    with pytest.raises(InputError, match="station 'Q' is not in the station data"):
        assign_stations(pd.DataFrame({"zone": ["z"], "station": ["Q"]}), ds, station_column="station")
    with pytest.raises(InputError, match="backs itself up"):
        assign_stations(pd.DataFrame({"zone": ["z"], "station": ["A"], "b": ["A"]}), ds, station_column="station",
                        backup_column="b")
    with pytest.raises(InputError, match="listed twice"):
        assign_stations(pd.DataFrame({"zone": ["z", "z"], "station": ["A", "B"]}), ds, station_column="station")


def test_a_missing_day_comes_from_the_first_back_up_that_has_it_and_is_audited():
    nan = np.nan
    ds = stations({"R": [1, nan, nan, nan, 5], "B1": [9, nan, 3, nan, 9], "B2": [9, 2, 7, nan, 9]})
    zones = pd.DataFrame({"zone": ["z"], "station": ["R"], "backup": ["B1;B2"]})
    series, filled = settlement_series(ds, assign_stations(zones, ds, station_column="station",
                                                           backup_column="backup"))
    assert series["mean"].sel(district="z").values.tolist()[:3] == [1.0, 2.0, 3.0]
    assert np.isnan(series["mean"].sel(district="z").values[3])
    assert series["source"].sel(district="z").values.tolist() == [0, 2, 1, SOURCE_MISSING, 0]
    assert series["valid_fraction"].sel(district="z").values.tolist() == [1, 1, 1, 0, 1]
    assert filled[["date", "source"]].values.tolist() == [["2024-01-02", "B2"], ["2024-01-03", "B1"],
                                                           ["2024-01-04", "missing"]]


def test_ratio_bias_adjustment_scales_by_the_month_s_mean_ratio():
    days = pd.date_range("2024-01-01", "2024-02-29")
    months = days.month.to_numpy()
    sat = np.where(months == 1, 4.0, 3.0)
    stn = np.where(months == 1, 8.0, 3.0)  # January: station = 2 × satellite; February: equal
    stn[[5, 40]] = np.nan  # two unmeasured station days
    adj = bias_adjust(stn, sat, months, method="ratio", min_overlap=20)
    assert adj[5] == 8.0 and adj[40] == 3.0
    assert np.isnan(bias_adjust(stn, sat, months, method="ratio", min_overlap=31)).all()  # too little overlap


def test_quantile_mapping_maps_a_shifted_distribution_and_extrapolates_the_edge_correction():
    rng = np.random.default_rng(1)
    sat = rng.gamma(0.8, 10.0, 2000)
    stn = sat + 1.0
    months = np.ones(sat.size, int)
    adj = bias_adjust(np.append(stn, np.nan), np.append(sat, sat.max() + 50.0), np.append(months, 1), method="quantile")
    assert np.allclose(adj[:-1], sat + 1.0, atol=1e-9)
    assert adj[-1] == pytest.approx(sat.max() + 51.0)


def test_the_satellite_fills_last_after_bias_adjustment():
    nan = np.nan
    n = 40
    ref = np.full(n, 2.0)
    ref[[10, 20]] = nan
    ds = stations({"R": ref.tolist(), "B": [nan] * 20 + [7.0] * 20})
    sat = xr.DataArray(np.full((2, n), 1.0), dims=("station", "time"),
                       coords={"station": ["B", "R"], "time": ds["time"].values})
    zones = pd.DataFrame({"zone": ["z"], "station": ["R"], "backup": ["B"]})
    series, filled = settlement_series(ds, assign_stations(zones, ds, station_column="station",
                                                           backup_column="backup"),
                                       satellite=sat, bias="ratio", min_overlap=20)  # 29 January days
    z = series.sel(district="z")
    assert float(z["mean"][10]) == 2.0 and int(z["source"][10]) == SOURCE_SATELLITE  # 1 × (2 / 1)
    assert float(z["mean"][20]) == 7.0 and int(z["source"][20]) == 1  # the back-up comes before the satellite
    assert filled["source"].tolist() == ["satellite:ratio", "B"]


def test_bandung_2024_gaps_are_filled_from_its_neighbours():
    if not BMKG.is_dir():
        pytest.skip(f"real BMKG exports {BMKG} are absent")
    from panen.datasets.stations import FLAGS, read_bmkg_exports

    ds = read_bmkg_exports(BMKG)
    bandung = ds.sel(station="96783")
    zones = pd.DataFrame({"zone": ["bandung"], "lat": [float(bandung["lat"])], "lon": [float(bandung["lon"])]})
    (a,) = assign_stations(zones, ds, max_distance_km=150.0, backups=2)
    assert a.reference == "96783" and a.distances_km[0] == 0.0
    series, filled = settlement_series(ds, [a])
    measured = ds["flag"] == FLAGS.index("measured")
    chain = measured.sel(station=[a.reference, *a.backups])
    ref_missing = int((~chain.sel(station=a.reference)).sum())
    assert ref_missing == 56  # 32 days 8888 and 24 days '-' at the Bandung station
    still = int((~chain.any("station")).sum())
    assert len(filled) == ref_missing
    assert int((filled["source"] == "missing").sum()) == still
    assert int(np.isnan(series["mean"].values).sum()) == still < ref_missing
