"""The live broker against the fake Kraken over real HTTP: orders are journalled before they are sent, never
lost and never doubled (a lost reply is resolved by the client id), refusals back off."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes.kraken import FakeKraken, Fault, market_buy
from triplegain.broker.live import (
    Backoff,
    CallBudget,
    LiveBroker,
    MemoryJournal,
    OrderIntent,
    OrderUnresolved,
    live_client_id,
)
from triplegain.models.enums import OrderStatus, Side


class Sleeps:
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def kraken() -> FakeKraken:
    with FakeKraken() as fake:
        yield fake


def broker_for(
    kraken: FakeKraken, journal: MemoryJournal, timeout_ms: int = 2000
) -> tuple[LiveBroker, Sleeps]:
    sleeps = Sleeps()
    return kraken.live_broker(journal, sleeps, timeout_ms), sleeps


def test_a_market_buy_is_journalled_before_it_is_sent_and_filled_once(kraken: FakeKraken) -> None:
    journal = MemoryJournal()
    seen_at_send: list[OrderStatus | None] = []
    original = kraken._api_AddOrder

    def spy(fields, fault):  # type: ignore[no-untyped-def]
        state = journal.get(fields["cl_ord_id"])
        seen_at_send.append(state.status if state else None)
        return original(fields, fault)

    kraken._api_AddOrder = spy  # type: ignore[method-assign]
    broker, _ = broker_for(kraken, journal)
    intent = market_buy()

    state = broker.submit(intent)

    assert seen_at_send == [OrderStatus.PENDING]  # the intent was stored before the exchange saw the order
    assert state.status is OrderStatus.FILLED and state.filled == Decimal("0.01")
    assert (
        state.average_price == Decimal("60000") and state.fee == Decimal("1.56") and state.fee_asset == "USDT"
    )
    assert [c.fields["cl_ord_id"] for c in kraken.calls("AddOrder")] == [intent.client_id]
    assert [line.status for line in journal.log] == [
        OrderStatus.PENDING,
        OrderStatus.PENDING,
        OrderStatus.FILLED,
    ]
    assert kraken.balances["XXBT"] == Decimal("0.01")


def test_a_retried_run_gets_the_order_it_placed_and_sends_nothing(kraken: FakeKraken) -> None:
    journal = MemoryJournal()
    broker, _ = broker_for(kraken, journal)
    first = broker.submit(market_buy())

    again = broker.submit(market_buy())

    assert again == first
    assert len(kraken.calls("AddOrder")) == 1


def test_a_lost_reply_is_resolved_by_the_client_id_never_by_sending_again(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.accept_then_time_out(seconds=1.5))
    journal = MemoryJournal()
    broker, _ = broker_for(kraken, journal, timeout_ms=300)

    state = broker.submit(market_buy())

    assert state.status is OrderStatus.FILLED and state.exchange_id == next(iter(kraken.orders))
    assert len(kraken.calls("AddOrder")) == 1
    assert any("found by its client id" in line.note for line in journal.log)


def test_an_order_the_exchange_shows_late_is_found_after_backing_off(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.accept_then_time_out(seconds=1.5))
    kraken.script("OpenOrders", Fault.not_found(), Fault.not_found())
    kraken.script("ClosedOrders", Fault.not_found(), Fault.not_found())
    journal = MemoryJournal()
    broker, sleeps = broker_for(kraken, journal, timeout_ms=300)

    state = broker.submit(market_buy())

    assert state.status is OrderStatus.FILLED
    assert len(kraken.calls("AddOrder")) == 1
    assert sleeps.waits == [1.0, 2.0]  # looked up at once, then after 1 s, then found after 2 s


def test_an_order_never_found_stops_the_run_and_is_not_sent_again(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.accept_then_time_out(seconds=1.5))
    kraken.script("OpenOrders", *[Fault.not_found()] * 4)
    kraken.script("ClosedOrders", *[Fault.not_found()] * 4)
    journal = MemoryJournal()
    broker, _ = broker_for(kraken, journal, timeout_ms=300)

    with pytest.raises(OrderUnresolved, match="not sent again: reconciliation decides"):
        broker.submit(market_buy())
    assert journal.get(market_buy().client_id).status is OrderStatus.PENDING  # type: ignore[union-attr]

    # the next run asks again (the exchange has caught up) and sends nothing
    state = broker.submit(market_buy())

    assert state.status is OrderStatus.FILLED
    assert len(kraken.calls("AddOrder")) == 1 and len(kraken.orders) == 1


def test_429_then_418_back_off_and_the_order_is_placed_once(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.http(429), Fault.http(418))
    journal = MemoryJournal()
    broker, sleeps = broker_for(kraken, journal)

    state = broker.submit(market_buy())

    assert state.status is OrderStatus.FILLED and state.sends == 3
    assert sleeps.waits == [1.0, 2.0]
    assert len(kraken.calls("AddOrder")) == 3 and len(kraken.orders) == 1
    assert len(kraken.calls("OpenOrders")) == 2  # each resend was preceded by a look for the client id


def test_refused_every_time_ends_in_error_after_the_budgeted_attempts(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", *[Fault.kraken_error("EAPI:Rate limit exceeded")] * 5)
    journal = MemoryJournal()
    broker, sleeps = broker_for(kraken, journal)

    state = broker.submit(market_buy())

    assert state.status is OrderStatus.ERROR and "refused 5 times" in (state.note or "")
    assert sleeps.waits == [1.0, 2.0, 4.0, 8.0] and not kraken.orders


def test_a_partial_fill_is_a_fill_and_the_rest_stays_open(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.partial("0.4"))
    broker, _ = broker_for(kraken, MemoryJournal())

    state = broker.submit(market_buy("0.01"))

    assert state.status is OrderStatus.PARTIALLY_FILLED and state.filled == Decimal("0.004")
    assert kraken.balances["XXBT"] == Decimal("0.004")
    cancelled = broker.cancel(state)
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.filled == Decimal("0.004")


def test_insufficient_funds_is_a_rejection_with_the_reason(kraken: FakeKraken) -> None:
    kraken.script("AddOrder", Fault.kraken_error("EOrder:Insufficient funds"))
    broker, _ = broker_for(kraken, MemoryJournal())

    state = broker.submit(market_buy())

    assert state.status is OrderStatus.REJECTED and "insufficient funds" in (state.note or "")
    assert not kraken.orders


def test_a_fills_cost_and_fee_are_the_exchanges_to_the_last_decimal(kraken: FakeKraken) -> None:
    """ccxt hands a Kraken order's cost as filled times average price in floats: this fill's 1000.00027606
    arrives as 1000.0002760599998. The journal (and the books after it) keeps the ledger's 8 decimals."""
    kraken.set_price("XBTUSDT", "66394.6")
    broker, _ = broker_for(kraken, MemoryJournal())

    state = broker.submit(market_buy("0.01506147"))

    (order,) = kraken.orders.values()
    assert order.cost == Decimal("1000.00027606")  # what the exchange's ledger moved
    assert state.cost == order.cost and state.fee == order.fee
    assert kraken.balances["USDT"] == Decimal(10000) - state.cost - state.fee


