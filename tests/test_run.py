"""The seasonal batch end to end on a small synthetic region: outputs, money, reruns, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.errors import DataQualityError, InputError
from panen.engine.pipeline.run import run_batch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("region")
    generate_demo_region(d / "data", n_districts=10, n_farmers=3000)
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = cfg["inputs"][k]["path"].replace("../demo_data/", "data/")
    cfg["output"]["dir"] = "out"
    cfg["adjuster"]["wording"] = str(REPO / "configs" / "autp.yaml")
    (d / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return d


@pytest.fixture(scope="module")
def result(region, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "first"
    return run_batch(load_config(region / "run.yaml"), out)


def with_config(region: Path, tmp_path: Path, edit=None, policies: pd.DataFrame | None = None) -> Path:
    """A copy of the region's config in tmp_path, optionally edited / with another policy register."""
    cfg = yaml.safe_load((region / "run.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = str(region / cfg["inputs"][k]["path"])
    if policies is not None:
        policies.to_csv(tmp_path / "policies.csv", index=False)
        cfg["inputs"]["policies"]["path"] = str(tmp_path / "policies.csv")
    if edit:
        edit(cfg)
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def test_batch_writes_the_contract_outputs(result):
    out = result.out_dir
    for name in ("payouts.parquet", "payouts.csv", "district_index.csv", "summary.csv", "payments.csv",
                 "rejects.csv", "manifest.json"):
        assert (out / name).is_file(), name
    led = pq.read_table(out / "payouts.parquet").to_pandas()
    assert list(led.columns[:9]) == ["policy_id", "farmer_id", "district_id", "product_id", "sum_insured",
                                     "payout_rate", "gross_payout", "deductible", "net_payout"]
    for col in ("sum_insured", "gross_payout", "deductible", "net_payout"):
        assert str(led[col].dtype) == "int64", col
    assert (led["net_payout"] <= led["gross_payout"]).all() and (led["net_payout"] >= 0).all()
    assert led["policy_id"].is_unique


def test_money_follows_rate_times_sum_insured_and_the_franchise(result):
    led = pq.read_table(result.out_dir / "payouts.parquet").to_pandas()
    paid = led[led["payout_rate"].notna() & (led["product_id"] == "rain")]
    expected_gross = np.floor(paid["sum_insured"] * paid["payout_rate"] + 0.5).astype("int64")
    assert (paid["gross_payout"] == expected_gross).all()
    # demo terms: franchise of Rp 100,000 — below it nothing, at or above it everything
    small = paid["gross_payout"] < 100_000
    assert (paid.loc[small, "net_payout"] == 0).all()
    assert (paid.loc[~small, "net_payout"] == paid.loc[~small, "gross_payout"]).all()
    assert paid["payout_rate"].gt(0).any(), "the demo season must trigger somewhere"
    assert (paid["payout_rate"] == 0).any(), "and not everywhere"


def test_district_totals_reconcile_to_the_rupiah(result):
    led = pq.read_table(result.out_dir / "payouts.parquet").to_pandas()
    summary = pd.read_csv(result.out_dir / "summary.csv", dtype={"district_id": str})
    led = led.astype({"product_id": str, "district_id": str})
    per_district = led.groupby(["product_id", "district_id"])["net_payout"].sum()
    rows = summary[summary["level"] == "district"].set_index(["product_id", "district_id"])["net_payout"]
    pd.testing.assert_series_equal(rows.sort_index().astype("int64"), per_district.sort_index().astype("int64"),
                                   check_names=False)
    grand = summary.loc[summary["level"] == "total", "net_payout"].astype("int64").sum()
    assert grand == led["net_payout"].sum()
    pay = pd.read_csv(result.out_dir / "payments.csv")
    assert pay["amount"].sum() == led["net_payout"].sum()


def test_manifest_records_version_hashes_counts_and_timings(result):
    m = json.loads((result.out_dir / "manifest.json").read_text())
    assert m["panen_version"] and len(m["config"]["sha256"]) == 64
    assert set(m["inputs"]) == {"districts", "rainfall", "ndvi", "yields", "policies", "assessments", "adjuster_wording"}
    assert all(len(v["sha256"]) == 64 for v in m["inputs"].values())
    assert m["counts"]["policies_valid"] + m["counts"]["policies_rejected"] == m["counts"]["policies_read"]
    # every valid policy of every cover (the named-peril cover too) has its ledger row
    assert m["counts"]["ledger_rows"] == m["counts"]["policies_valid"]
    assert m["counts"]["plots_assessed"] > 0
    assert m["timings_s"]["total"] > 0
    assert m["outputs"]["payouts.parquet"]


def test_rerun_of_the_same_inputs_is_byte_identical(region, result, tmp_path):
    again = run_batch(load_config(region / "run.yaml"), tmp_path / "again")
    for name in ("payouts.parquet", "payouts.csv", "district_index.csv", "summary.csv", "payments.csv", "rejects.csv"):
        assert (again.out_dir / name).read_bytes() == (result.out_dir / name).read_bytes(), name
    assert again.run_id == result.run_id


def test_a_csv_only_run_builds_the_same_ledger_without_streaming_parquet(region, result, tmp_path):
    # without parquet among the formats the ledger is built in memory (two builder threads)
    # and written as CSV only: the same bytes as the CSV of the streamed run
    cfg = with_config(region, tmp_path, edit=lambda c: c["output"].update(formats=["csv"]))
    res = run_batch(load_config(cfg), tmp_path / "csv_only")
    assert not (res.out_dir / "payouts.parquet").exists()
    assert (res.out_dir / "payouts.csv").read_bytes() == (result.out_dir / "payouts.csv").read_bytes()


def test_same_ledger_on_a_real_distributed_local_cluster(region, result, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = run_batch(load_config(region / "run.yaml"), tmp_path / "cluster", scheduler=cluster.scheduler_address)
    assert (res.out_dir / "payouts.parquet").read_bytes() == (result.out_dir / "payouts.parquet").read_bytes()
    assert json.loads((res.out_dir / "manifest.json").read_text())["scheduler"] == cluster.scheduler_address


def test_existing_output_folder_is_refused_without_force(region, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists; pass --force"):
        run_batch(load_config(region / "run.yaml"), out)
    # --force replaces only what a panen run wrote (or an empty folder)
    with pytest.raises(InputError, match="replaces only a folder that a previous panen run wrote"):
        run_batch(load_config(region / "run.yaml"), out, force=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "manifest.json").write_text(json.dumps({"run_id": "0" * 16, "panen_version": "0"}))
    run_batch(load_config(region / "run.yaml"), out, force=True)
    assert not (out / "keep.txt").exists() and (out / "payouts.parquet").exists()


def test_a_failure_after_the_ledger_was_streamed_leaves_nothing(region, tmp_path, monkeypatch):
    # payouts.parquet is written into the staging folder while the ledger is built; a later
    # failure (here the reconciliation) must remove it with the rest, and keep an old output
    from panen.engine.pipeline import steps as run_module
    from panen.engine.settlement.ledger import ReconciliationError

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    (out / "manifest.json").write_text(json.dumps({"run_id": "0" * 16, "panen_version": "0"}))

    def broken(ledger, totals):
        assert (next(tmp_path.glob(".out.staging-*")) / "payouts.parquet").exists()  # it was streamed
        raise ReconciliationError("off by one rupiah")

    monkeypatch.setattr(run_module, "reconcile", broken)
    with pytest.raises(ReconciliationError):
        run_batch(load_config(region / "run.yaml"), out, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "manifest.json"]


def test_bad_policy_rows_go_to_rejects_and_strict_fails_writing_nothing(region, tmp_path, capsys):
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol.loc[0, "district_id"] = "9999"          # a district missing from the polygons
    pol.loc[1, "area_ha"] = "-0.5"              # negative area
    pol.loc[2, "policy_id"] = pol.loc[3, "policy_id"]  # duplicate id
    cfg = with_config(region, tmp_path, policies=pol)
    res = run_batch(load_config(cfg), tmp_path / "out")
    rej = pd.read_csv(res.out_dir / "rejects.csv")
    assert {"unknown_district", "non_positive_area", "duplicate_policy_id"} <= set(rej["reason"])
    assert set(rej.loc[rej["reason"] == "unknown_district", "row"]) == {1}
    assert set(rej.loc[rej["reason"] == "non_positive_area", "row"]) == {2}
    assert res.counts["policies_valid"] + res.counts["policies_rejected"] == len(pol)

    out = tmp_path / "strict"
    assert main(["run", str(cfg), "--out", str(out), "--strict", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown_district" in err and "policies.csv" in err and "row 1" in err
    assert not out.exists() and not list(tmp_path.glob(".strict*")), "nothing half-written"


def test_district_with_no_rain_data_is_withheld_not_paid(region, tmp_path):
    import xarray as xr

    rain = xr.open_zarr(region / "data" / "rainfall.zarr")
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    victim = pol["district_id"].iloc[0]
    import geopandas as gpd

    gdf = gpd.read_file(region / "data" / "districts.gpkg")
    minx, miny, maxx, maxy = gdf.loc[gdf["district_id"] == victim].total_bounds
    lat, lon = rain["lat"], rain["lon"]
    box = (lat >= miny - 0.05) & (lat <= maxy + 0.05) & (lon >= minx - 0.05) & (lon <= maxx + 0.05)
    blank = rain.where(~box)  # every cell touching the district: NaN for the whole period
    blank["precip"].attrs = rain["precip"].attrs
    for v in blank.variables.values():
        v.encoding = {}
    blank.chunk({"time": 64}).to_zarr(tmp_path / "blank.zarr", mode="w", zarr_format=2)

    def edit(cfg):
        cfg["inputs"]["rainfall"]["path"] = str(tmp_path / "blank.zarr")

    res = run_batch(load_config(with_config(region, tmp_path, edit)), tmp_path / "out")
    led = pq.read_table(res.out_dir / "payouts.parquet").to_pandas()
    led = led.astype({"product_id": str, "district_id": str})
    mine = led[(led["district_id"] == victim) & (led["product_id"] == "rain")]
    assert len(mine) and (mine["status"] == "withheld_missing_data").all()
    assert (mine["net_payout"] == 0).all() and mine["payout_rate"].isna().all()
    idx = pd.read_csv(res.out_dir / "district_index.csv", dtype={"district_id": str})
    assert idx.loc[(idx["district_id"] == victim) & (idx["product_id"] == "rain"), "flagged"].all()
    # the yield cover does not read rainfall: the same farmers are still settled on it
    assert (led.loc[(led["district_id"] == victim) & (led["product_id"] == "yield"), "status"] != "withheld_missing_data").all()


def test_districts_in_the_wrong_crs_are_a_clear_error(region, tmp_path):
    import geopandas as gpd

    gdf = gpd.read_file(region / "data" / "districts.gpkg")
    # coordinates really in degrees but labelled as UTM: nothing lands on the rainfall grid
    wrong = gdf.set_crs("EPSG:32748", allow_override=True)
    wrong.to_file(tmp_path / "wrong.gpkg", driver="GPKG")

    def edit(cfg):
        cfg["inputs"]["districts"]["path"] = str(tmp_path / "wrong.gpkg")

    with pytest.raises(DataQualityError, match="CRS"):
        run_batch(load_config(with_config(region, tmp_path, edit)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_input_file_exits_2(region, tmp_path, capsys):
    def edit(cfg):
        cfg["inputs"]["policies"]["path"] = str(tmp_path / "nope.csv")

    assert main(["run", str(with_config(region, tmp_path, edit)), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "nope.csv" in capsys.readouterr().err
