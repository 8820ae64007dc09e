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

Bad input raises :class:`~panen.engine.errors.InputError` naming the file, the 1-based
data row (header excluded) and the column; every problem found is reported at once. A
yield that parses as infinite (``inf``) is bad input, not a number to normalise or to
skip: the trigger and the backtest loss reference would otherwise disagree on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from panen.engine.errors import InputError, Problem

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
    wanted = list(dict.fromkeys([district_column, year_column, yield_column]
                                + ([season_column] if season_column else []) + extra))
    raw = _read_table(path, wanted)

    divisor = _DIVISOR[units]
    missing_numbers, missing_tokens = _split_missing(missing_values)
    problems: list[Problem] = []

    ids = _ids_as_text(raw[district_column])
    for i in np.flatnonzero(ids.isna().to_numpy()):
        problems.append(Problem("district id is empty", file=path, row=int(i) + 1, column=district_column))
    if district_map:
        lookup = {str(k).strip(): str(v) for k, v in district_map.items()}
        ids = ids.map(lambda v: lookup.get(v, v) if isinstance(v, str) else v)

    years = _parse_years(raw[year_column], path, year_column, problems)
    yields = {col: _parse_yields(raw[col], path, col, divisor, missing_numbers, missing_tokens, problems)
              for col in [yield_column, *extra]}

    key_columns = {"district_id": ids, "year": years}
    if season_column:
        seasons = _ids_as_text(raw[season_column])
        for i in np.flatnonzero(seasons.isna().to_numpy()):
            problems.append(Problem("season is empty", file=path, row=int(i) + 1, column=season_column))
        key_columns["season"] = seasons
    problems.extend(_duplicates(pd.DataFrame(key_columns), path, district_column, year_column, season_column))
    if problems:
        raise InputError(problems)

    out = pd.DataFrame({
        "district_id": ids.astype(str).to_numpy(),
        "year": years.astype(np.int64).to_numpy(),
        "yield": yields[yield_column],
    })
    if season_column:
        out["season"] = key_columns["season"].astype(str).to_numpy()
    for col in extra:
        if col in out.columns:
            raise InputError(f"extra column {col!r} clashes with a normalised column name", file=path, column=col)
        out[col] = yields[col]
    out.attrs.update(units="t/ha", source=str(path))
    return out


# --------------------------------------------------------------------------- helpers
def _read_table(path: Path, wanted: list[str]) -> pd.DataFrame:
    """The ``wanted`` columns of a CSV (all as text) or Parquet (as stored) file."""
    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            import pyarrow.parquet as pq

            available = list(pq.read_schema(path).names)
        else:
            available = list(pd.read_csv(path, nrows=0).columns)
    except Exception as exc:  # pandas/pyarrow raise a family of errors; report them all alike
        raise InputError(f"cannot read yields file: {exc}", file=path) from exc
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError([
            Problem(f"column {c!r} not found; available columns: {', '.join(map(str, available))}",
                    file=path, column=c)
            for c in missing
        ])
    try:
        if path.suffix.lower() in _PARQUET_SUFFIXES:
            return pd.read_parquet(path, columns=wanted)
        return pd.read_csv(path, usecols=wanted, dtype=str)
    except Exception as exc:
        raise InputError(f"cannot read yields file: {exc}", file=path) from exc


def _split_missing(values: Iterable[float | str]) -> tuple[np.ndarray, set[str]]:
    numbers, tokens = [], set()
    for v in values:
        if isinstance(v, str):
            tokens.add(v.strip())
        else:
            numbers.append(float(v))
    return np.asarray(numbers, dtype=float), tokens


def _ids_as_text(values: pd.Series) -> pd.Series:
    """Ids as stripped text (object dtype), NaN for null/blank; ``3212.0`` → ``"3212"``."""
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if (finite == np.round(finite)).all():
            values = values.astype("Int64")
    out = values.astype("string").str.strip()
    out = out.mask(out == "")
    return out.astype(object).where(out.notna(), np.nan)


def _to_number(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(numbers, bad)``: float values (NaN where blank) and a mask of unparsable cells."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(values), dtype=bool)
    text = values.astype("string").str.strip()
    blank = text.isna() | (text == "")
    numbers = pd.to_numeric(text.mask(blank), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(numbers) & ~blank.to_numpy(dtype=bool) & ~text.str.lower().isin(["nan"]).to_numpy(dtype=bool, na_value=False)
    return numbers, bad


def _parse_years(values: pd.Series, path: Path, column: str, problems: list[Problem]) -> pd.Series:
    numbers, bad = _to_number(values)
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    for i in np.flatnonzero(~whole):
        cell = values.iloc[i]
        what = "year is empty" if not bad[i] and np.isnan(numbers[i]) else f"year {cell!r} is not a whole number"
        problems.append(Problem(what, file=path, row=int(i) + 1, column=column))
    return pd.Series(np.where(whole, numbers, 0), index=values.index)


def _parse_yields(values: pd.Series, path: Path, column: str, divisor: int, missing_numbers: np.ndarray,
                  missing_tokens: set[str], problems: list[Problem]) -> np.ndarray:
    """Yield cells → [t/ha]; missing codes, blanks and non-positive values → NaN."""
    if missing_tokens and not pd.api.types.is_numeric_dtype(values.dtype):
        text = values.astype("string").str.strip()
        values = values.mask(text.isin(list(missing_tokens)).to_numpy(dtype=bool, na_value=False))
    numbers, bad = _to_number(values)
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
