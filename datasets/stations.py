"""Daily rainfall measured at named weather stations: raw BMKG exports and tidy tables.

Weather-index insurance in its textbook form settles on a weather parameter measured over
a period at a named station (World Bank 2011, *Weather Index Insurance for Agriculture*,
ch. 2; India's RWBCIS operational guidelines, reference and back-up weather stations).
These readers bring station records into one shape, whatever the export:

``rain`` [mm/day], ``float64`` on ``(station, time)``
    The day's measured rainfall. A day without a measurement is NaN — never 0 mm: a
    missing day is not a dry day.
``flag`` ``uint8`` on ``(station, time)``
    Why a value is what it is, an index into :data:`FLAGS` (kept in ``flag.attrs["flags"]``):
    ``measured``; ``unmeasured`` (BMKG code 8888, *data tidak terukur*); ``no_data`` (9999,
    *tidak ada data*: no measurement was made); ``no_report`` (``-`` or another blank marker
    written in the cell); ``blank`` (an empty cell); ``absent`` (no row for the day);
    ``implausible`` (outside ``valid_range``: negative rain or more than the physical
    daily maximum). Only ``measured`` days carry a value.
coords on ``station``
    ``station`` (the id: a BMKG export's WMO number), ``name``, ``lat`` [degrees north],
    ``lon`` [degrees east], ``elevation`` [m], ``source`` (the file it came from).
``time``
    Every day from the first to the last day any station covers (a BMKG export's stated
    period included), ``datetime64[ns]``, without gaps.

A value in a cell that is neither a number nor a known missing-data marker is an error
naming the file, line and column — never silently missing. So are a date that does not
parse, a day listed twice with two different values, and metadata that contradict
themselves.

Raw BMKG exports (*Data Online BMKG*, ``dataonline.bmkg.go.id``) as insurers receive them:
one CSV per station, a header ``TANGGAL, TN, TX, TAVG, RH_AVG, RR, SS, FF_X, DDD_X, FF_AVG,
DDD_CAR``, dates ``DD-MM-YYYY``, decimal commas (``"23,5"``), the missing-data codes 8888
and 9999, and a metadata block in the columns to the right (``ID WMO``, ``Nama Stasiun``,
``Periode``, ``Lintang``, ``Bujur``, ``Elevasi``, then the legend ``KETERANGAN``). The
coordinates in the exports that have passed through a spreadsheet carry digit-grouping
dots where the decimal comma was (``Lintang -670.000`` for −6.70000°, ``Bujur 10.685.000``
for 106.85000°): BMKG writes coordinates with five decimals, so a grouped value is read as
its digits × 10⁻⁵ and must then lie within ±90° / ±180° (else an error). ``RR`` is the
daily rainfall [mm] of the 24 hours ending at the morning observation (07:00 local
time), dated by BMKG on the observation day.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from panen.engine.errors import InputError, Problem

__all__ = ["FLAGS", "BMKG_MISSING_CODES", "StationMeta", "read_assignment_table", "read_bmkg_exports", "read_station_table", "sample_grid",
           "combine_stations"]

#: The reasons a day's value is what it is (``flag`` holds the index into this tuple).
FLAGS: tuple[str, ...] = ("measured", "unmeasured", "no_data", "no_report", "blank", "absent", "implausible")
_FLAG = {name: np.uint8(i) for i, name in enumerate(FLAGS)}
#: BMKG's missing-data codes (the legend of every Data Online export): 8888 *data tidak terukur*
#: (not measurable), 9999 *tidak ada data* (no measurement made). They are codes, never rain.
BMKG_MISSING_CODES: dict[float, str] = {8888.0: "unmeasured", 9999.0: "no_data"}
#: Cells that mean "no report" in station exports (BMKG writes ``-``).
_NO_REPORT = {"-", "--", "—", "x", "X", "tt", "TTU"}
#: Physically possible daily rainfall [mm/day]: the world record 24-hour fall is 1,825 mm
#: (Foc-Foc, La Réunion, 1966, WMO Archive of Weather and Climate Extremes).
DEFAULT_VALID_RANGE: tuple[float, float] = (0.0, 2000.0)
_UNITS = {"mm": 1.0, "mm/day": 1.0, "cm": 10.0, "cm/day": 10.0, "in": 25.4, "in/day": 25.4,
          "0.1mm": 0.1, "0.1 mm": 0.1, "tenths_mm": 0.1}
_BMKG_HEADER = ("TANGGAL", "RR")
_BMKG_META = {"id wmo": "station", "nama stasiun": "name", "periode": "period", "lintang": "lat",
              "bujur": "lon", "elevasi": "elevation"}


@dataclass(frozen=True)
class StationMeta:
    """One station's metadata: id, name, position [degrees], elevation [m], source file."""

    station: str
    name: str
    lat: float
    lon: float
    elevation: float
    source: str


