"""llm recordings

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import JSONDocument, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_recordings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("schema_name", sa.String(length=60), nullable=False),
        sa.Column("answer", JSONDocument, nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(op.f("ix_llm_recordings_model"), "llm_recordings", ["model"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_llm_recordings_model"), table_name="llm_recordings")
    op.drop_table("llm_recordings")
