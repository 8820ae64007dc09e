"""Lazy, dask-backed readers for gridded rainfall (and other gridded variables).

Every reader returns one :class:`xarray.DataArray` in a single shape the engine relies on:

* dims exactly ``("time", "y", "x")``; ``y``/``x`` are 1-D cell-centre coordinates in the
  grid CRS (``lat``/``latitude``/``lon``/``longitude`` are renamed);
* ``time`` is ``datetime64``, sorted and unique (duplicate time stamps are an error);
* the CRS is written with rioxarray (``da.rio.crs``); a CF file on lat/lon without a
  ``grid_mapping`` is taken as EPSG:4326;
* float32 (or float64 for wide source types), dask-backed, never loaded on open;
* missing data is NaN: ``_FillValue``, ``missing_value`` and GeoTIFF ``nodata`` are masked,
  never read as zero.

:func:`open_rainfall` additionally normalises ``attrs["units"]`` to exactly ``"mm/day"``
or ``"mm/month"`` and sets ``attrs["frequency"]`` to ``"day"`` or ``"month"`` from the
time spacing, checking the file's units, the configured units and the spacing against one
another (monthly totals are never silently treated as daily rain). Negative rainfall is
physically impossible and is treated as missing (NaN), like a fill value.

Sources
-------
* CF NetCDF (``.nc``), e.g. CHIRPS ``precip`` on ``latitude``/``longitude``;
* a GeoTIFF stack — a glob (``data/chirps/*.tif``), a directory of ``.tif`` files or one
  ``.tif`` — with the date of each file parsed from its name (see :data:`DEFAULT_DATE_PATTERN`);
* Zarr (a ``.zarr`` directory; zarr format 2 or 3) via :func:`xarray.open_zarr`.

Chunking
--------
By default a chunk holds :data:`DEFAULT_TIME_CHUNK` (32) time steps and the full spatial
extent. Zonal aggregation is a sparse district × cell product applied to every time step,
so it wants whole grids; seasonal windows then stream over ~a month of days per chunk
(a year of daily data is ~12 chunks: enough parallelism, small task graphs). The number of
steps shrinks for very large grids so a chunk stays under :data:`MAX_CHUNK_BYTES`
(128 MiB; a national 0.05° Indonesia grid, ~1000 × 400 cells, keeps 32 steps at ~51 MiB).
Pass ``chunks=`` (an int = time steps, or a dict by dim) to override.
"""

from __future__ import annotations

import glob as _glob
import os
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from pyproj import CRS

from panen.engine.errors import ConfigError, InputError, Problem

__all__ = [
    "open_rainfall",
    "open_grid",
    "DEFAULT_DATE_PATTERN",
    "DEFAULT_TIME_CHUNK",
    "MAX_CHUNK_BYTES",
]

#: Default regex for dates in GeoTIFF file names: ``YYYY.MM`` (monthly) or ``YYYY.MM.DD``
#: (daily), separated by ``.``, ``_`` or ``-`` and followed by ``.tif``/``.tiff``, as in
#: CHIRPS ``chirps-v2.0.2020.01.tif``, ``chirps-v2.0.2020.01.15.tif`` and
#: ``java_chirps-v2.0.2019.01.tif``. Searched in the file name (case-insensitive).
DEFAULT_DATE_PATTERN = r"(?P<year>\d{4})[._-](?P<month>\d{2})(?:[._-](?P<day>\d{2}))?\.tiff?$"

#: Default number of time steps per dask chunk (full spatial extent per chunk).
DEFAULT_TIME_CHUNK = 32
#: Upper bound on the size of a default chunk [bytes].
MAX_CHUNK_BYTES = 128 * 2**20

_NETCDF_SUFFIXES = {".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5", ".he5"}
_TIF_SUFFIXES = {".tif", ".tiff"}
_Y_NAMES = {"lat", "latitude", "y"}
_X_NAMES = {"lon", "long", "longitude", "x"}
_TIME_NAMES = {"time", "date", "t"}
_FILL_ATTRS = ("_FillValue", "missing_value", "nodata", "NoData", "CodeMissingValue")

# Units: accepted spellings, grouped by meaning (compared after _clean_units()).
_UNITS_DAY = {"mm/day", "mm/d", "mm d-1", "mm day-1", "mm per day", "mm/24h", "mm/24 h",
              "mm.d-1", "mm.day-1", "mm d**-1", "mm day**-1"}
_UNITS_MONTH = {"mm/month", "mm/mon", "mm month-1", "mm mon-1", "mm per month", "mm.month-1",
                "mm month**-1"}
