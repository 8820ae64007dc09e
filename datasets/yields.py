"""Read district crop-yield tables (CSV or Parquet) into the engine's yields frame.

The area-yield trigger settles on a table of one yield per district and year (optionally
per season). Published tables differ in column names and units, so this reader maps a
file's columns onto ``district_id, year, yield`` and converts the yield to [t/ha]:

==========  ==================  ==========================================================
units       factor to [t/ha]    typical source
==========  ==================  ==========================================================
``t/ha``    1                   already tonnes per hectare
``ku/ha``   0.1                 BPS ``produktivitas_ku_ha`` (1 kuintal = 100 kg)
``q/ha``    0.1                 quintal per hectare (India, Europe; same as ``ku/ha``)
``kg/ha``   0.001               ICRISAT District Level Database ``RICE YIELD (Kg per ha)``
==========  ==================  ==========================================================

Missing years are missing, never zero. A yield becomes missing (NaN) when it is

* blank or a pandas NA token (``NA``, ``NaN``, ``null``, ...);
* listed in ``missing_values`` — numbers are compared numerically after parsing (``-1``
  matches ``-1.0``: the ICRISAT DLD code), strings are compared to the stripped cell text
  (``"-"``, ``"..."`` as statistics offices print them);
* zero or negative: no district harvests a non-positive yield; such cells in published
  tables mean "not grown / not reported" (the ICRISAT DLD prints ``0`` where the crop
  area is 0). A true total failure must be reported as a small positive yield.

Rows with a missing yield are kept (as NaN), so the table still shows which years were
asked for; years absent from the file are simply absent. Both count as "not available" to
the triggers.

District (and season) ids are normalised keys, as the register's
(:mod:`panen.datasets.ids`): ``"3271 "`` is district ``3271``. An insurer's or statistics
office's own export is read with :class:`~panen.datasets.tables.TableOptions` (separator,
encoding, decimal mark, ``columns:`` mapping its headers).

Bad input raises :class:`~panen.engine.errors.InputError` naming the file, the 1-based
data row (header excluded), its text line (CSV) and the column; every problem found is
reported at once. A
yield that parses as infinite (``inf``) is bad input, not a number to normalise or to
skip: the trigger and the backtest loss reference would otherwise disagree on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from panen.engine.errors import InputError, Problem
from panen.engine.infra.arrowcols import ISO, TextFormat, number_column

from .ids import id_problems, ids_as_keys
from .tables import TableOptions, read_header, read_located

__all__ = ["YIELD_UNITS", "read_yields"]

#: Factor converting a yield in each supported unit to [t/ha].
YIELD_UNITS: dict[str, float] = {"t/ha": 1.0, "ku/ha": 0.1, "q/ha": 0.1, "kg/ha": 0.001}

# conversion by exact division, so 53.68 ku/ha reads as 5.368 t/ha, not 5.368000000000001
_DIVISOR: dict[str, int] = {"t/ha": 1, "ku/ha": 10, "q/ha": 10, "kg/ha": 1000}

_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def read_yields(
    path: str | PathLike[str],
    *,
    district_column: str = "district_id",
    year_column: str = "year",
    yield_column: str = "yield",
    season_column: str | None = None,
    units: str = "t/ha",
    missing_values: Iterable[float | str] = (),
    district_map: Mapping[str, str] | None = None,
    extra_columns: Iterable[str] = (),
    options: TableOptions | None = None,
    area_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a district yield table and normalise it to ``district_id, year, yield`` [t/ha].

    Parameters
    ----------
    path
        CSV file, or Parquet (suffix ``.parquet``, ``.pq`` or ``.parq``).
    district_column
        Column holding the district key (e.g. ``kode_bps`` for BPS codes such as ``3212``,
        ``Dist Code`` for ICRISAT). Read as text; integer-valued numbers become ``"3212"``.
    year_column
        Column holding the (harvest) year; must be a whole number.
    yield_column
        Column holding the yield, in ``units``.
    season_column
        Optional column naming the season (``kharif``, ``MT1``, ...); kept as ``season``
        and part of the uniqueness key.
    units
        Units of ``yield_column``: ``t/ha``, ``ku/ha``, ``q/ha`` or ``kg/ha`` (see
        :data:`YIELD_UNITS`).
    missing_values
        Codes meaning "missing" in the yield (and extra) columns, e.g. ``(-1,)`` for the
        ICRISAT DLD. Zero and negative yields are always missing.
    district_map
        Optional ``{source id: district id}`` renaming applied to the (text) ids, e.g.
        to map statistics codes onto the district layer's codes. Ids not in the map are
        kept unchanged. Two source ids mapped onto one district and year are duplicates.
    extra_columns
        Further yield-valued columns to keep under their own names (e.g. an expected
        yield for ``normal_yield: {method: given, column: expected}``), converted with
        the same ``units`` and missing-value rules.
    area_columns
        Further area-valued columns [ha] to keep under their own names, not converted
        (e.g. the season's sown area for ``area_correction``); blank, missing-coded and
        non-positive cells are missing, as for yields.
    options
        How the file is written (separator, encoding, decimal mark, its own headers mapped
        onto the column names above: :class:`~panen.datasets.tables.TableOptions`).

    Returns
    -------
    pandas.DataFrame
        One row per data row, in file order: ``district_id`` [str], ``year`` [int64],
        ``yield`` [t/ha, float64, NaN = missing], then ``season`` [str] if
        ``season_column`` was given, then the ``extra_columns`` [t/ha]. ``attrs`` holds
        ``units`` (``"t/ha"``) and ``source`` (the path).

    Raises
    ------
    InputError
        File missing or unreadable; unknown ``units``; a named column absent (the message
        lists the available columns); an empty district id or season; a year that is not
        a whole number; a yield cell that is not a number; duplicate
        ``(district, year[, season])`` rows (all rows of each duplicate named).

    Examples
    --------
    BPS West Java rice productivity, published in quintal per hectare:

    >>> df = read_yields("bps_jabar_padi_kabkota_2020_2024.csv", district_column="kode_bps",
    ...                  yield_column="produktivitas_ku_ha", units="ku/ha")  # doctest: +SKIP
    >>> df.loc[(df.district_id == "3201") & (df.year == 2020), "yield"].item()  # doctest: +SKIP
    5.368
    """
    path = Path(path)
    if units not in YIELD_UNITS:
        raise InputError(f"unknown yield units {units!r}; allowed: {', '.join(YIELD_UNITS)}",
                         file=path, column=yield_column)
    if not path.exists():
        raise InputError("yields file not found", file=path)
    extra = list(dict.fromkeys(extra_columns))
    areas = [c for c in dict.fromkeys(area_columns) if c not in extra]
    wanted = list(dict.fromkeys([district_column, year_column, yield_column]
                                + ([season_column] if season_column else []) + extra + areas))
    options = options or TableOptions()
    raw, lines = _read_table(path, wanted, options)
    text = options.text

    divisor = _DIVISOR[units]
    missing_numbers, missing_tokens = _split_missing(missing_values)
    problems: list[Problem] = []

    ids, bad, unsafe = ids_as_keys(raw[district_column])
    empty = ids.isna().to_numpy() & ~bad & ~unsafe
    for i in np.flatnonzero(empty):
        problems.append(Problem("district id is empty", file=path, row=int(i) + 1, column=district_column))
    problems += id_problems(raw[district_column], bad, unsafe, file=path, column=district_column,
                            what="district id")
    if district_map:
        keys, _, _ = ids_as_keys(pd.Series([str(k) for k in district_map], dtype=object))
        lookup = {k: str(v) for k, v in zip(keys.tolist(), district_map.values())}
        ids = ids.map(lambda v: lookup.get(v, v) if isinstance(v, str) else v)

    years = _parse_years(raw[year_column], path, year_column, problems, text)
    yields = {col: _parse_yields(raw[col], path, col, divisor, missing_numbers, missing_tokens, problems, text)
              for col in [yield_column, *extra]}
    yields.update({col: _parse_yields(raw[col], path, col, 1, missing_numbers, missing_tokens, problems, text)
                   for col in areas})  # hectares: not converted

    key_columns = {"district_id": ids, "year": years}
    if season_column:
        seasons, s_bad, s_unsafe = ids_as_keys(raw[season_column])
        for i in np.flatnonzero(seasons.isna().to_numpy() & ~s_bad & ~s_unsafe):
            problems.append(Problem("season is empty", file=path, row=int(i) + 1, column=season_column))
        problems += id_problems(raw[season_column], s_bad, s_unsafe, file=path, column=season_column, what="season")
        key_columns["season"] = seasons
    problems.extend(_duplicates(pd.DataFrame(key_columns), path, district_column, year_column, season_column))
    if problems:
        raise InputError(_with_lines(problems, lines, options))

    out = pd.DataFrame({
        "district_id": ids.astype(str).to_numpy(),
        "year": years.astype(np.int64).to_numpy(),
        "yield": yields[yield_column],
    })
    if season_column:
        out["season"] = key_columns["season"].astype(str).to_numpy()
    for col in [*extra, *areas]:
        if col in out.columns:
            raise InputError(f"extra column {col!r} clashes with a normalised column name", file=path, column=col)
        out[col] = yields[col]
    out.attrs.update(units="t/ha", source=str(path))
    return out


