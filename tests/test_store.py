"""The settlement store, on an SQLite file and on a real PostgreSQL server.

Hand tables of what a batch pays (top-ups) and lists (recoveries), publishing a batch
twice, schema migrations (up from empty, a newer schema refused, an older one upgraded only
when told), a crash at each step of publishing, and two processes recording batches of one
season at once.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from panen.engine.errors import StoreConflict, StoreError
from panen.engine.infra import outdir, staging
from panen.engine.settlement import store as store_module
from panen.engine.settlement.store import (
    PAYEE_KEY,
    VERSION_TABLE,
    default_store_path,
    metadata,
    open_store,
    published_batch_id,
)

SEASON = "2024-MT1"
#: The newest schema revision of this panen.
HEAD = ScriptDirectory(str(store_module.MIGRATIONS)).get_current_head()


def head_revision() -> str:
    """The newest schema revision of the package's migrations."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(store_module.MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A new, empty store on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "settlement.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def store(store_url):
    with open_store(store_url) as s:
        yield s


def due(rows: list[tuple], payee_type: str = "farmer") -> pd.DataFrame:
    """A due table from ``(product, payee, amount)`` or ``(product, district, payee, amount)`` rows."""
    if rows and len(rows[0]) == 4:
        product, district, payee, amount = zip(*rows)
    else:
        product, payee, amount = zip(*rows) if rows else ((), (), ())
        district = [""] * len(product)
    return pd.DataFrame({"product_id": list(product), "payee_type": payee_type, "district_id": list(district),
                         "payee_id": list(payee), "amount": pd.Series(list(amount), dtype="int64")})


def amounts(frame: pd.DataFrame, column: str = "amount") -> dict[str, int]:
    return {f"{p}/{d + '/' if d else ''}{q}": int(a)
            for p, d, q, a in zip(frame["product_id"], frame["district_id"], frame["payee_id"], frame[column])}


def publish(store, diff, out: Path, *, run_id: str = "run") -> str:
    """The whole publishing protocol: record pending, publish the folder, commit."""
    batch = diff.batch(run_id=run_id, created_at="2024-04-30T00:00:00+07:00", inputs={"policies": "ab12"},
                       out_dir=out)
    store.record_pending(batch, diff.top_ups, diff.recoveries)
    stage = staging.new_stage(out)
    write_output(stage, diff)
    staging.publish(stage, out)
    store.commit(diff.batch_id)
    return diff.batch_id


def write_output(folder: Path, diff) -> None:
    diff.top_ups.to_csv(folder / "payments.csv", index=False)
    (folder / "manifest.json").write_text(json.dumps(
        {"run_id": "run", "panen_version": "test", "settlement": {"batch_id": diff.batch_id}}))


# --------------------------------------------------------------------------- schema and migrations
def test_a_new_store_is_migrated_from_empty_to_exactly_the_schema_of_the_code(store_url):
    with open_store(store_url) as s:
        assert s.schema_revision() == head_revision()
        with s.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), metadata) == []
            tables = set(sa.inspect(conn).get_table_names())
            amount_types = {str(c["type"]) for t in ("payments", "recoveries")
                            for c in sa.inspect(conn).get_columns(t) if c["name"] in ("amount", "recovered")}
    assert tables == {"seasons", "batches", "payments", "recoveries", "balances", VERSION_TABLE}
    assert amount_types == {"BIGINT"}  # money is integer rupiah in the database too
    with open_store(store_url) as again:  # opening it again changes nothing
        assert again.schema_revision() == head_revision()


