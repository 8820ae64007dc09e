"""The batch life cycle of the settlement store, on an SQLite file and on a real PostgreSQL server.

draft → approved → exported → confirmed, or cancelled; a bank payment file per export; a
bank return file marks payments confirmed or failed; failed payments are re-issued, once,
by the next export. Hand tables with exact ids and amounts, hostile return files, the
0001 → 0002 upgrade of a store holding batches, and ``panen payments``' exit codes.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from panen.engine.cli import main
from panen.engine.errors import InputError, StoreError
from panen.engine.infra import staging
from panen.engine.settlement import store as store_module
from panen.engine.settlement.bankfiles import EXPORT_COLUMNS
from panen.engine.settlement.store import open_store, payments_table
from test_store import amounts, due, write_output

SEASON = "2024-MT1"
NOW = "2024-05-02T09:00:00+07:00"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A new, empty store on each backend (as in tests/test_store.py)."""
    if request.param == "sqlite":
        return str(tmp_path / "settlement.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture
def store(store_url):
    with open_store(store_url) as s:
        yield s


def publish(store, diff, out: Path) -> str:
    """Record pending, publish the folder, commit (the protocol of panen run)."""
    batch = diff.batch(run_id="run", created_at="2024-04-30T00:00:00+07:00", inputs={"policies": "ab12"}, out_dir=out)
    store.record_pending(batch, diff.top_ups, diff.recoveries)
    stage = staging.new_stage(out)
    write_output(stage, diff)
    staging.publish(stage, out)
    store.commit(diff.batch_id)
    return diff.batch_id


def paid(store, season: str = SEASON) -> dict[str, int]:
    return amounts(store.owed(season), "paid")


def ids(diff) -> dict[str, str]:
    """payee → payment id of a difference's top-ups."""
    return dict(zip(diff.top_ups["payee_id"], diff.top_ups["payment_id"]))


def payments(store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(payments_table).order_by(payments_table.c.payment_id)).mappings().all()
    return pd.DataFrame([dict(r) for r in rows])


def statuses(store) -> dict[str, str]:
    p = payments(store)
    return dict(zip(p["payment_id"], p["status"]))


def batch_status(store, batch_id: str) -> str:
    return store.batches().set_index("batch_id").loc[batch_id, "status"]


def returns(path: Path, rows: list[tuple], header: str = "payment_id,status,reason") -> Path:
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_export(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- the hand table
def test_a_bank_return_with_two_failures_is_reissued_once(store, tmp_path):
    # batch 1 (final): four farmers, exported; the bank pays A and D, fails B and C
    d1 = store.difference(SEASON, due([("rain", "A", 100_000), ("rain", "B", 250_000), ("rain", "C", 75_000),
                                       ("rain", "D", 40_000)]))
    b1 = publish(store, d1, tmp_path / "mt1")
    p1 = ids(d1)
    store.approve(b1)
    e1 = store.export(b1, tmp_path / "bank-1.csv", created_at=NOW)
    assert (e1.new, e1.payments, e1.amount, e1.reissued) == (True, 4, 465_000, 0)
    assert list(read_export(e1.path).columns) == list(EXPORT_COLUMNS)
    assert read_export(e1.path)["payment_id"].tolist() == sorted(p1.values())
    r1 = store.apply_returns(returns(tmp_path / "return-1.csv", [
        (p1["A"], "paid", ""), (p1["B"], "failed", "account closed"), (p1["C"], "REJECTED", "name mismatch"),
        (p1["D"], "confirmed", "")]))
    assert (r1.confirmed, r1.failed, r1.unchanged, r1.batches_confirmed) == (2, 2, 0, [])
    assert statuses(store) == {p1["A"]: "confirmed", p1["B"]: "failed", p1["C"]: "failed", p1["D"]: "confirmed"}
    assert batch_status(store, b1) == "exported"
    # a failed payment still counts as paid: no difference pays B or C again
    assert paid(store) == {"rain/A": 100_000, "rain/B": 250_000, "rain/C": 75_000, "rain/D": 40_000}

    # batch 2 (A's area corrected: +20,000): its export carries the two re-issues, in their own batch
    d2 = store.difference(SEASON, due([("rain", "A", 120_000), ("rain", "B", 250_000), ("rain", "C", 75_000),
                                       ("rain", "D", 40_000)]), kind="correction", corrects=b1)
    assert amounts(d2.top_ups) == {"rain/A": 20_000}
    b2 = publish(store, d2, tmp_path / "mt1-fix")
    store.approve(b2)
    e2 = store.export(b2, tmp_path / "bank-2.csv", created_at=NOW)
    assert (e2.new, e2.payments, e2.amount, e2.reissued) == (True, 3, 345_000, 2)
    rows = read_export(e2.path)
    assert rows[["payment_id", "payee_id", "amount", "reissue_of"]].values.tolist() == [
        [ids(d2)["A"], "A", "20000", ""],  # the batch's own payments, then the re-issues, each by payment id
        *sorted([[f"{p1['B']}-R1", "B", "250000", p1["B"]], [f"{p1['C']}-R1", "C", "75000", p1["C"]]])]
    assert (rows["season_id"] == SEASON).all() and (rows["product_id"] == "rain").all()
    st = statuses(store)
    assert (st[p1["B"]], st[p1["C"]], st[f"{p1['B']}-R1"], st[f"{p1['C']}-R1"]) == \
        ("reissued", "reissued", "issued", "issued")
    listed = store.batch_statuses(SEASON).set_index("batch_id")
    reissue = listed[listed["kind"] == "reissue"]
    assert len(reissue) == 1 and reissue["exported_with"].tolist() == [b2]
    assert reissue[["status", "payments", "paid"]].values.tolist() == [["exported", 2, 325_000]]
    assert listed.loc[b1, ["failed", "reissued", "confirmed"]].tolist() == [0, 2, 2]
    # a re-issued payment counts once: what each payee was paid is unchanged, A's top-up aside
    assert paid(store) == {"rain/A": 120_000, "rain/B": 250_000, "rain/C": 75_000, "rain/D": 40_000}
    reissued_payments = payments(store)
    before = hashlib.sha256(e2.path.read_bytes()).hexdigest()

    # exporting batch 2 again: the same bytes, no payment added
    e2.path.unlink()
    again = store.export(b2, e2.path, created_at="2099-01-01T00:00:00Z")
    assert (again.new, again.sha256, hashlib.sha256(e2.path.read_bytes()).hexdigest()) == (False, e2.sha256, before)
    pd.testing.assert_frame_equal(payments(store), reissued_payments)

    # the second return: B's re-issue paid, C's fails again; a third batch re-issues only C's, as -R2
    r2 = store.apply_returns(returns(tmp_path / "return-2.csv", [
        (ids(d2)["A"], "paid", ""), (f"{p1['B']}-R1", "paid", ""), (f"{p1['C']}-R1", "failed", "account closed")]))
    assert (r2.confirmed, r2.failed, r2.batches_confirmed) == (2, 1, [b2])  # b2: A's top-up reached A
    assert batch_status(store, b1) == "exported"  # C's money has not reached C
    d3 = store.difference(SEASON, due([("rain", "A", 120_000), ("rain", "B", 250_000), ("rain", "C", 75_000),
                                       ("rain", "D", 50_000)]), kind="correction", corrects=b2)
    b3 = publish(store, d3, tmp_path / "mt1-fix2")
    store.approve(b3)
    e3 = store.export(b3, tmp_path / "bank-3.csv", created_at=NOW)
    assert read_export(e3.path)[["payment_id", "payee_id", "amount", "reissue_of"]].values.tolist() == [
        [ids(d3)["D"], "D", "10000", ""],
        [f"{p1['C']}-R2", "C", "75000", f"{p1['C']}-R1"]]
    assert (payments(store)["reissue_of"] == p1["B"]).sum() == 1  # B re-issued exactly once
    assert paid(store) == {"rain/A": 120_000, "rain/B": 250_000, "rain/C": 75_000, "rain/D": 50_000}

    # everything paid: every batch is confirmed (batch 1 through C's chain C → C-R1 → C-R2)
    r3 = store.apply_returns(returns(tmp_path / "return-3.csv", [(ids(d3)["D"], "paid", ""),
                                                                 (f"{p1['C']}-R2", "paid", "")]))
    assert set(r3.batches_confirmed) == set(store.batches()["batch_id"]) - {b2}
    assert set(store.batches()["status"]) == {"confirmed"}
    assert paid(store) == {"rain/A": 120_000, "rain/B": 250_000, "rain/C": 75_000, "rain/D": 50_000}


# --------------------------------------------------------------------------- approve and export
def test_only_an_approved_batch_is_exported(store, tmp_path):
    d = store.difference(SEASON, due([("rain", "A", 100)]))
    batch = d.batch(run_id="run", created_at="t", inputs={}, out_dir=tmp_path / "out")
    store.record_pending(batch, d.top_ups, d.recoveries)
    with pytest.raises(StoreError, match="pending .* only a committed batch is approved"):
        store.approve(d.batch_id)
    store.commit(d.batch_id)
    with pytest.raises(StoreError, match="is draft: only an approved batch is exported \\(approve it first\\)"):
        store.export(d.batch_id, tmp_path / "bank.csv", created_at=NOW)
    assert not (tmp_path / "bank.csv").exists()
    assert store.approve(d.batch_id) == "approved"
    assert store.approve(d.batch_id) == "approved"  # again: no change
    (tmp_path / "bank.csv").write_text("someone else's file\n")
    with pytest.raises(StoreError, match="already exists; a bank payment file is never overwritten"):
        store.export(d.batch_id, tmp_path / "bank.csv", created_at=NOW)
    assert batch_status(store, d.batch_id) == "approved"  # refused: nothing changed
    res = store.export(d.batch_id, tmp_path / "bank-ok.csv", created_at=NOW)
    assert res.new and batch_status(store, d.batch_id) == "exported"
    with pytest.raises(StoreError, match="is exported: only a draft batch is approved"):
        store.approve(d.batch_id)
    with pytest.raises(StoreError, match="not this batch's payment file"):
        store.export(d.batch_id, tmp_path / "bank.csv", created_at=NOW)
    assert store.export(d.batch_id, tmp_path / "bank-ok.csv", created_at=NOW).new is False  # the same file: fine
    with pytest.raises(StoreError, match="no batch 'nope'"):
        store.approve("nope")


def test_a_reissue_batch_is_neither_approved_exported_nor_cancelled_on_its_own(store, tmp_path):
    d1 = store.difference(SEASON, due([("rain", "A", 100)]))
    b1 = publish(store, d1, tmp_path / "a")
    store.approve(b1)
    store.export(b1, tmp_path / "bank-1.csv", created_at=NOW)
    store.apply_returns(returns(tmp_path / "r.csv", [(ids(d1)["A"], "failed", "closed")]))
    d2 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 5)]))
    b2 = publish(store, d2, tmp_path / "b")
    store.approve(b2)
    store.export(b2, tmp_path / "bank-2.csv", created_at=NOW)
    reissue = store.batches().query("kind == 'reissue'")["batch_id"].item()
    for action in (store.approve, store.cancel, lambda b: store.export(b, tmp_path / "x.csv", created_at=NOW)):
        with pytest.raises(StoreError, match=f"exported with batch {b2}"):
            action(reissue)


