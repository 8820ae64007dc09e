"""The checks of :func:`panen.testing.check_trigger`, each a function of one ``_Subject``.

A check raises ``AssertionError`` saying what is wrong (wrapped into
:class:`TriggerCheckFailure` naming the trigger and the check) or ``unittest.SkipTest``
when it does not apply (a trigger that reads no series has nothing to stay lazy on).
"""

from __future__ import annotations

import contextlib
import functools
import re
import traceback
import unittest
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from dask.callbacks import Callback
from pydantic import BaseModel, ValidationError

from panen.engine.api import (
    PHASE_VARIABLES,
    ProductParams,
    Trigger,
    TriggerInputs,
    TriggerResult,
    check_guaranteed_rate,
    check_result_values,
    standardise_result,
)
from panen.engine.errors import PluginError

from ._inputs import (
    blanked,
    chunked,
    copied,
    in_memory,
    reversed_request,
    scaled,
    subset,
    synthetic_inputs,
    without,
)
from ._params import InvalidParams, derive_invalid_params, plain

__all__ = ["CHECKS", "TriggerCheckFailure", "make_subject"]

#: Defaults filled into an example term sheet that leaves out the keys every product has.
BASE_KEYS = {"id": "check", "sum_insured_per_ha": 6_000_000}
#: Relative and absolute tolerance when the same result is reached by another route.
RTOL, ATOL = 1e-9, 1e-12
_MAX_LISTED = 15


class TriggerCheckFailure(AssertionError):
    """A trigger failed one or more checks of :func:`panen.testing.check_trigger`.

    Attributes
    ----------
    trigger
        The trigger's ``name`` (or class name).
    failures
        Check name → what is wrong, in the order the checks ran.
    """

    def __init__(self, trigger: str, failures: Mapping[str, str]) -> None:
        self.trigger = trigger
        self.failures = dict(failures)
        lines = [f"trigger {trigger!r} failed check {name!r}: {what}" for name, what in self.failures.items()]
        super().__init__("\n".join(lines))

    @property
    def checks(self) -> tuple[str, ...]:
        """Names of the failed checks."""
        return tuple(self.failures)


