"""News for the sentiment agent: the source interface and a replay of real headlines."""

from triplegain.news.source import (
    Headline,
    NewsSource,
    ReplayNews,
    bundled_news_path,
    headlines_for,
    relevant_headlines,
)

__all__ = ["Headline", "NewsSource", "ReplayNews", "bundled_news_path", "headlines_for", "relevant_headlines"]
