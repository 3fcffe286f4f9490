from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triplegain.errors import MarketDataError
from triplegain.market import ReplaySource, build_snapshot, replay_clock
from triplegain.market.replay import read_candles_csv
from triplegain.settings import MarketSettings

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "market"
HEADER = "timestamp,open,high,low,close,volume\n"


def write_csv(directory: Path, symbol: str, body: str) -> Path:
    path = directory / f"{symbol.replace('/', '_')}-1h.csv"
    path.write_text(HEADER + body)
    return path


def hourly_rows(start: datetime, hours: int, price: float = 100.0) -> str:
    rows = []
    for i in range(hours):
        t = start + timedelta(hours=i)
        rows.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{price},{price + 1},{price - 1},{price + 0.5},10\n")
    return "".join(rows)


def test_bundled_sample_covers_april_to_june_2024(replay: ReplaySource) -> None:
    for symbol in ("BTC/USDT", "XRP/USDT"):
        series = replay.series(symbol)

        assert series.open_time(0) == datetime(2024, 4, 1, tzinfo=UTC)
        assert series.open_time(-1) == datetime(2024, 6, 30, 23, tzinfo=UTC)
        assert len(series) == 91 * 24


def test_bundled_sample_is_a_verbatim_slice_of_the_shared_data(replay: ReplaySource) -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not present")
    full = read_candles_csv(SHARED / "BTC_USDT-1h.csv")
    start = int(datetime(2024, 4, 1, tzinfo=UTC).timestamp())
    offset = int((full.timestamps == start).nonzero()[0][0])

    sample = replay.series("BTC/USDT")

    assert (full.close[offset : offset + len(sample)] == sample.close).all()


def test_snapshot_uses_closed_candles_only(replay: ReplaySource) -> None:
    at = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)

    snapshot = build_snapshot(replay, "BTC/USDT", at, MarketSettings())

    assert snapshot.last_candle_at == datetime(2024, 6, 1, 11, tzinfo=UTC)
    assert len(snapshot.candles) == MarketSettings().lookback_candles
    assert str(snapshot.current_price) == "67660.57"


@settings(max_examples=60, deadline=None)
@given(minutes=st.integers(min_value=60 * 24 * 5, max_value=60 * 24 * 90))
def test_never_returns_a_candle_that_closes_after_the_cycle(minutes: int) -> None:
    source = _shared_replay
    at = datetime(2024, 4, 1, tzinfo=UTC) + timedelta(minutes=minutes)

    candles = source.candles("XRP/USDT", at, 300)

    assert candles.timestamps[-1] + 3600 <= at.timestamp()
    assert at.timestamp() - (candles.timestamps[-1] + 3600) < 3600


_shared_replay = ReplaySource()


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MarketDataError, match=r"BTC/USDT: no data: .*BTC_USDT-1h.csv does not exist"):
        ReplaySource(tmp_path).candles("BTC/USDT", datetime(2024, 1, 1, tzinfo=UTC), 10)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2024-01-01T02:00:00Z,1,2,0.5,1.5\n", "expected 6 fields, got 5"),
        ("2024-01-01 02:00,1,2,0.5,1.5,3\n", "must be UTC"),
        ("yesterday,1,2,0.5,1.5,3\n", "bad timestamp 'yesterday'"),
        ("2024-01-01T02:00:00Z,1,abc,0.5,1.5,3\n", "not a number"),
        ("2024-01-01T02:00:00Z,1,2,0.5,1.5,-3\n", "negative"),
        ("2024-01-01T02:00:00Z,1,0.9,0.5,1.5,3\n", "high is below"),
        ("2024-01-01T02:00:00Z,1,2,1.2,1.5,3\n", "low is above"),
        ("2024-01-01T01:00:00Z,1,2,0.5,1.5,3\n", "duplicate or out of order"),
        ("2024-01-01T02:30:00Z,1,2,0.5,1.5,3\n", "not on the hour"),
        ("2024-01-01T02:00:00Z,1,2,0.5,nan,3\n", "not a finite number"),
        ("2024-01-01T02:00:00Z,0,2,0,1.5,3\n", "a price is zero or negative"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, row: str, problem: str) -> None:
    path = write_csv(tmp_path, "BTC/USDT", hourly_rows(datetime(2024, 1, 1, tzinfo=UTC), 2) + row)

    with pytest.raises(MarketDataError, match=rf"BTC_USDT-1h.csv:4: .*{problem}"):
        read_candles_csv(path)


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "BTC/USDT", hourly_rows(datetime(2024, 1, 1, tzinfo=UTC), 2))
    path.write_bytes(path.read_bytes() + b"2024-01-01T02:00:00Z,1,2,\xff,1.5,3\n")

    with pytest.raises(MarketDataError, match=r"BTC_USDT-1h.csv:4: not UTF-8 text \(byte 0xff\)"):
        read_candles_csv(path)


