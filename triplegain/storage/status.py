"""What `triplegain status` shows, read from the database in one unit of work."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from triplegain.control import CoordinatorStatus, OpenPositionView
from triplegain.models.trading import Position
from triplegain.rebalance import PlanRecord
from triplegain.storage.accounts import STATE_ROW_ID, load_account, load_state_changes
from triplegain.storage.dca import load_plans
from triplegain.storage.positions import latest_snapshot
from triplegain.storage.runs import load_last_runs
from triplegain.storage.tables import CoordinatorStateRow, CycleRow


def load_status(session: Session, initial_balances: dict[str, Decimal]) -> CoordinatorStatus:
    """State, breakers, last cycle, balances and open positions marked at the last prices."""
    account = load_account(session, initial_balances)
    state = session.get(CoordinatorStateRow, STATE_ROW_ID)
    cycle = session.get(CycleRow, state.last_cycle_id) if state and state.last_cycle_id else None
    snapshot = latest_snapshot(session)
    prices = {k: Decimal(v) for k, v in snapshot.prices.items()} if snapshot else {}
    return CoordinatorStatus(
        state=account.coordinator,
        degradation=account.health.level,
        llm_failures=account.health.llm_failures,
        api_failures=account.health.api_failures,
        last_runs=load_last_runs(session),
        dca_plan=_plan_line(load_plans(session, 1)),
        tripped_breakers={k.value: v for k, v in account.risk.tripped.items()} if account.risk else {},
        consecutive_losses=account.risk.consecutive_losses if account.risk else 0,
        last_cycle_id=cycle.id if cycle else None,
        last_cycle_at=cycle.as_of if cycle else None,
        last_cycle_status=cycle.status if cycle else None,
        equity=snapshot.equity if snapshot else None,
        balances=account.balances,
        positions=[_position_view(p, prices.get(p.symbol)) for p in account.positions],
        recent_changes=load_state_changes(session, limit=5),
        hodl_bags=account.hodl.amounts(),
        hodl_pending_usd=account.hodl.pending_usd(),
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
