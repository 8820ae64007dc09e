"""Pricing maths against hand-computed numbers (every expected value is worked out in the
comments, never by calling the code under test)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from panen.engine.errors import ConfigError, DataQualityError, InputError
from panen.engine.research.pricing import (
    buhlmann,
    buhlmann_straub,
    burn_cost,
    detrend_linear,
    gross_premium_rate,
    portfolio_payouts,
    premium_split,
    probable_maximum_loss,
    return_period_losses,
    season_portfolio,
)


def history(rates_by_district: dict[str, list[float]], *, product_id: str = "rain", start: int = 2001,
            exposure: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Tidy simulation table: one row per district and season from lists of payout rates."""
    rows = []
    for district, rates in rates_by_district.items():
        for j, rate in enumerate(rates):
            row = {"district_id": district, "product_id": product_id, "season": start + j, "payout_rate": rate}
            if exposure is not None:
                row["exposure"] = exposure[district][j]
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- burn cost


def test_burn_cost_standard_error_and_frequency_of_a_five_season_history():
    t = history({"3212": [0.00, 0.02, 0.00, 0.05, 0.01]})
    out = burn_cost(t)
    row = out.iloc[0]
    # mean = 0.08 / 5 = 0.016
    # deviations −0.016, 0.004, −0.016, 0.034, −0.006 → squares 0.000256, 0.000016, 0.000256, 0.001156,
    # 0.000036 → sum 0.00172; sd = sqrt(0.00172 / 4) = sqrt(0.00043) = 0.0207364
    # SE = 0.0207364 / sqrt(5) = 0.00927362; frequency = 3 / 5; max = 0.05
    assert list(out.columns) == ["product_id", "district_id", "seasons", "missing", "burn_cost", "std",
                                 "standard_error", "frequency", "max_rate"]
    assert (row["product_id"], row["district_id"], row["seasons"], row["missing"]) == ("rain", "3212", 5, 0)
    assert row["burn_cost"] == pytest.approx(0.016)
    assert row["std"] == pytest.approx(math.sqrt(0.00043))
    assert row["standard_error"] == pytest.approx(0.00927362, rel=1e-6)
    assert row["frequency"] == pytest.approx(0.6)
    assert row["max_rate"] == pytest.approx(0.05)


def test_burn_cost_leaves_missing_seasons_out_and_counts_them():
    t = history({"A": [0.1, np.nan, 0.3], "B": [0.0, 0.0, 0.2]})
    out = burn_cost(t).set_index("district_id")
    # A: (0.1 + 0.3) / 2 = 0.2 over 2 seasons, 1 missing — never (0.1 + 0 + 0.3) / 3
    assert out.loc["A", "seasons"] == 2 and out.loc["A", "missing"] == 1
    assert out.loc["A", "burn_cost"] == pytest.approx(0.2)
    assert out.loc["B", "burn_cost"] == pytest.approx(0.2 / 3)
    assert out.loc["B", "frequency"] == pytest.approx(1 / 3)


def test_burn_cost_pools_districts_when_grouped_by_product_only():
    t = history({"A": [0.1, 0.3], "B": [0.0, 0.0]})
    out = burn_cost(t, by=("product_id",))
    # 4 district-seasons: (0.1 + 0.3 + 0 + 0) / 4 = 0.1
    assert len(out) == 1 and out.loc[0, "seasons"] == 4
    assert out.loc[0, "burn_cost"] == pytest.approx(0.1)


def test_detrended_burn_cost_removes_a_linear_trend_at_the_last_season_level():
    # 0.00, 0.01, ..., 0.04 is a pure trend: every season re-centred at 2005 is 0.04
    t = history({"A": [0.00, 0.01, 0.02, 0.03, 0.04]})
    row = burn_cost(t, detrend=True).iloc[0]
    assert row["burn_cost"] == pytest.approx(0.04)
    assert row["std"] == pytest.approx(0.0, abs=1e-12)
    assert burn_cost(t).iloc[0]["burn_cost"] == pytest.approx(0.02)


