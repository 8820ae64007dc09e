"""Invariants of policy terms for any gross payouts, term sheet and per-policy context."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from panen.engine.maths.terms import Terms, apply_terms, apply_terms_steps

MAX_GROSS = 10**12
gross_arrays = arrays(np.int64, st.integers(1, 40), elements=st.integers(0, MAX_GROSS))
#: rates as term sheets write them: whole parts per million
rates = st.integers(0, 1_000_000).map(lambda ppm: ppm / 1_000_000)


@st.composite
def deductibles(draw) -> dict | None:
    kind = draw(st.sampled_from([None, "straight", "franchise", "unconditional", "percent_of_loss",
                                 "time_excess", "dynamic"]))
    if kind in ("straight", "franchise", "unconditional"):
        return {"kind": kind, "amount": draw(st.integers(0, 10**9))}
    if kind == "percent_of_loss":
        return {"kind": kind, "rate": draw(rates), "minimum": draw(st.integers(0, 10**9))}
    if kind == "time_excess":
        return {"kind": kind, "days": draw(st.integers(0, 30))}
    if kind == "dynamic":
        return {"kind": kind, "schedule": sorted(draw(st.lists(rates, min_size=1, max_size=4)))}
    return None


@st.composite
def term_sheets(draw) -> Terms | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    sheet = {}
    deductible = draw(deductibles())
    if deductible:
        sheet["deductible"] = deductible
    if draw(st.booleans()):
        sheet["limit"] = draw(st.integers(1, 10**11))
    if draw(st.booleans()):
        sheet["share"] = draw(st.floats(0.01, 1.0))
    sheet["average_clause"] = draw(st.booleans())
    return Terms.model_validate(sheet)


@st.composite
def cases(draw):
    """Gross payouts, a non-negative increment of them, a term sheet and a fixed context."""
    gross = draw(gross_arrays)
    n = len(gross)
    more = draw(arrays(np.int64, n, elements=st.integers(0, MAX_GROSS)))
    context = {
        "sum_insured": draw(arrays(np.int64, n, elements=st.integers(0, 10**13))),
        "actual_value": draw(arrays(np.int64, n, elements=st.integers(1, 10**13))),
        "event_number": draw(arrays(np.int64, n, elements=st.integers(1, 10))),
        "interruption_days": draw(arrays(np.int64, n, elements=st.integers(0, 400))),
    }
    return gross, more, draw(term_sheets()), context


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_net_is_between_zero_and_gross_and_within_the_limit(case):
    gross, _, terms, context = case
    deductible, net = apply_terms(gross, terms, context=context)
    assert net.dtype == np.int64 and deductible.dtype == np.int64
    assert (net >= 0).all() and (net <= gross).all()
    assert (deductible >= 0).all() and (deductible + net <= gross).all()
    if terms is not None and terms.limit is not None:
        assert (net <= terms.limit).all()
    if terms is None:
        assert (net == gross).all()


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_net_is_monotone_in_gross_for_a_fixed_context(case):
    gross, more, terms, context = case
    _, net = apply_terms(gross, terms, context=context)
    _, net_more = apply_terms(gross + more, terms, context=context)
    assert (net_more >= net).all()
    _, net_next = apply_terms(gross + 1, terms, context=context)  # one more rupiah never pays less
    assert (net_next >= net).all()


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_every_step_only_reduces_and_the_steps_add_up(case):
    gross, _, terms, context = case
    s = apply_terms_steps(gross, terms, context=context)
    chain = [s.gross, s.after_average, s.after_deductible, s.after_limit, s.net]
    for before, after in zip(chain, chain[1:]):
        assert (after <= before).all() and (after >= 0).all()


roundings = st.fixed_dictionaries({"unit": st.sampled_from([1, 100, 1000]),
                                   "party": st.sampled_from(["insurer", "insured"])})


@settings(max_examples=200, deadline=None)
@given(case=cases(), rounding=roundings)
def test_any_rounding_keeps_the_caps_and_down_never_pays_more_than_half_up_or_up(case, rounding):
    """Whatever the rounding: a multiple of the unit, never above the gross, the limit or (to a
    unit) the sum insured; and the insurer's net is monotone in the direction: rounding the
    insurer's side down pays at most half-up, which pays at most up."""
    gross, _, terms, context = case
    sheet = (terms or Terms()).model_dump()
    nets = {}
    for mode in ("down", "half_up", "up"):
        t = Terms.model_validate({**sheet, "rounding": {**rounding, "mode": mode}})
        _, net = apply_terms(gross, t, context=context)
        assert (net >= 0).all() and (net <= gross).all() and (net % rounding["unit"] == 0).all()
        if t.limit is not None:
            assert (net <= t.limit).all()
        if rounding["unit"] > 1:
            assert (net <= context["sum_insured"]).all()
        nets[mode] = net
    low, high = ("down", "up") if rounding["party"] == "insurer" else ("up", "down")
    assert (nets[low] <= nets["half_up"]).all() and (nets["half_up"] <= nets[high]).all()
