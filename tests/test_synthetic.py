"""The deterministic synthetic demo region (panen.datasets.synthetic)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from scipy.stats import spearmanr

from panen.datasets.districts import read_districts
from panen.datasets.gridded import open_rainfall
from panen.datasets.ndvi import open_ndvi
from panen.datasets.synthetic import (
    CELL_DEG,
    PERIL_NAMES,
    PLANTING_METHODS,
    SOWING_SPREAD_DAYS,
    generate_demo_region,
)
from panen.datasets.yields import read_yields

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
def farmers(policies):
    """One row per farmer: the rain policies (every farmer holds one of each product)."""
    return policies[policies.product_id == "rain"].reset_index(drop=True)


@pytest.fixture(scope="module")
def truth(demo):
    return pd.read_csv(demo["truth"], dtype={"district_id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def districts(demo):
    return read_districts(demo["districts"])


def test_writes_the_eight_files(demo):
    assert {k: p.name for k, p in demo.items()} == {
        "districts": "districts.gpkg", "rainfall": "rainfall.zarr", "ndvi": "ndvi.zarr",
        "yields": "yields.csv", "policies": "policies.csv", "truth": "truth_hazards.csv",
        "truth_losses": "truth_losses.csv", "assessments": "assessments.csv"}
    assert all(p.exists() for p in demo.values())
    assert not list(demo["policies"].parent.glob(".*tmp*"))  # no temp files left behind


def test_same_seed_gives_byte_identical_files(demo, tmp_path):
    again = generate_demo_region(tmp_path / "again")
    for key in ("policies", "truth", "districts", "yields", "truth_losses", "assessments"):
        assert again[key].read_bytes() == demo[key].read_bytes(), key
    a, b = xr.open_zarr(demo["rainfall"]), xr.open_zarr(again["rainfall"])
    np.testing.assert_array_equal(a["precip"].values, b["precip"].values)
    for store in ("rainfall", "ndvi"):
        files = sorted(p.relative_to(demo[store]) for p in demo[store].rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again[store]) for p in again[store].rglob("*") if p.is_file())
        assert len(files) > 5, store
        for rel in files:  # metadata and chunks alike: no timestamps anywhere
            assert (demo[store] / rel).read_bytes() == (again[store] / rel).read_bytes(), (store, rel)


def test_another_seed_gives_another_region(tmp_path):
    a = generate_demo_region(tmp_path / "a", seed=1, n_districts=10, n_farmers=500)
    b = generate_demo_region(tmp_path / "b", seed=2, n_districts=10, n_farmers=500)
    assert a["policies"].read_bytes() != b["policies"].read_bytes()
    assert a["assessments"].read_bytes() != b["assessments"].read_bytes()


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
    """CHIRPS over Java: wet Nov–Mar 200–450 mm/month, dry Jun–Sep often < 50 mm/month."""
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


def test_policy_register_shape_and_keys(policies, farmers, districts):
    assert list(policies.columns) == ["policy_id", "farmer_id", "district_id", "product_id",
                                      "area_ha", "sowing_date", "group_id"]
    assert len(policies) == 4 * 40_000 and len(farmers) == 40_000
    assert policies.policy_id.is_unique and farmers.farmer_id.is_unique
    assert policies.product_id.value_counts().to_dict() == {"rain": 40_000, "yield": 40_000, "ndvi": 40_000,
                                                            "autp": 40_000}
    assert set(policies.district_id) == set(districts.district_id)
    assert policies.policy_id.str.fullmatch(r"P-\d{4}-\d{5}-(rain|yield|ndvi|autp)").all()
    # every farmer holds all four covers (three index products and AUTP) on the same plot,
    # sowing date and group
    per_farmer = policies.groupby("farmer_id")[["district_id", "area_ha", "sowing_date", "group_id"]].nunique()
    assert (per_farmer == 1).all().all()
    assert (policies.groupby("farmer_id").product_id.nunique() == 4).all()
    assert list(policies.product_id[:4]) == ["rain", "yield", "ndvi", "autp"]  # farmer by farmer


def test_plot_sizes_are_smallholder_sized(farmers):
    area = farmers.area_ha
    assert area.between(0.1, 2.0).all()
    assert area.median() < 1 and (area <= 1).mean() > 0.8
    assert area.max() > 1.5  # a few larger farms, capped at the AUTP 2 ha


def test_farmer_groups_have_20_to_40_members_in_one_district(farmers):
    sizes = farmers.groupby("group_id").size()
    assert sizes.between(20, 40).all()
    assert sizes.nunique() > 5
    assert (farmers.groupby("group_id").district_id.nunique() == 1).all()


def test_sowing_dates_spread_over_six_weeks_within_the_window(farmers):
    sowing = farmers.sowing_date
    assert sowing.min() >= SEASON_START
    assert sowing.max() <= SEASON_START + pd.Timedelta(days=21 + 14 + SOWING_SPREAD_DAYS)
    spread = farmers.groupby("district_id").sowing_date.agg(lambda s: (s.max() - s.min()).days)
    assert spread.median() >= 28 and spread.max() <= 2 * SOWING_SPREAD_DAYS
    assert farmers.groupby("district_id").sowing_date.median().nunique() > 3  # varies by district


def test_one_row_per_farmer_and_product(tmp_path):
    """The products only add register rows: the rain rows, and every other file, stay as they were."""
    one = generate_demo_region(tmp_path / "one", n_districts=8, n_farmers=400, products=("rain",))
    paths = generate_demo_region(tmp_path / "two", n_districts=8, n_farmers=400, products=("rain", "yield"))
    register = pd.read_csv(paths["policies"], dtype={"district_id": str})
    assert len(register) == 800
    assert register.policy_id.is_unique
    products = register.groupby("farmer_id").product_id.agg(lambda s: tuple(sorted(s)))
    assert len(products) == 400 and (products == ("rain", "yield")).all()
    assert register.policy_id.str.fullmatch(r"P-\d{4}-\d{5}-(rain|yield)").all()
    assert len(read_districts(paths["districts"])) == 8
    rain = pd.read_csv(one["policies"], dtype=str)
    both = pd.read_csv(paths["policies"], dtype=str)
    pd.testing.assert_frame_equal(both[both.product_id == "rain"].reset_index(drop=True), rain)
    for key in ("truth", "districts", "yields", "truth_losses"):
        assert one[key].read_bytes() == paths[key].read_bytes(), key
    assert "assessments" not in one and "assessments" not in paths  # no AUTP cover, no assessments


def test_autp_cover_adds_its_rows_and_the_assessments(tmp_path):
    """Adding AUTP leaves the other products' rows as they were; taking it away removes the
    assessments an earlier generation left in the folder."""
    one = generate_demo_region(tmp_path / "one", n_districts=8, n_farmers=400, products=("rain",))
    two = generate_demo_region(tmp_path / "two", n_districts=8, n_farmers=400, products=("rain", "autp"))
    both = pd.read_csv(two["policies"], dtype=str)
    pd.testing.assert_frame_equal(both[both.product_id == "rain"].reset_index(drop=True),
                                  pd.read_csv(one["policies"], dtype=str))
    assessed = pd.read_csv(two["assessments"], dtype=str)
    assert len(assessed) > 0 and assessed.policy_id.isin(both.policy_id[both.product_id == "autp"]).all()
    generate_demo_region(tmp_path / "two", n_districts=8, n_farmers=400, products=("rain",))
    assert not (tmp_path / "two" / "assessments.csv").exists()


def test_too_few_farmers_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 20 per district"):
        generate_demo_region(tmp_path, n_districts=10, n_farmers=100)


# --- yields -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def losses(demo):
    return pd.read_csv(demo["truth_losses"], dtype={"district_id": str}, keep_default_na=False)


@pytest.fixture(scope="module")
def yields(demo):
    """(district, year) table [ku/ha], NaN = missing."""
    raw = pd.read_csv(demo["yields"], dtype={"district_id": str})
    return raw.pivot(index="district_id", columns="year", values="yield_ku_ha")


def test_yields_read_as_bps_ku_per_ha(demo, districts):
    raw = pd.read_csv(demo["yields"], dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["district_id", "year", "yield_ku_ha"]
    df = read_yields(demo["yields"], yield_column="yield_ku_ha", units="ku/ha")
    assert len(df) == len(raw) == 36 * 16
    assert set(df.district_id) == set(districts.district_id)
    assert sorted(set(df.year)) == list(range(2009, 2025))
    blank = raw.yield_ku_ha == ""
    assert 1 <= blank.sum() <= 20  # a few missing district-years ...
    assert (df["yield"].isna() == blank).all()  # ... blank, never 0
    assert (pd.to_numeric(raw.yield_ku_ha[~blank]) > 0).all()
    assert not df.loc[df.year == 2024, "yield"].isna().any()  # the season itself is complete
    np.testing.assert_allclose(df["yield"], pd.to_numeric(raw.yield_ku_ha.replace("", np.nan)) / 10)


def test_yield_levels_trend_and_bad_years(yields, losses):
    """BPS yields: irrigated 5–6.5 t/ha, rainfed 3.5–5 t/ha; El Niño 2015 and 2019 hit many districts."""
    regime = losses.set_index("district_id").water_regime
    normal = yields.drop(columns=[2010, 2015, 2019, 2024])
    median = normal.median(axis=1)
    assert median[regime == "irrigated"].between(52, 67).all()
    assert median[regime == "rainfed"].between(34, 51).all()
    assert (regime == "irrigated").sum() >= 8 and (regime == "rainfed").sum() >= 8
    assert yields.stack().dropna().between(15, 75).all()
    # mild upward trend (~0.5 %/yr) in the normal years
    logs = np.log(normal.mean())
    slope = np.polyfit(logs.index.to_numpy(float), logs.to_numpy(), 1)[0]
    assert 0.001 < slope < 0.012
    for year in (2015, 2019):
        drop = 1 - yields[year] / median
        assert (drop > 0.12).mean() > 0.4, year  # many districts lose 15–35 %
        assert drop.max() < 0.45, year
    # ordinary year-to-year noise: a few percent
    cv = (normal.std(axis=1) / median)
    assert cv.between(0.015, 0.09).all()


@pytest.fixture(scope="module")
def season(yields, truth, losses):
    """Per district: 2024 shortfall against the 2020–2023 mean, planted severity, truth."""
    shortfall = 1 - yields[2024] / yields.loc[:, 2020:2023].mean(axis=1)
    t = truth.set_index("district_id")
    out = pd.DataFrame({"shortfall": shortfall,
                        "severity": np.maximum(t.footprint_drought, t.footprint_flood),
                        "hazard": t.hazard})
    return out.join(losses.set_index("district_id"))


def test_2024_yield_loss_follows_the_planted_hazards_imperfectly(season):
    rho = spearmanr(season.shortfall, season.severity).statistic
    assert 0.4 < rho < 0.85  # related (0.62 for the default seed), not identical: basis risk
    drought = season[season.hazard == "drought"]
    flood = season[season.hazard == "flood"]
    normal = season[(season.severity < 0.2) & (season.cause == "none")]
    assert drought.shortfall.median() > 0.15 and flood.shortfall.median() > 0.08
    assert normal.shortfall.abs().median() < 0.06
    assert season.yield_loss[season.hazard != "none"].between(0, 0.45).all()
    # basis risk both ways: hazard districts that lost little, and pest losses the rain misses
    buffered = season[season.buffered == "yes"]
    assert len(buffered) == 2 and (buffered.hazard != "none").all() and (buffered.shortfall < 0.12).all()
    pests = season[season.cause == "pest"]
    assert len(pests) == 2 and (pests.severity < 0.2).all() and (pests.shortfall > 0.1).all()


# --- NDVI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ndvi(demo):
    return open_ndvi(demo["ndvi"], qa="good_only").load()


def test_ndvi_cube_reads_as_mod13q1_composites(demo, ndvi, rain):
    assert ndvi.dims == ("time", "y", "x") and ndvi.dtype == np.float32
    assert ndvi.attrs["units"] == "1" and ndvi.rio.crs.to_epsg() == 4326
    np.testing.assert_allclose(ndvi.x, rain.x)
    np.testing.assert_allclose(ndvi.y, rain.y)
    times = pd.DatetimeIndex(ndvi.time.values)
    assert times[0] == pd.Timestamp("2013-01-01") and times[-1] == pd.Timestamp("2024-08-28")
    assert set(times.day_of_year) == set(range(1, 366, 16))
    assert len(times) == 11 * 23 + 16
    raw = xr.open_zarr(demo["ndvi"], mask_and_scale=False)
    assert raw["NDVI"].attrs["units"] == "1" and raw["NDVI"].dtype == np.float32
    assert raw["VI_Quality"].dtype == np.uint16
    qa = raw["VI_Quality"].values
    assert set(np.unique(qa)) == {0, 3, 65535}
    stored = raw["NDVI"].values
    assert (np.isnan(stored) == (qa != 0)).all()  # NaN exactly where QA is not good
    # the QA layer adds nothing the NaN has not said: every policy reads the same cube
    np.testing.assert_array_equal(open_ndvi(demo["ndvi"], qa="none").values, ndvi.values)


def test_ndvi_sea_mask_and_range(ndvi, rain, land):
    ndvi_land = ndvi.notnull().any("time")
    assert (ndvi_land.values == rain.notnull().any("time").values).all()  # the rain's sea mask
    values = ndvi.values[np.isfinite(ndvi.values)]
    assert values.min() >= -0.2 and values.max() <= 1
    assert values.min() > 0.01  # missing is NaN, never 0


def test_ndvi_clouds_cluster_in_the_wet_season(ndvi, land):
    cells = land.values
    cloudy = np.isnan(ndvi.values[:, cells])
    share = pd.Series(cloudy.mean(axis=1), index=pd.DatetimeIndex(ndvi.time.values))
    months = share.index.month
    assert share[np.isin(months, (12, 1, 2))].between(0.1, 0.3).all()
    assert share[np.isin(months, (12, 1, 2))].std() > 0.03
    assert share[(months >= 5) & (months <= 9)].max() < 0.05
    # clustered: a cloudy pixel's eastern neighbour is usually cloudy too
    grid = np.isnan(ndvi.values) & cells[None]
    wet = np.isin(months, (12, 1, 2))
    a, b = grid[wet, :, :-1], grid[wet, :, 1:]
    both_land = cells[None, :, :-1] & cells[None, :, 1:]
    assert (a & b & both_land).sum() / (a & both_land).sum() > 0.6


def test_ndvi_rice_phenology(ndvi, land):
    """MOD13Q1 over rice: ~0.2 at flooding/transplanting, 0.6–0.85 at the peak ~60–80 days later."""
    cells = land.values
    times = pd.DatetimeIndex(ndvi.time.values)
    values = ndvi.values[:, cells]
    median = pd.Series(np.nanmedian(values, axis=1), index=times)
    for year in range(2013, 2023):  # baseline wet seasons
        wet = (times >= f"{year}-12-15") & (times <= f"{year + 1}-03-31")
        peak = np.nanmax(values[wet], axis=0)
        assert 0.6 <= np.median(peak) <= 0.85, year
        assert (np.percentile(peak, [5, 95]) >= [0.5, 0.6]).all() and np.percentile(peak, 95) <= 0.9
        peak_date = median[f"{year}-12-15":f"{year + 1}-03-31"].idxmax()
        assert pd.Timestamp(f"{year + 1}-01-01") <= peak_date <= pd.Timestamp(f"{year + 1}-02-28"), year
        transplanting = median[f"{year}-11-01":f"{year}-12-10"]
        assert transplanting.between(0.2, 0.32).all(), year
        dry = median[f"{year + 1}-06-15":f"{year + 1}-10-31"]
        assert dry.max() < np.median(peak) - 0.1 and dry.min() > 0.2
    # the dry season is noisier: larger composite-to-composite jumps per pixel
    jumps = pd.Series(np.nanmedian(np.abs(np.diff(values, axis=0)), axis=1), index=times[1:])
    detrended = np.abs(np.diff(median.to_numpy()))
    noise = jumps - detrended
    assert noise[(times[1:].month >= 6) & (times[1:].month <= 10)].median() > noise[
        np.isin(times[1:].month, (12, 1, 2))].median()


def _district_ndvi(ndvi, districts) -> pd.DataFrame:
    x, y = np.meshgrid(ndvi.x.values, ndvi.y.values)
    out = {}
    for d, geom in zip(districts.district_id, districts.geometry, strict=True):
        inside = shapely.contains_xy(geom, x, y)
        if not inside.any():  # the sub-cell kota: the cell under its representative point
            px, py = geom.representative_point().coords[0]
            inside = (np.abs(x - px) <= CELL_DEG / 2) & (np.abs(y - py) <= CELL_DEG / 2)
        with warnings.catch_warnings():  # a district entirely under cloud: NaN, as it should be
            warnings.simplefilter("ignore", RuntimeWarning)
            out[d] = np.nanmean(ndvi.values[:, inside], axis=1)
    return pd.DataFrame(out, index=pd.DatetimeIndex(ndvi.time.values))


def test_ndvi_shows_the_season_related_to_but_not_equal_to_yields(ndvi, districts, season):
    """Cumulative z (Chantarat et al. 2013, baseline 2013–2022) over Nov–Feb: drought and flood districts
    fall, the pest the canopy shows too; the correlation with the yield loss is imperfect."""
    series = _district_ndvi(ndvi, districts)
    period = series.index.day_of_year
    base = series[(series.index.year >= 2013) & (series.index.year <= 2022)]
    mean = base.groupby(base.index.day_of_year).mean()
    sd = base.groupby(base.index.day_of_year).std()
    z = (series - mean.loc[period].to_numpy()) / sd.loc[period].to_numpy()
    cz = z["2023-11-01":"2024-02-20"].sum()
    s = season.assign(cz=cz)
    rho = spearmanr(-s.cz, s.shortfall).statistic
    assert 0.5 < rho < 0.95  # 0.77 for the default seed
    assert s.loc[(s.hazard == "drought") & (s.buffered == "no"), "cz"].max() < -5
    assert s.loc[(s.hazard == "flood") & (s.buffered == "no"), "cz"].max() < -5
    normal = s[(s.severity < 0.2) & (s.cause == "none")]
    assert normal.cz.median() > -3
    pests = s[s.cause == "pest"].sort_values("pest_visible_in_ndvi")
    assert pests.cz.iloc[-1] < -5 and pests.cz.iloc[0] > -5  # one pest shows, one hides
    # drought delays the green-up: severe drought districts pass NDVI 0.4 weeks later than usual
    def green_up(d, year):  # days from 1 November to the first composite above 0.4
        part = series.loc[f"{year}-11-01":f"{year + 1}-03-31", d]
        return (part[part > 0.4].index[0] - pd.Timestamp(f"{year}-11-01")).days

    for d in s[(s.hazard == "drought") & (s.severity >= 0.9) & (s.buffered == "no")].index:
        usual = np.median([green_up(d, year) for year in range(2013, 2022)])
        assert green_up(d, 2023) >= usual + 16, d


# --- AUTP loss assessments ----------------------------------------------------------------


@pytest.fixture(scope="module")
def assessments(demo, policies):
    """``assessments.csv`` with the register's district, area and sowing date, and ``puso``."""
    raw = pd.read_csv(demo["assessments"], dtype={"policy_id": str, "plot_id": str},
                      parse_dates=["event_date", "notice_date"])
    register = policies.set_index("policy_id")[["district_id", "area_ha", "sowing_date", "product_id"]]
    out = raw.join(register, on="policy_id")
    out["puso"] = (out.damage_intensity_pct >= 75) & (out.damaged_area_pct >= 75)
    out["peril_en"] = out.peril.map(PERIL_NAMES)
    return out


