"""`panen backtest` with pricing, a loss reference (basis risk) and trigger design: tables checked
against independent pandas computations on a planted archive, and real CHIRPS Java data."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import shapely
import xarray as xr
import yaml

from panen.engine.pipeline.backtest import backtest
from panen.engine.research.simulation import read_losses
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.errors import ConfigError, InputError
from panen.triggers.weather import WeatherIndexParams

from conftest import shared_file

# --------------------------------------------------------------------------- the planted archive
#: Season (harvest year) → daily rain [mm/day] on days 0–39 after 1 November of the year before,
#: per district; 3 mm/day (120 mm, above the strike) everywhere else.
PLANTED_RAIN = {("W", 2016): 1.5, ("W", 2020): 2.0, ("W", 2021): 2.25, ("W", 2023): 2.0,
                ("E", 2018): 1.0, ("E", 2021): 2.25, ("E", 2022): 1.5}
#: Yields [t/ha], 5.0 unless listed: droughts the index sees, one it misses (E 2017), one in a
#: flagged season (E 2019), and no loss under the W 2023 payout (a false alarm).
PLANTED_YIELD = {("W", 2016): 3.0, ("W", 2020): 4.0, ("W", 2021): 3.5,
                 ("E", 2017): 4.0, ("E", 2018): 3.0, ("E", 2019): 3.0, ("E", 2021): 3.0, ("E", 2022): 3.5}
YEARS = (2014, 2023)
RAIN = {"id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000,
        "phases": [{"name": "early", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
                    "strike": 100, "exit": 50, "weight": 1.0}]}


def write_districts(folder: Path) -> Path:
    """Two districts splitting a 1° × 1° box: W (100.0–100.5 °E) and E (100.5–101.0 °E)."""
    gdf = gpd.GeoDataFrame({"district_id": ["W", "E"]},
                           geometry=[shapely.box(100.0, -6.0, 100.5, -5.0), shapely.box(100.5, -6.0, 101.0, -5.0)],
                           crs="EPSG:4326")
    path = folder / "districts.gpkg"
    gdf.to_file(path, layer="districts")
    return path


def write_daily_archive(folder: Path) -> Path:
    """Daily rain on a 10 × 10 0.1° grid, 2013-07-01..2023-06-30, with :data:`PLANTED_RAIN`, and
    no data on days 5–7 of season 2019 in E (flagged, never paid)."""
    times = pd.date_range("2013-07-01", "2023-06-30", freq="D")
    rain = np.full((len(times), 10, 10), 3.0, dtype=np.float32)
    cols = {"W": np.s_[:5], "E": np.s_[5:]}
    for (district, season), mm in PLANTED_RAIN.items():
        s = times.get_loc(pd.Timestamp(f"{season - 1}-11-01"))
        rain[s:s + 40, :, cols[district]] = mm
    s = times.get_loc(pd.Timestamp("2018-11-01"))
    rain[s + 5:s + 8, :, cols["E"]] = np.nan
    da = xr.DataArray(rain, dims=("time", "lat", "lon"),
                      coords={"time": times, "lat": -5.05 - 0.1 * np.arange(10), "lon": 100.05 + 0.1 * np.arange(10)},
                      attrs={"units": "mm/day"}, name="precip")
    path = folder / "rain.zarr"
    da.to_dataset().rio.write_crs("EPSG:4326").chunk(time=366).to_zarr(path, zarr_format=2, consolidated=True)
    return path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pricing-archive")
    write_districts(d)
    write_daily_archive(d)
    pd.DataFrame([{"district_id": k, "year": y, "yield": PLANTED_YIELD.get((k, y), 5.0)}
                  for k in ("W", "E") for y in range(2005, 2024)]).to_csv(d / "yields.csv", index=False)
    pd.DataFrame({"policy_id": ["p1", "p2", "p3"], "farmer_id": ["f1", "f2", "f3"], "district_id": ["W", "W", "E"],
                  "product_id": "rain", "area_ha": [0.5, 1.0, 0.25],
                  "sum_insured": [1_000_000, 2_000_000, None]}).to_csv(d / "policies.csv", index=False)
    return d


def config(folder: Path, name: str = "bt.yaml", *, policies: bool = True, **sections) -> Path:
    cfg = {"season": {"id": "MT1", "start": "2022-11-01", "end": "2023-03-31", "year": 2023},
           "inputs": {"districts": {"path": str(folder / "districts.gpkg")},
                      "rainfall": {"path": str(folder / "rain.zarr"), "variable": "precip"},
                      "yields": {"path": str(folder / "yields.csv")}},
           "products": [RAIN], "output": {"formats": ["csv"]}, **sections}
    if policies:
        cfg["inputs"]["policies"] = {"path": str(folder / "policies.csv")}
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


SECTIONS = {"pricing": {"expense_loading": 0.25, "profit_loading": 0.10, "subsidy_share": 0.8},
            "loss_reference": {"source": "yields", "indemnity_level": 1.0, "normal": {"method": "mean", "years": 5}}}


@pytest.fixture(scope="module")
def run(archive, tmp_path_factory):
    """One `panen backtest --optimise` over the archive, through the CLI; returns (out dir, stdout)."""
    out = tmp_path_factory.mktemp("pricing-out") / "out"
    cfg = config(archive, **SECTIONS)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["backtest", str(cfg), "--years", f"{YEARS[0]}-{YEARS[1]}", "--out", str(out), "--quiet",
                     "--optimise"])
    assert code == 0, buf.getvalue()
    return out, buf.getvalue()


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"district_id": str}, keep_default_na=False, na_values=[""])


def season_rates(out: Path) -> pd.DataFrame:
    """Season payout rate per district and season from backtest.csv (flagged → NaN), independently."""
    t = read(out, "backtest.csv").drop_duplicates(["product_id", "district_id", "season"])
    return t.assign(payout_rate=t["payout_rate"].where(~t["flagged"].astype(bool)))


# --------------------------------------------------------------------------- pricing
def test_burn_cost_is_the_mean_season_payout_rate_and_gross_is_loaded_by_35_percent(run):
    out, _ = run
    rates = season_rates(out)
    expected = rates.groupby("district_id")["payout_rate"].agg(["mean", "count", "std"])
    pricing = read(out, "pricing.csv").set_index("district_id")
    assert sorted(pricing.index) == ["E", "W"] and set(pricing["product_id"]) == {"rain"}
    np.testing.assert_allclose(pricing.loc[expected.index, "burn_cost"], expected["mean"], rtol=1e-12)
    assert pricing.loc["E", "seasons"] == 9 and pricing.loc["E", "missing"] == 1  # 2019 flagged
    # W: 0.8 (2016) + 0.4 (2020) + 0.2 (2021) + 0.4 (2023) over 10 seasons
    assert pricing.loc["W", "burn_cost"] == pytest.approx(1.8 / 10)
    np.testing.assert_allclose(pricing["standard_error"], (expected["std"] / np.sqrt(expected["count"]))
                               .loc[pricing.index], rtol=1e-12)
    np.testing.assert_allclose(pricing["gross_premium_rate"], pricing["burn_cost"] * 1.35, rtol=1e-12)
    assert pricing.loc["W", "frequency"] == pytest.approx(0.4)


def test_premium_is_split_on_the_registers_exposure_and_credibility_uses_it_as_weight(run):
    out, _ = run
    p = read(out, "pricing.csv").set_index("district_id")
    assert p.loc["W", "sum_insured"] == 3_000_000 and p.loc["E", "sum_insured"] == 1_500_000
    for d in ("W", "E"):
        premium = np.floor(p.loc[d, "gross_premium_rate"] * p.loc[d, "sum_insured"] + 0.5)
        assert p.loc[d, "premium"] == premium
        assert p.loc[d, "subsidy"] == np.floor(premium * 0.8 + 0.5)
        assert p.loc[d, "subsidy"] + p.loc[d, "farmer_share"] == p.loc[d, "premium"]
    # Bühlmann–Straub: each season weighs the district's exposure; collective = exposure-weighted mean
    m = p["sum_insured"] * p["seasons"]
    collective = (m * p["burn_cost"]).sum() / m.sum()
    z = p["credibility_z"]
    assert ((z >= 0) & (z <= 1)).all()
    np.testing.assert_allclose(p["credibility_rate"], z * p["burn_cost"] + (1 - z) * collective, rtol=1e-10)


def test_tail_is_the_empirical_quantile_of_complete_season_totals(run):
    out, _ = run
    rates = season_rates(out)
    si = {"W": 3_000_000, "E": 1_500_000}
    amount = np.floor(rates["payout_rate"] * rates["district_id"].map(si) + 0.5)
    totals = amount.groupby(rates["season"]).sum(min_count=2).where(
        rates.groupby("season")["payout_rate"].apply(lambda s: s.notna().all()))
    complete = totals.dropna()
    assert list(complete.index) == [s for s in range(2014, 2024) if s != 2019]  # E 2019 flagged
    tail = read(out, "tail.csv").set_index("product_id").loc["rain"]
    assert tail["seasons"] == 9 and tail["seasons_incomplete"] == 1 and tail["sum_insured"] == 4_500_000
    assert tail["payout_1in5"] == pytest.approx(np.quantile(complete, 0.8, method="weibull"))
    assert tail["payout_1in10"] == pytest.approx(complete.max())  # the largest of 9 is the 1-in-10 year payout
    assert np.isnan(tail["payout_1in20"])  # beyond the record: not extrapolated
    assert tail["pml_return_period"] == 20 and np.isnan(tail["pml"])
    assert tail["max_payout"] == 2_400_000 and tail["max_season"] == 2016  # W 0.8 × 3,000,000


def assert_tail_reads_the_portfolio(portfolio: pd.DataFrame, tail: pd.DataFrame) -> None:
    """tail.csv is the complete seasons of portfolio.csv, season by season (one computation)."""
    for pid, t in tail.set_index("product_id").iterrows():
        p = portfolio[portfolio["product_id"] == pid]
        complete = p[p["complete"].astype(bool)].set_index("season")["payout"].astype(float)
        assert t["seasons"] == len(complete) and t["seasons_incomplete"] == int((~p["complete"].astype(bool)).sum())
        assert t["sum_insured"] == p["exposure"].iloc[0] and t["districts"] == p["districts"].iloc[0]
        assert t["mean_payout"] == pytest.approx(complete.mean()) and t["max_payout"] == complete.max()
        assert t["max_season"] == complete.idxmax()
        assert t["payout_1in5"] == pytest.approx(np.quantile(complete, 0.8, method="weibull"))


def test_portfolio_and_tail_agree_season_by_season(run):
    out, _ = run
    portfolio, tail = read(out, "portfolio.csv"), read(out, "tail.csv")
    assert_tail_reads_the_portfolio(portfolio, tail)
    p = portfolio.set_index("season")
    # 2019: E flagged → incomplete; its payout is W's alone (a lower bound), reported, not in the tail
    w2019 = season_rates(out).set_index(["district_id", "season"]).loc[("W", 2019), "payout_rate"]
    assert not p.loc[2019, "complete"] and p.loc[2019, "districts_flagged"] == 1
    assert p.loc[2019, "payout"] == np.floor(w2019 * 3_000_000 + 0.5)
    assert p.drop(index=2019)["complete"].all()


def test_without_a_register_portfolio_and_tail_share_rp_one_million_per_district(archive):
    res = backtest(config(archive, "unit.yaml", policies=False, pricing={}), YEARS)
    port = res.portfolio
    assert (port["exposure_basis"] == "unit").all() and (port["exposure"] == 2_000_000).all()
    rates = season_rates_of(res)
    expected = np.floor(rates["payout_rate"] * 1_000_000 + 0.5).groupby(rates["season"]).sum()
    np.testing.assert_array_equal(port.set_index("season").loc[expected.index, "payout"], expected)
    assert_tail_reads_the_portfolio(port, res.tail)


def season_rates_of(res) -> pd.DataFrame:
    t = res.table.drop_duplicates(["district_id", "season"])
    return t.assign(payout_rate=t["payout_rate"].where(~t["flagged"]).fillna(0.0))


# --------------------------------------------------------------------------- loss reference and basis risk
def test_yield_loss_reference_is_the_shortfall_below_the_preceding_five_year_mean(run):
    out, _ = run
    rows = pd.DataFrame([{"district_id": k, "year": yr, "yield": PLANTED_YIELD.get((k, yr), 5.0)}
                         for k in ("W", "E") for yr in range(2005, 2024)])
    wide = rows.pivot(index="year", columns="district_id", values="yield")
    normal = wide.shift(1).rolling(5).mean()
    expected = ((normal - wide) / normal).clip(0, 1).loc[YEARS[0]:YEARS[1]]
    ref = read(out, "loss_reference.csv").pivot(index="season", columns="district_id", values="loss")
    np.testing.assert_allclose(ref.loc[expected.index, expected.columns], expected, rtol=1e-12)
    assert ref.loc[2020, "W"] == pytest.approx((4.6 - 4.0) / 4.6)


def test_basis_risk_pod_and_far_on_the_planted_droughts(run):
    out, _ = run
    b = read(out, "basis_risk.csv")
    d = b[b["scope"] == "district"].set_index("district_id")
    # W: losses 2016, 2020, 2021 all paid; the 2023 payout has no loss → 3 hits, 1 false alarm
    assert (d.loc["W", ["hits", "misses", "false_alarms"]].tolist()) == [3, 0, 1]
    assert d.loc["W", "pod"] == 1.0 and d.loc["W", "far"] == pytest.approx(1 / 4)
    # E: losses 2017 (missed), 2018, 2021, 2022 (paid); 2019 is flagged: left out, not a miss
    assert d.loc["E", "seasons"] == 9
    assert d.loc["E", ["hits", "misses", "false_alarms"]].tolist() == [3, 1, 0]
    assert d.loc["E", "pod"] == pytest.approx(3 / 4) and d.loc["E", "loss_years_unpaid_share"] == pytest.approx(1 / 4)
    p = b[b["scope"] == "product"].iloc[0]
    assert p["pod"] == pytest.approx(6 / 7) and p["threat_score"] == pytest.approx(6 / 8)
    assert p["seasons"] == 19 and pd.isna(p["district_id"])
    for row in b.itertuples():
        assert row.pod_low <= row.pod <= row.pod_high
        assert row.hedging_effectiveness_low <= row.hedging_effectiveness_high
    # the premium of the hedging effectiveness is the district's gross premium rate
    pricing = read(out, "pricing.csv").set_index("district_id")
    np.testing.assert_allclose(d.loc[["W", "E"], "premium_rate"], pricing.loc[["W", "E"], "gross_premium_rate"])


def test_plots_manifest_and_summary(run):
    out, stdout = run
    for name in ("loss_vs_payout_rain.png", "tradeoff_rain.png", "payout_rate_rain.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG", name
    m = json.loads((out / "manifest.json").read_text())
    assert m["analysis"]["pricing"]["expense_loading"] == 0.25
    assert m["analysis"]["loss_reference"]["source"] == "yields"
    assert {"pricing.csv", "tail.csv", "basis_risk.csv", "design_chosen.csv", "design_rain.yaml"} <= set(m["outputs"])
    head = next(li for li in stdout.splitlines() if "burn cost" in li)
    assert head.split()[-2:] == ["POD", "HE"]
    line = stdout.splitlines()[stdout.splitlines().index(head) + 2].split()
    # exposure-weighted burn cost (2/9 × 1.5 M + 0.18 × 3 M) / 4.5 M, × 1.35, 1-in-10 payout, POD 6/7
    assert line[:5] == ["rain", "19.41%", "26.20%", "2,400,000", "0.86"]
    assert "design rain [all]: early strike" in stdout


# --------------------------------------------------------------------------- design
def test_optimise_chooses_a_design_within_the_grid_and_writes_a_valid_term_sheet(run):
    out, _ = run
    cands = read(out, "design_candidates.csv")
    chosen = read(out, "design_chosen.csv")
    frontier = read(out, "design_frontier.csv")
    assert len(chosen) == 1 and chosen["zone"].iloc[0] == "all" and len(cands) > 10
    strike, exit_ = chosen["early.strike"].iloc[0], chosen["early.exit"].iloc[0]
    assert strike in set(cands["early.strike"]) and exit_ in set(cands["early.exit"])
    index = read(out, "backtest.csv").query("~flagged")["index_value"]
    assert index.min() <= exit_ < strike <= index.max()
    assert chosen["hedging_effectiveness"].iloc[0] == pytest.approx(cands["hedging_effectiveness"].max())
    assert chosen["candidate"].iloc[0] in set(frontier["candidate"])
    sheet = WeatherIndexParams.model_validate(yaml.safe_load((out / "design_rain.yaml").read_text()))
    assert sheet.id == "rain" and sheet.phases[0].strike == strike and sheet.phases[0].exit == exit_
    assert sheet.phases[0].start_day == 0 and sheet.phases[0].end_day == 40  # the windows are not searched


def test_backtesting_the_chosen_term_sheet_reports_the_designs_hedging_effectiveness(run, archive):
    # one HE definition: basis_risk.csv of the chosen term sheet, backtested on the same data,
    # reports the HE, POD and premium the design search printed for it (before the fix: the
    # basis HE took pricing's per-district premium about one pooled mean, the design its
    # pooled premium about per-district means — they disagreed for the same term sheet)
    out, _ = run
    chosen = read(out, "design_chosen.csv").iloc[0]
    sheet = yaml.safe_load((out / "design_rain.yaml").read_text())
    res = backtest(config(archive, "chosen.yaml", **SECTIONS, products=[sheet]), YEARS)
    b = res.basis_risk[res.basis_risk["scope"] == "product"].iloc[0]
    assert b["seasons"] == chosen["seasons"] == 19
    assert b["hedging_effectiveness"] == pytest.approx(chosen["hedging_effectiveness"], rel=1e-9, abs=1e-12)
    assert b["pod"] == pytest.approx(chosen["pod"]) and b["premium_rate"] == pytest.approx(chosen["gross_premium_rate"])
    assert res.summary.set_index("product_id").loc["rain", "hedging_effectiveness"] == b["hedging_effectiveness"]


#: A binary dry-spell phase (days below 2.5 mm: 0 in a normal season of 3 mm/day, 40 in the planted
#: droughts) and a step schedule on the total (trigger point 100 mm).
STEPS = {"id": "steps", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "phases": [
    {"name": "spell", "start_day": 0, "end_day": 40, "index": "dry_spell", "dry_threshold": 2.5, "direction": "above",
     "strike": 20, "curve": "binary", "weight": 0.5},
    {"name": "total", "start_day": 0, "end_day": 40, "index": "total", "direction": "below", "strike": 100,
     "curve": "step", "weight": 0.5, "bands": [{"max": 70, "rate": 1.0}, {"min": 70, "max": 100, "rate": 0.4}]}]}


def test_binary_and_step_designs_reload_as_the_same_term_sheet_and_pay_as_designed(archive, tmp_path):
    out = tmp_path / "steps"
    res = backtest(config(archive, "steps.yaml", **SECTIONS, products=[RAIN, STEPS], design={}), YEARS,
                   out_dir=out)
    chosen = res.design.results["steps"].chosen.iloc[0]
    sheet = WeatherIndexParams.model_validate(yaml.safe_load((out / "design_steps.yaml").read_text()))
    assert sheet == res.design.term_sheets["steps"]["all"]
    assert [(p.name, p.curve) for p in sheet.phases] == [("spell", "binary"), ("total", "step")]
    assert sheet.phases[0].strike == chosen["spell.strike"] and sheet.phases[0].exit is None
    assert pd.isna(chosen["spell.exit"]) and pd.isna(chosen["total.exit"])
    # the step schedule moved as a whole with its trigger point (band widths and rates kept)
    shift = chosen["total.strike"] - 100.0
    assert [(b.min, b.max, b.rate) for b in sheet.phases[1].bands] == [
        (-np.inf, pytest.approx(70 + shift), 1.0), (pytest.approx(70 + shift), pytest.approx(100 + shift), 0.4)]
    # backtested again, the chosen term sheet (as written: open band edges left out) pays what the search priced it at
    written = yaml.safe_load((out / "design_steps.yaml").read_text())
    assert "min" not in written["phases"][1]["bands"][0]
    again = backtest(config(archive, "steps2.yaml", policies=False, products=[written]), YEARS)
    rates = again.table.drop_duplicates(["district_id", "season"])
    rates = rates.loc[~rates["flagged"], "payout_rate"]
    assert len(rates) == chosen["seasons"] == 19
    assert rates.mean() == pytest.approx(chosen["burn_cost"], rel=1e-12, abs=1e-15)
    assert rates.max() == pytest.approx(chosen["max_payout_rate"])


def test_design_section_with_constraints_and_a_loss_table(archive, tmp_path):
    losses = tmp_path / "losses.csv"
    ref = pd.read_csv(archive / "yields.csv")  # any table of district_id, season, loss
    pd.DataFrame({"district_id": ref["district_id"], "season": ref["year"],
                  "loss": np.clip((5.0 - ref["yield"]) / 5.0, 0, 1)}).to_csv(losses, index=False)
    cfg = config(archive, "design.yaml", policies=False, loss_reference={"path": str(losses)},
                 design={"objective": "missed_loss_years", "by": "district", "max_premium_rate": 0.5,
                         "min_payout_frequency_in_worst": 0.5, "worst_share": 0.2})
    res = backtest(cfg, YEARS)
    assert res.pricing is None and res.basis_risk is not None
    chosen = res.design.table("chosen").set_index("zone")
    assert set(chosen.index) == {"W", "E"}
    assert (chosen["gross_premium_rate"] <= 0.5).all() and (chosen["payout_in_worst_share"] >= 0.5).all()
    assert set(res.design.term_sheets["rain"]) == {"W", "E"}


def test_optimise_needs_a_loss_reference(archive, tmp_path, capsys):
    cfg = config(archive, "noref.yaml", pricing={})
    assert main(["backtest", str(cfg), "--years", "2020-2021", "--out", str(tmp_path / "o"), "--optimise"]) == 2
    assert "loss_reference" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- config
def test_sections_validate_with_every_problem_listed_and_the_seasonal_run_ignores_them(archive, tmp_path):
    bad = config(archive, "bad.yaml", pricing={"expense_loading": -0.1, "risk_load": {"kind": "tail", "factor": 1},
                                               "return_periods": [1, 10]},
                 loss_reference={"source": "yields", "normal": {"method": "median", "years": 5}, "colour": 1},
                 design={"by": "zone"})
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    keys = {p.key for p in e.value.problems}
    assert {"pricing.expense_loading", "pricing.risk_load.quantile", "pricing.return_periods",
            "loss_reference.normal", "loss_reference.colour", "design"} <= keys, e.value
    good = config(archive, "good.yaml", **SECTIONS, design={"max_premium_rate": 0.2})
    cfg = load_config(good)
    assert cfg.pricing.risk_load is None and cfg.loss_reference.normal.years == 5 and cfg.design.by == "product"
    assert main(["run", str(good), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "payouts.csv").is_file() and not (tmp_path / "run" / "pricing.csv").exists()


def test_risk_load_and_detrend(archive):
    cfg = config(archive, "risk.yaml", policies=False,
                 pricing={"risk_load": {"kind": "std", "factor": 0.5}, "detrend": True, "return_periods": [2, 5]})
    res = backtest(cfg, YEARS)
    p = res.pricing.set_index("district_id")
    assert (p["exposure_basis"] == "unit").all() and (p["sum_insured"] == 1_000_000).all()
    # rates detrended per district, then loaded: gross = 1.35 × burn + 0.5 × sd
    assert np.allclose(p["gross_premium_rate"], 1.35 * p["burn_cost"] + 0.5 * p["std"])
    assert list(res.tail.filter(like="payout_1in").columns) == ["payout_1in2", "payout_1in5"]


def test_a_bad_loss_table_names_row_and_column(tmp_path):
    path = tmp_path / "losses.csv"
    path.write_text("district_id,season,loss\nW,2020,0.3\nW,2021,1.7\nE,20x1,0.1\nW,2020,0.2\n")
    with pytest.raises(InputError) as e:
        read_losses(path)
    where = {(p.row, p.column) for p in e.value.problems}
    assert (2, "loss") in where and (3, "season") in where and (4, None) in where


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_chirps_java_nov_jan_pricing_and_el_nino_tail(tmp_path):
    rain = shared_file("rainfall", "chirps_java_monthly_1981_2020.nc")
    districts = shared_file("boundaries", "idn_districts_java.geojson")
    cfg = {"season": {"id": "MT1", "start": "2019-11-01", "end": "2020-03-31", "year": 2020},
           "inputs": {"districts": {"path": str(districts), "id_column": "kode_bps_style"},
                      "rainfall": {"path": str(rain), "variable": "precip"}},
           "products": [{"id": "ndj", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000,
                         "phases": [{"name": "nov-jan", "start_day": 0, "end_day": 92, "index": "total",
                                     "direction": "below", "strike": 700, "exit": 350, "weight": 1.0}]}],
           "pricing": {"expense_loading": 0.25, "profit_loading": 0.10}}
    (tmp_path / "chirps.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    assert main(["backtest", str(tmp_path / "chirps.yaml"), "--years", "1981-2020", "--out", str(out),
                 "--quiet"]) == 0
    pricing = read(out, "pricing.csv")
    assert pricing["district_id"].nunique() == 119 and len(pricing) == 119
    assert pricing["burn_cost"].between(0, 1).all() and (pricing["seasons"] == 39).all()  # 1981 starts Nov 1980
    np.testing.assert_allclose(pricing["gross_premium_rate"], 1.35 * pricing["burn_cost"], rtol=1e-12)
    assert (pricing["premium"] == pricing["subsidy"] + pricing["farmer_share"]).all()
    # the portfolio (Rp 1,000,000 per district): the strong El Niño seasons 1982/83, 1997/98 and
    # 2015/16 rank among the five largest payouts of the 39 complete seasons and exceed the
    # 1-in-5 year payout; 1997/98 is the largest
    rates = season_rates(out)
    totals = np.floor(rates["payout_rate"] * 1_000_000 + 0.5).groupby(rates["season"]).sum(min_count=119).dropna()
    assert len(totals) == 39
    top5 = totals.nlargest(5).index
    assert {1983, 1998, 2016} <= set(top5) and totals.idxmax() == 1998
    tail = read(out, "tail.csv").iloc[0]
    assert tail["seasons"] == 39 and tail["max_season"] == 1998
    assert tail["payout_1in5"] == pytest.approx(np.quantile(totals, 0.8, method="weibull"))
    assert (totals.loc[[1983, 1998, 2016]] > tail["payout_1in5"]).all()
    assert tail["payout_1in5"] < tail["payout_1in10"] < tail["payout_1in20"] <= tail["max_payout"]


# --------------------------------------------------------------------------- tariff band and subsidy per product
def test_a_rate_outside_the_tariff_band_is_clamped_and_flagged_and_the_product_keeps_its_subsidy(archive, tmp_path):
    """OJK band [5 %, 25 %] on the rain product, its own subsidy share 50 % (pricing: says 80 %).

    W: burn cost 0.18 × 1.35 = 24.3 %, inside the band; E: 2.0 / 9 × 1.35 = 30 %, clamped to
    25 % (above_ceiling). Premium = round_half_up(sum insured × rate), subsidy = half of it.
    """
    product = {**RAIN, "premium": {"subsidy_share": 0.5, "tariff": {"floor": 0.05, "ceiling": 0.25}}}
    cfg = {"season": {"id": "MT1", "start": "2022-11-01", "end": "2023-03-31", "year": 2023},
           "inputs": {"districts": {"path": str(archive / "districts.gpkg")},
                      "rainfall": {"path": str(archive / "rain.zarr"), "variable": "precip"},
                      "policies": {"path": str(archive / "policies.csv")}},
           "products": [product], "output": {"formats": ["csv"]}, "pricing": SECTIONS["pricing"]}
    path = tmp_path / "bt.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["backtest", str(path), "--years", f"{YEARS[0]}-{YEARS[1]}", "--out", str(out), "--quiet"]) == 0
    p = read(out, "pricing.csv").set_index("district_id")
    assert p.loc["W", "gross_premium_rate"] == pytest.approx(0.243)
    assert p.loc["E", "gross_premium_rate"] == pytest.approx(0.30)
    assert p.loc["W", "premium_rate"] == pytest.approx(0.243) and pd.isna(p.loc["W", "tariff_flag"])
    assert p.loc["E", "premium_rate"] == 0.25 and p.loc["E", "tariff_flag"] == "above_ceiling"
    assert set(p["subsidy_share"]) == {0.5}
    si = p["sum_insured"].astype(int)
    assert si.loc["W"] == 3_000_000 and si.loc["E"] == 1_500_000  # register: 1 M + 2 M; 0.25 ha × 6 M/ha
    assert p.loc["W", "premium"] == 729_000 and p.loc["W", "subsidy"] == 364_500
    assert p.loc["E", "premium"] == 375_000 and p.loc["E", "subsidy"] == 187_500
    assert (p["subsidy"] + p["farmer_share"] == p["premium"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("outside the tariff band" in n for n in manifest["notes"])


def test_without_a_subsidy_share_on_the_term_sheet_the_pricing_default_applies(run):
    out, _ = run
    p = read(out, "pricing.csv")
    assert set(p["subsidy_share"]) == {0.8}
    assert p["tariff_flag"].isna().all()                 # no band: nothing clamped
    np.testing.assert_allclose(p["premium_rate"], p["gross_premium_rate"], rtol=0)
