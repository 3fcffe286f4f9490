"""Mapping between domain models and rows. Functions take a session and never commit.

`save_cycle` writes a cycle's whole chain; the caller commits it as one unit of work. It guards the
account with an optimistic version check, so two cycles that loaded the same account cannot both write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from triplegain.bus import DeadLetter, Message
from triplegain.control import CoordinatorStatus, OpenPositionView, RunRecord, StateChange
from triplegain.coordinator import AccountState, Coordination, SymbolAnalysis
from triplegain.degradation import Health, HealthOutcome, record
from triplegain.errors import ConcurrentCycleError
from triplegain.llm.breaker import Breaker
from triplegain.llm.gateway import LLMRunResult
from triplegain.llm.models import LLMCall
from triplegain.llm.replay import Recording
from triplegain.models.analysis import RegimeAssessment, RegimeState, SentimentReport, TechnicalReport
from triplegain.models.conflicts import Resolution
from triplegain.models.cycle import CycleReport, Execution
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action, CoordinatorState, PositionStatus
from triplegain.models.trading import Order, Portfolio, Position
from triplegain.rebalance import Batch, BatchRecord, PlanRecord, RebalanceDecision, RebalanceTrade
from triplegain.risk.state import Breaker as RiskBreaker
from triplegain.risk.state import RiskState, reset_drawdown_breaker
from triplegain.settings import Settings
from triplegain.storage.tables import (
    AgentOutputRow,
    ConflictResolutionRow,
    CoordinatorEventRow,
    CoordinatorStateRow,
    CycleRow,
    DcaBatchRow,
    DcaPlanRow,
    DeadLetterRow,
    FillRow,
    FlowRunRow,
    LLMCallRow,
    LLMRecordingRow,
    MessageRow,
    ModelVoteRow,
    OrderRow,
    PortfolioSnapshotRow,
    PositionRow,
    PositionSnapshotRow,
    RiskDecisionRow,
    SentimentReportRow,
)

STATE_ROW_ID = 1


def load_account(session: Session, settings: Settings) -> AccountState:
    """The account as the last committed cycle left it, or a fresh one with the initial balances."""
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    snapshot = session.scalars(
        select(PortfolioSnapshotRow).order_by(PortfolioSnapshotRow.id.desc()).limit(1)
    ).first()
    balances = (
        {k: Decimal(v) for k, v in snapshot.balances.items()}
        if snapshot
        else dict(settings.broker.initial_balances)
    )
    open_rows = session.scalars(
        select(PositionRow)
        .where(PositionRow.status == PositionStatus.OPEN.value)
        .order_by(PositionRow.opened_at)
    )
    return AccountState(
        coordinator=CoordinatorState(state.state) if state else CoordinatorState.RUNNING,
        balances=balances,
        positions=[_position(row) for row in open_rows],
        risk=RiskState.model_validate(state.risk_state) if state and state.risk_state else None,
        regimes={k: RegimeState.model_validate(v) for k, v in state.regime_states.items()} if state else {},
        version=state.version if state else 0,
        llm_breakers=_breakers(state.llm_breakers if state else None),
        last_cycle_at=_cycle_time(session, state.last_cycle_id if state else None),
        health=Health.model_validate(state.health) if state and state.health else Health(),
        state_set_by=session.scalars(
            select(CoordinatorEventRow.actor).order_by(CoordinatorEventRow.id.desc()).limit(1)
        ).first(),
    )


def _breakers(data: dict[str, Any] | None) -> dict[str, Breaker]:
    return {k: Breaker.model_validate(v) for k, v in (data or {}).items()}


def _cycle_time(session: Session, cycle_id: str | None) -> datetime | None:
    row = session.get(CycleRow, cycle_id) if cycle_id else None
    return row.as_of if row else None


def load_report(session: Session, cycle_id: str) -> CycleReport | None:
    """The stored report of a cycle that already ran, if any."""
    row = session.get(CycleRow, cycle_id)
    return CycleReport.model_validate(row.report) if row else None


def save_cycle(
    session: Session,
    report: CycleReport,
    analyses: list[SymbolAnalysis],
    result: Coordination,
    account: AccountState,
    llm: LLMRunResult | None = None,
    published_changes: list[int] | None = None,
    reported_runs: list[int] | None = None,
    settings: Settings | None = None,
    trading: bool = True,
    dca_batch: tuple[str, int] | None = None,
) -> None:
    """Write the whole chain: cycle, agents, votes, verdicts, orders, fills, positions, LLM calls, state.

    `reported_runs` are failed or crashed flow runs the report mentions (marked reported with it);
    `trading` is False for a market watch or a DCA batch, which do not become the account's last cycle;
    `dca_batch` (plan id, index) is the batch this run executes: it moves from pending to executed here or
    the whole run is refused (ConcurrentCycleError), so no batch ever executes twice.
    """
    llm = llm or LLMRunResult(breakers=account.llm_breakers)
    _claim_account(session, report, result, account, llm, trading)
    _apply_health(session, result.health_outcomes, settings or Settings(), report.timestamp)
    executions = [e for o in report.symbols for e in [*o.exits, *([o.execution] if o.execution else [])]]
    try:
        session.add(_cycle_row(report))
        session.flush()
        for analysis in analyses:
            session.add_all(_agent_rows(report.cycle_id, analysis))
        session.add_all(_verdict_rows(report))
        session.add_all(_message_rows(report.cycle_id, result.messages))
        session.add_all(_dead_letter_rows(report.cycle_id, result.dead_letters))
        save_llm_calls(session, llm.records, llm.recordings)
        session.add_all(_resolution_rows(report.cycle_id, result.resolutions))
        if published_changes:
            session.execute(
                update(CoordinatorEventRow)
                .where(CoordinatorEventRow.id.in_(published_changes))
                .values(published_cycle_id=report.cycle_id)
            )
        if reported_runs:
            session.execute(
                update(FlowRunRow).where(FlowRunRow.id.in_(reported_runs)).values(reported_in=report.cycle_id)
            )
        for change in result.state_changes:
            session.add(_event_row(change, published_cycle_id=report.cycle_id))
        if dca_batch is not None:
            plan_id, index = dca_batch
            _finish_batch(
                session, plan_id, index, "executed", report.cycle_id, report.finished_at, "orders placed"
            )
        session.add(_snapshot_row(report.cycle_id, result.portfolio))
        session.add_all([_order_row(e.order) for e in executions])
        session.flush()
        for moved in result.moved_stops:
            session.execute(
                update(PositionRow).where(PositionRow.id == moved.id).values(stop_loss=moved.stop_loss)
            )
        for execution in executions:
            _add_fill_and_positions(session, execution, report.cycle_id)
        session.add_all(_position_snapshot_rows(report.cycle_id, result.portfolio))
        session.flush()
    except IntegrityError as e:
        raise ConcurrentCycleError(
            f"{report.cycle_id}: already stored, or conflicting rows exist ({e.orig})"
        ) from e


def _message_rows(cycle_id: str, messages: list[Message]) -> list[MessageRow]:
    return [
        MessageRow(
            id=m.id,
            cycle_id=cycle_id,
            seq=seq,
            timestamp=m.timestamp,
            topic=m.topic.value,
            source=m.source,
            priority=int(m.priority),
            correlation_id=m.correlation_id,
            causation_id=m.causation_id,
            ttl_seconds=m.ttl_seconds,
            payload_type=m.payload_type,
            payload=m.payload.model_dump(mode="json"),
        )
        for seq, m in enumerate(messages)
    ]


def _dead_letter_rows(cycle_id: str, letters: list[DeadLetter]) -> list[DeadLetterRow]:
    return [
        DeadLetterRow(
            cycle_id=cycle_id,
            message_id=d.message.id,
            topic=d.message.topic.value,
            subscriber=d.subscriber,
            error=d.error,
            attempts=d.attempts,
            exhausted=d.exhausted,
            first_failed_at=d.first_failed_at,
            last_failed_at=d.last_failed_at,
            message=d.message.model_dump(mode="json"),
        )
        for d in letters
    ]


def _resolution_rows(cycle_id: str, resolutions: list[Resolution]) -> list[ConflictResolutionRow]:
    return [
        ConflictResolutionRow(
            cycle_id=cycle_id,
            symbol=r.symbol,
            conflict_types={"types": [c.type.value for c in r.conflicts]},
            agents_involved={"agents": sorted({a for c in r.conflicts for a in c.agents_involved})},
            details={
                c.type.value: c.model_dump(mode="json", include={"description", "details"})
                for c in r.conflicts
            },
            action=r.action.value,
            confidence=r.confidence,
            reasoning=r.reasoning,
            modifications=r.modifications.model_dump(mode="json") if r.modifications else None,
            decided_by=r.decided_by,
            latency_ms=r.latency_ms,
        )
        for r in resolutions
    ]


def _verdict_rows(report: CycleReport) -> list[RiskDecisionRow]:
    return [
        RiskDecisionRow(
            cycle_id=report.cycle_id,
            symbol=o.symbol,
            status=o.verdict.status.value,
            verdict=o.verdict.model_dump(mode="json"),
        )
        for o in report.symbols
        if o.verdict is not None
    ]


def _claim_account(
    session: Session,
    report: CycleReport,
    result: Coordination,
    account: AccountState,
    llm: LLMRunResult,
    trading: bool = True,
) -> None:
    values: dict[str, Any] = {
        "state": result.coordinator.value,
        "llm_breakers": {k: v.model_dump(mode="json") for k, v in llm.breakers.items()},
        "version": account.version + 1,
        "risk_state": result.risk.model_dump(mode="json"),
        "regime_states": {k: v.model_dump(mode="json") for k, v in result.regimes.items()},
        "updated_at": datetime.now(UTC),
    }
    if trading:
        values["last_cycle_id"] = report.cycle_id
    if account.version == 0:
        values.setdefault("last_cycle_id", None)
        session.add(CoordinatorStateRow(id=STATE_ROW_ID, health=None, **values))
        try:
            session.flush()
        except IntegrityError as e:
            raise ConcurrentCycleError("another cycle initialised the account first") from e
        return
    claimed = session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID, CoordinatorStateRow.version == account.version)
        .values(**values)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentCycleError(
            f"{report.cycle_id}: the account changed since this cycle loaded it (version {account.version})"
        )


def _apply_health(session: Session, outcomes: list[HealthOutcome], settings: Settings, at: datetime) -> None:
    """Apply a run's outcomes to the stored counters under the row lock, so concurrent runs both count."""
    if not outcomes:
        return
    stored = session.execute(
        select(CoordinatorStateRow.health).where(CoordinatorStateRow.id == STATE_ROW_ID).with_for_update()
    ).scalar_one_or_none()
    health, _ = record(
        Health.model_validate(stored) if stored else Health(), outcomes, settings.degradation, at
    )
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(health=health.model_dump(mode="json"))
    )


