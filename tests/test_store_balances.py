"""The settlement store's payee hashes and balances, on an SQLite file and a real PostgreSQL server.

The difference reads per-season balances (sorted arrays of payee hash, paid, waived)
instead of grouping the payment rows: these tests hold the balances to the rows they
summarise (after batches, recovery decisions and roll-backs, and when another change left
them stale), the hashes to an independent implementation of their definition, and a store
written by schema 0001 (before hashes and balances) to what it paid once upgraded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panen.engine.errors import StoreError
from panen.engine.infra import staging
from panen.engine.settlement import store as store_module
from panen.engine.settlement.store import PAYEE_KEY, open_store, payee_hashes

SEASON = "2024-MT1"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "settlement.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


def due(rows: list[tuple[str, str, int]], payee_type: str = "farmer") -> pd.DataFrame:
    """``(product, payee, amount)`` rows."""
    product, payee, amount = zip(*rows) if rows else ((), (), ())
    return pd.DataFrame({"product_id": list(product), "payee_type": payee_type, "district_id": "",
                         "payee_id": list(payee), "amount": pd.Series(list(amount), dtype="int64")})


def amounts(frame: pd.DataFrame, column: str = "amount") -> dict[str, int]:
    return {f"{p}/{q}": int(a) for p, q, a in zip(frame["product_id"], frame["payee_id"], frame[column])}


def publish(store, diff, out: Path) -> str:
    batch = diff.batch(run_id="run", created_at="2024-04-30T00:00:00+07:00", inputs={}, out_dir=out)
    store.record_pending(batch, diff.top_ups, diff.recoveries)
    stage = staging.new_stage(out)
    (stage / "manifest.json").write_text(json.dumps({"settlement": {"batch_id": diff.batch_id}}))
    staging.publish(stage, out)
    store.commit(diff.batch_id)
    return diff.batch_id


def stored_balances(store) -> dict[str, tuple[int, int]]:
    """The balances as stored (refused if stale), ``{product/payee: (paid, waived)}`` with payees
    named through the rows' hashes."""
    with store._reading() as conn:
        revision, balanced = conn.execute(sa.select(store_module.seasons_table.c.revision,
                                                    store_module.seasons_table.c.balanced)
                                          .where(store_module.seasons_table.c.season_id == SEASON)).one()
        assert balanced == revision, "the balances are stale"
        balances = store._balances(conn, SEASON, None, revision)
        names = _names(conn)
    return {names[int(h)]: (int(p), int(w)) for bal in balances.values()
            for h, p, w in zip(bal.hash, bal.paid, bal.waived) if p or w}


def _names(conn) -> dict[int, str]:
    p = store_module.payments_table.c
    rows = conn.execute(sa.select(p.payee_hash, p.product_id, p.payee_id).distinct()).all()
    return {int(h): f"{prod}/{payee}" for h, prod, payee in rows}


def from_rows(store) -> dict[str, tuple[int, int]]:
    """What the rows say each payee was paid and waived (:meth:`owed`, the rows' own query)."""
    owed = store.owed(SEASON)
    return {f"{p}/{q}": (int(a), int(w)) for p, q, a, w in
            zip(owed["product_id"], owed["payee_id"], owed["paid"], owed["waived"]) if a or w}


# --------------------------------------------------------------------------- the hashes
def fnv1a_63(data: bytes) -> int:
    """FNV-1a 64-bit as the FNV specification writes it, top bit cleared."""
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return h & (2**63 - 1)


def check_hash(data: bytes) -> int:
    c = 0x6A09E667F3BCC908
    for b in data:
        c = ((c ^ b) * 0x9E3779B97F4A7C15) % 2**64
        c ^= c >> 29
    return c - 2**64 if c >= 2**63 else c


@given(st.lists(st.tuples(st.sampled_from(["rain", "ndvi", "autp"]), st.sampled_from(["policy", "farmer", "group"]),
                          st.text(max_size=6), st.text(min_size=1, max_size=20)), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_payee_hashes_are_fnv1a_and_the_check_hash_of_the_utf8_key(rows):
    frame = pd.DataFrame(rows, columns=PAYEE_KEY)
    hashes, checks = payee_hashes(frame)
    for (product, payee_type, district, payee), h, c in zip(rows, hashes.tolist(), checks.tolist()):
        key = "\x1f".join([product, payee_type, district, payee]).encode("utf-8")
        assert h == fnv1a_63(key) and c == check_hash(key)
    assert (hashes >= 0).all()


def test_payment_ids_say_batch_and_payee_hash(store_url):
    with open_store(store_url) as store:
        d = store.difference(SEASON, due([("rain", "A", 100), ("rain", "é", 50)]))
    key = "\x1f".join(["rain", "farmer", "", "é"]).encode("utf-8")
    assert d.top_ups["payment_id"].tolist() == [f"{d.batch_id}-{fnv1a_63(b'rain' + bytes([31]) + b'farmer' + bytes([31, 31]) + b'A'):016x}",
                                               f"{d.batch_id}-{fnv1a_63(key):016x}"]


def test_two_payees_sharing_a_payee_hash_are_refused_never_netted(store_url, tmp_path, monkeypatch):
    with open_store(store_url) as store:
        real = store_module.payee_hashes
        a_hash = int(real(due([("rain", "A", 0)]))[0][0])

        def colliding(frame):  # every payee's hash is A's; the check hashes still differ
            h, c = real(frame)
            return np.full_like(h, a_hash), c

        monkeypatch.setattr(store_module, "payee_hashes", colliding)
        with pytest.raises(StoreError, match="share a 63-bit payee hash"):
            store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 50)]))
        monkeypatch.undo()
        publish(store, store.difference(SEASON, due([("rain", "A", 100)])), tmp_path / "one")
        monkeypatch.setattr(store_module, "payee_hashes", colliding)
        with pytest.raises(StoreError, match="share a 63-bit payee hash"):  # B is not A though they share a hash
            store.difference(SEASON, due([("rain", "B", 100)]))


