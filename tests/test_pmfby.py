"""PMFBY beyond the basic claim, and ARPI's protection factor — hand-computed.

PMFBY Revised Operational Guidelines (2020), para. 21: prevented / failed sowing (up to
25 % of the sum insured, cover ends), mid-season adversity (on account up to 25 % of the
likely claim), the area correction factor (sown / insured area), a notified threshold
yield, and what a missing history year does to the threshold yield. 7 CFR 407.9 (ARPI):
policy protection = sum insured × protection factor, indemnity = payment factor × policy
protection.

Every test uses the guideline's own illustration where it can: yields 4500, 3750, 2000,
4250, 1800, 4300, 1750 kg/ha → best 5 of 7 = 3760; at 90 % the threshold is 3384; an
actual yield of 2500 on a sum insured of 30,000 claims 7,837.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from panen.datasets.notifications import read_notifications
from panen.engine.api import Season, TriggerInputs
from panen.engine.errors import DataQualityError, InputError
from panen.engine.settlement.ledger import build_ledger
from panen.engine.settlement.policies import ProductRules
from panen.engine.settlement.rates import RateTable
from panen.triggers.area_yield import AreaYieldParams, AreaYieldTrigger

HISTORY = dict(zip(range(2008, 2015), (4.5, 3.75, 2.0, 4.25, 1.8, 4.3, 1.75)))  # t/ha, the guideline's years
SEASON = Season("kharif-2015", np.datetime64("2015-06-01"), np.datetime64("2015-11-30"), 2015)


def yields_frame(rows: dict[str, dict[int, float]], **columns: dict[str, dict[int, float]]) -> pd.DataFrame:
    """The yields reader's frame: ``{district: {year: yield}}`` plus extra columns alike."""
    data = [{"district_id": d, "year": y, "yield": v} for d, by in rows.items() for y, v in by.items()]
    df = pd.DataFrame(data).astype({"year": "int64", "yield": float})
    for name, values in columns.items():
        df[name] = [values.get(r.district_id, {}).get(r.year, np.nan) for r in df.itertuples()]
    df.attrs["units"] = "t/ha"
    return df


def notifications_frame(rows: list[tuple], source: str = "notifications.csv") -> pd.DataFrame:
    """The notifications reader's frame from ``(district, product, kind, date, estimated_yield)`` rows."""
    df = pd.DataFrame(rows, columns=["district_id", "product_id", "kind", "date", "estimated_yield"])
    df["date"] = pd.to_datetime(df["date"]).to_numpy().astype("datetime64[D]")
    df["estimated_yield"] = df["estimated_yield"].astype(float)
    df["line"] = np.arange(2, len(df) + 2)
    df.attrs["source"] = source
    return df


def product(**kw) -> AreaYieldParams:
    base = dict(id="yield", trigger="area_yield", sum_insured_per_ha=6_000_000,
                normal_yield={"method": "best_of", "best": 5, "of": 7}, indemnity_level=0.9)
    return AreaYieldParams(**{k: v for k, v in (base | kw).items() if v is not None})


def evaluate(params, yields, *, notifications=None, insured_area=None, districts=None):
    tables = {"yields": yields} | ({"notifications": notifications} if notifications is not None else {})
    inputs = TriggerInputs(season=SEASON, cohorts=np.array([SEASON.start]),
                           district_ids=np.array(districts or sorted(yields["district_id"].unique())),
                           tables=tables, insured_area=insured_area)
    return AreaYieldTrigger().evaluate(params, inputs).data


def at(ds, var, district):
    v = ds[var].sel(district=district)
    return v.isel(cohort=0).item() if "cohort" in v.dims else v.item()


# --------------------------------------------------------------------------- missing history years
# The two best years of the illustration (2008: 4.5, 2013: 4.3) blank in the statistics.
GAPPY = HISTORY | {2008: np.nan, 2013: np.nan, 2015: 2.5}
STATE = {2008: 4.0, 2013: 4.1}  # the state's yield those years (what fills a missing year)


