"""Reconciliation against the (fake) exchange before any trade: what changed while no run was going is
applied, anything unexplained stops trading, an unanswered call is never read as 'nothing there'."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.kraken import CYCLE, FakeKraken, Fault, market_buy
from tests.triplegain.broker.test_contract import PRICE, SETTINGS, SPECS, buy
from tests.triplegain.factories import AT
from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import (
    MemoryJournal,
    OrderIntent,
    OrderState,
    OrderUnresolved,
    live_client_id,
)
from triplegain.broker.orders import positions_after
from triplegain.broker.protection import Protection, ProtectionDesk, unfinished_protections
from triplegain.broker.reconcile import (
    LocalBook,
    Reconciliation,
    accept_external,
    closed_outside,
    finish_protections,
    reconcile,
    recover_unread,
)
from triplegain.models.enums import OrderStatus, Side
from triplegain.models.trading import Position

START = {"USDT": Decimal("10000")}


@pytest.fixture
def kraken() -> FakeKraken:
    with FakeKraken() as fake:
        yield fake


class Account:
    """A live account on the fake exchange: its journal, broker and the book the database would hold."""

    def __init__(self, kraken: FakeKraken) -> None:
        self.kraken = kraken
        self.journal = MemoryJournal()
        self.broker = kraken.live_broker(self.journal)
        self.balances = dict(START)
        self.protections: list[Protection] = []

    def buy_and_protect(self) -> Protection:
        entry = self.broker.submit(market_buy())
        self.balances["USDT"] -= entry.filled * (entry.average_price or 0) + entry.fee
        self.balances["BTC"] = self.balances.get("BTC", Decimal(0)) + entry.filled
        protection = ProtectionDesk(self.broker).protect(
            entry.intent.client_id, CYCLE, "BTC/USDT", entry.filled, Decimal("55000"), Decimal("70000")
        )
        self.protections.append(protection)
        return protection

    def reconcile(self, last_sync_ms: int | None = None) -> Reconciliation:
        """As a restarted run would: a new broker on the same journal."""
        return self.reconcile_book(LocalBook(dict(self.balances), list(self.protections), last_sync_ms))

    def reconcile_book(self, book: LocalBook) -> Reconciliation:
        broker = self.kraken.live_broker(self.journal)
        states = list(self.journal.states.values())
        unsettled = [s for s in states if not s.done]
        return reconcile(broker, self.journal, unsettled, states, book)


def kinds(result: Reconciliation) -> list[tuple[str, bool]]:
    return [(d.kind, d.explained) for d in result.differences]


def test_an_account_that_agrees_with_the_exchange_may_trade(kraken: FakeKraken) -> None:
    account = Account(kraken)
    account.buy_and_protect()

    result = account.reconcile()

    assert result.differences == [] and result.trading_allowed
    assert result.exchange_balances == {"USDT": Decimal("9398.44"), "BTC": Decimal("0.01")}


def test_a_stop_filled_while_the_process_was_down_is_recorded_and_explained(kraken: FakeKraken) -> None:
    account = Account(kraken)
    protection = account.buy_and_protect()
    kraken.set_price("XBTUSDT", "54000")  # the process is down; the exchange sells

    result = account.reconcile()

    assert kinds(result) == [("order_changed", True)]
    (stop,) = result.updated
    assert stop.intent.client_id == protection.stop.intent.client_id and stop.status is OrderStatus.FILLED
    assert stop.fee == Decimal("1.404") and result.trading_allowed  # the balances agree once the fill counts
    assert account.journal.get(stop.intent.client_id).status is OrderStatus.FILLED  # type: ignore[union-attr]


def test_an_order_placed_by_hand_is_adopted_as_external_and_stops_trading(kraken: FakeKraken) -> None:
    account = Account(kraken)
    account.buy_and_protect()
    txid = kraken.add_order("XBTUSDT", "buy", "limit", "0.002", "50000")

    result = account.reconcile()

    assert kinds(result) == [("external_order", False)] and not result.trading_allowed
    (adopted,) = result.adopted
    assert adopted.exchange_id == txid and adopted.intent.purpose == "external"
    assert account.journal.get(adopted.intent.client_id) == adopted  # journalled, never ignored
    assert kinds(account.reconcile()) == [("external_order", False)]  # until the operator's word

    (accepted,) = accept_external(account.journal, account.journal.states.values(), "ops", "my manual bid")

    assert accepted.exchange_id == txid and account.reconcile().differences == []
    assert account.journal.log[-1].note == "accepted by ops: my manual bid"


def test_a_fill_made_outside_and_its_balance_are_reported(kraken: FakeKraken) -> None:
    account = Account(kraken)
    account.buy_and_protect()
    kraken.add_order("XBTUSDT", "buy", "market", "0.001")

    result = account.reconcile()

    assert kinds(result) == [("external_fill", False), ("balance", False), ("balance", False)]
    assert "the database expects 0.01, the exchange holds 0.011" in result.report()
    assert "TRADING STOPPED" in result.report()
    assert result.exchange_balances["BTC"] == Decimal("0.011")  # what accepting it would book


def test_a_protection_order_cancelled_on_the_exchange_is_urgent(kraken: FakeKraken) -> None:
    account = Account(kraken)
    protection = account.buy_and_protect()
    kraken.orders[protection.take.exchange_id].status = "canceled"  # type: ignore[index]

    result = account.reconcile()

    assert kinds(result) == [("order_changed", True), ("protection_missing", False)]
    assert "unprotected (URGENT)" in str(result.unexplained[0])


def test_a_pair_cancelled_on_the_exchange_is_one_urgent_line_naming_both_orders(kraken: FakeKraken) -> None:
    account = Account(kraken)
    protection = account.buy_and_protect()
    for order in (protection.stop, protection.take):
        kraken.orders[order.exchange_id].status = "canceled"  # type: ignore[index]

    result = account.reconcile()

    assert kinds(result) == [("order_changed", True), ("order_changed", True), ("protection_missing", False)]
    (line,) = [str(d) for d in result.unexplained]
    assert protection.stop.intent.client_id in line and protection.take.intent.client_id in line
    assert "are not open on the exchange" in line and line.count("URGENT") == 1


def test_an_unanswered_balance_is_unknown_not_empty(kraken: FakeKraken) -> None:
    account = Account(kraken)
    account.buy_and_protect()
    kraken.script("BalanceEx", Fault.http(503))

    result = account.reconcile()

    assert kinds(result) == [("exchange_unanswered", False)]
    assert result.exchange_balances == {} and not result.trading_allowed


def test_open_orders_unanswered_do_not_make_protection_look_missing(kraken: FakeKraken) -> None:
    account = Account(kraken)
    account.buy_and_protect()
    kraken.script("OpenOrders", Fault.http(503))

    result = account.reconcile()

    assert kinds(result) == [("exchange_unanswered", False)]


def test_a_sent_order_the_exchange_never_knew_is_lost_and_one_never_sent_is_closed(
    kraken: FakeKraken,
) -> None:
    account = Account(kraken)
    lost = OrderIntent(
        live_client_id(CYCLE, "XRP/USDT", "open"),
        CYCLE,
        "XRP/USDT",
        Side.BUY,
        "market",
        Decimal("20"),
        "open",
    )
    never = OrderIntent(
        live_client_id(CYCLE, "XRP/USDT", "rebalance"),
        CYCLE,
        "XRP/USDT",
        Side.BUY,
        "market",
        Decimal("20"),
        "rebalance",
    )
    account.journal.save(OrderState(lost, sends=1), "sent (attempt 1)")
    account.journal.save(OrderState(never), "intent stored before sending")

    result = account.reconcile()

    assert kinds(result) == [("order_lost", False), ("order_changed", True)]
    assert account.journal.get(never.client_id).status is OrderStatus.ERROR  # type: ignore[union-attr]
    assert not kraken.calls("AddOrder")  # reconciliation never sends an order


def test_a_fill_no_run_recorded_explains_the_balances_but_stops_trading(kraken: FakeKraken) -> None:
    account = Account(kraken)
    desk = ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS)
    desk.open(buy(), "tg-1", CYCLE, PRICE, AT)  # then the run is killed: the book still holds START
    book = LocalBook(dict(START), [], None, list(account.journal.executions.values()))
    states = list(account.journal.states.values())

    found = reconcile(kraken.live_broker(account.journal), account.journal, [], states, book)
    unaware = reconcile(kraken.live_broker(account.journal), account.journal, [], states, LocalBook(START))

    assert kinds(found) == [("unrecorded_execution", False)]  # the balances agree once it is counted
    assert found.unexplained[0].subject == "tg-1" and "opened position tg-1" in found.unexplained[0].detail
    assert ("balance", False) in kinds(unaware)


def killed_after_its_entry(account: Account, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A run's entry filled and was journalled; the process died placing its stop-loss."""

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed")

    desk = ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS)
    monkeypatch.setattr(desk.protection, "protect", killed)
    with pytest.raises(KeyboardInterrupt):
        desk.open(buy(), "tg-1", CYCLE, PRICE, AT)
    (done,) = account.journal.executions.values()
    return done


