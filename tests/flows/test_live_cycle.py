"""The trading-cycle flow on a live account against the fake Kraken (market data and orders over HTTP):
the gate first, reconciliation before any trade, the exchange's orders journalled, and a difference it
cannot explain stopping the run before any order."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from flows.cli import app
from flows.market_watch import market_watch
from flows.reconcile import reconcile
from flows.trading_cycle import trading_cycle
from tests.fakes.kraken import API_KEY, API_SECRET, FakeKraken, FakeOrder, Fault, killed_when
from tests.flows.fresh_process import PROBE
from triplegain.cycle import parse_time
from triplegain.errors import ConfigError, CycleError
from triplegain.live_gate import CONFIRMATION, LiveTradingRefused
from triplegain.market import ReplaySource
from triplegain.models.cycle import CycleReport
from triplegain.models.enums import CycleStatus
from triplegain.storage import create_db_engine, unit_of_work
from triplegain.storage.accounts import load_account
from triplegain.storage.cycles import load_report
from triplegain.storage.live_orders import SqlOrderJournal, modes_held
from triplegain.storage.tables import CycleRow, PositionRow
from triplegain.storage.turns import take_account_turn

BUYING_HOUR = "2024-06-30T20:00Z"
ROOT = Path(__file__).resolve().parents[2]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of `triplegain` in a process of its own: this test's (the fake exchange, the
    database), no Prefect API (a temporary server of its own), this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONPATH": str(ROOT)} | extra


def killed_at(kraken: FakeKraken, tmp_path: Path, args: list[str], method: str, nth: int, **env: str) -> str:
    """`triplegain ARGS` in a process of its own (`cli_env`, with `env`), SIGKILLed while the fake exchange
    holds back its reply to the `nth` call of `method` the run makes (the calls before it answered): what
    that call did on the exchange, its run never read. Returns the run's output."""
    before = len(kraken.calls(method))
    kraken.script(method, *[Fault.ok()] * (nth - 1), Fault.accept_then_time_out(seconds=120))
    return killed_when(
        [sys.executable, "-c", PROBE, *args],
        cli_env(tmp_path, **env),
        tmp_path,
        lambda: len(kraken.calls(method)) == before + nth,
        timeout=240,
    )


def open_orders(kraken: FakeKraken) -> list[FakeOrder]:
    """The orders resting on the fake exchange now."""
    return [o for o in kraken.orders.values() if o.status == "open"]


@pytest.fixture
def kraken(replay: ReplaySource, monkeypatch: pytest.MonkeyPatch, project_db: str) -> Iterator[FakeKraken]:
    """The fake exchange serving the bundled candles, and the environment of an authorized live account."""
    candles = {"XBTUSDT": replay.series("BTC/USDT"), "XRPUSDT": replay.series("XRP/USDT")}
    with FakeKraken(balances={"USDT": "10000"}, candles=candles) as fake:
        for name, value in {
            "TRIPLEGAIN_EXECUTION__MODE": "live",
            "TRIPLEGAIN_TRADING_MODE": "live",
            "TRIPLEGAIN_CONFIRM_LIVE_TRADING": CONFIRMATION,
            "TRIPLEGAIN_EXCHANGE_API_KEY": API_KEY,
            "TRIPLEGAIN_EXCHANGE_SECRET": API_SECRET,
            "TRIPLEGAIN_EXCHANGE_BLOCK": "no-such-block",
            "TRIPLEGAIN_MARKET__SOURCE": "ccxt",
            "TRIPLEGAIN_MARKET__API_URL": fake.url,
            "TRIPLEGAIN_EXECUTION__API_URL": fake.url,
            "TRIPLEGAIN_MARKET__LOOKBACK_CANDLES": "720",  # what the fake (no clock) serves; see test_candles
            "TRIPLEGAIN_MARKET__RATE_LIMIT_MS": "1",  # the fake has no limit to respect
            "TRIPLEGAIN_EXECUTION__RATE_LIMIT_MS": "1",
        }.items():
            monkeypatch.setenv(name, value)
        for pair, symbol in {"XBTUSDT": "BTC/USDT", "XRPUSDT": "XRP/USDT"}.items():
            close = replay.candles(symbol, parse_time(BUYING_HOUR), 1).close[-1]
            fake.set_price(pair, repr(float(close)))  # the ticker at the hour's close
        yield fake


def test_a_live_cycle_reconciles_first_then_trades_on_the_exchange(
    kraken: FakeKraken, project_db: str
) -> None:
    report = trading_cycle(at=BUYING_HOUR)

    assert report.status is CycleStatus.COMPLETED and report.mode == "live"
    assert "AddOrder" in {r.method for r in kraken.requests}  # the hour buys, as on paper
    methods = [r.method for r in kraken.requests]
    first_order = methods.index("AddOrder") if "AddOrder" in methods else len(methods)
    assert {"OpenOrders", "TradesHistory", "BalanceEx"} <= set(methods[:first_order])  # reconciled first
    journal = SqlOrderJournal(create_db_engine(project_db))
    orders = journal.orders()
    assert len(orders) == sum(r.method == "AddOrder" for r in kraken.requests)  # every order journalled
    assert modes_held(create_db_engine(project_db)) == {"live"}
    balances = report.portfolio.balances
    assert balances["USDT"] == kraken.balances["USDT"]
    assert balances.get("BTC", Decimal(0)) == kraken.balances.get("XXBT", Decimal(0))