# --------------------------------------------------------------------------- balances follow the rows
def test_balances_equal_the_rows_through_batches_decisions_and_roll_backs(store_url, tmp_path):
    with open_store(store_url) as store:
        first = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 80), ("ndvi", "A", 30)]))
        publish(store, first, tmp_path / "b1")
        assert stored_balances(store) == from_rows(store) == {"rain/A": (100, 0), "rain/B": (80, 0),
                                                              "ndvi/A": (30, 0)}
        fix = store.difference(SEASON, due([("rain", "A", 60), ("rain", "B", 90), ("rain", "C", 10)]),
                               kind="correction", corrects=first.batch_id, products=["rain"])
        assert amounts(fix.top_ups) == {"rain/B": 10, "rain/C": 10}
        assert amounts(fix.recoveries) == {"rain/A": 40}
        publish(store, fix, tmp_path / "b2")
        assert stored_balances(store) == from_rows(store) == {"rain/A": (100, 0), "rain/B": (90, 0),
                                                              "rain/C": (10, 0), "ndvi/A": (30, 0)}
        store.decide_recovery(fix.recoveries["recovery_id"].iloc[0], 25)  # 25 came back, 15 waived
        assert stored_balances(store) == from_rows(store) == {"rain/A": (75, 15), "rain/B": (90, 0),
                                                              "rain/C": (10, 0), "ndvi/A": (30, 0)}
        # ndvi A drops out of the due table: the store names A from its rows, and lists the recovery
        again = store.difference(SEASON, due([("rain", "A", 60), ("rain", "B", 90), ("rain", "C", 10)]),
                                 kind="correction", corrects=fix.batch_id, products=["rain", "ndvi"])
        assert again.top_ups.empty
        assert amounts(again.recoveries) == {"ndvi/A": 30}
        assert again.recoveries[["due", "paid"]].values.tolist() == [[0, 30]]
        batch = again.batch(run_id="r3", created_at="2024-06-01", inputs={}, out_dir=tmp_path / "b3")
        store.record_pending(batch, again.top_ups, again.recoveries)
        store.roll_back(again.batch_id)  # its run died before publishing
        assert stored_balances(store) == from_rows(store) == {"rain/A": (75, 15), "rain/B": (90, 0),
                                                              "rain/C": (10, 0), "ndvi/A": (30, 0)}
        later = store.difference(SEASON, due([("rain", "A", 80), ("rain", "B", 90), ("rain", "C", 10)]),
                                 kind="correction", corrects=fix.batch_id, products=["rain"])
        assert amounts(later.top_ups) == {"rain/A": 5} and later.recoveries.empty  # 75 paid once 25 came back


def test_stale_balances_are_rebuilt_from_the_rows(store_url, tmp_path):
    with open_store(store_url) as store:
        first = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 80)]))
        publish(store, first, tmp_path / "b1")
        with store._writing() as conn:  # a change made elsewhere: a payment returned and not re-issued,
            conn.execute(store_module.payments_table.update()  # and the season bumped without the balances
                         .where(store_module.payments_table.c.payee_id == "B").values(status="reissued"))
            store._bump(conn, SEASON)
        fix = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 80)]), kind="correction",
                               corrects=first.batch_id)
        assert amounts(fix.top_ups) == {"rain/B": 80} and fix.recoveries.empty
        publish(store, fix, tmp_path / "b2")  # recording rebuilds them from the rows
        assert stored_balances(store) == from_rows(store) == {"rain/A": (100, 0), "rain/B": (80, 0)}