def finished(account: Account, book: LocalBook, positions: list[Position]) -> Reconciliation:
    """Reconciliation as a live run does it: compare, then finish the protection a stopped run left."""
    broker = account.kraken.live_broker(account.journal)
    states = list(account.journal.states.values())
    found = reconcile(broker, account.journal, [s for s in states if not s.done], states, book)
    return finish_protections(
        ProtectionDesk(broker), unfinished_protections(account.journal, positions), found
    )


def test_protection_a_killed_run_never_placed_is_placed_by_the_next_reconciliation(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(kraken)
    done = killed_after_its_entry(account, monkeypatch)
    position = done.execution.opened_position
    assert [o.ordertype for o in kraken.orders.values()] == ["market"]  # unprotected on the exchange

    result = finished(account, LocalBook(dict(START), [], None, [done]), [position])

    assert kinds(result) == [("unrecorded_execution", False), ("protection_placed", True)]
    assert "stop_loss and take_profit was never placed" in result.differences[1].detail
    resting = {o.ordertype: o for o in kraken.orders.values() if o.status == "open"}
    assert set(resting) == {"stop-loss", "take-profit"}
    assert all(o.volume == position.size for o in resting.values())
    assert resting["stop-loss"].price >= position.stop_loss  # on the exchange's grid, towards the price
    assert resting["take-profit"].price <= position.take_profit
    assert unfinished_protections(account.journal, [position]) == []  # whole: nothing placed twice
    assert kinds(finished(account, LocalBook(dict(START), [], None, [done]), [position])) == [
        ("unrecorded_execution", False)
    ]


def test_protection_is_not_placed_when_the_positions_asset_is_in_question(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(kraken)
    done = killed_after_its_entry(account, monkeypatch)

    result = finished(account, LocalBook(dict(START)), [done.execution.opened_position])  # unaware of it

    assert ("balance", False) in kinds(result) and ("protection_missing", False) in kinds(result)
    assert "BTC balance is in question" in str(result.unexplained[-1])
    assert [o.ordertype for o in kraken.orders.values()] == ["market"]  # nothing sent


def killed_reading_the_sale(
    account: Account, monkeypatch: pytest.MonkeyPatch, sale: str
) -> tuple[Position, dict[str, Decimal], Protection]:
    """A protected position opened, then a breaker's reduce (half of it) or a close (all of it): the pair
    cancelled, the sale sent at market, and the process killed before it read the sale's answer. Returns
    the position, the balances the books hold and its pair as they were."""
    desk = ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS)
    position = desk.open(buy(), "tg-1", CYCLE, PRICE, AT).opened_position
    assert position is not None
    books, protection, record = desk.balances, desk.protections[position.id], account.broker._record

    def killed(state: OrderState, answer: dict[str, Any], how: str) -> OrderState:
        if state.intent.type == "market":
            raise KeyboardInterrupt("killed")
        return record(state, answer, how)

    monkeypatch.setattr(account.broker, "_record", killed)
    sells = {
        "reduce": lambda: desk.reduce(position, Decimal(50), "tg-2", "c2", PRICE, AT, "circuit_breaker"),
        "close": lambda: desk.close([position], "tg-2", "c2", PRICE, AT, "signal"),
    }
    with pytest.raises(KeyboardInterrupt):
        sells[sale]()
    monkeypatch.undo()
    return position, books, protection


@pytest.mark.parametrize("sale", ["reduce", "close"])
def test_a_pair_cancelled_by_a_run_killed_selling_its_position_is_not_placed_for_what_was_sold(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch, sale: str
) -> None:
    """A breaker's reduce (or a close): the pair cancelled, half the position (or all of it) sold at market,
    then the process died before it read the sale's answer. The account holds less than the books say: a
    new pair for the whole position would sell BTC that is not there, so none is placed until the
    operator's word sizes or closes the position (`--accept`)."""
    account = Account(kraken)
    position, books, protection = killed_reading_the_sale(account, monkeypatch, sale)
    assert kraken.balances["XXBT"] < position.size  # sold on the exchange, not in the books

    result = finished(account, LocalBook(books, [protection], None, [], [position]), [position])

    assert ("order_changed", False) in kinds(result)  # the sale, filled: no plan says what it sold for
    assert ("position_unheld", False) in kinds(result)
    assert kinds(result)[-1] == ("protection_missing", False) and not result.trading_allowed
    assert "BTC balance is in question" in str(result.unexplained[-1])
    assert [o for o in kraken.orders.values() if o.status == "open"] == []  # nothing placed
    # one URGENT line for the position: the cancelled pair's missing orders are named in it
    (missing,) = [d for d in result.differences if d.kind == "protection_missing"]
    assert all(o.intent.client_id in missing.detail for o in protection.orders)


@pytest.mark.parametrize("sale", ["reduce", "close"])
def test_a_sale_whose_answer_a_killed_run_never_read_is_built_from_its_plan_at_its_fill(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch, sale: str
) -> None:
    """The same death, with the recovery a live run makes first (`recover_unread`): the sale's plan,
    journalled before it was sent, and its fill on the exchange give the execution the run would have
    journalled. Unrecorded, it stops trading until the operator's word; the rest of a reduced position is
    protected at once, for what is held."""
    account = Account(kraken)
    position, books, _ = killed_reading_the_sale(account, monkeypatch, sale)
    held = kraken.balances.get("XXBT", Decimal(0))

    unsettled = [s for s in account.journal.states.values() if not s.done]
    (done,) = recover_unread(kraken.live_broker(account.journal), account.journal, unsettled)

    sold = next(s for s in account.journal.states.values() if s.intent.purpose == sale)
    assert sold.status is OrderStatus.FILLED and done.run_id == "c2"
    fill = done.execution.fill
    assert fill is not None and fill.price == sold.average_price and fill.size == position.size - held
    assert [p.close_reason for p in done.execution.closed_positions] == [
        "circuit_breaker" if sale == "reduce" else "signal"
    ]
    rest = positions_after([position], [done.execution])
    assert [p.size for p in rest] == ([held] if sale == "reduce" else [])
    result = finished(account, LocalBook(books, [], None, [done], rest), rest)
    assert [(d.kind, d.explained) for d in result.unexplained] == [("unrecorded_execution", False)]
    resting = [o for o in kraken.orders.values() if o.status == "open"]
    assert [o.volume for o in resting] == ([held, held] if sale == "reduce" else [])
    assert recover_unread(kraken.live_broker(account.journal), account.journal, []) == []


def test_a_rebalance_and_an_entry_a_killed_run_never_read_are_built_from_their_plans(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(kraken)
    desk = ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS)
    record = account.broker._record

    def killed(state: OrderState, answer: dict[str, Any], how: str) -> OrderState:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(account.broker, "_record", killed)
    for trade in (
        lambda: desk.rebalance(buy("500"), "tg-r", "batch-1", PRICE, AT),
        lambda: desk.open(buy(), "tg-o", "c1", PRICE, AT),
    ):
        with pytest.raises(KeyboardInterrupt):
            trade()
    monkeypatch.setattr(account.broker, "_record", record)
    unsettled = [s for s in account.journal.states.values() if not s.done]

    rebalanced, opened = recover_unread(kraken.live_broker(account.journal), account.journal, unsettled)

    assert (rebalanced.run_id, opened.run_id) == ("batch-1", "c1")
    assert rebalanced.execution.fill is not None and rebalanced.execution.opened_position is None
    assert not rebalanced.execution.closed_positions and rebalanced.cost > 0
    position = opened.execution.opened_position
    assert position is not None and position.size == kraken.balances["XXBT"] - rebalanced.execution.fill.size
    assert (position.stop_loss, position.take_profit) == (Decimal(59000), Decimal(62000))  # its proposal's
    assert sorted(account.journal.executions) == ["tg-o", "tg-r"]


def test_a_market_order_without_a_plan_or_unfilled_is_left_to_the_reconciliation(kraken: FakeKraken) -> None:
    account = Account(kraken)
    desk = ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS)
    desk.open(buy(), "tg-1", CYCLE, PRICE, AT)
    (planned,) = account.journal.plans.values()
    unplanned = account.broker.submit(market_buy(purpose="by-hand"))  # straight to the live broker
    never_sent = OrderState(market_buy(purpose="never-sent"))
    account.journal.save(never_sent, "intent stored before sending")
    account.journal.save_plan(never_sent.intent.client_id, planned)
    executions = dict(account.journal.executions)

    recovered = recover_unread(account.broker, account.journal, [unplanned, never_sent])

    assert recovered == [] and account.journal.executions == executions
    assert account.journal.states[never_sent.intent.client_id].status is OrderStatus.ERROR  # never sent