# --------------------------------------------------------------------------- what is checked
class _Subject:
    """A trigger class, its example term sheet and the inputs the checks start from."""

    def __init__(self, trigger: type, example: Mapping[str, Any] | BaseModel, inputs: TriggerInputs | None,
                 invalid_params: tuple) -> None:
        self.trigger = trigger
        name = getattr(trigger, "name", None)
        self.label = name if isinstance(name, str) and name else getattr(trigger, "__name__", repr(trigger))
        if not isinstance(example, Mapping | BaseModel):
            raise TypeError(f"example_params must be a dict or a ProductParams, not {type(example).__name__}")
        self.example = self._fill(example)
        self.extra_invalid = [self._fill(p) for p in invalid_params]
        self.given_inputs = inputs
        self.hint = "" if inputs is not None else (
            " [these are panen.testing's synthetic inputs; if they cannot suit this trigger, pass "
            "inputs=TriggerInputs(...) with complete data for every district]")

    def _fill(self, params: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
        raw = plain(params)
        for key, value in BASE_KEYS.items():
            raw.setdefault(key, value)
        raw.setdefault("trigger", self.label)
        return raw

    @functools.cached_property
    def params(self) -> ProductParams:
        model = getattr(self.trigger, "Params", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise AssertionError(f"{self.label} has no Params model to validate the example term sheet with")
        try:
            return model.model_validate(self.example)
        except ValidationError as exc:
            raise AssertionError(f"the example term sheet does not validate: {exc}") from exc

    @functools.cached_property
    def _base_inputs(self) -> TriggerInputs:
        if self.given_inputs is not None:
            return in_memory(copied(self.given_inputs))
        try:  # the inputs this term sheet reads (a trigger may declare alternatives, e.g. a grid or stations)
            names = tuple(self.trigger.required_inputs(self.params))
        except Exception:  # noqa: BLE001 - a broken required_inputs is its own check's failure
            names = tuple(getattr(self.trigger, "inputs", ()))
        try:
            return synthetic_inputs(tuple(names))
        except ValueError as exc:
            raise AssertionError(str(exc)) from exc

    def inputs(self) -> TriggerInputs:
        """A fresh in-memory copy of the inputs (a check may hand it to a trigger that mutates)."""
        return copied(self._base_inputs)

    @functools.cached_property
    def baseline(self) -> xr.Dataset:
        """The standardised, computed result on the complete in-memory inputs."""
        return _run(self, self.inputs(), "the complete inputs", first=True)

    def reads_data(self) -> bool:
        base = self._base_inputs
        return bool(base.series or base.tables)


def make_subject(trigger: type, example: Mapping[str, Any] | BaseModel, inputs: TriggerInputs | None = None,
                 invalid_params: tuple = ()) -> _Subject:
    """Bundle what the checks need (nothing is evaluated until a check asks)."""
    return _Subject(trigger, example, inputs, tuple(invalid_params))


# --------------------------------------------------------------------------- evaluating
def _evaluate(s: _Subject, inputs: TriggerInputs, what: str, *, first: bool = False) -> TriggerResult:
    try:
        result = s.trigger().evaluate(s.params, inputs)
    except _ComputeRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the plugin is the finding
        hint = s.hint if first else ""  # the complete inputs themselves may not suit the trigger
        raise AssertionError(f"evaluate raised {type(exc).__name__} on {what}: {exc}{hint}") from exc
    if not isinstance(result, TriggerResult):
        raise AssertionError(f"evaluate returned {type(result).__name__} on {what}, not a "
                             f"panen.engine.api.TriggerResult (wrap the Dataset: TriggerResult(ds))")
    return result


def _standardise(s: _Subject, result: TriggerResult, inputs: TriggerInputs, what: str) -> xr.Dataset:
    try:
        return standardise_result(result, trigger=s.label, product_id=s.params.id,
                                  district_ids=inputs.district_ids, cohorts=inputs.cohorts)
    except PluginError as exc:
        raise AssertionError(f"on {what}: {exc}") from exc


def _run(s: _Subject, inputs: TriggerInputs, what: str, *, first: bool = False) -> xr.Dataset:
    """evaluate → standardise_result → compute → check_result_values, as the engine does."""
    ds = _standardise(s, _evaluate(s, inputs, what, first=first), inputs, what).compute()
    try:
        return check_result_values(ds, trigger=s.label, product_id=s.params.id)
    except PluginError as exc:
        raise AssertionError(f"on {what}: {exc}") from exc


def _compare(got: xr.Dataset, want: xr.Dataset, what: str) -> None:
    """Same payout rates, flags and phase variables, matched by district label."""
    got = got.sel(district=want["district"].values)
    if "phase" in want.dims and not np.array_equal(got["phase"].values, want["phase"].values):
        raise AssertionError(f"{what}: phases {got['phase'].values.tolist()} instead of {want['phase'].values.tolist()}")
    flag_diff = np.asarray(got["flagged"].values) != np.asarray(want["flagged"].values)
    if flag_diff.any():
        d, c = np.argwhere(flag_diff)[0]
        raise AssertionError(f"{what}: district {want['district'].values[d]!r}, cohort {_day(want, c)} is "
                             f"flagged={bool(got['flagged'].values[d, c])} instead of {bool(want['flagged'].values[d, c])}")
    for var in ("payout_rate", *PHASE_VARIABLES):
        a = np.asarray(got[var].transpose(*want[var].dims).values, dtype=float)
        b = np.asarray(want[var].values, dtype=float)
        close = np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
        if not close.all():
            at = tuple(np.argwhere(~close)[0])
            where = ", ".join(f"{dim} {_label(want, dim, i)}" for dim, i in zip(want[var].dims, at))
            raise AssertionError(f"{what}: {var} at {where} is {float(a[at])!r} instead of {float(b[at])!r} "
                                 f"({int((~close).sum())} value(s) differ)")


def _day(ds: xr.Dataset, c: int) -> str:
    return str(np.datetime64(ds["cohort"].values[c], "D"))


def _label(ds: xr.Dataset, dim: str, i: int) -> str:
    return _day(ds, i) if dim == "cohort" else str(ds[dim].values[i])


def _listed(items: list[str]) -> str:
    shown = items[:_MAX_LISTED]
    more = f"\n  ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return "\n  - " + "\n  - ".join(shown) + more


def _pick_district(s: _Subject) -> str:
    """The district a missing-data check empties: the middle assessed one."""
    base = s.baseline
    assessed = [str(d) for d, f in zip(base["district"].values, base["flagged"].values) if not f.all()]
    if not assessed:
        raise AssertionError("no district is assessed on the complete inputs")
    return assessed[len(assessed) // 2]


# --------------------------------------------------------------------------- refusing compute
class _ComputeRefused(RuntimeError):
    """Raised where a trigger asks dask to compute inside evaluate."""


_LIBRARIES = {"dask", "xarray", "numpy", "pandas", "toolz", "tlz", "distributed", "contextlib.py"}
_HERE = Path(__file__).resolve().parent


def _caller() -> str:
    """The innermost frame outside dask, xarray, numpy, pandas and this package."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename)
        if _LIBRARIES & set(path.parts) or path.resolve().parent == _HERE:
            continue
        return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "an unknown place"


@contextlib.contextmanager
def _refusing_compute() -> Iterator[list[str]]:
    """Record (and refuse) every dask compute: the default scheduler and local schedulers' callbacks."""
    calls: list[str] = []

    def refuse(*args, **kwargs):
        calls.append(_caller())
        raise _ComputeRefused("dask compute requested inside Trigger.evaluate")

    class Guard(Callback):
        def _start(self, dsk):
            calls.append(_caller())
            raise _ComputeRefused("dask compute requested inside Trigger.evaluate")

    with dask.config.set(scheduler=refuse), Guard():
        yield calls


# --------------------------------------------------------------------------- the checks
def check_declarations(s: _Subject) -> None:
    """The class declares ``name``, ``Params``, ``inputs``, ``description`` and ``backtest_by``
    properly, implements ``evaluate``, and can be instantiated and listed."""
    cls = s.trigger
    if not (isinstance(cls, type) and issubclass(cls, Trigger)):
        raise AssertionError(f"{cls!r} is not a subclass of panen.engine.api.Trigger")
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or re.search(r"\s", name):
        problems.append(f"name must be a non-empty text without spaces (the value of 'trigger:'); got {name!r}")
    model = getattr(cls, "Params", None)
    if not (isinstance(model, type) and issubclass(model, ProductParams)):
        problems.append(f"Params must be a subclass of panen.engine.api.ProductParams; got {model!r}")
    else:
        if model.model_config.get("extra") != "forbid":
            problems.append(f"Params must forbid unknown keys (model_config extra='forbid'); it has "
                            f"extra={model.model_config.get('extra')!r}")
        field = model.model_fields.get("trigger")
        if field is not None and not field.is_required() and isinstance(name, str) and field.default != name:
            problems.append(f"Params.trigger defaults to {field.default!r}, not the trigger's name {name!r}")
    inputs = getattr(cls, "inputs", None)
    if not isinstance(inputs, tuple) or not all(isinstance(i, str) and i for i in inputs):
        problems.append(f"inputs must be a tuple of input names; got {inputs!r}")
    elif len(set(inputs)) != len(inputs):
        problems.append(f"inputs names an input twice: {inputs!r}")
    if not isinstance(getattr(cls, "description", None), str):
        problems.append(f"description must be text; got {getattr(cls, 'description', None)!r}")
    if getattr(cls, "backtest_by", None) not in (None, "cohort", "season"):
        problems.append(f"backtest_by must be None, 'cohort' or 'season'; got {cls.backtest_by!r}")
    if cls.evaluate is Trigger.evaluate:
        problems.append("evaluate is not implemented")
    try:
        cls()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"the engine instantiates triggers without arguments; {cls.__name__}() raised "
                        f"{type(exc).__name__}: {exc}")
    if not problems:
        try:
            cls.parameters()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"parameters() (used by `panen triggers`) raised {type(exc).__name__}: {exc}")
    if problems:
        raise AssertionError("; ".join(problems))


def check_example_params(s: _Subject) -> None:
    """The example term sheet validates, names this trigger, reads back the same from a JSON
    dump of the keys it sets, and its ``required_inputs`` and ``reach`` are well formed."""
    params = s.params
    cls = s.trigger
    problems = []
    if getattr(params, "trigger", None) != getattr(cls, "name", None):
        problems.append(f"the validated term sheet says trigger={params.trigger!r}, not {cls.name!r}")
    try:  # what was set, as JSON: the term sheet written back out (e.g. a YAML to paste under products:)
        again = type(params).model_validate(params.model_dump(mode="json", exclude_unset=True))
    except ValidationError as exc:
        problems.append(f"its JSON dump (the keys it sets) does not validate again: {exc}")
    else:
        if again != params:
            problems.append("its JSON dump (the keys it sets) validates to a different term sheet")
    try:
        needed = cls.required_inputs(params)
    except Exception as exc:  # noqa: BLE001
        needed = ()
        problems.append(f"required_inputs raised {type(exc).__name__}: {exc}")
    if not isinstance(needed, tuple | list) or not all(isinstance(n, str) for n in needed):
        problems.append(f"required_inputs must return input names; got {needed!r}")
    elif set(needed) - set(cls.inputs):
        problems.append(f"required_inputs names {sorted(set(needed) - set(cls.inputs))} that inputs "
                        f"{tuple(cls.inputs)!r} does not declare (the engine hands a trigger only its inputs)")
    try:
        reach = params.reach
    except Exception as exc:  # noqa: BLE001
        reach = None
        problems.append(f"reach raised {type(exc).__name__}: {exc}")
    if reach is not None and not (isinstance(reach, tuple) and len(reach) == 2
                                  and all(isinstance(r, int | np.integer) for r in reach) and reach[0] < reach[1]):
        problems.append(f"reach must be None or (start, end) days with start < end; got {reach!r}")
    if problems:
        raise AssertionError("; ".join(problems))


def check_invalid_params_rejected(s: _Subject) -> None:
    """Term sheets breaking a declared constraint (bounds, lengths, choices, types, required
    keys, unknown keys — nested models included) and the caller's own invalid examples are
    rejected at load time with a pydantic ``ValidationError``."""
    model = type(s.params)  # the example must validate first
    cases = derive_invalid_params(model, s.example)
    cases += [InvalidParams(f"invalid_params[{i}]", "given by the caller", p) for i, p in enumerate(s.extra_invalid)]
    problems = []
    for case in cases:
        try:
            model.model_validate(case.params)
        except ValidationError:
            continue
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{case.where or 'term sheet'}: {case.why} raised {type(exc).__name__}: {exc} — not a "
                            f"pydantic ValidationError, so a config with it cannot be reported as a config error "
                            f"(raise ValueError in validators)")
        else:
            problems.append(f"{case.where or 'term sheet'}: {case.why} was accepted")
    if problems:
        raise AssertionError(f"{len(problems)} of {len(cases)} invalid term sheets were not rejected with a "
                             f"ValidationError:{_listed(problems)}")


