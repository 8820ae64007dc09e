"""Policy terms: hand-computed tables for each rule, the fixed order, and the config model."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from panen.engine.terms import (
    DEDUCTIBLE_KERNELS,
    Terms,
    apply_franchise_deductible,
    apply_limit,
    apply_share,
    apply_straight_deductible,
    apply_terms,
    prepare_terms,
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
    {"deductible": {"kind": "percent_of_loss", "amount": 1}},  # not (yet) a rule
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
])
def test_round_rupiah_is_half_up_to_the_rupiah(amount, rupiah):
    out = round_rupiah(amount)
    assert out == rupiah and isinstance(out, np.integer)


def test_round_rupiah_refuses_nan_inf_and_inexact_amounts():
    for bad in (np.nan, np.inf, float(2**53)):
        with pytest.raises(ValueError):
            round_rupiah(np.array([1.0, bad]))
    assert round_rupiah(np.array([], dtype=float)).dtype == np.int64
