"""One contract, every registered trigger: the public check suite (``panen.testing``) on each
example term sheet — dims kept, NaN in → NaN out, lazy under dask, dask equals in-memory,
inputs untouched, bad parameters rejected — and bad parameters rejected at config load
naming product, parameter and range."""

from __future__ import annotations

import numpy as np
import pytest

from panen.engine.config import parse_config
from panen.engine.errors import ConfigError
from panen.engine.registry import triggers
from panen.testing import TriggerCheckFailure, check_trigger, synthetic_inputs, trigger_checks

_VEG = {"name": "veg", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
        "strike": 150, "exit": 50, "weight": 1.0}

# Example term sheets per built-in trigger: label → (valid term sheet, term sheets that must be
# rejected for rules no single field declares). Each example runs the whole check suite.
EXAMPLES: dict[str, dict[str, tuple[dict, list[dict]]]] = {
    "weather_index": {
        "deficit": ({"phases": [_VEG]}, [
            {"phases": [{**_VEG, "exit": 170}]},                     # exit above strike on a deficit phase
            {"phases": [{**_VEG, "start_day": 40, "end_day": 40}]},  # empty window
            {"phases": [_VEG, _VEG]},                                # two phases with one name
        ]),
        "every-index-and-curve": ({
            "anchor": "sowing_date", "season_cap": 0.9, "min_valid_fraction": 0.6,
            "phases": [
                _VEG,
                {"name": "dry", "start_day": 0, "end_day": 100, "index": "dry_spell", "dry_threshold": 1.0,
                 "direction": "above", "strike": 10, "exit": 25, "weight": 0.5},
                {"name": "flood", "start_day": 20, "end_day": 120, "index": "max_n_day", "n": 3,
                 "direction": "above", "strike": 120, "weight": 0.3, "curve": "binary"},
                {"name": "wet-days", "start_day": 0, "end_day": 60, "index": "rainy_days", "wet_threshold": 1.0,
                 "direction": "below", "strike": 30, "weight": 0.4, "curve": "step",
                 "bands": [{"max": 15, "rate": 1.0}, {"min": 15, "max": 30, "rate": 0.5}]},
            ],
        }, [
            {"phases": [{**_VEG, "index": "max_n_day"}]},            # max_n_day without n
            {"phases": [{**_VEG, "curve": "step"}]},                 # step curve without bands
        ]),
    },
    "area_yield": {
        "best-of-shortfall": ({"normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.8}, [
            {"normal_yield": {"method": "best_of", "best": 8, "of": 7}, "indemnity_level": 0.8},
            {"normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.8,
             "loss_limit_factor": 0.2},                               # ARPI key on a shortfall cover
        ]),
        "mean-trend-arpi": ({"normal_yield": {"method": "mean", "years": 10}, "trend": {"method": "linear"},
                             "indemnity_level": 0.9, "formula": "arpi", "loss_limit_factor": 0.18,
                             "missing_years": "average_available", "min_years": 8}, [
            {"normal_yield": {"method": "mean", "years": 10}, "indemnity_level": 0.9,
             "missing_years": "average_available", "min_years": 11},
            {"normal_yield": {"method": "mean", "years": 10}, "indemnity_level": 0.5, "formula": "arpi",
             "loss_limit_factor": 0.6},
        ]),
    },
    "ndvi": {
        "linear": ({"baseline_years": [2010, 2019], "window": {"start_day": 0, "end_day": 112},
                    "payout": {"strike_z": -1.0, "exit_z": -3.0, "max_rate": 0.5}}, [
            {"baseline_years": [2010, 2019], "window": {"start_day": 0, "end_day": 112},
             "payout": {"strike_z": -1.0, "exit_z": -0.5}},           # exit above strike
            {"baseline_years": [2019, 2010], "window": {"start_day": 0, "end_day": 112},
             "payout": {"strike_z": -1.0, "exit_z": -3.0}},           # baseline backwards
        ]),
        "percentile": ({"baseline_years": [2005, 2020], "window": {"start_day": 16, "end_day": 128},
                        "payout": {"percentile": 15}, "min_composites": 5, "min_baseline_years": 5}, [
            {"baseline_years": [2005, 2020], "window": {"start_day": 0, "end_day": 7},
             "payout": {"percentile": 15}},                           # window shorter than any composite
        ]),
    },
}

