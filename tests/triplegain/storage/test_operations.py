"""Operations state in the database (SQLite and PostgreSQL): degradation counters, breaker actions,
position snapshots, flow runs and crash reports, the manual drawdown reset."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from tests.triplegain.storage.test_repository import BUYING_HOUR, run, save
from triplegain.commands import reset_drawdown
from triplegain.coordinator import coordinate
from triplegain.cycle import analyze_symbol, build_report, cycle_id_for
from triplegain.cycle_types import CoordinationInput
from triplegain.degradation import HealthOutcome
from triplegain.market import ReplaySource
from triplegain.models.enums import CoordinatorState, DegradationLevel
from triplegain.risk.state import CircuitBreaker, RiskState
from triplegain.settings import Settings, load_settings
from triplegain.storage import unit_of_work
from triplegain.storage.accounts import load_account, load_state_changes
from triplegain.storage.cycles import CycleRecord, save_cycle
from triplegain.storage.runs import finish_run, load_last_runs, load_unreported_failures, start_run
from triplegain.storage.status import load_status
from triplegain.storage.tables import CoordinatorStateRow, PositionRow, PositionSnapshotRow

FAILED_LLM = [HealthOutcome(kind="llm", ok=False, what=f"call {i}") for i in range(3)]


def next_hour(
    engine: Engine,
    settings: Settings,
    replay: ReplaySource,
    meanwhile: Callable[[], None] = lambda: None,
    **account_changes: object,
) -> tuple[object, object]:
    """The following cycle, from the stored account with `account_changes`, with three LLM failures;
    `meanwhile` runs between loading the account and committing the cycle."""
    at = BUYING_HOUR + timedelta(hours=1)
    with unit_of_work(engine) as s:
        account = replace(load_account(s, settings.broker.initial_balances), **account_changes)  # type: ignore[arg-type]
    analyses = [analyze_symbol(replay, sym, at, None, settings) for sym in settings.market.symbols]
    result = coordinate(
        CoordinationInput(cycle_id_for(at), at, account, analyses, outcomes=FAILED_LLM), settings
    )
    report = build_report(cycle_id_for(at), at, at, analyses, result)
    meanwhile()
    with unit_of_work(engine) as s:
        save_cycle(s, CycleRecord(report, analyses, result, account))
    return report, result


def opened(engine: Engine, settings: Settings, replay: ReplaySource) -> RiskState:
    """The cycle that buys BTC, committed; returns the risk memory it left."""
    save(engine, *run(engine, settings, BUYING_HOUR, replay))
    with unit_of_work(engine) as s:
        risk = load_account(s, settings.broker.initial_balances).risk
    assert risk is not None
    return risk


def test_a_weekly_trip_stores_the_reduced_position_its_sold_part_and_the_degradation(
    engine: Engine, replay: ReplaySource
) -> None:
    cfg = load_settings()
    risk = opened(engine, cfg, replay)
    with unit_of_work(engine) as s:
        (before,) = s.scalars(select(PositionRow)).all()
        size = before.size
    high_week = risk.model_copy(update={"week_start_equity": Decimal(12_000), "peak_equity": Decimal(12_000)})

    next_hour(engine, cfg, replay, risk=high_week)

    with unit_of_work(engine) as s:
        rows = {r.id: r for r in s.scalars(select(PositionRow))}
        account = load_account(s, cfg.broker.initial_balances)
        snapshots = s.scalar(select(func.count()).select_from(PositionSnapshotRow))
    (sold,) = [r for r in rows.values() if r.id != before.id]
    assert rows[before.id].status == "open" and rows[before.id].size + sold.size == size
    assert abs(sold.size - size / 2) <= Decimal("1e-8")  # half, to the size's last decimal
    assert sold.status == "closed" and sold.close_reason == "circuit_breaker"
    assert CircuitBreaker.WEEKLY_LOSS in (account.risk.tripped if account.risk else {})
    assert account.health.level is DegradationLevel.REDUCED and account.health.llm_failures == 3
    assert snapshots == 2  # the open position after each cycle


def test_a_drawdown_trip_stores_the_halt_as_a_recorded_change_and_closes_everything(
    engine: Engine, replay: ReplaySource
) -> None:
    cfg = load_settings()
    risk = opened(engine, cfg, replay)

    next_hour(engine, cfg, replay, risk=risk.model_copy(update={"peak_equity": Decimal(15_000)}))

    with unit_of_work(engine) as s:
        status = load_status(s, cfg.broker.initial_balances)
        (change,) = load_state_changes(s)
        row = s.get(CoordinatorStateRow, 1)
    assert status.state is CoordinatorState.HALTED and status.positions == []
    assert change.actor == "circuit-breaker" and change.to_state is CoordinatorState.HALTED
    assert row is not None and row.last_cycle_id == cycle_id_for(BUYING_HOUR + timedelta(hours=1))
    with unit_of_work(engine) as s:
        assert reset_drawdown(s, cfg.broker.initial_balances, "ana", "reviewed the losses", datetime.now(UTC))
    with unit_of_work(engine) as s:
        account = load_account(s, cfg.broker.initial_balances)
        assert account.risk is not None and CircuitBreaker.MAX_DRAWDOWN not in account.risk.tripped
        assert account.coordinator is CoordinatorState.HALTED  # resuming is a separate, confirmed step
        assert account.state_set_by == "ana"
        assert not reset_drawdown(s, cfg.broker.initial_balances, "ana", "again", datetime.now(UTC))


def test_degradation_counts_from_concurrent_writers_all_land(engine: Engine, replay: ReplaySource) -> None:
    from triplegain.degradation import HealthUpdate
    from triplegain.llm.gateway import LLMRunResult
    from triplegain.llm.models import LLMCall
    from triplegain.storage.sentiment import save_sentiment_refresh

    cfg = load_settings()
    opened(engine, cfg, replay)
    failed = LLMCall(
        cycle_id=None,
        agent="sentiment",
        provider="p",
        model="m",
        started_at=BUYING_HOUR,
        outcome="unavailable",
    )
    from triplegain.degradation import llm_outcomes

    def sentiment_refresh_commits() -> None:
        with unit_of_work(engine) as s:
            health = HealthUpdate(tuple(llm_outcomes([failed, failed])), cfg.degradation, BUYING_HOUR)
            save_sentiment_refresh(s, [], LLMRunResult(), health)

    next_hour(engine, cfg, replay, sentiment_refresh_commits)  # the cycle loaded 0 failures, adds its 3

    with unit_of_work(engine) as s:
        health = load_account(s, cfg.broker.initial_balances).health
    assert health.llm_failures == 5 and health.level is DegradationLevel.REDUCED


def test_failed_and_cut_off_runs_are_reported_once(engine: Engine, replay: ReplaySource) -> None:
    cfg = load_settings()
    now = datetime.now(UTC)
    with unit_of_work(engine) as s:
        failed = start_run(s, "trading-cycle", "cycle-20240630T1800Z", now - timedelta(minutes=5))
        finish_run(s, failed, "failed", now, "ValueError: boom")
        start_run(s, "trading-cycle", "cycle-20240630T1900Z", now - timedelta(hours=3))  # never finished
        running = start_run(s, "market-watch", "watch-20240630T1905Z", now - timedelta(minutes=1))
    with unit_of_work(engine) as s:
        found = load_unreported_failures(s, now, cfg.watch.crashed_after_minutes)
    assert [(r.run_key, r.status) for _, r in found] == [
        ("cycle-20240630T1800Z", "failed"),
        ("cycle-20240630T1900Z", "crashed"),
    ]
    assert "failed: ValueError: boom" in found[0][1].describe()
    assert "cut off mid-way" in found[1][1].describe() and "triplegain run --at" in found[1][1].describe()

    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)
    with unit_of_work(engine) as s:
        save_cycle(
            s, CycleRecord(report, analyses, result, account, reported_runs=tuple(i for i, _ in found))
        )  # type: ignore[arg-type]
    with unit_of_work(engine) as s:
        assert load_unreported_failures(s, now, cfg.watch.crashed_after_minutes) == []
        latest = load_last_runs(s)
    assert latest["market-watch"].status == "running" and latest["trading-cycle"].run_key.endswith("1900Z")
    assert running > failed


def test_plans_supersede_and_batches_settle_exactly_once(engine: Engine) -> None:
    import pytest

    from tests.triplegain.factories import rebalance_decision
    from triplegain.control import StateChange
    from triplegain.errors import ConcurrentCycleError
    from triplegain.rebalance import Batch
    from triplegain.storage.accounts import load_state_at, record_state_change
    from triplegain.storage.dca import load_due_batches, load_plans, save_plan, skip_batch

    now = datetime.now(UTC)
    decision = rebalance_decision(now)
    batches = [
        Batch(index=i, scheduled_at=now + timedelta(hours=4 * i - 1), trades=decision.trades)
        for i in range(3)
    ]
    with unit_of_work(engine) as s:
        assert save_plan(s, "plan1", decision, batches, now) == []
    with unit_of_work(engine) as s:
        assert [b.index for b in load_due_batches(s, now)] == [0]
        skip_batch(s, "plan1", 0, "fell due while paused", now)
    with unit_of_work(engine) as s, pytest.raises(ConcurrentCycleError, match="no longer pending"):
        skip_batch(s, "plan1", 0, "again", now)
    with unit_of_work(engine) as s:
        cancelled = save_plan(s, "plan2", decision, batches[:1], now)
    assert [(b.plan_id, b.index, b.status) for b in cancelled] == [
        ("plan1", 1, "cancelled"),
        ("plan1", 2, "cancelled"),
    ]
    with unit_of_work(engine) as s:
        plans = {p.id: p for p in load_plans(s)}
        record_state_change(
            s,
            StateChange(
                at=now,
                from_state=CoordinatorState.RUNNING,
                to_state=CoordinatorState.PAUSED,
                actor="a",
                reason="r",
            ),
        )
    assert plans["plan1"].status == "superseded" and [b.status for b in plans["plan1"].batches] == [
        "skipped",
        "cancelled",
        "cancelled",
    ]
    assert plans["plan2"].status == "active"
    with unit_of_work(engine) as s:
        assert load_state_at(s, now - timedelta(seconds=1)) is CoordinatorState.RUNNING
        assert load_state_at(s, now + timedelta(seconds=1)) is CoordinatorState.PAUSED


def test_a_run_ends_in_the_transaction_of_its_work(engine: Engine, replay: ReplaySource) -> None:
    import pytest

    from triplegain.storage.tables import FlowRunRow

    cfg = load_settings()
    with unit_of_work(engine) as s:
        lost = start_run(s, "trading-cycle", cycle_id_for(BUYING_HOUR), datetime.now(UTC))
        kept = start_run(s, "trading-cycle", cycle_id_for(BUYING_HOUR), datetime.now(UTC))
    report, analyses, result, account = run(engine, cfg, BUYING_HOUR, replay)
    record = CycleRecord(report, analyses, result, account, flow_run_id=lost)  # type: ignore[arg-type]

    def killed_before_the_commit() -> None:
        with unit_of_work(engine) as s:
            save_cycle(s, record)
            raise RuntimeError("killed before the commit")

    with pytest.raises(RuntimeError):
        killed_before_the_commit()
    with unit_of_work(engine) as s:
        save_cycle(s, CycleRecord(report, analyses, result, account, flow_run_id=kept))  # type: ignore[arg-type]

    with unit_of_work(engine) as s:
        statuses = {row.id: row.status for row in s.scalars(select(FlowRunRow))}
        finish_run(s, kept, "failed", datetime.now(UTC), "an error after the commit")
    with unit_of_work(engine) as s:
        after = s.get(FlowRunRow, kept)
    assert statuses == {lost: "running", kept: "completed"}  # nothing committed, nothing ended
    assert after is not None and after.status == "completed"  # what follows the commit cannot unsay it
