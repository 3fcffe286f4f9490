"""The account's rows: coordinator state (and its version guard), state changes, health, risk marks.

A run claims the account by its version: two runs that loaded the same account cannot both commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from triplegain.control import StateChange
from triplegain.cycle_types import AccountState, Coordination
from triplegain.degradation import Health, HealthUpdate
from triplegain.errors import ConcurrentCycleError
from triplegain.hodl import HodlState
from triplegain.llm.breaker import ProviderBreaker
from triplegain.models.analysis import RegimeState
from triplegain.models.enums import CoordinatorState
from triplegain.models.trading import Portfolio
from triplegain.risk.state import RiskState
from triplegain.storage.database import insert_ignoring_conflicts
from triplegain.storage.positions import latest_prices, latest_snapshot, load_open_positions, snapshot_row
from triplegain.storage.tables import CoordinatorEventRow, CoordinatorStateRow, CycleRow

STATE_ROW_ID = 1


def load_account(session: Session, initial_balances: dict[str, Decimal]) -> AccountState:
    """The account as the last committed run left it, or a fresh one with `initial_balances`."""
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    snapshot = latest_snapshot(session)
    balances = {k: Decimal(v) for k, v in snapshot.balances.items()} if snapshot else dict(initial_balances)
    return AccountState(
        coordinator=CoordinatorState(state.state) if state else CoordinatorState.RUNNING,
        balances=balances,
        positions=load_open_positions(session),
        risk=RiskState.model_validate(state.risk_state) if state and state.risk_state else None,
        regimes={k: RegimeState.model_validate(v) for k, v in state.regime_states.items()} if state else {},
        version=state.version if state else 0,
        llm_breakers=_breakers(state.llm_breakers if state else None),
        last_cycle_at=_cycle_time(session, state.last_cycle_id if state else None),
        marked_at=snapshot.taken_at if snapshot else None,
        health=Health.model_validate(state.health) if state and state.health else Health(),
        hodl=HodlState.model_validate(state.hodl) if state and state.hodl else HodlState(),
        state_set_by=session.scalars(
            select(CoordinatorEventRow.actor).order_by(CoordinatorEventRow.id.desc()).limit(1)
        ).first(),
    )


def _breakers(data: dict[str, Any] | None) -> dict[str, ProviderBreaker]:
    return {k: ProviderBreaker.model_validate(v) for k, v in (data or {}).items()}


def _cycle_time(session: Session, cycle_id: str | None) -> datetime | None:
    row = session.get(CycleRow, cycle_id) if cycle_id else None
    return row.as_of if row else None


def claim_account(
    session: Session,
    run_id: str,
    result: Coordination,
    account: AccountState,
    breakers: dict[str, ProviderBreaker],
    trading: bool,
) -> None:
    """Write the account a run leaves, if nobody changed it since the run loaded it (ConcurrentCycleError).

    `trading` runs (cycles) also become the account's last cycle.
    """
    values: dict[str, Any] = {
        "state": result.coordinator.value,
        "llm_breakers": {k: v.model_dump(mode="json") for k, v in breakers.items()},
        "version": account.version + 1,
        "risk_state": result.risk.model_dump(mode="json"),
        "regime_states": {k: v.model_dump(mode="json") for k, v in result.regimes.items()},
        "hodl": result.hodl.model_dump(mode="json"),
        "updated_at": datetime.now(UTC),
    }
    if trading:
        values["last_cycle_id"] = run_id
    if account.version == 0:  # a fresh account: its row, as it loads, for the first run to claim
        _ensure_state_row(session, values["updated_at"])
    claimed = session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID, CoordinatorStateRow.version == account.version)
        .values(**values)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentCycleError(
            f"{run_id}: the account changed since this cycle loaded it (version {account.version})"
        )


def update_health(session: Session, change: HealthUpdate) -> None:
    """Apply a run's outcomes to the stored counters under the row lock, so concurrent runs both count.
    Before any run committed there is no row to count in: it is created as a fresh account loads
    (version 0, which the first run then claims), so an outage before the first cycle counts too."""
    if not change.outcomes:
        return
    _ensure_state_row(session, change.at)
    stored = session.execute(
        select(CoordinatorStateRow.health).where(CoordinatorStateRow.id == STATE_ROW_ID).with_for_update()
    ).scalar_one_or_none()
    health = change.apply(Health.model_validate(stored) if stored else Health())
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(health=health.model_dump(mode="json"))
    )


def save_llm_breakers(session: Session, breakers: dict[str, ProviderBreaker]) -> None:
    """Update the providers' breakers outside a cycle; the account version is untouched (a cycle in
    flight may still commit). Before any run committed, into a fresh account's row (`update_health`)."""
    _ensure_state_row(session, datetime.now(UTC))
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(llm_breakers={k: v.model_dump(mode="json") for k, v in breakers.items()})
    )


