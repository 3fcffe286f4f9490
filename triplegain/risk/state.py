"""Risk state that outlives a run: circuit breakers, loss streak, cooldowns, equity marks.

Pure functions return a new state; the cycle persists it with everything else in one transaction.
Breakers (reference spec 4.6): daily loss clears at the UTC day change, weekly loss on a new ISO week,
max drawdown only by `reset_drawdown_breaker` (a human decision).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.events import CircuitBreakerReset, CircuitBreakerTripped
from triplegain.settings import RiskSettings

BreakerEvent = CircuitBreakerTripped | CircuitBreakerReset


class CircuitBreaker(StrEnum):
    """The circuit breakers of the risk engine."""

    DAILY_LOSS = "daily_loss"
    WEEKLY_LOSS = "weekly_loss"
    MAX_DRAWDOWN = "max_drawdown"


class RiskState(BaseModel):
    """Everything the risk engine remembers between cycles."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tripped: dict[CircuitBreaker, str] = Field(default_factory=dict, description="Tripped breakers and why")
    day: str = Field(description="UTC date the daily loss is measured over")
    day_start_equity: Decimal = Field(ge=0)
    week: str = Field(description="ISO year-week the weekly loss is measured over")
    week_start_equity: Decimal = Field(ge=0)
    peak_equity: Decimal = Field(ge=0)
    consecutive_losses: int = Field(0, ge=0)
    cooldowns: dict[str, AwareDatetime] = Field(default_factory=dict, description="Symbol -> cooldown end")
    execution_errors: int = Field(0, ge=0, description="Orders in a row the broker refused or failed")
    execution_cooldown_until: AwareDatetime | None = Field(None, description="No new entry before this")

    @property
    def halted(self) -> bool:
        """True while any breaker is tripped: no new exposure."""
        return bool(self.tripped)

    def drawdown_pct(self, equity: Decimal) -> Decimal:
        """Percent below the peak equity."""
        return loss_pct(self.peak_equity, equity)

    def in_cooldown(self, symbol: str, now: datetime) -> bool:
        """True while `symbol` may not be traded."""
        until = self.cooldowns.get(symbol)
        return until is not None and now < until

    def in_execution_cooldown(self, now: datetime) -> bool:
        """True while repeated order errors keep every new entry out."""
        return self.execution_cooldown_until is not None and now < self.execution_cooldown_until


def initial_risk_state(equity: Decimal, now: datetime) -> RiskState:
    """State for a new account: marks set at the starting equity."""
    return RiskState(
        day=_day(now), day_start_equity=equity, week=_week(now), week_start_equity=equity, peak_equity=equity
    )


def mark_equity(
    state: RiskState, equity: Decimal, now: datetime, s: RiskSettings
) -> tuple[RiskState, list[BreakerEvent]]:
    """Roll the day and week marks, raise the peak, and trip or clear breakers; returns what changed."""
    state, tripped, events = _rolled(state, equity, now)
    checks = (
        (CircuitBreaker.DAILY_LOSS, state.day_start_equity, s.daily_loss_pct, "since the day began"),
        (CircuitBreaker.WEEKLY_LOSS, state.week_start_equity, s.weekly_loss_pct, "this week"),
        (CircuitBreaker.MAX_DRAWDOWN, state.peak_equity, s.max_drawdown_pct, "below the peak"),
    )
    for breaker, mark, limit, span in checks:
        lost = loss_pct(mark, equity)
        if breaker not in tripped and lost >= limit:
            tripped[breaker] = f"equity {equity:.2f} is {lost:.2f}% down {span} (limit {limit}%)"
            events.append(CircuitBreakerTripped(breaker=breaker.value, reason=tripped[breaker]))
    return state.model_copy(update={"tripped": tripped}), events


def _rolled(
    state: RiskState, equity: Decimal, now: datetime
) -> tuple[RiskState, dict[CircuitBreaker, str], list[BreakerEvent]]:
    """A new UTC day or ISO week restarts its mark at `equity` and clears its breaker; the peak rises."""
    events: list[BreakerEvent] = []
    tripped = dict(state.tripped)
    update: dict[str, object] = {}
    if _day(now) != state.day:
        update |= {"day": _day(now), "day_start_equity": equity}
        if tripped.pop(CircuitBreaker.DAILY_LOSS, None):
            events.append(CircuitBreakerReset(breaker=CircuitBreaker.DAILY_LOSS.value))
    if _week(now) != state.week:
        update |= {"week": _week(now), "week_start_equity": equity}
        if tripped.pop(CircuitBreaker.WEEKLY_LOSS, None):
            events.append(CircuitBreakerReset(breaker=CircuitBreaker.WEEKLY_LOSS.value))
    return state.model_copy(update={**update, "peak_equity": max(state.peak_equity, equity)}), tripped, events


def reset_drawdown_breaker(state: RiskState, equity: Decimal) -> RiskState:
    """The manual reset of the max-drawdown breaker: the peak restarts at today's equity."""
    tripped = {k: v for k, v in state.tripped.items() if k is not CircuitBreaker.MAX_DRAWDOWN}
    return state.model_copy(update={"tripped": tripped, "peak_equity": equity})


def record_trade_result(
    state: RiskState, symbol: str, pnl: Decimal, now: datetime, s: RiskSettings
) -> RiskState:
    """Update the loss streak and put `symbol` in the cooldown the result calls for."""
    losses = state.consecutive_losses + 1 if pnl < 0 else 0
    step = s.loss_step(losses)
    if pnl >= 0:
        minutes = s.post_trade_cooldown_minutes
    else:
        minutes = step.cooldown_minutes if step else s.post_loss_cooldown_minutes
    until = max(now + timedelta(minutes=minutes), state.cooldowns.get(symbol, now))
    return state.model_copy(
        update={"consecutive_losses": losses, "cooldowns": {**state.cooldowns, symbol: until}}
    )


def record_execution(state: RiskState, ok: bool, now: datetime, s: RiskSettings) -> tuple[RiskState, bool]:
    """Count an order's result; the `execution_error_limit`-th error in a row starts the cooldown.

    Returns the new state and whether a cooldown started with this order.
    """
    if ok:
        return (state.model_copy(update={"execution_errors": 0}) if state.execution_errors else state), False
    errors = state.execution_errors + 1
    if errors < s.execution_error_limit:
        return state.model_copy(update={"execution_errors": errors}), False
    until = now + timedelta(minutes=s.execution_error_cooldown_minutes)
    return state.model_copy(update={"execution_errors": 0, "execution_cooldown_until": until}), True


def drawdown_scale(drawdown_pct: Decimal, tripped: bool, s: RiskSettings) -> Decimal:
    """How much of the allowed exposure the drawdown leaves (`triplegain.exposure`): 1 below
    `derisk_start_pct`, linearly down to 0 at `max_drawdown_pct`, 0 while the breaker is tripped."""
    if tripped or drawdown_pct >= s.max_drawdown_pct:
        return Decimal(0)
    start = s.derisk_start_pct
    if drawdown_pct <= start:
        return Decimal(1)
    return (s.max_drawdown_pct - drawdown_pct) / (s.max_drawdown_pct - start)


def loss_pct(start: Decimal, end: Decimal) -> Decimal:
    """How many percent `end` is below `start` (0 when it is not below)."""
    if start <= 0:
        return Decimal(0)
    return max((start - end) / start * 100, Decimal(0))


def _day(now: datetime) -> str:
    return now.date().isoformat()


def _week(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"
