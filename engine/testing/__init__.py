"""panen.testing — the check suite a trigger plugin's author runs on their own trigger.

>>> from panen.testing import check_trigger
>>> check_trigger(MyTrigger, {"strike": 2.0})  # doctest: +SKIP
{'declarations': 'passed', ..., 'lazy_under_dask': 'passed', ...}

or, one pytest test per check::

    from panen.testing import parametrize_trigger_checks

    @parametrize_trigger_checks(MyTrigger, {"strike": 2.0})
    def test_my_trigger(check):
        check()

The checks (:func:`trigger_checks` lists them; each one's docstring says what it pins):

* ``declarations`` — ``name``, ``Params`` (a :class:`~panen.engine.api.ProductParams`
  forbidding unknown keys), ``inputs``, ``description``, ``backtest_by``; ``evaluate``
  implemented; instantiable without arguments;
* ``example_params`` — the example validates, names the trigger, reads back the same from
  its JSON dump; ``required_inputs`` and ``reach`` well formed;
* ``invalid_params_rejected`` — invalid term sheets *derived from the declared
  constraints* (see :func:`invalid_params`) and the caller's own are rejected with a
  pydantic ``ValidationError``;
* ``result_structure`` — the result passes the engine's ``standardise_result`` and
  ``check_result_values`` (dims ``(district, cohort)``, the requested cohorts, rates in
  [0, 1]); some district is assessed on complete inputs;
* ``single_district_and_cohort`` — size-one dims are kept, values unchanged;
* ``district_labels`` — results follow district labels, not positions;
* ``rates_in_unit_interval`` — still in [0, 1] on extreme inputs (× 0 and × 10);
* ``nan_in_nan_out`` — a district without data gets NaN and ``flagged``, never a payout;
* ``absent_district_flagged`` — a district missing from the inputs is flagged, not an error;
* ``lazy_under_dask`` — no compute inside ``evaluate`` on dask input;
* ``dask_matches_in_memory`` — chunked and in-memory inputs give the same result;
* ``pure`` — inputs are not changed; a second call gives the same result.

Inputs: unless given ``inputs=``, the checks build synthetic data for the trigger's
declared ``inputs`` (:func:`synthetic_inputs`: daily ``rainfall`` [mm/day] and 16-day
``ndvi`` [1] district series, a ``yields`` table [t/ha]). A trigger reading other inputs,
or needing data the synthetic inputs lack (a column, decades of history, other units),
passes its own :class:`~panen.engine.api.TriggerInputs` — in memory, complete for every
district; the checks derive the blanked, absent, chunked and extreme variants from them.
"""

from __future__ import annotations

if __name__ != "panen.testing":  # engine/testing is also reachable as panen.engine.testing
    raise ImportError(f"import panen.testing, not {__name__}: one module, one set of classes")

import unittest
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from panen.engine.api import ProductParams, TriggerInputs

from ._checks import CHECKS, TriggerCheckFailure, make_subject
from ._inputs import SYNTHETIC_INPUTS, synthetic_inputs
from ._params import InvalidParams, derive_invalid_params

__all__ = [
    "SYNTHETIC_INPUTS",
    "InvalidParams",
    "TriggerCheckFailure",
    "check_trigger",
    "invalid_params",
    "parametrize_trigger_checks",
    "synthetic_inputs",
    "trigger_checks",
]


def trigger_checks(trigger: type, example_params: Mapping[str, Any] | ProductParams, *,
                   inputs: TriggerInputs | None = None,
                   invalid_params: tuple | list = ()) -> list[tuple[str, Callable[[], None]]]:
    """Every check as ``(name, check)``; calling ``check()`` runs it.

    A failing check raises :class:`TriggerCheckFailure` (an ``AssertionError``) naming the
    trigger, the check and what is wrong; a check that does not apply raises
    ``unittest.SkipTest``, which pytest reports as skipped. The checks share one
    evaluation on the complete inputs, made when the first check needs it.

    Parameters
    ----------
    trigger
        The trigger class (a :class:`~panen.engine.api.Trigger` subclass).
    example_params
        A valid term sheet: a dict of the ``Params`` keys (``id``, ``trigger`` and
        ``sum_insured_per_ha`` may be left out and are filled in) or a ``Params`` instance.
    inputs
        The inputs to evaluate on; default: synthetic inputs for ``trigger.inputs``
        (:func:`synthetic_inputs`). Give complete data for every district.
    invalid_params
        More term sheets that must be rejected (cross-field rules no declaration shows,
        e.g. ``exit`` above ``strike`` on a deficit cover); completed like ``example_params``.

    Returns
    -------
    list of (str, callable)
        In the order :func:`check_trigger` runs them.
    """
    subject = make_subject(trigger, example_params, inputs, tuple(invalid_params))
    return [(name, _bind(subject, name, fn)) for name, fn in CHECKS]


