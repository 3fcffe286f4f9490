"""The live orders' journal on SQLite and PostgreSQL, and the kill test: a run killed between sending an
order and its reply places it once; the next run finds it by its client id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from tests.fakes.kraken import FakeKraken, Fault
from triplegain.broker.live import LiveBroker, OrderIntent, OrderState, live_client_id
from triplegain.models.enums import OrderStatus, Side
from triplegain.storage import create_db_engine, migrate
from triplegain.storage.live_orders import SqlOrderJournal, modes_held

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
    output = tmp_path / "run.log"
    with FakeKraken() as kraken, output.open("w") as log:
        kraken.script("AddOrder", Fault.accept_then_time_out(seconds=60))
        run = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, url, kraken.url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not kraken.orders and time.monotonic() < deadline and run.poll() is None:
                time.sleep(0.05)
            assert kraken.orders, f"the run never sent its order: {output.read_text()}"
            run.send_signal(signal.SIGKILL)  # killed while waiting for the reply the exchange holds back
            assert run.wait(timeout=10) == -signal.SIGKILL
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
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
