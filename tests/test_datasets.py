"""Readers in panen.datasets: district polygons and lazy gridded rainfall."""

from __future__ import annotations

import warnings

import dask.array as dsa
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import xarray as xr
from conftest import shared_file
from affine import Affine

from panen.datasets.districts import read_districts
from panen.datasets.gridded import open_grid, open_rainfall
from panen.engine.errors import ConfigError, InputError

JAVA_DISTRICTS = ("boundaries", "idn_districts_java.geojson")
CHIRPS_MONTHLY = ("rainfall", "chirps_java_monthly_1981_2020.nc")
CHIRPS_TIF_DIR = ("rainfall", "chirps_java_monthly_tif")
ZAMBIA_DAILY = ("rainfall", "chirps_zambia_daily", "chirps_zambia_daily_20161025_20161121.nc")


# ---------------------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------------------


def district_frame(ids, crs="EPSG:4326") -> gpd.GeoDataFrame:
    geoms = [shapely.box(106 + i * 0.1, -7, 106.1 + i * 0.1, -6.9) for i in range(len(ids))]
    return gpd.GeoDataFrame({"kode": ids, "nama": [f"D{i}" for i in range(len(ids))]},
                            geometry=geoms, crs=crs)


def rain_cube(values, *, start="2020-01-01", freq="D", units="mm/day", lat=None, lon=None,
              name="precip") -> xr.Dataset:
    values = np.asarray(values, dtype="float32")
    nt, ny, nx = values.shape
    lat = np.linspace(-6.0, -6.0 - 0.05 * (ny - 1), ny) if lat is None else lat
    lon = np.linspace(106.0, 106.0 + 0.05 * (nx - 1), nx) if lon is None else lon
    attrs = {} if units is None else {"units": units}
    da = xr.DataArray(values, dims=("time", "lat", "lon"),
                      coords={"time": pd.date_range(start, periods=nt, freq=freq),
                              "lat": lat, "lon": lon}, name=name, attrs=attrs)
    return da.to_dataset()


def write_tif(path, array, *, nodata=-9999.0, origin=(106.0, -6.0), crs="EPSG:4326", units=None):
    array = np.asarray(array, dtype="float32")
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype="float32", crs=crs, nodata=nodata,
                       transform=Affine(0.05, 0.0, origin[0], 0.0, -0.05, origin[1])) as dst:
        dst.write(array, 1)
        if units:
            dst.update_tags(1, units=units)


# ---------------------------------------------------------------------------------------
# Districts
# ---------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_read_districts_real_java_has_119_districts_with_indramayu():
    gdf = read_districts(shared_file(*JAVA_DISTRICTS), id_column="kode_bps_style")
    assert len(gdf) == 119
    assert gdf.crs.to_epsg() == 4326
    assert gdf["district_id"].map(type).eq(str).all()
    row = gdf[gdf.district_id == "3212"]
    assert len(row) == 1 and "INDRAMAYU" in row["nama"].item().upper()
    assert {"kode", "kode_bps_style", "nama", "prov_kode"} <= set(gdf.columns)  # originals kept
    assert gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all()


