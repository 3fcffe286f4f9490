"""Flow runs as the database saw them: started, then completed, skipped, failed, or found crashed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from triplegain.control import RunRecord
from triplegain.storage.tables import FlowRunRow


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
    """Record how a flow run ended: completed, skipped or failed (with the error's first line).

    Only a run still marked running changes: a run whose work committed was marked completed in that
    same transaction, and what happens after the commit cannot unsay it.
    """
    session.execute(
        update(FlowRunRow)
        .where(FlowRunRow.id == run_id, FlowRunRow.status == "running")
        .values(status=status, finished_at=at, error=error[:2000] if error else None)
    )


def load_unreported_failures(
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


def mark_reported(session: Session, ids: list[int], run_key: str) -> None:
    """Note that a run's report mentioned these failed or crashed runs."""
    if ids:
        session.execute(update(FlowRunRow).where(FlowRunRow.id.in_(ids)).values(reported_in=run_key))


def load_last_runs(session: Session) -> dict[str, RunRecord]:
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
