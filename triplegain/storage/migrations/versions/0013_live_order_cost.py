"""live orders: what the filled part cost, as the exchange reports it

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost", ExactDecimal(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("live_orders", schema=None) as batch_op:
        batch_op.drop_column("cost")
