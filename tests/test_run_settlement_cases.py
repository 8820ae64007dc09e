"""The settlement store through ``panen run``, case by case, on SQLite and on PostgreSQL.

Each case is a season settled in several batches as an insurer meets them (issue 13's
"done means"): one farmer's area corrected, a preliminary rainfall product replaced by the
final one, the same batch published twice, and a run killed at each step of publishing.
On SQLite the runs use the default store (no ``settlement:`` section: every published
batch is recorded in ``panen-settlement.sqlite`` beside the output folders); on
PostgreSQL they name a fresh database of the session's throwaway server.

Expected amounts never come from the store: what each payee is due is what a what-if
run (``settlement: false``) pays in full, so a top-up must be the difference of two such
runs' amounts payee by payee, and an overpayment the amount listed for recovery (PMFBY
revised operational guidelines, para 21: claims are settled on the final data and a
re-settlement pays or recovers the difference).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.settlement.store import default_store_path, open_store

REPO = Path(__file__).resolve().parents[1]
KEY = ["product_id", "payee_type", "payee_id"]
SEASON = "2024-MT1"
DEFAULT = object()  # leave the settlement: section out (the store's defaults)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cases_data")
    generate_demo_region(d, n_districts=8, n_farmers=300)
    return d


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request) -> str | None:
    """``None``: the default SQLite store beside the output folders; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").new_database()


def write_config(folder: Path, data: Path, *, product: str = "yield", policies: Path | None = None,
                 rainfall: Path | None = None, settlement=DEFAULT) -> Path:
    """One product of the demo (``yield``, or ``rain`` without its flood phase) on the small region.

    ``settlement``: ``DEFAULT`` leaves the section out, ``False`` is a what-if run, a
    mapping is the section.
    """
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg.pop("adjuster")
    (sheet,) = [p for p in cfg["products"] if p["id"] == product]
    if product == "rain":
        # only phases that more rain can lower (a deficit total and a dry spell): a wetter final
        # product can then only lower a district's payout, never raise another phase's
        sheet["phases"] = [p for p in sheet["phases"] if p["name"] in ("establishment", "dry-spell")]
    cfg["products"] = [sheet]
    needs = {"yield": ("districts", "yields", "policies"), "rain": ("districts", "rainfall", "policies")}[product]
    cfg["inputs"] = {k: {**v, "path": str(data / Path(v["path"]).name)}
                     for k, v in cfg["inputs"].items() if k in needs}
    if policies is not None:
        cfg["inputs"]["policies"]["path"] = str(policies)
    if rainfall is not None:
        cfg["inputs"]["rainfall"]["path"] = str(rainfall)
    cfg["output"] = {"dir": "out", "formats": ["parquet", "csv"], "payments_by": "farmer"}
    if settlement is not DEFAULT:
        cfg["settlement"] = settlement
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{len(list(folder.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def section(url: str | None, **more) -> object:
    """The settlement: section of a run on ``url`` (the default store: left out when nothing more is set)."""
    if url is None and not more:
        return DEFAULT
    return {**({"url": url} if url else {}), **more}


def run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), "--quiet", *extra])


def table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"payee_id": str, "district_id": str, "payment_id": str,
                                          "recovery_id": str}, keep_default_na=False)


def full_amounts(config: Path, out: Path) -> pd.Series:
    """Per payee, what a what-if run (no store) pays in full [Rp]; it records nothing."""
    assert run(config, out) == 0
    assert manifest(out)["settlement"] is None
    assert not default_store_path(out).exists()
    return table(out, "payments.csv").groupby(KEY)["amount"].sum()


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def store_of(url: str | None, out: Path):
    return open_store(url or default_store_path(out))


