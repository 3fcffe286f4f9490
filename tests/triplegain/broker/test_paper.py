from decimal import Decimal

import pytest

from tests.triplegain.factories import AT
from triplegain.broker import PaperBroker, client_order_id
from triplegain.models.enums import Intent, OrderStatus, PositionStatus, Side
from triplegain.models.trading import TradeProposal
from triplegain.settings import BrokerSettings, load_settings

SPECS = load_settings().market.symbol_specs
B = BrokerSettings()


def buy(usd: str = "1000", symbol: str = "BTC/USDT") -> TradeProposal:
    return TradeProposal(
        symbol=symbol,
        side=Side.BUY,
        size_usd=Decimal(usd),
        entry_price=Decimal(60000),
        stop_loss=Decimal(59000),
        take_profit=Decimal(62000),
        confidence=0.8,
    )


def broker(usdt: str = "10000") -> PaperBroker:
    return PaperBroker({"USDT": Decimal(usdt)}, B, SPECS)


def test_buy_fills_with_fee_and_bounded_adverse_slippage() -> None:
    b = broker()

    done = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)

    assert done.order.status is OrderStatus.FILLED and done.fill is not None
    assert Decimal(60000) * Decimal("1.0005") <= done.fill.price <= Decimal(60000) * Decimal("1.001")
    assert done.fill.size == Decimal("0.01666666")  # 1000 / 60000 rounded down to 8 decimals
    assert done.fill.fee == (done.fill.notional * Decimal("0.0026")).quantize(Decimal("0.00000001"))
    assert b.balances["USDT"] == Decimal(10000) - done.fill.notional - done.fill.fee
    assert b.balances["BTC"] == done.fill.size
    assert done.opened_position is not None and done.opened_position.id == "tg-1"


def test_slippage_is_seeded_by_order_id_and_reproducible() -> None:
    first = broker().open(buy(), "tg-a", "c", Decimal(60000), AT)
    again = broker().open(buy(), "tg-a", "c", Decimal(60000), AT)
    other = broker().open(buy(), "tg-b", "c", Decimal(60000), AT)

    assert first.fill == again.fill
    assert first.fill is not None and other.fill is not None and first.fill.price != other.fill.price


def test_retried_order_never_fills_twice() -> None:
    b = broker()

    first = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)
    second = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)

    assert second is first
    assert b.balances["BTC"] == first.fill.size  # type: ignore[union-attr]


def test_order_larger_than_the_balance_is_rejected_and_balances_untouched() -> None:
    b = broker("500")

    done = b.open(buy("1000"), "tg-1", "c1", Decimal(60000), AT)

    assert done.order.status is OrderStatus.REJECTED and done.fill is None
    assert done.order.reason is not None and "insufficient USDT" in done.order.reason
    assert b.balances == {"USDT": Decimal(500)}


def test_order_below_the_minimums_is_rejected() -> None:
    tiny_btc = broker().open(buy("5"), "tg-1", "c", Decimal(60000), AT)
    tiny_xrp = broker().open(buy("3", "XRP/USDT"), "tg-2", "c", Decimal("0.5"), AT)

    assert tiny_btc.order.status is OrderStatus.REJECTED and "minimum order size" in (
        tiny_btc.order.reason or ""
    )
    assert tiny_xrp.order.status is OrderStatus.REJECTED and "minimum order size 10" in (
        tiny_xrp.order.reason or ""
    )


def test_xrp_sizes_are_whole_coins() -> None:
    done = broker().open(buy("100", "XRP/USDT"), "tg-1", "c", Decimal("0.47"), AT)

    assert done.fill is not None and done.fill.size == Decimal(212)


def test_close_sells_with_slippage_and_realises_pnl_net_of_both_fees() -> None:
    b = broker()
    opened = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)
    assert opened.opened_position is not None

    closed = b.close([opened.opened_position], "tg-2", "c2", Decimal(61000), AT, "signal")

    assert closed.fill is not None and closed.fill.price < Decimal(61000)
    position = closed.closed_positions[0]
    gross = (closed.fill.price - opened.fill.price) * opened.fill.size  # type: ignore[union-attr]
    assert position.status is PositionStatus.CLOSED and position.close_reason == "signal"
    assert position.realized_pnl == (gross - opened.fill.fee - closed.fill.fee).quantize(
        Decimal("0.00000001")
    )  # type: ignore[union-attr]
    assert b.balances["BTC"] == 0
    assert closed.order.intent is Intent.CLOSE


def test_take_profit_fills_exactly_at_the_limit() -> None:
    b = broker()
    opened = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)

    closed = b.close(
        [opened.opened_position], "tg-2", "c2", Decimal(62000), AT, "take_profit", slippage=False
    )  # type: ignore[list-item]

    assert closed.fill is not None and closed.fill.price == Decimal(62000)


def test_selling_more_than_held_is_rejected() -> None:
    b = broker()
    opened = b.open(buy(), "tg-1", "c1", Decimal(60000), AT)
    assert opened.opened_position is not None
    bigger = opened.opened_position.model_copy(update={"size": Decimal(1)})

    done = b.close([bigger], "tg-2", "c2", Decimal(60000), AT, "signal")

    assert done.order.status is OrderStatus.REJECTED and "insufficient BTC" in (done.order.reason or "")


def test_client_order_id_is_stable_and_distinct() -> None:
    assert client_order_id("cycle-1", "BTC/USDT", "buy") == client_order_id("cycle-1", "BTC/USDT", "buy")
    assert client_order_id("cycle-1", "BTC/USDT", "buy") != client_order_id("cycle-2", "BTC/USDT", "buy")
    assert len(client_order_id("c", "x")) <= 40


@pytest.mark.parametrize("usdt", ["0", "9.99"])
def test_empty_account_cannot_buy(usdt: str) -> None:
    assert broker(usdt).open(buy("100"), "tg-1", "c", Decimal(60000), AT).order.status is OrderStatus.REJECTED


def test_reduce_sells_a_share_and_keeps_the_rest_open_with_its_share_of_fees() -> None:
    b = broker()
    opened = b.open(buy(), "tg-1", "c1", Decimal(60000), AT).opened_position
    assert opened is not None

    done = b.reduce(opened, Decimal(50), "tg-2", "c2", Decimal(61000), AT, "circuit_breaker")

    (rest,) = done.reduced_positions
    (sold,) = done.closed_positions
    assert done.order.status is OrderStatus.FILLED and sold.size + rest.size == opened.size
    assert sold.size == Decimal("0.00833333") and rest.id == opened.id and sold.id == "tg-2"
    assert sold.fees_paid - (done.fill.fee if done.fill else 0) + rest.fees_paid == opened.fees_paid
    assert b.balances["BTC"] == rest.size
    assert b.reduce(opened, Decimal(50), "tg-2", "c2", Decimal(61000), AT, "x") is done  # idempotent


def test_reduce_below_the_minimum_size_closes_the_whole_position() -> None:
    b = PaperBroker({"USDT": Decimal(1000)}, B, SPECS)
    opened = b.open(buy("15", "XRP/USDT"), "tg-1", "c1", Decimal(1), AT).opened_position
    assert opened is not None and opened.size == Decimal(15)  # half would be 7 XRP, under the 10 minimum

    done = b.reduce(opened, Decimal(50), "tg-2", "c2", Decimal(1), AT, "circuit_breaker")

    assert done.reduced_positions == [] and done.closed_positions[0].size == Decimal(15)
