"""Kept candles: an exchange serving only its newest 720 hours still feeds a live run the lookback a backtest
of the same hour gets, once the history is kept, and never across a hole in what was kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.fakes.history import NewestOnly, ohlcvt_file, same_candles
from triplegain.errors import MarketDataError
from triplegain.market import ReplaySource
from triplegain.market.history import KeptCandles, MemoryCandleStore, joined, merged, read_history_file
from triplegain.settings import MarketSettings

LOOKBACK = MarketSettings().lookback_candles  # 1000
HOUR = timedelta(hours=1)
END = datetime.fromisoformat("2024-06-30T20:00Z")


def test_without_kept_history_a_live_run_sees_only_the_exchanges_720(replay: ReplaySource) -> None:
    source = KeptCandles(NewestOnly(replay), MemoryCandleStore())

    candles = source.candles("BTC/USDT", END, LOOKBACK)

    assert len(candles) == 720 and same_candles(candles, replay.candles("BTC/USDT", END, 720))


def test_hourly_runs_fill_the_store_until_a_run_gets_exactly_the_backtests_candles(
    replay: ReplaySource,
) -> None:
    store = MemoryCandleStore()
    source = KeptCandles(NewestOnly(replay), store)
    first = END - 280 * HOUR
    lengths = [len(source.candles("BTC/USDT", first + h * HOUR, LOOKBACK)) for h in range(281)]

    assert lengths[0] == 720 and lengths[-1] == LOOKBACK
    assert lengths == [min(720 + h, LOOKBACK) for h in range(281)]  # one more kept candle every hour
    assert same_candles(source.candles("BTC/USDT", END, LOOKBACK), replay.candles("BTC/USDT", END, LOOKBACK))


def test_an_imported_history_gives_the_full_lookback_from_the_first_run(replay: ReplaySource) -> None:
    store = MemoryCandleStore()
    store.keep("ccxt:kraken", "BTC/USDT", replay.candles("BTC/USDT", END - 300 * HOUR, 2000))
    source = KeptCandles(NewestOnly(replay), store)

    assert same_candles(source.candles("BTC/USDT", END, LOOKBACK), replay.candles("BTC/USDT", END, LOOKBACK))


def test_candles_kept_before_a_hole_are_not_joined_to_a_fetch_after_it(replay: ReplaySource) -> None:
    store = MemoryCandleStore()
    source = KeptCandles(NewestOnly(replay), store)
    before = END - 1000 * HOUR  # the process then stopped for longer than the exchange's 720 hours
    source.candles("BTC/USDT", before, LOOKBACK)

    candles = source.candles("BTC/USDT", END, LOOKBACK)

    assert len(candles) == 720  # the 280 hours between were never fetched: nothing older is joined
    assert len(store.spans[("ccxt:kraken", "BTC/USDT")]) == 2
    assert store.before("ccxt:kraken", "BTC/USDT", int(candles.timestamps[0]), 500).timestamps.size == 0


def test_symbols_and_sources_are_kept_apart(replay: ReplaySource) -> None:
    store = MemoryCandleStore()
    KeptCandles(NewestOnly(replay), store).candles("BTC/USDT", END - 300 * HOUR, LOOKBACK)
    source = KeptCandles(NewestOnly(replay), store)

    assert len(source.candles("XRP/USDT", END, LOOKBACK)) == 720
    assert len(store.before("ccxt:binance", "BTC/USDT", int(END.timestamp()), 100)) == 0


def test_a_fetch_as_long_as_the_lookback_is_served_as_fetched(replay: ReplaySource) -> None:
    exchange = NewestOnly(replay, cap=5000)
    source = KeptCandles(exchange, MemoryCandleStore())

    assert same_candles(source.candles("BTC/USDT", END, LOOKBACK), replay.candles("BTC/USDT", END, LOOKBACK))


def test_spans_join_when_they_touch_or_overlap_not_across_a_missing_hour() -> None:
    h = 3600
    assert merged([(10 * h, 20 * h), (0, 9 * h)]) == [(0, 20 * h)]  # the next hour: touching
    assert merged([(0, 10 * h), (5 * h, 8 * h)]) == [(0, 10 * h)]
    assert merged([(0, 8 * h), (10 * h, 12 * h)]) == [(0, 8 * h), (10 * h, 12 * h)]  # 9 h never covered


def test_joining_refuses_series_that_overlap(replay: ReplaySource) -> None:
    a = replay.candles("BTC/USDT", END, 10)
    with pytest.raises(ValueError, match="must end before"):
        joined(a, a)


def test_kraken_ohlcvt_history_files_are_read(tmp_path: Path, replay: ReplaySource) -> None:
    candles = replay.candles("BTC/USDT", END, 3)
    path = ohlcvt_file(tmp_path / "XBTUSDT_60.csv", candles)

    assert same_candles(read_history_file(path), candles)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no candles"),
        ("1719777600,1,2,0.5,1.5\n", r"XBTUSDT_60.csv:1: expected a header .* got 5 fields"),
        ("1719777600,1,2,0.5,1.5,10,3\n1719781200,x,2,0.5,1.5,10,3\n", r":2: .* not a number"),
        ("1719777600,1,2,0.5,1.5,10,3\n1719778500,1,2,0.5,1.5,10,3\n", r":2: timestamp is not on the hour"),
        ("1719777600,1,2,0.5,1.5,10,3\n1719864000,1,2,0.5,1.5,10,3\n", "86400 s apart: .* hourly"),
        ("1719777600,1,0.9,0.5,1.5,10,3\n", ":1: high is below"),
    ],
)
def test_a_malformed_history_file_is_refused_naming_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "XBTUSDT_60.csv"
    path.write_text(text)
    with pytest.raises(MarketDataError, match=message):
        read_history_file(path)


def test_the_projects_csv_format_is_read_too(replay: ReplaySource) -> None:
    from triplegain.market.replay import csv_path

    path = csv_path(replay.data_dir, "XRP/USDT")
    assert same_candles(read_history_file(path), replay.series("XRP/USDT"))
