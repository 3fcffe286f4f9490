"""The trading decision: one model's vote and the aggregated trading signal."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from triplegain.models.enums import Action, AgreementType

_FROZEN = ConfigDict(frozen=True, extra="forbid")
DIRECTIONAL = frozenset({Action.BUY, Action.SELL})


class ModelVote(BaseModel):
    """One model's answer to 'what should we do with this symbol now?' (reference spec 4.4)."""

    model_config = _FROZEN

    model: str = Field(description="Configured model key, e.g. 'offline' or 'deepseek'")
    provider: str = Field(description="'offline' for the deterministic model")
    action: Action
    confidence: float = Field(ge=0, le=1)
    entry_price: Decimal | None = Field(None, gt=0)
    stop_loss: Decimal | None = Field(None, gt=0)
    take_profit: Decimal | None = Field(None, gt=0)
    position_size_pct: Decimal = Field(Decimal(0), ge=0, le=100, description="Percent of available equity")
    reasoning: str = Field(max_length=300)
    latency_ms: float = Field(0.0, ge=0)
    tokens_used: int = Field(0, ge=0)
    cost_usd: Decimal = Field(Decimal(0), ge=0)
    error: str | None = Field(None, description="Why the model abstained; an abstention is not a vote")

    @property
    def abstained(self) -> bool:
        """True when the model gave no usable answer (timeout, invalid output)."""
        return self.error is not None

    @model_validator(mode="after")
    def _directional_needs_prices(self) -> ModelVote:
        if (
            self.error is None
            and self.action in DIRECTIONAL
            and (self.entry_price is None or self.stop_loss is None)
        ):
            raise ValueError(f"{self.action} vote needs entry_price and stop_loss")
        return self


class TradingSignal(BaseModel):
    """The aggregated decision for one symbol in one cycle."""

    model_config = _FROZEN

    agent_name: str = "trading_decision"
    symbol: str
    timestamp: AwareDatetime
    action: Action
    confidence: float = Field(ge=0, le=1)
    agreement: AgreementType
    consensus_strength: float = Field(ge=0, le=1, description="Winning votes / valid votes")
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    position_size_pct: Decimal = Field(Decimal(0), ge=0, le=100)
    leverage: int = Field(1, ge=1)
    votes: dict[Action, int] = Field(default_factory=dict)
    agreeing_models: list[str] = Field(default_factory=list)
    total_models: int = Field(ge=0)
    model_votes: list[ModelVote] = Field(default_factory=list)
    decided_by: str = Field(description="The models that voted; 'offline-deterministic' without an LLM")
    regime: str
    ta_bias: str
    reasoning: str
    total_cost_usd: Decimal = Decimal(0)
    consensus_multiplier: float = Field(
        1.0, ge=0, description="Applied by the coordinator from agent agreement"
    )
