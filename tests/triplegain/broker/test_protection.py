"""Protection orders on the (fake) exchange: placed after the entry, one filling cancels the other, a
partial close resizes them, a close cancels what it orphans, a failure to place one is URGENT."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes.kraken import CYCLE, FakeKraken, Fault, market_buy
from triplegain.broker.protection import ProtectionDesk, ProtectionFailed
from triplegain.models.enums import OrderStatus, Side


@pytest.fixture
def kraken() -> FakeKraken:
    with FakeKraken() as fake:
        yield fake


def entered(kraken: FakeKraken) -> tuple[ProtectionDesk, str]:
    """A filled 0.01 BTC entry at 60,000 and the desk that protects it."""
    broker = kraken.live_broker()
    entry = broker.submit(market_buy())
    assert entry.status is OrderStatus.FILLED
    return ProtectionDesk(broker), entry.intent.client_id


def resting(kraken: FakeKraken) -> list[tuple[str, str, Decimal, Decimal | None]]:
    return sorted(
        (o.ordertype, o.side, o.volume, o.price) for o in kraken.orders.values() if o.status == "open"
    )


def protect(desk: ProtectionDesk, position: str, size: str = "0.01"):  # type: ignore[no-untyped-def]
    return desk.protect(position, CYCLE, "BTC/USDT", Decimal(size), Decimal("55000"), Decimal("70000"))


def test_a_filled_entry_gets_a_stop_loss_and_a_take_profit_on_the_exchange(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)

    protection = protect(desk, position)

    assert (protection.stop.status, protection.take.status) == (OrderStatus.OPEN, OrderStatus.OPEN)
    assert resting(kraken) == [
        ("stop-loss", "sell", Decimal("0.01"), Decimal("55000")),
        ("take-profit", "sell", Decimal("0.01"), Decimal("70000")),
    ]
    assert desk.settle(protection).closed_by is None  # nothing happened yet


@pytest.mark.parametrize(
    ("price", "closed_by", "exit"), [("54000", "stop_loss", "54000"), ("71000", "take_profit", "71000")]
)
def test_one_filling_cancels_the_other_and_its_fill_is_recorded_with_its_fee(
    kraken: FakeKraken, price: str, closed_by: str, exit: str
) -> None:
    desk, position = entered(kraken)
    protection = protect(desk, position)

    kraken.set_price("XBTUSDT", price)  # while no run is going: the exchange sells
    outcome = desk.settle(protection)

    assert outcome.closed_by == closed_by and not outcome.urgent
    (fill,) = outcome.fills
    assert (fill.price, fill.size, fill.side) == (Decimal(exit), Decimal("0.01"), Side.SELL)
    assert fill.fee == (Decimal(exit) * Decimal("0.01") * Decimal("0.0026")).quantize(Decimal("1e-8"))
    assert resting(kraken) == []  # the other one was cancelled
    assert kraken.balances["XXBT"] == 0


def test_a_partial_close_resizes_the_protection_instead_of_dropping_it(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)
    protection = protect(desk, position)

    resized = desk.resize(protection, Decimal("0.004")).protection

    assert resized.generation == 1
    assert resting(kraken) == [
        ("stop-loss", "sell", Decimal("0.004"), Decimal("55000")),
        ("take-profit", "sell", Decimal("0.004"), Decimal("70000")),
    ]
    assert {o.status for o in protection.orders} == {OrderStatus.OPEN}  # the old states are history
    assert resized.stop.intent.client_id != protection.stop.intent.client_id


def test_a_retried_resize_places_no_second_pair(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)
    protection = protect(desk, position)
    desk.resize(protection, Decimal("0.004"))

    desk.resize(protection, Decimal("0.004"))  # the same run again

    assert len(resting(kraken)) == 2


def test_a_close_cancels_what_it_orphans(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)
    protection = protect(desk, position)

    released = desk.release(protection)

    assert {o.status for o in released.orders} == {OrderStatus.CANCELLED}
    assert resting(kraken) == []
    assert desk.resize(released, Decimal(0)).protection.orders == released.orders


def test_a_stop_that_fired_before_a_partial_close_is_reported_not_replaced(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)
    protection = protect(desk, position)
    kraken.set_price("XBTUSDT", "54000")

    outcome = desk.resize(protection, Decimal("0.004"))

    assert outcome.closed_by == "stop_loss" and outcome.fills[0].price == Decimal("54000")
    assert resting(kraken) == []  # no new pair for a position that is gone


def test_a_stop_that_cannot_be_placed_is_urgent(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)
    kraken.script("AddOrder", Fault.kraken_error("EOrder:Invalid price"))

    with pytest.raises(ProtectionFailed, match=r"URGENT: position .* is not protected") as failed:
        protect(desk, position)

    assert failed.value.placed == () and resting(kraken) == []


def test_a_take_profit_that_cannot_be_placed_leaves_the_stop_for_the_close_to_cancel(
    kraken: FakeKraken,
) -> None:
    desk, position = entered(kraken)
    kraken.script("AddOrder", Fault.ok(), Fault.kraken_error("EOrder:Orders limit exceeded"))

    with pytest.raises(ProtectionFailed, match="take_profit was rejected") as failed:
        protect(desk, position)

    (stop,) = failed.value.placed
    assert stop.intent.purpose == "stop_loss" and stop.status is OrderStatus.OPEN
    assert resting(kraken) == [("stop-loss", "sell", Decimal("0.01"), Decimal("55000"))]


def test_a_stop_above_the_take_profit_is_refused(kraken: FakeKraken) -> None:
    desk, position = entered(kraken)

    with pytest.raises(ValueError, match="must lie below"):
        desk.protect(position, CYCLE, "BTC/USDT", Decimal("0.01"), Decimal("70000"), Decimal("55000"))
