"""The paper broker's interface on a live exchange account (issue 16, part 1; the cycle does not use it yet).

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
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from triplegain.broker.live import LiveBroker, OrderIntent, OrderState
from triplegain.broker.paper import afford_problem, closed_position, minimum_problem, rejected
from triplegain.broker.protection import Protection, ProtectionDesk, ProtectionFailed
from triplegain.models.cycle import Execution
from triplegain.models.enums import Intent, OrderStatus, Side
from triplegain.models.trading import Fill, Order, Position, TradeProposal, split_symbol
from triplegain.settings import BrokerSettings, SymbolSpec

HUNDRED = Decimal(100)
FILLED = (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED)


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
        size = _sized(proposal.size_usd / price, spec)
        order = _order(order_id, cycle_id, proposal.symbol, Side.BUY, Intent.OPEN, size, price, at)
        problem = self._minimum_problem(size, price, spec) or self._afford_problem(
            proposal.symbol, size * price
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        state = self._market(order, "open")
        if state.filled <= 0:  # a cancelled remainder still traded what filled
            return self._remember(Execution(order=_as(order, state)))
        fill = self._settle(order, state, at)
        position = Position(
            id=order_id,
            symbol=proposal.symbol,
            size=fill.size,
            entry_price=fill.price,
            leverage=proposal.leverage,
            stop_loss=proposal.stop_loss,
            take_profit=proposal.take_profit,
            opened_at=at,
            fees_paid=fill.fee,
            cycle_id=cycle_id,
        )
        execution = self._remember(
            Execution(order=_as(order, state, fill.size), fill=fill, opened_position=position)
        )
        self._protect(position, cycle_id, price, at)
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
        order = _order(order_id, cycle_id, symbol, Side.SELL, Intent.CLOSE, size, price, at, positions[0].id)
        base, _ = split_symbol(symbol)
        held = self._balances.get(base, Decimal(0))
        if held < size:
            return self._remember(
                Execution(order=rejected(order, f"insufficient {base}: selling {size}, holding {held}"))
            )
        state = self._market(order, "close")
        if state.filled <= 0:  # a cancelled remainder still traded what filled
            return self._remember(Execution(order=_as(order, state)))
        fill = self._settle(order, state, at)
        closed = [closed_position(p, fill, size, at, reason) for p in positions]
        return self._remember(
            Execution(order=_as(order, state, fill.size), fill=fill, closed_positions=closed)
        )

    def rebalance(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """A spot trade that moves the allocation: buy or sell `size_usd` of the base asset, no position."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        base, _ = split_symbol(proposal.symbol)
        size = _sized(proposal.size_usd / price, spec)
        order = _order(order_id, cycle_id, proposal.symbol, proposal.side, Intent.REBALANCE, size, price, at)
        problem = self._minimum_problem(size, price, spec)
        if problem is None and proposal.side is Side.BUY:
            problem = self._afford_problem(proposal.symbol, size * price)
        if problem is None and proposal.side is Side.SELL and self._balances.get(base, Decimal(0)) < size:
            problem = f"insufficient {base}: selling {size}, holding {self._balances.get(base, Decimal(0))}"
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        state = self._market(order, "rebalance")
        if state.filled <= 0:  # a cancelled remainder still traded what filled
            return self._remember(Execution(order=_as(order, state)))
        fill = self._settle(order, state, at)
        return self._remember(Execution(order=_as(order, state, fill.size), fill=fill))

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
        spec = self._specs[position.symbol]
        sold = _sized(position.size * pct / HUNDRED, spec)
        if sold >= position.size or min(sold, position.size - sold) < spec.min_order_size:
            return self.close([position], order_id, cycle_id, price, at, reason)
        protection = self.protections.get(position.id)
        if protection is not None:  # a sell of part of it needs the asset the stop would sell
            self.protection.release(protection)
        order = _order(
            order_id, cycle_id, position.symbol, Side.SELL, Intent.CLOSE, sold, price, at, position.id
        )
        state = self._market(order, "reduce")
        if state.filled <= 0:  # a cancelled remainder still traded what filled
            if protection is not None:
                self._protect(position, cycle_id, price, at, protection.generation + 1)
            return self._remember(Execution(order=_as(order, state)))
        fill = self._settle(order, state, at)
        part = position.model_copy(update={"id": order_id, "size": fill.size})
        share = (position.fees_paid * (fill.size / position.size)).quantize(Decimal("0.00000001"))
        part = part.model_copy(update={"fees_paid": share})
        rest = position.model_copy(
            update={"size": position.size - fill.size, "fees_paid": position.fees_paid - share}
        )
        if protection is not None:
            self._protect(rest, cycle_id, price, at, protection.generation + 1)
        return self._remember(
            Execution(
                order=_as(order, state, fill.size),
                fill=fill,
                closed_positions=[closed_position(part, fill, fill.size, at, reason)],
                reduced_positions=[rest],
            )
        )

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
            del self.protections[position.id]
            fill = outcome.fills[0].model_copy(update={"filled_at": at})
            base, quote = split_symbol(position.symbol)
            self._balances[base] = self._balances.get(base, Decimal(0)) - fill.size
            fee = fill.fee if fill.fee_asset == quote else Decimal(0)
            done = outcome.protection.stop if outcome.closed_by == "stop_loss" else outcome.protection.take
            cost = done.cost or fill.notional  # the exchange's own figure
            self._balances[quote] = self._balances.get(quote, Decimal(0)) + cost - fee
            order = _order(
                fill.client_order_id,
                position.cycle_id,
                position.symbol,
                Side.SELL,
                Intent.CLOSE,
                fill.size,
                fill.price,
                at,
                position.id,
            ).model_copy(update={"status": OrderStatus.FILLED})
            closed = closed_position(position, fill, fill.size, at, outcome.closed_by)
            executions.append(Execution(order=order, fill=fill, closed_positions=[closed]))
        return executions

    # --- underneath -------------------------------------------------------------------------------------
    def _market(self, order: Order, purpose: str) -> OrderState:
        """The order at market through the live broker; what did not fill of it is cancelled."""
        intent = OrderIntent(
            client_id=exchange_client_id(order.client_order_id),
            cycle_id=order.cycle_id,
            symbol=order.symbol,
            side=order.side,
            type="market",
            amount=order.size,
            purpose=purpose,
        )
        state = self.live.submit(intent)
        if state.status is OrderStatus.PARTIALLY_FILLED or state.status is OrderStatus.OPEN:
            state = self.live.cancel(state)
        return state

    def _settle(self, order: Order, state: OrderState, at: datetime) -> Fill:
        """The fill of what filled, the balances moved by it."""
        base, quote = split_symbol(order.symbol)
        price = state.average_price or order.reference_price
        fill = Fill(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            size=state.filled,
            fee=state.fee,
            fee_asset=state.fee_asset or quote,
            slippage_pct=(abs(price - order.reference_price) / order.reference_price * HUNDRED).quantize(
                Decimal("0.000001")
            ),
            filled_at=at,
        )
        sign = 1 if order.side is Side.BUY else -1
        self._balances[base] = self._balances.get(base, Decimal(0)) + sign * fill.size
        fee_in_quote = fill.fee if fill.fee_asset == quote else Decimal(0)
        cost = state.cost or fill.notional  # the exchange's own figure, so the books match its balances
        self._balances[quote] = self._balances.get(quote, Decimal(0)) - sign * cost - fee_in_quote
        return fill

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
            self.urgent.append(str(e))
            for placed in e.placed:
                self.live.cancel(placed)
            if self.close_unprotected:
                closing = self.close(
                    [position], f"{position.id}-unprotected", cycle_id, price, at, "unprotected"
                )
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

    def _minimum_problem(self, size: Decimal, price: Decimal, spec: SymbolSpec) -> str | None:
        return minimum_problem(size, price, spec, self._settings)

    def _afford_problem(self, symbol: str, notional: Decimal) -> str | None:
        return afford_problem(self._balances, symbol, notional, self._settings)

    def _remember(self, execution: Execution) -> Execution:
        self._executed[execution.order.client_order_id] = execution
        return execution


def _sized(size: Decimal, spec: SymbolSpec) -> Decimal:
    return size.quantize(Decimal(1).scaleb(-spec.size_decimals), ROUND_DOWN)


def _order(
    order_id: str,
    cycle_id: str,
    symbol: str,
    side: Side,
    intent: Intent,
    size: Decimal,
    price: Decimal,
    at: datetime,
    position_id: str | None = None,
) -> Order:
    return Order(
        client_order_id=order_id,
        cycle_id=cycle_id,
        symbol=symbol,
        side=side,
        intent=intent,
        size=size,
        reference_price=price,
        status=OrderStatus.PENDING,
        created_at=at,
        position_id=position_id,
    )


def _as(order: Order, state: OrderState, filled: Decimal | None = None) -> Order:
    """The order with the exchange's outcome: filled (the size is what filled) or why not."""
    if filled is not None:
        return order.model_copy(update={"status": OrderStatus.FILLED, "size": filled})
    reason = state.note or f"the exchange left it {state.status} with nothing filled"
    return order.model_copy(update={"status": state.status, "reason": reason})
