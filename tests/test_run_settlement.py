"""``panen run`` with a settlement store (``settlement:``): each batch pays only the difference.

The expectations are independent of the store: what each payee is due comes from a run
*without* a store (its ``payments.csv`` pays every payee in full), so a batch's top-up must
be the difference of two such runs' amounts, payee by payee, and an overpayment must be
listed for recovery, never paid negative (PMFBY revised operational guidelines, para 21:
on-account claims are adjusted at final settlement; a correction pays the difference).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.settlement.store import default_store_path, open_store

REPO = Path(__file__).resolve().parents[1]
KEY = ["product_id", "payee_type", "payee_id"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settle_data")
    generate_demo_region(d, n_districts=8, n_farmers=300)
    return d


def write_config(folder: Path, data: Path, policies: Path | None = None, **settlement) -> Path:
    """The demo's area-yield product on the small region; ``off=True`` is a what-if run (``settlement: false``)."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg.pop("adjuster")
    cfg["products"] = [p for p in cfg["products"] if p["id"] == "yield"]
    cfg["inputs"] = {k: {**v, "path": str(data / Path(v["path"]).name)}
                     for k, v in cfg["inputs"].items() if k in ("districts", "yields", "policies")}
    if policies is not None:
        cfg["inputs"]["policies"]["path"] = str(policies)
    cfg["output"] = {"dir": "out", "formats": ["parquet", "csv"], "payments_by": "farmer"}
    if settlement.pop("off", False):
        cfg["settlement"] = False  # the store is on by default; a what-if run opts out
    else:
        cfg["settlement"] = {k: v for k, v in settlement.items() if v is not None}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{len(list(folder.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), "--quiet", *extra])


def table(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"payee_id": str, "district_id": str, "payment_id": str,
                                          "recovery_id": str}, keep_default_na=False)


