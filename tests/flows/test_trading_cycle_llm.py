"""The trading cycle with language models voting, through the fake LLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from flows.trading_cycle import trading_cycle
from tests.fakes.llm_server import TEST_KEY, FakeLLMServer, Recorded
from triplegain.storage import create_db_engine, migrate
from triplegain.storage.tables import Base

HOLD = {"action": "HOLD", "confidence": 0.6, "reasoning": "signals are mixed"}
XRP_BUY = {  # XRP is choppy on 2024-06-30 20:00: a BUY there is a conflict
    "action": "BUY",
    "confidence": 0.9,
    "entry_price": 0.4742,
    "stop_loss": 0.47,
    "take_profit": 0.49,
    "position_size_pct": 5,
    "reasoning": "bounce",
}


def llm_config(tmp_path: Path, server: FakeLLMServer, **llm: object) -> str:
    providers = {
        "v1": {
            "kind": "openai",
            "model": "model-a",
            "base_url": f"{server.url}/v1",
            "api_key": TEST_KEY,
            "price_in_per_mtok": 1,
            "price_out_per_mtok": 2,
        },
        "v2": {"kind": "anthropic", "model": "model-b", "base_url": server.url, "api_key": TEST_KEY},
    }
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump({"llm": {"providers": providers, "decision_models": ["v1", "v2"], **llm}}))
    return str(path)


def latest_artifact_text() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.trading_cycle import ARTIFACT_KEY

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY]))
        )
    return "\n".join(str(a.data) for a in artifacts)


def all_rows_text(url: str) -> str:
    engine = create_db_engine(url)
    migrate(engine)
    with engine.connect() as conn:
        dump = "\n".join(
            str(list(conn.execute(text(f"SELECT * FROM {t.name}")))) for t in Base.metadata.sorted_tables
        )
    engine.dispose()
    return dump


def test_models_vote_and_every_call_is_recorded_without_the_key(
    project_db: str, tmp_path: Path, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = server.answer(HOLD)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=llm_config(tmp_path, server))

    assert report.decided_by == "v1,v2"
    btc = report.outcome("BTC/USDT").signal
    assert btc is not None and [v.model for v in btc.model_votes] == ["v1", "v2"]
    assert report.llm_cost_usd > 0 and len(server.requests) == 4
    dump = all_rows_text(project_db)
    assert "model-a" in dump and "'ok'" in dump  # llm_calls rows
    assert TEST_KEY not in dump
    assert TEST_KEY not in caplog.text and TEST_KEY not in report.model_dump_json()
    assert TEST_KEY not in latest_artifact_text()
    assert all(TEST_KEY not in r.prompt_text for r in server.requests)


def test_a_spent_budget_lets_the_offline_model_decide_and_says_so(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    config = llm_config(tmp_path, server, budget_per_cycle_usd=0)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=config)

    assert server.requests == []
    assert report.decided_by == "offline-deterministic"
    assert any("LLM cycle budget of 0 USD spent" in e for e in report.notes)


def test_models_that_all_fail_abstain_and_the_cycle_holds(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from tests.fakes.llm_server import Step

    server.default = Step(status=401)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=llm_config(tmp_path, server))

    btc = report.outcome("BTC/USDT").signal
    assert btc is not None and btc.action == "HOLD" and btc.agreement == "insufficient_quorum"
    assert all(v.abstained and "HTTP 401" in (v.error or "") for v in btc.model_votes)
    assert btc.decided_by.startswith(
        "quorum-rule: every model abstained"
    )  # no abstaining model named as voter
    assert report.decided_by == btc.decided_by


def xrp_buys_in_the_choppy_regime(body: dict) -> object:
    """Voters: BUY XRP (choppy on 2024-06-30 20:00, so a conflict), HOLD BTC. Resolver: wait on XRP."""
    from tests.fakes.llm_server import Step

    text = Recorded("", {}, body).prompt_text
    if "CONFLICTS DETECTED" in text:
        return Step(
            text=json.dumps(
                {
                    "decisions": [
                        {
                            "symbol": "XRP/USDT",
                            "action": "wait",
                            "confidence": 0.7,
                            "reasoning": "choppy: wait for direction",
                        }
                    ]
                }
            )
        )
    if '"symbol": "XRP/USDT"' in text:
        return Step(text=json.dumps(XRP_BUY))
    return Step(text=json.dumps(HOLD))


def test_a_conflict_goes_to_the_resolution_subflow_and_is_recorded(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    server.responder = xrp_buys_in_the_choppy_regime
    config = llm_config(tmp_path, server, resolution_chain=["v1"])

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=config)

    xrp = report.outcome("XRP/USDT")
    assert xrp.signal is not None and xrp.signal.action == "BUY"
    assert (
        xrp.resolution is not None and xrp.resolution.action == "wait" and xrp.resolution.decided_by == "v1"
    )
    assert xrp.execution is None
    assert any("XRP/USDT: BUY not traded: conflict resolved as wait by v1" in e for e in report.notes)
    dump = all_rows_text(project_db)
    assert "regime_conflict" in dump and "choppy: wait for direction" in dump
    assert sum("CONFLICTS DETECTED" in r.prompt_text for r in server.requests) == 1


def test_without_a_resolver_the_conflict_gets_the_conservative_action(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    server.responder = xrp_buys_in_the_choppy_regime

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=llm_config(tmp_path, server))

    resolution = report.outcome("XRP/USDT").resolution
    assert (
        resolution is not None
        and resolution.action == "abort"
        and resolution.decided_by == "conservative-fallback"
    )
    assert report.outcome("XRP/USDT").execution is None


def test_answers_recorded_in_a_paper_run_are_replayed_by_a_backtest_for_free(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    server.default = server.answer(HOLD)
    cfg = llm_config(tmp_path, server)
    trading_cycle(at="2024-06-30T20:00Z", config_file=cfg)
    asked = len(server.requests)
    out = tmp_path / "replayed.json"

    ran = CliRunner().invoke(
        app,
        [
            *("backtest", "--replay-llm", "--config", cfg, "--out", str(out)),
            *("--start", "2024-06-30T20:00Z", "--end", "2024-06-30T21:00Z", "--no-rebalance"),
        ],
    )

    assert ran.exit_code == 0, ran.stderr
    assert len(server.requests) == asked  # replayed: no model was called
    result = json.loads(out.read_text())
    assert result["replayed_answers"] == 4 and result["missing_answers"] == 4  # 20:00 recorded, 21:00 not
    assert result["decisions"] == {"v1,v2": 2, "offline-deterministic": 2}
    assert "recorded answers replayed: 4" in ran.stdout
    assert {row["model"] for row in result["leaderboard"]} == {"v1", "v2", "offline"}


def test_the_leaderboard_scores_the_votes_of_paper_runs(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.leaderboard import model_leaderboard

    server.default = server.answer(HOLD)
    cfg = llm_config(tmp_path, server)
    for hour in ("10", "11"):
        trading_cycle(at=f"2024-06-29T{hour}:00Z", config_file=cfg)

    rows = {row.model: row for row in model_leaderboard(30, cfg)}
    shown = CliRunner().invoke(app, ["leaderboard", "--config", cfg])

    assert set(rows) == {"v1", "v2"} and rows["v1"].votes == 4 and rows["v1"].scored == 4
    assert rows["v1"].actions == {"HOLD": 4} and rows["v1"].accuracy_pct is not None
    assert shown.exit_code == 0 and "v1" in shown.stdout and "right %" in shown.stdout


def test_a_registered_agent_runs_as_a_task_and_the_voters_see_its_report(
    project_db: str, tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.triplegain.agents.test_registry import check_volume
    from triplegain.agents import registry

    monkeypatch.setattr(registry, "ANALYSIS_AGENTS", (registry.AnalysisAgent("volume_check", check_volume),))
    server.default = server.answer(HOLD)

    trading_cycle(at="2024-06-30T20:00Z", config_file=llm_config(tmp_path, server))

    assert all('"volume_check"' in r.prompt_text for r in server.requests)
    engine = create_db_engine(project_db)
    with engine.connect() as conn:
        stored = conn.execute(
            text("select symbol from agent_outputs where agent_name = 'volume_check'")
        ).all()
    engine.dispose()
    assert sorted(s for (s,) in stored) == ["BTC/USDT", "XRP/USDT"]


REGIME_ANSWER = {
    "regime": "trending_bull",
    "confidence": 0.8,
    "characteristics": {"volatility": "normal", "trend_strength": 0.6, "volume_profile": "stable"},
    "recommended_adjustments": {
        "position_size_multiplier": 1.0,
        "stop_loss_multiplier": 1.2,
        "take_profit_multiplier": 2.0,
        "entry_strictness": "normal",
    },
    "reasoning": "a steady rise on every timeframe",
}


def test_the_analysis_agents_on_models_retry_fall_back_and_are_recorded(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from tests.fakes.llm_server import Step

    server.script_for("model-a", *[Step(status=500)] * 6)  # the technical model fails, both symbols
    server.default = server.answer(REGIME_ANSWER)  # the regime model answers
    config = llm_config(
        tmp_path,
        server,
        decision_models=[],
        technical_model="v1",
        regime_model="v2",
        retry_backoff_seconds=0.05,
    )

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=config)

    btc = report.outcome("BTC/USDT")
    assert btc.technical is not None and btc.technical.model_used == "v1"
    assert btc.technical.confidence == 0.0 and any("LLM call failed" in w for w in btc.technical.warnings)
    assert btc.regime is not None and btc.regime.model_used == "v2" and btc.regime.prompt_hash
    assert report.decided_by == "offline-deterministic"
    engine = create_db_engine(project_db)
    with engine.connect() as conn:
        calls = list(conn.execute(text("SELECT agent, outcome FROM llm_calls ORDER BY id")))
    engine.dispose()
    technical = [o for a, o in calls if a == "technical_analysis"]
    # each symbol: the call and up to 2 retries; after 3 failures the provider's breaker refuses the rest
    assert 4 <= len(technical) <= 6 and technical[:3] == ["unavailable"] * 3
    assert set(technical[3:]) <= {"unavailable", "circuit_open"} and "circuit_open" in technical
    xrp = report.outcome("XRP/USDT").technical
    assert xrp is not None and xrp.confidence == 0.0 and xrp.model_used == "v1"
    assert [o for a, o in calls if a == "regime_detection"] == ["ok", "ok"]
