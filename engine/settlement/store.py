"""The settlement store: what every published batch of a season paid, kept in a database.

A season is settled in several batches — on account during the season, a final
settlement, corrections after a rainfall product update or a register fix (PMFBY's
revised operational guidelines, para 21: on-account payments on mid-season adversity are
"adjusted at final settlement"). Each batch pays only the difference between what a payee
is now due and what the store says was already paid; an overpayment is never a negative
payment but a *recovery* for a person to decide.

The database is reached through SQLAlchemy Core: an embedded SQLite file by default (no
server to start), or a PostgreSQL database by URL for an insurer's shared store. The
schema is versioned with Alembic; the migration scripts are in ``migrations/`` beside this
module and run programmatically when a store is opened (:func:`open_store`).

Tables (money is integer rupiah, ``BIGINT``, everywhere; never floating point):

``seasons``
    ``season_id``, ``revision`` — a counter raised by every recorded or rolled-back
    batch of the season; a difference remembers the revision it was computed at;
    ``balanced`` — the revision the season's ``balances`` were written at (stale when
    it differs: they are then rebuilt from the rows).
``batches``
    ``batch_id``, ``season_id``, ``sequence`` (1, 2, ... within the season), ``kind``
    (``on_account | final | correction``, or ``reissue``: re-issued payments, made by an
    export), ``state`` (``pending``: recorded before its output is published;
    ``committed``: published), ``status`` (the payment life cycle ``draft → approved →
    exported → confirmed``, or ``cancelled``; a pending batch is a draft), ``run_id``,
    ``created_at`` (as the caller gives it: nothing here reads the clock, so reruns are
    byte-identical), ``inputs`` (the inputs' hashes, JSON text), ``products`` (the
    products the batch settles, JSON text), ``corrects`` (the batch it corrects),
    ``out_dir`` (its output folder), ``content_sha256``, ``exported_with`` (a re-issue
    batch: the batch whose bank file carried it), ``export_sha256`` (the bank file's SHA-256).
``payments``
    ``payment_id`` (unique), ``batch_id``, ``season_id``, the payee key — ``product_id``,
    ``payee_type`` (``policy | farmer | group``, as ``paymentsby`` says), ``district_id``
    (a group is a group *within its district*; empty for farmers and policies),
    ``payee_id`` — its hashes ``payee_hash`` and ``payee_check`` (:func:`payee_hashes`),
    ``amount`` [Rp, > 0], ``status`` (``issued | failed | reissued | confirmed |
    cancelled``), ``reissue_of`` (the failed payment it replaces), ``failure_reason`` (as the
    bank's return gave it). Every row inserted into ``payments`` or ``recoveries`` carries
    both hashes.
``recoveries``
    ``recovery_id``, ``batch_id``, ``season_id``, the payee key, ``amount`` owed back
    [Rp, > 0], ``status`` (``open | decided | superseded | cancelled``), ``recovered`` [Rp] (what a
    person decided came back; the rest is waived), ``superseded_by`` (the later batch
    that restated the payee's overpayment).
``balances``
    Per season, product and payee type, what each payee was paid (as :meth:`owed`
    counts it) and waived [Rp], as arrays sorted by ``payee_hash`` (hash, check, paid,
    waived: little-endian int64, 32 bytes a payee) in ``part`` rows of up to
    :data:`PART_PAYEES` payees. A cache of the rows for :meth:`SettlementStore.difference`,
    kept current in the same transaction by ``record_pending``, ``roll_back`` and
    ``decide_recovery`` (:meth:`SettlementStore._apply`, then ``_bump(balanced=True)``);
    any other change to what counts as paid must bump the season (``_bump``), which makes
    them stale, and they are rebuilt from the rows. Fetching 10,000,000 rows of three integers
    through SQLite's driver took 33 s on a loaded 2-core machine; their balances, 2.5 s.

Publishing a batch is crash safe (the next run recovers):

1. :meth:`SettlementStore.difference` — what each payee is still owed, at the season's
   current revision;
2. :meth:`SettlementStore.record_pending` — the batch and its payments, recorded as
   ``pending`` (refused with :class:`~panen.engine.errors.StoreConflict` if another
   process recorded a batch of the season since step 1: two processes never both pay);
3. the output folder is published (its ``manifest.json`` names the batch:
   ``{"settlement": {"batch_id": ...}}``, :func:`published_batch_id`);
4. :meth:`SettlementStore.commit`.

A run killed between 2 and 4 leaves a pending batch; :meth:`SettlementStore.recover`
resolves it against its output folder: committed if the folder holds that batch, else
rolled back (deleted, as if never recorded). What counts as paid (:meth:`owed`):
payments of pending and committed batches that are ``issued``, ``failed`` (a failed
payment is re-issued by the export workflow, never paid again by a difference) or
``confirmed`` — not ``reissued`` ones, whose replacement counts, nor ``cancelled`` ones —
less what decided recoveries brought back.

Life cycle (``panen payments``): a committed batch is a ``draft``; :meth:`SettlementStore.approve`
makes it ``approved``; :meth:`SettlementStore.export` writes its bank payment file
(:mod:`panen.engine.settlement.bankfiles`) with the season's failed payments re-issued, once
each, in a batch of their own (kind ``reissue``), and makes it ``exported``;
:meth:`SettlementStore.apply_returns` applies a bank return file (all or nothing) and marks
``confirmed`` the batches whose every payment reached its payee;
:meth:`SettlementStore.cancel` cancels the season's latest draft or approved batch.

Migrations: a new database is created at the newest schema. A database whose schema is
*newer* than this panen is refused (:class:`~panen.engine.errors.StoreError`: upgrade
panen). An *older* one is refused unless ``open_store(url, upgrade=True)``: an upgrade is
one-way, and every other panen install sharing the store must then be upgraded too, so it
is done on purpose, never as a side effect of a run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from numba import njit
from panen.engine.errors import InputError, Problem, StoreConflict, StoreError
from panen.engine.infra import outdir
from panen.engine.infra.arrowcols import string_buffers

__all__ = ["BATCH_KINDS", "BATCH_STATUSES", "PAYEE_TYPES", "PAYEE_KEY", "REISSUE_KIND", "Batch", "Difference",
           "Exported", "Recorded", "ReturnsApplied", "SettlementStore", "default_store_path", "metadata", "open_store",
           "published_batch_id"]

BATCH_KINDS = ("on_account", "final", "correction")
#: The kind of a batch of re-issued payments: made by an export (:meth:`SettlementStore.export`), never by a difference.
REISSUE_KIND = "reissue"
BATCH_STATES = ("pending", "committed")
BATCH_STATUSES = ("draft", "approved", "exported", "confirmed", "cancelled")
PAYEE_TYPES = ("policy", "farmer", "group")
PAYMENT_STATUSES = ("issued", "failed", "reissued", "confirmed", "cancelled")
RECOVERY_STATUSES = ("open", "decided", "superseded", "cancelled")
#: Payment statuses that count as paid (a failed payment is re-issued by the export, never by a difference).
PAID_STATUSES = ("issued", "failed", "confirmed")
#: The columns that name a payee (one payee per product: payments are per product and payee).
PAYEE_KEY = ["product_id", "payee_type", "district_id", "payee_id"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "panen_settlement_version"
DEFAULT_FILE_NAME = "panen-settlement.sqlite"
_OPEN_LOCK = 0x70616E656E  # b"panen": PostgreSQL advisory lock held while a store is created or upgraded
_SQLITE_MAGIC = b"SQLite format 3\x00"

# --------------------------------------------------------------------------- schema
metadata = sa.MetaData(naming_convention={
    "pk": "pk_%(table_name)s", "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s", "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"})


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


seasons_table = sa.Table(
    "seasons", metadata,
    sa.Column("season_id", sa.String(), primary_key=True),
    sa.Column("revision", sa.BigInteger(), nullable=False),
    sa.Column("balanced", sa.BigInteger(), nullable=True),
)
batches_table = sa.Table(
    "batches", metadata,
    sa.Column("batch_id", sa.String(), primary_key=True),
    sa.Column("season_id", sa.String(), sa.ForeignKey("seasons.season_id"), nullable=False),
    sa.Column("sequence", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("state", sa.String(), nullable=False, index=True),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("run_id", sa.String(), nullable=False),
    sa.Column("created_at", sa.String(), nullable=False),
    sa.Column("inputs", sa.Text(), nullable=False),
    sa.Column("products", sa.Text(), nullable=False),
    sa.Column("corrects", sa.String(), sa.ForeignKey("batches.batch_id"), nullable=True),
    sa.Column("out_dir", sa.Text(), nullable=False),
    sa.Column("content_sha256", sa.String(), nullable=False),
    sa.Column("exported_with", sa.String(), sa.ForeignKey("batches.batch_id"), nullable=True),  # 0002
    sa.Column("export_sha256", sa.String(), nullable=True),  # 0002
    sa.CheckConstraint(_in("kind", (*BATCH_KINDS, REISSUE_KIND)), name="kind"),
    sa.CheckConstraint(_in("state", BATCH_STATES), name="state"),
    sa.CheckConstraint(_in("status", BATCH_STATUSES), name="status"),
    sa.CheckConstraint("state = 'committed' OR status = 'draft'", name="pending_is_draft"),
    sa.CheckConstraint("kind <> 'correction' OR corrects IS NOT NULL", name="correction_names_batch"),
    sa.CheckConstraint("(kind = 'reissue' AND exported_with IS NOT NULL AND corrects IS NULL)"
                       " OR (kind <> 'reissue' AND exported_with IS NULL)", name="reissue"),
    sa.CheckConstraint("export_sha256 IS NULL OR status IN ('exported', 'confirmed')", name="exported"),
    sa.UniqueConstraint("season_id", "sequence"),
)
payments_table = sa.Table(
    "payments", metadata,
    sa.Column("payment_id", sa.String(), primary_key=True),
    sa.Column("batch_id", sa.String(), sa.ForeignKey("batches.batch_id"), nullable=False, index=True),
    sa.Column("season_id", sa.String(), nullable=False),
    sa.Column("product_id", sa.String(), nullable=False),
    sa.Column("payee_type", sa.String(), nullable=False),
    sa.Column("district_id", sa.String(), nullable=False),
    sa.Column("payee_id", sa.String(), nullable=False),
    sa.Column("payee_hash", sa.BigInteger(), nullable=False),
    sa.Column("payee_check", sa.BigInteger(), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("reissue_of", sa.String(), sa.ForeignKey("payments.payment_id"), nullable=True),
    sa.Column("failure_reason", sa.Text(), nullable=True),  # 0002
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint(_in("payee_type", PAYEE_TYPES), name="payee_type"),
    sa.CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
    sa.CheckConstraint("failure_reason IS NULL OR status IN ('failed', 'reissued')", name="failure_reason"),
)
sa.Index("ix_payments_payee_hash", payments_table.c.season_id, payments_table.c.payee_hash)
sa.Index("ix_payments_failed", payments_table.c.season_id,  # 0002: what the next export re-issues
         sqlite_where=sa.text("status = 'failed'"), postgresql_where=sa.text("status = 'failed'"))
recoveries_table = sa.Table(
    "recoveries", metadata,
    sa.Column("recovery_id", sa.String(), primary_key=True),
    sa.Column("batch_id", sa.String(), sa.ForeignKey("batches.batch_id"), nullable=False, index=True),
    sa.Column("season_id", sa.String(), nullable=False),
    sa.Column("product_id", sa.String(), nullable=False),
    sa.Column("payee_type", sa.String(), nullable=False),
    sa.Column("district_id", sa.String(), nullable=False),
    sa.Column("payee_id", sa.String(), nullable=False),
    sa.Column("payee_hash", sa.BigInteger(), nullable=False),
    sa.Column("payee_check", sa.BigInteger(), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("recovered", sa.BigInteger(), nullable=True),
    sa.Column("superseded_by", sa.String(), sa.ForeignKey("batches.batch_id"), nullable=True),
    sa.CheckConstraint("amount > 0", name="amount_positive"),
    sa.CheckConstraint(_in("payee_type", PAYEE_TYPES), name="payee_type"),
    sa.CheckConstraint(_in("status", RECOVERY_STATUSES), name="status"),
    sa.CheckConstraint("(status = 'decided' AND recovered IS NOT NULL AND recovered >= 0 AND recovered <= amount)"
                       " OR (status <> 'decided' AND recovered IS NULL)", name="decided"),
    sa.CheckConstraint("(status = 'superseded' AND superseded_by IS NOT NULL)"
                       " OR (status <> 'superseded' AND superseded_by IS NULL)", name="superseded"),
)
sa.Index("ix_recoveries_payee", recoveries_table.c.season_id, *(recoveries_table.c[k] for k in PAYEE_KEY))
balances_table = sa.Table(
    "balances", metadata,
    sa.Column("season_id", sa.String(), sa.ForeignKey("seasons.season_id"), primary_key=True),
    sa.Column("product_id", sa.String(), primary_key=True),
    sa.Column("payee_type", sa.String(), primary_key=True),
    sa.Column("part", sa.BigInteger(), primary_key=True),
    sa.Column("payees", sa.BigInteger(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.CheckConstraint(_in("payee_type", PAYEE_TYPES), name="payee_type"),
)
#: A return file's rows, in a temporary table of the transaction applying it (not part of the store's schema).
_returned = sa.Table("panen_returned", sa.MetaData(), sa.Column("line", sa.BigInteger(), primary_key=True),
                     sa.Column("payment_id", sa.String(), unique=True), sa.Column("status", sa.String()),
                     sa.Column("reason", sa.Text()))


# --------------------------------------------------------------------------- values passed around
@dataclass(frozen=True)
class Batch:
    """One batch as recorded: what a run publishes, and what it was computed against.

    Parameters
    ----------
    batch_id, season_id, kind
        As :meth:`SettlementStore.difference` computed them (:meth:`Difference.batch`).
    run_id
        The run that publishes the batch (``manifest.json``'s ``run_id``).
    created_at
        When the batch was made, as the caller says (ISO 8601 text); never the store's clock.
    inputs
        The inputs' hashes, ``{name: sha256}``, stored as JSON text.
    out_dir
        The output folder the batch is published into (absolute path).
    corrects
        The batch this one corrects, or ``None``.
    products
        The products the batch settles (its scope).
    basis
        The season's revision the difference was computed at.
    """

    batch_id: str
    season_id: str
    kind: str
    run_id: str
    created_at: str
    inputs: Mapping[str, str]
    out_dir: str
    corrects: str | None = None
    products: tuple[str, ...] = ()
    basis: int = 0


@dataclass(frozen=True)
class Difference:
    """What a new batch of a season pays and lists for recovery (:meth:`SettlementStore.difference`).

    Attributes
    ----------
    batch_id
        16 hex digits naming the batch: SHA-256 of the season, kind, batch corrected,
        products and the due amounts. The same due amounts for the same season, kind and
        corrected batch are the same batch.
    top_ups
        ``payment_id, season_id, product_id, payee_type, district_id, payee_id, amount,
        due, paid`` [Rp, int64]: one payment per payee still owed something (``amount =
        due − paid > 0``); ``payment_id`` is ``BATCH-PAYEE`` (the batch id and 16 hex
        digits of the payee key's SHA-256), new for every batch.
    recoveries
        ``recovery_id, season_id, product_id, payee_type, district_id, payee_id, amount,
        due, paid`` [Rp, int64]: payees paid more than due (``amount = paid − due −
        waived > 0``); never a negative payment.
    basis
        The season's revision the difference was computed at.
    recorded
        The batch is already in the store (the same batch published again): ``top_ups``
        and ``recoveries`` are what it recorded, and recording it again changes nothing.
    """

    batch_id: str
    season_id: str
    kind: str
    corrects: str | None
    products: tuple[str, ...]
    top_ups: pd.DataFrame
    recoveries: pd.DataFrame
    basis: int
    recorded: bool = False

    def batch(self, *, run_id: str, created_at: str, inputs: Mapping[str, str], out_dir: str | os.PathLike) -> Batch:
        """The :class:`Batch` to record for this difference."""
        return Batch(batch_id=self.batch_id, season_id=self.season_id, kind=self.kind, run_id=run_id,
                     created_at=created_at, inputs=dict(inputs), out_dir=str(Path(out_dir).absolute()),
                     corrects=self.corrects, products=self.products, basis=self.basis)


@dataclass(frozen=True)
class Recorded:
    """The outcome of :meth:`SettlementStore.record_pending`: ``new`` is False when the same
    batch (same id and content) was already recorded, and nothing changed."""

    batch_id: str
    new: bool
    state: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- opening
def default_store_path(out_dir: str | os.PathLike) -> Path:
    """The embedded store of a run into ``out_dir``: ``panen-settlement.sqlite`` in its parent folder.

    Beside the output folders, not inside one: ``--force`` replaces an output folder, never
    the record of what was paid, and every run whose output folders share a parent shares
    the store.
    """
    return Path(os.path.abspath(os.fspath(out_dir))).parent / DEFAULT_FILE_NAME


def _problem(message: str, key: str | None = None) -> StoreError:
    return StoreError(Problem(message, key=key))


def _url_problem(message: str) -> StoreError:
    return _problem(message, key="settlement.url")


def _check_sqlite_path(text: str) -> Path:
    if text in (":memory:", "") or text.startswith("file:"):
        raise _url_problem(f"the settlement store must be a file that outlives the run, not {text or 'an empty path'!r}: "
                       f"name a file path, e.g. sqlite:///out/{DEFAULT_FILE_NAME}")
    path = Path(text)
    if path.is_dir():
        raise _url_problem(f"{path} is a folder; the SQLite settlement store is a file (e.g. {path / DEFAULT_FILE_NAME})")
    if not path.parent.is_dir():
        raise _url_problem(f"the folder of the settlement store {path} does not exist ({path.parent}); create it first")
    if path.exists():
        if not path.is_file():
            raise _url_problem(f"{path} is not a regular file; the SQLite settlement store is a file")
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as exc:
            raise _url_problem(f"cannot read the settlement store {path}: {exc.strerror}") from None
        if head and head != _SQLITE_MAGIC:
            raise _url_problem(f"{path} is not an SQLite database, so not a panen settlement store; name another file")
    return path


def _engine_url(url: str | os.PathLike) -> sa.URL:
    """The SQLAlchemy URL of a store, or :class:`StoreError` for one panen cannot or must not use."""
    if url is None:
        raise _url_problem("no settlement store named: give a file path or a database URL")
    text = os.fspath(url)
    if not isinstance(text, str):
        raise _url_problem(f"the settlement store must be named by text, not {type(url).__name__}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _url_problem("the settlement store's path or URL holds a control character")
    if not text.strip():
        raise _url_problem("the settlement store's path or URL is empty (an unset variable?)")
    if "://" not in text:  # a plain file path: the embedded SQLite store
        path = _check_sqlite_path(text)
        return sa.URL.create("sqlite+pysqlite", database=str(path))
    try:
        u = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise _url_problem(f"not a database URL: {exc}") from None
    backend, driver = u.get_backend_name(), u.get_driver_name()
    shown = u.render_as_string(hide_password=True)
    if backend == "sqlite":
        if driver not in ("pysqlite", "") or u.query:
            raise _url_problem(f"{shown}: an SQLite store is named sqlite:///PATH, without options or another driver")
        path = _check_sqlite_path(u.database or "")
        return sa.URL.create("sqlite+pysqlite", database=str(path))
    if backend == "postgresql":
        if u.drivername not in ("postgresql", "postgresql+psycopg"):
            raise _url_problem(f"{shown}: panen reaches PostgreSQL through psycopg 3: write postgresql+psycopg://...")
        if not u.database:
            raise _url_problem(f"{shown}: name the database, e.g. postgresql+psycopg://USER@HOST/panen")
        return u.set(drivername="postgresql+psycopg")
    raise _url_problem(f"{shown}: unsupported database {backend!r}; the settlement store runs on SQLite "
                   f"(a file path or sqlite:///PATH) or PostgreSQL (postgresql+psycopg://USER@HOST/DATABASE)")


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    path = Path(url.database)
    if not path.exists():  # created private: the store names farmers and what they were paid
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = sa.create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every query
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")  # readers never block the writer, nor it them
        cur.execute("PRAGMA synchronous = FULL")  # a committed batch survives a power cut
        cur.execute("PRAGMA cache_size = -131072")  # 128 MiB of pages at most: a batch of a million rows stays in memory
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # pragma: no cover - exercised through every transaction
        # A write transaction takes the database's write lock up front (BEGIN IMMEDIATE), so two
        # writers queue instead of both reading and then failing to upgrade their locks.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("panen_write") else "BEGIN")

    return engine


def open_store(url: str | os.PathLike, *, upgrade: bool = False) -> "SettlementStore":
    """Open (creating it if new) the settlement store at ``url``.

    Parameters
    ----------
    url
        A file path (the embedded SQLite store; its folder must exist), ``sqlite:///PATH``,
        or ``postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE`` (``postgresql://`` is
        read as psycopg; a Unix socket is ``...@/DATABASE?host=/run/postgresql``).
    upgrade
        Migrate a store written by an older panen to this panen's schema. Without it such a
        store is refused: an upgrade is one-way and other panen installs sharing the store
        must be upgraded too.

    Raises
    ------
    StoreError
        A URL or path panen cannot use (another database, an in-memory SQLite, a folder, a
        file that is not an SQLite database, a missing folder), a database that cannot be
        reached, one holding other tables than a panen store's, one whose schema is newer
        than this panen, or an older one without ``upgrade``. Passwords are never shown.
    """
    engine_url = _engine_url(url)
    shown = engine_url.render_as_string(hide_password=True)
    if engine_url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(engine_url)
    else:
        engine = sa.create_engine(engine_url, connect_args={"connect_timeout": 10}, hide_parameters=True,
                                  pool_pre_ping=True)
    store = SettlementStore(engine, shown)
    try:
        store._migrate(upgrade=upgrade)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise _url_problem(f"cannot open the settlement store {shown}: {reason}") from None
    except BaseException:
        engine.dispose()
        raise
    return store


def published_batch_id(out_dir: str | os.PathLike) -> str | None:
    """The batch an output folder holds: ``manifest.json``'s ``settlement.batch_id`` (``None`` if none)."""
    try:
        manifest = json.loads((Path(out_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    settlement = manifest.get("settlement") if isinstance(manifest, dict) else None
    batch_id = settlement.get("batch_id") if isinstance(settlement, dict) else None
    return batch_id if isinstance(batch_id, str) else None


# --------------------------------------------------------------------------- helpers on payee tables
def _query_frame(conn: sa.Connection, query, columns: list[str]) -> pd.DataFrame:
    """A query's rows as a DataFrame, column by column, from the driver's own tuples (SQLAlchemy's
    row objects would cost more than the database; the columns read are text and integers)."""
    rows = conn.execute(query).cursor.fetchall()
    values = list(zip(*rows)) if rows else [()] * len(columns)
    return pd.DataFrame({c: list(v) for c, v in zip(columns, values)}, columns=columns)


def _bulk_insert(conn: sa.Connection, table: sa.Table, columns: list[str], rows: Iterable[tuple]) -> None:
    """Insert many rows inside the current transaction: PostgreSQL's COPY, SQLite's executemany
    (SQLAlchemy's per-row parameter handling would cost more than the database)."""
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cur = raw.cursor()
        try:
            cur.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
                            f"({', '.join('?' * len(columns))})", rows)
        finally:
            cur.close()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- payee key hashes
#: FNV-1a 64-bit (offset basis and prime of the FNV specification, draft-eastlake-fnv).
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3
#: The check hash: multiply by the 64-bit golden ratio, then xor-shift, per byte (independent of FNV).
_CHECK_OFFSET, _CHECK_MULT = 0x6A09E667F3BCC908, 0x9E3779B97F4A7C15
_MASK63 = (1 << 63) - 1


@njit(nogil=True, cache=True)
def _hash_field(offsets, data, separator, h, c):  # pragma: no cover - numba
    """Carry both hashes of every row over one more field (after the unit separator, unless first)."""
    prime = np.uint64(_FNV_PRIME)
    mult = np.uint64(_CHECK_MULT)
    shift = np.uint64(29)
    for i in range(len(h)):
        hi = h[i]
        ci = c[i]
        if separator:
            hi = (hi ^ np.uint64(0x1F)) * prime
            ci = (ci ^ np.uint64(0x1F)) * mult
            ci ^= ci >> shift
        for j in range(offsets[i], offsets[i + 1]):
            b = np.uint64(data[j])
            hi = (hi ^ b) * prime
            ci = (ci ^ b) * mult
            ci ^= ci >> shift
        h[i] = hi
        c[i] = ci


def payee_hashes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The payee key's two hashes, per row: ``payee_hash`` and ``payee_check`` [int64].

    Both are computed over the UTF-8 bytes of ``product_id``, ``payee_type``,
    ``district_id`` and ``payee_id`` joined by the unit separator (0x1F):

    * ``payee_hash`` — FNV-1a 64-bit (Fowler, Noll and Vo; the offset basis and prime of
      the FNV specification) with its top bit cleared: a non-negative BIGINT that orders the
      same signed and unsigned;
    * ``payee_check`` — an independent 64-bit hash (per byte: xor, multiply by the golden
      ratio 0x9E3779B97F4A7C15, xor-shift 29), stored as a signed BIGINT.

    The store treats two keys as one payee only when both hashes agree, so two payees are
    taken for one with a probability of about n²·2⁻¹²⁸; two keys sharing ``payee_hash``
    alone are refused (:class:`StoreError`), never netted. These hashes are stored: changing
    them is a schema migration.
    """
    n = len(frame)
    h = np.full(n, _FNV_OFFSET, np.uint64)
    c = np.full(n, _CHECK_OFFSET, np.uint64)
    for i, k in enumerate(PAYEE_KEY):
        if not n:
            break
        col = frame[k] if k in frame.columns else pd.Series("", index=frame.index)
        offsets, data = string_buffers(pa.array(col.astype(str)))
        _hash_field(offsets, data if len(data) else np.zeros(1, np.uint8), i > 0, h, c)
    return (h & np.uint64(_MASK63)).view(np.int64), c.view(np.int64)


@njit(nogil=True, cache=True)
def _merge_kernel(due_hash, due_check, order, bal_hash, bal_check, bal_paid, bal_waived, paid, waived, left):  # pragma: no cover - numba
    """One pass over two hash-sorted tables: each balance entry's paid and waived [Rp] onto its
    due row (``order``: sorted position → row), or ``left[j]`` when due has no such payee.
    Returns the number of entries whose check hash disagrees (two payees, one hash)."""
    i = 0
    n = len(due_hash)
    clashes = 0
    for j in range(len(bal_hash)):
        h = bal_hash[j]
        while i < n and due_hash[i] < h:
            i += 1
        if i < n and due_hash[i] == h:
            if due_check[i] != bal_check[j]:
                clashes += 1
            row = order[i]
            paid[row] = bal_paid[j]
            waived[row] = bal_waived[j]
            left[j] = False
        else:
            left[j] = True
    return clashes


def _hex_ids(prefix: str, hashes: np.ndarray, digits: int) -> pd.Series:
    """``prefix`` + the low ``digits`` hex digits of each (non-negative) hash, as a text column
    (built as Arrow buffers: no Python string per row)."""
    n, head = len(hashes), prefix.encode("utf-8")
    width = len(head) + digits
    chars = np.empty((n, width), np.uint8)
    chars[:, :len(head)] = np.frombuffer(head, np.uint8)
    hexdigits = np.frombuffer(b"0123456789abcdef", np.uint8)
    values = np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint64)
    for k in range(digits):
        chars[:, width - 1 - k] = hexdigits[((values >> np.uint64(4 * k)) & np.uint64(15)).astype(np.intp)]
    offsets = np.arange(n + 1, dtype=np.int64) * width
    arr = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    return pd.Series(pd.array(arr, dtype="str"))


def _array_sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
        h.update(b"\x1e")
    return h.hexdigest()


# --------------------------------------------------------------------------- balances
#: Payees in one row of ``balances`` (32 bytes each: 32 MiB a row at most).
PART_PAYEES = 1 << 20


@dataclass
class _Balance:
    """One product's payees of a season, sorted by ``hash``: ``paid`` and ``waived`` [Rp]."""

    hash: np.ndarray
    check: np.ndarray
    paid: np.ndarray
    waived: np.ndarray

    @classmethod
    def empty(cls) -> "_Balance":
        z = np.zeros(0, np.int64)
        return cls(z, z.copy(), z.copy(), z.copy())

    def parts(self) -> Iterator[tuple[int, int, bytes]]:
        for part, start in enumerate(range(0, max(len(self.hash), 1), PART_PAYEES)):
            sl = slice(start, start + PART_PAYEES)
            if start and start >= len(self.hash):
                break
            yield part, len(self.hash[sl]), b"".join(np.ascontiguousarray(a[sl], dtype="<i8").tobytes()
                                                      for a in (self.hash, self.check, self.paid, self.waived))

    @classmethod
    def from_parts(cls, rows: list[tuple[int, bytes]]) -> "_Balance":
        cols: list[list[np.ndarray]] = [[], [], [], []]
        for n, data in rows:
            arr = np.frombuffer(data, dtype="<i8")
            if len(arr) != 4 * n:
                raise _problem("the settlement store's balances are damaged (a part of the wrong length)")
            for i in range(4):
                cols[i].append(arr[i * n:(i + 1) * n])
        if not rows:
            return cls.empty()
        return cls(*(np.concatenate(c).astype(np.int64, copy=False) for c in cols))

    def plus(self, hashes: np.ndarray, checks: np.ndarray, paid: np.ndarray, waived: np.ndarray) -> "_Balance":
        """This balance with amounts added per payee (new payees inserted in hash order)."""
        order = np.argsort(hashes, kind="stable")
        hashes, checks, paid, waived = hashes[order], checks[order], paid[order], waived[order]
        if len(hashes) > 1 and (hashes[1:] == hashes[:-1]).any():  # one payee twice: sum its rows
            keep = np.r_[True, hashes[1:] != hashes[:-1]]
            starts = np.flatnonzero(keep)
            if (np.minimum.reduceat(checks, starts) != np.maximum.reduceat(checks, starts)).any():
                raise _collision()
            paid, waived = np.add.reduceat(paid, starts), np.add.reduceat(waived, starts)
            hashes, checks = hashes[starts], checks[starts]
        at = np.searchsorted(self.hash, hashes)
        found = at < len(self.hash)
        found[found] = self.hash[at[found]] == hashes[found]
        if (self.check[at[found]] != checks[found]).any():
            raise _collision()
        out_paid, out_waived = self.paid.copy(), self.waived.copy()
        out_paid[at[found]] += paid[found]  # at[found] is unique: the hashes were summed above
        out_waived[at[found]] += waived[found]
        new = ~found
        if not new.any():
            return _Balance(self.hash, self.check, out_paid, out_waived)
        where = at[new]
        return _Balance(np.insert(self.hash, where, hashes[new]), np.insert(self.check, where, checks[new]),
                        np.insert(out_paid, where, paid[new]), np.insert(out_waived, where, waived[new]))


@dataclass(frozen=True)
class _LockedBatch:
    season_id: str
    state: str
    revision: int


def _collision() -> StoreError:
    return _problem("two different payees share a 63-bit payee hash (a 2^-63 event, or an edited store): the "
                    "settlement store cannot tell them apart; rename one payee id")


def _check_amounts(values: pd.Series, what: str, *, positive: bool) -> np.ndarray:
    if not pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise _problem(f"{what}: amounts must be integer rupiah, got {values.dtype} (never floating point)")
    if values.isna().any():
        raise _problem(f"{what}: {int(values.isna().sum())} amount(s) missing")
    if pd.api.types.is_unsigned_integer_dtype(values.dtype) and len(values) and \
            int(values.max()) > np.iinfo(np.int64).max:
        raise _problem(f"{what}: an amount of {int(values.max())} does not fit a 64-bit rupiah amount (BIGINT)")
    amounts = values.to_numpy(dtype=np.int64)
    bad = amounts <= 0 if positive else amounts < 0
    if bad.any():
        raise _problem(f"{what}: amounts must be {'positive' if positive else 'zero or more'} rupiah; "
                       f"got {int(amounts[bad][0])} ({int(bad.sum())} such)")
    return amounts


def _payee_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """The payee key columns of ``frame`` as text, checked; ``district_id`` empty when absent."""
    missing = [c for c in ("product_id", "payee_type", "payee_id") if c not in frame.columns]
    if missing:
        raise _problem(f"{what}: missing column(s) {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    for c in PAYEE_KEY:
        col = frame[c] if c in frame.columns else pd.Series("", index=frame.index)
        if col.isna().any():
            raise _problem(f"{what}: {c} is missing in {int(col.isna().sum())} row(s)")
        out[c] = col.astype(str)
    types = set(out["payee_type"].unique().tolist())
    if not types <= set(PAYEE_TYPES):
        raise _problem(f"{what}: payee_type must be one of {', '.join(PAYEE_TYPES)}; got "
                       f"{', '.join(sorted(types - set(PAYEE_TYPES)))}")
    if ((out["product_id"] == "") | (out["payee_id"] == "")).any():
        raise _problem(f"{what}: every row needs a product_id and a payee_id")
    groups = out["payee_type"] == "group"
    if (groups & (out["district_id"] == "")).any():
        raise _problem(f"{what}: a group is a group within its district; district_id is empty for a group")
    return out


_EMPTY_KEYS = {c: pd.Series([], dtype="str") for c in PAYEE_KEY}


# --------------------------------------------------------------------------- the store
class SettlementStore:
    """An open settlement store (:func:`open_store`); a context manager that closes it."""

    def __init__(self, engine: sa.Engine, shown: str) -> None:
        self.engine = engine
        self.url = shown  # without password
        self.dialect = engine.dialect.name

    def __repr__(self) -> str:
        return f"SettlementStore({self.url!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "SettlementStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction: SQLite's write lock taken at BEGIN; on PostgreSQL, season rows
        are locked by :meth:`_lock_season`."""
        with self.engine.connect() as conn:
            conn.execution_options(panen_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A read transaction seeing one snapshot (SQLite WAL; PostgreSQL REPEATABLE READ)."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _lock_season(self, conn: sa.Connection, season_id: str) -> int:
        """Create the season's row if new and lock it until the transaction ends; its revision."""
        if conn.execute(sa.select(seasons_table.c.revision).where(seasons_table.c.season_id == season_id)).first() is None:
            if self.dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert
                conn.execute(pg_insert(seasons_table).values(season_id=season_id, revision=0, balanced=0)
                             .on_conflict_do_nothing())
            else:
                conn.execute(seasons_table.insert().values(season_id=season_id, revision=0, balanced=0))
        query = sa.select(seasons_table.c.revision).where(seasons_table.c.season_id == season_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        return int(conn.execute(query).scalar_one())

    @staticmethod
    def _bump(conn: sa.Connection, season_id: str, *, balanced: bool = False) -> None:
        """Raise the season's revision. Every change to what counts as paid bumps the season;
        ``balanced``: the change was applied to the season's balances too (:meth:`_apply`),
        else they are stale and rebuilt from the rows when next needed."""
        values = {"revision": seasons_table.c.revision + 1}
        if balanced:
            values["balanced"] = seasons_table.c.revision + 1
        conn.execute(seasons_table.update().where(seasons_table.c.season_id == season_id).values(**values))

    # ------------------------------------------------------------------ balances
    def _balances(self, conn: sa.Connection, season_id: str, scope: Iterable[str] | None,
                  revision: int) -> dict[tuple[str, str], _Balance]:
        """The season's balances per (product, payee type) of ``scope`` (``None``: all): as stored
        when written at ``revision`` (the season's current one), else rebuilt from the rows."""
        balanced = conn.execute(sa.select(seasons_table.c.balanced)
                                .where(seasons_table.c.season_id == season_id)).scalar_one_or_none()
        if balanced is None or int(balanced) != int(revision):
            return self._rebuilt(conn, season_id, scope)
        b = balances_table.c
        q = sa.select(b.product_id, b.payee_type, b.payees, b.data).where(b.season_id == season_id)
        if scope is not None:
            q = q.where(b.product_id.in_(sorted(set(scope))))
        parts: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        for product, payee_type, payees, data in conn.execute(q.order_by(b.product_id, b.payee_type, b.part)).all():
            parts.setdefault((product, payee_type), []).append((int(payees), bytes(data)))
        return {k: _Balance.from_parts(v) for k, v in parts.items()}

    @staticmethod
    def _rebuilt(conn: sa.Connection, season_id: str, scope: Iterable[str] | None) -> dict[tuple[str, str], _Balance]:
        """The balances computed from the payment and recovery rows (what :meth:`owed` reads)."""
        p, r = payments_table.c, recoveries_table.c
        pay = sa.select(p.product_id, p.payee_type, p.payee_hash, p.payee_check, p.amount, sa.literal(0)).where(
            p.season_id == season_id, p.status.in_(PAID_STATUSES))
        back = sa.select(r.product_id, r.payee_type, r.payee_hash, r.payee_check, -r.recovered,
                         r.amount - r.recovered).where(r.season_id == season_id, r.status == "decided")
        if scope is not None:
            pay = pay.where(p.product_id.in_(sorted(set(scope))))
            back = back.where(r.product_id.in_(sorted(set(scope))))
        numbers = ["hash", "check", "paid", "waived"]
        frames = [f.astype({c: np.int64 for c in numbers})  # exact: 64-bit hashes never pass through floats
                  for f in (_query_frame(conn, q, ["product_id", "payee_type", *numbers]) for q in (pay, back)) if len(f)]
        if not frames:
            return {}
        frame = pd.concat(frames, ignore_index=True)
        out = {}
        for (product, payee_type), g in frame.groupby(["product_id", "payee_type"], sort=True):
            out[(str(product), str(payee_type))] = _Balance.empty().plus(
                *(g[c].to_numpy(dtype=np.int64) for c in ("hash", "check", "paid", "waived")))
        return out

    def _apply(self, conn: sa.Connection, season_id: str, revision: int, deltas: pd.DataFrame) -> None:
        """Keep the season's balances current after a change to its rows, made in this
        transaction at ``revision`` (before the bump): ``deltas`` (``product_id, payee_type, hash,
        check, paid, waived`` [Rp]) is the change; the caller then bumps with ``balanced=True``.
        Balances that were stale are rebuilt from the rows, which already hold the change."""
        balanced = conn.execute(sa.select(seasons_table.c.balanced)
                                .where(seasons_table.c.season_id == season_id)).scalar_one_or_none()
        b = balances_table.c
        if balanced is None or int(balanced) != int(revision):
            conn.execute(balances_table.delete().where(b.season_id == season_id))
            updated = self._rebuilt(conn, season_id, None)
        else:
            updated = {}
            for (product, payee_type), g in deltas.groupby(["product_id", "payee_type"], sort=True):
                key = (str(product), str(payee_type))
                current = self._balances(conn, season_id, [key[0]], revision).get(key, _Balance.empty())
                updated[key] = current.plus(*(g[c].to_numpy(dtype=np.int64) for c in ("hash", "check", "paid", "waived")))
                conn.execute(balances_table.delete().where(b.season_id == season_id, b.product_id == key[0],
                                                           b.payee_type == key[1]))
        rows = [(season_id, product, payee_type, part, n, data)
                for (product, payee_type), bal in updated.items() for part, n, data in bal.parts()]
        for row in rows:  # one row at a time: a part is up to 32 MiB
            conn.execute(balances_table.insert().values(dict(zip(
                ["season_id", "product_id", "payee_type", "part", "payees", "data"], row))))

    # ------------------------------------------------------------------ schema versions
    def _alembic(self, conn: sa.Connection) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    @contextmanager
    def _migrating(self) -> Iterator[sa.Connection]:
        """A write transaction for migrations. On SQLite, foreign keys are not enforced during it
        (SQLite's procedure for altering a table: copy, drop, rename, which a parent table's
        drop would refuse) and are checked whole before the commit (the migration runs
        ``PRAGMA foreign_key_check``); enforcement is back on for every later use."""
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection if self.dialect == "sqlite" else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys = OFF")  # outside a transaction, or SQLite ignores it
            try:
                conn.execution_options(panen_write=True)
                with conn.begin():
                    yield conn
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys = ON")

    def _migrate(self, *, upgrade: bool) -> None:
        with self._migrating() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_OPEN_LOCK)))
            cfg = self._alembic(conn)
            script = ScriptDirectory.from_config(cfg)
            head = script.get_current_head()
            current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
            if current == head:
                return
            tables = set(sa.inspect(conn).get_table_names())
            if current is None:
                ours = {t.name for t in metadata.sorted_tables}
                if tables - {VERSION_TABLE}:
                    clash = sorted(tables & ours) or sorted(tables)[:5]
                    raise _problem(f"{self.url} holds tables ({', '.join(clash)}) but is not a panen settlement "
                                   f"store: name an empty database or a new file")
                command.upgrade(cfg, "head")
                return
            try:
                known = script.get_revision(current) is not None
            except Exception:  # alembic raises its own errors for revisions it has no script for
                known = False
            if not known:
                raise _problem(f"the settlement store {self.url} has schema revision {current}, which this panen does "
                               f"not know (it knows up to {head}): it was written by a newer panen; upgrade panen "
                               f"to use it")
            if not upgrade:
                raise _problem(f"the settlement store {self.url} has schema revision {current}, older than this "
                               f"panen's {head}: open it with upgrade=True to migrate it (one-way: every panen "
                               f"sharing this store must then be upgraded)")
            command.upgrade(cfg, "head")

    def schema_revision(self) -> str | None:
        """The store's schema revision (Alembic)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()

    # ------------------------------------------------------------------ what was paid
    def owed(self, season_id: str, payees: pd.DataFrame | None = None, *,
             products: Iterable[str] | None = None) -> pd.DataFrame:
        """Per payee, what the season's batches already paid.

        Parameters
        ----------
        season_id
            The season.
        payees
            The payees asked about (columns ``product_id, payee_type, district_id, payee_id``);
            ``None``: every payee the season paid.
        products
            Only these products (default: all, or those of ``payees``).

        Returns
        -------
        pandas.DataFrame
            ``product_id, payee_type, district_id, payee_id, paid, waived`` [Rp, int64], one
            row per payee asked about (or paid): ``paid`` = the payee's payments that count
            (status ``issued``, ``failed`` or ``confirmed``, in a pending or committed
            batch) less what decided recoveries brought back; ``waived`` = overpayments a
            person decided not to recover. A payee never paid has 0 and 0.
        """
        with self._reading() as conn:
            return self._owed(conn, season_id, payees, products)

    def _owed(self, conn: sa.Connection, season_id: str, payees: pd.DataFrame | None,
              products: Iterable[str] | None) -> pd.DataFrame:
        keys = None if payees is None else _payee_frame(payees, "owed: payees")
        if products is None and keys is not None:
            products = sorted(set(keys["product_id"].unique().tolist()))
        p_filter = [] if products is None else [payments_table.c.product_id.in_(sorted(set(products)))]
        r_filter = [] if products is None else [recoveries_table.c.product_id.in_(sorted(set(products)))]
        paid_q = (sa.select(*(payments_table.c[k] for k in PAYEE_KEY), sa.func.sum(payments_table.c.amount).label("paid"))
                  .where(payments_table.c.season_id == season_id, payments_table.c.status.in_(PAID_STATUSES), *p_filter)
                  .group_by(*(payments_table.c[k] for k in PAYEE_KEY)))
        back_q = (sa.select(*(recoveries_table.c[k] for k in PAYEE_KEY),
                            sa.func.sum(recoveries_table.c.recovered).label("recovered"),
                            sa.func.sum(recoveries_table.c.amount - recoveries_table.c.recovered).label("waived"))
                  .where(recoveries_table.c.season_id == season_id, recoveries_table.c.status == "decided", *r_filter)
                  .group_by(*(recoveries_table.c[k] for k in PAYEE_KEY)))
        paid = _query_frame(conn, paid_q, [*PAYEE_KEY, "paid"])
        back = _query_frame(conn, back_q, [*PAYEE_KEY, "recovered", "waived"])
        out = paid.merge(back, on=PAYEE_KEY, how="outer")
        for c in ("paid", "recovered", "waived"):
            out[c] = out[c].fillna(0).astype(np.int64)  # sums of BIGINT columns: exact integers
        out["paid"] = out["paid"] - out.pop("recovered")
        if keys is not None:
            out = keys.drop_duplicates().merge(out, on=PAYEE_KEY, how="left")
            out[["paid", "waived"]] = out[["paid", "waived"]].fillna(0).astype(np.int64)
        for c in PAYEE_KEY:
            out[c] = out[c].astype(str)
        return out.sort_values(PAYEE_KEY, kind="stable").reset_index(drop=True)

    # ------------------------------------------------------------------ the difference
    def difference(self, season_id: str, due: pd.DataFrame, *, kind: str = "final", corrects: str | None = None,
                   products: Iterable[str] | None = None) -> Difference:
        """What a new batch pays: per payee, what is due less what was already paid.

        Parameters
        ----------
        season_id
            The season.
        due
            The full entitlement per payee: ``product_id, payee_type, district_id,
            payee_id, amount`` [Rp, integer ≥ 0], one row per payee (``district_id`` may be
            left out for farmers and policies). A payee of the batch's products that the
            store paid and ``due`` leaves out is due nothing.
        kind
            ``on_account``, ``final`` or ``correction``.
        corrects
            The committed batch of this season that this one corrects (required for a correction).
        products
            The products the batch settles, beside those in ``due`` (a product whose
            every payee is now due nothing has no row in ``due``). Other products of the
            season are left alone.

        Returns
        -------
        Difference
            Top-ups (``due − paid`` where positive, as new payments) and recoveries
            (``paid − due − waived`` where positive), at the season's current revision.
            Money never goes negative: an overpayment is listed, not deducted.

        Raises
        ------
        StoreError
            Bad amounts (not integers, negative), duplicate payees, an unknown kind, a
            ``corrects`` that is not a committed batch of the season, or a payee type
            other than the one the season's product was paid by (paying by group a season
            paid by farmer would pay everyone again).

        References
        ----------
        PMFBY revised operational guidelines, para 21 (on-account claims adjusted at final
        settlement).
        """
        if kind not in BATCH_KINDS:
            raise _problem(f"batch kind must be one of {', '.join(BATCH_KINDS)}; got {kind!r}")
        if kind == "correction" and not corrects:
            raise _problem("a correction names the batch it corrects (corrects=BATCH_ID)")
        keys = _payee_frame(due, "due").reset_index(drop=True)
        if "amount" not in due.columns:
            raise _problem("due: missing column amount")
        amounts = _check_amounts(due["amount"], "due", positive=False)
        keys["due"] = amounts
        hashes, checks = payee_hashes(keys)
        order = np.argsort(hashes, kind="stable")
        sorted_hashes, sorted_checks = hashes[order], checks[order]
        same = np.flatnonzero(sorted_hashes[1:] == sorted_hashes[:-1])
        if len(same):
            dup = keys.duplicated(PAYEE_KEY)
            if dup.any():
                first = keys.loc[dup, PAYEE_KEY].iloc[0].tolist()
                raise _problem(f"due: {int(dup.sum())} payee(s) listed twice, e.g. {'/'.join(first)}")
            raise _collision()
        scope = tuple(sorted(set(keys["product_id"].unique().tolist()) | set(products or ())))
        # the due table in payee-hash order (a total order: the hashes were just found unique)
        due_sha = _array_sha(sorted_hashes, sorted_checks, amounts[order])
        batch_id = _sha256(json.dumps({"season_id": season_id, "kind": kind, "corrects": corrects,
                                       "products": list(scope), "due_sha256": due_sha}, sort_keys=True))[:16]
        paid = np.zeros(len(keys), np.int64)
        waived = np.zeros(len(keys), np.int64)
        gone: list[tuple[np.ndarray, ...]] = []  # payees the store paid that due leaves out
        with self._reading() as conn:
            batch_id = self._uncancelled_id(conn, batch_id)
            revision = conn.execute(sa.select(seasons_table.c.revision)
                                    .where(seasons_table.c.season_id == season_id)).scalar_one_or_none() or 0
            if conn.execute(sa.select(batches_table.c.batch_id).where(batches_table.c.batch_id == batch_id)).first() is not None:
                return self._recorded_difference(conn, batch_id, season_id, kind, corrects, scope, keys, revision)
            if corrects is not None:
                self._check_corrects(conn, season_id, corrects)
            balances = self._balances(conn, season_id, scope, revision)
            self._check_payee_types(season_id, keys, balances)
            for bal in balances.values():
                left = np.empty(len(bal.hash), np.bool_)
                if _merge_kernel(sorted_hashes, sorted_checks, order, bal.hash, bal.check, bal.paid, bal.waived,
                                 paid, waived, left):
                    raise _collision()
                left &= bal.paid - bal.waived > 0
                if left.any():
                    gone.append((bal.hash[left], bal.check[left], bal.paid[left], bal.waived[left]))
            extra = self._payees_of(conn, season_id, *(np.concatenate(g) for g in zip(*gone))) if gone else None
        owing = amounts - paid
        over = paid - amounts - waived
        top = keys[owing > 0].assign(paid=paid[owing > 0], amount=owing[owing > 0], hash=hashes[owing > 0])
        rec = keys[over > 0].assign(paid=paid[over > 0], amount=over[over > 0], hash=hashes[over > 0])
        if extra is not None:
            rec = pd.concat([rec, extra.sort_values(PAYEE_KEY, kind="stable")], ignore_index=True)
        return Difference(batch_id=batch_id, season_id=season_id, kind=kind, corrects=corrects, products=scope,
                          top_ups=self._frame(top, batch_id, season_id, "payment_id", ""),
                          recoveries=self._frame(rec, batch_id, season_id, "recovery_id", "r"), basis=int(revision))

    @staticmethod
    def _uncancelled_id(conn: sa.Connection, batch_id: str) -> str:
        """``batch_id``, or, if a batch of that id was cancelled, the next id of its chain (SHA-256 of
        the cancelled id): the same difference after a cancellation is a new batch with new payment
        ids, never the cancelled one again."""
        while conn.execute(sa.select(batches_table.c.batch_id).where(
                batches_table.c.batch_id == batch_id, batches_table.c.status == "cancelled")).first() is not None:
            batch_id = _sha256(f"after cancelled batch {batch_id}")[:16]
        return batch_id

    @staticmethod
    def _payees_of(conn: sa.Connection, season_id: str, hashes: np.ndarray, checks: np.ndarray, paid: np.ndarray,
                   waived: np.ndarray) -> pd.DataFrame:
        """Payees known by their hashes (the store's rows name them), due nothing: what they are
        owed back (``amount = paid − waived``)."""
        p = payments_table.c
        found = []
        wanted = sorted(set(hashes.tolist()))
        for start in range(0, len(wanted), 500):
            found.append(_query_frame(conn, sa.select(*(p[k] for k in PAYEE_KEY), p.payee_hash, p.payee_check)
                                      .where(p.season_id == season_id, p.payee_hash.in_(wanted[start:start + 500]))
                                      .distinct(), [*PAYEE_KEY, "hash", "check"]))
        found = [f.astype({"hash": np.int64, "check": np.int64}) for f in found if len(f)]
        names = (pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=[*PAYEE_KEY, "hash", "check"])
                 ).drop_duplicates(["hash", "check"])
        table = pd.DataFrame({"hash": hashes, "check": checks, "paid": paid, "waived": waived})
        out = table.merge(names, on=["hash", "check"], how="left")
        if out["payee_id"].isna().any() or len(out) != len(table):
            raise _problem("the settlement store's balances name a payee no payment row names (an edited store)")
        return out.assign(due=np.int64(0), amount=out["paid"] - out["waived"])

    @staticmethod
    def _frame(rows: pd.DataFrame, batch_id: str, season_id: str, id_column: str, tag: str) -> pd.DataFrame:
        """A batch's payments or recoveries, in the order of ``rows`` (the due table's order, then
        payees the store paid that it leaves out, by payee)."""
        rows = rows.reset_index(drop=True)
        out = pd.DataFrame({id_column: _hex_ids(f"{batch_id}-{tag}", rows["hash"].to_numpy(dtype=np.int64),
                                                16 - len(tag)),
                            "season_id": pd.Series(season_id, index=rows.index, dtype="str")})
        for c in PAYEE_KEY:
            out[c] = rows[c].astype("str")
        for c in ("amount", "due", "paid"):
            out[c] = rows[c].to_numpy(dtype=np.int64)
        return out

    def _recorded_difference(self, conn, batch_id, season_id, kind, corrects, scope, keys, revision) -> Difference:
        row = conn.execute(sa.select(batches_table).where(batches_table.c.batch_id == batch_id)).mappings().one()
        if (row["season_id"], row["kind"], row["corrects"], tuple(json.loads(row["products"]))) != \
                (season_id, kind, corrects, scope):
            raise _problem(f"batch {batch_id} is recorded with another season, kind or scope (a hash collision "
                           f"or an edited store)")
        pay = _query_frame(conn, sa.select(
            payments_table.c.payment_id, payments_table.c.season_id, *(payments_table.c[k] for k in PAYEE_KEY),
            payments_table.c.amount).where(payments_table.c.batch_id == batch_id),
            ["payment_id", "season_id", *PAYEE_KEY, "amount"])
        rec = _query_frame(conn, sa.select(
            recoveries_table.c.recovery_id, recoveries_table.c.season_id, *(recoveries_table.c[k] for k in PAYEE_KEY),
            recoveries_table.c.amount).where(recoveries_table.c.batch_id == batch_id),
            ["recovery_id", "season_id", *PAYEE_KEY, "amount"])
        due = keys[[*PAYEE_KEY, "due"]]
        frames = []
        for f in (pay, rec):
            f = f.merge(due, on=PAYEE_KEY, how="left")
            f["due"] = f["due"].fillna(0).astype(np.int64)
            f["amount"] = f["amount"].astype(np.int64)
            # what was paid before this batch: due - top-up for a payment, due + overpayment for a recovery
            f["paid"] = (f["due"] - f["amount"]) if "payment_id" in f.columns else (f["due"] + f["amount"])
            frames.append(f.sort_values(PAYEE_KEY, kind="stable").reset_index(drop=True))
        return Difference(batch_id=batch_id, season_id=season_id, kind=kind, corrects=corrects, products=scope,
                          top_ups=frames[0], recoveries=frames[1], basis=int(revision), recorded=True)

    @staticmethod
    def _check_corrects(conn: sa.Connection, season_id: str, corrects: str) -> None:
        row = conn.execute(sa.select(batches_table.c.season_id, batches_table.c.state)
                           .where(batches_table.c.batch_id == corrects)).first()
        if row is None or row.season_id != season_id:
            raise _problem(f"corrects: no batch {corrects!r} of season {season_id!r} in the store")
        if row.state != "committed":
            raise _problem(f"corrects: batch {corrects} is still pending (its run has not published it)")

    @staticmethod
    def _check_payee_types(season_id: str, keys: pd.DataFrame, balances: Mapping[tuple[str, str], _Balance]) -> None:
        before = set(balances)
        types = keys["payee_type"].unique().tolist()
        if len(types) == 1:
            now = {(p, types[0]) for p in keys["product_id"].unique().tolist()}
        else:
            now = set(map(tuple, keys[["product_id", "payee_type"]].drop_duplicates().itertuples(index=False)))
        for product, payee_type in sorted(now):
            other = sorted(t for p, t in before if p == product and t != payee_type)
            if other:
                raise _problem(f"season {season_id}, product {product}: paid by {other[0]} before, this batch pays "
                               f"by {payee_type}; a season is paid by one kind of payee (paymentsby), else every "
                               f"payee would be paid again")

    # ------------------------------------------------------------------ recording
    def record_pending(self, batch: Batch, payments: pd.DataFrame, recoveries: pd.DataFrame | None = None
                       ) -> Recorded:
        """Record a batch and its payments (and recoveries) as pending, before its output is published.

        Parameters
        ----------
        batch
            :meth:`Difference.batch`.
        payments
            :attr:`Difference.top_ups` (``payment_id``, the payee key, ``amount`` [Rp, > 0];
            optional ``reissue_of``).
        recoveries
            :attr:`Difference.recoveries`.

        Returns
        -------
        Recorded
            ``new=False`` when this very batch (same id and content) is already recorded:
            nothing changes, so publishing a batch twice pays nothing the second time.

        Raises
        ------
        StoreConflict
            Another batch of the season was recorded (or rolled back) after the difference
            was computed: compute it again. Nothing is recorded.
        StoreError
            Payments that do not belong to the batch (ids, season, products), bad amounts,
            or a batch id already recorded with other content.
        """
        pay = self._checked_rows(payments, batch, "payment_id", "payments")
        if recoveries is None:
            recoveries = pd.DataFrame({"recovery_id": pd.Series([], dtype="str"), **_EMPTY_KEYS,
                                       "amount": pd.Series([], dtype="int64")})
        rec = self._checked_rows(recoveries, batch, "recovery_id", "recoveries")
        if "reissue_of" in payments.columns:
            pay["reissue_of"] = pd.Series([None if pd.isna(v) else str(v) for v in payments["reissue_of"]],
                                          dtype=object, index=pay.index)
        else:
            pay["reissue_of"] = pd.Series(None, dtype=object, index=pay.index)
        if batch.kind not in BATCH_KINDS:
            raise _problem(f"batch kind must be one of {', '.join(BATCH_KINDS)}; got {batch.kind!r}")
        inputs = json.dumps(dict(batch.inputs), sort_keys=True, ensure_ascii=False)
        products = json.dumps(list(batch.products), ensure_ascii=False)
        # both tables in payee-hash order: the order rows are inserted in, and a total order for the content hash
        pay_hash, pay_check = payee_hashes(pay)
        rec_hash, rec_check = payee_hashes(rec)
        pay_order, rec_order = np.argsort(pay_hash, kind="stable"), np.argsort(rec_hash, kind="stable")
        pay = pay.iloc[pay_order].assign(payee_hash=pay_hash[pay_order], payee_check=pay_check[pay_order])
        rec = rec.iloc[rec_order].assign(payee_hash=rec_hash[rec_order], payee_check=rec_check[rec_order])
        reissues = pay["reissue_of"].notna()
        content = _sha256("\x1e".join([
            json.dumps({"season_id": batch.season_id, "kind": batch.kind, "corrects": batch.corrects,
                        "products": list(batch.products)}, sort_keys=True),
            _array_sha(pay["payee_hash"].to_numpy(), pay["payee_check"].to_numpy(), pay["amount"].to_numpy()),
            "\x1f".join(f"{i}:{r}" for i, r in zip(np.flatnonzero(reissues.to_numpy()).tolist(),
                                                    pay.loc[reissues, "reissue_of"].tolist())),
            _array_sha(rec["payee_hash"].to_numpy(), rec["payee_check"].to_numpy(), rec["amount"].to_numpy())]))
        with self._writing() as conn:
            revision = self._lock_season(conn, batch.season_id)
            existing = conn.execute(sa.select(batches_table.c.content_sha256, batches_table.c.state,
                                              batches_table.c.out_dir)
                                    .where(batches_table.c.batch_id == batch.batch_id)).first()
            if existing is not None:
                if existing.content_sha256 != content:
                    raise _problem(f"batch {batch.batch_id} is already recorded with other payments; a batch's "
                                   f"content never changes")
                if existing.state == "pending" and existing.out_dir != str(batch.out_dir):
                    # another run is publishing this very batch; if it fails it rolls the batch back, and a
                    # second folder holding it would then hold payments the store does not know
                    raise StoreConflict(Problem(
                        f"batch {batch.batch_id} is being published by another run into {existing.out_dir}; "
                        f"run again once it has finished", key="settlement"))
                return Recorded(batch.batch_id, new=False, state=existing.state,
                                notes=[f"batch {batch.batch_id} was already recorded ({existing.state}): "
                                       f"nothing paid twice"])
            if revision != batch.basis:
                raise StoreConflict(Problem(
                    f"season {batch.season_id} changed after this batch's difference was computed (revision "
                    f"{batch.basis} then, {revision} now: another run recorded or rolled back a batch); compute "
                    f"the difference again", key="settlement"))
            if batch.corrects is not None:
                self._check_corrects(conn, batch.season_id, batch.corrects)
            sequence = (conn.execute(sa.select(sa.func.max(batches_table.c.sequence))
                                     .where(batches_table.c.season_id == batch.season_id)).scalar() or 0) + 1
            conn.execute(batches_table.insert().values(
                batch_id=batch.batch_id, season_id=batch.season_id, sequence=sequence, kind=batch.kind,
                state="pending", status="draft", run_id=str(batch.run_id), created_at=str(batch.created_at),
                inputs=inputs, products=products, corrects=batch.corrects, out_dir=str(batch.out_dir),
                content_sha256=content))
            if batch.products:  # this batch restates every overpayment of its products
                conn.execute(recoveries_table.update().where(
                    recoveries_table.c.season_id == batch.season_id, recoveries_table.c.status == "open",
                    recoveries_table.c.product_id.in_(batch.products)).values(status="superseded",
                                                                        superseded_by=batch.batch_id))
            n = len(pay)
            _bulk_insert(conn, payments_table, ["payment_id", "batch_id", "season_id", *PAYEE_KEY, "payee_hash",
                                                "payee_check", "amount", "status", "reissue_of"],
                         zip(pay["payment_id"].tolist(), [batch.batch_id] * n, [batch.season_id] * n,
                             *(pay[k].tolist() for k in PAYEE_KEY), pay["payee_hash"].tolist(),
                             pay["payee_check"].tolist(), pay["amount"].tolist(), ["issued"] * n,
                             [None if pd.isna(v) else str(v) for v in pay["reissue_of"].tolist()]))
            n = len(rec)
            _bulk_insert(conn, recoveries_table, ["recovery_id", "batch_id", "season_id", *PAYEE_KEY, "payee_hash",
                                                  "payee_check", "amount", "status"],
                         zip(rec["recovery_id"].tolist(), [batch.batch_id] * n, [batch.season_id] * n,
                             *(rec[k].tolist() for k in PAYEE_KEY), rec["payee_hash"].tolist(),
                             rec["payee_check"].tolist(), rec["amount"].tolist(), ["open"] * n))
            # a new batch's payments are all issued: each adds its amount to what its payee was paid
            self._apply(conn, batch.season_id, revision, pd.DataFrame({
                "product_id": pay["product_id"].to_numpy(), "payee_type": pay["payee_type"].to_numpy(),
                "hash": pay["payee_hash"].to_numpy(), "check": pay["payee_check"].to_numpy(),
                "paid": pay["amount"].to_numpy(dtype=np.int64), "waived": np.zeros(len(pay), np.int64)}))
            self._bump(conn, batch.season_id, balanced=True)
        return Recorded(batch.batch_id, new=True, state="pending")

    @staticmethod
    def _checked_rows(frame: pd.DataFrame, batch: Batch, id_column: str, what: str) -> pd.DataFrame:
        if id_column not in frame.columns or "amount" not in frame.columns:
            raise _problem(f"{what}: needs the columns {id_column} and amount")
        out = _payee_frame(frame, what)
        out.insert(0, id_column, frame[id_column].astype(str))
        out["amount"] = _check_amounts(frame["amount"], what, positive=True)
        wrong = ~out[id_column].str.startswith(f"{batch.batch_id}-")
        if wrong.any():
            raise _problem(f"{what}: {int(wrong.sum())} id(s) not of batch {batch.batch_id}, e.g. "
                           f"{out.loc[wrong, id_column].iloc[0]}")
        if out[id_column].duplicated().any():
            raise _problem(f"{what}: {id_column} {out.loc[out[id_column].duplicated(), id_column].iloc[0]} twice")
        if "season_id" in frame.columns and (frame["season_id"].astype(str) != batch.season_id).any():
            raise _problem(f"{what}: rows of another season than the batch's {batch.season_id}")
        outside = sorted(set(out["product_id"].unique().tolist()) - set(batch.products))
        if outside:
            raise _problem(f"{what}: product(s) {', '.join(outside)} outside the batch's products")
        return out

    def commit(self, batch_id: str) -> None:
        """Mark a pending batch committed once its output is published (committing twice is a no-op)."""
        with self._writing() as conn:
            row = self._locked_batch(conn, batch_id)
            if row.state == "pending":
                conn.execute(batches_table.update().where(batches_table.c.batch_id == batch_id).values(state="committed"))

    def roll_back(self, batch_id: str) -> None:
        """Remove a pending batch that was never published (its run failed): as if never recorded."""
        with self._writing() as conn:
            row = self._locked_batch(conn, batch_id)
            if row.state != "pending":
                raise _problem(f"batch {batch_id} is {row.state}: only a pending batch can be rolled back")
            p = payments_table.c
            counted = _query_frame(conn, sa.select(p.product_id, p.payee_type, p.payee_hash, p.payee_check,
                                                   -p.amount, sa.literal(0))
                                   .where(p.batch_id == batch_id, p.status.in_(PAID_STATUSES)),
                                   ["product_id", "payee_type", "hash", "check", "paid", "waived"])
            conn.execute(recoveries_table.update().where(recoveries_table.c.superseded_by == batch_id)
                         .values(status="open", superseded_by=None))
            conn.execute(recoveries_table.delete().where(recoveries_table.c.batch_id == batch_id))
            conn.execute(payments_table.delete().where(payments_table.c.batch_id == batch_id))
            conn.execute(batches_table.delete().where(batches_table.c.batch_id == batch_id))
            self._apply(conn, row.season_id, row.revision, counted)  # its payments no longer count
            self._bump(conn, row.season_id, balanced=True)

    def _locked_batch(self, conn: sa.Connection, batch_id: str):
        row = conn.execute(sa.select(batches_table.c.season_id).where(batches_table.c.batch_id == batch_id)).first()
        if row is None:
            raise _problem(f"no batch {batch_id!r} in the settlement store")
        revision = self._lock_season(conn, row.season_id)
        out = conn.execute(sa.select(batches_table.c.season_id, batches_table.c.state)
                           .where(batches_table.c.batch_id == batch_id)).one()
        return _LockedBatch(out.season_id, out.state, revision)

    def recover(self, *, held: str | os.PathLike | None = None) -> list[str]:
        """Resolve the pending batches of runs that died between recording and committing.

        A pending batch is decided against its output folder: committed if the folder's
        ``manifest.json`` names it (:func:`published_batch_id`: the run died after
        publishing), else rolled back (it died before). Only dead runs' batches are
        touched: the batches of ``held`` (an output folder whose lock the caller holds, as
        a run does from its start), and those of any folder whose lock can be taken now
        (its run is gone; the folder's own leftovers are recovered first, as the next run
        into it would). A folder another run holds, or that cannot be reached, keeps its
        pending batches, and a note says so.

        Returns
        -------
        list[str]
            One sentence per action, for the run's notes.
        """
        with self._reading() as conn:
            pending = conn.execute(sa.select(batches_table.c.batch_id, batches_table.c.out_dir)
                                   .where(batches_table.c.state == "pending").order_by(batches_table.c.sequence)).all()
        held_path = Path(os.path.abspath(os.fspath(held))) if held is not None else None
        notes: list[str] = []
        for batch_id, out in pending:
            out = Path(out)
            if held_path is not None and out == held_path:
                notes.append(self._decide(batch_id, out))
                continue
            try:
                with outdir.OutputLock(out):
                    notes += outdir.recover(out)
                    notes.append(self._decide(batch_id, out))
            except InputError as exc:
                notes.append(f"batch {batch_id} left pending: {exc}")
        return notes

    def _decide(self, batch_id: str, out: Path) -> str:
        if published_batch_id(out) == batch_id:
            self.commit(batch_id)
            return (f"committed batch {batch_id}: {out} holds it (its run stopped after publishing, before "
                    f"recording the commit)")
        self.roll_back(batch_id)
        return f"rolled back batch {batch_id}: its run stopped before publishing it into {out}"

    # ------------------------------------------------------------------ reading batches back
    def batches(self, season_id: str | None = None) -> pd.DataFrame:
        """The recorded batches (of one season), in the order they were recorded, with their totals [Rp]."""
        paid = (sa.select(payments_table.c.batch_id, sa.func.count().label("payments"),
                          sa.func.sum(payments_table.c.amount).label("paid")).group_by(payments_table.c.batch_id).subquery())
        owed_back = (sa.select(recoveries_table.c.batch_id, sa.func.sum(recoveries_table.c.amount).label("recoveries"))
                     .group_by(recoveries_table.c.batch_id).subquery())
        q = (sa.select(batches_table.c.batch_id, batches_table.c.season_id, batches_table.c.sequence, batches_table.c.kind,
                       batches_table.c.state, batches_table.c.status, batches_table.c.run_id, batches_table.c.created_at,
                       batches_table.c.corrects, batches_table.c.out_dir, paid.c.payments, paid.c.paid, owed_back.c.recoveries)
             .outerjoin(paid, paid.c.batch_id == batches_table.c.batch_id)
             .outerjoin(owed_back, owed_back.c.batch_id == batches_table.c.batch_id)
             .order_by(batches_table.c.season_id, batches_table.c.sequence))
        if season_id is not None:
            q = q.where(batches_table.c.season_id == season_id)
        with self._reading() as conn:
            out = _query_frame(conn, q, ["batch_id", "season_id", "sequence", "kind", "state", "status", "run_id",
                                         "created_at", "corrects", "out_dir", "payments", "paid", "recoveries"])
        for c in ("sequence", "payments", "paid", "recoveries"):
            out[c] = out[c].fillna(0).astype(np.int64)
        return out

    def recoveries(self, season_id: str, *, status: str | None = "open") -> pd.DataFrame:
        """The season's recoveries (``status=None``: all), with their batch and payee [Rp]."""
        q = sa.select(recoveries_table).where(recoveries_table.c.season_id == season_id).order_by(
            recoveries_table.c.batch_id, *(recoveries_table.c[k] for k in PAYEE_KEY))
        if status is not None:
            q = q.where(recoveries_table.c.status == status)
        with self._reading() as conn:
            out = _query_frame(conn, q, [c.name for c in recoveries_table.columns])
        out["amount"] = out["amount"].astype(np.int64)
        return out

    def decide_recovery(self, recovery_id: str, recovered: int) -> None:
        """A person's decision on an open recovery: ``recovered`` [Rp] came back, the rest is waived.

        What came back lowers what the payee was paid (a later batch may top it up again);
        what is waived stays paid and is not listed for recovery again.
        """
        if not isinstance(recovered, (int, np.integer)) or isinstance(recovered, bool):
            raise _problem(f"recovered must be integer rupiah, got {recovered!r}")
        with self._writing() as conn:
            row = conn.execute(sa.select(recoveries_table.c.season_id, recoveries_table.c.amount, recoveries_table.c.status,
                                         batches_table.c.state, recoveries_table.c.product_id,
                                         recoveries_table.c.payee_type, recoveries_table.c.payee_hash,
                                         recoveries_table.c.payee_check)
                               .join(batches_table, batches_table.c.batch_id == recoveries_table.c.batch_id)
                               .where(recoveries_table.c.recovery_id == recovery_id)).first()
            if row is None:
                raise _problem(f"no recovery {recovery_id!r} in the settlement store")
            revision = self._lock_season(conn, row.season_id)
            if row.status != "open" or row.state != "committed":
                raise _problem(f"recovery {recovery_id} is {row.status if row.status != 'open' else 'pending'}: "
                               f"only an open recovery of a published batch is decided")
            if not 0 <= int(recovered) <= int(row.amount):
                raise _problem(f"recovered must be between 0 and the amount owed back ({row.amount}); got {recovered}")
            conn.execute(recoveries_table.update().where(recoveries_table.c.recovery_id == recovery_id)
                         .values(status="decided", recovered=int(recovered)))
            # what came back is no longer paid; the rest is waived
            self._apply(conn, row.season_id, revision, pd.DataFrame({
                "product_id": [row.product_id], "payee_type": [row.payee_type], "hash": [int(row.payee_hash)],
                "check": [int(row.payee_check)], "paid": [-int(recovered)],
                "waived": [int(row.amount) - int(recovered)]}))
            self._bump(conn, row.season_id, balanced=True)

    # ------------------------------------------------------------------ the batch life cycle
    # draft → approved → exported → confirmed, or cancelled (module docstring, "Life cycle").
    def _lifecycle_batch(self, conn: sa.Connection, batch_id: str):
        """The batch's row, its season locked until the transaction ends."""
        self._locked_batch(conn, batch_id)
        return conn.execute(sa.select(batches_table).where(batches_table.c.batch_id == batch_id)).mappings().one()

    @staticmethod
    def _refuse_reissue_batch(row, action: str) -> None:
        if row["kind"] == REISSUE_KIND:
            raise _problem(f"batch {row['batch_id']} holds re-issued payments, made and exported with batch "
                           f"{row['exported_with']}: it is not {action} on its own")

    def approve(self, batch_id: str) -> str:
        """Approve a committed draft batch for export (approving it again is a no-op).

        Returns
        -------
        str
            The batch's status afterwards (``approved``).

        Raises
        ------
        StoreError
            No such batch; a pending batch (its run has not published it yet); a batch of
            re-issued payments; a batch already exported, confirmed or cancelled.
        """
        with self._writing() as conn:
            row = self._lifecycle_batch(conn, batch_id)
            self._refuse_reissue_batch(row, "approved")
            if row["state"] != "committed":
                raise _problem(f"batch {batch_id} is pending (its run has not published it): only a committed batch "
                               f"is approved")
            if row["status"] == "approved":
                return "approved"
            if row["status"] != "draft":
                raise _problem(f"batch {batch_id} is {row['status']}: only a draft batch is approved")
            conn.execute(batches_table.update().where(batches_table.c.batch_id == batch_id).values(status="approved"))
        return "approved"

    def cancel(self, batch_id: str) -> str:
        """Cancel a committed draft or approved batch that was never exported (cancelling it again is a no-op).

        Its payments become ``cancelled`` and no longer count as paid (:meth:`owed`: the next
        batch of the season pays their payees what they are owed); its open recoveries are
        cancelled and the recoveries it restated are open again. A later run computing the
        very same difference gets a new batch id (:meth:`difference`), never the cancelled one.

        Only the season's latest batch is cancelled (batches of re-issued payments aside):
        a later batch's difference counted this one's payments as paid, so cancel the later
        ones first, newest first.

        Raises
        ------
        StoreError
            No such batch; a pending batch; a batch of re-issued payments; an exported or
            confirmed batch (its payments went to the bank: a bank return marks failures); a
            later batch of the season; a recovery of the batch a person already decided.
        """
        with self._writing() as conn:
            row = self._lifecycle_batch(conn, batch_id)
            self._refuse_reissue_batch(row, "cancelled")
            if row["status"] == "cancelled":
                return "cancelled"
            if row["state"] != "committed":
                raise _problem(f"batch {batch_id} is pending: its run commits it or rolls it back; only a committed "
                               f"batch is cancelled")
            if row["status"] not in ("draft", "approved"):
                raise _problem(f"batch {batch_id} is {row['status']}: its payments went to the bank and it is never "
                               f"cancelled; a bank return marks the payments that failed")
            later = conn.execute(sa.select(batches_table.c.batch_id).where(
                batches_table.c.season_id == row["season_id"], batches_table.c.sequence > row["sequence"],
                batches_table.c.status != "cancelled", batches_table.c.kind != REISSUE_KIND)
                .order_by(batches_table.c.sequence.desc())).scalars().all()
            if later:
                raise _problem(f"batch {batch_id} is not the season's latest: batch(es) {', '.join(later)} came after "
                               f"it and paid counting its payments; cancel those first, newest first")
            decided = conn.execute(sa.select(sa.func.count()).select_from(recoveries_table).where(
                recoveries_table.c.batch_id == batch_id, recoveries_table.c.status == "decided")).scalar_one()
            if decided:
                raise _problem(f"batch {batch_id} has {decided} recovery decision(s) a person took; it is not "
                               f"cancelled")
            conn.execute(payments_table.update().where(payments_table.c.batch_id == batch_id)
                         .values(status="cancelled"))
            conn.execute(recoveries_table.update().where(recoveries_table.c.batch_id == batch_id,
                                                         recoveries_table.c.status == "open")
                         .values(status="cancelled"))
            conn.execute(recoveries_table.update().where(recoveries_table.c.superseded_by == batch_id)
                         .values(status="open", superseded_by=None))
            conn.execute(batches_table.update().where(batches_table.c.batch_id == batch_id).values(status="cancelled"))
            self._bump(conn, row["season_id"])
        return "cancelled"

    def export(self, batch_id: str, out: str | os.PathLike, *, created_at: str) -> "Exported":
        """Export an approved batch to a bank payment file, with the season's failed payments re-issued.

        Parameters
        ----------
        batch_id
            An approved batch (or one already exported: the same file is written again).
        out
            The payment file to write (CSV, :data:`~panen.engine.settlement.bankfiles.EXPORT_COLUMNS`);
            its folder must exist. Written atomically after the store records the export.
        created_at
            When the re-issue batch is made, as the caller says (ISO 8601 text).

        Returns
        -------
        Exported
            The file, its SHA-256, its rows and total [Rp], the re-issues, and whether this
            call exported the batch (``new``) or wrote its file again.

        Notes
        -----
        The first export of a batch re-issues every payment of its season that a bank return
        marked ``failed``: each gets one new payment (same payee and amount, ``issued``,
        ``reissue_of`` the failed one, id ``ORIGINAL-R1``; a re-issue that fails again is
        re-issued as ``ORIGINAL-R2``, ...) and becomes ``reissued``. The new payments form
        their own batch, of kind ``reissue``, exported with this one (``exported_with``) —
        not part of this batch, whose payments stay those its run published — so
        :meth:`owed` counts the money once (a ``reissued`` payment does not count, its
        re-issue does). The file lists the batch's payments, then the re-issues, each by
        payment id. Exporting again writes the same bytes (the file's SHA-256 is kept) and
        changes nothing; a different file already at ``out`` is never overwritten.

        Raises
        ------
        StoreError
            No such batch, a batch not approved (only approved batches are exported), a
            batch of re-issued payments, a different file at ``out``, a folder that does
            not exist, a store whose records no longer give the exported file.
        """
        from panen.engine.infra.atomic import csv_bytes, write_bytes_atomic

        path = Path(os.path.abspath(os.fspath(out)))
        if not path.parent.is_dir():
            raise _problem(f"the folder of {path} does not exist; create it first")
        if path.is_dir():
            raise _problem(f"{path} is a folder; name the payment file to write")
        with self._writing() as conn:
            row = self._lifecycle_batch(conn, batch_id)
            self._refuse_reissue_batch(row, "exported")
            new = row["status"] == "approved"
            if not new and row["status"] not in ("exported", "confirmed"):
                hint = {"draft": "approve it first", "cancelled": "it was cancelled"}.get(row["status"], "")
                raise _problem(f"batch {batch_id} is {row['status']}: only an approved batch is exported"
                               + (f" ({hint})" if hint else ""))
            if new:
                if path.exists():
                    raise _problem(f"{path} already exists; a bank payment file is never overwritten: name a new file")
                reissued = self._reissue_failed(conn, row, str(path), created_at)
            frame = self._export_frame(conn, batch_id)
            data = csv_bytes(frame)
            digest = hashlib.sha256(data).hexdigest()
            if new:
                conn.execute(batches_table.update().where(
                    (batches_table.c.batch_id == batch_id) | (batches_table.c.exported_with == batch_id))
                    .values(status="exported", export_sha256=digest))
                self._confirm_batches(conn, row["season_id"])
            elif digest != row["export_sha256"]:
                raise _problem(f"batch {batch_id}: the store's records no longer give the payment file it exported "
                               f"(SHA-256 {row['export_sha256']}); the store was edited")
            if not new:
                reissued = int((frame["reissue_of"] != "").sum())
        if path.exists() and not new:
            if path.is_file() and path.read_bytes() == data:
                return Exported(batch_id, path, digest, len(frame), int(frame["amount"].sum()), reissued, new=False)
            raise _problem(f"{path} already exists and is not this batch's payment file; name a new file")
        write_bytes_atomic(data, path)
        return Exported(batch_id, path, digest, len(frame), int(frame["amount"].sum()), reissued, new=new)

    def _reissue_failed(self, conn: sa.Connection, row, out: str, created_at: str) -> int:
        """Re-issue the season's failed payments in a new batch exported with ``row``'s; their count."""
        p = payments_table.c
        failed = _query_frame(conn, sa.select(p.payment_id, p.season_id, *(p[k] for k in PAYEE_KEY), p.amount,
                                              p.reissue_of, p.batch_id, p.payee_hash, p.payee_check)
                              .where(p.season_id == row["season_id"], p.status == "failed").order_by(p.payment_id),
                              ["payment_id", "season_id", *PAYEE_KEY, "amount", "reissue_of", "batch_id",
                               "payee_hash", "payee_check"])
        if not len(failed):
            return 0
        new_ids = []
        for pid, of in zip(failed["payment_id"], failed["reissue_of"]):
            if of is None:
                new_ids.append(f"{pid}-R1")
            else:  # a re-issue that failed again: the next number of the first payment's chain
                root, _, n = pid.rpartition("-R")
                new_ids.append(f"{root}-R{int(n) + 1}")
        reissue_id = _sha256(json.dumps({"season_id": row["season_id"], "kind": REISSUE_KIND,
                                         "exported_with": row["batch_id"]}, sort_keys=True))[:16]
        sequence = (conn.execute(sa.select(sa.func.max(batches_table.c.sequence))
                                 .where(batches_table.c.season_id == row["season_id"])).scalar() or 0) + 1
        failed["payment_id"], failed["reissue_of"] = new_ids, failed["payment_id"].tolist()
        content = _sha256("\x1e".join("\x1f".join(str(r[c]) for c in ("payment_id", *PAYEE_KEY, "amount", "reissue_of"))
                                       for r in failed.to_dict("records")))
        conn.execute(batches_table.insert().values(
            batch_id=reissue_id, season_id=row["season_id"], sequence=sequence, kind=REISSUE_KIND,
            state="committed", status="approved", run_id=f"export of {row['batch_id']}", created_at=str(created_at),
            inputs="{}", products=json.dumps(sorted(set(failed["product_id"].tolist())), ensure_ascii=False),
            corrects=None, out_dir=out, content_sha256=content, exported_with=row["batch_id"]))
        try:
            conn.execute(payments_table.insert(), [
                {"payment_id": r["payment_id"], "batch_id": reissue_id, "season_id": r["season_id"],
                 **{k: r[k] for k in PAYEE_KEY}, "amount": int(r["amount"]), "status": "issued",
                 "reissue_of": r["reissue_of"], "payee_hash": int(r["payee_hash"]), "payee_check": int(r["payee_check"])}
                for r in failed.to_dict("records")])
        except sa.exc.IntegrityError:  # the transaction is rolled back: nothing re-issued
            raise _problem(f"a re-issue id of season {row['season_id']} (e.g. {new_ids[0]}) exists already: the store "
                           f"was edited (a failed payment is re-issued once)") from None
        # exactly the payments selected above: the season is locked
        conn.execute(payments_table.update().where(p.season_id == row["season_id"], p.status == "failed")
                     .values(status="reissued"))
        return len(failed)

    @staticmethod
    def _export_frame(conn: sa.Connection, batch_id: str) -> pd.DataFrame:
        """The payment file's rows: the batch's payments, then the re-issues exported with it, each by id."""
        from panen.engine.settlement.bankfiles import EXPORT_COLUMNS

        p = payments_table.c
        cols = [p[c] for c in EXPORT_COLUMNS]
        own = _query_frame(conn, sa.select(*cols).where(p.batch_id == batch_id).order_by(p.payment_id),
                           list(EXPORT_COLUMNS))
        again = _query_frame(conn, sa.select(*cols).join(batches_table, batches_table.c.batch_id == p.batch_id)
                             .where(batches_table.c.exported_with == batch_id).order_by(p.payment_id),
                             list(EXPORT_COLUMNS))
        out = pd.concat([own, again], ignore_index=True)
        for c in EXPORT_COLUMNS:
            if c != "amount":
                out[c] = out[c].fillna("").astype(str)
        out["amount"] = out["amount"].astype(np.int64)
        return out

    def _confirm_batches(self, conn: sa.Connection, season_id: str) -> list[str]:
        """Mark confirmed the season's exported batches whose every payment reached its payee: confirmed,
        or re-issued along a chain whose last payment is confirmed. The batches confirmed now."""
        p = payments_table.c
        exported = conn.execute(sa.select(batches_table.c.batch_id).where(
            batches_table.c.season_id == season_id, batches_table.c.status == "exported")
            .order_by(batches_table.c.sequence)).scalars().all()
        reissues: dict[str, tuple[str, str]] = {  # failed payment → (its re-issue, the re-issue's status)
            of: (pid, status) for pid, status, of in conn.execute(sa.select(p.payment_id, p.status, p.reissue_of).where(
                p.season_id == season_id, p.reissue_of.is_not(None))).all()}
        done = []
        for batch_id in exported:
            if conn.execute(sa.select(p.payment_id).where(p.batch_id == batch_id, p.status.in_(("issued", "failed")))
                            .limit(1)).first() is not None:
                continue
            chain = conn.execute(sa.select(p.payment_id).where(p.batch_id == batch_id, p.status == "reissued")
                                 ).scalars().all()
            reached = True
            while chain and reached:
                nxt = [reissues.get(pid) for pid in chain]
                reached = all(x is not None and x[1] in ("confirmed", "reissued") for x in nxt)
                chain = [x[0] for x in nxt if x is not None and x[1] == "reissued"]
            if reached:
                done.append(batch_id)
        if done:
            conn.execute(batches_table.update().where(batches_table.c.batch_id.in_(done)).values(status="confirmed"))
        return done

    def apply_returns(self, path: str | os.PathLike) -> "ReturnsApplied":
        """Apply a bank or mobile-money return file: each payment confirmed or failed (with its reason).

        All or nothing: the file is read and checked whole (:func:`~panen.engine.settlement.bankfiles.read_returns`),
        then every row against the store, in one transaction; any problem — a payment the
        store does not know, one of a batch not exported (or cancelled), one a former return
        settled otherwise — is listed, located (file, line, column), and nothing is applied.
        Applying the same file again changes nothing.

        Rules per payment: ``issued`` → ``confirmed`` or ``failed`` (the reason recorded; the
        next export re-issues it). The same status again (and, for a failure, the same
        reason) is no change; a ``failed`` payment already re-issued may be reported failed
        again. Refused: a confirmed payment reported failed, a failed one reported paid (a
        person settles these: the payee may have been paid twice, or not at all), a failure
        with another reason than the one recorded. A batch becomes ``confirmed`` when every
        payment of it reached its payee (confirmed, or re-issued along a chain whose last
        payment is confirmed).

        Raises
        ------
        InputError
            The return file's problems, all at once.
        """
        from panen.engine.settlement.bankfiles import read_returns

        shown = os.fspath(path)
        rows = read_returns(path)
        p, r, b = payments_table.c, _returned.c, batches_table.c
        problems: list[Problem] = []
        seasons: set[str] = set()
        changed = {"confirmed": 0, "failed": 0}
        unchanged = 0
        with self._writing() as conn:
            self._load_returned(conn, rows)
            try:
                if self.dialect == "postgresql":  # SQLite's write transaction already locks the whole store
                    for season_id in conn.execute(sa.select(p.season_id).distinct()
                                                  .join(_returned, r.payment_id == p.payment_id)
                                                  .order_by(p.season_id)).scalars().all():
                        self._lock_season(conn, season_id)  # then read what others committed meanwhile
                found = conn.execute(sa.select(r.line, r.payment_id, r.status, r.reason, p.season_id, p.status,
                                               p.failure_reason, b.status, b.batch_id)
                                     .select_from(_returned)
                                     .outerjoin(payments_table, p.payment_id == r.payment_id)
                                     .outerjoin(batches_table, b.batch_id == p.batch_id)
                                     .order_by(r.line)).cursor.fetchall()
                for line, pid, new, new_reason, season_id, status, reason, batch_status, batch_id in found:
                    where = {"file": shown, "line": int(line)}
                    new_reason = new_reason or ""
                    if season_id is None:
                        problems.append(Problem(f"no payment {pid!r} in the settlement store", column="payment_id",
                                                **where))
                    elif batch_status not in ("exported", "confirmed"):
                        problems.append(Problem(f"payment {pid} is of batch {batch_id}, which is {batch_status}: "
                                                f"never exported to a bank", column="payment_id", **where))
                    elif status == "issued":
                        changed[new] += 1
                        seasons.add(season_id)
                    elif new == "confirmed" and status == "confirmed":
                        unchanged += 1
                    elif new == "failed" and status in ("failed", "reissued"):
                        if new_reason != reason:
                            problems.append(Problem(f"payment {pid} was returned failed before with another reason "
                                                    f"({reason!r})", column="reason", **where))
                        else:
                            unchanged += 1
                    elif new == "failed":  # confirmed before
                        problems.append(Problem(f"payment {pid} was confirmed by an earlier return; a return does not "
                                                f"undo it (a person settles it with the bank)", column="status",
                                                **where))
                    else:  # confirmed now, failed (or re-issued) before
                        problems.append(Problem(
                            f"payment {pid} was returned failed before ({reason!r})"
                            + (" and re-issued" if status == "reissued" else "")
                            + "; a payment reported paid after failing is a person's matter (the payee may be paid "
                              "twice)", column="status", **where))
                if problems:
                    raise InputError(problems[:50] + ([Problem(f"... and {len(problems) - 50} more problem(s)",
                                                               file=shown)] if len(problems) > 50 else []))
                if seasons:
                    conn.execute(payments_table.update().where(p.payment_id == r.payment_id, p.status == "issued")
                                 .values(status=r.status, failure_reason=r.reason))
            finally:
                if self.dialect == "sqlite":  # PostgreSQL drops it at the commit
                    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.panen_returned")
            confirmed_batches = [x for s in sorted(seasons) for x in self._confirm_batches(conn, s)]
        return ReturnsApplied(confirmed=changed["confirmed"], failed=changed["failed"], unchanged=unchanged,
                              batches_confirmed=confirmed_batches)

    def _load_returned(self, conn: sa.Connection, rows) -> None:
        """The return file's rows into a temporary table of this transaction (joined, not listed in queries)."""
        raw = conn.connection.driver_connection
        values = ((x.payment_id, x.status, x.reason if x.status == "failed" else None, x.line) for x in rows)
        if self.dialect == "postgresql":
            conn.exec_driver_sql("CREATE TEMPORARY TABLE panen_returned (line BIGINT PRIMARY KEY, payment_id TEXT NOT "
                                 "NULL UNIQUE, status TEXT NOT NULL, reason TEXT) ON COMMIT DROP")
            with raw.cursor() as cur, cur.copy("COPY panen_returned (payment_id, status, reason, line) FROM STDIN") \
                    as copy:
                for row in values:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql("DROP TABLE IF EXISTS temp.panen_returned")
            conn.exec_driver_sql("PRAGMA temp.cache_size = -131072")  # as the main database's: a million ids index fast
            conn.exec_driver_sql("CREATE TEMPORARY TABLE panen_returned (line INTEGER PRIMARY KEY, payment_id TEXT NOT "
                                 "NULL UNIQUE, status TEXT NOT NULL, reason TEXT)")
            cur = raw.cursor()
            try:
                cur.executemany("INSERT INTO panen_returned (payment_id, status, reason, line) VALUES (?, ?, ?, ?)",
                                values)
            finally:
                cur.close()

    def batch_statuses(self, season_id: str | None = None) -> pd.DataFrame:
        """:meth:`batches` with the life cycle: per batch the payments ``confirmed``, ``failed``,
        ``reissued``, ``cancelled`` (counts), the batch a re-issue batch was ``exported_with``,
        and the SHA-256 of the payment file (``export_sha256``)."""
        out = self.batches(season_id)
        p = payments_table.c
        counts = (sa.select(p.batch_id, p.status, sa.func.count()).group_by(p.batch_id, p.status))
        extra = sa.select(batches_table.c.batch_id, batches_table.c.exported_with, batches_table.c.export_sha256)
        if season_id is not None:
            counts = counts.where(p.season_id == season_id)
            extra = extra.where(batches_table.c.season_id == season_id)
        with self._reading() as conn:
            per = _query_frame(conn, counts, ["batch_id", "status", "n"])
            more = _query_frame(conn, extra, ["batch_id", "exported_with", "export_sha256"])
        for status in ("confirmed", "failed", "reissued", "cancelled"):
            n = per[per["status"] == status].set_index("batch_id")["n"]
            out[status] = out["batch_id"].map(n).fillna(0).astype(np.int64)
        return out.merge(more, on="batch_id", how="left")


@dataclass(frozen=True)
class Exported:
    """The outcome of :meth:`SettlementStore.export`: the payment file written, its SHA-256, its
    ``payments`` (rows) and ``amount`` [Rp], how many are re-issues, and whether the batch was
    exported now (``new``) or its file written again."""

    batch_id: str
    path: Path
    sha256: str
    payments: int
    amount: int
    reissued: int
    new: bool


@dataclass(frozen=True)
class ReturnsApplied:
    """The outcome of :meth:`SettlementStore.apply_returns`: payments newly ``confirmed`` and
    ``failed``, rows that changed nothing (``unchanged``), and the batches now confirmed."""

    confirmed: int
    failed: int
    unchanged: int
    batches_confirmed: list[str]
