"""Basis-risk maths against hand-computed numbers (worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from panen.engine.research.basis import (
    BASIS_RISK_COLUMNS,
    basis_risk_table,
    bootstrap_ci,
    event_metrics,
)
from panen.engine.errors import InputError
from panen.engine.research.scores import hedging_effectiveness

# six seasons of one district: index payout and reference loss [fraction of sum insured]
PAYOUT = [0.0, 0.2, 0.0, 0.5, 0.1, 0.0]
LOSS = [0.3, 0.4, 0.0, 0.2, 0.0, 0.1]
#   season   payout>0  loss>0   cell
#   0        no        yes      miss
#   1        yes       yes      hit
#   2        no        no       correct negative
#   3        yes       yes      hit
#   4        yes       no       false alarm
#   5        no        yes      miss
# a = 2, b = 2, c = 1, d = 1


def test_event_metrics_on_a_hand_table():
    m = event_metrics(PAYOUT, LOSS)
    assert (m["seasons"], m["hits"], m["misses"], m["false_alarms"], m["correct_negatives"]) == (6, 2, 2, 1, 1)
    assert m["pod"] == pytest.approx(2 / 4)             # a / (a + b)
    assert m["far"] == pytest.approx(1 / 3)             # c / (a + c)
    assert m["threat_score"] == pytest.approx(2 / 5)    # a / (a + b + c)
    assert m["loss_years_unpaid_share"] == pytest.approx(2 / 4)
    # Σ loss = 1.0; unpaid (seasons 0, 2, 5) = 0.3 + 0 + 0.1 = 0.4
    assert m["unpaid_loss_share"] == pytest.approx(0.4)
    # Σ payout = 0.8 → 0.8 / 1.0
    assert m["payout_balance"] == pytest.approx(0.8)
    # average ranks: payout [2, 5, 2, 6, 4, 2], loss [5, 6, 1.5, 4, 1.5, 3], both means 3.5
    # deviations dP [−1.5, 1.5, −1.5, 2.5, 0.5, −1.5], dL [1.5, 2.5, −2, 0.5, −2, −0.5]
    # Σ dP dL = −2.25 + 3.75 + 3 + 1.25 − 1 + 0.75 = 5.5; Σ dP² = 15.5; Σ dL² = 17
    # ρ = 5.5 / sqrt(15.5 × 17) = 5.5 / 16.23268 = 0.338824
    assert m["spearman"] == pytest.approx(5.5 / math.sqrt(15.5 * 17))


def test_event_thresholds_are_strict():
    # payout > 0.1 and loss > 0.2: payout events at seasons 1, 3; loss events at 0, 1
    # a = 1 (season 1), b = 1 (season 0), c = 1 (season 3), d = 3
    m = event_metrics(PAYOUT, LOSS, payout_threshold=0.1, loss_threshold=0.2)
    assert (m["hits"], m["misses"], m["false_alarms"], m["correct_negatives"]) == (1, 1, 1, 3)


def test_undefined_scores_are_nan_never_zero():
    m = event_metrics([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    for name in ("pod", "far", "threat_score", "unpaid_loss_share", "loss_years_unpaid_share", "payout_balance",
                 "spearman"):
        assert math.isnan(m[name]), name
    assert m["correct_negatives"] == 3


def test_missing_seasons_are_left_out_not_read_as_no_payout():
    m = event_metrics([np.nan, 0.2, 0.0], [0.3, 0.4, 0.0])
    # season 0 (payout missing) would otherwise be a miss
    assert (m["seasons"], m["hits"], m["misses"], m["correct_negatives"]) == (2, 1, 0, 1)


# --------------------------------------------------------------------------- hedging effectiveness


def test_he_is_one_when_the_cover_pays_exactly_the_shortfall_below_the_mean_at_no_premium():
    revenue = np.array([1.0, 0.6, 0.8, 1.0, 0.85])
    # mean = 4.25 / 5 = 0.85; payout = shortfall below 0.85: [0, 0.25, 0.05, 0, 0]
    payout = np.array([0.0, 0.25, 0.05, 0.0, 0.0])
    assert hedging_effectiveness(revenue, 0.0, payout) == pytest.approx(1.0)


def test_he_is_zero_without_payout_or_premium():
    revenue = np.array([1.0, 0.6, 0.8, 1.0])
    assert hedging_effectiveness(revenue, 0.0, np.zeros(4)) == pytest.approx(0.0)


def test_he_by_hand_with_a_premium():
    revenue = np.array([1.0, 0.6, 0.8, 1.0])
    # mean 0.85; SV(Y0) = (0.25² + 0.05²) / 4 = (0.0625 + 0.0025) / 4 = 0.01625
    # Y = revenue − 0.025 + [0, 0.1, 0, 0] = [0.975, 0.675, 0.775, 0.975]; Y − 0.85 = [.125, −.175, −.075, .125]
    # SV(Y) = (0.030625 + 0.005625) / 4 = 0.0090625; HE = 1 − 0.0090625 / 0.01625 = 0.442308
    he = hedging_effectiveness(revenue, 0.025, np.array([0.0, 0.1, 0.0, 0.0]))
    assert he == pytest.approx(1 - 0.0090625 / 0.01625)
    # a premium with no payout only lowers income: (0.275² + 0.075² + 2 × 0.025²) / 4 > SV(Y0) → HE < 0
    assert hedging_effectiveness(revenue, 0.025, np.zeros(4)) < 0


def test_he_is_nan_without_downside_and_vectorised_over_leading_axes():
    assert math.isnan(hedging_effectiveness([1.0, 1.0], 0.0, [0.0, 0.0]))
    revenue = np.array([[1.0, 0.6, 0.8, 1.0], [1.0, 0.6, 0.8, 1.0]])
    payout = np.array([[0.0, 0.25, 0.05, 0.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(hedging_effectiveness(revenue, 0.0, payout), [1.0, 0.0])


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_deterministic_with_its_seed():
    x = np.arange(30.0) ** 1.5
    first = bootstrap_ci(np.mean, x, n_boot=500, seed=7)
    again = bootstrap_ci(np.mean, x, n_boot=500, seed=7)
    other = bootstrap_ci(np.mean, x, n_boot=500, seed=8)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)


def test_bootstrap_interval_brackets_the_point_estimate():
    x = np.arange(30.0) ** 1.5
    ci = bootstrap_ci(np.mean, x, n_boot=1000, alpha=0.05, seed=0)
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low < ci.estimate < ci.high
    narrower = bootstrap_ci(np.mean, x, n_boot=1000, alpha=0.5, seed=0)
    assert ci.low < narrower.low < narrower.high < ci.high


def test_vectorised_bootstrap_equals_the_loop_for_the_same_seed():
    p, x = np.array(PAYOUT * 3), np.array(LOSS * 3)

    def pod(payout, loss):
        hits = np.sum((payout > 0) & (loss > 0), axis=-1)
        return hits / np.sum(loss > 0, axis=-1)

    loop = bootstrap_ci(pod, p, x, n_boot=300, seed=3)
    vec = bootstrap_ci(pod, p, x, n_boot=300, seed=3, vectorized=True)
    assert loop == pytest.approx(vec)
    assert loop.estimate == pytest.approx(0.5)


def test_bootstrap_of_several_statistics_keeps_pairs_together():
    x = np.arange(20.0)
    ci = bootstrap_ci(lambda a, b: np.array([np.mean(a - b), np.mean(a)]), x, x, n_boot=200, seed=0)
    # a − b is 0 in every resample because rows are resampled together
    assert ci.low[0] == ci.high[0] == 0.0
    assert ci.low[1] < ci.estimate[1] < ci.high[1]


def test_bootstrap_rejects_arrays_of_unequal_length():
    with pytest.raises(InputError):
        bootstrap_ci(np.mean, [1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- the table


def simulation() -> tuple[pd.DataFrame, pd.DataFrame]:
    seasons = list(range(2001, 2007))
    sim = pd.DataFrame({"district_id": "3212", "product_id": "rain", "season": seasons + [2007],
                        "payout_rate": PAYOUT + [0.9]})          # 2007 has no loss reference
    losses = pd.DataFrame({"district_id": "3212", "season": [2000] + seasons,
                           "loss": [0.5] + LOSS})                 # 2000 was not simulated
    return sim, losses


def test_basis_risk_table_joins_on_district_and_season_and_reports_every_metric():
    sim, losses = simulation()
    out = basis_risk_table(sim, losses, n_boot=400)
    assert list(out.columns) == ["product_id", "district_id", *BASIS_RISK_COLUMNS]
    row = out.iloc[0]
    # the six common seasons only: the hand table above
    assert (row["seasons"], row["hits"], row["misses"], row["false_alarms"]) == (6, 2, 2, 1)
    assert row["pod"] == pytest.approx(0.5) and row["far"] == pytest.approx(1 / 3)
    assert row["unpaid_loss_share"] == pytest.approx(0.4) and row["payout_balance"] == pytest.approx(0.8)
    assert row["spearman"] == pytest.approx(5.5 / math.sqrt(15.5 * 17))
    # premium = burn cost = 0.8 / 6; revenue = 1 − loss = [0.7, 0.6, 1.0, 0.8, 1.0, 0.9], mean 5/6
    # below-mean deviations of Y0 [1/30]: −4, −7, −1 → SV(Y0) = (16 + 49 + 1) / 900 / 6 = 66 / 5400
    # Y = revenue − 4/30 + payout = [17, 20, 26, 35, 29, 23] / 30; Y − 25/30 = [−8, −5, 1, 10, 4, −2] / 30
    # SV(Y) = (64 + 25 + 4) / 900 / 6 = 93 / 5400 → HE = 1 − 93/66 = −27/66 = −0.409091
    assert row["premium_rate"] == pytest.approx(0.8 / 6)
    assert row["hedging_effectiveness"] == pytest.approx(-27 / 66)
    for name in ("pod", "spearman", "hedging_effectiveness"):
        assert row[f"{name}_low"] <= row[f"{name}_high"], name
    assert 0.0 <= row["pod_low"] and row["pod_high"] <= 1.0


def test_basis_risk_table_with_a_given_premium_and_revenue_column():
    sim, losses = simulation()
    losses = losses.assign(revenue=1.0 - losses["loss"])
    given = basis_risk_table(sim, losses, n_boot=50, premium=0.0, revenue_column="revenue")
    # zero premium on revenue 1 − loss: Y − 25/30 = [−4, −1, 5, 14, 8, 2] / 30 (payout added back)
    # SV(Y) = (16 + 1) / 900 / 6 = 17 / 5400 → HE = 1 − 17/66 = 49/66
    assert given.loc[0, "hedging_effectiveness"] == pytest.approx(49 / 66)
    assert given.loc[0, "premium_rate"] == 0.0


def test_basis_risk_table_is_deterministic_and_groups_by_product():
    sim, losses = simulation()
    both = pd.concat([sim, sim.assign(product_id="ndvi", payout_rate=0.0)], ignore_index=True)
    first = basis_risk_table(both, losses, by=("product_id",), n_boot=200, seed=1)
    again = basis_risk_table(both, losses, by=("product_id",), n_boot=200, seed=1)
    pd.testing.assert_frame_equal(first, again)
    assert first["product_id"].tolist() == ["ndvi", "rain"]
    never_pays = first.set_index("product_id").loc["ndvi"]
    assert never_pays["pod"] == 0.0 and math.isnan(never_pays["spearman"])


def test_basis_risk_table_rejects_duplicate_loss_rows():
    sim, losses = simulation()
    with pytest.raises(InputError) as err:
        basis_risk_table(sim, pd.concat([losses, losses.iloc[[1]]], ignore_index=True), n_boot=10)
    assert err.value.row == 8


def test_basis_risk_table_does_not_mutate_its_inputs():
    sim, losses = simulation()
    s0, l0 = sim.copy(), losses.copy()
    basis_risk_table(sim, losses, n_boot=20)
    pd.testing.assert_frame_equal(sim, s0)
    pd.testing.assert_frame_equal(losses, l0)


def test_vectorised_spearman_of_resamples_equals_scipy_with_ties():
    from scipy.stats import spearmanr

    from panen.engine.research.scores import spearman as _spearman_rows

    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(40, 12)).astype(float)   # many ties
    y = np.where(rng.random((40, 12)) < 0.5, 0.0, rng.random((40, 12)))
    x[0] = 1.0                                            # a constant row → NaN
    expected = [np.nan] + [spearmanr(a, b).statistic for a, b in zip(x[1:], y[1:], strict=True)]
    np.testing.assert_allclose(_spearman_rows(x, y), expected, equal_nan=True)
