"""The agent tasks: each is one call into the domain, under the name the Prefect UI shows, and the LLM vote
task goes through the fake server like the domain function does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tasks.agents import analyze_technicals, assess_regime, decide, decide_with_llms
from tests.fakes.llm_server import FakeLLMServer
from tests.triplegain.bus.helpers import run
from triplegain.cycle import decision_step, regime_step, technical_step
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.market import ReplaySource, build_snapshot
from triplegain.models.enums import Action
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings

AT = datetime(2024, 6, 30, 20, tzinfo=UTC)


@pytest.fixture
def snapshot(replay: ReplaySource, settings: Settings) -> MarketSnapshot:
    return build_snapshot(replay, "BTC/USDT", AT, settings.market)


def test_the_agent_tasks_carry_the_names_the_ui_shows() -> None:
    names = [t.name for t in (analyze_technicals, assess_regime, decide, decide_with_llms)]

    assert names == ["technical-analysis", "regime-detection", "trading-decision", "trading-decision-llm"]


def test_each_task_is_the_domain_step(snapshot: MarketSnapshot, settings: Settings) -> None:
    technical = analyze_technicals.fn(snapshot, settings)
    regime = assess_regime.fn(snapshot, technical, None, settings)
    signal = decide.fn(snapshot, technical, regime, settings)

    assert technical == technical_step(snapshot, settings)
    assert regime == regime_step(snapshot, technical, None, settings)
    assert signal == decision_step(snapshot, technical, regime, settings)
    assert signal.decided_by == "offline-deterministic"


def test_the_llm_vote_task_asks_the_models_and_aggregates(
    snapshot: MarketSnapshot, settings: Settings, server: FakeLLMServer
) -> None:
    price = float(snapshot.current_price)
    buy = {
        "action": "BUY",
        "confidence": 0.8,
        "entry_price": price,
        "stop_loss": price * 0.98,
        "take_profit": price * 1.04,
        "position_size_pct": 5,
        "reasoning": "breakout",
    }
    server.script(server.answer(buy), server.answer(buy))
    models = [server.openai_provider(f"m{i}", model=f"model-{i}") for i in range(2)]
    gateway = LLMGateway(ProviderBreakers(BreakerPolicy()), Budget(Decimal(1), Decimal(5)))
    technical = technical_step(snapshot, settings)
    regime = regime_step(snapshot, technical, None, settings)

    signal = run(decide_with_llms.fn(snapshot, technical, regime, settings, gateway, models))

    assert signal.action is Action.BUY and signal.decided_by == "m0,m1"
    assert len(server.requests) == 2 and [r.outcome for r in gateway.records] == ["ok", "ok"]
