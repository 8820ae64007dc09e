"""Invariants of station settlement (hypothesis): back-ups fill only the reference's gaps; a daily
cap never raises an index; tolerating missing days changes nothing when none is missing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from panen.engine.maths.stations import StationAssignment, settlement_series
from panen.triggers.weather import dry_spell, max_n_day, rainy_days, total, with_missing_days

rain_day = st.one_of(st.just(np.nan), st.floats(0.0, 300.0, allow_nan=False), st.just(0.0))
series = arrays(np.float64, st.integers(5, 40), elements=rain_day)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_back_ups_never_change_a_day_the_reference_measured(data):
    n = data.draw(st.integers(3, 40))
    ref = data.draw(arrays(np.float64, n, elements=rain_day))
    b1 = data.draw(arrays(np.float64, n, elements=rain_day))
    b2 = data.draw(arrays(np.float64, n, elements=rain_day))
    ds = xr.Dataset({"rain": (("station", "time"), np.stack([ref, b1, b2]))},
                    coords={"station": ["R", "S1", "S2"], "time": pd.date_range("2024-01-01", periods=n)})
    out, filled = settlement_series(ds, [StationAssignment("z", "R", ("S1", "S2"), ())])
    got = out["mean"].sel(district="z").values
    measured = np.isfinite(ref)
    assert np.array_equal(got[measured], ref[measured])  # the reference's own days, untouched
    assert (out["source"].sel(district="z").values[measured] == 0).all()
    expect = np.where(measured, ref, np.where(np.isfinite(b1), b1, b2))  # then the first back-up that has it
    assert np.array_equal(np.isnan(got), np.isnan(expect))
    assert np.allclose(got[np.isfinite(got)], expect[np.isfinite(expect)])
    assert len(filled) == int((~measured).sum())


windows = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(5, 30)),
                 elements=st.floats(0.0, 400.0, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(windows, st.floats(1.0, 300.0), st.floats(0.1, 1.0), st.floats(0.1, 30.0), st.integers(1, 5))
def test_a_daily_cap_never_raises_an_index(w, cap, dry_thr, wet_thr, n):
    dry_thr = min(dry_thr, cap)  # the term sheet refuses a cap below a dry threshold
    capped = np.minimum(w, cap)
    n = min(n, w.shape[-1])
    assert (total(capped) <= total(w) + 1e-9).all()
    assert (max_n_day(capped, n) <= max_n_day(w, n) + 1e-9).all()
    assert (rainy_days(capped, wet_thr) <= rainy_days(w, wet_thr)).all()
    assert (dry_spell(capped, dry_thr) <= dry_spell(w, dry_thr)).all()


@settings(max_examples=200, deadline=None)
@given(windows, st.floats(0.1, 5.0), st.integers(1, 5), st.integers(0, 4))
def test_tolerating_missing_days_is_the_plain_index_when_none_is_missing(w, thr, n, allowed):
    n = min(n, w.shape[-1])
    for name, plain, kw in (("total", total(w), {}), ("max_n_day", max_n_day(w, n), {"n": n}),
                            ("dry_spell", dry_spell(w, thr), {"dry_threshold": thr}),
                            ("rainy_days", rainy_days(w, thr), {"wet_threshold": thr})):
        assert np.allclose(with_missing_days(w, name, allowed, **kw), plain, equal_nan=True)


@settings(max_examples=200, deadline=None)
@given(series, st.integers(0, 6))
def test_more_missing_days_than_allowed_is_never_a_value(w, allowed):
    got = with_missing_days(w[None, :], "total", allowed)[0]
    assert np.isnan(got) == (int(np.isnan(w).sum()) > allowed or np.isnan(w).all())
