"""One contract, every registered trigger: dims kept, NaN in → NaN out, lazy under dask,
rates in [0, 1], bad parameters rejected at load time naming product, parameter and range."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from panen.engine.api import Season, TriggerInputs
from panen.engine.config import parse_config
from panen.engine.errors import ConfigError
from panen.engine.registry import triggers

DISTRICTS = np.array(["3201", "3202", "3203", "3204", "3205"])
SEASON = Season("2021-MT1", np.datetime64("2020-11-01", "D"), np.datetime64("2021-03-31", "D"), 2021)
COHORTS = np.array(["2020-11-01", "2020-11-15"], dtype="datetime64[D]")

# A valid term sheet per built-in trigger, and a bad one: (change, parameter, words of the allowed range)
EXAMPLES = {
    "weather_index": (
        {"phases": [{"name": "veg", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
                     "strike": 150, "exit": 50, "weight": 1.0}]},
        {"phases": [{"name": "veg", "start_day": 0, "end_day": 40, "index": "total", "direction": "below",
                     "strike": 150, "exit": 170, "weight": 1.0}]},
        "phases[0]", "exit must be < strike",
    ),
    "area_yield": (
        {"normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 0.8},
        {"normal_yield": {"method": "best_of", "best": 5, "of": 7}, "indemnity_level": 1.2},
        "indemnity_level", "less than or equal to 1",
    ),
    "ndvi": (
        {"baseline_years": [2010, 2019], "window": {"start_day": 0, "end_day": 112},
         "payout": {"strike_z": -1.0, "exit_z": -3.0, "max_rate": 0.5}},
        {"baseline_years": [2010, 2019], "window": {"start_day": 0, "end_day": 112},
         "payout": {"strike_z": -1.0, "exit_z": -0.5, "max_rate": 0.5}},
        "payout", "exit_z",
    ),
}


def _inputs(name: str, *, lazy: bool = False, blank: str | None = None) -> TriggerInputs:
    """Synthetic inputs for every input kind a trigger may declare; ``blank`` district gets only NaN."""
    rng = np.random.default_rng(7)
    series, tables = {}, {}
    cls = triggers()[name]
    if "rainfall" in cls.inputs:
        t = pd.date_range("2020-10-01", "2021-05-31", freq="D")
        v = rng.gamma(0.5, 14.0, size=(t.size, DISTRICTS.size))
        series["rainfall"] = _series(t, v, "mm/day", blank)
    if "ndvi" in cls.inputs:
        # 16-day MOD13Q1 calendar: day of year 1, 17, ..., 353 in every year
        t = pd.DatetimeIndex([pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d)
                              for y in range(2010, 2022) for d in range(0, 365, 16)])
        seasonal = 0.45 + 0.3 * np.sin(2 * np.pi * t.day_of_year.values / 365.0)[:, None]
        v = np.clip(seasonal + rng.normal(0, 0.05, size=(t.size, DISTRICTS.size)), -0.2, 1.0)
        series["ndvi"] = _series(t, v, "1", blank)
    if "yields" in cls.inputs:
        rows = [(d, y, float(rng.normal(5.0, 0.6))) for d in DISTRICTS for y in range(2010, 2022)]
        df = pd.DataFrame(rows, columns=["district_id", "year", "yield"])
        if blank is not None:
            df.loc[df["district_id"] == blank, "yield"] = np.nan
        df.attrs["units"] = "t/ha"
        tables["yields"] = df
    if lazy:
        series = {k: v.chunk({"time": 30, "district": 2}) for k, v in series.items()}
    return TriggerInputs(season=SEASON, cohorts=COHORTS, district_ids=DISTRICTS, series=series, tables=tables)


def _series(t, v, units, blank) -> xr.Dataset:
    valid = np.ones_like(v)
    if blank is not None:
        j = list(DISTRICTS).index(blank)
        v[:, j], valid[:, j] = np.nan, 0.0
    return xr.Dataset({"mean": (("time", "district"), v, {"units": units}),
                       "valid_fraction": (("time", "district"), valid)},
                      coords={"time": t, "district": DISTRICTS})


def _params(name: str, extra: dict):
    cls = triggers()[name]
    return cls.Params.model_validate({"id": f"p-{name}", "trigger": name, "sum_insured_per_ha": 6_000_000, **extra})


@pytest.fixture(params=sorted(triggers()))
def trigger(request):
    if request.param not in EXAMPLES:
        pytest.skip(f"no example term sheet for third-party trigger {request.param!r}")
    return request.param


def test_result_keeps_district_and_cohort_dims_and_rates_in_unit_interval(trigger):
    good = EXAMPLES[trigger][0]
    out = triggers()[trigger]().evaluate(_params(trigger, good), _inputs(trigger)).data
    assert out["payout_rate"].dims == ("district", "cohort")
    assert out["payout_rate"].shape == (DISTRICTS.size, COHORTS.size)
    assert list(out["district"].values.astype(str)) == list(DISTRICTS)
    assert out["flagged"].dtype == bool
    r = out["payout_rate"].values
    assert np.isfinite(r).all() and (r >= 0).all() and (r <= 1).all()
    for v in ("index_value", "phase_rate", "valid_fraction"):
        assert out[v].dims == ("phase", "district", "cohort"), v


def test_nan_in_gives_nan_out_and_a_flag_never_a_payout(trigger):
    good = EXAMPLES[trigger][0]
    out = triggers()[trigger]().evaluate(_params(trigger, good), _inputs(trigger, blank="3203")).data
    blank = out.sel(district="3203")
    assert np.isnan(blank["payout_rate"].values).all()
    assert blank["flagged"].values.all()
    others = out.drop_sel(district="3203")
    assert not others["flagged"].values.any()


def test_stays_lazy_on_dask_input_until_computed(trigger):
    good = EXAMPLES[trigger][0]
    inputs = _inputs(trigger, lazy=True)
    if not inputs.series:
        pytest.skip(f"{trigger} reads only tables: no dask input to stay lazy on")
    calls = []

    class Count(dask.callbacks.Callback):
        def _start(self, dsk):
            calls.append(1)

    with Count():
        out = triggers()[trigger]().evaluate(_params(trigger, good), inputs).data
    assert not calls, f"{trigger}.evaluate computed before being asked"
    assert isinstance(out["payout_rate"].data, da.Array)
    eager = triggers()[trigger]().evaluate(_params(trigger, good), _inputs(trigger)).data
    xr.testing.assert_allclose(out["payout_rate"].compute(), eager["payout_rate"])


def test_bad_parameters_are_rejected_at_load_naming_product_parameter_and_range(trigger, tmp_path):
    _, bad, key, words = EXAMPLES[trigger]
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


def test_a_redesignable_trigger_reprices_its_own_index_values_as_evaluate_does(trigger):
    """The design-search hooks: either all declared, or none. A trigger with design terms gives,
    through rates_from_index, the phase rates evaluate gave (for one term sheet and for a batch
    of candidates), and with_design rebuilds a term sheet its Params accept, curves kept."""
    cls = triggers()[trigger]
    params = _params(trigger, EXAMPLES[trigger][0])
    terms = cls.design_terms(params)
    out = cls().evaluate(params, _inputs(trigger)).data
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