@pytest.fixture(scope="module")
def assessed_districts(assessments, policies, truth, losses):
    """Per district: insured AUTP area, assessed and puso area [ha], and the planted truth."""
    insured = policies[policies.product_id == "autp"].groupby("district_id").area_ha.sum()
    a = assessments.assign(puso_area=assessments.plot_area_ha * assessments.puso)
    g = a.groupby("district_id").agg(assessed=("plot_area_ha", "sum"), puso=("puso_area", "sum"))
    g = g.reindex(insured.index, fill_value=0.0).assign(insured=insured)
    return (g.join(truth.set_index("district_id")[["hazard", "severity"]])
            .join(losses.set_index("district_id")[["cause", "yield_loss", "buffered"]]))


def test_assessments_columns_and_keys(demo, assessments, policies):
    raw = pd.read_csv(demo["assessments"], dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["policy_id", "plot_id", "peril", "plot_area_ha", "damage_intensity_pct",
                                 "damaged_area_pct", "crop_age_days", "planting_method", "event_date",
                                 "notice_date"]
    assert (raw != "").all().all()  # no blanks anywhere
    # every assessment refers to an AUTP policy of the register
    autp = set(policies.policy_id[policies.product_id == "autp"])
    assert raw.policy_id.isin(autp).all() and (assessments.product_id == "autp").all()
    assert raw.plot_id.is_unique and raw.plot_id.str.fullmatch(r"PT-\d{4}-\d{5}-[1-3]").all()
    assert (raw.plot_id.str[3:13] == raw.policy_id.str[2:12]).all()  # the plot's farmer is the policy's
    assert 5_000 < len(raw) < 40_000
    assert raw.plot_area_ha.str.fullmatch(r"\d\.\d\d").all()
    # plots are parts of the insured farm (AUTP: at most 2 ha a farmer)
    per_policy = assessments.groupby("policy_id").agg(plots=("plot_area_ha", "sum"), farm=("area_ha", "first"))
    assert (per_policy.plots <= per_policy.farm + 1e-9).all() and (assessments.plot_area_ha >= 0.05).all()
    for col in ("damage_intensity_pct", "damaged_area_pct"):
        assert assessments[col].between(5, 100).all() and (assessments[col] % 1 == 0).all()


def test_assessed_damage_follows_the_hazards_but_not_exactly(assessed_districts):
    g = assessed_districts
    hazard = g[(g.hazard != "none") & (g.buffered == "no")]
    calm = g[(g.hazard == "none") & (g.cause == "none")]
    assert len(hazard) >= 4 and len(calm) >= 4
    # many plots reported in drought/flood districts, few elsewhere
    assert (hazard.assessed / hazard.insured).min() > 0.3
    assert (calm.assessed / calm.insured).max() < 0.25
    # a larger share of the assessed area reaches puso (>= 75 % / 75 %) where the hazards were
    assert hazard.puso.sum() / hazard.assessed.sum() > calm.puso.sum() / calm.assessed.sum() + 0.05
    # AUTP nationally pays on 1.5-2.6 % of insured area in normal years; hazard districts far more
    assert 0.012 < calm.puso.sum() / calm.insured.sum() < 0.035
    assert (hazard.puso / hazard.insured).median() > 0.12
    # the pest districts (no hazard in the rain) claim too: basis risk the index cannot see
    pests = g[g.cause == "pest"]
    assert len(pests) == 2 and (pests.puso / pests.insured).min() > 0.05
    # related to the planted yield loss, not identical
    rho = spearmanr(g.puso / g.insured, g.yield_loss).statistic
    assert 0.6 < rho < 0.99


def test_perils_mix(assessments, truth):
    a = assessments.join(truth.set_index("district_id")[["hazard"]], on="district_id")
    assert a.peril_en.notna().all()  # every name is a known field name
    share = a.peril_en.value_counts(normalize=True)
    assert share.get("drought", 0) > 0.1 and share.get("flood", 0) > 0.1
    for kind in ("drought", "flood"):
        main = a[a.hazard == kind].peril_en.value_counts(normalize=True)
        assert main.index[0] == kind and main.iloc[0] > 0.6, kind
    calm = a[a.hazard == "none"]
    pests = {"brown planthopper", "rats", "blast", "tungro", "stem borer"}
    assert pests <= set(calm.peril_en)
    assert {"wereng batang coklat", "tikus", "blas"} <= set(a.peril)
    # a few excluded perils (golden apple snail, fire, ...), and English names on some forms
    excluded = a.peril_en.isin({"golden apple snail", "fire", "grassy stunt", "bacterial leaf blight"})
    assert 0.005 < excluded.mean() < 0.06 and {"keong mas", "kebakaran"} <= set(a.peril)
    english = a.peril.isin({"drought", "flood", "brown planthopper", "rats", "blast"})
    assert 0.02 < english.mean() < 0.2


def test_assessment_dates_ages_and_methods(assessments, truth):
    a = assessments
    assert a.event_date.between(SEASON_START, SEASON_END).all()
    delay = (a.notice_date - a.event_date).dt.days
    assert (delay >= 0).all() and delay.max() <= 30
    assert 0.01 < (delay > 7).mean() < 0.08  # a few late notices
    assert (delay <= 3).mean() > 0.6
    # crop age is counted from the register's planting (sowing) date
    assert ((a.event_date - a.sowing_date).dt.days == a.crop_age_days).all()
    assert (a.crop_age_days >= 0).all() and a.crop_age_days.max() <= 110
    young = np.where(a.planting_method == "transplanting", a.crop_age_days < 10, a.crop_age_days < 30)
    assert 0.01 < young.mean() < 0.15  # some crops too young for cover
    assert set(a.planting_method) == set(PLANTING_METHODS)
    methods = a.drop_duplicates("policy_id").planting_method.value_counts(normalize=True)
    assert methods["transplanting"] > 0.75 and 0.05 < methods["tabela"] < 0.2 and 0.01 < methods["salibu"] < 0.08
    # flood claims in the planted flood districts fall on the flood's days (but for a few
    # local floods of the background)
    flood = a.join(truth.set_index("district_id")[["hazard", "event_start", "event_end"]], on="district_id")
    flood = flood[(flood.hazard == "flood") & (flood.peril_en == "flood")]
    assert len(flood) > 100
    assert flood.event_date.between(pd.to_datetime(flood.event_start), pd.to_datetime(flood.event_end)).mean() > 0.9
