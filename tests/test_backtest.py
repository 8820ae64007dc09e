"""Historical backtest: same engine as the seasonal batch, hand-computed multi-year payouts, real data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
import yaml

from panen.engine.maths.series import monthly_to_daily_equivalent
from panen.engine.pipeline.backtest import backtest, load_backtest_config, parse_years
from panen.engine.research.simulation import exposure_table, simulation_table
from panen.engine.cli import main
from panen.engine.errors import ConfigError, DataQualityError, InputError

from conftest import shared_file

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- factories
def write_districts(folder: Path) -> Path:
    """Two districts splitting a 1° × 1° box: W (100.0–100.5 °E) and E (100.5–101.0 °E)."""
    gdf = gpd.GeoDataFrame({"district_id": ["W", "E"]},
                           geometry=[shapely.box(100.0, -6.0, 100.5, -5.0), shapely.box(100.5, -6.0, 101.0, -5.0)],
                           crs="EPSG:4326")
    path = folder / "districts.gpkg"
    gdf.to_file(path, layer="districts")
    return path


def write_grid(values: np.ndarray, times, path: Path, units: str) -> Path:
    """A (time, 10, 10) 0.1° rainfall cube over 100–101 °E, 5–6 °S, as a CF Zarr store."""
    lon = 100.05 + 0.1 * np.arange(10)
    lat = -5.05 - 0.1 * np.arange(10)
    da = xr.DataArray(values.astype(np.float32), dims=("time", "lat", "lon"),
                      coords={"time": pd.DatetimeIndex(times), "lat": lat, "lon": lon},
                      attrs={"units": units}, name="precip")
    ds = da.to_dataset().rio.write_crs("EPSG:4326")
    ds.chunk(time=32).to_zarr(path, zarr_format=2, consolidated=True)
    return path


WEST, EAST = np.s_[:, :, :5], np.s_[:, :, 5:]


def daily_archive(folder: Path) -> Path:
    """Five seasons of daily rain, 3 mm/day everywhere, with hand-planted events:

    * season 2020 (from 2019-11-01), W: 1.5 mm/day on days 0–39 (total 60 mm);
    * season 2022 (from 2021-11-01), E: no rain on days 10–29 (a 20-day dry spell, total 60 mm);
    * season 2023 (from 2022-11-01), W: no data on days 5–7 (flagged, never paid).
    """
    times = pd.date_range("2018-07-01", "2023-06-30", freq="D")
    rain = np.full((len(times), 10, 10), 3.0)
    day = {d: i for i, d in enumerate(times)}

    def days(start: str, first: int, last: int) -> slice:
        s = day[pd.Timestamp(start)]
        return slice(s + first, s + last + 1)

    rain[days("2019-11-01", 0, 39), :, :5] = 1.5
    rain[days("2021-11-01", 10, 29), :, 5:] = 0.0
    rain[days("2022-11-01", 5, 7), :, :5] = np.nan
    return write_grid(rain, times, folder / "rain.zarr", "mm/day")


RAIN = {"id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "anchor": "season_start",
        "phases": [
            {"name": "early", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
             "strike": 100, "exit": 50, "weight": 0.6},
            {"name": "dry", "start_day": 0, "end_day": 60, "index": "dry_spell", "dry_threshold": 1.0,
             "direction": "above", "strike": 10, "exit": 30, "weight": 0.4}]}
YIELD = {"id": "yield", "trigger": "area_yield", "sum_insured_per_ha": 6_000_000,
         "normal_yield": {"method": "mean", "years": 3}, "indemnity_level": 0.8}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("archive")
    write_districts(d)
    daily_archive(d)
    rows = [{"district_id": k, "year": y, "yield": 3.0 if (k, y) == ("W", 2020) else 5.0}
            for k in ("W", "E") for y in range(2015, 2024)]
    pd.DataFrame(rows).to_csv(d / "yields.csv", index=False)
    pd.DataFrame({
        "policy_id": ["p1", "p2", "p3", "p4", "p5"], "farmer_id": ["f1", "f2", "f3", "f1", "f3"],
        "district_id": ["W", "W", "E", "W", "E"], "product_id": ["rain", "rain", "rain", "yield", "yield"],
        "area_ha": [0.5, 1.0, 0.25, 1.0, 1.0], "sum_insured": [1_000_000, 2_000_000, None, None, None],
    }).to_csv(d / "policies.csv", index=False)
    return d


def archive_config(folder: Path, *, products=(RAIN, YIELD), policies: bool = True, name: str = "bt.yaml") -> Path:
    cfg = {"season": {"id": "MT1", "start": "2022-11-01", "end": "2023-03-31", "year": 2023},
           "inputs": {"districts": {"path": str(folder / "districts.gpkg")},
                      "rainfall": {"path": str(folder / "rain.zarr"), "variable": "precip"},
                      "yields": {"path": str(folder / "yields.csv")}},
           "products": list(products), "output": {"formats": ["parquet", "csv"]}}
    if policies:
        cfg["inputs"]["policies"] = {"path": str(folder / "policies.csv")}
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def season_rates(result, product: str) -> pd.DataFrame:
    t = result.table[result.table["product_id"] == product]
    return t.drop_duplicates(["district_id", "season"]).pivot(index="season", columns="district_id",
                                                              values="payout_rate")


# --------------------------------------------------------------------------- hand-computed archive
@pytest.fixture(scope="module")
def archive_result(archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("bt") / "out"
    return backtest(archive_config(archive), years=(2018, 2023), out_dir=out)


def test_multi_year_weather_payouts_match_hand_computation(archive_result):
    r = season_rates(archive_result, "rain")
    # 2020 W: total 60 mm → (100 − 60) / 50 = 0.8 × weight 0.6; never dry (1.5 ≥ 1 mm)
    assert r.loc[2020, "W"] == pytest.approx(0.48)
    # 2022 E: total 20 × 3 = 60 mm → 0.48, plus a 20-day dry spell → (20 − 10) / 20 × 0.4 = 0.2
    assert r.loc[2022, "E"] == pytest.approx(0.68)
    for season, district in [(2019, "W"), (2019, "E"), (2020, "E"), (2021, "W"), (2021, "E"), (2022, "W"),
                             (2023, "E")]:
        assert r.loc[season, district] == pytest.approx(0.0), (season, district)
    # missing days are never zero rain: flagged, not paid
    assert np.isnan(r.loc[2023, "W"])
    # season 2018 starts 2017-11-01, before the archive: flagged, kept, not dropped
    assert r.loc[2018].isna().all()
    t = archive_result.table
    early = t[(t["product_id"] == "rain") & (t["phase"] == "early") & (t["district_id"] == "W")].set_index("season")
    assert early.loc[2020, "index_value"] == pytest.approx(60.0)
    assert early.loc[2020, "phase_rate"] == pytest.approx(0.48)
    assert early.loc[2020, "anchor"] == "2019-11-01"
    assert bool(early.loc[2023, "flagged"]) and not bool(early.loc[2022, "flagged"])


def test_area_yield_is_evaluated_per_harvest_year(archive_result):
    r = season_rates(archive_result, "yield")
    # W 2020: normal = mean(2017..2019) = 5 t/ha, threshold 4, actual 3 → (4 − 3) / 4
    assert r.loc[2020, "W"] == pytest.approx(0.25)
    # 2021: the 2020 shortfall is in the history, and the actual 5 t/ha is above any threshold
    assert r.loc[2021, "W"] == pytest.approx(0.0)
    assert (r.drop(index=2020).fillna(-1) == 0).all().all()


def test_portfolio_weighs_districts_by_the_registers_sums_insured(archive_result):
    p = archive_result.portfolio.set_index(["product_id", "season"])
    # rain exposure: W = 1,000,000 + 2,000,000 (given), E = 0.25 ha × 6,000,000
    assert (p.loc["rain", "exposure"] == 4_500_000).all()
    assert p.loc[("rain", 2020), "payout"] == 1_440_000  # 3,000,000 × 0.48
    assert p.loc[("rain", 2022), "payout"] == 1_020_000  # 1,500,000 × 0.68
    assert p.loc[("rain", 2022), "payout_rate"] == pytest.approx(1_020_000 / 4_500_000)
    assert p.loc[("rain", 2023), "districts_flagged"] == 1
    assert p.loc[("rain", 2023), "exposure_assessed"] == 1_500_000
    assert p.loc[("rain", 2023), "payout"] == 0
    assert np.isnan(p.loc[("rain", 2018), "payout_rate"])  # nothing assessable
    assert p.loc[("yield", 2020), "payout"] == 1_500_000  # 1 ha × 6,000,000 × 0.25
    assert str(p["payout"].dtype) == "int64"
    assert set(archive_result.portfolio["exposure_basis"]) == {"register"}


def test_outputs_are_written_with_a_manifest_and_plots(archive_result):
    out = archive_result.out_dir
    for name in ("backtest.csv", "backtest.parquet", "portfolio.csv", "exposure.csv", "manifest.json",
                 "plots/portfolio.png", "plots/payout_rate_rain.png", "plots/payout_rate_yield.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "manifest.json").read_text())
    assert m["years"] == [2018, 2023] and m["kind"] == "backtest"
    assert m["counts"]["district_seasons"] == 2 * 2 * 6 and m["exposure_basis"] == "register"
    assert {"zonal_compute", "evaluate", "total"} <= set(m["timings_s"])
    assert all(p.is_file() and p.read_bytes()[:4] == b"\x89PNG" for p in archive_result.plots.values())
    csv = pd.read_csv(out / "backtest.csv", dtype={"district_id": str})
    assert list(csv.columns) == ["district_id", "product_id", "season", "anchor", "phase", "index_value",
                                 "phase_rate", "payout_rate", "valid_fraction", "flagged"]
    assert len(csv) == 2 * 6 * 2 + 2 * 6 * 1  # rain: 2 phases, yield: 1


def test_existing_output_is_refused_without_force(archive_result, archive):
    with pytest.raises(InputError, match="already exists"):
        backtest(archive_config(archive), years=(2020, 2020), out_dir=archive_result.out_dir)


def test_pricing_hook_tables(archive_result):
    sim = simulation_table(archive_result)
    assert list(sim.columns[:6]) == ["district_id", "product_id", "season", "phase", "index_value", "payout_rate"]
    assert str(sim["season"].dtype) == "int64"
    row = sim[(sim["product_id"] == "rain") & (sim["season"] == 2022) & (sim["district_id"] == "E")]
    assert row["payout_rate"].sum() == pytest.approx(0.68) and (row["season_payout_rate"] == row["season_payout_rate"].iloc[0]).all()
    exp = exposure_table(archive_result)
    assert list(exp.columns) == ["district_id", "product_id", "exposure", "exposure_basis"]
    assert exp.set_index(["district_id", "product_id"]).loc[("E", "rain"), "exposure"] == 1_500_000


def test_without_a_register_every_district_weighs_one_million_rupiah(archive, tmp_path):
    # portfolio.csv and tail.csv share one unit without a register: Rp 1,000,000 per district
    # (before: portfolio.csv counted 1 per district, 0.68 "district-equivalents", tail.csv Rp)
    res = backtest(archive_config(archive, products=(RAIN,), policies=False, name="nopol.yaml"), years=(2022, 2022))
    p = res.portfolio.set_index("season")
    assert p.loc[2022, "exposure_basis"] == "unit" and p.loc[2022, "exposure"] == 2_000_000
    assert p.loc[2022, "payout"] == 680_000  # E 0.68 × 1,000,000, W nothing
    assert p.loc[2022, "payout_rate"] == pytest.approx(0.34)  # plain mean of the two districts
    assert res.exposure["exposure"].tolist() == [1.0, 1.0]  # credibility still weighs districts equally


def test_sowing_date_products_use_the_season_start_plus_the_offset(archive):
    sown = {**RAIN, "id": "sown", "anchor": "sowing_date"}
    res = backtest(archive_config(archive, products=(sown,), name="sown.yaml"), years=(2020, 2020), sowing_offset=10)
    t = res.table[(res.table["district_id"] == "W") & (res.table["phase"] == "early")].iloc[0]
    assert t["anchor"] == "2019-11-11"
    # days 10..49 after 1 Nov: 30 days at 1.5 mm + 10 days at 3 mm = 75 mm → (100 − 75) / 50 × 0.6
    assert t["index_value"] == pytest.approx(75.0)
    assert t["payout_rate"] == pytest.approx(0.3)


def test_a_distributed_cluster_gives_the_same_table(archive):
    from distributed import LocalCluster

    cfg = archive_config(archive, products=(RAIN,), policies=False, name="dist.yaml")
    local = backtest(cfg, years=(2019, 2023))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        remote = backtest(cfg, years=(2019, 2023), scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(local.table, remote.table)


# --------------------------------------------------------------------------- monthly rainfall
@pytest.fixture(scope="module")
def monthly(tmp_path_factory) -> Path:
    """Monthly totals 2019-01..2021-12: 100 mm in every month, W only 31 mm in December 2019."""
    d = tmp_path_factory.mktemp("monthly")
    write_districts(d)
    times = pd.date_range("2019-01-01", "2021-12-01", freq="MS")
    rain = np.full((len(times), 10, 10), 100.0)
    rain[list(times).index(pd.Timestamp("2019-12-01")), :, :5] = 31.0
    write_grid(rain, times, d / "rain.zarr", "mm/month")
    return d


def monthly_config(folder: Path, phases: list[dict]) -> Path:
    product = {"id": "ndj", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "phases": phases}
    cfg = {"season": {"id": "MT1", "start": "2020-11-01", "end": "2021-03-31"},
           "inputs": {"districts": {"path": str(folder / "districts.gpkg")},
                      "rainfall": {"path": str(folder / "rain.zarr"), "variable": "precip"}},
           "products": [product]}
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


NDJ = {"name": "ndj", "start_day": 0, "end_day": 92, "index": "total", "direction": "below",
       "strike": 250, "exit": 150, "weight": 1.0}


def test_monthly_totals_feed_whole_month_total_phases_exactly(monthly):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole months: no pro-rata warning
        res = backtest(monthly_config(monthly, [NDJ]), years=(2020, 2021))
    r = season_rates(res, "ndj")
    idx = res.table.set_index(["season", "district_id"])["index_value"]
    assert idx.loc[(2020, "W")] == pytest.approx(100 + 31 + 100)  # Nov + Dec + Jan
    assert idx.loc[(2020, "E")] == pytest.approx(300.0)
    assert r.loc[2020, "W"] == pytest.approx((250 - 231) / 100)
    assert r.loc[2020, "E"] == 0 and r.loc[2021, "W"] == 0
    assert any("monthly totals" in n for n in res.notes)


def test_windows_that_cut_months_are_pro_rated_with_a_warning(monthly):
    half = {**NDJ, "name": "half", "end_day": 15, "strike": 60, "exit": 20}
    with pytest.warns(UserWarning, match="pro rata"):
        res = backtest(monthly_config(monthly, [half]), years=(2020, 2020))
    assert res.table["index_value"].to_numpy() == pytest.approx([50.0, 50.0])  # 15 of November's 30 days


@pytest.mark.parametrize("phase", [
    {"name": "dry", "start_day": 0, "end_day": 60, "index": "dry_spell", "dry_threshold": 1.0, "direction": "above",
     "strike": 10, "exit": 30, "weight": 0.5},
    {"name": "flood", "start_day": 0, "end_day": 60, "index": "max_n_day", "n": 3, "direction": "above",
     "strike": 100, "exit": 200, "weight": 0.5},
    {"name": "wet", "start_day": 0, "end_day": 60, "index": "rainy_days", "wet_threshold": 1.0, "direction": "below",
     "strike": 20, "exit": 5, "weight": 0.5},
])
def test_daily_indices_are_refused_on_monthly_rainfall(monthly, phase):
    with pytest.raises(DataQualityError, match="needs true daily rainfall"):
        backtest(monthly_config(monthly, [NDJ | {"weight": 0.5}, phase]), years=(2020, 2020))


def test_monthly_to_daily_equivalent_keeps_month_sums_and_labels_itself():
    t = pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01"])
    s = xr.Dataset({"mean": (("time", "district"), [[31.0, 62.0], [29.0, np.nan], [0.0, 31.0]], {"units": "mm/month"}),
                    "valid_fraction": (("time", "district"), [[1.0, 1.0], [1.0, 0.0], [1.0, 0.6]])},
                   coords={"time": t, "district": ["a", "b"]})
    d = monthly_to_daily_equivalent(s)
    assert d.sizes["time"] == 31 + 29 + 31
    assert d["mean"].attrs["units"] == "mm/day" and "evenly distributed" in d["mean"].attrs["derived_from"]
    months = d["mean"].resample(time="MS").sum(skipna=False)
    np.testing.assert_allclose(months.values, s["mean"].values)
    assert float(d["valid_fraction"].sel(time="2020-03-15", district="b")) == pytest.approx(0.6)
    with pytest.raises(DataQualityError, match="without gaps"):
        monthly_to_daily_equivalent(s.isel(time=[0, 2]))


# --------------------------------------------------------------------------- same engine as the seasonal run
def test_the_2024_backtest_equals_the_seasonal_run(tmp_path):
    from panen.datasets.synthetic import generate_demo_region
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    generate_demo_region(tmp_path / "data", n_districts=8, n_farmers=500)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = cfg["inputs"][k]["path"].replace("../demo_data/", "data/")
    cfg["products"][0]["anchor"] = "season_start"  # the backtest equals the run for season-start products
    if "adjuster" in cfg:
        cfg["adjuster"]["wording"] = str(REPO / "configs" / cfg["adjuster"]["wording"])
    cfg["output"]["dir"] = "out"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    config = load_config(tmp_path / "run.yaml")
    run = run_batch(config, tmp_path / "run")
    res = backtest(config, years=(2024, 2024))

    index = pd.read_csv(run.out_dir / "district_index.csv", dtype={"district_id": str})
    bt = res.table
    m = index.merge(bt, on=["district_id", "product_id", "phase"], suffixes=("_run", "_bt"), validate="one_to_one")
    assert len(m) == len(index) == len(bt) > 0
    assert set(m["product_id"]) == {"rain", "yield", "ndvi"}
    assert (m["cohort"] == m["anchor"]).all()
    np.testing.assert_allclose(m["index_value_run"], m["index_value_bt"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(m["payout_rate_run"], m["phase_rate"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(m["valid_fraction_run"], m["valid_fraction_bt"], rtol=1e-12, equal_nan=True)
    assert (m["flagged_run"] == m["index_value_bt"].isna()).all()
    assert bt["payout_rate"].gt(0).any(), "the demo season triggers somewhere"
    # the register's policies weigh the portfolio; the AUTP adjuster's rows are valid but not backtested
    assert res.counts["policies_rejected"] == run.counts["policies_rejected"]
    assert set(res.portfolio["exposure_basis"]) == {"register"} and res.portfolio["exposure"].gt(0).all()


# --------------------------------------------------------------------------- CLI
def test_cli_backtest_writes_outputs_and_prints_a_summary(archive, tmp_path, capsys):
    cfg = archive_config(archive, products=(RAIN,), name="cli.yaml")
    out = tmp_path / "cli-out"
    assert main(["backtest", str(cfg), "--years", "2019-2023", "--out", str(out), "--quiet"]) == 0
    assert "backtest 2019-2023" in capsys.readouterr().out
    assert (out / "portfolio.csv").is_file()
    assert main(["backtest", str(cfg), "--years", "2019-2023", "--out", str(out), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["backtest", str(cfg), "--years", "2019-2023", "--out", str(out), "--quiet", "--force"]) == 0


@pytest.mark.parametrize("years", ["1981-", "abc", "2020-1981", "81-20", "1500-1600"])
def test_cli_bad_years_exit_2_with_a_clear_message(archive, tmp_path, capsys, years):
    cfg = archive_config(archive, products=(RAIN,), name="cli.yaml")
    assert main(["backtest", str(cfg), "--years", years, "--out", str(tmp_path / "o")]) == 2
    assert "--years" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_parse_years():
    assert parse_years("1981-2020") == (1981, 2020)
    assert parse_years("2024") == (2024, 2024)
    assert parse_years((2000, 2017)) == (2000, 2017)
    with pytest.raises(ConfigError):
        parse_years("2020-1981")


def test_a_backtest_config_needs_no_policy_register_but_keeps_every_other_rule(archive, tmp_path):
    cfg = load_backtest_config(archive_config(archive, products=(RAIN,), policies=False, name="np.yaml"))
    assert cfg.inputs.policies is None
    bad = yaml.safe_load((archive / "np.yaml").read_text())
    bad["products"][0]["phases"][0]["exit"] = 500  # exit above strike on a deficit cover
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="exit must be < strike"):
        load_backtest_config(tmp_path / "bad.yaml")


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_chirps_java_nov_jan_deficit_pays_indramayu_in_el_nino_seasons(tmp_path):
    rain = shared_file("rainfall", "chirps_java_monthly_1981_2020.nc")
    districts = shared_file("boundaries", "idn_districts_java.geojson")
    cfg = {"season": {"id": "MT1", "start": "2019-11-01", "end": "2020-03-31", "year": 2020},
           "inputs": {"districts": {"path": str(districts), "id_column": "kode_bps_style"},
                      "rainfall": {"path": str(rain), "variable": "precip"}},
           "products": [{"id": "ndj", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000,
                         "phases": [{"name": "nov-jan", "start_day": 0, "end_day": 92, "index": "total",
                                     "direction": "below", "strike": 700, "exit": 350, "weight": 1.0}]}]}
    (tmp_path / "chirps.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = backtest(tmp_path / "chirps.yaml", years=(1981, 2020), out_dir=tmp_path / "out")
    assert res.counts["districts"] == 119 and res.counts["seasons"] == 40
    rate = season_rates(res, "ndj")["3212"]  # Indramayu
    assert np.isnan(rate.loc[1981])  # Nov 1980 is before the archive: flagged, not paid
    # the three strong El Niño seasons 1982/83, 1997/98, 2015/16 all pay (CHIRPS Nov-Jan:
    # 507, 356 and 571 mm against a strike of 700 mm and a 1982-2020 median of ~880 mm)
    el_nino = [1983, 1998, 2016]
    assert (rate.loc[el_nino] > 0).all()
    assert rate.loc[1998] > 0.9
    normal = rate.drop(index=[1981, *el_nino])
    assert (normal == 0).mean() > 0.5  # more often than not, a normal season pays nothing
    assert rate.loc[el_nino].mean() > 3 * normal.mean()
    # Java as a whole: 1997/98 is among the three worst Nov-Jan seasons of the portfolio
    port = res.portfolio.set_index("season")["payout_rate"]
    assert 1998 in port.nlargest(3).index
    assert (tmp_path / "out" / "plots" / "payout_rate_ndj.png").is_file()


@pytest.mark.realdata
def test_real_icrisat_area_yield_backtest_without_polygons(tmp_path):
    path = shared_file("yields", "icrisat_india_district_2000_2017.csv")
    cfg = {"season": {"id": "kharif", "start": "2016-06-01", "end": "2016-11-30"},
           "inputs": {"yields": {"path": str(path), "district_column": "Dist Code", "year_column": "Year",
                                 "yield_column": "RICE YIELD (Kg per ha)", "units": "kg/ha", "missing_values": [-1]}},
           "products": [{"id": "rice", "trigger": "area_yield", "sum_insured_per_ha": 40_000,
                         "normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.8,
                         "missing_years": "average_available", "min_years": 2}]}
    (tmp_path / "icrisat.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = backtest(tmp_path / "icrisat.yaml", years=(2000, 2017))
    assert res.counts["districts"] == 311
    port = res.portfolio.set_index("season")
    assert port.loc[[2000, 2001], "payout_rate"].isna().all()  # fewer than 2 history years
    # the 2002 all-India drought is the worst season of the record
    assert port["payout_rate"].idxmax() == 2002
    assert port.loc[2002, "districts_triggered"] == port["districts_triggered"].max()
    # one district by hand, from the raw file: Durg (Dist Code 1), 2002
    raw = pd.read_csv(path, usecols=["Dist Code", "Year", "RICE YIELD (Kg per ha)"])
    durg = raw[raw["Dist Code"] == 1].set_index("Year")["RICE YIELD (Kg per ha)"] / 1000  # t/ha
    normal = durg.loc[2000:2001].mean()  # best 5 of the 2 available years
    expected = max(0.0, (0.8 * normal - durg.loc[2002]) / (0.8 * normal))
    got = season_rates(res, "rice").loc[2002, "1"]
    assert got == pytest.approx(expected)
