"""In-season settlement: ``panen run CONFIG --as-of DATE``, the on-account batch, and the final that nets against it.

The expectations are hand tables: the rainfall is the same 20 mm every day in every cell,
so each phase's index is known by hand on any day, and each amount follows from the term
sheet alone (World Bank 2011 tick contract: rate = (I − strike) / (exit − strike) for an
excess phase; PMFBY revised operational guidelines para 21: on-account payments are
adjusted at the final settlement). Every store test runs on an SQLite file and on a real
PostgreSQL server (``tests/pgserver.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.settlement.store import open_store

RAIN = 20.0  # mm, every day, every cell
SEASON = {"id": "2024-MT1", "start": "2023-11-01", "end": "2024-03-31", "year": 2024}
#: the excess phase pays (total − 100) / (300 − 100) × 0.5 over days [0, 30); the deficit phase
#: (500 − total) / (500 − 300) × 0.5 over days [0, 20)
PRODUCT = {
    "id": "rain", "trigger": "weather_index", "sum_insured_per_ha": 6_000_000, "anchor": "season_start",
    "season_cap": 1.0,
    "phases": [
        {"name": "excess", "start_day": 0, "end_day": 30, "index": "total", "direction": "above",
         "strike": 100, "exit": 300, "weight": 0.5, "curve": "linear"},
        {"name": "deficit", "start_day": 0, "end_day": 20, "index": "total", "direction": "below",
         "strike": 500, "exit": 300, "weight": 0.5, "curve": "linear"},
    ],
    "terms": {"deductible": {"kind": "straight", "amount": 50_000}},
}
#: farmer → area [ha]: sums insured 3,000,000 / 6,000,000 / 2,220,000
FARMERS = {"F1": 0.5, "F2": 1.0, "F3": 0.37}
#: as of 2023-11-10 (10 days: 200 mm): excess 0.5 × 0.5 = 0.25 guaranteed, the open deficit phase 0
#: → gross 750,000 / 1,500,000 / 555,000, net of the Rp 50,000 deductible:
GUARANTEED = {"F1": 700_000, "F2": 1_450_000, "F3": 505_000}
#: final (600 mm and 400 mm): 0.5 + 0.5 × 0.5 = 0.75 → gross 2,250,000 / 4,500,000 / 1,665,000, net:
FINAL = {"F1": 2_200_000, "F2": 4_450_000, "F3": 1_615_000}


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("inseason")
    generate_demo_region(d, n_districts=4, n_farmers=80, products=("rain",))
    ds = xr.open_zarr(d / "rainfall.zarr").load()
    ds["precip"] = xr.full_like(ds["precip"], RAIN)
    ds.to_netcdf(d / "rain.nc", encoding={v: {"_FillValue": None} for v in ds.data_vars})
    district = str(pd.read_csv(d / "policies.csv", dtype=str)["district_id"].iloc[0])
    pd.DataFrame({"policy_id": [f"P-{f}" for f in FARMERS], "farmer_id": list(FARMERS),
                  "district_id": district, "product_id": "rain",
                  "area_ha": list(FARMERS.values())}).to_csv(d / "register.csv", index=False)
    return d


def write_config(region: Path, folder: Path, settlement: dict | bool = False, product: dict | None = None) -> Path:
    """The hand-table config; ``settlement=False`` (the default here): a what-if run without the store."""
    cfg = {"season": SEASON,
           "inputs": {"districts": {"path": str(region / "districts.gpkg"), "id_column": "district_id"},
                      "rainfall": {"path": str(region / "rain.nc"), "variable": "precip", "units": "mm/day"},
                      "policies": {"path": str(region / "register.csv")}},
           "products": [product or PRODUCT],
           "output": {"dir": "out", "formats": ["csv"], "payments_by": "farmer"}}
    cfg["settlement"] = settlement
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{len(list(folder.glob('run-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--out", str(out), "--quiet", *extra])


def per_farmer(out: Path, name: str = "payments.csv") -> dict[str, int]:
    t = pd.read_csv(out / name, dtype={"payee_id": str}, keep_default_na=False)
    return {k: int(v) for k, v in t.groupby("payee_id")["amount"].sum().items()}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "settlement.sqlite")
    return request.getfixturevalue("postgres_server").new_database()


# --------------------------------------------------------------------------- the guaranteed minimum
def test_an_as_of_run_settles_the_guaranteed_minimum_through_the_ledger(region, tmp_path):
    out = tmp_path / "mid"
    assert run(write_config(region, tmp_path), out, "--as-of", "2023-11-10") == 0
    led = pd.read_csv(out / "payouts.csv", dtype={"farmer_id": str}).set_index("farmer_id")
    assert {f: int(led.loc[f, "net_payout"]) for f in FARMERS} == GUARANTEED
    assert np.allclose(led["payout_rate"], 0.25) and (led["deductible"] == 50_000).all()
    assert per_farmer(out) == GUARANTEED  # without a store: the ledger's net, like any store-less run
    m = manifest(out)
    assert m["as_of"] == "2023-11-10" and m["settlement"] is None
    # the final run on the same data: the full claim, and another run id (the day is part of what was computed)
    assert run(write_config(region, tmp_path), tmp_path / "final") == 0
    assert per_farmer(tmp_path / "final") == FINAL
    assert manifest(tmp_path / "final")["as_of"] is None
    assert manifest(tmp_path / "final")["run_id"] != m["run_id"]


def test_after_every_window_has_closed_the_guaranteed_minimum_is_the_final_payout(region, tmp_path):
    assert run(write_config(region, tmp_path), tmp_path / "late", "--as-of", "2023-12-01") == 0  # last window day 11-30
    assert run(write_config(region, tmp_path), tmp_path / "final") == 0
    late = pd.read_csv(tmp_path / "late" / "payouts.csv")
    final = pd.read_csv(tmp_path / "final" / "payouts.csv")
    assert late[["policy_id", "gross_payout", "net_payout", "status"]].equals(
        final[["policy_id", "gross_payout", "net_payout", "status"]])
    assert np.array_equal(late["payout_rate"], final["payout_rate"])  # the same rate, exactly
    assert per_farmer(tmp_path / "late") == FINAL


def test_the_day_before_a_deficit_window_closes_it_guarantees_nothing_and_on_its_last_day_all(region, tmp_path):
    # the deficit phase's window is 2023-11-01 .. 2023-11-20; the excess phase runs to 11-30 (cap 1)
    open_, closed = tmp_path / "open", tmp_path / "closed"
    assert run(write_config(region, tmp_path), open_, "--as-of", "2023-11-19") == 0  # 380 mm so far
    assert run(write_config(region, tmp_path), closed, "--as-of", "2023-11-20") == 0  # 400 mm: final 0.25
    rate = lambda out: pd.read_csv(out / "payouts.csv")["payout_rate"].iloc[0]  # noqa: E731
    assert rate(open_) == pytest.approx(0.5)  # excess (380 − 100) / 200 → capped 1 × 0.5; deficit open: 0
    assert rate(closed) == pytest.approx(0.75)  # the deficit phase closed: (500 − 400) / 200 × 0.5 added


# --------------------------------------------------------------------------- on account, then the final
def test_on_account_then_final_pays_per_payee_the_share_then_the_rest(region, tmp_path, store_url):
    cfg_oa = write_config(region, tmp_path, {"url": store_url, "on_account_share": 0.5})
    assert run(cfg_oa, tmp_path / "oa", "--as-of", "2023-11-10") == 0
    share = {"F1": 350_000, "F2": 725_000, "F3": 252_500}  # half of GUARANTEED, rounded down
    pay = pd.read_csv(tmp_path / "oa" / "payments.csv", dtype={"payee_id": str}, keep_default_na=False)
    assert per_farmer(tmp_path / "oa") == share
    assert list(pay.columns)[-1] == "recoverable" and not pay["recoverable"].any()
    st = manifest(tmp_path / "oa")["settlement"]
    assert st["kind"] == "on_account" and st["as_of"] == "2023-11-10" and st["on_account_share"] == 0.5
    assert st["paid"] == sum(share.values()) and st["recoverable"] == 0

    # the same in-season run again: the same batch, nothing paid twice
    assert run(cfg_oa, tmp_path / "oa", "--as-of", "2023-11-10", "--force") == 0
    assert manifest(tmp_path / "oa")["settlement"]["new"] is False

    # later in the season, the whole guaranteed minimum: only the increment is paid
    cfg_all = write_config(region, tmp_path, {"url": store_url})
    assert run(cfg_all, tmp_path / "oa2", "--as-of", "2023-11-15") == 0  # 300 mm: excess 1 × 0.5
    later = {"F1": 1_450_000, "F2": 2_950_000, "F3": 1_060_000}  # SI × 0.5 − 50,000
    assert per_farmer(tmp_path / "oa2") == {f: later[f] - share[f] for f in FARMERS}

    # a smaller share on the same day is due less than was paid: never a recovery in season — the payees keep
    # what they were paid; the batch (its due is what the data guarantee, never raised to what was paid) pays nothing
    assert run(write_config(region, tmp_path, {"url": store_url, "on_account_share": 0.25}), tmp_path / "oa3",
               "--as-of", "2023-11-15") == 0
    assert len(pd.read_csv(tmp_path / "oa3" / "recoveries.csv")) == 0
    assert len(pd.read_csv(tmp_path / "oa3" / "payments.csv")) == 0
    st3 = manifest(tmp_path / "oa3")["settlement"]
    assert st3["paid"] == 0 and st3["recovered"] == 0

    # the final nets against everything paid on account, payee by payee
    assert run(write_config(region, tmp_path, {"url": store_url}), tmp_path / "final") == 0
    fin = pd.read_csv(tmp_path / "final" / "payments.csv", dtype={"payee_id": str}, keep_default_na=False)
    assert per_farmer(tmp_path / "final") == {f: FINAL[f] - later[f] for f in FARMERS}
    assert {r.payee_id: int(r.paid_before) for r in fin.itertuples()} == later
    assert len(pd.read_csv(tmp_path / "final" / "recoveries.csv")) == 0
    st = manifest(tmp_path / "final")["settlement"]
    assert st["kind"] == "final" and st["due"] == sum(FINAL.values())
    with open_store(store_url) as s:
        kinds = s.batches("2024-MT1")["kind"].tolist()
    assert kinds == ["on_account", "on_account", "on_account", "final"]


def test_a_final_below_what_was_paid_on_account_lists_a_recovery_never_a_negative_payment(region, tmp_path,
                                                                                          store_url):
    assert run(write_config(region, tmp_path, {"url": store_url}), tmp_path / "oa", "--as-of", "2023-11-15") == 0
    # the final is settled on a revised term sheet (as a corrected product would be) that pays less than
    # the 0.5 paid on account: excess (600 − 250) / (850 − 250) × 0.5 = 0.291666…, deficit 400 mm ≥ 300: 0
    lower = json.loads(json.dumps(PRODUCT))
    lower["phases"][0]["strike"], lower["phases"][0]["exit"] = 250, 850  # excess (600 − 250) / 600 × 0.5
    lower["phases"][1]["strike"], lower["phases"][1]["exit"] = 300, 100  # deficit: 400 mm pays 0
    assert run(write_config(region, tmp_path, {"url": store_url}, product=lower), tmp_path / "final") == 0
    rec = pd.read_csv(tmp_path / "final" / "recoveries.csv", dtype={"payee_id": str}, keep_default_na=False)
    paid = {"F1": 1_450_000, "F2": 2_950_000, "F3": 1_060_000}
    # final rate 350 / 600 × 0.5 = 0.291666…: gross round(SI × rate) − 50,000
    final = {"F1": 875_000 - 50_000, "F2": 1_750_000 - 50_000, "F3": 647_500 - 50_000}
    assert {r.payee_id: int(r.amount) for r in rec.itertuples()} == {f: paid[f] - final[f] for f in FARMERS}
    assert per_farmer(tmp_path / "final") == {}  # nothing paid, nothing negative


# --------------------------------------------------------------------------- hostile --as-of values
@pytest.mark.parametrize("value", ["2024-02-30", "yesterday", "2023-11-1", "20231110", ""])
def test_a_malformed_as_of_exits_2_and_writes_nothing(region, tmp_path, capsys, value):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        run(write_config(region, tmp_path), out, "--as-of", value)
    assert exc.value.code == 2 and "--as-of" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("settlement, as_of, says", [
    (None, "2023-10-31", "before the start of season 2024-MT1"),
    ({"kind": "final"}, "2023-11-10", "an in-season run pays on account only"),
    ({"kind": "on_account"}, None, "needs --as-of"),
])
def test_an_as_of_that_does_not_fit_the_season_or_the_batch_exits_2_and_writes_nothing(region, tmp_path, capsys,
                                                                                       settlement, as_of, says):
    out = tmp_path / "out"
    if settlement is not None:
        settlement = {**settlement, "url": str(tmp_path / "s.sqlite")}
    extra = ("--as-of", as_of) if as_of else ()
    assert run(write_config(region, tmp_path, settlement), out, *extra) == 2
    assert says in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("settlement", [{"on_account_share": 0}, {"on_account_share": 1.5},
                                        {"kind": "final", "on_account_share": 0.5}])
def test_an_on_account_share_outside_0_1_or_on_another_kind_is_a_config_error(region, tmp_path, capsys, settlement):
    assert main(["validate", str(write_config(region, tmp_path, settlement))]) == 2
    assert "on_account_share" in capsys.readouterr().err


def test_days_after_as_of_are_unknown_never_zero_rain(region, tmp_path):
    """A deficit phase open on the day pays nothing yet, though its days so far are far below the strike."""
    product = json.loads(json.dumps(PRODUCT))
    product["phases"] = [{"name": "deficit", "start_day": 0, "end_day": 20, "index": "total", "direction": "below",
                          "strike": 500, "exit": 300, "weight": 1.0, "curve": "linear"}]
    product.pop("terms")
    assert run(write_config(region, tmp_path, product=product), tmp_path / "out", "--as-of", "2023-11-02") == 0
    led = pd.read_csv(tmp_path / "out" / "payouts.csv")
    assert (led["payout_rate"] == 0).all() and (led["net_payout"] == 0).all()  # 40 mm so far would pay 1 as zeros
    assert np.isnan(pd.read_csv(tmp_path / "out" / "district_index.csv")["index_value"]).all()


# --------------------------------------------------------------------------- a PMFBY advance on account
def yield_config(region: Path, folder: Path, harvested: bool, settlement: dict) -> Path:
    """The area-yield cover of the three farmers, notified for mid-season adversity on 2024-01-20 (estimated yield ~0)."""
    district = str(pd.read_csv(region / "register.csv", dtype=str)["district_id"].iloc[0])
    yields = pd.read_csv(region / "yields.csv", dtype={"district_id": str})
    yields = yields[yields["year"] < 2024]
    if harvested:  # a bumper harvest: no claim at all
        yields = pd.concat([yields, pd.DataFrame({"district_id": [district], "year": [2024], "yield_ku_ha": [500.0]})])
    folder.mkdir(parents=True, exist_ok=True)
    yields.to_csv(folder / "yields.csv", index=False)
    pd.DataFrame({"policy_id": [f"Y-{f}" for f in FARMERS], "farmer_id": list(FARMERS), "district_id": district,
                  "product_id": "yield", "area_ha": list(FARMERS.values())}).to_csv(folder / "register.csv", index=False)
    pd.DataFrame({"district_id": [district], "product_id": ["yield"], "kind": ["mid_season_adversity"],
                  "date": ["2024-01-20"], "estimated_yield": [1e-6]}).to_csv(folder / "notifications.csv", index=False)
    cfg = {"season": SEASON,
           "inputs": {"districts": {"path": str(region / "districts.gpkg"), "id_column": "district_id"},
                      "yields": {"path": str(folder / "yields.csv"), "yield_column": "yield_ku_ha", "units": "ku/ha"},
                      "notifications": {"path": str(folder / "notifications.csv"), "units": "ku/ha"},
                      "policies": {"path": str(folder / "register.csv")}},
           "products": [{"id": "yield", "trigger": "area_yield", "sum_insured_per_ha": 6_000_000,
                         "normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.8,
                         "formula": "shortfall", "mid_season_adversity": {"rate": 0.25}}],
           "output": {"dir": "out", "formats": ["csv"], "payments_by": "farmer"},
           "settlement": settlement}
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_a_pmfby_advance_is_paid_on_account_flagged_recoverable_and_recovered_when_the_final_is_lower(
        region, tmp_path, store_url):
    # estimated yield 1e-6 ku/ha: likely claim 100 % (less 3e-8), advance 25 % of the sum insured to the rupiah;
    # nothing is guaranteed (no harvest yet)
    advance = {"F1": 750_000, "F2": 1_500_000, "F3": 555_000}
    before = yield_config(region, tmp_path / "a", harvested=False, settlement={"url": store_url})
    assert run(before, tmp_path / "a" / "out", "--as-of", "2024-01-19") == 0  # not yet notified: nothing due
    assert per_farmer(tmp_path / "a" / "out") == {}
    assert run(before, tmp_path / "a" / "out2", "--as-of", "2024-01-20") == 0
    pay = pd.read_csv(tmp_path / "a" / "out2" / "payments.csv", dtype={"payee_id": str}, keep_default_na=False)
    assert per_farmer(tmp_path / "a" / "out2") == advance
    assert pay["recoverable"].all()
    st = manifest(tmp_path / "a" / "out2")["settlement"]
    assert st["recoverable"] == sum(advance.values()) and st["recoverable_payments"] == 3
    # the harvest is a bumper one: the final claim is 0 and the whole advance is to be recovered, never negative
    final = yield_config(region, tmp_path / "b", harvested=True, settlement={"url": store_url})
    assert run(final, tmp_path / "b" / "out") == 0
    assert per_farmer(tmp_path / "b" / "out") == {}
    rec = pd.read_csv(tmp_path / "b" / "out" / "recoveries.csv", dtype={"payee_id": str}, keep_default_na=False)
    assert {r.payee_id: int(r.amount) for r in rec.itertuples()} == advance
    assert manifest(tmp_path / "b" / "out")["on_account"]["deducted_from_final"] is True
