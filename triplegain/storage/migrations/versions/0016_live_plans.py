"""live plans: what a live market order is for, journalled before it is sent

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import JSONDocument, UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_plans",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("plan", JSONDocument, nullable=False),
        sa.Column("planned_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_index(op.f("ix_live_plans_order_id"), "live_plans", ["order_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_live_plans_order_id"), table_name="live_plans")
    op.drop_table("live_plans")