def test_a_planned_order_the_exchange_does_not_know_is_looked_up_once_and_lost(kraken: FakeKraken) -> None:
    """`recover_unread` looks it up by its client id, with backoff, and the exchange does not know it: the
    reconciliation after it finds it lost without a second backoff (about 15 s of waiting, live)."""
    account = Account(kraken)
    ExchangeBroker(account.broker, dict(START), SETTINGS, SPECS).open(buy(), "tg-1", CYCLE, PRICE, AT)
    (planned,) = account.journal.plans.values()
    unknown = OrderState(market_buy(purpose="unknown"), sends=1)  # sent; the exchange never got it
    account.journal.save(unknown, "sent (attempt 1)")
    account.journal.save_plan(unknown.intent.client_id, planned)
    broker = kraken.live_broker(account.journal)
    lost: dict[str, OrderUnresolved] = {}

    recover_unread(broker, account.journal, [s for s in account.journal.states.values() if not s.done], lost)
    looked_up = len(kraken.calls("ClosedOrders"))
    states = list(account.journal.states.values())
    unsettled = [s for s in states if not s.done]
    result = reconcile(broker, account.journal, unsettled, states, LocalBook({}), lost)

    assert list(lost) == [unknown.intent.client_id]
    assert looked_up == 1 + len(broker.lookups.delays())  # asked at once, then after each backoff delay
    assert len(kraken.calls("ClosedOrders")) == looked_up  # not looked up again
    (gone,) = [d for d in result.differences if d.kind == "order_lost"]
    assert gone.subject == unknown.intent.client_id and not gone.explained and not result.trading_allowed


