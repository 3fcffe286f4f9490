"""The headlines task: recent news for one symbol from the configured news source."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain.news import Headline, NewsSource, ReplayNews, headlines_for
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
    return headlines_for(news_source(settings), symbol, at, settings.sentiment)
