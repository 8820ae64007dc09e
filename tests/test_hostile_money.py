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
