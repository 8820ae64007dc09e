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

__all__ = ["monthly_to_daily_equivalent"]


def monthly_to_daily_equivalent(series: xr.Dataset) -> xr.Dataset:
    """Spread monthly district totals evenly over the days of each month (for ``total`` phases only).

    Parameters
    ----------
    series
        District series from :func:`panen.engine.maths.zonal.zonal_mean` of monthly rainfall:
        ``mean`` [mm/month] and ``valid_fraction`` [1] on ``(time, district)``, one step per
        calendar month (any day of the month as its stamp), gap-free (the reader inserts
        missing months as NaN).

    Returns
    -------
    xarray.Dataset
        Daily steps from the first day of the first month to the last day of the last:
        ``mean`` = the month's total / its number of days, with ``units: "mm/day"``,
        ``derived_from`` and ``valid_for: "total"`` attributes; ``valid_fraction`` = the
        month's. The sum over whole months equals the monthly totals (exact up to
        float rounding); any other daily statistic of this series is meaningless, which is
        why only ``total`` phases may use it.

    Examples
    --------
    >>> t = pd.to_datetime(["2021-01-01", "2021-02-01"])
    >>> s = xr.Dataset({"mean": (("time", "district"), [[31.0], [56.0]], {"units": "mm/month"}),
    ...                 "valid_fraction": (("time", "district"), [[1.0], [1.0]])},
    ...                coords={"time": t, "district": ["a"]})
    >>> d = monthly_to_daily_equivalent(s)
    >>> d.sizes["time"], float(d["mean"][0, 0]), float(d["mean"][-1, 0]), float(d["mean"].sum())
    (59, 1.0, 2.0, 87.0)
    """
    mean = series["mean"].transpose("time", "district")
    units = mean.attrs.get("units")
    if units not in (None, "mm/month"):
        raise DataQualityError(f"monthly_to_daily_equivalent needs monthly totals [mm/month]; got {units!r}")
    months = pd.DatetimeIndex(mean["time"].values).to_period("M")
    if months.has_duplicates or (len(months) > 1 and not (np.diff(months.asi8) == 1).all()):
        raise DataQualityError("monthly rainfall must have exactly one step per calendar month, without gaps")
    days = months.days_in_month.to_numpy()
    first = months[0].start_time.to_datetime64().astype("datetime64[D]")
    time_d = first + np.arange(int(days.sum())).astype("timedelta64[D]")
    m = np.asarray(mean.values, dtype=np.float64) / days[:, None]
    v = np.asarray(series["valid_fraction"].transpose("time", "district").values, dtype=np.float64)
    attrs = {"units": "mm/day", "frequency": "day",
             "derived_from": "monthly totals [mm/month], evenly distributed over the days of each month",
             "valid_for": "total"}
    coords = {"time": time_d.astype("datetime64[ns]"), "district": mean["district"].values}
    return xr.Dataset({"mean": (("time", "district"), np.repeat(m, days, axis=0), attrs),
                       "valid_fraction": (("time", "district"), np.repeat(v, days, axis=0),
                                          dict(series["valid_fraction"].attrs))}, coords=coords)
