"""ORM rows (SQLAlchemy 2, typed). Separate from the domain models; `repository` maps between them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, Double, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from triplegain.storage.types import ExactDecimal, JSONDocument, UTCDateTime


class Base(DeclarativeBase):
    """Declarative base of every TripleGain table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Decimal: ExactDecimal(),
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


class CycleRow(Base):
    """One trading cycle: its identity is its as-of hour."""

    __tablename__ = "cycles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(8))
    decided_by: Mapped[str] = mapped_column(String(200))
    starting_equity: Mapped[Decimal]
    equity: Mapped[Decimal]
    report: Mapped[dict[str, Any]]


class AgentOutputRow(Base):
    """What one agent said about one symbol in one cycle."""

    __tablename__ = "agent_outputs"
    __table_args__ = (UniqueConstraint("cycle_id", "agent_name", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    agent_name: Mapped[str] = mapped_column(String(40))
    symbol: Mapped[str] = mapped_column(String(20))
    timestamp: Mapped[datetime]
    confidence: Mapped[float]
    model_used: Mapped[str] = mapped_column(String(100))
    output: Mapped[dict[str, Any]]


class ModelVoteRow(Base):
    """One model's vote; scored against later prices by the shadow leaderboard."""

    __tablename__ = "model_votes"
    __table_args__ = (UniqueConstraint("cycle_id", "symbol", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(60))
    provider: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(12))
    confidence: Mapped[float]
    entry_price: Mapped[Decimal | None]
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]
    position_size_pct: Mapped[Decimal]
    reasoning: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float]
    tokens_used: Mapped[int]
    cost_usd: Mapped[Decimal]
    error: Mapped[str | None] = mapped_column(Text)
    consensus_action: Mapped[str] = mapped_column(String(12))
    price_at_decision: Mapped[Decimal]


class RiskDecisionRow(Base):
    """The risk engine's verdict on one symbol's proposal."""

    __tablename__ = "risk_decisions"
    __table_args__ = (UniqueConstraint("cycle_id", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12))
    verdict: Mapped[dict[str, Any]]


class OrderRow(Base):
    """An order; the client order id is unique, so no order can be stored twice."""

    __tablename__ = "orders"

    client_order_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    intent: Mapped[str] = mapped_column(String(12))
    size: Mapped[Decimal]
    reference_price: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    position_id: Mapped[str | None] = mapped_column(String(40))


class FillRow(Base):
    """The execution of an order (at most one per order for market orders)."""

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_order_id: Mapped[str] = mapped_column(ForeignKey("orders.client_order_id"), unique=True)
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    price: Mapped[Decimal]
    size: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_asset: Mapped[str] = mapped_column(String(10))
    slippage_pct: Mapped[Decimal]
    filled_at: Mapped[datetime]


class PositionRow(Base):
    """A position, open or closed."""

    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_status_symbol", "status", "symbol"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(8))
    size: Mapped[Decimal]
    entry_price: Mapped[Decimal]
    leverage: Mapped[int]
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]
    status: Mapped[str] = mapped_column(String(8))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    exit_price: Mapped[Decimal | None]
    realized_pnl: Mapped[Decimal | None]
    fees_paid: Mapped[Decimal]
    close_reason: Mapped[str | None] = mapped_column(String(20))
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"))
    closed_cycle_id: Mapped[str | None] = mapped_column(ForeignKey("cycles.id"))


class PortfolioSnapshotRow(Base):
    """Balances, prices and equity at the end of a cycle; the latest one is the account's balances."""

    __tablename__ = "portfolio_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str | None] = mapped_column(ForeignKey("cycles.id"), index=True)
    taken_at: Mapped[datetime] = mapped_column(index=True)
    balances: Mapped[dict[str, Any]]
    prices: Mapped[dict[str, Any]]
    equity: Mapped[Decimal]
    exposure: Mapped[Decimal]
    open_positions: Mapped[int]


class CoordinatorStateRow(Base):
    """The coordinator's cross-run state; `version` makes concurrent cycles detectable."""

    __tablename__ = "coordinator_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(10))
    version: Mapped[int]
    risk_state: Mapped[dict[str, Any] | None]
    regime_states: Mapped[dict[str, Any]]
    llm_breakers: Mapped[dict[str, Any] | None]
    last_cycle_id: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime]
    health: Mapped[dict[str, Any] | None] = mapped_column(doc="Degradation counters and level")
    hodl: Mapped[dict[str, Any] | None] = mapped_column(doc="The hodl bags (`triplegain.hodl.HodlState`)")