# A bad term sheet per built-in trigger for the config loader: (change, parameter, words of the allowed range)
CONFIG_ERRORS = {
    "weather_index": ({"phases": [{**_VEG, "exit": 170}]}, "phases[0]", "exit must be < strike"),
    "area_yield": ({"normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 1.2},
                   "indemnity_level", "less than or equal to 1"),
    "ndvi": ({"baseline_years": [2010, 2019], "window": {"start_day": 0, "end_day": 112},
              "payout": {"strike_z": -1.0, "exit_z": -0.5, "max_rate": 0.5}}, "payout", "exit_z"),
}


# Known gaps the suite finds in built-ins, left to their owners: (trigger, example, check) → why.
# Strict: when the gap is closed the test passes, fails as XPASS, and the entry must go.
KNOWN_GAPS: dict[tuple[str, str, str], str] = {}  # (trigger, example, check) → why it fails today


def _check_cases() -> list:
    cases = []
    for name, cls in sorted(triggers().items()):
        if name not in EXAMPLES:
            cases.append(pytest.param(None, id=f"{name}-no-example", marks=pytest.mark.skip(
                reason=f"no example term sheet for third-party trigger {name!r}")))
            continue
        for label, (good, bad) in EXAMPLES[name].items():
            for check_name, check in trigger_checks(cls, good, invalid_params=bad):
                gap = KNOWN_GAPS.get((name, label, check_name))
                marks = [pytest.mark.xfail(reason=gap, raises=TriggerCheckFailure, strict=True)] if gap else []
                cases.append(pytest.param(check, id=f"{name}-{label}-{check_name}", marks=marks))
    return cases


@pytest.mark.parametrize("check", _check_cases())
def test_registered_trigger_passes_the_check_suite(check):
    check()


@pytest.mark.parametrize("name, skipped", [
    ("weather_index", set()),
    ("ndvi", set()),
    ("area_yield", {"lazy_under_dask", "dask_matches_in_memory"}),  # reads a table only: no dask input
])
def test_builtin_passes_check_trigger_as_a_whole(name, skipped):
    good, bad = EXAMPLES[name][next(iter(EXAMPLES[name]))]
    outcomes = check_trigger(triggers()[name], good, invalid_params=bad)
    assert {k for k, v in outcomes.items() if v.startswith("skipped:")} == skipped
    assert {k for k, v in outcomes.items() if v == "passed"} == set(outcomes) - skipped


@pytest.mark.parametrize("trigger", sorted(CONFIG_ERRORS))
def test_bad_parameters_are_rejected_at_load_naming_product_parameter_and_range(trigger, tmp_path):
    bad, key, words = CONFIG_ERRORS[trigger]
    for f in ("p.csv", "d.geojson", "r.nc", "y.csv", "n.nc"):
        (tmp_path / f).write_text("x")
    cfg = {
        "season": {"id": "s", "start": "2020-11-01", "end": "2021-03-31"},
        "inputs": {"policies": {"path": "p.csv"}, "districts": {"path": "d.geojson"},
                   "rainfall": {"path": "r.nc"}, "yields": {"path": "y.csv"}, "ndvi": {"path": "n.nc"}},
        "products": [{"id": "cover-x", "trigger": trigger, "sum_insured_per_ha": 6_000_000, **bad}],
    }
    with pytest.raises(ConfigError) as e:
        parse_config(cfg, base_dir=tmp_path)
    msgs = [str(p) for p in e.value.problems]
    assert any("product 'cover-x'" in m and key in m and words in m for m in msgs), msgs


@pytest.mark.parametrize("trigger, label", [(n, label) for n in sorted(EXAMPLES) for label in EXAMPLES[n]])
def test_a_redesignable_trigger_reprices_its_own_index_values_as_evaluate_does(trigger, label):
    """The design-search hooks: either all declared, or none. A trigger with design terms gives,
    through rates_from_index, the phase rates evaluate gave (for one term sheet and for a batch
    of candidates), and with_design rebuilds a term sheet its Params accept, curves kept."""
    cls = triggers()[trigger]
    params = cls.Params.model_validate({"id": "p", "trigger": trigger, "sum_insured_per_ha": 1,
                                        **EXAMPLES[trigger][label][0]})
    terms = cls.design_terms(params)
    out = cls().evaluate(params, synthetic_inputs(cls.required_inputs(params))).data
    if terms is None:
        assert cls.rates_from_index(params, out["index_value"]) is None
        return
    assert [p.name for p in terms.phases] == [str(n) for n in out["phase"].values]
    again = cls.rates_from_index(params, out["index_value"])
    assert again.dims == out["phase_rate"].dims
    np.testing.assert_array_equal(again.values, out["phase_rate"].values)
    rebuilt = cls.with_design(params, terms)
    assert isinstance(rebuilt, cls.Params) and cls.design_terms(rebuilt) == terms
    batch = cls.rates_from_index([params, rebuilt], out["index_value"])
    assert batch.dims == ("candidate", *out["phase_rate"].dims)
    np.testing.assert_array_equal(batch.values[1], out["phase_rate"].values)
