"""The premium rule (panen.engine.maths.premium), against hand-computed amounts.

Sources: the source document's car-insurance example (rate on the sum insured, policy fee,
stamp duty, no-claim discount on renewal); Permentan No. 40/2015 and the AUTP Pedoman
Teknis (3 % premium, 80 % government subsidy: 180,000 = 144,000 + 36,000 per ha);
UU No. 10/2020 (bea meterai: a tax on the document, not premium); OJK rate bands
(SE OJK No. 6/SEOJK.05/2017: batas bawah / batas atas).
"""

from __future__ import annotations

import numpy as np
import pytest
from panen.engine.maths.premium import (
    PREMIUM_COLUMNS,
    PremiumTerms,
    TariffBand,
    apply_tariff,
    no_claim_discount_rate,
    policy_premiums,
    split_subsidy,
)
from pydantic import ValidationError

CAR = PremiumTerms(rate=0.0063, policy_fee=25_000, stamp_duty=12_000, no_claim_discount=[0.10])


def test_the_car_insurance_example_first_year():
    """175,000,000 × 0.63 % = 1,102,500; + policy fee 25,000 + stamp duty 12,000 = 1,139,500."""
    p = policy_premiums([175_000_000], CAR.rate, terms=CAR, no_claim_years=[0]).iloc[0]
    assert p["gross_premium"] == 1_102_500
    assert p["no_claim_discount"] == 0
    assert p["rate_premium"] == 1_102_500
    assert p["charges"] == 37_000
    assert p["premium"] == 1_139_500
    assert p["subsidy"] == 0 and p["farmer_share"] == 1_139_500  # a motor policy has no subsidy


def test_the_car_insurance_example_renewal_with_a_no_claim_discount():
    """Renewal at 160,000,000: 1,008,000 − 10 % = 907,200; the fee and duty are not discounted: + 37,000 = 944,200."""
    p = policy_premiums([160_000_000], CAR.rate, terms=CAR, no_claim_years=[1]).iloc[0]
    assert p["gross_premium"] == 1_008_000
    assert p["no_claim_discount"] == 100_800
    assert p["rate_premium"] == 907_200
    assert p["premium"] == 944_200


def test_both_years_in_one_call_keep_the_columns_in_order():
    out = policy_premiums([175_000_000, 160_000_000], 0.0063, terms=CAR, no_claim_years=[0, 1])
    assert list(out.columns) == list(PREMIUM_COLUMNS)
    assert out["premium"].tolist() == [1_139_500, 944_200]
    assert out["tariff_flag"].tolist() == ["", ""]


def test_the_autp_premium_per_hectare():
    """AUTP: 3 % of Rp 6,000,000/ha = 180,000, of which the government pays 80 % = 144,000, the farmer 36,000."""
    autp = PremiumTerms(rate=0.03, subsidy_share=0.8)
    p = policy_premiums([6_000_000, 3_000_000], autp.rate, terms=autp)
    assert p["premium"].tolist() == [180_000, 90_000]
    assert p["subsidy"].tolist() == [144_000, 72_000]
    assert p["farmer_share"].tolist() == [36_000, 18_000]


def test_fees_and_stamp_duty_are_not_subsidised():
    """Subsidy 80 % of the rate premium only (Permentan 40/2015 subsidises premium); the policyholder pays the charges.

    SI 6,000,000 at 3 % = 180,000; subsidy 144,000; charges 25,000 + 10,000 = 35,000;
    premium 215,000; farmer 36,000 + 35,000 = 71,000.
    """
    t = PremiumTerms(rate=0.03, subsidy_share=0.8, policy_fee=25_000, stamp_duty=10_000)
    p = policy_premiums([6_000_000], 0.03, terms=t).iloc[0]
    assert (p["premium"], p["subsidy"], p["farmer_share"]) == (215_000, 144_000, 71_000)


def test_the_subsidy_is_on_the_discounted_rate_premium():
    """SI 10,000,000 at 2 % = 200,000; 15 % NCD (two claim-free years) = 30,000 → 170,000; 80 % = 136,000."""
    t = PremiumTerms(rate=0.02, subsidy_share=0.8, no_claim_discount=[0.10, 0.15], stamp_duty=10_000)
    p = policy_premiums([10_000_000], 0.02, terms=t, no_claim_years=[2]).iloc[0]
    assert (p["gross_premium"], p["no_claim_discount"], p["rate_premium"]) == (200_000, 30_000, 170_000)
    assert (p["subsidy"], p["premium"], p["farmer_share"]) == (136_000, 180_000, 44_000)


def test_no_claim_schedule_holds_its_last_step_and_missing_records_earn_nothing():
    assert no_claim_discount_rate([0, 1, 2, 3, 9, np.nan], [0.1, 0.15, 0.2], 6).tolist() == \
        [0.0, 0.1, 0.15, 0.2, 0.2, 0.0]
    assert no_claim_discount_rate(None, [0.1], 2).tolist() == [0.0, 0.0]
    assert no_claim_discount_rate([3, 4], [], 2).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="whole numbers"):
        no_claim_discount_rate([-1], [0.1], 1)
    with pytest.raises(ValueError, match="whole numbers"):
        no_claim_discount_rate([1.5], [0.1], 1)