_UNITS_DEKAD = {"mm/dekad", "mm dekad-1", "mm per dekad", "mm/dekade", "mm/10days", "mm/10 days",
                "mm/10d", "mm.dekad-1"}
_UNITS_FLUX = {"kg m-2 s-1", "kg/m2/s", "kg/m^2/s", "kg m**-2 s**-1", "kg.m-2.s-1",
               "kg m-2s-1", "mm/s", "mm s-1"}
_UNITS_AMOUNT = {"mm", "millimeter", "millimeters", "millimetre", "millimetres", "kg m-2",
                 "kg/m2", "kg/m^2", "kg m**-2"}
_UNITS_METRE = {"m", "meter", "meters", "metre", "metres"}
_ACCEPTED = ("mm/day (mm d-1, mm/d, mm day-1), mm/dekad (mm dekad-1), mm/month (mm month-1), mm (with daily, dekadal "
             "or monthly steps), m, kg m-2 s-1")
#: Normalised units and adjectives per time step.
_STEP_UNITS = {"day": "mm/day", "dekad": "mm/dekad", "month": "mm/month"}
_STEP_WORD = {"day": "daily", "dekad": "dekadal", "month": "monthly"}


@dataclass
class _Raw:
    """A variable as opened from its source, before normalisation."""

    da: xr.DataArray
    source: str
    global_attrs: dict[str, Any] = field(default_factory=dict)
    time_hint: str | None = None  # "day"/"month" from a file-name date pattern


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


#: Physically possible rainfall [mm per time step]: the world records are 1,825 mm in a day
#: (Foc-Foc, La Réunion, 7–8 January 1966) and 9,300 mm in a month (Cherrapunji, July 1861)
#: (WMO World Weather and Climate Extremes Archive). Anything above these bounds, or below
#: zero, is a fill value or a fault, never rain.
RAINFALL_VALID_RANGE: dict[str, tuple[float, float]] = {"mm/day": (0.0, 2000.0), "mm/dekad": (0.0, 10000.0),
                                                        "mm/month": (0.0, 15000.0)}
#: (A dekad — 10 days, or the 8–11 days to a month's end — can hold no more than its month: the
#: monthly bound of 10,000 mm is used for it, above every recorded multi-day total.)


def open_rainfall(
    path: str | PathLike[str],
    *,
    variable: str = "precip",
    units: str | None = None,
    date_pattern: str | None = None,
    chunks: int | dict[str, int] | None = None,
    valid_range: tuple[float, float] | None = None,
    mask_implausible: bool = True,
) -> xr.DataArray:
    """Open gridded rainfall lazily as a ``(time, y, x)`` DataArray in mm/day or mm/month.

    Parameters
    ----------
    path
        A NetCDF file, a Zarr store (directory), a GeoTIFF, a directory of GeoTIFFs, or a
        glob of GeoTIFFs (``data/chirps/*.tif``).
    variable
        Variable name in NetCDF/Zarr (CHIRPS: ``precip``). For GeoTIFF stacks it only names
        the returned array.
    units
        Units configured by the caller (e.g. ``inputs.rainfall.units``). Used when the file
        has no ``units`` attribute; otherwise it must agree with the file. Accepted
        spellings: ``mm/day``, ``mm d-1``, ``mm/d``, ``mm day-1``, ``mm/month``,
        ``mm month-1``, ``mm`` (daily or monthly by the time spacing), ``m`` (× 1000),
        ``kg m-2 s-1`` (× 86400 → mm/day; × 86400 × days in month → mm/month).
    valid_range
        ``(low, high)`` of physically possible rain in the normalised units; default
        :data:`RAINFALL_VALID_RANGE` for the units.
    mask_implausible
        Make values outside ``valid_range`` missing here (default). ``False`` leaves them
        for the caller to mask and count (``attrs["valid_range"]`` is set either way).
    date_pattern
        Regex with named groups ``year`` and ``month`` (optional ``day``) or ``year`` and
        ``doy``, searched in each GeoTIFF file name; default :data:`DEFAULT_DATE_PATTERN`.
    chunks
        Dask chunks: an int (time steps per chunk, full space) or a dict by dim
        (``{"time": 64, "y": 500}``). Default: :data:`DEFAULT_TIME_CHUNK` steps, full space.

    Returns
    -------
    xarray.DataArray
        Dask-backed, dims ``("time", "y", "x")``, CRS written, ``attrs["units"]`` in
        ``{"mm/day", "mm/month"}`` [mm per time step], ``attrs["frequency"]`` in
        ``{"day", "month"}``. Fill values are NaN (missing), never 0; so are values outside
        ``attrs["valid_range"]`` (negative rain, more than the world record) unless
        ``mask_implausible=False`` (the run's district-series step masks and counts them).
        Gaps in an otherwise regular daily (or month-start monthly) series are inserted as
        all-NaN steps, with a warning, so that missing days stay visible as missing.

    Raises
    ------
    InputError
        Missing/unreadable file; variable absent (available variables listed); odd GeoTIFF
        in a stack (shape, transform, CRS) or a file name without a date; duplicate times;
        unknown units; units that disagree with the configured units or with the time
        spacing (e.g. monthly totals configured as mm/day); no units at all; no CRS.
    ConfigError
        ``date_pattern`` is not a valid regex with the required groups.

    Examples
    --------
    >>> rain = open_rainfall("chirps_java_monthly_1981_2020.nc")  # doctest: +SKIP
    >>> rain.attrs["units"], rain.attrs["frequency"], rain.dims  # doctest: +SKIP
    ('mm/month', 'month', ('time', 'y', 'x'))
    """
    raw = _open_raw(path, variable, date_pattern)
    da = _to_grid(raw)
    frequency = _infer_frequency(da.indexes["time"], raw.source)
    if frequency is None and da.sizes["time"] >= 2:
        steps = np.diff(da.indexes["time"].asi8) / 86_400e9
        raise InputError(
            f"rainfall time steps are neither daily, dekadal nor monthly (median spacing "
            f"{float(np.median(steps)):g} days); panen reads daily, dekadal or monthly rainfall",
            file=raw.source, column="time",
        )
    original_attrs = dict(da.attrs)
    file_units = da.attrs.get("units")
    file_units = file_units.strip() if isinstance(file_units, str) and file_units.strip() else None
    da, norm_units, frequency = _resolve_units(da, file_units, units, frequency, raw)
    rng = tuple(float(v) for v in (valid_range if valid_range is not None else RAINFALL_VALID_RANGE[norm_units]))
    if mask_implausible:  # negative rain, or more than the world record: missing, like a fill value
        da = da.where((da >= rng[0]) & (da <= rng[1]))
    da = _fill_time_gaps(da, frequency, raw.source)
    da.attrs = _clean_attrs(original_attrs, raw.source)
    da.attrs["units"] = norm_units
    da.attrs["frequency"] = frequency
    da.attrs["valid_range"] = [rng[0], rng[1]]
    return _chunk(da, chunks)