def check_result_structure(s: _Subject) -> None:
    """On complete inputs, ``evaluate`` returns a :class:`TriggerResult` that passes
    ``standardise_result`` and ``check_result_values``: ``payout_rate`` on (district, cohort)
    for exactly the requested cohorts, rates in [0, 1], and at least one district assessed."""
    ds = s.baseline
    if not (~ds["flagged"].values).any():
        raise AssertionError("every district and cohort is flagged on the complete inputs, so the missing-data "
                             f"checks would prove nothing{s.hint}")


def check_single_district_and_cohort(s: _Subject) -> None:
    """One district and one cohort still give a (district, cohort) result (no squeezed dims),
    equal to that district's and cohort's result in the full evaluation."""
    d = _pick_district(s)
    inputs = subset(s.inputs(), [d], 1)
    ds = _run(s, inputs, f"inputs holding only district {d!r} and one cohort")
    _compare(ds, s.baseline.sel(district=[d]).isel(cohort=[0]), f"with only district {d!r} and one cohort")


def check_district_labels(s: _Subject) -> None:
    """Results are matched to districts by label, not position: requesting the districts in
    reverse order gives each district the same result."""
    if len(s.inputs().district_ids) < 2:
        raise unittest.SkipTest("fewer than two districts: their order cannot be changed")
    ds = _run(s, reversed_request(s.inputs()), "the districts requested in reverse order")
    _compare(ds, s.baseline, "with the districts requested in reverse order")