def due(out: Path) -> pd.Series:
    """Per payee, the full amount a store-less run pays [Rp]."""
    p = table(out, "payments.csv")
    return p.groupby(KEY)["amount"].sum()


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def changed_register(data: Path, tmp: Path, farmer_factor: float) -> tuple[Path, str]:
    """The register with the area of one paid farmer's yield policy scaled by ``farmer_factor``."""
    tmp.mkdir(parents=True, exist_ok=True)
    plain = write_config(tmp / "plain", data, off=True)
    assert run(plain, tmp / "plain" / "out") == 0
    paid = due(tmp / "plain" / "out")
    farmer = paid.index[len(paid) // 2][2]
    reg = pd.read_csv(data / "policies.csv", dtype=str, keep_default_na=False)
    row = (reg["farmer_id"] == farmer) & (reg["product_id"] == "yield")
    assert row.sum() == 1
    reg.loc[row, "area_ha"] = f"{float(reg.loc[row, 'area_ha'].iloc[0]) * farmer_factor:.2f}"
    path = tmp / "policies.csv"
    reg.to_csv(path, index=False)
    return path, farmer


# --------------------------------------------------------------------------- first batch and identical reruns
def test_the_first_batch_pays_every_payee_in_full_and_a_rerun_is_the_same_batch(data, tmp_path):
    assert run(write_config(tmp_path / "plain", data, off=True), tmp_path / "plain" / "out") == 0
    assert not default_store_path(tmp_path / "plain" / "out").exists()  # a what-if run records nothing
    full = due(tmp_path / "plain" / "out")
    cfg = write_config(tmp_path, data)
    first, elsewhere = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    assert run(cfg, first) == 0
    pay = table(first, "payments.csv")
    assert list(pay.columns) == ["payment_id", "season_id", "product_id", "payee_type", "payee_id", "district_id",
                                 "due", "paid_before", "amount"]
    assert pay.set_index(KEY)["amount"].sort_index().equals(full.sort_index())  # nothing paid before: all of it
    assert (pay["paid_before"] == 0).all() and (pay["due"] == pay["amount"]).all()
    assert len(table(first, "recoveries.csv")) == 0
    st = manifest(first)["settlement"]
    assert st["new"] and st["kind"] == "final" and st["corrects"] is None
    assert st["paid"] == st["due"] == int(full.sum()) and st["payments"] == len(full)
    assert pay["payment_id"].str.startswith(st["batch_id"] + "-").all()
    # the ledger does not change with a store: payouts.* are the store-less run's, byte for byte
    for name in ("payouts.csv", "payouts.parquet", "summary.csv"):
        assert (first / name).read_bytes() == (tmp_path / "plain" / "out" / name).read_bytes()

    # the same inputs again (replacing the folder, or into another one): the same batch, byte for byte,
    # recorded once: its payment ids are the ones already recorded, so nothing is paid twice
    names = ("payments.csv", "recoveries.csv", "payouts.csv", "payouts.parquet", "summary.csv")
    published = {name: (first / name).read_bytes() for name in names}
    assert run(cfg, first, "--force") == 0
    assert run(cfg, elsewhere) == 0
    for out in (first, elsewhere):
        assert manifest(out)["settlement"]["batch_id"] == st["batch_id"]
        assert manifest(out)["settlement"]["new"] is False
        assert {name: (out / name).read_bytes() for name in names} == published
    with open_store(default_store_path(first)) as store:
        batches = store.batches("2024-MT1")
        assert batches["batch_id"].tolist() == [st["batch_id"]]
        assert batches["state"].tolist() == ["committed"]
        assert int(store.owed("2024-MT1")["paid"].sum()) == int(full.sum())  # paid once


# --------------------------------------------------------------------------- corrections
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_corrected_area_pays_only_the_difference_as_a_new_payment(data, tmp_path, backend, request):
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_server").new_database()
    policies, farmer = changed_register(data, tmp_path / "changed", 2.0)
    before = due(tmp_path / "changed" / "plain" / "out")
    assert run(write_config(tmp_path / "fixed", data, policies, off=True), tmp_path / "fixed" / "out") == 0
    after = due(tmp_path / "fixed" / "out")
    diff = after.sub(before, fill_value=0)
    assert (diff[diff != 0].index.get_level_values("payee_id") == farmer).all() and (diff > 0).any()

    first = tmp_path / "runs" / "mt1"
    assert run(write_config(tmp_path, data, url=url), first) == 0
    batch1 = manifest(first)["settlement"]["batch_id"]
    old_ids = set(table(first, "payments.csv")["payment_id"])
    fix = tmp_path / "runs" / "mt1-fix"
    assert run(write_config(tmp_path, data, policies, url=url, kind="correction", corrects=batch1), fix) == 0
    pay = table(fix, "payments.csv")
    st = manifest(fix)["settlement"]
    assert st["kind"] == "correction" and st["corrects"] == batch1 and st["batch_id"] != batch1
    # only the corrected farmer, only the difference: the two store-less runs' amounts apart
    assert pay["payee_id"].tolist() == [farmer]
    row = pay.iloc[0]
    assert row["amount"] == diff[("yield", "farmer", farmer)] > 0
    assert row["due"] == after[("yield", "farmer", farmer)] and row["paid_before"] == before[("yield", "farmer", farmer)]
    assert row["payment_id"] not in old_ids and row["payment_id"].startswith(st["batch_id"] + "-")
    assert len(table(fix, "recoveries.csv")) == 0
    assert st["due"] == int(after.sum()) and st["paid"] == int(row["amount"])
    with open_store(url or default_store_path(fix)) as store:
        assert int(store.owed("2024-MT1")["paid"].sum()) == int(after.sum())  # the season paid what is due, once
    # the correction again: the same batch, nothing paid twice
    assert run(write_config(tmp_path, data, policies, url=url, kind="correction", corrects=batch1), fix, "--force") == 0
    assert table(fix, "payments.csv")["payment_id"].tolist() == [row["payment_id"]]
    with open_store(url or default_store_path(fix)) as store:
        assert len(store.batches("2024-MT1")) == 2
        assert int(store.owed("2024-MT1")["paid"].sum()) == int(after.sum())


def test_a_lowered_amount_is_listed_for_recovery_never_paid_negative(data, tmp_path):
    policies, farmer = changed_register(data, tmp_path / "changed", 0.5)
    before = due(tmp_path / "changed" / "plain" / "out")
    assert run(write_config(tmp_path / "fixed", data, policies, off=True), tmp_path / "fixed" / "out") == 0
    after = due(tmp_path / "fixed" / "out")
    over = before[("yield", "farmer", farmer)] - after.get(("yield", "farmer", farmer), 0)
    assert over > 0

    first = tmp_path / "runs" / "mt1"
    assert run(write_config(tmp_path, data), first) == 0
    fix = tmp_path / "runs" / "mt1-fix"
    batch1 = manifest(first)["settlement"]["batch_id"]
    assert run(write_config(tmp_path, data, policies, kind="correction", corrects=batch1), fix) == 0
    assert len(table(fix, "payments.csv")) == 0  # nobody is owed more
    rec = table(fix, "recoveries.csv")
    assert rec["payee_id"].tolist() == [farmer]
    assert rec["amount"].tolist() == [over] and (rec["amount"] > 0).all()
    assert rec["recovery_id"].iloc[0].startswith(manifest(fix)["settlement"]["batch_id"] + "-")
    st = manifest(fix)["settlement"]
    assert (st["paid"], st["recoveries"], st["recovered"]) == (0, 1, over)


# --------------------------------------------------------------------------- config and errors
def test_settlement_config_errors_and_an_unusable_store_exit_2(data, tmp_path, capsys):
    assert run(write_config(tmp_path, data, kind="correction"), tmp_path / "runs" / "a") == 2
    assert "corrects" in capsys.readouterr().err
    bad = tmp_path / "not-a-store.sqlite"
    bad.write_text("policy_id,amount\n")
    assert run(write_config(tmp_path, data, url=str(bad)), tmp_path / "runs" / "b") == 2
    err = capsys.readouterr().err
    assert "settlement store" in err and "not an SQLite database" in err
    assert not (tmp_path / "runs" / "b").exists()
    # an on-account batch pays on_account.csv's amounts, which a run does not settle through the store yet
    assert run(write_config(tmp_path, data, kind="on_account"), tmp_path / "runs" / "d") == 2
    assert "settlement.kind" in capsys.readouterr().err
    # a correction of a batch the store does not hold
    assert run(write_config(tmp_path, data, kind="correction", corrects="0123456789abcdef"),
               tmp_path / "runs" / "c") == 2
    assert "no batch" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "c").exists()