def test_detrended_rates_are_clipped_to_the_unit_interval():
    # t centred −2..2, y = 0.3, 0.2, 0.1, 0, 0: Σ t y = −0.6 − 0.2 = −0.8, Σ t² = 10 → β = −0.08
    # y − β (t − 2): 0.3 − 0.32, 0.2 − 0.24, 0.1 − 0.16, 0 − 0.08, 0 → −0.02, −0.04, −0.06, −0.08, 0
    # clipped to 0 everywhere → burn cost 0, frequency 0
    t = history({"A": [0.3, 0.2, 0.1, 0.0, 0.0]})
    row = burn_cost(t, detrend=True).iloc[0]
    assert row["burn_cost"] == 0.0 and row["frequency"] == 0.0


def test_detrend_linear_of_an_index_recentres_at_the_latest_season():
    # y = 10, 14, 12, 18 over 1..4: t̄ = 2.5, ȳ = 13.5; Σ (t − t̄)(y − ȳ) = (−1.5)(−3.5) + (−0.5)(0.5)
    # + (0.5)(−1.5) + (1.5)(4.5) = 5.25 − 0.25 − 0.75 + 6.75 = 11; Σ (t − t̄)² = 5 → β = 2.2
    # y − 2.2 (t − 4) = 10 + 6.6, 14 + 4.4, 12 + 2.2, 18 → 16.6, 18.4, 14.2, 18
    out = detrend_linear([10.0, 14.0, 12.0, 18.0], [1, 2, 3, 4])
    np.testing.assert_allclose(out, [16.6, 18.4, 14.2, 18.0])
    # re-centred elsewhere: y − 2.2 (t − 1) → 10, 11.8, 7.6, 11.4
    np.testing.assert_allclose(detrend_linear([10.0, 14.0, 12.0, 18.0], [1, 2, 3, 4], to_season=1),
                               [10.0, 11.8, 7.6, 11.4])


def test_detrending_needs_three_seasons():
    with pytest.raises(DataQualityError, match="three distinct seasons"):
        burn_cost(history({"A": [0.1, 0.2]}), detrend=True)


def test_burn_cost_rejects_rates_outside_the_unit_interval_naming_row_and_column():
    with pytest.raises(InputError) as err:
        burn_cost(history({"A": [0.1, 1.5]}))
    assert err.value.row == 2 and err.value.column == "payout_rate"


def test_burn_cost_does_not_mutate_its_input():
    t = history({"A": [0.1, 0.2, 0.4]})
    before = t.copy()
    burn_cost(t, detrend=True)
    pd.testing.assert_frame_equal(t, before)


# --------------------------------------------------------------------------- loadings and subsidy


def test_gross_rate_of_the_seed_example():
    # 0.4 % × (1 + 0.25 + 0.10) = 0.4 % + 0.1 % + 0.04 % = 0.54 % (the seed's own text prints 0.52 %, an arithmetic slip)
    assert gross_premium_rate(0.004, expense_loading=0.25, profit_loading=0.10) == pytest.approx(0.0054)


def test_gross_rate_keeps_the_index_of_a_series():
    pure = pd.Series([0.01, 0.02], index=["A", "B"])
    out = gross_premium_rate(pure, expense_loading=0.2, profit_loading=0.0)
    assert list(out.index) == ["A", "B"]
    np.testing.assert_allclose(out.to_numpy(), [0.012, 0.024])


def test_std_risk_load_adds_factor_times_the_standard_deviation():
    # history 0, 0.02, 0, 0.05, 0.01: sd = sqrt(0.00043) (see the burn-cost test), pure 0.016
    # 0.016 × 1.35 + 0.5 × 0.0207364 = 0.0216 + 0.0103682 = 0.0319682
    h = [0.0, 0.02, 0.0, 0.05, 0.01]
    out = gross_premium_rate(0.016, expense_loading=0.25, profit_loading=0.10,
                             risk_load={"kind": "std", "factor": 0.5}, history=h)
    assert out == pytest.approx(0.0216 + 0.5 * math.sqrt(0.00043))


