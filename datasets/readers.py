"""The built-in readers: one per kind of input a run config names under ``inputs:``.

Each reader is a :class:`panen.engine.api.Reader` registered in the ``panen.readers``
entry-point group (``pyproject.toml``), exactly as a third party registers its own: the
engine finds them by the input's name and never imports this module. A reader declares
its config section (``Spec``, unknown keys are errors), opens the data (lazily where it is
gridded) and reports what it holds (:class:`~panen.engine.api.InputInfo`: columns, units,
time step, the districts it knows), which ``panen validate`` reads from the headers alone.

==============  ========  ==================================================================
input           kind      reader
==============  ========  ==================================================================
``districts``   polygons  district polygons (GeoJSON, GeoPackage, Shapefile), or a plain
                          list of district ids (CSV/Parquet with an id column): a table
``rainfall``    grid      CF NetCDF, Zarr or a GeoTIFF stack, in mm/day, mm/dekad or mm/month
``stations``    stations  daily rain at weather stations: raw BMKG exports or a tidy table,
                          with the rule giving each district its reference and back-ups
``ndvi``        grid      MOD13Q1 GeoTIFFs or an NDVI cube (QA-masked); an AppEEARS point
                          CSV is a series (each point its own zone)
``yields``      table     district yields history, normalised to t/ha
``policies``    register  the policy register, as read (rows are checked by the engine)
``assessments`` table     field loss assessments; bad rows go to the run's rejects
``notifications`` table   notified insurance units: prevented sowing, mid-season adversity
==============  ========  ==================================================================

``policies``, ``assessments``, ``yields`` and ``notifications`` share the reading options of
:class:`TableReading` (separator, decimal mark, thousands separator, date format,
encoding, ``columns:`` mapping the file's own headers), so an insurer's spreadsheet
export is read as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, ValidationInfo, field_validator, model_validator

from panen.engine.api import (ASSESSMENT_COLUMNS, REGISTER_OPTIONAL_COLUMNS, REGISTER_REQUIRED_COLUMNS, InputInfo,
                              InputSpec, OpenedInput, Reader)
from panen.engine.errors import InputError
from panen.engine.infra.arrowcols import TextFormat, date_format_problem

if TYPE_CHECKING:
    from .tables import TableOptions

__all__ = [
    "AssessmentsReader",
    "AssessmentsSpec",
    "DistrictsReader",
    "NdviReader",
    "NotificationsReader",
    "NotificationsSpec",
    "PoliciesReader",
    "PoliciesSpec",
    "RainfallHistoryReader",
    "RainfallReader",
    "StationsReader",
    "StationsSpec",
    "TableReading",
    "YieldsReader",
    "YieldsSpec",
]

_TABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".parquet", ".pq", ".parq")


def _is_table(path: str | Path) -> bool:
    return str(path).lower().endswith(_TABLE_SUFFIXES)


def _grid_info(name: str, path: str, da: xr.DataArray) -> InputInfo:
    times = np.asarray(da["time"].values).astype("datetime64[D]")
    return InputInfo(name=name, kind="grid", path=str(path), units=da.attrs.get("units"),
                     frequency=da.attrs.get("frequency"),
                     time_range=(times[0], times[-1]) if times.size else None)


def _series_info(name: str, path: str, ds: xr.Dataset) -> InputInfo:
    times = np.asarray(ds["time"].values).astype("datetime64[D]")
    return InputInfo(name=name, kind="series", path=str(path), units=ds["mean"].attrs.get("units"),
                     frequency=ds.attrs.get("frequency"),
                     time_range=(times[0], times[-1]) if times.size else None,
                     zones=frozenset(str(d) for d in ds["district"].values.tolist()))


# --------------------------------------------------------------------------- reading options of tables
class TableReading(InputSpec):
    """How a table input's file is written: the insurer's own export, read as it is.

    Shared by ``inputs.policies``, ``inputs.assessments`` and ``inputs.yields``. The
    defaults are panen's own format (comma-separated UTF-8, ``.`` decimals, ISO dates,
    panen's column names); an Indonesian spreadsheet export typically needs::

        policies:
          path: data/polis_mt1.csv
          separator: ";"
          decimal: ","
          thousands: "."
          date_format: "%d/%m/%Y"
          encoding: cp1252
          columns: {no_polis: policy_id, nik_petani: farmer_id, kode_kabupaten: district_id,
                    kode_produk: product_id, luas_lahan_ha: area_ha, tanggal_tanam: sowing_date}

    ``separator`` and ``encoding`` apply to CSV files; ``decimal``, ``thousands``,
    ``date_format`` and ``columns`` to CSV and Parquet alike (a Parquet column stored as
    text is parsed the same way).
    """

    #: The columns ``columns:`` may map onto (``None``: any name).
    mappable: ClassVar[tuple[str, ...] | None] = None

    path: Path = Field(description="CSV (.csv, .csv.gz, .csv.bz2, .csv.zst) or Parquet (.parquet, .pq) file")
    separator: str = Field(",", description="CSV field separator: ',', ';', '\\t' (or 'tab') or '|'")
    decimal: Literal[".", ","] = Field(".", description="decimal mark of numbers: '.' or ','")
    thousands: Literal[".", ",", " "] | None = Field(
        None, description="thousands separator (digits then strictly in groups of three: 6.000.000), or none")
    date_format: str = Field("%Y-%m-%d", description="date pattern from %d %m %Y %y, e.g. '%d/%m/%Y'")
    encoding: str = Field("utf-8", description="text encoding of a CSV, e.g. utf-8, cp1252, latin-1")
    columns: dict[str, str] = Field(
        default_factory=dict, description="the file's headers mapped to the columns panen reads, e.g. "
                                          "{kode_kabupaten: district_id, luas_lahan_ha: area_ha}")

    @field_validator("separator", mode="before")
    @classmethod
    def _separator(cls, v: Any) -> Any:
        from .tables import separator_problem

        v = "\t" if v == "tab" else v
        if isinstance(v, str):
            problem = separator_problem(v)
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("thousands")
    @classmethod
    def _thousands(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and v == info.data.get("decimal"):
            raise ValueError(f"the thousands separator {v!r} is also the decimal mark")
        return v

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, v: str) -> str:
        problem = date_format_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        from .tables import encoding_problem

        problem = encoding_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        allowed = cls._mappable(info.data)
        problems = []
        if allowed is not None:
            problems += [f"{src!r} is mapped to {dst!r}, which is not a column panen reads here "
                         f"(one of: {', '.join(allowed)})" for src, dst in v.items() if dst not in allowed]
        targets = list(v.values())
        problems += [f"more than one column is mapped to {t!r}" for t in sorted({t for t in targets
                                                                                   if targets.count(t) > 1})]
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @classmethod
    def _mappable(cls, data: dict) -> tuple[str, ...] | None:
        return cls.mappable

    def table_options(self) -> "TableOptions":
        """These options for :mod:`panen.datasets.tables`."""
        from .tables import TableOptions

        return TableOptions(separator=self.separator, encoding=self.encoding, columns=dict(self.columns),
                            text=TextFormat(decimal=self.decimal, thousands=self.thousands,
                                            date_format=self.date_format))


# --------------------------------------------------------------------------- districts
class DistrictsSpec(InputSpec):
    """``inputs.districts`` — district polygons (needed to reduce grids), or a list of ids."""

    path: Path = Field(description="GeoJSON, GeoPackage or Shapefile; or a CSV/Parquet list of district ids")
    id_column: str = Field("district_id", description="column holding the district key, e.g. kode_bps_style")
    layer: str | None = Field(None, description="layer name in a multi-layer GeoPackage")


class DistrictsReader(Reader):
    """District polygons (:func:`panen.datasets.districts.read_districts`), or a plain id list."""

    name = "districts"
    Spec = DistrictsSpec
    description = "district polygons (any vector format GDAL reads) or a CSV/Parquet list of district ids"

    def kind_of(self, spec: DistrictsSpec) -> str:
        return "table" if _is_table(spec.path) else "polygons"

    def open(self, spec: DistrictsSpec, **hints: Any) -> OpenedInput:
        if _is_table(spec.path):
            ids = _id_list(spec.path, spec.id_column)
            frame = pd.DataFrame({"district_id": ids})
            info = InputInfo(name=self.name, kind="table", path=str(spec.path), columns=("district_id",),
                             zones=frozenset(ids))
            return OpenedInput(info=info, data=frame)
        from .districts import read_districts

        gdf = read_districts(spec.path, id_column=spec.id_column, layer=spec.layer)
        info = InputInfo(name=self.name, kind="polygons", path=str(spec.path), columns=tuple(map(str, gdf.columns)),
                         zones=frozenset(gdf["district_id"].astype(str)))
        return OpenedInput(info=info, data=gdf)


def _id_list(path: Path, column: str) -> list[str]:
    from .ids import id_problems, ids_as_keys
    from .tables import read_located

    located = read_located(path, [column], what="district list")
    raw = pd.Series(located.table[column].to_pandas())
    ids, bad, unsafe = ids_as_keys(raw)
    blank = ids.isna().to_numpy() & ~bad & ~unsafe
    if blank.any():
        i = int(np.flatnonzero(blank)[0])
        line = int(located.lines(np.array([i]))[0]) if located.lines is not None else None
        raise InputError(f"district id is empty (row {i + 1})", file=path, column=column, line=line, row=i + 1)
    problems = id_problems(raw, bad, unsafe, file=path, column=column, what="district id", lines=located.lines)
    if problems:
        raise InputError(problems)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise InputError(f"district id {dup.iloc[0]!r} is listed more than once", file=path, column=column)
    return ids.tolist()


# --------------------------------------------------------------------------- rainfall
class RainfallSpec(InputSpec):
    """``inputs.rainfall`` — gridded rainfall: CF NetCDF, Zarr, or a GeoTIFF stack (glob or folder)."""

    path: str = Field(description="file, .zarr folder, folder of GeoTIFFs, or a glob like data/*.tif")
    variable: str = Field("precip", description="variable name in NetCDF/Zarr")
    units: Literal["mm/day", "mm/dekad", "mm/month"] | None = Field(None, description="units, if the file does not say")
    date_pattern: str | None = Field(
        None, description="regex with named groups year, month[, day] for GeoTIFF file names")
    min_valid_fraction: float | None = Field(
        None, ge=0, le=1,
        description="if set, a time step in which less than this share of a district's area has data is missing "
                    "for every product (each product also applies its own min_valid_fraction)")
    valid_range: tuple[float, float] | None = Field(
        None, description="[low, high] of physically possible values in the file's units after conversion; values "
                          "outside are missing, counted in the data quality report (default: 0..2000 mm/day, "
                          "0..10000 mm/dekad, 0..15000 mm/month)")


#: NDVI is a normalised difference: it lies in [-1, 1] by construction (Rouse et al. 1974). (The MOD13Q1
#: readers also mask values outside that product's own valid range, -0.2..1, when they scale it.)
NDVI_PHYSICAL_RANGE: tuple[float, float] = (-1.0, 1.0)


def _valid_range(given: tuple[float, float] | None, default: tuple[float, float] | None) -> list[float] | None:
    rng = given if given is not None else default
    return None if rng is None else [float(rng[0]), float(rng[1])]


class RainfallReader(Reader):
    """Gridded rainfall (:func:`panen.datasets.gridded.open_rainfall`), lazily, in mm/day or mm/month."""

    name = "rainfall"
    Spec = RainfallSpec
    description = "gridded rainfall (CHIRPS-style NetCDF, Zarr, GeoTIFF stack) in mm/day or mm/month"

    def kind_of(self, spec: RainfallSpec) -> str:
        return "grid"

    def open(self, spec: RainfallSpec, **hints: Any) -> OpenedInput:
        from .gridded import open_rainfall

        # values outside the valid range stay in the grid: the run's district-series step makes
        # them missing and counts them for the data quality report
        da = open_rainfall(spec.path, variable=spec.variable, units=spec.units, date_pattern=spec.date_pattern,
                           valid_range=spec.valid_range, mask_implausible=False)
        if spec.min_valid_fraction is not None:
            da.attrs["min_valid_fraction"] = float(spec.min_valid_fraction)
        return OpenedInput(info=_grid_info(self.name, spec.path, da), data=da)


class RainfallHistoryReader(RainfallReader):
    """Past years of gridded rainfall for an in-season projection (``projection.history``), read as ``rainfall``.

    The same formats and keys as ``inputs.rainfall``; a separate input so that the season's
    data (CHIRPS *preliminary*) and the historical archive (CHIRPS *final*) can live apart.
    """

    name = "rainfall_history"
    description = "past years of gridded rainfall for projections (as rainfall: NetCDF, Zarr, GeoTIFF stack)"


# --------------------------------------------------------------------------- weather stations
class StationAssign(InputSpec):
    """How each district is given its reference station and back-ups (``inputs.stations.assign``)."""

    path_fields = ("table",)

    max_distance_km: float | None = Field(
        None, gt=0, description="nearest stations to the district (its polygon's representative point) within this "
                                "distance [km]; required unless a table is given")
    backups: int = Field(2, ge=0, le=10, description="back-up stations after the reference (nearest first)")
    table: Path | None = Field(None, description="CSV: district_id, station_id[, backups] (back-up ids separated "
                                                 "by ';'): the reference station named per district instead")

    @model_validator(mode="after")
    def _one_rule(self) -> "StationAssign":
        if (self.table is None) == (self.max_distance_km is None):
            raise ValueError("give either max_distance_km (nearest stations) or table (stations named per district)")
        return self


class StationFill(InputSpec):
    """Filling the days no station measured from a satellite grid at the reference station's pixel."""

    path: str = Field(description="gridded daily rainfall (NetCDF, Zarr, GeoTIFF stack) sampled at each station")
    variable: str = Field("precip", description="variable name in NetCDF/Zarr")
    units: Literal["mm/day"] | None = Field(None, description="units, if the file does not say (daily only)")
    bias: Literal["ratio", "quantile"] = Field(
        "ratio", description="bias adjustment fitted on the overlap: monthly linear scaling, or empirical quantile "
                             "mapping")
    min_overlap: int = Field(30, ge=5, description="days both measured needed to fit (per month for ratio) [days]")


