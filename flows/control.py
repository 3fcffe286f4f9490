"""Pause, resume, halt and inspect the coordinator, from Python (notebooks) or the CLI.

    from flows.control import pause, resume, status
    pause("FOMC at 18:00", actor="ana")
    status().state            # CoordinatorState.PAUSED
    resume("after FOMC", actor="ana")

Each change is recorded with who and why, bumps the account version (a cycle in flight cannot commit
trades afterwards), becomes a bus event in the next trading cycle, and a Prefect event
(`triplegain.coordinator.paused` ...): at once when a Prefect API is configured, otherwise from the next
flow run, so a command never has to start a temporary server.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine

from flows.settings import load_run_settings, prefect_api_url
from triplegain.control import Command, CoordinatorStatus, StateChange
from triplegain.errors import ControlError
from triplegain.models.enums import CoordinatorState
from triplegain.rebalance import PlanRecord
from triplegain.storage import engine_for, unit_of_work
from triplegain.storage.accounts import load_account
from triplegain.storage.dca import load_plans
from triplegain.storage.status import load_status
from triplegain.storage.turns import turn_holder


class ControlResult(BaseModel):
    """What a command did."""

    model_config = ConfigDict(frozen=True)

    state: CoordinatorState
    change: StateChange | None
    message: str


def pause(reason: str, actor: str | None = None, config_file: str | None = None) -> ControlResult:
    """Analysis goes on, no trade is placed, until `resume`."""
    return _apply("pause", reason, actor, config_file)


def resume(
    reason: str, actor: str | None = None, confirm: bool = False, config_file: str | None = None
) -> ControlResult:
    """Trade again; from HALTED only with `confirm=True`."""
    return _apply("resume", reason, actor, config_file, confirm)


def halt(reason: str, actor: str | None = None, config_file: str | None = None) -> ControlResult:
    """Stop all trading cycles until a confirmed resume."""
    return _apply("halt", reason, actor, config_file)


def reset_breaker(reason: str, actor: str | None = None, config_file: str | None = None) -> ControlResult:
    """Reset the max-drawdown breaker by hand (the peak restarts at the last equity); it never resets itself.

    The coordinator stays HALTED: trading starts again only with `resume(..., confirm=True)`.
    """
    if not reason.strip():
        raise ControlError("reset-breaker needs a reason: it is recorded with who asked")
    settings = load_run_settings(config_file)
    engine = engine_for(settings)
    balances = settings.broker.initial_balances
    with unit_of_work(engine) as session:
        from triplegain import commands  # `status` never needs it, and starts faster without it

        done = commands.reset_drawdown(
            session, balances, actor or current_user(), reason.strip(), datetime.now(UTC)
        )
        current = load_account(session, balances).coordinator
    if done and prefect_api_url():
        _emit_pending_events(engine)
    message = "max_drawdown breaker reset" if done else "max_drawdown breaker is not tripped: nothing changed"
    if done and current is CoordinatorState.HALTED:
        message += "; still HALTED: resume with confirmation to trade again"
    return ControlResult(state=current, change=None, message=message)


def status(config_file: str | None = None) -> CoordinatorStatus:
    """State, breakers, last cycle, balances and open positions with their P&L at the last prices."""
    settings = load_run_settings(config_file)
    engine = engine_for(settings)
    with unit_of_work(engine) as session:
        current = load_status(session, settings.broker.initial_balances)
    if settings.execution.mode != "live":
        return current
    return current.model_copy(update={"account_turn": turn_holder(engine) or "free"})


def _apply(
    command: Command, reason: str, actor: str | None, config_file: str | None, confirm: bool = False
) -> ControlResult:
    settings = load_run_settings(config_file)
    engine = engine_for(settings)
    with unit_of_work(engine) as session:
        from triplegain import commands

        current, change = commands.change_state(
            session,
            settings.broker.initial_balances,
            command,
            actor or current_user(),
            reason,
            datetime.now(UTC),
            confirm,
        )
    if change is not None and prefect_api_url():
        _emit_pending_events(engine)
    if change is None:
        return ControlResult(state=current, change=None, message=f"already {current}: nothing changed")
    return ControlResult(
        state=change.to_state,
        change=change,
        message=f"{change.from_state} -> {change.to_state} by {change.actor}",
    )


def dca_status(config_file: str | None = None, limit: int = 5) -> list[PlanRecord]:
    """The newest rebalance plans and what became of each batch (no Prefect server needed)."""
    settings = load_run_settings(config_file)
    with unit_of_work(engine_for(settings)) as session:
        return load_plans(session, limit)


EVENT_DELIVERY_SECONDS = 10.0  # how long a state-change command waits for its event to reach the API


def _emit_pending_events(engine: Engine) -> None:
    """Send the change's event and wait until it reached the API, so the command's success means the alert
    is on its way (and no "EventsWorker - Still processing items" warning is printed at exit). Prefect is
    imported only here: a command that changed nothing, or has no API, never pays for it."""
    import logging

    from prefect.events.worker import EventsWorker

    from tasks.events import emit_pending_events

    emit_pending_events(engine)
    worker_log = logging.getLogger("EventsWorker")  # it warns about the queue it is asked to drain
    level = worker_log.level
    worker_log.setLevel(logging.ERROR)
    try:
        EventsWorker.drain_all(timeout=EVENT_DELIVERY_SECONDS)
    finally:
        worker_log.setLevel(level)


def current_user() -> str:
    """Who runs this command, for the record (the login name; 'unknown' when there is none)."""
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"
