"""dca plans and batches; order intent wide enough for rebalance

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column(
            "intent", existing_type=sa.String(length=8), type_=sa.String(length=12), existing_nullable=False
        )
    op.create_table(
        "dca_plans",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("total_usd", ExactDecimal(), nullable=False),
        sa.Column("decision", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_dca_plans_created_at"), "dca_plans", ["created_at"], unique=False)
    op.create_table(
        "dca_batches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.String(length=16), nullable=False),
        sa.Column("batch_index", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", UTCDateTime(), nullable=False),
        sa.Column("trades", JSONDocument, nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("run_key", sa.String(length=40), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("prefect_flow_run_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["dca_plans.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("plan_id", "batch_index"),
    )
    op.create_index("ix_dca_batches_due", "dca_batches", ["status", "scheduled_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dca_batches_due", table_name="dca_batches")
    op.drop_table("dca_batches")
    op.drop_index(op.f("ix_dca_plans_created_at"), table_name="dca_plans")
    op.drop_table("dca_plans")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column(
            "intent", existing_type=sa.String(length=12), type_=sa.String(length=8), existing_nullable=False
        )
