"""Market-data tasks: one snapshot per symbol, retried only when the source is transiently down."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from triplegain.errors import MarketDataUnavailable
from triplegain.market import MarketDataSource, build_snapshot, source_from_settings
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings


def _transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may succeed next time: the exchange was unreachable."""
    try:
        state.result()
    except MarketDataUnavailable:
        return True
    except Exception:
        return False
    return False


_sources: dict[tuple[str, Path | None, str], MarketDataSource] = {}


def market_source(settings: Settings) -> MarketDataSource:
    """The configured market-data source, shared within this process so a replay parses each file once."""
    m = settings.market
    key = (m.source, m.data_dir, m.exchange)
    if key not in _sources:
        _sources[key] = source_from_settings(m)
    return _sources[key]


@task(
    name="fetch-snapshot",
    task_run_name="snapshot-{symbol}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_jitter_factor=0.5,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def fetch_snapshot(symbol: str, at: datetime, settings: Settings) -> MarketSnapshot:
    """The symbol's market as of the cycle time (closed candles only)."""
    return build_snapshot(market_source(settings), symbol, at, settings.market)