def test_tail_risk_load_adds_factor_times_var_minus_mean():
    # history sorted 0, 0, 0.01, 0.02, 0.05 (n = 5): linear quantile at 0.9 → position 0.9 × 4 = 3.6
    # → 0.02 + 0.6 × (0.05 − 0.02) = 0.038; mean 0.016 → VaR − mean = 0.022; × factor 1 = 0.022
    # gross = 0.016 × 1.0 + 0.022 = 0.038
    h = [0.0, 0.02, 0.0, 0.05, 0.01]
    out = gross_premium_rate(0.016, expense_loading=0.0, profit_loading=0.0,
                             risk_load={"kind": "tail", "quantile": 0.9, "factor": 1.0}, history=h)
    assert out == pytest.approx(0.038)


def test_tail_risk_load_is_floored_at_zero():
    # 19 zeros and one 1.0: mean 0.05, 0.9-quantile 0 → VaR − mean < 0 → load 0
    h = [0.0] * 19 + [1.0]
    out = gross_premium_rate(0.05, expense_loading=0.0, profit_loading=0.0,
                             risk_load={"kind": "tail", "quantile": 0.9, "factor": 2.0}, history=h)
    assert out == pytest.approx(0.05)


def test_risk_load_per_group_takes_history_on_the_last_axis():
    pure = np.array([0.1, 0.0])
    hist = np.array([[0.0, 0.2], [0.0, 0.0]])  # sd: 0.141421, 0
    out = gross_premium_rate(pure, expense_loading=0.0, profit_loading=0.0,
                             risk_load={"kind": "std", "factor": 1.0}, history=hist)
    np.testing.assert_allclose(out, [0.1 + math.sqrt(0.02), 0.0])


@pytest.mark.parametrize("kwargs, match", [
    ({"expense_loading": -0.1, "profit_loading": 0.1}, "expense_loading"),
    ({"expense_loading": 0.1, "profit_loading": 0.1, "risk_load": {"kind": "std", "factor": 1}}, "history"),
    ({"expense_loading": 0.1, "profit_loading": 0.1, "risk_load": {"kind": "std", "factor": 1, "q": 2},
      "history": [0.0, 0.1]}, "unknown key"),
    ({"expense_loading": 0.1, "profit_loading": 0.1, "risk_load": {"kind": "tail", "factor": 1, "quantile": 1.5},
      "history": [0.0, 0.1]}, "quantile"),
    ({"expense_loading": 0.1, "profit_loading": 0.1, "risk_load": {"kind": "cvar", "factor": 1},
      "history": [0.0, 0.1]}, "risk_load"),
])
def test_bad_loadings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        gross_premium_rate(0.01, **kwargs)


def test_premium_split_of_the_autp_premium():
    # 3 % of Rp 6,000,000 = Rp 180,000; 80 % subsidy = Rp 144,000; farmer 20 % = Rp 36,000
    assert premium_split(0.03, 6_000_000, subsidy_share=0.8) == (180_000, 144_000, 36_000)


def test_premium_split_rounds_half_up_and_the_farmer_share_absorbs_rounding():
    # premium 0.0123 × 1,000,050 = 12,300.615 → 12,301; subsidy 0.8 × 12,301 = 9,840.8 → 9,841;
    # farmer = 12,301 − 9,841 = 2,460 (the remainder, 0.2 × 12,301 = 2,460.2)
    premium, subsidy, farmer = premium_split(0.0123, 1_000_050)
    assert (premium, subsidy, farmer) == (12_301, 9_841, 2_460)
    # an exact half: 0.01 × 250 = 2.5 → 3; 0.5 × 3 = 1.5 → subsidy 2, farmer 1
    assert premium_split(0.01, 250, subsidy_share=0.5) == (3, 2, 1)


def test_premium_split_of_arrays_reconciles_exactly():
    out = premium_split(np.array([0.03, 0.0123]), np.array([6_000_000, 1_000_050]))
    assert out.premium.dtype == np.int64
    np.testing.assert_array_equal(out.subsidy + out.farmer, out.premium)
    np.testing.assert_array_equal(out.premium, [180_000, 12_301])