class StationsSpec(InputSpec):
    """``inputs.stations`` — daily rainfall at named weather stations (raw BMKG exports or a tidy table)."""

    path_fields = ("path", "metadata")

    path: str = Field(description="a BMKG export, a folder or glob of them, or a tidy CSV/Parquet "
                                  "(date, station_id, value)")
    format: Literal["bmkg", "table"] = Field(
        "bmkg", description="bmkg: raw BMKG Data Online exports as they come; table: one row per station and day")
    metadata: Path | None = Field(None, description="tidy tables: station_id, name, lat, lon, elevation (CSV/Parquet)")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="tidy tables: the file's headers for date, station_id and value, e.g. "
                                                "{precip_mm: value}")
    station: str | None = Field(None, description="tidy tables: the id of a one-station file without a station_id "
                                                  "column (e.g. a point export date, precip_mm)")
    units: Literal["mm", "mm/day", "cm", "in", "0.1mm"] = Field("mm/day", description="tidy tables: units of value")
    missing_values: list[float] = Field(default_factory=list,
                                        description="tidy tables: numeric codes that mean no measurement")
    valid_range: tuple[float, float] | None = Field(
        None, description="[low, high] possible daily rain [mm/day]; outside is implausible (default 0..2000)")
    assign: StationAssign = Field(description="which stations settle which district")
    fill: StationFill | None = Field(None, description="fill days no station has from a satellite grid")


