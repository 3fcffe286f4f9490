"""One spot trade of a rebalance (a DCA batch), made on the desk after the symbols' own trades.

Only while the coordinator is RUNNING; never selling what open positions or hodl bags hold (a sell is cut
to what is free); through the risk engine's rebalance path, then the paper broker.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from triplegain.broker.paper import client_order_id
from triplegain.bus import Topic
from triplegain.desk import Desk
from triplegain.events import TradeApproved
from triplegain.models.enums import CoordinatorState, Intent, Side
from triplegain.models.trading import TradeProposal, split_symbol
from triplegain.rebalance import CENT, RebalanceTrade
from triplegain.risk.engine import evaluate_rebalance


async def make_rebalance_trade(desk: Desk, trade: RebalanceTrade) -> None:
    """Make one rebalance trade, or say in the report why it was not made."""
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
    size_usd = trade.amount_usd if trade.side is Side.BUY else await _sellable(desk, trade, price)
    if size_usd <= 0:
        return
    proposal = TradeProposal(
        symbol=symbol,
        side=trade.side,
        intent=Intent.REBALANCE,
        size_usd=size_usd,
        entry_price=price,
        confidence=1.0,
        regime="rebalance",
    )
    verdict = evaluate_rebalance(proposal, desk.risk)
    if not verdict.approved:
        await desk.rejected(symbol, verdict)
        return
    desk.update(symbol, verdict=verdict)
    await desk.publish(Topic.RISK_ALERTS, TradeApproved(symbol=symbol, verdict=verdict))
    order_id = client_order_id(desk.run_id, symbol, trade.side, Intent.REBALANCE)
    execution = desk.broker.rebalance(proposal, order_id, desk.run_id, price, desk.at)
    await desk.settle(execution)
    desk.update(symbol, execution=execution)


async def _sellable(desk: Desk, trade: RebalanceTrade, price: Decimal) -> Decimal:
    """The USD of a sell that is free to sell: what is held beyond the hodl bag and open positions."""
    base, _ = split_symbol(trade.symbol)
    held = desk.broker.balances.get(base, Decimal(0))
    reserved = desk.settings.portfolio.hodl.get(base, Decimal(0)) + sum(
        (p.size for p in desk.positions if p.symbol == trade.symbol), Decimal(0)
    )
    free_usd = max(held - reserved, Decimal(0)) * price
    if free_usd >= trade.amount_usd:
        return trade.amount_usd
    await desk.notice(
        f"rebalance sell of {trade.symbol} cut from {trade.amount_usd} to {free_usd:.2f} USD: "
        "the rest is held by open positions or the hodl bag"
    )
    return free_usd.quantize(CENT, ROUND_DOWN)