# --------------------------------------------------------------------------- Bühlmann


def test_buhlmann_on_three_districts_and_four_seasons_by_hand():
    t = history({"A": [0.00, 0.10, 0.00, 0.10],   # mean 0.05, var = 4 × 0.05² / 3 = 0.01 / 3
                 "B": [0.10, 0.20, 0.10, 0.20],   # mean 0.15, var = 0.01 / 3
                 "C": [0.20, 0.40, 0.20, 0.40]})  # mean 0.30, var = 4 × 0.1² / 3 = 0.04 / 3
    out = buhlmann(t).set_index("district_id")
    # s² = (0.01/3 + 0.01/3 + 0.04/3) / 3 = 0.02 / 3 = 0.0066667
    # X̄ = (0.05 + 0.15 + 0.30) / 3 = 1/6; deviations −7/60, −1/60, 8/60
    # var of means = (49 + 1 + 64) / 3600 / 2 = 114 / 7200 = 0.0158333
    # a = 0.0158333 − 0.0066667 / 4 = 0.0158333 − 0.0016667 = 0.0141667 = 17/1200
    # k = (8/1200) / (17/1200) = 8/17 = 0.470588; Z = 4 / (4 + 8/17) = 68/76 = 17/19 = 0.894737
    s2, a, k, z = 0.02 / 3, 17 / 1200, 8 / 17, 17 / 19
    assert out["s2"].to_numpy() == pytest.approx([s2] * 3)
    assert out["a"].to_numpy() == pytest.approx([a] * 3)
    assert out["k"].to_numpy() == pytest.approx([k] * 3)
    assert out["Z"].to_numpy() == pytest.approx([z] * 3)
    assert out["portfolio_mean"].to_numpy() == pytest.approx([1 / 6] * 3)
    # A: 17/19 × 1/20 + 2/19 × 1/6 = 17/380 + 1/57 = 51/1140 + 20/1140 = 71/1140 = 0.0622807
    # B: 17/19 × 0.15 + 2/19 × 1/6 = 2.55/19 + 1/57 = 7.65/57 + 1/57 = 8.65/57 = 0.151754
    # C: 17/19 × 0.30 + 2/19 × 1/6 = 5.1/19 + 1/57 = 16.3/57 = 0.285965
    assert out.loc["A", "credibility_rate"] == pytest.approx(71 / 1140)
    assert out.loc["B", "credibility_rate"] == pytest.approx(8.65 / 57)
    assert out.loc["C", "credibility_rate"] == pytest.approx(16.3 / 57)
    assert (out["seasons"] == 4).all()


def test_buhlmann_gives_no_credibility_when_districts_do_not_differ():
    # means 0.2 and 0.2: var of means 0 − s²/n < 0 → a = 0 → Z = 0, rate = portfolio mean
    t = history({"A": [0.1, 0.3], "B": [0.3, 0.1]})
    out = buhlmann(t)
    assert (out["a"] == 0).all() and (out["Z"] == 0).all() and np.isinf(out["k"]).all()
    assert out["credibility_rate"].to_numpy() == pytest.approx([0.2, 0.2])


def test_buhlmann_refuses_unequal_histories():
    with pytest.raises(DataQualityError, match="buhlmann_straub"):
        buhlmann(history({"A": [0.1, 0.2, 0.3], "B": [0.1, 0.2]}))


# --------------------------------------------------------------------------- Bühlmann–Straub


