"""The deterministic synthetic demo region (panen.datasets.synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr

from panen.datasets.districts import read_districts
from panen.datasets.gridded import open_rainfall
from panen.datasets.synthetic import CELL_DEG, SOWING_SPREAD_DAYS, generate_demo_region

SEASON_START = pd.Timestamp("2023-11-01")
SEASON_END = pd.Timestamp("2024-03-31")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The default demo region (36 districts, 40,000 farmers), generated once."""
    return generate_demo_region(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def rain(demo):
    return open_rainfall(demo["rainfall"]).load()


@pytest.fixture(scope="module")
def policies(demo):
    return pd.read_csv(demo["policies"], dtype={"district_id": str},
                       parse_dates=["sowing_date"])


@pytest.fixture(scope="module")
def truth(demo):
    return pd.read_csv(demo["truth"], dtype={"district_id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def districts(demo):
    return read_districts(demo["districts"])


def test_writes_the_four_files(demo):
    assert {k: p.name for k, p in demo.items()} == {
        "districts": "districts.gpkg", "rainfall": "rainfall.zarr",
        "policies": "policies.csv", "truth": "truth_hazards.csv"}
    assert all(p.exists() for p in demo.values())
    assert not list(demo["policies"].parent.glob(".*tmp*"))  # no temp files left behind


def test_same_seed_gives_byte_identical_files(demo, tmp_path):
    again = generate_demo_region(tmp_path / "again")
    for key in ("policies", "truth", "districts"):
        assert again[key].read_bytes() == demo[key].read_bytes(), key
    a, b = xr.open_zarr(demo["rainfall"]), xr.open_zarr(again["rainfall"])
    np.testing.assert_array_equal(a["precip"].values, b["precip"].values)
    files = sorted(p.relative_to(demo["rainfall"]) for p in demo["rainfall"].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again["rainfall"]) for p in again["rainfall"].rglob("*") if p.is_file())
    for rel in files:  # metadata and chunks alike: no timestamps anywhere
        assert (demo["rainfall"] / rel).read_bytes() == (again["rainfall"] / rel).read_bytes(), rel


def test_another_seed_gives_another_region(tmp_path):
    a = generate_demo_region(tmp_path / "a", seed=1, n_districts=10, n_farmers=500)
    b = generate_demo_region(tmp_path / "b", seed=2, n_districts=10, n_farmers=500)
    assert a["policies"].read_bytes() != b["policies"].read_bytes()


# --- districts --------------------------------------------------------------------------


def test_districts_are_bps_style_with_a_sub_cell_kota(districts):
    assert len(districts) == 36
    assert districts.crs.to_epsg() == 4326
    assert districts.district_id.str.fullmatch(r"\d{4}").all()
    assert (districts.district_id.str[:2] == districts.province_id).all()
    assert districts.province_id.nunique() >= 3
    assert {"name", "province_id"} <= set(districts.columns)
    area = shapely.area(districts.geometry.to_numpy())
    kota = districts.district_id.str[2:].astype(int) >= 71
    assert kota.any()
    assert area[kota].min() < CELL_DEG**2  # smaller than one grid cell
    assert area.max() / np.median(area) > 1.5  # sizes vary
    bounds = districts.total_bounds
    assert 105.5 < bounds[0] and bounds[2] < 112.5 and -8.5 < bounds[1] and bounds[3] < -5.5
    assert districts.geometry.is_valid.all()
    union = shapely.union_all(districts.geometry.to_numpy())
    assert sum(area) == pytest.approx(union.area, rel=1e-6)  # no overlaps


# --- rainfall ---------------------------------------------------------------------------


def test_rainfall_reads_as_daily_mm_covering_the_season_windows(rain):
    assert rain.dims == ("time", "y", "x")
    assert rain.attrs["units"] == "mm/day" and rain.attrs["frequency"] == "day"
    assert rain.dtype == np.float32
    assert rain.rio.crs.to_epsg() == 4326
    np.testing.assert_allclose(np.diff(rain.x), CELL_DEG)
    assert rain.time[0].item() <= (SEASON_START - pd.Timedelta(days=60)).value
    assert rain.time[-1].item() >= (SEASON_END + pd.Timedelta(days=150)).value


@pytest.fixture(scope="module")
def land(rain):
    return rain.notnull().mean("time") > 0.5


def test_sea_is_nan_and_land_is_mostly_valid(rain, land):
    sea = ~land
    assert 0.2 < float(land.mean()) < 0.7
    assert rain.where(sea).notnull().sum() == 0  # sea is NaN on every day
    missing = float(rain.isnull().where(land).sum() / (land.sum() * rain.sizes["time"]))
    assert 0.003 < missing < 0.02  # ~0.5 % scattered + the planted outage
    assert float(rain.min()) >= 0


def test_monsoon_magnitudes_match_java_chirps(rain, land):
    """DOMAIN.md: wet Nov–Mar 200–450 mm/month, dry Jun–Sep often < 50 mm/month."""
    monthly = rain.where(land).resample(time="MS").sum(min_count=1).mean(["y", "x"]).to_series()
    wet = monthly["2023-11":"2024-03"]
    assert 200 <= wet.mean() <= 450
    assert (wet["2023-12":"2024-03"].between(200, 450)).all()
    assert wet["2023-11"].item() > 120  # the planted droughts delay the onset in places
    dry = monthly["2024-06":"2024-08"]
    assert (dry < 80).all() and dry.mean() < 50


def test_about_half_the_wet_season_days_are_dry_and_heavy_days_occur(rain, land):
    season = rain.sel(time=slice(SEASON_START, SEASON_END)).where(land)
    valid = season.notnull().sum()
    dry_share = float((season < 1).sum() / valid)
    assert 0.4 < dry_share < 0.65
    heavy_share = float((season >= 50).sum() / valid)
    assert 0.005 < heavy_share < 0.1
    assert float(season.max()) >= 150


def _district_series(rain, geom) -> xr.DataArray:
    cells = shapely.intersects(geom, shapely.box(*np.meshgrid(rain.x - CELL_DEG / 2, rain.y - CELL_DEG / 2),
                                                 *np.meshgrid(rain.x + CELL_DEG / 2, rain.y + CELL_DEG / 2)))
    mask = xr.DataArray(cells, dims=("y", "x"), coords={"y": rain.y, "x": rain.x})
    return rain.where(mask)


def test_planted_hazards_show_in_the_rain(rain, truth, districts):
    assert (truth.hazard == "drought").any() and (truth.hazard == "flood").any()
    assert set(truth.hazard) <= {"drought", "flood", "none"}
    geoms = districts.set_index("district_id").geometry
    window = slice(SEASON_START, SEASON_START + pd.Timedelta(days=50))
    normal = truth[(truth.hazard == "none") & (truth.footprint_drought < 0.05)].district_id
    normal_total = np.median([float(_district_series(rain, geoms[d]).sel(time=window).mean(["y", "x"]).sum())
                              for d in normal])
    for d in truth[(truth.hazard == "drought") & (truth.severity_class == "severe")].district_id:
        total = float(_district_series(rain, geoms[d]).sel(time=window).mean(["y", "x"]).sum())
        assert total < 0.25 * normal_total, d
    for _, row in truth[truth.hazard == "flood"].iterrows():
        series = _district_series(rain, geoms[row.district_id]).mean(["y", "x"])
        event = series.sel(time=slice(row.event_start, row.event_end)).sum()
        assert float(event) > 150, row.district_id  # multi-day heavy totals


def test_one_district_is_almost_all_missing_for_a_stretch(rain, truth, districts):
    gap = truth[truth.data_gap_start != ""]
    assert len(gap) == 1
    row = gap.iloc[0]
    assert row.hazard == "none"
    block = _district_series(rain, districts.set_index("district_id").geometry[row.district_id])
    inside = block.sel(time=slice(row.data_gap_start, row.data_gap_end))
    cells = block.isel(time=0).notnull() | block.isel(time=-1).notnull()
    valid = float(inside.where(cells).notnull().sum() / (cells.sum() * inside.sizes["time"]))
    assert valid < 0.1


# --- farmers ----------------------------------------------------------------------------


def test_policy_register_shape_and_keys(policies, districts):
    assert list(policies.columns) == ["policy_id", "farmer_id", "district_id", "product_id",
                                      "area_ha", "sowing_date", "group_id"]
    assert len(policies) == 40_000
    assert policies.policy_id.is_unique and policies.farmer_id.is_unique
    assert (policies.product_id == "rain").all()
    assert set(policies.district_id) == set(districts.district_id)


def test_plot_sizes_are_smallholder_sized(policies):
    area = policies.area_ha
    assert area.between(0.1, 2.0).all()
    assert area.median() < 1 and (area <= 1).mean() > 0.8
    assert area.max() > 1.5  # a few larger farms, capped at the AUTP 2 ha


def test_farmer_groups_have_20_to_40_members_in_one_district(policies):
    sizes = policies.groupby("group_id").size()
    assert sizes.between(20, 40).all()
    assert sizes.nunique() > 5
    assert (policies.groupby("group_id").district_id.nunique() == 1).all()


def test_sowing_dates_spread_over_six_weeks_within_the_window(policies):
    sowing = policies.sowing_date
    assert sowing.min() >= SEASON_START
    assert sowing.max() <= SEASON_START + pd.Timedelta(days=21 + 14 + SOWING_SPREAD_DAYS)
    spread = policies.groupby("district_id").sowing_date.agg(lambda s: (s.max() - s.min()).days)
    assert spread.median() >= 28 and spread.max() <= 2 * SOWING_SPREAD_DAYS
    assert policies.groupby("district_id").sowing_date.median().nunique() > 3  # varies by district


def test_one_row_per_farmer_and_product(tmp_path):
    paths = generate_demo_region(tmp_path, n_districts=8, n_farmers=400, products=("rain", "yield"))
    register = pd.read_csv(paths["policies"], dtype={"district_id": str})
    assert len(register) == 800
    assert register.policy_id.is_unique
    products = register.groupby("farmer_id").product_id.agg(lambda s: tuple(sorted(s)))
    assert len(products) == 400 and (products == ("rain", "yield")).all()
    assert register.policy_id.str.fullmatch(r"P-\d{4}-\d{5}-(rain|yield)").all()
    assert len(read_districts(paths["districts"])) == 8


def test_too_few_farmers_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 20 per district"):
        generate_demo_region(tmp_path, n_districts=10, n_farmers=100)