class StationsReader(Reader):
    """Daily station rainfall (:mod:`panen.datasets.stations`), with the rules assigning stations to districts."""

    name = "stations"
    Spec = StationsSpec
    description = "daily rainfall at weather stations (raw BMKG exports or a tidy table), reference and back-ups"

    def kind_of(self, spec: StationsSpec) -> str:
        return "stations"

    def open(self, spec: StationsSpec, **hints: Any) -> OpenedInput:
        from . import stations

        rng = spec.valid_range if spec.valid_range is not None else stations.DEFAULT_VALID_RANGE
        if spec.format == "bmkg":
            ds = stations.read_bmkg_exports(spec.path, valid_range=rng)
        else:
            names = {v: k for k, v in spec.columns.items()}  # panen's name -> the file's header
            ds = stations.read_station_table(spec.path, stations=spec.metadata, units=spec.units,
                                             missing_values=spec.missing_values, valid_range=rng, station=spec.station,
                                             date_column=names.get("date", "date"),
                                             station_column=names.get("station_id", "station_id"),
                                             value_column=names.get("value", "value"))
        assign = spec.assign
        ds.attrs["assign"] = {"max_distance_km": assign.max_distance_km, "backups": assign.backups}
        if assign.table is not None:
            ds.attrs["assign_table"] = stations.read_assignment_table(assign.table)
        if spec.fill is not None:
            ds["satellite"] = stations.sample_grid(ds, spec.fill.path, variable=spec.fill.variable,
                                                   units=spec.fill.units)
            ds.attrs["fill"] = {"bias": spec.fill.bias, "min_overlap": spec.fill.min_overlap,
                                "path": str(spec.fill.path)}
        ds["rain"].attrs["valid_range"] = [float(rng[0]), float(rng[1])]
        times = np.asarray(ds["time"].values).astype("datetime64[D]")
        info = InputInfo(name=self.name, kind="stations", path=str(spec.path), units="mm/day", frequency="day",
                         time_range=(times[0], times[-1]) if times.size else None)
        return OpenedInput(info=info, data=ds)