@pytest.mark.parametrize("suffix, driver", [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile")])
def test_read_districts_round_trips_gpkg_and_shapefile_with_integer_ids(tmp_path, suffix, driver):
    path = tmp_path / f"districts{suffix}"
    district_frame([3201, 3202, 3273]).to_file(path, driver=driver, engine="pyogrio")
    gdf = read_districts(path, id_column="kode")
    assert gdf["district_id"].tolist() == ["3201", "3202", "3273"]  # never "3201.0"
    assert gdf.crs.to_epsg() == 4326
    assert "kode" in gdf.columns


def test_read_districts_missing_file_names_it(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        read_districts(tmp_path / "nope.gpkg")
    assert str(info.value.file).endswith("nope.gpkg")


def test_read_districts_unreadable_file_is_an_input_error(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text("{ this is not json")
    with pytest.raises(InputError, match="cannot read"):
        read_districts(path)


def test_read_districts_missing_id_column_lists_available_columns(tmp_path):
    path = tmp_path / "d.gpkg"
    district_frame(["3201", "3202"]).to_file(path, engine="pyogrio")
    with pytest.raises(InputError) as info:
        read_districts(path, id_column="kode_bps")
    message = str(info.value)
    assert "'kode_bps'" in message and "kode" in message and "nama" in message
    assert info.value.column == "kode_bps"


def test_read_districts_duplicate_ids_name_the_rows(tmp_path):
    path = tmp_path / "d.geojson"
    district_frame(["3201", "3202", "3202", "3204"]).to_file(path, engine="pyogrio")
    with pytest.raises(InputError, match="duplicate district id '3202' in rows 2, 3") as info:
        read_districts(path, id_column="kode")
    assert info.value.row == 2 and info.value.column == "kode"


def test_read_districts_empty_ids_name_the_rows(tmp_path):
    path = tmp_path / "d.geojson"
    district_frame(["3201", "  ", None]).to_file(path, engine="pyogrio")
    with pytest.raises(InputError) as info:
        read_districts(path, id_column="kode")
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "kode"), (3, "kode")]


def test_read_districts_without_crs_is_an_error(tmp_path):
    path = tmp_path / "nocrs.shp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # geopandas: "'crs' was not provided"
        district_frame(["3201"], crs=None).to_file(path, engine="pyogrio")
    with pytest.raises(InputError, match="no CRS"):
        read_districts(path, id_column="kode")


def test_read_districts_null_geometry_names_the_row(tmp_path):
    gdf = district_frame(["3201", "3202"])
    gdf.loc[1, "geometry"] = None
    path = tmp_path / "d.gpkg"
    gdf.to_file(path, engine="pyogrio")
    with pytest.raises(InputError, match="null or empty") as info:
        read_districts(path, id_column="kode")
    assert info.value.row == 2


def test_read_districts_repairs_invalid_geometry_with_a_warning(tmp_path):
    bowtie = shapely.Polygon([(106, -7), (106.1, -6.9), (106.1, -7), (106, -6.9)])
    gdf = district_frame(["3201", "3202"])
    gdf.loc[1, "geometry"] = bowtie
    path = tmp_path / "d.gpkg"
    gdf.to_file(path, engine="pyogrio")
    with pytest.warns(UserWarning, match=r"repaired 1 invalid geometry .*rows 2"):
        out = read_districts(path, id_column="kode")
    assert out.geometry.is_valid.all()
    assert out.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert out.geometry.iloc[1].area == pytest.approx(bowtie.buffer(0).area + 0.0025, rel=0.6)


# ---------------------------------------------------------------------------------------
# Rainfall: real CHIRPS
# ---------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_open_rainfall_real_chirps_monthly_netcdf():
    path = shared_file(*CHIRPS_MONTHLY)
    rain = open_rainfall(path)
    assert rain.dims == ("time", "y", "x")
    assert rain.sizes == {"time": 480, "y": 75, "x": 224}
    assert isinstance(rain.data, dsa.Array)  # lazy
    assert rain.chunks[0][0] == 32 and rain.chunks[1] == (75,) and rain.chunks[2] == (224,)
    assert rain.attrs["units"] == "mm/month" and rain.attrs["frequency"] == "month"
    assert rain.rio.crs.to_epsg() == 4326
    assert np.issubdtype(rain.time.dtype, np.datetime64)
    assert rain.time[0].dt.strftime("%Y-%m").item() == "1981-01"

    raw = xr.open_dataset(path)["precip"].isel(time=0).values
    first = rain.isel(time=0).values
    assert np.isnan(raw).sum() > 10_000  # the sea
    np.testing.assert_array_equal(np.isnan(first), np.isnan(raw))  # sea stays NaN, never 0
    np.testing.assert_array_equal(first, raw)


@pytest.mark.realdata
def test_open_rainfall_real_geotiff_stack_matches_the_netcdf():
    folder = shared_file(*CHIRPS_TIF_DIR)
    stack = open_rainfall(folder, units="mm/month")
    assert stack.sizes["time"] == 24
    assert stack.time.dt.strftime("%Y-%m").values.tolist() == (
        [f"2019-{m:02d}" for m in range(1, 13)] + [f"2020-{m:02d}" for m in range(1, 13)])
    assert stack.attrs["units"] == "mm/month" and stack.attrs["frequency"] == "month"
    assert isinstance(stack.data, dsa.Array)
    assert stack.rio.crs.to_epsg() == 4326

    nc = open_rainfall(shared_file(*CHIRPS_MONTHLY)).sel(time=stack.time)
    # Same grid up to the GeoTIFF's float32 geotransform (origin off by ~4e-6 degrees).
    np.testing.assert_allclose(stack.x, nc.x, atol=1e-5)
    np.testing.assert_allclose(stack.y, nc.y, atol=1e-5)
    # The GeoTIFFs hold exactly the NetCDF's values; nodata -9999 is NaN exactly where the
    # NetCDF has NaN.
    for lon, lat in [(108.3, -6.4), (110.475, -7.025), (107.6, -6.9)]:  # Indramayu, Semarang, Bandung
        j, i = int(np.argmin(np.abs(nc.y.values - lat))), int(np.argmin(np.abs(nc.x.values - lon)))
        series = stack.values[:, j, i]
        assert np.isfinite(series).all() and (series >= 0).all()
        np.testing.assert_array_equal(series, nc.values[:, j, i])
    np.testing.assert_array_equal(stack.values, nc.values)
    assert not (stack.values == -9999).any()


@pytest.mark.realdata
def test_open_rainfall_real_geotiff_glob_needs_units_because_the_files_have_none():
    pattern = str(shared_file(*CHIRPS_TIF_DIR) / "*.tif")
    with pytest.raises(InputError, match="no units"):
        open_rainfall(pattern)
    assert open_rainfall(pattern, units="mm month-1").sizes["time"] == 24


@pytest.mark.realdata
def test_open_rainfall_real_zambia_daily_is_mm_per_day():
    rain = open_rainfall(shared_file(*ZAMBIA_DAILY))
    assert rain.attrs["units"] == "mm/day" and rain.attrs["frequency"] == "day"
    assert rain.sizes["time"] == 28 and rain.dims == ("time", "y", "x")
    assert rain.rio.crs.to_epsg() == 4326


@pytest.mark.realdata
def test_open_rainfall_monthly_file_configured_as_daily_is_refused():
    with pytest.raises(InputError, match="monthly totals are never read as daily rain"):
        open_rainfall(shared_file(*CHIRPS_MONTHLY), units="mm/day")


@pytest.mark.realdata
def test_open_rainfall_monthly_geotiffs_configured_as_daily_are_refused():
    with pytest.raises(InputError, match="time steps are monthly"):
        open_rainfall(shared_file(*CHIRPS_TIF_DIR), units="mm/day")


@pytest.mark.realdata
def test_open_rainfall_missing_variable_lists_the_available_ones():
    with pytest.raises(InputError, match="'pr' not found; available variables: precip"):
        open_rainfall(shared_file(*CHIRPS_MONTHLY), variable="pr")


# ---------------------------------------------------------------------------------------
# Rainfall: GeoTIFF stacks written here
# ---------------------------------------------------------------------------------------


def test_geotiff_nodata_becomes_nan_and_daily_names_give_daily_steps(tmp_path):
    for day in (1, 2, 3):
        values = np.full((3, 4), float(day))
        values[0, 0] = -9999.0
        write_tif(tmp_path / f"chirps-v2.0.2020.01.{day:02d}.tif", values)
    rain = open_rainfall(tmp_path, units="mm/day")
    assert rain.attrs["frequency"] == "day" and rain.sizes["time"] == 3
    assert np.isnan(rain.values[:, 0, 0]).all()
    assert rain.values[2, 1, 1] == 3.0
    np.testing.assert_allclose(rain.x, 106.025 + 0.05 * np.arange(4))
    np.testing.assert_allclose(rain.y, -6.025 - 0.05 * np.arange(3))


def test_geotiff_units_tag_is_read(tmp_path):
    for month in (1, 2):
        write_tif(tmp_path / f"chirps-v2.0.2020.{month:02d}.tif", np.ones((2, 2)), units="mm")
    rain = open_rainfall(tmp_path)
    assert rain.attrs["units"] == "mm/month" and rain.attrs["frequency"] == "month"


def test_geotiff_stack_bad_file_name_is_named(tmp_path):
    write_tif(tmp_path / "chirps-v2.0.2020.01.tif", np.ones((2, 2)))
    write_tif(tmp_path / "chirps-latest.tif", np.ones((2, 2)))
    with pytest.raises(InputError, match="no date matching") as info:
        open_rainfall(tmp_path, units="mm/month")
    assert str(info.value.file).endswith("chirps-latest.tif")


def test_geotiff_stack_odd_grid_is_named(tmp_path):
    write_tif(tmp_path / "chirps-v2.0.2020.01.tif", np.ones((2, 2)))
    write_tif(tmp_path / "chirps-v2.0.2020.02.tif", np.ones((2, 3)))
    write_tif(tmp_path / "chirps-v2.0.2020.03.tif", np.ones((2, 2)), origin=(107.0, -6.0))
    with pytest.raises(InputError) as info:
        open_rainfall(tmp_path, units="mm/month")
    named = sorted(str(p.file).rsplit("/", 1)[-1] for p in info.value.problems)
    assert named == ["chirps-v2.0.2020.02.tif", "chirps-v2.0.2020.03.tif"]
    assert "shape" in str(info.value) and "transform" in str(info.value)


def test_geotiff_stack_custom_date_pattern_with_day_of_year(tmp_path):
    for doy in (1, 2):
        write_tif(tmp_path / f"rain_A2020{doy:03d}.tif", np.ones((2, 2)))
    rain = open_rainfall(tmp_path, units="mm", date_pattern=r"A(?P<year>\d{4})(?P<doy>\d{3})")
    assert rain.time.dt.strftime("%Y-%m-%d").values.tolist() == ["2020-01-01", "2020-01-02"]
    assert rain.attrs["units"] == "mm/day"


def test_bad_date_pattern_is_a_config_error(tmp_path):
    write_tif(tmp_path / "chirps-v2.0.2020.01.tif", np.ones((2, 2)))
    with pytest.raises(ConfigError, match="named groups"):
        open_rainfall(tmp_path, units="mm/month", date_pattern=r"(\d{4})")


def test_glob_matching_nothing_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no files match"):
        open_rainfall(str(tmp_path / "*.tif"), units="mm/day")


# ---------------------------------------------------------------------------------------
# Rainfall: NetCDF and Zarr written here
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_round_trip(tmp_path, zarr_format):
    values = np.arange(40 * 3 * 4, dtype="float32").reshape(40, 3, 4) % 17
    values[5, 1, 1] = np.nan
    path = tmp_path / "rain.zarr"
    rain_cube(values, units="mm d-1").to_zarr(path, zarr_format=zarr_format, consolidated=False)
    rain = open_rainfall(path, units="mm/day")
    assert rain.attrs["units"] == "mm/day" and rain.attrs["frequency"] == "day"
    assert isinstance(rain.data, dsa.Array) and rain.chunks[0] == (32, 8)
    np.testing.assert_array_equal(rain.values, values)
    assert rain.rio.crs.to_epsg() == 4326


def test_negative_rain_and_fill_values_are_missing_never_zero(tmp_path):
    values = np.full((3, 2, 2), 5.0, dtype="float32")
    values[0, 0, 0] = -1.0  # impossible rain
    values[1, 0, 1] = -99.0  # the file's _FillValue
    path = tmp_path / "rain.nc"
    rain_cube(values).to_netcdf(path, encoding={"precip": {"_FillValue": -99.0}})
    rain = open_rainfall(path).values
    assert np.isnan(rain[0, 0, 0]) and np.isnan(rain[1, 0, 1])
    assert np.count_nonzero(np.isnan(rain)) == 2 and (rain[~np.isnan(rain)] == 5.0).all()


def test_flux_units_are_converted_to_mm_per_day(tmp_path):
    path = tmp_path / "pr.nc"
    rain_cube(np.full((3, 2, 2), 1e-4), units="kg m-2 s-1", name="pr").to_netcdf(path)
    rain = open_rainfall(path, variable="pr", units="mm/day")
    assert rain.attrs["units"] == "mm/day"
    np.testing.assert_allclose(rain.values, 8.64, rtol=1e-6)


@pytest.mark.parametrize("freq, expected", [("D", "mm/day"), ("MS", "mm/month")])
def test_plain_mm_takes_its_period_from_the_time_spacing(tmp_path, freq, expected):
    path = tmp_path / "rain.nc"
    rain_cube(np.ones((4, 2, 2)), freq=freq, units="mm").to_netcdf(path)
    assert open_rainfall(path).attrs["units"] == expected


def test_daily_file_labelled_mm_per_month_is_refused(tmp_path):
    path = tmp_path / "rain.nc"
    rain_cube(np.ones((4, 2, 2)), freq="D", units="mm/month").to_netcdf(path)
    with pytest.raises(InputError, match="time steps are daily"):
        open_rainfall(path)


def test_file_without_units_uses_the_configured_units_checked_against_spacing(tmp_path):
    path = tmp_path / "rain.nc"
    rain_cube(np.ones((4, 2, 2)), freq="MS", units=None).to_netcdf(path)
    with pytest.raises(InputError, match="no units"):
        open_rainfall(path)
    assert open_rainfall(path, units="mm/month").attrs["units"] == "mm/month"
    with pytest.raises(InputError, match="monthly totals are never read as daily rain"):
        open_rainfall(path, units="mm/day")


def test_unknown_units_are_refused(tmp_path):
    path = tmp_path / "rain.nc"
    rain_cube(np.ones((3, 2, 2)), units="inches").to_netcdf(path)
    with pytest.raises(InputError, match="unknown rainfall units 'inches'"):
        open_rainfall(path)


def test_duplicate_times_are_an_error(tmp_path):
    ds = rain_cube(np.ones((3, 2, 2)))
    ds = ds.assign_coords(time=pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-02"]))
    path = tmp_path / "rain.nc"
    ds.to_netcdf(path)
    with pytest.raises(InputError, match="duplicate time steps: 2020-01-02"):
        open_rainfall(path)


def test_unsorted_times_are_sorted_and_gaps_become_nan_steps(tmp_path):
    ds = rain_cube(np.arange(4, dtype="float32")[:, None, None] * np.ones((4, 2, 2)))
    ds = ds.assign_coords(time=pd.to_datetime(["2020-01-05", "2020-01-01", "2020-01-02", "2020-01-03"]))
    path = tmp_path / "rain.nc"
    ds.to_netcdf(path)
    with pytest.warns(UserWarning, match="1 missing daily time step"):
        rain = open_rainfall(path)
    assert rain.time.dt.day.values.tolist() == [1, 2, 3, 4, 5]
    assert np.isnan(rain.values[3]).all()  # the missing day is missing, not zero
    assert rain.values[4, 0, 0] == 0.0 and rain.values[0, 0, 0] == 1.0


def test_missing_rainfall_file_is_named(tmp_path):
    with pytest.raises(InputError, match="not found") as info:
        open_rainfall(tmp_path / "absent.nc")
    assert str(info.value.file).endswith("absent.nc")


def test_chunks_can_be_overridden(tmp_path):
    path = tmp_path / "rain.nc"
    rain_cube(np.ones((50, 4, 6))).to_netcdf(path)
    assert open_rainfall(path).chunks == ((32, 18), (4,), (6,))
    assert open_rainfall(path, chunks=10).chunks[0] == (10,) * 5
    assert open_rainfall(path, chunks={"time": 25, "lat": 2}).chunks[:2] == ((25, 25), (2, 2))


def test_open_grid_keeps_negative_values_and_units(tmp_path):
    path = tmp_path / "ndvi.nc"
    rain_cube(np.full((3, 2, 2), -0.1), freq="16D", units="1", name="NDVI").to_netcdf(path)
    grid = open_grid(path)
    assert grid.dims == ("time", "y", "x") and grid.attrs["units"] == "1"
    assert "frequency" not in grid.attrs
    np.testing.assert_allclose(grid.values, -0.1)


def test_no_warnings_on_a_clean_open(tmp_path):
    path = tmp_path / "rain.zarr"
    rain_cube(np.ones((3, 2, 2))).to_zarr(path, zarr_format=3, consolidated=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_rainfall(path)
