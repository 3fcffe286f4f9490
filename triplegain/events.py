"""Events of a trading cycle, as bus payloads. Events are past tense and immutable (STYLE.md).

Topics they travel on: trade verdicts and circuit breakers on `risk_alerts`, orders on
`execution_events`, positions on `portfolio_updates`, notices and skipped symbols on `system_events`.
The agents' own reports (TechnicalReport, RegimeAssessment, TradingSignal) travel as they are.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from triplegain.control import StateChange
from triplegain.models.conflicts import Resolution
from triplegain.models.trading import Fill, Order, Position, RiskVerdict

_EVENT = ConfigDict(frozen=True, extra="forbid")


class TradeApproved(BaseModel):
    """The risk engine let a trade through (possibly reduced)."""

    model_config = _EVENT

    symbol: str
    verdict: RiskVerdict


class TradeRejected(BaseModel):
    """The risk engine refused a trade, or the signal could not form one; the verdict says why."""

    model_config = _EVENT

    symbol: str
    verdict: RiskVerdict


class OrderFilled(BaseModel):
    """The paper broker filled an order."""

    model_config = _EVENT

    order: Order
    fill: Fill


class OrderRejected(BaseModel):
    """The paper broker refused an order (balance, minimums); the order carries the reason."""

    model_config = _EVENT

    order: Order


class PositionOpened(BaseModel):
    """A filled buy opened a position."""

    model_config = _EVENT

    position: Position


class PositionClosed(BaseModel):
    """A position was closed by a signal, a stop-loss or a take-profit."""

    model_config = _EVENT

    position: Position


class CircuitBreakerTripped(BaseModel):
    """A loss or drawdown limit was reached: no new exposure until it clears."""

    model_config = _EVENT

    breaker: str
    reason: str


class CircuitBreakerReset(BaseModel):
    """A breaker cleared (daily or weekly reset)."""

    model_config = _EVENT

    breaker: str


class ConflictResolved(BaseModel):
    """A symbol's conflicts were resolved (by a model, or conservatively without one)."""

    model_config = _EVENT

    resolution: Resolution


class CoordinatorStateChanged(BaseModel):
    """Someone paused, resumed or halted the coordinator (recorded between cycles, published by the next)."""

    model_config = _EVENT

    change: StateChange


class SymbolSkipped(BaseModel):
    """A symbol could not be analysed this cycle (no usable market data)."""

    model_config = _EVENT

    symbol: str
    reason: str


class CoordinatorNoticed(BaseModel):
    """Something the coordinator wants the cycle's report to say."""

    model_config = _EVENT

    text: str
