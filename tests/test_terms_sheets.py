"""Term sheets the source documents describe (issue 12): hand-computed tables, one per rule.

Each expectation is worked out by hand in the comment beside it; the source of each rule is
named in its test's docstring.
"""

from __future__ import annotations

import numpy as np
import pytest
from panen.engine.errors import ConfigError, InputError
from panen.engine.maths.terms import (
    Terms,
    add_months,
    apply_terms,
    apply_terms_steps,
    round_ratio,
)
from pydantic import ValidationError


def terms(**kw) -> Terms:
    return Terms.model_validate(kw)


def days(*iso: str) -> np.ndarray:
    return np.array(iso, "datetime64[D]").astype(np.int64)


# --------------------------------------------------------------------------- 1. temporal deductible
def test_a_deductible_limited_to_the_first_three_months_applies_only_to_events_in_them():
    """Temporal franchise: the deductible applies to events in the first N months of the policy
    (Wikipedia (ru), «Франшиза (страхование)»). Policy from 1 Nov 2023, 3 months: up to 31 Jan 2024."""
    sheet = terms(deductible={"kind": "straight", "amount": 300_000, "first_months": 3})
    gross = np.array([5_000_000] * 4)
    context = {"policy_start": days(*["2023-11-01"] * 4),
               "event_date": days("2023-11-01", "2024-01-31", "2024-02-01", "2024-03-15")}
    deductible, net = apply_terms(gross, sheet, context=context)
    # in the window: 5,000,000 - 300,000 = 4,700,000; after it: the whole loss
    assert net.tolist() == [4_700_000, 4_700_000, 5_000_000, 5_000_000]
    assert deductible.tolist() == [300_000, 300_000, 0, 0]


def test_the_window_ends_on_the_same_day_months_later_or_the_months_last_day():
    # 30 Nov 2023 + 3 months = 29 Feb 2024 (leap year; February has no 30th)
    assert add_months(days("2023-11-30", "2023-08-31", "2024-01-31"), 3).astype("datetime64[D]").tolist() == \
        [np.datetime64("2024-02-29").item(), np.datetime64("2023-11-30").item(), np.datetime64("2024-04-30").item()]
    sheet = terms(deductible={"kind": "franchise", "amount": 35_000, "first_months": 3})
    context = {"policy_start": days("2023-11-30", "2023-11-30"), "event_date": days("2024-02-28", "2024-02-29")}
    _, net = apply_terms(np.array([25_000, 25_000]), sheet, context=context)
    assert net.tolist() == [0, 25_000]  # franchise 35,000 in the window; none on 29 Feb


def test_a_temporal_window_needs_event_and_start_dates_for_every_policy():
    sheet = terms(deductible={"kind": "straight", "amount": 1, "first_months": 3})
    with pytest.raises(ConfigError, match="event_date"):
        apply_terms(np.array([10]), sheet, context={"policy_start": days("2024-01-01")}, product="bi")
    missing = np.array(["2024-01-05", "NaT"], "datetime64[D]")
    with pytest.raises(InputError, match=r"'event_date'.*policy_id B"):
        apply_terms(np.array([10, 10]), sheet, product="bi", policy_ids=["A", "B"],
                    context={"policy_start": days("2024-01-01", "2024-01-01"), "event_date": missing})


