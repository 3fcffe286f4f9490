"""What the exchange broker does beyond the shared contract: protection orders around every position, a
partial fill taken for what it is, an unprotected position closed at once (URGENT)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.fakes.kraken import FakeKraken, Fault
from tests.triplegain.broker.test_contract import PRICE, SETTINGS, SPECS, buy
from tests.triplegain.factories import AT
from triplegain.broker.exchange import ExchangeBroker, exchange_client_id
from triplegain.broker.live import MemoryJournal
from triplegain.models.enums import OrderStatus, PositionStatus


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    with FakeKraken(balances={"USDT": "10000"}) as fake:
        yield fake


def broker_on(kraken: FakeKraken, close_unprotected: bool = True) -> ExchangeBroker:
    live = kraken.live_broker()
    return ExchangeBroker(
        live, {"USDT": Decimal(10000)}, SETTINGS, SPECS, close_unprotected=close_unprotected
    )


def resting(kraken: FakeKraken) -> list[tuple[str, Decimal, Decimal | None]]:
    return sorted((o.ordertype, o.volume, o.price) for o in kraken.orders.values() if o.status == "open")


def test_an_entry_is_protected_on_the_exchange_and_its_client_id_is_a_uuid(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)

    done = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    size = done.fill.size  # type: ignore[union-attr]
    assert resting(kraken) == [("stop-loss", size, Decimal(59000)), ("take-profit", size, Decimal(62000))]
    entry = next(o for o in kraken.orders.values() if o.ordertype == "market")
    assert entry.cl_ord_id == exchange_client_id("tg-1") and len(entry.cl_ord_id) == 36


def test_a_close_cancels_the_protection_before_selling(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position

    broker.close([position], "tg-2", "c2", PRICE, AT, "signal")  # type: ignore[list-item]

    assert resting(kraken) == [] and kraken.balances["XXBT"] == 0 and not broker.urgent


def test_a_reduce_resizes_the_protection_to_what_is_left(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position

    done = broker.reduce(position, Decimal(50), "tg-3", "c2", PRICE, AT, "circuit_breaker")  # type: ignore[arg-type]

    rest = done.reduced_positions[0].size
    assert resting(kraken) == [("stop-loss", rest, Decimal(59000)), ("take-profit", rest, Decimal(62000))]
    assert broker.protections["tg-1"].generation == 1
    # every order asks for its fee in USDT (Kraken charges a sale's fee in BTC by default): what is left
    # is all held, and its stop-loss can sell it
    assert all("fciq" in c.fields.get("oflags", "") for c in kraken.calls("AddOrder"))
    assert kraken.balances["XXBT"] == rest and done.fill.fee_asset == "USDT"  # type: ignore[union-attr]
    kraken.set_price("XBTUSDT", "58000")
    assert broker.exchange_exits([done.reduced_positions[0]], AT)[0].fill is not None


def test_a_partial_fill_is_the_position_and_the_rest_is_cancelled(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    kraken.script("AddOrder", Fault.partial("0.5"))

    done = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    entry = next(o for o in kraken.orders.values() if o.ordertype == "market")
    assert entry.status == "canceled" and entry.vol_exec == entry.volume / 2
    assert done.order.status is OrderStatus.FILLED and done.fill.size == entry.vol_exec  # type: ignore[union-attr]
    assert done.opened_position.size == entry.vol_exec  # type: ignore[union-attr]
    assert broker.balances["BTC"] == kraken.balances["XXBT"] == entry.vol_exec


def test_a_stop_that_cannot_be_placed_closes_the_position_at_once(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    kraken.script("AddOrder", Fault.ok(), Fault.kraken_error("EOrder:Invalid price"))

    done = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    assert done.opened_position is not None
    (closing,) = broker.follow_ups
    assert closing.closed_positions[0].status is PositionStatus.CLOSED
    assert closing.closed_positions[0].close_reason == "unprotected"
    assert broker.urgent and "URGENT" in broker.urgent[0]
    assert kraken.balances["XXBT"] == 0 and resting(kraken) == []


def test_the_operator_may_keep_an_unprotected_position(kraken: FakeKraken) -> None:
    broker = broker_on(kraken, close_unprotected=False)
    kraken.script("AddOrder", Fault.ok(), Fault.kraken_error("EOrder:Invalid price"))

    broker.open(buy(), "tg-1", "c1", PRICE, AT)

    assert broker.follow_ups == [] and broker.urgent
    assert kraken.balances["XXBT"] > 0


def killed(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt("killed")


def test_an_entry_is_journalled_as_it_fills_before_its_protection_is_sent(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = MemoryJournal()
    broker = ExchangeBroker(kraken.live_broker(journal), {"USDT": Decimal(10000)}, SETTINGS, SPECS)
    monkeypatch.setattr(broker.protection, "protect", killed)  # the process dies placing the stop

    with pytest.raises(KeyboardInterrupt):
        broker.open(buy(), "tg-1", "c1", PRICE, AT)

    (done,) = journal.executions.values()
    entry = next(o for o in kraken.orders.values() if o.ordertype == "market")
    assert done.run_id == "c1" and done.execution.opened_position.id == "tg-1"  # type: ignore[union-attr]
    assert done.execution.fill.size == entry.vol_exec and done.cost == entry.cost  # type: ignore[union-attr]


def test_a_reduce_is_journalled_before_the_rest_is_protected_again(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = MemoryJournal()
    broker = ExchangeBroker(kraken.live_broker(journal), {"USDT": Decimal(10000)}, SETTINGS, SPECS)
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position
    monkeypatch.setattr(broker.protection, "protect", killed)  # dies placing the smaller pair

    with pytest.raises(KeyboardInterrupt):
        broker.reduce(position, Decimal(50), "tg-3", "c2", PRICE, AT, "circuit_breaker")  # type: ignore[arg-type]

    reduced = journal.executions["tg-3"].execution
    assert journal.executions["tg-3"].run_id == "c2"
    assert reduced.reduced_positions[0].size == position.size - reduced.fill.size  # type: ignore[union-attr]


def test_an_order_that_did_not_fill_is_not_journalled_as_an_execution(kraken: FakeKraken) -> None:
    journal = MemoryJournal()
    broker = ExchangeBroker(kraken.live_broker(journal), {"USDT": Decimal(10000)}, SETTINGS, SPECS)
    kraken.script("AddOrder", Fault.kraken_error("EOrder:Insufficient funds"))

    done = broker.open(buy(), "tg-1", "c1", PRICE, AT)

    assert done.fill is None and journal.executions == {}


def test_a_trailed_stop_replaces_the_pair_at_the_new_level(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position
    assert position is not None

    moved = broker.move_stop(position, Decimal("59500.04"), "w1", PRICE, AT)

    assert moved is None and not broker.urgent
    size = position.size  # the new stop on the exchange's tick, rounded towards the price
    assert resting(kraken) == [("stop-loss", size, Decimal("59500.1")), ("take-profit", size, Decimal(62000))]
    assert broker.protections["tg-1"].generation == 1


def test_a_trailed_stop_whose_pair_filled_meanwhile_is_the_positions_exit(kraken: FakeKraken) -> None:
    broker = broker_on(kraken)
    position = broker.open(buy(), "tg-1", "c1", PRICE, AT).opened_position
    assert position is not None
    kraken.set_price("XBTUSDT", "62500")  # the take-profit fills before the watch moves the stop

    exit_ = broker.move_stop(position, Decimal("59500"), "w1", PRICE, AT)

    assert exit_ is not None and exit_.closed_positions[0].close_reason == "take_profit"
    assert resting(kraken) == [] and "tg-1" not in broker.protections  # nothing placed for a sold position
    assert broker.balances["USDT"] == kraken.balances["USDT"] and kraken.balances["XXBT"] == 0
