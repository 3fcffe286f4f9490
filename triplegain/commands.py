"""What the operator's commands do to the stored account, each in the caller's unit of work.

Pause, resume and halt (`triplegain.control.transition` decides), and the manual reset of the max-drawdown
breaker (`triplegain.breaker_actions.manual_drawdown_reset` decides); storage records what they decided.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from triplegain.breaker_actions import manual_drawdown_reset
from triplegain.control import Command, StateChange, transition
from triplegain.models.enums import CoordinatorState
from triplegain.storage.accounts import last_equity, load_account, record_state_change, save_risk_reset


def change_state(
    session: Session,
    initial_balances: dict[str, Decimal],
    command: Command,
    actor: str,
    reason: str,
    at: datetime,
    confirm: bool = False,
) -> tuple[CoordinatorState, StateChange | None]:
    """Apply `command` to the stored coordinator state; returns the state before and the recorded change
    (None when it already was in the state asked for). ControlError when the command is refused."""
    current = load_account(session, initial_balances).coordinator
    change = transition(current, command, actor, reason, at, confirm)
    if change is not None:
        record_state_change(session, change)
    return current, change


def reset_drawdown(
    session: Session, initial_balances: dict[str, Decimal], actor: str, reason: str, at: datetime
) -> bool:
    """Reset the max-drawdown breaker by hand, recorded with who and why; False when it was not tripped.

    The account version moves on; the coordinator stays as it is (HALTED until a confirmed resume).
    """
    account = load_account(session, initial_balances)
    reset = manual_drawdown_reset(account, last_equity(session), actor, reason, at)
    if reset is None:
        return False
    save_risk_reset(session, reset.risk, reset.change, account.version)
    return True
