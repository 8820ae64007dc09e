"""Readers for MODIS MOD13Q1 NDVI: GeoTIFF pairs, NetCDF/Zarr cubes and AppEEARS point exports.

Every gridded reader returns the shape :mod:`panen.datasets.gridded` guarantees — a lazy,
dask-backed ``(time, y, x)`` DataArray with the CRS written and sorted unique
``datetime64`` times — holding float32 NDVI [1] in [−0.2, 1] (the MOD13Q1 valid range).
Fill values, values outside the valid range, QA-rejected pixels and non-crop pixels are
NaN, never 0: missing vegetation is never read as bare soil.

Time is the composite's date: the first day of its 16-day compositing period (for
MOD13Q1 the fixed days of year 1, 17, 33, …, 353 of every year), as written in the file
name's ``AYYYYDDD`` (year, day of year).

Scaling
-------
MOD13Q1 stores NDVI as int16 × 10 000 with fill −3000 and valid range −2000..10000. A
variable still stored as integers (GeoTIFFs, or a cube without CF ``scale_factor``) is
divided by 10 000; a floating-point variable (e.g. CF-decoded, or AppEEARS' scaled
column) is taken as NDVI already. ``open_ndvi_cube(scale=...)`` overrides this. After
scaling, anything outside [−0.2, 1] (the fill −3000 → −0.3 among it) is NaN.

QA policy (``qa=``)
-------------------
From the 16-bit ``VI_Quality`` layer (MOD13 C6/C6.1 User's Guide, VI Quality bit fields):

==================  ==========================================================================
``"good_only"``     MODLAND QA (bits 0–1) = 00 "VI produced with good quality", **and** the
                    common checks below.
``"good_or_check"`` MODLAND QA = 00 or 01 "VI produced, but check other QA", **and** the
                    common checks below. (10 "probably cloudy" and 11 "not produced" are
                    always rejected.)
``"none"``          QA not read (no ``VI_Quality`` needed); only fill / out-of-range masked.
==================  ==========================================================================

Common checks (both QA policies): VI usefulness (bits 2–5) ≤ 1100 "lowest quality" —
1101 "not useful", 1110 "L1B data faulty" and 1111 "not useful / not processed" are
rejected —, and none of bit 8 "adjacent cloud detected", bit 10 "mixed clouds", bit 14
"possible snow/ice", bit 15 "possible shadow" set. Aerosol quantity (bits 6–7), the
BRDF-correction bit (9) and the land/water class (bits 11–13) are not used: flooded
paddies at transplanting may be classed as water, and ``cropland_mask`` is the tool for
excluding non-crop land. ``good_only`` therefore keeps a subset of what
``good_or_check`` keeps, by construction. The QA fill 65535 fails both.

References
----------
Didan, K., Munoz, A. B., Solano, R., Huete, A. (2015/2019), *MODIS Vegetation Index User's
Guide (MOD13 Series)*, Collection 6/6.1, the "VI Quality" bit-field table.
"""

from __future__ import annotations

import glob as _glob
import os
import re
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from panen.datasets.gridded import (
    _NETCDF_SUFFIXES,
    _TIF_SUFFIXES,
    _chunk,
    _is_zarr,
    _open_raw,
    _open_tif_stack,
    _tif_meta,
    _to_grid,
)
from panen.engine.errors import ConfigError, InputError, Problem

__all__ = [
    "MOD13_DATE_PATTERN",
    "NDVI_VALID_RANGE",
    "QA_POLICIES",
    "open_mod13q1",
    "open_ndvi",
    "open_ndvi_cube",
    "qa_pass",
    "read_appeears_points",
]