class MessageRow(Base):
    """Every bus message of a cycle, written by the audit trail in the cycle's transaction."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_cycle_topic", "cycle_id", "topic"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"))
    seq: Mapped[int] = mapped_column(Integer, doc="Order in which the audit trail received it")
    timestamp: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int]
    correlation_id: Mapped[str | None] = mapped_column(String(40))
    causation_id: Mapped[str | None] = mapped_column(String(32))
    ttl_seconds: Mapped[float]
    payload_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]]


class DeadLetterRow(Base):
    """A delivery that still failed when the cycle ended."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(32))
    subscriber: Mapped[str] = mapped_column(String(60))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    exhausted: Mapped[bool]
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    message: Mapped[dict[str, Any]]


class LLMCallRow(Base):
    """One attempt to get an answer from one provider: who asked, who answered, what it cost."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str | None] = mapped_column(String(40), index=True)
    agent: Mapped[str] = mapped_column(String(40))
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    latency_ms: Mapped[float]
    tokens_in: Mapped[int]
    tokens_out: Mapped[int]
    cost_usd: Mapped[Decimal]
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)


class ConflictResolutionRow(Base):
    """How one symbol's conflicts were resolved in a cycle (the reference's conflict_resolution_log)."""

    __tablename__ = "conflict_resolutions"
    __table_args__ = (UniqueConstraint("cycle_id", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    conflict_types: Mapped[dict[str, Any]]
    agents_involved: Mapped[dict[str, Any]]
    details: Mapped[dict[str, Any]]
    action: Mapped[str] = mapped_column(String(10))
    confidence: Mapped[float]
    reasoning: Mapped[str] = mapped_column(Text)
    modifications: Mapped[dict[str, Any] | None]
    decided_by: Mapped[str] = mapped_column(String(60))
    latency_ms: Mapped[float]


class SentimentReportRow(Base):
    """A sentiment report and its validity window; cycles use the newest one still valid."""

    __tablename__ = "sentiment_reports"
    __table_args__ = (Index("ix_sentiment_symbol_time", "symbol", "as_of"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(20))
    as_of: Mapped[datetime]
    valid_until: Mapped[datetime]
    bias: Mapped[str] = mapped_column(String(16))
    overall_score: Mapped[float]
    confidence: Mapped[float]
    model_used: Mapped[str] = mapped_column(String(200))
    report: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class CoordinatorEventRow(Base):
    """A recorded change of the coordinator's state; emitted as a Prefect event and a bus event."""

    __tablename__ = "coordinator_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    from_state: Mapped[str] = mapped_column(String(10))
    to_state: Mapped[str] = mapped_column(String(10))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    prefect_emitted_at: Mapped[datetime | None]
    published_cycle_id: Mapped[str | None] = mapped_column(String(40))


class PositionSnapshotRow(Base):
    """An open position marked to market at the end of a cycle or a market watch."""

    __tablename__ = "position_snapshots"
    __table_args__ = (Index("ix_position_snapshots_position_time", "position_id", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    position_id: Mapped[str] = mapped_column(String(40))
    symbol: Mapped[str] = mapped_column(String(20))
    taken_at: Mapped[datetime]
    size: Mapped[Decimal]
    entry_price: Mapped[Decimal]
    price: Mapped[Decimal]
    unrealized_pnl: Mapped[Decimal]
    stop_loss: Mapped[Decimal | None]
    take_profit: Mapped[Decimal | None]


class HodlHistoryRow(Base):
    """One line of a hodl bag's history: profit put aside, a purchase, cash held."""

    __tablename__ = "hodl_bag_history"
    __table_args__ = (Index("ix_hodl_bag_history_asset_at", "asset", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("cycles.id"), index=True)
    at: Mapped[datetime]
    asset: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(10))
    usd: Mapped[Decimal]
    amount: Mapped[Decimal]
    price: Mapped[Decimal | None]
    position_id: Mapped[str | None] = mapped_column(String(40))


class FlowRunRow(Base):
    """One run of a flow, written when it starts: a run still `running` long after was cut off (crashed).

    The next run reports failed and crashed runs once (`reported_in`), in its own committed report.
    """

    __tablename__ = "flow_runs"
    __table_args__ = (Index("ix_flow_runs_flow_started", "flow", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow: Mapped[str] = mapped_column(String(40))
    run_key: Mapped[str] = mapped_column(String(40), doc="The cycle or watch id the run worked on")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(Text)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(40))
    reported_in: Mapped[str | None] = mapped_column(String(40))


class DcaPlanRow(Base):
    """A rebalance plan: its decision, and whether a newer one superseded it."""

    __tablename__ = "dca_plans"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text)
    total_usd: Mapped[Decimal]
    decision: Mapped[dict[str, Any]]


class DcaBatchRow(Base):
    """One batch of a plan. Its status moves pending -> executed | skipped | cancelled exactly once, by a
    conditional update in the same transaction as the batch's orders."""

    __tablename__ = "dca_batches"
    __table_args__ = (
        UniqueConstraint("plan_id", "batch_index"),
        Index("ix_dca_batches_due", "status", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("dca_plans.id"))
    batch_index: Mapped[int]
    scheduled_at: Mapped[datetime]
    trades: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str | None] = mapped_column(Text)
    run_key: Mapped[str | None] = mapped_column(String(40))
    finished_at: Mapped[datetime | None]
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(40))


class LLMRecordingRow(Base):
    """A valid model answer, keyed by a hash of model and prompt, so backtests can replay it."""

    __tablename__ = "llm_recordings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(100), index=True)
    schema_name: Mapped[str] = mapped_column(String(60))
    answer: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime]
    cycle_id: Mapped[str | None] = mapped_column(String(40))


