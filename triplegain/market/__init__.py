"""Market data: the source interface, a CSV replay (bundled sample) and a ccxt exchange adapter."""

from pathlib import Path

from triplegain.market.exchange import CcxtSource
from triplegain.market.replay import ReplaySource, bundled_data_dir, replay_clock
from triplegain.market.source import MarketDataSource, build_snapshot
from triplegain.settings import MarketSettings


def source_from_settings(settings: MarketSettings) -> MarketDataSource:
    """The configured source: a replay of CSV files (default) or a ccxt exchange."""
    if settings.source == "ccxt":
        return CcxtSource.create(
            settings.exchange, settings.exchange_timeout_ms, settings.api_url, settings.rate_limit_ms
        )
    return ReplaySource(settings.data_dir)


SourceKey = tuple[str, Path | None, str, str | None]
_shared: dict[SourceKey, MarketDataSource] = {}


def source_key(settings: MarketSettings) -> SourceKey:
    """What makes two configured sources the same one (`shared_source` keeps one per key)."""
    return (settings.source, settings.data_dir, settings.exchange, settings.api_url)


def shared_source(settings: MarketSettings) -> MarketDataSource:
    """The configured source, one per process and configuration, so a replay parses each file once."""
    key = source_key(settings)
    if key not in _shared:
        _shared[key] = source_from_settings(settings)
    return _shared[key]


__all__ = [
    "CcxtSource",
    "MarketDataSource",
    "ReplaySource",
    "build_snapshot",
    "bundled_data_dir",
    "replay_clock",
    "shared_source",
    "source_from_settings",
    "source_key",
]
