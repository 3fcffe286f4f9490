"""hodl bags: their state beside the coordinator's, and their history

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coordinator_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hodl", JSONDocument, nullable=True))
    op.create_table(
        "hodl_bag_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("asset", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("usd", ExactDecimal(), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("position_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["cycles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_hodl_bag_history_run_id"), "hodl_bag_history", ["run_id"], unique=False)
    op.create_index("ix_hodl_bag_history_asset_at", "hodl_bag_history", ["asset", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_hodl_bag_history_asset_at", table_name="hodl_bag_history")
    op.drop_index(op.f("ix_hodl_bag_history_run_id"), table_name="hodl_bag_history")
    op.drop_table("hodl_bag_history")
    with op.batch_alter_table("coordinator_state", schema=None) as batch_op:
        batch_op.drop_column("hodl")