#: QA policies accepted by every reader (see the module docstring).
QA_POLICIES = ("good_only", "good_or_check", "none")
#: MOD13Q1 valid NDVI range [1] (int16 −2000..10000 × 0.0001).
NDVI_VALID_RANGE = (-0.2, 1.0)
#: ``AYYYYDDD`` (acquisition year and day of year) in MODIS file names,
#: e.g. ``MOD13Q1.A2011017.250m_16_days_NDVI.tif``.
MOD13_DATE_PATTERN = r"(?:^|[._])A(?P<year>\d{4})(?P<doy>\d{3})(?=[._])"

_MOD13_SCALE = 1e-4  # int16 counts → NDVI
_QA_FILL = 65535
_USEFULNESS_MAX = 0b1100  # 1101 / 1110 / 1111 are "not useful", "L1B faulty", "not processed"
_QA_FLAG_BITS = (1 << 8) | (1 << 10) | (1 << 14) | (1 << 15)  # adjacent cloud, mixed clouds, snow/ice, shadow
_NDVI_FILE = re.compile(r"NDVI(\.tiff?)$", re.IGNORECASE)
_QA_FILE = re.compile(r"VI_Quality\.tiff?$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# QA bits
# ---------------------------------------------------------------------------------------


def _check_policy(qa: str) -> None:
    if qa not in QA_POLICIES:
        raise ConfigError(f"qa must be one of {', '.join(QA_POLICIES)}; got {qa!r}")


def qa_pass(bits: Any, policy: str) -> np.ndarray:
    """Which pixels a QA policy keeps, from MOD13Q1 ``VI_Quality`` bit fields.

    Parameters
    ----------
    bits
        ``VI_Quality`` values [16-bit field], integer or float (NaN — e.g. a masked fill —
        is treated as the fill 65535 and rejected).
    policy
        ``"good_only"``, ``"good_or_check"`` or ``"none"`` (see the module docstring).

    Returns
    -------
    numpy.ndarray
        bool, same shape: True where the pixel is kept.

    Examples
    --------
    >>> qa_pass([0b00, 0b01, 0b10, 0b01 | (1 << 14), 65535], "good_or_check").tolist()
    [True, True, False, False, False]
    >>> qa_pass([0b00, 0b01], "good_only").tolist()
    [True, False]
    """
    _check_policy(policy)
    b = np.asarray(bits)
    if policy == "none":
        return np.ones(b.shape, dtype=bool)
    if b.dtype.kind == "f":
        b = np.where(np.isfinite(b), b, _QA_FILL)
    b = b.astype(np.uint32)
    modland = b & 0b11
    usefulness = (b >> 2) & 0b1111
    ok = (usefulness <= _USEFULNESS_MAX) & ((b & _QA_FLAG_BITS) == 0)
    return ok & ((modland == 0) if policy == "good_only" else (modland <= 1))


def _scale_ndvi(x: np.ndarray, scale: float) -> np.ndarray:
    """Raw values → NDVI [1], NaN outside [−0.2, 1]; exact for the MOD13 ÷ 10 000."""
    x = np.asarray(x)
    inverse = 1.0 / scale if scale != 0 else 0.0
    if scale != 1.0 and inverse == round(inverse):  # divide: correctly rounded −0.2 and 1.0
        v = x / x.dtype.type(round(inverse))
    else:
        v = x * x.dtype.type(scale)
    lo, hi = NDVI_VALID_RANGE
    tol = 1e-6
    with np.errstate(invalid="ignore"):
        keep = (v >= lo - tol) & (v <= hi + tol)
    return np.where(keep, np.clip(v, lo, hi), np.nan).astype(x.dtype)


def _mask_ndvi(ndvi: np.ndarray, qa: np.ndarray | None, policy: str, scale: float) -> np.ndarray:
    out = _scale_ndvi(ndvi, scale)
    if qa is not None and policy != "none":
        out = np.where(qa_pass(qa, policy), out, np.nan).astype(out.dtype)
    return out


# ---------------------------------------------------------------------------------------
# Gridded readers
# ---------------------------------------------------------------------------------------


def open_ndvi(
    path: str | PathLike[str],
    *,
    qa: str = "good_only",
    cropland_mask: str | PathLike[str] | xr.DataArray | None = None,
    variable: str = "NDVI",
    qa_variable: str = "VI_Quality",
    scale: float | None = None,
    chunks: int | dict[str, int] | None = None,
) -> xr.DataArray:
    """Open NDVI from whichever source ``path`` is (the run config's ``inputs.ndvi``).

    NetCDF files and Zarr stores go to :func:`open_ndvi_cube` (``variable``,
    ``qa_variable``, ``scale``); GeoTIFFs — a folder, a glob or one ``*_NDVI.tif`` — to
    :func:`open_mod13q1` (where ``variable``, ``qa_variable`` and ``scale`` must keep
    their defaults: the file names and the MOD13Q1 scaling define them).
    """
    text = os.fspath(path)
    p = Path(text)
    is_cube = not _glob.has_magic(text) and (
        p.suffix.lower() in _NETCDF_SUFFIXES or (p.is_dir() and _is_zarr(p)))
    if is_cube:
        return open_ndvi_cube(p, variable=variable, qa_variable=qa_variable, qa=qa, scale=scale,
                              cropland_mask=cropland_mask, chunks=chunks)
    odd = [k for k, v, d in (("variable", variable, "NDVI"), ("qa_variable", qa_variable, "VI_Quality"),
                             ("scale", scale, None)) if v != d]
    if odd:
        raise ConfigError(f"{', '.join(odd)} only apply to NetCDF/Zarr NDVI cubes, not to MOD13Q1 "
                          f"GeoTIFFs ({text})")
    return open_mod13q1(path, qa=qa, cropland_mask=cropland_mask, chunks=chunks)


def open_mod13q1(
    path: str | PathLike[str],
    *,
    qa: str = "good_only",
    cropland_mask: str | PathLike[str] | xr.DataArray | None = None,
    chunks: int | dict[str, int] | None = None,
) -> xr.DataArray:
    """Open MOD13Q1 NDVI GeoTIFFs lazily, QA-masked, as ``(time, y, x)`` NDVI [1].

    Parameters
    ----------
    path
        A folder, a glob (``data/mod13q1/*.tif`` or ``data/mod13q1/*_NDVI.tif``) or one
        ``*_NDVI.tif``. NDVI files end in ``NDVI.tif``; each pairs with the
        ``VI_Quality.tif`` of the same name stem in the same folder (found on disk even
        when the glob only matches NDVI files). Other GeoTIFFs (EVI, pixel reliability,
        ...) are ignored. The composite date is the ``AYYYYDDD`` in the file name.
    qa
        ``"good_only"`` (default), ``"good_or_check"`` or ``"none"`` (module docstring).
    cropland_mask
        Optional raster (path, or a DataArray with a CRS); nonzero = crop. Non-crop and
        mask-nodata pixels become NaN. On the NDVI grid it stays lazy; on another grid or
        CRS it is reprojected to the NDVI grid (nearest neighbour, read eagerly: one 2-D
        layer).
    chunks
        Dask chunks as in :func:`panen.datasets.gridded.open_grid`.

    Returns
    -------
    xarray.DataArray
        ``ndvi``: dask-backed float32 ``(time, y, x)`` NDVI [1] in [−0.2, 1], CRS from the
        files; ``attrs``: ``units="1"``, ``qa_policy``, ``source``.

    Raises
    ------
    InputError
        No NDVI GeoTIFF; an NDVI file without its ``VI_Quality`` partner (each one
        named; not raised for ``qa="none"``); a name without ``AYYYYDDD``; grids that
        differ between files or between an NDVI file and its QA partner; duplicate dates.
    ConfigError
        Unknown ``qa``.
    """
    _check_policy(qa)
    text = os.fspath(path)
    files = _list_tifs(text)
    ndvi_files = [f for f in files if _NDVI_FILE.search(f.name)]
    if not ndvi_files:
        raise InputError("no MOD13Q1 NDVI GeoTIFF (*_NDVI.tif) found", file=text)
    qa_files: list[Path] = []
    if qa != "none":
        problems = []
        for f in ndvi_files:
            partner = f.with_name(_NDVI_FILE.sub(lambda m: "VI_Quality" + m.group(1), f.name))
            if not partner.is_file():
                problems.append(Problem(f"NDVI file has no VI_Quality partner (expected {partner.name}); "
                                        "use qa: none to read NDVI without QA", file=f))
            qa_files.append(partner)
        if problems:
            raise InputError(problems)

    ndvi = _to_grid(_open_tif_stack(ndvi_files, "NDVI", MOD13_DATE_PATTERN, source=text))
    meta = _tif_meta(ndvi_files[0])
    scale = _MOD13_SCALE if np.dtype(meta.get("dtype", "int16")).kind in "iu" else 1.0
    quality = None
    if qa != "none":
        quality = _to_grid(_open_tif_stack(qa_files, "VI_Quality", MOD13_DATE_PATTERN, source=text))
        _same_grid(quality, ndvi, f"{qa_files[0].parent}/*VI_Quality.tif")
    return _finish(ndvi, quality, qa, scale, cropland_mask, chunks, text)


def open_ndvi_cube(
    path: str | PathLike[str],
    *,
    variable: str = "NDVI",
    qa_variable: str = "VI_Quality",
    qa: str = "good_only",
    scale: float | None = None,
    cropland_mask: str | PathLike[str] | xr.DataArray | None = None,
    chunks: int | dict[str, int] | None = None,
) -> xr.DataArray:
    """Open an NDVI cube (NetCDF or Zarr) lazily, QA-masked, as ``(time, y, x)`` NDVI [1].

    Parameters
    ----------
    path
        A NetCDF file or a Zarr store holding ``variable`` and (unless ``qa="none"``)
        ``qa_variable`` on the same ``(time, y, x)`` grid. The CRS comes from the
        ``grid_mapping``, a ``crs`` attribute (global or on the variable), or lat/lon
        coordinates (EPSG:4326).
    variable, qa_variable
        NDVI and MOD13 ``VI_Quality`` variable names.
    qa
        ``"good_only"`` (default), ``"good_or_check"`` or ``"none"`` (module docstring).
    scale
        Multiplier from stored values to NDVI. Default: 0.0001 when the variable is still
        integer-typed after CF decoding (MOD13Q1 counts; fill −3000 drops out as out of
        range), 1 when it is floating point (CF ``scale_factor`` already applied).
    cropland_mask, chunks
        As in :func:`open_mod13q1`.

    Returns
    -------
    xarray.DataArray
        As :func:`open_mod13q1`.

    Raises
    ------
    InputError
        Unreadable file; a missing variable (the available ones listed); QA on another
        grid; no CRS. ``path`` being a GeoTIFF (use :func:`open_mod13q1`).
    ConfigError
        Unknown ``qa``; ``scale`` not a positive number.
    """
    _check_policy(qa)
    p = Path(os.fspath(path))
    if p.suffix.lower() in _TIF_SUFFIXES or _glob.has_magic(str(p)) or (p.is_dir() and not _is_zarr(p)):
        raise InputError("an NDVI cube is a NetCDF file or a Zarr store; read MOD13Q1 GeoTIFFs "
                         "with open_mod13q1", file=p)
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive number; got {scale!r}")
    raw = _open_raw(p, variable, None)
    stored_integer = raw.da.dtype.kind in "iu"
    ndvi = _to_grid(raw)
    quality = None
    if qa != "none":
        quality = _to_grid(_open_raw(p, qa_variable, None))
        _same_grid(quality, ndvi, str(p), column=qa_variable)
    if scale is None:
        scale = _MOD13_SCALE if stored_integer else 1.0
    return _finish(ndvi, quality, qa, float(scale), cropland_mask, chunks, str(p))


def _list_tifs(text: str) -> list[Path]:
    if _glob.has_magic(text):
        files = sorted(Path(f) for f in _glob.glob(text) if Path(f).is_file())
        if not files:
            raise InputError("no files match this pattern", file=text)
        return [f for f in files if f.suffix.lower() in _TIF_SUFFIXES]
    p = Path(text)
    if not p.exists():
        raise InputError("NDVI path not found", file=p)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _TIF_SUFFIXES)
    if p.suffix.lower() not in _TIF_SUFFIXES:
        raise InputError(f"not a GeoTIFF ({p.suffix or 'no suffix'}); expected *_NDVI.tif files", file=p)
    return [p]