def test_missing_years_withhold_is_the_default_and_says_why():
    ds = evaluate(product(), yields_frame({"X": GAPPY}))
    assert np.isnan(at(ds, "payout_rate", "X")) and at(ds, "flagged", "X")
    assert "5 year(s) in the 7 before 2015" in at(ds, "reason", "X")
    assert "missing_years: withhold" in at(ds, "reason", "X")


def test_missing_years_average_available_cuts_the_threshold_by_28_percent():
    ds = evaluate(product(missing_years="average_available", min_years=5), yields_frame({"X": GAPPY}))
    # best 5 of the 5 available: (3.75 + 2.0 + 4.25 + 1.8 + 1.75) / 5 = 2.71 t/ha, against 3.76 complete
    assert at(ds, "normal_yield", "X") == pytest.approx(2.71)
    assert 1 - 2.71 / 3.76 == pytest.approx(0.279, abs=5e-4)
    # threshold 0.9 × 2.71 = 2.439 < actual 2.5: the season's loss pays nothing
    assert at(ds, "payout_rate", "X") == 0.0


def test_missing_years_fill_takes_the_states_yield_for_the_missing_years():
    table = yields_frame({"X": GAPPY}, state_yield={"X": STATE})
    ds = evaluate(product(missing_years="fill", fill_column="state_yield"), table)
    # best 5 of 3.75, 2.0, 4.25, 1.8, 1.75 + filled 4.0, 4.1: (4.25 + 4.1 + 4.0 + 3.75 + 2.0) / 5 = 3.62
    assert at(ds, "normal_yield", "X") == pytest.approx(3.62)
    assert at(ds, "threshold_yield", "X") == pytest.approx(3.258)
    assert at(ds, "payout_rate", "X") == pytest.approx((3.258 - 2.5) / 3.258)
    assert at(ds, "filled_years", "X") == 2 and at(ds, "history_years", "X") == 5
    # a year neither the district nor the state has is still missing: withheld
    ds = evaluate(product(missing_years="fill", fill_column="state_yield"),
                  yields_frame({"X": GAPPY}, state_yield={"X": {2008: 4.0}}))
    assert at(ds, "flagged", "X") and "filled from state_yield" in at(ds, "reason", "X")


@pytest.mark.parametrize("change, needle", [
    ({"min_years": 5}, "min_years only applies to missing_years 'average_available'"),
    ({"missing_years": "average_available"}, "needs min_years"),
    ({"missing_years": "fill"}, "needs fill_column"),
    ({"fill_column": "state"}, "fill_column only applies to missing_years 'fill'"),
    ({"missing_years": "average_available", "min_years": 8}, "between 1 and the history window"),
])
def test_missing_years_keys_are_checked_at_load_time(change, needle):
    with pytest.raises(ValidationError, match=needle):
        product(**change)


# --------------------------------------------------------------------------- notified threshold yield
def test_notified_threshold_yield_replaces_the_computed_one():
    # the state notifies 3384 kg/ha directly (no history needed): actual 2500 → 7,837 of 30,000
    table = yields_frame({"X": {2015: 2.5}, "Y": {2015: 2.5}}, notified_ty={"X": {2015: 3.384}})
    ds = evaluate(product(normal_yield=None, indemnity_level=None, threshold_column="notified_ty"), table)
    rate = at(ds, "payout_rate", "X")
    assert rate == pytest.approx(0.884 / 3.384) and round(rate * 30_000) == 7837
    assert at(ds, "threshold_yield", "X") == 3.384
    assert at(ds, "flagged", "Y") and at(ds, "reason", "Y") == "no notified threshold yield (notified_ty) for 2015"
    assert ds.attrs["normal_yield_method"] == "notified_threshold"


