"""Headlines: the interface a live feed would implement, and a replay of the ../shared/data/news format."""

from __future__ import annotations

import bisect
import csv
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict

from triplegain.errors import MarketDataError
from triplegain.settings.sentiment import SentimentSettings

HEADER = ["timestamp", "source", "title"]


class Headline(BaseModel):
    """One published headline: untrusted text, quoted as data wherever it goes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timestamp: AwareDatetime
    source: str
    title: str


class NewsSource(ABC):
    """Where headlines come from (a replay here; a live feed implements the same method)."""

    @abstractmethod
    def headlines(self, since: datetime, until: datetime) -> list[Headline]:
        """Headlines published in [since, until), oldest first; never any later than `until`."""


def bundled_news_path() -> Path:
    """The headlines shipped with the package (May 2022, the LUNA/UST collapse)."""
    return Path(str(resources.files("triplegain.news") / "data" / "headlines.csv"))


class ReplayNews(NewsSource):
    """Headlines from a CSV file (timestamp,source,title), parsed once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or bundled_news_path()
        self._items: list[Headline] | None = None
        self._times: list[datetime] = []

    def headlines(self, since: datetime, until: datetime) -> list[Headline]:
        """Headlines in [since, until)."""
        items = self._load()
        return items[bisect.bisect_left(self._times, since) : bisect.bisect_left(self._times, until)]

    def _load(self) -> list[Headline]:
        if self._items is None:
            self._items = _read(self.path)
            self._times = [h.timestamp for h in self._items]
        return self._items


def _read(path: Path) -> list[Headline]:
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            if next(reader, None) != HEADER:
                raise MarketDataError(f"{path}:1: header must be {','.join(HEADER)}")
            items = [_row(path, line, row) for line, row in enumerate(reader, start=2)]
    except OSError as e:
        raise MarketDataError(f"{path}: cannot read: {e.strerror}") from e
    return sorted(items, key=lambda h: h.timestamp)


def _row(path: Path, line: int, row: list[str]) -> Headline:
    if len(row) != len(HEADER):
        raise MarketDataError(f"{path}:{line}: expected {len(HEADER)} fields, got {len(row)}")
    try:
        return Headline(timestamp=datetime.fromisoformat(row[0]), source=row[1], title=row[2])
    except ValueError as e:
        raise MarketDataError(f"{path}:{line}: {' '.join(str(e).split())[:200]}") from None


def relevant_headlines(
    items: list[Headline], keywords: list[str], limit: int, min_specific: int
) -> tuple[list[Headline], int]:
    """The newest headlines about the asset, topped up with general ones when there are few; newest first.

    Returns them and how many are about the asset itself.
    """
    words = [k.lower() for k in keywords]
    newest = list(reversed(items))
    specific = [h for h in newest if any(w in h.title.lower() for w in words)][:limit]
    if len(specific) >= min_specific:
        return specific, len(specific)
    general = [h for h in newest if h not in specific][: limit - len(specific)]
    return sorted(specific + general, key=lambda h: h.timestamp, reverse=True), len(specific)


def headlines_for(source: NewsSource, symbol: str, at: datetime, s: SentimentSettings) -> list[Headline]:
    """What the sentiment agent reads about `symbol` at `at`: the newest relevant headlines published in
    the lookback window before it (the same for a live refresh and a backtest replaying one)."""
    recent = source.headlines(at - timedelta(hours=s.lookback_hours), at)
    headlines, _ = relevant_headlines(
        recent, s.keywords.get(symbol, []), s.max_headlines, s.min_symbol_headlines
    )
    return headlines
