"""Sentiment agent: configured models read recent headlines about a symbol (reference spec 4.3).

Headlines are untrusted input: they travel as a JSON list inside a marked block, and the instructions say
they are data, never orders. Whatever a model answers can only set this report's bias, score and notes,
never a limit, a bound or an action: the trading decision and the risk engine read it as one input.
Each model is weighted (default 1.0); the overall score is the weighted mean, confidence the mean with a
floor; bias and fear/greed follow the reference's bands. No headlines or no models: no report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from triplegain.errors import LLMBudgetExceeded
from triplegain.llm.gateway import LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.llm.untrusted import quote_untrusted, untrusted_rule
from triplegain.models.analysis import SentimentReport
from triplegain.models.enums import SentimentBias
from triplegain.news.source import Headline
from triplegain.settings import SentimentSettings

AGENT = "sentiment_analysis"
FEAR_GREED = {
    SentimentBias.VERY_BULLISH: "extreme_greed",
    SentimentBias.BULLISH: "greed",
    SentimentBias.NEUTRAL: "neutral",
    SentimentBias.BEARISH: "fear",
    SentimentBias.VERY_BEARISH: "extreme_fear",
}

SENTIMENT_SYSTEM_PROMPT = f"""You rate market sentiment about one crypto asset from recent news headlines.
{untrusted_rule("headlines")}
Only judge what the news means for the asset's price. Give bias, a score from -1 (very bearish) to 1 (very
bullish), your confidence, up to 5 key events and 3 narratives."""


class KeyEvent(BaseModel):
    """An event a model picked out of the news."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event: str = Field(max_length=200)
    impact: Literal["positive", "negative", "neutral"] = "neutral"
    significance: Literal["low", "medium", "high"] = "medium"


class ModelSentiment(BaseModel):
    """What each model must answer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    bias: SentimentBias
    score: float = Field(ge=-1, le=1)
    confidence: float = Field(ge=0, le=1)
    key_events: list[KeyEvent] = Field(default_factory=list)
    narratives: list[str] = Field(default_factory=list)
    reasoning: str = ""

    @field_validator("reasoning")
    @classmethod
    def _short(cls, value: str) -> str:
        return value[:200]


def sentiment_prompt(symbol: str, headlines: list[Headline], at: datetime) -> Prompt:
    """The question, the headlines quoted as a JSON list between markers."""
    data = [{"published": h.timestamp.isoformat(), "source": h.source, "title": h.title} for h in headlines]
    quoted = quote_untrusted(data, "headlines")
    user = f"Asset: {symbol}. As of {at.isoformat()}.\n{quoted}\nRate the sentiment."
    return Prompt(system=SENTIMENT_SYSTEM_PROMPT, user=user)


def bias_for(score: float, s: SentimentSettings) -> SentimentBias:
    """The reference's score bands."""
    if score >= s.very_bullish_from:
        return SentimentBias.VERY_BULLISH
    if score >= s.bullish_from:
        return SentimentBias.BULLISH
    if score >= s.neutral_from:
        return SentimentBias.NEUTRAL
    if score >= s.bearish_from:
        return SentimentBias.BEARISH
    return SentimentBias.VERY_BEARISH


async def assess_sentiment(
    gateway: LLMGateway,
    models: list[ProviderConfig],
    symbol: str,
    headlines: list[Headline],
    at: datetime,
    s: SentimentSettings,
) -> SentimentReport | None:
    """The aggregated report, or None without headlines, models, or budget."""
    if not headlines or not models:
        return None
    prompt = sentiment_prompt(symbol, headlines, at)
    outcomes = await gateway.ask_each(AGENT, models, prompt, ModelSentiment, s.timeout_seconds)
    answers = [(c, o) for c, o in zip(models, outcomes, strict=True) if isinstance(o, Answer)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if not answers and failures and all(isinstance(f, LLMBudgetExceeded) for f in failures):
        return None
    return _aggregate(symbol, at, answers, len(headlines), s)


def _aggregate(
    symbol: str,
    at: datetime,
    answers: list[tuple[ProviderConfig, Answer[ModelSentiment]]],
    headline_count: int,
    s: SentimentSettings,
) -> SentimentReport:
    valid_until = at + timedelta(minutes=s.validity_minutes)
    if not answers:
        return SentimentReport(
            symbol=symbol,
            timestamp=at,
            valid_until=valid_until,
            bias=SentimentBias.NEUTRAL,
            overall_score=0.0,
            confidence=s.min_confidence,
            fear_greed="neutral",
            model_used="none",
            reasoning=f"no model answered about {headline_count} headlines: neutral at the confidence floor",
        )
    weights = [s.weights.get(c.name, 1.0) for c, _ in answers]
    total = sum(weights) or 1.0
    score = sum(w * a.value.score for w, (_, a) in zip(weights, answers, strict=True)) / total
    confidence = max(s.min_confidence, sum(a.value.confidence for _, a in answers) / len(answers))
    bias = bias_for(score, s)
    return SentimentReport(
        symbol=symbol,
        timestamp=at,
        valid_until=valid_until,
        bias=bias,
        overall_score=round(max(-1.0, min(1.0, score)), 4),
        news_score=round(score, 4),
        confidence=round(confidence, 4),
        fear_greed=FEAR_GREED[bias],
        key_events=_unique([e.event for _, a in answers for e in a.value.key_events], s.max_events),
        narratives=_unique([n for _, a in answers for n in a.value.narratives], s.max_narratives),
        reasoning=" | ".join(f"{c.name}: {a.value.reasoning}" for c, a in answers)[:500],
        model_used=",".join(c.name for c, _ in answers),
    )


def _unique(items: list[str], limit: int) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(" ".join(item.lower().split()), item[:200])
    return list(seen.values())[:limit]