def test_an_exchange_taking_a_buys_fee_in_the_base_asset_leaves_books_and_protection_whole(
    kraken: FakeKraken, project_db: str
) -> None:
    """Binance charges a buy's fee in the asset bought: the position is what the buy left held, its
    stop-loss and take-profit sized for that, and the books match the exchange's balances to the last
    decimal through the entry and the exit."""
    kraken.fees_in_received_asset = True

    report = trading_cycle(at=BUYING_HOUR)

    assert report.status is CycleStatus.COMPLETED, report.notes
    (buy,) = [o for o in kraken.orders.values() if o.ordertype == "market"]
    assert buy.fee_in_base and buy.fee > 0
    (position,) = report.portfolio.positions
    assert position.size == buy.vol_exec - buy.fee == kraken.balances["XXBT"]
    assert report.portfolio.balances == {"USDT": kraken.balances["USDT"], "BTC": kraken.balances["XXBT"]}
    protective = open_orders(kraken)
    assert len(protective) == 2 and all(o.volume == position.size for o in protective)
    assert reconcile().differences == []  # nothing to explain
    (stop,) = [o for o in protective if o.ordertype == "stop-loss"]
    kraken.set_price("XBTUSDT", str(stop.price - 1))
    watched = market_watch(at="2024-06-30T20:30Z")
    assert watched.status is CycleStatus.COMPLETED, watched.notes
    assert stop.status == "closed" and watched.portfolio.positions == []
    assert watched.portfolio.balances["USDT"] == kraken.balances["USDT"]
    assert watched.portfolio.balances.get("BTC", Decimal(0)) == kraken.balances["XXBT"] == 0