def test_buhlmann_straub_with_unequal_exposures_and_histories_by_hand():
    t = history({"A": [0.10, 0.20], "B": [0.40, 0.20], "C": [0.00, 0.05, 0.10]},
                exposure={"A": [1, 1], "B": [3, 1], "C": [2, 2, 2]})
    out = buhlmann_straub(t, "exposure").set_index("district_id")
    # m_A = 2, m_B = 4, m_C = 6, m = 12
    # X̄_A = 0.3 / 2 = 0.15; X̄_B = (1.2 + 0.2) / 4 = 0.35; X̄_C = (0 + 0.1 + 0.2) / 6 = 0.05
    # within: A 1·0.05² + 1·0.05² = 0.005; B 3·0.05² + 1·0.15² = 0.0075 + 0.0225 = 0.03;
    #         C 2·0.05² + 0 + 2·0.05² = 0.01 → ŝ² = 0.045 / ((2−1) + (2−1) + (3−1)) = 0.01125
    # X̄ = (2·0.15 + 4·0.35 + 6·0.05) / 12 = 2.0 / 12 = 1/6
    # Σ m_i (X̄_i − X̄)² = 2·(1/60)² + 4·(11/60)² + 6·(7/60)² = (2 + 484 + 294) / 3600 = 13/60
    # â numerator = 13/60 − 0.01125·2 = 260/1200 − 27/1200 = 233/1200
    # denominator = 12 − (4 + 16 + 36)/12 = 22/3 → â = 233/1200 · 3/22 = 699/26400 = 0.0264773
    # k = ŝ²/â = (9/800) / (699/26400) = 297/699 = 99/233 = 0.424893
    # Z_A = 2 / (2 + 99/233) = 466/565; Z_B = 932/1031; Z_C = 1398/1497
    k = 99 / 233
    z = {"A": 466 / 565, "B": 932 / 1031, "C": 1398 / 1497}
    means = {"A": 0.15, "B": 0.35, "C": 0.05}
    assert out["s2"].iloc[0] == pytest.approx(0.01125)
    assert out["a"].iloc[0] == pytest.approx(699 / 26400)
    assert out["k"].iloc[0] == pytest.approx(k)
    assert out["exposure"].to_dict() == {"A": 2.0, "B": 4.0, "C": 6.0}
    assert out["seasons"].to_dict() == {"A": 2, "B": 2, "C": 3}
    for d in "ABC":
        assert out.loc[d, "district_mean"] == pytest.approx(means[d])
        assert out.loc[d, "Z"] == pytest.approx(z[d])
        # rate_A = 466/565 · 0.15 + 99/565 · 1/6 = 0.123717 + 0.029204 = 0.152920
        assert out.loc[d, "credibility_rate"] == pytest.approx(z[d] * means[d] + (1 - z[d]) / 6)
    assert out.loc["A", "credibility_rate"] == pytest.approx(0.152920, abs=1e-6)


def test_buhlmann_straub_credibility_weighted_collective():
    t = history({"A": [0.10, 0.20], "B": [0.40, 0.20], "C": [0.00, 0.05, 0.10]},
                exposure={"A": [1, 1], "B": [3, 1], "C": [2, 2, 2]})
    out = buhlmann_straub(t, collective="credibility").set_index("district_id")
    # Z from the previous test; collective = Σ Z_i X̄_i / Σ Z_i
    z = np.array([466 / 565, 932 / 1031, 1398 / 1497])
    centre = float((z * [0.15, 0.35, 0.05]).sum() / z.sum())
    assert out["portfolio_mean"].iloc[0] == pytest.approx(centre)
    assert out.loc["B", "credibility_rate"] == pytest.approx(z[1] * 0.35 + (1 - z[1]) * centre)


def test_buhlmann_straub_floors_a_at_zero_and_then_gives_no_credibility():
    # A: 0.1 (m 1), 0.3 (m 3) → X̄_A = 1.0/4 = 0.25; B: 0.3 (m 1), 0.2 (m 1) → X̄_B = 0.25
    # between = 0, ŝ² > 0 → â = (0 − ŝ²) / (...) < 0 → floored to 0 → Z = 0, rate = X̄ = 0.25
    t = history({"A": [0.1, 0.3], "B": [0.3, 0.2]}, exposure={"A": [1, 3], "B": [1, 1]})
    out = buhlmann_straub(t)
    assert (out["a"] == 0).all() and (out["Z"] == 0).all()
    assert out["credibility_rate"].to_numpy() == pytest.approx([0.25, 0.25])