@pytest.mark.parametrize("change, needle", [
    ({"threshold_column": "ty"}, "normal_yield does not go with threshold_column"),
    ({"normal_yield": None, "indemnity_level": None, "threshold_column": "ty", "formula": "arpi"},
     "formula 'arpi' needs the expected yield"),
    ({"normal_yield": None}, "normal_yield is required"),
    ({"indemnity_level": None}, "indemnity_level is required"),
])
def test_notified_threshold_keys_are_checked_at_load_time(change, needle):
    with pytest.raises(ValidationError, match=needle):
        product(**change)


# --------------------------------------------------------------------------- area correction factor
def test_area_correction_scales_claims_by_sown_over_insured_area():
    table = yields_frame({d: HISTORY | {2015: 2.5} for d in "ABC"},
                         sown_ha={"A": {2015: 8.0}, "B": {2015: 50.0}})
    insured = pd.Series({"A": 10.0, "B": 20.0, "C": 5.0})
    ds = evaluate(product(area_correction={"sown_area_column": "sown_ha"}), table, insured_area=insured)
    shortfall = 0.884 / 3.384
    assert at(ds, "area_correction_factor", "A") == pytest.approx(0.8)  # 8 sown of 10 insured
    assert at(ds, "payout_rate", "A") == pytest.approx(0.8 * shortfall)
    assert round(30_000 * at(ds, "payout_rate", "A")) == 6270  # 7,836.88 × 0.8 = 6,269.50
    assert at(ds, "area_correction_factor", "B") == 1.0  # more sown than insured: never above 1
    assert at(ds, "payout_rate", "B") == pytest.approx(shortfall)
    # insured but no sown area: withheld, never paid uncorrected
    assert at(ds, "flagged", "C") and "no 2015 sown area (sown_ha)" in at(ds, "reason", "C")


def test_area_correction_needs_no_sown_area_where_nothing_is_claimed():
    table = yields_frame({"D": HISTORY | {2015: 3.5}})  # above the threshold 3.384
    ds = evaluate(product(area_correction={"sown_area_column": "sown_ha"}),
                  table.assign(sown_ha=np.nan), insured_area=pd.Series({"D": 3.0}))
    assert at(ds, "payout_rate", "D") == 0.0 and not at(ds, "flagged", "D")


def test_area_correction_without_a_register_is_not_applied_and_says_so():
    table = yields_frame({"A": HISTORY | {2015: 2.5}}, sown_ha={"A": {2015: 8.0}})
    with pytest.warns(UserWarning, match="area_correction needs the insured area"):
        ds = evaluate(product(area_correction={"sown_area_column": "sown_ha"}), table)
    assert at(ds, "payout_rate", "A") == pytest.approx(0.884 / 3.384)


# --------------------------------------------------------------------------- notifications
def cover(**kw):
    return product(prevented_sowing={"rate": 0.25}, mid_season_adversity={"rate": 0.25}, **kw)


def test_prevented_sowing_pays_a_quarter_and_ends_the_cover():
    # B: notified; no 2015 yield (nothing was harvested) — still paid 25 %, never withheld
    # A: notified for another product only — its own yield claim
    table = yields_frame({"A": HISTORY | {2015: 2.5}, "B": HISTORY})
    notes = notifications_frame([("B", "all", "prevented_sowing", "2015-07-20", None),
                                 ("A", "other", "prevented_sowing", "2015-07-20", None)])
    ds = evaluate(cover(), table, notifications=notes)
    assert at(ds, "payout_rate", "B") == 0.25 and not at(ds, "flagged", "B")
    assert at(ds, "notified", "B") == "prevented_sowing" and at(ds, "notified", "A") == ""
    assert at(ds, "payout_rate", "A") == pytest.approx(0.884 / 3.384)
    # a yield loss after prevented sowing is no further claim: the 25 % is all
    ds = evaluate(cover(), yields_frame({"B": HISTORY | {2015: 0.5}}), notifications=notes[:1])
    assert at(ds, "payout_rate", "B") == 0.25