def test_a_store_written_by_a_newer_panen_is_refused(store_url):
    open_store(store_url).close()
    engine = sa.create_engine(store_module._engine_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema revision 0099, which this panen does not know .* newer panen"):
        open_store(store_url)


def newer_migrations(tmp_path: Path) -> Path:
    """The package's migrations plus a revision 9001 that adds a column (a later panen)."""
    head = head_revision()
    folder = tmp_path / "migrations"
    shutil.copytree(store_module.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "9001_note.py").write_text(
        f'import sqlalchemy as sa\nfrom alembic import op\n\nrevision = "9001"\ndown_revision = "{head}"\n'
        'branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n'
        '    with op.batch_alter_table("batches") as b:\n        b.add_column(sa.Column("note", sa.Text()))\n')
    return folder


def test_an_older_store_is_upgraded_only_when_told_and_keeps_its_batches(store_url, tmp_path, monkeypatch):
    with open_store(store_url) as s:  # written by "this" panen, with one batch
        d = s.difference(SEASON, due([("rain", "A", 100)]))
        publish(s, d, tmp_path / "out")
    head = head_revision()
    monkeypatch.setattr(store_module, "MIGRATIONS", newer_migrations(tmp_path))  # a later panen
    with pytest.raises(StoreError, match=f"revision {head}, older than this panen's 9001: open it with "
                                         f"upgrade=True"):
        open_store(store_url)
    with open_store(store_url, upgrade=True) as s:
        assert s.schema_revision() == "9001"
        with s.engine.connect() as conn:
            assert "note" in {c["name"] for c in sa.inspect(conn).get_columns("batches")}
        assert amounts(s.owed(SEASON), "paid") == {"rain/A": 100}
    monkeypatch.undo()  # and the older panen now refuses the upgraded store
    with pytest.raises(StoreError, match="revision 9001, which this panen does not know"):
        open_store(store_url)


def test_a_database_of_other_tables_is_not_taken_for_a_store(store_url):
    engine = sa.create_engine(store_module._engine_url(store_url))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE payments (id INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"holds tables \(payments\) but is not a panen settlement store"):
        open_store(store_url)


# --------------------------------------------------------------------------- hostile URLs and paths
@pytest.mark.parametrize("url, message", [
    ("", "empty"),
    ("   ", "empty"),
    ("store\x00.sqlite", "control character"),
    (":memory:", "outlives the run"),
    ("sqlite://", "outlives the run"),
    ("sqlite:///:memory:", "outlives the run"),
    ("sqlite:///x.sqlite?mode=ro", "without options"),
    ("mysql://u@localhost/panen", "unsupported database 'mysql'"),
    ("postgresql+psycopg2://u@localhost/panen", "through psycopg 3"),
    ("postgresql+psycopg://u@localhost", "name the database"),
    ("no such scheme://x", "not a database URL"),
])
def test_urls_panen_cannot_use_are_refused_with_the_reason(url, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_paths_that_are_not_a_store_file_are_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "missing" / "store.sqlite")
    register = tmp_path / "policies.csv"
    register.write_text("policy_id,farmer_id\nP1,F1\n")
    with pytest.raises(StoreError, match="not an SQLite database"):
        open_store(register)
    assert register.read_text() == "policy_id,farmer_id\nP1,F1\n"  # untouched
    with pytest.raises(StoreError, match="not an SQLite database"):
        open_store(f"sqlite:///{register}")


def test_an_unreachable_server_is_named_without_its_password():
    with pytest.raises(StoreError, match="cannot open the settlement store") as info:
        open_store("postgresql://panen:s3cret-pw@127.0.0.1:1/panen")
    assert "s3cret-pw" not in str(info.value) and "***" in str(info.value)


def test_the_embedded_store_is_a_private_file_beside_the_output_folders(tmp_path):
    path = default_store_path(tmp_path / "out" / "mt1")
    assert path == tmp_path / "out" / "panen-settlement.sqlite"
    path.parent.mkdir()
    open_store(path).close()
    assert path.stat().st_mode & 0o077 == 0  # names farmers and what they were paid
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --------------------------------------------------------------------------- what a batch pays: hand tables
def test_the_first_batch_pays_everything_due_and_nothing_to_payees_due_nothing(store):
    d = store.difference(SEASON, due([("rain", "A", 378_795), ("rain", "B", 0), ("yield", "A", 140_980)]))
    assert amounts(d.top_ups) == {"rain/A": 378_795, "yield/A": 140_980}
    assert d.recoveries.empty and d.basis == 0
    assert d.top_ups["amount"].dtype == "int64"
    assert all(i.startswith(f"{d.batch_id}-") and len(i) == 33 for i in d.top_ups["payment_id"])
    assert d.top_ups["payment_id"].is_unique


def test_a_higher_amount_is_topped_up_with_a_new_payment_id(store, tmp_path):
    first = store.difference(SEASON, due([("rain", "A", 32_012_696), ("rain", "B", 500_000)]))
    publish(store, first, tmp_path / "final")
    # the register's area of farmer A corrected: the example, 32,012,696 -> 32,391,491
    fix = store.difference(SEASON, due([("rain", "A", 32_391_491), ("rain", "B", 500_000)]), kind="correction",
                           corrects=first.batch_id)
    assert amounts(fix.top_ups) == {"rain/A": 378_795}
    assert amounts(fix.top_ups, "paid") == {"rain/A": 32_012_696}
    assert fix.recoveries.empty
    assert fix.batch_id != first.batch_id
    assert set(fix.top_ups["payment_id"]).isdisjoint(first.top_ups["payment_id"])
    publish(store, fix, tmp_path / "fix")
    assert amounts(store.owed(SEASON), "paid") == {"rain/A": 32_391_491, "rain/B": 500_000}


def test_a_lower_amount_is_a_recovery_never_a_negative_payment(store, tmp_path):
    first = store.difference(SEASON, due([("rain", "A", 100_000), ("rain", "B", 60_000), ("rain", "C", 10_000)]))
    publish(store, first, tmp_path / "final")
    # final rainfall replaces the preliminary product: A's district pays less, C is due nothing (no row)
    fix = store.difference(SEASON, due([("rain", "A", 75_000), ("rain", "B", 70_000)]), kind="correction",
                           corrects=first.batch_id)
    assert amounts(fix.top_ups) == {"rain/B": 10_000}
    assert amounts(fix.recoveries) == {"rain/A": 25_000, "rain/C": 10_000}
    assert (fix.top_ups["amount"] > 0).all() and (fix.recoveries["amount"] > 0).all()
    publish(store, fix, tmp_path / "fix")
    assert amounts(store.owed(SEASON), "paid") == {"rain/A": 100_000, "rain/B": 70_000, "rain/C": 10_000}
    assert amounts(store.recoveries(SEASON)) == {"rain/A": 25_000, "rain/C": 10_000}


def test_nothing_owed_pays_nothing_and_lists_nothing(store, tmp_path):
    table = due([("rain", "A", 100_000), ("ndvi", "A", 721_459)])
    publish(store, store.difference(SEASON, table), tmp_path / "final")
    again = store.difference(SEASON, table, kind="correction", corrects=store.batches(SEASON)["batch_id"][0])
    assert again.top_ups.empty and again.recoveries.empty


def test_groups_are_payees_within_their_district(store, tmp_path):
    first = store.difference(SEASON, due([("autp", "3201", "Tani Maju", 2_220_000)], "group"))
    publish(store, first, tmp_path / "final")
    d = store.difference(SEASON, due([("autp", "3201", "Tani Maju", 2_220_000),
                                      ("autp", "3202", "Tani Maju", 1_000_000)], "group"))
    assert amounts(d.top_ups) == {"autp/3202/Tani Maju": 1_000_000}


def test_a_batch_leaves_the_products_it_does_not_settle_alone(store, tmp_path):
    first = store.difference(SEASON, due([("rain", "A", 100), ("yield", "A", 200)]))
    publish(store, first, tmp_path / "final")
    rain_only = store.difference(SEASON, due([("rain", "A", 100)]), kind="correction", corrects=first.batch_id)
    assert rain_only.recoveries.empty  # yield/A is not due 0: yield is not settled by this batch
    # a product whose every payee is now due nothing is named in products=
    nothing = store.difference(SEASON, due([("rain", "A", 100)]), kind="correction", corrects=first.batch_id,
                               products=["yield"])
    assert amounts(nothing.recoveries) == {"yield/A": 200}


def test_recovery_decisions_change_what_later_batches_pay(store, tmp_path):
    first = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 100)]))
    publish(store, first, tmp_path / "b1")
    fix = store.difference(SEASON, due([("rain", "A", 60), ("rain", "B", 60)]), kind="correction",
                           corrects=first.batch_id)
    publish(store, fix, tmp_path / "b2")
    rec = store.recoveries(SEASON).set_index("payee_id")["recovery_id"]
    store.decide_recovery(rec["A"], 40)  # A paid the 40 back
    store.decide_recovery(rec["B"], 0)  # B's 40 is waived
    assert store.recoveries(SEASON).empty
    owed = store.owed(SEASON).set_index("payee_id")
    assert owed.loc["A", "paid"] == 60 and owed.loc["A", "waived"] == 0
    assert owed.loc["B", "paid"] == 100 and owed.loc["B", "waived"] == 40
    up = store.difference(SEASON, due([("rain", "A", 80), ("rain", "B", 80)]), kind="correction",
                          corrects=fix.batch_id)
    assert amounts(up.top_ups) == {"rain/A": 20}  # B already holds 100 >= 80
    assert up.recoveries.empty  # B's overpayment was waived: not listed again
    down = store.difference(SEASON, due([("rain", "A", 60), ("rain", "B", 50)]), kind="correction",
                            corrects=fix.batch_id)
    assert amounts(down.recoveries) == {"rain/B": 10}  # only what goes beyond the waiver
    with pytest.raises(StoreError, match="only an open recovery"):
        store.decide_recovery(rec["A"], 0)
    with pytest.raises(StoreError, match="integer rupiah"):
        store.decide_recovery(rec["A"], 1.0)


