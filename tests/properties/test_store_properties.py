"""Settlement store invariants over random sequences of batches (SQLite file).

Whatever the order of on-account, final and correction amounts, after every batch: each
payee has been paid the most it was ever due (money is never clawed back by a negative
payment), its open recovery is exactly what it holds beyond what is due now, and the
batch's payments add up to what the store says was paid.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panen.engine.settlement.store import open_store

PAYEES = ["A", "B", "C"]
#: Memory-backed where there is one: the invariants are about amounts, not about fsync.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def due_table(amounts: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"product_id": "rain", "payee_type": "farmer", "district_id": "", "payee_id": PAYEES,
                         "amount": pd.Series(amounts, dtype="int64")})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.integers(0, 1_000_000), min_size=3, max_size=3), min_size=1, max_size=4))
def test_paid_is_the_highest_amount_ever_due_and_recoveries_the_excess(dues):
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp, open_store(Path(tmp) / "s.sqlite") as store:
        highest = [0, 0, 0]
        previous = None
        for i, amounts in enumerate(dues):
            d = store.difference("S", due_table(amounts), kind="final" if previous is None else "correction",
                                 corrects=previous)
            assert (d.top_ups["amount"] > 0).all() and (d.recoveries["amount"] > 0).all()
            batch = d.batch(run_id=f"r{i}", created_at="t", inputs={}, out_dir=Path(tmp) / f"o{i}")
            store.record_pending(batch, d.top_ups, d.recoveries)
            store.commit(d.batch_id)
            previous = d.batch_id
            highest = [max(h, a) for h, a in zip(highest, amounts)]
            owed = store.owed("S", due_table(amounts)).set_index("payee_id")
            assert owed["paid"].tolist() == highest
            open_ = store.recoveries("S").set_index("payee_id")["amount"].to_dict()
            assert open_ == {p: h - a for p, h, a in zip(PAYEES, highest, amounts) if h > a}
        assert int(store.batches("S")["paid"].sum()) == sum(highest)
