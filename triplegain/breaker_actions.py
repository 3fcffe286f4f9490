"""What a tripped circuit breaker does, through the desk's broker (reference spec 3.15, its stubs made real).

Daily loss pauses the coordinator (resumed automatically when the breaker clears at the UTC day change,
unless someone changed the state since); weekly loss sells `risk.weekly_loss_reduce_pct` of every position;
max drawdown halts the coordinator and closes every position it has a price for, run after run while the
breaker stays tripped. A breaker never lifts a HALT: that is a human's decision, and so is resetting the
max-drawdown breaker (`manual_drawdown_reset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from triplegain.broker.paper import client_order_id
from triplegain.bus import Message, Priority, Topic
from triplegain.control import CIRCUIT_BREAKER_ACTOR, StateChange
from triplegain.cycle_types import AccountState
from triplegain.desk import Desk
from triplegain.events import CircuitBreakerReset, CircuitBreakerTripped, CoordinatorStateChanged
from triplegain.models.enums import CoordinatorState
from triplegain.risk.state import CircuitBreaker, RiskState, reset_drawdown_breaker


async def on_risk_alert(desk: Desk, message: Message) -> None:
    """A breaker that trips or resets acts through the broker and the coordinator state."""
    event = message.payload
    if isinstance(event, CircuitBreakerTripped):
        desk.notes.append(f"{event.breaker} breaker tripped: {event.reason}")
        breaker = CircuitBreaker(event.breaker)
        if breaker is CircuitBreaker.DAILY_LOSS:
            await change_state(desk, CoordinatorState.PAUSED, f"daily loss breaker: {event.reason}")
        elif breaker is CircuitBreaker.WEEKLY_LOSS:
            await reduce_all(desk, desk.settings.risk.weekly_loss_reduce_pct)
        elif breaker is CircuitBreaker.MAX_DRAWDOWN:
            await change_state(desk, CoordinatorState.HALTED, f"max drawdown breaker: {event.reason}")
            await close_all_while_drawdown(desk)
    elif isinstance(event, CircuitBreakerReset):
        desk.notes.append(f"{event.breaker} breaker reset")
        paused_by_breaker = (
            desk.state is CoordinatorState.PAUSED and desk.state_set_by == CIRCUIT_BREAKER_ACTOR
        )
        if event.breaker == CircuitBreaker.DAILY_LOSS.value and paused_by_breaker:
            await change_state(desk, CoordinatorState.RUNNING, "daily loss breaker reset at the day change")


async def change_state(desk: Desk, to: CoordinatorState, reason: str) -> None:
    """The circuit breaker changes the coordinator's state; never out of HALTED (that is a human's)."""
    if desk.state is to or desk.state is CoordinatorState.HALTED:
        return
    change = StateChange(
        at=desk.at, from_state=desk.state, to_state=to, actor=CIRCUIT_BREAKER_ACTOR, reason=reason
    )
    desk.state, desk.state_set_by = to, CIRCUIT_BREAKER_ACTOR
    desk.state_changes.append(change)
    await desk.publish(Topic.SYSTEM_EVENTS, CoordinatorStateChanged(change=change), Priority.URGENT)


async def close_all_while_drawdown(desk: Desk) -> None:
    """While the max-drawdown breaker is tripped, every open position with a price is closed."""
    if CircuitBreaker.MAX_DRAWDOWN not in desk.risk.tripped:
        return
    for symbol in dict.fromkeys(p.symbol for p in desk.positions):
        price = desk.prices.get(symbol)
        mine = [p for p in desk.positions if p.symbol == symbol]
        if price is None:
            await desk.notice(f"{symbol}: cannot close {len(mine)} position(s) now, no price this run")
            continue
        order_id = client_order_id(desk.run_id, symbol, "breaker-close")
        execution = desk.broker.close(mine, order_id, desk.run_id, price, desk.at, "circuit_breaker")
        await desk.settle(execution)
        desk.record_exit(symbol, execution)


async def reduce_all(desk: Desk, pct: Decimal) -> None:
    """Sell `pct` percent of every open position (the weekly-loss breaker)."""
    for position in list(desk.positions):
        price = desk.prices.get(position.symbol)
        if price is None:
            await desk.notice(f"{position.symbol}: cannot reduce position {position.id}, no price this run")
            continue
        order_id = client_order_id(desk.run_id, position.id, "breaker-reduce")
        execution = desk.broker.reduce(
            position, pct, order_id, desk.run_id, price, desk.at, "circuit_breaker"
        )
        await desk.settle(execution)
        desk.record_exit(position.symbol, execution)


@dataclass(frozen=True)
class DrawdownReset:
    """The manual reset of the max-drawdown breaker: the risk state after it, and the recorded change."""

    risk: RiskState
    change: StateChange


def manual_drawdown_reset(
    account: AccountState, last_equity: Decimal | None, actor: str, reason: str, at: datetime
) -> DrawdownReset | None:
    """The reset a human asks for: the peak restarts at the last marked equity; the coordinator's state does
    not change (a HALT stays until a confirmed resume). None when the breaker is not tripped."""
    risk = account.risk
    if risk is None or CircuitBreaker.MAX_DRAWDOWN not in risk.tripped:
        return None
    equity = last_equity if last_equity is not None else risk.peak_equity
    state = account.coordinator
    why = f"max_drawdown breaker reset (peak restarts at {equity:.2f}): {reason}"
    change = StateChange(at=at, from_state=state, to_state=state, actor=actor, reason=why)
    return DrawdownReset(reset_drawdown_breaker(risk, equity), change)
