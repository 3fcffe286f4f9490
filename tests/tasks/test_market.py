"""The snapshot task retries a transiently unreachable source, and only that."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import triplegain.market
from tasks.market import fetch_snapshot
from triplegain.errors import MarketDataError, MarketDataUnavailable
from triplegain.market import MarketDataSource, ReplaySource
from triplegain.models.market import CandleSeries
from triplegain.settings import Settings

AT = datetime(2024, 6, 1, 12, tzinfo=UTC)


class FlakySource(MarketDataSource):
    """Fails the first `failures` calls with `error`, then serves the bundled data."""

    name = "flaky"

    def __init__(self, failures: int, error: MarketDataError) -> None:
        self.failures, self.error, self.calls = failures, error, 0
        self.replay = ReplaySource()

    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.replay.candles(symbol, until, limit)


@pytest.fixture
def install(settings: Settings) -> Iterator[object]:
    key = triplegain.market.source_key(settings.market)

    def put(source: MarketDataSource) -> MarketDataSource:
        triplegain.market._shared[key] = source
        return source

    yield put
    triplegain.market._shared.pop(key, None)


def test_unreachable_source_is_retried(settings: Settings, install: object) -> None:
    source = install(FlakySource(2, MarketDataUnavailable("exchange down")))  # type: ignore[operator]

    snapshot = fetch_snapshot.with_options(retry_delay_seconds=0)("BTC/USDT", AT, settings)

    assert source.calls == 3 and snapshot.symbol == "BTC/USDT"


def test_bad_data_is_not_retried(settings: Settings, install: object) -> None:
    source = install(FlakySource(5, MarketDataError("malformed row")))  # type: ignore[operator]

    with pytest.raises(MarketDataError, match="malformed row"):
        fetch_snapshot.with_options(retry_delay_seconds=0)("BTC/USDT", AT, settings)

    assert source.calls == 1