def _same_grid(other: xr.DataArray, ref: xr.DataArray, source: str, column: str | None = None) -> None:
    odd = []
    for d in ("y", "x"):
        a, b = other[d].values, ref[d].values
        step = abs(float(b[1] - b[0])) if b.size > 1 else 1.0
        if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-4 * step):
            odd.append(f"{d} coordinates differ")
    if other.rio.crs != ref.rio.crs:
        odd.append(f"CRS {other.rio.crs} vs {ref.rio.crs}")
    if not np.array_equal(other["time"].values, ref["time"].values):
        odd.append("composite dates differ")
    if odd:
        raise InputError(f"VI_Quality is not on the NDVI grid: {'; '.join(odd)}", file=source, column=column)


def _finish(ndvi: xr.DataArray, quality: xr.DataArray | None, qa: str, scale: float,
            cropland_mask: Any, chunks: Any, source: str) -> xr.DataArray:
    """Chunk NDVI and QA alike, scale, mask by QA and cropland, set attrs."""
    ndvi = _chunk(ndvi, chunks)
    args = [ndvi]
    if quality is not None:
        quality = _chunk(quality, chunks).chunk(ndvi.chunksizes)
        args.append(quality.assign_coords(y=ndvi["y"], x=ndvi["x"]))

    def kernel(x, q=None):
        return _mask_ndvi(x, q, qa, scale)

    out = xr.apply_ufunc(kernel, *args, dask="parallelized", output_dtypes=[ndvi.dtype], keep_attrs=False)
    if cropland_mask is not None:
        crop = _cropland(cropland_mask, ndvi)
        out = out.where(crop)
    out = out.rio.write_crs(ndvi.rio.crs)
    out.name = "ndvi"
    out.attrs = {"units": "1", "long_name": "NDVI (MOD13Q1, QA-masked)", "qa_policy": qa,
                 "valid_range": list(NDVI_VALID_RANGE), "source": source}
    if cropland_mask is not None:
        out.attrs["cropland_mask"] = str(cropland_mask) if not isinstance(cropland_mask, xr.DataArray) else "array"
    return out


