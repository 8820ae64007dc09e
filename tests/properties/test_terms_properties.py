"""Invariants of policy terms for any gross payouts and term sheet."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from panen.engine.terms import Terms, apply_terms

gross_arrays = arrays(np.int64, st.integers(1, 40), elements=st.integers(0, 10**12))


@st.composite
def term_sheets(draw) -> Terms | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    sheet = {}
    kind = draw(st.sampled_from([None, "straight", "franchise"]))
    if kind:
        sheet["deductible"] = {"kind": kind, "amount": draw(st.integers(0, 10**9))}
    if draw(st.booleans()):
        sheet["limit"] = draw(st.integers(1, 10**11))
    if draw(st.booleans()):
        sheet["share"] = draw(st.floats(0.01, 1.0))
    return Terms.model_validate(sheet)


@settings(max_examples=200, deadline=None)
@given(gross=gross_arrays, terms=term_sheets())
def test_net_is_between_zero_and_gross_and_within_the_limit(gross, terms):
    deductible, net = apply_terms(gross, terms)
    assert net.dtype == np.int64 and deductible.dtype == np.int64
    assert (net >= 0).all() and (net <= gross).all()
    assert (deductible >= 0).all() and (deductible <= gross).all()
    if terms is not None and terms.limit is not None:
        assert (net <= terms.limit).all()
    if terms is None:
        assert (net == gross).all()


@settings(max_examples=200, deadline=None)
@given(gross=gross_arrays, terms=term_sheets())
def test_net_is_monotone_in_gross(gross, terms):
    ordered = np.sort(gross)
    _, net = apply_terms(ordered, terms)
    assert (np.diff(net) >= 0).all()
