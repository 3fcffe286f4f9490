"""The headlines task: recent news for one symbol from the configured news source."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain.news import Headline, NewsSource, ReplayNews, relevant_headlines
from triplegain.settings import Settings

_sources: dict[Path | None, NewsSource] = {}


def news_source(settings: Settings) -> NewsSource:
    """The replay of the configured headlines file (parsed once per process)."""
    directory = settings.sentiment.news_dir
    if directory not in _sources:
        _sources[directory] = ReplayNews(directory / "headlines.csv" if directory else None)
    return _sources[directory]


@task(name="fetch-headlines", task_run_name="headlines-{symbol}", cache_policy=NO_CACHE)
def fetch_headlines(symbol: str, at: datetime, settings: Settings) -> list[Headline]:
    """The newest headlines about `symbol` published in the lookback window before `at`."""
    s = settings.sentiment
    recent = news_source(settings).headlines(at - timedelta(hours=s.lookback_hours), at)
    headlines, _ = relevant_headlines(
        recent, s.keywords.get(symbol, []), s.max_headlines, s.min_symbol_headlines
    )
    return headlines
