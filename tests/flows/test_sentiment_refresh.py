"""The sentiment-refresh flow, and the trading cycle using its reports, through the fake LLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flows.sentiment_refresh import sentiment_refresh
from flows.trading_cycle import trading_cycle
from tests.fakes.llm_server import TEST_KEY, FakeLLMServer, Recorded, Step

SHARED_MARKET = Path(__file__).resolve().parents[3] / "shared" / "data" / "market"
BEARISH = {
    "bias": "bearish",
    "score": -0.5,
    "confidence": 0.7,
    "key_events": [{"event": "UST depeg"}],
    "narratives": ["contagion"],
    "reasoning": "LUNA collapse",
}


def config(tmp_path: Path, server: FakeLLMServer, **extra: object) -> str:
    providers = {
        "news": {"kind": "openai", "model": "news-model", "base_url": f"{server.url}/v1", "api_key": TEST_KEY}
    }
    data = {"llm": {"providers": providers, "sentiment_models": ["news"]}, **extra}
    path = tmp_path / "tg.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_refresh_rates_each_symbol_and_stores_the_reports(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    server.default = Step(text=json.dumps(BEARISH))

    reports = sentiment_refresh(at="2022-05-10T12:00Z", config_file=config(tmp_path, server))

    assert [r.symbol for r in reports] == ["BTC/USDT", "XRP/USDT"]
    assert all(r.bias == "bearish" and r.fear_greed == "fear" for r in reports)
    prompts = [Recorded("", {}, r.body).prompt_text for r in server.requests]
    assert any("LUNA" in p or "Terra" in p or "UST" in p for p in prompts)  # real May 2022 headlines
    assert all("<headlines>" in p for p in prompts)


def test_refresh_without_sentiment_models_does_nothing(project_db: str) -> None:
    assert sentiment_refresh(at="2022-05-10T12:00Z") == []


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
def test_the_cycle_uses_the_latest_valid_sentiment(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    server.default = Step(text=json.dumps(BEARISH))
    cfg = config(tmp_path, server, market={"data_dir": str(SHARED_MARKET)})
    sentiment_refresh(at="2022-05-10T11:30Z", config_file=cfg)

    report = trading_cycle(at="2022-05-10T12:00Z", config_file=cfg)
    later = trading_cycle(at="2022-05-10T13:00Z", config_file=cfg)

    btc = report.outcome("BTC/USDT")
    assert btc.sentiment is not None and btc.sentiment.bias == "bearish"  # made 30 min earlier, still valid
    assert later.outcome("BTC/USDT").sentiment is None  # 90 min later: expired


def test_refresh_is_skipped_while_halted_or_degraded(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from flows.control import halt, resume, status
    from triplegain.degradation import Health
    from triplegain.models.enums import DegradationLevel
    from triplegain.storage import create_db_engine, migrate, unit_of_work
    from triplegain.storage.tables import CoordinatorStateRow

    server.default = Step(text=json.dumps(BEARISH))
    cfg = config(tmp_path, server)
    halt("incident", actor="ops", config_file=cfg)

    assert sentiment_refresh(at="2022-05-10T12:00Z", config_file=cfg) == []
    assert server.requests == [] and status(cfg).last_runs["sentiment-refresh"].status == "skipped"

    resume("done", actor="ops", confirm=True, config_file=cfg)
    engine = create_db_engine(project_db)
    migrate(engine)
    with unit_of_work(engine) as s:
        row = s.get(CoordinatorStateRow, 1)
        assert row is not None
        row.health = Health(llm_failures=3, level=DegradationLevel.REDUCED).model_dump(mode="json")
    engine.dispose()

    assert sentiment_refresh(at="2022-05-10T12:30Z", config_file=cfg) == []
    assert server.requests == []


@pytest.mark.skipif(not SHARED_MARKET.exists(), reason=f"needs the shared market data at {SHARED_MARKET}")
def test_a_backtest_replays_the_refreshes_so_decision_prompts_with_sentiment_match(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    server.script_for("news-model", *[Step(text=json.dumps(BEARISH))] * 2)
    server.default = Step(text=json.dumps({"action": "HOLD", "confidence": 0.6, "reasoning": "wait"}))
    vote = {"kind": "openai", "model": "vote-model", "base_url": f"{server.url}/v1", "api_key": TEST_KEY}
    cfg = config(tmp_path, server, market={"data_dir": str(SHARED_MARKET)})
    data = yaml.safe_load(Path(cfg).read_text())
    data["llm"]["providers"]["vote"] = vote
    data["llm"]["decision_models"] = ["vote"]
    Path(cfg).write_text(yaml.safe_dump(data))
    sentiment_refresh(at="2022-05-10T11:30Z", config_file=cfg)
    live = trading_cycle(at="2022-05-10T12:00Z", config_file=cfg)
    assert live.outcome("BTC/USDT").sentiment is not None  # the recorded decision prompts carry it
    asked, out = len(server.requests), tmp_path / "replayed.json"

    ran = CliRunner().invoke(
        app,
        [
            *("backtest", "--replay-llm", "--config", cfg, "--out", str(out)),
            *("--start", "2022-05-10T12:00Z", "--end", "2022-05-10T13:00Z", "--no-rebalance"),
        ],
    )

    assert ran.exit_code == 0, ran.stderr
    assert len(server.requests) == asked  # nothing asked: every answer came from the recordings
    result = json.loads(out.read_text())
    assert result["sentiment_refreshes"] == 1
    assert result["replayed_answers"] == 4  # 2 sentiment answers at 11:30, 2 decision votes at 12:00
    assert result["decisions"]["vote"] == 2  # the 12:00 prompts, sentiment included, matched
    assert "sentiment refreshes replayed at their times: 1" in ran.stdout