# --------------------------------------------------------------------------- 3. rates of the sum insured
@pytest.mark.parametrize(("deductible", "gross", "sum_insured", "net"), [
    # 5 % of 6,000,000 = 300,000: a loss of 5,000,000 pays 4,700,000
    ({"kind": "straight", "rate": 0.05}, 5_000_000, 6_000_000, 4_700_000),
    # 5 % of 3,000,000 = 150,000 (the rate follows each policy's sum insured)
    ({"kind": "unconditional", "rate": 0.05}, 5_000_000, 3_000_000, 4_850_000),
    # 1 % of 6,000,000 = 60,000, below the minimum of 100,000
    ({"kind": "straight", "rate": 0.01, "minimum": 100_000}, 500_000, 6_000_000, 400_000),
    # franchise 3 % of 6,000,000 = 180,000: 179,999 pays nothing, 180,000 and more in full
    ({"kind": "franchise", "rate": 0.03}, 179_999, 6_000_000, 0),
    ({"kind": "franchise", "rate": 0.03}, 180_000, 6_000_000, 180_000),
    ({"kind": "franchise", "rate": 0.03}, 2_500_000, 6_000_000, 2_500_000),
    # 0.25 % of 1,234,567 = 3,086.4175 -> 3,086
    ({"kind": "straight", "rate": 0.0025}, 10_000, 1_234_567, 6_914),
])
def test_deductibles_and_franchises_as_a_rate_of_the_sum_insured(deductible, gross, sum_insured, net):
    """A franchise "may be set as a percentage of the sum insured or as a fixed amount"
    (Law No. 4015-1, art. 10 §9)."""
    _, paid = apply_terms(np.array([gross]), terms(deductible=deductible),
                          context={"sum_insured": np.array([sum_insured])})
    assert paid.tolist() == [net]


@pytest.mark.parametrize("deductible", [
    {"kind": "straight"},                                       # neither amount nor rate
    {"kind": "franchise", "amount": 1, "rate": 0.1},            # both
    {"kind": "straight", "amount": 1, "minimum": 5},            # a minimum belongs to a rate
    {"kind": "franchise", "rate": 0.1234567},                   # more than six decimals
    {"kind": "unconditional", "rate": 1.5},                     # not a fraction
])
def test_an_amount_or_a_rate_exactly_one(deductible):
    with pytest.raises(ValidationError):
        terms(deductible=deductible)


def test_a_rate_of_the_sum_insured_needs_the_sum_insured():
    with pytest.raises(ConfigError, match="sum_insured"):
        apply_terms(np.array([10]), terms(deductible={"kind": "franchise", "rate": 0.03}), context={})


# --------------------------------------------------------------------------- 4. rounding
AVERAGE = {"sum_insured": np.array([90_000_000]), "actual_value": np.array([110_000_000])}


@pytest.mark.parametrize(("rounding", "insurer"), [
    # 3,500,000 × 90 / 110 = 2,863,636.36...
    (None, 2_863_636),                                       # half-up (the default): insured 636,364
    ({"mode": "half_up"}, 2_863_636),
    ({"mode": "down", "party": "insured"}, 2_863_637),       # the source's print: insured 636,363.63 -> 636,363
    ({"mode": "up"}, 2_863_637),                              # the same on the insurer's side
    ({"mode": "down"}, 2_863_636),
    ({"mode": "half_up", "unit": 100}, 2_863_600),
    ({"mode": "half_up", "unit": 1000}, 2_864_000),
    ({"mode": "down", "unit": 1000}, 2_863_000),
    ({"mode": "up", "unit": 100}, 2_863_700),
])
def test_the_average_clause_example_under_each_rounding(rounding, insurer):
    """90 M insured of a 110 M value, loss 3.5 M (the source document's worked example):
    insurer 2,863,636 and insured 636,364 half-up; the document prints 2,863,637 + 636,363,
    the insured's share truncated."""
    sheet = terms(average_clause=True, **({"rounding": rounding} if rounding else {}))
    steps = apply_terms_steps(np.array([3_500_000]), sheet, context=AVERAGE)
    assert steps.net.tolist() == [insurer]
    assert 3_500_000 - insurer == {2_863_636: 636_364, 2_863_637: 636_363}.get(insurer, 3_500_000 - insurer)


def test_a_share_rounded_half_up_for_the_other_party_rounds_the_insurers_half_down():
    # 1,000,001 × 0.5 = 500,000.5: half-up to the insurer 500,001; half-up to the other party
    # (500,000.5 -> 500,001), so the insurer keeps the rest, 500,000
    gross = np.array([1_000_001])
    assert apply_terms(gross, terms(share=0.5))[1].tolist() == [500_001]
    assert apply_terms(gross, terms(share=0.5, rounding={"party": "insured"}))[1].tolist() == [500_000]