def open_grid(
    path: str | PathLike[str],
    *,
    variable: str | None = None,
    date_pattern: str | None = None,
    chunks: int | dict[str, int] | None = None,
) -> xr.DataArray:
    """Open any gridded variable lazily as a ``(time, y, x)`` DataArray (e.g. NDVI).

    The same sources, dims, time, CRS, fill-value and chunking rules as
    :func:`open_rainfall`, without the rainfall-specific parts: units are kept as found in
    the file (``attrs["units"]`` if any), negative values are kept (NDVI can be negative),
    and any regular or irregular time spacing is accepted. ``attrs["frequency"]`` is set to
    ``"day"`` or ``"month"`` when the spacing is daily or monthly.

    Parameters
    ----------
    variable
        Variable name in NetCDF/Zarr; default the only data variable. Names the array for
        GeoTIFF stacks (default ``"value"``).
    """
    raw = _open_raw(path, variable, date_pattern)
    da = _to_grid(raw)
    frequency = _infer_frequency(da.indexes["time"], raw.source)
    units = da.attrs.get("units")
    da.attrs = _clean_attrs(da.attrs, raw.source)
    if units:
        da.attrs["units"] = units
    if frequency is not None:
        da.attrs["frequency"] = frequency
    return _chunk(da, chunks)


# ---------------------------------------------------------------------------------------
# Opening each source
# ---------------------------------------------------------------------------------------


def _open_raw(path: str | PathLike[str], variable: str | None, date_pattern: str | None) -> _Raw:
    text = os.fspath(path)
    if _glob.has_magic(text):
        files = sorted(Path(f) for f in _glob.glob(text) if Path(f).is_file())
        if not files:
            raise InputError("no files match this pattern", file=text)
        return _open_tif_stack(files, variable, date_pattern, source=text)
    p = Path(text)
    if not p.exists():
        raise InputError("gridded data file not found", file=p)
    if p.is_dir():
        if _is_zarr(p):
            return _open_zarr(p, variable)
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _TIF_SUFFIXES)
        if not files:
            raise InputError("directory is not a Zarr store and holds no GeoTIFF (.tif) files", file=p)
        return _open_tif_stack(files, variable, date_pattern, source=str(p))
    suffix = p.suffix.lower()
    if suffix in _NETCDF_SUFFIXES:
        return _open_netcdf(p, variable)
    if suffix in _TIF_SUFFIXES:
        return _open_tif_stack([p], variable, date_pattern, source=str(p))
    raise InputError(
        f"unsupported gridded format {suffix or '(no suffix)'!r}; expected NetCDF (.nc), "
        "GeoTIFF (.tif, a directory or a glob of them) or Zarr (.zarr directory)", file=p,
    )


