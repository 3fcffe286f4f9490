"""The market-data interface and the snapshot every agent starts from."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from triplegain.errors import MarketDataError
from triplegain.models.market import CANDLE_SECONDS, CandleSeries, MarketSnapshot, to_decimal
from triplegain.settings import MarketSettings


class MarketDataSource(ABC):
    """Where hourly candles come from: a replay of CSV files or an exchange."""

    name: str

    @abstractmethod
    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        """At most `limit` hourly candles that closed at or before `until`, oldest first."""

    def latest_price(self, symbol: str, at: datetime, candles: CandleSeries) -> Decimal:
        """The price to trade at: by default the close of the newest closed candle."""
        return to_decimal(candles.close[-1])


def build_snapshot(
    source: MarketDataSource, symbol: str, at: datetime, settings: MarketSettings
) -> MarketSnapshot:
    """The market for `symbol` as of `at`; raises MarketDataError when too little or too old."""
    candles = source.candles(symbol, at, settings.lookback_candles)
    if len(candles) < settings.min_candles:
        raise MarketDataError(
            f"{symbol}: only {len(candles)} closed candles before {at.isoformat()}, "
            f"need at least {settings.min_candles} ({source.name})"
        )
    last_open = candles.open_time(-1)
    snapshot = MarketSnapshot(
        symbol=symbol,
        timestamp=at,
        last_candle_at=last_open,
        current_price=source.latest_price(symbol, at, candles),
        candles=candles,
        source=source.name,
        missing_candles=candles.missing_candles(),
        zero_volume_candles=candles.zero_volume_candles(),
    )
    if snapshot.data_age > timedelta(hours=settings.max_data_age_hours):
        raise MarketDataError(
            f"{symbol}: data is stale: newest candle opened {last_open.isoformat()}, "
            f"{snapshot.data_age} before {at.isoformat()} (limit {settings.max_data_age_hours} h)"
        )
    return snapshot


def series_from_rows(rows: Sequence[Sequence[float]], where: Callable[[int], str]) -> CandleSeries:
    """Validate rows of (epoch seconds, open, high, low, close, volume) into a series.

    `where(i)` names row i in error messages (a file and line, an exchange and time).
    """
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    ts, o, h, lo, c, v = (data[:, i] for i in range(6))
    problems = [
        (~np.isfinite(data).all(axis=1), "a value is not a finite number"),
        ((data[:, 1:5] <= 0).any(axis=1), "a price is zero or negative"),
        (data[:, 5] < 0, "volume is negative"),
        (h < np.maximum(np.maximum(o, c), lo), "high is below open, close or low"),
        (lo > np.minimum(o, c), "low is above open or close"),
        (ts % CANDLE_SECONDS != 0, "timestamp is not on the hour"),
    ]
    if len(ts) > 1:
        unordered = np.concatenate([[False], np.diff(ts) <= 0])
        problems.append((unordered, "timestamp is not after the previous row (duplicate or out of order)"))
    for mask, message in problems:
        bad = np.flatnonzero(mask)
        if bad.size:
            raise MarketDataError(f"{where(int(bad[0]))}: {message}")
    return CandleSeries(ts.astype(np.int64), o, h, lo, c, v)


def closed_until(candles: CandleSeries, until: datetime, limit: int) -> CandleSeries:
    """The newest `limit` candles whose close time is at or before `until`."""
    # An integer key: a float one makes numpy convert the whole int64 column on every call.
    last_open = np.int64(math.floor(until.timestamp()) - CANDLE_SECONDS)
    stop = int(np.searchsorted(candles.timestamps, last_open, side="right"))
    return candles.slice(max(0, stop - limit), stop)
