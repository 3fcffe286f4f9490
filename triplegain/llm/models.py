"""LLM configuration and results: a provider's settings, a call's usage and the parsed answer."""

from __future__ import annotations

from decimal import Decimal
from typing import Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

T = TypeVar("T", bound=BaseModel)
MILLION = Decimal(1_000_000)
Outcome = Literal[
    "ok",
    "repaired",
    "reasked",
    "invalid",
    "unavailable",
    "rejected",
    "timeout",
    "cancelled",
    "circuit_open",
    "budget_exceeded",
]


class ProviderConfig(BaseModel):
    """One model behind one API: how to reach it, how long to wait, what it costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Key used in settings and records, e.g. 'deepseek'")
    kind: Literal["openai", "anthropic"] = Field(
        description="Wire format / SDK: openai (also DeepSeek, xAI, Ollama)"
    )
    model: str = Field(min_length=1, description="e.g. deepseek-chat, claude-3-5-sonnet-20241022")
    base_url: str | None = Field(
        None, description="None for the SDK default; e.g. https://api.deepseek.com/v1"
    )
    api_key: SecretStr | None = Field(None, description="Never logged, stored or put in a prompt")
    timeout_seconds: float = Field(30, gt=0, description="SDK-level timeout of one call")
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.2, ge=0, le=2)
    price_in_per_mtok: Decimal = Field(Decimal(0), ge=0, description="USD per million input tokens")
    price_out_per_mtok: Decimal = Field(Decimal(0), ge=0, description="USD per million output tokens")
    max_concurrency: int = Field(4, ge=1, description="Calls in flight at once (a Prefect global limit)")
    requests_per_minute: int = Field(60, ge=1, description="Rate limit (a Prefect global limit)")

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        """What a call with these token counts costs, in USD."""
        return (tokens_in * self.price_in_per_mtok + tokens_out * self.price_out_per_mtok) / MILLION


class Completion(BaseModel):
    """The raw text a model returned and the tokens it counted."""

    model_config = ConfigDict(frozen=True)

    text: str
    tokens_in: int = Field(ge=0)
    tokens_out: int = Field(ge=0)


class Usage(BaseModel):
    """What answering cost: tokens, time and money, and who answered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    model: str
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    latency_ms: float = Field(0, ge=0)
    cost_usd: Decimal = Field(Decimal(0), ge=0)
    attempts: int = Field(1, ge=1, description="Model calls made (2 when a repair re-ask was needed)")

    def plus(self, other: Usage) -> Usage:
        """Both usages together (same provider)."""
        return self.model_copy(
            update={
                "tokens_in": self.tokens_in + other.tokens_in,
                "tokens_out": self.tokens_out + other.tokens_out,
                "latency_ms": self.latency_ms + other.latency_ms,
                "cost_usd": self.cost_usd + other.cost_usd,
                "attempts": self.attempts + other.attempts,
            }
        )


class Answer(BaseModel, Generic[T]):
    """A model's answer parsed into the schema asked for, with its usage."""

    model_config = ConfigDict(frozen=True)

    value: T
    usage: Usage
    repaired: bool = Field(False, description="True when the first answer was invalid and a re-ask fixed it")


class Prompt(BaseModel):
    """What to ask: a system instruction and the user message (untrusted data already quoted in it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str
    user: str


class LLMCall(BaseModel):
    """One attempt to get an answer from one provider (a row of `llm_calls`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cycle_id: str | None
    agent: str
    provider: str
    model: str
    started_at: AwareDatetime
    latency_ms: float = Field(0, ge=0)
    tokens_in: int = Field(0, ge=0)
    tokens_out: int = Field(0, ge=0)
    cost_usd: Decimal = Field(Decimal(0), ge=0)
    outcome: Outcome
    error: str | None = None