def check_rates_in_unit_interval(s: _Subject) -> None:
    """Extreme inputs (values from the season start on × 0 and × 10) still give rates in
    [0, 1] or NaN (flagged), and ``evaluate`` does not fail on them."""
    if not s.reads_data():
        raise unittest.SkipTest("the trigger reads no inputs: nothing to make extreme")
    for factor in (0.0, 10.0):
        _run(s, scaled(s.inputs(), factor), f"inputs multiplied by {factor:g} from the season start on")


def check_nan_in_nan_out(s: _Subject) -> None:
    """A district with no data (series ``mean`` NaN and ``valid_fraction`` 0, table values
    NaN) gets ``payout_rate`` NaN and ``flagged`` for every cohort — never a payout on
    missing data — while the other assessed districts stay assessed."""
    d = _pick_district(s)
    inputs, done = blanked(s.inputs(), d)
    if not done:
        raise unittest.SkipTest("no input has districts to blank")
    ds = _run(s, inputs, f"inputs with district {d!r} blanked")
    _missing_is_flagged(s, ds, d, f"district {d!r} had no data ({'; '.join(done)} blanked)")


def check_absent_district_flagged(s: _Subject) -> None:
    """A requested district missing from every input is flagged with a NaN rate (not an
    error that stops the run, not a payout), the others stay assessed."""
    d = _pick_district(s)
    inputs, done = without(s.inputs(), d)
    if not done:
        raise unittest.SkipTest("no input has districts to leave out")
    ds = _run(s, inputs, f"inputs without district {d!r}")
    _missing_is_flagged(s, ds, d, f"district {d!r} was absent from {', '.join(done)}")