def _bind(subject, name: str, fn: Callable) -> Callable[[], None]:
    def check() -> None:
        try:
            fn(subject)
        except TriggerCheckFailure:
            raise
        except AssertionError as exc:
            raise TriggerCheckFailure(subject.label, {name: str(exc)}) from exc

    check.__name__ = check.__qualname__ = f"check_{name}"
    check.__doc__ = fn.__doc__
    return check


def check_trigger(trigger: type, example_params: Mapping[str, Any] | ProductParams, *,
                  inputs: TriggerInputs | None = None, invalid_params: tuple | list = ()) -> dict[str, str]:
    """Run every check on a trigger plugin; raise if any fails.

    Parameters are those of :func:`trigger_checks`.

    Returns
    -------
    dict
        Check name → ``"passed"`` or ``"skipped: <reason>"``.

    Raises
    ------
    TriggerCheckFailure
        Listing every failed check and what is wrong (``.failures``: name → message).

    Examples
    --------
    >>> check_trigger(HailTrigger, {"strike": 2.0})["nan_in_nan_out"]  # doctest: +SKIP
    'passed'
    """
    outcomes: dict[str, str] = {}
    failures: dict[str, str] = {}
    label = None
    for name, check in trigger_checks(trigger, example_params, inputs=inputs, invalid_params=invalid_params):
        try:
            check()
        except unittest.SkipTest as exc:
            outcomes[name] = f"skipped: {exc}"
        except TriggerCheckFailure as exc:
            label = exc.trigger
            failures.update(exc.failures)
            outcomes[name] = "failed"
        else:
            outcomes[name] = "passed"
    if failures:
        raise TriggerCheckFailure(label, failures)
    return outcomes


def parametrize_trigger_checks(trigger: type, example_params: Mapping[str, Any] | ProductParams, *,
                               inputs: TriggerInputs | None = None, invalid_params: tuple | list = ()):
    """A ``pytest.mark.parametrize`` over the checks: one test per check, argument ``check``.

    Parameters are those of :func:`trigger_checks`.

    Examples
    --------
    >>> @parametrize_trigger_checks(HailTrigger, {"strike": 2.0})  # doctest: +SKIP
    ... def test_hail_trigger(check):
    ...     check()
    """
    import pytest  # only when used from a test suite

    checks = trigger_checks(trigger, example_params, inputs=inputs, invalid_params=invalid_params)
    return pytest.mark.parametrize("check", [c for _, c in checks], ids=[n for n, _ in checks])


def invalid_params(params_model: type[BaseModel], example_params: Mapping[str, Any] | BaseModel) -> list[InvalidParams]:
    """The invalid term sheets ``invalid_params_rejected`` derives, to inspect them.

    Each changes one value of ``example_params`` so that it breaks one rule ``params_model``
    declares: a bound (``gt``, ``ge``, ``lt``, ``le``: the boundary or the nearest value
    past it, and one a unit further), ``multiple_of``, ``min_length``/``max_length``, a
    ``Literal``/``Enum`` choice, the field's type (a string for a number, ``nan`` for a
    float, a fraction for an int, a string for a nested model, one item fewer for a fixed
    tuple), a required key left out, an unknown key added — for nested models, and lists,
    tuples and dicts of models, wherever the example has a value.

    Parameters
    ----------
    params_model
        The pydantic model (a trigger's ``Params``).
    example_params
        A term sheet ``params_model`` accepts, complete (``id``, ``sum_insured_per_ha``).

    Returns
    -------
    list of InvalidParams
        ``where`` (e.g. ``"phases[0].end_day"``), ``why`` and the whole ``params``.
    """
    return derive_invalid_params(params_model, example_params)