# --------------------------------------------------------------------------- cancel
def test_a_cancelled_batch_no_longer_counts_as_paid_and_is_never_paid_under_its_id_again(store, tmp_path):
    d1 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300)]))
    b1 = publish(store, d1, tmp_path / "a")
    store.approve(b1)
    assert store.cancel(b1) == "cancelled"
    assert store.cancel(b1) == "cancelled"  # again: no change
    assert set(statuses(store).values()) == {"cancelled"}
    assert paid(store) == {}
    with pytest.raises(StoreError, match="is cancelled: only a draft batch is approved"):
        store.approve(b1)
    with pytest.raises(StoreError, match="is cancelled: only an approved batch is exported \\(it was cancelled\\)"):
        store.export(b1, tmp_path / "bank.csv", created_at=NOW)
    # the same amounts again: a new batch with new payment ids, paying everything
    d2 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300)]))
    assert d2.batch_id != b1 and not d2.recorded
    assert amounts(d2.top_ups) == {"rain/A": 100, "rain/B": 300}
    assert not set(ids(d2).values()) & set(ids(d1).values())
    b2 = publish(store, d2, tmp_path / "b")
    assert store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300)])).batch_id == b2  # rerun: same
    assert paid(store) == {"rain/A": 100, "rain/B": 300}


