"""Settings of the decision: the offline model, vote aggregation, consensus and conflicts."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, model_validator

from triplegain.models.enums import Regime
from triplegain.settings.section import SECTION, Count, Leverage, Seconds


class OfflineModelSettings(BaseModel):
    """The deterministic offline decision model that votes when no LLM is configured."""

    model_config = SECTION

    min_action_confidence: float = Field(
        0.65, ge=0, le=1, description="BUY/SELL only at this confidence (share of agreeing evidence)"
    )
    regime_bonus: float = Field(0.1, ge=0, le=1, description="Added when the regime agrees")
    evidence_edge: float = Field(
        0.0,
        ge=0,
        le=1,
        description="How much unanimous technical evidence raises the chance of reaching the target before "
        "the stop, above a driftless market's stop/(stop+target). Measured on the shared 2020-2024 history "
        "(benchmarks/evidence.py), agreeing evidence lifted no 2:1 trade past its costs in any half-year, so "
        "the default credits it nothing and the offline model opens no position",
    )
    max_confidence: float = Field(0.9, ge=0, le=1)
    stop_atr_multiplier: Decimal = Field(Decimal("2.0"), gt=0, le=20)
    reward_risk: Decimal = Field(Decimal("2.0"), gt=0, le=20)
    position_size_pct: Decimal = Field(Decimal("10"), gt=0, le=100)


class DecisionSettings(BaseModel):
    """Vote aggregation over N models (reference spec 4.4)."""

    model_config = SECTION

    min_quorum: Count = Field(4, ge=1, description="Scaled down to the number of configured models")
    min_consensus: float = Field(0.5, ge=0, le=1, description="Winning share at or below this: HOLD")
    unanimous_boost: float = Field(0.15, ge=0, le=1)
    strong_majority: float = Field(0.83, ge=0, le=1)
    strong_majority_boost: float = Field(0.10, ge=0, le=1)
    majority: float = Field(0.67, ge=0, le=1)
    majority_boost: float = Field(0.05, ge=0, le=1)
    timeout_seconds: Seconds = 30
    offline: OfflineModelSettings = Field(default_factory=OfflineModelSettings)


class ConsensusSettings(BaseModel):
    """How agreement among TA, regime and sentiment scales a signal's confidence (reference spec 3.8)."""

    model_config = SECTION

    high_agreement_threshold: float = Field(0.66, ge=0, le=1)
    low_agreement_threshold: float = Field(0.33, gt=0, le=1)
    max_confidence_boost: float = Field(0.30, ge=0, le=1)
    max_confidence_penalty: float = Field(0.15, ge=0, le=1)
    buy_regimes: list[Regime] = Field(
        default_factory=lambda: [Regime.TRENDING_BULL, Regime.BREAKOUT_POTENTIAL],
        description="Regimes that agree with a BUY (the reference's trending_up and breakout)",
    )
    sell_regimes: list[Regime] = Field(default_factory=lambda: [Regime.TRENDING_BEAR])

    @model_validator(mode="after")
    def _ordered(self) -> ConsensusSettings:
        if self.low_agreement_threshold > self.high_agreement_threshold:
            raise ValueError("low_agreement_threshold must not exceed high_agreement_threshold")
        return self


class ConflictSettings(BaseModel):
    """Conflict detection and resolution (reference spec 3.9 to 3.11)."""

    model_config = SECTION

    ta_sentiment: bool = Field(True, description="Detect TA against sentiment")
    choppy_regime: bool = Field(True, description="Detect a trade in a choppy regime")
    regime_change: bool = Field(True, description="Detect a regime turning against an open position")
    invoke_llm_threshold: float = Field(0.2, ge=0, le=1, description="TA/sentiment conflict only when closer")
    resolution_budget_seconds: Seconds = Field(10, description="The whole resolution, fallback included")
    hedge_after_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Start the fallback in parallel once this share of the budget has passed (2 s of 10 s: a "
        "hanging primary costs 2 s plus the fallback's answer)",
    )
    max_tokens: int = Field(500, ge=50, le=100_000)
    min_leverage: Leverage = 1
    max_leverage: Leverage = 5
    max_size_reduction_pct: Decimal = Field(Decimal(100), ge=0, le=100)
    max_entry_adjustment_pct: Decimal = Field(Decimal(50), ge=0, le=100)
    min_entry_price: Decimal = Field(Decimal("0.0001"), gt=0)
