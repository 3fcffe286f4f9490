"""The technical-analysis and regime agents asked of a language model (reference spec 4.1 and 4.2).

Configured as `llm.technical_model` and `llm.regime_model` (a provider name, for example a local
qwen2.5:7b behind an OpenAI-compatible `base_url`). Each gets the reference's JSON schema, answers within
`technical.model_timeout_seconds` / `regime.model_timeout_seconds` (5 s) an attempt, with the usual retries
(`llm.retries`, 2), is recorded in `llm_calls` and, when valid, kept for replay like the decision votes.
Every report carries the prompt's hash (the first 16 hex characters of sha256 over "system|user").

The reference's fallbacks: a model that fails after its retries (error, timeout, open circuit, budget)
gives a neutral technical report at confidence 0.0 with the warning "LLM call failed", and the regime falls
to choppy at confidence 0.0 (the most cautious parameters); an answer that does not parse, even after the
repair re-ask, falls to the offline analysis, which says so. A backtest replaying recordings uses the
offline analysis where a prompt was never recorded.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from triplegain.agents.regime import assessment_from, fallback_assessment
from triplegain.llm.gateway import LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.models.analysis import (
    Indicators,
    RegimeAssessment,
    RegimeParameters,
    RegimeState,
    TechnicalReport,
)
from triplegain.models.enums import Bias, EntryStrictness, Regime, TrendDirection
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings

TECHNICAL_AGENT = "technical_analysis"
REGIME_AGENT = "regime_detection"
FAILED = "LLM call failed"
_LOOSE = ConfigDict(extra="ignore")


def prompt_hash(prompt: Prompt) -> str:
    """The reference's prompt hash: the first 16 hex characters of sha256 over "system|user"."""
    return hashlib.sha256(f"{prompt.system}|{prompt.user}".encode()).hexdigest()[:16]


class _Trend(BaseModel):
    model_config = _LOOSE
    direction: Literal["bullish", "bearish", "neutral"]
    strength: float = Field(ge=0, le=1)
    timeframe_alignment: list[str] = Field(default_factory=list)


class _Momentum(BaseModel):
    model_config = _LOOSE
    score: float = Field(ge=-1, le=1)
    rsi_signal: Literal["oversold", "neutral", "overbought"]
    macd_signal: Literal["bullish_cross", "bearish_cross", "bullish", "bearish", "neutral"]


class _Levels(BaseModel):
    model_config = _LOOSE
    resistance: list[Decimal] = Field(default_factory=list)
    support: list[Decimal] = Field(default_factory=list)
    current_position: Literal["near_support", "mid_range", "near_resistance"]


class _Signals(BaseModel):
    model_config = _LOOSE
    primary: str = Field(min_length=1)
    secondary: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class TechnicalAnswer(BaseModel):
    """The reference's technical-analysis schema (spec 4.1)."""

    model_config = _LOOSE

    trend: _Trend
    momentum: _Momentum
    key_levels: _Levels
    signals: _Signals
    bias: Literal["long", "short", "neutral"]
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field("", description="Why, in at most 500 characters")

    @field_validator("reasoning")
    @classmethod
    def _cut(cls, value: str) -> str:
        return value[:500]


class _Characteristics(BaseModel):
    model_config = _LOOSE
    volatility: Literal["low", "normal", "high", "extreme"]
    trend_strength: float = Field(ge=0, le=1)
    volume_profile: Literal["decreasing", "stable", "increasing", "spike"]
    choppiness: float = Field(50.0, ge=0, le=100)
    adx_value: float | None = Field(None, ge=0, le=100)


class _Adjustments(BaseModel):
    model_config = _LOOSE
    position_size_multiplier: Decimal = Field(ge=Decimal("0.25"), le=Decimal("1.5"))
    stop_loss_multiplier: Decimal = Field(ge=Decimal("0.5"), le=Decimal("2.0"))
    take_profit_multiplier: Decimal = Field(ge=Decimal("0.5"), le=Decimal("3.0"))
    entry_strictness: EntryStrictness


class RegimeAnswer(BaseModel):
    """The reference's regime schema (spec 4.2)."""

    model_config = _LOOSE

    regime: Regime
    confidence: float = Field(ge=0, le=1)
    characteristics: _Characteristics
    recommended_adjustments: _Adjustments
    reasoning: str = Field("", description="Why, in at most 300 characters")
    transition_probability: float | None = Field(None, ge=0, le=1)

    @field_validator("reasoning")
    @classmethod
    def _cut(cls, value: str) -> str:
        return value[:300]