def test_a_later_batch_restates_open_recoveries(store, tmp_path):
    first = store.difference(SEASON, due([("rain", "A", 100)]))
    publish(store, first, tmp_path / "b1")
    fix = store.difference(SEASON, due([("rain", "A", 60)]), kind="correction", corrects=first.batch_id)
    publish(store, fix, tmp_path / "b2")
    fix2 = store.difference(SEASON, due([("rain", "A", 90)]), kind="correction", corrects=fix.batch_id)
    assert amounts(fix2.recoveries) == {"rain/A": 10} and fix2.top_ups.empty
    publish(store, fix2, tmp_path / "b3")
    assert amounts(store.recoveries(SEASON)) == {"rain/A": 10}  # the 40 is superseded by the 10
    everything = store.recoveries(SEASON, status=None)
    assert sorted(everything["status"]) == ["open", "superseded"]


@pytest.mark.parametrize("table, message", [
    (due([("rain", "A", 1)]).assign(amount=[100.0]), "integer rupiah, got float64"),
    (due([("rain", "A", -5)]), "zero or more"),
    (due([("rain", "A", 1)]).assign(amount=pd.Series([2**63], dtype="uint64")), "does not fit a 64-bit"),
    (due([("rain", "A", 1)]).assign(amount=pd.Series([1], dtype="Int64").where([False])), "missing"),
    (due([("rain", "A", 1), ("rain", "A", 2)]), "listed twice"),
    (due([("rain", "A", 1)]).assign(payee_type="household"), "payee_type must be one of"),
    (due([("rain", "A", 1)], "group"), "district_id is empty for a group"),
    (due([("rain", "A", 1)]).drop(columns="payee_id"), "missing column"),
])
def test_due_tables_that_are_not_money_per_payee_are_refused(store, table, message):
    with pytest.raises(StoreError, match=message):
        store.difference(SEASON, table)


