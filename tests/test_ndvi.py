"""NDVI product: readers (MOD13Q1 GeoTIFFs, NetCDF cube, AppEEARS points), z-scores and payouts
against hand-computed values, missing composites, laziness, and real data end to end."""

from __future__ import annotations

import math

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import shapely
import xarray as xr
from affine import Affine
from conftest import shared_file
from pydantic import ValidationError

from panen.datasets.ndvi import open_mod13q1, open_ndvi, open_ndvi_cube, qa_pass, read_appeears_points
from panen.engine.api import Season, TriggerInputs
from panen.engine.errors import DataQualityError, InputError
from panen.engine.maths.zonal import build_weights, zonal_mean
from panen.triggers.ndvi import (
    NdviParams,
    NdviTrigger,
    composite_period,
    cumulative_z,
    linear_payout,
    percentile_threshold,
    standardize,
)

TIF_DIR = ("ndvi", "mod13q1_tif")
CUBE = ("ndvi", "mod13q1_crop200_2010_2011.nc")
POINTS = ("ndvi", "mod13q1_appeears_philippines_points_2016_2021.csv")
MOD13_DOYS = np.arange(1, 354, 16)


# --------------------------------------------------------------------------- factories
def ndvi_series(table: dict, *, valid: dict | None = None, districts=("d0",)) -> xr.Dataset:
    """District NDVI series as the zonal engine hands them to the trigger.

    ``table`` maps (year, day of year) → NDVI value(s), one per district; ``valid`` the
    same keys → valid fraction (default 1 where the value is finite, else 0).
    """
    keys = sorted(table)
    times = pd.DatetimeIndex([pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d - 1) for y, d in keys])
    v = np.array([np.broadcast_to(np.asarray(table[k], float), (len(districts),)) for k in keys])
    vf = np.where(np.isfinite(v), 1.0, 0.0)
    for k, f in (valid or {}).items():
        vf[keys.index(k)] = f
    return xr.Dataset(
        {"mean": (("time", "district"), v, {"units": "1"}), "valid_fraction": (("time", "district"), vf)},
        coords={"time": times, "district": list(districts)},
    )


def params(**kw) -> NdviParams:
    base = dict(id="ndvi", trigger="ndvi", sum_insured_per_ha=6_000_000, baseline_years=[2015, 2019],
                window={"start_day": 0, "end_day": 32},
                payout={"strike_z": -0.842, "exit_z": -2.326, "max_rate": 0.5})
    return NdviParams(**(base | kw))


def evaluate(p: NdviParams, ds: xr.Dataset, cohorts=("2020-01-01",)) -> xr.Dataset:
    c = np.array(cohorts, dtype="datetime64[D]")
    inputs = TriggerInputs(season=Season("t", c[0], c[0] + 120, int(str(c[0])[:4])), cohorts=c,
                           district_ids=ds["district"].values, series={"ndvi": ds})
    return NdviTrigger().evaluate(p, inputs).data


BASE = [0.5, 0.6, 0.7, 0.8, 0.9]  # period 1, 2015..2019: mean 0.7, sd = sqrt(0.1 / 4) = 0.158114
BASE17 = [0.2, 0.4, 0.4, 0.6, 0.4]  # period 17: mean 0.4, sd = sqrt(0.08 / 4) = 0.141421


def two_period_series(season=(0.4, 0.5), **kw) -> xr.Dataset:
    table = {}
    for i, y in enumerate(range(2015, 2020)):
        table[(y, 1)], table[(y, 17)] = BASE[i], BASE17[i]
    table[(2020, 1)], table[(2020, 17)] = season
    return ndvi_series(table, **kw)


# --------------------------------------------------------------------------- index by hand
def test_composite_period_is_the_day_of_year():
    t = np.array(["2011-01-01", "2011-01-17", "2011-03-06", "2012-03-05", "2010-05-09"], dtype="datetime64[D]")
    assert composite_period(t).tolist() == [1, 17, 65, 65, 129]


def test_zscores_match_hand_computed_mean_and_sample_sd():
    # period 1: (0.4 - 0.7) / 0.158114 = -1.897367 ; period 17: (0.5 - 0.4) / 0.141421 = 0.707107
    x = np.array([*BASE, 0.4])
    z = standardize(x, np.zeros(6, int), np.arange(6) < 5, 1, 3)
    assert z[-1] == pytest.approx(-1.897367, abs=1e-6)
    assert z[:5] == pytest.approx([-1.264911, -0.632456, 0.0, 0.632456, 1.264911], abs=1e-6)
    ds = evaluate(params(), two_period_series())
    assert ds["index_value"].sel(phase="season").item() == pytest.approx(-1.897367 + 0.707107, abs=1e-6)
    assert not ds["flagged"].item() and ds["valid_fraction"].item() == 1.0


def test_baseline_years_outside_the_range_do_not_enter_the_climatology():
    ds = two_period_series()
    extra = ndvi_series({(2010, 1): 5.0, (2010, 17): -5.0})  # wild values outside baseline 2015..2019
    both = xr.concat([extra, ds], dim="time")
    got = evaluate(params(), both)["index_value"].item()
    assert got == pytest.approx(-1.897367 + 0.707107, abs=1e-6)


