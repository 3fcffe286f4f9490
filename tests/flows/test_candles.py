"""A live run's candles against the fake Kraken (which, like Kraken, serves only its newest 720 hours): short
and said so without history, the backtest's exact lookback once `triplegain candles import` kept it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.candles import import_candles, kept_candles
from flows.cli import app
from flows.settings import load_run_settings
from tasks.market import fetch_snapshot
from tests.fakes.history import ohlcvt_file, same_candles
from tests.fakes.kraken import FakeKraken
from triplegain.market import ReplaySource
from triplegain.market.replay import csv_path

AT = datetime.fromisoformat("2024-06-30T20:00Z")


@pytest.fixture
def kraken(replay: ReplaySource, monkeypatch: pytest.MonkeyPatch, project_db: str) -> Iterator[FakeKraken]:
    with FakeKraken(candles={"XBTUSDT": replay.series("BTC/USDT")}) as fake:
        fake.now = AT  # Kraken's clock: its newest 720 candles are those opened by the cycle's hour
        for name, value in {
            "TRIPLEGAIN_MARKET__SOURCE": "ccxt",
            "TRIPLEGAIN_MARKET__API_URL": fake.url,
            "TRIPLEGAIN_MARKET__RATE_LIMIT_MS": "1",
        }.items():
            monkeypatch.setenv(name, value)
        yield fake


def test_a_live_snapshot_without_history_is_short_and_says_so(
    kraken: FakeKraken, replay: ReplaySource, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_run_settings()
    with caplog.at_level(logging.WARNING):
        snapshot = fetch_snapshot("BTC/USDT", AT, settings)

    assert kraken.calls("OHLC") and snapshot.source == "ccxt:kraken"
    assert same_candles(
        snapshot.candles, replay.candles("BTC/USDT", AT, 719)
    )  # 720 served, the forming one dropped
    assert "719 of the 1000 lookback candles" in caplog.text and "triplegain candles import" in caplog.text
    assert kept_candles("BTC/USDT").candles == 719  # what was fetched is kept


def test_after_an_import_a_live_snapshot_has_the_backtests_lookback_exactly(
    kraken: FakeKraken, replay: ReplaySource, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = replay.candles("BTC/USDT", AT - timedelta(hours=600), 2000)  # ends before Kraken's 720 start
    kept = import_candles(ohlcvt_file(tmp_path / "XBTUSDT_60.csv", history), "BTC/USDT")
    assert kept.imported == kept.new == len(history) and len(kept.spans) == 1

    with caplog.at_level(logging.WARNING):
        snapshot = fetch_snapshot("BTC/USDT", AT, load_run_settings())

    assert same_candles(
        snapshot.candles, replay.candles("BTC/USDT", AT, 1000)
    )  # what a backtest of the hour sees
    assert "lookback candles" not in caplog.text
    assert kept_candles("BTC/USDT").spans == [(kept.spans[0][0], datetime.fromisoformat("2024-06-30T19:00Z"))]


def test_the_cli_imports_a_history_and_shows_what_is_kept(project_db: str, replay: ReplaySource) -> None:
    runner = CliRunner()
    path = csv_path(replay.data_dir, "XRP/USDT")

    imported = runner.invoke(app, ["candles", "import", str(path), "--symbol", "XRP/USDT"])
    again = runner.invoke(app, ["candles", "import", str(path), "--symbol", "XRP/USDT", "--json"])
    shown = runner.invoke(app, ["candles", "show", "--symbol", "XRP/USDT"])

    count = len(replay.series("XRP/USDT"))
    assert imported.exit_code == 0, imported.output
    assert f"{count:,} candles read, {count:,} new" in imported.stdout
    assert json.loads(again.stdout)["new"] == 0  # kept once
    assert shown.exit_code == 0 and f"ccxt:kraken XRP/USDT: {count:,} candles kept" in shown.stdout
    assert "2024-04-01T00:00Z to 2024-06-30T23:00Z" in shown.stdout


def test_a_bad_history_file_fails_naming_the_line_and_keeps_nothing(project_db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "XBTUSDT_60.csv"
    path.write_text("1719777600,1,2,0.5,1.5,10,3\n1719781200,1,2,0.5,oops,10,3\n")

    result = runner.invoke(app, ["candles", "import", str(path), "--symbol", "BTC/USDT"])
    bad_symbol = runner.invoke(app, ["candles", "import", str(path), "--symbol", "BTCUSDT"])

    assert result.exit_code == 1 and "XBTUSDT_60.csv:2" in result.output and "not a number" in result.output
    assert bad_symbol.exit_code == 1 and "BTCUSDT" in bad_symbol.output
    assert kept_candles("BTC/USDT").candles == 0
