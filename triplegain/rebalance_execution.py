"""Spot trades of the allocation, made on the desk after the symbols' own trades: a DCA batch's trades, and
the sells that keep each asset under its exposure ceiling (`triplegain.exposure`).

A DCA trade is made only while the coordinator is RUNNING, and a buy never past the asset's ceiling. A
ceiling sell is made whatever the coordinator's state (it only ever reduces risk): that is how the drawdown
limit holds, and how the max-drawdown breaker sells the allocation. Neither ever sells what open positions
or hodl bags hold (a sell is cut to what is free); both go through the risk engine's rebalance path, then
the paper broker.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from triplegain.broker.paper import client_order_id
from triplegain.bus import Topic
from triplegain.desk import Desk
from triplegain.events import TradeApproved
from triplegain.exposure import HUNDRED, Ceilings
from triplegain.hodl import due_purchases, record_purchase
from triplegain.models.cycle import Execution
from triplegain.models.enums import CoordinatorState, Intent, Side
from triplegain.models.trading import QUOTE, TradeProposal, split_symbol
from triplegain.rebalance import CENT, Allocation, RebalanceTrade, allocation
from triplegain.risk.engine import evaluate_rebalance

CEILING_TAG = "exposure-ceiling"
HODL_TAG = "hodl-bag"


async def make_rebalance_trade(desk: Desk, trade: RebalanceTrade, ceilings: Ceilings) -> None:
    """Make one DCA trade, or say in the report why it was not made (or made smaller)."""
    symbol = trade.symbol
    if desk.state is not CoordinatorState.RUNNING:
        await desk.notice(
            f"rebalance {trade.side} {trade.amount_usd} USD of {symbol} not made: coordinator is {desk.state}"
        )
        return
    price = desk.prices.get(symbol)
    if price is None:
        await desk.notice(f"rebalance {trade.side} of {symbol} not made: no price this run")
        return
    if trade.side is Side.BUY:
        size_usd = _room(desk, trade, ceilings)
        if size_usd < trade.amount_usd:
            await desk.notice(
                f"rebalance buy of {symbol} cut from {trade.amount_usd} to {size_usd:.2f} USD: "
                f"{ceilings.explain(split_symbol(symbol)[0])}"
            )
    else:
        size_usd = await _sellable(desk, symbol, trade.amount_usd, price)
    await _spot_trade(desk, symbol, trade.side, size_usd, price, Intent.REBALANCE.value)


async def hold_to_ceilings(desk: Desk, ceilings: Ceilings) -> None:
    """Sell what each asset holds above its ceiling once the excess reaches the drift threshold times the
    drawdown scale (so near the bound, and at a ceiling of 0, any excess), whatever the coordinator's
    state."""
    portfolio = desk.settings.portfolio
    unvalued = _unvalued(desk)
    if unvalued:
        await desk.notice(f"exposure ceilings not checked: no price for {', '.join(unvalued)} this run")
        return
    current = _allocation(desk)
    for line in current.assets:
        if line.asset == QUOTE:
            continue
        ceiling = ceilings.pct.get(line.asset, line.target_pct)
        excess_usd = line.value_usd - ceiling * current.equity_usd / HUNDRED
        # The tolerance shrinks with the drawdown scale: near the bound every excess is sold.
        tolerance = portfolio.drift_threshold_pct * ceilings.drawdown_scale
        due = line.pct - ceiling >= tolerance and line.amount > 0
        if not due or excess_usd < portfolio.min_trade_usd:
            continue
        symbol = f"{line.asset}/{QUOTE}"
        await desk.notice(f"{symbol}: selling {excess_usd:.2f} USD above the {ceilings.explain(line.asset)}")
        amount = await _sellable(desk, symbol, excess_usd.quantize(CENT, ROUND_DOWN), line.price)
        await _spot_trade(desk, symbol, Side.SELL, amount, line.price, CEILING_TAG)


async def buy_hodl_bags(desk: Desk) -> None:
    """Buy what the hodl bags put aside once it reaches each asset's threshold (USDT is simply held); only
    while the coordinator RUNS, and through the risk engine's rebalance path like any spot buy."""
    for asset, usd in due_purchases(desk.hodl, desk.settings.hodl).items():
        if asset == QUOTE:
            desk.hodl, entry = record_purchase(desk.hodl, asset, usd, usd, Decimal(1), desk.at)
            desk.hodl_entries.append(entry)
            continue
        symbol, price = f"{asset}/{QUOTE}", desk.prices.get(f"{asset}/{QUOTE}")
        if desk.state is not CoordinatorState.RUNNING or price is None:
            why = f"coordinator is {desk.state}" if price is not None else "no price this run"
            await desk.notice(f"hodl bag: buying {usd:.2f} USD of {asset} waits ({why})")
            continue
        execution = await _spot_trade(desk, symbol, Side.BUY, usd.quantize(CENT, ROUND_DOWN), price, HODL_TAG)
        fill = execution.fill if execution is not None else None
        if fill is None:
            continue
        bought, paid = fill.size - fill.fee_in_base, fill.notional + fill.fee_in_quote
        desk.hodl, entry = record_purchase(desk.hodl, asset, paid, bought, fill.price, desk.at)
        desk.hodl_entries.append(entry)
        desk.notes.append(f"hodl bag: bought {bought} {asset} for {paid:.2f} USD")


