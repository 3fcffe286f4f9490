"""A run's whole chain as rows: cycle, agent outputs, votes, verdicts, bus messages, resolutions, orders,
fills, positions, LLM calls and the account, written in one unit of work that the caller commits.

`save_cycle` claims the account by its version (two runs that loaded the same account cannot both write)
and refuses a run whose rows already exist (ConcurrentCycleError), so a run is stored once or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from triplegain.bus import DeadLetter, Message
from triplegain.cycle_types import AccountState, Coordination, SymbolAnalysis
from triplegain.errors import ConcurrentCycleError
from triplegain.llm.gateway import LLMRunResult
from triplegain.models.analysis import AgentReport, RegimeAssessment, TechnicalReport
from triplegain.models.conflicts import Resolution
from triplegain.models.cycle import CycleReport, Execution
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import Action
from triplegain.rebalance import batch_run_id
from triplegain.storage.accounts import claim_account, event_row, mark_published, update_health
from triplegain.storage.dca import finish_batch
from triplegain.storage.hodl import hodl_rows
from triplegain.storage.llm_calls import save_llm_calls
from triplegain.storage.positions import position_snapshot_rows, save_executions, snapshot_row
from triplegain.storage.runs import finish_run, mark_reported
from triplegain.storage.tables import (
    AgentOutputRow,
    ConflictResolutionRow,
    CycleRow,
    DcaBatchRow,
    DeadLetterRow,
    MessageRow,
    ModelVoteRow,
    RiskDecisionRow,
)


@dataclass(frozen=True)
class CycleRecord:
    """Everything one run commits together.

    `account` is the account as the run loaded it (its version is claimed); `llm` the run's model calls
    and breakers (none: the breakers stay as loaded); `published_changes` the
    state changes its bus published; `reported_runs` failed or crashed runs its report mentions;
    `trading` is False for a market watch or a DCA batch, which do not become the account's last cycle;
    `dca_batch` (plan id, index) the batch it executes, moved from pending to executed here or the whole
    run is refused, so no batch ever executes twice; `flow_run_id` the run's `flow_runs` row, marked
    completed here, so a run killed after its commit is never reported as crashed.
    """

    report: CycleReport
    analyses: list[SymbolAnalysis]
    result: Coordination
    account: AccountState
    llm: LLMRunResult | None = None
    published_changes: tuple[int, ...] = ()
    reported_runs: tuple[int, ...] = ()
    trading: bool = True
    dca_batch: tuple[str, int] | None = None
    flow_run_id: int | None = None


def save_cycle(session: Session, record: CycleRecord) -> None:
    """Write the run's whole chain (see `CycleRecord`); the caller commits it as one unit of work."""
    report, result = record.report, record.result
    llm = record.llm or LLMRunResult(breakers=record.account.llm_breakers)
    claim_account(session, report.cycle_id, result, record.account, llm.breakers, record.trading)
    update_health(session, result.health_update)
    try:
        session.add(_cycle_row(report))
        session.flush()
        _save_decisions(session, record, llm)
        mark_published(session, list(record.published_changes), report.cycle_id)
        mark_reported(session, list(record.reported_runs), report.cycle_id)
        if record.flow_run_id is not None:
            finish_run(session, record.flow_run_id, "completed", report.finished_at)
        session.add_all(
            event_row(change, published_cycle_id=report.cycle_id) for change in result.state_changes
        )
        if record.dca_batch is not None:
            plan_id, index = record.dca_batch
            finish_batch(
                session, plan_id, index, "executed", report.cycle_id, report.finished_at, "orders placed"
            )
        session.add(snapshot_row(report.cycle_id, result.portfolio))
        executions = [e for o in report.symbols for e in o.executions()]
        save_executions(session, report.cycle_id, executions, result.moved_stops)
        session.add_all(position_snapshot_rows(report.cycle_id, result.portfolio))
        session.add_all(hodl_rows(report.cycle_id, result.hodl_entries))
        session.flush()
    except IntegrityError as e:
        raise ConcurrentCycleError(
            f"{report.cycle_id}: already stored, or conflicting rows exist ({e.orig})"
        ) from e


def record_recovered_run(session: Session, report: CycleReport, executions: list[Execution]) -> None:
    """The orders, fills and positions of a run killed after its orders filled, as its broker journalled
    them, under the run's own id: `report` (`broker.reconcile.recovery_report`) becomes the run's row when
    it has none, and a DCA batch the run was executing is settled as executed, so it never runs twice.
    The caller commits it with the account's balances (`accounts.accept_balances`)."""
    if session.get(CycleRow, report.cycle_id) is None:
        session.add(_cycle_row(report))
        session.flush()
    save_executions(session, report.cycle_id, executions, [])
    pending = session.scalars(select(DcaBatchRow).where(DcaBatchRow.status == "pending"))
    for batch in list(pending):
        if batch_run_id(batch.plan_id, batch.batch_index) == report.cycle_id:
            finish_batch(
                session,
                batch.plan_id,
                batch.batch_index,
                "executed",
                report.cycle_id,
                report.finished_at,
                "orders placed; recorded after the run was killed: " + "; ".join(report.notes),
            )
    session.flush()


def _save_decisions(session: Session, record: CycleRecord, llm: LLMRunResult) -> None:
    """Agent outputs and votes, risk verdicts, bus messages and dead letters, LLM calls, resolutions."""
    run_id, result = record.report.cycle_id, record.result
    for analysis in record.analyses:
        session.add_all(_agent_rows(run_id, analysis))
    session.add_all(_verdict_rows(record.report))
    session.add_all(_message_rows(run_id, result.messages))
    session.add_all(_dead_letter_rows(run_id, result.dead_letters))
    save_llm_calls(session, llm.records, llm.recordings)
    session.add_all(_resolution_rows(run_id, result.resolutions))


def load_report(session: Session, cycle_id: str) -> CycleReport | None:
    """The stored report of a run that already happened, if any."""
    row = session.get(CycleRow, cycle_id)
    return CycleReport.model_validate(row.report) if row else None


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
    outputs: list[tuple[TechnicalReport | RegimeAssessment | TradingSignal | AgentReport, str]] = []
    if a.technical is not None:
        outputs.append((a.technical, a.technical.model_used))
    if a.regime is not None:
        outputs.append((a.regime, a.regime.model_used))
    if a.signal is not None:
        outputs.append((a.signal, a.signal.decided_by))
    outputs += [(report, report.model_used) for report in a.reports.values()]
    rows: list[Any] = [
        AgentOutputRow(
            cycle_id=cycle_id,
            agent_name=output.agent_name,
            symbol=a.symbol,
            timestamp=output.timestamp,
            confidence=output.confidence,
            model_used=model,
            output=output.model_dump(mode="json"),
        )
        for output, model in outputs
    ]
    if a.signal is not None and a.snapshot is not None:
        rows += [
            ModelVoteRow(
                cycle_id=cycle_id,
                symbol=a.symbol,
                consensus_action=a.signal.action.value,
                price_at_decision=a.snapshot.current_price,
                **vote.model_dump(exclude={"action"}),
                action=vote.action.value,
            )
            for vote in a.signal.model_votes
        ]
    return rows


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