# --------------------------------------------------------------------------- NDVI
class NdviSpec(InputSpec):
    """``inputs.ndvi`` — MOD13Q1 GeoTIFFs, a NetCDF/Zarr cube, or an AppEEARS point CSV."""

    path_fields = ("path", "cropland_mask")

    path: str = Field(description="folder or glob of *_NDVI.tif (+ *_VI_Quality.tif), .nc, .zarr, or AppEEARS .csv")
    qa: Literal["good_only", "good_or_check", "none"] = Field(
        "good_only", description="VI_Quality policy: keep only 'VI produced with good quality', also 'check other QA', "
                                 "or no QA")
    cropland_mask: Path | None = Field(None, description="raster, nonzero = cropland; other pixels are masked")
    variable: str = Field("NDVI", description="NDVI variable of a cube")
    qa_variable: str = Field("VI_Quality", description="QA variable of a cube")
    scale: float | None = Field(None, description="divide stored integers by this (default 10000 for integer cubes)")
    valid_range: tuple[float, float] | None = Field(
        None, description="[low, high] of possible NDVI; values outside are missing, counted in the data quality "
                          "report (default -1..1)")


class NdviReader(Reader):
    """NDVI composites (:mod:`panen.datasets.ndvi`): a QA-masked grid, or AppEEARS points as series."""

    name = "ndvi"
    Spec = NdviSpec
    description = "MODIS MOD13Q1 NDVI (GeoTIFFs or a cube, QA-masked), or AppEEARS point samples"

    def kind_of(self, spec: NdviSpec) -> str:
        return "series" if str(spec.path).lower().endswith(".csv") else "grid"

    def open(self, spec: NdviSpec, **hints: Any) -> OpenedInput:
        from . import ndvi

        rng = _valid_range(spec.valid_range, NDVI_PHYSICAL_RANGE)
        if str(spec.path).lower().endswith(".csv"):  # AppEEARS points: each point is its own zone
            ds = ndvi.read_appeears_points(spec.path, qa=spec.qa)
            ds["mean"].attrs["valid_range"] = rng
            return OpenedInput(info=_series_info(self.name, spec.path, ds), data=ds)
        da = ndvi.open_ndvi(spec.path, qa=spec.qa, cropland_mask=spec.cropland_mask, variable=spec.variable,
                            qa_variable=spec.qa_variable, scale=spec.scale)
        da.attrs["valid_range"] = rng
        return OpenedInput(info=_grid_info(self.name, spec.path, da), data=da)