@pytest.mark.parametrize("z, rate", [(-1.584, 0.25), (-2.326, 0.5), (-3.0, 0.5), (-0.842, 0.0), (0.5, 0.0)])
def test_linear_worked_example_strike_minus_0842_exit_minus_2326_max_half(z, rate):
    # one-composite window; baseline 0.4, 0.5, 0.6, 0.5, 0.5 has mean 0.5 and sd sqrt(0.005)
    sd = math.sqrt(0.005)
    table = {(y, 1): v for y, v in zip(range(2015, 2020), [0.4, 0.5, 0.6, 0.5, 0.5])}
    table[(2020, 1)] = 0.5 + z * sd
    ds = evaluate(params(window={"start_day": 0, "end_day": 16}), ndvi_series(table))
    assert ds["index_value"].item() == pytest.approx(z, abs=1e-9)
    assert ds["payout_rate"].item() == pytest.approx(rate, abs=1e-9)
    assert float(linear_payout(z, -0.842, -2.326, 0.5)) == pytest.approx(rate, abs=1e-12)


def test_percentile_payout_against_a_hand_computed_15th_percentile():
    # baseline z-scores: 0.4, 0.5, 0.6, 0.5, 0.5 -> -sqrt2, 0, sqrt2, 0, 0; sorted -1.414, 0, 0, 0, 1.414.
    # numpy 'linear': position 0.15 * 4 = 0.6 -> -1.414214 + 0.6 * 1.414214 = -0.565685
    assert float(percentile_threshold(np.array([-math.sqrt(2), 0, math.sqrt(2), 0, 0]), 15, 3)) == \
        pytest.approx(-0.4 * math.sqrt(2))
    sd = math.sqrt(0.005)
    for season_z, rate in [(-0.60, 0.8), (-0.53, 0.0)]:
        table = {(y, 1): v for y, v in zip(range(2015, 2020), [0.4, 0.5, 0.6, 0.5, 0.5])}
        table[(2020, 1)] = 0.5 + season_z * sd
        ds = evaluate(params(window={"start_day": 0, "end_day": 16}, payout={"percentile": 15, "max_rate": 0.8}),
                      ndvi_series(table))
        assert ds["strike"].item() == pytest.approx(-0.565685, abs=1e-6)
        assert ds["payout_rate"].item() == pytest.approx(rate)


def test_percentile_needs_min_baseline_years_valid_seasons():
    table = {(y, 1): v for y, v in zip(range(2015, 2020), [0.4, 0.5, 0.6, 0.5, 0.5])}
    table[(2020, 1)] = 0.3
    valid = {(2015, 1): 0.1, (2016, 1): 0.1, (2017, 1): 0.1}  # three cloudy baseline years: two remain
    ds = evaluate(params(window={"start_day": 0, "end_day": 16}, payout={"percentile": 15}),
                  ndvi_series(table, valid=valid))
    assert bool(ds["flagged"].item()) and np.isnan(ds["payout_rate"].item())


# --------------------------------------------------------------------------- missing composites
def test_cloudy_composite_is_missing_not_zero():
    # the season's second composite is cloudy: 30 % valid area, and its mean reads 0.0
    cloudy = two_period_series(season=(0.4, 0.0), valid={(2020, 17): 0.3})
    ds = evaluate(params(), cloudy)  # default: every composite of the window must be valid
    assert bool(ds["flagged"].item()) and np.isnan(ds["payout_rate"].item())
    assert np.isnan(ds["index_value"].item())
    assert ds["valid_fraction"].item() == pytest.approx((1.0 + 0.3) / 2)
    # had the 0.0 counted as vegetation, z17 = (0 - 0.4) / 0.141 = -2.8 and the cover would pay in full
    counted = evaluate(params(), two_period_series(season=(0.4, 0.0)))
    assert counted["payout_rate"].item() == pytest.approx(0.5)
    # with min_composites = 1 the valid composite is rescaled to the window: -1.897367 * 2 / 1
    ds1 = evaluate(params(min_composites=1), cloudy)
    assert not bool(ds1["flagged"].item())
    assert ds1["index_value"].item() == pytest.approx(-1.897367 * 2, abs=1e-6)
    assert ds1["payout_rate"].item() == pytest.approx(0.5)  # -3.79 is beyond the exit -2.326
    # a lower min_valid_fraction accepts the 30 % composite
    ds2 = evaluate(params(min_valid_fraction=0.25), cloudy)
    assert not bool(ds2["flagged"].item())


def test_composite_absent_from_the_series_counts_as_missing():
    full = two_period_series()
    gap = full.drop_sel(time=[pd.Timestamp("2020-01-17")])  # the 2020 day-17 file never arrived
    ds = evaluate(params(), gap)
    assert bool(ds["flagged"].item())
    assert ds["valid_fraction"].item() == pytest.approx(0.5)
    assert evaluate(params(min_composites=1), gap)["index_value"].item() == pytest.approx(-1.897367 * 2, abs=1e-6)


def test_window_leaving_the_series_is_flagged():
    ds = evaluate(params(window={"start_day": 0, "end_day": 48}), two_period_series())  # needs day 33 of 2020
    assert bool(ds["flagged"].item())


