"""Market-data tasks: one snapshot per symbol, retried only when the source is transiently down."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.retry import retry_on
from triplegain.errors import MarketDataUnavailable
from triplegain.market import build_snapshot, shared_source
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings


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
    return build_snapshot(shared_source(settings.market), symbol, at, settings.market)