def test_cancel_rules(store, tmp_path):
    d1 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300)]))
    b1 = publish(store, d1, tmp_path / "a")
    d2 = store.difference(SEASON, due([("rain", "A", 150), ("rain", "B", 200)]))  # B: 100 to recover
    b2 = publish(store, d2, tmp_path / "b")
    with pytest.raises(StoreError, match=f"not the season's latest: batch\\(es\\) {b2} came after it"):
        store.cancel(b1)
    d3 = store.difference(SEASON, due([("rain", "A", 150), ("rain", "B", 250)]))  # restates B: 50 to recover
    b3 = publish(store, d3, tmp_path / "c")
    assert amounts(store.recoveries(SEASON)) == {"rain/B": 50}
    store.cancel(b3)  # b2's recovery is open again, b3's cancelled
    assert amounts(store.recoveries(SEASON)) == {"rain/B": 100}
    assert amounts(store.recoveries(SEASON, status="cancelled")) == {"rain/B": 50}
    store.decide_recovery(store.recoveries(SEASON)["recovery_id"].item(), 100)
    with pytest.raises(StoreError, match="1 recovery decision\\(s\\) a person took"):
        store.cancel(b2)
    store.approve(b1)
    # exported batches are never cancelled; a pending one is its run's to commit or roll back
    d4 = store.difference(SEASON, due([("rain", "A", 150), ("rain", "B", 200), ("rain", "C", 7)]))
    b4 = publish(store, d4, tmp_path / "d")
    store.approve(b4)
    store.export(b4, tmp_path / "bank.csv", created_at=NOW)
    with pytest.raises(StoreError, match="is exported: its payments went to the bank"):
        store.cancel(b4)
    d5 = store.difference(SEASON, due([("rain", "A", 150), ("rain", "B", 200), ("rain", "C", 9)]))
    store.record_pending(d5.batch(run_id="r", created_at="t", inputs={}, out_dir=tmp_path / "e"), d5.top_ups)
    with pytest.raises(StoreError, match="is pending: its run commits it or rolls it back"):
        store.cancel(d5.batch_id)