def _event_row(change: StateChange, published_cycle_id: str | None = None) -> CoordinatorEventRow:
    return CoordinatorEventRow(
        at=change.at,
        from_state=change.from_state.value,
        to_state=change.to_state.value,
        actor=change.actor,
        reason=change.reason,
        prefect_emitted_at=None,
        published_cycle_id=published_cycle_id,
    )


def _position_snapshot_rows(run_id: str, portfolio: Portfolio) -> list[PositionSnapshotRow]:
    rows = []
    for p in portfolio.positions:
        price = portfolio.prices.get(p.symbol)
        if price is None:
            continue
        rows.append(
            PositionSnapshotRow(
                run_id=run_id,
                position_id=p.id,
                symbol=p.symbol,
                taken_at=portfolio.as_of,
                size=p.size,
                entry_price=p.entry_price,
                price=price,
                unrealized_pnl=p.unrealized_pnl(price),
                stop_loss=p.stop_loss,
                take_profit=p.take_profit,
            )
        )
    return rows


def _cycle_row(report: CycleReport) -> CycleRow:
    return CycleRow(
        id=report.cycle_id,
        as_of=report.timestamp,
        started_at=report.started_at,
        finished_at=report.finished_at,
        status=report.status.value,
        mode=report.mode,
        decided_by=report.decided_by,
        starting_equity=report.starting_equity,
        equity=report.portfolio.equity,
        report=report.model_dump(mode="json"),
    )


