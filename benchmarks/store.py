"""Benchmark: the settlement store with a season of N payees (prints figures; not a test).

Measured on an SQLite file (the embedded default) and, with ``--postgresql URL``, on a
PostgreSQL database:

* ``difference`` of a first (final) batch: every payee owed in full;
* ``record`` — ``record_pending`` of its N payments, then ``commit``;
* ``difference`` of a correction in which 1 % of the payees changed (half up, half down),
  against N recorded payments, and its ``record``;
* the SQLite file's size after both batches [bytes per payment row].

Data (deterministic, seed 13): farmer ids ``F`` + 9 digits, amounts Rp 50,000–5,000,000.

Usage: ``python benchmarks/store.py [--n 1000000] [--postgresql postgresql+psycopg://...]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from panen.engine.settlement.store import open_store


def due_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"product_id": "rain", "payee_type": "farmer", "district_id": "",
                         "payee_id": [f"F{i:09d}" for i in range(n)],
                         "amount": rng.integers(50_000, 5_000_001, n, dtype=np.int64)})


def timed(what: str, f):
    t = time.perf_counter()
    out = f()
    print(f"  {what:<44} {time.perf_counter() - t:7.2f} s", flush=True)
    return out


def run(url: str, n: int, out: Path) -> None:
    rng = np.random.default_rng(13)
    due = due_table(n, rng)
    with open_store(url) as store:
        d = timed(f"difference, first batch ({n:,} payees)", lambda: store.difference("S", due))
        batch = d.batch(run_id="r1", created_at="2024-04-30", inputs={}, out_dir=out / "final")
        timed(f"record_pending + commit ({len(d.top_ups):,} payments)",
              lambda: (store.record_pending(batch, d.top_ups, d.recoveries), store.commit(d.batch_id)))
        changed = rng.choice(n, n // 100, replace=False)
        fixed = due.copy()
        fixed.loc[changed, "amount"] += np.where(np.arange(len(changed)) % 2 == 0, 10_000, -10_000)
        c = timed("difference, correction (1 % changed)",
                  lambda: store.difference("S", fixed, kind="correction", corrects=d.batch_id))
        batch = c.batch(run_id="r2", created_at="2024-05-30", inputs={}, out_dir=out / "fix")
        timed(f"record_pending + commit ({len(c.top_ups):,} top-ups, {len(c.recoveries):,} recoveries)",
              lambda: (store.record_pending(batch, c.top_ups, c.recoveries), store.commit(c.batch_id)))
        assert int(store.owed("S")["paid"].sum()) == int(np.maximum(due["amount"], fixed["amount"]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--postgresql", default=None, help="an empty PostgreSQL database's URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="panen-store-bench-") as tmp:
        path = Path(tmp) / "panen-settlement.sqlite"
        print(f"SQLite ({path}):")
        run(str(path), args.n, Path(tmp))
        size = os.path.getsize(path)
        wal = sum(os.path.getsize(p) for p in Path(tmp).glob("panen-settlement.sqlite-*"))
        rows = args.n + args.n // 100 // 2
        print(f"  store size {size / 2**20:,.1f} MiB for {rows:,} payment rows ({size / rows:,.0f} bytes a row, "
              f"indexes included; write-ahead log and its index {wal / 2**20:,.1f} MiB)")
        if args.postgresql:
            print("PostgreSQL:")
            run(args.postgresql, args.n, Path(tmp))


if __name__ == "__main__":
    main()
