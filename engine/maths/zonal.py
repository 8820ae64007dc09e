"""Exact area-weighted zonal aggregation of gridded data per district.

Two steps, kept apart so the expensive geometry runs once per grid and district set:

1. :func:`build_weights` intersects every district polygon with the grid cells and stores
   a sparse district × cell matrix (CSR) of weights ``w = coverage × cell_area``, where
   ``coverage`` is the exact fraction of the cell covered by the polygon
   (``area(polygon ∩ cell) / area(cell)``, computed with shapely 2 / GEOS) and
   ``cell_area`` is the true area of the cell [m²] (exact ellipsoidal area of the
   latitude–longitude quadrangle on geographic grids).
2. :func:`zonal_mean` applies the matrix to a ``(time, y, x)`` cube with a fused,
   NaN-aware sparse kernel (numba, GIL released; entries walked in cell order, 8 time
   steps per pass) per dask block, lazily.

Missing cells (NaN) are skipped, never read as zero: the mean is taken over the valid
cells only, and ``valid_fraction`` reports the share of the district's weight that was
valid at each step, so callers can refuse to pay on too little data.

Conventions
-----------
* The polygons' straight edges are taken as straight in the grid CRS (vertices are
  reprojected, edges are not densified). For administrative boundaries, whose vertices are
  tens of metres apart, the difference is far below the cell size.
* Within a cell, coverage is the planar fraction in grid coordinates. The area scale of a
  geographic grid changes across one 0.05° cell by tan(φ)·Δφ: 0.02 % at 11° S, 0.15 % at
  60°, and only partly covered cells are affected.
* Geographic cell areas are the exact quadrangle areas on the CRS's ellipsoid, not the
  cos(latitude) approximation. The two differ by a near-constant factor (0.7 % at the
  equator with R = a), so relative weights, and hence means, differ by < 0.05 % of a
  weight across Indonesia; ``valid_fraction`` and ``total_weight`` [m²] are exact.
* Longitudes are not wrapped: polygons and a geographic grid must use the same range
  (−180..180 or 0..360).
"""

from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from dask.base import is_dask_collection
from numba import njit

from panen.engine.errors import InputError

__all__ = ["ZonalWeights", "build_weights", "zonal_mean", "cell_areas"]

_Y_NAMES = ("y", "lat", "latitude")
_X_NAMES = ("x", "lon", "longitude")
# Relative tolerance (of the cell size) for "regular" coordinates and for two grids being
# the same grid: float32-stored coordinates of a 0.05° grid at longitude 140 carry ~1e-5 of
# the step in rounding, so 1e-4 accepts them and still refuses any real shift.
_COORD_RTOL = 1e-4
# Time steps per block for numpy input (the issue author measured 16-day blocks best).
_EAGER_TIME_BLOCK = 16


# ---------------------------------------------------------------------------------------
# Grid description
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    y_dim: str
    x_dim: str
    y: np.ndarray  # cell centres [CRS units], as stored (ascending or descending)
    x: np.ndarray
    crs: Any  # pyproj.CRS

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y.size, self.x.size)


