"""The trading cycle with language models voting, through the fake LLM server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from flows.trading_cycle import trading_cycle
from tests.fakes.llm_server import TEST_KEY, FakeLLMServer
from triplegain.storage import create_db_engine, migrate
from triplegain.storage.tables import Base

HOLD = {"action": "HOLD", "confidence": 0.6, "reasoning": "signals are mixed"}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as s:
        yield s


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
    assert all(TEST_KEY not in r.prompt_text for r in server.requests)


def test_a_spent_budget_lets_the_offline_model_decide_and_says_so(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    config = llm_config(tmp_path, server, budget_per_cycle_usd=0)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=config)

    assert server.requests == []
    assert report.decided_by == "offline-deterministic"
    assert any("LLM cycle budget of 0 USD spent" in e for e in report.events)


def test_models_that_all_fail_abstain_and_the_cycle_holds(
    project_db: str, tmp_path: Path, server: FakeLLMServer
) -> None:
    from tests.fakes.llm_server import Step

    server.default = Step(status=401)

    report = trading_cycle(at="2024-06-30T20:00Z", config_file=llm_config(tmp_path, server))

    btc = report.outcome("BTC/USDT").signal
    assert btc is not None and btc.action == "HOLD" and btc.agreement == "insufficient_quorum"
    assert all(v.abstained and "HTTP 401" in (v.error or "") for v in btc.model_votes)
