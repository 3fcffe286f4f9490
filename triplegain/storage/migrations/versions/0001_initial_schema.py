"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coordinator_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("risk_state", JSONDocument, nullable=True),
        sa.Column("regime_states", JSONDocument, nullable=False),
        sa.Column("last_cycle_id", sa.String(length=40), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cycles",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=False),
        sa.Column("starting_equity", ExactDecimal(), nullable=False),
        sa.Column("equity", ExactDecimal(), nullable=False),
        sa.Column("report", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cycles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cycles_as_of"), ["as_of"], unique=False)

    op.create_table(
        "agent_outputs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("agent_name", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("timestamp", UTCDateTime(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("model_used", sa.String(length=100), nullable=False),
        sa.Column("output", JSONDocument, nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "agent_name", "symbol"),
    )
    with op.batch_alter_table("agent_outputs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_outputs_cycle_id"), ["cycle_id"], unique=False)

    op.create_table(
        "model_votes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=60), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("entry_price", ExactDecimal(), nullable=True),
        sa.Column("stop_loss", ExactDecimal(), nullable=True),
        sa.Column("take_profit", ExactDecimal(), nullable=True),
        sa.Column("position_size_pct", ExactDecimal(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("tokens_used", sa.Integer(), nullable=False),
        sa.Column("cost_usd", ExactDecimal(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("consensus_action", sa.String(length=12), nullable=False),
        sa.Column("price_at_decision", ExactDecimal(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "symbol", "model"),
    )
    with op.batch_alter_table("model_votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_votes_cycle_id"), ["cycle_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(length=40), nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("intent", sa.String(length=8), nullable=False),
        sa.Column("size", ExactDecimal(), nullable=False),
        sa.Column("reference_price", ExactDecimal(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("position_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("client_order_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_cycle_id"), ["cycle_id"], unique=False)

    op.create_table(
        "portfolio_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=True),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("balances", JSONDocument, nullable=False),
        sa.Column("prices", JSONDocument, nullable=False),
        sa.Column("equity", ExactDecimal(), nullable=False),
        sa.Column("exposure", ExactDecimal(), nullable=False),
        sa.Column("open_positions", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("portfolio_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portfolio_snapshots_cycle_id"), ["cycle_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_portfolio_snapshots_taken_at"), ["taken_at"], unique=False)

    op.create_table(
        "positions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("size", ExactDecimal(), nullable=False),
        sa.Column("entry_price", ExactDecimal(), nullable=False),
        sa.Column("leverage", sa.Integer(), nullable=False),
        sa.Column("stop_loss", ExactDecimal(), nullable=True),
        sa.Column("take_profit", ExactDecimal(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("exit_price", ExactDecimal(), nullable=True),
        sa.Column("realized_pnl", ExactDecimal(), nullable=True),
        sa.Column("fees_paid", ExactDecimal(), nullable=False),
        sa.Column("close_reason", sa.String(length=20), nullable=True),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("closed_cycle_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["closed_cycle_id"],
            ["cycles.id"],
        ),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.create_index("ix_positions_status_symbol", ["status", "symbol"], unique=False)

    op.create_table(
        "risk_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cycle_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("verdict", JSONDocument, nullable=False),
        sa.ForeignKeyConstraint(
            ["cycle_id"],
            ["cycles.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "symbol"),
    )
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_decisions_cycle_id"), ["cycle_id"], unique=False)

    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_order_id", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", ExactDecimal(), nullable=False),
        sa.Column("size", ExactDecimal(), nullable=False),
        sa.Column("fee", ExactDecimal(), nullable=False),
        sa.Column("fee_asset", sa.String(length=10), nullable=False),
        sa.Column("slippage_pct", ExactDecimal(), nullable=False),
        sa.Column("filled_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_order_id"],
            ["orders.client_order_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_order_id"),
    )


def downgrade() -> None:
    op.drop_table("fills")
    with op.batch_alter_table("risk_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_decisions_cycle_id"))

    op.drop_table("risk_decisions")
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index("ix_positions_status_symbol")

    op.drop_table("positions")
    with op.batch_alter_table("portfolio_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portfolio_snapshots_taken_at"))
        batch_op.drop_index(batch_op.f("ix_portfolio_snapshots_cycle_id"))

    op.drop_table("portfolio_snapshots")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_cycle_id"))

    op.drop_table("orders")
    with op.batch_alter_table("model_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_votes_cycle_id"))

    op.drop_table("model_votes")
    with op.batch_alter_table("agent_outputs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_outputs_cycle_id"))

    op.drop_table("agent_outputs")
    with op.batch_alter_table("cycles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cycles_as_of"))

    op.drop_table("cycles")
    op.drop_table("coordinator_state")
