"""Candles and tickers from a live exchange through ccxt (Kraken by default)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import ccxt

from triplegain.errors import ConfigError, ConfigProblem, MarketDataError, MarketDataUnavailable
from triplegain.market.source import MarketDataSource, closed_until, series_from_rows
from triplegain.models.market import CANDLE_SECONDS, CandleSeries

TRANSIENT = (ccxt.NetworkError, ccxt.ExchangeNotAvailable, ccxt.RequestTimeout, ccxt.RateLimitExceeded)


def ccxt_exchange(exchange_id: str, options: dict[str, Any], api_url: str | None, key: str) -> Any:
    """A ccxt exchange object with its rate limiter on; every REST endpoint at `api_url` when given.
    ConfigError (naming `key`) for an id ccxt does not know."""
    factory = getattr(ccxt, exchange_id, None)
    if factory is None or exchange_id not in ccxt.exchanges:
        raise ConfigError([ConfigProblem(key, exchange_id, "an exchange id known to ccxt")])
    exchange = factory({"enableRateLimit": True, **options})
    if api_url:
        api = exchange.urls.get("api")
        exchange.urls["api"] = dict.fromkeys(api, api_url) if isinstance(api, dict) else api_url
    return exchange


class CcxtSource(MarketDataSource):
    """OHLCV and ticker from any ccxt exchange object (a fake one in tests)."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.name = f"ccxt:{exchange.id}"

    @classmethod
    def create(
        cls, exchange_id: str, timeout_ms: int, api_url: str | None = None, rate_limit_ms: int | None = None
    ) -> CcxtSource:
        """A source on the public API of `exchange_id` (no keys needed for candles and tickers), at
        `api_url` instead of ccxt's when given."""
        options: dict[str, Any] = {"timeout": timeout_ms}
        if rate_limit_ms is not None:
            options["rateLimit"] = rate_limit_ms
        return cls(ccxt_exchange(exchange_id, options, api_url, "market.exchange"))

    def candles(self, symbol: str, until: datetime, limit: int) -> CandleSeries:
        """Up to `limit` closed hourly candles; the candle still forming at `until` is dropped."""
        since_ms = int(until.timestamp() - (limit + 1) * CANDLE_SECONDS) * 1000
        rows = self._call(symbol, self.exchange.fetch_ohlcv, symbol, "1h", since_ms, limit + 1)
        parsed = [[r[0] / 1000, *r[1:6]] for r in rows if r[0] / 1000 + CANDLE_SECONDS <= until.timestamp()]
        if not parsed:
            raise MarketDataError(
                f"{symbol}: {self.name} returned no closed candles before {until.isoformat()}"
            )
        series = series_from_rows(parsed, lambda i: f"{self.name} {symbol} row {i}")
        return closed_until(series, until, limit)

    def latest_price(self, symbol: str, at: datetime, candles: CandleSeries) -> Decimal:
        """The ticker's last trade price; falls back to the last close when the ticker has none."""
        ticker = self._call(symbol, self.exchange.fetch_ticker, symbol)
        last = ticker.get("last") or ticker.get("close")
        if last is None or float(last) <= 0:
            return super().latest_price(symbol, at, candles)
        return Decimal(str(last))

    def _call(self, symbol: str, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except TRANSIENT as e:
            raise MarketDataUnavailable(f"{symbol}: {self.name} unreachable: {type(e).__name__}: {e}") from e
        except ccxt.BaseError as e:
            raise MarketDataError(f"{symbol}: {self.name} refused: {type(e).__name__}: {e}") from e