def test_a_trailing_stop_moves_the_stop_resting_on_the_exchange(
    kraken: FakeKraken, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bought at 62026.83 at 20:00; by 23:30 the closed candles reached 62952.2 (+1.5%): the stop trails
    1.5% behind, on the exchange as in the books, and it is that stop which sells when the price turns."""
    monkeypatch.setenv("TRIPLEGAIN_WATCH__TRAILING_STOP", "true")
    trading_cycle(at=BUYING_HOUR)
    (old_stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    (old_take,) = [o for o in kraken.orders.values() if o.ordertype == "take-profit"]
    kraken.set_price("XBTUSDT", "62901.01")
    kraken.now = parse_time("2024-06-30T23:30Z")  # the candles opened by then, the 22:00 one closed

    watched = market_watch(at="2024-06-30T23:30Z")

    assert watched.status is CycleStatus.COMPLETED, watched.notes
    (position,) = watched.portfolio.positions
    assert position.stop_loss == Decimal("62007.92")  # 62952.2 less 1.5%, on the symbol's 2 decimals
    assert old_stop.status == old_take.status == "canceled"
    resting = {o.ordertype: o for o in open_orders(kraken)}
    assert resting["stop-loss"].price == Decimal("62008.0")  # the exchange's tick, rounded towards the price
    assert resting["take-profit"].price == old_take.price  # the take-profit kept
    assert all(o.volume == position.size for o in resting.values())
    assert reconcile().differences == []  # the books know the new pair (generation 1)
    assert market_watch(at="2024-06-30T23:35Z").status is CycleStatus.COMPLETED  # moved once: nothing sent
    assert len([o for o in kraken.orders.values() if o.ordertype == "stop-loss"]) == 2

    kraken.set_price("XBTUSDT", "62000")  # the price turns: the trailed stop sells, not the first one
    after = market_watch(at="2024-06-30T23:40Z")

    assert after.portfolio.positions == [] and resting["stop-loss"].status == "closed"
    assert after.portfolio.balances["USDT"] == kraken.balances["USDT"]


def test_a_watch_killed_moving_a_stop_has_its_pair_placed_again_by_the_next_reconciliation(
    kraken: FakeKraken, project_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGKILL of `triplegain watch` between cancelling the old pair (the take-profit's cancel done,
    its reply held back) and placing the trailed one: the journal says a run of ours cancelled it, so the
    next reconciliation places the next pair at the levels it knew, as it finishes any protection a
    stopped run left unplaced (a pair cancelled by hand still needs the operator's word: see below)."""
    monkeypatch.setenv("TRIPLEGAIN_WATCH__TRAILING_STOP", "true")
    trading_cycle(at=BUYING_HOUR)
    (old_stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    (old_take,) = [o for o in kraken.orders.values() if o.ordertype == "take-profit"]
    kraken.set_price("XBTUSDT", "62901.01")
    kraken.now = parse_time("2024-06-30T23:30Z")
    killed_at(kraken, tmp_path, ["watch", "--at", "2024-06-30T23:30Z"], "CancelOrder", 2)
    assert old_stop.status == old_take.status == "canceled"
    assert open_orders(kraken) == []  # unprotected, for now

    found = reconcile()

    assert [(d.kind, d.explained) for d in found.differences] == [
        ("order_changed", True),  # the take-profit's cancel, whose reply the killed run never read
        ("protection_placed", True),  # the next pair, at once
    ]
    assert found.trading_allowed, found.report()
    resting = {o.ordertype: o for o in open_orders(kraken)}
    assert resting["stop-loss"].price == old_stop.price and resting["take-profit"].price == old_take.price
    assert reconcile().differences == []  # placed once
    watched = market_watch(at="2024-06-30T23:35Z")  # the next watch trails it again
    assert watched.status is CycleStatus.COMPLETED, watched.notes
    (stop,) = [o for o in open_orders(kraken) if o.ordertype == "stop-loss"]
    assert stop.price == Decimal("62008.0")


def test_a_watch_killed_after_placing_the_trailed_stop_leaves_the_position_protected_once(
    kraken: FakeKraken, project_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGKILL of `triplegain watch` once the trailed stop-loss is on the exchange (its reply held
    back) and before its take-profit: the next reconciliation finds the run's half-placed pair and
    completes it, the position protected once (one stop-loss, one take-profit, for all it holds), and the
    watches after it go on trailing without a second stop resting. (The killed run never committed the
    trailed level to the books: the next watch trails to it again, replacing the pair at the same price.)"""
    monkeypatch.setenv("TRIPLEGAIN_WATCH__TRAILING_STOP", "true")
    trading_cycle(at=BUYING_HOUR)
    (old_take,) = [o for o in kraken.orders.values() if o.ordertype == "take-profit"]
    kraken.set_price("XBTUSDT", "62901.01")
    kraken.now = parse_time("2024-06-30T23:30Z")
    killed_at(kraken, tmp_path, ["watch", "--at", "2024-06-30T23:30Z"], "AddOrder", 1)  # the trailed stop
    (trailed,) = open_orders(kraken)
    assert trailed.ordertype == "stop-loss" and trailed.price == Decimal("62008.0")  # no take-profit yet

    found = reconcile()

    assert found.trading_allowed, found.report()
    resting = {o.ordertype: o for o in open_orders(kraken)}
    assert sorted(o.ordertype for o in open_orders(kraken)) == ["stop-loss", "take-profit"]
    assert resting["stop-loss"] is trailed and resting["take-profit"].price == old_take.price
    assert all(o.volume == kraken.balances["XXBT"] for o in resting.values())  # all the position holds
    assert reconcile().differences == []  # completed once

    watched = market_watch(at="2024-06-30T23:35Z")

    assert watched.status is CycleStatus.COMPLETED, watched.notes
    (position,) = watched.portfolio.positions
    assert position.size == kraken.balances["XXBT"]
    # the books learn the trailed level from this watch, which replaces the pair at the same price once
    assert position.stop_loss == Decimal("62007.92")
    open_stops = [o for o in open_orders(kraken) if o.ordertype == "stop-loss"]
    assert [o.price for o in open_stops] == [Decimal("62008.0")]
    assert len(open_orders(kraken)) == 2
    kraken.set_price("XBTUSDT", "62000")  # the price turns: the trailed stop sells, once
    after = market_watch(at="2024-06-30T23:40Z")
    assert after.portfolio.positions == [] and open_orders(kraken) == []
    assert after.portfolio.balances["USDT"] == kraken.balances["USDT"]
    assert after.portfolio.balances.get("BTC", Decimal(0)) == kraken.balances.get("XXBT", Decimal(0))


def test_a_watch_killed_while_its_breaker_reduce_sells_is_recorded_at_the_sales_fill_and_the_rest_protected(
    kraken: FakeKraken, project_db: str, tmp_path: Path
) -> None:
    """A real SIGKILL of `triplegain watch` while the weekly-loss breaker's reduce sells half the position
    (the pair cancelled, the sale's reply held back). The next reconciliation builds the sale from its
    plan: trading stops until the operator's word records it, at its real fill, and what is left is
    protected at once, at the position's levels; nothing rests for what was sold."""
    trading_cycle(at=BUYING_HOUR)
    (old_stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    bought = kraken.balances["XXBT"]
    kraken.set_price("XBTUSDT", "61990")  # a little lower: above the stop, below the entry
    killed_at(  # at the reduce's sale; the fees alone trip the weekly-loss breaker at this limit
        kraken,
        tmp_path,
        ["watch", "--at", "2024-06-30T20:30Z"],
        "AddOrder",
        1,
        TRIPLEGAIN_RISK__WEEKLY_LOSS_PCT="0.0001",
    )
    assert [o.status for o in kraken.orders.values() if o.ordertype != "market"] == ["canceled"] * 2
    held = kraken.balances["XXBT"]
    assert 0 < held < bought  # half sold on the exchange, not in the books

    found = reconcile()

    assert not found.trading_allowed
    assert [d.kind for d in found.unexplained] == ["unrecorded_execution"]
    assert "which reduced position" in found.unexplained[0].detail
    resting = {o.ordertype: o for o in open_orders(kraken)}
    assert sorted(resting) == ["stop-loss", "take-profit"]  # for what is held, not for what was sold
    assert all(o.volume == held for o in resting.values()) and resting["stop-loss"].price == old_stop.price

    after = reconcile(accept=True, reason="the 20:30 watch was killed reducing", by="ops")

    assert after.trading_allowed, after.report()
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as session:
        (position,) = load_account(session, {}).positions
        (sold,) = session.scalars(select(PositionRow).where(PositionRow.status == "closed")).all()
    assert position.size == held
    (sale,) = [o for o in SqlOrderJournal(engine).orders() if o.intent.purpose == "reduce"]
    assert sold.size == bought - held and sold.exit_price == sale.average_price  # its fill, not a guess
    assert sold.close_reason == "circuit_breaker"
    assert reconcile().differences == []  # whole now


def test_a_cycle_killed_before_its_entrys_reply_came_is_recorded_at_its_fill_and_never_bought_twice(
    kraken: FakeKraken, project_db: str, tmp_path: Path
) -> None:
    """A real SIGKILL of `triplegain run` while the exchange holds back its reply to the entry's market buy
    (filled there, never read). Without the entry's plan the next cycle saw a status change only and
    bought again, the first purchase unrecorded and unprotected. Now the next run stops before any order,
    protects what was bought, and the operator's word records the position at its real fill."""
    killed_at(kraken, tmp_path, ["run", "--at", BUYING_HOUR], "AddOrder", 1)
    (entry,) = kraken.orders.values()
    assert entry.ordertype == "market" and entry.status == "closed"  # filled, its reply never read

    later = trading_cycle(at="2024-06-30T21:00Z")

    assert later.status is CycleStatus.SKIPPED and "unrecorded_execution" in later.notes[0]
    assert [o.ordertype for o in kraken.orders.values()].count("market") == 1  # not bought twice
    resting = {o.ordertype: o for o in open_orders(kraken)}
    assert sorted(resting) == ["stop-loss", "take-profit"]  # placed for what was bought, before accepting
    assert all(o.volume == entry.volume for o in resting.values())

    after = reconcile(accept=True, reason="the 20:00 run was killed buying", by="ops")

    assert after.trading_allowed, after.report()
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as session:
        account = load_account(session, {})
    (position,) = account.positions
    assert position.size == entry.volume == kraken.balances["XXBT"]
    (bought,) = [o for o in SqlOrderJournal(engine).orders() if o.intent.type == "market"]
    assert position.entry_price == bought.average_price  # the exchange's fill, as a clean run records it
    assert abs(position.entry_price - entry.cost / entry.vol_exec) < Decimal("0.000001")
    assert position.cycle_id == "cycle-20240630T2000Z" and position.stop_loss is not None
    assert abs(resting["stop-loss"].price - position.stop_loss) < Decimal("0.1")  # its level, to the tick
    assert account.balances["USDT"] == kraken.balances["USDT"]
    assert reconcile().differences == []  # whole now
    assert trading_cycle(at="2024-06-30T22:00Z").status is CycleStatus.COMPLETED
    assert SqlOrderJournal(engine).unrecorded_executions() == []


def test_a_trailed_stop_that_cannot_be_placed_closes_the_position_urgently(
    kraken: FakeKraken, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIPLEGAIN_WATCH__TRAILING_STOP", "true")
    trading_cycle(at=BUYING_HOUR)
    kraken.set_price("XBTUSDT", "62901.01")
    kraken.now = parse_time("2024-06-30T23:30Z")
    kraken.script("AddOrder", Fault.kraken_error("EOrder:Insufficient funds"))  # the new stop-loss

    watched = market_watch(at="2024-06-30T23:30Z")

    assert watched.portfolio.positions == []  # closed at market rather than left unguarded
    assert any(n.startswith("URGENT") for n in watched.notes), watched.notes
    assert open_orders(kraken) == []
    assert watched.portfolio.balances.get("BTC", Decimal(0)) == kraken.balances["XXBT"] == 0


def test_an_order_placed_by_hand_stops_the_run_before_any_order(kraken: FakeKraken) -> None:
    kraken.add_order("XBTUSDT", "buy", "limit", "0.001", "1000")

    report = trading_cycle(at=BUYING_HOUR)

    assert report.status is CycleStatus.SKIPPED and report.mode == "live"
    assert "external_order" in report.notes[0] and "no trading this run" in report.notes[0]
    assert [r for r in kraken.requests if r.method == "AddOrder"] == []


def test_live_without_the_confirmation_fails_naming_it(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRIPLEGAIN_CONFIRM_LIVE_TRADING")

    with pytest.raises(LiveTradingRefused, match="TRIPLEGAIN_CONFIRM_LIVE_TRADING"):
        trading_cycle(at=BUYING_HOUR)
    assert kraken.requests == []  # nothing asked of the exchange


def test_reconcile_shows_what_stops_trading_until_the_operator_accepts_it(kraken: FakeKraken) -> None:
    kraken.add_order("XBTUSDT", "buy", "limit", "0.001", "1000")  # a bid placed by hand on the website

    shown = CliRunner().invoke(app, ["reconcile"])
    still = reconcile()

    assert shown.exit_code == 3, shown.output
    assert "TRADING STOPPED" in shown.stdout and "external_order" in shown.stdout
    assert not still.trading_allowed  # adopted, but unexplained until the operator's word
    with pytest.raises(ConfigError, match="reason"):
        reconcile(accept=True)

    accepted = CliRunner().invoke(app, ["reconcile", "--accept", "--reason", "my bid", "--by", "ops"])

    assert accepted.exit_code == 0, accepted.output
    assert "trading allowed" in accepted.stdout
    assert trading_cycle(at=BUYING_HOUR).status is CycleStatus.COMPLETED


def test_an_accepted_balance_difference_becomes_the_accounts_balances(
    kraken: FakeKraken, project_db: str
) -> None:
    kraken.add_order("XBTUSDT", "buy", "market", "0.001")  # bought by hand: a fill the journal never saw

    before = reconcile()
    after = reconcile(accept=True, reason="bought by hand", by="ops")

    assert {d.kind for d in before.unexplained} == {"external_fill", "balance"}
    assert after.trading_allowed
    report = trading_cycle(at=BUYING_HOUR)
    assert report.portfolio.balances["USDT"] == kraken.balances["USDT"]
    assert report.portfolio.balances["BTC"] == kraken.balances["XXBT"]


def test_reconcile_refuses_a_paper_account(monkeypatch: pytest.MonkeyPatch, project_db: str) -> None:
    monkeypatch.delenv("TRIPLEGAIN_TRADING_MODE", raising=False)

    with pytest.raises(ConfigError, match="reconcile compares a live account"):
        reconcile()


def test_a_market_watch_on_a_live_account_reconciles_and_takes_the_exchanges_exits(
    kraken: FakeKraken,
) -> None:
    trading_cycle(at=BUYING_HOUR)
    (stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss" and o.status == "open"]
    kraken.set_price("XBTUSDT", str(stop.price - 1))  # the exchange sells between two runs

    report = market_watch(at="2024-06-30T20:30Z")

    assert report.mode == "live"
    (exit_,) = [e for o in report.symbols for e in o.exits]
    assert exit_.closed_positions[0].close_reason == "stop_loss"
    assert report.portfolio.balances["USDT"] == kraken.balances["USDT"]
    assert not open_orders(kraken)  # the take-profit was cancelled


def test_a_market_watch_with_something_unexplained_changes_nothing(kraken: FakeKraken) -> None:
    kraken.add_order("XBTUSDT", "buy", "limit", "0.001", "1000")

    with pytest.raises(CycleError, match="reconciliation found what it cannot explain"):
        market_watch(at="2024-06-30T20:30Z")
    assert [r for r in kraken.requests if r.method == "AddOrder"] == []


def test_an_exchange_that_does_not_answer_places_nothing_and_counts_towards_degradation(
    kraken: FakeKraken, project_db: str
) -> None:
    trading_cycle(at=BUYING_HOUR)
    placed = len(kraken.calls("AddOrder"))
    kraken.script("BalanceEx", Fault.http(503))  # the private API is down, market data still answers

    report = trading_cycle(at="2024-06-30T21:00Z")

    assert report.status is CycleStatus.SKIPPED and "exchange_unanswered balances" in report.notes[0]
    assert len(kraken.calls("AddOrder")) == placed
    with unit_of_work(create_db_engine(project_db)) as session:
        health = load_account(session, {}).health
    assert health.api_failures == 1


def test_an_outage_before_the_accounts_first_run_counts_and_the_first_run_keeps_the_count(
    kraken: FakeKraken, project_db: str
) -> None:
    """No run has committed yet, so there was no row to count in: the outage makes it (as a fresh account
    loads), and the first cycle that gets through claims the account as new, counters kept."""
    kraken.script("BalanceEx", Fault.http(503), Fault.http(503))

    first = trading_cycle(at=BUYING_HOUR)
    with pytest.raises(CycleError, match="reconciliation found"):
        market_watch(at="2024-06-30T20:05Z")

    assert first.status is CycleStatus.SKIPPED
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as session:
        before = load_account(session, {"USDT": Decimal(10000)})
    assert (before.version, before.health.api_failures) == (0, 2)  # both counted, the account still fresh
    later = trading_cycle(at="2024-06-30T21:00Z")
    assert later.status is CycleStatus.COMPLETED, later.notes
    with unit_of_work(engine) as session:
        after = load_account(session, {"USDT": Decimal(10000)})
    assert (after.version, after.health.api_failures) == (1, 1)  # kept on claim; one success took one back


def test_a_stop_the_exchange_refuses_closes_the_position_and_raises_an_urgent_event(
    kraken: FakeKraken, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, dict[str, str]]] = []
    monkeypatch.setattr("tasks.live.emit_event", lambda event, resource, **_: sent.append((event, resource)))
    kraken.script("AddOrder", Fault.ok(), Fault.kraken_error("EOrder:Invalid price"))  # entry, then its stop

    report = trading_cycle(at=BUYING_HOUR)

    urgent = [n for n in report.notes if n.startswith("URGENT")]
    assert urgent and "is not protected on the exchange" in urgent[0]
    assert report.portfolio.positions == []  # closed at once
    assert kraken.balances.get("XXBT", Decimal(0)) == 0
    assert [r["triplegain.reason"] for e, r in sent if e == "triplegain.risk.urgent"] == urgent
    assert ("triplegain.reconciliation.passed", "the account agrees with the exchange") in [
        (e, r["triplegain.reason"]) for e, r in sent
    ]


@contextmanager
def killed_before_its_commit(where: str) -> Iterator[None]:
    """The run stops after its orders filled and before it records anything: what a process killed at that
    instant leaves in the database (the journal's own commits, nothing of the run's unit of work). Prefect
    reports the run as crashed."""

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("killed before the run recorded its work")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(where, killed)
        with pytest.raises(KeyboardInterrupt, match="killed before"):
            yield


def test_a_run_killed_after_its_entry_filled_is_recorded_on_the_operators_word(
    kraken: FakeKraken, project_db: str
) -> None:
    with killed_before_its_commit("flows.trading_cycle.save_cycle"):
        trading_cycle(at=BUYING_HOUR)
    bought = len(kraken.calls("AddOrder"))
    assert bought == 3  # the entry, its stop-loss and take-profit, all on the exchange
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as session:
        assert load_account(session, {"USDT": Decimal(10000)}).positions == []  # nothing of it recorded

    found = reconcile()

    assert [d.kind for d in found.unexplained] == ["unrecorded_execution"]  # the balances it explains
    assert "opened position" in found.unexplained[0].detail
    assert trading_cycle(at="2024-06-30T21:00Z").status is CycleStatus.SKIPPED  # stopped until then

    after = reconcile(accept=True, reason="the 20:00 run was killed", by="ops")

    assert after.trading_allowed, after.report()
    with unit_of_work(engine) as session:
        account = load_account(session, {"USDT": Decimal(10000)})
    (position,) = account.positions
    assert position.symbol == "BTC/USDT" and position.size == kraken.balances["XXBT"]
    assert account.balances["USDT"] == kraken.balances["USDT"]
    again = trading_cycle(at=BUYING_HOUR)  # the killed run's hour, started again: read back, not re-traded
    assert again.replayed and again.status is CycleStatus.FAILED and "recorded by ops" in again.notes[0]
    assert len(kraken.calls("AddOrder")) == bought  # nothing sent again
    later = trading_cycle(at="2024-06-30T21:00Z")  # adds to the position, as it does after a clean 20:00
    assert later.status is CycleStatus.COMPLETED
    assert [p.cycle_id for p in later.portfolio.positions] == ["cycle-20240630T2000Z", "cycle-20240630T2100Z"]
    # to the exchange's last decimal: ccxt hands the second fill's cost as a float (999.7397621800001)
    assert later.portfolio.balances == {"USDT": kraken.balances["USDT"], "BTC": kraken.balances["XXBT"]}
    sent = [c.fields["cl_ord_id"] for c in kraken.calls("AddOrder")]
    assert len(sent) == 2 * bought and len(set(sent)) == len(sent)  # no order placed twice
    assert SqlOrderJournal(engine).unrecorded_executions() == []


def test_a_watch_killed_after_the_exchange_sold_a_position_records_the_exit_on_the_operators_word(
    kraken: FakeKraken, project_db: str
) -> None:
    trading_cycle(at=BUYING_HOUR)
    (stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss" and o.status == "open"]
    kraken.set_price("XBTUSDT", str(stop.price - 1))  # the exchange sells between two runs
    with killed_before_its_commit("flows.runs.save_cycle"):
        market_watch(at="2024-06-30T20:30Z")  # it saw the exit, cancelled the take-profit, then died

    found = reconcile()

    assert [d.kind for d in found.unexplained] == ["unrecorded_execution"]  # no missing protection
    assert "stop_loss" in found.unexplained[0].detail
    assert reconcile(accept=True, reason="the 20:30 watch was killed", by="ops").trading_allowed
    with unit_of_work(create_db_engine(project_db)) as session:
        account = load_account(session, {})
    assert account.positions == []
    assert account.balances["USDT"] == kraken.balances["USDT"]
    assert trading_cycle(at="2024-06-30T21:00Z").status is CycleStatus.COMPLETED


def test_a_cycle_process_killed_placing_the_entrys_stop_loses_nothing(
    kraken: FakeKraken, project_db: str, tmp_path: Path
) -> None:
    """A real SIGKILL of `triplegain run` in its own process: the entry filled, the stop-loss was accepted
    by the exchange and its reply is held back; the process dies there, before the take-profit and before
    the run records anything."""
    # while the exchange holds back the reply to its stop-loss
    output = killed_at(kraken, tmp_path, ["run", "--at", BUYING_HOUR], "AddOrder", 2)
    assert "another run holds the live account" not in output  # the turn was free: it never waited
    engine = create_db_engine(project_db)
    with take_account_turn(engine, 0):  # its killed holder let go of the account's turn at once
        pass
    journal = SqlOrderJournal(engine)
    (entry,) = journal.unrecorded_executions()  # journalled as it filled, before the stop was sent
    (stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    assert not [o for o in kraken.orders.values() if o.ordertype == "take-profit"]  # died before it

    found = reconcile()

    position = entry.execution.opened_position
    assert position is not None
    assert [(d.kind, d.explained) for d in found.differences] == [
        ("order_changed", True),  # the stop whose reply was lost: found by its client id, open
        ("unrecorded_execution", False),
        ("protection_placed", True),  # the take-profit the run never placed
    ]
    (take,) = [o for o in kraken.orders.values() if o.ordertype == "take-profit"]
    assert take.volume == stop.volume == position.size and take.status == stop.status == "open"
    assert reconcile().differences == [found.differences[1]]  # placed once: whole from now on
    assert reconcile(accept=True, reason="the 20:00 run was killed", by="ops").trading_allowed
    later = trading_cycle(at="2024-06-30T21:00Z")
    assert later.status is CycleStatus.COMPLETED
    assert [p.cycle_id for p in later.portfolio.positions] == ["cycle-20240630T2000Z", "cycle-20240630T2100Z"]
    protective = [o for o in kraken.orders.values() if o.ordertype != "market"]
    assert len(protective) == 4 and all(o.status == "open" for o in protective)  # a pair per position
    kraken.set_price("XBTUSDT", str(take.price + 1))  # the recovered position's take-profit fills
    watched = market_watch(at="2024-06-30T21:30Z")
    assert watched.status is CycleStatus.COMPLETED, watched.notes
    assert take.status == "closed" and stop.status == "canceled"  # its stop released, none orphaned


def test_protection_cancelled_by_hand_is_placed_again_on_the_operators_word(
    kraken: FakeKraken, project_db: str
) -> None:
    trading_cycle(at=BUYING_HOUR)
    (stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    (take,) = [o for o in kraken.orders.values() if o.ordertype == "take-profit"]
    take.status = "canceled"  # cancelled by hand on the exchange's website

    found = reconcile()

    assert [d.kind for d in found.unexplained] == ["protection_missing"]
    assert trading_cycle(at="2024-06-30T21:00Z").status is CycleStatus.SKIPPED
    with pytest.raises(ValueError, match="reconcile --protect"):
        reconcile(accept=True, reason="fine", by="ops")  # cannot be accepted away
    with pytest.raises(ConfigError, match="reason"):
        reconcile(protect=True)

    after = CliRunner().invoke(
        app, ["reconcile", "--protect", "--reason", "the take-profit was cancelled by mistake", "--by", "ops"]
    )

    assert after.exit_code == 0 and "trading allowed" in after.stdout, after.output
    resting = open_orders(kraken)
    assert sorted(o.ordertype for o in resting) == ["stop-loss", "take-profit"]
    assert stop.status == "canceled" and all(o.volume == stop.volume for o in resting)  # a new pair
    assert {o.price for o in resting} == {stop.price, take.price}  # at the position's levels
    journal = SqlOrderJournal(create_db_engine(project_db))
    placed = [s for s in journal.orders() if s.exchange_id in {o.txid for o in resting}]
    assert all(
        any("on the word of ops" in line.note for line in journal.log(s.intent.client_id)) for s in placed
    )
    assert reconcile(protect=True, reason="again", by="ops").differences == []  # nothing more to place
    assert len([o for o in kraken.orders.values() if o.ordertype != "market"]) == 4
    assert trading_cycle(at="2024-06-30T22:00Z").status is CycleStatus.COMPLETED


def test_a_position_sold_by_hand_is_closed_on_the_operators_word_and_its_protection_cancelled(
    kraken: FakeKraken, project_db: str
) -> None:
    first = trading_cycle(at=BUYING_HOUR)
    (position,) = first.portfolio.positions
    kraken.add_order("XBTUSDT", "sell", "market", str(kraken.balances["XXBT"]))  # sold by hand
    (sale,) = [o for o in kraken.orders.values() if o.ordertype == "market" and o.side == "sell"]

    found = reconcile()

    kinds = sorted(d.kind for d in found.unexplained)
    assert kinds == ["balance", "balance", "external_fill", "position_unheld"]  # not trading on a ghost
    assert trading_cycle(at="2024-06-30T21:00Z").status is CycleStatus.SKIPPED

    after = reconcile(accept=True, reason="sold it myself", by="ops")

    assert after.trading_allowed, after.report()
    engine = create_db_engine(project_db)
    with unit_of_work(engine) as session:
        account = load_account(session, {})
    assert account.positions == [] and account.balances["USDT"] == kraken.balances["USDT"]
    resting = open_orders(kraken)
    assert resting == []  # its stop-loss and take-profit cancelled: they would sell later positions' BTC
    with unit_of_work(engine) as session:
        (run_id,) = session.scalars(select(CycleRow.id).where(CycleRow.id.like("outside-%")))
        closed = load_report(session, run_id)
    assert closed is not None and "sold it myself" in closed.notes[0]
    (exit_,) = closed.symbols[0].exits
    assert exit_.fill is not None and exit_.fill.price == Decimal(kraken.trades[sale.trades[0]]["price"])
    assert exit_.closed_positions[0].id == position.id
    later = trading_cycle(at="2024-06-30T22:00Z")
    assert later.status is CycleStatus.COMPLETED
    assert all(p.cycle_id == "cycle-20240630T2200Z" for p in later.portfolio.positions)


def test_a_position_partly_sold_by_hand_is_reduced_and_what_is_left_stays_protected(
    kraken: FakeKraken, project_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    trading_cycle(at=BUYING_HOUR)
    (old_stop,) = [o for o in kraken.orders.values() if o.ordertype == "stop-loss"]
    kraken.add_order("XBTUSDT", "sell", "market", "0.01")  # part of it, its fee in BTC (Kraken's default)
    left = kraken.balances["XXBT"]

    with caplog.at_level(logging.WARNING):
        after = reconcile(accept=True, reason="sold some myself", by="ops")

    assert after.trading_allowed, after.report()
    with unit_of_work(create_db_engine(project_db)) as session:
        (position,) = load_account(session, {}).positions
    assert position.size == left.quantize(Decimal("0.00000001"), ROUND_DOWN)  # on the lot grid
    resting = open_orders(kraken)
    assert sorted(o.ordertype for o in resting) == ["stop-loss", "take-profit"]
    assert all(o.volume == position.size for o in resting) and old_stop.status == "canceled"
    assert f"reduced to {position.size}" in caplog.text and "in no position" not in caplog.text  # all kept
    assert reconcile().trading_allowed  # whole now
    (stop,) = [o for o in resting if o.ordertype == "stop-loss"]
    kraken.set_price("XBTUSDT", str(stop.price - 1))  # the rest's stop fills on the exchange
    watched = market_watch(at="2024-06-30T20:30Z")
    assert watched.status is CycleStatus.COMPLETED, watched.notes
    with unit_of_work(create_db_engine(project_db)) as session:
        assert load_account(session, {}).positions == []  # the rest sold by its own stop, recorded


def test_an_accept_killed_while_it_resizes_the_protection_is_finished_by_accepting_again(
    kraken: FakeKraken, project_db: str, tmp_path: Path
) -> None:
    """A real SIGKILL of `triplegain reconcile --accept` after it placed the smaller pair's stop-loss and
    while the exchange holds back the take-profit's reply, before it recorded the reduce: accepting again
    finishes it, with one pair resting for what is held."""
    trading_cycle(at=BUYING_HOUR)
    kraken.add_order("XBTUSDT", "sell", "market", "0.01")  # part of it, sold by hand
    accept = ["reconcile", "--accept", "--reason", "sold some myself", "--by", "ops"]
    killed_at(kraken, tmp_path, accept, "AddOrder", 2)  # at the smaller pair's take-profit
    assert len(open_orders(kraken)) == 2  # the new pair, resting

    after = reconcile(accept=True, reason="sold some myself", by="ops")

    assert after.trading_allowed, after.report()
    with unit_of_work(create_db_engine(project_db)) as session:
        (position,) = load_account(session, {}).positions
    assert position.size == kraken.balances["XXBT"].quantize(Decimal("0.00000001"), ROUND_DOWN)
    resting = open_orders(kraken)
    assert sorted(o.ordertype for o in resting) == ["stop-loss", "take-profit"]  # one pair, not two
    assert all(o.volume == position.size for o in resting)
    assert reconcile().differences == []


def test_a_watch_started_while_a_cycle_trades_waits_its_turn(
    kraken: FakeKraken, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cycle's entry has filled and its stop-loss's reply is held back when the watch starts: without
    turns the watch would find the entry unrecorded and fail; it waits, then finds the account whole."""
    monkeypatch.setenv("TRIPLEGAIN_EXECUTION__TIMEOUT_SECONDS", "8")  # the cycle stays mid-way 8 s
    kraken.script("AddOrder", Fault.ok(), Fault.accept_then_time_out(seconds=10))
    results: dict[str, object] = {}

    def run(name: str, call: Callable[[], object]) -> None:
        try:
            results[name] = call()
        except Exception as e:  # reported below
            results[name] = e

    cycle = threading.Thread(target=run, args=("cycle", lambda: trading_cycle(at=BUYING_HOUR)))
    cycle.start()
    deadline = time.monotonic() + 120
    while len(kraken.calls("AddOrder")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    watch = threading.Thread(target=run, args=("watch", lambda: market_watch(at="2024-06-30T20:05Z")))
    watch.start()
    cycle.join(timeout=180)
    watch.join(timeout=180)

    assert isinstance(results["cycle"], CycleReport) and results["cycle"].status is CycleStatus.COMPLETED
    assert isinstance(results["watch"], CycleReport), results["watch"]
    assert results["watch"].status is CycleStatus.COMPLETED
    methods = [r.method for r in kraken.requests]
    last_order = len(methods) - 1 - methods[::-1].index("AddOrder")
    assert "BalanceEx" in methods[last_order:]  # the watch reconciled after the cycle's last order


def test_a_run_that_waits_its_turn_in_vain_does_nothing(
    kraken: FakeKraken, project_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trading_cycle(at=BUYING_HOUR)
    asked = len(kraken.requests)
    monkeypatch.setenv("TRIPLEGAIN_EXECUTION__ACCOUNT_WAIT_SECONDS", "1")

    with (
        take_account_turn(create_db_engine(project_db), 0),  # another run holds the account
        pytest.raises(CycleError, match="held the live account for 1 s; nothing done"),
    ):
        market_watch(at="2024-06-30T20:05Z")

    assert len(kraken.requests) == asked  # not even a reconciliation
    monkeypatch.delenv("TRIPLEGAIN_EXECUTION__ACCOUNT_WAIT_SECONDS")
    assert market_watch(at="2024-06-30T20:05Z").status is CycleStatus.COMPLETED  # its turn, later


def test_a_run_in_another_process_without_a_prefect_server_waits_for_the_same_turn(
    kraken: FakeKraken, project_db: str, tmp_path: Path
) -> None:
    """`triplegain reconcile` from cron (no PREFECT_API_URL: a temporary Prefect server of its own) while a
    run of this process holds the account: the turn is the database's, so the command waits, gives up and
    sends nothing."""
    trading_cycle(at=BUYING_HOUR)
    asked = len(kraken.requests)
    env = cli_env(tmp_path, TRIPLEGAIN_EXECUTION__ACCOUNT_WAIT_SECONDS="1")

    with take_account_turn(create_db_engine(project_db), 0, holder="the test's run"):
        shown = CliRunner().invoke(app, ["status"])
        waited = subprocess.run(
            [sys.executable, "-c", PROBE, "reconcile"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )

    assert "held the live account for 1 s; nothing done" in waited.stdout + waited.stderr
    assert "another run holds the live account (the test's run (pid" in waited.stderr  # who, said
    assert "live account's turn: the test's run (pid" in shown.output  # `triplegain status` says it too
    assert "live account's turn: free" in CliRunner().invoke(app, ["status"]).output
    assert "exit 0" not in waited.stdout
    assert len(kraken.requests) == asked  # it sent nothing
    assert reconcile().trading_allowed  # the turn is free again
    assert market_watch(at="2024-06-30T20:05Z").status is CycleStatus.COMPLETED  # its turn, later
