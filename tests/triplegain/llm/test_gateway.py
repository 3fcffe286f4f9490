"""Failover, circuit breakers, budget and call records, through the fake server."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import BaseModel

from tests.fakes.llm_server import TEST_KEY, FakeLLMServer, Step
from tests.triplegain.bus.helpers import FakeClock, run
from triplegain.errors import LLMBudgetExceeded, LLMUnavailable
from triplegain.llm.breaker import BreakerPolicy, BreakerPosition, ProviderBreaker, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Prompt

PROMPT = Prompt(system="s", user="u")


class Verdict(BaseModel):
    action: str


def gateway(clock: FakeClock | None = None, budget: Budget | None = None, **policy: float) -> LLMGateway:
    return LLMGateway(
        ProviderBreakers(BreakerPolicy(**policy)),
        budget or Budget(Decimal(1), Decimal(5)),
        cycle_id="cycle-1",
        clock=clock or FakeClock(),
    )


def test_fallback_answers_when_the_primary_fails(server: FakeLLMServer) -> None:
    primary, fallback = server.openai_provider("deepseek"), server.anthropic_provider("anthropic")
    server.script(Step(status=503), server.answer({"action": "wait"}))
    gw = gateway()

    answer = run(gw.ask("conflict_resolution", [primary, fallback], PROMPT, Verdict))

    assert answer.value.action == "wait" and answer.usage.provider == "anthropic"
    assert [(r.provider, r.outcome) for r in gw.records] == [("deepseek", "unavailable"), ("anthropic", "ok")]
    assert gw.records[0].error is not None and "HTTP 503" in gw.records[0].error
    assert all(r.cycle_id == "cycle-1" and r.agent == "conflict_resolution" for r in gw.records)


def test_every_provider_down_is_unavailable_naming_each(server: FakeLLMServer) -> None:
    server.script(Step(status=500), Step(status=429))

    with pytest.raises(
        LLMUnavailable, match=r"every provider failed: .*deepseek.*HTTP 500.*anthropic.*HTTP 429"
    ):
        run(gateway().ask("x", [server.openai_provider(), server.anthropic_provider()], PROMPT, Verdict))


def test_breaker_opens_after_three_failures_then_half_opens_after_cooldown(server: FakeLLMServer) -> None:
    clock = FakeClock()
    gw = gateway(clock)
    provider = server.openai_provider()
    server.script(*[Step(status=500)] * 3)
    for _ in range(3):
        with pytest.raises(LLMUnavailable):
            run(gw.ask("x", [provider], PROMPT, Verdict))

    with pytest.raises(LLMUnavailable, match="circuit open"):
        run(gw.ask("x", [provider], PROMPT, Verdict))
    assert len(server.requests) == 3 and gw.breakers.state("deepseek").position is BreakerPosition.OPEN

    clock.advance(301)
    server.script(server.answer({"action": "proceed"}))
    assert run(gw.ask("x", [provider], PROMPT, Verdict)).value.action == "proceed"
    assert gw.breakers.state("deepseek") == ProviderBreaker()


def test_a_failed_trial_call_reopens_the_breaker() -> None:
    policy, t0 = BreakerPolicy(), FakeClock()()
    opened = ProviderBreaker().failed(t0, policy).failed(t0, policy).failed(t0, policy)

    allowed, trial = opened.admit(t0 + timedelta(seconds=301), policy)
    reopened = trial.failed(t0 + timedelta(seconds=302), policy)

    assert allowed and trial.position is BreakerPosition.HALF_OPEN
    assert reopened.position is BreakerPosition.OPEN and reopened.opened_at == t0 + timedelta(seconds=302)


def test_half_open_lets_only_the_trial_calls_through() -> None:
    policy, t0 = BreakerPolicy(half_open_calls=2), FakeClock()()
    breaker = ProviderBreaker(position=BreakerPosition.OPEN, failures=3, opened_at=t0)
    later = t0 + timedelta(seconds=400)

    verdicts = []
    for _ in range(3):
        allowed, breaker = breaker.admit(later, policy)
        verdicts.append(allowed)

    assert verdicts == [True, True, False]


def test_spent_budget_fails_closed_and_says_so_once(server: FakeLLMServer) -> None:
    provider = server.openai_provider(price_in_per_mtok=1000, price_out_per_mtok=1000)  # 0.12 USD a call
    server.script(server.answer({"action": "wait"}))
    gw = gateway(budget=Budget(per_cycle=Decimal("0.1"), per_day=Decimal(5)))
    run(gw.ask("x", [provider], PROMPT, Verdict))

    for _ in range(2):
        with pytest.raises(LLMBudgetExceeded, match=r"cycle LLM budget of 0.1 USD spent"):
            run(gw.ask("x", [provider], PROMPT, Verdict))

    assert len(server.requests) == 1
    assert [e.scope for e in gw.events] == ["cycle"]
    assert [r.outcome for r in gw.records] == ["ok", "budget_exceeded", "budget_exceeded"]


def test_day_budget_counts_what_earlier_runs_spent(server: FakeLLMServer) -> None:
    gw = gateway(budget=Budget(per_cycle=Decimal(1), per_day=Decimal(5), spent_today=Decimal(5)))

    with pytest.raises(LLMBudgetExceeded, match="day LLM budget"):
        run(gw.ask("x", [server.openai_provider()], PROMPT, Verdict))

    assert server.requests == []


def test_invalid_output_cost_is_still_recorded(server: FakeLLMServer) -> None:
    provider = server.openai_provider(price_in_per_mtok=1, price_out_per_mtok=1)
    server.script(server.answer("nope"), server.answer("still nope"))
    gw = gateway()

    with pytest.raises(LLMUnavailable):
        run(gw.ask("x", [provider], PROMPT, Verdict))

    first, repair = gw.records  # a row per request: the answer that needed a re-ask, then the re-ask
    assert (first.outcome, repair.outcome) == ("reasked", "invalid")
    assert first.tokens_in + repair.tokens_in == 200 and first.cost_usd + repair.cost_usd == Decimal(
        "0.00024"
    )
    assert gw.budget.spent_cycle == Decimal("0.00024")


def test_records_never_contain_the_key(server: FakeLLMServer) -> None:
    server.script(Step(status=401), Step(status=500))
    gw = gateway()

    with pytest.raises(LLMUnavailable) as e:
        run(gw.ask("x", [server.openai_provider(), server.anthropic_provider()], PROMPT, Verdict))

    assert TEST_KEY not in str(e.value)
    assert all(TEST_KEY not in r.model_dump_json() for r in gw.records)
