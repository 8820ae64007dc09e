"""One settlement path for every cover: AUTP-only, no-polygon, index + AUTP, plugins through run and backtest."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from panen.datasets.synthetic import generate_demo_region
from panen.engine.cli import main
from panen.engine.config import load_config
from panen.engine.errors import PluginError
from panen.engine.pipeline.backtest import backtest
from panen.engine.pipeline.run import run_batch
from panen.engine.registry import readers, triggers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pipeline")
    generate_demo_region(d / "data", n_districts=8, n_farmers=1500)
    return d


def config(region: Path, folder: Path, *, keep_inputs=None, products=("rain", "yield", "ndvi"), adjuster=True,
           name="run.yaml", edit=None) -> Path:
    """The demo config on the small region: only the named inputs, products and (optionally) the adjuster."""
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    for k in cfg["inputs"]:
        cfg["inputs"][k]["path"] = str(region / cfg["inputs"][k]["path"].replace("../demo_data/", "data/"))
    if keep_inputs is not None:
        cfg["inputs"] = {k: v for k, v in cfg["inputs"].items() if k in keep_inputs}
    cfg["products"] = [p for p in cfg["products"] if p["id"] in products]
    if not products:
        cfg["products"] = []
    if adjuster:
        cfg["adjuster"]["wording"] = str(REPO / "configs" / "autp.yaml")
    else:
        cfg.pop("adjuster")
    cfg["output"]["dir"] = str(folder / "out")
    if edit:
        edit(cfg)
    p = folder / name
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return p


def ledger(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "payouts.parquet").to_pandas()


@pytest.fixture(scope="module")
def full(region, tmp_path_factory):
    """Every cover: three index products and AUTP, with polygons."""
    folder = tmp_path_factory.mktemp("full")
    return run_batch(load_config(config(region, folder)), folder / "out")


# --------------------------------------------------------------------------- index + AUTP through one path
def test_payments_equal_each_payees_net_payouts_over_every_cover(full):
    led = ledger(full.out_dir)
    assert set(led["product_id"]) == {"rain", "yield", "ndvi", "autp"}
    pay = pd.read_csv(full.out_dir / "payments.csv", dtype=str)
    pay["amount"] = pay["amount"].astype(np.int64)
    # the demo pays by group: a payee is a group within its district
    paying = led[led["net_payout"] > 0].astype({"district_id": str, "group_id": str})
    net = paying.groupby(["district_id", "group_id"])["net_payout"].sum()
    paid = pay.groupby(["district_id", "payee_id"])["amount"].sum()
    paid.index.names = net.index.names
    pd.testing.assert_series_equal(paid.sort_index(), net.astype(np.int64).sort_index(), check_names=False)
    autp = led[led["product_id"] == "autp"]
    claims = pd.read_csv(full.out_dir / "autp_claims.csv")
    assert int(autp["net_payout"].sum()) == int(claims.loc[claims["decision"] == "paid", "indemnity"].sum()) > 0
    assert int(pay.loc[pay["product_id"] == "autp", "amount"].sum()) == int(autp["net_payout"].sum())


def test_summary_totals_include_the_named_peril_cover(full):
    s = pd.read_csv(full.out_dir / "summary.csv", dtype={"district_id": str})
    led = ledger(full.out_dir)
    total = s[s["level"] == "total"].iloc[0]
    assert int(total["net_payout"]) == int(led["net_payout"].sum())
    assert int(s.loc[(s["level"] == "district") & (s["product_id"] == "autp"), "net_payout"].sum()) == \
        int(led.loc[led["product_id"] == "autp", "net_payout"].sum())


def test_named_peril_policies_say_paid_declined_or_not_assessed_with_a_reason(full):
    led = ledger(full.out_dir)
    autp = led[led["product_id"] == "autp"].astype({"status": str, "reason": object})
    claims = pd.read_csv(full.out_dir / "autp_claims.csv", dtype={"policy_id": str})
    assessed = set(claims["policy_id"])
    paid_policies = set(claims.loc[claims["decision"] == "paid", "policy_id"])
    status = autp.set_index("policy_id")["status"]
    assert set(status[status == "paid"].index) == paid_policies
    not_assessed = set(autp["policy_id"]) - assessed
    assert (status[list(not_assessed)] == "not_assessed").all()
    assert (autp.loc[autp["status"] == "not_assessed", "reason"] == "no_assessment").all()
    declined = autp[autp["status"] == "declined"]
    assert len(declined) and declined["reason"].notna().all()
    # a declined policy's reason lists its plots' primary reasons
    one = declined.iloc[0]
    reasons = set(claims.loc[claims["policy_id"] == one["policy_id"], "reason"])
    assert set(one["reason"].split(";")) == reasons
    assert (declined["net_payout"] == 0).all() and (declined["payout_rate"] == 0).all()


def test_group_payments_do_not_merge_groups_of_one_name_in_two_districts(region, tmp_path):
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol["group_id"] = "Tani Maju"  # a name that repeats across Indonesia
    pol.to_csv(tmp_path / "policies.csv", index=False)

    def edit(cfg):
        cfg["inputs"]["policies"]["path"] = str(tmp_path / "policies.csv")

    res = run_batch(load_config(config(region, tmp_path, products=("yield",), edit=edit)), tmp_path / "out")
    pay = pd.read_csv(res.out_dir / "payments.csv", dtype=str)
    paying = ledger(res.out_dir).query("net_payout > 0")
    for pid, d in paying.groupby("product_id", observed=True):
        rows = pay[pay["product_id"] == pid]
        assert len(rows) == d["district_id"].nunique() and rows["payment_id"].is_unique
        assert set(rows["payee_id"]) == {"Tani Maju"} and set(rows["district_id"]) == set(d["district_id"].astype(str))


# --------------------------------------------------------------------------- AUTP only
@pytest.mark.parametrize("products", [(), None])
def test_an_autp_only_batch_pays_through_the_ledger(region, tmp_path, products):
    def edit(cfg):
        if products is None:
            cfg.pop("products")

    path = config(region, tmp_path, keep_inputs=("policies", "assessments"), products=(), edit=edit)
    assert main(["validate", str(path)]) == 0
    res = run_batch(load_config(path), tmp_path / "out")
    led = ledger(res.out_dir)
    assert set(led["product_id"]) == {"autp"} and len(led) == res.counts["policies_valid"] > 0
    pay = pd.read_csv(res.out_dir / "payments.csv")
    claims = pd.read_csv(res.out_dir / "autp_claims.csv")
    indemnity = int(claims.loc[claims["decision"] == "paid", "indemnity"].sum())
    assert int(pay["amount"].sum()) == int(led["net_payout"].sum()) == indemnity > 0
    # every policy of another product in the register is a reject (not configured), none is dropped
    assert res.counts["policies_valid"] + res.counts["policies_rejected"] == res.counts["policies_read"]
    assert (res.out_dir / "report.html").is_file() and not (res.out_dir / "comparison.csv").exists()


# --------------------------------------------------------------------------- no polygons
def test_area_yield_settles_without_polygons_as_with_them(region, tmp_path, full):
    path = config(region, tmp_path, keep_inputs=("yields", "policies"), products=("yield",), adjuster=False)
    assert main(["validate", str(path)]) == 0
    res = run_batch(load_config(path), tmp_path / "out")
    led = ledger(res.out_dir)
    with_polygons = ledger(full.out_dir)
    with_polygons = with_polygons[with_polygons["product_id"] == "yield"]
    cols = ["policy_id", "sum_insured", "payout_rate", "gross_payout", "net_payout"]
    pd.testing.assert_frame_equal(led[cols].reset_index(drop=True), with_polygons[cols].reset_index(drop=True))
    rej = pd.read_csv(res.out_dir / "rejects.csv")
    assert set(rej["reason"]) == {"unknown_product"} and res.counts["policies_valid"] == len(with_polygons)


def test_without_polygons_a_district_unknown_to_the_yields_table_is_rejected_as_such(region, tmp_path):
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol = pol[pol["product_id"].isin(["yield", "autp"])].copy()
    pol.loc[pol.index[0], "district_id"] = "9999"
    pol.to_csv(tmp_path / "policies.csv", index=False)

    def edit(cfg):
        cfg["inputs"]["policies"]["path"] = str(tmp_path / "policies.csv")

    path = config(region, tmp_path, keep_inputs=("yields", "policies", "assessments"), products=("yield",), edit=edit)
    res = run_batch(load_config(path), tmp_path / "out")
    rej = pd.read_csv(res.out_dir / "rejects.csv", dtype=str)
    row = rej[rej["district_id"] == "9999"]
    assert len(row) == 1 and row["reason"].item() == "unknown_district"
    assert "is not in the yields table (inputs.yields)" in row["message"].item()
    led = ledger(res.out_dir)
    assert {"yield", "autp"} == set(led["product_id"])
    assert int(led.loc[led["product_id"] == "autp", "net_payout"].sum()) > 0  # AUTP needs no polygons either


def test_a_gridded_product_without_polygons_fails_at_validation(region, tmp_path, capsys):
    path = config(region, tmp_path, keep_inputs=("rainfall", "policies"), products=("rain",), adjuster=False)
    assert main(["validate", str(path)]) == 2
    assert "inputs.districts (district polygons) is required to reduce the gridded input 'rainfall'" in \
        capsys.readouterr().err


def test_a_short_yield_history_is_flagged_with_its_reason(region, tmp_path):
    y = pd.read_csv(region / "data" / "yields.csv", dtype={"district_id": str})
    first = sorted(y["district_id"].unique())[0]
    y = y[~((y["district_id"] == first) & (y["year"].between(2019, 2022)))]  # 3 of the 7 years left
    y.to_csv(tmp_path / "yields.csv", index=False)

    def edit(cfg):
        cfg["inputs"]["yields"]["path"] = str(tmp_path / "yields.csv")

    res = run_batch(load_config(config(region, tmp_path, products=("yield",), adjuster=False, edit=edit)),
                    tmp_path / "out")
    di = pd.read_csv(res.out_dir / "district_index.csv", dtype={"district_id": str}, keep_default_na=False)
    row = di[di["district_id"] == first].iloc[0]
    assert bool(row["flagged"])
    assert row["reason"] == ("yield history of 3 year(s) in the 7 before 2024; the normal yield needs 5 "
                             "(missing_years: average_available)")
    led = ledger(res.out_dir)
    mine = led[led["district_id"] == first]
    assert (mine["status"].astype(str) == "withheld_missing_data").all()
    assert (mine["reason"].astype(str) == row["reason"]).all()


# --------------------------------------------------------------------------- plugins: triggers and readers
@pytest.fixture
def dist(tmp_path: Path, monkeypatch):
    """Install a third-party distribution (a module + dist-info with entry points) on sys.path."""
    made = []

    def make(name: str, entry_points: str, module_src: str) -> None:
        (tmp_path / f"{name}.py").write_text(module_src)
        info = tmp_path / f"{name}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        monkeypatch.syspath_prepend(str(tmp_path))
        triggers.cache_clear()
        readers.cache_clear()
        made.append(name)

    yield make
    for name in made:
        sys.modules.pop(name, None)
    triggers.cache_clear()
    readers.cache_clear()


def readme_plugin() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n(# my_triggers/hail.py\n.*?)```", text, re.S)
    assert block, "the README's plugin example is missing"
    return block.group(1)


def test_the_readme_plugin_runs_in_run_and_backtest(region, tmp_path, dist):
    dist("hailplug", "[panen.triggers]\nhail_days = hailplug:HailTrigger\n", readme_plugin())

    def edit(cfg):
        cfg["products"] = [{"id": "hail", "trigger": "hail_days", "sum_insured_per_ha": 6000000, "strike": 1}]

    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol = pol[pol["product_id"] == "rain"].assign(product_id="hail", policy_id=lambda d: d["policy_id"] + "-h")
    pol.to_csv(tmp_path / "policies.csv", index=False)

    def edit_all(cfg):
        edit(cfg)
        cfg["inputs"]["policies"]["path"] = str(tmp_path / "policies.csv")

    path = config(region, tmp_path, keep_inputs=("districts", "rainfall", "policies"), adjuster=False, edit=edit_all)
    assert main(["validate", str(path)]) == 0
    res = run_batch(load_config(path), tmp_path / "out")
    led = ledger(res.out_dir)
    assert set(led["product_id"]) == {"hail"} and len(led) == len(pol)
    di = pd.read_csv(res.out_dir / "district_index.csv")
    assert set(di["phase"]) == {"season"}  # the default phase of a result without phase variables
    # the hand rule: rate = clip((days with > 80 mm - strike) / strike, 0, 1) on the district series
    rain = res.series["rainfall"]["mean"]
    days = (rain > 80).sum("time")
    expected = ((days - 1) / 1).clip(0, 1).where(rain.notnull().all("time"))
    got = res.results["hail"]["payout_rate"].isel(cohort=0)
    np.testing.assert_allclose(got.values, expected.sel(district=got["district"]).values)
    bt = backtest(load_config(path, purpose="backtest"), years=(2024, 2024), out_dir=tmp_path / "bt")
    assert set(bt.table["product_id"]) == {"hail"} and len(bt.table) == rain.sizes["district"]


READER = '''
from pathlib import Path
from typing import Literal, Any
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field
from panen.engine.api import (InputInfo, InputSpec, OpenedInput, ProductParams, Reader, Trigger, TriggerResult)


class SoilSpec(InputSpec):
    path: Path
    column: str = Field("moisture", description="soil moisture column [fraction]")


class SoilReader(Reader):
    name = "soil"
    Spec = SoilSpec

    def open(self, spec, **hints):
        t = pd.read_csv(spec.path, dtype={"district_id": str})
        info = InputInfo(name="soil", kind="table", path=str(spec.path), columns=tuple(t.columns), units="1",
                         zones=frozenset(t["district_id"]))
        return OpenedInput(info=info, data=t.rename(columns={spec.column: "moisture"}))


class DryParams(ProductParams):
    trigger: Literal["dry_soil"] = "dry_soil"
    strike: float = Field(gt=0, le=1)


class DrySoilTrigger(Trigger):
    name = "dry_soil"
    Params = DryParams
    inputs = ("soil",)

    def evaluate(self, params, inputs):
        t = inputs.tables["soil"].set_index("district_id")["moisture"].reindex(inputs.district_ids)
        rate = ((params.strike - t) / params.strike).clip(0, 1).to_numpy()
        r = xr.DataArray(np.repeat(rate[:, None], len(inputs.cohorts), 1), dims=("district", "cohort"),
                         coords={"district": inputs.district_ids})
        return TriggerResult(xr.Dataset({"payout_rate": r}))
'''


def test_a_reader_registered_by_a_third_party_feeds_its_trigger(region, tmp_path, dist):
    dist("soilplug", "[panen.readers]\nsoil = soilplug:SoilReader\n[panen.triggers]\ndry_soil = soilplug:DrySoilTrigger\n",
         READER)
    pol = pd.read_csv(region / "data" / "policies.csv", dtype=str)
    pol = pol[pol["product_id"] == "yield"].assign(product_id="soil")
    districts = sorted(pol["district_id"].unique())
    moisture = np.linspace(0.1, 0.5, len(districts))
    pd.DataFrame({"district_id": districts, "vsm": moisture}).to_csv(tmp_path / "soil.csv", index=False)
    pol.to_csv(tmp_path / "policies.csv", index=False)

    def edit(cfg):
        cfg["inputs"] = {"soil": {"path": "soil.csv", "column": "vsm"}, "policies": {"path": "policies.csv"}}
        cfg["products"] = [{"id": "soil", "trigger": "dry_soil", "sum_insured_per_ha": 1000000, "strike": 0.3}]

    path = config(region, tmp_path, adjuster=False, edit=edit)
    assert main(["validate", str(path)]) == 0
    res = run_batch(load_config(path), tmp_path / "out")
    led = ledger(res.out_dir)
    rate = dict(zip(districts, np.clip((0.3 - moisture) / 0.3, 0, 1)))
    expected = led["district_id"].astype(str).map(rate)
    np.testing.assert_allclose(led["payout_rate"], expected)
    from panen.engine.maths.terms import round_rupiah

    assert (led["gross_payout"].to_numpy() == round_rupiah(led["sum_insured"].to_numpy() * expected.to_numpy())).all()


def test_an_unknown_input_name_is_a_config_error_naming_the_installed_readers(region, tmp_path, capsys):
    def edit(cfg):
        cfg["inputs"]["soil"] = {"path": "x.csv"}

    assert main(["validate", str(config(region, tmp_path, edit=edit))]) == 2
    err = capsys.readouterr().err
    assert "inputs.soil: unknown input 'soil'" in err and "installed: assessments, districts" in err


BROKEN = '''
from typing import Literal
import numpy as np
import xarray as xr
from panen.engine.api import ProductParams, Trigger, TriggerResult

class TooMuchParams(ProductParams):
    trigger: Literal["too_much"] = "too_much"

class TooMuch(Trigger):
    name = "too_much"
    Params = TooMuchParams
    inputs = ("yields",)

    def evaluate(self, params, inputs):
        r = xr.DataArray(np.full((len(inputs.district_ids), len(inputs.cohorts)), 1.5), dims=("district", "cohort"))
        return TriggerResult(xr.Dataset({"payout_rate": r}))
'''


def test_a_trigger_result_out_of_range_is_refused_naming_the_plugin(region, tmp_path, dist, capsys):
    dist("toomuch", "[panen.triggers]\ntoo_much = toomuch:TooMuch\n", BROKEN)

    def edit(cfg):
        cfg["products"] = [{"id": "yield", "trigger": "too_much", "sum_insured_per_ha": 1000}]

    path = config(region, tmp_path, keep_inputs=("yields", "policies"), adjuster=False, edit=edit)
    with pytest.raises(PluginError, match="'too_much'.*payout_rate outside"):
        run_batch(load_config(path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_withheld_policy_says_which_phases_had_no_index(full):
    led = ledger(full.out_dir)
    withheld = led[(led["status"].astype(str) == "withheld_missing_data") & (led["product_id"] == "rain")]
    assert len(withheld), "the synthetic region plants a district with missing rainfall"
    di = pd.read_csv(full.out_dir / "district_index.csv", dtype={"district_id": str}, keep_default_na=False)
    for row in withheld.head(20).itertuples():
        reason = str(row.reason)
        assert reason.startswith("missing data: no index for phase")
        cohort = pd.Timestamp(row.cohort).strftime("%Y-%m-%d")
        rows = di[(di["product_id"] == "rain") & (di["district_id"] == row.district_id) & (di["cohort"] == cohort)]
        lacking = set(rows.loc[rows["index_value"] == "", "phase"])
        assert lacking and all(ph in reason for ph in lacking)
        assert (rows["reason"] == reason).all() and rows["flagged"].astype(str).str.lower().eq("true").all()


def test_the_wording_is_part_of_the_run_id(region, tmp_path):
    first = run_batch(load_config(config(region, tmp_path, products=("yield",))), None)
    wording = yaml.safe_load((REPO / "configs" / "autp.yaml").read_text())
    wording["thresholds"]["damage_intensity_pct"] = 70
    (tmp_path / "autp.yaml").write_text(yaml.safe_dump(wording, sort_keys=False))

    def edit(cfg):
        cfg["adjuster"]["wording"] = str(tmp_path / "autp.yaml")

    second = run_batch(load_config(config(region, tmp_path, products=("yield",), edit=edit, name="b.yaml")), None)
    assert first.run_id != second.run_id