def test_cumulative_z_rescales_by_n_over_n_valid():
    z = np.array([1.0, np.nan, -3.0, 0.5])
    g = np.array([[0, 1, 2, -2], [0, 2, 3, -1]])  # second window expects a composite the series lacks
    assert cumulative_z(z, g, 2).tolist() == pytest.approx([(1 - 3) * 3 / 2, (1 - 3 + 0.5) * 4 / 3])
    assert np.isnan(cumulative_z(z, g, None)).all()


def test_sowing_cohorts_select_their_own_composites():
    table = {}
    rng = np.random.default_rng(0)
    for y in range(2015, 2021):
        for d in MOD13_DOYS[:6]:
            table[(y, int(d))] = rng.uniform(0.2, 0.8, size=2)
    ds = ndvi_series(table, districts=("a", "b"))
    out = evaluate(params(anchor="sowing_date"), ds, ["2020-01-01", "2020-02-02"])
    later = evaluate(params(anchor="sowing_date"), ds, ["2020-02-02"])
    np.testing.assert_allclose(out["index_value"].isel(cohort=1).values, later["index_value"].isel(cohort=0).values)
    assert not np.allclose(out["index_value"].isel(cohort=0).values, out["index_value"].isel(cohort=1).values)


# --------------------------------------------------------------------------- laziness
def test_dask_input_stays_lazy_and_matches_numpy():
    rng = np.random.default_rng(3)
    table = {(y, int(d)): rng.uniform(0.1, 0.9, size=7) for y in range(2014, 2021) for d in MOD13_DOYS}
    eager_in = ndvi_series(table, districts=tuple(f"d{i}" for i in range(7)))
    eager_in["valid_fraction"][:] = rng.uniform(0.3, 1.0, size=eager_in["valid_fraction"].shape)
    cohorts = ["2020-01-01", "2020-03-01"]
    calls = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(1)

    for payout in ({"strike_z": -1.0, "exit_z": -4.0}, {"percentile": 20}):
        p = params(payout=payout, window={"start_day": 0, "end_day": 96}, min_composites=3)
        eager = evaluate(p, eager_in, cohorts)
        with Count():
            lazy = evaluate(p, eager_in.chunk({"time": 40, "district": 3}), cohorts)
            assert isinstance(lazy["payout_rate"].data, da.Array)
            assert isinstance(lazy["index_value"].data, da.Array)
            assert not calls, "evaluate() computed something before being asked"
        xr.testing.assert_allclose(lazy.compute(), eager)
        assert lazy["payout_rate"].dims == ("district", "cohort")
        assert lazy["index_value"].dims == ("phase", "district", "cohort")
        assert eager["flagged"].any() and not eager["flagged"].all()  # both kinds of outcome exercised


# --------------------------------------------------------------------------- data checks
def test_non_ndvi_units_are_refused():
    ds = two_period_series()
    ds["mean"].attrs["units"] = "mm/day"
    with pytest.raises(DataQualityError, match="NDVI"):
        evaluate(params(), ds)


def test_baseline_not_covered_by_the_series_is_an_error():
    with pytest.raises(DataQualityError, match=r"baseline_years \[2000, 2004\]"):
        evaluate(params(baseline_years=[2000, 2004]), two_period_series())


def test_registered_under_its_name():
    from panen.engine.registry import get_trigger

    assert get_trigger("ndvi") is NdviTrigger


# --------------------------------------------------------------------------- term sheet
@pytest.mark.parametrize("change, loc, needle", [
    ({"payout": {"strike_z": -2.0, "exit_z": -1.0}}, "payout.linear", "exit_z must be < strike_z (-2.0)"),
    ({"payout": {"strike_z": -1.0, "exit_z": -2.0, "max_rate": 1.5}}, "payout.linear.max_rate", "less than or equal to 1"),
    ({"payout": {"strike_z": -1.0, "exit_z": -2.0, "max_rate": 0}}, "payout.linear.max_rate", "greater than 0"),
    ({"payout": {"percentile": 100}}, "payout.percentile.percentile", "less than 100"),
    ({"payout": {"percentile": 15, "strike_z": -1}}, "payout.percentile.strike_z", "Extra inputs"),
    ({"baseline_years": [2020, 2010]}, "", "first <= last; got [2020, 2010]"),
    ({"baseline_years": [2019, 2020]}, "", "at least 3 years; got [2019, 2020]"),
    ({"min_baseline_years": 6}, "", "min_baseline_years must be between 2 and the baseline length (5); got 6"),
    ({"window": {"start_day": 10, "end_day": 17}}, "window", "at least start_day + 8 (18)"),
    ({"window": {"start_day": 0, "end_day": 400}}, "window.end_day", "less than or equal to 366"),
    ({"min_composites": 5}, "", "min_composites must be between 1 and the composites the window holds (4"),
    ({"min_valid_fraction": 1.2}, "min_valid_fraction", "less than or equal to 1"),
])
def test_bad_parameters_are_rejected_naming_parameter_and_range(change, loc, needle):
    with pytest.raises(ValidationError) as info:
        params(**change)
    text = str(info.value)
    assert needle in text
    assert loc in text