# --------------------------------------------------------------------------- hostile return files
@pytest.fixture
def exported(store, tmp_path):
    """An exported batch paying A and B, and a draft batch paying C (not exported)."""
    d1 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300)]))
    b1 = publish(store, d1, tmp_path / "a")
    store.approve(b1)
    store.export(b1, tmp_path / "bank.csv", created_at=NOW)
    d2 = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 300), ("rain", "C", 50)]))
    publish(store, d2, tmp_path / "b")
    return {**ids(d1), **ids(d2)}


HOSTILE = {
    "unknown payment": ([("NOPE", "paid", "")], "line 2, column 'payment_id': no payment 'NOPE' in the settlement store"),
    "payment never exported": ([("{A}", "paid", ""), ("{C}", "paid", "")],
                               "line 3, column 'payment_id': payment {C} is of batch .*, which is draft"),
    "duplicate row": ([("{A}", "paid", ""), ("{B}", "paid", ""), ("{A}", "paid", "")],
                      "line 4, column 'payment_id': payment {A} is listed again \\(first on line 2\\)"),
    "conflicting statuses": ([("{A}", "paid", ""), ("{A}", "failed", "closed")],
                             "line 3, column 'payment_id': payment {A} is listed again \\(first on line 2 as paid, "
                             "here failed\\)"),
    "failure without reason": ([("{A}", "paid", ""), ("{B}", "failed", "  ")],
                               "line 3, column 'reason': a failed payment needs a reason"),
    "unknown status": ([("{A}", "pending", "")], "line 2, column 'status': unknown status 'pending'"),
    "wrong field count": ([("{A}", "paid"),], "line 2: 2 field\\(s\\), the header has 3"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_return_file_is_refused_located_and_nothing_is_applied(store, exported, tmp_path, case):
    rows, message = HOSTILE[case]
    rows = [tuple(f.format(**exported) for f in r) for r in rows]
    message = message.format(**exported)
    before = statuses(store)
    with pytest.raises(InputError, match=message) as info:
        store.apply_returns(returns(tmp_path / "return.csv", rows))
    assert str(info.value.problems[0].file).endswith("return.csv")
    assert statuses(store) == before  # all or nothing


@pytest.mark.parametrize("content, message", [
    (b"payment_id,status,reason\nX,paid,\nY,failed,cr\xe9dit refus\xe9\n", "line 3: not UTF-8 text"),
    (b"payment_id,status\nX,paid\n", "line 1: missing column\\(s\\) reason"),
    (b"payment_id,status,reason,amount\nX,paid,,5\n", "line 1, column 'amount': unknown column"),
    (b"payment_id,status,reason,status\n", "line 1, column 'status': column named twice"),
    (b"", "line 1: empty"),
    (b"payment_id,status,reason\nX,paid,\x00\n", "line 2: a NUL character"),
    (b'payment_id,status,reason\n"X,paid,\n', "not valid CSV"),
])
def test_a_return_file_that_is_not_the_documented_csv_is_refused(store, exported, tmp_path, content, message):
    (tmp_path / "return.csv").write_bytes(content)
    before = statuses(store)
    with pytest.raises(InputError, match=message):
        store.apply_returns(tmp_path / "return.csv")
    assert statuses(store) == before


def test_returns_that_contradict_an_earlier_return_are_refused(store, exported, tmp_path):
    a, b = exported["A"], exported["B"]
    first = returns(tmp_path / "first.csv", [(a, "paid", ""), (b, "failed", "account closed")])
    store.apply_returns(first)
    after = statuses(store)
    again = store.apply_returns(first)  # the same file again: no change
    assert (again.confirmed, again.failed, again.unchanged) == (0, 0, 2) and statuses(store) == after
    for rows, message in [([(a, "failed", "reversed")], "line 2, column 'status': payment .* was confirmed by an "
                                                        "earlier return"),
                          ([(b, "paid", "")], "line 2, column 'status': payment .* was returned failed before "
                                              "\\('account closed'\\)"),
                          ([(b, "failed", "other")], "line 2, column 'reason': .* with another reason")]:
        with pytest.raises(InputError, match=message):
            store.apply_returns(returns(tmp_path / "contra.csv", rows))
        assert statuses(store) == after


def test_a_byte_order_mark_blank_lines_and_spaces_are_fine(store, exported, tmp_path):
    path = tmp_path / "return.csv"
    path.write_bytes(b"\xef\xbb\xbf payment_id , status,reason\r\n" + f"{exported['A']}, Paid ,\r\n\r\n".encode())
    assert store.apply_returns(path).confirmed == 1


# --------------------------------------------------------------------------- migration 0001 → 0002
def migrations_0001(tmp_path: Path) -> Path:
    """The package's migrations as panen shipped them with schema 0001 (before the life cycle)."""
    folder = tmp_path / "migrations-0001"
    shutil.copytree(store_module.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for script in (folder / "versions").glob("*.py"):
        if not script.name.startswith("0001_"):
            script.unlink()
    return folder


def test_a_0001_store_holding_batches_is_upgraded_to_0002_and_its_batches_go_through_the_life_cycle(
        store_url, tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MIGRATIONS", migrations_0001(tmp_path))
    open_store(store_url).close()  # schema 0001, as the earlier panen made it
    monkeypatch.undo()
    engine = sa.create_engine(store_module._engine_url(store_url))
    with engine.begin() as conn:  # two committed batches and an open recovery, as that panen wrote them
        conn.execute(sa.text("INSERT INTO seasons (season_id, revision) VALUES (:s, 2)"), {"s": SEASON})
        for seq, (bid, kind, corrects) in enumerate([("b1", "final", None), ("b2", "correction", "b1")], 1):
            conn.execute(sa.text(
                "INSERT INTO batches (batch_id, season_id, sequence, kind, state, status, run_id, created_at, inputs, "
                "products, corrects, out_dir, content_sha256) VALUES (:b, :s, :q, :k, 'committed', 'draft', 'r', "
                "'2024-04-30', '{}', '[\"rain\"]', :c, '/nowhere', 'x')"),
                {"b": bid, "s": SEASON, "q": seq, "k": kind, "c": corrects})
        for pid, bid, payee, amount in [("b1-A", "b1", "A", 100), ("b1-B", "b1", "B", 300), ("b2-A", "b2", "A", 50)]:
            conn.execute(sa.text(
                "INSERT INTO payments (payment_id, batch_id, season_id, product_id, payee_type, district_id, payee_id, "
                "amount, status) VALUES (:p, :b, :s, 'rain', 'farmer', '', :q, :a, 'issued')"),
                {"p": pid, "b": bid, "s": SEASON, "q": payee, "a": amount})
        conn.execute(sa.text(
            "INSERT INTO recoveries (recovery_id, batch_id, season_id, product_id, payee_type, district_id, payee_id, "
            "amount, status) VALUES ('b2-rB', 'b2', :s, 'rain', 'farmer', '', 'B', 100, 'open')"), {"s": SEASON})
    engine.dispose()
    with pytest.raises(StoreError, match="revision 0001, older than this panen's"):
        open_store(store_url)
    with open_store(store_url, upgrade=True) as s:
        assert s.schema_revision() >= "0002"
        assert paid(s) == {"rain/A": 150, "rain/B": 300}
        assert amounts(s.recoveries(SEASON)) == {"rain/B": 100}
        with s.engine.connect() as conn:
            assert "failure_reason" in {c["name"] for c in sa.inspect(conn).get_columns("payments")}
        s.approve("b1")
        s.export("b1", tmp_path / "bank.csv", created_at=NOW)
        s.apply_returns(returns(tmp_path / "r.csv", [("b1-A", "paid", ""), ("b1-B", "failed", "x")]))
        s.cancel("b2")  # the new statuses pass the upgraded CHECK constraints
        assert paid(s) == {"rain/A": 100, "rain/B": 300}
        assert batch_status(s, "b1") == "exported"


# --------------------------------------------------------------------------- panen payments
def test_panen_payments_commands_and_their_exit_codes(store_url, tmp_path, capsys, monkeypatch):
    with open_store(store_url) as s:
        d = s.difference(SEASON, due([("rain", "A", 100_000), ("rain", "B", 250_000)]))
        b = publish(s, d, tmp_path / "a")
    store = ["--store", store_url]
    monkeypatch.delenv("PANEN_STORE", raising=False)

    assert main(["payments", "list", *store]) == 0
    out = capsys.readouterr().out
    assert b in out and "final" in out and "committed" in out and "draft" in out and "350,000" in out
    assert main(["payments", "export", b, "--out", str(tmp_path / "bank.csv"), *store]) == 2
    assert "only an approved batch is exported" in capsys.readouterr().err
    assert main(["payments", "approve", b, *store]) == 0
    assert main(["payments", "export", b, "--out", str(tmp_path / "bank.csv"), *store]) == 0
    out = capsys.readouterr().out
    assert "2 payment(s), Rp 350,000" in out and hashlib.sha256((tmp_path / "bank.csv").read_bytes()).hexdigest() in out
    returns(tmp_path / "bad.csv", [(ids(d)["A"], "paid", ""), ("NOPE", "paid", "")])
    assert main(["payments", "returns", str(tmp_path / "bad.csv"), *store]) == 2
    err = capsys.readouterr().err
    assert "invalid input" in err and "bad.csv, line 3, column 'payment_id': no payment 'NOPE'" in err
    returns(tmp_path / "ok.csv", [(ids(d)["A"], "paid", ""), (ids(d)["B"], "failed", "account closed")])
    assert main(["payments", "returns", str(tmp_path / "ok.csv"), *store]) == 0
    assert "1 payment(s) confirmed, 1 failed" in capsys.readouterr().out
    assert main(["payments", "list", "--season", SEASON, *store]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if b in x)
    assert line.split()[5:11] == ["exported", "2", "350,000", "1", "1", "0"]  # status, payments, Rp, conf., failed
    assert main(["payments", "cancel", b, *store]) == 2
    assert "never cancelled" in capsys.readouterr().err
    assert main(["payments", "approve", "nope", *store]) == 2
    assert main(["payments", "list"]) == 2  # no store named
    assert "pass --store" in capsys.readouterr().err
    assert main(["payments", "list", "--store", str(tmp_path / "typo.sqlite")]) == 2
    assert not (tmp_path / "typo.sqlite").exists()  # a typo never makes a new store
    assert main(["payments"]) == 2
    monkeypatch.setenv("PANEN_STORE", store_url)
    assert main(["payments", "list", "--season", "other"]) == 0
    assert "no batches of season other" in capsys.readouterr().out


def test_panen_payments_finds_the_store_a_run_of_the_config_uses(store_url, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PANEN_STORE", raising=False)
    with open_store(store_url) as s:
        b = publish(s, s.difference(SEASON, due([("rain", "A", 7)])), tmp_path / "a")
    named = tmp_path / "named.yaml"  # settlement.url; the inputs need not exist
    named.write_text(f"season: {{id: {SEASON}}}\ninputs: {{policies: {{path: nowhere.csv}}}}\n"
                     f"settlement: {{url: '{store_url}'}}\n")
    assert main(["payments", "approve", b, "--config", str(named)]) == 0
    assert f"batch {b}: approved" in capsys.readouterr().out
    beside = tmp_path / "cfg" / "run.yaml"  # no url: panen-settlement.sqlite beside output.dir, as panen run
    beside.parent.mkdir()
    beside.write_text("output: {dir: ../out/mt1}\nsettlement: {}\n")
    (tmp_path / "out").mkdir()
    open_store(store_module.default_store_path(tmp_path / "out" / "mt1")).close()
    assert (tmp_path / "out" / "panen-settlement.sqlite").is_file()
    assert main(["payments", "list", "--config", str(beside)]) == 0
    assert "no batches" in capsys.readouterr().out
    beside.write_text("settlement: {kind: bogus}\n")
    assert main(["payments", "list", "--config", str(beside)]) == 2
    assert f"{beside}, settlement.kind:" in capsys.readouterr().err  # located: the file and the key