def _spatial_dims(obj: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    dims = list(obj.dims)
    y_dim = next((d for d in _Y_NAMES if d in dims), None)
    x_dim = next((d for d in _X_NAMES if d in dims), None)
    if y_dim is None or x_dim is None:
        raise InputError(
            f"grid has dims {tuple(dims)}; expected a y dim named one of {_Y_NAMES} and an "
            f"x dim named one of {_X_NAMES}"
        )
    return y_dim, x_dim


def _regular_coord(obj: xr.DataArray | xr.Dataset, dim: str) -> np.ndarray:
    if dim not in obj.coords:
        raise InputError(f"grid dim {dim!r} has no coordinate (cell centres are needed)")
    c = np.asarray(obj.coords[dim].values, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise InputError(f"grid coordinate {dim!r} must be 1-D and non-empty")
    if not np.all(np.isfinite(c)):
        raise InputError(f"grid coordinate {dim!r} has non-finite values")
    if c.size == 1:
        raise InputError(
            f"grid coordinate {dim!r} has a single value; the cell size cannot be inferred"
        )
    step = (c[-1] - c[0]) / (c.size - 1)
    off_grid = np.max(np.abs(c - (c[0] + step * np.arange(c.size))))
    if step == 0 or off_grid > _COORD_RTOL * abs(step):
        raise InputError(f"grid coordinate {dim!r} is not regularly spaced")
    return c


def _crs_of(obj: xr.DataArray | xr.Dataset) -> Any:
    """The grid CRS as a pyproj CRS, from rioxarray, then ``attrs['crs']``; None if absent."""
    import pyproj

    crs = None
    try:
        crs = obj.rio.crs
    except Exception:  # noqa: BLE001 - rioxarray raises assorted errors on odd inputs
        crs = None
    if crs is None:
        crs = obj.attrs.get("crs")
    if crs is None and isinstance(obj, xr.Dataset):
        crs = next((v.attrs["crs"] for v in obj.data_vars.values() if "crs" in v.attrs), None)
    if crs is None:
        return None
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise InputError(f"grid CRS {crs!r} is not understood: {exc}") from exc


def _grid_of(obj: xr.DataArray | xr.Dataset, *, need_crs: bool) -> _Grid:
    y_dim, x_dim = _spatial_dims(obj)
    crs = _crs_of(obj)
    if crs is None and need_crs:
        raise InputError(
            "the grid has no CRS: set one with rioxarray (`data.rio.write_crs('EPSG:4326')`) "
            "or attrs['crs']"
        )
    return _Grid(y_dim, x_dim, _regular_coord(obj, y_dim), _regular_coord(obj, x_dim), crs)


def _edges(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper cell edges [CRS units] for regular cell centres ``c``."""
    step = (c[-1] - c[0]) / (c.size - 1)
    start = c[0] + step * np.arange(c.size)
    half = abs(step) / 2.0
    return start - half, start + half


def cell_areas(y: np.ndarray, x: np.ndarray, crs: Any) -> np.ndarray:
    """Area of the cells of each grid row.

    Parameters
    ----------
    y, x
        Regular cell-centre coordinates [CRS units: degrees or metres].
    crs
        Anything :func:`pyproj.CRS.from_user_input` accepts.

    Returns
    -------
    numpy.ndarray
        ``(ny,)`` area of one cell in each row [m²]. Geographic grids: exact area of the
        latitude–longitude quadrangle on the CRS's ellipsoid,
        ``b² Δλ / 2 · [f(φ₂) − f(φ₁)]`` with
        ``f(φ) = sin φ / (1 − e² sin² φ) + artanh(e sin φ) / e`` (Snyder 1987, eq. 3-12's
        authalic form). Projected grids: the planar ``|dx · dy|`` in the axis unit converted
        to metres (the true area on an equal-area projection; on a conformal one such as
        Web Mercator it is the projected, not the ground, area).

    Examples
    --------
    >>> a = cell_areas(np.arange(-89.5, 90), np.arange(-179.5, 180), "EPSG:4326")
    >>> round(a.sum() * 360 / 1e6)  # the WGS 84 ellipsoid's surface [km²]
    510065622
    """
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    dx = abs((x[-1] - x[0]) / (x.size - 1))
    dy = abs((y[-1] - y[0]) / (y.size - 1))
    if crs.is_geographic:
        to_rad = crs.axis_info[0].unit_conversion_factor  # radians per axis unit
        ell = crs.ellipsoid
        a = ell.semi_major_metre
        inv_f = ell.inverse_flattening
        e2 = 0.0 if not inv_f or not np.isfinite(inv_f) else (2.0 - 1.0 / inv_f) / inv_f
        lo, hi = _edges(y)
        phi1 = np.clip(lo * to_rad, -np.pi / 2, np.pi / 2)
        phi2 = np.clip(hi * to_rad, -np.pi / 2, np.pi / 2)
        dlam = dx * to_rad
        if e2 == 0.0:
            return a * a * dlam * (np.sin(phi2) - np.sin(phi1))
        e = np.sqrt(e2)
        b2 = a * a * (1.0 - e2)

        def f(phi: np.ndarray) -> np.ndarray:
            s = np.sin(phi)
            return s / (1.0 - e2 * s * s) + np.arctanh(e * s) / e

        return b2 * dlam / 2.0 * (f(phi2) - f(phi1))
    fx = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    fy = crs.axis_info[1].unit_conversion_factor if len(crs.axis_info) > 1 else fx
    return np.full(y.size, dx * fx * dy * fy)


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _crs_from_wkt(wkt: str) -> Any:
    import pyproj

    return pyproj.CRS.from_wkt(wkt)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True, order="C")  # never freeze the caller's array
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ZonalWeights:
    """Sparse district × cell weights for one grid and one district set (CSR layout).

    Attributes
    ----------
    district_ids
        ``(n_districts,)`` district ids as strings, in the order of the input rows.
    indptr
        ``(n_districts + 1,)`` int64 CSR row pointer: district ``d`` owns entries
        ``indptr[d]:indptr[d + 1]``.
    indices
        int64 flat cell index ``iy * nx + ix`` into the ``(y, x)`` grid as stored,
        ascending within each district.
    weights
        float64 ``coverage × cell_area`` [m²]: the area of the district inside the cell.
    coverage
        float64 fraction of the cell covered by the district, in ``(0, 1]``.
    grid_shape
        ``(ny, nx)``.
    y, x
        The grid's cell-centre coordinates [CRS units], kept to refuse a different grid.
    crs_wkt
        The grid CRS as WKT.
    cell_area
        ``(ny,)`` area of one full cell in each row [m²].
    fingerprint
        SHA-1 of ids, CSR arrays, coordinates and CRS (derived; names dask tasks).
    total_weight
        ``(n_districts,)`` Σ weights: the district's area inside the grid [m²] (derived).
    cell_count
        ``(n_districts,)`` Σ coverage: the district's size in whole cells [cells]
        (derived).
    """

    district_ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    coverage: np.ndarray
    grid_shape: tuple[int, int]
    y: np.ndarray
    x: np.ndarray
    crs_wkt: str
    cell_area: np.ndarray
    fingerprint: str = field(init=False)
    total_weight: np.ndarray = field(init=False)
    cell_count: np.ndarray = field(init=False)
    _entries: dict = field(init=False, repr=False)  # chunks -> _BlockEntries (derived)

    def __post_init__(self) -> None:
        n = self.district_ids.shape[0]
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0:
            raise ValueError("indptr must have n_districts + 1 entries starting at 0")
        nnz = int(self.indptr[-1])
        for name in ("indices", "weights", "coverage"):
            if getattr(self, name).shape != (nnz,):
                raise ValueError(f"{name} must have indptr[-1] = {nnz} entries")
        if tuple(self.grid_shape) != (self.y.size, self.x.size):
            raise ValueError("grid_shape does not match the y/x coordinates")
        h = hashlib.sha1()
        for name in ("district_ids", "indptr", "indices", "weights", "y", "x"):
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        h.update(self.crs_wkt.encode())
        object.__setattr__(self, "fingerprint", h.hexdigest())
        # per-district sums (zero for a district without cells)
        owner = np.repeat(np.arange(n), np.diff(self.indptr))
        for name, src in (("total_weight", self.weights), ("cell_count", self.coverage)):
            object.__setattr__(self, name, np.bincount(owner, weights=src, minlength=n)
                               .astype(np.float64))
        for name in ("district_ids", "indptr", "indices", "weights", "coverage", "y", "x",
                     "cell_area", "total_weight", "cell_count"):
            object.__setattr__(self, name, _readonly(getattr(self, name)))
        object.__setattr__(self, "_entries", {})

    def __repr__(self) -> str:
        return (f"ZonalWeights({self.n_districts} districts, {self.indices.size} "
                f"district-cell pairs, grid {self.grid_shape}, {self.fingerprint[:8]})")

    @property
    def n_districts(self) -> int:
        return int(self.district_ids.shape[0])

    @property
    def crs(self) -> Any:
        """The grid CRS as a :class:`pyproj.CRS`."""
        return _crs_from_wkt(self.crs_wkt)

    def same_grid(self, grid: xr.DataArray | xr.Dataset) -> bool:
        """Whether ``grid`` has this weights' shape and cell centres (CRS not checked)."""
        try:
            g = _grid_of(grid, need_crs=False)
        except InputError:
            return False
        return self._coords_match(g)

    def _coords_match(self, g: _Grid) -> bool:
        if g.shape != tuple(self.grid_shape):
            return False
        for mine, theirs in ((self.y, g.y), (self.x, g.x)):
            step = abs(mine[-1] - mine[0]) / (mine.size - 1)
            if np.max(np.abs(mine - theirs)) > _COORD_RTOL * step:
                return False
        return True

    def check_grid(self, data: xr.DataArray | xr.Dataset) -> None:
        """Raise :class:`InputError` unless ``data`` is on this weights' grid.

        Shape and cell centres must match; the CRS too when ``data`` carries one.
        """
        self._checked_grid(data)

    def _checked_grid(self, data: xr.DataArray | xr.Dataset) -> _Grid:
        g = _grid_of(data, need_crs=False)
        if g.shape != tuple(self.grid_shape):
            raise InputError(
                f"data grid {g.shape} (y, x) does not match the weights' grid "
                f"{tuple(self.grid_shape)}; rebuild the weights for this grid"
            )
        if not self._coords_match(g):
            raise InputError(
                "data grid coordinates differ from the weights' grid (shifted, flipped or "
                "different cells); rebuild the weights for this grid"
            )
        if g.crs is not None and not g.crs.equals(self.crs, ignore_axis_order=True):
            raise InputError(
                f"data CRS {g.crs.to_string()} differs from the weights' CRS "
                f"{self.crs.to_string()}; rebuild the weights for this grid"
            )
        return g


def _window(edges: np.ndarray, vmin: float, vmax: float) -> tuple[int, int]:
    """Half-open range of cells (ascending ``edges``) overlapping ``[vmin, vmax]``."""
    n = edges.size - 1
    i0 = max(int(np.searchsorted(edges, vmin, side="right")) - 1, 0)
    i1 = min(int(np.searchsorted(edges, vmax, side="left")), n)
    return i0, i1


def _clip(part: Any, x0: float, y0: float, x1: float, y1: float) -> Any:
    """``part ∩ rectangle``: GEOS's rectangle clipper, or a full overlay if it fails.

    ``clip_by_rect`` is about 5× faster than ``intersection`` with a box (it needs no
    noding) and its areas agreed with ``intersection`` to 1e-12 of a cell on all 514
    Indonesian districts; it may however return a ring too short to clip again, in which
    case the robust overlay is used instead.
    """
    import shapely

    try:
        return shapely.clip_by_rect(part, x0, y0, x1, y1)
    except shapely.errors.GEOSException:
        return shapely.intersection(part, shapely.box(x0, y0, x1, y1))


def _district_coverage(geom: Any, ye: np.ndarray, xe: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact coverage fractions of one (multi)polygon on a grid with ascending edges.

    Returns canonical row and column indices (into ``ye``/``xe`` order) and the coverage
    fraction of each covered cell. Cells wholly inside (prepared ``contains_properly``)
    get 1 without any overlay; each boundary cell gets ``area(geom ∩ cell) / area(cell)``,
    clipped first to its row strip so every clip only touches that strip's vertices. On
    the 514 Indonesian districts at 0.05° (40 k boundary cells) this takes 2.5 s where a
    vectorised ``intersection(geom, boxes)`` takes 5.4 s (a 16 k-vertex coastline costs
    1 s alone, each box paying for every vertex) and a clip-only quadtree 3.5 s.
    """
    import shapely

    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if geom is None or shapely.is_empty(geom):
        return empty
    xmin, ymin, xmax, ymax = shapely.bounds(geom)
    r0, r1 = _window(ye, ymin, ymax)
    c0, c1 = _window(xe, xmin, xmax)
    if r0 >= r1 or c0 >= c1:
        return empty
    rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    rr = rr.ravel()
    cc = cc.ravel()
    boxes = shapely.box(xe[cc], ye[rr], xe[cc + 1], ye[rr + 1])
    shapely.prepare(geom)  # geom is build_weights' private copy
    touch = shapely.intersects(geom, boxes)
    inside = touch & shapely.contains_properly(geom, boxes)
    cov = inside.astype(np.float64)
    edge = np.flatnonzero(touch & ~inside)
    if edge.size:
        er = rr[edge]
        small = shapely.get_num_coordinates(geom) < 64
        for r in np.unique(er):
            sel = edge[er == r]
            strip = geom if small else _clip(geom, xe[cc[sel].min()], ye[r],
                                             xe[cc[sel].max() + 1], ye[r + 1])
            for j in sel:
                c = cc[j]
                cell = (xe[c + 1] - xe[c]) * (ye[r + 1] - ye[r])
                cov[j] = shapely.area(_clip(strip, xe[c], ye[r], xe[c + 1], ye[r + 1])) / cell
        np.clip(cov, 0.0, 1.0, out=cov)
    keep = cov > 0.0
    return rr[keep], cc[keep], cov[keep]


def build_weights(districts: Any, grid: xr.DataArray | xr.Dataset, *,
                  id_column: str = "district_id") -> ZonalWeights:
    """Exact district × cell coverage weights for a grid.

    Parameters
    ----------
    districts
        GeoDataFrame of (multi)polygons with a CRS and an ``id_column``. Reprojected to the
        grid CRS when it differs (vertices transformed; the input is not modified).
    grid
        DataArray or Dataset with regular 1-D cell-centre coords on dims ``y``/``x`` (or
        ``lat``/``lon``, ``latitude``/``longitude``) and a CRS (rioxarray or
        ``attrs['crs']``). Only the coordinates are read, never the data.
    id_column
        Column holding the district ids (converted to strings).

    Returns
    -------
    ZonalWeights
        Weights ``coverage × cell_area`` [m²] in CSR layout, one row per district in input
        order. A district smaller than a cell gets its partial cell(s); a district wholly
        outside the grid gets no cells.

    Raises
    ------
    InputError
        Grid or districts without a CRS, missing id column, duplicate ids, non-polygonal
        geometries, irregular grid coordinates.
    """
    import geopandas
    import pyproj
    import shapely

    if not isinstance(districts, geopandas.GeoDataFrame):
        raise InputError("districts must be a GeoDataFrame")
    if id_column not in districts.columns:
        raise InputError(f"districts have no id column {id_column!r}", column=id_column)
    if districts.crs is None:
        raise InputError("districts have no CRS; set one (e.g. `gdf.set_crs('EPSG:4326')`)")
    g = _grid_of(grid, need_crs=True)
    ids = districts[id_column].astype(str).to_numpy()
    problems = []
    dup = districts[id_column].astype(str).duplicated(keep=False).to_numpy()
    if dup.any():
        problems.append(f"duplicate district ids: {sorted(set(ids[dup]))[:10]}")
    if districts[id_column].isna().any():
        problems.append("missing district ids")
    geoms = districts.geometry
    kinds = shapely.get_type_id(geoms.values)
    bad = ~np.isin(kinds, (-1, 3, 6)) & ~shapely.is_empty(geoms.values)  # Polygon, MultiPolygon
    if bad.any():
        problems.append(f"non-polygon geometries for districts {list(ids[bad][:10])}")
    if problems:
        raise InputError("; ".join(problems), column=id_column)

    if not pyproj.CRS.from_user_input(districts.crs).equals(g.crs, ignore_axis_order=True):
        geoms = geoms.to_crs(g.crs)  # new GeoSeries; the caller's frame is untouched
    # private copies: preparing a geometry attaches state to it, and the caller's objects
    # (possibly the same object on two rows) must not be touched
    geom_arr = shapely.from_wkb(shapely.to_wkb(np.asarray(geoms.values, dtype=object)))
    invalid = ~shapely.is_valid(geom_arr) & ~shapely.is_missing(geom_arr)
    if invalid.any():  # e.g. a ring that touches itself after reprojection
        geom_arr[invalid] = shapely.make_valid(geom_arr[invalid], method="structure",
                                               keep_collapsed=False)

    # canonical ascending cell edges; rows/cols map back to the stored order below
    y_flip = g.y[-1] < g.y[0]
    x_flip = g.x[-1] < g.x[0]
    ylo, yhi = _edges(g.y[::-1] if y_flip else g.y)
    xlo, xhi = _edges(g.x[::-1] if x_flip else g.x)
    ye = np.append(ylo, yhi[-1])
    xe = np.append(xlo, xhi[-1])
    ny, nx = g.shape
    area_row = cell_areas(g.y, g.x, g.crs)

    def one(geom: Any) -> tuple[np.ndarray, np.ndarray]:
        r, c, cov = _district_coverage(geom, ye, xe)
        iy = ny - 1 - r if y_flip else r
        ix = nx - 1 - c if x_flip else c
        flat = iy * nx + ix
        order = np.argsort(flat, kind="stable")
        return flat[order], cov[order]

    # One thread: the per-cell clips are short GEOS calls between Python steps, and two
    # threads measured no faster (2.9 s vs 2.9 s for Indonesia) as the GIL dominates.
    results = [one(geom) for geom in geom_arr]
    all_idx = [r[0] for r in results]
    all_cov = [r[1] for r in results]
    counts = np.array([a.size for a in all_idx], dtype=np.int64)
    indptr = np.zeros(ids.size + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(all_idx) if all_idx else np.empty(0, np.int64)
    coverage = np.concatenate(all_cov) if all_cov else np.empty(0, np.float64)
    weights = coverage * area_row[indices // nx]
    return ZonalWeights(
        district_ids=ids.astype(str),
        indptr=indptr,
        indices=indices,
        weights=weights,
        coverage=coverage,
        grid_shape=g.shape,
        y=g.y,
        x=g.x,
        crs_wkt=g.crs.to_wkt(),
        cell_area=area_row,
    )


# ---------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------


# Time steps reduced together per pass over a block's cells (see _cell_major_sums; the
# kernel takes exactly 8 rows).
_TILE = 8


@njit(nogil=True, cache=True)
def _cell_major_sums(block, cells, dist, weights, total, out):  # pragma: no cover - numba
    """Add Σ w·x over valid (non-NaN) cells to ``out[t, 0, d]`` and ``total[d] − Σ w`` over
    missing cells (the valid weight) to ``out[t, 1, d]``.

    ``block`` is ``(nt, ncell)`` C-contiguous; the entries ``(cells, dist, weights)`` are
    sorted by cell, then district; ``total[d]`` is the district's weight in this block.
    The block is read in tiles of ``_TILE`` (8) time steps: one pass over the entries walks
    the 8 rows forwards in memory (prefetch-friendly streams, where district order jumps
    between grid rows), each entry's cell index and weight are loaded once per tile, and
    its sums go to neighbouring slots of a flat ``(n_districts × 16)`` accumulator
    (L1/L2-resident). Only missing cells add to the weight sums, so a valid cell costs a
    load, a multiply and an add.

    Measured on the Indonesia cube (83 k district-cell pairs, 2 % NaN, 16-step blocks, 2
    threads, interleaved against the floor): the former district-major CSR kernel, 4-step
    tiles, valid weights summed per cell: 1.75–2.1× the floor; cell-major 8-step tiles,
    3-D ``acc[d, q, j]``: 1.76–2.0×; rows hoisted and a flat accumulator with unsigned
    offsets 1.6–2.05×; summing the missing weight instead of the valid one 1.40× (same
    run: 2.05×); the 8 rows as a tuple walked by a loop rather than 8 written-out
    statements 1.18–1.42× (same runs: 1.43–1.76×). 16-step tiles were no faster than 8; a per-tile transposed copy of the
    used cells 3.7×; integer bit-masking to force selects 1.8–1.9×. With the block hot in
    cache one thread ran only 8 % faster: the kernel is bound by instructions, not memory.

    Each district's cells are added in ascending cell order starting from zero, as in the
    district-major loop, so the sums do not depend on the tiling or the time chunking;
    the valid weight is ``total − missing`` and may differ from ``Σ valid`` in the last
    bits (:func:`_finalize` snaps it to exactly 0 or ``total``). Values are widened to
    float64 before multiplying.
    """
    nt = block.shape[0]
    nd = out.shape[2]
    n = cells.shape[0]
    acc = np.zeros(nd * 16)  # district d: sums at 16 d + j, missing weight at 16 d + 8 + j
    t0 = 0
    while t0 + _TILE <= nt:
        acc[:] = 0.0
        rows = (block[t0], block[t0 + 1], block[t0 + 2], block[t0 + 3],
                block[t0 + 4], block[t0 + 5], block[t0 + 6], block[t0 + 7])
        for k in range(n):
            i = cells[k]
            b = np.uint64(dist[k]) * np.uint64(16)
            w = weights[k]
            for j in range(_TILE):  # a constant trip count: the compiler may unroll it
                v = np.float64(rows[j][i])
                if v == v:
                    acc[b + np.uint64(j)] += w * v
                else:  # missing: never read as zero; its weight is taken off the valid total
                    acc[b + np.uint64(8 + j)] += w
        for j in range(_TILE):
            for d in range(nd):
                out[t0 + j, 0, d] += acc[d * 16 + j]
                out[t0 + j, 1, d] += total[d] - acc[d * 16 + 8 + j]
        t0 += _TILE
    m = nt - t0  # the last 1–7 steps: one more pass, with a loop for the steps
    if m > 0:
        acc[:] = 0.0
        for k in range(n):
            i = cells[k]
            b = np.uint64(dist[k]) * np.uint64(16)
            w = weights[k]
            for j in range(m):
                v = np.float64(block[t0 + j, i])
                if v == v:
                    acc[b + np.uint64(j)] += w * v
                else:
                    acc[b + np.uint64(8 + j)] += w
        for j in range(m):
            for d in range(nd):
                out[t0 + j, 0, d] += acc[d * 16 + j]
                out[t0 + j, 1, d] += total[d] - acc[d * 16 + 8 + j]


def _kernel_indices(local: np.ndarray, n_cells: int) -> np.ndarray:
    """Cell indices as unsigned integers for the kernel (uint32 when they fit)."""
    return local.astype(np.uint32 if n_cells < 2**32 else np.uint64)


# Relative tolerance of a district's total weight within which the valid weight
# (total − missing, see _cell_major_sums) is snapped to exactly 0 or the total: rounding
# of ~10⁴ terms stays below 1e-12 of the total; a real 1e-9 sliver matters to nobody.
_SNAP_RTOL = 1e-9


@njit(nogil=True, cache=True)
def _finalize_kernel(sums, total, rtol, out):  # pragma: no cover - numba
    nt, _, nd = sums.shape
    for t in range(nt):
        for d in range(nd):
            tot = total[d]
            sw = sums[t, 1, d]
            tol = rtol * tot
            if sw <= tol:
                sw = 0.0
            elif abs(sw - tot) <= tol:
                sw = tot
            out[t, 0, d] = sums[t, 0, d] / sw if sw > 0.0 else np.nan
            out[t, 1, d] = sw / tot if tot > 0.0 else 0.0


def _finalize(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``(nt, 2, nd)`` sums → ``(nt, 2, nd)`` [mean, valid_fraction].

    A district whose valid weight is within ``_SNAP_RTOL`` of zero has no valid data
    (mean NaN, fraction 0: missing is never read as zero); within ``_SNAP_RTOL`` of its
    total it is wholly valid (fraction exactly 1). One pass in numba: the numpy version of
    these four rules took 4.8 ms for a year of 514 districts, a fifth of the floor.
    """
    out = np.empty_like(sums)
    _finalize_kernel(np.ascontiguousarray(sums), np.ascontiguousarray(total, dtype=np.float64),
                     _SNAP_RTOL, out)
    return out


@dataclass(frozen=True, eq=False)
class _Entries:
    """The kernel's view of the weights for one spatial block: entries in cell order."""

    cells: np.ndarray  # uint32/uint64 flat index into the block's (y, x) cells, ascending
    dist: np.ndarray  # int32 district row of each entry (ascending within a cell)
    weights: np.ndarray  # float64 [m²]
    total: np.ndarray  # float64 (n_districts,) Σ weights of each district in this block [m²]


@dataclass(frozen=True)
class _BlockEntries:
    """The weights split by the data's spatial chunks: one entry list per (y, x) block."""

    blocks: dict  # (jy, jx) -> _Entries
    total: np.ndarray


def _cell_order(w: ZonalWeights) -> tuple[np.ndarray, np.ndarray]:
    """Permutation of the CSR entries into (cell, district) order, and each entry's district."""
    dist = np.repeat(np.arange(w.n_districts, dtype=np.int32), np.diff(w.indptr))
    order = np.lexsort((dist, w.indices))
    return order, dist


def _split_by_blocks(w: ZonalWeights, ychunks: tuple[int, ...],
                     xchunks: tuple[int, ...]) -> _BlockEntries:
    """The kernel entries for data in these spatial chunks, built once per weights."""
    key = (tuple(ychunks), tuple(xchunks))
    split = w._entries.get(key)
    if split is None:
        split = w._entries[key] = _build_split(w, *key)  # 2–3 ms for 83 k pairs
    return split


def _build_split(w: ZonalWeights, ychunks: tuple[int, ...],
                 xchunks: tuple[int, ...]) -> _BlockEntries:
    order, dist = _cell_order(w)
    nd = w.n_districts
    if len(ychunks) == len(xchunks) == 1:
        e = _Entries(_kernel_indices(w.indices[order], ychunks[0] * xchunks[0]),
                     dist[order], w.weights[order], w.total_weight)  # the same sum as _finalize's
        return _BlockEntries({(0, 0): e}, w.total_weight)
    nx = w.grid_shape[1]
    yb = np.cumsum((0,) + tuple(ychunks))
    xb = np.cumsum((0,) + tuple(xchunks))
    iy, ix = np.divmod(w.indices[order], nx)
    by = np.searchsorted(yb, iy, side="right") - 1
    bx = np.searchsorted(xb, ix, side="right") - 1
    key = by * len(xchunks) + bx
    # by block; (cell, district) order kept, and row-major global order is row-major
    # local order within a block
    border = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[border], np.arange(len(ychunks) * len(xchunks) + 1))
    blocks = {}
    for j in range(len(ychunks)):
        for i in range(len(xchunks)):
            b = j * len(xchunks) + i
            sel = border[starts[b]:starts[b + 1]]
            bw = xchunks[i]
            local = (iy[sel] - yb[j]) * bw + (ix[sel] - xb[i])
            bdist, bweights = dist[order][sel], w.weights[order][sel]
            blocks[(j, i)] = _Entries(_kernel_indices(local, ychunks[j] * bw), bdist, bweights,
                                      np.bincount(bdist, weights=bweights, minlength=nd))
    return _BlockEntries(blocks, w.total_weight)


def _block_sums(block: np.ndarray, e: _Entries) -> np.ndarray:
    """``(nt, 2, n_districts)`` partial sums [Σ w·x, Σ w] of one ``(nt, by, bx)`` block."""
    nt = block.shape[0]
    flat = np.ascontiguousarray(block).reshape(nt, -1)  # copies only strided views
    out = np.zeros((nt, 2, e.total.shape[0]), np.float64)
    _cell_major_sums(flat, e.cells, e.dist, e.weights, e.total, out)
    return out


def _block_final(block: np.ndarray, e: _Entries, total: np.ndarray) -> np.ndarray:
    """[mean, valid_fraction] of a block that holds the whole grid."""
    return _finalize(_block_sums(block, e), total)


def _combine(parts: list[np.ndarray], total: np.ndarray) -> np.ndarray:
    """Add the spatial blocks' partial sums of one time chunk and finalize."""
    sums = parts[0].copy() if len(parts) > 1 else parts[0]
    for p in parts[1:]:
        sums += p
    return _finalize(sums, total)


# ---------------------------------------------------------------------------------------
# zonal_mean
# ---------------------------------------------------------------------------------------


def zonal_mean(data: xr.DataArray, weights: ZonalWeights) -> xr.Dataset:
    """Area-weighted mean of gridded data per district, skipping missing cells.

    Parameters
    ----------
    data
        ``(time, y, x)`` (any dim order; ``y``/``x`` may be ``lat``/``lon`` or
        ``latitude``/``longitude``) or ``(y, x)`` numeric DataArray [any units] on the
        grid the weights were built for. NaN marks a missing cell.
    weights
        From :func:`build_weights` on the same grid.

    Returns
    -------
    xarray.Dataset
        ``mean`` [data's units]: ``Σ w·x / Σ w`` over valid cells, NaN when a district has
        no valid cell; ``valid_fraction`` [1]: ``Σ w(valid) / Σ w(all)``, 0 for a district
        with no cells. Both float64 with dims ``(time, district)``. Dask input gives lazy,
        dask-backed results (one task per input chunk, plus one per time chunk when the
        data is chunked in space too) and computes nothing; numpy input is computed
        eagerly with the same kernel, time blocks in parallel threads.

    Raises
    ------
    InputError
        The data's grid (shape, cell centres, or CRS when it has one) differs from the
        weights' grid, or the data is not numeric.
    """
    if not isinstance(data, xr.DataArray):
        raise InputError("data must be an xarray DataArray")
    g = weights._checked_grid(data)
    if not (np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.bool_)):
        raise InputError(f"data has non-numeric dtype {data.dtype}")
    other = [d for d in data.dims if d not in (g.y_dim, g.x_dim)]
    if len(other) > 1:
        raise InputError(f"data has more than one non-spatial dim: {other}")
    squeeze = not other
    tdim = other[0] if other else "time"
    arr = data.transpose(*other, g.y_dim, g.x_dim)
    if squeeze:
        arr = arr.expand_dims(tdim)
    values = arr.data
    district = weights.district_ids

    if is_dask_collection(values):
        mean, vf = _zonal_dask(values, weights)
    else:
        res = _zonal_numpy(np.asarray(values), weights)
        mean, vf = res[:, 0, :], res[:, 1, :]

    coords: dict[str, Any] = {"district": ("district", district)}
    for name, c in arr.coords.items():
        grid_mapping = c.dims == () and ({"spatial_ref", "crs_wkt", "grid_mapping_name"}
                                         & set(c.attrs))
        if set(c.dims) <= {tdim} and not grid_mapping:  # time, its aux and scalar coords
            coords[name] = c
    mean_attrs = {k: v for k, v in data.attrs.items()
                  if k in ("units", "long_name", "standard_name")}
    mean_attrs["cell_methods"] = "area: mean where valid (exact coverage-weighted)"
    vf_attrs = {"units": "1", "long_name": "area fraction of the district with valid data"}
    dims = (tdim, "district")
    out = xr.Dataset(
        {"mean": (dims, mean, mean_attrs),
         "valid_fraction": (dims, vf, vf_attrs)},
        coords=coords,
    )
    if squeeze:
        out = out.isel({tdim: 0})
    return out


def _zonal_numpy(values: np.ndarray, w: ZonalWeights) -> np.ndarray:
    nt, ny, nx = values.shape
    entries = _split_by_blocks(w, (ny,), (nx,)).blocks[(0, 0)]
    step = _EAGER_TIME_BLOCK
    starts = range(0, nt, step)
    sums = np.empty((nt, 2, w.n_districts), np.float64)

    def run(t0: int) -> None:
        sums[t0:t0 + step] = _block_sums(values[t0:t0 + step], entries)

    n_threads = min(len(starts), os.cpu_count() or 1)
    if n_threads <= 1:
        for t0 in starts:
            run(t0)
    else:  # the kernel releases the GIL, so time blocks run in parallel
        with ThreadPoolExecutor(n_threads) as pool:
            list(pool.map(run, starts))
    return _finalize(sums, w.total_weight)


# Largest output chunk of mean / valid_fraction [bytes] (float64 time × district).
_OUT_CHUNK_BYTES = 32 * 2**20


def _output_groups(tch: tuple[int, ...], n_districts: int) -> list[list[int]]:
    """Consecutive input time chunks grouped so each output chunk stays within the cap."""
    groups: list[list[int]] = [[]]
    size = 0
    for it, nt in enumerate(tch):
        nbytes = nt * max(n_districts, 1) * 8
        if groups[-1] and size + nbytes > _OUT_CHUNK_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(it)
        size += nbytes
    return groups


def _stack_part(parts: list[np.ndarray], q: int) -> np.ndarray:
    """``[mean, valid_fraction][q]`` of consecutive ``(nt, 2, nd)`` results, along time."""
    if len(parts) == 1:
        return parts[0][:, q, :]
    return np.concatenate([p[:, q, :] for p in parts], axis=0)


def _zonal_dask(values: Any, w: ZonalWeights) -> tuple[Any, Any]:
    """Lazy ``(time, district)`` mean and valid_fraction: one kernel task per input block.

    Data chunked in space too is not rechunked: each (time, y, x) block is reduced against
    its own slice of the weight entries into partial sums (``nt × 2 × n_districts`` float64, 66 kB
    for 514 districts and 16 steps), and one task per time chunk adds them and divides.
    A task thus holds one input chunk, never a whole ``(nt, ny, nx)`` slab. Measured on
    the Indonesia cube (365 × 340 × 920, 16-step chunks, 2 threads) with the map_blocks
    version of this graph: 2 × 2 contiguous spatial chunks 274–302 ms, rechunked to the
    full extent 357–394 ms, time-only chunks 130–160 ms; the kernel time is the same for 1
    or 4 blocks, the rest is per-task overhead, which the hand-written graph below cuts.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    tch, ych, xch = values.chunks
    split = _split_by_blocks(w, ych, xch)
    token = tokenize(values.name, w.fingerprint, ych, xch)
    entries_name = f"zonal-entries-{token}"
    part_name = f"zonal-partial-{token}"
    name = f"zonal-sums-{token}"
    # The graph is written out by hand: one task per input block (sums), one per time chunk
    # (add and divide; fused with the sums when there is one spatial block), and each block's
    # entries stored once.
    # dask.array.map_blocks with block_info plus .sum() built the same computation as fused
    # sub-graphs that cost ~1 ms of scheduling each; on the Indonesia cube in 2 × 2 spatial
    # chunks this graph took 232 ms against 430 ms (sync scheduler: 222 vs 482 ms).
    dsk: dict = {(entries_name, "total"): split.total}
    for key, entries in split.blocks.items():
        dsk[(entries_name, *key)] = entries
    blocks = [(jy, jx) for jy in range(len(ych)) for jx in range(len(xch))]
    for it in range(len(tch)):
        if len(blocks) == 1:  # chunked in time only: one task per chunk, sums and division
            dsk[(name, it, 0, 0)] = (_block_final, (values.name, it, 0, 0), (entries_name, 0, 0),
                                     (entries_name, "total"))
            continue
        for jy, jx in blocks:
            dsk[(part_name, it, jy, jx)] = (_block_sums, (values.name, it, jy, jx),
                                            (entries_name, jy, jx))
        dsk[(name, it, 0, 0)] = (_combine, [(part_name, it, jy, jx) for jy, jx in blocks],
                                 (entries_name, "total"))
    # mean and valid_fraction: consecutive time chunks are gathered into output chunks of up
    # to _OUT_CHUNK_BYTES each, one task per output chunk and variable (written here too, as
    # dask's own slicing of the (time, 2, district) array cost 2 ms per call to build). On
    # the Indonesia cube, 365 days in 16-day input chunks: one view task per input chunk
    # and variable (46 tasks) took 68.5 ms in all, one output chunk per variable 65.0 ms.
    groups = _output_groups(tch, w.n_districts)
    out_chunks = tuple(sum(tch[i] for i in g) for g in groups)
    outs = []
    for q, label in enumerate(("mean", "valid-fraction")):
        out_name = f"zonal-{label}-{token}"
        view = {(out_name, k, 0): (_stack_part, [(name, it, 0, 0) for it in g], q)
                for k, g in enumerate(groups)}
        graph = HighLevelGraph({name: dsk, out_name: view}, {name: {values.name},
                                                            out_name: {name}})
        graph = HighLevelGraph.merge(graph, values.__dask_graph__())
        outs.append(da.Array(graph, out_name, chunks=(out_chunks, (w.n_districts,)),
                             meta=np.empty((0, 0), np.float64)))
    return outs[0], outs[1]


