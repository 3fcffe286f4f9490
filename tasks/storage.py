"""Database tasks. They take settings (never a session or engine) and open their own unit of work."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from tasks.retry import retry_on
from triplegain.control import RunRecord, StateChange
from triplegain.coordinator import AccountState, Coordination, SymbolAnalysis
from triplegain.degradation import llm_outcomes
from triplegain.errors import DatabaseUnavailable
from triplegain.llm.gateway import LLMRunResult
from triplegain.models.analysis import SentimentReport
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CoordinatorState
from triplegain.rebalance import Batch, BatchRecord, RebalanceDecision
from triplegain.settings import Settings
from triplegain.storage import create_db_engine, load_account, load_report, migrate, save_cycle, unit_of_work
from triplegain.storage.repository import (
    coordinator_state_at,
    due_batches,
    finish_run,
    last_plan_at,
    latest_sentiment,
    llm_spent_since,
    load_batch,
    save_llm_breakers,
    save_llm_calls,
    save_plan,
    save_sentiment,
    set_batch_flow_run,
    skip_batch,
    start_run,
    state_changes,
    unreported_failures,
)

P = ParamSpec("P")
R = TypeVar("R")
_engines: dict[tuple[str, int, int], Engine] = {}
_engines_lock = threading.Lock()


def engine_for(settings: Settings) -> Engine:
    """The process's engine for the configured database, migrated to the newest schema on first use."""
    key = (
        settings.database_url.get_secret_value(),
        settings.sqlite_busy_timeout_ms,
        settings.statement_timeout_ms,
    )
    with _engines_lock:
        if key not in _engines:
            engine = create_db_engine(*key)
            migrate(engine)
            _engines[key] = engine
        return _engines[key]


def _db_task(name: str) -> Any:
    """A database task: an unreachable or timed-out database raises DatabaseUnavailable (one clear line),
    retried twice (1 s, 5 s); never cached."""

    def decorate(fn: Callable[P, R]) -> Any:
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

    return decorate


@_db_task("prepare-database")
def prepare_database(settings: Settings) -> str:
    """Connect and migrate; returns the URL with its password hidden, for the report."""
    return engine_for(settings).url.render_as_string(hide_password=True)


@_db_task("load-report")
def find_report(cycle_id: str, settings: Settings) -> CycleReport | None:
    """The stored report if this cycle already ran."""
    with unit_of_work(engine_for(settings)) as session:
        return load_report(session, cycle_id)


@_db_task("load-account")
def fetch_account(settings: Settings) -> AccountState:
    """Balances, open positions, risk and regime state as the last cycle left them."""
    with unit_of_work(engine_for(settings)) as session:
        return load_account(session, settings)


@_db_task("save-cycle")
def persist_cycle(
    report: CycleReport,
    analyses: list[SymbolAnalysis],
    result: Coordination,
    account: AccountState,
    llm: LLMRunResult,
    published_changes: list[int],
    settings: Settings,
    reported_runs: list[int] | None = None,
    trading: bool = True,
    dca_batch: tuple[str, int] | None = None,
) -> None:
    """Commit the cycle's whole chain, its LLM calls included, in one transaction (all or nothing)."""
    with unit_of_work(engine_for(settings)) as session:
        save_cycle(
            session,
            report,
            analyses,
            result,
            account,
            llm,
            published_changes,
            reported_runs,
            settings,
            trading,
            dca_batch,
        )


@_db_task("load-state-changes")
def fetch_unpublished_changes(settings: Settings) -> list[tuple[int, StateChange]]:
    """Pauses, resumes and halts recorded since the last cycle, oldest first."""
    with unit_of_work(engine_for(settings)) as session:
        return list(reversed(state_changes(session, unpublished=True)))


@_db_task("load-sentiment")
def fetch_sentiments(symbols: list[str], at: datetime, settings: Settings) -> dict[str, SentimentReport]:
    """The newest still-valid sentiment report of each symbol, where there is one."""
    with unit_of_work(engine_for(settings)) as session:
        found = {s: latest_sentiment(session, s, at) for s in symbols}
    return {s: r for s, r in found.items() if r is not None}