def _cropland(mask: Any, like: xr.DataArray) -> xr.DataArray:
    """Boolean (y, x) crop mask on ``like``'s grid: nonzero and not nodata."""
    import rioxarray
    from rasterio.enums import Resampling

    source = "cropland_mask"
    if isinstance(mask, xr.DataArray):
        m = mask
    else:
        source = os.fspath(mask)
        if not Path(source).exists():
            raise InputError("cropland mask file not found", file=source)
        try:
            m = rioxarray.open_rasterio(source, masked=True, chunks={"band": 1, "y": -1, "x": -1})
        except Exception as exc:  # rasterio raises assorted errors on unreadable files
            raise InputError(f"cannot read cropland mask: {exc}", file=source) from exc
    for d in list(m.dims):
        if d not in ("y", "x") and m.sizes[d] == 1:
            m = m.isel({d: 0}, drop=True)
    if set(m.dims) != {"y", "x"}:
        raise InputError(f"cropland mask must be one 2-D band on (y, x); got dims {tuple(m.dims)}", file=source)
    if m.rio.crs is None:
        raise InputError("cropland mask has no CRS", file=source)
    m = m.transpose("y", "x")
    same = (m.rio.crs == like.rio.crs and m.shape == (like.sizes["y"], like.sizes["x"]))
    if same:
        step = abs(float(like["x"][1] - like["x"][0]))
        same = all(np.allclose(m[d].values, like[d].values, rtol=0, atol=1e-4 * step) for d in ("y", "x"))
    if same:
        m = m.assign_coords(y=like["y"], x=like["x"])
    else:
        if m.dtype.kind != "f":
            m = m.astype("float32")
        m = m.rio.write_nodata(np.nan, encoded=False) if m.rio.nodata is None else m
        template = xr.DataArray(np.zeros((like.sizes["y"], like.sizes["x"]), np.uint8), dims=("y", "x"),
                                coords={"y": like["y"], "x": like["x"]}).rio.write_crs(like.rio.crs)
        try:
            m = m.compute().rio.reproject_match(template, resampling=Resampling.nearest)
        except Exception as exc:  # noqa: BLE001 - rioxarray/rasterio reprojection errors
            raise InputError(f"cannot reproject the cropland mask to the NDVI grid: {exc}", file=source) from exc
        m = m.assign_coords(y=like["y"], x=like["x"])
        nodata = m.rio.nodata
        if nodata is not None and not np.isnan(nodata):
            m = m.where(m != nodata)
    crop = (m != 0) & m.notnull()
    return crop.drop_vars([c for c in crop.coords if c not in ("y", "x")])