def _is_zarr(p: Path) -> bool:
    markers = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")
    return p.suffix.lower() == ".zarr" or any((p / m).exists() for m in markers)


def _open_netcdf(p: Path, variable: str | None) -> _Raw:
    try:
        # chunks={}: lazy dask arrays in the file's own chunks (rechunked later); chunks=None would load
        # the whole variable into memory at the first masking step
        ds = xr.open_dataset(p, chunks={}, decode_coords="all", decode_timedelta=False)
    except Exception as exc:  # netCDF4/h5netcdf/xarray raise many kinds; all are unreadable
        raise InputError(f"cannot read NetCDF file: {exc}", file=p) from exc
    return _Raw(_pick_variable(ds, variable, p), str(p), dict(ds.attrs))


def _open_zarr(p: Path, variable: str | None) -> _Raw:
    ds = None
    for consolidated in (True, False):  # try consolidated metadata first, without a warning
        try:
            ds = xr.open_zarr(p, chunks={}, consolidated=consolidated, decode_coords="all",
                              decode_timedelta=False)
            break
        except Exception as exc:  # missing consolidated metadata raises; retry without it
            error = exc
    if ds is None:
        raise InputError(f"cannot read Zarr store: {error}", file=p) from error
    return _Raw(_pick_variable(ds, variable, p), str(p), dict(ds.attrs))


def _pick_variable(ds: xr.Dataset, variable: str | None, p: Path) -> xr.DataArray:
    names = [str(v) for v in ds.data_vars]
    if variable is None:
        if len(names) == 1:
            return ds[names[0]]
        raise InputError(f"several variables; choose one of: {', '.join(names) or '(none)'}", file=p)
    if variable not in ds.data_vars:
        raise InputError(
            f"variable {variable!r} not found; available variables: {', '.join(names) or '(none)'}",
            file=p, column=variable,
        )
    return ds[variable]


def _compile_date_pattern(date_pattern: str | None) -> re.Pattern[str]:
    text = DEFAULT_DATE_PATTERN if date_pattern is None else date_pattern
    try:
        regex = re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"date_pattern {text!r} is not a valid regular expression: {exc}") from exc
    groups = set(regex.groupindex)
    if "year" not in groups or not ({"month", "doy"} & groups):
        raise ConfigError(
            f"date_pattern {text!r} needs named groups 'year' and 'month' (optional 'day'), "
            "or 'year' and 'doy', e.g. (?P<year>\\d{4})\\.(?P<month>\\d{2})"
        )
    return regex


def _date_from_match(m: re.Match[str]) -> tuple[datetime, str]:
    """Date and frequency hint ("day" when a day is given, else "month")."""
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    year = int(g["year"])
    if "doy" in g:
        doy = int(g["doy"])
        if not 1 <= doy <= (366 if pd.Timestamp(year=year, month=1, day=1).is_leap_year else 365):
            raise ValueError(f"day of year {doy} out of range")
        return datetime(year, 1, 1) + timedelta(days=doy - 1), "day"
    if "day" in g:
        return datetime(year, int(g["month"]), int(g["day"])), "day"
    return datetime(year, int(g["month"]), 1), "month"


