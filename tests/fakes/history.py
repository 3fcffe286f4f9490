"""An exchange that serves only its newest candles, and the helpers the kept-history tests share."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from triplegain.market import ReplaySource
from triplegain.market.source import MarketDataSource, closed_until
from triplegain.models.market import CandleSeries


class NewestOnly(MarketDataSource):
    """An exchange like Kraken: whatever is asked, only its newest `cap` candles closed by then."""

    def __init__(self, replay: ReplaySource, cap: int = 720) -> None:
        self.replay, self.cap, self.name = replay, cap, "ccxt:kraken"

    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        return closed_until(self.replay.series(symbol), until, min(limit, self.cap))


def same_candles(a: CandleSeries, b: CandleSeries) -> bool:
    """Equal to the last bit, column by column."""
    return all(
        np.array_equal(getattr(a, c), getattr(b, c))
        for c in ("timestamps", "open", "high", "low", "close", "volume")
    )


def ohlcvt_file(path: Path, candles: CandleSeries) -> Path:
    """Candles as Kraken's downloadable OHLCVT history writes them (no header, a trades column)."""
    path.write_text(
        "".join(f"{t},{o!r},{h!r},{lo!r},{c!r},{v!r},9\n" for t, o, h, lo, c, v in candles.rows())
    )
    return path