# --------------------------------------------------------------------------- helpers
def _read_text(p: Path) -> str:
    if not p.is_file():
        raise InputError("station file not found", file=p)
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InputError(Problem(f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); save the "
                                 f"export as UTF-8 CSV", file=p, line=line)) from exc


def _number(text: str, *, decimal_comma: bool) -> float | None:
    """A cell as a number, or None when it is not one (the caller decides what that means)."""
    t = text.strip().replace("\u00a0", "")
    if decimal_comma:
        if t.count(",") > 1 or ("," in t and "." in t):
            return None
        t = t.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", t):
        return None
    return float(t)


def _coordinate(text: str, limit: float, what: str, p: Path, line: int) -> float:
    """A BMKG metadata coordinate [degrees]: plain (``-6,70000``/``-6.7``) or digit-grouped (``-670.000``)."""
    t = text.strip()
    grouped = re.fullmatch(r"([+-]?)(\d{1,3}(?:\.\d{3})+)", t)
    if grouped and (t.count(".") > 1 or abs(float(t.replace(".", "")) / 1e5) <= limit):
        # a spreadsheet turned the decimal comma of a five-decimal coordinate into digit grouping
        value = float(grouped.group(1) + grouped.group(2).replace(".", "")) / 1e5
    else:
        value = _number(t, decimal_comma=True)
        if value is None:
            value = _number(t, decimal_comma=False)
    if value is None or not np.isfinite(value) or abs(value) > limit:
        raise InputError(Problem(f"station {what} {text!r} is not a coordinate within ±{limit:g}°", file=p, line=line,
                                 column=what))
    return float(value)


def _elevation(text: str, p: Path, line: int) -> float:
    m = re.fullmatch(r"\s*([+-]?\d+(?:[.,]\d+)?)\s*(m|meter|metres?|meters?)?\s*", text, flags=re.IGNORECASE)
    if m is None:
        raise InputError(Problem(f"station elevation {text!r} is not a height in metres", file=p, line=line,
                                 column="Elevasi"))
    return float(m.group(1).replace(",", "."))


def _period(text: str, p: Path, line: int) -> tuple[np.datetime64, np.datetime64]:
    m = re.fullmatch(r"\s*(\S+)\s+-\s+(\S+)\s*", text)
    if m is None:
        raise InputError(Problem(f"period {text!r} is not 'DD-MM-YYYY - DD-MM-YYYY'", file=p, line=line,
                                 column="Periode"))
    a, b = (_ddmmyyyy(s, p, line, "Periode") for s in m.groups())
    if b < a:
        raise InputError(Problem(f"period {text!r} ends before it starts", file=p, line=line, column="Periode"))
    return a, b


def _ddmmyyyy(text: str, p: Path, line: int, column: str) -> np.datetime64:
    m = re.fullmatch(r"\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})\s*", text)
    try:
        if m is None:
            raise ValueError
        return np.datetime64(pd.Timestamp(year=int(m.group(3)), month=int(m.group(2)), day=int(m.group(1))), "D")
    except ValueError:
        raise InputError(Problem(f"{text!r} is not a date DD-MM-YYYY", file=p, line=line, column=column)) from None


def _check_range(valid_range: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in valid_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"valid_range must be two finite numbers low < high; got {list(valid_range)}")
    return lo, hi


