"""Payee key hashes on payments and recoveries, and the per-season balances the difference reads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

* ``payments`` and ``recoveries`` get ``payee_hash`` (63 bits, a non-negative BIGINT) and
  ``payee_check`` (an independent 64-bit hash) of the payee key, computed here in Python
  for every existing row (:func:`panen.engine.settlement.store.payee_hashes`);
* the index on the five text columns of the payee (``ix_payments_payee``) is replaced by
  ``(season_id, payee_hash)``: a batch's rows are inserted in hash order, so the index grows
  by sorted runs instead of random inserts into a B-tree of text;
* ``seasons.balanced`` (the revision the season's balances were written at) and the table
  ``balances``: per season, product and payee type, what each payee was paid and what was
  waived, as sorted numeric arrays. Existing seasons start with ``balanced`` NULL: their
  balances are rebuilt from the payment rows when next needed.

Money is integer rupiah (BIGINT) everywhere; never floating point.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = ["product_id", "payee_type", "district_id", "payee_id"]


def _tables_before() -> tuple[sa.Table, sa.Table]:
    """payments and recoveries as 0002 left them, with the two new columns still nullable
    (SQLite alters a table by copying it: this is the copy's source, CHECK constraints included)."""
    md = sa.MetaData()
    sa.Table("batches", md, sa.Column("batch_id", sa.String(), primary_key=True))
    pay = sa.Table(
        "payments", md,
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("season_id", sa.String(), nullable=False),
        *(sa.Column(k, sa.String(), nullable=False) for k in KEY),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reissue_of", sa.String(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("payee_hash", sa.BigInteger(), nullable=True),
        sa.Column("payee_check", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
        sa.CheckConstraint("payee_type IN ('policy', 'farmer', 'group')", name="ck_payments_payee_type"),
        sa.CheckConstraint("status IN ('issued', 'failed', 'reissued', 'confirmed', 'cancelled')",
                           name="ck_payments_status"),
        sa.CheckConstraint("failure_reason IS NULL OR status IN ('failed', 'reissued')",
                           name="ck_payments_failure_reason"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_payments_batch_id_batches"),
        sa.ForeignKeyConstraint(["reissue_of"], ["payments.payment_id"], name="fk_payments_reissue_of_payments"),
        sa.PrimaryKeyConstraint("payment_id", name="pk_payments"),
        sa.Index("ix_payments_batch_id", "batch_id"),
        sa.Index("ix_payments_payee", "season_id", *KEY),
        sa.Index("ix_payments_failed", "season_id", sqlite_where=sa.text("status = 'failed'"),
                 postgresql_where=sa.text("status = 'failed'")),
    )
    rec = sa.Table(
        "recoveries", md,
        sa.Column("recovery_id", sa.String(), nullable=False),
        sa.Column("batch_id", sa.String(), nullable=False),
        sa.Column("season_id", sa.String(), nullable=False),
        *(sa.Column(k, sa.String(), nullable=False) for k in KEY),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("recovered", sa.BigInteger(), nullable=True),
        sa.Column("superseded_by", sa.String(), nullable=True),
        sa.Column("payee_hash", sa.BigInteger(), nullable=True),
        sa.Column("payee_check", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_recoveries_amount_positive"),
        sa.CheckConstraint("payee_type IN ('policy', 'farmer', 'group')", name="ck_recoveries_payee_type"),
        sa.CheckConstraint("status IN ('open', 'decided', 'superseded', 'cancelled')", name="ck_recoveries_status"),
        sa.CheckConstraint("(status = 'decided' AND recovered IS NOT NULL AND recovered >= 0 AND recovered <= amount)"
                           " OR (status <> 'decided' AND recovered IS NULL)", name="ck_recoveries_decided"),
        sa.CheckConstraint("(status = 'superseded' AND superseded_by IS NOT NULL)"
                           " OR (status <> 'superseded' AND superseded_by IS NULL)", name="ck_recoveries_superseded"),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.batch_id"], name="fk_recoveries_batch_id_batches"),
        sa.ForeignKeyConstraint(["superseded_by"], ["batches.batch_id"], name="fk_recoveries_superseded_by_batches"),
        sa.PrimaryKeyConstraint("recovery_id", name="pk_recoveries"),
        sa.Index("ix_recoveries_batch_id", "batch_id"),
        sa.Index("ix_recoveries_payee", "season_id", *KEY),
    )
    return pay, rec


def _backfill(table: str, id_column: str) -> None:
    import pandas as pd
    from panen.engine.settlement.store import payee_hashes

    conn = op.get_bind()
    rows = conn.execute(sa.text(f"SELECT {id_column}, {', '.join(KEY)} FROM {table}")).all()
    if not rows:
        return
    frame = pd.DataFrame([tuple(r) for r in rows], columns=[id_column, *KEY])
    h, c = payee_hashes(frame)
    conn.execute(sa.text(f"UPDATE {table} SET payee_hash = :h, payee_check = :c WHERE {id_column} = :i"),
                 [{"h": a, "c": b, "i": i} for a, b, i in zip(h.tolist(), c.tolist(), frame[id_column].tolist())])


def upgrade() -> None:
    op.add_column("seasons", sa.Column("balanced", sa.BigInteger(), nullable=True))
    pay, rec = _tables_before()
    for table, id_column, copy_from in (("payments", "payment_id", pay), ("recoveries", "recovery_id", rec)):
        op.add_column(table, sa.Column("payee_hash", sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column("payee_check", sa.BigInteger(), nullable=True))
        _backfill(table, id_column)
        with op.batch_alter_table(table, copy_from=copy_from) as batch:
            batch.alter_column("payee_hash", existing_type=sa.BigInteger(), nullable=False)
            batch.alter_column("payee_check", existing_type=sa.BigInteger(), nullable=False)
            if table == "payments":
                batch.drop_index("ix_payments_payee")
                batch.create_index("ix_payments_payee_hash", ["season_id", "payee_hash"])
    op.create_table(
        "balances",
        sa.Column("season_id", sa.String(), nullable=False),
        sa.Column("product_id", sa.String(), nullable=False),
        sa.Column("payee_type", sa.String(), nullable=False),
        sa.Column("part", sa.BigInteger(), nullable=False),
        sa.Column("payees", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("payee_type IN ('policy', 'farmer', 'group')", name="ck_balances_payee_type"),
        sa.ForeignKeyConstraint(["season_id"], ["seasons.season_id"], name="fk_balances_season_id_seasons"),
        sa.PrimaryKeyConstraint("season_id", "product_id", "payee_type", "part", name="pk_balances"),
    )


def downgrade() -> None:
    op.drop_table("balances")
    pay, rec = _tables_before()
    with op.batch_alter_table("recoveries", copy_from=rec) as batch:
        batch.drop_column("payee_check")
        batch.drop_column("payee_hash")
    with op.batch_alter_table("payments", copy_from=pay) as batch:
        batch.drop_index("ix_payments_payee_hash")
        batch.create_index("ix_payments_payee", ["season_id", *KEY])
        batch.drop_column("payee_check")
        batch.drop_column("payee_hash")
    with op.batch_alter_table("seasons") as batch:
        batch.drop_column("balanced")
