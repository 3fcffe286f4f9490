"""degradation health, flow runs, position snapshots

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coordinator_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("health", JSONDocument, nullable=True))
    op.create_table(
        "flow_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flow", sa.String(length=40), nullable=False),
        sa.Column("run_key", sa.String(length=40), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prefect_flow_run_id", sa.String(length=40), nullable=True),
        sa.Column("reported_in", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_flow_runs_flow_started", "flow_runs", ["flow", "started_at"], unique=False)
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("position_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("size", ExactDecimal(), nullable=False),
        sa.Column("entry_price", ExactDecimal(), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("unrealized_pnl", ExactDecimal(), nullable=False),
        sa.Column("stop_loss", ExactDecimal(), nullable=True),
        sa.Column("take_profit", ExactDecimal(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["cycles.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_position_snapshots_position_time", "position_snapshots", ["position_id", "taken_at"], unique=False
    )
    op.create_index(op.f("ix_position_snapshots_run_id"), "position_snapshots", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_position_snapshots_run_id"), table_name="position_snapshots")
    op.drop_index("ix_position_snapshots_position_time", table_name="position_snapshots")
    op.drop_table("position_snapshots")
    op.drop_index("ix_flow_runs_flow_started", table_name="flow_runs")
    op.drop_table("flow_runs")
    with op.batch_alter_table("coordinator_state", schema=None) as batch_op:
        batch_op.drop_column("health")