def _ensure_state_row(session: Session, at: datetime) -> None:
    """The account's state row, created as a fresh account loads it (version 0, which the first run
    claims) when no run has committed yet; left as it is otherwise, whoever creates it first."""
    fresh = {
        "id": STATE_ROW_ID,
        "state": CoordinatorState.RUNNING.value,
        "version": 0,
        "risk_state": None,
        "regime_states": {},
        "llm_breakers": {},
        "last_cycle_id": None,
        "updated_at": at,
        "health": None,
    }
    session.execute(insert_ignoring_conflicts(session.get_bind(), CoordinatorStateRow).values(**fresh))


def record_state_change(session: Session, change: StateChange) -> None:
    """Apply and record a state change; the account version moves on, so no cycle in flight can commit."""
    _ensure_state_row(session, change.at)
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    assert state is not None, "ensured above"
    state.state, state.version, state.updated_at = change.to_state.value, state.version + 1, change.at
    session.add(event_row(change))


def save_risk_reset(session: Session, risk: RiskState, change: StateChange, version: int) -> None:
    """Store a risk state reset by hand (recorded as `change`); the account version moves on."""
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(risk_state=risk.model_dump(mode="json"), version=version + 1, updated_at=change.at)
    )
    session.add(event_row(change))


def last_equity(session: Session) -> Decimal | None:
    """The equity the newest run marked, if any run did."""
    snapshot = latest_snapshot(session)
    return snapshot.equity if snapshot else None


def event_row(change: StateChange, published_cycle_id: str | None = None) -> CoordinatorEventRow:
    """The row of a recorded state change."""
    return CoordinatorEventRow(
        at=change.at,
        from_state=change.from_state.value,
        to_state=change.to_state.value,
        actor=change.actor,
        reason=change.reason,
        prefect_emitted_at=None,
        published_cycle_id=published_cycle_id,
    )


def load_state_changes(session: Session, limit: int = 100) -> list[StateChange]:
    """The newest recorded changes, newest first."""
    return [change for _, change in _changes(session, select(CoordinatorEventRow), limit)]


def load_unpublished_changes(session: Session) -> list[tuple[int, StateChange]]:
    """Changes no cycle has published on its bus yet, oldest first, with their ids."""
    query = select(CoordinatorEventRow).where(CoordinatorEventRow.published_cycle_id.is_(None))
    return list(reversed(_changes(session, query)))


def load_unemitted_changes(session: Session) -> list[tuple[int, StateChange]]:
    """Changes not yet sent to Prefect as events, oldest first, with their ids."""
    query = select(CoordinatorEventRow).where(CoordinatorEventRow.prefect_emitted_at.is_(None))
    return list(reversed(_changes(session, query)))


def _changes(session: Session, query: Any, limit: int = 100) -> list[tuple[int, StateChange]]:
    rows = session.scalars(query.order_by(CoordinatorEventRow.id.desc()).limit(limit))
    return [
        (
            row.id,
            StateChange(
                at=row.at,
                from_state=CoordinatorState(row.from_state),
                to_state=CoordinatorState(row.to_state),
                actor=row.actor,
                reason=row.reason,
            ),
        )
        for row in rows
    ]


def mark_emitted(session: Session, ids: list[int], at: datetime) -> None:
    """Note that these changes reached Prefect as events."""
    if ids:
        session.execute(
            update(CoordinatorEventRow).where(CoordinatorEventRow.id.in_(ids)).values(prefect_emitted_at=at)
        )


def mark_published(session: Session, ids: list[int], cycle_id: str) -> None:
    """Note that these changes were published on a cycle's bus."""
    if ids:
        session.execute(
            update(CoordinatorEventRow)
            .where(CoordinatorEventRow.id.in_(ids))
            .values(published_cycle_id=cycle_id)
        )


def load_state_at(session: Session, at: datetime) -> CoordinatorState:
    """The coordinator's state at a past moment, from the recorded changes (RUNNING before any)."""
    row = session.scalars(
        select(CoordinatorEventRow.to_state)
        .where(CoordinatorEventRow.at <= at)
        .order_by(CoordinatorEventRow.at.desc(), CoordinatorEventRow.id.desc())
        .limit(1)
    ).first()
    return CoordinatorState(row) if row else CoordinatorState.RUNNING


def accept_balances(
    session: Session, account: AccountState, balances: dict[str, Decimal], at: datetime
) -> None:
    """The operator's word on a reconciliation: the account holds what the exchange holds. A new snapshot
    with those balances (the last prices kept) as of market time `at`, and the account's version moved
    on, so a run that loaded the account before this commits nothing on stale balances
    (ConcurrentCycleError)."""
    prices = latest_prices(session)
    portfolio = Portfolio(balances=balances, prices=prices, positions=account.positions, as_of=at)
    row = snapshot_row("", portfolio)
    row.cycle_id = None
    session.add(row)
    if account.version == 0:
        return  # a fresh account: no cycle has claimed it yet, nothing to move on
    claimed = session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID, CoordinatorStateRow.version == account.version)
        .values(version=account.version + 1, updated_at=datetime.now(UTC))
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentCycleError("the account changed while the reconciliation was accepted: run it again")