def test_protection_the_exchange_refuses_is_urgent_and_stops_trading(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(kraken)
    done = killed_after_its_entry(account, monkeypatch)
    kraken.script("AddOrder", Fault.kraken_error("EOrder:Invalid price"))

    result = finished(account, LocalBook(dict(START), [], None, [done]), [done.execution.opened_position])

    assert kinds(result)[-1] == ("protection_missing", False) and not result.trading_allowed
    assert "placing it now failed" in str(result.unexplained[-1]) and "URGENT" in str(result.unexplained[-1])


def test_only_positions_with_levels_and_an_unfinished_generation_are_unfinished(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(kraken)
    protected = account.buy_and_protect()
    whole = Position.model_validate(
        {
            **killed_after_its_entry(account, monkeypatch).execution.opened_position.model_dump(),
            "id": protected.position_id,
        }
    )
    bare = whole.model_copy(update={"id": "tg-bare", "stop_loss": None, "take_profit": None})
    half = whole.model_copy(update={"id": "tg-half"})
    ProtectionDesk(account.broker).protect(
        "tg-half", CYCLE, "BTC/USDT", whole.size, Decimal("55000"), Decimal("70000")
    )
    account.journal.states.pop(live_client_id("tg-half", "take_profit", "0"))  # died before the take-profit

    (unfinished,) = unfinished_protections(account.journal, [whole, bare, half])

    assert unfinished.position.id == "tg-half" and unfinished.missing == "take_profit"
    assert unfinished.stop is not None and unfinished.generation == 0


def test_a_pair_our_run_cancelled_is_unfinished_one_cancelled_by_hand_is_not(kraken: FakeKraken) -> None:
    account = Account(kraken)
    ours = account.buy_and_protect()
    by_hand = ProtectionDesk(account.broker).protect(
        "tg-by-hand", CYCLE, "BTC/USDT", ours.size, Decimal("55000"), Decimal("70000")
    )
    released = ProtectionDesk(account.broker).release(ours)  # a run moving its stop, then killed
    for order in by_hand.orders:
        kraken.orders[str(order.exchange_id)].status = "canceled"  # on the exchange's website
        account.broker.refresh(order)  # as the next reconciliation reads it
    mine, theirs = held_position(ours), held_position(by_hand)
    assert all(account.journal.states[o.intent.client_id].done for o in [*released.orders, *by_hand.orders])

    (unfinished,) = unfinished_protections(account.journal, [mine, theirs])

    assert unfinished.position.id == ours.position_id and unfinished.generation == 1
    assert unfinished.cancelled is not None and unfinished.cancelled.stop_price == released.stop_price
    assert "cancelled by a run that stopped before placing what was to follow" in unfinished.why


def held_position(protection: Protection, position_id: str | None = None, hours: int = 0) -> Position:
    """The open position a protection guards, as the database holds it."""
    return Position(
        id=position_id or protection.position_id,
        symbol=protection.symbol,
        side="long",
        size=protection.size,
        entry_price=Decimal("60000"),
        stop_loss=protection.stop_price,
        take_profit=protection.take_price,
        opened_at=AT + timedelta(hours=hours),
        cycle_id=CYCLE,
    )


def book_of(account: Account, positions: list[Position]) -> LocalBook:
    return LocalBook(dict(account.balances), list(account.protections), None, [], positions)


def test_positions_the_exchange_account_holds_are_no_difference(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())

    assert account.reconcile_book(book_of(account, [position])).differences == []


def test_a_position_sold_outside_is_unheld_and_stops_trading(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())
    kraken.add_order("XBTUSDT", "sell", "market", "0.01")  # by hand

    result = account.reconcile_book(book_of(account, [position]))

    (unheld,) = [d for d in result.unexplained if d.kind == "position_unheld"]
    assert unheld.subject == "BTC" and unheld.held == 0 and unheld.positions == (position.id,)
    assert "sold outside TripleGain?" in unheld.detail and not result.trading_allowed


def test_a_position_whose_stop_filled_while_down_is_not_unheld(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())
    kraken.set_price("XBTUSDT", "54000")  # the stop sells on the exchange; the next run records the exit

    result = account.reconcile_book(book_of(account, [position]))

    assert "position_unheld" not in [d.kind for d in result.differences]


def test_the_newest_unheld_positions_are_closed_at_the_outside_sales_price(kraken: FakeKraken) -> None:
    account = Account(kraken)
    protection = account.buy_and_protect()
    older, newer = held_position(protection, "tg-old"), held_position(protection, "tg-new", hours=1)
    kraken.add_order("XBTUSDT", "buy", "market", "0.01")  # both positions' BTC, as the book expects
    account.balances["BTC"] = Decimal("0.02")
    kraken.set_price("XBTUSDT", "61000")
    kraken.add_order("XBTUSDT", "sell", "market", "0.01", oflags="fciq")  # one position's worth, by hand
    found = account.reconcile_book(LocalBook(dict(account.balances), [], None, [], [older, newer]))

    (close,) = closed_outside([older, newer], found, {}, "outside-1", AT, "sold by hand", SPECS)

    (closed,) = close.closed_positions
    assert closed.id == "tg-new" and closed.exit_price == Decimal("61000") and closed.size == newer.size
    assert close.order.cycle_id == "outside-1" and close.fill is not None and close.fill.fee == 0
    assert closed.realized_pnl == (Decimal("61000") - Decimal("60000")) * newer.size


def test_a_position_partly_sold_outside_is_reduced_to_what_is_held(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())
    kraken.set_price("XBTUSDT", "61000")
    kraken.add_order("XBTUSDT", "sell", "market", "0.004", oflags="fciq")  # part of it, by hand
    kraken.balances["XXBT"] += Decimal("0.0000000042")  # dust below the size step, from elsewhere
    found = account.reconcile_book(book_of(account, [position]))

    (close,) = closed_outside([position], found, {}, "outside-1", AT, "sold some", SPECS)

    (part,), (rest,) = close.closed_positions, close.reduced_positions
    assert rest.id == position.id and rest.size == position.size - Decimal("0.004")
    assert part.id == f"{position.id}-outside" and part.size == Decimal("0.004")
    assert part.exit_price == Decimal("61000") and close.order.size == Decimal("0.004")
    assert part.realized_pnl == Decimal("1000") * Decimal("0.004")


def test_a_rest_below_the_minimum_order_size_is_closed_with_the_position(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())
    left = Decimal("0.00005")  # below BTC/USDT's minimum order: no stop-loss could be placed for it
    kraken.add_order("XBTUSDT", "sell", "market", str(position.size - left), oflags="fciq")
    found = account.reconcile_book(book_of(account, [position]))

    (close,) = closed_outside([position], found, {}, "outside-1", AT, "sold nearly all", SPECS)

    assert close.reduced_positions == [] and close.closed_positions[0].size == position.size


def test_without_an_outside_sale_the_last_price_values_the_close(kraken: FakeKraken) -> None:
    account = Account(kraken)
    position = held_position(account.buy_and_protect())
    kraken.balances["XXBT"] = Decimal(0)  # withdrawn: no trade to price it
    found = account.reconcile_book(book_of(account, [position]))

    prices = {"BTC/USDT": Decimal("59000")}
    (close,) = closed_outside([position], found, prices, "outside-1", AT, "withdrawn", SPECS)

    assert close.fill is not None and close.fill.price == Decimal("59000")
