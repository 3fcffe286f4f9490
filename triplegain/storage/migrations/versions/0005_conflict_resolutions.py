"""conflict resolutions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import JSONDocument

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conflict_resolutions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("conflict_types", JSONDocument, nullable=False),
        sa.Column("agents_involved", JSONDocument, nullable=False),
        sa.Column("details", JSONDocument, nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("modifications", JSONDocument, nullable=True),
        sa.Column("decided_by", sa.String(length=60), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "symbol"),
    )
    with op.batch_alter_table("conflict_resolutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conflict_resolutions_cycle_id"), ["cycle_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conflict_resolutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conflict_resolutions_cycle_id"))

    op.drop_table("conflict_resolutions")
