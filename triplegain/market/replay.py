"""Replay of hourly candles from CSV files (the ../shared/data/market format), bundled or user-given."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from triplegain.errors import MarketDataError
from triplegain.market.source import MarketDataSource, closed_until, series_from_rows
from triplegain.models.market import CANDLE_SECONDS, CandleSeries

HEADER = ["timestamp", "open", "high", "low", "close", "volume"]


def bundled_data_dir() -> Path:
    """The directory of the sample data shipped with the package (2024-04-01 to 2024-06-30)."""
    return Path(str(resources.files("triplegain.market") / "data"))


def csv_path(data_dir: Path, symbol: str) -> Path:
    """'BTC/USDT' -> data_dir/BTC_USDT-1h.csv."""
    return data_dir / f"{symbol.replace('/', '_')}-1h.csv"


def read_candles_csv(path: Path) -> CandleSeries:
    """Parse and validate one CSV file; MarketDataError names the file and line of the first problem."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader, None)
    if header != HEADER:
        raise MarketDataError(f"{path}:1: header must be {','.join(HEADER)}, got {header}")
    rows = [_parse_row(path, line, row) for line, row in enumerate(reader, start=2)]
    if not rows:
        raise MarketDataError(f"{path}: no candles")
    return series_from_rows(rows, lambda i: f"{path}:{i + 2}")


def read_text(path: Path) -> str:
    """The file as UTF-8 text; MarketDataError naming the file (and the line of a byte that is not UTF-8)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MarketDataError(f"{path}: cannot read: {e.strerror}") from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise MarketDataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None


def _parse_row(path: Path, line: int, row: list[str]) -> list[float]:
    if len(row) != len(HEADER):
        raise MarketDataError(f"{path}:{line}: expected {len(HEADER)} fields, got {len(row)}")
    try:
        stamp = datetime.fromisoformat(row[0])
    except ValueError:
        raise MarketDataError(f"{path}:{line}: bad timestamp {row[0]!r}") from None
    offset = stamp.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise MarketDataError(f"{path}:{line}: timestamp {row[0]!r} must be UTC (end in Z)")
    try:
        return [stamp.timestamp(), *(float(x) for x in row[1:])]
    except ValueError:
        raise MarketDataError(f"{path}:{line}: a price or volume is not a number: {row[1:]}") from None


class ReplaySource(MarketDataSource):
    """Candles read from `{BASE}_{QUOTE}-1h.csv` files; each file is parsed once and kept."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or bundled_data_dir()
        self.name = "replay:bundled" if data_dir is None else f"replay:{self.data_dir}"
        self._series: dict[str, CandleSeries] = {}

    def series(self, symbol: str) -> CandleSeries:
        """Every candle of `symbol` in the file."""
        if symbol not in self._series:
            path = csv_path(self.data_dir, symbol)
            if not path.exists():
                raise MarketDataError(f"{symbol}: no data: {path} does not exist")
            self._series[symbol] = read_candles_csv(path)
        return self._series[symbol]

    def add_series(self, symbol: str, candles: CandleSeries) -> None:
        """Serve `candles` for `symbol` instead of a file (benchmarks and tests build universes this way)."""
        self._series[symbol] = candles

    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        """At most `limit` candles of the file that closed at or before `until`."""
        return closed_until(self.series(symbol), until, limit)

    def ready(self, symbols: list[str], min_candles: int) -> datetime:
        """The first time every symbol has `min_candles` closed candles (its whole file if shorter): the
        first hour a cycle can run on this data."""
        times = []
        for symbol in symbols:
            series = self.series(symbol)
            times.append(
                series.open_time(min(min_candles, len(series)) - 1) + timedelta(seconds=CANDLE_SECONDS)
            )
        return max(times)

    def end(self, symbols: list[str]) -> datetime:
        """The latest time at which every symbol has a just-closed candle: the natural 'now' of a replay."""
        ends = [self.series(s).open_time(-1) + timedelta(seconds=CANDLE_SECONDS) for s in symbols]
        return min(ends)


def replay_clock(
    source: ReplaySource,
    symbols: list[str],
    last_cycle_at: datetime | None,
    start_days: int,
    min_candles: int,
) -> datetime:
    """Replay time: the hour after the account's last cycle, never past the end of the data (where the clock
    stops), so scheduled runs on replay data walk through it hour by hour. A fresh account starts
    `start_days` before the end, or as soon as every symbol has `min_candles` closed candles if later."""
    end = source.end(symbols)
    if last_cycle_at is not None:
        return min(last_cycle_at + timedelta(hours=1), end)
    return min(max(end - timedelta(days=start_days), source.ready(symbols, min_candles)), end)
