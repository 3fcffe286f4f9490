"""The kept candle history of a live exchange, from Python (notebooks) or the CLI.

    from flows.candles import import_candles, kept_candles
    import_candles("XBTUSDT_60.csv", "BTC/USDT")   # Kraken's downloadable hourly history
    kept_candles("BTC/USDT").spans                 # the covered spans of time

A live run completes the exchange's newest candles (Kraken serves 720) to `market.lookback_candles` from
what is kept (`triplegain.market.history`); a new account has nothing kept, so its first runs analyse
fewer candles than a backtest of the same hour until the history is imported or 280 hours of runs filled
it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from flows.settings import load_run_settings
from triplegain.market.history import read_history_file
from triplegain.storage import engine_for
from triplegain.storage.candles import SqlCandleStore


class KeptHistory(BaseModel):
    """What is kept of a symbol's candles from an exchange."""

    model_config = ConfigDict(frozen=True)

    source: str
    symbol: str
    candles: int
    spans: list[tuple[datetime, datetime]]  # open times of the first and last candle of each covered span
    imported: int | None = None  # candles in the imported file
    new: int | None = None  # of them, not kept before

    def summary(self) -> str:
        """One paragraph for the terminal."""
        lines = []
        if self.imported is not None:
            lines.append(f"{self.symbol}: {self.imported:,} candles read, {self.new:,} new")
        spans = ", ".join(f"{a:%Y-%m-%dT%H:%MZ} to {b:%Y-%m-%dT%H:%MZ}" for a, b in self.spans) or "none"
        lines.append(f"{self.source} {self.symbol}: {self.candles:,} candles kept; covered: {spans}")
        return "\n".join(lines)


def import_candles(path: str | Path, symbol: str, config_file: str | None = None) -> KeptHistory:
    """Keep the hourly candles of `path` (the project's CSV format or Kraken's OHLCVT history file) as the
    configured exchange's candles of `symbol`, their span as covered. Candles already kept stay as they
    are. MarketDataError (naming file and line) before anything is kept when the file is malformed."""
    settings = load_run_settings(config_file, symbols=[symbol])
    series = read_history_file(Path(path))
    store = SqlCandleStore(engine_for(settings))
    source = f"ccxt:{settings.market.exchange}"
    new = store.keep(source, symbol, series)
    return _history(store, source, symbol).model_copy(update={"imported": len(series), "new": new})


def kept_candles(symbol: str, config_file: str | None = None) -> KeptHistory:
    """How many of `symbol`'s candles from the configured exchange are kept, and the spans they cover."""
    settings = load_run_settings(config_file, symbols=[symbol])
    store = SqlCandleStore(engine_for(settings))
    return _history(store, f"ccxt:{settings.market.exchange}", symbol)


def _history(store: SqlCandleStore, source: str, symbol: str) -> KeptHistory:
    return KeptHistory(
        source=source,
        symbol=symbol,
        candles=store.count(source, symbol),
        spans=[(_time(a), _time(b)) for a, b in store.spans(source, symbol)],
    )


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
