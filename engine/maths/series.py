"""District series transformations that keep the meaning of the values.

A monthly rainfall total says how much rain fell in a month, not on which days.
:func:`monthly_to_daily_equivalent` spreads it evenly over the month's days (after the
zonal mean, on the small district series), so that a window *total* over whole months is
exact; any other daily statistic of the result is meaningless, and the series says so in
its attributes (``valid_for: "total"``). Daily rain is never invented.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine.errors import DataQualityError

__all__ = ["monthly_to_daily_equivalent", "totals_to_daily_equivalent"]


def _periods(times: pd.DatetimeIndex, frequency: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(running period number, first day, days) of each stamp: calendar months, or dekads
    (days 1–10, 11–20, 21 to the month's end)."""
    month = times.year.to_numpy() * 12 + times.month.to_numpy() - 1
    month_start = times.to_period("M").start_time.to_numpy().astype("datetime64[D]")
    if frequency == "month":
        return month, month_start, times.days_in_month.to_numpy()
    k = np.minimum((times.day.to_numpy() - 1) // 10, 2)
    days = np.where(k < 2, 10, times.days_in_month.to_numpy() - 20)
    return month * 3 + k, month_start + (10 * k).astype("timedelta64[D]"), days


_WORDS = {"month": ("monthly", "mm/month", "month"), "dekad": ("dekadal", "mm/dekad", "dekad")}


def totals_to_daily_equivalent(series: xr.Dataset, frequency: str = "month") -> xr.Dataset:
    """Spread district totals per month or dekad evenly over their days (for ``total`` phases only).

    Parameters
    ----------
    series
        District series from :func:`panen.engine.maths.zonal.zonal_mean` of monthly or
        dekadal rainfall: ``mean`` [mm/month or mm/dekad] and ``valid_fraction`` [1] on
        ``(time, district)``, one step per calendar month (any day of the month as its
        stamp) or per dekad (stamped on any of its days, usually the first: 1/11/21), gap-free
        (the reader inserts missing steps as NaN).
    frequency
        ``"month"`` or ``"dekad"`` (days 1–10, 11–20, and 21 to the month's end: 8–11 days).

    Returns
    -------
    xarray.Dataset
        Daily steps from the first day of the first period to the last day of the last:
        ``mean`` = the period's total / its number of days, with ``units: "mm/day"``,
        ``derived_from`` and ``valid_for: "total"`` attributes; ``valid_fraction`` = the
        period's. The sum over whole periods equals their totals (exact up to float
        rounding); any other daily statistic of this series is meaningless, which is why
        only ``total`` phases may use it.

    Examples
    --------
    >>> t = pd.to_datetime(["2021-01-01", "2021-02-01"])
    >>> s = xr.Dataset({"mean": (("time", "district"), [[31.0], [56.0]], {"units": "mm/month"}),
    ...                 "valid_fraction": (("time", "district"), [[1.0], [1.0]])},
    ...                coords={"time": t, "district": ["a"]})
    >>> d = totals_to_daily_equivalent(s)
    >>> d.sizes["time"], float(d["mean"][0, 0]), float(d["mean"][-1, 0]), float(d["mean"].sum())
    (59, 1.0, 2.0, 87.0)
    >>> t = pd.to_datetime(["2024-02-11", "2024-02-21"])  # a leap-year February: 10 and 9 days
    >>> s = s.assign_coords(time=t)
    >>> s["mean"].attrs["units"] = "mm/dekad"
    >>> d = totals_to_daily_equivalent(s, "dekad")
    >>> d.sizes["time"], float(d["mean"][0, 0]), float(d["mean"][-1, 0])
    (19, 3.1, 6.222222222222222)
    """
    if frequency not in _WORDS:
        raise DataQualityError(f"totals_to_daily_equivalent: frequency must be 'month' or 'dekad'; got {frequency!r}")
    word, unit, step = _WORDS[frequency]
    mean = series["mean"].transpose("time", "district")
    units = mean.attrs.get("units")
    if units not in (None, unit):
        raise DataQualityError(f"{word} rainfall must be {word} totals [{unit}]; got {units!r}")
    number, first_day, days = _periods(pd.DatetimeIndex(mean["time"].values), frequency)
    if len(number) != len(np.unique(number)) or (len(number) > 1 and not (np.diff(number) == 1).all()):
        raise DataQualityError(f"{word} rainfall must have exactly one step per calendar {step}, without gaps")
    time_d = first_day[0] + np.arange(int(days.sum())).astype("timedelta64[D]")
    m = np.asarray(mean.values, dtype=np.float64) / days[:, None]
    v = np.asarray(series["valid_fraction"].transpose("time", "district").values, dtype=np.float64)
    attrs = {"units": "mm/day", "frequency": "day",
             "derived_from": f"{word} totals [{unit}], evenly distributed over the days of each {step}",
             "valid_for": "total", "period": frequency}
    coords = {"time": time_d.astype("datetime64[ns]"), "district": mean["district"].values}
    return xr.Dataset({"mean": (("time", "district"), np.repeat(m, days, axis=0), attrs),
                       "valid_fraction": (("time", "district"), np.repeat(v, days, axis=0),
                                          dict(series["valid_fraction"].attrs))}, coords=coords)


def monthly_to_daily_equivalent(series: xr.Dataset) -> xr.Dataset:
    """:func:`totals_to_daily_equivalent` of monthly totals (kept for callers of the older name)."""
    return totals_to_daily_equivalent(series, "month")
