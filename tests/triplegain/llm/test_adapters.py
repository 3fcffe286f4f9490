"""The real SDK clients against the fake server: answers, errors, timeouts, bodies, and no key leaks."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from tests.fakes.llm_server import TEST_KEY, FakeLLMServer, Step
from tests.triplegain.bus.helpers import run
from triplegain.errors import LLMOutputInvalid, LLMRejected, LLMUnavailable
from triplegain.llm.ask import ask_provider
from triplegain.llm.models import Prompt, ProviderConfig


class Resolution(BaseModel):
    action: str
    confidence: float


PROMPT = Prompt(system="You resolve conflicts.", user="BTC/USDT: TA long, sentiment bearish.")
GOOD = {"action": "wait", "confidence": 0.6}


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest, server: FakeLLMServer) -> ProviderConfig:
    make = server.openai_provider if request.param == "openai" else server.anthropic_provider
    return make(timeout_seconds=2, price_in_per_mtok=1, price_out_per_mtok=2)


def test_structured_answer_with_usage(server: FakeLLMServer, provider: ProviderConfig) -> None:
    server.script(server.answer(GOOD, tokens_in=1000, tokens_out=500))

    answer = run(ask_provider(provider, PROMPT, Resolution))

    assert answer.value == Resolution(action="wait", confidence=0.6) and not answer.repaired
    u = answer.usage
    assert (u.provider, u.model, u.tokens_in, u.tokens_out, u.attempts) == (
        provider.name,
        provider.model,
        1000,
        500,
        1,
    )
    assert str(u.cost_usd) == "0.002" and u.latency_ms > 0
    sent = server.requests[0]
    assert "BTC/USDT: TA long" in sent.prompt_text and '"action"' in sent.prompt_text  # the schema travels


def test_answer_wrapped_in_prose_and_fences_is_extracted(
    server: FakeLLMServer, provider: ProviderConfig
) -> None:
    server.script(
        server.answer('Sure! ```json\n{"action": "proceed", "confidence": 0.9}\n``` Hope it helps.')
    )

    assert run(ask_provider(provider, PROMPT, Resolution)).value.action == "proceed"


def test_malformed_answer_is_repaired_by_one_re_ask(server: FakeLLMServer, provider: ProviderConfig) -> None:
    server.script(server.answer('{"action": "wait", confidence: high}'), server.answer(GOOD))

    answer = run(ask_provider(provider, PROMPT, Resolution))

    assert answer.repaired and answer.value.action == "wait" and answer.usage.attempts == 2
    assert "could not be used" in server.requests[1].prompt_text
    assert "confidence: high" in server.requests[1].prompt_text


def test_still_invalid_after_the_re_ask_is_output_invalid(
    server: FakeLLMServer, provider: ProviderConfig
) -> None:
    server.script(server.answer("I think you should wait."), server.answer({"action": "wait"}))

    with pytest.raises(
        LLMOutputInvalid, match=rf"{provider.name}/{provider.model}: .*Resolution.*confidence"
    ) as e:
        run(ask_provider(provider, PROMPT, Resolution))

    assert e.value.usage is not None and e.value.usage.attempts == 2


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_are_transient(server: FakeLLMServer, provider: ProviderConfig, status: int) -> None:
    server.script(Step(status=status))

    with pytest.raises(LLMUnavailable, match=f"HTTP {status}"):
        run(ask_provider(provider, PROMPT, Resolution))


def test_429_is_transient_and_carries_retry_after(server: FakeLLMServer, provider: ProviderConfig) -> None:
    server.script(Step(status=429, headers={"retry-after": "7"}))

    with pytest.raises(LLMUnavailable) as e:
        run(ask_provider(provider, PROMPT, Resolution))

    assert e.value.retry_after == 7.0 and "HTTP 429" in str(e.value)


@pytest.mark.parametrize(("status", "words"), [(401, "authentication"), (400, "invalid_request")])
def test_client_errors_fail_at_once_naming_provider_and_model(
    server: FakeLLMServer, provider: ProviderConfig, status: int, words: str
) -> None:
    server.script(Step(status=status))

    with pytest.raises(
        LLMRejected, match=rf"{provider.name}/{provider.model}: HTTP {status}: fake {words}"
    ) as e:
        run(ask_provider(provider, PROMPT, Resolution))

    assert TEST_KEY not in str(e.value) and len(server.requests) == 1


def test_sdk_timeout_is_transient(server: FakeLLMServer, provider: ProviderConfig) -> None:
    server.script(server.answer(GOOD, delay=1.5))
    quick = provider.model_copy(update={"timeout_seconds": 0.3})

    with pytest.raises(LLMUnavailable, match=r"no answer within the 0.3 s timeout"):
        run(ask_provider(quick, PROMPT, Resolution))

    assert len(server.requests) == 1  # the SDK's own retries are off


@pytest.mark.parametrize(
    "step", [Step(body=b'{"choices": [{"mess'), Step(truncate=True)], ids=["malformed", "truncated"]
)
def test_broken_response_bodies_are_transient(
    server: FakeLLMServer, provider: ProviderConfig, step: Step
) -> None:
    server.script(step)

    with pytest.raises(LLMUnavailable):
        run(ask_provider(provider, PROMPT, Resolution))


def test_connection_refused_is_transient(provider: ProviderConfig) -> None:
    nowhere = provider.model_copy(update={"base_url": "http://127.0.0.1:9/v1"})

    with pytest.raises(LLMUnavailable, match="connection failed"):
        run(ask_provider(nowhere, PROMPT, Resolution))


def test_the_key_travels_only_in_the_auth_header(server: FakeLLMServer, provider: ProviderConfig) -> None:
    server.script(server.answer(GOOD))

    run(ask_provider(provider, PROMPT, Resolution))

    request = server.requests[0]
    assert TEST_KEY not in request.prompt_text and TEST_KEY not in str(request.body)
    assert TEST_KEY in (request.headers.get("authorization", "") + request.headers.get("x-api-key", ""))
    assert TEST_KEY not in repr(provider)


def test_a_key_echoed_back_by_the_provider_is_redacted(
    server: FakeLLMServer, provider: ProviderConfig
) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {TEST_KEY}"}}).encode()
    server.script(Step(status=401, body=body))

    with pytest.raises(LLMRejected) as e:
        run(ask_provider(provider, PROMPT, Resolution))

    assert TEST_KEY not in str(e.value) and "Incorrect API key provided: ***" in str(e.value)
