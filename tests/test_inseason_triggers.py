"""Each built-in trigger's guaranteed minimum (``Trigger.guaranteed_rate``) on hand-made inputs.

NDVI z-scores move both ways, so an open window guarantees nothing, and a closed one its
rate; an area-yield claim is known once the season's yield is (PMFBY revised operational
guidelines, para 21), and a mid-season adversity notification counts only once it is
dated; a plugin that declares nothing guarantees nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from panen.engine.api import (ProductParams, Trigger, TriggerInputs, TriggerResult, check_guaranteed_rate,
                              check_result_values, standardise_result)
from panen.engine.errors import PluginError
from panen.engine.pipeline.inseason import as_of_series
from panen.testing import synthetic_inputs
from panen.triggers.area_yield import AreaYieldTrigger
from panen.triggers.ndvi import NdviParams, NdviTrigger

from test_pmfby import HISTORY, SEASON, cover, notifications_frame, product, yields_frame


def checked(trigger, params, inputs) -> xr.Dataset:
    ds = standardise_result(trigger().evaluate(params, inputs), trigger=trigger.name, product_id=params.id,
                            district_ids=inputs.district_ids, cohorts=inputs.cohorts)
    ds = check_result_values(ds.compute(), trigger=trigger.name, product_id=params.id)
    g = trigger.guaranteed_rate(params, inputs, ds)
    return ds.assign(guaranteed_rate=check_guaranteed_rate(g, ds, trigger=trigger.name, product_id=params.id))


# --------------------------------------------------------------------------- NDVI
NDVI = NdviParams(id="ndvi", trigger="ndvi", sum_insured_per_ha=6_000_000, baseline_years=[2010, 2019],
                  window={"start_day": 0, "end_day": 112}, min_composites=2,
                  payout={"strike_z": 5.0, "exit_z": -5.0, "max_rate": 0.5})  # pays on almost any season


def ndvi_at(day: str) -> xr.Dataset:
    base = synthetic_inputs(("ndvi",))
    as_of = np.datetime64(day, "D")
    inputs = TriggerInputs(season=base.season, cohorts=base.cohorts, district_ids=base.district_ids,
                           series=as_of_series(base.series, as_of), tables={}, as_of=as_of)
    return checked(NdviTrigger, NDVI, inputs)


def test_an_open_ndvi_window_guarantees_nothing_even_when_its_composites_so_far_give_a_rate():
    # cohorts 2020-11-01 and 2020-11-15: windows end 2021-02-20 and 2021-03-06
    ds = ndvi_at("2021-01-15")
    assert np.isfinite(ds["payout_rate"].values).all() and (ds["payout_rate"].values > 0).sum() >= 6  # min_composites
    assert (ds["guaranteed_rate"].values == 0).all()


def test_a_closed_ndvi_window_guarantees_its_rate_and_the_open_one_nothing():
    full = checked(NdviTrigger, NDVI, synthetic_inputs(("ndvi",)))
    ds = ndvi_at("2021-02-20")  # the first cohort's last window day
    np.testing.assert_array_equal(ds["guaranteed_rate"].isel(cohort=0).values, full["payout_rate"].isel(cohort=0).values)
    assert (ds["guaranteed_rate"].isel(cohort=1).values == 0).all()
    late = ndvi_at("2021-03-31")
    np.testing.assert_array_equal(late["guaranteed_rate"].values, full["payout_rate"].values)


# --------------------------------------------------------------------------- area yield
def yield_at(params, table, day: str, notes=None) -> xr.Dataset:
    tables = {"yields": table} | ({"notifications": notes} if notes is not None else {})
    inputs = TriggerInputs(season=SEASON, cohorts=np.array([SEASON.start]),
                           district_ids=np.array(sorted(table["district_id"].unique())), tables=tables,
                           as_of=np.datetime64(day, "D"))
    return checked(AreaYieldTrigger, params, inputs)


def test_an_area_yield_claim_is_guaranteed_once_the_season_yield_is_known_and_nothing_before():
    # A: 2015 yield 2.5 t/ha against the threshold 0.9 × 3.76 = 3.384 → (3.384 − 2.5) / 3.384; B: not harvested yet
    ds = yield_at(product(), yields_frame({"A": HISTORY | {2015: 2.5}, "B": HISTORY}), "2015-08-01")
    assert ds["guaranteed_rate"].sel(district="A").item() == pytest.approx(0.884 / 3.384)
    assert ds["guaranteed_rate"].sel(district="B").item() == 0.0  # unknown yet: nothing, not withheld


def test_a_mid_season_adversity_notification_counts_only_from_its_date_and_is_never_a_guarantee():
    table = yields_frame({"C": HISTORY})
    notes = notifications_frame([("C", "yield", "mid_season_adversity", "2015-08-15", 1.692)])
    before = yield_at(cover(), table, "2015-08-14", notes)
    assert np.isnan(before["on_account_rate"].sel(district="C").item())  # not yet notified on that day
    after = yield_at(cover(), table, "2015-08-15", notes)
    assert after["on_account_rate"].sel(district="C").item() == pytest.approx(0.125)  # 25 % of the likely 50 %
    assert after["guaranteed_rate"].sel(district="C").item() == 0.0


# --------------------------------------------------------------------------- the default and the checks
class _Flat(Trigger):
    name = "flat"
    Params = ProductParams
    inputs = ()

    def evaluate(self, params, inputs):
        rate = xr.DataArray(np.full((len(inputs.district_ids), len(inputs.cohorts)), 0.4), dims=("district", "cohort"))
        return TriggerResult(xr.Dataset({"payout_rate": rate}))


def test_a_plugin_that_declares_nothing_guarantees_nothing_and_a_broken_guarantee_is_refused():
    params = ProductParams(id="flat", trigger="flat", sum_insured_per_ha=1_000)
    inputs = TriggerInputs(season=SEASON, cohorts=np.array([SEASON.start]), district_ids=np.array(["A", "B"]),
                           as_of=np.datetime64("2015-07-01"))
    ds = checked(_Flat, params, inputs)
    assert (ds["guaranteed_rate"].values == 0).all()
    with pytest.raises(PluginError, match="above the payout rate"):
        check_guaranteed_rate(xr.full_like(ds["payout_rate"], 0.5), ds, trigger="flat", product_id="flat")
    with pytest.raises(PluginError, match="outside"):
        check_guaranteed_rate(xr.full_like(ds["payout_rate"], -0.1), ds, trigger="flat", product_id="flat")
    with pytest.raises(PluginError, match="dims"):
        check_guaranteed_rate(ds["payout_rate"].isel(cohort=0), ds, trigger="flat", product_id="flat")
