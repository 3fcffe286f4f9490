"""sentiment reports

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import JSONDocument, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sentiment_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("valid_until", UTCDateTime(), nullable=False),
        sa.Column("bias", sa.String(length=16), nullable=False),
        sa.Column("overall_score", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("model_used", sa.String(length=200), nullable=False),
        sa.Column("report", JSONDocument, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sentiment_reports", schema=None) as batch_op:
        batch_op.create_index("ix_sentiment_symbol_time", ["symbol", "as_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sentiment_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_sentiment_symbol_time")

    op.drop_table("sentiment_reports")
