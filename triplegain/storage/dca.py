"""Rebalance plans and their DCA batches: stored once, each batch settled exactly once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from triplegain.errors import ConcurrentCycleError
from triplegain.rebalance import Batch, BatchRecord, PlanRecord, RebalanceDecision, RebalanceTrade
from triplegain.storage.tables import DcaBatchRow, DcaPlanRow


def finish_batch(
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
    finish_batch(session, plan_id, index, "skipped", None, at, reason)


def save_plan(
    session: Session, plan_id: str, decision: RebalanceDecision, batches: list[Batch], at: datetime
) -> list[BatchRecord]:
    """Store a new plan; every older active plan is superseded and its pending batches cancelled.

    Returns the cancelled batches (their scheduled Prefect runs are to be cancelled too).
    """
    cancelled = _cancel_active_plans(session, f"superseded by plan {plan_id}", at)
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
    return cancelled


def _cancel_active_plans(session: Session, note: str, at: datetime) -> list[BatchRecord]:
    """Cancel the pending batches of every active plan and mark those plans superseded."""
    pending = session.scalars(
        select(DcaBatchRow)
        .join(DcaPlanRow, DcaPlanRow.id == DcaBatchRow.plan_id)
        .where(DcaPlanRow.status == "active", DcaBatchRow.status == "pending")
        .with_for_update()
    )
    cancelled = [_batch_record(row) for row in pending]
    for batch in cancelled:
        session.execute(
            update(DcaBatchRow)
            .where(DcaBatchRow.plan_id == batch.plan_id, DcaBatchRow.batch_index == batch.index)
            .values(status="cancelled", finished_at=at, note=note)
        )
    session.execute(update(DcaPlanRow).where(DcaPlanRow.status == "active").values(status="superseded"))
    return [c.model_copy(update={"status": "cancelled", "note": note}) for c in cancelled]


def save_batch_flow_run(session: Session, plan_id: str, index: int, flow_run_id: str) -> None:
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


def load_due_batches(session: Session, now: datetime) -> list[BatchRecord]:
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


def load_last_plan_at(session: Session) -> datetime | None:
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
