"""coordinator events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coordinator_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("from_state", sa.String(length=10), nullable=False),
        sa.Column("to_state", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prefect_emitted_at", UTCDateTime(), nullable=True),
        sa.Column("published_cycle_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("coordinator_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coordinator_events_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("coordinator_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coordinator_events_at"))

    op.drop_table("coordinator_events")
