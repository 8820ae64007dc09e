"""Policy terms: hand-computed tables for each rule, the fixed order, and the config model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from panen.engine.errors import ConfigError, InputError
from panen.engine.maths.terms import (
    DEDUCTIBLE_KERNELS,
    Terms,
    apply_average_clause,
    apply_franchise_deductible,
    apply_limit,
    apply_share,
    apply_straight_deductible,
    apply_terms,
    apply_terms_steps,
    prepare_terms,
    rate_of,
    round_rupiah,
)


def terms(**kw) -> Terms:
    return Terms.model_validate(kw)


def test_straight_deductible_5m_loss_with_300k_deductible_pays_4_7m():
    deductible, net = apply_terms(np.array([5_000_000]), terms(deductible={"kind": "straight", "amount": 300_000}))
    assert net.tolist() == [4_700_000]
    assert deductible.tolist() == [300_000]


def test_straight_deductible_never_pays_below_zero():
    deductible, net = apply_terms(np.array([0, 200_000, 300_000, 300_001]),
                                  terms(deductible={"kind": "straight", "amount": 300_000}))
    assert net.tolist() == [0, 0, 0, 1]
    assert deductible.tolist() == [0, 200_000, 300_000, 300_000]


def test_franchise_35000_pays_nothing_on_25000_and_everything_on_40000():
    deductible, net = apply_terms(np.array([25_000, 40_000]), terms(deductible={"kind": "franchise", "amount": 35_000}))
    assert net.tolist() == [0, 40_000]
    assert deductible.tolist() == [25_000, 0]


def test_franchise_loss_equal_to_the_franchise_is_paid_in_full():
    # documented convention (OasisLMF calcrule 3, IRMI): "once it is met" the loss is paid
    _, net = apply_terms(np.array([34_999, 35_000]), terms(deductible={"kind": "franchise", "amount": 35_000}))
    assert net.tolist() == [0, 35_000]


@pytest.mark.parametrize(("gross", "sheet", "deductible", "net"), [
    # gross, terms, amount retained by the deductible, net
    (10_000_000, {"deductible": {"kind": "straight", "amount": 1_000_000}, "limit": 5_000_000}, 1_000_000, 5_000_000),
    (4_000_000, {"deductible": {"kind": "straight", "amount": 1_000_000}, "limit": 5_000_000}, 1_000_000, 3_000_000),
    (10_000_000, {"limit": 6_000_000}, 0, 6_000_000),
    (10_000_000, {"deductible": {"kind": "franchise", "amount": 100_000}, "limit": 6_000_000, "share": 0.5},
     0, 3_000_000),
    (1_000_001, {"share": 0.5}, 0, 500_001),      # 500,000.5 rounds half-up
    (999_999, {"share": 0.5}, 0, 500_000),        # 499,999.5 rounds half-up
    (50_000, {}, 0, 50_000),
])
def test_terms_apply_in_the_fixed_order_deductible_limit_share_round(gross, sheet, deductible, net):
    d, n = apply_terms(np.array([gross]), terms(**sheet))
    assert (d.tolist(), n.tolist()) == ([deductible], [net])
    assert d.dtype == np.int64 and n.dtype == np.int64


def test_no_terms_pays_gross_in_a_new_array():
    gross = np.array([0, 7, 50_000], dtype=np.int64)
    deductible, net = apply_terms(gross, None)
    assert net.tolist() == [0, 7, 50_000] and deductible.tolist() == [0, 0, 0]
    net[0] = 99
    assert gross[0] == 0  # not a view of the caller's array


def test_apply_terms_does_not_mutate_its_input():
    gross = np.array([25_000, 40_000])
    before = gross.copy()
    apply_terms(gross, terms(deductible={"kind": "straight", "amount": 30_000}, limit=5_000, share=0.9))
    np.testing.assert_array_equal(gross, before)


def test_apply_terms_refuses_float_or_negative_gross():
    with pytest.raises(TypeError, match="integer rupiah"):
        apply_terms(np.array([1.5]), None)
    with pytest.raises(ValueError, match=">= 0"):
        apply_terms(np.array([-1]), None)


def test_kernels_are_named_and_side_effect_free():
    gross = np.array([10, 20, 30])
    assert set(DEDUCTIBLE_KERNELS) == {"straight", "franchise"}
    assert apply_straight_deductible(gross, 15).tolist() == [0, 5, 15]
    assert apply_franchise_deductible(gross, 20).tolist() == [0, 20, 30]
    assert apply_limit(gross, 25).tolist() == [10, 20, 25]
    assert apply_limit(gross, None).tolist() == [10, 20, 30]
    assert apply_share(gross, 0.25).tolist() == [3, 5, 8]  # 2.5 -> 3, 7.5 -> 8
    assert gross.tolist() == [10, 20, 30]


def test_prepare_turns_terms_into_amounts():
    p = prepare_terms(terms(deductible={"kind": "franchise", "amount": 100_000}, limit=9, share=0.5), np.array([1]))
    assert (p.deductible_rule, p.deductible_amount, p.limit, p.share) == ("franchise", 100_000, 9, 0.5)
    assert prepare_terms(None, np.array([1])).deductible_rule is None


@pytest.mark.parametrize("sheet", [
    {"deductible": {"kind": "percent_of_loss", "amount": 1}},  # amount is not a key of this rule
    {"deductible": {"kind": "percent_of_loss", "rate": 1.5}},
    {"deductible": {"kind": "percent_of_loss", "rate": 0.1, "minimum": -1}},
    {"deductible": {"kind": "percent_of_loss", "rate": 1 / 3}},  # more than six decimals
    {"deductible": {"kind": "unconditional"}},
    {"deductible": {"kind": "time_excess"}},
    {"deductible": {"kind": "time_excess", "days": -1}},
    {"deductible": {"kind": "dynamic", "schedule": []}},
    {"deductible": {"kind": "dynamic", "schedule": [0.35, 0.05]}},  # must not decrease
    {"deductible": {"kind": "dynamic", "schedule": [0.05, 1.2]}},
    {"deductible": {"kind": "disappearing", "amount": 1}},  # not a rule
    {"average_clause": "sometimes"},
    {"deductible": {"kind": "straight", "amount": -1}},
    {"deductible": {"kind": "straight"}},
    {"deductible": {"kind": "straight", "amount": 1, "rate": 0.1}},  # unknown key
    {"deductible": {"amount": 1}},  # kind is required
    {"limit": 0},
    {"share": 1.5},
    {"share": 0},
    {"excess": 5},
])
def test_bad_term_sheets_are_rejected_at_load_time(sheet):
    with pytest.raises(ValidationError):
        Terms.model_validate(sheet)


def test_terms_are_immutable():
    t = terms(limit=5)
    with pytest.raises(ValidationError):
        t.limit = 6


@pytest.mark.parametrize(("amount", "rupiah"), [
    (2.5, 3), (2.4999, 2), (3.5, 4), (0.0, 0), (0.49, 0),
    (0.145 * 100, 15),  # 14.499999999999998 in binary: a decimal half, rounded up
    (1.15 * 100, 115),
    (-2.5, -3),
    (4_503_599_627_370_495.0, 4_503_599_627_370_495),
    (0.4999998, 0),                      # a true amount below a half (the old 1e-6 tolerance paid 1)
    (2_000_000.4999999, 2_000_000),
    (0.175 * 100, 18),                   # 17.499999999999996: a decimal half in binary
    (float(2**52 + 1), 2**52 + 1),       # whole already: never a rupiah more
    (float(2**53 - 1), 2**53 - 1),
])
def test_round_rupiah_is_half_up_to_the_rupiah(amount, rupiah):
    out = round_rupiah(amount)
    assert out == rupiah and isinstance(out, np.integer)


@given(st.integers(min_value=0, max_value=2**53 - 1), st.floats(min_value=0.0, max_value=1.0))
def test_a_payout_never_exceeds_the_sum_insured(si, rate):
    gross = int(round_rupiah(float(si) * rate))
    assert 0 <= gross <= si
    assert int(round_rupiah(float(si) * 1.0)) == si


def test_round_rupiah_refuses_nan_inf_and_inexact_amounts():
    for bad in (np.nan, np.inf, float(2**53)):
        with pytest.raises(ValueError):
            round_rupiah(np.array([1.0, bad]))
    assert round_rupiah(np.array([], dtype=float)).dtype == np.int64


# --------------------------------------------------------------------------- the later rules


def test_unconditional_50000_on_a_75000_loss_pays_25000():
    deductible, net = apply_terms(np.array([75_000]), terms(deductible={"kind": "unconditional", "amount": 50_000}))
    assert (deductible.tolist(), net.tolist()) == ([50_000], [25_000])


def test_unconditional_applies_even_above_the_amount_unlike_the_franchise():
    # the literature's contrast is conditional (franchise) vs unconditional; the arithmetic is the straight one
    gross = np.array([0, 40_000, 50_000, 50_001, 75_000, 10_000_000])
    uncond = apply_terms(gross, terms(deductible={"kind": "unconditional", "amount": 50_000}))
    straight = apply_terms(gross, terms(deductible={"kind": "straight", "amount": 50_000}))
    franchise = apply_terms(gross, terms(deductible={"kind": "franchise", "amount": 50_000}))
    assert uncond[1].tolist() == [0, 0, 0, 1, 25_000, 9_950_000]
    assert uncond[0].tolist() == straight[0].tolist() and uncond[1].tolist() == straight[1].tolist()
    assert franchise[1].tolist() == [0, 0, 50_000, 50_001, 75_000, 10_000_000]


@pytest.mark.parametrize(("gross", "deductible", "net"), [
    (8_000_000, 8_000_000, 0),               # 10 % = 800,000 < minimum 10 M; nothing left
    (50_000_000, 10_000_000, 40_000_000),    # 10 % = 5 M < minimum
    (100_000_000, 10_000_000, 90_000_000),   # 10 % = the minimum
    (150_000_000, 15_000_000, 135_000_000),  # 10 % above the minimum
    (150_000_005, 15_000_001, 135_000_004),  # 15,000,000.5 rounds half-up
])
def test_percent_of_loss_10_percent_at_least_rp_10_million(gross, deductible, net):
    sheet = terms(deductible={"kind": "percent_of_loss", "rate": 0.10, "minimum": 10_000_000})
    d, n = apply_terms(np.array([gross]), sheet)
    assert (d.tolist(), n.tolist()) == ([deductible], [net])


def test_time_excess_pro_rates_the_loss_by_the_days_after_the_excess():
    sheet = terms(deductible={"kind": "time_excess", "days": 3})
    gross = np.array([1_000_000, 1_000_000, 1_000_000, 1_000_000, 700_000, 0])
    days = np.array([10, 3, 2, 0, 7, 10])
    d, n = apply_terms(gross, sheet, context={"interruption_days": days})
    # 1 M × 7/10; 3 and 2 days are within the excess; 0 days: nothing; 700,000 × 4/7 = 400,000
    assert n.tolist() == [700_000, 0, 0, 0, 400_000, 0]
    assert d.tolist() == [300_000, 1_000_000, 1_000_000, 1_000_000, 300_000, 0]
    _, n = apply_terms(np.array([100_000, 100_001]), sheet, context={"interruption_days": np.array([6, 6])})
    assert n.tolist() == [50_000, 50_001]  # 100,001 × 3/6 = 50,000.5 rounds half-up


def test_dynamic_deductible_rises_with_the_event_number():
    sheet = terms(deductible={"kind": "dynamic", "schedule": [0.05, 0.35, 0.80]})
    gross = np.array([70_000, 100_000, 100_000, 100_000])
    d, n = apply_terms(gross, sheet, context={"event_number": np.array([1, 2, 3, 7])})
    assert n.tolist() == [66_500, 65_000, 20_000, 20_000]  # the last rate holds for later events
    assert d.tolist() == [3_500, 35_000, 80_000, 80_000]


def test_average_clause_90m_insured_of_110m_loss_3_5m_pays_2863636():
    sheet = terms(average_clause=True)
    context = {"sum_insured": np.array([90_000_000]), "actual_value": np.array([110_000_000])}
    steps = apply_terms_steps(np.array([3_500_000]), sheet, context=context)
    assert steps.net.tolist() == [2_863_636]                           # 2,863,636.36
    assert (steps.gross - steps.net).tolist() == [636_364]             # borne by the insured
    assert steps.deductible.tolist() == [0]                            # not a deductible
    d, n = apply_terms(np.array([3_500_000]), sheet, context=context)
    assert (d.tolist(), n.tolist()) == ([0], [2_863_636])


def test_average_clause_does_nothing_when_fully_insured():
    context = {"sum_insured": np.array([110, 120, 90]), "actual_value": np.array([110, 100, 110])}
    _, n = apply_terms(np.array([55, 55, 55]), terms(average_clause=True), context=context)
    assert n.tolist() == [55, 55, 45]  # 55 × 90/110 = 45
    assert apply_average_clause(np.array([11]), 1, 2).tolist() == [6]  # 5.5 rounds half-up


def test_average_applies_before_the_deductible_then_limit_then_share():
    # gross 3.5 M -> average 90/110: 2,863,636 -> straight 300,000: 2,563,636
    # -> limit 2,500,000 -> share 0.5: 1,250,000
    sheet = terms(average_clause=True, deductible={"kind": "straight", "amount": 300_000},
                  limit=2_500_000, share=0.5)
    context = {"sum_insured": np.array([90_000_000]), "actual_value": np.array([110_000_000])}
    s = apply_terms_steps(np.array([3_500_000]), sheet, context=context)
    assert [x.tolist() for x in (s.after_average, s.after_deductible, s.after_limit, s.net)] == [
        [2_863_636], [2_563_636], [2_500_000], [1_250_000]]
    assert s.deductible.tolist() == [300_000]


def test_percent_of_loss_is_taken_from_the_averaged_loss():
    # 200 M gross, insured 100 M of 200 M -> 100 M; 10 % = 10 M (not 20 M of the gross)
    sheet = terms(average_clause=True, deductible={"kind": "percent_of_loss", "rate": 0.1})
    context = {"sum_insured": np.array([100_000_000]), "actual_value": np.array([200_000_000])}
    d, n = apply_terms(np.array([200_000_000]), sheet, context=context)
    assert (d.tolist(), n.tolist()) == ([10_000_000], [90_000_000])


@pytest.mark.parametrize(("sheet", "column", "rule"), [
    ({"average_clause": True}, "actual_value", "average_clause"),
    ({"deductible": {"kind": "time_excess", "days": 3}}, "interruption_days", "time_excess"),
    ({"deductible": {"kind": "dynamic", "schedule": [0.1]}}, "event_number", "dynamic"),
])
def test_a_rule_without_its_context_column_is_a_config_error_naming_product_rule_column(sheet, column, rule):
    with pytest.raises(ConfigError) as err:
        apply_terms(np.array([1_000]), terms(**sheet), context={"sum_insured": np.array([5])}, product="kendaraan")
    message = str(err.value)
    assert "'kendaraan'" in message and repr(rule) in message and repr(column) in message
    assert err.value.column == column


def test_a_policy_without_actual_value_under_an_average_clause_is_an_input_error():
    context = {"sum_insured": np.array([90, 90, 90]),
               "actual_value": np.ma.MaskedArray([110, 0, 110], mask=[False, True, False])}
    with pytest.raises(InputError) as err:
        apply_terms(np.array([10, 10, 10]), terms(average_clause=True), context=context, product="kendaraan",
                    policy_ids=["A", "B", "C"])
    assert "'kendaraan'" in str(err.value) and "policy_id B" in str(err.value) and "1 policy (policy_id B)" in str(err.value)
    assert err.value.column == "actual_value"
    context["actual_value"] = np.array([110.0, np.nan, 110.0])  # NaN is missing too
    with pytest.raises(InputError, match="lack it"):
        apply_terms(np.array([10, 10, 10]), terms(average_clause=True), context=context)


@pytest.mark.parametrize(("column", "values", "sheet"), [
    ("event_number", [0], {"deductible": {"kind": "dynamic", "schedule": [0.1]}}),     # 1-based
    ("event_number", [1.5], {"deductible": {"kind": "dynamic", "schedule": [0.1]}}),
    ("interruption_days", [-1], {"deductible": {"kind": "time_excess", "days": 1}}),
    ("actual_value", [0], {"average_clause": True}),
])
def test_invalid_context_values_are_input_errors(column, values, sheet):
    context = {"sum_insured": np.array([5]), column: np.array(values)}
    with pytest.raises(InputError, match="whole number"):
        apply_terms(np.array([10]), terms(**sheet), context=context)


def test_context_is_read_only_for_the_rules_that_need_it():
    # a straight deductible with an incomplete actual_value column is fine: nobody reads it
    context = {"actual_value": np.array([np.nan])}
    _, n = apply_terms(np.array([10]), terms(deductible={"kind": "straight", "amount": 3}), context=context)
    assert n.tolist() == [7]
    assert terms(average_clause=True, deductible={"kind": "dynamic", "schedule": [0.1]}).context_columns == (
        "sum_insured", "actual_value", "event_number")
    assert terms(limit=5).context_columns == ()


def test_prepare_turns_percentages_into_amounts():
    p = prepare_terms(terms(deductible={"kind": "percent_of_loss", "rate": 0.1, "minimum": 5}),
                      np.array([10, 1_000]))
    assert (p.deductible_kind, p.deductible_rule, p.deductible_amount.tolist()) == (
        "percent_of_loss", "straight", [5, 100])


def test_rate_of_is_exact_half_up_for_large_losses():
    loss = np.array([0, 5, 15, 2**52 + 5, 9_007_199_254_740_991])
    assert rate_of(loss, 500_000).tolist() == [0, 3, 8, 2**51 + 3, 4_503_599_627_370_496]
    assert rate_of(loss, 1_000_000).tolist() == loss.tolist()