def test_a_season_paid_by_farmer_cannot_be_paid_again_by_group(store, tmp_path):
    publish(store, store.difference(SEASON, due([("autp", "F1", 100)])), tmp_path / "b1")
    with pytest.raises(StoreError, match="paid by farmer before, this batch pays by group"):
        store.difference(SEASON, due([("autp", "3201", "G1", 100)], "group"))


def test_a_correction_names_a_committed_batch_of_its_season(store, tmp_path):
    with pytest.raises(StoreError, match="names the batch it corrects"):
        store.difference(SEASON, due([("rain", "A", 1)]), kind="correction")
    with pytest.raises(StoreError, match="no batch 'nope'"):
        store.difference(SEASON, due([("rain", "A", 1)]), kind="correction", corrects="nope")
    d = store.difference(SEASON, due([("rain", "A", 1)]))
    store.record_pending(d.batch(run_id="r", created_at="t", inputs={}, out_dir=tmp_path / "o"), d.top_ups)
    with pytest.raises(StoreError, match="still pending"):
        store.difference(SEASON, due([("rain", "A", 2)]), kind="correction", corrects=d.batch_id)


# --------------------------------------------------------------------------- the same batch twice
def test_publishing_the_same_batch_twice_pays_nothing_the_second_time(store, tmp_path):
    table = due([("rain", "A", 378_795), ("yield", "A", 140_980)])
    d = store.difference(SEASON, table)
    batch_id = publish(store, d, tmp_path / "mt1")
    again = store.difference(SEASON, table)  # the same inputs run again, into another folder
    assert again.recorded and again.batch_id == batch_id
    pd.testing.assert_frame_equal(again.top_ups, d.top_ups)  # the rerun writes the same payment file
    outcome = store.record_pending(again.batch(run_id="run", created_at="later", inputs={}, out_dir=tmp_path / "b"),
                                   again.top_ups, again.recoveries)
    assert not outcome.new and outcome.state == "committed"
    stored = store.batches(SEASON)
    assert len(stored) == 1 and stored["paid"].tolist() == [519_775]
    assert amounts(store.owed(SEASON), "paid") == {"rain/A": 378_795, "yield/A": 140_980}


