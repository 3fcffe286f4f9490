"""The paper broker's interface on a live exchange account.

`ExchangeBroker` answers `open`, `close`, `rebalance` and `reduce` with the same `Execution` values as
`PaperBroker`, so the desk, the coordinator and the reports need not know which one trades. Underneath:

- every order goes through `LiveBroker` (journalled before sending, never lost or doubled); the desk's
  order id (`tg-...`, from the cycle and the purpose) becomes the exchange client id as a UUID;
- the same minimums as paper are checked before anything is sent (the exchange would refuse them anyway,
  and a refusal costs a call from the budget);
- a market order that fills partly is a fill of what filled: the rest is cancelled and the position (or the
  trade) is what was bought;
- after an entry fills, its stop-loss and take-profit go to the exchange (`ProtectionDesk`); before a close
  or a partial close, they are cancelled or resized. A protection order that cannot be placed is URGENT: the
  position is closed at once unless `close_unprotected` is off, and the message is kept in `urgent`.
- An order whose outcome stays unknown (`OrderUnresolved`) stops the run: it propagates.
- What each filled order did (its `Execution`) is journalled the moment the fill is known, before anything
  else is sent: a run killed before it records its work leaves it for reconciliation
  (`broker.reconcile`), which the operator's word turns into the account's orders and positions.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from triplegain.broker.live import FILLED, JournalledExecution, LiveBroker, OrderIntent
from triplegain.broker.orders import (
    closed_position,
    holding_problem,
    moved_by_fill,
    part_to_sell,
    rejected,
    sell_order,
    spot_order,
    trade_problem,
)
from triplegain.broker.plans import OrderPlan
from triplegain.broker.protection import Protection, ProtectionDesk, ProtectionFailed, ProtectionOutcome
from triplegain.models.cycle import Execution
from triplegain.models.enums import Intent, OrderStatus, Side
from triplegain.models.trading import Fill, Position, TradeProposal, split_symbol
from triplegain.settings import BrokerSettings, SymbolSpec


def exchange_client_id(order_id: str) -> str:
    """The desk's order id as the UUID the exchange gets (Kraken's cl_ord_id takes a UUID)."""
    return str(uuid.UUID(hex=hashlib.sha256(f"order|{order_id}".encode()).hexdigest()[:32]))


class ExchangeBroker:
    """Executes approved proposals on the exchange; the caller persists the results, as with paper."""

    protects_on_exchange = True

    def __init__(
        self,
        live: LiveBroker,
        balances: dict[str, Decimal],
        settings: BrokerSettings,
        specs: dict[str, SymbolSpec],
        protections: dict[str, Protection] | None = None,
        close_unprotected: bool = True,
    ) -> None:
        self.live = live
        self.protection = ProtectionDesk(live)
        self._balances = dict(balances)
        self._settings, self._specs = settings, specs
        self.protections: dict[str, Protection] = dict(protections or {})  # by position id
        self.close_unprotected = close_unprotected
        self.urgent: list[str] = []
        self.follow_ups: list[Execution] = []  # executions made on the broker's own account (protective)
        self._executed: dict[str, Execution] = {}

    @property
    def balances(self) -> dict[str, Decimal]:
        """A copy of the balances, moved by every fill."""
        return dict(self._balances)

    def open(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """Buy `proposal.size_usd` worth at market, open a position, protect it on the exchange."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        order = spot_order(
            proposal, Side.BUY, Intent.OPEN, order_id, cycle_id, price, at, spec, status=OrderStatus.PENDING
        )
        problem = trade_problem(
            self._balances, proposal.symbol, Side.BUY, order.size, price, spec, self._settings
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        execution = self._at_market(OrderPlan(purpose="open", order=order, at=at, proposal=proposal))
        if execution.opened_position is not None:
            self._protect(execution.opened_position, cycle_id, price, at)
        return execution

    def close(
        self,
        positions: Sequence[Position],
        order_id: str,
        cycle_id: str,
        price: Decimal,
        at: datetime,
        reason: str,
        slippage: bool = True,
    ) -> Execution:
        """Cancel the positions' protection, then sell what they hold at market."""
        if order_id in self._executed:
            return self._executed[order_id]
        symbol = positions[0].symbol
        for position in positions:
            self._release(position)
        size = sum((p.size for p in positions), Decimal(0))
        order = sell_order(positions[0], size, order_id, cycle_id, price, at, status=OrderStatus.PENDING)
        problem = holding_problem(self._balances, split_symbol(symbol)[0], size)
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        return self._at_market(
            OrderPlan(purpose="close", order=order, at=at, positions=list(positions), reason=reason)
        )

    def rebalance(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """A spot trade that moves the allocation: buy or sell `size_usd` of the base asset, no position."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        order = spot_order(
            proposal,
            proposal.side,
            Intent.REBALANCE,
            order_id,
            cycle_id,
            price,
            at,
            spec,
            status=OrderStatus.PENDING,
        )
        problem = trade_problem(
            self._balances, proposal.symbol, proposal.side, order.size, price, spec, self._settings
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        return self._at_market(OrderPlan(purpose="rebalance", order=order, at=at))

    def reduce(
        self,
        position: Position,
        pct: Decimal,
        order_id: str,
        cycle_id: str,
        price: Decimal,
        at: datetime,
        reason: str,
    ) -> Execution:
        """Sell `pct` percent of a position at market and resize its protection to the rest; the whole
        position when a part would fall below the minimum order size (as paper does)."""
        if order_id in self._executed:
            return self._executed[order_id]
        sold = part_to_sell(position, pct, self._specs[position.symbol])
        if sold is None:
            return self.close([position], order_id, cycle_id, price, at, reason)
        protection = self.protections.get(position.id)
        if protection is not None:  # cancelled first, resized to what is left after the sale
            self.protection.release(protection)
        order = sell_order(position, sold, order_id, cycle_id, price, at, status=OrderStatus.PENDING)
        execution = self._at_market(
            OrderPlan(purpose="reduce", order=order, at=at, positions=[position], reason=reason)
        )
        if protection is not None:  # what is left; the whole position when nothing sold
            left = execution.reduced_positions[0] if execution.fill is not None else position
            self._protect(left, cycle_id, price, at, protection.generation + 1)
        return execution

    def exchange_exits(self, positions: Sequence[Position], at: datetime) -> list[Execution]:
        """Each protected position whose stop-loss or take-profit filled on the exchange since the last
        run: the other order cancelled, the position closed by the fill, with its fee."""
        executions = []
        for position in positions:
            protection = self.protections.get(position.id)
            if protection is None:
                continue
            outcome = self.protection.settle(protection)
            self.urgent += outcome.urgent
            if outcome.closed_by is None:
                self.protections[position.id] = outcome.protection
                continue
            executions.append(self._exit(position, outcome, at))
        return executions

    def move_stop(
        self, position: Position, stop: Decimal, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution | None:
        """Trail `position`'s stop-loss up to `stop` on the exchange: its pair cancelled, then the next
        generation placed at `stop` with the same take-profit and size. When one of the old orders filled
        meanwhile, the position is gone: its exit is returned and nothing is placed. A new pair that cannot
        be placed is URGENT and closes the position, as after an entry (`follow_ups`). None otherwise, and
        for a position with no protection to move."""
        protection = self.protections.get(position.id)
        if protection is None:
            return None
        try:
            outcome = self.protection.resize(protection, protection.size, stop_price=stop)
        except ProtectionFailed as e:
            del self.protections[position.id]
            self._unprotected(e, position, cycle_id, price, at)
            return None
        if outcome.closed_by is not None:
            return self._exit(position, outcome, at)
        self.protections[position.id] = outcome.protection
        return None

    def _exit(self, position: Position, outcome: ProtectionOutcome, at: datetime) -> Execution:
        """The position closed by the protection order of `outcome` that filled, journalled."""
        reason = outcome.closed_by
        assert reason is not None, "an exit is the fill of a stop-loss or take-profit"
        del self.protections[position.id]
        done = outcome.protection.stop if reason == "stop_loss" else outcome.protection.take
        fill = outcome.fills[0].model_copy(update={"filled_at": at})
        self._move(fill, done.cost)
        order = sell_order(
            position,
            fill.size,
            fill.client_order_id,
            position.cycle_id,
            fill.price,
            at,
            status=OrderStatus.FILLED,
        )
        closed = closed_position(position, fill, fill.size, at, reason)
        return self._journal(Execution(order=order, fill=fill, closed_positions=[closed]), done.cost)

    # --- underneath -------------------------------------------------------------------------------------
    def _at_market(self, planned: OrderPlan) -> Execution:
        """The planned order at market through the live broker, its plan journalled first (a run killed
        before the reply leaves reconciliation what the fill means), what did not fill of it cancelled:
        what it did (`OrderPlan.executed`, as reconciliation builds it), remembered, the balances moved."""
        order = planned.order
        intent = OrderIntent(
            client_id=exchange_client_id(order.client_order_id),
            cycle_id=order.cycle_id,
            symbol=order.symbol,
            side=order.side,
            type="market",
            amount=order.size,
            purpose=planned.purpose,
        )
        self.live.journal.save_plan(intent.client_id, planned)
        state = self.live.submit(intent)
        if state.status is OrderStatus.PARTIALLY_FILLED or state.status is OrderStatus.OPEN:
            state = self.live.cancel(state)
        done, fill = planned.outcome(state)
        if fill is not None:
            self._move(fill, state.cost)
        return self._remember(planned.executed(done, fill), state.cost)

    def _move(self, fill: Fill, cost: Decimal) -> None:
        self._balances = moved_by_fill(self._balances, fill, cost)

    def _protect(
        self, position: Position, cycle_id: str, price: Decimal, at: datetime, generation: int = 0
    ) -> None:
        if position.stop_loss is None or position.take_profit is None:
            return
        try:
            self.protections[position.id] = self.protection.protect(
                position.id,
                cycle_id,
                position.symbol,
                position.size,
                position.stop_loss,
                position.take_profit,
                generation,
            )
        except ProtectionFailed as e:
            self._unprotected(e, position, cycle_id, price, at)

    def _unprotected(
        self, failed: ProtectionFailed, position: Position, cycle_id: str, price: Decimal, at: datetime
    ) -> None:
        """URGENT: a protection that could not be placed; what was placed of it cancelled, the position
        closed at market (`close_unprotected`)."""
        self.urgent.append(str(failed))
        for placed in failed.placed:
            self.live.cancel(placed)
        if self.close_unprotected:
            closing = self.close([position], f"{position.id}-unprotected", cycle_id, price, at, "unprotected")
            self.follow_ups.append(closing)

    def _release(self, position: Position) -> None:
        protection = self.protections.pop(position.id, None)
        if protection is None:
            return
        released = self.protection.release(protection)
        if any(o.status in FILLED for o in released.orders):
            self.urgent.append(
                f"URGENT: a protection order of position {position.id} filled before its close: "
                "reconcile before trading on"
            )

    def _remember(self, execution: Execution, cost: Decimal = Decimal(0)) -> Execution:
        """Kept for a retried call with the same order id; journalled when it filled (at `cost`, the
        exchange's)."""
        self._executed[execution.order.client_order_id] = execution
        return self._journal(execution, cost) if execution.fill is not None else execution

    def _journal(self, execution: Execution, cost: Decimal) -> Execution:
        """What a filled order did, journalled before anything else is sent (see the module docstring)."""
        self.live.journal.save_execution(JournalledExecution(execution.order.cycle_id, execution, cost))
        return execution