def _agent_rows(cycle_id: str, a: SymbolAnalysis) -> list[Any]:
    rows: list[Any] = []
    outputs: list[tuple[TechnicalReport | RegimeAssessment | TradingSignal, str]] = []
    if a.technical is not None:
        outputs.append((a.technical, a.technical.model_used))
    if a.regime is not None:
        outputs.append((a.regime, a.regime.model_used))
    if a.signal is not None:
        outputs.append((a.signal, a.signal.decided_by))
    for output, model in outputs:
        rows.append(
            AgentOutputRow(
                cycle_id=cycle_id,
                agent_name=output.agent_name,
                symbol=a.symbol,
                timestamp=output.timestamp,
                confidence=output.confidence,
                model_used=model,
                output=output.model_dump(mode="json"),
            )
        )
    if a.signal is not None and a.snapshot is not None:
        for vote in a.signal.model_votes:
            rows.append(
                ModelVoteRow(
                    cycle_id=cycle_id,
                    symbol=a.symbol,
                    consensus_action=a.signal.action.value,
                    price_at_decision=a.snapshot.current_price,
                    **vote.model_dump(exclude={"action"}),
                    action=vote.action.value,
                )
            )
    return rows


def _order_row(order: Order) -> OrderRow:
    return OrderRow(
        **order.model_dump(exclude={"side", "intent", "status"}),
        side=order.side.value,
        intent=order.intent.value,
        status=order.status.value,
    )