def _missing_is_flagged(s: _Subject, ds: xr.Dataset, d: str, situation: str) -> None:
    here = ds.sel(district=d)
    rate, flagged = np.asarray(here["payout_rate"].values, float), np.asarray(here["flagged"].values, bool)
    bad = [f"cohort {_day(ds, c)}: payout_rate {float(rate[c])!r}, flagged {bool(flagged[c])}"
           for c in range(rate.size) if not (np.isnan(rate[c]) and flagged[c])]
    if bad:
        raise AssertionError(f"{situation}, yet it was not NaN and flagged (never a payout on missing data):"
                             f"{_listed(bad)}")
    base = s.baseline
    lost = [f"district {o!r}, cohort {_day(ds, c)}"
            for i, o in enumerate(base["district"].values) if str(o) != d
            for c in range(base.sizes["cohort"])
            if not base["flagged"].values[i, c] and ds["flagged"].sel(district=o).values[c]]
    if lost:
        raise AssertionError(f"{situation}, and other districts lost their assessment:{_listed(lost)}")


def _as_of(inputs: TriggerInputs, day: np.datetime64) -> TriggerInputs:
    """The inputs as an in-season run sees them on ``day``: every later step of every series unknown."""
    series = {}
    for name, ds in inputs.series.items():
        known = xr.DataArray(ds["time"].values.astype("datetime64[D]") <= day, dims="time",
                             coords={"time": ds["time"]})
        cut = ds.assign(mean=ds["mean"].where(known), valid_fraction=ds["valid_fraction"].where(known, 0.0))
        cut["mean"].attrs.update(ds["mean"].attrs)
        series[name] = cut
    return TriggerInputs(season=inputs.season, cohorts=inputs.cohorts, district_ids=inputs.district_ids,
                         series=series, tables=dict(inputs.tables), insured_area=inputs.insured_area, as_of=day)


