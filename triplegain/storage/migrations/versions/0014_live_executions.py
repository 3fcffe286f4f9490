"""live executions: what a live order did, journalled before its run records it

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_executions",
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("cost", ExactDecimal(), nullable=False),
        sa.Column("execution", JSONDocument, nullable=False),
        sa.Column("journalled_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index(op.f("ix_live_executions_run_id"), "live_executions", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_live_executions_run_id"), table_name="live_executions")
    op.drop_table("live_executions")
