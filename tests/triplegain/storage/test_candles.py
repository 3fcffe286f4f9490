"""Kept candles in the database, on SQLite and PostgreSQL: read back exactly, kept once however often (and
however many processes) keep them, and never joined across a hole in what was covered."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from tests.fakes.history import NewestOnly, same_candles
from triplegain.market import ReplaySource
from triplegain.market.history import KeptCandles
from triplegain.storage.candles import SqlCandleStore

END = datetime.fromisoformat("2024-06-30T20:00Z")
HOUR = timedelta(hours=1)
SOURCE = "ccxt:kraken"


def test_kept_candles_read_back_to_the_last_bit(engine: Engine, replay: ReplaySource) -> None:
    store = SqlCandleStore(engine)
    candles = replay.candles("XRP/USDT", END, 500)

    assert store.keep(SOURCE, "XRP/USDT", candles) == 500
    assert store.keep(SOURCE, "XRP/USDT", candles) == 0  # kept once
    back = store.before(SOURCE, "XRP/USDT", int(candles.timestamps[-1]) + 3600, 500)
    assert same_candles(back, candles)
    assert store.count(SOURCE, "XRP/USDT") == 500
    assert store.spans(SOURCE, "XRP/USDT") == [(int(candles.timestamps[0]), int(candles.timestamps[-1]))]


def test_a_live_source_on_the_database_reaches_the_backtests_lookback(
    engine: Engine, replay: ReplaySource
) -> None:
    store = SqlCandleStore(engine)
    source = KeptCandles(NewestOnly(replay), store)
    first = source.candles("BTC/USDT", END - 280 * HOUR, 1000)
    for h in range(1, 280, 7):  # runs every 7 hours: each fetch overlaps the last, the spans join
        source.candles("BTC/USDT", END - (280 - h) * HOUR, 1000)

    assert len(first) == 720
    assert same_candles(source.candles("BTC/USDT", END, 1000), replay.candles("BTC/USDT", END, 1000))
    assert len(store.spans(SOURCE, "BTC/USDT")) == 1


def test_no_join_across_a_hole(engine: Engine, replay: ReplaySource) -> None:
    store = SqlCandleStore(engine)
    source = KeptCandles(NewestOnly(replay), store)
    source.candles("BTC/USDT", END - 1000 * HOUR, 1000)

    assert len(source.candles("BTC/USDT", END, 1000)) == 720
    assert len(store.spans(SOURCE, "BTC/USDT")) == 2


def test_processes_keeping_the_same_candles_at_once_keep_each_once(
    engine: Engine, replay: ReplaySource
) -> None:
    candles = replay.candles("BTC/USDT", END, 720)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []
    new: list[int] = []

    def keep() -> None:
        try:
            store = SqlCandleStore(engine)
            barrier.wait()
            new.append(store.keep(SOURCE, "BTC/USDT", candles))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=keep) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    store = SqlCandleStore(engine)
    assert store.count(SOURCE, "BTC/USDT") == 720
    assert max(new) == 720  # every candle was new to the first; the others ignored what it inserted
    assert store.spans(SOURCE, "BTC/USDT") == [(int(candles.timestamps[0]), int(candles.timestamps[-1]))]