def test_wrong_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_text("time,o,h,l,c,v\n")

    with pytest.raises(MarketDataError, match=r":1: header must be"):
        read_candles_csv(path)


def test_gaps_and_zero_volume_candles_are_counted_not_filled(tmp_path: Path) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    body = hourly_rows(start, 60) + hourly_rows(start + timedelta(hours=64), 10)
    body += f"{start + timedelta(hours=74):%Y-%m-%dT%H:%M:%SZ},100,100,100,100,0\n"
    write_csv(tmp_path, "BTC/USDT", body)

    snapshot = build_snapshot(
        ReplaySource(tmp_path), "BTC/USDT", start + timedelta(hours=75), MarketSettings()
    )

    assert snapshot.missing_candles == 4
    assert snapshot.zero_volume_candles == 1
    assert len(snapshot.candles) == 71


def test_real_outage_gap_in_shared_data_is_counted() -> None:
    if not SHARED.exists():
        pytest.skip(f"{SHARED} not present")
    source = ReplaySource(SHARED)

    snapshot = build_snapshot(source, "BTC/USDT", datetime(2021, 8, 14, tzinfo=UTC), MarketSettings())

    assert snapshot.missing_candles == 4  # the 2021-08-13 02:00-05:00 outage


def test_too_little_history_is_a_market_data_error(replay: ReplaySource) -> None:
    with pytest.raises(MarketDataError, match=r"only 10 closed candles .* need at least 50"):
        build_snapshot(replay, "BTC/USDT", datetime(2024, 4, 1, 10, tzinfo=UTC), MarketSettings())


def test_stale_data_is_a_market_data_error(replay: ReplaySource) -> None:
    with pytest.raises(MarketDataError, match="data is stale"):
        build_snapshot(replay, "BTC/USDT", datetime(2024, 7, 2, tzinfo=UTC), MarketSettings())


def test_end_is_the_latest_hour_every_symbol_has(replay: ReplaySource) -> None:
    assert replay.end(["BTC/USDT", "XRP/USDT"]) == datetime(2024, 7, 1, tzinfo=UTC)


def test_the_replay_clock_walks_the_data_hour_by_hour_and_stops_at_its_end() -> None:
    source, symbols = ReplaySource(), ["BTC/USDT", "XRP/USDT"]
    end = source.end(symbols)
    assert end == datetime(2024, 7, 1, tzinfo=UTC)

    first = replay_clock(source, symbols, None, start_days=30, min_candles=50)
    after = replay_clock(source, symbols, datetime(2024, 6, 1, 5, tzinfo=UTC), 30, 50)
    stopped = replay_clock(source, symbols, end, 30, 50)

    assert first == datetime(2024, 6, 1, tzinfo=UTC)  # a fresh account: 30 days before the end
    assert after == datetime(2024, 6, 1, 6, tzinfo=UTC)  # the hour after the last cycle
    assert stopped == end  # nothing after the data: the clock stops


def test_a_fresh_account_on_short_data_starts_once_there_is_enough_history() -> None:
    source, symbols = ReplaySource(), ["BTC/USDT"]
    data_start = source.series("BTC/USDT").open_time(0)

    first = replay_clock(source, symbols, None, start_days=365, min_candles=50)

    assert first == data_start + timedelta(hours=50)


@pytest.mark.parametrize(
    ("until", "newest_open"),
    [
        (datetime(2024, 4, 1, 10, tzinfo=UTC), datetime(2024, 4, 1, 9, tzinfo=UTC)),
        (datetime(2024, 4, 1, 10, 0, 0, 500_000, tzinfo=UTC), datetime(2024, 4, 1, 9, tzinfo=UTC)),
        (datetime(2024, 4, 1, 9, 59, 59, 999_999, tzinfo=UTC), datetime(2024, 4, 1, 8, tzinfo=UTC)),
    ],
)
def test_a_candle_is_served_once_closed_even_between_whole_seconds(
    tmp_path: Path, until: datetime, newest_open: datetime
) -> None:
    write_csv(tmp_path, "BTC/USDT", hourly_rows(datetime(2024, 4, 1, tzinfo=UTC), 24))

    candles = ReplaySource(tmp_path).candles("BTC/USDT", until, 5)

    assert candles.open_time(-1) == newest_open
    assert len(candles) == 5