# --------------------------------------------------------------------------- raw BMKG exports
def _read_bmkg(p: Path, valid_range: tuple[float, float]):
    text = _read_text(p)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise InputError(Problem(f"not a readable CSV: {exc}", file=p, line=reader.line_num)) from exc
    if not rows:
        raise InputError("empty station export", file=p)
    header_line, header = rows[0]
    names = [h.strip().upper() for h in header]
    missing = [h for h in _BMKG_HEADER if h not in names]
    if missing:
        raise InputError(Problem(f"not a BMKG daily export: no column {', '.join(missing)} in the header "
                                 f"({', '.join(h for h in header if h.strip())})", file=p, line=header_line))
    i_date, i_rr = names.index("TANGGAL"), names.index("RR")
    # the metadata block: a key cell followed by its value, anywhere right of the data
    meta: dict[str, tuple[str, int]] = {}
    for line, row in rows:
        for j, cell in enumerate(row[:-1]):
            key = _BMKG_META.get(cell.strip().lower())
            if key is not None and j > i_rr:
                if key in meta and meta[key][0].strip() != row[j + 1].strip():
                    raise InputError(Problem(f"metadata {cell.strip()!r} given twice with different values "
                                             f"({meta[key][0]!r}, {row[j + 1]!r})", file=p, line=line))
                meta[key] = (row[j + 1], line)
    for key in ("station", "lat", "lon"):
        if key not in meta or not meta[key][0].strip():
            label = {v: k for k, v in _BMKG_META.items()}[key]
            raise InputError(Problem(f"the export's metadata block has no {label.title()!r}: the station cannot be "
                                     f"identified or placed", file=p))
    station = meta["station"][0].strip()
    lat = _coordinate(meta["lat"][0], 90.0, "Lintang", p, meta["lat"][1])
    lon = _coordinate(meta["lon"][0], 180.0, "Bujur", p, meta["lon"][1])
    elevation = _elevation(meta["elevation"][0], p, meta["elevation"][1]) if "elevation" in meta else np.nan
    period = _period(meta["period"][0], p, meta["period"][1]) if "period" in meta else None
    info = StationMeta(station=station, name=meta.get("name", (station, 0))[0].strip() or station,
                       lat=lat, lon=lon, elevation=elevation, source=str(p))

    dates: list[np.datetime64] = []
    values: list[float] = []
    flags: list[np.uint8] = []
    lines: list[int] = []
    lo, hi = valid_range
    for line, row in rows[1:]:
        data = row[: i_rr + 1]
        if not any(c.strip() for c in row[: len(names)] if c is not None) or not (len(row) > i_date and row[i_date].strip()):
            if len(row) > i_rr and row[i_rr].strip():
                raise InputError(Problem("a rainfall value without a date", file=p, line=line, column="TANGGAL"))
            continue  # a blank row (exports are padded with them)
        day = _ddmmyyyy(row[i_date], p, line, "TANGGAL")
        cell = data[i_rr] if len(data) > i_rr else ""
        value, flag = _cell(cell, p, line, "RR", lo, hi, decimal_comma=True)
        dates.append(day)
        values.append(value)
        flags.append(flag)
        lines.append(line)
    return info, period, np.array(dates, dtype="datetime64[D]"), np.array(values, float), \
        np.array(flags, np.uint8), np.array(lines, np.int64)


def _cell(cell: str, p: Path, line: int, column: str, lo: float, hi: float, *, decimal_comma: bool,
          codes: dict[float, str] = BMKG_MISSING_CODES, markers: Iterable[str] = _NO_REPORT,
          scale: float = 1.0) -> tuple[float, np.uint8]:
    t = cell.strip()
    if not t:
        return np.nan, _FLAG["blank"]
    if t in markers:
        return np.nan, _FLAG["no_report"]
    v = _number(t, decimal_comma=decimal_comma)
    if v is None and decimal_comma:
        v = _number(t, decimal_comma=False)
    if v is None:
        raise InputError(Problem(f"{cell!r} is neither a rainfall amount nor a missing-data code "
                                 f"({', '.join(f'{int(k)}' for k in codes) or 'none'}, a blank or '-')",
                                 file=p, column=column, **_where(p, line)))
    if v in codes:
        return np.nan, _FLAG[codes[v]]
    v *= scale
    if not (np.isfinite(v) and lo <= v <= hi):
        return np.nan, _FLAG["implausible"]
    return v, _FLAG["measured"]


