"""Orders, fills, positions and portfolio snapshots: what the broker did, as rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from triplegain.models.cycle import Execution
from triplegain.models.enums import PositionStatus
from triplegain.models.trading import Order, Portfolio, Position
from triplegain.storage.tables import (
    FillRow,
    OrderRow,
    PortfolioSnapshotRow,
    PositionRow,
    PositionSnapshotRow,
)


def load_open_positions(session: Session) -> list[Position]:
    """Every open position, oldest first."""
    rows = session.scalars(
        select(PositionRow)
        .where(PositionRow.status == PositionStatus.OPEN.value)
        .order_by(PositionRow.opened_at)
    )
    return [_position(row) for row in rows]


def latest_snapshot(session: Session) -> PortfolioSnapshotRow | None:
    """The portfolio as the newest run left it."""
    return session.scalars(
        select(PortfolioSnapshotRow).order_by(PortfolioSnapshotRow.id.desc()).limit(1)
    ).first()


def latest_prices(session: Session) -> dict[str, Decimal]:
    """The last prices the newest run's portfolio was valued at (empty before any run)."""
    previous = latest_snapshot(session)
    return {k: Decimal(v) for k, v in previous.prices.items()} if previous else {}


def save_executions(
    session: Session, run_id: str, executions: list[Execution], moved_stops: list[Position]
) -> None:
    """Orders first, then fills and the positions they opened, reduced or closed; moved stops."""
    session.add_all([_order_row(e.order) for e in executions])
    session.flush()
    for moved in moved_stops:
        session.execute(
            update(PositionRow).where(PositionRow.id == moved.id).values(stop_loss=moved.stop_loss)
        )
    for execution in executions:
        _add_fill_and_positions(session, execution, run_id)


def snapshot_row(run_id: str, portfolio: Portfolio) -> PortfolioSnapshotRow:
    """The portfolio a run left, with its balances, prices and equity."""
    return PortfolioSnapshotRow(
        cycle_id=run_id,
        taken_at=portfolio.as_of,
        balances={k: str(v) for k, v in portfolio.balances.items()},
        prices={k: str(v) for k, v in portfolio.prices.items()},
        equity=portfolio.equity,
        exposure=portfolio.exposure(),
        open_positions=len(portfolio.positions),
    )


def position_snapshot_rows(run_id: str, portfolio: Portfolio) -> list[PositionSnapshotRow]:
    """Each open position with a price this run, marked to market."""
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


def _order_row(order: Order) -> OrderRow:
    return OrderRow(
        **order.model_dump(exclude={"side", "intent", "status"}),
        side=order.side.value,
        intent=order.intent.value,
        status=order.status.value,
    )


def _add_fill_and_positions(session: Session, execution: Execution, run_id: str) -> None:
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
        row.closed_cycle_id = run_id


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