def test_rounding_is_half_up_once_per_amount_and_the_parts_reconcile():
    """SI 1,000,050 at 1.23 % = 12,300.615 → 12,301; 10 % NCD = 1,230.1 → 1,230; 11,071 × 0.5 = 5,535.5 → 5,536."""
    t = PremiumTerms(subsidy_share=0.5, no_claim_discount=[0.10], policy_fee=1)
    p = policy_premiums([1_000_050], 0.0123, terms=t, no_claim_years=[1]).iloc[0]
    assert (p["gross_premium"], p["no_claim_discount"], p["rate_premium"]) == (12_301, 1_230, 11_071)
    assert (p["subsidy"], p["premium"], p["farmer_share"]) == (5_536, 11_072, 5_536)


def test_reconciliation_holds_for_many_policies():
    rng = np.random.default_rng(7)
    si = rng.integers(0, 500_000_000, 2000)
    rate = rng.uniform(0, 0.2, 2000)
    t = PremiumTerms(subsidy_share=0.7, policy_fee=20_000, stamp_duty=10_000, no_claim_discount=[0.05, 0.1])
    p = policy_premiums(si, rate, terms=t, no_claim_years=rng.integers(0, 4, 2000))
    assert (p["gross_premium"] - p["no_claim_discount"] + p["charges"] == p["premium"]).all()
    assert (p["subsidy"] + p["farmer_share"] == p["premium"]).all()
    assert (p["subsidy"] <= p["rate_premium"]).all() and (p["farmer_share"] >= p["charges"]).all()
    assert p[["gross_premium", "premium", "subsidy", "farmer_share"]].dtypes.eq(np.int64).all()


def test_split_subsidy_of_the_autp_premium():
    s, f = split_subsidy(np.array([180_000, 3]), 0.8)
    assert s.tolist() == [144_000, 2] and f.tolist() == [36_000, 1]  # 2.4 → 2: the farmer's remainder is 1


# --------------------------------------------------------------------------- tariff band
def test_rates_outside_the_band_are_clamped_and_flagged():
    band = TariffBand(floor=0.02, ceiling=0.05)
    rate, flag = apply_tariff([0.01, 0.02, 0.035, 0.05, 0.08, np.nan], band)
    assert rate[:5].tolist() == [0.02, 0.02, 0.035, 0.05, 0.05] and np.isnan(rate[5])
    assert flag.tolist() == ["below_floor", "", "", "", "above_ceiling", ""]


def test_a_one_sided_band_clamps_one_side_only():
    rate, flag = apply_tariff([0.001, 0.9], TariffBand(floor=0.005))
    assert rate.tolist() == [0.005, 0.9] and flag.tolist() == ["below_floor", ""]
    rate, flag = apply_tariff([0.001, 0.9], TariffBand(ceiling=0.1))
    assert rate.tolist() == [0.001, 0.1] and flag.tolist() == ["", "above_ceiling"]


def test_the_premium_is_computed_on_the_clamped_rate():
    """A 1 % rate under a 2 % floor: SI 10,000,000 × 2 % = 200,000, flagged below_floor."""
    t = PremiumTerms(tariff=TariffBand(floor=0.02, ceiling=0.05))
    p = policy_premiums([10_000_000, 10_000_000], [0.01, 0.10], terms=t)
    assert p["premium"].tolist() == [200_000, 500_000]
    assert p["premium_rate"].tolist() == [0.02, 0.05]
    assert p["tariff_flag"].tolist() == ["below_floor", "above_ceiling"]


@pytest.mark.parametrize("bad, match", [
    ({"rate": 0.01, "tariff": {"floor": 0.02}}, "outside the tariff band"),
    ({"rate": 0.09, "tariff": {"floor": 0.02, "ceiling": 0.05}}, "outside the tariff band"),
    ({"tariff": {"floor": 0.05, "ceiling": 0.02}}, "above its ceiling"),
    ({"tariff": {}}, "floor, a ceiling or both"),
    ({"no_claim_discount": [0.1, 1.0]}, r"\[0, 1\)"),
    ({"subsidy_share": 1.2}, "less than or equal to 1"),
    ({"policy_fee": -1}, "greater than or equal to 0"),
    ({"rate": 0.03, "surcharge": 5}, "Extra inputs"),
])
def test_premium_terms_refuse_what_cannot_be_filed(bad, match):
    with pytest.raises(ValidationError, match=match):
        PremiumTerms.model_validate(bad)


def test_bad_amounts_are_errors_not_premiums():
    with pytest.raises(ValueError, match="finite"):
        policy_premiums([np.nan], 0.03)
    with pytest.raises(ValueError, match="finite"):
        policy_premiums([1_000], -0.01)
    with pytest.raises(ValueError, match="2 rates for 1"):
        policy_premiums([1_000], [0.01, 0.02])
