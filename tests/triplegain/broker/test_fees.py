"""A fill's fee in whichever asset the exchange charged it: the balances lose it from that asset, a buy's
position is what it left held, and P&L counts the fee valued in the quote asset."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.triplegain.factories import AT
from triplegain.broker.orders import closed_position, moved_by_fill, opened_position
from triplegain.models.enums import Side
from triplegain.models.trading import Fill, TradeProposal

BALANCES = {"USDT": Decimal("1000"), "BTC": Decimal("0")}
PROPOSAL = TradeProposal(
    symbol="BTC/USDT",
    side=Side.BUY,
    size_usd=Decimal(500),
    entry_price=Decimal(50000),
    stop_loss=Decimal(49000),
    take_profit=Decimal(52000),
    confidence=0.8,
)


def fill(side: Side, fee: str, fee_asset: str) -> Fill:
    return Fill(
        client_order_id="o-1",
        symbol="BTC/USDT",
        side=side,
        price=Decimal("50000"),
        size=Decimal("0.01"),
        fee=Decimal(fee),
        fee_asset=fee_asset,
        slippage_pct=Decimal(0),
        filled_at=AT,
    )


@pytest.mark.parametrize(
    ("fee", "asset", "btc", "usdt", "in_quote"),
    [
        ("1.3", "USDT", "0.01", "498.7", "1.3"),  # Kraken with fciq, the paper broker
        ("0.000026", "BTC", "0.009974", "500", "1.30"),  # Binance's buys, Kraken's fcib
        ("0.002", "BNB", "0.01", "500", "0"),  # a third asset the books do not hold
    ],
)
def test_a_buys_fee_leaves_the_asset_it_was_charged_in(
    fee: str, asset: str, btc: str, usdt: str, in_quote: str
) -> None:
    bought = fill(Side.BUY, fee, asset)

    moved = moved_by_fill(BALANCES, bought)

    assert moved["BTC"] == Decimal(btc) and moved["USDT"] == Decimal(usdt)
    assert bought.fee_in_quote == Decimal(in_quote)
    position = opened_position(PROPOSAL, "o-1", bought, "cycle-1", AT)
    assert position.size == moved["BTC"]  # what the buy left held, all of it guarded
    assert position.fees_paid == Decimal(in_quote)


def test_an_exit_counts_a_fee_in_the_base_asset_at_its_price() -> None:
    bought = fill(Side.BUY, "0.000026", "BTC")
    position = opened_position(PROPOSAL, "o-1", bought, "cycle-1", AT)
    sold = fill(Side.SELL, "0.000026", "BTC").model_copy(update={"size": position.size})

    closed = closed_position(position, sold, position.size, AT, "take_profit")

    assert closed.fees_paid == Decimal("2.60")  # 1.30 in, 1.30 out, in USDT
    assert closed.realized_pnl == Decimal("-2.60")  # sold where it was bought: the fees are the loss
