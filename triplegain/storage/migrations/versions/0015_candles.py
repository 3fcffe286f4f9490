"""candles: hourly candles kept as fetched, and the spans they cover

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("open_time", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("open", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("close", sa.Double(), nullable=False),
        sa.Column("volume", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("source", "symbol", "open_time"),
    )
    op.create_table(
        "candle_spans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("first_open", sa.BigInteger(), nullable=False),
        sa.Column("last_open", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_candle_spans_source_symbol", "candle_spans", ["source", "symbol"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_candle_spans_source_symbol", table_name="candle_spans")
    op.drop_table("candle_spans")
    op.drop_table("candles")