def _open_tif_stack(files: list[Path], variable: str | None, date_pattern: str | None,
                    source: str) -> _Raw:
    regex = _compile_date_pattern(date_pattern)
    problems: list[Problem] = []
    dated: list[tuple[datetime, Path]] = []
    hints: set[str] = set()
    for f in files:
        m = regex.search(f.name)
        if m is None:
            problems.append(Problem(f"file name has no date matching the date pattern {regex.pattern!r}",
                                    file=f))
            continue
        try:
            date, hint = _date_from_match(m)
        except ValueError as exc:
            problems.append(Problem(f"file name holds an invalid date: {exc}", file=f))
            continue
        dated.append((date, f))
        hints.add(hint)
    if problems:
        raise InputError(problems)
    dated.sort()
    by_date: dict[datetime, list[Path]] = {}
    for date, f in dated:
        by_date.setdefault(date, []).append(f)
    for date, fs in by_date.items():
        if len(fs) > 1:
            problems.append(Problem(
                f"duplicate date {date:%Y-%m-%d}: also in {', '.join(x.name for x in fs[1:])}",
                file=fs[0], column="time"))
    if problems:
        raise InputError(problems)

    meta = [_tif_meta(f) for _, f in dated]
    ref = meta[0]
    for m in meta:
        if m.get("error"):
            problems.append(Problem(m["error"], file=m["path"]))
    if problems:
        raise InputError(problems)
    t = ref["transform"]
    if t.b != 0 or t.d != 0:
        raise InputError("rotated GeoTIFF grids are not supported", file=ref["path"])
    if ref["crs"] is None:
        raise InputError("GeoTIFF has no CRS", file=ref["path"])
    for m in meta[1:]:
        odd = []
        if m["shape"] != ref["shape"]:
            odd.append(f"shape {m['shape']} vs {ref['shape']}")
        if not m["transform"].almost_equals(ref["transform"], precision=1e-9):
            odd.append(f"transform {tuple(m['transform'])[:6]} vs {tuple(ref['transform'])[:6]}")
        if m["crs"] != ref["crs"]:
            odd.append(f"CRS {m['crs']} vs {ref['crs']}")
        if odd:
            problems.append(Problem(
                f"grid differs from the first file {ref['path'].name}: {'; '.join(odd)}",
                file=m["path"]))
    if problems:
        raise InputError(problems)

    ny, nx = ref["shape"]
    dtype = max((_float_dtype(np.dtype(m["dtype"])) for m in meta), key=lambda d: d.itemsize)
    step = _default_time_chunk(ny, nx, dtype.itemsize)
    paths = [str(f) for _, f in dated]
    blocks = []
    for i in range(0, len(paths), step):
        group = tuple(paths[i:i + step])
        task = dask.delayed(_read_tif_group, pure=True)(group, dtype.str)
        blocks.append(dsa.from_delayed(task, shape=(len(group), ny, nx), dtype=dtype))
    data = dsa.concatenate(blocks, axis=0)
    x = t.c + t.a * (np.arange(nx) + 0.5)
    y = t.f + t.e * (np.arange(ny) + 0.5)
    times = pd.DatetimeIndex([d for d, _ in dated]).as_unit("ns")
    attrs = {}
    if ref["units"]:
        attrs["units"] = ref["units"]
    da = xr.DataArray(data, dims=("time", "y", "x"),
                      coords={"time": times, "y": y, "x": x},
                      name=variable or "value", attrs=attrs)
    da = da.rio.write_crs(ref["crs"])
    hint = "day" if "day" in hints else "month"
    return _Raw(da, source, {}, time_hint=hint)


def _tif_meta(f: Path) -> dict[str, Any]:
    try:
        with rasterio.open(f) as src:
            meta = {
                "path": f, "shape": (src.height, src.width), "transform": src.transform,
                "crs": src.crs, "dtype": src.dtypes[0], "count": src.count,
                "units": (src.units[0] if src.units and src.units[0] else None)
                or src.tags(1).get("units") or src.tags().get("units"),
            }
    except Exception as exc:  # rasterio raises RasterioIOError and friends
        return {"path": f, "error": f"cannot read GeoTIFF: {exc}"}
    if meta["count"] != 1:
        meta["error"] = f"GeoTIFF has {meta['count']} bands; expected one band per file"
    return meta


def _read_tif_group(paths: tuple[str, ...], dtype: str) -> np.ndarray:
    """Read band 1 of each file; nodata/masked pixels become NaN (never 0)."""
    arrays = []
    for p in paths:
        with rasterio.open(p) as src:
            band = src.read(1, masked=True)
        arrays.append(band.astype(dtype).filled(np.nan))
    return np.stack(arrays)


# ---------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------