# --------------------------------------------------------------------------- yields
class YieldsSpec(TableReading):
    """``inputs.yields`` — district yields history (CSV/Parquet), with the table reading options.

    ``columns:`` may map the file's headers onto the names below (``district_column``,
    ``year_column``, ...), which then name the columns after mapping.
    """

    district_column: str = Field("district_id", description="district key column, e.g. kode_bps")
    year_column: str = "year"
    yield_column: str = Field("yield", description="yield column, e.g. produktivitas_ku_ha")
    season_column: str | None = None
    units: Literal["t/ha", "ku/ha", "q/ha", "kg/ha"] = Field("t/ha", description="units of the yield column")
    missing_values: list[float | str] = Field(default_factory=list, description="codes meaning missing, e.g. [-1]")
    extra_columns: list[str] = Field(default_factory=list, description="more columns to carry (e.g. expected)")
    area_columns: list[str] = Field(default_factory=list,
                                    description="area columns to carry unconverted [ha] (e.g. sown_area_ha)")

    @model_validator(mode="after")
    def _mapped_onto_read_columns(self) -> "YieldsSpec":
        names = [self.district_column, self.year_column, self.yield_column, self.season_column, *self.extra_columns,
                 *self.area_columns]
        allowed = [n for n in names if n]
        wrong = [f"{src!r} is mapped to {dst!r}, which is none of the columns read (one of: {', '.join(allowed)})"
                 for src, dst in self.columns.items() if dst not in allowed]
        if wrong:
            raise ValueError("columns: " + "; ".join(wrong))
        return self