def corrected_register(data: Path, tmp: Path, factor: float) -> tuple[Path, str, pd.Series, pd.Series]:
    """The register with one paid farmer's yield-policy area scaled by ``factor``: the new
    register, the farmer, and what what-if runs pay every payee before and after [Rp]."""
    before = full_amounts(write_config(tmp / "whatif", data, settlement=False), tmp / "whatif" / "before")
    farmer = before.index[len(before) // 2][2]
    reg = pd.read_csv(data / "policies.csv", dtype=str, keep_default_na=False)
    row = (reg["farmer_id"] == farmer) & (reg["product_id"] == "yield")
    assert row.sum() == 1
    reg.loc[row, "area_ha"] = f"{float(reg.loc[row, 'area_ha'].iloc[0]) * factor:.2f}"
    path = tmp / "policies-corrected.csv"
    reg.to_csv(path, index=False)
    after = full_amounts(write_config(tmp / "whatif", data, policies=path, settlement=False),
                         tmp / "whatif" / "after")
    diff = after.sub(before, fill_value=0)
    assert diff[diff != 0].index.get_level_values("payee_id").tolist() == [farmer]  # the fix touches one payee
    return path, farmer, before, after


# --------------------------------------------------------------------------- the new user
def test_a_rerun_with_one_farmers_area_corrected_tops_up_that_farmer_only_under_a_new_payment_id(
        data, tmp_path, url):
    """The issue's scenario: the season rerun with one farmer's area corrected (the same config,
    a fixed register, a new folder) pays that farmer the correction — under a new payment id
    — and nobody else anything; without the store it paid the whole amount again."""
    policies, farmer, before, after = corrected_register(data, tmp_path, 1.5)
    payee = ("yield", "farmer", farmer)
    assert after[payee] > before[payee] > 0

    runs = tmp_path / "runs"
    first = runs / "mt1"
    assert run(write_config(runs, data, settlement=section(url)), first) == 0
    paid1 = table(first, "payments.csv")
    assert paid1.set_index(KEY)["amount"].sort_index().equals(before.sort_index())
    fixed = runs / "mt1-area-fixed"
    assert run(write_config(runs, data, policies=policies, settlement=section(url)), fixed) == 0
    pay = table(fixed, "payments.csv")
    assert pay["payee_id"].tolist() == [farmer]  # nobody else is paid anything
    assert pay["amount"].tolist() == [after[payee] - before[payee]]  # exactly the correction [Rp]
    assert (pay["due"].tolist(), pay["paid_before"].tolist()) == ([after[payee]], [before[payee]])
    assert pay["payment_id"].iloc[0] not in set(paid1["payment_id"])  # a new payment, never the old id again
    assert len(table(fixed, "recoveries.csv")) == 0
    st = manifest(fixed)["settlement"]
    assert st["new"] and st["batch_id"] != manifest(first)["settlement"]["batch_id"]
    with store_of(url, fixed) as store:
        assert store.batches(SEASON)["state"].tolist() == ["committed", "committed"]
        owed = store.owed(SEASON).set_index(KEY)["paid"]
        assert owed.sort_index().equals(after.sort_index())  # every payee paid what is due, once


# --------------------------------------------------------------------------- preliminary → final rainfall
def interior_cells(data: Path) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    """The rainfall grid, and per district the (lat, lon) mask of the cells lying wholly inside
    it (touching no other district: checked)."""
    ds = xr.open_zarr(data / "rainfall.zarr").load()
    polygons = gpd.read_file(data / "districts.gpkg").set_index("district_id").geometry
    lon, lat = ds["lon"].to_numpy(), ds["lat"].to_numpy()
    hx, hy = abs(lon[1] - lon[0]) / 2, abs(lat[1] - lat[0]) / 2
    lon2, lat2 = np.meshgrid(lon, lat)
    boxes = shapely.box(lon2 - hx, lat2 - hy, lon2 + hx, lat2 + hy)
    interior = {str(d): shapely.contains(g, boxes) for d, g in polygons.items()}
    for d, inside in interior.items():
        for other, g in polygons.items():
            if str(other) != d:
                assert not shapely.intersects(shapely.buffer(g, -1e-9), boxes[inside]).any()
    return ds, interior


def drier_district(data: Path, out: Path, district: str) -> Path:
    """``rainfall.zarr`` without rain on the cells lying wholly inside ``district`` (missing
    cells stay missing): a preliminary product that missed that district's rain, every other
    district's rain unchanged."""
    ds, interior = interior_cells(data)
    inside = interior[district]
    precip = ds["precip"].to_numpy().copy()
    precip[:, inside] = np.where(np.isnan(precip[:, inside]), np.nan, 0.0)
    ds["precip"] = (ds["precip"].dims, precip, ds["precip"].attrs)
    for v in ds.variables.values():
        v.encoding = {}
    path = out / "rainfall-preliminary.zarr"
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return path


def test_a_final_rainfall_product_lowering_one_districts_payout_lists_recoveries_and_pays_nobody(
        data, tmp_path, url):
    """Preliminary → final rainfall (as CHIRPS preliminary is replaced by CHIRPS final): the
    preliminary product missed one district's rain, so the first batch paid that district a
    drought payout the final product lowers. The re-settlement (a correction of the first
    batch) lists each payee of that district for recovery with exactly what they were
    overpaid, pays no negative amount and pays nobody else anything — the district the
    drought really hit is paid the same by both products, so its payees appear nowhere."""
    whatif = tmp_path / "whatif"
    final = full_amounts(write_config(whatif, data, product="rain", settlement=False), whatif / "final")
    payouts = pd.read_csv(whatif / "final" / "payouts.csv", dtype={"district_id": str, "farmer_id": str})
    _, interior = interior_cells(data)
    touched = set(payouts.loc[(payouts["net_payout"] > 0) | (payouts["status"] != "no_payout"), "district_id"])
    district = max(sorted(set(payouts["district_id"]) - touched), key=lambda d: interior[d].sum())
    preliminary = drier_district(data, tmp_path, district)
    prelim = full_amounts(write_config(whatif, data, product="rain", rainfall=preliminary, settlement=False),
                          whatif / "prelim")
    # the hand table: per payee, prelim − final; only the district's payees change, all downwards
    farmers_there = set(payouts.loc[payouts["district_id"] == district, "farmer_id"])
    over = prelim.sub(final, fill_value=0).astype("int64")
    over = over[over != 0]
    assert len(over) >= 2 and (over > 0).all()
    assert set(over.index.get_level_values("payee_id")) <= farmers_there
    elsewhere = [k for k in prelim.index if k[2] not in farmers_there]
    assert len(elsewhere) and prelim[elsewhere].equals(final.reindex(elsewhere))  # paid, and the same in both

    runs = tmp_path / "runs"
    first = runs / "mt1-prelim"
    assert run(write_config(runs, data, product="rain", rainfall=preliminary, settlement=section(url)), first) == 0
    assert table(first, "payments.csv").set_index(KEY)["amount"].sort_index().equals(prelim.sort_index())
    batch1 = manifest(first)["settlement"]["batch_id"]
    resettled = runs / "mt1-final-rain"
    cfg = write_config(runs, data, product="rain", settlement=section(url, kind="correction", corrects=batch1))
    assert run(cfg, resettled) == 0
    assert len(table(resettled, "payments.csv")) == 0  # nobody is owed more: nothing paid, nothing negative
    rec = table(resettled, "recoveries.csv").set_index(KEY)
    assert rec["amount"].sort_index().equals(over.sort_index())  # each payee of the district, to the rupiah
    assert (rec["amount"] > 0).all() and set(rec.index.get_level_values("payee_id")) <= farmers_there
    assert rec["due"].equals(final.reindex(rec.index, fill_value=0))
    assert rec["paid_before"].equals(prelim.reindex(rec.index))
    st = manifest(resettled)["settlement"]
    assert (st["kind"], st["corrects"]) == ("correction", batch1)
    assert (st["paid"], st["recoveries"], st["recovered"]) == (0, len(over), int(over.sum()))
    assert rec.reset_index()["recovery_id"].str.startswith(st["batch_id"] + "-").all()
    with store_of(url, resettled) as store:
        owed = store.owed(SEASON).set_index(KEY)["paid"]
        assert owed.sort_index().equals(prelim.sort_index())  # what was paid stands until a person decides
        assert int(store.recoveries(SEASON)["amount"].sum()) == int(over.sum())


# --------------------------------------------------------------------------- the same batch twice
def test_the_same_batch_published_twice_and_into_a_second_folder_pays_nothing_twice(data, tmp_path, url):
    """The same inputs published again — replacing the folder, and into a second folder — are
    the same batch: recorded once, paid once. The second folder's ``payments.csv`` is the
    first one's byte for byte (the batch's payments, with their ids), not an empty file: a
    folder shows the batch it holds, and a payment id the bank already paid is never paid
    again; the manifest says the batch was already recorded (``new: false``)."""
    full = full_amounts(write_config(tmp_path / "whatif", data, settlement=False), tmp_path / "whatif" / "out")
    runs = tmp_path / "runs"
    cfg = write_config(runs, data, settlement=section(url))
    first, second = runs / "mt1", runs / "mt1-again"
    assert run(cfg, first) == 0
    names = ("payments.csv", "recoveries.csv", "payouts.csv", "payouts.parquet", "summary.csv")
    published = {n: (first / n).read_bytes() for n in names}
    batch = manifest(first)["settlement"]["batch_id"]
    assert run(cfg, first, "--force") == 0
    assert run(cfg, second) == 0
    for out in (first, second):
        st = manifest(out)["settlement"]
        assert (st["batch_id"], st["new"]) == (batch, False)
        assert {n: (out / n).read_bytes() for n in names} == published
    pay = table(second, "payments.csv")
    assert pay.set_index(KEY)["amount"].sort_index().equals(full.sort_index())
    with store_of(url, first) as store:
        batches = store.batches(SEASON)
        assert batches["batch_id"].tolist() == [batch] and batches["state"].tolist() == ["committed"]
        assert store.owed(SEASON).set_index(KEY)["paid"].sort_index().equals(full.sort_index())  # paid once


# --------------------------------------------------------------------------- killed at each step of publishing
def killed_at(config: Path, out: Path, pause: str) -> None:
    """Run ``config`` in a child process stopped at pause point ``pause``, then SIGKILL it there."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEN_")}
    env["PANEN_TEST_PAUSE_AT"] = pause
    proc = subprocess.Popen([sys.executable, "-m", "panen.engine.cli", "run", str(config), "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        for line in proc.stderr:
            if f"test pause at {pause}" in line:
                break
        else:
            pytest.fail(f"the run never reached {pause}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs POSIX signals")
@pytest.mark.parametrize("pause, recorded, published", [
    ("staged", False, False),          # outputs complete in the staging folder, nothing recorded
    ("recorded", True, False),         # the batch recorded pending, nothing published
    ("publish", True, False),          # between the folder's renames: the new output not yet in place
    ("published", True, True),         # the new output in place, the old one not yet removed
    ("published_batch", True, True),   # published, the batch not yet committed
])
def test_a_correction_killed_at_each_step_of_publishing_leaves_store_and_folder_consistent_and_pays_once(
        data, tmp_path, url, pause, recorded, published):
    """A correction batch killed (SIGKILL) at each step: outputs staged, batch recorded
    pending, folder being published, folder published, batch about to be committed. Afterwards the store holds the batch pending exactly when it
    was recorded, and the folder the new output exactly when it was published; the next run
    into the folder decides the pending batch against the folder and the season is paid
    exactly what is due, once."""
    policies, farmer, before, after = corrected_register(data, tmp_path, 2.0)
    payee = ("yield", "farmer", farmer)
    runs = tmp_path / "runs"
    first = runs / "mt1"
    assert run(write_config(runs, data, settlement=section(url)), first) == 0
    batch1 = manifest(first)["settlement"]["batch_id"]
    cfg = write_config(runs, data, policies=policies,
                       settlement=section(url, kind="correction", corrects=batch1))
    fix = runs / "mt1-fix"
    killed_at(cfg, fix, pause)

    with store_of(url, fix) as store:
        left = store.batches(SEASON).set_index("batch_id")
        assert store.owed(SEASON).set_index(KEY)["paid"].sum() == before.sum() + (
            after[payee] - before[payee] if recorded else 0)  # a pending batch's payment counts: never paid twice
    assert left.loc[batch1, "state"] == "committed"
    pending = left.index[left["state"] == "pending"].tolist()
    assert len(left) == (2 if recorded else 1) and len(pending) == (1 if recorded else 0)
    assert fix.exists() == published  # nothing, or the whole new folder
    if published:
        assert manifest(fix)["settlement"]["batch_id"] == pending[0]
    assert (first / "manifest.json").exists() and manifest(first)["settlement"]["batch_id"] == batch1

    assert run(cfg, fix, "--force") == 0  # recovers first, then publishes the batch
    st = manifest(fix)["settlement"]
    if recorded:
        word = "committed" if published else "rolled back"
        assert st["batch_id"] == pending[0]
        assert any(n.startswith(f"{word} batch {pending[0]}") for n in manifest(fix)["notes"])
    pay = table(fix, "payments.csv")
    assert pay["payee_id"].tolist() == [farmer] and pay["amount"].tolist() == [after[payee] - before[payee]]
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith(".mt1-fix.")) in ([], [".mt1-fix.lock"])
    with store_of(url, fix) as store:
        now = store.batches(SEASON)
        assert now["batch_id"].tolist() == [batch1, st["batch_id"]]
        assert now["state"].tolist() == ["committed", "committed"]
        assert store.owed(SEASON).set_index(KEY)["paid"].sort_index().equals(after.sort_index())  # paid once


# --------------------------------------------------------------------------- what records and what does not
def test_the_store_is_on_by_default_and_a_what_if_run_opts_out(data, tmp_path):
    """Without a ``settlement:`` section a published run records its batch beside its folder;
    ``--no-settlement`` (as ``settlement: false``) pays the same payees the same full amounts
    and records nothing; a compute-only run records nothing either."""
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    cfg = write_config(tmp_path / "cfg", data)
    whatif = tmp_path / "whatif" / "out"
    assert run(cfg, whatif, "--no-settlement") == 0
    assert manifest(whatif)["settlement"] is None and not default_store_path(whatif).exists()
    plain = table(whatif, "payments.csv")
    assert {"policies", "instalment", "due_date"} <= set(plain.columns)
    full = plain.groupby(KEY)["amount"].sum()
    assert full_amounts(write_config(tmp_path / "cfg", data, settlement=False), tmp_path / "whatif" / "b").equals(full)

    loaded = load_config(cfg)
    assert loaded.settlement is not None and loaded.settlement.url is None  # the default store
    computed = run_batch(loaded, None)
    assert computed.settlement is None and computed.recoveries is None
    assert not any(tmp_path.rglob("panen-settlement.sqlite"))

    out = tmp_path / "runs" / "mt1"
    assert run(cfg, out) == 0
    st = manifest(out)["settlement"]
    assert st["new"] and st["url"].endswith(str(default_store_path(out))) and st["paid"] == int(full.sum())
    with open_store(default_store_path(out)) as store:
        assert store.batches(SEASON)["batch_id"].tolist() == [st["batch_id"]]
    # the same run as a what-if afterwards: pays in full again, the record untouched
    assert run(cfg, tmp_path / "runs" / "what-if", "--no-settlement") == 0
    assert table(tmp_path / "runs" / "what-if", "payments.csv").groupby(KEY)["amount"].sum().equals(full)
    with open_store(default_store_path(out)) as store:
        assert store.batches(SEASON)["batch_id"].tolist() == [st["batch_id"]]


def test_a_backtest_never_records_a_batch(data, tmp_path):
    """A backtest replays past seasons and pays nobody: even with a settlement: section it
    opens no store and records nothing."""
    cfg = write_config(tmp_path / "cfg", data, settlement={})
    out = tmp_path / "runs" / "bt"
    assert main(["backtest", str(cfg), "--years", "2024", "--out", str(out), "--quiet"]) == 0
    assert (out / "manifest.json").exists()
    assert not any(tmp_path.rglob("panen-settlement.sqlite"))


def test_the_settlement_section_is_the_defaults_when_absent_a_section_or_false(data, tmp_path):
    from panen.engine.config import SettlementConfig, load_config
    from panen.engine.errors import ConfigError
    from panen.engine.pipeline.backtest import load_backtest_config

    absent = write_config(tmp_path / "a", data)
    assert load_config(absent).settlement == SettlementConfig()
    assert load_config(write_config(tmp_path / "b", data, settlement={})).settlement == SettlementConfig()
    assert load_config(write_config(tmp_path / "c", data, settlement=None)).settlement == SettlementConfig()
    assert load_config(write_config(tmp_path / "d", data, settlement=False)).settlement is None
    fix = load_config(write_config(tmp_path / "e", data, settlement={"kind": "correction", "corrects": "ab12"}))
    assert (fix.settlement.kind, fix.settlement.corrects) == ("correction", "ab12")
    assert load_backtest_config(absent).settlement is None  # a backtest never records
    for wrong in (True, "off", 0, []):
        with pytest.raises(ConfigError, match=r"settlement: settlement is a section .* or false"):
            load_config(write_config(tmp_path / "f", data, settlement=wrong))