@given(st.lists(st.lists(st.tuples(st.sampled_from(["rain", "ndvi"]), st.sampled_from("ABCDE"),
                                   st.integers(0, 500)), max_size=8), min_size=1, max_size=4),
       st.lists(st.integers(0, 100), max_size=4))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_balances_equal_the_rows_for_any_sequence_of_batches(tmp_path_factory, batches, decisions):
    """Property (SQLite): after any sequence of batches and recovery decisions, every payee was
    paid at least what is due at the end (money never goes negative), and the balances are the rows."""
    tmp = tmp_path_factory.mktemp("seq")
    with open_store(str(tmp / "s.sqlite")) as store:
        previous = None
        for i, rows in enumerate(batches):
            table = due(list({(p, q): (p, q, a) for p, q, a in rows}.values()))
            d = store.difference(SEASON, table, kind="correction" if previous else "final", corrects=previous,
                                 products=["rain", "ndvi"])
            if d.recorded:
                continue
            previous = publish(store, d, tmp / f"b{i}")
            assert stored_balances(store) == from_rows(store)
            paid = {k: v[0] for k, v in from_rows(store).items()}
            assert all(paid.get(f"{p}/{q}", 0) >= a for p, q, a in zip(table["product_id"], table["payee_id"],
                                                                         table["amount"]))  # all due is paid
            assert all(v >= 0 for v in paid.values())
            for rid, back in zip(store.recoveries(SEASON)["recovery_id"], decisions):
                amount = int(store.recoveries(SEASON, status=None).set_index("recovery_id").loc[rid, "amount"])
                store.decide_recovery(rid, min(back, amount))
            assert stored_balances(store) == from_rows(store)


# --------------------------------------------------------------------------- a store of schema 0001
def only_0001(tmp_path: Path) -> Path:
    """The package's migrations as the panen that wrote schema 0001 had them."""
    folder = tmp_path / "migrations-0001"
    shutil.copytree(store_module.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for f in (folder / "versions").glob("*.py"):
        if not f.name.startswith("0001_"):
            f.unlink()
    return folder


def test_a_store_of_schema_0001_with_batches_is_upgraded_and_pays_only_the_difference(store_url, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setattr(store_module, "MIGRATIONS", only_0001(tmp_path))
    open_store(store_url).close()  # schema 0001, as the earlier panen made it
    monkeypatch.undo()
    engine = sa.create_engine(store_module._engine_url(store_url))
    with engine.begin() as conn:  # two committed batches, written as that panen wrote them
        conn.execute(sa.text("INSERT INTO seasons (season_id, revision) VALUES (:s, 3)"), {"s": SEASON})
        for seq, (bid, kind, corrects) in enumerate([("b1", "final", None), ("b2", "correction", "b1")], 1):
            conn.execute(sa.text(
                "INSERT INTO batches (batch_id, season_id, sequence, kind, state, status, run_id, created_at, inputs, "
                "products, corrects, out_dir, content_sha256) VALUES (:b, :s, :q, :k, 'committed', 'draft', 'r', "
                "'2024-04-30', '{}', '[\"rain\"]', :c, '/nowhere', 'x')"),
                {"b": bid, "s": SEASON, "q": seq, "k": kind, "c": corrects})
        for pid, bid, payee, amount in [("b1-1", "b1", "A", 100), ("b1-2", "b1", "B", 80), ("b2-1", "b2", "B", 20)]:
            conn.execute(sa.text(
                "INSERT INTO payments (payment_id, batch_id, season_id, product_id, payee_type, district_id, payee_id, "
                "amount, status) VALUES (:p, :b, :s, 'rain', 'farmer', '', :q, :a, 'issued')"),
                {"p": pid, "b": bid, "s": SEASON, "q": payee, "a": amount})
        conn.execute(sa.text(  # A was overpaid by 40: 10 came back, 30 waived
            "INSERT INTO recoveries (recovery_id, batch_id, season_id, product_id, payee_type, district_id, payee_id, "
            "amount, status, recovered) VALUES ('b2-r1', 'b2', :s, 'rain', 'farmer', '', 'A', 40, 'decided', 10)"),
            {"s": SEASON})
    engine.dispose()
    with pytest.raises(StoreError, match="revision 0001, older than this panen's"):
        open_store(store_url)
    with open_store(store_url, upgrade=True) as store:
        with store._reading() as conn:
            p = store_module.payments_table.c
            rows = conn.execute(sa.select(p.payee_id, p.payee_hash, p.payee_check).order_by(p.payment_id)).all()
        hashes, checks = payee_hashes(due([("rain", "A", 0), ("rain", "B", 0), ("rain", "B", 0)]))
        assert [(r.payee_hash, r.payee_check) for r in rows] == list(zip(hashes.tolist(), checks.tolist()))
        assert from_rows(store) == {"rain/A": (90, 30), "rain/B": (100, 0)}
        fix = store.difference(SEASON, due([("rain", "A", 100), ("rain", "B", 90), ("rain", "C", 5)]),
                               kind="correction", corrects="b2")
        # A: paid 90 (100 less 10 back), due 100 -> 10; B: paid 100, due 90 -> 10 to recover; C new
        assert amounts(fix.top_ups) == {"rain/A": 10, "rain/C": 5}
        assert amounts(fix.recoveries) == {"rain/B": 10}
        publish(store, fix, tmp_path / "b3")
        assert stored_balances(store) == from_rows(store) == {"rain/A": (100, 30), "rain/B": (100, 0),
                                                              "rain/C": (5, 0)}