def test_bad_parameters_name_the_product_through_the_config():
    config = pytest.importorskip("panen.engine.config")
    from panen.engine.errors import ConfigError

    data = {"season": {"id": "s", "start": "2024-01-01", "end": "2024-04-01"}, "inputs": {},
            "products": [{"id": "veg", "trigger": "ndvi", "sum_insured_per_ha": 1, "baseline_years": [2003, 2022],
                          "window": {"start_day": 0, "end_day": 112},
                          "payout": {"strike_z": -0.5, "exit_z": 0.5, "max_rate": 0.5}}]}
    with pytest.raises(ConfigError) as info:
        config.parse_config(data)
    assert any("veg" in str(p) and "exit_z must be < strike_z (-0.5)" in str(p) for p in info.value.problems)


# --------------------------------------------------------------------------- readers: synthetic
def test_qa_policies_by_bit():
    good, check, cloudy, not_produced = 0b00, 0b01, 0b10, 0b11
    useless = check | (0b1101 << 2)
    lowest = check | (0b1100 << 2)
    flags = [check | (1 << b) for b in (8, 10, 14, 15)]
    ignored = [check | (0b11 << 6), check | (1 << 9), check | (0b101 << 11)]  # aerosol, BRDF, land/water
    bits = [good, check, cloudy, not_produced, useless, lowest, *flags, *ignored, 65535]
    assert qa_pass(bits, "good_or_check").tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    assert qa_pass(bits, "good_only").tolist() == [1] + [0] * 13
    assert qa_pass(bits, "none").all()
    assert not qa_pass(np.array([np.nan]), "good_or_check")[0]  # a masked QA fill