def check_guaranteed_below_final(s: _Subject) -> None:
    """In season (``inputs.as_of`` a third and two thirds into the season, and its last day;
    every later day of every series unknown), ``guaranteed_rate`` gives rates in [0, 1] on
    ``(district, cohort)`` that are never above the payout rate of the complete inputs: what
    an on-account batch pays is never clawed back."""
    base = s.inputs()
    start, end = np.datetime64(base.season.start, "D"), np.datetime64(base.season.end, "D")
    span = (end - start).astype(np.int64)
    final = s.baseline["payout_rate"]
    for day in (start + np.timedelta64(span // 3, "D"), start + np.timedelta64(2 * span // 3, "D"), end):
        what = f"the inputs as of {day}"
        inputs = _as_of(base, day)
        ds = _run(s, inputs, what)
        try:
            rate = s.trigger.guaranteed_rate(s.params, inputs, ds)
            if isinstance(rate, xr.DataArray) and rate.chunks:
                rate = rate.compute()
            rate = check_guaranteed_rate(rate, ds, trigger=s.label, product_id=s.params.id)
        except PluginError as exc:
            raise AssertionError(f"on {what}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - any failure of the plugin is the finding
            raise AssertionError(f"guaranteed_rate raised {type(exc).__name__} on {what}: {exc}") from exc
        full = np.asarray(final.sel(district=rate["district"].values).values, dtype=float)
        got = np.asarray(rate.values, dtype=float)
        over = [f"district {rate['district'].values[d]!r}, cohort {_day(ds, c)}: guaranteed {got[d, c]:.6g} > "
                f"final {full[d, c]:.6g}"
                for d, c in zip(*np.nonzero(np.isfinite(got) & np.isfinite(full) & (got > full + ATOL)))]
        if over:
            raise AssertionError(f"on {what}, guaranteed_rate is above the payout rate of the complete inputs "
                                 f"(it must be a lower bound: later data may only add to it):{_listed(over)}")


def check_lazy_under_dask(s: _Subject) -> None:
    """On dask-backed series, neither ``evaluate`` nor ``standardise_result`` computes
    anything: every compute is refused and reported with the line that asked for it."""
    inputs = chunked(s.inputs())
    if not inputs.series:
        raise unittest.SkipTest("the trigger reads no series: there is no dask input to stay lazy on")
    s.params  # noqa: B018 - validate outside the guard
    with _refusing_compute() as calls:
        try:
            result = _evaluate(s, inputs, "dask-backed inputs")
            _standardise(s, result, inputs, "dask-backed inputs")
        except _ComputeRefused:
            pass
    if calls:
        raise AssertionError(f"evaluate computed dask data {len(calls)} time(s) before being asked; the first from "
                             f"{calls[0]}. Build the result lazily (xarray operations, xr.apply_ufunc(..., "
                             f"dask='parallelized')): the engine computes every product once, together")


def check_dask_matches_in_memory(s: _Subject) -> None:
    """The result on dask-backed series (chunked along time and district), once computed,
    equals the result on the same data in memory."""
    inputs = chunked(s.inputs())
    if not inputs.series:
        raise unittest.SkipTest("the trigger reads no series: there is no dask input to compare")
    ds = _run(s, inputs, "dask-backed inputs")
    _compare(ds, s.baseline, "on dask-backed inputs, compared with in-memory inputs")


def check_pure(s: _Subject) -> None:
    """``evaluate`` changes nothing it is given (series values and attrs, tables, cohorts,
    districts), in memory or on dask, and gives the same result when called again."""
    for label, inputs in (("in-memory", s.inputs()), ("dask-backed", chunked(s.inputs()))):
        before = copied(inputs)
        held = {("series", k): v for k, v in inputs.series.items()} | {("tables", k): v for k, v in inputs.tables.items()}
        _evaluate(s, inputs, f"{label} inputs")
        problems = _changes(inputs, before, held)
        if problems:
            raise AssertionError(f"evaluate changed its {label} inputs:{_listed(problems)}")
    inputs = s.inputs()
    _compare(_run(s, inputs, "the complete inputs, again"), s.baseline, "evaluated a second time")


def _changes(after: TriggerInputs, before: TriggerInputs, held: dict) -> list[str]:
    problems = []
    if not (np.array_equal(after.cohorts, before.cohorts) and after.cohorts.dtype == before.cohorts.dtype):
        problems.append("cohorts")
    if not (np.array_equal(after.district_ids, before.district_ids)
            and after.district_ids.dtype == before.district_ids.dtype):
        problems.append("district_ids")
    for kind in ("series", "tables"):
        now, then = getattr(after, kind), getattr(before, kind)
        if set(now) != set(then):
            problems.append(f"{kind} keys: {sorted(then)} became {sorted(now)}")
            continue
        for k in then:
            if now[k] is not held[(kind, k)]:
                problems.append(f"{kind}[{k!r}] was replaced by another object")
                continue
            try:
                if kind == "series":
                    xr.testing.assert_identical(now[k], then[k])
                else:
                    pd.testing.assert_frame_equal(now[k], then[k], check_exact=True)
                    assert now[k].attrs == then[k].attrs, f"attrs {then[k].attrs!r} became {now[k].attrs!r}"
            except AssertionError as exc:
                problems.append(f"{kind}[{k!r}]: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                                + _detail(exc))
    return problems


def _detail(exc: AssertionError) -> str:
    lines = [ln.strip() if len(ln.strip()) <= 120 else ln.strip()[:117] + "..."
             for ln in str(exc).strip().splitlines()[1:] if ln.strip()]
    return f" ({'; '.join(lines[:4])})" if lines else ""


#: Every check, in the order it runs: (name, function of a subject).
CHECKS: tuple[tuple[str, Callable[[_Subject], None]], ...] = (
    ("declarations", check_declarations),
    ("example_params", check_example_params),
    ("invalid_params_rejected", check_invalid_params_rejected),
    ("result_structure", check_result_structure),
    ("single_district_and_cohort", check_single_district_and_cohort),
    ("district_labels", check_district_labels),
    ("rates_in_unit_interval", check_rates_in_unit_interval),
    ("nan_in_nan_out", check_nan_in_nan_out),
    ("absent_district_flagged", check_absent_district_flagged),
    ("guaranteed_below_final", check_guaranteed_below_final),
    ("lazy_under_dask", check_lazy_under_dask),
    ("dask_matches_in_memory", check_dask_matches_in_memory),
    ("pure", check_pure),
)
