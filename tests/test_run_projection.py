"""``panen run CONFIG --as-of DATE`` with a ``projection:`` section: ``projection.csv`` and the report's in-season page.

The history is a coarse synthetic grid whose every cell rains the same each analogue
season — none at all in the dry years, 20 mm every day in the wet ones — so what the
projection must say about a dry or a wet year is known without the projection's code.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from panen.datasets.synthetic import generate_demo_region, rainfall_dataset
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.errors import ConfigError
from panen.engine.pipeline.run import run_batch

REPO = Path(__file__).resolve().parents[1]
YEARS = list(range(2014, 2024))
DRY = {2015, 2019, 2023}  # El Niño-like analogue seasons: no rain at all after the as-of date
AS_OF = "2023-12-15"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("projection_data")
    generate_demo_region(d, n_districts=6, n_farmers=240, products=("rain", "yield", "ndvi"))
    t = pd.date_range("2013-09-01", "2023-08-31", freq="D", unit="ns")
    harvest = t.year + (t.month >= 9)  # analogue season y: September y-1 .. August y
    grid = SimpleNamespace(lat=np.arange(-8.1, -6.0, 0.2), lon=np.arange(105.7, 112.3, 0.2))
    rain = np.where(np.isin(harvest, list(DRY)), 0.0, 20.0)[:, None, None] * np.ones((1, len(grid.lat), len(grid.lon)))
    rainfall_dataset(rain.astype("float32"), grid, t, seed=0).to_zarr(d / "history.zarr", mode="w", zarr_format=2,
                                                                       consolidated=True)
    return d


def write_config(folder: Path, data: Path, **projection) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg.pop("adjuster")
    cfg["inputs"] = {k: {**v, "path": str(data / Path(v["path"]).name)}
                     for k, v in cfg["inputs"].items() if k != "assessments"}
    cfg["inputs"]["rainfall_history"] = {"path": str(data / "history.zarr"), "variable": "precip", "units": "mm/day"}
    cfg["output"] = {"dir": "out", "formats": ["parquet", "csv"], "payments_by": "farmer"}
    if not projection.pop("off", False):
        cfg["projection"] = {"history": {"rainfall": "rainfall_history"}, "years": [YEARS[0], YEARS[-1]],
                             "min_years": 5, **projection}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{len(list(folder.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def projected(data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("projection_run")
    out = folder / "out"
    assert main(["run", str(write_config(folder, data)), "--out", str(out), "--as-of", AS_OF, "--quiet"]) == 0
    return out


def test_projection_csv_has_a_row_per_insured_district_and_product_in_whole_rupiah(projected):
    pr = pd.read_csv(projected / "projection.csv", dtype={"district_id": str})
    assert list(pr.columns) == ["district_id", "product_id", "years", "p_payout", "expected_rate", "expected_payout",
                                "q10", "q50", "q90", "guaranteed", "sum_insured", "projectable", "reason"]
    payouts = pd.read_csv(projected / "payouts.csv", dtype={"district_id": str})
    insured = payouts.groupby(["product_id", "district_id"])["sum_insured"].sum()
    rain = pr[pr["product_id"] == "rain"].set_index("district_id")
    assert rain["projectable"].all() and (rain["years"] == len(YEARS)).all()
    assert (rain["sum_insured"] == insured["rain"].reindex(rain.index)).all()
    for c in ("expected_payout", "q10", "q50", "q90", "guaranteed"):
        assert (rain[c] == rain[c].round()).all() and (rain[c] >= 0).all()
    assert (rain["guaranteed"] <= rain["q10"]).all() and (rain["q10"] <= rain["q50"]).all()
    assert (rain["q50"] <= rain["q90"]).all()
    assert ((rain["p_payout"] * len(YEARS)).round(9) % 1 == 0).all()  # a share of the 10 analogue years
    # the gap district: policies the observed days already withhold are left out of every analogue year
    assert "policies withheld for missing observed data before the as-of date" in rain.loc["3671", "reason"]


def test_yield_and_ndvi_are_listed_as_not_projectable_with_their_reason(projected):
    pr = pd.read_csv(projected / "projection.csv", dtype={"district_id": str}, keep_default_na=False)
    for pid, why in (("yield", "inputs.yields, which is not a daily weather series"), ("ndvi", "declares no reach")):
        rows = pr[pr["product_id"] == pid]
        assert len(rows) and not rows["projectable"].any()
        assert rows["reason"].str.contains(why, regex=False).all()
        assert (rows["expected_payout"] == "").all()  # no figure, never a zero
    notes = json.loads((projected / "manifest.json").read_text())["notes"]
    assert any("product 'ndvi'" in n and "not projected" in n for n in notes)


def test_a_dry_analogue_year_pays_at_least_a_wet_one_and_the_manifest_sums_the_table(projected):
    pr = pd.read_csv(projected / "projection.csv", dtype={"district_id": str})
    rain = pr[pr["product_id"] == "rain"]
    # three dry years of ten (no rain after the as-of date): a dry-spell phase open on the as-of date pays in
    # them, so every district with such a cohort pays in at least those 3 years
    assert (rain["p_payout"] >= 0.3 - 1e-12).all()
    m = json.loads((projected / "manifest.json").read_text())["projection"]
    assert m["as_of"] == AS_OF and m["years"] == [YEARS[0], YEARS[-1]]
    assert m["by_product"]["rain"]["expected_payout"] == int(rain["expected_payout"].sum())
    assert m["by_product"]["rain"]["guaranteed"] == int(rain["guaranteed"].sum())
    assert m["by_product"]["yield"] == {"districts": 6, "projectable": False, "districts_projected": 0,
                                        "expected_payout": None, "guaranteed": None}


def test_the_report_has_an_in_season_page_whose_numbers_are_projection_csv(projected):
    page = (projected / "report.html").read_text()
    assert 'id="inseason"' in page and "In season: projection" in page
    assert "expected payout per district" in page and "fan chart of the projected payout per district" in page
    pr = pd.read_csv(projected / "projection.csv", dtype={"district_id": str})
    shown = {html.unescape(k): v for v, k in re.findall(r'data-value="([^"]*)" data-key="(projection\.[^"]+)"', page)}
    rain = pr[pr["product_id"] == "rain"]
    assert len(rain)
    for r in rain.itertuples():
        for col in ("expected_payout", "q10", "q50", "q90", "guaranteed"):
            assert shown[f"projection.rain.{r.district_id}.{col}"] == str(int(getattr(r, col)))
        assert float(shown[f"projection.rain.{r.district_id}.p_payout"]) == pytest.approx(r.p_payout)


def test_a_rerun_gives_the_same_projection_bytes_and_a_run_without_as_of_none(data, projected, tmp_path):
    again = tmp_path / "again"
    assert main(["run", str(write_config(tmp_path, data)), "--out", str(again), "--as-of", AS_OF, "--quiet"]) == 0
    assert (again / "projection.csv").read_bytes() == (projected / "projection.csv").read_bytes()
    plain = tmp_path / "plain"
    assert main(["run", str(write_config(tmp_path, data)), "--out", str(plain), "--quiet"]) == 0
    assert not (plain / "projection.csv").exists()
    assert json.loads((plain / "manifest.json").read_text())["projection"] is None


def test_too_few_usable_years_flag_every_district(data, tmp_path):
    res = run_batch(load_config(write_config(tmp_path, data, years=[2009, 2023], min_years=12)), None,
                    as_of=pd.Timestamp(AS_OF).date())
    rain = res.projection[res.projection["product_id"] == "rain"]
    # the history starts with the 2014 season: 2009..2013 lack data, 10 usable years < 12
    assert (rain["years"] == 10).all() and rain["expected_payout"].isna().all()
    assert rain["reason"].str.contains("only 10 usable analogue year(s) of 15 (min_years: 12)", regex=False).all()
    assert any("2009 (" in n and "skipped for missing data" in n for n in res.notes)


@pytest.mark.parametrize("change, message", [
    ({"years": [2014, 2024]}, "analogue years must be before the season's harvest year 2024"),
    ({"history": {"ndvi_x": "rainfall_history"}}, "no product reads inputs.ndvi_x"),
    ({"history": {"rainfall": "rainfall_archive"}}, "the history inputs.rainfall_archive is not configured"),
    ({"years": [2014, 2016], "min_years": 5}, "min_years (5) is more than the 3 year(s)"),
])
def test_a_projection_section_that_cannot_work_is_a_located_config_error(data, tmp_path, change, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(write_config(tmp_path, data, **change))
    assert any(p.key and p.key.startswith("projection") for p in err.value.problems)


def test_a_bad_as_of_date_exits_2(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(write_config(tmp_path, data)), "--out", str(tmp_path / "o"), "--as-of", "2023-02-30"])
    assert exit_.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_the_readmes_projection_example_validates():
    from panen.engine.config import ProjectionConfig
    from panen.engine.registry import get_reader

    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Projection of open windows\n")
    (block,) = re.findall(r"```yaml\n(.*?)```", text[start:text.index("\n## ", start + 1)], re.S)
    doc = yaml.safe_load(block)
    projection = ProjectionConfig.model_validate(doc["projection"])
    assert projection.history == {"rainfall": "rainfall_history"} and projection.min_years == 10
    for name, section in doc["inputs"].items():
        get_reader(name).Spec.model_validate(section)


def test_a_history_without_the_analogue_years_is_a_located_error_not_dry_years(data, tmp_path):
    from panen.engine.errors import DataQualityError

    # the season's own rainfall input as the history: it holds no day of the analogue seasons 2014..2023
    config = load_config(write_config(tmp_path, data, history={"rainfall": "rainfall"}))
    with pytest.raises(DataQualityError, match=r"no time step in the analogue years 2014\.\.2023"):
        run_batch(config, None, as_of=pd.Timestamp(AS_OF).date())


def test_a_monthly_history_for_daily_rainfall_fails_validation_naming_the_key(data, tmp_path, capsys):
    t = pd.date_range("2013-09-01", "2023-08-01", freq="MS", unit="ns")
    grid = SimpleNamespace(lat=np.arange(-8.1, -6.0, 0.2), lon=np.arange(105.7, 112.3, 0.2))
    monthly = rainfall_dataset(np.full((len(t), len(grid.lat), len(grid.lon)), 300.0, "float32"), grid, t, seed=0)
    monthly["precip"].attrs["units"] = "mm/month"
    monthly.to_zarr(tmp_path / "monthly.zarr", mode="w", zarr_format=2, consolidated=True)
    config = write_config(tmp_path, data)
    cfg = yaml.safe_load(config.read_text())
    cfg["inputs"]["rainfall_history"] = {"path": str(tmp_path / "monthly.zarr"), "units": "mm/month"}
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert "projection.history.rainfall" in err and "time step month" in err and "time step day" in err
