"""The batch life cycle: cancelled batches, re-issue batches, bank files and failure reasons.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

- ``batches.kind`` may be ``reissue`` (a batch of re-issued payments, made by an export;
  ``exported_with`` names the batch whose bank file carried it);
- ``batches.status`` may be ``cancelled``; ``payments.status`` and ``recoveries.status``
  too (the payments and recoveries of a cancelled batch);
- ``batches.export_sha256``: SHA-256 of the bank payment file the batch's export wrote
  (exporting it again must reproduce it byte for byte);
- ``payments.failure_reason``: why the bank or mobile-money operator returned a payment
  as failed;
- a partial index on the failed payments of a season (the next export re-issues them).

SQLite cannot alter a CHECK constraint: its tables are copied (Alembic's batch mode), with
every constraint restated here (the store runs SQLite migrations with foreign keys off, as
SQLite's procedure for altering a table needs, and this migration checks them all before
the commit); PostgreSQL drops and adds the constraints in place.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KIND_0001 = "kind IN ('on_account', 'final', 'correction')"
_KIND = "kind IN ('on_account', 'final', 'correction', 'reissue')"
_STATUS_0001 = "status IN ('draft', 'approved', 'exported', 'confirmed')"
_STATUS = "status IN ('draft', 'approved', 'exported', 'confirmed', 'cancelled')"
_REISSUE = ("(kind = 'reissue' AND exported_with IS NOT NULL AND corrects IS NULL)"
            " OR (kind <> 'reissue' AND exported_with IS NULL)")
_EXPORTED = "export_sha256 IS NULL OR status IN ('exported', 'confirmed')"
_PAYMENT_STATUS_0001 = "status IN ('issued', 'failed', 'reissued', 'confirmed')"
_PAYMENT_STATUS = "status IN ('issued', 'failed', 'reissued', 'confirmed', 'cancelled')"
_REASON = "failure_reason IS NULL OR status IN ('failed', 'reissued')"
_RECOVERY_STATUS_0001 = "status IN ('open', 'decided', 'superseded')"
_RECOVERY_STATUS = "status IN ('open', 'decided', 'superseded', 'cancelled')"


def _batches_0001(meta: sa.MetaData) -> sa.Table:
    """The batches table as 0001 made it (SQLite's copy starts from this, not from reflection)."""
    return sa.Table(
        "batches", meta,
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("season_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("created_at", sa.String(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("products", sa.Text(), nullable=False),
        sa.Column("corrects", sa.String(), nullable=True),
        sa.Column("out_dir", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(), nullable=False),
        sa.CheckConstraint(_KIND_0001, name="ck_batches_kind"),
        sa.CheckConstraint("state IN ('pending', 'committed')", name="ck_batches_state"),
        sa.CheckConstraint(_STATUS_0001, name="ck_batches_status"),
        sa.CheckConstraint("state = 'committed' OR status = 'draft'", name="ck_batches_pending_is_draft"),
        sa.CheckConstraint("kind <> 'correction' OR corrects IS NOT NULL", name="ck_batches_correction_names_batch"),
        sa.ForeignKeyConstraint(["season_id"], ["seasons.season_id"], name="fk_batches_season_id_seasons"),
        sa.ForeignKeyConstraint(["corrects"], ["batches.batch_id"], name="fk_batches_corrects_batches"),
        sa.PrimaryKeyConstraint("batch_id", name="pk_batches"),
        sa.UniqueConstraint("season_id", "sequence", name="uq_batches_season_id_sequence"),
        sa.Index("ix_batches_state", "state"),
    )


def _payments_0001(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "payments", meta,
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("season_id", sa.String(), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("payee_type", sa.String(), nullable=False),
        sa.Column("district_id", sa.String(), nullable=False),
        sa.Column("payee_id", sa.String(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reissue_of", sa.String(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
        sa.CheckConstraint("payee_type IN ('policy', 'farmer', 'group')", name="ck_payments_payee_type"),
        sa.CheckConstraint(_PAYMENT_STATUS_0001, name="ck_payments_status"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_payments_batch_id_batches"),
        sa.ForeignKeyConstraint(["reissue_of"], ["payments.payment_id"], name="fk_payments_reissue_of_payments"),
        sa.PrimaryKeyConstraint("payment_id", name="pk_payments"),
        sa.Index("ix_payments_batch_id", "batch_id"),
        sa.Index("ix_payments_payee", "season_id", "product_id", "payee_type", "district_id", "payee_id"),
    )


def _recoveries_0001(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "recoveries", meta,
        sa.Column("recovery_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("season_id", sa.String(), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("payee_type", sa.String(), nullable=False),
        sa.Column("district_id", sa.String(), nullable=False),
        sa.Column("payee_id", sa.String(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("recovered", sa.BigInteger(), nullable=True),
        sa.Column("superseded_by", sa.String(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_recoveries_amount_positive"),
        sa.CheckConstraint("payee_type IN ('policy', 'farmer', 'group')", name="ck_recoveries_payee_type"),
        sa.CheckConstraint(_RECOVERY_STATUS_0001, name="ck_recoveries_status"),
        sa.CheckConstraint("(status = 'decided' AND recovered IS NOT NULL AND recovered >= 0 AND recovered <= amount)"
                           " OR (status <> 'decided' AND recovered IS NULL)", name="ck_recoveries_decided"),
        sa.CheckConstraint("(status = 'superseded' AND superseded_by IS NOT NULL)"
                           " OR (status <> 'superseded' AND superseded_by IS NULL)", name="ck_recoveries_superseded"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_recoveries_batch_id_batches"),
        sa.ForeignKeyConstraint(["superseded_by"], ["batches.batch_id"], name="fk_recoveries_superseded_by_batches"),
        sa.PrimaryKeyConstraint("recovery_id", name="pk_recoveries"),
        sa.Index("ix_recoveries_batch_id", "batch_id"),
        sa.Index("ix_recoveries_payee", "season_id", "product_id", "payee_type", "district_id", "payee_id"),
    )


def upgrade() -> None:
    meta = sa.MetaData()
    # SQLite copies each table (from the 0001 definitions above, so every constraint carries over);
    # PostgreSQL alters in place (recreate="auto")
    with op.batch_alter_table("batches", copy_from=_batches_0001(meta)) as b:
        b.add_column(sa.Column("exported_with", sa.String(), nullable=True))
        b.add_column(sa.Column("export_sha256", sa.String(), nullable=True))
        b.drop_constraint("ck_batches_kind", type_="check")
        b.drop_constraint("ck_batches_status", type_="check")
        b.create_check_constraint("ck_batches_kind", _KIND)
        b.create_check_constraint("ck_batches_status", _STATUS)
        b.create_check_constraint("ck_batches_reissue", _REISSUE)
        b.create_check_constraint("ck_batches_exported", _EXPORTED)
        b.create_foreign_key("fk_batches_exported_with_batches", "batches", ["exported_with"], ["batch_id"])
    with op.batch_alter_table("payments", copy_from=_payments_0001(meta)) as b:
        b.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        b.drop_constraint("ck_payments_status", type_="check")
        b.create_check_constraint("ck_payments_status", _PAYMENT_STATUS)
        b.create_check_constraint("ck_payments_failure_reason", _REASON)
    with op.batch_alter_table("recoveries", copy_from=_recoveries_0001(meta)) as b:
        b.drop_constraint("ck_recoveries_status", type_="check")
        b.create_check_constraint("ck_recoveries_status", _RECOVERY_STATUS)
    op.create_index("ix_payments_failed", "payments", ["season_id"],
                    sqlite_where=sa.text("status = 'failed'"), postgresql_where=sa.text("status = 'failed'"))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":  # the store runs SQLite migrations with foreign keys off: check them all
        broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"settlement store migration 0002: {len(broken)} broken reference(s), e.g. {broken[0]}")


def downgrade() -> None:  # pragma: no cover - upgrades are one-way (README, "Migrations")
    raise NotImplementedError("the settlement store's schema upgrades are one-way")
