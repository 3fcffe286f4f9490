"""Market-data tasks: one snapshot per symbol, retried only when the source is transiently down."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.retry import retry_on
from triplegain.errors import MarketDataUnavailable
from triplegain.market import MarketDataSource, build_snapshot, shared_source
from triplegain.market.history import KeptCandles
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings
from triplegain.storage import engine_for
from triplegain.storage.candles import SqlCandleStore


def market_source(settings: Settings) -> MarketDataSource:
    """The configured source; an exchange's candles are kept in the project database as they are fetched
    and completed from it to the lookback (an exchange serves only its newest: Kraken 720)."""
    source = shared_source(settings.market)
    if settings.market.source != "ccxt":
        return source
    return KeptCandles(source, SqlCandleStore(engine_for(settings)))


@task(
    name="fetch-snapshot",
    task_run_name="snapshot-{symbol}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on(MarketDataUnavailable),
    cache_policy=NO_CACHE,
)
def fetch_snapshot(symbol: str, at: datetime, settings: Settings) -> MarketSnapshot:
    """The symbol's market as of the cycle time (closed candles only)."""
    snapshot = build_snapshot(market_source(settings), symbol, at, settings.market)
    wanted = settings.market.lookback_candles
    if settings.market.source == "ccxt" and len(snapshot.candles) < wanted:
        get_run_logger().warning(
            "%s: %d of the %d lookback candles (%s serves only its newest, and no more are kept before "
            "them): the analysis differs from a backtest's until the store fills; "
            "`triplegain candles import` loads a downloaded history",
            symbol,
            len(snapshot.candles),
            wanted,
            snapshot.source,
        )
    return snapshot
