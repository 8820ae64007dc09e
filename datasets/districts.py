"""Read district (kabupaten/kota) polygons: GeoJSON, GeoPackage or Shapefile.

The engine pays index products per district, so the district layer is the join key
between the policy register (``district_id``), yields and the gridded data. This reader
checks what the engine relies on and reports every problem at once, naming the file, the
1-based feature number (``row``) and the column:

* the file exists and GDAL (through pyogrio) can read it;
* the id column exists, every id is present and non-empty, and no id repeats;
* every feature has a non-empty geometry, and the layer has a CRS.

Invalid geometries (self-intersections, bow-ties, ...) are common in official boundary
files; they are repaired with :func:`shapely.make_valid`, keeping the polygonal parts, and
a warning names the repaired rows. They are not an error.
"""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from panen.engine.errors import InputError, Problem

from .ids import id_problems, ids_as_keys

__all__ = ["read_districts", "DISTRICT_ID"]

#: Name of the normalised id column in every district layer the engine sees.
DISTRICT_ID = "district_id"

_POLYGONAL = ("Polygon", "MultiPolygon")


def read_districts(
    path: str | PathLike[str],
    *,
    id_column: str = DISTRICT_ID,
    layer: str | int | None = None,
) -> gpd.GeoDataFrame:
    """Read district polygons and normalise their id to a ``district_id`` string column.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage or Shapefile (any vector format GDAL reads), opened with the
        pyogrio engine.
    id_column
        Column holding the district code (e.g. ``kode_bps_style`` for BPS codes such as
        ``"3212"`` = Indramayu). Copied, as a normalised key (trimmed, NFKC, invisible
        characters removed, like the register's), into ``district_id``; the original
        columns are kept.
    layer
        Layer name or index for multi-layer files (GeoPackage); default the first layer.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per district, in file order, with ``district_id`` [str], the original
        columns and a (Multi)Polygon geometry; CRS as in the file.

    Raises
    ------
    InputError
        Missing or unreadable file; ``id_column`` absent (the message lists the available
        columns); null/empty, duplicate, or unusable ids (a control character, or a
        spreadsheet formula: rows named); null/empty or non-polygonal
        geometry (rows named); no CRS. All problems found are reported together.

    Warns
    -----
    UserWarning
        When invalid geometries were repaired with :func:`shapely.make_valid`.

    Examples
    --------
    >>> gdf = read_districts("idn_districts_java.geojson", id_column="kode_bps_style")  # doctest: +SKIP
    >>> gdf.loc[gdf.district_id == "3212", "nama"].item()  # doctest: +SKIP
    'KAB. INDRAMAYU'
    """
    path = Path(path)
    if not path.exists():
        raise InputError("district file not found", file=path)
    try:
        gdf = gpd.read_file(path, engine="pyogrio", layer=layer)
    except Exception as exc:  # pyogrio/GDAL raise a family of errors; report them all alike
        raise InputError(f"cannot read district file: {exc}", file=path) from exc
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise InputError("district file has no geometry column", file=path)

    if id_column not in gdf.columns:
        available = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(
            f"id column {id_column!r} not found; available columns: {', '.join(map(str, available))}",
            file=path, column=id_column,
        )

    problems: list[Problem] = []
    ids, bad, unsafe = ids_as_keys(gdf[id_column])
    missing = ids.isna().to_numpy()
    for i in np.flatnonzero(missing):
        problems.append(Problem("district id is empty", file=path, row=int(i) + 1, column=id_column))
    problems += id_problems(gdf[id_column], bad, unsafe, file=path, column=id_column, what="district id")
    missing = missing | bad | unsafe
    dup = ids.duplicated(keep=False).to_numpy() & ~missing
    for value in pd.unique(ids[dup]):
        rows = (np.flatnonzero((ids == value).to_numpy()) + 1).tolist()
        problems.append(Problem(
            f"duplicate district id {value!r} in rows {', '.join(map(str, rows))}",
            file=path, row=rows[0], column=id_column,
        ))

    geometry, geom_problems, repaired = _check_geometry(gdf.geometry, path)
    problems.extend(geom_problems)
    if gdf.crs is None:
        problems.append(Problem("district layer has no CRS; set one (e.g. EPSG:4326) in the file",
                                file=path))
    if problems:
        raise InputError(problems)
    if repaired:
        warnings.warn(
            f"{path}: repaired {len(repaired)} invalid geometr{'y' if len(repaired) == 1 else 'ies'} "
            f"with shapely.make_valid (rows {', '.join(map(str, repaired[:20]))}"
            f"{', ...' if len(repaired) > 20 else ''})",
            UserWarning, stacklevel=2,
        )

    out = gdf.copy()
    out = out.set_geometry(gpd.GeoSeries(geometry, index=gdf.index, crs=gdf.crs,
                                         name=gdf.geometry.name))
    if DISTRICT_ID in out.columns:
        out[DISTRICT_ID] = ids.astype(str).to_numpy()
    else:
        out.insert(0, DISTRICT_ID, ids.astype(str).to_numpy())
    return out


def _check_geometry(geoms: gpd.GeoSeries, path: Path) -> tuple[np.ndarray, list[Problem], list[int]]:
    """Null/empty/non-polygonal geometries are problems; invalid ones are repaired."""
    values = np.asarray(geoms.array, dtype=object).copy()
    problems: list[Problem] = []
    repaired: list[int] = []
    column = geoms.name if isinstance(geoms.name, str) else "geometry"
    for i, geom in enumerate(values):
        row = i + 1
        if geom is None or shapely.is_empty(geom):
            problems.append(Problem("geometry is null or empty", file=path, row=row, column=column))
            continue
        if not shapely.is_valid(geom):
            geom = _polygonal_part(shapely.make_valid(geom))
            if geom is None:
                problems.append(Problem("invalid geometry has no polygonal part after repair",
                                        file=path, row=row, column=column))
                continue
            values[i] = geom
            repaired.append(row)
        if geom.geom_type not in _POLYGONAL:
            problems.append(Problem(f"geometry is a {geom.geom_type}, expected Polygon or MultiPolygon",
                                    file=path, row=row, column=column))
    return values, problems, repaired


def _polygonal_part(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The (Multi)Polygon part of a geometry (make_valid may return a collection)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL and not g.is_empty]
    polys = [p for part in parts for p in shapely.get_parts(part)]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
