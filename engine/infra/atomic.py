"""Atomic, deterministic file writes: tables (Parquet, CSV) and output folders.

Every file panen publishes is written to a temporary file in the destination's folder,
fsynced, then renamed over the destination: a reader sees the old file or the complete
new one, never half of one. A whole output folder is staged beside its target and moved
into place at the end (:mod:`panen.engine.infra.staging`; a killed run is rolled back by
:mod:`panen.engine.infra.outdir`). The same table written with the same pyarrow version
gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from panen.engine.infra.safetext import csv_safe_table

__all__ = ["FIXED_GPKG_DATE", "PARQUET_OPTIONS", "BackgroundParquet", "ParquetFile", "csv_bytes", "fixed_gpkg_date",
           "write_bytes_atomic", "write_table_atomic"]

#: Parquet settings fixed for byte-identical output (with the same pyarrow version).
# lz4, not zstd: on the 10M-policy benchmark (benchmarks/ledger.py) the write takes 4.8 s
# with lz4 against 5.8 s with zstd level 1 (270 MiB against 170 MiB): the batch target is
# time, and the ledger is archived compressed elsewhere if at all.
PARQUET_OPTIONS: dict = {"compression": "lz4", "row_group_size": 1 << 20,
                         "version": "2.6"}



def _statistics_columns(t: pa.Table) -> list[str]:
    """Min/max statistics for all but free text (ids: costly to compare, useless to filter on)."""
    return [f.name for f in t.schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]


def _dictionary_columns(t: pa.Table, sample: int = 65_536, share: float = 0.1) -> list[str]:
    """Columns worth Parquet dictionary encoding: dictionary arrays, and columns whose first
    ``sample`` values are less than ``share`` distinct (deterministic: depends only on the data).

    Trying a dictionary on a nearly unique column (ids, money amounts) costs a fifth of the
    write and is then abandoned by the writer anyway.
    """
    names = []
    # never more than the first row group, so that a file written row group by row group
    # (build_ledger's stream) decides the same as one written from the whole table
    sample = min(sample, int(PARQUET_OPTIONS["row_group_size"]))
    for f in t.schema:
        if pa.types.is_dictionary(f.type):
            names.append(f.name)
        elif t.num_rows:
            head = t[f.name].slice(0, sample)
            if pc.count_distinct(head, mode="all").as_py() < share * len(head):
                names.append(f.name)
    return names


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ParquetFile:
    """A Parquet file written to a temp file beside ``path`` and renamed over it on commit.

    The writer settings (:data:`PARQUET_OPTIONS`, dictionary and statistics columns) are
    fixed by the first table written, so writing a ledger in one piece or row group by row
    group (each exactly ``row_group_size`` rows but the last) gives the same bytes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.tmp = Path(tmp)
        self._handle = os.fdopen(fd, "wb")
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            opts = {k: v for k, v in PARQUET_OPTIONS.items() if k != "row_group_size"}
            self._writer = pq.ParquetWriter(self._handle, table.schema, use_dictionary=_dictionary_columns(table),
                                            write_statistics=_statistics_columns(table), **opts)
        self._writer.write_table(table, row_group_size=PARQUET_OPTIONS["row_group_size"])

    def commit(self) -> Path:
        """Close, fsync and move into place (a reader sees the old file or the new one)."""
        try:
            if self._writer is not None:
                self._writer.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the temp file; the destination is untouched."""
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # noqa: BLE001 - the write already failed; the temp file goes anyway
            pass
        self._handle.close()
        self.tmp.unlink(missing_ok=True)


_DONE = object()


class BackgroundParquet:
    """Write record batches to an atomic Parquet file from a thread while the caller builds more.

    ``put`` hands a batch over (blocking when two are waiting); leaving the ``with`` block
    normally commits the file, leaving it with an exception (or a failed write) removes
    the temp file and nothing is left behind.
    """

    def __init__(self, path: str | Path) -> None:
        self._file = ParquetFile(path)
        self._queue: queue.Queue = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="panen-parquet-writer", daemon=True)

    def __enter__(self) -> "BackgroundParquet":
        self._thread.start()
        return self

    def put(self, batch: pa.RecordBatch) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._file.write(pa.Table.from_batches([item]))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = exc

    def __exit__(self, exc_type, exc, tb) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if exc_type is not None or self._error is not None:
            self._file.abort()
            if exc_type is None:
                raise self._error
            return
        self._file.commit()


def write_table_atomic(table: pa.Table | pd.DataFrame, path: str | Path,
                       fmt: Literal["parquet", "csv"] | None = None) -> Path:
    """Write a table deterministically and atomically (temp file in the same directory, then rename).

    Parameters
    ----------
    table
        Arrow table or DataFrame (a DataFrame's index is not written).
    path
        Destination; its directory must exist.
    fmt
        ``"parquet"`` or ``"csv"``; default from the suffix.

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    Parquet: pyarrow with :data:`PARQUET_OPTIONS` (lz4, row groups of 2**20 rows,
    format 2.6), no pandas metadata, dictionary encoding only where it pays
    (:func:`_dictionary_columns`), no min/max statistics for free text.

    CSV: header row, comma separated, integers without a decimal point, floats in
    shortest round-trip form, dates ISO, nulls empty, text quoted. Every text cell is made
    safe for spreadsheets (:func:`~panen.engine.infra.safetext.csv_safe_text`): control
    and invisible characters are written as escapes (``\\x00``, ``\\n``), and a cell that
    would start a formula (``= + - @``) and is no plain signed number gets a leading ``'``.
    Keys were checked when read (a key that would need this is rejected), so ids in a CSV
    are the ids in the Parquet file; only free text (messages, raw values echoed in
    ``rejects.csv``, labels as written) can differ.

    Same table and same pyarrow version → the same bytes. The temp file is fsynced before
    the rename, and the rename is atomic on POSIX and Windows: a reader sees the old file
    or the complete new one, never half of one.
    """
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "parquet" if path.suffix.lower() in (".parquet", ".pq")
                  else None)
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"write_table_atomic: cannot tell the format of {path}; pass fmt='parquet' or 'csv'")
    t = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    metadata = {k: v for k, v in (t.schema.metadata or {}).items() if k != b"pandas"}
    t = t.replace_schema_metadata(metadata or None)
    if fmt == "parquet":
        sink = ParquetFile(path)
        try:
            sink.write(t)
        except BaseException:
            sink.abort()
            raise
        return sink.commit()
    t = csv_safe_table(t)
    with _atomic_handle(path) as handle:  # streamed: a ledger's CSV is never held in memory whole
        pcsv.write_csv(t, handle, _CSV_OPTIONS)
    return path


@contextlib.contextmanager
def _atomic_handle(path: Path):
    """A binary handle on a temp file beside ``path``: fsynced and renamed over ``path`` when the
    block ends, removed (``path`` untouched) when it raises."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


_CSV_OPTIONS = pcsv.WriteOptions(include_header=True, delimiter=",")


def csv_bytes(table: pa.Table | pd.DataFrame) -> bytes:
    """A table as the CSV bytes :func:`write_table_atomic` writes (its Notes: header, commas,
    integers without a decimal point, text made safe for spreadsheets)."""
    t = table if isinstance(table, pa.Table) else pa.Table.from_pandas(table, preserve_index=False)
    metadata = {k: v for k, v in (t.schema.metadata or {}).items() if k != b"pandas"}
    t = csv_safe_table(t.replace_schema_metadata(metadata or None))
    buffer = io.BytesIO()
    pcsv.write_csv(t, buffer, _CSV_OPTIONS)
    return buffer.getvalue()


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in its folder, fsynced, renamed over it."""
    path = Path(path)
    with _atomic_handle(path) as handle:
        handle.write(data)
    return path


#: ``gpkg_contents.last_change`` written into GeoPackages: a fixed date, not the wall
#: clock, so the same data gives a byte-identical file (reruns are compared by hash).
FIXED_GPKG_DATE = "2000-01-01T00:00:00.000Z"


@contextlib.contextmanager
def fixed_gpkg_date():
    """Within this block GDAL stamps GeoPackages with :data:`FIXED_GPKG_DATE`."""
    import pyogrio

    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_DATE})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
