"""The README's plugin example is real code that honours the trigger contract."""

from __future__ import annotations

import re
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from panen.engine.api import Season, TriggerInputs

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_plugin_example_runs_and_keeps_the_contract():
    code = re.search(r"# my_triggers/hail.py\n(.*?)```", README.read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(code, "README.md", "exec", dont_inherit=True), ns)  # noqa: S102 - our own documentation
    t = pd.date_range("2024-01-01", periods=30)
    rain = np.zeros((30, 3))
    rain[:4, 0] = 100.0  # district a: 4 days over 80 mm -> (4 - 2) / 2 = 1.0
    rain[:3, 1] = 100.0  # district b: 3 days -> 0.5
    rain[5, 2] = np.nan  # district c: a missing day -> NaN, flagged
    ds = xr.Dataset({"mean": (("time", "district"), rain), "valid_fraction": (("time", "district"), np.ones_like(rain))},
                    coords={"time": t, "district": ["a", "b", "c"]}).chunk({"time": 10})
    params = ns["HailParams"](id="h", trigger="hail_days", sum_insured_per_ha=1, strike=2)
    inputs = TriggerInputs(Season("s", t[0].to_datetime64(), t[-1].to_datetime64(), 2024),
                           np.array(["2024-01-01"], dtype="datetime64[D]"), np.array(["a", "b", "c"]), {"rainfall": ds})
    out = ns["HailTrigger"]().evaluate(params, inputs).data
    assert isinstance(out["payout_rate"].data, da.Array)
    assert out["payout_rate"].dims == ("district", "cohort")
    np.testing.assert_array_equal(out["payout_rate"].values[:, 0], [1.0, 0.5, np.nan])
    assert out["flagged"].values[:, 0].tolist() == [False, False, True]