class YieldsReader(Reader):
    """District yields (:func:`panen.datasets.yields.read_yields`), normalised to t/ha."""

    name = "yields"
    Spec = YieldsSpec
    description = "district yields history (CSV/Parquet), normalised to district_id, year, yield [t/ha]"

    def kind_of(self, spec: YieldsSpec) -> str:
        return "table"

    def open(self, spec: YieldsSpec, **hints: Any) -> OpenedInput:
        from .yields import read_yields

        table = read_yields(spec.path, district_column=spec.district_column, year_column=spec.year_column,
                            yield_column=spec.yield_column, season_column=spec.season_column, units=spec.units,
                            missing_values=tuple(spec.missing_values), extra_columns=tuple(spec.extra_columns),
                            area_columns=tuple(spec.area_columns), options=spec.table_options())
        info = InputInfo(name=self.name, kind="table", path=str(spec.path), columns=tuple(map(str, table.columns)),
                         units=table.attrs.get("units", "t/ha"),
                         zones=frozenset(table["district_id"].astype(str)))
        return OpenedInput(info=info, data=table)


# --------------------------------------------------------------------------- policy register
class PoliciesSpec(TableReading):
    """``inputs.policies`` — the policy register (CSV or Parquet), with the table reading options."""

    mappable = REGISTER_REQUIRED_COLUMNS + REGISTER_OPTIONAL_COLUMNS


