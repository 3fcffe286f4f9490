"""Conflict resolution through the fake server: hedging, budget, fallbacks, bounded modifications."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes.llm_server import FakeLLMServer, Step
from tests.triplegain.bus.helpers import run
from triplegain.conflicts import Conflict, ConflictType
from triplegain.llm.adapters import preload_sdks
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.models.enums import Side
from triplegain.models.trading import TradeProposal
from triplegain.resolution import (
    AGENT,
    FALLBACK_BY,
    Modifications,
    ResolutionAction,
    ResolutionAnswer,
    apply_modifications,
    resolve,
)
from triplegain.settings import ConflictSettings

BTC = Conflict(
    type=ConflictType.CHOPPY_REGIME,
    symbol="BTC/USDT",
    agents_involved=["regime_detection"],
    description="BUY in a choppy regime",
    fallback="abort",
)
XRP = Conflict(
    type=ConflictType.TA_SENTIMENT,
    symbol="XRP/USDT",
    agents_involved=["technical_analysis"],
    description="TA long, sentiment bearish",
    fallback="wait",
)
PROCEED_BTC = {
    "decisions": [{"symbol": "BTC/USDT", "action": "proceed", "confidence": 0.7, "reasoning": "ok"}]
}


def asker() -> tuple[object, LLMGateway]:
    gateway = LLMGateway(ProviderBreakers(BreakerPolicy()), Budget(Decimal(1), Decimal(5)))

    async def ask(config: ProviderConfig, prompt: Prompt) -> Answer[ResolutionAnswer]:
        return await gateway.ask(AGENT, [config], prompt, ResolutionAnswer)

    return ask, gateway


def chain(server: FakeLLMServer) -> list[ProviderConfig]:
    return [
        server.openai_provider("deepseek", model="primary"),
        server.anthropic_provider("claude", model="fallback"),
    ]


def settle(
    server: FakeLLMServer, conflicts: list[Conflict], settings: ConflictSettings | None = None
) -> list:
    ask, _ = asker()
    return run(resolve(conflicts, {}, chain(server), ask, settings or ConflictSettings()))  # type: ignore[arg-type]


def test_the_primary_answers_for_every_symbol(server: FakeLLMServer) -> None:
    decisions = {
        "decisions": [*PROCEED_BTC["decisions"], {"symbol": "XRP/USDT", "action": "WAIT", "confidence": 0.4}]
    }
    server.script_for("primary", server.answer(decisions))

    [btc, xrp] = settle(server, [BTC, XRP])

    assert (btc.action, btc.decided_by, btc.proceeds) == (ResolutionAction.PROCEED, "deepseek", True)
    assert (xrp.action, xrp.proceeds) == (ResolutionAction.WAIT, False)
    assert (
        "regime_conflict" in server.requests[0].prompt_text and "XRP/USDT" in server.requests[0].prompt_text
    )


def test_a_slow_primary_is_hedged_and_the_fallback_wins_within_budget(server: FakeLLMServer) -> None:
    server.script_for("primary", server.answer(PROCEED_BTC, delay=3))
    server.script_for(
        "fallback",
        server.answer({"decisions": [{"symbol": "BTC/USDT", "action": "abort", "confidence": 0.8}]}),
    )
    settings = ConflictSettings(resolution_budget_seconds=2, hedge_after_share=0.25)
    preload_sdks(chain(server))
    ask, gateway = asker()

    [btc] = run(resolve([BTC], {}, chain(server), ask, settings))  # type: ignore[arg-type]

    assert btc.decided_by == "claude" and btc.action is ResolutionAction.ABORT
    assert server.max_in_flight == 2  # the fallback was sent while the primary was still out
    assert sorted((r.provider, r.outcome) for r in gateway.records) == [
        ("claude", "ok"),
        ("deepseek", "cancelled"),
    ]


def test_a_failing_primary_starts_the_fallback_at_once(server: FakeLLMServer) -> None:
    server.script_for("primary", Step(status=500))
    server.script_for("fallback", server.answer(PROCEED_BTC))

    [btc] = settle(server, [BTC], ConflictSettings(hedge_after_share=1.0))

    assert btc.decided_by == "claude"


def test_both_down_is_the_conservative_fallback(server: FakeLLMServer) -> None:
    server.script_for("primary", Step(status=500))
    server.script_for("fallback", Step(status=503))

    [btc, xrp] = settle(server, [BTC, XRP])

    assert (btc.action, xrp.action) == (ResolutionAction.ABORT, ResolutionAction.WAIT)
    assert btc.decided_by == FALLBACK_BY and "every model failed" in btc.reasoning


def test_budget_exceeded_is_the_conservative_fallback_on_time(server: FakeLLMServer) -> None:
    server.script_for("primary", server.answer(PROCEED_BTC, delay=3))
    server.script_for("fallback", server.answer(PROCEED_BTC, delay=3))

    ask, gateway = asker()

    [btc] = run(resolve([BTC], {}, chain(server), ask, ConflictSettings(resolution_budget_seconds=1)))  # type: ignore[arg-type]

    assert btc.action is ResolutionAction.ABORT and "within the 1 s budget" in btc.reasoning
    assert [r.outcome for r in gateway.records] == ["timeout", "timeout"]  # both cut by the budget, recorded


def test_malformed_json_is_repaired(server: FakeLLMServer) -> None:
    server.script_for("primary", server.answer("{decisions: [oops"), server.answer(PROCEED_BTC))

    [btc] = settle(server, [BTC])

    assert btc.action is ResolutionAction.PROCEED and btc.decided_by == "deepseek"


def test_no_model_configured_is_conservative() -> None:
    ask, _ = asker()

    [btc] = run(resolve([BTC], {}, [], ask, ConflictSettings()))  # type: ignore[arg-type]

    assert btc.action is ResolutionAction.ABORT and "no LLM configured" in btc.reasoning


def test_a_symbol_left_out_of_the_answer_gets_the_conservative_action(server: FakeLLMServer) -> None:
    server.script_for("primary", server.answer(PROCEED_BTC))

    [btc, xrp] = settle(server, [BTC, XRP])

    assert btc.action is ResolutionAction.PROCEED and xrp.action is ResolutionAction.WAIT
    assert xrp.decided_by == FALLBACK_BY


def proposal(side: Side = Side.BUY, leverage: int = 3) -> TradeProposal:
    levels = (Decimal(98), Decimal(104)) if side is Side.BUY else (Decimal(102), Decimal(96))
    return TradeProposal(
        symbol="BTC/USDT",
        side=side,
        size_usd=Decimal(1000),
        entry_price=Decimal(100),
        stop_loss=levels[0],
        take_profit=levels[1],
        leverage=leverage,
        confidence=0.8,
    )


@pytest.mark.parametrize(("asked", "expected"), [(9, 3), (0, 1), (2, 2)])
def test_leverage_is_clamped_and_only_goes_down(asked: int, expected: int) -> None:
    modified, _ = apply_modifications(proposal(), Modifications(leverage=asked), ConflictSettings())

    assert modified is not None and modified.leverage == expected


@pytest.mark.parametrize(("pct", "size"), [(Decimal(30), Decimal(700)), (Decimal(-20), Decimal(1000))])
def test_size_only_shrinks(pct: Decimal, size: Decimal) -> None:
    modified, _ = apply_modifications(proposal(), Modifications(size_reduction_pct=pct), ConflictSettings())

    assert modified is not None and modified.size_usd == size


def test_size_reduced_to_nothing_means_no_trade() -> None:
    modified, notes = apply_modifications(
        proposal(), Modifications(size_reduction_pct=Decimal(250)), ConflictSettings()
    )

    assert modified is None and "to nothing" in notes[0]


def test_a_better_entry_than_the_market_means_waiting_a_worse_one_is_moot() -> None:
    lower, notes = apply_modifications(
        proposal(), Modifications(entry_adjustment_pct=Decimal(-80)), ConflictSettings()
    )
    higher, _ = apply_modifications(
        proposal(), Modifications(entry_adjustment_pct=Decimal(5)), ConflictSettings()
    )

    assert lower is None and "-50" in notes[0] and "waiting" in notes[0]
    assert higher is not None and higher.entry_price == Decimal(100)
