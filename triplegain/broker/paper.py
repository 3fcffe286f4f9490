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
from decimal import ROUND_HALF_EVEN, Decimal

from triplegain.broker.orders import (
    HUNDRED,
    closed_position,
    holding_problem,
    moved_by_fill,
    opened_position,
    part_to_sell,
    rejected,
    sell_order,
    split_position,
    spot_order,
    trade_problem,
)
from triplegain.models.cycle import Execution
from triplegain.models.enums import Intent, OrderStatus, Side
from triplegain.models.trading import Fill, Order, Position, TradeProposal, split_symbol
from triplegain.settings import BrokerSettings, SymbolSpec


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

    def move_stop(
        self, position: Position, stop: Decimal, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution | None:
        """Nothing rests on an exchange for a paper account: its stop is the books' (the desk moves it)."""
        return None

    def open(
        self, proposal: TradeProposal, order_id: str, cycle_id: str, price: Decimal, at: datetime
    ) -> Execution:
        """Buy `proposal.size_usd` worth of the base asset at market and open a long position."""
        if order_id in self._executed:
            return self._executed[order_id]
        spec = self._specs[proposal.symbol]
        order = spot_order(
            proposal, Side.BUY, Intent.OPEN, order_id, cycle_id, price, at, spec, status=OrderStatus.FILLED
        )
        fill_price = self._slipped(order_id, price, Side.BUY, spec)
        problem = trade_problem(
            self._balances, proposal.symbol, Side.BUY, order.size, fill_price, spec, self._settings
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, fill_price, at)
        position = opened_position(proposal, order_id, fill, cycle_id, at)
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
        order = sell_order(positions[0], size, order_id, cycle_id, price, at, status=OrderStatus.FILLED)
        problem = holding_problem(self._balances, split_symbol(symbol)[0], size)
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill_price = self._slipped(order_id, price, Side.SELL, spec) if slippage else price
        fill = self._fill(order, fill_price, at)
        closed = [closed_position(p, fill, size, at, reason) for p in positions]
        return self._remember(Execution(order=order, fill=fill, closed_positions=closed))

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
            status=OrderStatus.FILLED,
        )
        fill_price = self._slipped(order_id, price, proposal.side, spec)
        problem = trade_problem(
            self._balances, proposal.symbol, proposal.side, order.size, fill_price, spec, self._settings
        )
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, fill_price, at)
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
        sold = part_to_sell(position, pct, spec)
        if sold is None:
            return self.close([position], order_id, cycle_id, price, at, reason)
        order = sell_order(position, sold, order_id, cycle_id, price, at, status=OrderStatus.FILLED)
        problem = holding_problem(self._balances, split_symbol(position.symbol)[0], sold)
        if problem:
            return self._remember(Execution(order=rejected(order, problem)))
        fill = self._fill(order, self._slipped(order_id, price, Side.SELL, spec), at)
        closed, rest = split_position(position, sold, order_id, fill, at, reason)
        return self._remember(
            Execution(order=order, fill=fill, closed_positions=[closed], reduced_positions=[rest])
        )

    def _slipped(self, order_id: str, price: Decimal, side: Side, spec: SymbolSpec) -> Decimal:
        s = self._settings
        draw = random.Random(f"{s.seed}:{order_id}").uniform(float(s.min_slippage_factor), 1.0)
        pct = s.max_slippage_pct * Decimal(repr(draw))
        moved = price * (1 + pct / HUNDRED) if side is Side.BUY else price * (1 - pct / HUNDRED)
        return moved.quantize(Decimal(1).scaleb(-spec.price_decimals), ROUND_HALF_EVEN)

    def _fill(self, order: Order, price: Decimal, at: datetime) -> Fill:
        """The order filled at `price` with the paper fee, the balances moved by it."""
        _, quote = split_symbol(order.symbol)
        fee = (price * order.size * self._settings.fee_pct / HUNDRED).quantize(Decimal("0.00000001"))
        slippage = abs(price - order.reference_price) / order.reference_price * HUNDRED
        fill = Fill(
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
        self._balances = moved_by_fill(self._balances, fill)
        return fill

    def _remember(self, execution: Execution) -> Execution:
        self._executed[execution.order.client_order_id] = execution
        return execution
