"""The one implementation of contingency scores, Spearman and hedging effectiveness, against
tables and sums worked out by hand in the comments (never through panen's own code)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from panen.engine.research.scores import average_ranks, contingency, ratio, spearman

# ten units: the index paid / the reference recorded a loss
#   unit   0  1  2  3  4  5  6  7  8  9
#   paid   1  1  1  0  0  0  1  0  0  1
#   lost   1  1  0  1  1  0  0  0  0  1
#   cell   a  a  c  b  b  d  c  d  d  a   → a = 3, b = 2, c = 2, d = 3
PAID = np.array([1, 1, 1, 0, 0, 0, 1, 0, 0, 1], dtype=bool)
LOST = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 1], dtype=bool)


def test_contingency_of_a_hand_table():
    t = contingency(PAID, LOST)
    assert (int(t.hits), int(t.misses), int(t.false_alarms), int(t.correct_negatives)) == (3, 2, 2, 3)
    assert int(t.total) == 10
    assert t.pod == pytest.approx(3 / 5)                  # a / (a + b)
    assert t.far == pytest.approx(2 / 5)                  # c / (a + c)
    assert t.threat_score == pytest.approx(3 / 7)         # a / (a + b + c)
    assert t.loss_years_unpaid_share == pytest.approx(2 / 5)  # b / (a + b)


def test_contingency_is_vectorised_over_leading_axes_and_by_group():
    # row 0 is the hand table; row 1 pays nowhere: a = 0, b = 5, c = 0, d = 5
    paid = np.stack([PAID, np.zeros(10, bool)])
    t = contingency(paid, LOST)                           # lost (10,) broadcasts over the 2 rows
    assert t.hits.tolist() == [3, 0] and t.misses.tolist() == [2, 5]
    assert t.false_alarms.tolist() == [2, 0] and t.correct_negatives.tolist() == [3, 5]
    np.testing.assert_allclose(t.pod, [3 / 5, 0.0])
    assert math.isnan(t.far[1])                           # no payout event: FAR undefined, not 0
    # groups: units 0-4 → group 0 (a = 2 [0, 1], b = 2 [3, 4], c = 1 [2]), units 5-9 → group 1
    # (a = 1 [9], c = 1 [6], d = 3 [5, 7, 8])
    g = contingency(PAID, LOST, group=np.repeat([0, 1], 5), n_groups=3)
    assert g.hits.tolist() == [2, 1, 0] and g.misses.tolist() == [2, 0, 0]
    assert g.false_alarms.tolist() == [1, 1, 0] and g.correct_negatives.tolist() == [0, 3, 0]
    np.testing.assert_allclose(g.pod, [0.5, 1.0, np.nan])  # group 2 is empty: NaN, never 0
    np.testing.assert_allclose(g.threat_score, [2 / 5, 1 / 2, np.nan])


def test_zero_denominators_are_nan_never_zero():
    t = contingency(np.zeros(4, bool), np.zeros(4, bool))  # only correct negatives
    assert int(t.correct_negatives) == 4
    for name in ("pod", "far", "threat_score", "loss_years_unpaid_share"):
        assert math.isnan(getattr(t, name)), name
    assert math.isnan(ratio(0.0, 0.0)) and ratio(1, 4) == 0.25


def test_spearman_by_hand_with_and_without_ties():
    # no ties: ranks x = [1, 2, 3, 4], y = [1, 3, 2, 4]; d = [0, −1, 1, 0]; ρ = 1 − 6 × 2 / (4 × 15) = 0.8
    assert spearman([10.0, 20.0, 30.0, 40.0], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)
    # ties share their average rank: [5, 5, 1] → [2.5, 2.5, 1]
    assert average_ranks([5.0, 5.0, 1.0]).tolist() == [2.5, 2.5, 1.0]
    # x ranks [2.5, 2.5, 1], y ranks [1, 2, 3]: deviations [.5, .5, −1] and [−1, 0, 1]
    # Σ dx dy = −0.5 + 0 − 1 = −1.5; Σ dx² = 1.5; Σ dy² = 2 → ρ = −1.5 / √3 = −0.866025
    assert spearman([5.0, 5.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(-1.5 / math.sqrt(3.0))
    # vectorised rows, a constant row and too few pairs are NaN
    rows = spearman(np.array([[10.0, 20.0, 30.0, 40.0], [1.0, 1.0, 1.0, 1.0]]), np.array([1.0, 3.0, 2.0, 4.0]))
    np.testing.assert_allclose(rows, [0.8, np.nan])
    assert math.isnan(spearman([1.0], [2.0])) and math.isnan(spearman([], []))


# --------------------------------------------------------------------------- hedging effectiveness
# two districts: A (2 seasons) and B (3 seasons)
REVENUE = np.array([1.0, 0.6, 0.9, 0.5, 0.7])
PAYOUT = np.array([0.0, 0.2, 0.0, 0.3, 0.0])
DISTRICT = np.array([0, 0, 1, 1, 1])
# district means of the uninsured revenue: A (1.0 + 0.6) / 2 = 0.8, B (0.9 + 0.5 + 0.7) / 3 = 0.7
# uninsured shortfalls below them: A [0, −0.2], B [0, −0.2, 0] → Σ min(Y0 − μ, 0)² = 0.04 + 0.04 = 0.08


def test_premium_is_each_districts_loaded_burn_cost():
    from panen.engine.research.scores import district_means, premium_rates

    # burn A = (0 + 0.2) / 2 = 0.1, burn B = (0 + 0.3 + 0) / 3 = 0.1; × 1.35 = 0.135
    np.testing.assert_allclose(premium_rates(PAYOUT, DISTRICT), [0.1] * 5)
    np.testing.assert_allclose(premium_rates(PAYOUT, DISTRICT, expense_loading=0.25, profit_loading=0.10),
                               [0.135] * 5)
    np.testing.assert_allclose(district_means(REVENUE, DISTRICT), [0.8, 0.8, 0.7, 0.7, 0.7])


def test_he_by_hand_below_each_districts_mean():
    from panen.engine.research.scores import hedging_effectiveness

    # fair premium 0.1 in both: Y = [0.9, 0.7 | 0.8, 0.7, 0.6]; Y − μ = [0.1, −0.1 | 0.1, 0, −0.1]
    # Σ min(·, 0)² = 0.01 + 0.01 = 0.02 → HE = 1 − 0.02 / 0.08 = 0.75
    assert hedging_effectiveness(REVENUE, 0.1, PAYOUT, DISTRICT) == pytest.approx(0.75)
    # loaded premium 0.135: Y − μ = [0.065, −0.135 | 0.065, −0.035, −0.135]
    # Σ = 0.018225 + 0.001225 + 0.018225 = 0.037675 → HE = 1 − 0.037675 / 0.08 = 0.5290625
    assert hedging_effectiveness(REVENUE, 0.135, PAYOUT, DISTRICT) == pytest.approx(0.5290625)
    # one pooled mean (0.74) would instead count B's lower average as downside:
    # Y0 − 0.74 = [.26, −.14, .16, −.24, −.04] → 0.0196 + 0.0576 + 0.0016 = 0.0788
    # Y − 0.74 = [.16, −.04, .06, −.04, −.14] → 0.0016 + 0.0016 + 0.0196 = 0.0228 → 1 − 0.0228 / 0.0788
    assert hedging_effectiveness(REVENUE, 0.1, PAYOUT) == pytest.approx(1 - 0.0228 / 0.0788)


def test_he_is_vectorised_over_candidates_and_nan_without_downside():
    from panen.engine.research.scores import hedging_effectiveness

    payouts = np.stack([PAYOUT, np.zeros(5)])  # the second candidate pays nothing at no premium: HE 0
    premium = np.array([[0.1], [0.0]])
    np.testing.assert_allclose(hedging_effectiveness(REVENUE, premium, payouts, DISTRICT), [0.75, 0.0])
    # each district's revenue constant: nothing below its mean to hedge → NaN, never 0 or 1
    assert math.isnan(hedging_effectiveness([1.0, 1.0, 0.5, 0.5], 0.0, [0.0, 0.0, 0.1, 0.0], [0, 0, 1, 1]))