def test_rounding_to_a_unit_is_one_rounding_of_the_exact_net():
    # 2,099,000 × 0.5 = 1,049,500 exactly -> nearest 1,000 half-up = 1,050,000 (one rounding);
    # 2,098,998 × 0.5 = 1,049,499 -> 1,049,000
    # A straight deductible of 600 on 1,050,100 leaves 1,049,500 -> 1,050,000
    # (the gross allows it); on 1,050,099 it leaves 1,049,499 -> 1,049,000
    sheet = terms(share=0.5, rounding={"unit": 1000})
    assert apply_terms(np.array([2_099_000, 2_098_998]), sheet)[1].tolist() == [1_050_000, 1_049_000]
    sheet = terms(deductible={"kind": "straight", "amount": 600}, rounding={"unit": 1000})
    assert apply_terms(np.array([1_050_100, 1_050_099]), sheet)[1].tolist() == [1_050_000, 1_049_000]
    # where the nearest 1,000 is above the gross (1,049,600 - 100 = 1,049,500 -> 1,050,000 > 1,049,600),
    # the net is the largest multiple below it
    sheet = terms(deductible={"kind": "straight", "amount": 100}, rounding={"unit": 1000})
    assert apply_terms(np.array([1_049_600]), sheet)[1].tolist() == [1_049_000]


def test_a_net_rounded_up_never_exceeds_the_gross_the_limit_or_the_sum_insured():
    up = {"mode": "up", "unit": 1000}
    # the limit 1,049,900 caps the net: rounding up would pay 1,050,000, so 1,049,000
    assert apply_terms(np.array([1_049_600]), terms(limit=1_049_900, rounding=up))[1].tolist() == [1_049_000]
    # the gross itself: 50 rupiah rounded up to 1,000 would exceed it -> 0
    assert apply_terms(np.array([50, 1_000]), terms(rounding=up))[1].tolist() == [0, 1_000]
    # the sum insured, when given: gross 5,999,600 on a 5,999,800 sum insured -> not 6,000,000
    _, net = apply_terms(np.array([5_999_600]), terms(rounding=up), context={"sum_insured": np.array([5_999_800])})
    assert net.tolist() == [5_999_000]


def test_round_ratio_is_exact_where_a_float_is_not():
    # 0.145 × 100 is 14.499999999999998 in float64; exactly 14.5 -> 15 half-up, 14 half-down
    assert round_ratio(np.array([100]), 145, 1000).tolist() == [15]
    assert round_ratio(np.array([100]), 145, 1000, "half_down").tolist() == [14]
    # beyond int64 products: 9e15 × 9e15 worked in Python integers
    big = np.array([9_000_000_000_000_001])
    assert round_ratio(big, 9_000_000_000_000_000, 9_000_000_000_000_001).tolist() == [9_000_000_000_000_000]


def test_rounding_keys_are_checked():
    for bad in ({"mode": "nearest"}, {"unit": 10}, {"party": "broker"}, {"mode": "down", "extra": 1}):
        with pytest.raises(ValidationError):
            terms(rounding=bad)


