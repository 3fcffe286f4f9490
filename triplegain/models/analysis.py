"""Outputs of the analysis agents: indicators, the technical report and the regime assessment."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.models.enums import Bias, EntryStrictness, Regime, SentimentBias, TrendDirection

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Indicators(BaseModel):
    """Latest indicator values for one symbol; None where history is too short to compute one."""

    model_config = _FROZEN

    price: float = Field(description="Close of the newest candle")
    rsi: float | None = Field(None, ge=0, le=100, description="RSI (Wilder)")
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    macd_hist_prev: float | None = Field(None, description="MACD histogram one candle earlier (crosses)")
    ema: dict[int, float | None] = Field(default_factory=dict, description="EMA by period")
    sma: dict[int, float | None] = Field(default_factory=dict, description="SMA by period")
    atr: float | None = Field(None, ge=0)
    atr_mean: float | None = Field(None, ge=0, description="Mean ATR over the volatility-spike window")
    atr_baseline: float | None = Field(None, ge=0, description="Mean ATR over the regime's long window")
    adx: float | None = Field(None, ge=0, le=100)
    plus_di: float | None = Field(None, ge=0)
    minus_di: float | None = Field(None, ge=0)
    bb_upper: float | None = None
    bb_middle: float | None = None
    bb_lower: float | None = None
    bb_width: float | None = Field(None, ge=0, description="(upper - lower) / middle")
    bb_width_rank: float | None = Field(None, ge=0, le=1, description="Percentile of bb_width in its window")
    obv: float | None = None
    obv_slope: float | None = Field(None, description="Change of OBV over the volume window")
    vwap: float | None = Field(None, description="Volume-weighted average price over the VWAP window")
    choppiness: float | None = Field(None, ge=0, le=100)
    volume_ratio: float | None = Field(None, ge=0, description="Last volume / its moving average")
    roc: float | None = Field(None, description="Rate of change, percent")


class AgentReport(BaseModel):
    """What every registered analysis agent reports (`triplegain.agents.registry`): stored as an
    `agent_outputs` row and shown to the voting models under `agent_name`."""

    model_config = _FROZEN

    agent_name: str = Field(description="The registered agent's name")
    symbol: str
    timestamp: AwareDatetime
    confidence: float = Field(ge=0, le=1)
    model_used: str = Field(description="offline, or the model that answered")


class TechnicalReport(BaseModel):
    """Technical-analysis agent output (reference spec 4.1)."""

    model_config = _FROZEN

    agent_name: str = "technical_analysis"
    symbol: str
    timestamp: AwareDatetime
    trend_direction: TrendDirection
    trend_strength: float = Field(ge=0, le=1)
    timeframe_alignment: list[str] = Field(default_factory=list)
    momentum_score: float = Field(ge=-1, le=1)
    rsi_signal: str = Field(description="oversold | neutral | overbought")
    macd_signal: str = Field(description="bullish_cross | bearish_cross | bullish | bearish | neutral")
    resistance_levels: list[Decimal] = Field(default_factory=list)
    support_levels: list[Decimal] = Field(default_factory=list)
    current_position: str = Field(description="near_support | mid_range | near_resistance")
    primary_signal: str
    secondary_signals: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    bias: Bias
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(min_length=10, max_length=500)
    model_used: str = Field(description="Which model produced it; 'indicator-evidence' offline")
    indicators: Indicators
    prompt_hash: str | None = Field(None, description="A model's prompt: sha256 of 'system|user', 16 hex")


class RegimeParameters(BaseModel):
    """How trading adapts to a regime (reference spec 4.2 table)."""

    model_config = _FROZEN

    position_size_multiplier: Decimal = Field(ge=Decimal("0.25"), le=Decimal("1.5"))
    stop_loss_multiplier: Decimal = Field(ge=Decimal("0.5"), le=Decimal("2.0"))
    take_profit_multiplier: Decimal = Field(ge=Decimal("0.5"), le=Decimal("3.0"))
    entry_strictness: EntryStrictness
    max_leverage: int = Field(ge=1, le=5)


class RegimeState(BaseModel):
    """Per-symbol hysteresis memory of the regime agent, persisted between cycles."""

    model_config = _FROZEN

    regime: Regime
    confidence: float = Field(ge=0, le=1)
    since: AwareDatetime
    periods: int = Field(ge=1, description="Consecutive assessments in the current regime")
    candidate: Regime | None = Field(None, description="A different regime seen but not yet confirmed")
    previous: Regime | None = Field(None, description="The regime before the last confirmed change")
    candidate_count: int = Field(0, ge=0)


class RegimeAssessment(BaseModel):
    """Regime-detection agent output (reference spec 4.2), including the updated hysteresis state."""

    model_config = _FROZEN

    agent_name: str = "regime_detection"
    symbol: str
    timestamp: AwareDatetime
    regime: Regime = Field(description="The confirmed regime used downstream")
    confidence: float = Field(ge=0, le=1)
    detected_regime: Regime = Field(description="What this assessment alone detected")
    detected_confidence: float = Field(ge=0, le=1)
    volatility: str = Field(description="low | normal | high | extreme")
    trend_strength: float = Field(ge=0, le=1)
    volume_profile: str = Field(description="decreasing | stable | increasing | spike")
    choppiness: float = Field(50.0, ge=0, le=100)
    adx_value: float | None = None
    parameters: RegimeParameters
    state: RegimeState
    reasoning: str = Field(min_length=10, max_length=300)
    model_used: str
    prompt_hash: str | None = Field(None, description="A model's prompt: sha256 of 'system|user', 16 hex")


class SentimentReport(BaseModel):
    """Sentiment agent output (reference spec 4.3), valid until `valid_until`."""

    model_config = _FROZEN

    agent_name: str = "sentiment_analysis"
    symbol: str
    timestamp: AwareDatetime
    valid_until: AwareDatetime
    bias: SentimentBias
    overall_score: float = Field(ge=-1, le=1)
    social_score: float | None = Field(None, ge=-1, le=1)
    news_score: float | None = Field(None, ge=-1, le=1)
    confidence: float = Field(ge=0, le=1)
    fear_greed: str = Field(description="extreme_fear | fear | neutral | greed | extreme_greed")
    key_events: list[str] = Field(default_factory=list, max_length=5)
    narratives: list[str] = Field(default_factory=list, max_length=3)
    reasoning: str = Field(max_length=500)
    model_used: str