# --------------------------------------------------------------------------- helpers
def _read_table(path: Path, wanted: list[str], options: TableOptions
                ) -> tuple[pd.DataFrame, Callable[[np.ndarray], np.ndarray] | None]:
    """The ``wanted`` columns of a CSV (all as text; pandas' NA tokens missing) or Parquet (as
    stored) file, and the rows' text lines (CSV)."""
    available = read_header(path, [], what="yields file", options=options)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError([
            Problem(f"column {c!r} not found; available columns: {', '.join(map(str, available))}",
                    file=path, column=c)
            for c in missing
        ])
    located = read_located(path, wanted, what="yields file", options=options)
    table = located.table.select(wanted)
    columns = {}
    for name in wanted:
        col = table[name]
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            # the tokens pandas reads as missing (NA, NaN, null, #N/A, ...) are missing here too
            col = pc.if_else(pc.is_in(pc.utf8_trim_whitespace(col), value_set=_NA_TOKENS),
                             pa.scalar(None, col.type), col)
            columns[name] = pd.Series(np.asarray(col.to_pandas(), dtype=object))
        else:
            columns[name] = col.to_pandas()
    return pd.DataFrame(columns), located.lines


#: Cell texts pandas' CSV reader reads as missing (its default ``na_values``).
_NA_TOKENS = pa.array(["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                       "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"], pa.string())


def _with_lines(problems: list[Problem], lines: Callable[[np.ndarray], np.ndarray] | None,
                options: TableOptions) -> list[Problem]:
    """The problems, each row-located one with its text line (and the column as the file names it)."""
    shown = {dst: src for src, dst in options.columns.items()}
    rows = np.array([p.row for p in problems if p.row is not None], np.int64)
    at = dict(zip(rows.tolist(), lines(rows - 1).tolist())) if lines is not None and rows.size else {}
    return [dataclasses.replace(p, line=at.get(p.row) if p.row is not None else p.line,
                                column=shown.get(p.column, p.column)) for p in problems]


def _split_missing(values: Iterable[float | str]) -> tuple[np.ndarray, set[str]]:
    numbers, tokens = [], set()
    for v in values:
        if isinstance(v, str):
            tokens.add(v.strip())
        else:
            numbers.append(float(v))
    return np.asarray(numbers, dtype=float), tokens


def _to_number(values: pd.Series, text: TextFormat = ISO) -> tuple[np.ndarray, np.ndarray]:
    """``(numbers, bad)``: float values (NaN where blank) and a mask of unparsable cells.

    Text is read in the file's :class:`TextFormat` (``52,3`` with ``decimal: ","``); an
    infinite value is a number here (the callers refuse it).
    """
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(values), dtype=bool)
    arr = pa.chunked_array([pa.array(values.astype("string").array, type=pa.string(), from_pandas=True)])
    numbers, missing, bad = number_column(arr, "", "", text)
    numbers = np.where(missing, np.nan, numbers)
    return numbers, bad & ~np.isinf(numbers)


def _parse_years(values: pd.Series, path: Path, column: str, problems: list[Problem],
                 text: TextFormat = ISO) -> pd.Series:
    numbers, bad = _to_number(values, text)
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    for i in np.flatnonzero(~whole):
        cell = values.iloc[i]
        what = "year is empty" if not bad[i] and np.isnan(numbers[i]) else f"year {cell!r} is not a whole number"
        problems.append(Problem(what, file=path, row=int(i) + 1, column=column))
    return pd.Series(np.where(whole, numbers, 0), index=values.index)


def _parse_yields(values: pd.Series, path: Path, column: str, divisor: int, missing_numbers: np.ndarray,
                  missing_tokens: set[str], problems: list[Problem], text: TextFormat = ISO) -> np.ndarray:
    """Yield cells → [t/ha]; missing codes, blanks and non-positive values → NaN."""
    if missing_tokens and not pd.api.types.is_numeric_dtype(values.dtype):
        cells = values.astype("string").str.strip()
        values = values.mask(cells.isin(list(missing_tokens)).to_numpy(dtype=bool, na_value=False))
    numbers, bad = _to_number(values, text)
    for i in np.flatnonzero(bad):
        problems.append(Problem(f"yield {values.iloc[i]!r} is not a number", file=path, row=int(i) + 1,
                                column=column))
    for i in np.flatnonzero(np.isinf(numbers)):  # "inf" parses; no harvest is infinite
        problems.append(Problem(f"yield {values.iloc[i]!r} is not a finite number", file=path,
                                row=int(i) + 1, column=column))
    if missing_numbers.size:
        numbers = np.where(np.isin(numbers, missing_numbers), np.nan, numbers)
    numbers = np.where(numbers > 0, numbers, np.nan)  # NaN > 0 is False: NaN stays NaN
    return numbers / divisor


def _duplicates(keys: pd.DataFrame, path: Path, district_column: str, year_column: str,
                season_column: str | None) -> list[Problem]:
    usable = keys.notna().all(axis=1)
    k = keys[usable]
    dup = k.duplicated(keep=False)
    problems = []
    if not dup.any():
        return problems
    positions = np.flatnonzero(usable.to_numpy())[dup.to_numpy()]
    groups: dict[tuple, list[int]] = {}
    for pos, row in zip(positions, k[dup].itertuples(index=False)):
        groups.setdefault(tuple(row), []).append(int(pos) + 1)
    for key, rows in groups.items():
        label = f"district {key[0]!r}, year {int(key[1])}" + (f", season {key[2]!r}" if season_column else "")
        problems.append(Problem(f"duplicate rows for {label}: rows {', '.join(map(str, rows))}",
                                file=path, row=rows[0], column=district_column))
    return problems
