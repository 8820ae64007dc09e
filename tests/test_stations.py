"""Station rainfall readers: raw BMKG exports as they come, and tidy station tables.

Expectations are read off the files by hand (the cells quoted in each test), never from
the reader: a missing-data code is never rain, a day without a row is absent, a value that
is neither a number nor a known marker is an error naming file, line and column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA
from panen.datasets.stations import FLAGS, read_bmkg_exports, read_station_table
from panen.engine.errors import InputError

SHARED = SHARED_DATA / "rainfall" / "bmkg_jabar_daily_2024"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real BMKG exports {SHARED} are absent")

HEADER = "TANGGAL,TN,TX,TAVG,RH_AVG,RR,SS,FF_X,DDD_X,FF_AVG,DDD_CAR,,ID WMO,96999\n"


def flag(ds, station, day) -> str:
    return FLAGS[int(ds["flag"].sel(station=station, time=day))]


def export(tmp_path: Path, rr: list[str], *, name="x.csv", meta: dict | None = None, dates: list[str] | None = None,
           header: str = HEADER) -> Path:
    """A small BMKG-shaped export: the RR cells given, the metadata block on the right."""
    block = {"Nama Stasiun": "Stasiun Uji", "Periode": "01-01-2024 - 05-01-2024", "Lintang": "-670.000",
             "Bujur": "10.685.000", "Elevasi": "920 Meter", **(meta or {})}
    block = [(k, v) for k, v in block.items() if v is not None]
    dates = dates or [f"{d:02d}-01-2024" for d in range(1, len(rr) + 1)]
    lines = [header]
    for i, (d, r) in enumerate(zip(dates, rr)):
        k, v = block[i] if i < len(block) else ("", "")
        lines.append(f'{d},"19,6","25,8","22,2",92,{r},"1,2",2,330,0,C,,{k},{v}\n')
    for k, v in block[len(rr):]:
        lines.append(f",,,,,,,,,,,,{k},{v}\n")
    p = tmp_path / name
    p.write_text("".join(lines), encoding="utf-8")
    return p


# --------------------------------------------------------------------------- real exports
@needs_shared
def test_real_bmkg_exports_read_with_their_metadata_and_missing_codes():
    ds = read_bmkg_exports(SHARED)
    assert sorted(ds["station"].values.tolist()) == ["96751", "96753", "96783", "96791", "97692"]
    citeko = ds.sel(station="96751")
    assert str(citeko["name"].values) == "Stasiun Meteorologi Citeko"
    # "Lintang,-670.000" / "Bujur,10.685.000" / "Elevasi,920 Meter" in the export's side block
    assert float(citeko["lat"]) == pytest.approx(-6.7) and float(citeko["lon"]) == pytest.approx(106.85)
    assert float(citeko["elevation"]) == 920.0
    # 01-01-2024 RR "23,5"; 04-01-2024 RR 0; 05-01-2024 RR 64 (decimal commas, whole numbers)
    assert float(citeko["rain"].sel(time="2024-01-01")) == 23.5
    assert float(citeko["rain"].sel(time="2024-01-04")) == 0.0
    assert float(citeko["rain"].sel(time="2024-01-05")) == 64.0
    assert ds.sizes["time"] == 366  # the stated period, 2024 being a leap year
    assert ds["time"].values[0] == np.datetime64("2024-01-01") and ds["time"].values[-1] == np.datetime64("2024-12-31")


@needs_shared
def test_real_bmkg_codes_are_never_rain_and_every_day_is_accounted_for():
    ds = read_bmkg_exports(SHARED)
    bandung = ds.sel(station="96783")
    # 31-12-2024 at Bandung: RR 8888, "data tidak terukur"
    assert np.isnan(float(bandung["rain"].sel(time="2024-12-31")))
    assert flag(ds, "96783", "2024-12-31") == "unmeasured"
    raw = pd.read_csv(SHARED / "Data_BMKG_-_Kota_Bandung.csv", dtype=str, keep_default_na=False)["RR"]
    f = bandung["flag"].values
    assert int((f == FLAGS.index("unmeasured")).sum()) == int((raw == "8888").sum()) == 32
    assert int((f == FLAGS.index("no_report")).sum()) == int((raw == "-").sum()) == 24
    assert int((f == FLAGS.index("measured")).sum()) == 366 - 32 - 24
    assert np.isnan(bandung["rain"].values[f != FLAGS.index("measured")]).all()
    assert not np.isnan(bandung["rain"].values[f == FLAGS.index("measured")]).any()
    # no measured value is a code
    assert not np.isin(ds["rain"].values, [8888.0, 9999.0]).any()


@needs_shared
def test_a_real_export_padded_with_blank_rows_keeps_366_days():
    ds = read_bmkg_exports(SHARED / "Data_BMKG_-_Kota_Bogor.csv")  # 6 rows of empty cells at the end
    assert ds.sizes == {"station": 1, "time": 366}
    assert (ds["flag"].values != FLAGS.index("absent")).all()


@needs_shared
def test_the_export_s_own_metadata_names_the_station_not_its_file_name():
    # "Data_BMKG_-_Kab._Cirebon.csv" holds WMO 97692, Stasiun Klimatologi Jayapura (Papua), as exported
    ds = read_bmkg_exports(SHARED / "Data_BMKG_-_Kab._Cirebon.csv")
    assert ds["station"].values.tolist() == ["97692"]
    assert str(ds["name"].values[0]) == "Stasiun Klimatologi Jayapura"
    assert float(ds["lat"][0]) == pytest.approx(-2.59231) and float(ds["lon"][0]) == pytest.approx(140.16792)


# --------------------------------------------------------------------------- messy and hostile exports
def test_codes_markers_blanks_absent_days_and_implausible_values(tmp_path):
    p = export(tmp_path, ['"12,5"', "8888", "9999", "-", "", "2500"],
               dates=["01-01-2024", "02-01-2024", "03-01-2024", "04-01-2024", "05-01-2024", "07-01-2024"],
               meta={"Periode": "01-01-2024 - 08-01-2024"})
    ds = read_bmkg_exports(p)
    got = [flag(ds, "96999", f"2024-01-0{d}") for d in range(1, 9)]
    assert got == ["measured", "unmeasured", "no_data", "no_report", "blank", "absent", "implausible", "absent"]
    assert float(ds["rain"].sel(station="96999", time="2024-01-01")) == 12.5
    assert int(np.isfinite(ds["rain"].values).sum()) == 1


def test_a_cell_that_is_not_rain_is_an_error_naming_file_line_and_column(tmp_path):
    p = export(tmp_path, ['"12,5"', "12 mm"])
    with pytest.raises(InputError) as e:
        read_bmkg_exports(p)
    text = str(e.value)
    assert str(p) in text and "line 3" in text and "'RR'" in text and "12 mm" in text


def test_a_bad_date_is_located(tmp_path):
    p = export(tmp_path, ["1", "2"], dates=["01-01-2024", "31-02-2024"])
    with pytest.raises(InputError, match=r"line 3.*'TANGGAL'.*not a date"):
        read_bmkg_exports(p)


def test_a_day_listed_twice_with_two_values_is_an_error_and_with_one_value_is_not(tmp_path):
    p = export(tmp_path, ["1", "2"], dates=["01-01-2024", "01-01-2024"])
    with pytest.raises(InputError, match="listed twice with different values"):
        read_bmkg_exports(p)
    q = export(tmp_path, ["1", "1"], dates=["01-01-2024", "01-01-2024"], name="y.csv")
    assert float(read_bmkg_exports(q)["rain"].sel(station="96999", time="2024-01-01")) == 1.0


@pytest.mark.parametrize("meta, message", [
    ({"Lintang": None}, "no 'Lintang'"),
    ({"Lintang": "-95,0"}, "Lintang"),
    ({"Bujur": "abc"}, "Bujur"),
    ({"Elevasi": "tinggi"}, "elevation"),
    ({"Periode": "31-12-2024 - 01-01-2024"}, "ends before it starts"),
])
def test_bad_metadata_is_refused(tmp_path, meta, message):
    with pytest.raises(InputError, match=message):
        read_bmkg_exports(export(tmp_path, ["1"], meta=meta))


def test_plain_decimal_coordinates_are_read_as_written(tmp_path):
    ds = read_bmkg_exports(export(tmp_path, ["1"], meta={"Lintang": '"-6,91472"', "Bujur": "107.60981"}))
    assert float(ds["lat"][0]) == pytest.approx(-6.91472) and float(ds["lon"][0]) == pytest.approx(107.60981)


def test_a_file_that_is_not_an_export_is_refused(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text("date,value\n2024-01-01,1\n")
    with pytest.raises(InputError, match="not a BMKG daily export"):
        read_bmkg_exports(p)
    q = tmp_path / "latin.csv"
    q.write_bytes(HEADER.encode() + b"01-01-2024,1,1,1,1,\xe9,1,1,1,1,C,,Lintang,-670.000\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_bmkg_exports(q)


def test_one_station_in_two_exports_joins_and_contradictions_are_refused(tmp_path):
    a = export(tmp_path, ["1", "2"], name="a.csv", meta={"Periode": "01-01-2024 - 02-01-2024"})
    b = export(tmp_path, ["2", "3"], name="b.csv", dates=["02-01-2024", "03-01-2024"],
               meta={"Periode": "02-01-2024 - 03-01-2024"})
    ds = read_bmkg_exports([a, b])
    assert ds["rain"].sel(station="96999").values.tolist() == [1.0, 2.0, 3.0]
    c = export(tmp_path, ["2", "3"], name="c.csv", dates=["02-01-2024", "03-01-2024"],
               meta={"Periode": "02-01-2024 - 03-01-2024", "Lintang": "-700.000"})
    with pytest.raises(InputError, match="other metadata"):
        read_bmkg_exports([a, c])


# --------------------------------------------------------------------------- tidy tables
def test_tidy_table_with_metadata_units_and_codes(tmp_path):
    data = tmp_path / "rain.csv"
    data.write_text("date,station_id,value\n2024-01-01,A,1.5\n2024-01-02,A,-99\n2024-01-01,B,0.2\n"
                    "2024-01-03,B,NA\n")
    meta = tmp_path / "stations.csv"
    meta.write_text("station_id,name,lat,lon,elevation\nA,Alpha,-6.9,107.6,768\nB,Beta,-6.5,106.8,250\n")
    ds = read_station_table(data, stations=meta, units="cm", missing_values=[-99])
    assert ds["rain"].sel(station="A").values.tolist()[0] == 15.0  # 1.5 cm
    assert flag(ds, "A", "2024-01-02") == "no_data" and flag(ds, "A", "2024-01-03") == "absent"
    assert flag(ds, "B", "2024-01-02") == "absent" and flag(ds, "B", "2024-01-03") == "no_report"
    assert float(ds["rain"].sel(station="B", time="2024-01-01")) == 2.0
    assert str(ds["name"].sel(station="B").values) == "Beta" and float(ds["elevation"].sel(station="A")) == 768.0


def test_tidy_parquet_reads_like_csv(tmp_path):
    frame = pd.DataFrame({"date": pd.to_datetime(["2024-01-01", "2024-01-02"]), "station_id": ["A", "A"],
                          "value": [3.0, None], "lat": [-6.9, -6.9], "lon": [107.6, 107.6]})
    p = tmp_path / "rain.parquet"
    frame.to_parquet(p)
    ds = read_station_table(p)
    assert ds["rain"].values.tolist()[0][0] == 3.0 and flag(ds, "A", "2024-01-02") == "blank"
    assert float(ds["lat"][0]) == -6.9


@pytest.mark.parametrize("body, message", [
    ("2024-01-01,A,abc\n", r"line 2.*'value'"),
    ("2024-13-01,A,1\n", r"line 2.*'date'"),
    ("01/01/2024,A,1\n", r"line 2.*'date'"),
    ("2024-01-01,,1\n", r"line 2.*empty station id"),
    ("2024-01-01,Z,1\n", r"line 2.*not in the station metadata"),
    ("2024-01-01,A,1\n\n2024-01-01,A,2\n", r"line 4.*listed twice"),
    ("2024-01-01,A,1,9\n", r"line 2.*4 fields"),
])
def test_tidy_table_errors_are_located(tmp_path, body, message):
    data = tmp_path / "rain.csv"
    data.write_text("date,station_id,value\n" + body)
    meta = tmp_path / "stations.csv"
    meta.write_text("station_id,name,lat,lon,elevation\nA,Alpha,-6.9,107.6,768\n")
    with pytest.raises(InputError, match=message):
        read_station_table(data, stations=meta)


def test_tidy_table_refuses_unknown_units_and_contradicting_metadata(tmp_path):
    data = tmp_path / "rain.csv"
    data.write_text("date,station_id,value,lat\n2024-01-01,A,1,-6.9\n2024-01-02,A,1,-7.0\n")
    with pytest.raises(InputError, match="units 'furlongs'"):
        read_station_table(data, units="furlongs")
    with pytest.raises(InputError, match=r"line 3.*other metadata"):
        read_station_table(data)


# --------------------------------------------------------------------------- the satellite pixel of each station
def test_the_fill_grid_is_sampled_at_each_station_s_own_pixel(tmp_path):
    import xarray as xr

    from panen.datasets.readers import StationsReader, StationsSpec

    days = pd.date_range("2024-01-01", periods=5)
    lat, lon = np.array([-6.0, -6.1, -6.2]), np.array([106.0, 106.1, 106.2])
    values = np.arange(5 * 3 * 3, dtype="float32").reshape(5, 3, 3)  # value = 9 t + 3 i + j
    xr.Dataset({"precip": (("time", "lat", "lon"), values, {"units": "mm/day"})},
               coords={"time": days, "lat": lat, "lon": lon}).to_netcdf(tmp_path / "grid.nc")
    data = tmp_path / "rain.csv"
    data.write_text("date,station_id,value\n" + "".join(f"{d:%Y-%m-%d},A,1\n{d:%Y-%m-%d},B,2\n" for d in days))
    meta = tmp_path / "meta.csv"
    # A in the cell of lat -6.1 / lon 106.2 (i = 1, j = 2); B far outside the grid
    meta.write_text("station_id,name,lat,lon,elevation\nA,Alpha,-6.11,106.19,10\nB,Beta,-8.0,110.0,5\n")
    spec = StationsSpec(path=str(data), format="table", metadata=meta, assign={"max_distance_km": 50},
                        fill={"path": str(tmp_path / "grid.nc"), "bias": "ratio"})
    ds = StationsReader().open(spec).data
    assert ds["satellite"].sel(station="A").values.tolist() == [9.0 * t + 5 for t in range(5)]
    assert np.isnan(ds["satellite"].sel(station="B").values).all()
    assert ds.attrs["fill"]["bias"] == "ratio"


def test_an_assignment_table_is_checked(tmp_path):
    from panen.datasets.stations import read_assignment_table

    p = tmp_path / "map.csv"
    p.write_text("district_id,station_id,backups\n3273,96783,96791;96751\n3210,96791,\n")
    assert read_assignment_table(p) == [{"district_id": "3273", "station_id": "96783", "backups": ["96791", "96751"]},
                                        {"district_id": "3210", "station_id": "96791", "backups": []}]
    p.write_text("district_id,station_id\n3273,96783\n3273,96791\n")
    with pytest.raises(InputError, match=r"line 3.*listed twice"):
        read_assignment_table(p)


def test_the_chirps_daily_point_at_semarang_sums_to_the_monthly_grid_pixel(tmp_path):
    from conftest import shared_file

    from panen.datasets.gridded import open_rainfall
    from panen.datasets.readers import StationsReader, StationsSpec

    point = shared_file("rainfall", "chirps_semarang_point_daily_1981_2021.csv")
    grid = shared_file("rainfall", "chirps_java_monthly_1981_2020.nc")
    meta = tmp_path / "meta.csv"
    meta.write_text("station_id,name,lat,lon,elevation\nsmg,CHIRPS pixel Semarang,-7.025,110.475,\n")
    spec = StationsSpec(path=str(point), format="table", metadata=meta, station="smg",
                        columns={"precip_mm": "value"}, assign={"max_distance_km": 10})
    ds = StationsReader().open(spec).data
    assert ds.sizes == {"station": 1, "time": 14_975} and (ds["flag"] == 0).all()
    daily = ds["rain"].sel(station="smg").to_series().resample("MS").sum()
    pixel = open_rainfall(grid).sel(x=110.475, y=-7.025, method="nearest")
    monthly = pd.Series(pixel.values, index=pd.DatetimeIndex(pixel["time"].values))
    both = pd.concat([daily, monthly], axis=1, join="inner").dropna()
    diff = (both.iloc[:, 0] - both.iloc[:, 1]).abs()
    assert len(both) == 480
    # 472 of the 480 months agree to 0.05 mm: the monthly product is the sum of the daily one
    assert int((diff < 0.05).sum()) == 472
    # the eight that do not are June 2019 - December 2020, where the point export holds another CHIRPS
    # version than the monthly archive (December 2019: 310.5 mm in the daily point, 432.8 mm in the monthly grid)
    late = diff[diff >= 0.05].index
    assert late.min() >= pd.Timestamp("2019-06-01") and len(late) == 8