def _to_grid(raw: _Raw) -> xr.DataArray:
    """Dims (time, y, x), sorted unique datetime64 time, masked fills, float, CRS."""
    da = raw.da
    rename: dict[Any, str] = {}
    latlon = False
    for d in da.dims:
        key = str(d).lower()
        if key in _Y_NAMES and d != "y":
            rename[d] = "y"
            latlon = latlon or key != "y"
        elif key in _X_NAMES and d != "x":
            rename[d] = "x"
            latlon = latlon or key != "x"
        elif key in _TIME_NAMES and d != "time":
            rename[d] = "time"
    da = da.rename(rename)
    for d in list(da.dims):
        if d not in ("time", "y", "x") and da.sizes[d] == 1:
            da = da.isel({d: 0}, drop=True)
    if set(da.dims) != {"time", "y", "x"}:
        raise InputError(
            f"variable {raw.da.name!r} has dims {tuple(map(str, raw.da.dims))}; expected "
            "time, y (or lat/latitude) and x (or lon/longitude)",
            file=raw.source, column=str(raw.da.name))
    for d in ("time", "y", "x"):
        if d not in da.coords:
            raise InputError(f"dimension {d!r} has no coordinate values", file=raw.source, column=d)
    da = da.transpose("time", "y", "x")

    crs = _resolve_crs(da, raw, latlon)
    keep = {"time", "y", "x"}
    da = da.drop_vars([c for c in da.coords if c not in keep])
    da.encoding.pop("grid_mapping", None)
    da.attrs.pop("grid_mapping", None)
    da = _normalise_time(da, raw.source)
    da = _mask_fill_attrs(da)
    if _float_dtype(da.dtype) != da.dtype:
        da = da.astype(_float_dtype(da.dtype))
    return da.rio.write_crs(crs)


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """float32 for float32/float16 and integers up to 16 bits; float64 otherwise."""
    if dtype == np.float64 or (dtype.kind in "iu" and dtype.itemsize > 2):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _resolve_crs(da: xr.DataArray, raw: _Raw, latlon: bool) -> CRS:
    crs = None
    try:
        crs = da.rio.crs
    except Exception:  # an unparsable grid_mapping falls through to the attributes
        crs = None
    if crs is None:
        for attrs in (da.attrs, raw.global_attrs):
            for key in ("crs", "crs_wkt", "spatial_ref"):
                value = attrs.get(key)
                if isinstance(value, str) and value.strip():
                    try:
                        crs = CRS.from_user_input(value)
                        break
                    except Exception:
                        continue
            if crs is not None:
                break
    if crs is None and latlon:
        crs = "EPSG:4326"  # CF: lat/lon coordinates without a grid_mapping are geographic WGS 84
    if crs is None:
        raise InputError("grid has no CRS (no grid_mapping, crs attribute or lat/lon coordinates)",
                         file=raw.source)
    return CRS.from_user_input(crs)


def _normalise_time(da: xr.DataArray, source: str) -> xr.DataArray:
    index = da.indexes["time"]
    if not isinstance(index, pd.DatetimeIndex):
        if hasattr(index, "to_datetimeindex"):  # CFTimeIndex (non-standard calendar)
            try:
                index = index.to_datetimeindex(time_unit="ns")
            except Exception as exc:
                raise InputError(f"time cannot be converted to dates: {exc}", file=source,
                                 column="time") from exc
            da = da.assign_coords(time=index)
        else:
            raise InputError("time coordinate is not decoded as dates (missing CF units?)",
                             file=source, column="time")
    if index.hasnans:
        raise InputError("time coordinate has missing values", file=source, column="time")
    if index.has_duplicates:
        dups = sorted({f"{t:%Y-%m-%d %H:%M}" for t in index[index.duplicated()]})
        raise InputError(f"duplicate time steps: {', '.join(dups[:10])}"
                         f"{' ...' if len(dups) > 10 else ''}", file=source, column="time")
    if not index.is_monotonic_increasing:
        da = da.sortby("time")
    return da


def _mask_fill_attrs(da: xr.DataArray) -> xr.DataArray:
    """Mask fill values still present as attributes (not decoded by xarray) to NaN."""
    fills = []
    for key in _FILL_ATTRS:
        if key in da.attrs:
            value = da.attrs[key]
            try:
                fills.extend(float(v) for v in np.atleast_1d(value))
            except (TypeError, ValueError):
                continue
    if not fills:
        return da
    attrs = {k: v for k, v in da.attrs.items() if k not in _FILL_ATTRS}
    if da.dtype.kind != "f":
        da = da.astype(_float_dtype(da.dtype))
    mask = xr.zeros_like(da, dtype=bool)
    for v in fills:
        if not np.isnan(v):
            mask = mask | (da == v)
    da = da.where(~mask)
    da.attrs = attrs
    return da