def test_buhlmann_straub_with_unit_weights_equals_buhlmann_on_a_balanced_table():
    t = history({"A": [0.00, 0.10, 0.00, 0.10], "B": [0.10, 0.20, 0.10, 0.20], "C": [0.20, 0.40, 0.20, 0.40]})
    t["exposure"] = 1.0
    bs = buhlmann_straub(t)
    # with m_ij = 1: ŝ² = s², â = (n Σ (X̄_i − X̄)² − s²(r − 1)) / (rn − n) = var(means) − s²/n = a,
    # Z = n / (n + k): the Bühlmann numbers of the 3 × 4 table (17/19)
    assert bs["Z"].to_numpy() == pytest.approx([17 / 19] * 3)
    assert bs.loc[0, "credibility_rate"] == pytest.approx(71 / 1140)


def test_buhlmann_straub_rejects_non_positive_weights():
    t = history({"A": [0.1, 0.3], "B": [0.3, 0.2]}, exposure={"A": [1, 0], "B": [1, 1]})
    with pytest.raises(InputError) as err:
        buhlmann_straub(t)
    assert err.value.column == "exposure" and err.value.row == 2


def test_credibility_is_computed_per_product():
    t = pd.concat([history({"A": [0.1, 0.3], "B": [0.3, 0.1]}, product_id="p"),
                   history({"A": [0.0, 0.1, 0.0, 0.1], "B": [0.1, 0.2, 0.1, 0.2], "C": [0.2, 0.4, 0.2, 0.4]},
                           product_id="q")])
    out = buhlmann(t)
    assert out.groupby("product_id").size().to_dict() == {"p": 2, "q": 3}
    assert out.loc[out["product_id"] == "q", "Z"].to_numpy() == pytest.approx([17 / 19] * 3)


# --------------------------------------------------------------------------- tail


def test_portfolio_payouts_round_each_district_then_add():
    t = pd.DataFrame({"district_id": ["A", "B", "A", "B"], "season": [2001, 2001, 2002, 2002],
                      "payout_rate": [0.1, 0.00005, 0.0, 0.5]})
    si = pd.Series({"A": 1_000_000.0, "B": 10_001.0})
    out = portfolio_payouts(t, si)
    # 2001: 100,000 + 0.00005 × 10,001 = 0.50005 → 1 → 100,001; 2002: 0 + 5,000.5 → 5,001
    assert out.name == "payout" and out.index.name == "season" and str(out.dtype) == "Int64"
    assert out.to_dict() == {2001: 100_001, 2002: 5_001}


def test_portfolio_season_with_a_missing_district_is_unknown_not_smaller():
    t = pd.DataFrame({"district_id": ["A", "B", "A", "B", "A"], "season": [2001, 2001, 2002, 2002, 2003],
                      "payout_rate": [0.1, 0.2, np.nan, 0.5, 0.0], "sum_insured": [100.0, 200.0, 100.0, 200.0, 100.0]})
    out = portfolio_payouts(t, "sum_insured")
    # 2001: 10 + 40 = 50; 2002: A missing → <NA>; 2003: B has no row → <NA>
    assert out.loc[2001] == 50
    assert out.isna().to_dict() == {2001: False, 2002: True, 2003: True}
    with pytest.raises(DataQualityError, match="missing"):
        return_period_losses(out)


def test_portfolio_payouts_per_product_from_an_exposure_table():
    t = pd.DataFrame({"district_id": ["A", "A"], "product_id": ["p", "q"], "season": [2001, 2001],
                      "payout_rate": [0.5, 0.25]})
    exposure = pd.DataFrame({"district_id": ["A", "A"], "product_id": ["p", "q"], "sum_insured": [100, 400]})
    # 0.5 × 100 + 0.25 × 400 = 50 + 100 = 150
    assert portfolio_payouts(t, exposure).to_dict() == {2001: 150}
    with pytest.raises(InputError, match="no sum insured"):
        portfolio_payouts(t, exposure.iloc[:1])


