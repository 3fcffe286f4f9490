"""The live orders' journal in the project database: an order's intent is committed before it is sent."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session

from triplegain.broker.live import TERMINAL, JournalledExecution, OrderIntent, OrderState, StatusChange
from triplegain.broker.plans import OrderPlan
from triplegain.models.cycle import Execution
from triplegain.models.enums import OrderStatus, Side
from triplegain.storage.tables import (
    CycleRow,
    LiveExecutionRow,
    LiveOrderLogRow,
    LiveOrderRow,
    LivePlanRow,
    OrderRow,
)


class SqlOrderJournal:
    """`triplegain.broker.live.OrderJournal` on the project database; each save is its own committed
    transaction, so what was saved survives the process being killed the next instant."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, client_id: str) -> OrderState | None:
        with Session(self.engine) as session:
            row = session.get(LiveOrderRow, client_id)
            return None if row is None else _state(row)

    def save(self, state: OrderState, note: str) -> None:
        now = datetime.now(UTC)
        intent = state.intent
        with Session(self.engine) as session, session.begin():
            row = session.get(LiveOrderRow, intent.client_id)
            if row is None:
                row = LiveOrderRow(
                    client_id=intent.client_id,
                    cycle_id=intent.cycle_id,
                    symbol=intent.symbol,
                    side=intent.side.value,
                    type=intent.type,
                    amount=intent.amount,
                    price=intent.price,
                    purpose=intent.purpose,
                    created_at=intent.created_at,
                )
                session.add(row)
            row.status = state.status.value
            row.exchange_id = state.exchange_id
            row.filled = state.filled
            row.average_price = state.average_price
            row.cost = state.cost
            row.fee = state.fee
            row.fee_asset = state.fee_asset
            row.note = state.note
            row.sends = state.sends
            row.updated_at = now
            session.flush()  # the order row exists before its first log line refers to it
            session.add(LiveOrderLogRow(client_id=intent.client_id, at=now, status=row.status, note=note))

    def save_execution(self, done: JournalledExecution) -> None:
        execution = done.execution
        with Session(self.engine) as session, session.begin():
            if session.get(LiveExecutionRow, execution.order.client_order_id) is not None:
                return  # journalled already: the same order id is the same execution
            session.add(
                LiveExecutionRow(
                    order_id=execution.order.client_order_id,
                    run_id=done.run_id,
                    symbol=execution.order.symbol,
                    cost=done.cost,
                    execution=execution.model_dump(mode="json"),
                    journalled_at=done.journalled_at,
                )
            )

    def save_plan(self, client_id: str, planned: OrderPlan) -> None:
        with Session(self.engine) as session, session.begin():
            if session.get(LivePlanRow, client_id) is not None:
                return  # the same client id is the same order: its first plan stays
            session.add(
                LivePlanRow(
                    client_id=client_id,
                    order_id=planned.order.client_order_id,
                    plan=planned.model_dump(mode="json"),
                    planned_at=datetime.now(UTC),
                )
            )

    def plan(self, client_id: str) -> OrderPlan | None:
        with Session(self.engine) as session:
            row = session.get(LivePlanRow, client_id)
            return None if row is None else OrderPlan.model_validate(row.plan)

    def unrecorded_executions(self) -> list[JournalledExecution]:
        """Executions journalled by a run that never recorded them (their order is not in `orders`: the
        run was killed, or its commit failed, after the fill), oldest first."""
        recorded = select(OrderRow.client_order_id).where(
            OrderRow.client_order_id == LiveExecutionRow.order_id
        )
        query = (
            select(LiveExecutionRow)
            .where(~recorded.exists())
            .order_by(LiveExecutionRow.journalled_at, LiveExecutionRow.order_id)
        )
        with Session(self.engine) as session:
            return [
                JournalledExecution(r.run_id, Execution.model_validate(r.execution), r.cost, r.journalled_at)
                for r in session.scalars(query)
            ]

    def log(self, client_id: str) -> list[StatusChange]:
        """The order's status log, oldest first."""
        with Session(self.engine) as session:
            rows = session.scalars(
                select(LiveOrderLogRow)
                .where(LiveOrderLogRow.client_id == client_id)
                .order_by(LiveOrderLogRow.id)
            )
            return [StatusChange(r.client_id, r.at, OrderStatus(r.status), r.note) for r in rows]

    def orders(self) -> list[OrderState]:
        """Every order the journal holds, oldest first (reconciliation tells its fills from others')."""
        return self._states(select(LiveOrderRow))

    def unsettled(self) -> list[OrderState]:
        """Orders the exchange may still act on, or whose outcome is unknown: what reconciliation asks
        about first."""
        done = [s.value for s in TERMINAL]
        return self._states(select(LiveOrderRow).where(LiveOrderRow.status.not_in(done)))

    def _states(self, query: Select[LiveOrderRow]) -> list[OrderState]:
        with Session(self.engine) as session:
            return [_state(r) for r in session.scalars(query.order_by(LiveOrderRow.created_at))]


def _state(row: LiveOrderRow) -> OrderState:
    intent = OrderIntent(
        client_id=row.client_id,
        cycle_id=row.cycle_id,
        symbol=row.symbol,
        side=Side(row.side),
        type=row.type,
        amount=row.amount,
        purpose=row.purpose,
        price=row.price,
        created_at=row.created_at,
    )
    return OrderState(
        intent=intent,
        status=OrderStatus(row.status),
        exchange_id=row.exchange_id,
        filled=row.filled,
        average_price=row.average_price,
        cost=row.cost,
        fee=row.fee,
        fee_asset=row.fee_asset,
        note=row.note,
        sends=row.sends,
    )


def modes_held(engine: Engine) -> set[str]:
    """The account modes this database holds: those of its cycles, and live if it holds a live order."""
    with Session(engine) as session:
        modes = set(session.scalars(select(CycleRow.mode).distinct()))
        if session.scalar(select(LiveOrderRow.client_id).limit(1)) is not None:
            modes.add("live")
        return modes