def test_a_stop_loss_rests_on_the_exchange_and_its_fill_is_recorded_with_its_fee(kraken: FakeKraken) -> None:
    journal = MemoryJournal()
    broker, _ = broker_for(kraken, journal)
    broker.submit(market_buy())
    stop = OrderIntent(
        client_id=live_client_id("cycle-20240601T1200Z", "BTC/USDT", "stop_loss"),
        cycle_id="cycle-20240601T1200Z",
        symbol="BTC/USDT",
        side=Side.SELL,
        type="stop-loss",
        amount=Decimal("0.01"),
        purpose="stop_loss",
        price=Decimal("55000"),
    )

    resting = broker.submit(stop)
    kraken.set_price("XBTUSDT", "54000")
    filled = broker.refresh(resting)

    assert resting.status is OrderStatus.OPEN
    assert filled.status is OrderStatus.FILLED and filled.average_price == Decimal("54000")
    assert filled.fee == Decimal("1.404") and kraken.balances["XXBT"] == 0


def test_a_client_id_reused_for_another_order_is_refused(kraken: FakeKraken) -> None:
    broker, _ = broker_for(kraken, MemoryJournal())
    broker.submit(market_buy("0.01"))

    with pytest.raises(ValueError, match="already used for another order"):
        broker.submit(market_buy("0.02"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": Decimal(0)}, "amount must be positive"),
        ({"type": "iceberg"}, "unknown order type"),
        ({"type": "limit"}, "needs a positive price"),
    ],
)
def test_a_malformed_intent_is_refused_before_anything_is_stored(changes: dict, message: str) -> None:
    fields = {**market_buy().__dict__, **changes}
    with pytest.raises(ValueError, match=message):
        OrderIntent(**fields)


def test_client_ids_are_stable_uuids_kraken_accepts() -> None:
    a, b = live_client_id("cycle-1", "BTC/USDT", "open"), live_client_id("cycle-1", "BTC/USDT", "open")

    assert a == b and len(a) == 36 and a != live_client_id("cycle-2", "BTC/USDT", "open")


def test_the_call_budget_waits_for_the_window_to_slide() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    budget = CallBudget(calls=60, orders=2, clock=lambda: now[0], sleep=sleep)
    budget.wait(placing=True)
    now[0] = 10.0
    budget.wait(placing=True)
    budget.wait()  # a plain call still fits
    budget.wait(placing=True)  # a third order within the minute waits until the first is a minute old

    assert waits == [50.0]
    with pytest.raises(ValueError, match="at least 1"):
        CallBudget(calls=0)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert Backoff(first=1, cap=5, attempts=5).delays() == [1, 2, 4, 5]
