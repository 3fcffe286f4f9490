"""live orders: intents stored before sending, and their status log

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_orders",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=12), nullable=False),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exchange_id", sa.String(length=64), nullable=True),
        sa.Column("filled", ExactDecimal(), nullable=False),
        sa.Column("average_price", ExactDecimal(), nullable=True),
        sa.Column("fee", ExactDecimal(), nullable=False),
        sa.Column("fee_asset", sa.String(length=10), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_index(op.f("ix_live_orders_cycle_id"), "live_orders", ["cycle_id"], unique=False)
    op.create_index("ix_live_orders_status", "live_orders", ["status"], unique=False)
    op.create_table(
        "live_order_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["live_orders.client_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_live_order_log_client_id"), "live_order_log", ["client_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_live_order_log_client_id"), table_name="live_order_log")
    op.drop_table("live_order_log")
    op.drop_index("ix_live_orders_status", table_name="live_orders")
    op.drop_index(op.f("ix_live_orders_cycle_id"), table_name="live_orders")
    op.drop_table("live_orders")