TECHNICAL_SYSTEM = """You are the technical-analysis agent of a crypto trading system (spot, paper trading).
From the indicators and candles you are given, describe the trend, momentum, key levels and signals of the
symbol, and your bias (long, short or neutral) with a confidence between 0 and 1. Answer with JSON only.
You advise; a decision model and a deterministic risk engine act after you."""

REGIME_SYSTEM = """You are the market-regime agent of a crypto trading system (spot, paper trading).
Classify the market as one of: trending_bull, trending_bear, ranging, volatile_bull, volatile_bear, choppy,
breakout_potential; give your confidence, the market's characteristics, and how trading should adapt
(position size, stop-loss and take-profit multipliers, entry strictness). Answer with JSON only."""


def _closes(snapshot: MarketSnapshot, hours: int, count: int) -> list[float]:
    closes = snapshot.candles.close
    picked = closes[::-1][::hours][:count][::-1]
    return [round(float(v), 8) for v in picked]


def technical_prompt(snapshot: MarketSnapshot, indicators: Indicators, offline: TechnicalReport) -> Prompt:
    """The facts the model sees: indicators, closes on 1h (48), 4h (30) and 1d (30), and the offline
    evidence's votes (what the indicator families say on each timeframe)."""
    facts = {
        "symbol": snapshot.symbol,
        "as_of": snapshot.timestamp.isoformat(),
        "price": str(snapshot.current_price),
        "indicators": indicators.model_dump(mode="json", exclude_none=True),
        "closes": {
            "1h": _closes(snapshot, 1, 48),
            "4h": _closes(snapshot, 4, 30),
            "1d": _closes(snapshot, 24, 30),
        },
        "indicator_evidence": {"timeframes": offline.timeframe_alignment, "votes": offline.reasoning},
    }
    return Prompt(system=TECHNICAL_SYSTEM, user="Market facts (JSON):\n" + json.dumps(facts, indent=1))


def regime_prompt(snapshot: MarketSnapshot, technical: TechnicalReport) -> Prompt:
    """The facts the regime model sees: the indicators and the technical summary (spec 4.2's inputs)."""
    facts = {
        "symbol": snapshot.symbol,
        "as_of": snapshot.timestamp.isoformat(),
        "price": str(snapshot.current_price),
        "indicators": technical.indicators.model_dump(mode="json", exclude_none=True),
        "technical_summary": technical.model_dump(
            mode="json", include={"trend_direction", "trend_strength", "momentum_score", "bias", "confidence"}
        ),
    }
    return Prompt(system=REGIME_SYSTEM, user="Market facts (JSON):\n" + json.dumps(facts, indent=1))


async def technical_with_model(
    snapshot: MarketSnapshot,
    offline: TechnicalReport,
    settings: Settings,
    gateway: LLMGateway,
    config: ProviderConfig,
    replaying: bool = False,
) -> TechnicalReport:
    """The model's technical report; its fallbacks as the module says. `offline` is the offline report
    for the same snapshot (its indicators and levels, and the parse-failure fallback)."""
    prompt = technical_prompt(snapshot, offline.indicators, offline)
    digest = prompt_hash(prompt)
    timeout = settings.technical.model_timeout_seconds
    per_attempt, overall = _limited(config, timeout, settings)
    (outcome,) = await gateway.ask_each(TECHNICAL_AGENT, [per_attempt], prompt, TechnicalAnswer, overall)
    if isinstance(outcome, Answer):
        return _technical_report(offline, outcome.value, config, digest)
    why = _why(outcome, timeout)
    if replaying or _invalid(why, TechnicalAnswer):
        note = f"{config.name}: {why}; the offline analysis stands in"
        return offline.model_copy(update={"warnings": [*offline.warnings, note[:300]], "prompt_hash": digest})
    return offline.model_copy(
        update={
            "bias": Bias.NEUTRAL,
            "confidence": 0.0,
            "trend_strength": 0.0,
            "primary_signal": f"{FAILED}: neutral",
            "warnings": [*offline.warnings, f"{FAILED} ({config.name}: {why})"[:300]],
            "reasoning": f"{FAILED} after retries ({config.name}); neutral at confidence 0",
            "model_used": config.name,
            "prompt_hash": digest,
        }
    )