def write_tif(path, array, *, transform=Affine(250.0, 0, 500_000.0, 0, -250.0, 6_400_000.0), crs="EPSG:32651",
              nodata=None):
    a = np.asarray(array)
    with rasterio.open(path, "w", driver="GTiff", height=a.shape[0], width=a.shape[1], count=1, dtype=a.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(a, 1)


def write_pair(folder, stamp, ndvi, quality=None):
    write_tif(folder / f"MOD13Q1.A{stamp}.250m_16_days_NDVI.tif", np.asarray(ndvi, np.int16), nodata=-3000)
    if quality is not None:
        write_tif(folder / f"MOD13Q1.A{stamp}.250m_16_days_VI_Quality.tif", np.asarray(quality, np.uint16),
                  nodata=65535)


def test_ndvi_file_without_qa_partner_is_named(tmp_path):
    write_pair(tmp_path, "2020001", [[1000, 2000]], [[0, 0]])
    write_pair(tmp_path, "2020017", [[1000, 2000]])
    with pytest.raises(InputError, match="no VI_Quality partner") as info:
        open_mod13q1(tmp_path)
    assert str(info.value.file).endswith("MOD13Q1.A2020017.250m_16_days_NDVI.tif")
    assert open_mod13q1(tmp_path, qa="none").sizes["time"] == 2


def test_mod13q1_scaling_fill_and_qa_on_a_small_stack(tmp_path):
    write_pair(tmp_path, "2020017", [[-3000, -2000, 10000, 4321]], [[0, 1, 2, 0]])
    write_pair(tmp_path, "2020001", [[5000, -2500, 0, 9000]], [[0, 0, 0, 1]])
    (tmp_path / "MOD13Q1.A2020001.250m_16_days_EVI.tif").write_bytes(b"ignored")  # other layers are ignored
    good = open_mod13q1(tmp_path / "*.tif")
    assert good.dims == ("time", "y", "x") and isinstance(good.data, da.Array)
    assert good["time"].dt.strftime("%Y-%m-%d").values.tolist() == ["2020-01-01", "2020-01-17"]
    v = good.values
    np.testing.assert_array_equal(np.isnan(v), [[[False, True, False, True]], [[True, True, True, False]]])
    assert v[0, 0, 0] == np.float32(0.5) and v[1, 0, 3] == np.float32(0.4321)
    check = open_mod13q1(tmp_path, qa="good_or_check").values
    assert check[1, 0, 1] == np.float32(-0.2) and check[0, 0, 3] == np.float32(0.9)
    assert open_mod13q1(tmp_path, qa="none").values[1, 0, 2] == 1.0  # valid max kept; cloudy only without QA


def test_cropland_mask_on_the_grid_and_reprojected(tmp_path):
    write_pair(tmp_path, "2020001", np.full((4, 4), 5000), np.zeros((4, 4)))
    mask = np.zeros((4, 4), np.uint8)
    mask[:2, :2] = 1
    write_tif(tmp_path / "crop.tif", mask)
    out = open_mod13q1(tmp_path / "*NDVI.tif", cropland_mask=tmp_path / "crop.tif").values[0]
    np.testing.assert_array_equal(np.isfinite(out), mask.astype(bool))
    # the same mask as a geographic raster: reprojected (nearest) to the NDVI grid
    utm = xr.DataArray(mask, dims=("y", "x"), coords={"y": 6_400_000.0 - 250 * (np.arange(4) + 0.5),
                                                      "x": 500_000.0 + 250 * (np.arange(4) + 0.5)})
    geo = utm.rio.write_crs("EPSG:32651").rio.reproject("EPSG:4326", resolution=0.0005)
    out2 = open_mod13q1(tmp_path / "*NDVI.tif", cropland_mask=geo).values[0]
    assert np.isfinite(out2[:2, :2]).all() and not np.isfinite(out2[2:, 2:]).any()


def test_open_ndvi_routes_cubes_and_geotiffs(tmp_path):
    cube = xr.Dataset(
        {"NDVI": (("time", "lat", "lon"), np.array([[[5000, -3000]]], np.int16)),
         "VI_Quality": (("time", "lat", "lon"), np.array([[[0, 0]]], np.uint16))},
        coords={"time": pd.to_datetime(["2020-01-01"]), "lat": [10.0], "lon": [100.0, 100.05]},
    )
    cube.to_netcdf(tmp_path / "c.nc")
    got = open_ndvi(tmp_path / "c.nc")
    assert got.rio.crs == "EPSG:4326" and got.values[0, 0, 0] == np.float32(0.5) and np.isnan(got.values[0, 0, 1])
    with pytest.raises(InputError, match="VI_Quality"):
        open_ndvi_cube(tmp_path / "c.nc", qa_variable="QA")
    assert open_ndvi_cube(tmp_path / "c.nc", qa_variable="QA", qa="none").values[0, 0, 0] == np.float32(0.5)


def test_appeears_bad_rows_are_named(tmp_path):
    head = "ID,Latitude,Longitude,Date,MOD13Q1_061__250m_16_days_NDVI,MOD13Q1_061__250m_16_days_VI_Quality\n"
    path = tmp_path / "p.csv"
    path.write_text(head + "A,1,2,2020-01-01,0.5,2116.0\nA,1,2,2020-13-01,0.5,2116.0\nA,1,2,2020-01-17,x,2116\n")
    with pytest.raises(InputError) as info:
        read_appeears_points(path)
    where = {(p.row, p.column) for p in info.value.problems}
    assert (2, "Date") in where and (3, "MOD13Q1_061__250m_16_days_NDVI") in where
    path.write_text(head + "A,1,2,2020-01-01,0.5,2116\nA,1,2,2020-01-01,0.6,2116\n")
    with pytest.raises(InputError, match="duplicate row") as info:
        read_appeears_points(path)
    assert info.value.row == 2
    path.write_text("ID,Date,X_NDVI\nA,2020-01-01,0.5\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \*_VI_Quality"):
        read_appeears_points(path)


# --------------------------------------------------------------------------- readers: real data
def _qa_keep(q: np.ndarray, policy: str) -> np.ndarray:
    """Independent bit arithmetic for the documented policies (not the reader's function)."""
    q = q.astype(np.int64)
    common = (((q >> 2) & 15) <= 12) & ((q >> 8) & 1 == 0) & ((q >> 10) & 1 == 0) \
        & ((q >> 14) & 1 == 0) & ((q >> 15) & 1 == 0)
    return common & ((q & 3) == 0 if policy == "good_only" else (q & 3) <= 1)


@pytest.fixture(scope="module")
def tif_raw():
    folder = shared_file(*TIF_DIR)
    ndvi, qa = [], []
    for f in sorted(folder.glob("*_NDVI.tif")):
        with rasterio.open(f) as src:
            ndvi.append(src.read(1))
        with rasterio.open(str(f).replace("_NDVI.tif", "_VI_Quality.tif")) as src:
            qa.append(src.read(1))
    return folder, np.stack(ndvi), np.stack(qa)


def test_real_mod13q1_geotiffs_dates_scale_fill_crs(tif_raw):
    folder, raw, _ = tif_raw
    calls = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(1)

    with Count():
        ndvi = open_mod13q1(folder, qa="none")
    assert not calls, "opening read data"
    assert ndvi["time"].dt.strftime("%Y-%m-%d").values.tolist() == [
        "2011-01-01", "2011-01-17", "2011-02-02", "2011-02-18", "2011-03-06", "2011-03-22"]
    assert ndvi.rio.crs == pyproj.CRS("EPSG:32651") and pyproj.CRS(ndvi.rio.crs).utm_zone == "51N"
    assert ndvi.attrs["units"] == "1" and ndvi.dtype == np.float32
    v = ndvi.values
    np.testing.assert_array_equal(np.isnan(v), raw == -3000)
    assert np.nanmin(v) >= -0.2 and np.nanmax(v) <= 1.0
    np.testing.assert_allclose(v[raw != -3000], raw[raw != -3000] / 10000.0, rtol=1e-6)


def test_real_mod13q1_qa_counts_match_direct_bit_arithmetic(tif_raw):
    folder, raw, qa = tif_raw
    counts = {}
    for policy in ("good_only", "good_or_check"):
        got = np.isfinite(open_mod13q1(folder, qa=policy).values)
        expected = _qa_keep(qa, policy) & (raw != -3000)
        np.testing.assert_array_equal(got, expected)
        counts[policy] = int(got.sum())
    assert counts["good_only"] < counts["good_or_check"]  # good_only masks strictly more pixels


def test_real_crop200_cube_is_the_geotiff_crop(tif_raw):
    _, raw, qa = tif_raw
    cube = open_ndvi_cube(shared_file(*CUBE), qa="good_or_check")
    assert cube.sizes == {"time": 35, "y": 200, "x": 200}
    assert str(cube["time"].values[0])[:10] == "2010-05-09" and str(cube["time"].values[-1])[:10] == "2011-11-01"
    assert (np.diff(cube["time"].values).astype("timedelta64[D]").astype(int) <= 16).all()
    assert cube.rio.crs == pyproj.CRS("EPSG:32651")
    v = cube.values
    assert np.nanmin(v) >= -0.2 and np.nanmax(v) <= 1.0
    # 2011-01-01..03-22 are the six GeoTIFF composites, rows and columns 400..599
    r = raw[:, 400:600, 400:600]
    expected = np.where(_qa_keep(qa[:, 400:600, 400:600], "good_or_check") & (r != -3000), r / 10000.0, np.nan)
    np.testing.assert_allclose(v[15:21], expected, rtol=1e-6)


def test_real_appeears_points(tmp_path):
    path = shared_file(*POINTS)
    ds = read_appeears_points(path, qa="good_or_check")
    assert ds.sizes == {"time": 116, "district": 17}
    assert "REGION III-CENTRAL LUZON" in ds["district"].values
    assert str(ds["time"].values[0])[:10] == "2016-01-01" and str(ds["time"].values[-1])[:10] == "2021-01-01"
    assert sorted(set(composite_period(ds["time"].values))) == MOD13_DOYS.tolist()
    mean, vf = ds["mean"].values, ds["valid_fraction"].values
    np.testing.assert_array_equal(np.isfinite(mean), vf == 1.0)
    assert np.nanmin(mean) >= -0.2 and np.nanmax(mean) <= 1.0
    assert (vf[:, list(ds["district"].values).index("REGION IVB-MIMAROPA")] == 0).all()  # all fill -3000
    # QA against AppEEARS' own decoded bit columns
    df = pd.read_csv(path)
    pre = "MOD13Q1_061__250m_16_days_VI_Quality_"
    keep = (df[pre + "MODLAND"].isin(["0b00", "0b01"])
            & (df[pre + "VI_Usefulness"].map(lambda s: int(s, 2)) <= 12)
            & (df[pre + "Adjacent_cloud_detected"] == "0b0") & (df[pre + "Mixed_Clouds"] == "0b0")
            & (df[pre + "Possible_snow/ice"] == "0b0") & (df[pre + "Possible_shadow"] == "0b0")
            & (df["MOD13Q1_061__250m_16_days_NDVI"] >= -0.2))
    got = ds["valid_fraction"].to_series()
    expected = pd.Series(keep.astype(float).to_numpy(),
                         index=pd.MultiIndex.from_arrays([pd.to_datetime(df["Date"]), df["ID"]]))
    assert (got.reindex(expected.index).to_numpy() == expected.to_numpy()).all()
    good_only = read_appeears_points(path, qa="good_only")["valid_fraction"].values
    assert (good_only <= vf).all() and good_only.sum() < vf.sum()


# --------------------------------------------------------------------------- end to end, real data
@pytest.fixture(scope="module")
def polygons():
    """Two small synthetic districts in EPSG:4326 inside the crop200 window of the UTM 51N tile."""
    to_geo = pyproj.Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform(625_600.0, 6_365_500.0)
    box = shapely.box(lon - 0.05, lat - 0.03, lon + 0.05, lat + 0.03)
    tri = shapely.Polygon([(lon - 0.2, lat + 0.05), (lon - 0.1, lat + 0.12), (lon - 0.02, lat + 0.06)])
    return gpd.GeoDataFrame({"district_id": ["box", "tri"]}, geometry=[box, tri], crs="EPSG:4326")


def test_real_zonal_ndvi_from_geotiffs_equals_the_cube_crop(polygons):
    for qa in ("none", "good_or_check"):
        tif = open_mod13q1(shared_file(*TIF_DIR), qa=qa)
        cube = open_ndvi_cube(shared_file(*CUBE), qa=qa).sel(time=slice("2011-01-01", "2011-03-22"))
        a = zonal_mean(tif, build_weights(polygons, tif)).compute()
        b = zonal_mean(cube, build_weights(polygons, cube)).compute()
        xr.testing.assert_allclose(a, b, rtol=1e-9)  # same cells: the cube is an exact crop of the tile
        assert a["mean"].attrs["units"] == "1"
        assert ((a["valid_fraction"] >= 0) & (a["valid_fraction"] <= 1)).all()
        if qa == "none":
            np.testing.assert_allclose(a["valid_fraction"].values, 1.0)
            assert np.isfinite(a["mean"].values).all()


def test_real_cube_through_zonal_and_trigger(polygons):
    """Crop200: composites of 2010 and 2011 only. With the baseline [2009, 2011] and two valid
    years per period, every z-score is ±1/√2 by construction (z of two values about their
    mean with the ddof=1 sd), so the cumulative z of a 4-composite window is a sum of four
    ±1/√2; 2010 and 2011 mirror each other; the 15th-percentile cover pays the lower year."""
    cube = open_ndvi_cube(shared_file(*CUBE), qa="good_or_check")
    lazy = zonal_mean(cube, build_weights(polygons, cube))
    cohorts = ["2010-07-12", "2011-07-12"]  # day 193: composites 193, 209, 225, 241 (summer, mostly clear)
    base = dict(baseline_years=[2009, 2011], min_baseline_years=2, window={"start_day": 0, "end_day": 64})
    lin = evaluate(params(**base, payout={"strike_z": 0.0, "exit_z": -2.0}), lazy, cohorts).compute()
    s = series = lazy.compute()
    idx = lin["index_value"].sel(phase="season")
    box = s["mean"].sel(district="box").where(s["valid_fraction"].sel(district="box") >= 0.5).to_series()
    day = pd.to_timedelta([192, 208, 224, 240], unit="D")  # days of year 193, 209, 225, 241
    # box: all eight composites valid -> sum of signs of (2011 - 2010) per period, / sqrt 2
    signs = np.sign(box.loc[pd.Timestamp("2011-01-01") + day].to_numpy()
                    - box.loc[pd.Timestamp("2010-01-01") + day].to_numpy()).tolist()
    assert all(v in (-1.0, 1.0) for v in signs)
    assert idx.sel(district="box", cohort="2011-07-12").item() == pytest.approx(sum(signs) / math.sqrt(2))
    assert idx.sel(district="box", cohort="2010-07-12").item() == pytest.approx(-sum(signs) / math.sqrt(2))
    # tri: its 2010-07-28 composite is cloud-masked -> that period has one baseline year: flagged...
    assert lin["flagged"].sel(district="tri").all()
    # ... unless three composites suffice: rescaled sum of three ±1/√2, × 4/3
    lin3 = evaluate(params(**base, min_composites=3, payout={"strike_z": 0.0, "exit_z": -2.0}), series, cohorts)
    k = lin3["index_value"].sel(phase="season", district="tri").values * math.sqrt(2) * 3 / 4
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert set(np.abs(np.round(k)).astype(int)) <= {1, 3}
    # percentile 15 over the two baseline seasons: exactly the lower season pays
    pct = evaluate(params(**base, payout={"percentile": 15}), series, cohorts)
    paid = pct["payout_rate"].sel(district="box").values
    lower = np.argmin(idx.sel(district="box").values)
    assert paid.tolist() == [1.0 if i == lower else 0.0 for i in range(2)]


def test_real_appeears_points_feed_the_trigger():
    """17 real points, baseline 2016–2020, dry-season window Jan 1 + 96 days (6 composites, clear
    skies over Central Luzon every year)."""
    ds = read_appeears_points(shared_file(*POINTS), qa="good_or_check")
    cohorts = [f"{y}-01-01" for y in range(2016, 2021)]
    window = {"start_day": 0, "end_day": 96}
    full = evaluate(params(baseline_years=[2016, 2020], window=window), ds, cohorts)
    idx = full["index_value"].sel(phase="season")
    complete = ~full["flagged"].any("cohort")
    assert "REGION III-CENTRAL LUZON" in complete["district"][complete].values
    # z-scores of the baseline years sum to zero per period, so do the full-window sums
    np.testing.assert_allclose(idx.where(complete, drop=True).sum("cohort").values, 0.0, atol=1e-9)
    # Central Luzon 2020 against a direct pandas computation from the same series
    s = ds["mean"].sel(district="REGION III-CENTRAL LUZON").to_series()
    frame = pd.DataFrame({"v": s.values, "doy": s.index.day_of_year, "year": s.index.year})
    clim = frame[frame.year.between(2016, 2020)].groupby("doy")["v"].agg(["mean", "std"])
    season = frame[(frame.year == 2020) & (frame.doy < 97)].set_index("doy")["v"]
    expected = ((season - clim["mean"].reindex(season.index)) / clim["std"].reindex(season.index)).sum()
    assert idx.sel(district="REGION III-CENTRAL LUZON", cohort="2020-01-01").item() == pytest.approx(expected)
    # 15th percentile of five in-sample seasons: exactly one (the lowest) pays, for every complete point
    pct = evaluate(params(baseline_years=[2016, 2020], window=window, payout={"percentile": 15}), ds, cohorts)
    paid = pct["payout_rate"].where(complete, drop=True)
    assert (paid.sum("cohort") == 1.0).all()
    lowest = idx.where(complete, drop=True).argmin("cohort")
    assert (paid.isel(cohort=lowest) == 1.0).all()


# --------------------------------------------------------------------------- any composite calendar
def dekad_series(years: range, value, *, end_dated: bool = False) -> xr.Dataset:
    """A dekadal district series (36 composites a year, leap years included): ``value(year, dekad)``."""
    dates, v = [], []
    for y in years:
        for m in range(1, 13):
            last = pd.Timestamp(y, m, 1).days_in_month
            for k, day in enumerate((10, 20, last) if end_dated else (1, 11, 21)):
                dates.append(pd.Timestamp(y, m, day))
                v.append(value(y, (m - 1) * 3 + k))
    return xr.Dataset({"mean": (("time", "district"), np.array(v, float)[:, None], {"units": "1"}),
                       "valid_fraction": (("time", "district"), np.ones((len(v), 1)))},
                      coords={"time": pd.DatetimeIndex(dates), "district": ["d0"]})


@pytest.mark.parametrize("end_dated", [False, True])
def test_dekadal_composites_keep_36_periods_through_leap_years(end_dated):
    from panen.triggers.ndvi import calendar_of

    years = range(2012, 2025)  # leap years 2012, 2016, 2020, 2024
    ds = dekad_series(years, lambda y, k: 0.3 + 0.01 * k + 0.002 * (y - 2012) ** 2 % 0.05, end_dated=end_dated)
    cal = calendar_of(ds["time"].values)
    assert (cal.kind, cal.n_periods, cal.end_dated) == ("dekad", 36, end_dated)
    assert sorted(set(cal.period_of(ds["time"].values).tolist())) == list(range(36))
    # March's first dekad is period 6 in leap and common years alike
    assert cal.period_of(np.array(["2020-03-01", "2021-03-01"], dtype="datetime64[D]")).tolist() == [6, 6]


def test_a_dekadal_window_sums_the_z_of_its_dekads_hand_computed():
    # baseline 2012-2019 (two leap years); each dekad k of year y holds base_k + a_y; the season 2020
    # (a leap year) holds base_k - 0.1. Per dekad the baseline is a_y shifted: mean(a) and sd(a), so the
    # season's z is (-0.1 - mean(a)) / sd(a) in every dekad
    a = {y: v for y, v in zip(range(2012, 2020), [0.00, 0.02, -0.03, 0.05, 0.01, -0.02, 0.04, -0.01])}
    ds = dekad_series(range(2012, 2021), lambda y, k: 0.4 + 0.005 * k + (a[y] if y in a else -0.1))
    vals = np.array(list(a.values()))
    z = (-0.1 - vals.mean()) / vals.std(ddof=1)
    # 2020-02-20 + [0, 40): dekads dated 21 Feb, 1 Mar, 11 Mar, 21 Mar (29 Feb exists in 2020)
    p = params(baseline_years=[2012, 2019], window={"start_day": 0, "end_day": 40},
               payout={"strike_z": -1.0, "exit_z": -30.0, "max_rate": 1.0})
    out = evaluate(p, ds, cohorts=("2020-02-20",))
    assert out["index_value"].sel(phase="season").item() == pytest.approx(4 * z, rel=1e-9)
    assert not out["flagged"].item()


def test_min_composites_counts_the_data_s_own_composites():
    ds = dekad_series(range(2012, 2021), lambda y, k: 0.4 + 0.001 * ((y * 7 + k) % 11))
    ds["mean"].loc[{"time": "2020-05-11"}] = np.nan  # one dekad of the 2020 window missing
    ds["valid_fraction"].loc[{"time": "2020-05-11"}] = 0.0
    base = dict(baseline_years=[2012, 2019], window={"start_day": 0, "end_day": 40})
    full = evaluate(params(**base), ds, cohorts=("2020-05-01",))
    assert full["flagged"].item()  # every composite needed
    some = evaluate(params(**base, min_composites=3), ds, cohorts=("2020-05-01",))
    assert not some["flagged"].item()  # 3 of the window's 4 dekads are valid
    with pytest.raises(DataQualityError, match="min_composites 5 is more than the window holds .4 composites"):
        evaluate(params(**base, min_composites=5), ds, cohorts=("2020-05-01",))


def test_eight_day_composites_are_a_day_of_year_grid():
    from panen.triggers.ndvi import calendar_of

    t = np.array([np.datetime64("2020-01-01") + np.timedelta64(8 * k, "D") for k in range(46)])
    cal = calendar_of(t)
    assert (cal.kind, cal.step, cal.n_periods) == ("doy", 8, 46)
    assert cal.date_of(2021, 45) == np.datetime64("2021-12-27")  # day 361 in a common year


def test_a_window_with_no_composite_of_the_data_is_an_error():
    with pytest.raises(DataQualityError, match="holds no composite"):
        evaluate(params(window={"start_day": 2, "end_day": 12}), two_period_series())


def test_percentile_payout_can_scale_linearly_to_an_exit_percentile():
    from panen.triggers.ndvi import percentile_linear_payout

    # history 1..5: 40th percentile = 2.6, 10th = 1.4; an index of 2.0 pays (2.6 - 2.0) / 1.2 = 0.5 of max
    trig = float(percentile_threshold(np.arange(1.0, 6.0), 40, 3))
    ext = float(percentile_threshold(np.arange(1.0, 6.0), 10, 3))
    assert (trig, ext) == pytest.approx((2.6, 1.4))
    assert float(percentile_linear_payout(2.0, trig, ext, 0.8)) == pytest.approx(0.4)
    with pytest.raises(ValidationError, match="exit_percentile must be < percentile"):
        params(payout={"percentile": 15, "exit_percentile": 20})
    # through the trigger: the same season index pays more the closer it is to the exit
    ds = two_period_series(season=(0.45, 0.35))
    binary = evaluate(params(payout={"percentile": 40}), ds)
    linear = evaluate(params(payout={"percentile": 40, "exit_percentile": 5}), ds)
    assert binary["payout_rate"].item() == 1.0
    assert 0.0 < linear["payout_rate"].item() <= 1.0
