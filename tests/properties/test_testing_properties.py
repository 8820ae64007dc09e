"""Invalid values derived from a declared bound really break it, for any bound: checked by
comparing each value with the bound directly, not through the derivation's arithmetic."""

from __future__ import annotations

import math
import operator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ConfigDict, Field, ValidationError, create_model

from panen.testing import invalid_params

HOLDS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
# pydantic takes integer bounds for int fields, any finite number for float fields
kinds_and_bounds = st.one_of(
    st.tuples(st.just(int), st.integers(-10**9, 10**9)),
    st.tuples(st.just(float), st.one_of(st.integers(-10**9, 10**9),
                                        st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False))),
)


def _valid(kind: type, rule: str, bound: float):
    """A value the bound accepts."""
    if kind is int:
        return {"gt": math.floor(bound) + 1, "ge": math.ceil(bound), "lt": math.ceil(bound) - 1,
                "le": math.floor(bound)}[rule]
    return {"gt": bound + max(1.0, abs(bound)), "ge": bound, "lt": bound - max(1.0, abs(bound)), "le": bound}[rule]


def test_far_values_stay_past_large_bounds():
    model = create_model("Sheet", x=(float, Field(ge=1e17)))
    values = [c.params["x"] for c in invalid_params(model, {"x": 2e17}) if "breaks" in c.why]
    assert values and all(v < 1e17 for v in values)


@given(kind_bound=kinds_and_bounds, rule=st.sampled_from(sorted(HOLDS)))
def test_every_value_derived_from_a_bound_breaks_it_and_is_rejected(kind_bound, rule):
    kind, bound = kind_bound
    model = create_model("Sheet", __config__=ConfigDict(extra="forbid"), x=(kind, Field(**{rule: bound})))
    example = {"x": _valid(kind, rule, bound)}
    model.model_validate(example)
    cases = [c for c in invalid_params(model, example) if c.where == "x" and "breaks" in c.why]
    assert len(cases) == (1 if kind is int and rule in ("ge", "le") else 2)
    for case in cases:
        value = case.params["x"]
        assert isinstance(value, kind)
        assert not HOLDS[rule](value, bound), (value, rule, bound)
        with pytest.raises(ValidationError):
            model.model_validate(case.params)


@given(kind_bound=kinds_and_bounds, rule=st.sampled_from(sorted(HOLDS)))
def test_every_derived_term_sheet_of_a_bounded_field_is_rejected(kind_bound, rule):
    kind, bound = kind_bound
    model = create_model("Sheet", __config__=ConfigDict(extra="forbid"), x=(kind, Field(**{rule: bound})))
    example = {"x": _valid(kind, rule, bound)}
    for case in invalid_params(model, example):
        with pytest.raises(ValidationError):
            model.model_validate(case.params)