def dekad_number(index: pd.DatetimeIndex) -> np.ndarray:
    """A running dekad count (36 a year) of each date: days 1–10, 11–20 and 21 to the month's end.

    >>> dekad_number(pd.DatetimeIndex(["2020-01-01", "2020-01-11", "2020-02-29", "2020-03-01"])).tolist()
    [72720, 72721, 72725, 72726]
    """
    return (index.year.to_numpy() * 12 + index.month.to_numpy() - 1) * 3 + np.minimum((index.day.to_numpy() - 1) // 10, 2)


def dekad_dates(numbers: np.ndarray, *, end_dated: bool = False) -> pd.DatetimeIndex:
    """The first (or last) day of each running dekad number (:func:`dekad_number`)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    months, k = np.divmod(numbers, 3)
    first = pd.to_datetime({"year": months // 12, "month": months % 12 + 1, "day": 1 + 10 * k})
    if not end_dated:
        return pd.DatetimeIndex(first)
    month_end = first + pd.offsets.MonthEnd(0)
    return pd.DatetimeIndex(np.where(k < 2, first + pd.Timedelta(days=9), month_end))


def dekad_days(index: pd.DatetimeIndex) -> np.ndarray:
    """Days in each date's dekad: 10, 10, and 8–11 for the third (to the month's end).

    >>> dekad_days(pd.DatetimeIndex(["2021-02-21", "2024-02-21", "2024-01-21", "2024-01-11"])).tolist()
    [8, 9, 11, 10]
    """
    k = np.minimum((index.day.to_numpy() - 1) // 10, 2)
    return np.where(k < 2, 10, index.days_in_month.to_numpy() - 20)


def _is_dekadal(index: pd.DatetimeIndex) -> bool:
    """Dates on dekad starts (1/11/21) or ends (10/20/month end), stepping one or more dekads (median one)."""
    day = index.day.to_numpy()
    starts = np.isin(day, (1, 11, 21)).all()
    ends = (np.isin(day, (10, 20)) | index.is_month_end).all()
    if not (starts or ends) or (index.normalize() != index).any():
        return False
    steps = np.diff(dekad_number(index))
    return bool(np.all(steps >= 1) and np.median(steps) == 1 and not (day == 1).all())


def _infer_frequency(index: pd.DatetimeIndex, source: str) -> str | None:
    """"day" when steps are whole days with a median of one day; "dekad" when every date is
    a dekad's first (1/11/21) or last (10/20/month end) day, stepping one dekad (median);
    "month" when every step moves one or more calendar months (median one); else None."""
    if len(index) < 2:
        return None
    days = np.diff(index.asi8) / 86_400e9
    if np.all(days == np.round(days)) and np.median(days) == 1:
        return "day"
    if _is_dekadal(index):
        return "dekad"
    months = np.diff(index.year * 12 + index.month)
    if np.all(months >= 1) and np.median(months) == 1 and np.all(days >= 27):
        return "month"
    return None


def _clean_units(text: str) -> str:
    u = " ".join(text.strip().lower().replace("^", "").split())
    return u.replace("**", "")


def _unit_kind(text: str) -> str | None:
    """"day", "dekad", "month", "flux", "amount", "metre" or None (unknown spelling)."""
    u = _clean_units(text)
    for group, kind in ((_UNITS_DAY, "day"), (_UNITS_MONTH, "month"), (_UNITS_DEKAD, "dekad"), (_UNITS_FLUX, "flux"),
                        (_UNITS_AMOUNT, "amount"), (_UNITS_METRE, "metre")):
        if u in {_clean_units(s) for s in group}:
            return kind
    return None


def _interpret_units(text: str, frequency: str | None, origin: str, source: str,
                     time_hint: str | None) -> tuple[str, str, Any]:
    """(normalised units, frequency, scale) for one units string; scale is a float or
    "days_in_month". Raises when the units contradict the time spacing."""
    kind = _unit_kind(text)
    if kind is None:
        raise InputError(f"unknown rainfall units {text!r} in {origin}; accepted: {_ACCEPTED}",
                         file=source, column="units")
    spacing = frequency
    if kind in _STEP_UNITS:
        if spacing is not None and spacing != kind:
            raise InputError(
                f"{origin} says {text!r} ({_STEP_UNITS[kind]}) but the time steps are {_STEP_WORD[spacing]}; "
                + (f"{_STEP_WORD[spacing]} totals are never read as daily rain — use units: {_STEP_UNITS[spacing]}"
                   if kind == "day" else f"{_STEP_WORD[spacing]} values cannot be read as {_STEP_WORD[kind]} totals"
                   f" — use units: {_STEP_UNITS[spacing]}"),
                file=source, column="units")
        return _STEP_UNITS[kind], kind, 1.0
    if kind == "flux":  # a rate [kg m-2 s-1] = [mm s-1]
        freq = spacing or time_hint or "day"
        return (("mm/day", "day", 86_400.0) if freq == "day"
                else (_STEP_UNITS[freq], freq, f"days_in_{freq}"))
    freq = spacing or time_hint
    if freq is None:
        raise InputError(f"units {text!r} in {origin} are an amount per time step, and a single "
                         "time step does not tell daily from monthly; give mm/day, mm/dekad or mm/month",
                         file=source, column="units")
    scale = 1000.0 if kind == "metre" else 1.0
    return _STEP_UNITS[freq], freq, scale


def _resolve_units(da: xr.DataArray, file_units: str | None, config_units: str | None,
                   frequency: str | None, raw: _Raw) -> tuple[xr.DataArray, str, str]:
    """Check the file's units, the configured units and the time spacing against one
    another, and scale the data to mm/day or mm/month."""
    src = raw.source
    if file_units is None and config_units is None:
        raise InputError("rainfall has no units attribute and no units were configured; "
                         "set inputs.rainfall.units (mm/day, mm/dekad or mm/month)", file=src, column="units")
    chosen = None
    if file_units is not None:
        chosen = _interpret_units(file_units, frequency, "the file's units attribute", src,
                                  raw.time_hint)
    if config_units is not None:
        if chosen is None:
            chosen = _interpret_units(config_units, frequency, "the config", src,
                                      raw.time_hint)
        else:
            if _unit_kind(config_units) is None:  # unknown spelling: say so, not "conflict"
                _interpret_units(config_units, frequency, "the config", src, None)
            try:
                configured = _interpret_units(config_units, chosen[1], "the configured units",
                                              src, chosen[1])[0]
            except InputError:
                configured = None
            if configured != chosen[0]:
                raise InputError(
                    f"the configured units {config_units!r} disagree with the file, whose units "
                    f"attribute says {file_units!r} with "
                    f"{_STEP_WORD[chosen[1]]} time steps ({chosen[0]}); "
                    + (f"{_STEP_WORD[chosen[1]]} totals are never read as daily rain; " if chosen[1] != "day"
                       else "")
                    + f"set units: {chosen[0]} (or fix the file)", file=src, column="units")
    units, freq, scale = chosen
    if scale == "days_in_month":
        da = da * 86_400.0 * da["time"].dt.days_in_month.astype(da.dtype)
    elif scale == "days_in_dekad":
        days = dekad_days(da.indexes["time"]).astype(da.dtype)
        da = da * 86_400.0 * xr.DataArray(days, dims="time", coords={"time": da["time"]})
    elif scale != 1.0:
        da = da * np.asarray(scale, dtype=da.dtype)
    return da, units, freq


def _fill_time_gaps(da: xr.DataArray, frequency: str, source: str) -> xr.DataArray:
    """Insert missing daily/dekadal/monthly steps as NaN so gaps stay visible as missing data."""
    index = da.indexes["time"]
    if len(index) < 2:
        return da
    if frequency == "day":
        full = pd.date_range(index[0], index[-1], freq="D", unit="ns")
    elif frequency == "dekad":
        numbers = dekad_number(index)
        full = dekad_dates(np.arange(numbers[0], numbers[-1] + 1), end_dated=not np.isin(index.day, (1, 11, 21)).all())
        full = full.as_unit(index.unit)
    elif (index == index.to_period("M").to_timestamp().as_unit(index.unit)).all():
        full = pd.date_range(index[0], index[-1], freq="MS", unit="ns")
    else:
        full = index
    if len(full) == len(index):
        return da
    missing = full.difference(index)
    warnings.warn(
        f"{source}: {len(missing)} missing {_STEP_WORD[frequency]} "
        f"time step(s) inserted as NaN "
        f"(first {missing[0]:%Y-%m-%d})", UserWarning, stacklevel=3)
    attrs = dict(da.attrs)
    out = da.reindex(time=full.as_unit(index.unit))
    out.attrs = attrs
    return out


def _clean_attrs(attrs: dict[str, Any], source: str) -> dict[str, Any]:
    out = {k: attrs[k] for k in ("long_name",) if k in attrs}
    out["source"] = source
    return out


def _default_time_chunk(ny: int, nx: int, itemsize: int) -> int:
    per_step = max(1, ny * nx * itemsize)
    return int(max(1, min(DEFAULT_TIME_CHUNK, MAX_CHUNK_BYTES // per_step)))


def _chunk(da: xr.DataArray, chunks: int | dict[str, int] | None) -> xr.DataArray:
    default = {"time": _default_time_chunk(da.sizes["y"], da.sizes["x"], da.dtype.itemsize),
               "y": -1, "x": -1}
    if chunks is None:
        spec: Any = default
    elif isinstance(chunks, int):
        spec = {**default, "time": chunks}
    elif isinstance(chunks, dict):
        alias = {"lat": "y", "latitude": "y", "lon": "x", "longitude": "x"}
        spec = {**default, **{alias.get(k, k): v for k, v in chunks.items()}}
    else:
        spec = chunks
    return da.chunk(spec)