def test_recording_a_batch_twice_before_commit_records_it_once(store, tmp_path):
    d = store.difference(SEASON, due([("rain", "A", 100)]))
    batch = d.batch(run_id="r", created_at="t", inputs={"policies": "ab"}, out_dir=tmp_path / "o")
    assert store.record_pending(batch, d.top_ups, d.recoveries).new
    assert not store.record_pending(batch, d.top_ups, d.recoveries).new
    with pytest.raises(StoreError, match="already recorded with other payments"):
        store.record_pending(batch, d.top_ups.assign(amount=[99]), d.recoveries)
    elsewhere = d.batch(run_id="r", created_at="t", inputs={}, out_dir=tmp_path / "other")
    with pytest.raises(StoreConflict, match="being published by another run into"):
        store.record_pending(elsewhere, d.top_ups, d.recoveries)  # the same batch, while the first run publishes
    store.commit(d.batch_id)
    assert not store.record_pending(elsewhere, d.top_ups, d.recoveries).new  # once published: the same batch
    assert store.batches(SEASON)["paid"].tolist() == [100]


def test_payments_that_are_not_the_batchs_are_refused(store, tmp_path):
    d = store.difference(SEASON, due([("rain", "A", 100)]))
    batch = d.batch(run_id="r", created_at="t", inputs={}, out_dir=tmp_path / "o")
    with pytest.raises(StoreError, match="not of batch"):
        store.record_pending(batch, d.top_ups.assign(payment_id="elsewhere-1"))
    with pytest.raises(StoreError, match="positive"):
        store.record_pending(batch, d.top_ups.assign(amount=[0]))
    with pytest.raises(StoreError, match="outside the batch's products"):
        store.record_pending(batch, d.top_ups.assign(product_id="ndvi"))
    assert store.batches().empty


def test_a_batch_computed_before_another_was_recorded_is_refused(store, tmp_path):
    a = store.difference(SEASON, due([("rain", "A", 100)]))
    b = store.difference(SEASON, due([("rain", "A", 120)]))  # computed at the same revision
    publish(store, a, tmp_path / "a")
    with pytest.raises(StoreConflict, match="compute the difference again"):
        store.record_pending(b.batch(run_id="r", created_at="t", inputs={}, out_dir=tmp_path / "b"), b.top_ups)
    b = store.difference(SEASON, due([("rain", "A", 120)]))
    assert amounts(b.top_ups) == {"rain/A": 20}


# --------------------------------------------------------------------------- crash at each step of publishing
STEPS = ["before_record", "recorded", "moved_aside", "published", "committed"]


@pytest.mark.parametrize("crash_at", STEPS)
def test_a_crash_at_any_step_of_publishing_leaves_store_and_folder_consistent(store_url, tmp_path, crash_at):
    out = tmp_path / "mt1"
    with open_store(store_url) as s:  # an earlier batch is already published in the folder
        first = s.difference(SEASON, due([("rain", "A", 100)]))
        publish(s, first, out)
    table = due([("rain", "A", 150), ("rain", "B", 70)])
    run = open_store(store_url)  # the run that dies
    d = run.difference(SEASON, table, kind="correction", corrects=first.batch_id)
    if crash_at != "before_record":
        run.record_pending(d.batch(run_id="r2", created_at="t", inputs={}, out_dir=out), d.top_ups, d.recoveries)
        stage = staging.new_stage(out)
        write_output(stage, d)
        if crash_at == "moved_aside":  # killed between publishing's two renames
            out.rename(out.parent / f".{out.name}.old-99999")
        elif crash_at in ("published", "committed"):
            staging.publish(stage, out)
            if crash_at == "committed":
                run.commit(d.batch_id)
    run.engine.dispose()  # the process is gone: nothing more from it

    with outdir.OutputLock(out), open_store(store_url) as s:  # the next run into the folder
        outdir.recover(out)
        notes = s.recover(held=out)
        held = published_batch_id(out)
        states = dict(zip(s.batches(SEASON)["batch_id"], s.batches(SEASON)["state"]))
        assert set(states.values()) == {"committed"}  # nothing left pending
        assert held in states and (d.batch_id in states) == (held == d.batch_id)
        if crash_at == "published":
            assert notes == [f"committed batch {d.batch_id}: {out} holds it (its run stopped after publishing, "
                             f"before recording the commit)"]
        elif crash_at in ("recorded", "moved_aside"):
            assert notes == [f"rolled back batch {d.batch_id}: its run stopped before publishing it into {out}"]
        else:
            assert notes == []
        # the next batch pays exactly what is still owed: never twice, never short
        again = s.difference(SEASON, table, kind="correction", corrects=held)
        publish(s, again, out)
        assert amounts(s.owed(SEASON), "paid") == {"rain/A": 150, "rain/B": 70}


