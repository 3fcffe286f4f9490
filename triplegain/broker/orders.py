"""What the paper broker and the exchange broker share: how an order is sized, checked and written, how a
fill moves the balances, and how it opens, splits and closes a position (and what is open after it). Each
broker differs only in how an order fills."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from triplegain.models.cycle import Execution
from triplegain.models.enums import Intent, OrderStatus, PositionStatus, Side
from triplegain.models.trading import Fill, Order, Position, TradeProposal, split_symbol
from triplegain.settings import BrokerSettings, SymbolSpec

HUNDRED = Decimal(100)
EIGHT_PLACES = Decimal("0.00000001")


def round_size(quantity: Decimal, spec: SymbolSpec) -> Decimal:
    """A base-asset quantity rounded down to the symbol's size step."""
    return quantity.quantize(Decimal(1).scaleb(-spec.size_decimals), ROUND_DOWN)


def new_order(
    order_id: str,
    cycle_id: str,
    symbol: str,
    side: Side,
    intent: Intent,
    size: Decimal,
    price: Decimal,
    at: datetime,
    position_id: str | None = None,
    *,
    status: OrderStatus,
) -> Order:
    """An order at reference `price`, in `status` (a paper order is written filled, a live one pending
    until the exchange answers)."""
    return Order(
        client_order_id=order_id,
        cycle_id=cycle_id,
        symbol=symbol,
        side=side,
        intent=intent,
        size=size,
        reference_price=price,
        status=status,
        created_at=at,
        position_id=position_id,
    )


def spot_order(
    proposal: TradeProposal,
    side: Side,
    intent: Intent,
    order_id: str,
    cycle_id: str,
    price: Decimal,
    at: datetime,
    spec: SymbolSpec,
    *,
    status: OrderStatus,
) -> Order:
    """An order for `proposal.size_usd` worth of the base asset at reference `price`, its size rounded down
    to the symbol's size step (an entry, or a rebalance of the allocation)."""
    size = round_size(proposal.size_usd / price, spec)
    return new_order(order_id, cycle_id, proposal.symbol, side, intent, size, price, at, status=status)


def sell_order(
    position: Position,
    size: Decimal,
    order_id: str,
    cycle_id: str,
    price: Decimal,
    at: datetime,
    *,
    status: OrderStatus,
) -> Order:
    """An order selling `size` of what `position` holds at reference `price` (all of it, or a part)."""
    return new_order(
        order_id,
        cycle_id,
        position.symbol,
        Side.SELL,
        Intent.CLOSE,
        size,
        price,
        at,
        position.id,
        status=status,
    )


def part_to_sell(position: Position, pct: Decimal, spec: SymbolSpec) -> Decimal | None:
    """`pct` percent of the position, rounded down to the size step; None when the part sold or the part left
    would fall below the symbol's minimum order size: then the whole position is closed instead (a breaker
    asking for less risk never gets none)."""
    sold = round_size(position.size * pct / HUNDRED, spec)
    if sold >= position.size or min(sold, position.size - sold) < spec.min_order_size:
        return None
    return sold


def rejected(order: Order, reason: str) -> Order:
    """The order refused, with why."""
    return order.model_copy(update={"status": OrderStatus.REJECTED, "reason": reason})


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


def holding_problem(balances: dict[str, Decimal], asset: str, size: Decimal) -> str | None:
    """Why `size` of `asset` cannot be sold from `balances`, or None."""
    held = balances.get(asset, Decimal(0))
    return f"insufficient {asset}: selling {size}, holding {held}" if held < size else None


def trade_problem(
    balances: dict[str, Decimal],
    symbol: str,
    side: Side,
    size: Decimal,
    price: Decimal,
    spec: SymbolSpec,
    settings: BrokerSettings,
) -> str | None:
    """Why a spot trade of `size` at `price` cannot be made, or None: below a minimum, then a buy the quote
    balance cannot pay for with fees, or a sale of more than is held."""
    problem = minimum_problem(size, price, spec, settings)
    if problem is None and side is Side.BUY:
        problem = afford_problem(balances, symbol, size * price, settings)
    if problem is None and side is Side.SELL:
        problem = holding_problem(balances, split_symbol(symbol)[0], size)
    return problem


def moved_by_fill(balances: dict[str, Decimal], fill: Fill, cost: Decimal = Decimal(0)) -> dict[str, Decimal]:
    """The balances after `fill`: valued at the exchange's own `cost` of it when it gave one (the books then
    match its balances), else at its notional; the fee taken from the asset it was charged in."""
    base, quote = split_symbol(fill.symbol)
    sign = 1 if fill.side is Side.BUY else -1
    charged_in_quote = fill.fee if fill.fee_asset == quote else Decimal(0)  # not `fill.fee_in_quote`: valued
    moved = dict(balances)
    moved[base] = moved.get(base, Decimal(0)) + sign * fill.size - fill.fee_in_base
    moved[quote] = moved.get(quote, Decimal(0)) - sign * (cost or fill.notional) - charged_in_quote
    return moved


def positions_after(positions: Iterable[Position], executions: Iterable[Execution]) -> list[Position]:
    """The open positions once `executions` are applied, in order: those they opened added, those they
    reduced resized, those they closed gone."""
    open_now = list(positions)
    for e in executions:
        if e.opened_position is not None:
            open_now.append(e.opened_position)
        reduced = {p.id: p for p in e.reduced_positions}
        closed = {p.id for p in e.closed_positions}
        open_now = [reduced.get(p.id, p) for p in open_now if p.id not in closed]
    return open_now


def opened_position(
    proposal: TradeProposal, order_id: str, fill: Fill, cycle_id: str, at: datetime
) -> Position:
    """The long position a filled buy opens, under the order's id: what the buy left held (its size less a
    fee taken in the base asset), its fee valued in the quote asset."""
    return Position(
        id=order_id,
        symbol=proposal.symbol,
        size=fill.size - fill.fee_in_base,
        entry_price=fill.price,
        leverage=proposal.leverage,
        stop_loss=proposal.stop_loss,
        take_profit=proposal.take_profit,
        opened_at=at,
        fees_paid=fill.fee_in_quote,
        cycle_id=cycle_id,
    )


def split_position(
    position: Position, sold: Decimal, order_id: str, fill: Fill, at: datetime, reason: str
) -> tuple[Position, Position]:
    """The part of a position sold (closed, under the order's id) and the rest that stays open, each with
    its share of the entry fee."""
    entry_fee = (position.fees_paid * (sold / position.size)).quantize(EIGHT_PLACES)
    part = position.model_copy(update={"id": order_id, "size": sold, "fees_paid": entry_fee})
    rest = position.model_copy(
        update={"size": position.size - sold, "fees_paid": position.fees_paid - entry_fee}
    )
    return closed_position(part, fill, sold, at, reason), rest


def closed_position(
    position: Position, fill: Fill, total_size: Decimal, at: datetime, reason: str
) -> Position:
    """`position` closed by its share of `fill` (of `total_size` in all): exit price, fees and P&L."""
    share = position.size / total_size
    exit_fee = fill.fee_in_quote * share
    pnl = (fill.price - position.entry_price) * position.size - position.fees_paid - exit_fee
    return position.model_copy(
        update={
            "status": PositionStatus.CLOSED,
            "closed_at": at,
            "exit_price": fill.price,
            "realized_pnl": pnl.quantize(EIGHT_PLACES),
            "fees_paid": position.fees_paid + exit_fee,
            "close_reason": reason,
        }
    )
