from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from triplegain.errors import MarketDataError
from triplegain.news import Headline, ReplayNews, relevant_headlines

AT = datetime(2022, 5, 10, 12, tzinfo=UTC)


def test_bundled_headlines_cover_may_2022() -> None:
    items = ReplayNews().headlines(datetime(2022, 5, 1, tzinfo=UTC), datetime(2022, 6, 1, tzinfo=UTC))

    assert len(items) == 1293 and items[0].timestamp >= datetime(2022, 5, 1, tzinfo=UTC)


def test_never_a_headline_from_after_the_window() -> None:
    items = ReplayNews().headlines(AT - timedelta(hours=24), AT)

    assert items and all(AT - timedelta(hours=24) <= h.timestamp < AT for h in items)
    assert items == sorted(items, key=lambda h: h.timestamp)


def test_asset_headlines_first_topped_up_with_general_ones() -> None:
    items = ReplayNews().headlines(AT - timedelta(hours=24), AT)

    btc, btc_count = relevant_headlines(items, ["bitcoin", "btc"], 30, 5)
    xrp, xrp_count = relevant_headlines(items, ["xrp", "ripple"], 30, 5)

    assert btc_count == len(btc) == 19 and all(
        "bitcoin" in h.title.lower() or "btc" in h.title.lower() for h in btc
    )
    assert xrp_count < 5 and len(xrp) == 30 and xrp == sorted(xrp, key=lambda h: h.timestamp, reverse=True)


def test_malformed_news_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "headlines.csv"
    path.write_text("timestamp,source,title\n2022-05-01T00:00:00Z,x,ok\nnot-a-time,x,bad\n")

    with pytest.raises(MarketDataError, match=r"headlines.csv:3"):
        ReplayNews(path).headlines(AT - timedelta(days=30), AT)


def test_headline_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Headline(timestamp=datetime(2022, 5, 1), source="x", title="t")  # type: ignore[arg-type]
