"""Database tasks. They take settings (never a session or engine) and open their own unit of work.

Each task, its Prefect task name and the storage function it calls share one name: the task
`load_account` is the Prefect task "load-account" and calls `triplegain.storage.accounts.load_account`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.exc import OperationalError

from tasks.retry import retry_on
from triplegain.control import RunRecord, StateChange
from triplegain.cycle_types import AccountState
from triplegain.degradation import HealthUpdate, llm_outcomes
from triplegain.errors import DatabaseUnavailable
from triplegain.llm.gateway import LLMRunResult
from triplegain.models.analysis import SentimentReport
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CoordinatorState
from triplegain.rebalance import Batch, BatchRecord, RebalanceDecision
from triplegain.settings import Settings
from triplegain.storage import accounts, cycles, dca, engine_for, llm_calls, runs, sentiment
from triplegain.storage import unit_of_work as _unit_of_work
from triplegain.storage.cycles import CycleRecord

P = ParamSpec("P")
R = TypeVar("R")


def _db_task(fn: Callable[P, R]) -> Task[P, R]:
    """A database task named after its function: an unreachable or timed-out database raises
    DatabaseUnavailable (one clear line), retried twice (1 s, 5 s); never cached."""
    name = fn.__name__.replace("_", "-")

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OperationalError as e:
            first = str(e.orig).strip().splitlines()[0] if e.orig else type(e).__name__
            raise DatabaseUnavailable(f"database unreachable or too slow ({name}): {first}") from e

    return task(
        name=name,
        retries=2,
        retry_delay_seconds=[1, 5],
        retry_condition_fn=retry_on(DatabaseUnavailable),
        cache_policy=NO_CACHE,
    )(guarded)


@_db_task
def prepare_database(settings: Settings) -> str:
    """Connect and migrate; returns the URL with its password hidden, for the report."""
    return engine_for(settings).url.render_as_string(hide_password=True)


@_db_task
def load_report(cycle_id: str, settings: Settings) -> CycleReport | None:
    """The stored report if this run already happened."""
    with _unit_of_work(engine_for(settings)) as session:
        return cycles.load_report(session, cycle_id)


@_db_task
def load_account(settings: Settings) -> AccountState:
    """Balances, open positions, risk and regime state as the last run left them."""
    with _unit_of_work(engine_for(settings)) as session:
        return accounts.load_account(session, settings.broker.initial_balances)


@_db_task
def save_cycle(record: CycleRecord, settings: Settings) -> None:
    """Commit the run's whole chain, its LLM calls included, in one transaction (all or nothing)."""
    with _unit_of_work(engine_for(settings)) as session:
        cycles.save_cycle(session, record)


@_db_task
def load_unpublished_changes(settings: Settings) -> list[tuple[int, StateChange]]:
    """Pauses, resumes and halts recorded since the last cycle, oldest first."""
    with _unit_of_work(engine_for(settings)) as session:
        return accounts.load_unpublished_changes(session)


@_db_task
def load_sentiments(symbols: list[str], at: datetime, settings: Settings) -> dict[str, SentimentReport]:
    """The newest still-valid sentiment report of each symbol, where there is one."""
    with _unit_of_work(engine_for(settings)) as session:
        return sentiment.load_sentiments(session, symbols, at)


@_db_task
def save_sentiment_refresh(
    reports: list[SentimentReport], llm: LLMRunResult, settings: Settings, flow_run_id: int | None = None
) -> None:
    """Commit the reports, the LLM calls behind them, the breaker states, the degradation counters and
    the run's end, together."""
    health = HealthUpdate(tuple(llm_outcomes(llm.records)), settings.degradation, datetime.now(UTC))
    with _unit_of_work(engine_for(settings)) as session:
        sentiment.save_sentiment_refresh(session, reports, llm, health, flow_run_id)


@_db_task
def load_llm_spent(since: datetime, settings: Settings) -> Decimal:
    """USD spent on LLM calls since `since` (the day budget's starting point)."""
    with _unit_of_work(engine_for(settings)) as session:
        return llm_calls.load_llm_spent(session, since)


@_db_task
def start_run(flow: str, run_key: str, settings: Settings, prefect_id: str | None = None) -> int:
    """Record (and commit) that a flow run started, so a run cut off later is found by the next one."""
    with _unit_of_work(engine_for(settings)) as session:
        return runs.start_run(session, flow, run_key, datetime.now(UTC), prefect_id)


@_db_task
def finish_run(run_id: int, status: str, settings: Settings, error: str | None = None) -> None:
    """Record how a flow run ended."""
    with _unit_of_work(engine_for(settings)) as session:
        runs.finish_run(session, run_id, status, datetime.now(UTC), error)


@_db_task
def load_unreported_failures(settings: Settings) -> list[tuple[int, RunRecord]]:
    """Earlier runs that failed or were cut off, not reported yet (stale `running` ones marked crashed)."""
    with _unit_of_work(engine_for(settings)) as session:
        return runs.load_unreported_failures(session, datetime.now(UTC), settings.watch.crashed_after_minutes)


@_db_task
def save_plan(
    plan_id: str, decision: RebalanceDecision, batches: list[Batch], settings: Settings
) -> list[BatchRecord]:
    """Store a plan, superseding older ones; returns the batches it cancelled."""
    with _unit_of_work(engine_for(settings)) as session:
        return dca.save_plan(session, plan_id, decision, batches, datetime.now(UTC))


@_db_task
def load_batch(plan_id: str, index: int, settings: Settings) -> BatchRecord | None:
    """One stored batch."""
    with _unit_of_work(engine_for(settings)) as session:
        return dca.load_batch(session, plan_id, index)


@_db_task
def load_due_batches(settings: Settings) -> list[BatchRecord]:
    """Pending batches of the active plan that are due now."""
    with _unit_of_work(engine_for(settings)) as session:
        return dca.load_due_batches(session, datetime.now(UTC))


@_db_task
def skip_batch(plan_id: str, index: int, reason: str, settings: Settings) -> None:
    """A batch that fell due while trading was stopped: recorded, never executed later."""
    with _unit_of_work(engine_for(settings)) as session:
        dca.skip_batch(session, plan_id, index, reason, datetime.now(UTC))


@_db_task
def load_state_at(at: datetime, settings: Settings) -> CoordinatorState:
    """The coordinator's state at a past moment."""
    with _unit_of_work(engine_for(settings)) as session:
        return accounts.load_state_at(session, at)


@_db_task
def load_last_plan_at(settings: Settings) -> datetime | None:
    """When the last rebalance plan was made."""
    with _unit_of_work(engine_for(settings)) as session:
        return dca.load_last_plan_at(session)


@_db_task
def save_batch_flow_run(plan_id: str, index: int, flow_run_id: str, settings: Settings) -> None:
    """Remember which scheduled Prefect run executes a batch."""
    with _unit_of_work(engine_for(settings)) as session:
        dca.save_batch_flow_run(session, plan_id, index, flow_run_id)