def _unpriced(desk: Desk) -> list[str]:
    """Target assets without a price this run."""
    targets = desk.settings.portfolio.target_pct
    return [a for a in targets if a != QUOTE and f"{a}/{QUOTE}" not in desk.prices]


def _unvalued(desk: Desk) -> list[str]:
    """Target assets held without a price this run: with any, the allocation cannot be valued."""
    return [a for a in _unpriced(desk) if desk.broker.balances.get(a, Decimal(0)) > 0]


def _allocation(desk: Desk) -> Allocation:
    """The allocation now (call when nothing is `_unvalued`): an asset not held is worth nothing whatever
    its price, so it needs none."""
    prices = desk.prices | {f"{a}/{QUOTE}": Decimal(1) for a in _unpriced(desk)}
    return allocation(desk.broker.balances, prices, desk.positions, desk.portfolio_settings())


def _room(desk: Desk, trade: RebalanceTrade, ceilings: Ceilings) -> Decimal:
    """How much of a DCA buy fits under the asset's ceiling (all of it when the allocation cannot be
    valued this run)."""
    if _unvalued(desk):
        return trade.amount_usd
    base, _ = split_symbol(trade.symbol)
    current = _allocation(desk)
    line = current.asset(base)
    room = ceilings.pct.get(base, line.target_pct) * current.equity_usd / HUNDRED - line.value_usd
    return max(Decimal(0), min(trade.amount_usd, room.quantize(CENT, ROUND_DOWN)))


async def _spot_trade(
    desk: Desk, symbol: str, side: Side, size_usd: Decimal, price: Decimal, tag: str
) -> Execution | None:
    """One spot trade of the allocation through the risk engine's rebalance path and the broker; its
    execution, or None when none was sent."""
    if size_usd <= 0:
        return None
    proposal = TradeProposal(
        symbol=symbol,
        side=side,
        intent=Intent.REBALANCE,
        size_usd=size_usd,
        entry_price=price,
        confidence=1.0,
        regime="rebalance",
    )
    verdict = evaluate_rebalance(proposal, desk.risk)
    if not verdict.approved:
        if symbol in desk.outcomes:
            await desk.rejected(symbol, verdict)
        else:
            await desk.notice(f"{symbol}: {side} of {size_usd} USD refused: {verdict.rejections[0].message}")
        return None
    if symbol in desk.outcomes:
        desk.update(symbol, verdict=verdict)
    await desk.publish(Topic.RISK_ALERTS, TradeApproved(symbol=symbol, verdict=verdict))
    order_id = client_order_id(desk.run_id, symbol, side, tag)
    execution = desk.broker.rebalance(proposal, order_id, desk.run_id, price, desk.at)
    await desk.settle(execution)
    if symbol in desk.outcomes:  # beside the symbol's own trade, never in its place
        done = desk.outcomes[symbol].allocation_trades
        desk.update(symbol, allocation_trades=[*done, execution])
    return execution


async def _sellable(desk: Desk, symbol: str, amount_usd: Decimal, price: Decimal) -> Decimal:
    """The USD of a sell that is free to sell: what is held beyond the hodl bag and open positions."""
    base, _ = split_symbol(symbol)
    held = desk.broker.balances.get(base, Decimal(0))
    reserved = desk.reserved().get(base, Decimal(0)) + sum(
        (p.size for p in desk.positions if p.symbol == symbol), Decimal(0)
    )
    free_usd = max(held - reserved, Decimal(0)) * price
    if free_usd >= amount_usd:
        return amount_usd
    await desk.notice(
        f"rebalance sell of {symbol} cut from {amount_usd} to {free_usd:.2f} USD: "
        "the rest is held by open positions or the hodl bag"
    )
    return free_usd.quantize(CENT, ROUND_DOWN)