class LiveOrderRow(Base):
    """A live order: its intent, stored before it is sent, and what the exchange said last
    (`triplegain.broker.live`)."""

    __tablename__ = "live_orders"
    __table_args__ = (Index("ix_live_orders_status", "status"),)

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cycle_id: Mapped[str] = mapped_column(String(40), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(12))
    amount: Mapped[Decimal]
    price: Mapped[Decimal | None]
    purpose: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    exchange_id: Mapped[str | None] = mapped_column(String(64))
    filled: Mapped[Decimal]
    average_price: Mapped[Decimal | None]
    cost: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fee: Mapped[Decimal]
    fee_asset: Mapped[str | None] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    sends: Mapped[int]
    updated_at: Mapped[datetime]


class LiveOrderLogRow(Base):
    """One line of a live order's status log: every change, in order."""

    __tablename__ = "live_order_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("live_orders.client_id"), index=True)
    at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)


class LiveExecutionRow(Base):
    """What a live order did, journalled the moment its fill was known (the order, its fill, the position
    it opened, reduced or closed), before the run records it with the rest of its work. A run killed
    between the two leaves a row whose order the `orders` table lacks: reconciliation finds it, and the
    operator's word records it (`triplegain reconcile --accept`)."""

    __tablename__ = "live_executions"

    order_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the desk's client order id
    run_id: Mapped[str] = mapped_column(String(40), index=True)
    symbol: Mapped[str] = mapped_column(String(20))
    cost: Mapped[Decimal]  # what the fill cost in the quote asset, as the exchange reported it (0: unknown)
    execution: Mapped[dict[str, Any]]
    journalled_at: Mapped[datetime]


class LivePlanRow(Base):
    """What a live market order is for (`triplegain.broker.plans.OrderPlan`), journalled before it is sent:
    when its run dies before the exchange's reply, reconciliation builds what its fill did from it."""

    __tablename__ = "live_plans"

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the exchange client id
    order_id: Mapped[str] = mapped_column(String(40), index=True)  # the desk's order id
    plan: Mapped[dict[str, Any]]
    planned_at: Mapped[datetime]


class CandleRow(Base):
    """An hourly candle as an exchange served it (`triplegain.market.history`): a live run completes the
    exchange's newest candles to its lookback from these."""

    __tablename__ = "candles"

    source: Mapped[str] = mapped_column(String(60), primary_key=True)  # e.g. ccxt:kraken
    symbol: Mapped[str] = mapped_column(String(20), primary_key=True)
    open_time: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # epoch s
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[float] = mapped_column(Double)


class CandleSpanRow(Base):
    """A span of time whose candles were kept whole (one fetch, one imported file): kept candles are joined
    to a fetch only across covered time, never across a hole."""

    __tablename__ = "candle_spans"
    __table_args__ = (Index("ix_candle_spans_source_symbol", "source", "symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(60))
    symbol: Mapped[str] = mapped_column(String(20))
    first_open: Mapped[int] = mapped_column(BigInteger)
    last_open: Mapped[int] = mapped_column(BigInteger)
