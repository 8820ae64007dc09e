"""The settlement store: seasons, batches, payments and recoveries.

Revision ID: 0001
Revises:
Create Date: 2026-12-07

Money is integer rupiah (BIGINT) in every amount column; never floating point.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seasons",
        sa.Column("season_id", sa.String(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("season_id", name="pk_seasons"),
    )
    op.create_table(
        "batches",
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
        sa.CheckConstraint("kind IN ('on_account', 'final', 'correction')", name="ck_batches_kind"),
        sa.CheckConstraint("state IN ('pending', 'committed')", name="ck_batches_state"),
        sa.CheckConstraint("status IN ('draft', 'approved', 'exported', 'confirmed')", name="ck_batches_status"),
        sa.CheckConstraint("state = 'committed' OR status = 'draft'", name="ck_batches_pending_is_draft"),
        sa.CheckConstraint("kind <> 'correction' OR corrects IS NOT NULL", name="ck_batches_correction_names_batch"),
        sa.ForeignKeyConstraint(["season_id"], ["seasons.season_id"], name="fk_batches_season_id_seasons"),
        sa.ForeignKeyConstraint(["corrects"], ["batches.batch_id"], name="fk_batches_corrects_batches"),
        sa.PrimaryKeyConstraint("batch_id", name="pk_batches"),
        sa.UniqueConstraint("season_id", "sequence", name="uq_batches_season_id_sequence"),
    )
    op.create_index("ix_batches_state", "batches", ["state"])
    op.create_table(
        "payments",
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
        sa.CheckConstraint("status IN ('issued', 'failed', 'reissued', 'confirmed')", name="ck_payments_status"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_payments_batch_id_batches"),
        sa.ForeignKeyConstraint(["reissue_of"], ["payments.payment_id"], name="fk_payments_reissue_of_payments"),
        sa.PrimaryKeyConstraint("payment_id", name="pk_payments"),
    )
    op.create_index("ix_payments_batch_id", "payments", ["batch_id"])
    op.create_index("ix_payments_payee", "payments",
                    ["season_id", "product_id", "payee_type", "district_id", "payee_id"])
    op.create_table(
        "recoveries",
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
        sa.CheckConstraint("status IN ('open', 'decided', 'superseded')", name="ck_recoveries_status"),
        sa.CheckConstraint("(status = 'decided' AND recovered IS NOT NULL AND recovered >= 0 AND recovered <= amount)"
                           " OR (status <> 'decided' AND recovered IS NULL)", name="ck_recoveries_decided"),
        sa.CheckConstraint("(status = 'superseded' AND superseded_by IS NOT NULL)"
                           " OR (status <> 'superseded' AND superseded_by IS NULL)", name="ck_recoveries_superseded"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_recoveries_batch_id_batches"),
        sa.ForeignKeyConstraint(["superseded_by"], ["batches.batch_id"], name="fk_recoveries_superseded_by_batches"),
        sa.PrimaryKeyConstraint("recovery_id", name="pk_recoveries"),
    )
    op.create_index("ix_recoveries_batch_id", "recoveries", ["batch_id"])
    op.create_index("ix_recoveries_payee", "recoveries",
                    ["season_id", "product_id", "payee_type", "district_id", "payee_id"])


def downgrade() -> None:
    op.drop_table("recoveries")
    op.drop_table("payments")
    op.drop_table("batches")
    op.drop_table("seasons")
