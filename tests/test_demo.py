"""``panen demo``: the season paid in two batches, in season then final, through the settlement store.

The expectation is the money's own identity, not the store's word: what the in-season
batch paid plus what the final batch paid is, payee by payee, what the final run is due
(the ledger's net payouts), and a second demo pays nothing new.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from panen.engine.cli import main
from panen.engine.settlement.store import open_store

REPO = Path(__file__).resolve().parents[1]
KEY = ["product_id", "payee_type", "district_id", "payee_id"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    (root / "configs").mkdir()
    for name in ("demo.yaml", "autp.yaml"):
        shutil.copy(REPO / "configs" / name, root / "configs" / name)
    assert main(["demo", "--config", str(root / "configs" / "demo.yaml"), "--out", str(root / "out" / "demo"),
                 "--quiet"]) == 0
    return root / "out"


def payments(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "payments.csv", dtype={k: str for k in KEY}, keep_default_na=False)


def test_the_in_season_and_the_final_batch_together_pay_what_is_due(demo):
    inseason, final = payments(demo / "demo-inseason"), payments(demo / "demo")
    assert json.loads((demo / "demo-inseason" / "manifest.json").read_text())["as_of"] == "2024-01-15"
    paid = pd.concat([inseason, final]).groupby(KEY)["amount"].sum()
    due = final.set_index(KEY)["due"]
    # every payee the final pays: paid on account + the top-up = due
    assert (paid.loc[due.index] == due).all()
    # payees paid in full on account are not in the final's payments: their due was reached already
    assert int(paid.sum()) == int(final["amount"].sum() + inseason["amount"].sum())
    ledger = pd.read_csv(demo / "demo" / "payouts.csv", usecols=["net_payout"])
    assert int(paid.sum()) == int(ledger["net_payout"].sum())  # 29,051,129,733: the season, to the rupiah
    with open_store(demo / "panen-settlement.sqlite") as store:
        batches = store.batches()
    assert batches["kind"].tolist() == ["on_account", "final"]
    assert batches["paid"].tolist() == [int(inseason["amount"].sum()), int(final["amount"].sum())]


def test_a_second_demo_is_the_same_two_batches(demo):
    before = {p.name: (p / "payments.csv").read_bytes() for p in (demo / "demo-inseason", demo / "demo")}
    assert main(["demo", "--config", str(demo.parent / "configs" / "demo.yaml"), "--out", str(demo / "demo"),
                 "--force", "--quiet"]) == 0
    for p in (demo / "demo-inseason", demo / "demo"):
        assert (p / "payments.csv").read_bytes() == before[p.name]
        assert json.loads((p / "manifest.json").read_text())["settlement"]["new"] is False
    with open_store(demo / "panen-settlement.sqlite") as store:
        assert len(store.batches()) == 2
