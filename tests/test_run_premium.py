"""Premiums in the seasonal run: index term sheets with ``premium:`` and the named-peril wording, one rule.

Every amount is recomputed here by hand in integer arithmetic (half-up: ``(2·a + b) // (2·b)``
for a / b) from the register and the term sheet: rate on the sum insured, 10 % no-claim
discount after one claim-free year (the source document's car-insurance renewal), policy
fee and stamp duty neither discounted nor subsidised (UU No. 10/2020 on bea meterai;
Permentan No. 40/2015 subsidises premium), subsidy share per product (the AUTP wording's
80 %; none configured: 0).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RAIN_PREMIUM = {"rate": 0.025, "subsidy_share": 0.5, "policy_fee": 10_000, "stamp_duty": 10_000,
                "no_claim_discount": [0.10, 0.20], "tariff": {"floor": 0.01, "ceiling": 0.05}}


def half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    from panen.datasets.synthetic import generate_demo_region

    d = tmp_path_factory.mktemp("premium")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    pol = pd.read_csv(d / "data" / "policies.csv", dtype=str)
    # claim-free years 0, 1, 2, 3 and unknown (empty) in turn
    pol["no_claim_years"] = [("0", "1", "2", "3", "")[i % 5] for i in range(len(pol))]
    pol.to_csv(d / "data" / "policies.csv", index=False)
    return d


def config(region: Path, folder: Path, *, premium: dict | None, yield_premium: dict | None = None) -> Path:
    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data = region / "data"
    rain = next(p for p in demo["products"] if p["id"] == "rain")
    yld = next(p for p in demo["products"] if p["id"] == "yield")
    cfg = {
        "season": demo["season"],
        "inputs": {"districts": {"path": str(data / "districts.gpkg"), "id_column": "district_id"},
                   "rainfall": {"path": str(data / "rainfall.zarr"), "units": "mm/day"},
                   "yields": {"path": str(data / "yields.csv"), "yield_column": "yield_ku_ha", "units": "ku/ha"},
                   "policies": {"path": str(data / "policies.csv")},
                   "assessments": {"path": str(data / "assessments.csv")}},
        "products": [{**rain, **({"premium": premium} if premium else {})},
                     {**yld, **({"premium": yield_premium} if yield_premium else {})}],
        "adjuster": {"wording": str(ROOT / "configs" / "autp.yaml")},
        "output": {"dir": str(folder / "out")},
    }
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "run.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def run(region, tmp_path_factory):
    """One `panen run`: rain with the full premium section, yield with a rate only, and AUTP; (out dir, stdout)."""
    from panen.engine.cli import main

    folder = tmp_path_factory.mktemp("run")
    p = config(region, folder, premium=RAIN_PREMIUM, yield_premium={"rate": 0.02})
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", str(p), "--quiet"]) == 0
    return folder / "out", buf.getvalue()


def test_every_index_policy_pays_the_hand_computed_premium(run, region):
    out, _ = run
    prem = pd.read_csv(out / "premiums.csv", dtype={"policy_id": str, "tariff_flag": str},
                       keep_default_na=False)
    payouts = pd.read_csv(out / "payouts.csv", dtype={"policy_id": str})
    reg = pd.read_csv(region / "data" / "policies.csv", dtype={"policy_id": str, "no_claim_years": str},
                      keep_default_na=False)
    rain = prem[prem["product_id"] == "rain"].set_index("policy_id")
    si = payouts[payouts["product_id"] == "rain"].set_index("policy_id")["sum_insured"]
    assert len(rain) == len(si) == (reg["product_id"] == "rain").sum()
    years = reg.set_index("policy_id")["no_claim_years"]
    for pid, row in rain.iterrows():
        s = int(si[pid])
        gross = half_up(s * 25, 1000)                                # 2.5 %
        y = years[pid]
        pct = {"": 0, "0": 0, "1": 10, "2": 20, "3": 20}[y]          # last step holds beyond the schedule
        discount = half_up(gross * pct, 100)
        net = gross - discount
        subsidy = half_up(net * 5, 10)                               # 50 % of the rate premium only
        assert (row["sum_insured"], row["gross_premium"], row["no_claim_discount"]) == (s, gross, discount), pid
        assert row["charges"] == 20_000                              # fee + stamp duty, per policy
        assert row["premium"] == net + 20_000
        assert row["subsidy"] == subsidy
        assert row["farmer_share"] == net - subsidy + 20_000
        assert row["tariff_flag"] == ""


def test_a_term_sheet_without_a_subsidy_share_gets_no_subsidy(run):
    out, _ = run
    prem = pd.read_csv(out / "premiums.csv")
    y = prem[prem["product_id"] == "yield"]
    assert len(y) > 0
    assert (y["subsidy"] == 0).all() and (y["farmer_share"] == y["premium"]).all()
    assert (y["premium"] == [half_up(int(s) * 2, 100) for s in y["sum_insured"]]).all()


def test_the_named_peril_premium_is_the_wordings_through_the_same_rule(run, region):
    """AUTP: 3 % of Rp 6,000,000/ha on the insured area capped at 2 ha per farmer, 80 % subsidy."""
    from panen.engine.perils.adjuster import load_wording, premium

    out, _ = run
    prem = pd.read_csv(out / "premiums.csv", dtype={"policy_id": str})
    autp = prem[prem["product_id"] == "autp"].set_index("policy_id")
    reg = pd.read_csv(region / "data" / "policies.csv", dtype={"policy_id": str})
    reg = reg[reg["product_id"] == "autp"]
    expected = premium(reg["area_ha"].to_numpy(float), load_wording(ROOT / "configs" / "autp.yaml"),
                       farmer_id=reg["farmer_id"].astype(str)).set_index(reg["policy_id"].to_numpy())
    for c in ("premium", "subsidy", "farmer_share"):
        assert (autp[c] == expected.loc[autp.index, c]).all()
    whole = expected["insured_area_ha"] == 1.0
    if whole.any():
        assert set(autp.loc[expected.index[whole], "premium"]) == {180_000}
        assert set(autp.loc[expected.index[whole], "subsidy"]) == {144_000}
    assert (autp["no_claim_discount"] == 0).all() and (autp["charges"] == 0).all()


def test_totals_reconcile_to_the_rupiah_in_every_output(run):
    out, stdout = run
    prem = pd.read_csv(out / "premiums.csv")
    assert (prem["subsidy"] + prem["farmer_share"] == prem["premium"]).all()
    assert (prem["gross_premium"] - prem["no_claim_discount"] + prem["charges"] == prem["premium"]).all()
    sums = prem.groupby("product_id")[["premium", "subsidy", "farmer_share"]].sum()
    manifest = json.loads((out / "manifest.json").read_text())
    by = {r["product_id"]: r for r in manifest["by_product"]}
    assert set(sums.index) == {"rain", "yield", "autp"}
    for pid, row in sums.iterrows():
        assert (by[pid]["premium"], by[pid]["subsidy"], by[pid]["farmer_share"]) == tuple(int(v) for v in row)
        line = (f"{pid} premium Rp {int(row['premium']):,} = government subsidy Rp {int(row['subsidy']):,} "
                f"+ farmers' share Rp {int(row['farmer_share']):,}")
        assert line in stdout
    html = (out / "report.html").read_text()
    assert f"{int(sums.loc['rain', 'premium']):,}" in html
    assert f"{int(sums['premium'].sum()):,}" in html  # the all-covers total


def test_no_premium_section_means_no_premium_rows_for_that_product(region, tmp_path):
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    res = run_batch(load_config(config(region, tmp_path, premium=None)), None)
    assert set(res.premiums["product_id"]) == {"autp"}
    by = res.products.set_index("product_id")
    assert np.isnan(by.loc["rain", "premium"]) and np.isnan(by.loc["yield", "premium"])
    assert by.loc["autp", "premium"] == res.premiums["premium"].sum()


@pytest.mark.parametrize("bad, message", [
    ({"rate": 0.06, "tariff": {"ceiling": 0.05}}, "products[0].premium: product 'rain': rate 0.06 is outside"),
    ({"rate": 0.03, "stamp_duty": -1}, "products[0].premium.stamp_duty"),
    ({"rate": 0.03, "rebate": 1}, "products[0].premium.rebate"),
])
def test_a_bad_premium_section_is_a_located_config_error(region, tmp_path, bad, message):
    from panen.engine.config import load_config
    from panen.engine.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config(config(region, tmp_path, premium=bad))
    assert message in str(err.value)


def test_a_bad_no_claim_years_is_rejected_with_its_reason(region, tmp_path):
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    data = tmp_path / "data"
    data.mkdir()
    for f in (region / "data").iterdir():
        (data / f.name).symlink_to(f)
    (data / "policies.csv").unlink()
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str, keep_default_na=False)
    pol.loc[0, "no_claim_years"] = "-1"
    pol.loc[1, "no_claim_years"] = "1.5"
    pol.to_csv(data / "policies.csv", index=False)
    res = run_batch(load_config(config(tmp_path, tmp_path / "run", premium=RAIN_PREMIUM)), None)
    rej = res.rejects.set_index("policy_id")
    for pid in pol.loc[:1, "policy_id"]:
        assert rej.loc[pid, "reason"] == "bad_no_claim_years" and rej.loc[pid, "column"] == "no_claim_years"
    assert "no_claim_years must be a whole number" in rej.loc[pol.loc[0, "policy_id"], "message"]