def read_bmkg_exports(paths: str | PathLike[str] | Iterable[str | PathLike[str]], *,
                      valid_range: Sequence[float] = DEFAULT_VALID_RANGE) -> xr.Dataset:
    """Read raw BMKG *Data Online* daily exports (one CSV per station) as station rainfall.

    Parameters
    ----------
    paths
        One export, a folder of them (every ``*.csv`` in it), a glob, or a list of files.
    valid_range
        Physically possible daily rainfall [mm/day]; a measured value outside is
        ``implausible`` (NaN), counted, never used.

    Returns
    -------
    xarray.Dataset
        The shape of the module docstring: ``rain`` [mm/day] and ``flag`` on ``(station,
        time)``, the station metadata as coords. ``time`` runs over the union of every
        export's rows and stated period: a day of the period without a row is ``absent``.

    Raises
    ------
    InputError
        A file that is not a BMKG export (no ``TANGGAL``/``RR``), metadata without a WMO id
        or coordinates, a coordinate out of range, a date or cell that does not parse
        (file, line, column), the same day twice with two different values, one WMO id in
        two files with contradicting metadata or values.

    References
    ----------
    BMKG Data Online (dataonline.bmkg.go.id), daily synoptic/climate data export; the
    legend in every export (8888: *data tidak terukur*, 9999: *tidak ada data*).
    """
    files = _files(paths)
    vr = _check_range(valid_range)
    parts = [(p, *_read_bmkg(p, vr)) for p in files]
    return combine_stations([(info, period, dates, values, flags, lines) for _, info, period, dates, values, flags, lines
                             in parts])


def _files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(os.fspath(paths))
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() == ".csv" and q.is_file())
        elif any(ch in str(p) for ch in "*?["):
            import glob

            found = sorted(Path(q) for q in glob.glob(str(p)))
        else:
            found = [p]
    else:
        found = [Path(os.fspath(q)) for q in paths]
    if not found:
        raise InputError(f"no station files in {paths}")
    return found


# --------------------------------------------------------------------------- tidy tables
def read_station_table(path: str | PathLike[str], *, stations: str | PathLike[str] | None = None,
                       units: str = "mm/day", date_column: str = "date", station_column: str = "station_id",
                       value_column: str = "value", missing_values: Sequence[float] = (),
                       valid_range: Sequence[float] = DEFAULT_VALID_RANGE, station: str | None = None) -> xr.Dataset:
    """Read station rainfall from a tidy table: one row per station and day.

    Parameters
    ----------
    path
        CSV (``,``-separated, ``.`` decimals, ISO dates ``YYYY-MM-DD``) or Parquet with the
        columns ``date, station_id, value`` (names configurable).
    stations
        The station metadata table (CSV or Parquet): ``station_id, name, lat, lon,
        elevation`` [degrees, m]. Without it, the data table may carry ``name, lat, lon,
        elevation`` columns (constant per station); otherwise positions are unknown (NaN).
    units
        Units of ``value``: ``mm/day`` (or ``mm``), ``cm``, ``in``, ``0.1mm`` (tenths of a
        millimetre, as GHCN-Daily stores precipitation). Converted to mm/day.
    missing_values
        Numeric codes that mean "no measurement" in this table (e.g. ``[8888, 9999]`` or
        ``[-99]``), flagged ``no_data``; blank cells and ``NA``/``-`` are missing too.
    valid_range
        Possible daily rainfall after conversion [mm/day]; outside it is ``implausible``.
    station
        The id of a one-station file without a station column (a point export such as a
        CHIRPS pixel series ``date, precip_mm``).

    Raises
    ------
    InputError
        Missing columns, unknown units, unparseable dates or values (file, line, column),
        a station and day listed twice with different values, metadata that differ between
        rows of one station, or data for a station the metadata table does not list.
    """
    p = Path(os.fspath(path))
    if units not in _UNITS:
        raise InputError(f"units {units!r} are not station rainfall units ({', '.join(_UNITS)})", file=p)
    scale = _UNITS[units]
    lo, hi = _check_range(valid_range)
    frame, lines = _table(p)
    if station is not None:
        if station_column in frame.columns:
            raise InputError(f"the file has a {station_column!r} column: name no single station for it", file=p)
        frame[station_column] = str(station)
    for c in (date_column, station_column, value_column):
        if c not in frame.columns:
            raise InputError(f"missing column {c!r}; columns are: {', '.join(map(str, frame.columns))}", file=p)
    codes = {float(v): "no_data" for v in missing_values}
    markers = {*_NO_REPORT, "NA", "N/A", "NaN", "nan", "null", "NULL"}
    meta = _station_meta(Path(os.fspath(stations)) if stations is not None else None, frame, lines,
                         station_column, p)
    groups: dict[str, list] = {}
    for d, s, v, line in zip(frame[date_column], frame[station_column], frame[value_column], lines):
        sid = str(s).strip()
        if not sid:
            raise InputError(Problem("empty station id", file=p, column=station_column, **_where(p, line)))
        if sid not in meta:
            raise InputError(Problem(f"station {sid!r} is not in the station metadata", file=p,
                                     column=station_column, **_where(p, line)))
        day = None
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(d).strip()):
            try:
                day = np.datetime64(pd.Timestamp(str(d).strip()), "D")
            except ValueError:
                day = None
        if day is None:
            raise InputError(Problem(f"{d!r} is not a date YYYY-MM-DD", file=p, column=date_column,
                                     **_where(p, line)))
        value, flag = _cell(str(v), p, int(line), value_column, lo, hi, decimal_comma=False,
                            codes=codes, markers=markers, scale=scale)
        g = groups.setdefault(sid, [[], [], [], []])
        g[0].append(day), g[1].append(value), g[2].append(flag), g[3].append(int(line))
    return combine_stations([(meta[s], None, np.array(g[0], "datetime64[D]"), np.array(g[1], float),
                              np.array(g[2], np.uint8), np.array(g[3], np.int64)) for s, g in groups.items()])