def test_mid_season_adversity_pays_a_quarter_of_the_likely_claim_on_account():
    # estimated yield 1.692 t/ha = half the threshold 3.384: likely claim 50 %, on account 25 % of it
    table = yields_frame({"C": HISTORY})  # no harvest yet: the final claim is not assessable
    notes = notifications_frame([("C", "yield", "mid_season_adversity", "2015-08-15", 1.692)])
    ds = evaluate(cover(), table, notifications=notes)
    assert at(ds, "on_account_rate", "C") == pytest.approx(0.125)
    assert round(50_000 * at(ds, "on_account_rate", "C")) == 6250
    assert np.isnan(at(ds, "payout_rate", "C")) and at(ds, "flagged", "C")  # final waits for the yield
    assert at(ds, "estimated_yield", "C") == 1.692


def test_notifications_outside_the_season_or_of_an_uncovered_kind_are_not_paid_and_warned():
    insured = pd.Series({"B": 1.0})  # a settled register: a seasonal run warns of other seasons' rows
    table = yields_frame({"B": HISTORY | {2015: 3.5}})
    notes = notifications_frame([("B", "all", "prevented_sowing", "2014-07-20", None)])
    with pytest.warns(UserWarning, match="1 notification.* dated outside the season"):
        ds = evaluate(cover(), table, notifications=notes, insured_area=insured)
    assert at(ds, "payout_rate", "B") == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a backtest (no register) replays every season: other seasons' rows are quiet
        evaluate(cover(), table, notifications=notes)
    notes = notifications_frame([("B", "all", "prevented_sowing", "2015-07-20", None)])
    with pytest.warns(UserWarning, match="the term sheet has no prevented_sowing cover"):
        ds = evaluate(product(mid_season_adversity={"rate": 0.25}), table, notifications=notes)
    assert at(ds, "payout_rate", "B") == 0.0


@pytest.mark.parametrize("rows, needle", [
    ([("NOWHERE", "all", "prevented_sowing", "2015-07-20", None)], "district 'NOWHERE' is not one this product"),
    ([("B", "all", "prevented_sowing", "2015-07-20", None), ("B", "yield", "mid_season_adversity", "2015-08-01", 2)],
     "district 'B' is notified twice"),
    ([("B", "yield", "prevented_sowing", "2015-07-20", None), ("B", "yield", "prevented_sowing", "2015-07-21", None)],
     "a second prevented_sowing notification for district 'B'"),
    ([("B", "yield", "mid_season_adversity", "2015-08-01", None)], "has no estimated yield"),
])
def test_doubtful_notifications_are_located_errors(rows, needle):
    table = yields_frame({"B": HISTORY})
    with pytest.raises(DataQualityError, match=needle) as err:
        evaluate(cover(), table, notifications=notifications_frame(rows))
    problem = err.value.problems[-1]
    assert problem.file == "notifications.csv" and problem.line == len(rows) + 1


def test_a_notified_cover_needs_the_notifications_input():
    assert AreaYieldTrigger.required_inputs(cover()) == ("yields", "notifications")
    assert AreaYieldTrigger.required_inputs(product()) == ("yields",)
    with pytest.raises(DataQualityError, match="need the 'notifications' table"):
        evaluate(cover(), yields_frame({"B": HISTORY}))


@pytest.mark.parametrize("key", ["prevented_sowing", "mid_season_adversity"])
def test_the_notified_rates_are_at_most_a_quarter(key):
    with pytest.raises(ValidationError, match="less than or equal to 0.25"):
        product(**{key: {"rate": 0.3}})


