"""panen.testing, the public check suite: it passes a minimal correct plugin (the README's),
fails broken ones on the relevant check only, derives invalid term sheets from declared
constraints, and is importable as ``panen.testing`` alone."""

from __future__ import annotations

import ast
import importlib
import math
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from panen.engine.api import ProductParams, Trigger, TriggerInputs, TriggerResult
from panen.testing import (
    TriggerCheckFailure,
    check_trigger,
    invalid_params,
    parametrize_trigger_checks,
    synthetic_inputs,
    trigger_checks,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


# --------------------------------------------------------------------------- the README's example, copied
class HailParams(ProductParams):           # the term sheet; extra keys are rejected
    trigger: Literal["hail_days"] = "hail_days"
    strike: float = Field(gt=0, description="hail days before payment starts [days]")


class HailTrigger(Trigger):
    name = "hail_days"
    Params = HailParams
    inputs = ("rainfall",)                  # district series the engine hands you
    description = "pays on the number of extreme-rain days"

    def evaluate(self, params: HailParams, inputs: TriggerInputs) -> TriggerResult:
        rain = inputs.series["rainfall"]["mean"]               # (time, district) [mm/day], maybe dask
        days = (rain > 80).sum("time").where(rain.notnull().all("time"))   # NaN in -> NaN out
        rate = ((days - params.strike) / params.strike).clip(0, 1)
        rate = rate.expand_dims(cohort=inputs.cohorts).transpose("district", "cohort")
        return TriggerResult(xr.Dataset({"payout_rate": rate, "flagged": rate.isnull()}))


def _readme_hail() -> type:
    code = re.search(r"# my_triggers/hail.py\n(.*?)```", README.read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(code, "README.md", "exec", dont_inherit=True), ns)  # noqa: S102 - our own documentation
    return ns["HailTrigger"]


def test_readme_hail_trigger_copied_here_passes_every_check():
    outcomes = check_trigger(HailTrigger, {"strike": 2.0})
    assert outcomes == dict.fromkeys(outcomes, "passed")
    assert len(outcomes) == 13


def test_readme_hail_trigger_as_written_in_the_readme_passes_every_check():
    outcomes = check_trigger(_readme_hail(), {"strike": 2.0})
    assert set(outcomes.values()) == {"passed"}


def test_readme_snippet_for_plugin_authors_runs(monkeypatch):
    text = README.read_text()
    module = types.ModuleType("my_triggers.hail")
    exec(compile(re.search(r"# my_triggers/hail.py\n(.*?)```", text, re.S).group(1), "README.md", "exec"),
         module.__dict__)  # noqa: S102 - our own documentation
    package = types.ModuleType("my_triggers")
    package.hail = module
    monkeypatch.setitem(sys.modules, "my_triggers", package)
    monkeypatch.setitem(sys.modules, "my_triggers.hail", module)
    ns: dict = {}
    exec(compile(re.search(r"# tests/test_hail.py\n(.*?)```", text, re.S).group(1), "README.md", "exec"), ns)  # noqa: S102
    for case in ns["test_hail_trigger"].pytestmark[0].args[1]:
        case()
    ns["test_hail_trigger_at_once"]()


@parametrize_trigger_checks(HailTrigger, {"strike": 2.0})
def test_plugin_author_style_one_test_per_check(check):
    check()


# --------------------------------------------------------------------------- a correct trigger, then broken ones
class DryParams(ProductParams):
    """Pays as the rainfall total of the first ``days`` days after the anchor falls from strike to exit."""

    trigger: Literal["dry_total"] = "dry_total"
    days: int = Field(60, gt=0, le=366, description="window length [days]")
    strike: float = Field(gt=0, description="total where payment starts [mm]")
    exit: float = Field(ge=0, description="total of full payment [mm]")

    @model_validator(mode="after")
    def _ordered(self) -> "DryParams":
        if not self.exit < self.strike:
            raise ValueError(f"exit must be < strike ({self.strike}); got {self.exit}")
        return self


class DryTrigger(Trigger):
    name = "dry_total"
    Params = DryParams
    inputs = ("rainfall",)
    description = "rainfall total over a window, linear deficit payout"

    def evaluate(self, params: DryParams, inputs: TriggerInputs) -> TriggerResult:
        ds = inputs.series["rainfall"]
        rain = ds["mean"].where(ds["valid_fraction"] >= 0.5)
        total = self.total(rain, inputs.cohorts, params.days)
        rate = self.curve((params.strike - total) / (params.strike - params.exit))
        return TriggerResult(xr.Dataset({"payout_rate": rate.transpose("district", "cohort")}))

    @staticmethod
    def total(rain: xr.DataArray, cohorts: np.ndarray, days: int) -> xr.DataArray:
        sums = [rain.sel(time=slice(c, c + np.timedelta64(days - 1, "D"))).sum("time", skipna=False) for c in cohorts]
        return xr.concat(sums, dim="cohort").assign_coords(cohort=np.asarray(cohorts, "datetime64[ns]"))

    @staticmethod
    def curve(x: xr.DataArray) -> xr.DataArray:
        return x.clip(0, 1)


DRY = {"days": 60, "strike": 300.0, "exit": 100.0}


def test_correct_minimal_trigger_passes_every_check_and_returns_outcomes():
    outcomes = check_trigger(DryTrigger, DRY, invalid_params=[{**DRY, "exit": 400.0}])
    assert outcomes == dict.fromkeys(outcomes, "passed")


def test_the_synthetic_inputs_make_the_correct_trigger_pay_somewhere_and_not_everywhere():
    inputs = synthetic_inputs(DryTrigger.inputs)
    rate = DryTrigger().evaluate(DryParams(id="d", sum_insured_per_ha=1, **DRY), inputs).data["payout_rate"].values
    assert np.isfinite(rate).all()
    assert (rate == 1).any() and (rate == 0).any() and ((rate > 0) & (rate < 1)).any()


class PaysOnMissing(DryTrigger):
    def evaluate(self, params, inputs):
        rain = inputs.series["rainfall"]["mean"].fillna(0.0)  # missing read as zero rain
        total = self.total(rain, inputs.cohorts, params.days)
        rate = self.curve((params.strike - total) / (params.strike - params.exit))
        return TriggerResult(xr.Dataset({"payout_rate": rate.transpose("district", "cohort")}))


class FlagsButPaysZero(DryTrigger):
    def evaluate(self, params, inputs):
        ds = super().evaluate(params, inputs).data
        return TriggerResult(ds.assign(flagged=ds["payout_rate"].isnull(), payout_rate=ds["payout_rate"].fillna(0.0)))


class ComputesEagerly(DryTrigger):
    def evaluate(self, params, inputs):
        ds = super().evaluate(params, inputs).data
        return TriggerResult(ds.compute())


class PeeksAtValues(DryTrigger):
    def evaluate(self, params, inputs):
        if float(inputs.series["rainfall"]["mean"].max()) > 1e6:  # a sanity check that computes
            raise ValueError("implausible rainfall")
        return super().evaluate(params, inputs)


class DiffersOnDask(DryTrigger):
    def evaluate(self, params, inputs):
        ds = super().evaluate(params, inputs).data
        if inputs.series["rainfall"]["mean"].chunks:
            ds = ds * 0.5
        return TriggerResult(ds)


class MutatesAttrs(DryTrigger):
    def evaluate(self, params, inputs):
        inputs.series["rainfall"]["mean"].attrs["long_name"] = "rainfall"
        return super().evaluate(params, inputs)


class MutatesTable(DryTrigger):
    inputs = ("rainfall", "yields")

    def evaluate(self, params, inputs):
        inputs.tables["yields"]["yield"] *= 0.1  # t/ha -> "t per 10 ha", in place
        return super().evaluate(params, inputs)


class SqueezesDims(DryTrigger):
    def evaluate(self, params, inputs):
        return TriggerResult(super().evaluate(params, inputs).data.squeeze())


class ByPosition(DryTrigger):
    def evaluate(self, params, inputs):
        ds = super().evaluate(params, inputs).data
        return TriggerResult(ds.drop_vars("district").assign_coords(district=inputs.district_ids))


class FailsOnAbsentDistrict(DryTrigger):
    def evaluate(self, params, inputs):
        ds = inputs.series["rainfall"].sel(district=inputs.district_ids)
        return super().evaluate(params, TriggerInputs(inputs.season, inputs.cohorts, inputs.district_ids,
                                                      {"rainfall": ds}))


class UnclippedAbove(DryTrigger):
    @staticmethod
    def curve(x):
        return x.clip(min=0)  # a rate above 1 once the total falls below exit


class ReturnsDataset(DryTrigger):
    def evaluate(self, params, inputs):
        return super().evaluate(params, inputs).data


class BadDeclarations(DryTrigger):
    inputs = ["rainfall"]  # a list: shared and mutable
    backtest_by = "yearly"


class ClampingParams(DryParams):
    @field_validator("strike", mode="before")
    @classmethod
    def _positive(cls, v):
        return abs(float(v)) or 1.0  # "fixes" a bad strike instead of rejecting it


class ClampsParams(DryTrigger):
    Params = ClampingParams


class CrashingParams(DryParams):
    @model_validator(mode="before")
    @classmethod
    def _exit_below_strike(cls, data):
        if data["exit"] >= data["strike"]:  # KeyError when a key is left out, TypeError on a string
            raise ValueError("exit must be < strike")
        return data


class CrashesOnParams(DryTrigger):
    Params = CrashingParams


class Window(BaseModel):  # extra keys silently ignored: pydantic's default
    days: int = Field(gt=0, le=366)


class NestedLooseParams(ProductParams):
    trigger: Literal["dry_total"] = "dry_total"
    window: Window
    strike: float = Field(gt=0)
    exit: float = Field(ge=0)


class NestedLoose(DryTrigger):
    Params = NestedLooseParams

    def evaluate(self, params, inputs):
        flat = DryParams(id=params.id, sum_insured_per_ha=params.sum_insured_per_ha, days=params.window.days,
                         strike=params.strike, exit=params.exit)
        return super().evaluate(flat, inputs)


class GuaranteesTheDeficitSoFar(DryTrigger):
    """Reads the unknown days of an open window as zero rain: a deficit 'guaranteed' that later rain removes."""

    @classmethod
    def guaranteed_rate(cls, params, inputs, result):
        total = cls.total(inputs.series["rainfall"]["mean"].fillna(0.0), inputs.cohorts, params.days)
        return cls.curve((params.strike - total) / (params.strike - params.exit)).transpose("district", "cohort")


class IgnoresUnknownKeys(DryTrigger):
    class Params(DryParams):
        model_config = ConfigDict(extra="ignore")


BROKEN = [
    pytest.param(PaysOnMissing, DRY, {"nan_in_nan_out"}, "payout_rate 1.0", id="pays-on-missing"),
    pytest.param(FlagsButPaysZero, DRY, {"nan_in_nan_out"}, "payout_rate 0.0, flagged True",
                 id="flags-but-pays-zero"),
    pytest.param(ComputesEagerly, DRY, {"lazy_under_dask"}, "test_testing.py", id="computes-eagerly"),
    pytest.param(PeeksAtValues, DRY, {"lazy_under_dask"}, "float(inputs.series", id="peeks-at-values"),
    pytest.param(DiffersOnDask, DRY, {"dask_matches_in_memory"}, "payout_rate", id="differs-on-dask"),
    pytest.param(MutatesAttrs, DRY, {"pure"}, "series['rainfall']", id="mutates-attrs"),
    pytest.param(MutatesTable, DRY, {"pure"}, "tables['yields']", id="mutates-table"),
    pytest.param(SqueezesDims, DRY, {"single_district_and_cohort"}, "dims", id="squeezes-dims"),
    pytest.param(ByPosition, DRY, {"district_labels", "absent_district_flagged"}, "instead of",
                 id="districts-by-position"),
    pytest.param(FailsOnAbsentDistrict, DRY, {"absent_district_flagged"}, "KeyError", id="fails-on-absent-district"),
    pytest.param(UnclippedAbove, {"days": 60, "strike": 100.0, "exit": 20.0}, {"rates_in_unit_interval"},
                 "payout_rate outside [0, 1]", id="rate-above-one"),
    pytest.param(BadDeclarations, DRY, {"declarations"}, "backtest_by", id="bad-declarations"),
    # exit 0: the cross-field rule (exit < strike) would otherwise reject the clamped strike for another reason
    pytest.param(ClampsParams, {**DRY, "exit": 0.0}, {"invalid_params_rejected"}, "strike: -1.0 breaks gt=0 was accepted",
                 id="clamps-out-of-range-parameter"),
    pytest.param(CrashesOnParams, DRY, {"invalid_params_rejected"}, "exit: required key left out raised KeyError",
                 id="validator-crashes-instead-of-rejecting"),
    pytest.param(NestedLoose, {"window": {"days": 60}, "strike": 300.0, "exit": 100.0}, {"invalid_params_rejected"},
                 "window.not_a_parameter: unknown key was accepted", id="nested-model-ignores-unknown-keys"),
    pytest.param(GuaranteesTheDeficitSoFar, DRY, {"guaranteed_below_final"}, "above the payout rate of the complete",
                 id="guarantees-an-open-deficit"),
    pytest.param(IgnoresUnknownKeys, DRY, {"declarations", "invalid_params_rejected"}, "extra='forbid'",
                 id="ignores-unknown-keys"),
]


@pytest.mark.parametrize("trigger, example, failing, words", BROKEN)
def test_broken_trigger_fails_the_relevant_checks_and_only_those(trigger, example, failing, words):
    with pytest.raises(TriggerCheckFailure) as e:
        check_trigger(trigger, example)
    assert set(e.value.checks) == failing, str(e.value)
    assert words in str(e.value)
    for name in failing:
        assert f"trigger 'dry_total' failed check {name!r}" in str(e.value)


@pytest.mark.parametrize("trigger, example, failing, words", BROKEN[:3])
def test_each_check_from_trigger_checks_raises_alone_naming_itself(trigger, example, failing, words):
    for name, check in trigger_checks(trigger, example):
        if name in failing:
            with pytest.raises(TriggerCheckFailure, match=f"failed check '{name}'") as e:
                check()
            assert isinstance(e.value, AssertionError) and e.value.checks == (name,)
        else:
            check()


def test_cross_field_rule_is_checked_through_the_callers_invalid_examples():
    class NoOrder(DryTrigger):
        class Params(DryParams):
            @model_validator(mode="after")
            def _ordered(self):
                return self  # exit >= strike slips through

    check_trigger(NoOrder, DRY)  # nothing declared shows the rule ...
    with pytest.raises(TriggerCheckFailure, match=r"invalid_params\[0\]: given by the caller was accepted"):
        check_trigger(NoOrder, DRY, invalid_params=[{**DRY, "exit": 400.0}])  # ... the author's example does


def test_invalid_example_params_fail_naming_the_problem():
    with pytest.raises(TriggerCheckFailure, match="example term sheet does not validate") as e:
        check_trigger(DryTrigger, {"days": 60, "strike": 100.0, "exit": 200.0})
    assert "example_params" in e.value.checks and "declarations" not in e.value.checks


# --------------------------------------------------------------------------- inputs the synthetic data cannot fit
class StationTrigger(DryTrigger):
    name = "station_total"
    inputs = ("station_rain",)

    class Params(DryParams):
        trigger: Literal["station_total"] = "station_total"

    def evaluate(self, params, inputs):
        renamed = TriggerInputs(inputs.season, inputs.cohorts, inputs.district_ids,
                                {"rainfall": inputs.series["station_rain"]})
        return super().evaluate(params, renamed)


def test_unknown_input_names_fail_with_guidance_and_pass_with_the_authors_inputs():
    with pytest.raises(TriggerCheckFailure, match=r"cannot make up input\(s\) 'station_rain'.*inputs=TriggerInputs"):
        check_trigger(StationTrigger, DRY)
    rain = synthetic_inputs(("rainfall",))
    own = TriggerInputs(rain.season, rain.cohorts, rain.district_ids, {"station_rain": rain.series["rainfall"]})
    outcomes = check_trigger(StationTrigger, DRY, inputs=own)
    assert set(outcomes.values()) == {"passed"}


def test_authors_dask_inputs_are_accepted_and_left_untouched():
    rain = synthetic_inputs(("rainfall",))
    lazy = TriggerInputs(rain.season, rain.cohorts, rain.district_ids, {"rainfall": rain.series["rainfall"].chunk()})
    assert set(check_trigger(DryTrigger, DRY, inputs=lazy).values()) == {"passed"}
    assert lazy.series["rainfall"]["mean"].chunks is not None


def test_authors_in_memory_inputs_are_not_modified_by_the_checks():
    rain = synthetic_inputs(("rainfall",))
    before = rain.series["rainfall"].copy(deep=True)
    check_trigger(DryTrigger, DRY, inputs=rain)
    xr.testing.assert_identical(rain.series["rainfall"], before)


def test_example_may_be_a_validated_params_instance():
    outcomes = check_trigger(HailTrigger, HailParams(id="hail", sum_insured_per_ha=1_000_000, strike=2.0))
    assert set(outcomes.values()) == {"passed"}


def test_table_only_trigger_skips_the_dask_checks_with_a_reason():
    class FromYields(Trigger):
        name = "flat_yield"
        inputs = ("yields",)

        class Params(ProductParams):
            trigger: Literal["flat_yield"] = "flat_yield"

        def evaluate(self, params, inputs):
            t = inputs.tables["yields"]
            t = t[t["year"] == inputs.season.year].set_index("district_id")["yield"]
            y = xr.DataArray(t.reindex([str(d) for d in inputs.district_ids]).to_numpy(), dims="district",
                             coords={"district": inputs.district_ids})
            rate = (1 - y / 5.0).clip(0, 1).expand_dims(cohort=inputs.cohorts).transpose("district", "cohort")
            return TriggerResult(xr.Dataset({"payout_rate": rate}))

    outcomes = check_trigger(FromYields, {})
    assert outcomes["lazy_under_dask"].startswith("skipped: the trigger reads no series")
    assert outcomes["nan_in_nan_out"] == "passed"


# --------------------------------------------------------------------------- invalid values from constraints
class Band(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(ge=0, le=1)


class Sheet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(ge=1)
    share: float = Field(0.5, gt=0, lt=1)
    mode: Literal["a", "b"] = "a"
    label: str = Field(min_length=2, max_length=3)
    flag: bool = False
    pair: tuple[int, int]
    bands: list[Band] = Field(min_length=1, max_length=2)


def test_invalid_values_are_derived_from_each_declared_constraint():
    example = {"k": 3, "label": "ab", "pair": [1, 2], "bands": [{"rate": 0.5}]}
    got = {(c.where, c.why) for c in invalid_params(Sheet, example)}
    tiny = math.nextafter(0.0, -1.0)
    above_one = math.nextafter(1.0, 2.0)
    expected = {
        ("not_a_parameter", "unknown key"),
        ("k", "required key left out"), ("k", "int given a string"), ("k", "int given a fraction"),
        ("k", "0 breaks ge=1"),
        ("share", "float given a string"), ("share", "float given nan"),
        ("share", "0 breaks gt=0"), ("share", "-1.0 breaks gt=0"), ("share", "1 breaks lt=1"), ("share", "2.0 breaks lt=1"),
        ("mode", "'a_not_a_choice' is none of ['a', 'b']"),
        ("label", "required key left out"), ("label", "length 1 breaks min_length=2"),
        ("label", "length 4 breaks max_length=3"),
        ("flag", "bool given 'maybe'"),
        ("pair", "required key left out"), ("pair", "tuple[int, int] given 1 items"),
        ("pair", "item 0: int given a string"), ("pair", "item 0: int given a fraction"),
        ("bands", "required key left out"), ("bands", "length 0 breaks min_length=1"),
        ("bands", "length 3 breaks max_length=2"),
        ("bands[0].not_a_parameter", "unknown key"), ("bands[0].rate", "required key left out"),
        ("bands[0].rate", "float given a string"), ("bands[0].rate", "float given nan"),
        ("bands[0].rate", f"{tiny!r} breaks ge=0"), ("bands[0].rate", "-1.0 breaks ge=0"),
        ("bands[0].rate", f"{above_one!r} breaks le=1"), ("bands[0].rate", "2.0 breaks le=1"),
    }
    assert got == expected
    by = {(c.where, c.why): c.params for c in invalid_params(Sheet, example)}
    assert by[("share", "1 breaks lt=1")] == {**example, "share": 1.0}
    assert by[("bands[0].rate", "2.0 breaks le=1")]["bands"] == [{"rate": 2.0}]
    assert "k" not in by[("k", "required key left out")]
    assert len(by[("label", "length 4 breaks max_length=3")]["label"]) == 4
    assert example == {"k": 3, "label": "ab", "pair": [1, 2], "bands": [{"rate": 0.5}]}  # not modified


def test_discriminated_unions_recurse_into_the_member_the_example_chose():
    from panen.triggers.area_yield import AreaYieldParams

    example = {"id": "y", "sum_insured_per_ha": 1, "normal_yield": {"method": "best_of", "best": 5, "of": 7},
               "indemnity_level": 0.8}
    where = {c.where for c in invalid_params(AreaYieldParams, example)}
    assert {"normal_yield.best", "normal_yield.of", "normal_yield.not_a_parameter"} <= where
    assert "normal_yield.years" not in where  # the mean member's field: not the example's


# --------------------------------------------------------------------------- packaging
def test_panen_testing_imports_alone_without_triggers_or_engine_internals():
    code = ("import sys, panen.testing; "
            "print(sorted(m for m in sys.modules if m.startswith('panen')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(ast.literal_eval(out.strip()))
    assert not any(m.startswith(("panen.triggers", "panen.datasets", "panen.engine.testing")) for m in loaded)
    assert not loaded & {"panen.engine.registry", "panen.engine.config", "panen.engine.maths"}


def test_panen_testing_source_imports_only_the_api_errors_and_libraries():
    allowed_panen = {"panen.engine.api", "panen.engine.errors"}
    for path in sorted((REPO / "engine" / "testing").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                if name.startswith("panen"):
                    assert name in allowed_panen, f"{path.name} imports {name}"


def test_the_package_is_one_module_never_reached_as_panen_engine_testing():
    with pytest.raises(ImportError, match="import panen.testing, not panen.engine.testing"):
        importlib.import_module("panen.engine.testing")
    assert "panen.engine.testing" not in sys.modules
    pattern = re.compile(r"(from|import)\s+panen\.engine\.testing\b")
    for path in [*REPO.glob("*/**/*.py"), REPO / "README.md"]:
        if ".venv" not in path.parts:
            assert not pattern.search(path.read_text()), path
