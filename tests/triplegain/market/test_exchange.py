"""The ccxt adapter against a fake exchange object (no exchange is reachable from tests)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from triplegain.errors import ConfigError, MarketDataError, MarketDataUnavailable
from triplegain.market import CcxtSource, build_snapshot
from triplegain.settings import MarketSettings

AT = datetime(2024, 6, 1, 12, 20, tzinfo=UTC)


class FakeExchange:
    """Speaks the two ccxt methods the adapter uses; records calls; can be told to fail."""

    id = "fakex"

    def __init__(self, hours: int = 80, fail: Exception | None = None, last: float | None = 101.5) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail = fail
        self.last = last
        start = int((AT - timedelta(hours=hours)).replace(minute=0).timestamp()) * 1000
        self.rows = [[start + i * 3_600_000, 100.0, 102.0, 99.0, 101.0, 5.0] for i in range(hours + 1)]

    def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
        self.calls.append(("fetch_ohlcv", (symbol, timeframe, since, limit)))
        if self.fail:
            raise self.fail
        return [r for r in self.rows if r[0] >= since][:limit]

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        self.calls.append(("fetch_ticker", (symbol,)))
        if self.fail:
            raise self.fail
        return {"symbol": symbol, "last": self.last}


def test_candles_drop_the_candle_still_forming() -> None:
    exchange = FakeExchange()

    candles = CcxtSource(exchange).candles("BTC/USDT", AT, 60)

    assert len(candles) == 60
    assert candles.open_time(-1) == datetime(2024, 6, 1, 11, tzinfo=UTC)
    assert exchange.calls[0] == (
        "fetch_ohlcv",
        ("BTC/USDT", "1h", int(AT.timestamp() - 61 * 3600) * 1000, 61),
    )


def test_snapshot_prices_at_the_ticker() -> None:
    snapshot = build_snapshot(CcxtSource(FakeExchange()), "BTC/USDT", AT, MarketSettings())

    assert snapshot.current_price == Decimal("101.5")
    assert snapshot.source == "ccxt:fakex"


def test_ticker_without_a_price_falls_back_to_last_close() -> None:
    snapshot = build_snapshot(CcxtSource(FakeExchange(last=None)), "BTC/USDT", AT, MarketSettings())

    assert snapshot.current_price == Decimal("101.0")


@pytest.mark.parametrize(
    "error", [ccxt.NetworkError("down"), ccxt.RequestTimeout("slow"), ccxt.ExchangeNotAvailable("x")]
)
def test_network_failures_are_transient(error: Exception) -> None:
    with pytest.raises(MarketDataUnavailable, match="unreachable"):
        CcxtSource(FakeExchange(fail=error)).candles("BTC/USDT", AT, 60)


def test_refusals_are_not_transient() -> None:
    with pytest.raises(MarketDataError, match=r"refused: BadSymbol") as e:
        CcxtSource(FakeExchange(fail=ccxt.BadSymbol("no such market"))).candles("DOGE/USDT", AT, 60)

    assert not isinstance(e.value, MarketDataUnavailable)


def test_bad_rows_from_the_exchange_are_refused() -> None:
    exchange = FakeExchange()
    exchange.rows[-5][2] = 50.0  # high below low

    with pytest.raises(MarketDataError, match=r"ccxt:fakex BTC/USDT row .*high is below"):
        CcxtSource(exchange).candles("BTC/USDT", AT, 60)


def test_unknown_exchange_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"market\.exchange='nowhere'"):
        CcxtSource.create("nowhere", 1000)


def test_kraken_is_created_with_our_timeout_and_without_network() -> None:
    source = CcxtSource.create("kraken", 4321)

    assert source.name == "ccxt:kraken"
    assert source.exchange.timeout == 4321