def test_season_portfolio_reports_every_season_and_flags_the_incomplete_ones():
    # A: Rp 1,000, B: Rp 2,000, C: no sum insured (pays nothing whatever its index)
    t = pd.DataFrame({"district_id": ["A", "B", "C", "A", "B", "C", "A", "C"],
                      "season": [2001, 2001, 2001, 2002, 2002, 2002, 2003, 2003],
                      "payout_rate": [0.1, 0.25, np.nan, 0.5, np.nan, 0.3, 0.0, 0.0]})
    out = season_portfolio(t, pd.Series({"A": 1000.0, "B": 2000.0, "C": 0.0})).set_index("season")
    # 2001: 100 + 500 = 600; C unassessed but uninsured → complete
    # 2002: B flagged → A's 500 only, incomplete; rate 500 / 1,000 assessed
    # 2003: B has no row → not assessed → incomplete
    assert out["payout"].tolist() == [600, 500, 0] and out["complete"].tolist() == [True, False, False]
    assert out["districts"].tolist() == [3, 3, 3] and out["districts_flagged"].tolist() == [1, 1, 1]
    assert out["districts_triggered"].tolist() == [2, 2, 0]
    assert out["exposure_assessed"].tolist() == [3000.0, 1000.0, 1000.0]
    assert out.loc[2002, "payout_rate"] == 0.5
    # portfolio_payouts is the same computation, complete seasons only
    totals = portfolio_payouts(t, pd.Series({"A": 1000.0, "B": 2000.0, "C": 0.0}))
    assert totals.loc[2001] == 600 and totals.isna().tolist() == [False, True, True]
    # one portfolio per product: each product's own seasons and units
    two = pd.concat([t.assign(product_id="p"), t.assign(product_id="q", payout_rate=0.5)], ignore_index=True)
    si = pd.DataFrame({"district_id": ["A", "B", "C"] * 2, "product_id": ["p"] * 3 + ["q"] * 3,
                       "sum_insured": [1000.0, 2000.0, 0.0] * 2})
    by = season_portfolio(two, si, by=("product_id",)).set_index(["season", "product_id"])
    assert by.loc[(2001, "q"), "payout"] == 1500 and by.loc[(2003, "q"), "complete"] == False  # noqa: E712
    assert by.loc[(2001, "p"), "payout"] == 600


def test_return_period_losses_on_twenty_seasons_by_hand():
    # season totals k² [Rp bn] for k = 1..20, shuffled
    totals = pd.Series([float(k * k) for k in [7, 3, 20, 11, 1, 16, 9, 14, 5, 18, 2, 13, 19, 8, 4, 17, 10, 12, 6, 15]],
                       index=range(2001, 2021))
    out = return_period_losses(totals, (5, 10, 20))
    # Weibull: position h = (n + 1) p with p = 1 − 1/N, value x_(⌊h⌋) + (h − ⌊h⌋)(x_(⌊h⌋+1) − x_(⌊h⌋))
    # N = 5:  h = 21 × 0.8  = 16.8  → 256 + 0.8 × (289 − 256) = 256 + 26.4 = 282.4
    # N = 10: h = 21 × 0.9  = 18.9  → 324 + 0.9 × (361 − 324) = 324 + 33.3 = 357.3
    # N = 20: h = 21 × 0.95 = 19.95 → 361 + 0.95 × (400 − 361) = 361 + 37.05 = 398.05
    assert out.index.name == "return_period" and out.name == "loss"
    np.testing.assert_allclose(out.to_numpy(), [282.4, 357.3, 398.05])
    # linear (type 7): h = (n − 1) p + 1 = 19 × 0.8 + 1 = 16.2 → 256 + 0.2 × 33 = 262.6
    assert return_period_losses(totals, (5,), method="linear").iloc[0] == pytest.approx(262.6)
    # the largest of 20 seasons is the 1-in-21 year loss; beyond that the record says nothing
    assert probable_maximum_loss(totals, 21) == pytest.approx(400.0)
    assert math.isnan(probable_maximum_loss(totals, 25))
    assert probable_maximum_loss(totals, 10) == pytest.approx(357.3)


def test_return_periods_must_exceed_one_year():
    with pytest.raises(ConfigError):
        return_period_losses([1.0, 2.0], (1,))
