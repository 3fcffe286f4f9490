"""The live orders' journal on SQLite and PostgreSQL, and the kill test: a run killed between sending an
order and its reply places it once; the next run finds it by its client id."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from tests.fakes.kraken import FakeKraken, Fault, killed_when
from tests.triplegain.broker.test_contract import PRICE, SETTINGS, SPECS, buy
from tests.triplegain.factories import AT, rebalance_decision
from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import JournalledExecution, LiveBroker, OrderIntent, OrderState, live_client_id
from triplegain.broker.reconcile import recovery_report
from triplegain.models.enums import CycleStatus, OrderStatus, Side
from triplegain.models.trading import Portfolio
from triplegain.rebalance import Batch, batch_run_id
from triplegain.storage import create_db_engine, migrate, unit_of_work
from triplegain.storage.cycles import load_report, record_recovered_run
from triplegain.storage.dca import load_batch, save_plan
from triplegain.storage.live_orders import SqlOrderJournal, modes_held
from triplegain.storage.positions import load_open_positions

ROOT = Path(__file__).resolve().parents[3]


def intent(amount: str = "0.01") -> OrderIntent:
    return OrderIntent(
        client_id=live_client_id("cycle-20240601T1200Z", "BTC/USDT", "open"),
        cycle_id="cycle-20240601T1200Z",
        symbol="BTC/USDT",
        side=Side.BUY,
        type="market",
        amount=Decimal(amount),
        purpose="open",
    )


def test_the_journal_keeps_the_intent_every_status_and_the_log(engine: Engine) -> None:
    journal = SqlOrderJournal(engine)
    order = intent()
    journal.save(OrderState(order), "intent stored before sending")
    filled = OrderState(
        order,
        status=OrderStatus.FILLED,
        exchange_id="O1",
        filled=Decimal("0.01"),
        average_price=Decimal("60000.1"),
        fee=Decimal("1.56"),
        fee_asset="USDT",
        sends=1,
    )
    journal.save(filled, "placed: filled")

    assert journal.get(intent().client_id) == filled
    assert journal.get("unknown") is None
    assert [(c.status, c.note) for c in journal.log(intent().client_id)] == [
        (OrderStatus.PENDING, "intent stored before sending"),
        (OrderStatus.FILLED, "placed: filled"),
    ]
    assert journal.unsettled() == []


def test_unsettled_orders_are_what_reconciliation_asks_about(engine: Engine) -> None:
    journal = SqlOrderJournal(engine)
    journal.save(OrderState(intent(), sends=1, note="no answer"), "sent")

    assert [s.intent.client_id for s in journal.unsettled()] == [intent().client_id]


KILLED_RUN = """
import sys
from decimal import Decimal
import ccxt
from tests.fakes.kraken import API_KEY, API_SECRET
from tests.triplegain.storage.test_live_orders import intent
from triplegain.broker.live import LiveBroker
from triplegain.storage import create_db_engine
from triplegain.storage.live_orders import SqlOrderJournal, modes_held

exchange = ccxt.kraken({"apiKey": API_KEY, "secret": API_SECRET, "timeout": 60000})
exchange.urls["api"] = {"public": sys.argv[2], "private": sys.argv[2]}
LiveBroker(exchange, SqlOrderJournal(create_db_engine(sys.argv[1]))).submit(intent())
print("the reply arrived: the test meant to kill this run before it")
"""


def test_a_run_killed_between_send_and_reply_places_the_order_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    with FakeKraken() as kraken:
        kraken.script("AddOrder", Fault.accept_then_time_out(seconds=60))
        killed_when(  # killed while waiting for the reply the exchange holds back
            [sys.executable, "-c", KILLED_RUN, url, kraken.url],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            tmp_path,
            lambda: bool(kraken.orders),
            timeout=60,
        )
        journal = SqlOrderJournal(engine)
        assert journal.get(intent().client_id).status is OrderStatus.PENDING  # type: ignore[union-attr]

        restarted = LiveBroker(kraken.client(), journal, sleep=lambda s: None).submit(intent())

        assert restarted.status is OrderStatus.FILLED and restarted.sends == 1
        assert len(kraken.calls("AddOrder")) == 1 and len(kraken.orders) == 1
        assert any("never answered" in c.note for c in journal.log(intent().client_id))
    engine.dispose()


def test_the_database_says_which_account_modes_it_holds(engine: Engine) -> None:
    assert modes_held(engine) == set()

    SqlOrderJournal(engine).save(OrderState(intent()), "intent stored before sending")

    assert modes_held(engine) == {"live"}


def test_an_execution_no_run_recorded_is_found_until_the_operator_records_it(engine: Engine) -> None:
    run = batch_run_id("plan1", 0)  # a DCA batch's run, killed after its order filled
    decision = rebalance_decision(AT)
    with unit_of_work(engine) as session:
        save_plan(session, "plan1", decision, [Batch(index=0, scheduled_at=AT, trades=decision.trades)], AT)
    journal = SqlOrderJournal(engine)
    with FakeKraken(balances={"USDT": "10000"}) as kraken:
        broker = ExchangeBroker(kraken.live_broker(journal), {"USDT": Decimal(10000)}, SETTINGS, SPECS)
        done = broker.open(buy(), "tg-1", run, PRICE, AT)  # then the run is killed
    journal.save_execution(JournalledExecution(run, done, Decimal(0)))  # a retry: kept once, as first

    (found,) = journal.unrecorded_executions()

    assert found.execution == done and found.run_id == run and found.cost > 0
    before = Portfolio(balances={"USDT": Decimal(10000)}, prices={}, as_of=AT)
    report = recovery_report(run, [found], before, broker.balances, "recorded by ops: killed", AT)
    with unit_of_work(engine) as session:
        record_recovered_run(session, report, [found.execution])
    assert journal.unrecorded_executions() == []
    with unit_of_work(engine) as session:
        (position,) = load_open_positions(session)
        stored = load_report(session, run)
        batch = load_batch(session, "plan1", 0)
    assert position == done.opened_position
    assert stored is not None and stored.status is CycleStatus.FAILED and stored.decided_by == "recovery"
    assert stored.symbols[0].execution == done and stored.portfolio.positions == [position]
    assert batch is not None and batch.status == "executed" and batch.run_key == run  # never runs again


def test_an_orders_plan_is_kept_as_first_journalled_and_means_the_same_read_back(engine: Engine) -> None:
    journal = SqlOrderJournal(engine)
    with FakeKraken(balances={"USDT": "10000"}) as kraken:
        broker = ExchangeBroker(kraken.live_broker(journal), {"USDT": Decimal(10000)}, SETTINGS, SPECS)
        done = broker.open(buy(), "tg-1", "cycle-20240601T1200Z", PRICE, AT)
    (state,) = [s for s in journal.orders() if s.intent.type == "market"]
    planned = journal.plan(state.intent.client_id)
    assert planned is not None
    journal.save_plan(state.intent.client_id, planned.model_copy(update={"reason": "another"}))

    again = journal.plan(state.intent.client_id)

    assert again == planned and again.purpose == "open" and again.order.client_order_id == "tg-1"
    assert again.executed(*again.outcome(state)) == done  # the same execution, built from what was kept
    assert journal.plan("unknown") is None
