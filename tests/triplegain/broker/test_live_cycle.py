"""Whole cycles on the exchange broker against the fake Kraken: the same cycle code as paper opens a
position on the exchange, protects it there, and records the exchange's stop-loss fill as its exit; the
account's books and the exchange's balances agree throughout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from tests.fakes.kraken import FakeKraken
from triplegain.broker.exchange import ExchangeBroker
from triplegain.broker.live import MemoryJournal
from triplegain.broker.protection import recover_protections
from triplegain.cycle import CyclePlan, PlainSteps, assemble_cycle, cycle_id_for
from triplegain.cycle_types import AccountState, fresh_account, next_account
from triplegain.market import ReplaySource
from triplegain.models.cycle import CycleReport
from triplegain.settings import load_settings

PAIRS = {"BTC/USDT": ("XBTUSDT", "XXBT", "BTC"), "XRP/USDT": ("XRPUSDT", "XXRP", "XRP")}


@pytest.fixture
def kraken() -> Iterator[FakeKraken]:
    with FakeKraken(balances={"USDT": "10000"}) as fake:
        yield fake


class LiveAccount:
    """Cycles on the exchange broker; a new process (broker) every hour, the journal kept."""

    def __init__(self, kraken: FakeKraken, replay: ReplaySource) -> None:
        self.kraken, self.replay = kraken, replay
        self.settings = load_settings()
        self.journal = MemoryJournal()
        self.account = fresh_account(self.settings)

    def broker(self, account: AccountState) -> ExchangeBroker:
        live = self.kraken.live_broker(self.journal)
        protections = recover_protections(self.journal, list(account.positions))
        s = self.settings
        return ExchangeBroker(live, account.balances, s.broker, s.market.symbol_specs, protections)

    def hour(self, at: datetime) -> CycleReport:
        for symbol, (pair, _, _) in PAIRS.items():  # the exchange trades at the candle the cycle sees
            self.kraken.set_price(pair, repr(float(self.replay.candles(symbol, at, 1).close[-1])))
        plan = CyclePlan(cycle_id_for(at), at, datetime.now(UTC), self.account)
        run = assemble_cycle(plan, PlainSteps(self.replay, self.settings, broker=self.broker), self.settings)
        self.account = next_account(self.account, run.result)
        return run.report

    def books_agree(self) -> None:
        for _, (_, kraken_asset, asset) in PAIRS.items():
            assert self.account.balances.get(asset, Decimal(0)) == self.kraken.balances.get(
                kraken_asset, Decimal(0)
            )
        assert abs(self.account.balances["USDT"] - self.kraken.balances["USDT"]) < Decimal("0.00000001")


def test_a_live_position_is_opened_protected_and_closed_by_the_exchange(
    kraken: FakeKraken, replay: ReplaySource
) -> None:
    live = LiveAccount(kraken, replay)
    at = datetime(2024, 6, 1, tzinfo=UTC)
    for _ in range(24 * 20):  # until the offline model (the suite's trading profile) opens a position
        live.hour(at)
        at += timedelta(hours=1)
        if live.account.positions:
            break
    (position,) = live.account.positions
    live.books_agree()
    resting = sorted((o.ordertype, o.volume, o.price) for o in kraken.orders.values() if o.status == "open")
    tick = Decimal("0.1") if position.symbol == "BTC/USDT" else Decimal("0.00001")
    assert resting == [  # on the exchange's price grid, each rounded towards the price
        ("stop-loss", position.size, (position.stop_loss / tick).to_integral_value(ROUND_CEILING) * tick),
        ("take-profit", position.size, (position.take_profit / tick).to_integral_value(ROUND_FLOOR) * tick),
    ]

    pair = PAIRS[position.symbol][0]
    kraken.set_price(pair, str(position.stop_loss - 1))  # the stop fires between two runs
    report = live.hour(at)

    assert position.id not in {p.id for p in live.account.positions}
    (exit_,) = [e for o in report.symbols for e in o.exits]
    (closed,) = exit_.closed_positions
    assert closed.id == position.id and closed.close_reason == "stop_loss"
    assert exit_.fill is not None and exit_.fill.price == position.stop_loss - 1 and exit_.fill.fee > 0
    assert not [o for o in kraken.orders.values() if o.status == "open" and o.ordertype != "market"]
    exit_fill = next(o for o in kraken.orders.values() if o.ordertype == "stop-loss")
    assert exit_fill.status == "closed"
    live.books_agree()