# --------------------------------------------------------------------------- 5. time excess + indemnity period
@pytest.mark.parametrize(("sheet", "gross", "interruption", "daily", "net"), [
    # 40 days, 3 days' excess, 30 days' indemnity, Rp 100,000 a day: days 4..30 = 27 × 100,000
    ({"days": 3, "indemnity_days": 30, "daily_loss": True}, 5_000_000, 40, 100_000, 2_700_000),
    # 20 days (inside the indemnity period): days 4..20 = 17 × 100,000
    ({"days": 3, "indemnity_days": 30, "daily_loss": True}, 5_000_000, 20, 100_000, 1_700_000),
    # 27 × 200,000 = 5,400,000 is more than the loss entering the step: the loss, 5,000,000
    ({"days": 3, "indemnity_days": 30, "daily_loss": True}, 5_000_000, 40, 200_000, 5_000_000),
    # 3 days or less: nothing
    ({"days": 3, "indemnity_days": 30, "daily_loss": True}, 5_000_000, 3, 100_000, 0),
    # no daily loss: spread evenly, 4,000,000 × (30 - 3) / 40 = 2,700,000
    ({"days": 3, "indemnity_days": 30}, 4_000_000, 40, None, 2_700_000),
    # ... and 4,000,000 × (20 - 3) / 20 = 3,400,000 inside the period
    ({"days": 3, "indemnity_days": 30}, 4_000_000, 20, None, 3_400_000),
    # without an indemnity period (as before): 4,000,000 × 37 / 40 = 3,700,000
    ({"days": 3}, 4_000_000, 40, None, 3_700_000),
    # 1,000,000 × (9 - 2) / 9 = 777,777.77... -> 777,778 half-up
    ({"days": 2, "indemnity_days": 9}, 1_000_000, 9, None, 777_778),
    # past the period: 1,000,000 × (9 - 2) / 12 = 583,333.33... -> 583,333
    ({"days": 2, "indemnity_days": 9}, 1_000_000, 12, None, 583_333),
])
def test_time_excess_pays_from_day_n_plus_1_to_the_end_of_the_indemnity_period(sheet, gross, interruption,
                                                                                 daily, net):
    """ISO CP 00 30: the period of restoration begins 72 hours after the loss and ends on the
    earlier of repair and the end of cover; the first days' loss is "deducted from the final
    payment" (Black Fox glossary, "time element")."""
    context = {"interruption_days": np.array([interruption])}
    if daily is not None:
        context["daily_loss"] = np.array([daily])
    deductible, paid = apply_terms(np.array([gross]), terms(deductible={"kind": "time_excess", **sheet}),
                                   context=context)
    assert paid.tolist() == [net]
    assert (deductible + paid).tolist() == [gross]


def test_time_excess_pro_rata_follows_the_rounding_mode():
    # 1,000,000 × 7 / 9 = 777,777.77...: down 777,777, up 777,778
    sheet = {"deductible": {"kind": "time_excess", "days": 2, "indemnity_days": 9}}
    context = {"interruption_days": np.array([9])}
    assert apply_terms(np.array([1_000_000]), terms(**sheet, rounding={"mode": "down"}), context=context)[1] == 777_777
    assert apply_terms(np.array([1_000_000]), terms(**sheet, rounding={"mode": "up"}), context=context)[1] == 777_778


def test_time_excess_checks_its_period_and_its_daily_loss_column():
    with pytest.raises(ValidationError, match="indemnity_days"):
        terms(deductible={"kind": "time_excess", "days": 30, "indemnity_days": 30})
    sheet = terms(deductible={"kind": "time_excess", "days": 3, "daily_loss": True})
    with pytest.raises(ConfigError, match="daily_loss"):
        apply_terms(np.array([10]), sheet, context={"interruption_days": np.array([5])})
    assert sheet.context_columns == ("interruption_days", "daily_loss")


# --------------------------------------------------------------------------- 2. instalments (the model)
def test_instalments_are_a_count_of_at_least_two_months_apart():
    sheet = terms(deductible={"kind": "percent_of_loss", "rate": 0.10}, instalments={"count": 6})
    assert (sheet.instalments.count, sheet.instalments.every_months) == (6, 1)
    assert apply_terms(np.array([1_000_000]), sheet)[1].tolist() == [900_000]  # 10 % deductible
    for bad in ({"count": 1}, {"count": 6, "every_months": 0}, {"count": 6, "every": 1}):
        with pytest.raises(ValidationError):
            terms(instalments=bad)


def test_a_tiny_share_beyond_int64_is_still_exact():
    # 1e-20 is 1/10**20 (beyond int64): 10**12 × 1e-20 = 1e-8 -> 0 down/half-up, 1 up
    gross = np.array([10**12])
    assert apply_terms(gross, terms(share=1e-20))[1].tolist() == [0]
    assert apply_terms(gross, terms(share=1e-20, rounding={"mode": "up"}))[1].tolist() == [1]
