"""Language-model settings: providers, who uses which, retries, breakers and budgets."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator, model_validator

from triplegain.llm.breaker import BreakerPolicy
from triplegain.llm.models import ProviderConfig
from triplegain.settings.section import SECTION, Seconds, Usd

DEFAULT_PROVIDERS = {
    "deepseek": ProviderConfig(
        name="deepseek",
        kind="openai",
        model="deepseek-chat",
        base_url="https://api.deepseek.com/v1",
        price_in_per_mtok=Decimal("0.27"),
        price_out_per_mtok=Decimal("1.10"),
    ),
    "anthropic": ProviderConfig(
        name="anthropic",
        kind="anthropic",
        model="claude-3-5-sonnet-20241022",
        timeout_seconds=60,
        price_in_per_mtok=Decimal(3),
        price_out_per_mtok=Decimal(15),
    ),
}


class LLMSettings(BaseModel):
    """Language models: the providers, who uses which, retries, breakers and the cost budget.

    A name used in `decision_models`, `sentiment_models` or `resolution_chain` is found, at run time, in
    the Prefect Block `llm-<name>` if one is saved, else in `providers` here, else among the built-in
    `DEFAULT_PROVIDERS` (deepseek, anthropic); its API key in the block, in
    `TRIPLEGAIN_LLM__PROVIDERS__<NAME>__API_KEY`, or in the conventional `<NAME>_API_KEY`. A provider with
    neither a key nor a local endpoint is skipped, so without keys every agent takes its offline path:
    by default conflicts go to DeepSeek, then Claude, once their keys are set, and nothing votes but the
    deterministic offline model.
    """

    model_config = SECTION

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    decision_models: list[str] = Field(default_factory=list, description="Providers voting on trades")
    sentiment_models: list[str] = Field(default_factory=list, description="Providers rating the news")
    technical_model: str | None = Field(
        None, description="Provider of the technical-analysis agent (e.g. a local qwen2.5:7b); None: offline"
    )
    regime_model: str | None = Field(None, description="Provider of the regime agent; None: offline")
    resolution_chain: list[str] = Field(
        default_factory=lambda: ["deepseek", "anthropic"], description="Conflict resolver, then fallbacks"
    )
    retries: int = Field(2, ge=0, le=10, description="Task retries of one call, for transient errors only")
    retry_backoff_seconds: Seconds = Field(2.0, description="First retry delay; doubles each retry")
    retry_jitter: float = Field(0.5, ge=0, le=1, description="Random share added to each delay")
    max_retry_after_seconds: float = Field(
        30, ge=0, le=3600, description="A longer Retry-After is not waited for"
    )
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    budget_per_cycle_usd: Usd = Decimal("0.50")
    budget_per_day_usd: Usd = Decimal("5.00")

    @field_validator("providers", mode="before")
    @classmethod
    def _names_from_keys(cls, providers: object) -> object:
        """A provider's name defaults to its key in `providers`."""
        if isinstance(providers, dict):
            return {k: {"name": k, **v} if isinstance(v, dict) else v for k, v in providers.items()}
        return providers

    @model_validator(mode="after")
    def _names_match(self) -> LLMSettings:
        for name, provider in self.providers.items():
            if provider.name != name:
                raise ValueError(f"providers.{name} has name {provider.name!r}; they must match")
        return self

    def known_providers(self) -> dict[str, ProviderConfig]:
        """Every provider a name may refer to: `providers` here over the built-in `DEFAULT_PROVIDERS`."""
        return {**DEFAULT_PROVIDERS, **self.providers}

    def referenced(self) -> list[str]:
        """Every provider some agent uses, in first-mention order."""
        analysts = [m for m in (self.technical_model, self.regime_model) if m]
        names = [*self.decision_models, *self.sentiment_models, *analysts, *self.resolution_chain]
        return list(dict.fromkeys(names))
