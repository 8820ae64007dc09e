"""Synthetic trigger inputs, and the variants the checks derive from any inputs.

The synthetic data follow what the engine hands a trigger for the standard input names:

* ``rainfall`` — district series (:class:`xarray.Dataset`, ``mean`` and ``valid_fraction``
  on ``(time, district)``): daily rainfall [mm/day] from two years before the season to
  400 days after the last cohort, zero-inflated gamma with a different mean per district
  (about 1 to 15 mm/day) so that deficit and excess covers both pay somewhere;
* ``ndvi`` — district series of 16-day composites (day of year 1, 17, …, 353 in every
  year) [1] over the twenty years before the season year up to the year after it, a
  seasonal cycle plus noise, with a vegetation deficit in the season for some districts;
* ``yields`` — a tidy table ``district_id, year, yield`` [t/ha] (``attrs["units"]``) over
  the twenty years up to the season year, with a shortfall in the season year for some
  districts.

Every district has complete data (``valid_fraction`` 1), so every district is assessable.
Any other input name cannot be made up: pass your own :class:`TriggerInputs`.

The variants (blanked, absent or reordered districts, chunked, scaled) work on any
``TriggerInputs``, synthetic or given, and never modify the one they start from.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import xarray as xr

from panen.engine.api import Season, TriggerInputs

__all__ = ["SYNTHETIC_INPUTS", "synthetic_inputs"]

#: District ids of the synthetic inputs (text, as the engine's).
DISTRICTS = np.array(["3201", "3202", "3203", "3204", "3205"])
#: Season of the synthetic inputs: the 2020/21 wet season, harvest year 2021.
SEASON = Season("2021-MT1", np.datetime64("2020-11-01", "D"), np.datetime64("2021-03-31", "D"), 2021)
#: Two sowing cohorts two weeks apart.
COHORTS = np.array(["2020-11-01", "2020-11-15"], dtype="datetime64[D]")
#: Columns of a table input that identify a row rather than hold a value.
KEY_COLUMNS = ("district_id", "year", "season", "date", "time")

_SEED = 20240101


def _rainfall(season: Season, cohorts: np.ndarray, districts: np.ndarray, rng: np.random.Generator) -> xr.Dataset:
    start = season.start - np.timedelta64(730, "D")
    end = max(season.end, cohorts.max()) + np.timedelta64(400, "D")
    time = pd.date_range(str(start), str(end), freq="D")
    means = np.geomspace(1.0, 15.0, districts.size)  # [mm/day]
    wet = rng.random((time.size, districts.size)) < 0.55
    rain = np.where(wet, rng.gamma(0.7, means / (0.7 * 0.55), size=(time.size, districts.size)), 0.0)
    return _series(time, np.round(rain, 1), districts, "mm/day")


def _ndvi(season: Season, cohorts: np.ndarray, districts: np.ndarray, rng: np.random.Generator) -> xr.Dataset:
    years = range(season.year - 20, season.year + 2)
    time = pd.DatetimeIndex([pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d) for y in years for d in range(0, 365, 16)])
    doy = time.day_of_year.to_numpy()[:, None]
    level = np.linspace(-0.05, 0.05, districts.size)[None, :]
    v = 0.5 + 0.2 * np.sin(2 * np.pi * doy / 365.0) + level + rng.normal(0, 0.04, (time.size, districts.size))
    in_season = (time >= pd.Timestamp(season.start)) & (time < pd.Timestamp(cohorts.max()) + pd.Timedelta(days=400))
    deficit = np.linspace(-0.2, 0.05, districts.size)  # first districts much greener-poor than usual
    v = v + np.where(in_season[:, None], deficit[None, :], 0.0)
    return _series(time, np.clip(v, -0.2, 1.0), districts, "1")


def _yields(season: Season, cohorts: np.ndarray, districts: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    years = np.arange(season.year - 20, season.year + 1)
    share = np.linspace(0.4, 1.1, districts.size)  # season yield / usual yield
    rows = []
    for j, d in enumerate(districts):
        usual = 4.0 + 0.3 * j
        for y in years:
            value = usual * (share[j] if y == season.year else 1.0) + rng.normal(0, 0.3)
            rows.append((str(d), int(y), round(max(value, 0.5), 3)))
    table = pd.DataFrame(rows, columns=["district_id", "year", "yield"])
    table.attrs["units"] = "t/ha"
    return table


def _series(time: pd.DatetimeIndex, values: np.ndarray, districts: np.ndarray, units: str) -> xr.Dataset:
    return xr.Dataset(
        {"mean": (("time", "district"), values, {"units": units}),
         "valid_fraction": (("time", "district"), np.ones_like(values), {"units": "1"})},
        coords={"time": time.to_numpy().astype("datetime64[ns]"), "district": np.asarray(districts)},
    )


#: Builders of the standard inputs: name → (kind, builder(season, cohorts, districts, rng)).
SYNTHETIC_INPUTS: dict[str, tuple[str, Callable]] = {
    "rainfall": ("series", _rainfall),
    "ndvi": ("series", _ndvi),
    "yields": ("table", _yields),
}


def synthetic_inputs(names: tuple[str, ...] | list[str], *, season: Season = SEASON,
                     cohorts: np.ndarray = COHORTS, district_ids: np.ndarray = DISTRICTS,
                     seed: int = _SEED) -> TriggerInputs:
    """Complete, deterministic inputs for the standard input names.

    Parameters
    ----------
    names
        Input names, e.g. a trigger's ``inputs``.
    season, cohorts, district_ids
        What the inputs are for; the defaults are the 2020/21 wet season, two sowing
        cohorts (1 and 15 November 2020) and five districts.
    seed
        Seed of the random values; the same seed gives the same inputs.

    Returns
    -------
    TriggerInputs
        In memory (numpy-backed), every district complete.

    Raises
    ------
    ValueError
        A name that is not a standard input (``rainfall``, ``ndvi``, ``yields``).
    """
    unknown = [n for n in names if n not in SYNTHETIC_INPUTS]
    if unknown:
        raise ValueError(
            f"panen.testing cannot make up input(s) {', '.join(map(repr, unknown))}: it knows "
            f"{', '.join(map(repr, SYNTHETIC_INPUTS))}. Pass your own inputs=TriggerInputs(season=..., cohorts=..., "
            f"district_ids=..., series={{...}}, tables={{...}}) with complete data for every district")
    rng = np.random.default_rng(seed)
    districts = np.asarray(district_ids)
    cohorts = np.asarray(cohorts, dtype="datetime64[D]")
    series, tables = {}, {}
    for name in names:
        kind, build = SYNTHETIC_INPUTS[name]
        data = build(season, cohorts, districts, rng)
        (series if kind == "series" else tables)[name] = data
    return TriggerInputs(season=season, cohorts=cohorts, district_ids=districts, series=series, tables=tables)


# --------------------------------------------------------------------------- variants of any inputs
def _district_key(table: pd.DataFrame) -> pd.Series | None:
    return table["district_id"].astype(str) if "district_id" in table.columns else None


def _value_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in KEY_COLUMNS and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])]


def _with(inputs: TriggerInputs, **changes) -> TriggerInputs:
    fields = {"season": inputs.season, "cohorts": inputs.cohorts, "district_ids": inputs.district_ids,
              "series": inputs.series, "tables": inputs.tables}
    fields.update(changes)
    return TriggerInputs(**fields)


def _keep_attrs(new: xr.Dataset, old: xr.Dataset) -> xr.Dataset:
    new.attrs = dict(old.attrs)
    for v in new.data_vars:
        if v in old:
            new[v].attrs = dict(old[v].attrs)
    return new


def copied(inputs: TriggerInputs) -> TriggerInputs:
    """A deep copy (numpy buffers, attrs and tables included)."""
    tables = {}
    for k, t in inputs.tables.items():
        c = t.copy(deep=True)
        c.attrs = dict(t.attrs)
        tables[k] = c
    return _with(inputs, cohorts=np.array(inputs.cohorts, copy=True), district_ids=np.array(inputs.district_ids, copy=True),
                 series={k: s.copy(deep=True) for k, s in inputs.series.items()}, tables=tables)


def in_memory(inputs: TriggerInputs) -> TriggerInputs:
    """The same inputs with every series loaded into numpy."""
    return _with(inputs, series={k: s.copy(deep=False).load() for k, s in inputs.series.items()})


def chunked(inputs: TriggerInputs) -> TriggerInputs:
    """The series as dask arrays, several chunks along both ``time`` and ``district``."""
    series = {}
    for k, s in inputs.series.items():
        chunks = {"time": max(1, math.ceil(s.sizes.get("time", 1) / 4))} if "time" in s.dims else {}
        if "district" in s.dims:
            chunks["district"] = max(1, math.ceil(s.sizes["district"] / 2))
        series[k] = s.chunk(chunks)
    return _with(inputs, series=series)


def blanked(inputs: TriggerInputs, district: str) -> tuple[TriggerInputs, list[str]]:
    """``district`` with no data at all: series ``mean`` NaN and ``valid_fraction`` 0 at
    every time, a table's value columns NaN on its rows. Also returns what was blanked."""
    series, tables, done = {}, {}, []
    for k, s in inputs.series.items():
        if "district" not in s.dims:
            series[k] = s
            continue
        here = s["district"].astype(str) == str(district)
        new = s.copy()
        for v in s.data_vars:
            if v == "valid_fraction":
                new[v] = s[v].where(~here, 0.0)
            elif s[v].dtype.kind == "f" and "district" in s[v].dims:
                new[v] = s[v].where(~here)
        series[k] = _keep_attrs(new, s)
        done.append(f"series {k!r}")
    for k, t in inputs.tables.items():
        key, cols = _district_key(t), _value_columns(t)
        new = t.copy(deep=True)
        new.attrs = dict(t.attrs)
        if key is not None and cols:
            new[cols] = new[cols].astype(float)
            new.loc[key == str(district), cols] = np.nan
            done.append(f"table {k!r} ({', '.join(cols)})")
        tables[k] = new
    return _with(inputs, series=series, tables=tables), done