@_db_task("save-sentiment")
def store_sentiment(reports: list[SentimentReport], llm: LLMRunResult, settings: Settings) -> None:
    """Commit the reports, the LLM calls behind them and the breaker states together."""
    with unit_of_work(engine_for(settings)) as session:
        for report in reports:
            save_sentiment(session, report)
        save_llm_calls(session, llm.records, llm.recordings)
        save_llm_breakers(session, llm.breakers, llm_outcomes(llm.records), settings, datetime.now(UTC))


@_db_task("llm-spent")
def llm_spent(since: datetime, settings: Settings) -> Decimal:
    """USD spent on LLM calls since `since` (the day budget's starting point)."""
    with unit_of_work(engine_for(settings)) as session:
        return llm_spent_since(session, since)


@_db_task("start-run")
def begin_run(flow: str, run_key: str, settings: Settings, prefect_id: str | None = None) -> int:
    """Record (and commit) that a flow run started, so a run cut off later is found by the next one."""
    with unit_of_work(engine_for(settings)) as session:
        return start_run(session, flow, run_key, datetime.now(UTC), prefect_id)


@_db_task("finish-run")
def end_run(run_id: int, status: str, settings: Settings, error: str | None = None) -> None:
    """Record how a flow run ended."""
    with unit_of_work(engine_for(settings)) as session:
        finish_run(session, run_id, status, datetime.now(UTC), error)


@_db_task("find-failed-runs")
def fetch_unreported_failures(settings: Settings) -> list[tuple[int, RunRecord]]:
    """Earlier runs that failed or were cut off, not reported yet (stale `running` ones marked crashed)."""
    with unit_of_work(engine_for(settings)) as session:
        return unreported_failures(session, datetime.now(UTC), settings.watch.crashed_after_minutes)


@_db_task("save-rebalance-plan")
def store_plan(
    plan_id: str, decision: RebalanceDecision, batches: list[Batch], settings: Settings
) -> list[BatchRecord]:
    """Store a plan, superseding older ones; returns the batches it cancelled."""
    with unit_of_work(engine_for(settings)) as session:
        return save_plan(session, plan_id, decision, batches, datetime.now(UTC))


@_db_task("load-dca-batch")
def fetch_batch(plan_id: str, index: int, settings: Settings) -> BatchRecord | None:
    """One stored batch."""
    with unit_of_work(engine_for(settings)) as session:
        return load_batch(session, plan_id, index)


@_db_task("find-due-dca-batches")
def fetch_due_batches(settings: Settings) -> list[BatchRecord]:
    """Pending batches of the active plan that are due now."""
    with unit_of_work(engine_for(settings)) as session:
        return due_batches(session, datetime.now(UTC))


@_db_task("skip-dca-batch")
def record_skipped_batch(plan_id: str, index: int, reason: str, settings: Settings) -> None:
    """A batch that fell due while trading was stopped: recorded, never executed later."""
    with unit_of_work(engine_for(settings)) as session:
        skip_batch(session, plan_id, index, reason, datetime.now(UTC))


@_db_task("state-at")
def fetch_state_at(at: datetime, settings: Settings) -> CoordinatorState:
    """The coordinator's state at a past moment."""
    with unit_of_work(engine_for(settings)) as session:
        return coordinator_state_at(session, at)


@_db_task("last-rebalance")
def fetch_last_plan_at(settings: Settings) -> datetime | None:
    """When the last rebalance plan was made."""
    with unit_of_work(engine_for(settings)) as session:
        return last_plan_at(session)


@_db_task("save-batch-flow-run")
def store_batch_flow_run(plan_id: str, index: int, flow_run_id: str, settings: Settings) -> None:
    """Remember which scheduled Prefect run executes a batch."""
    with unit_of_work(engine_for(settings)) as session:
        set_batch_flow_run(session, plan_id, index, flow_run_id)