def _table(p: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A tidy table as text cells, and each row's line (CSV, as an editor numbers it) or row (Parquet)."""
    if not p.is_file():
        raise InputError("station table not found", file=p)
    if p.suffix.lower() in (".parquet", ".pq", ".parq"):
        try:
            frame = pd.read_parquet(p)
        except Exception as exc:  # pyarrow's errors name no location
            raise InputError(f"cannot read Parquet: {exc}", file=p) from exc

        def text(x) -> str:
            if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NaT:
                return ""
            if hasattr(x, "strftime"):
                return x.strftime("%Y-%m-%d")
            return repr(float(x)) if isinstance(x, (float, np.floating)) else str(x)

        frame = pd.DataFrame({c: [text(x) for x in frame[c].tolist()] for c in frame.columns})
        return frame, np.arange(1, len(frame) + 1)
    text = _read_text(p)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as exc:
        raise InputError(Problem(f"not a readable CSV: {exc}", file=p, line=reader.line_num)) from exc
    if not rows:
        raise InputError("empty station table", file=p)
    header = [h.strip() for h in rows[0][1]]
    body = [(ln, r) for ln, r in rows[1:] if any(c.strip() for c in r)]
    for ln, r in body:
        if len(r) != len(header):
            raise InputError(Problem(f"{len(r)} fields where the header has {len(header)}", file=p, line=ln))
    return pd.DataFrame([r for _, r in body], columns=header), np.array([ln for ln, _ in body], np.int64)


def _where(p: Path, line: int) -> dict:
    """Problem location keywords: a line of a text table, a row of a Parquet file."""
    return {"row": int(line)} if p.suffix.lower() in (".parquet", ".pq", ".parq") else {"line": int(line)}


def _station_meta(stations: Path | None, frame: pd.DataFrame, lines: np.ndarray, station_column: str,
                  data_path: Path) -> dict[str, StationMeta]:
    if stations is None:
        src, table = data_path, frame
    else:
        src = stations
        table, lines = _table(stations)
        if station_column not in table.columns and "station_id" in table.columns:
            station_column = "station_id"
        if station_column not in table.columns:
            raise InputError(f"missing column {station_column!r} in the station metadata", file=stations)
    out: dict[str, StationMeta] = {}
    for (_, row), line in zip(table.iterrows(), lines):
        where = _where(src, line)
        sid = str(row[station_column]).strip()
        if not sid:
            raise InputError(Problem("empty station id", file=src, column=station_column, **where))

        def num(col: str, limit: float | None) -> float:
            if col not in table.columns or not str(row[col]).strip():
                return np.nan
            v = _number(str(row[col]), decimal_comma=False)
            if v is None or not np.isfinite(v) or (limit is not None and abs(v) > limit):
                raise InputError(Problem(f"{row[col]!r} is not a valid {col}", file=src, column=col, **where))
            return v

        name = str(row["name"]).strip() if "name" in table.columns else ""
        meta = StationMeta(station=sid, name=name or sid, lat=num("lat", 90.0), lon=num("lon", 180.0),
                           elevation=num("elevation", None), source=str(data_path))
        old = out.get(sid)
        if old is not None and stations is not None:
            raise InputError(Problem(f"station {sid!r} listed twice in the station metadata", file=src,
                                     column=station_column, **where))
        if old is not None and not _same_meta(old, meta):
            raise InputError(Problem(f"station {sid!r} has other metadata here than on an earlier row", file=src,
                                     **where))
        out[sid] = meta
    return out


def _same_meta(a: StationMeta, b: StationMeta) -> bool:
    def eq(x: float, y: float) -> bool:
        return (np.isnan(x) and np.isnan(y)) or x == y

    return a.name == b.name and eq(a.lat, b.lat) and eq(a.lon, b.lon) and eq(a.elevation, b.elevation)


# --------------------------------------------------------------------------- one dataset
def combine_stations(parts: Sequence[tuple]) -> xr.Dataset:
    """Station records ``(meta, period, dates, values, flags, lines)`` as one ``(station, time)`` dataset.

    A station may come in several parts (two exports of one WMO station, for two years):
    their metadata must agree, and a day in two parts must hold the same value and flag.
    """
    if not parts:
        raise InputError("no station records")
    by: dict[str, list] = {}
    for meta, period, dates, values, flags, lines in parts:
        by.setdefault(meta.station, []).append((meta, period, dates, values, flags, lines))
    starts, ends = [], []
    for recs in by.values():
        for meta, period, dates, *_ in recs:
            if dates.size:
                starts.append(dates.min()), ends.append(dates.max())
            if period is not None:
                starts.append(period[0]), ends.append(period[1])
    if not starts:
        raise InputError("the station files hold no day")
    time = np.arange(min(starts), max(ends) + np.timedelta64(1, "D"), dtype="datetime64[D]")
    ids = sorted(by)
    rain = np.full((len(ids), time.size), np.nan)
    flag = np.full((len(ids), time.size), _FLAG["absent"], dtype=np.uint8)
    metas: list[StationMeta] = []
    for k, sid in enumerate(ids):
        recs = by[sid]
        first = recs[0][0]
        for meta, *_ in recs[1:]:
            if not _same_meta(first, meta):
                raise InputError(Problem(f"station {sid!r} has other metadata in {meta.source} than in "
                                         f"{first.source}", file=meta.source))
        metas.append(first)
        seen_line = np.zeros(time.size, np.int64)
        seen_src: dict[int, str] = {}
        for meta, _period, dates, values, flags, lines in recs:
            pos = (dates - time[0]).astype(np.int64)
            for j, v, f, ln in zip(pos, values, flags, lines):
                if seen_line[j]:
                    same = flag[k, j] == f and ((np.isnan(rain[k, j]) and np.isnan(v)) or rain[k, j] == v)
                    if not same:
                        raise InputError(Problem(
                            f"station {sid!r}: {time[j]} is listed twice with different values (also "
                            f"{seen_src[int(j)]} line {seen_line[j]})", file=meta.source, **_where(Path(meta.source), int(ln))))
                    continue
                rain[k, j], flag[k, j] = v, f
                seen_line[j], seen_src[int(j)] = ln, meta.source
    ds = xr.Dataset(
        {"rain": (("station", "time"), rain, {"units": "mm/day", "long_name": "daily rainfall at the station"}),
         "flag": (("station", "time"), flag, {"flags": list(FLAGS),
                                              "long_name": "why the day's value is what it is (index into flags)"})},
        coords={"station": np.array(ids, dtype=object), "time": time.astype("datetime64[ns]"),
                "name": ("station", np.array([m.name for m in metas], dtype=object)),
                "lat": ("station", np.array([m.lat for m in metas], float), {"units": "degrees_north"}),
                "lon": ("station", np.array([m.lon for m in metas], float), {"units": "degrees_east"}),
                "elevation": ("station", np.array([m.elevation for m in metas], float), {"units": "m"}),
                "source": ("station", np.array([m.source for m in metas], dtype=object))},
        attrs={"frequency": "day"})
    return ds


# --------------------------------------------------------------------------- assignment tables, satellite pixels
def read_assignment_table(path: str | PathLike[str]) -> list[dict]:
    """A district → station table: ``district_id, station_id[, backups]`` (back-ups ``;``-separated).

    Returns
    -------
    list of dict
        ``{"district_id", "station_id", "backups": [...]}`` per row, in file order.

    Raises
    ------
    InputError
        Missing columns, an empty id, a district listed twice (file, line, column).
    """
    p = Path(os.fspath(path))
    frame, lines = _table(p)
    for c in ("district_id", "station_id"):
        if c not in frame.columns:
            raise InputError(f"missing column {c!r}; columns are: {', '.join(map(str, frame.columns))}", file=p)
    out, seen = [], {}
    for (_, row), line in zip(frame.iterrows(), lines):
        district, station = str(row["district_id"]).strip(), str(row["station_id"]).strip()
        for col, v in (("district_id", district), ("station_id", station)):
            if not v:
                raise InputError(Problem(f"empty {col}", file=p, column=col, **_where(p, line)))
        if district in seen:
            raise InputError(Problem(f"district {district!r} listed twice (also line {seen[district]})", file=p,
                                     column="district_id", **_where(p, line)))
        seen[district] = int(line)
        backups = [b.strip() for b in str(row.get("backups", "") or "").split(";") if b.strip()]
        out.append({"district_id": district, "station_id": station, "backups": backups})
    return out


def sample_grid(stations: xr.Dataset, path: str | PathLike[str], *, variable: str = "precip",
                units: str | None = None) -> xr.DataArray:
    """Daily gridded rainfall at each station's pixel [mm/day], on the stations' days.

    The pixel is the grid cell holding the station (nearest cell centre, and the station
    within that cell); a station outside the grid, or without a position, gets NaN
    (it cannot be filled from the grid). Fill values and implausible values are NaN.

    Raises
    ------
    InputError
        The grid cannot be read, or is not daily rainfall.
    """
    from .gridded import open_rainfall

    grid = open_rainfall(path, variable=variable, units=units)
    if grid.attrs.get("frequency") != "day":
        raise InputError(f"the grid that fills station gaps must be daily rainfall [mm/day]; it is "
                         f"{grid.attrs.get('units')}", file=path)
    times = stations["time"].values
    lat = np.asarray(stations["lat"].values, float)
    lon = np.asarray(stations["lon"].values, float)
    crs = grid.rio.crs
    if crs is not None and not crs.is_geographic:
        from pyproj import Transformer

        xs, ys = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    else:
        xs, ys = lon, lat
    gx, gy = np.asarray(grid["x"].values, float), np.asarray(grid["y"].values, float)
    out = np.full((lat.size, times.size), np.nan)
    window = grid.sel(time=slice(times[0], times[-1]))
    wt = window["time"].values
    pos = np.searchsorted(times, wt)
    for i in range(lat.size):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])) or gx.size < 2 or gy.size < 2:
            continue
        ix, iy = int(np.abs(gx - xs[i]).argmin()), int(np.abs(gy - ys[i]).argmin())
        dx, dy = abs(gx[1] - gx[0]) / 2, abs(gy[1] - gy[0]) / 2
        if abs(gx[ix] - xs[i]) > dx * 1.0001 or abs(gy[iy] - ys[i]) > dy * 1.0001:
            continue  # outside the grid
        out[i, pos] = np.asarray(window.isel(x=ix, y=iy).values, float)
    return xr.DataArray(out, dims=("station", "time"), coords={"station": stations["station"].values, "time": times},
                        attrs={"units": "mm/day", "source": str(path)})
