"""Which station settles which zone, and the settlement series with its gaps filled and audited.

A station-anchored weather-index product settles each zone (a district, or a policy) on a
*reference* station with an ordered list of *back-up* stations, as India's weather-based
crop insurance does (RWBCIS operational guidelines: a reference weather station per
reference unit area, with back-up stations for its missing data). A missing day at the
reference station is taken from the first back-up that measured it; optionally, a day no
station has is taken from the satellite grid at the reference station's pixel after a bias
adjustment fitted on the days both measured. Every filled day is marked with its source,
so that the audit trail says, day by day, where a settlement's rain came from.

Two bias adjustments are offered, both fitted per station on the overlap of measured
station days and valid satellite days:

``ratio``
    Linear scaling by calendar month: the satellite day × (mean station rain / mean
    satellite rain) of that month over the overlap (Teutschbein & Seibert 2012, *J.
    Hydrol.* 456–457, §2.3.1, "linear scaling"). A month with fewer than ``min_overlap``
    overlap days, or no satellite rain, cannot be adjusted: its days stay missing.
``quantile``
    Empirical quantile mapping over the whole overlap: a satellite value is replaced by the
    station value of the same empirical non-exceedance probability (Gudmundsson et al.
    2012, *HESS* 16, 3383–3390, "QUANT"); values beyond the fitted range keep the
    difference of the outermost quantile (constant extrapolation of the correction).

Nothing is invented beyond that: a day that neither the stations nor the adjusted
satellite have stays missing (NaN), and the product's own rule (at most N missing days per
phase) decides whether the policy is withheld.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from panen.engine.errors import DataQualityError, InputError, Problem

__all__ = ["EARTH_RADIUS_KM", "SOURCE_MISSING", "SOURCE_SATELLITE", "StationAssignment", "assign_stations",
           "bias_adjust", "haversine_km", "settlement_series"]

#: Mean Earth radius [km] (IUGG), for great-circle distances.
EARTH_RADIUS_KM = 6371.0088
#: ``source`` of a day no station and no satellite value had.
SOURCE_MISSING = -1
#: ``source`` of a day taken from the bias-adjusted satellite grid.
SOURCE_SATELLITE = -2


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance [km] between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass(frozen=True)
class StationAssignment:
    """Per zone: the reference station, its back-ups in order, and how far each is [km]."""

    zone: str
    reference: str
    backups: tuple[str, ...]
    distances_km: tuple[float, ...]


def assign_stations(zones: pd.DataFrame, stations: xr.Dataset, *, max_distance_km: float | None = None,
                    backups: int = 2, zone_column: str = "zone", station_column: str | None = None,
                    backup_column: str | None = None, unplaced: list[str] | None = None) -> list[StationAssignment]:
    """Assign each zone its reference station and back-ups.

    Parameters
    ----------
    zones
        One row per zone: ``zone_column`` and either ``station_column`` (the reference
        station named explicitly, and optionally ``backup_column``: back-up ids separated by
        ``;``) or ``lat``/``lon`` [degrees] of the zone (its centroid or the plot).
    stations
        Station metadata as the station readers give it (``station``, ``lat``, ``lon``).
    max_distance_km
        With positions: stations farther than this [km] are never used (reference or
        back-up). ``None``: no limit (not advised: a station 200 km away measures other rain).
    backups
        With positions: how many of the next nearest stations back the reference up.
    unplaced
        A list: zones with no station within ``max_distance_km`` are appended to it and
        left out of the result (their policies cannot be settled on a station). ``None``:
        such a zone is an error.

    Returns
    -------
    list[StationAssignment]
        In the zones' order. Ties in distance go to the lower station id (deterministic).

    Raises
    ------
    InputError
        A named station the data does not hold, a zone with no station within
        ``max_distance_km`` (it cannot be settled: the message names it), a zone listed twice,
        or positions missing where they are needed.
    """
    ids = np.asarray(stations["station"].values).astype(str)
    if zone_column not in zones.columns:
        raise InputError(f"station assignment: missing column {zone_column!r}")
    dup = zones[zone_column].astype(str).duplicated()
    if dup.any():
        raise InputError(f"station assignment: zone {zones.loc[dup, zone_column].iloc[0]!r} listed twice")
    known = set(ids.tolist())
    out: list[StationAssignment] = []
    if station_column is not None:
        for _, row in zones.iterrows():
            ref = str(row[station_column]).strip()
            extra = tuple(s.strip() for s in str(row[backup_column]).split(";") if s.strip()) \
                if backup_column is not None and pd.notna(row[backup_column]) else ()
            for s in (ref, *extra):
                if s not in known:
                    raise InputError(Problem(f"zone {row[zone_column]!s}: station {s!r} is not in the station data",
                                             column=station_column))
            if ref in extra:
                raise InputError(Problem(f"zone {row[zone_column]!s}: station {ref!r} backs itself up",
                                         column=backup_column))
            out.append(StationAssignment(str(row[zone_column]), ref, extra, ()))
        return out
    for c in ("lat", "lon"):
        if c not in zones.columns:
            raise InputError(f"station assignment by distance needs the zones' {c!r}")
    slat, slon = np.asarray(stations["lat"].values, float), np.asarray(stations["lon"].values, float)
    placed = np.isfinite(slat) & np.isfinite(slon)
    order_ids = np.argsort(ids, kind="stable")
    for _, row in zones.iterrows():
        zlat, zlon = float(row["lat"]), float(row["lon"])
        if not (np.isfinite(zlat) and np.isfinite(zlon)):
            raise InputError(f"zone {row[zone_column]!s} has no position: it cannot be given its nearest station")
        d = np.where(placed, haversine_km(zlat, zlon, slat, slon), np.inf)
        # nearest first; equal distances by station id
        rank = order_ids[np.lexsort((np.arange(ids.size), d[order_ids]))]
        if max_distance_km is not None:
            rank = rank[d[rank] <= max_distance_km]
        else:
            rank = rank[np.isfinite(d[rank])]
        if rank.size == 0 and unplaced is not None:
            unplaced.append(str(row[zone_column]))
            continue
        if rank.size == 0:
            limit = f" within {max_distance_km:g} km" if max_distance_km is not None else ""
            raise InputError(f"zone {row[zone_column]!s} has no station{limit}: it cannot be settled on a station")
        chosen = rank[: 1 + backups]
        out.append(StationAssignment(str(row[zone_column]), ids[chosen[0]], tuple(ids[chosen[1:]].tolist()),
                                     tuple(float(x) for x in d[chosen])))
    return out


def bias_adjust(station: np.ndarray, satellite: np.ndarray, months: np.ndarray, *,
                method: Literal["ratio", "quantile"] = "ratio", min_overlap: int = 30) -> np.ndarray:
    """The satellite series of one station's pixel, adjusted to the station [mm/day].

    Parameters
    ----------
    station, satellite
        Daily rain on the same days [mm/day]; NaN where missing.
    months
        Calendar month (1–12) of each day.
    method
        ``ratio`` (linear scaling by calendar month) or ``quantile`` (empirical quantile
        mapping); see the module docstring for the sources.
    min_overlap
        Days both measured needed to fit (per month for ``ratio``, in total for ``quantile``).

    Returns
    -------
    numpy.ndarray
        The adjusted satellite values; NaN where the satellite is missing or the fit is
        not possible (too little overlap, a month without satellite rain).
    """
    station = np.asarray(station, float)
    satellite = np.asarray(satellite, float)
    both = np.isfinite(station) & np.isfinite(satellite)
    out = np.full(satellite.shape, np.nan)
    if method == "ratio":
        for m in range(1, 13):
            fit = both & (months == m)
            use = np.isfinite(satellite) & (months == m)
            if fit.sum() < min_overlap or not use.any():
                continue
            sat_mean = satellite[fit].mean()
            if sat_mean <= 0:
                continue
            out[use] = satellite[use] * (station[fit].mean() / sat_mean)
        return out
    if method == "quantile":
        if both.sum() < min_overlap:
            return out
        probs = np.linspace(0.0, 1.0, 101)
        sq, tq = np.quantile(satellite[both], probs), np.quantile(station[both], probs)
        use = np.isfinite(satellite)
        x = satellite[use]
        mapped = np.interp(x, sq, tq)
        # beyond the fitted range keep the outermost correction (constant extrapolation)
        mapped = np.where(x > sq[-1], x + (tq[-1] - sq[-1]), mapped)
        mapped = np.where(x < sq[0], x + (tq[0] - sq[0]), mapped)
        out[use] = np.maximum(mapped, 0.0)  # rain is never negative
        return out
    raise InputError(f"bias adjustment must be 'ratio' or 'quantile'; got {method!r}")


def settlement_series(stations: xr.Dataset, assignments: Sequence[StationAssignment], *,
                      satellite: xr.DataArray | None = None, bias: Literal["ratio", "quantile"] = "ratio",
                      min_overlap: int = 30) -> tuple[xr.Dataset, pd.DataFrame]:
    """The daily series each zone settles on, with every filled day's source.

    Parameters
    ----------
    stations
        ``rain`` [mm/day] on ``(station, time)`` (the station readers' shape).
    assignments
        :func:`assign_stations`.
    satellite
        Optional ``(station, time)`` satellite rain at each station's pixel [mm/day], on
        the same days, used last (after every back-up), bias-adjusted per station.
    bias, min_overlap
        :func:`bias_adjust`.

    Returns
    -------
    series
        ``mean`` [mm/day] and ``valid_fraction`` (1 where the day has a value, else 0) on
        ``(time, district)`` — the shape of the engine's district series, with
        ``district`` = the zone — and ``source`` (int8: 0 the reference station, k the k-th
        back-up, :data:`SOURCE_SATELLITE`, :data:`SOURCE_MISSING`).
    filled
        The audit trail: one row per day not measured at the reference station —
        ``zone, date, reference, source`` (a station id, ``satellite:<method>`` or
        ``missing``), ``value`` [mm/day].
    """
    if "rain" not in stations:
        raise DataQualityError("station data without a 'rain' variable")
    ids = np.asarray(stations["station"].values).astype(str)
    where = {s: i for i, s in enumerate(ids)}
    rain = np.asarray(stations["rain"].transpose("station", "time").values, float)
    time = stations["time"].values
    months = pd.DatetimeIndex(time).month.to_numpy()
    sat = None
    if satellite is not None:
        sat_aligned = satellite.transpose("station", "time").reindex(station=ids.tolist(), time=time)
        sat = np.asarray(sat_aligned.values, float)
    adjusted: dict[str, np.ndarray] = {}
    values = np.full((len(assignments), time.size), np.nan)
    source = np.full((len(assignments), time.size), SOURCE_MISSING, dtype=np.int8)
    rows: list[dict] = []
    for z, a in enumerate(assignments):
        chain = [a.reference, *a.backups]
        for k, sid in enumerate(chain):
            r = rain[where[sid]]
            take = np.isnan(values[z]) & np.isfinite(r)
            values[z, take], source[z, take] = r[take], k
        if sat is not None:
            if a.reference not in adjusted:
                i = where[a.reference]
                adjusted[a.reference] = bias_adjust(rain[i], sat[i], months, method=bias, min_overlap=min_overlap)
            s = adjusted[a.reference]
            take = np.isnan(values[z]) & np.isfinite(s)
            values[z, take], source[z, take] = s[take], SOURCE_SATELLITE
        for j in np.flatnonzero(source[z] != 0):
            src = source[z, j]
            rows.append({"zone": a.zone, "date": pd.Timestamp(time[j]).date().isoformat(), "reference": a.reference,
                         "source": chain[src] if src > 0 else (f"satellite:{bias}" if src == SOURCE_SATELLITE
                                                               else "missing"),
                         "value": float(values[z, j]) if np.isfinite(values[z, j]) else np.nan})
    zones = np.array([a.zone for a in assignments], dtype=object)
    series = xr.Dataset(
        {"mean": (("time", "district"), values.T, {"units": "mm/day"}),
         "valid_fraction": (("time", "district"), np.isfinite(values.T).astype(float)),
         "source": (("time", "district"), source.T, {"long_name": "0 reference station, k k-th back-up, "
                                                                  f"{SOURCE_SATELLITE} satellite, "
                                                                  f"{SOURCE_MISSING} missing"})},
        coords={"time": time, "district": zones,
                "reference": ("district", np.array([a.reference for a in assignments], dtype=object))},
        attrs={"frequency": "day"})
    filled = pd.DataFrame(rows, columns=["zone", "date", "reference", "source", "value"])
    return series, filled