def test_recover_leaves_the_batches_of_a_folder_another_run_holds(store, tmp_path):
    out = tmp_path / "mt1"
    d = store.difference(SEASON, due([("rain", "A", 100)]))
    store.record_pending(d.batch(run_id="r", created_at="t", inputs={}, out_dir=out), d.top_ups)
    with outdir.OutputLock(out):  # that run is alive
        notes = store.recover()
    assert len(notes) == 1 and "left pending" in notes[0] and "in use by another panen run" in notes[0]
    assert store.batches()["state"].tolist() == ["pending"]
    assert store.recover() == [f"rolled back batch {d.batch_id}: its run stopped before publishing it into {out}"]
    assert store.batches().empty and store.owed(SEASON).empty


# --------------------------------------------------------------------------- two processes at once
def _record_concurrently(url: str, amount: int, out: str, barrier, results) -> None:
    """One run: compute the difference, wait for the other run to have computed its own, record, commit;
    on a conflict compute again (as a run would)."""
    with open_store(url) as s:
        table = due([("rain", "A", amount), ("rain", "B", 50)])
        d = s.difference(SEASON, table)
        barrier.wait(timeout=60)
        outcome = []
        for _ in range(5):
            try:
                recorded = s.record_pending(d.batch(run_id=f"r{amount}", created_at="t", inputs={}, out_dir=out),
                                            d.top_ups, d.recoveries)
            except StoreConflict:
                outcome.append("conflict")
                latest = s.batches(SEASON)["batch_id"].iloc[-1]
                d = s.difference(SEASON, table, kind="correction", corrects=latest)
                continue
            s.commit(d.batch_id)
            outcome.append("recorded" if recorded.new else "existing")
            break
        results.put((amount, outcome, int(d.top_ups["amount"].sum()), int(d.recoveries["amount"].sum())))


def test_two_processes_recording_batches_of_one_season_never_both_pay(store_url, tmp_path):
    open_store(store_url).close()
    ctx = multiprocessing.get_context("fork")  # the children need nothing imported anew
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [ctx.Process(target=_record_concurrently, args=(store_url, amount, str(tmp_path / f"o{amount}"),
                                                              barrier, results)) for amount in (100, 120)]
    for w in workers:
        w.start()
    outcomes = {}
    for _ in workers:
        amount, outcome, paid, listed = results.get(timeout=120)
        outcomes[amount] = (outcome, paid, listed)
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    # both computed their difference at the same revision: exactly one recorded first, the other had to recompute
    assert sorted(o[0] for o in outcomes.values()) == [["conflict", "recorded"], ["recorded"]]
    with open_store(store_url) as s:
        owed = amounts(s.owed(SEASON), "paid")
        assert owed == {"rain/A": 120, "rain/B": 50}  # never 220 (100 + 120) or 100 for B
        batches = s.batches(SEASON)
        assert batches["paid"].sum() == 170 and (batches["state"] == "committed").all()
        winner = 100 if outcomes[100][0] == ["recorded"] else 120
        if winner == 120:  # 120 paid first; the 100-run's recomputed batch lists 20 for recovery
            assert outcomes[100][1:] == (0, 20)
        else:  # 100 paid first; the 120-run's recomputed batch tops up 20
            assert outcomes[120][1:] == (20, 0)


def test_payee_key_columns_are_the_ledgers_payment_columns():
    from panen.engine.settlement.ledger import payments
    ledger = pd.DataFrame({"policy_id": ["P1"], "farmer_id": ["F1"], "district_id": ["3201"], "product_id": ["rain"],
                           "net_payout": pd.Series([100], dtype="int64"), "group_id": ["G"]})
    table = payments(ledger, by="group", season_id=SEASON)
    assert set(PAYEE_KEY) <= set(table.columns)  # payments.csv rows are the store's payee keys as they are
