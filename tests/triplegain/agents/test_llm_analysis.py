"""The technical-analysis and regime agents on a model, through the fake server: answers, timeouts,
invalid answers, failures and their fallbacks, the prompt hash, and replay."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.llm_server import FakeLLMServer, Step
from tests.triplegain.bus.helpers import run
from tests.triplegain.synthetic import BUILDERS
from triplegain.agents.llm_analysis import (
    REGIME_AGENT,
    TECHNICAL_AGENT,
    TechnicalAnswer,
    prompt_hash,
    regime_with_model,
    technical_prompt,
    technical_with_model,
)
from triplegain.cycle import regime_step, technical_step
from triplegain.llm.adapters import preload_sdks
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import ProviderConfig
from triplegain.llm.replay import ReplayCaller, recording_key
from triplegain.models.analysis import RegimeState
from triplegain.models.enums import Bias, Regime
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings, load_settings

TECHNICAL: dict[str, Any] = {
    "trend": {"direction": "bullish", "strength": 0.7, "timeframe_alignment": ["1h:bullish", "4h:bullish"]},
    "momentum": {"score": 0.4, "rsi_signal": "neutral", "macd_signal": "bullish"},
    "key_levels": {"resistance": [130], "support": [110], "current_position": "mid_range"},
    "signals": {"primary": "higher highs on 4h", "secondary": ["volume rising"], "warnings": []},
    "bias": "long",
    "confidence": 0.72,
    "reasoning": "trend and momentum agree on the higher timeframes",
}
REGIME: dict[str, Any] = {
    "regime": "volatile_bull",
    "confidence": 0.9,
    "characteristics": {"volatility": "high", "trend_strength": 0.6, "volume_profile": "increasing"},
    "recommended_adjustments": {
        "position_size_multiplier": 0.5,
        "stop_loss_multiplier": 1.5,
        "take_profit_multiplier": 2.0,
        "entry_strictness": "strict",
    },
    "reasoning": "ranges widened sharply with the price above its averages",
}


@pytest.fixture
def settings() -> Settings:
    return load_settings(technical={"model_timeout_seconds": 1}, regime={"model_timeout_seconds": 1})


def market() -> MarketSnapshot:
    from tests.triplegain.factories import snapshot

    return snapshot().model_copy(update={"candles": BUILDERS[Regime.TRENDING_BULL]()})


def gateway() -> LLMGateway:
    return LLMGateway(ProviderBreakers(BreakerPolicy()), Budget(Decimal(1), Decimal(5)))


def qwen(server: FakeLLMServer) -> ProviderConfig:
    config = server.openai_provider("qwen", model="qwen2.5:7b", timeout_seconds=5)
    preload_sdks([config])  # the SDK's first import must not count against the 1 s answer time
    return config


def test_a_valid_technical_answer_becomes_the_report_with_its_prompt_hash(
    server: FakeLLMServer, settings: Settings
) -> None:
    server.script(server.answer(TECHNICAL))
    snap, gw = market(), gateway()
    offline = technical_step(snap, settings)

    report = run(technical_with_model(snap, offline, settings, gw, qwen(server)))

    assert report.model_used == "qwen" and report.bias is Bias.LONG and report.confidence == 0.72
    assert report.primary_signal == "higher highs on 4h" and report.support_levels == [110]
    prompt = technical_prompt(snap, offline.indicators, offline)
    assert report.prompt_hash == hashlib.sha256(f"{prompt.system}|{prompt.user}".encode()).hexdigest()[:16]
    assert report.prompt_hash == prompt_hash(prompt) and len(report.prompt_hash) == 16
    assert [(r.agent, r.outcome) for r in gw.records] == [(TECHNICAL_AGENT, "ok")]
    assert len(gw.recordings) == 1  # kept for replay like a decision vote
    assert '"1d"' in server.requests[0].prompt_text  # the model sees 1h, 4h and 1d closes


def test_an_answer_that_never_parses_falls_back_to_the_offline_analysis(
    server: FakeLLMServer, settings: Settings
) -> None:
    server.script(server.answer({"bias": "up"}), server.answer({"bias": "still wrong"}))  # and the repair
    snap, gw = market(), gateway()
    offline = technical_step(snap, settings)

    report = run(technical_with_model(snap, offline, settings, gw, qwen(server)))

    assert report.bias is offline.bias and report.confidence == offline.confidence
    assert report.model_used == offline.model_used and report.prompt_hash is not None
    assert any("offline analysis stands in" in w for w in report.warnings)
    assert [r.outcome for r in gw.records] == ["reasked", "invalid"]  # one repair re-ask, then given up


@pytest.mark.parametrize("step", [Step(delay=3), Step(status=500)], ids=["timeout", "server-error"])
def test_a_failed_call_gives_the_reference_fallback_neutral_at_zero(
    server: FakeLLMServer, settings: Settings, step: Step
) -> None:
    server.script(step)
    snap, gw = market(), gateway()
    offline = technical_step(snap, settings)

    report = run(technical_with_model(snap, offline, settings, gw, qwen(server)))

    assert report.bias is Bias.NEUTRAL and report.confidence == 0.0
    assert any(w.startswith("LLM call failed") for w in report.warnings)
    assert report.indicators == offline.indicators  # the facts stay; only the judgement is withheld
    assert len(gw.records) == 1 and gw.records[0].outcome in ("timeout", "unavailable")


def test_the_model_regime_goes_through_the_hysteresis_with_its_adjustments(
    server: FakeLLMServer, settings: Settings
) -> None:
    server.script(server.answer(REGIME), server.answer(REGIME))
    snap, gw = market(), gateway()
    technical = technical_step(snap, settings)
    state = RegimeState(regime=Regime.RANGING, confidence=0.8, since=snap.timestamp, periods=3)

    first = run(
        regime_with_model(
            snap, technical, state, regime_step(snap, technical, state, settings), settings, gw, qwen(server)
        )
    )
    second = run(
        regime_with_model(
            snap,
            technical,
            first.state,
            regime_step(snap, technical, first.state, settings),
            settings,
            gw,
            qwen(server),
        )
    )

    assert first.regime is Regime.RANGING and first.detected_regime is Regime.VOLATILE_BULL  # held once
    assert second.regime is Regime.VOLATILE_BULL and second.model_used == "qwen"
    assert second.parameters.position_size_multiplier == Decimal("0.5") and second.volatility == "high"
    assert second.parameters.max_leverage == settings.regime.parameters[Regime.VOLATILE_BULL].max_leverage
    assert {r.agent for r in gw.records} == {REGIME_AGENT}


def test_a_failed_regime_call_falls_to_choppy_and_an_invalid_one_to_the_offline_classifier(
    server: FakeLLMServer, settings: Settings
) -> None:
    snap, gw = market(), gateway()
    technical = technical_step(snap, settings)
    offline = regime_step(snap, technical, None, settings)

    server.script(Step(status=500))
    failed = run(regime_with_model(snap, technical, None, offline, settings, gw, qwen(server)))
    server.script(server.answer({"regime": "moon"}), server.answer({"regime": "moon"}))
    invalid = run(regime_with_model(snap, technical, None, offline, settings, gw, qwen(server)))

    assert (
        failed.regime is Regime.CHOPPY and failed.confidence == 0.0 and "LLM call failed" in failed.reasoning
    )
    assert invalid.regime is offline.regime and "offline classifier stands in" in invalid.reasoning


def test_a_recorded_answer_replays_and_a_missing_one_uses_the_offline_analysis(settings: Settings) -> None:
    snap = market()
    offline = technical_step(snap, settings)
    config = ProviderConfig(name="qwen", kind="openai", model="qwen2.5:7b", base_url="http://127.0.0.1:9/v1")
    prompt = technical_prompt(snap, offline.indicators, offline)
    caller = ReplayCaller({recording_key(config.model, prompt, TechnicalAnswer): TECHNICAL})
    gw = LLMGateway(ProviderBreakers(BreakerPolicy()), Budget(Decimal(1), Decimal(5)), call=caller)

    replayed = run(technical_with_model(snap, offline, settings, gw, config, replaying=True))
    other = snap.model_copy(update={"current_price": snap.current_price + 1})
    missing = run(technical_with_model(other, offline, settings, gw, config, replaying=True))

    assert replayed.model_used == "qwen" and replayed.confidence == 0.72 and caller.hits == 1
    assert missing.model_used == offline.model_used and caller.misses == 1
