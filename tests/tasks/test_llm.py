"""The ask-llm task through the fake server: retries for transient errors only, Retry-After honoured."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from pydantic import BaseModel

from tasks.llm import ensure_llm_limits, llm_caller
from tests.fakes.llm_server import FakeLLMServer, Step
from tests.triplegain.bus.helpers import run
from triplegain.errors import LLMRejected, LLMUnavailable
from triplegain.llm.breaker import BreakerPolicy, ProviderBreakers
from triplegain.llm.gateway import Budget, LLMGateway
from triplegain.llm.models import Prompt
from triplegain.settings import LLMSettings

PROMPT = Prompt(system="s", user="u")
FAST = LLMSettings(retries=2, retry_backoff_seconds=0.05, retry_jitter=0, max_retry_after_seconds=2)


class Verdict(BaseModel):
    action: str


def test_429_then_success_waits_for_retry_after_and_retries(server: FakeLLMServer) -> None:
    server.script(Step(status=429, headers={"retry-after": "1"}), server.answer({"action": "wait"}))
    call = llm_caller(FAST)

    start = time.monotonic()
    answer = run(call(server.openai_provider(), PROMPT, Verdict))

    assert answer.value.action == "wait" and len(server.requests) == 2  # type: ignore[attr-defined]
    assert time.monotonic() - start >= 1.0


def test_server_errors_and_timeouts_are_retried(server: FakeLLMServer) -> None:
    server.script(Step(status=500), server.answer({"a": 1}, delay=1.0), server.answer({"action": "proceed"}))
    provider = server.anthropic_provider(timeout_seconds=0.4)

    answer = run(llm_caller(FAST)(provider, PROMPT, Verdict))

    assert answer.value.action == "proceed" and len(server.requests) == 3  # type: ignore[attr-defined]


def test_rejections_are_not_retried(server: FakeLLMServer) -> None:
    server.script(Step(status=401), server.answer({"action": "wait"}))

    with pytest.raises(LLMRejected, match="deepseek/deepseek-chat: HTTP 401"):
        run(llm_caller(FAST)(server.openai_provider(), PROMPT, Verdict))

    assert len(server.requests) == 1


def test_a_retry_after_beyond_the_cap_fails_now(server: FakeLLMServer) -> None:
    server.script(Step(status=429, headers={"retry-after": "120"}), server.answer({"action": "wait"}))

    with pytest.raises(LLMUnavailable, match="HTTP 429"):
        run(llm_caller(FAST)(server.openai_provider(), PROMPT, Verdict), timeout=15)  # not the 120 s asked

    assert len(server.requests) == 1


def test_retries_exhausted_then_the_gateway_falls_back(server: FakeLLMServer) -> None:
    server.script(Step(status=503), Step(status=503), Step(status=503), server.answer({"action": "abort"}))
    gateway = LLMGateway(
        ProviderBreakers(BreakerPolicy()), Budget(Decimal(1), Decimal(5)), call=llm_caller(FAST)
    )

    answer = run(gateway.ask("x", [server.openai_provider(), server.anthropic_provider()], PROMPT, Verdict))

    assert answer.value.action == "abort" and answer.usage.provider == "anthropic"  # type: ignore[attr-defined]
    assert [r.outcome for r in gateway.records] == ["unavailable"] * 3 + ["ok"]  # every request is a row


def test_provider_limits_are_created_on_the_server(server: FakeLLMServer) -> None:
    from prefect.client.orchestration import get_client

    provider = server.openai_provider(max_concurrency=2, requests_per_minute=30)
    run(ensure_llm_limits([provider]))

    async def read() -> tuple[int, int, float | None]:
        async with get_client() as client:
            slots = await client.read_global_concurrency_limit_by_name("llm-deepseek")
            rate = await client.read_global_concurrency_limit_by_name("llm-deepseek-rate")
        return slots.limit, rate.limit, rate.slot_decay_per_second

    assert run(read()) == (2, 30, 0.5)


def test_a_provider_failing_through_its_retries_opens_its_breaker_and_retries_stop(
    server: FakeLLMServer,
) -> None:
    from triplegain.llm.breaker import BreakerPosition

    server.default = Step(status=503)
    patient = FAST.model_copy(update={"retries": 4})
    gateway = LLMGateway(
        ProviderBreakers(BreakerPolicy(failure_threshold=2)),
        Budget(Decimal(1), Decimal(5)),
        call=llm_caller(patient),
    )

    with pytest.raises(LLMUnavailable):
        run(gateway.ask("x", [server.openai_provider()], PROMPT, Verdict))

    assert len(server.requests) == 2  # not 5: the breaker opened after the second failed request
    assert [r.outcome for r in gateway.records] == ["unavailable", "unavailable", "circuit_open"]
    assert gateway.breakers.state("deepseek").position is BreakerPosition.OPEN