def without(inputs: TriggerInputs, district: str) -> tuple[TriggerInputs, list[str]]:
    """``district`` left out of every series and table (still requested in ``district_ids``)."""
    series, tables, done = {}, {}, []
    for k, s in inputs.series.items():
        if "district" in s.dims:
            keep = (s["district"].astype(str) != str(district)).values
            series[k] = s.isel(district=np.flatnonzero(keep))
            done.append(f"series {k!r}")
        else:
            series[k] = s
    for k, t in inputs.tables.items():
        key = _district_key(t)
        if key is not None:
            new = t[(key != str(district)).to_numpy()].copy()
            new.attrs = dict(t.attrs)
            tables[k] = new
            done.append(f"table {k!r}")
        else:
            tables[k] = t
    return _with(inputs, series=series, tables=tables), done


def subset(inputs: TriggerInputs, districts: list[str], n_cohorts: int) -> TriggerInputs:
    """Only ``districts`` (requested and in the data) and the first ``n_cohorts`` cohorts."""
    wanted = [str(d) for d in districts]
    series = {}
    for k, s in inputs.series.items():
        if "district" in s.dims:
            keep = np.isin(s["district"].astype(str).values, wanted)
            s = s.isel(district=np.flatnonzero(keep))
        series[k] = s
    tables = {}
    for k, t in inputs.tables.items():
        key = _district_key(t)
        if key is not None:
            new = t[key.isin(wanted).to_numpy()].copy()
            new.attrs = dict(t.attrs)
            t = new
        tables[k] = t
    ids = np.asarray([d for d in inputs.district_ids if str(d) in wanted])
    return _with(inputs, district_ids=ids, cohorts=np.asarray(inputs.cohorts)[:n_cohorts], series=series, tables=tables)