class PoliciesReader(Reader):
    """The policy register (:func:`panen.datasets.policies.read_policies`), rows as read."""

    name = "policies"
    Spec = PoliciesSpec
    description = "policy register (CSV/Parquet): policy_id, farmer_id, district_id, product_id, area_ha, ..."

    def kind_of(self, spec: PoliciesSpec) -> str:
        return "register"

    def open(self, spec: PoliciesSpec, **hints: Any) -> OpenedInput:
        from .policies import read_policies

        register = read_policies(spec.path, spec.table_options())
        info = InputInfo(name=self.name, kind="register", path=str(spec.path),
                         columns=tuple(register.table.column_names))
        return OpenedInput(info=info, data=register)

    def inspect(self, spec: PoliciesSpec) -> InputInfo:
        from .tables import read_header

        names = read_header(spec.path, REGISTER_REQUIRED_COLUMNS, what="policy register",
                            options=spec.table_options())
        return InputInfo(name=self.name, kind="register", path=str(spec.path), columns=tuple(names))


# --------------------------------------------------------------------------- loss assessments
class AssessmentsSpec(TableReading):
    """``inputs.assessments`` — field loss assessments (CSV or Parquet), with the table reading options."""

    mappable = ASSESSMENT_COLUMNS


class AssessmentsReader(Reader):
    """Field loss assessments (:func:`panen.datasets.assessments.read_assessments`); bad rows are rejects.

    Hint ``peril_key`` (a function from a peril label to a canonical code, e.g. a wording's
    peril resolver): duplicates are then found on the code, so ``tikus`` and ``rats`` on
    the same plot and day are one event.
    """

    name = "assessments"
    Spec = AssessmentsSpec
    description = "field loss assessments (CSV/Parquet): one row per plot, peril and event"

    def kind_of(self, spec: AssessmentsSpec) -> str:
        return "table"

    def open(self, spec: AssessmentsSpec, **hints: Any) -> OpenedInput:
        from .assessments import read_assessments

        valid, rejects = read_assessments(spec.path, peril_key=hints.get("peril_key"), options=spec.table_options())
        info = InputInfo(name=self.name, kind="table", path=str(spec.path), columns=tuple(ASSESSMENT_COLUMNS))
        return OpenedInput(info=info, data=valid, rejects=rejects)

    def inspect(self, spec: AssessmentsSpec) -> InputInfo:
        from .tables import read_header

        names = read_header(spec.path, ASSESSMENT_COLUMNS, what="loss assessments file",
                            options=spec.table_options())
        return InputInfo(name=self.name, kind="table", path=str(spec.path), columns=tuple(names))


# --------------------------------------------------------------------------- notifications
class NotificationsSpec(TableReading):
    """``inputs.notifications`` — notified insurance units (CSV/Parquet), with the table reading options.

    Columns ``district_id, product_id, kind, date`` and ``estimated_yield`` (mid-season
    adversity rows); see :mod:`panen.datasets.notifications`.
    """

    mappable = ("district_id", "product_id", "kind", "date", "estimated_yield")
    units: Literal["t/ha", "ku/ha", "q/ha", "kg/ha"] = Field("t/ha", description="units of estimated_yield")


class NotificationsReader(Reader):
    """Notifications of prevented sowing and mid-season adversity (:func:`panen.datasets.notifications.read_notifications`)."""

    name = "notifications"
    Spec = NotificationsSpec
    description = "notified districts: prevented_sowing | mid_season_adversity (PMFBY para. 21), checked and located"

    def kind_of(self, spec: NotificationsSpec) -> str:
        return "table"

    def open(self, spec: NotificationsSpec, **hints: Any) -> OpenedInput:
        from .notifications import read_notifications

        table = read_notifications(spec.path, units=spec.units, options=spec.table_options())
        # zones=None: a notification never adds a district to those a product settles on; one
        # naming a district the product does not know is the product's located error
        info = InputInfo(name=self.name, kind="table", path=str(spec.path), columns=tuple(map(str, table.columns)),
                         units="t/ha", zones=None)
        return OpenedInput(info=info, data=table)
