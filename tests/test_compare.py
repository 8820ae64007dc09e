"""Index payouts against adjusted AUTP indemnity: the contingency table and basis-risk scores."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panen.engine.research.compare import (
    COMPARISON_COLUMNS,
    SUMMARY_COLUMNS,
    basis_risk_summary,
    compare_farmers,
)
from panen.engine.errors import InputError
from panen.engine.research.scores import spearman
from panen.engine.settlement.ledger import STATUS_VALUES

# Eight farmers in district 3201 with a known 2 × 2 table (a = b = c = d = 2), plus a
# withheld farmer (with a paid AUTP loss) and a correct negative in 3202.
#            farmer, district, index net payout [Rp], status
FARMERS = [("F1", "3201", 500_000, "paid"),        # AUTP 3.0 M  -> hit
           ("F2", "3201", 200_000, "paid"),        # AUTP 6.0 M  -> hit
           ("F3", "3201", 0, "no_payout"),         # AUTP 1.2 M  -> miss
           ("F4", "3201", 0, "no_payout"),         # AUTP 2.4 M (two paid plots) -> miss
           ("F5", "3201", 300_000, "paid"),        # no claim    -> false alarm
           ("F6", "3201", 0, "no_payout"),         # declined claim only -> correct negative
           ("F7", "3201", 0, "no_payout"),         # no claim    -> correct negative
           ("F8", "3201", 100_000, "paid"),        # no claim    -> false alarm
           ("F9", "3202", 0, "withheld_missing_data"),  # AUTP 6.0 M, but the index is withheld
           ("F10", "3202", 0, "no_payout")]        # no claim    -> correct negative
#         policy_id (AUTP), farmer, plot, decision, indemnity [Rp]
CLAIMS = [("A1", "F1", "F1-1", "paid", 3_000_000),
          ("A2", "F2", "F2-1", "paid", 6_000_000),
          ("A3", "F3", "F3-1", "paid", 1_200_000),
          ("A4", "F4", "F4-1", "paid", 1_200_000),
          ("A4", "F4", "F4-2", "paid", 1_200_000),
          ("A4", "F4", "F4-3", "declined", 0),
          ("A6", "F6", "F6-1", "declined", 0),
          ("A9", "F9", "F9-1", "paid", 6_000_000)]


def make_ledger(rows=FARMERS, product: str = "rain") -> pd.DataFrame:
    return pd.DataFrame({
        "policy_id": [f"P-{f}-{product}" for f, *_ in rows],
        "farmer_id": [f for f, *_ in rows],
        "district_id": pd.Categorical([d for _, d, *_ in rows]),
        "product_id": pd.Categorical([product] * len(rows)),
        "sum_insured": [3_000_000] * len(rows),
        "payout_rate": [np.nan if s == "withheld_missing_data" else 0.1 for *_, s in rows],
        "gross_payout": [p for _, _, p, _ in rows],
        "deductible": [0] * len(rows),
        "net_payout": [p for _, _, p, _ in rows],
        "status": pd.Categorical([s for *_, s in rows], categories=STATUS_VALUES),
    })


def make_claims(rows=CLAIMS) -> pd.DataFrame:
    return pd.DataFrame({
        "policy_id": [p for p, *_ in rows], "farmer_id": [f for _, f, *_ in rows],
        "plot_id": [pl for _, _, pl, _, _ in rows], "peril": "banjir",
        "decision": [d for *_, d, _ in rows], "sum_insured": 6_000_000,
        "indemnity": np.array([i for *_, i in rows], dtype=np.int64),
    })


def register_for(ledger: pd.DataFrame) -> pd.DataFrame:
    """The policy register: the index policies plus one AUTP policy per farmer."""
    autp = pd.DataFrame({"policy_id": [f"A{f[1:]}" for f in ledger["farmer_id"]],
                         "farmer_id": ledger["farmer_id"], "product_id": "autp"})
    return pd.concat([ledger[["policy_id", "farmer_id", "product_id"]].astype(str), autp], ignore_index=True)


@pytest.fixture
def comparison() -> pd.DataFrame:
    return compare_farmers(make_ledger(), make_claims())


@pytest.fixture
def summary(comparison) -> pd.DataFrame:
    return basis_risk_summary(comparison).set_index(["level", "district_id"])


# --- per farmer -------------------------------------------------------------------------


def test_outcomes_follow_the_contingency_table(comparison):
    assert list(comparison.columns) == list(COMPARISON_COLUMNS)
    got = comparison.set_index("farmer_id")
    assert got["outcome"].to_dict() == {
        "F1": "hit", "F2": "hit", "F3": "miss", "F4": "miss", "F5": "false_alarm", "F6": "correct_negative",
        "F7": "correct_negative", "F8": "false_alarm", "F9": "withheld", "F10": "correct_negative"}
    assert got.loc["F4", "autp_indemnity"] == 2_400_000  # two paid plots; the declined one adds nothing
    assert got.loc["F6", "autp_indemnity"] == 0 and not got.loc["F6", "loss_event"]
    assert got.loc["F7", "autp_indemnity"] == 0  # no claim row: no assessed loss
    assert got.loc["F1", "index_payout"] == 500_000 and got.loc["F1", "sum_insured"] == 3_000_000
    assert (got["product_id"] == "rain").all() and got.loc["F9", "district_id"] == "3202"
    assert str(got["autp_indemnity"].dtype) == "int64" and str(got["index_payout"].dtype) == "Int64"


def test_withheld_index_policy_is_not_a_zero_payout(comparison):
    f9 = comparison.set_index("farmer_id").loc["F9"]
    assert f9["outcome"] == "withheld"
    assert pd.isna(f9["index_payout"]) and pd.isna(f9["payout_event"])
    assert f9["autp_indemnity"] == 6_000_000 and f9["loss_event"]  # the loss is recorded, not scored


def test_rows_are_sorted_by_product_district_farmer(comparison):
    keys = list(zip(comparison["product_id"], comparison["district_id"], comparison["farmer_id"], strict=True))
    assert keys == sorted(keys)


def test_claims_without_farmer_id_link_through_the_register(comparison):
    ledger, claims = make_ledger(), make_claims()
    register = register_for(ledger)
    linked = compare_farmers(ledger, claims.drop(columns="farmer_id"), register=register)
    pd.testing.assert_frame_equal(linked, comparison)


def test_blank_farmer_ids_link_through_the_ledgers_policy_ids(comparison):
    """An adjuster run without the register: blank farmer_id, AUTP policies in the ledger."""
    ledger, claims = make_ledger(), make_claims()
    claims["farmer_id"] = claims["farmer_id"].where(claims["policy_id"] != "A4", "")  # F4's plots
    claims.loc[claims["policy_id"] == "A2", "farmer_id"] = None
    autp_rows = make_ledger(product="autp").assign(policy_id=[f"A{f[1:]}" for f, *_ in FARMERS])
    both = pd.concat([ledger.astype({"district_id": str, "product_id": str, "status": str}),
                      autp_rows.astype({"district_id": str, "product_id": str, "status": str})], ignore_index=True)
    linked = compare_farmers(both, claims)  # the autp rows link claims and are no index product
    pd.testing.assert_frame_equal(linked, comparison)


def test_unlinkable_claims_are_warned_about_and_counted():
    claims = make_claims().drop(columns="farmer_id")
    with pytest.warns(UserWarning, match="8 AUTP claim row"):
        out = compare_farmers(make_ledger(), claims)
    assert out.attrs["unlinked_claims"] == 8 and out.attrs["unlinked_indemnity"] == 18_600_000
    assert (out["autp_indemnity"] == 0).all()


def test_register_limits_the_comparison_to_autp_policyholders():
    ledger, claims = make_ledger(), make_claims()
    register = register_for(ledger)
    register = register[~((register["farmer_id"] == "F7") & (register["product_id"] == "autp"))]
    out = compare_farmers(ledger, claims, register=register)
    assert "F7" not in set(out["farmer_id"]) and len(out) == len(FARMERS) - 1


def test_several_policies_of_one_product_are_one_farmer():
    rows = [("F1", "3201", 100_000, "paid"), ("F1", "3201", 50_000, "paid"), ("F2", "3201", 0, "no_payout")]
    ledger = make_ledger(rows).assign(policy_id=["P1a", "P1b", "P2"])
    out = compare_farmers(ledger, make_claims()).set_index("farmer_id")
    assert out.loc["F1", "index_payout"] == 150_000 and out.loc["F1", "sum_insured"] == 6_000_000
    # one of two policies withheld: the farmer is withheld
    ledger.loc[1, "status"] = "withheld_missing_data"
    assert compare_farmers(ledger, make_claims()).set_index("farmer_id").loc["F1", "outcome"] == "withheld"


def test_arrow_ledger_and_a_ledger_without_status():
    ledger, claims = make_ledger(), make_claims()
    table = pa.Table.from_pandas(ledger, preserve_index=False)  # dictionary columns, as payouts.parquet
    expected = compare_farmers(ledger, claims)
    pd.testing.assert_frame_equal(compare_farmers(table, claims), expected)
    # without a status column a null payout rate marks the withheld policy
    pd.testing.assert_frame_equal(compare_farmers(ledger.drop(columns="status"), claims), expected)


def test_missing_columns_are_an_input_error():
    with pytest.raises(InputError, match="net_payout"):
        compare_farmers(make_ledger().drop(columns="net_payout"), make_claims())
    with pytest.raises(InputError, match="decision"):
        compare_farmers(make_ledger(), make_claims().drop(columns="decision"))


def test_no_claims_at_all_means_no_assessed_losses():
    out = compare_farmers(make_ledger(), make_claims().iloc[:0])
    assert (out["autp_indemnity"] == 0).all()
    assert set(out["outcome"]) == {"false_alarm", "correct_negative", "withheld"}


# --- summary ----------------------------------------------------------------------------


def test_district_scores_by_hand(summary):
    s = summary.loc[("district", "3201")]
    assert (s["farmers"], s["withheld"]) == (8, 0)
    assert (s["hits"], s["misses"], s["false_alarms"], s["correct_negatives"]) == (2, 2, 2, 2)
    assert s["pod"] == 2 / 4 and s["far"] == 2 / 4 and s["threat_score"] == pytest.approx(2 / 6)
    # AUTP indemnity 3.0 + 6.0 + 1.2 + 2.4 = 12.6 M; misses F3 + F4 = 3.6 M unpaid
    assert s["autp_indemnity"] == 12_600_000 and s["unpaid_loss_amount"] == 3_600_000
    assert s["unpaid_loss_share"] == pytest.approx(3.6 / 12.6)
    # index 0.5 + 0.2 + 0.3 + 0.1 = 1.1 M
    assert s["index_payout"] == 1_100_000 and s["payout_balance"] == pytest.approx(1.1 / 12.6)
    # ranks (ties averaged) payout: F1 8, F2 6, F3 2.5, F4 2.5, F5 7, F6 2.5, F7 2.5, F8 5
    #                     indemnity: F1 7, F2 8, F3 5, F4 6, F5 2.5, F6 2.5, F7 2.5, F8 2.5
    # deviations from 4.5: Σ dx dy = 12, Σ dx² = Σ dy² = 37
    assert s["spearman"] == pytest.approx(12 / 37)


def test_undefined_scores_are_nan_not_zero(summary):
    s = summary.loc[("district", "3202")]  # F9 withheld, F10 a correct negative
    assert (s["farmers"], s["withheld"]) == (1, 1)
    assert (s["hits"], s["misses"], s["false_alarms"], s["correct_negatives"]) == (0, 0, 0, 1)
    for col in ("pod", "far", "threat_score", "unpaid_loss_share", "payout_balance", "spearman"):
        assert math.isnan(s[col]), col
    assert s["autp_indemnity"] == 0 and s["unpaid_loss_amount"] == 0  # F9's 6 M is not scored


def test_product_row_pools_its_farmers_and_counts_the_withheld(summary):
    s = summary.xs("product", level="level").iloc[0]
    assert (s["farmers"], s["withheld"]) == (9, 1)
    assert (s["hits"], s["misses"], s["false_alarms"], s["correct_negatives"]) == (2, 2, 2, 3)
    assert s["pod"] == 0.5 and s["far"] == 0.5 and s["threat_score"] == pytest.approx(1 / 3)
    assert s["unpaid_loss_share"] == pytest.approx(3.6 / 12.6)
    # with F10 (0, 0): ranks from 5, Σ dx dy = 18, Σ dx² = Σ dy² = 50
    assert s["spearman"] == pytest.approx(18 / 50)


def test_summary_shape_and_order():
    ledger = pd.concat([make_ledger(product="yield"), make_ledger()], ignore_index=True)
    out = basis_risk_summary(compare_farmers(ledger, make_claims()))
    assert list(out.columns) == list(SUMMARY_COLUMNS)
    assert list(zip(out["level"], out["product_id"], out["district_id"].fillna("-"), strict=True)) == [
        ("district", "rain", "3201"), ("district", "rain", "3202"), ("district", "yield", "3201"),
        ("district", "yield", "3202"), ("product", "rain", "-"), ("product", "yield", "-")]
    for col in ("farmers", "withheld", "hits", "unpaid_loss_amount", "index_payout", "autp_indemnity"):
        assert str(out[col].dtype) == "int64", col


def test_spearman_is_nan_when_constant_or_too_short():
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy ConstantInputWarning either
        assert math.isnan(spearman([0, 0, 0], [1, 2, 3]))
        assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
        assert math.isnan(spearman([1], [2]))
        assert math.isnan(spearman([], []))


# --- invariants -------------------------------------------------------------------------

farmer_rows = st.lists(
    st.tuples(st.sampled_from(["3201", "3202", "3271"]),
              st.one_of(st.just(0), st.integers(1, 10**9)),      # index net payout
              st.booleans(),                                      # withheld
              st.lists(st.tuples(st.booleans(), st.integers(1, 12 * 10**6)), max_size=3)),  # plots
    min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(rows=farmer_rows)
def test_scores_stay_in_range_and_counts_add_up(rows):
    ledger = make_ledger([(f"F{i}", d, 0 if w else p, "withheld_missing_data" if w else ("paid" if p else "no_payout"))
                          for i, (d, p, w, _) in enumerate(rows)])
    plots = [(f"A{i}", f"F{i}", f"F{i}-{k}", "paid" if paid else "declined", amount if paid else 0)
             for i, (*_, ps) in enumerate(rows) for k, (paid, amount) in enumerate(ps)]
    comparison = compare_farmers(ledger, make_claims(plots) if plots else make_claims().iloc[:0])
    assert len(comparison) == len(rows)
    scored = comparison[comparison["outcome"] != "withheld"]
    assert (scored["loss_event"] == (scored["autp_indemnity"] > 0)).all()
    assert (scored["payout_event"] == (scored["index_payout"] > 0)).all()
    out = basis_risk_summary(comparison)
    for col in ("pod", "far", "threat_score", "unpaid_loss_share"):
        values = out[col].dropna()
        assert ((values >= 0) & (values <= 1)).all(), col
    assert ((out["spearman"].dropna() >= -1 - 1e-12) & (out["spearman"].dropna() <= 1 + 1e-12)).all()
    cells = out["hits"] + out["misses"] + out["false_alarms"] + out["correct_negatives"]
    assert (cells == out["farmers"]).all()
    assert (out["unpaid_loss_amount"] <= out["autp_indemnity"]).all()
    assert (out["pod"].isna() == (out["hits"] + out["misses"] == 0)).all()
    assert (out["payout_balance"].isna() == (out["autp_indemnity"] == 0)).all()
    districts = out[out["level"] == "district"]
    product = out[out["level"] == "product"].iloc[0]
    assert product["farmers"] + product["withheld"] == len(rows)
    for col in ("farmers", "withheld", "hits", "misses", "false_alarms", "correct_negatives",
                "unpaid_loss_amount", "index_payout", "autp_indemnity"):
        assert districts[col].sum() == product[col], col
