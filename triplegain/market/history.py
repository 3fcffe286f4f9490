"""Hourly candles kept as they are fetched, so an exchange that serves only its newest candles still feeds
the analysis the `lookback_candles` a backtest gets.

Kraken's OHLC endpoint returns at most its newest 720 hourly candles, whatever `since` asks for (ccxt's
`features.spot.fetchOHLCV.limit`); the default lookback is 1000. Without a memory, every live run would
analyse 720 candles where a backtest of the same hour analyses 1000: different EMAs, a daily MACD that
cannot be computed, a 720-return volatility window one return short. `KeptCandles` puts a `CandleStore`
behind the exchange: every fetch is kept, and a fetch shorter than the lookback is completed with the
candles kept before it.

Only history that is *covered* is used: the store remembers which spans of time it was given whole (a fetch,
an imported file), and a fetch is completed only from the span that reaches it without a hole. A process
that was down longer than the exchange's window leaves a hole; the candles before it are not joined to the
ones after it (the exchange's own missing hours inside a covered span stay missing, as in a backtest).
`triplegain candles import` fills the store from a downloaded history file, so a new account analyses the
full lookback from its first run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import numpy as np

from triplegain.errors import MarketDataError
from triplegain.market.replay import HEADER, read_candles_csv, read_text
from triplegain.market.source import MarketDataSource, series_from_rows
from triplegain.models.market import CANDLE_SECONDS, CandleSeries

Span = tuple[int, int]  # the open times (epoch seconds) of the first and last candle of a covered span


class CandleStore(Protocol):
    """Where fetched candles are kept, by source (`ccxt:kraken`) and symbol."""

    def keep(self, source: str, symbol: str, candles: CandleSeries) -> int:
        """Keep `candles` (a whole span: every candle the source had between the first and the last) and
        record their span as covered; returns how many were new. Candles already kept stay as they are."""
        ...

    def before(self, source: str, symbol: str, start: int, limit: int) -> CandleSeries:
        """Up to `limit` kept candles opening before `start`, oldest first, from the covered span that
        reaches `start` without a hole (empty when none does)."""
        ...


def merged(spans: Iterable[Span]) -> list[Span]:
    """Spans joined where they overlap or touch (the next span starts the hour after one ends), sorted."""
    out: list[Span] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1] + CANDLE_SECONDS:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def reaching(spans: Iterable[Span], start: int) -> Span | None:
    """The merged span that holds the candle opening at `start` or ends the hour before it, or None."""
    return next((s for s in merged(spans) if s[0] <= start <= s[1] + CANDLE_SECONDS), None)


def joined(older: CandleSeries, newer: CandleSeries) -> CandleSeries:
    """Two series, the first wholly before the second, as one."""
    if len(older) and len(newer) and older.timestamps[-1] >= newer.timestamps[0]:
        raise ValueError("joined: the older series must end before the newer one starts")
    return CandleSeries(
        *(
            np.concatenate([getattr(older, column), getattr(newer, column)])
            for column in ("timestamps", "open", "high", "low", "close", "volume")
        )
    )


@dataclass
class MemoryCandleStore:
    """A `CandleStore` in memory (one process; tests and notebooks)."""

    rows: dict[tuple[str, str], dict[int, tuple[float, float, float, float, float]]] = field(
        default_factory=dict
    )
    spans: dict[tuple[str, str], list[Span]] = field(default_factory=dict)

    def keep(self, source: str, symbol: str, candles: CandleSeries) -> int:
        if not len(candles):
            return 0
        kept = self.rows.setdefault((source, symbol), {})
        new = 0
        for ts, *values in candles.rows():
            if ts not in kept:
                kept[ts] = (values[0], values[1], values[2], values[3], values[4])
                new += 1
        span = (int(candles.timestamps[0]), int(candles.timestamps[-1]))
        self.spans[(source, symbol)] = merged([*self.spans.get((source, symbol), []), span])
        return new

    def before(self, source: str, symbol: str, start: int, limit: int) -> CandleSeries:
        span = reaching(self.spans.get((source, symbol), []), start)
        kept = self.rows.get((source, symbol), {})
        if span is None or limit <= 0:
            return series_of([])
        times = sorted(t for t in kept if span[0] <= t < start)[-limit:]
        return series_of([(t, *kept[t]) for t in times])


def series_of(rows: Sequence[Sequence[float]]) -> CandleSeries:
    """Kept rows (open time, open, high, low, close, volume), oldest first, as a series."""
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    return CandleSeries(data[:, 0].astype(np.int64), *(data[:, i].copy() for i in range(1, 6)))


class KeptCandles(MarketDataSource):
    """An exchange's candles, kept in `store` as they are fetched and completed from it to the lookback."""

    def __init__(self, exchange: MarketDataSource, store: CandleStore) -> None:
        self.exchange, self.store = exchange, store
        self.name = exchange.name

    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        """The exchange's newest closed candles, kept; when fewer than `limit`, completed with the kept
        candles before them (as far as their covered span reaches)."""
        fresh = self.exchange.candles(symbol, until, limit)
        self.store.keep(self.name, symbol, fresh)
        if len(fresh) >= limit:
            return fresh
        older = self.store.before(self.name, symbol, int(fresh.timestamps[0]), limit - len(fresh))
        return joined(older, fresh) if len(older) else fresh

    def latest_price(self, symbol: str, at: datetime, candles: CandleSeries) -> Decimal:
        """The exchange's price (its ticker, when it has one)."""
        return self.exchange.latest_price(symbol, at, candles)


def read_history_file(path: Path) -> CandleSeries:
    """Hourly candles from a file: the project's CSV format (`timestamp,open,high,low,close,volume`, as in
    ../shared/data) or Kraken's downloadable OHLCVT history (`XBTUSDT_60.csv`: no header; epoch seconds,
    open, high, low, close, volume, trades). MarketDataError names the file and line of the first problem,
    and refuses candles that are not hourly."""
    text = read_text(path)
    first = text.split("\n", 1)[0].strip()
    if first.split(",") == HEADER:
        series = read_candles_csv(path)
    else:
        rows = []
        for line, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row:
                continue
            if len(row) not in (6, 7):
                raise MarketDataError(
                    f"{path}:{line}: expected a header {','.join(HEADER)} or Kraken's OHLCVT columns (time, "
                    f"open, high, low, close, volume, trades), got {len(row)} fields"
                )
            try:
                rows.append([float(x) for x in row[:6]])
            except ValueError:
                raise MarketDataError(
                    f"{path}:{line}: a time, price or volume is not a number: {row}"
                ) from None
        if not rows:
            raise MarketDataError(f"{path}: no candles")
        series = series_from_rows(rows, lambda i: f"{path}:{i + 1}")
    if len(series) > 1:
        step = int(np.min(np.diff(series.timestamps)))
        if step != CANDLE_SECONDS:
            raise MarketDataError(
                f"{path}: candles {step} s apart: the file must hold hourly candles (Kraken's *_60.csv)"
            )
    return series