def test_a_product_paid_in_instalments_is_refused_with_a_store(data, tmp_path, capsys):
    cfg = write_config(tmp_path, data)
    doc = yaml.safe_load(cfg.read_text())
    doc["products"][0]["terms"] = {"instalments": {"count": 2, "every_months": 1}}
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert run(cfg, tmp_path / "runs" / "a") == 2
    assert "instalments" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "a").exists()


def test_an_explicit_url_names_the_store_and_the_manifest_shows_it(data, tmp_path):
    url = f"sqlite:///{tmp_path / 'books' / 'season.sqlite'}"
    (tmp_path / "books").mkdir()
    out = tmp_path / "runs" / "a"
    assert run(write_config(tmp_path, data, url=url), out) == 0
    assert manifest(out)["settlement"]["url"].endswith(str(tmp_path / "books" / "season.sqlite"))
    assert (tmp_path / "books" / "season.sqlite").exists() and not default_store_path(out).exists()


# --------------------------------------------------------------------------- killed between record and commit
def start(config: Path, out: Path, pause: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANEN_")}
    env["PANEN_TEST_PAUSE_AT"] = pause
    return subprocess.Popen([sys.executable, "-m", "panen.engine.cli", "run", str(config), "--out", str(out),
                             "--force", "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def killed_at(config: Path, out: Path, pause: str) -> None:
    proc = start(config, out, pause)
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
@pytest.mark.parametrize("pause, published", [("recorded", False), ("published_batch", True)])
def test_a_run_killed_between_recording_and_committing_is_resolved_by_the_next_run(data, tmp_path, pause,
                                                                                  published):
    cfg = write_config(tmp_path, data)
    out = tmp_path / "runs" / "a"
    killed_at(cfg, out, pause)
    with open_store(default_store_path(out)) as store:
        left = store.batches("2024-MT1")
    assert left["state"].tolist() == ["pending"]  # recorded before publishing
    batch = left["batch_id"].iloc[0]
    assert out.exists() == published  # a first run: nothing, or the whole new folder
    if published:
        assert manifest(out)["settlement"]["batch_id"] == batch

    assert run(cfg, out, "--force") == 0  # recovers first, then publishes the same batch
    notes = manifest(out)["notes"]
    word = "committed" if published else "rolled back"
    assert any(n.startswith(f"{word} batch {batch}") for n in notes), notes
    with open_store(default_store_path(out)) as store:
        now = store.batches("2024-MT1")
        assert now["batch_id"].tolist() == [batch] and now["state"].tolist() == ["committed"]
        assert int(store.owed("2024-MT1")["paid"].sum()) == int(table(out, "payments.csv")["amount"].sum())
    assert manifest(out)["settlement"]["batch_id"] == batch
    shutil.rmtree(out)
