"""Coordinator state commands: pause, resume, halt (reference spec 3.2, with its gaps closed).

RUNNING trades; PAUSED analyses and places no trade; HALTED runs nothing but market watch. Every change
names who asked and why, and is recorded. Resuming from HALTED (a human decision after a breaker or an
operator halt) needs an explicit confirmation; pausing a halted coordinator is refused, since it would
hide the halt. Asking for the state it is already in changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.errors import ControlError
from triplegain.models.enums import CoordinatorState, DegradationLevel

Command = Literal["pause", "resume", "halt"]
CIRCUIT_BREAKER_ACTOR = "circuit-breaker"
_TARGET = {
    "pause": CoordinatorState.PAUSED,
    "resume": CoordinatorState.RUNNING,
    "halt": CoordinatorState.HALTED,
}


class StateChange(BaseModel):
    """One recorded change of the coordinator's state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: AwareDatetime
    from_state: CoordinatorState
    to_state: CoordinatorState
    actor: str = Field(min_length=1, description="Who asked (a user name, 'circuit-breaker', ...)")
    reason: str = Field(min_length=1)

    @property
    def event_name(self) -> str:
        """The Prefect event name, e.g. triplegain.coordinator.paused."""
        if self.from_state is self.to_state:
            return "triplegain.coordinator.breaker_reset"
        word = {CoordinatorState.PAUSED: "paused", CoordinatorState.HALTED: "halted"}.get(
            self.to_state, "resumed"
        )
        return f"triplegain.coordinator.{word}"


def transition(
    current: CoordinatorState, command: Command, actor: str, reason: str, at: datetime, confirm: bool = False
) -> StateChange | None:
    """The change `command` makes from `current`, None when already there; ControlError when refused."""
    if not reason.strip():
        raise ControlError(f"{command} needs a reason: it is recorded with who asked")
    target = _TARGET[command]
    if current is target:
        return None
    if current is CoordinatorState.HALTED and command == "pause":
        raise ControlError("the coordinator is HALTED: resume it (with confirmation) before pausing")
    if current is CoordinatorState.HALTED and command == "resume" and not confirm:
        raise ControlError(
            "the coordinator is HALTED: resuming needs explicit confirmation (--confirm, or confirm=True)"
        )
    return StateChange(at=at, from_state=current, to_state=target, actor=actor.strip(), reason=reason.strip())


class OpenPositionView(BaseModel):
    """An open position as the status shows it."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    size: Decimal
    entry_price: Decimal
    last_price: Decimal | None
    unrealized_pnl: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None


class RunRecord(BaseModel):
    """One run of a flow as the database saw it (`flow_runs`)."""

    model_config = ConfigDict(frozen=True)

    flow: str
    run_key: str
    started_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    status: str = Field(description="running, completed, skipped, failed or crashed")
    error: str | None = None

    def describe(self) -> str:
        """One line for a report: what happened to the run and what to do about it."""
        when = f"{self.started_at:%Y-%m-%d %H:%M} UTC"
        if self.status == "crashed":
            what = "was cut off mid-way (still marked running): nothing of it was committed"
        else:
            what = f"failed: {self.error or 'no error recorded'}; nothing of it was committed"
        rerun = "; rerun it with `triplegain run --at ...`" if self.run_key.startswith("cycle-") else ""
        return f"previous {self.flow} run {self.run_key} started {when} {what}{rerun}"


class CoordinatorStatus(BaseModel):
    """What `triplegain status` shows."""

    model_config = ConfigDict(frozen=True)

    state: CoordinatorState
    degradation: DegradationLevel = DegradationLevel.NORMAL
    llm_failures: int = 0
    api_failures: int = 0
    last_runs: dict[str, RunRecord] = Field(default_factory=dict, description="Flow name -> its last run")
    dca_plan: str | None = Field(None, description="The newest rebalance plan, in one line")
    tripped_breakers: dict[str, str]
    consecutive_losses: int
    last_cycle_id: str | None
    last_cycle_at: AwareDatetime | None
    last_cycle_status: str | None
    equity: Decimal | None
    balances: dict[str, Decimal]
    positions: list[OpenPositionView]
    recent_changes: list[StateChange]
    hodl_bags: dict[str, Decimal] = Field(default_factory=dict, description="What each hodl bag holds")
    account_turn: str | None = Field(
        None,
        description="A live account only: the run holding its turn now (the others wait), or 'free'",
    )
    hodl_pending_usd: dict[str, Decimal] = Field(
        default_factory=dict, description="Put aside, not yet bought"
    )
