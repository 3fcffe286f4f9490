"""One contract, two brokers: the paper broker and the exchange broker on the fake Kraken answer the desk's
calls with the same kind of `Execution`, so nothing above them needs to know which one trades."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.fakes.kraken import FakeKraken
from tests.triplegain.factories import AT
from triplegain.broker import PaperBroker
from triplegain.broker.exchange import ExchangeBroker
from triplegain.models.enums import OrderStatus, PositionStatus, Side
from triplegain.models.trading import TradeProposal
from triplegain.settings import BrokerSettings, load_settings

SPECS = load_settings().market.symbol_specs
SETTINGS = BrokerSettings()
PRICE = Decimal(60000)


@pytest.fixture(params=["paper", "live"])
def broker(request: pytest.FixtureRequest) -> Iterator[PaperBroker | ExchangeBroker]:
    if request.param == "paper":
        yield PaperBroker({"USDT": Decimal(10000)}, SETTINGS, SPECS)
        return
    with FakeKraken(balances={"USDT": "10000"}, prices={"XBTUSDT": "60000", "XRPUSDT": "0.5"}) as kraken:
        yield ExchangeBroker(kraken.live_broker(), {"USDT": Decimal(10000)}, SETTINGS, SPECS)


def buy(usd: str = "1000") -> TradeProposal:
    return TradeProposal(
        symbol="BTC/USDT",
        side=Side.BUY,
        size_usd=Decimal(usd),
        entry_price=PRICE,
        stop_loss=Decimal(59000),
        take_profit=Decimal(62000),
        confidence=0.8,
    )


def test_an_open_fills_opens_a_position_and_moves_the_balances_by_its_fill(broker) -> None:  # type: ignore[no-untyped-def]
    done = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    assert done.order.status is OrderStatus.FILLED and done.fill is not None
    position = done.opened_position
    assert position is not None and position.id == "tg-1" and position.size == done.fill.size
    assert position.entry_price == done.fill.price and position.fees_paid == done.fill.fee
    assert broker.balances["USDT"] == Decimal(10000) - done.fill.notional - done.fill.fee
    assert broker.balances["BTC"] == done.fill.size


def test_a_retried_order_never_fills_twice(broker) -> None:  # type: ignore[no-untyped-def]
    first = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    assert broker.open(buy(), "tg-1", "c1", PRICE, AT) == first
    assert broker.balances["BTC"] == first.fill.size  # type: ignore[union-attr]


def test_a_close_sells_the_position_with_its_pnl_after_fees(broker) -> None:  # type: ignore[no-untyped-def]
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position

    done = broker.close([position], "tg-2", "c2", PRICE, AT, "signal")

    (closed,) = done.closed_positions
    assert done.order.status is OrderStatus.FILLED and closed.status is PositionStatus.CLOSED
    assert closed.realized_pnl == (
        (done.fill.price - position.entry_price) * position.size - position.fees_paid - done.fill.fee
    ).quantize(Decimal("0.00000001"))
    assert broker.balances["BTC"] == 0


def test_a_reduce_sells_part_and_the_rest_stays_open(broker) -> None:  # type: ignore[no-untyped-def]
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position

    done = broker.reduce(position, Decimal(50), "tg-3", "c2", PRICE, AT, "circuit_breaker")

    (rest,) = done.reduced_positions
    (part,) = done.closed_positions
    assert rest.size + part.size == position.size and rest.status is PositionStatus.OPEN
    assert broker.balances["BTC"] == rest.size


def test_a_rebalance_buys_and_sells_without_a_position(broker) -> None:  # type: ignore[no-untyped-def]
    bought = broker.rebalance(buy("500"), "tg-4", "c1", PRICE, AT)
    sell = buy("250").model_copy(update={"side": Side.SELL, "stop_loss": None, "take_profit": None})
    sold = broker.rebalance(sell, "tg-5", "c1", PRICE, AT)

    assert bought.order.status is sold.order.status is OrderStatus.FILLED
    assert bought.opened_position is None and sold.opened_position is None
    assert broker.balances["BTC"] == bought.fill.size - sold.fill.size  # type: ignore[union-attr]


@pytest.mark.parametrize(("usd", "reason"), [("5", "minimum order size"), ("20000", "insufficient USDT")])
def test_what_cannot_be_traded_is_rejected_with_the_reason_and_changes_nothing(
    broker,
    usd: str,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    done = broker.open(buy(usd), "tg-1", "c1", PRICE, AT)

    assert done.order.status is OrderStatus.REJECTED and reason in (done.order.reason or "")
    assert done.fill is None and broker.balances == {"USDT": Decimal(10000)}


def test_selling_more_than_is_held_is_rejected(broker) -> None:  # type: ignore[no-untyped-def]
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position
    bigger = position.model_copy(update={"size": position.size * 2})

    done = broker.close([bigger], "tg-2", "c2", PRICE, AT, "signal")

    assert done.order.status is OrderStatus.REJECTED and "insufficient BTC" in (done.order.reason or "")
