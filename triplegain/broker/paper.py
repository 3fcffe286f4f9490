"""A paper broker for a spot account: balances, fees, seeded slippage, minimums, idempotent orders.

Market orders fill at once at the reference price moved against the trader by a slippage of up to
`max_slippage_pct` x U(min_slippage_factor, 1) (reference spec 4.7). The random draw is seeded by the
broker seed and the client order id, so the same order always fills at the same price, in any order.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from triplegain.models.cycle import Execution
from triplegain.models.enums import Intent, OrderStatus, PositionStatus, Side
from triplegain.models.trading import Fill, Order, Position, TradeProposal, split_symbol
from triplegain.settings import BrokerSettings, SymbolSpec

HUNDRED = Decimal(100)


def client_order_id(cycle_id: str, *parts: str) -> str:
    """A stable order id from the cycle and what the order is for: a retried run reuses it."""
    digest = hashlib.sha256("|".join((cycle_id, *parts)).encode()).hexdigest()[:24]
    return f"tg-{digest}"


class PaperBroker:
    """Executes approved proposals against in-memory balances; the caller persists the results."""

    protects_on_exchange = False  # the desk finds stop-loss and take-profit exits in the candles

    def __init__(
        self, balances: dict[str, Decimal], settings: BrokerSettings, specs: dict[str, SymbolSpec]
    ) -> None:
        self._balances = dict(balances)
        self._settings = settings
        self._specs = specs
        self._executed: dict[str, Execution] = {}
        self.urgent: list[str] = []  # a paper account meets nothing urgent
        self.follow_ups: list[Execution] = []

    @property
    def balances(self) -> dict[str, Decimal]:
        """A copy of the current balances."""
        return dict(self._balances)

    def exchange_exits(self, positions: Sequence[Position], at: datetime) -> list[Execution]:
        """Nothing rests on an exchange for a paper account."""
        return []

    def open(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """Buy `proposal.size_usd` worth of the base asset at market and open a long position."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        size = (proposal.size_usd / price).quantize(Decimal(1).scaleb(-spec.size_decimals), ROUND_DOWN)
        order = self._order(order_id, cycle_id, proposal.symbol, Side.BUY, Intent.OPEN, size, price, at)
        fill_price = self._slipped(order_id, price, Side.BUY, spec)
        problem = self._minimum_problem(size, fill_price, spec) or self._afford_problem(
            proposal.symbol, size * fill_price
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, fill_price, at)
        base, quote = split_symbol(proposal.symbol)
        self._balances[quote] -= fill.notional + fill.fee
        self._balances[base] = self._balances.get(base, Decimal(0)) + size
        position = Position(
            id=order_id,
            symbol=proposal.symbol,
            size=size,
            entry_price=fill.price,
            leverage=proposal.leverage,
            stop_loss=proposal.stop_loss,
            take_profit=proposal.take_profit,
            opened_at=at,
            fees_paid=fill.fee,
            cycle_id=cycle_id,
        )
        return self._remember(Execution(order=order, fill=fill, opened_position=position))

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
        """Sell the base asset of `positions` at market (or exactly at `price` for a resting limit)."""
        if order_id in self._executed:
            return self._executed[order_id]
        symbol = positions[0].symbol
        spec = self._specs[symbol]
        size = sum((p.size for p in positions), Decimal(0))
        order = self._order(
            order_id, cycle_id, symbol, Side.SELL, Intent.CLOSE, size, price, at, positions[0].id
        )
        base, quote = split_symbol(symbol)
        held = self._balances.get(base, Decimal(0))
        if held < size:
            problem = f"insufficient {base}: selling {size}, holding {held}"
            return self._remember(Execution(order=rejected(order, problem)))
        fill_price = self._slipped(order_id, price, Side.SELL, spec) if slippage else price
        fill = self._fill(order, fill_price, at)
        self._balances[base] = held - size
        self._balances[quote] = self._balances.get(quote, Decimal(0)) + fill.notional - fill.fee
        closed = [closed_position(p, fill, size, at, reason) for p in positions]
        return self._remember(Execution(order=order, fill=fill, closed_positions=closed))

    def rebalance(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """A spot trade that moves the allocation: buy or sell `size_usd` of the base asset, no position."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        base, quote = split_symbol(proposal.symbol)
        size = (proposal.size_usd / price).quantize(Decimal(1).scaleb(-spec.size_decimals), ROUND_DOWN)
        order = self._order(
            order_id, cycle_id, proposal.symbol, proposal.side, Intent.REBALANCE, size, price, at
        )
        fill_price = self._slipped(order_id, price, proposal.side, spec)
        problem = self._minimum_problem(size, fill_price, spec)
        if problem is None and proposal.side is Side.BUY:
            problem = self._afford_problem(proposal.symbol, size * fill_price)
        if problem is None and proposal.side is Side.SELL and self._balances.get(base, Decimal(0)) < size:
            problem = f"insufficient {base}: selling {size}, holding {self._balances.get(base, Decimal(0))}"
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, fill_price, at)
        sign = 1 if proposal.side is Side.BUY else -1
        self._balances[base] = self._balances.get(base, Decimal(0)) + sign * size
        self._balances[quote] = self._balances.get(quote, Decimal(0)) - sign * fill.notional - fill.fee
        return self._remember(Execution(order=order, fill=fill))

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
        """Sell `pct` percent of a position at market; the rest stays open with its share of the entry fee.

        When the part sold or the part left would be below the symbol's minimum order size, the whole
        position is closed instead: a breaker asking for less risk never gets none.
        """
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[position.symbol]
        step = Decimal(1).scaleb(-spec.size_decimals)
        sold = (position.size * pct / HUNDRED).quantize(step, ROUND_DOWN)
        if sold >= position.size or min(sold, position.size - sold) < spec.min_order_size:
            return self.close([position], order_id, cycle_id, price, at, reason)
        base, quote = split_symbol(position.symbol)
        order = self._order(
            order_id, cycle_id, position.symbol, Side.SELL, Intent.CLOSE, sold, price, at, position.id
        )
        held = self._balances.get(base, Decimal(0))
        if held < sold:
            problem = f"insufficient {base}: selling {sold}, holding {held}"
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, self._slipped(order_id, price, Side.SELL, spec), at)
        self._balances[base] = held - sold
        self._balances[quote] = self._balances.get(quote, Decimal(0)) + fill.notional - fill.fee
        closed, rest = _split(position, sold, order_id, fill, at, reason)
        return self._remember(
            Execution(order=order, fill=fill, closed_positions=[closed], reduced_positions=[rest])
        )

    def _slipped(self, order_id: str, price: Decimal, side: Side, spec: SymbolSpec) -> Decimal:
        s = self._settings
        draw = random.Random(f"{s.seed}:{order_id}").uniform(float(s.min_slippage_factor), 1.0)
        pct = s.max_slippage_pct * Decimal(repr(draw))
        moved = price * (1 + pct / HUNDRED) if side is Side.BUY else price * (1 - pct / HUNDRED)
        return moved.quantize(Decimal(1).scaleb(-spec.price_decimals), ROUND_HALF_EVEN)

    def _minimum_problem(self, size: Decimal, price: Decimal, spec: SymbolSpec) -> str | None:
        return minimum_problem(size, price, spec, self._settings)

    def _afford_problem(self, symbol: str, notional: Decimal) -> str | None:
        return afford_problem(self._balances, symbol, notional, self._settings)

    def _order(
        self,
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
            status=OrderStatus.FILLED,
            created_at=at,
            position_id=position_id,
        )

    def _fill(self, order: Order, price: Decimal, at: datetime) -> Fill:
        _, quote = split_symbol(order.symbol)
        fee = (price * order.size * self._settings.fee_pct / HUNDRED).quantize(Decimal("0.00000001"))
        slippage = abs(price - order.reference_price) / order.reference_price * HUNDRED
        return Fill(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            size=order.size,
            fee=fee,
            fee_asset=quote,
            slippage_pct=slippage.quantize(Decimal("0.000001")),
            filled_at=at,
        )

    def _remember(self, execution: Execution) -> Execution:
        self._executed[execution.order.client_order_id] = execution
        return execution


def _split(
    position: Position, sold: Decimal, order_id: str, fill: Fill, at: datetime, reason: str
) -> tuple[Position, Position]:
    """The part of a position sold (closed, under the order's id) and the rest that stays open, each with
    its share of the entry fee."""
    entry_fee = (position.fees_paid * (sold / position.size)).quantize(Decimal("0.00000001"))
    part = position.model_copy(update={"id": order_id, "size": sold, "fees_paid": entry_fee})
    rest = position.model_copy(
        update={"size": position.size - sold, "fees_paid": position.fees_paid - entry_fee}
    )
    return closed_position(part, fill, sold, at, reason), rest


def minimum_problem(size: Decimal, price: Decimal, spec: SymbolSpec, settings: BrokerSettings) -> str | None:
    """Why an order of `size` at `price` is below the symbol's or the account's minimum, or None (paper and
    live check the same minimums before any order)."""
    if size < spec.min_order_size:
        return f"size {size} below the minimum order size {spec.min_order_size}"
    if size * price < settings.min_notional_usd:
        return f"notional {size * price:.2f} below the minimum {settings.min_notional_usd}"
    return None


def afford_problem(
    balances: dict[str, Decimal], symbol: str, notional: Decimal, settings: BrokerSettings
) -> str | None:
    """Why the quote balance cannot pay for `notional` with fees, or None."""
    _, quote = split_symbol(symbol)
    needed = notional * (1 + settings.fee_pct / HUNDRED)
    available = balances.get(quote, Decimal(0))
    if needed > available:
        return f"insufficient {quote}: order needs {needed:.2f} with fees, balance is {available:.2f}"
    return None


def rejected(order: Order, reason: str) -> Order:
    """The order refused, with why."""
    return order.model_copy(update={"status": OrderStatus.REJECTED, "reason": reason})


def closed_position(
    position: Position, fill: Fill, total_size: Decimal, at: datetime, reason: str
) -> Position:
    """`position` closed by its share of `fill` (of `total_size` in all): exit price, fees and P&L."""
    share = position.size / total_size
    exit_fee = fill.fee * share
    pnl = (fill.price - position.entry_price) * position.size - position.fees_paid - exit_fee
    return position.model_copy(
        update={
            "status": PositionStatus.CLOSED,
            "closed_at": at,
            "exit_price": fill.price,
            "realized_pnl": pnl.quantize(Decimal("0.00000001")),
            "fees_paid": position.fees_paid + exit_fee,
            "close_reason": reason,
        }
    )
