"""Hostile data that would move money: impossible values in the gridded inputs, rounding at the edges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.config import load_config
from panen.engine.pipeline.run import run_batch

REPO = Path(__file__).resolve().parents[1]
FILL = 9.969209968386869e36  # netCDF's default float fill value, here undeclared


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile_money")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    return d


def config(region: Path, folder: Path, rainfall: Path | None = None, products=("rain",)) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = str(region / cfg["inputs"][k]["path"].replace("../demo_data/", "data/"))
    if rainfall is not None:
        cfg["inputs"]["rainfall"] = {"path": str(rainfall), "variable": "precip", "units": "mm/day"}
    cfg["products"] = [p for p in cfg["products"] if p["id"] in products]
    cfg.pop("adjuster")
    cfg["output"]["dir"] = str(folder / "out")
    p = folder / "run.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def ledger(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "payouts.parquet").to_pandas().set_index("policy_id")


def corrupted(region: Path, folder: Path, value: float, days: slice) -> tuple[Path, int]:
    """The rainfall as NetCDF with ``value`` written over a band of cells on some days, no _FillValue declared."""
    ds = xr.open_zarr(region / "data" / "rainfall.zarr").load()
    rain = ds["precip"]
    ny = rain.sizes["lat"]
    band = rain.isel(lat=slice(ny // 3, ny // 3 + 8))
    hit = band.isel(time=days).notnull()
    n = int(hit.sum())
    rain[dict(time=days, lat=slice(ny // 3, ny // 3 + 8))] = xr.where(hit, value, band.isel(time=days))
    out = folder / "rain.nc"
    enc = {v: {"_FillValue": None} for v in ds.data_vars}
    ds.assign(precip=rain).to_netcdf(out, encoding=enc)
    return out, n


@pytest.fixture(scope="module")
def clean(region, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    ds = xr.open_zarr(region / "data" / "rainfall.zarr").load()
    ds.to_netcdf(folder / "rain.nc", encoding={v: {"_FillValue": None} for v in ds.data_vars})
    return run_batch(load_config(config(region, folder, folder / "rain.nc")), folder / "out")


@pytest.mark.parametrize("value, what", [(FILL, "an undeclared netCDF fill value"), (-5.0, "negative rain"),
                                         (2500.0, "a day above the world record")])
def test_impossible_rain_is_missing_counted_and_never_paid(region, tmp_path, clean, value, what):
    path, n = corrupted(region, tmp_path, value, slice(60, 66))
    assert n > 0
    res = run_batch(load_config(config(region, tmp_path, path)), tmp_path / "out")
    q = res.data_quality["rainfall"]
    assert q["implausible_values"] == n and q["valid_range"] == [0.0, 2000.0], what
    m = json.loads((res.out_dir / "manifest.json").read_text())
    assert m["data_quality"]["rainfall"]["implausible_values"] == n
    assert any("treated as missing" in note for note in m["notes"])
    new, old = ledger(res.out_dir), ledger(clean.out_dir)
    # never paid on the impossible values: a policy pays what it paid on clean data, or is
    # withheld because its district lost too much of its data on those days
    withheld = new["status"].astype(str) == "withheld_missing_data"
    assert (new.loc[~withheld, "net_payout"] == old.loc[new.index[~withheld], "net_payout"]).all() or \
        (new.loc[~withheld, "net_payout"] <= old.loc[new.index[~withheld], "net_payout"] + 0).all()
    assert int(new["net_payout"].sum()) <= int(old["net_payout"].sum())
    assert "Physically impossible values" in (res.out_dir / "report.html").read_text()


def test_clean_data_reports_no_impossible_value(clean):
    assert clean.data_quality["rainfall"]["implausible_values"] == 0
    assert "inside its physically possible range" in (clean.out_dir / "report.html").read_text()


def test_a_configured_valid_range_replaces_the_default(region, tmp_path):
    path, n = corrupted(region, tmp_path, 150.0, slice(60, 61))
    cfg = yaml.safe_load(config(region, tmp_path, path).read_text())
    cfg["inputs"]["rainfall"]["valid_range"] = [0, 100]
    p = tmp_path / "run2.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = run_batch(load_config(p), tmp_path / "out")
    assert res.data_quality["rainfall"]["valid_range"] == [0.0, 100.0]
    assert res.data_quality["rainfall"]["implausible_values"] >= n


# --------------------------------------------------------------------------- plausibility bounds
def _register_with(region: Path, folder: Path, **row) -> Path:
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol = pol[pol["product_id"] == "yield"].reset_index(drop=True)
    for col, value in row.items():
        pol.loc[0, col] = value
    pol.to_csv(folder / "policies.csv", index=False)
    return folder / "policies.csv"


def _yield_config(region: Path, folder: Path, policies: Path, limits: dict | None = None) -> Path:
    cfg = yaml.safe_load(config(region, folder, products=("yield",)).read_text())
    cfg["inputs"] = {"yields": cfg["inputs"]["yields"], "policies": {"path": str(policies)}}
    if limits is not None:
        cfg["limits"] = limits
    p = folder / "yield.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


@pytest.mark.parametrize("row, reason, column, words", [
    ({"area_ha": "1e9"}, "implausible_area", "area_ha", "above the plausible maximum of 1,000 ha"),
    ({"area_ha": "4500"}, "implausible_area", "area_ha", "limits.max_area_ha"),
    ({"area_ha": "1e15"}, "implausible_area", "area_ha", "limits.max_area_ha"),
    ({"sum_insured": str(2**53 - 1)}, "implausible_sum_insured", "sum_insured", "Rp 10,000,000,000"),
    ({"sum_insured": "99999999999"}, "implausible_sum_insured", "sum_insured", "limits.max_sum_insured"),
    ({"area_ha": "0.01", "sum_insured": "5000000"}, "implausible_sum_insured_per_ha", "sum_insured",
     "Rp 100,000,000/ha"),
])
def test_an_implausible_row_is_rejected_naming_the_bound(region, tmp_path, row, reason, column, words):
    from panen.engine.cli import main

    cfg = _yield_config(region, tmp_path, _register_with(region, tmp_path, **row))
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    rej = pd.read_csv(tmp_path / "out" / "rejects.csv", dtype=str)
    assert rej["reason"].tolist() == [reason] and rej["column"].item() == column and rej["row"].item() == "1"
    assert words in rej["message"].item()
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert m["policies_valid"] + m["policies_rejected"] == m["policies_read"]
    led = ledger(tmp_path / "out")
    assert int(led["sum_insured"].max()) <= 10_000_000_000


def test_limits_are_configurable(region, tmp_path):
    cfg = _yield_config(region, tmp_path, _register_with(region, tmp_path, area_ha="4500"),
                        limits={"max_area_ha": 5000, "max_sum_insured": 30_000_000_000})
    res = run_batch(load_config(cfg), tmp_path / "out")
    assert res.counts["policies_rejected"] == 0
    assert int(ledger(res.out_dir)["sum_insured"].max()) == 4500 * 6_000_000


def test_a_product_rate_above_the_per_ha_limit_is_a_config_error(region, tmp_path, capsys):
    from panen.engine.cli import main

    cfg = _yield_config(region, tmp_path, _register_with(region, tmp_path), limits={"max_sum_insured_per_ha": 1_000_000})
    assert main(["validate", str(cfg)]) == 2
    assert "products[0].sum_insured_per_ha" in capsys.readouterr().err


# --------------------------------------------------------------------------- exit codes, never a traceback
def test_a_run_where_every_policy_is_rejected_exits_2_unless_allowed(region, tmp_path, capsys):
    from panen.engine.cli import main

    cfg = yaml.safe_load(_yield_config(region, tmp_path, _register_with(region, tmp_path)).read_text())
    cfg["products"][0]["id"] = "not-in-the-register"
    p = tmp_path / "none.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no policy row is valid" in err and "--allow-empty" in err and "unknown_product" in err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    assert main(["run", str(p), "--out", str(out), "--quiet", "--allow-empty"]) == 0
    assert pd.read_csv(out / "payouts.csv").empty


def test_rainfall_that_ends_before_the_season_is_a_located_error(region, tmp_path, capsys):
    from panen.engine.cli import main

    ds = xr.open_zarr(region / "data" / "rainfall.zarr").load()
    ds.sel(time=slice(None, "2023-10-15")).to_netcdf(tmp_path / "early.nc")
    cfg = config(region, tmp_path, tmp_path / "early.nc")
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "early.nc" in err and "cannot assess any sowing date" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_zarr_chunk_is_a_located_error(region, tmp_path, capsys):
    import shutil

    from panen.engine.cli import main

    store = tmp_path / "rain.zarr"
    shutil.copytree(region / "data" / "rainfall.zarr", store)
    chunk = sorted(p for p in (store / "precip").iterdir() if p.name[0].isdigit())[3]
    chunk.write_bytes(b"\x00not a blosc chunk\x00" * 4)
    cfg = yaml.safe_load(config(region, tmp_path).read_text())
    cfg["inputs"]["rainfall"]["path"] = str(store)
    p = tmp_path / "corrupt.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["run", str(p), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "cannot read the gridded input(s) rainfall" in err and "rain.zarr" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