# --------------------------------------------------------------------------- the notifications reader
def write(tmp_path, text, name="notifications.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reader_reads_and_normalises_units(tmp_path):
    p = write(tmp_path, "district_id,product_id,kind,date,estimated_yield\n"
                        "3212,ALL,prevented_sowing,2015-07-20,\n"
                        "3213,yield,mid_season_adversity,2015-08-15,16.92\n")
    df = read_notifications(p, units="ku/ha")
    assert df["district_id"].tolist() == ["3212", "3213"] and df["product_id"].tolist() == ["all", "yield"]
    assert df["estimated_yield"].iloc[1] == pytest.approx(1.692) and np.isnan(df["estimated_yield"].iloc[0])
    assert df["line"].tolist() == [2, 3] and df["date"].iloc[0] == np.datetime64("2015-07-20")


@pytest.mark.parametrize("body, line, column, needle", [
    ("3212,all,drought,2015-07-20,\n", 2, "kind", "kind 'drought' is not one of"),
    ("3212,all,prevented_sowing,2015-02-30,\n", 2, "date", "is not a date"),
    ("3212,all,mid_season_adversity,2015-07-20,\n", 2, "estimated_yield", "needs the estimated yield"),
    ("3212,all,mid_season_adversity,2015-07-20,-1\n", 2, "estimated_yield", "needs the estimated yield"),
    ("3212,all,prevented_sowing,2015-07-20,2.5\n", 2, "estimated_yield", "only belongs on a mid_season_adversity"),
    (",all,prevented_sowing,2015-07-20,\n", 2, "district_id", "district id is empty"),
    ("3212,yield,prevented_sowing,2015-07-20,\n3212,yield,prevented_sowing,2015-07-21,\n", 3, "district_id",
     "a second prevented_sowing notification for district '3212'"),
    ("3212,yield,prevented_sowing,2015-07-20,\n3212,all,prevented_sowing,2015-07-21,\n", 3, "district_id",
     "every product"),
])
def test_reader_refuses_doubtful_rows_with_their_line(tmp_path, body, line, column, needle):
    p = write(tmp_path, "district_id,product_id,kind,date,estimated_yield\n" + body)
    with pytest.raises(InputError, match=needle) as err:
        read_notifications(p)
    problem = next(pr for pr in err.value.problems if needle in pr.message)
    assert (problem.line, problem.column) == (line, column)


# --------------------------------------------------------------------------- ARPI protection factor
def test_arpi_protection_factor_scales_the_policy_protection():
    """7 CFR 407.9: indemnity = payment factor × policy protection; policy protection = SI × protection factor.

    Expected 150, coverage 0.9 (trigger 135), final 110, loss limit 0.18 (27):
    payment factor = (135 − 110) / (135 − 27) = 25 / 108. One hectare at Rp 6,000,000 with
    protection factor 1.2: policy protection Rp 7,200,000; indemnity 7,200,000 × 25 / 108
    = 1,666,666.67 → Rp 1,666,667 (at factor 0.8: 4,800,000 × 25 / 108 = 1,111,111).
    """
    params = product(normal_yield={"method": "given", "column": "expected"}, formula="arpi", protection_factor=1.2)
    ds = evaluate(params, yields_frame({"X": {2015: 110.0}}, expected={"X": {2015: 150.0}}))
    rate = at(ds, "payout_rate", "X")
    assert rate == pytest.approx(25 / 108)
    assert params.sum_insured_factor == 1.2 and product().sum_insured_factor == 1.0
    policies = pd.DataFrame({"policy_id": ["p1", "p2"], "farmer_id": ["f1", "f2"], "district_id": ["X", "X"],
                             "product_id": ["arpi", "arpi"], "area_ha": [1.0, 1.0],
                             "sum_insured": [np.nan, 4_000_000.0]})
    table = RateTable("arpi", np.array(["X"]), np.array([SEASON.start]), np.array([[rate]]), np.array([[False]]))
    for factor, expected in ((1.2, [1_666_667, 1_111_111]), (0.8, [1_111_111, 740_741])):
        led = build_ledger(policies, {"arpi": table}, {"arpi": ProductRules(6_000_000, sum_insured_factor=factor)})
        assert led["sum_insured"].to_pylist() == [round(6_000_000 * factor), round(4_000_000 * factor)]
        assert led["net_payout"].to_pylist() == expected


@pytest.mark.parametrize("change, needle", [
    ({"protection_factor": 1.3, "formula": "arpi"}, "less than or equal to 1.2"),
    ({"protection_factor": 0.7, "formula": "arpi"}, "greater than or equal to 0.8"),
    ({"protection_factor": 1.1}, "protection_factor only applies to formula 'arpi'"),
])
def test_protection_factor_is_checked_at_load_time(change, needle):
    with pytest.raises(ValidationError, match=needle):
        product(**change)


# --------------------------------------------------------------------------- a whole run
def test_a_season_with_every_pmfby_event_settles_to_the_rupiah(tmp_path):
    """One run: a corrected claim (A), prevented sowing (B), mid-season on account (C), no claim (D), ARPI (A)."""
    from panen.engine.config import load_config
    from panen.engine.pipeline.run import run_batch

    rows = []
    for d in "ABCD":
        rows += [{"district_id": d, "year": y, "yield": v} for y, v in HISTORY.items()]
    rows += [{"district_id": "A", "year": 2015, "yield": 2.5, "sown_ha": 8.0},
             {"district_id": "C", "year": 2015, "yield": None, "sown_ha": 10.0},  # sown, not harvested yet
             {"district_id": "D", "year": 2015, "yield": 3.5}]
    pd.DataFrame(rows, columns=["district_id", "year", "yield", "sown_ha"]).to_csv(tmp_path / "yields.csv",
                                                                                   index=False)
    pd.DataFrame([
        ("A1", "fa1", "A", "yield", 4.0, 30_000), ("A2", "fa2", "A", "yield", 6.0, 30_000),
        ("B1", "fb1", "B", "yield", 2.0, 40_000), ("C1", "fc1", "C", "yield", 1.0, 50_000),
        ("D1", "fd1", "D", "yield", 3.0, 60_000), ("A3", "fa3", "A", "arpi", 1.0, None),
    ], columns=["policy_id", "farmer_id", "district_id", "product_id", "area_ha", "sum_insured"]).to_csv(
        tmp_path / "policies.csv", index=False)
    (tmp_path / "notifications.csv").write_text(
        "district_id,product_id,kind,date,estimated_yield\n"
        "B,all,prevented_sowing,2015-07-20,\n"
        "C,yield,mid_season_adversity,2015-08-15,1.692\n")
    cfg = {
        "season": {"id": "kharif-2015", "start": "2015-06-01", "end": "2015-11-30"},
        "inputs": {"yields": {"path": "yields.csv", "area_columns": ["sown_ha"]},
                   "policies": {"path": "policies.csv"}, "notifications": {"path": "notifications.csv"}},
        "products": [
            {"id": "yield", "trigger": "area_yield", "sum_insured_per_ha": 30_000,
             "normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.9,
             "prevented_sowing": {"rate": 0.25}, "mid_season_adversity": {"rate": 0.25},
             "area_correction": {"sown_area_column": "sown_ha"}},
            {"id": "arpi", "trigger": "area_yield", "sum_insured_per_ha": 6_000_000,
             "normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.9,
             "formula": "arpi", "protection_factor": 1.2},
        ],
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_batch(load_config(tmp_path / "run.yaml"), tmp_path / "out")
    led = pd.read_csv(res.out_dir / "payouts.csv", dtype={"policy_id": str}).set_index("policy_id")
    # A: (3.384 − 2.5) / 3.384 × 30,000 × 8 / 10 = 6,269.50 → 6,270 each
    # B: prevented sowing 25 % of 40,000; C: no harvest yet, withheld; D: above the threshold
    # A3 (ARPI): 6,000,000 × 1.2 × (3.384 − 2.5) / (3.384 − 0.18 × 3.76) = 7,200,000 × 0.884 / 2.7072 = 2,351,064
    assert led["net_payout"].to_dict() == {"A1": 6270, "A2": 6270, "A3": 2_351_064, "B1": 10_000, "C1": 0, "D1": 0}
    assert led.loc["C1", "status"] == "withheld_missing_data" and led.loc["A3", "sum_insured"] == 7_200_000
    index = pd.read_csv(res.out_dir / "district_index.csv", dtype={"district_id": str}, keep_default_na=False)
    index = index[index["product_id"] == "yield"].set_index("district_id")
    # B was paid on its notification, without a harvest yield: the audit trail says so, not "missing data"
    assert index.loc["B", "reason"] == "no index value; the district was settled without it"
    assert index.loc["C", "reason"] == "no 2015 yield in the yields table" and index.loc["A", "reason"] == ""
    advance = pd.read_csv(res.out_dir / "on_account.csv", dtype={"policy_id": str})
    # C: likely claim (3.384 − 1.692) / 3.384 = 50 %; on account 25 % of it = 12.5 % of 50,000
    assert advance[["policy_id", "on_account_payout"]].values.tolist() == [["C1", 6250]]
    assert advance["on_account_rate"].item() == pytest.approx(0.125)
    payments = pd.read_csv(res.out_dir / "payments.csv")
    assert int(payments["amount"].sum()) == 6270 * 2 + 2_351_064 + 10_000  # the advance is not in the final batch
    manifest = json.loads((res.out_dir / "manifest.json").read_text())
    assert manifest["on_account"] == {"by_product": {"yield": {"policies": 1, "policies_paid": 1,
                                                               "on_account_payout": 6250}},
                                      "policies": 1, "on_account_payout": 6250,
                                      # a final batch through the settlement store (the default) nets what was
                                      # paid on account; none was paid here, so the final pays the full claim
                                      "deducted_from_final": True}


def test_validate_names_a_yields_column_the_term_sheet_needs_but_the_reader_did_not_carry():
    from panen.engine.api import InputInfo

    info = {"yields": InputInfo(name="yields", kind="table", columns=("district_id", "year", "yield", "ty"))}
    params = product(missing_years="fill", fill_column="state_yield", area_correction={"sown_area_column": "sown"})
    problems = AreaYieldTrigger.check_inputs(params, info)
    assert len(problems) == 2
    assert "fill_column 'state_yield' is not a column of the yields table" in problems[0]
    assert "read it with inputs.yields.extra_columns" in problems[0]
    assert "area_correction.sown_area_column 'sown'" in problems[1] and "area_columns" in problems[1]
    notified = product(normal_yield=None, indemnity_level=None, threshold_column="ty")
    assert AreaYieldTrigger.check_inputs(notified, info) == []


def test_yields_area_columns_are_carried_in_hectares_whatever_the_yield_units(tmp_path):
    from panen.datasets.yields import read_yields

    p = tmp_path / "yields.csv"
    p.write_text("district_id,year,yield,sown_ha\n3212,2015,52.3,120.5\n3212,2014,50,\n")
    df = read_yields(p, units="ku/ha", area_columns=("sown_ha",))
    assert df["yield"].tolist() == pytest.approx([5.23, 5.0])
    assert df["sown_ha"].iloc[0] == 120.5 and np.isnan(df["sown_ha"].iloc[1])


def test_reader_reads_parquet_and_locates_its_problems_by_row(tmp_path):
    p = tmp_path / "notifications.parquet"
    pd.DataFrame({"district_id": ["3212", "3212"], "product_id": ["yield", "yield"],
                  "kind": ["prevented_sowing", "prevented_sowing"], "date": ["2015-07-20", "2015-07-21"]}).to_parquet(p)
    with pytest.raises(InputError, match="a second prevented_sowing notification .*first is on row 1") as err:
        read_notifications(p)
    assert err.value.problems[0].row == 2 and err.value.problems[0].line is None