def _add_fill_and_positions(session: Session, execution: Execution, cycle_id: str) -> None:
    if execution.fill is not None:
        fill = execution.fill
        session.add(FillRow(**fill.model_dump(exclude={"side"}), side=fill.side.value))
    if execution.opened_position is not None:
        session.add(_position_row(execution.opened_position))
    for rest in execution.reduced_positions:
        session.execute(
            update(PositionRow)
            .where(PositionRow.id == rest.id)
            .values(size=rest.size, fees_paid=rest.fees_paid)
        )
    for closed in execution.closed_positions:
        row = session.get(PositionRow, closed.id)
        if row is None:
            row = _position_row(closed)
            session.add(row)
        for key, value in _position_values(closed).items():
            setattr(row, key, value)
        row.closed_cycle_id = cycle_id


def _position_values(p: Position) -> dict[str, Any]:
    return {**p.model_dump(exclude={"status"}), "status": p.status.value}


def _position_row(p: Position) -> PositionRow:
    return PositionRow(**_position_values(p))


def _position(row: PositionRow) -> Position:
    return Position(
        id=row.id,
        symbol=row.symbol,
        side=row.side,
        size=row.size,
        entry_price=row.entry_price,
        leverage=row.leverage,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        status=PositionStatus(row.status),
        opened_at=row.opened_at,
        closed_at=row.closed_at,
        exit_price=row.exit_price,
        realized_pnl=row.realized_pnl,
        fees_paid=row.fees_paid,
        close_reason=row.close_reason,
        cycle_id=row.cycle_id,
    )


def _snapshot_row(cycle_id: str, portfolio: Portfolio) -> PortfolioSnapshotRow:
    return PortfolioSnapshotRow(
        cycle_id=cycle_id,
        taken_at=portfolio.as_of,
        balances={k: str(v) for k, v in portfolio.balances.items()},
        prices={k: str(v) for k, v in portfolio.prices.items()},
        equity=portfolio.equity,
        exposure=portfolio.exposure(),
        open_positions=len(portfolio.positions),
    )


def save_llm_calls(session: Session, calls: list[LLMCall], recordings: list[Recording] | None = None) -> None:
    """Record LLM call attempts and the valid answers (with the cycle's unit of work, or on their own for
    other flows). An answer already recorded under the same key is kept as it was."""
    session.add_all(LLMCallRow(**c.model_dump()) for c in calls)
    if not recordings:
        return
    new = {r.key: r for r in recordings}
    known = set(session.scalars(select(LLMRecordingRow.key).where(LLMRecordingRow.key.in_(list(new)))))
    session.add_all(LLMRecordingRow(**r.model_dump()) for key, r in new.items() if key not in known)