async def regime_with_model(
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    previous: RegimeState | None,
    offline: RegimeAssessment,
    settings: Settings,
    gateway: LLMGateway,
    config: ProviderConfig,
    replaying: bool = False,
) -> RegimeAssessment:
    """The model's regime through the same hysteresis; `offline` is the offline assessment for the same
    state (the parse-failure fallback)."""
    prompt = regime_prompt(snapshot, technical)
    digest = prompt_hash(prompt)
    timeout = settings.regime.model_timeout_seconds
    per_attempt, overall = _limited(config, timeout, settings)
    (outcome,) = await gateway.ask_each(REGIME_AGENT, [per_attempt], prompt, RegimeAnswer, overall)
    if isinstance(outcome, Answer):
        a = outcome.value
        adjust = a.recommended_adjustments
        limits = settings.regime.parameters[a.regime]
        parameters = RegimeParameters(
            position_size_multiplier=adjust.position_size_multiplier,
            stop_loss_multiplier=adjust.stop_loss_multiplier,
            take_profit_multiplier=adjust.take_profit_multiplier,
            entry_strictness=adjust.entry_strictness,
            max_leverage=limits.max_leverage,
        )
        assessment = assessment_from(
            snapshot,
            technical.indicators,
            previous,
            (a.regime, a.confidence, a.reasoning or f"{config.name}: {a.regime}"),
            settings.regime,
            config.name,
        )
        c = a.characteristics
        own = assessment.regime is a.regime
        return assessment.model_copy(
            update={
                "volatility": c.volatility,
                "trend_strength": c.trend_strength,
                "volume_profile": c.volume_profile,
                "choppiness": c.choppiness,
                "adx_value": c.adx_value if c.adx_value is not None else assessment.adx_value,
                "parameters": parameters if own else assessment.parameters,
                "prompt_hash": digest,
            }
        )
    why = _why(outcome, timeout)
    if replaying or _invalid(why, RegimeAnswer):
        note = f"; {config.name}: {why}; the offline classifier stands in"
        return offline.model_copy(
            update={"reasoning": (offline.reasoning + note)[:300], "prompt_hash": digest}
        )
    failed = fallback_assessment(snapshot, technical.indicators, previous, settings.regime, config.name)
    reasoning = f"{FAILED} after retries ({config.name}: {why}): choppy, the most cautious regime"
    return failed.model_copy(update={"reasoning": reasoning[:300], "prompt_hash": digest})


def _technical_report(
    offline: TechnicalReport, a: TechnicalAnswer, config: ProviderConfig, digest: str
) -> TechnicalReport:
    return offline.model_copy(
        update={
            "trend_direction": TrendDirection(a.trend.direction),
            "trend_strength": a.trend.strength,
            "timeframe_alignment": a.trend.timeframe_alignment or offline.timeframe_alignment,
            "momentum_score": a.momentum.score,
            "rsi_signal": a.momentum.rsi_signal,
            "macd_signal": a.momentum.macd_signal,
            "resistance_levels": a.key_levels.resistance or offline.resistance_levels,
            "support_levels": a.key_levels.support or offline.support_levels,
            "current_position": a.key_levels.current_position,
            "primary_signal": a.signals.primary[:200],
            "secondary_signals": a.signals.secondary[:10],
            "warnings": [*a.signals.warnings[:10], *offline.warnings],
            "bias": Bias(a.bias),
            "confidence": a.confidence,
            "reasoning": (a.reasoning or a.signals.primary).ljust(10)[:500],
            "model_used": config.name,
            "prompt_hash": digest,
        }
    )


def _limited(config: ProviderConfig, timeout: float, settings: Settings) -> tuple[ProviderConfig, float]:
    """Each attempt within `timeout` (spec: 5 s), and the whole ask within the attempts the retries allow
    (`llm.retries`, 2) and their backoff: a hung model costs at most that, then the fallback."""
    llm = settings.llm
    per_attempt = config.model_copy(update={"timeout_seconds": min(config.timeout_seconds, timeout)})
    backoff = llm.retry_backoff_seconds * (2**llm.retries - 1) * (1 + llm.retry_jitter)
    return per_attempt, timeout * (llm.retries + 1) + backoff + 1.0


def _why(outcome: object, timeout: float) -> str:
    if outcome is None:
        return f"no answer within {timeout:g} s"
    return " ".join(str(outcome).split())[:200]


def _invalid(why: str, schema: type[BaseModel]) -> bool:
    """Whether the model answered but the answer did not parse, even after the repair re-ask."""
    return f"did not match {schema.__name__}" in why