# ---------------------------------------------------------------------------------------
# AppEEARS point exports
# ---------------------------------------------------------------------------------------


def read_appeears_points(path: str | PathLike[str], *, qa: str = "good_only", id_column: str = "ID") -> xr.Dataset:
    """Read an AppEEARS MOD13Q1 point-sample CSV as per-point NDVI series.

    Each point is treated as its own zone: the result has exactly the shape of the
    engine's zonal district series (:func:`panen.engine.maths.zonal.zonal_mean`), so points
    feed the NDVI trigger directly, with ``district`` = the point ``ID``. A point's
    "zone" is one 250 m pixel, so its valid fraction is 1 (the composite passed QA and
    holds a valid NDVI) or 0 (it did not; ``mean`` is NaN there, never 0).

    Parameters
    ----------
    path
        CSV as exported by AppEEARS (``ID, Latitude, Longitude, Date, ...``), with one
        ``..._NDVI`` column (already scaled, fill −3000) and its ``..._VI_Quality``
        column (the 16-bit field as a number; the decoded bit columns are not needed).
    qa
        ``"good_only"`` (default), ``"good_or_check"`` or ``"none"`` — the same policy as
        the gridded readers, evaluated on the ``VI_Quality`` number.
    id_column
        Column naming the point.

    Returns
    -------
    xarray.Dataset
        ``mean`` NDVI [1] and ``valid_fraction`` [1] (1.0 or 0.0), float64 on
        ``(time, district)``; ``time`` is every date in the file (a point without a row
        on a date is missing there); coords ``latitude``/``longitude`` on ``district``
        when present.

    Raises
    ------
    InputError
        Missing file or columns; unparseable dates, NDVI or QA values (file, row, column);
        an empty ID; duplicate ``(ID, Date)`` rows; a point ID at two locations.
    """
    _check_policy(qa)
    p = Path(os.fspath(path))
    if not p.is_file():
        raise InputError("AppEEARS CSV not found", file=p)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas' parser errors
        raise InputError(f"cannot read CSV: {exc}", file=p) from exc

    def find(suffix: str) -> str | None:
        hits = [c for c in df.columns if c.endswith(suffix)]
        if len(hits) > 1:
            raise InputError(f"several columns end in {suffix!r}: {', '.join(hits)}; keep one product", file=p)
        return hits[0] if hits else None

    ndvi_col = find("_NDVI") or ("NDVI" if "NDVI" in df.columns else None)
    qa_col = find("_VI_Quality") or ("VI_Quality" if "VI_Quality" in df.columns else None)
    missing = [name for name, col in ((id_column, id_column if id_column in df.columns else None),
                                      ("Date", "Date" if "Date" in df.columns else None),
                                      ("*_NDVI", ndvi_col))
               if col is None]
    if qa != "none" and qa_col is None:
        missing.append("*_VI_Quality")
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; columns are: {', '.join(df.columns)}", file=p)

    problems: list[Problem] = []

    def bad(mask: np.ndarray, column: str, what: str) -> None:
        for i in np.flatnonzero(mask)[:20]:
            problems.append(Problem(f"{what} (got {df[column].iloc[i]!r})", file=p, row=int(i) + 1, column=column))

    ids = df[id_column].str.strip()
    bad((ids == "").to_numpy(), id_column, "empty point ID")
    dates = pd.to_datetime(df["Date"].str.strip(), format="%Y-%m-%d", errors="coerce")
    bad(dates.isna().to_numpy(), "Date", "date is not YYYY-MM-DD")
    text = df[ndvi_col].str.strip()
    ndvi = pd.to_numeric(text, errors="coerce")
    bad((ndvi.isna() & (text != "")).to_numpy(), ndvi_col, "NDVI is not a number")
    bits = None
    if qa != "none":
        qtext = df[qa_col].str.strip()
        bits = pd.to_numeric(qtext, errors="coerce")
        nonint = bits.notna() & ((bits % 1 != 0) | (bits < 0) | (bits > _QA_FILL))
        bad(((bits.isna() & (qtext != "")) | nonint).to_numpy(), qa_col, "VI_Quality is not a 16-bit integer")
    if problems:
        raise InputError(problems)
    dup = pd.DataFrame({"id": ids, "date": dates}).duplicated(keep="first").to_numpy()
    for i in np.flatnonzero(dup)[:20]:
        problems.append(Problem(f"duplicate row for point {ids.iloc[i]!r} on {dates.iloc[i]:%Y-%m-%d}",
                                file=p, row=int(i) + 1, column="Date"))
    coords: dict[str, Any] = {}
    order = pd.unique(ids)
    for name, col in (("latitude", "Latitude"), ("longitude", "Longitude")):
        if col in df.columns:
            val = pd.to_numeric(df[col], errors="coerce")
            per = val.groupby(ids, sort=False).agg(["min", "max"]).reindex(order)
            moved = per.index[(per["max"] - per["min"]).abs() > 1e-9]
            for pid in moved[:20]:
                problems.append(Problem(f"point {pid!r} has several {col} values; one ID must be one point",
                                        file=p, column=col))
            coords[name] = ("district", per["min"].to_numpy(dtype=float))
    if problems:
        raise InputError(problems)

    values = _scale_ndvi(ndvi.to_numpy(dtype=float), 1.0)
    if bits is not None:
        values = np.where(qa_pass(bits.to_numpy(dtype=float), qa), values, np.nan)
    frame = pd.DataFrame({"district": ids.to_numpy(), "time": dates.to_numpy(), "mean": values})
    table = frame.pivot(index="time", columns="district", values="mean").sort_index()
    table = table.reindex(columns=order)
    mean = table.to_numpy(dtype=np.float64)
    times = pd.DatetimeIndex(table.index).as_unit("ns")
    ds = xr.Dataset(
        {
            "mean": (("time", "district"), mean,
                     {"units": "1", "long_name": "NDVI at the point (QA-masked)",
                      "cell_methods": "area: point (one MOD13Q1 pixel)"}),
            "valid_fraction": (("time", "district"), np.isfinite(mean).astype(np.float64),
                               {"units": "1", "long_name": "1 where the point's composite passed QA"}),
        },
        coords={"time": times, "district": np.asarray(order, dtype=str), **coords},
        attrs={"source": str(p), "qa_policy": qa, "zones": "each point is its own zone (district = point ID)"},
    )
    return ds