def load_recordings(session: Session, models: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Recorded answers by key (of the given models, or all), for a replaying backtest."""
    query = select(LLMRecordingRow.key, LLMRecordingRow.answer)
    if models is not None:
        query = query.where(LLMRecordingRow.model.in_(models))
    return {row.key: row.answer for row in session.execute(query)}


def llm_spent_since(session: Session, since: datetime) -> Decimal:
    """USD spent on LLM calls since `since` (what the day budget has left to give)."""
    rows = session.scalars(select(LLMCallRow.cost_usd).where(LLMCallRow.started_at >= since))
    return sum(rows, Decimal(0))


def save_sentiment(session: Session, report: SentimentReport) -> None:
    """Store a sentiment report."""
    session.add(
        SentimentReportRow(
            symbol=report.symbol,
            as_of=report.timestamp,
            valid_until=report.valid_until,
            bias=report.bias.value,
            overall_score=report.overall_score,
            confidence=report.confidence,
            model_used=report.model_used,
            report=report.model_dump(mode="json"),
            created_at=datetime.now(UTC),
        )
    )


def latest_sentiment(session: Session, symbol: str, at: datetime) -> SentimentReport | None:
    """The newest report for `symbol` made at or before `at` and still valid at `at`."""
    row = session.scalars(
        select(SentimentReportRow)
        .where(
            SentimentReportRow.symbol == symbol,
            SentimentReportRow.as_of <= at,
            SentimentReportRow.valid_until > at,
        )
        .order_by(SentimentReportRow.as_of.desc(), SentimentReportRow.id.desc())
        .limit(1)
    ).first()
    return SentimentReport.model_validate(row.report) if row else None


def save_llm_breakers(
    session: Session,
    breakers: dict[str, Breaker],
    outcomes: list[HealthOutcome] | None = None,
    settings: Settings | None = None,
    at: datetime | None = None,
) -> None:
    """Update breaker states and degradation counters outside a cycle (sentiment refresh).

    The account version is untouched (a cycle in flight may still commit); the counters are updated
    under the row lock from their stored value, so neither run's outcomes are lost.
    """
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(llm_breakers={k: v.model_dump(mode="json") for k, v in breakers.items()})
    )
    _apply_health(session, outcomes or [], settings or Settings(), at or datetime.now(UTC))


def start_run(session: Session, flow: str, run_key: str, at: datetime, prefect_id: str | None = None) -> int:
    """Record that a flow run started (committed at once by the caller); returns its id."""
    row = FlowRunRow(
        flow=flow,
        run_key=run_key,
        started_at=at,
        finished_at=None,
        status="running",
        error=None,
        prefect_flow_run_id=prefect_id,
        reported_in=None,
    )
    session.add(row)
    session.flush()
    return row.id


def finish_run(session: Session, run_id: int, status: str, at: datetime, error: str | None = None) -> None:
    """Record how a flow run ended: completed, skipped or failed (with the error's first line)."""
    session.execute(
        update(FlowRunRow)
        .where(FlowRunRow.id == run_id)
        .values(status=status, finished_at=at, error=error[:2000] if error else None)
    )


def unreported_failures(
    session: Session, now: datetime, crashed_after_minutes: int
) -> list[tuple[int, RunRecord]]:
    """Failed runs, and runs still `running` after `crashed_after_minutes` (now marked crashed), that no
    later run has reported yet; oldest first."""
    stale = now - timedelta(minutes=crashed_after_minutes)
    session.execute(
        update(FlowRunRow)
        .where(FlowRunRow.status == "running", FlowRunRow.started_at < stale)
        .values(status="crashed")
    )
    rows = session.scalars(
        select(FlowRunRow)
        .where(FlowRunRow.status.in_(("failed", "crashed")), FlowRunRow.reported_in.is_(None))
        .order_by(FlowRunRow.id)
    )
    return [(row.id, _run_record(row)) for row in rows]


def last_runs(session: Session) -> dict[str, RunRecord]:
    """The latest run of each flow."""
    latest = select(FlowRunRow.flow, func.max(FlowRunRow.id).label("id")).group_by(FlowRunRow.flow).subquery()
    rows = session.scalars(select(FlowRunRow).join(latest, FlowRunRow.id == latest.c.id))
    return {row.flow: _run_record(row) for row in rows}


def _run_record(row: FlowRunRow) -> RunRecord:
    return RunRecord(
        flow=row.flow,
        run_key=row.run_key,
        started_at=row.started_at,
        finished_at=row.finished_at,
        status=row.status,
        error=row.error,
    )


def record_state_change(session: Session, change: StateChange) -> None:
    """Apply and record a state change; the account version moves on, so no cycle in flight can commit."""
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    if state is None:
        session.add(
            CoordinatorStateRow(
                id=STATE_ROW_ID,
                state=change.to_state.value,
                version=1,
                risk_state=None,
                regime_states={},
                llm_breakers={},
                last_cycle_id=None,
                updated_at=change.at,
                health=None,
            )
        )
    else:
        state.state, state.version, state.updated_at = change.to_state.value, state.version + 1, change.at
    session.add(_event_row(change))


def reset_drawdown(session: Session, settings: Settings, actor: str, reason: str, at: datetime) -> bool:
    """The manual reset of the max-drawdown breaker: the peak restarts at the last marked equity.

    Recorded like a state change (same state before and after) and bumps the account version; the
    coordinator stays HALTED until a confirmed resume. False when the breaker was not tripped.
    """
    account = load_account(session, settings)
    if account.risk is None or RiskBreaker.MAX_DRAWDOWN not in account.risk.tripped:
        return False
    snapshot = session.scalars(
        select(PortfolioSnapshotRow).order_by(PortfolioSnapshotRow.id.desc()).limit(1)
    ).first()
    equity = snapshot.equity if snapshot else account.risk.peak_equity
    risk = reset_drawdown_breaker(account.risk, equity)
    session.execute(
        update(CoordinatorStateRow)
        .where(CoordinatorStateRow.id == STATE_ROW_ID)
        .values(risk_state=risk.model_dump(mode="json"), version=account.version + 1, updated_at=at)
    )
    state = account.coordinator
    why = f"max_drawdown breaker reset (peak restarts at {equity:.2f}): {reason}"
    session.add(_event_row(StateChange(at=at, from_state=state, to_state=state, actor=actor, reason=why)))
    return True


def state_changes(
    session: Session, *, unemitted: bool = False, unpublished: bool = False, limit: int = 100
) -> list[tuple[int, StateChange]]:
    """Recorded changes, newest first (optionally only those not yet emitted or published)."""
    query = select(CoordinatorEventRow).order_by(CoordinatorEventRow.id.desc()).limit(limit)
    if unemitted:
        query = query.where(CoordinatorEventRow.prefect_emitted_at.is_(None))
    if unpublished:
        query = query.where(CoordinatorEventRow.published_cycle_id.is_(None))
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
        for row in session.scalars(query)
    ]


def mark_emitted(session: Session, ids: list[int], at: datetime) -> None:
    """Note that these changes reached Prefect as events."""
    if ids:
        session.execute(
            update(CoordinatorEventRow).where(CoordinatorEventRow.id.in_(ids)).values(prefect_emitted_at=at)
        )


def load_status(session: Session, settings: Settings) -> CoordinatorStatus:
    """State, breakers, last cycle, balances and open positions marked at the last prices."""
    account = load_account(session, settings)
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    cycle = session.get(CycleRow, state.last_cycle_id) if state and state.last_cycle_id else None
    snapshot = session.scalars(
        select(PortfolioSnapshotRow).order_by(PortfolioSnapshotRow.id.desc()).limit(1)
    ).first()
    prices = {k: Decimal(v) for k, v in snapshot.prices.items()} if snapshot else {}
    return CoordinatorStatus(
        state=account.coordinator,
        degradation=account.health.level,
        llm_failures=account.health.llm_failures,
        api_failures=account.health.api_failures,
        last_runs=last_runs(session),
        dca_plan=_plan_line(load_plans(session, 1)),
        tripped_breakers={k.value: v for k, v in account.risk.tripped.items()} if account.risk else {},
        consecutive_losses=account.risk.consecutive_losses if account.risk else 0,
        last_cycle_id=cycle.id if cycle else None,
        last_cycle_at=cycle.as_of if cycle else None,
        last_cycle_status=cycle.status if cycle else None,
        equity=snapshot.equity if snapshot else None,
        balances=account.balances,
        positions=[_position_view(p, prices.get(p.symbol)) for p in account.positions],
        recent_changes=[c for _, c in state_changes(session, limit=5)],
    )


def _position_view(p: Position, price: Decimal | None) -> OpenPositionView:
    return OpenPositionView(
        symbol=p.symbol,
        size=p.size,
        entry_price=p.entry_price,
        last_price=price,
        unrealized_pnl=p.unrealized_pnl(price) if price is not None else None,
        stop_loss=p.stop_loss,
        take_profit=p.take_profit,
    )


def _finish_batch(
    session: Session, plan_id: str, index: int, status: str, run_key: str | None, at: datetime, note: str
) -> None:
    """Move a pending batch to its final status; ConcurrentCycleError when it is no longer pending."""
    moved = session.execute(
        update(DcaBatchRow)
        .where(
            DcaBatchRow.plan_id == plan_id, DcaBatchRow.batch_index == index, DcaBatchRow.status == "pending"
        )
        .values(status=status, run_key=run_key, finished_at=at, note=note[:2000])
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise ConcurrentCycleError(
            f"DCA batch {plan_id}#{index} is no longer pending: another run settled it"
        )
    pending = session.scalar(
        select(func.count())
        .select_from(DcaBatchRow)
        .where(DcaBatchRow.plan_id == plan_id, DcaBatchRow.status == "pending")
    )
    if not pending:
        session.execute(
            update(DcaPlanRow)
            .where(DcaPlanRow.id == plan_id, DcaPlanRow.status == "active")
            .values(status="completed")
        )


def skip_batch(session: Session, plan_id: str, index: int, reason: str, at: datetime) -> None:
    """Record that a batch will never execute (it fell due while trading was paused or halted)."""
    _finish_batch(session, plan_id, index, "skipped", None, at, reason)


def save_plan(
    session: Session, plan_id: str, decision: RebalanceDecision, batches: list[Batch], at: datetime
) -> list[BatchRecord]:
    """Store a new plan; every older active plan is superseded and its pending batches cancelled.

    Returns the cancelled batches (their scheduled Prefect runs are to be cancelled too).
    """
    cancelled = [
        _batch_record(row)
        for row in session.scalars(
            select(DcaBatchRow)
            .join(DcaPlanRow, DcaPlanRow.id == DcaBatchRow.plan_id)
            .where(DcaPlanRow.status == "active", DcaBatchRow.status == "pending")
            .with_for_update()
        )
    ]
    note = f"superseded by plan {plan_id}"
    for batch in cancelled:
        session.execute(
            update(DcaBatchRow)
            .where(DcaBatchRow.plan_id == batch.plan_id, DcaBatchRow.batch_index == batch.index)
            .values(status="cancelled", finished_at=at, note=note)
        )
    session.execute(update(DcaPlanRow).where(DcaPlanRow.status == "active").values(status="superseded"))
    session.add(
        DcaPlanRow(
            id=plan_id,
            created_at=at,
            status="active",
            reason=decision.reason,
            total_usd=decision.total_usd,
            decision=decision.model_dump(mode="json"),
        )
    )
    session.flush()
    session.add_all(
        DcaBatchRow(
            plan_id=plan_id,
            batch_index=b.index,
            scheduled_at=b.scheduled_at,
            trades={"trades": [t.model_dump(mode="json") for t in b.trades]},
            status="pending",
            note=None,
            run_key=None,
            finished_at=None,
            prefect_flow_run_id=None,
        )
        for b in batches
    )
    return [c.model_copy(update={"status": "cancelled", "note": note}) for c in cancelled]


def set_batch_flow_run(session: Session, plan_id: str, index: int, flow_run_id: str) -> None:
    """Remember the Prefect flow run scheduled for a batch."""
    session.execute(
        update(DcaBatchRow)
        .where(DcaBatchRow.plan_id == plan_id, DcaBatchRow.batch_index == index)
        .values(prefect_flow_run_id=flow_run_id)
    )


def load_batch(session: Session, plan_id: str, index: int) -> BatchRecord | None:
    """One batch, if it exists."""
    row = session.scalars(
        select(DcaBatchRow).where(DcaBatchRow.plan_id == plan_id, DcaBatchRow.batch_index == index)
    ).first()
    return _batch_record(row) if row else None


def due_batches(session: Session, now: datetime) -> list[BatchRecord]:
    """Pending batches of active plans that are due, in order."""
    rows = session.scalars(
        select(DcaBatchRow)
        .join(DcaPlanRow, DcaPlanRow.id == DcaBatchRow.plan_id)
        .where(
            DcaPlanRow.status == "active", DcaBatchRow.status == "pending", DcaBatchRow.scheduled_at <= now
        )
        .order_by(DcaBatchRow.scheduled_at, DcaBatchRow.batch_index)
    )
    return [_batch_record(row) for row in rows]


def last_plan_at(session: Session) -> datetime | None:
    """When the newest rebalance plan was made (rebalancing is limited to one per `min_interval_hours`)."""
    return session.scalar(select(func.max(DcaPlanRow.created_at)))


def load_plans(session: Session, limit: int = 5) -> list[PlanRecord]:
    """The newest plans with their batches."""
    plans = session.scalars(select(DcaPlanRow).order_by(DcaPlanRow.created_at.desc()).limit(limit)).all()
    records = []
    for plan in plans:
        rows = session.scalars(
            select(DcaBatchRow).where(DcaBatchRow.plan_id == plan.id).order_by(DcaBatchRow.batch_index)
        )
        records.append(
            PlanRecord(
                id=plan.id,
                created_at=plan.created_at,
                status=plan.status,
                reason=plan.reason,
                total_usd=plan.total_usd,
                batches=[_batch_record(r) for r in rows],
            )
        )
    return records


def coordinator_state_at(session: Session, at: datetime) -> CoordinatorState:
    """The coordinator's state at a past moment, from the recorded changes (RUNNING before any)."""
    row = session.scalars(
        select(CoordinatorEventRow.to_state)
        .where(CoordinatorEventRow.at <= at)
        .order_by(CoordinatorEventRow.at.desc(), CoordinatorEventRow.id.desc())
        .limit(1)
    ).first()
    return CoordinatorState(row) if row else CoordinatorState.RUNNING


def _batch_record(row: DcaBatchRow) -> BatchRecord:
    return BatchRecord(
        plan_id=row.plan_id,
        index=row.batch_index,
        scheduled_at=row.scheduled_at,
        trades=[RebalanceTrade.model_validate(t) for t in row.trades["trades"]],
        status=row.status,
        note=row.note,
        run_key=row.run_key,
        finished_at=row.finished_at,
        prefect_flow_run_id=row.prefect_flow_run_id,
    )


def recent_votes(session: Session, days: int) -> list[tuple[datetime, str, str, Action, float]]:
    """The model votes of the newest `days` days of cycles (counted back from the newest cycle, so a replay
    of the past works too): (cycle time, symbol, model, action, price at decision)."""
    newest = session.scalar(select(func.max(CycleRow.as_of)).where(CycleRow.id.like("cycle-%")))
    if newest is None:
        return []
    since = newest - timedelta(days=days)
    rows = session.execute(
        select(
            CycleRow.as_of,
            ModelVoteRow.symbol,
            ModelVoteRow.model,
            ModelVoteRow.action,
            ModelVoteRow.price_at_decision,
        )
        .join(CycleRow, CycleRow.id == ModelVoteRow.cycle_id)
        .where(CycleRow.as_of >= since, ModelVoteRow.error.is_(None))
        .order_by(CycleRow.as_of, ModelVoteRow.id)
    )
    return [(at, symbol, model, Action(action), float(price)) for at, symbol, model, action, price in rows]


def _plan_line(plans: list[PlanRecord]) -> str | None:
    if not plans:
        return None
    plan = plans[0]
    counts: dict[str, int] = {}
    for b in plan.batches:
        counts[b.status] = counts.get(b.status, 0) + 1
    done = ", ".join(f"{n} {status}" for status, n in counts.items())
    pending = [b for b in plan.batches if b.status == "pending"]
    after = f"; next batch at {pending[0].scheduled_at:%Y-%m-%d %H:%M} UTC" if pending else ""
    return f"{plan.id} ({plan.status}, {plan.total_usd} USD in {len(plan.batches)} batch(es): {done}){after}"