def reversed_request(inputs: TriggerInputs) -> TriggerInputs:
    """The same data, the districts requested in reverse order."""
    return _with(inputs, district_ids=np.asarray(inputs.district_ids)[::-1].copy())


def scaled(inputs: TriggerInputs, factor: float) -> TriggerInputs:
    """Values from the season start on multiplied by ``factor`` (series ``mean``; a table's
    value columns on the season year's rows when it has a ``year`` column, else all rows).
    ``valid_fraction`` is untouched."""
    start = np.datetime64(inputs.season.start, "ns")
    series = {}
    for k, s in inputs.series.items():
        new = s.copy()
        if "mean" in s and "time" in s["mean"].dims:
            later = s["time"] >= start
            new["mean"] = s["mean"].where(~later, s["mean"] * factor)
        series[k] = _keep_attrs(new, s)
    tables = {}
    for k, t in inputs.tables.items():
        cols = _value_columns(t)
        new = t.copy(deep=True)
        new.attrs = dict(t.attrs)
        if cols:
            rows = (new["year"] == inputs.season.year).to_numpy() if "year" in new.columns else slice(None)
            new[cols] = new[cols].astype(float)
            new.loc[rows, cols] = new.loc[rows, cols] * factor
        tables[k] = new
    return _with(inputs, series=series, tables=tables)
