"""The one task that calls a language model: async, SDK-level timeout, Prefect retries for transient errors.

Retries use exponential backoff with jitter and happen only for LLMUnavailable (429, 5xx, timeouts,
connection failures). A Retry-After is honoured before the retry's own delay, outside the provider's
concurrency slot; one longer than `max_retry_after_seconds` is not waited for (the call fails now).
Each provider has a Prefect global concurrency limit `llm-<name>` and a rate limit `llm-<name>-rate`.
"""

from __future__ import annotations

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import concurrency, rate_limit
from prefect.tasks import exponential_backoff
from pydantic import BaseModel

from tasks.retry import retry_on
from triplegain.errors import LLMUnavailable
from triplegain.llm.ask import ask_provider
from triplegain.llm.gateway import Caller
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.settings import LLMSettings

SECONDS_PER_MINUTE = 60


def limit_names(provider: str) -> tuple[str, str]:
    """The global concurrency and rate-limit names of a provider."""
    return f"llm-{provider}", f"llm-{provider}-rate"


@task(
    name="ask-llm",
    task_run_name="ask-{config.name}",
    cache_policy=NO_CACHE,
    retry_condition_fn=retry_on(LLMUnavailable),
)
async def ask_llm(
    config: ProviderConfig, prompt: Prompt, schema: type[BaseModel], max_retry_after: float
) -> Answer[BaseModel]:
    """One structured question to one provider, within its concurrency and rate limits."""
    slots, rate = limit_names(config.name)
    try:
        async with concurrency(slots, occupy=1, strict=False):
            await rate_limit(rate, strict=False)
            return await ask_provider(config, prompt, schema)
    except LLMUnavailable as e:
        if e.retry_after is not None:
            if e.retry_after > max_retry_after:
                e.retryable = False
            else:
                await asyncio.sleep(e.retry_after)
        raise


def llm_caller(settings: LLMSettings) -> Caller[BaseModel]:
    """How the gateway calls one provider: the ask-llm task with the configured retries."""
    configured = ask_llm.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(settings.retry_backoff_seconds)(settings.retries),
        retry_jitter_factor=settings.retry_jitter,
    )

    async def call(config: ProviderConfig, prompt: Prompt, schema: type[BaseModel]) -> Answer[BaseModel]:
        return await configured(config, prompt, schema, settings.max_retry_after_seconds)

    return call


async def ensure_llm_limits(providers: list[ProviderConfig]) -> None:
    """Create or update each provider's global concurrency and rate limits on the Prefect server."""
    async with get_client() as client:
        for config in providers:
            slots, rate = limit_names(config.name)
            await client.upsert_global_concurrency_limit_by_name(slots, config.max_concurrency)
            await client.upsert_global_concurrency_limit_by_name(
                rate, config.requests_per_minute, config.requests_per_minute / SECONDS_PER_MINUTE
            )
