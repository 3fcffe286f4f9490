"""The trading decision voted by several language models in parallel (reference spec 4.4).

Every configured model gets the same prompt and answers with a vote; they run concurrently under one
overall timeout. A model that times out, fails or answers invalid output abstains: an abstention is not
a vote, so too many of them leave the quorum unmet and the signal holds. When the LLM budget is spent,
the decision fails closed to the deterministic offline model and says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from triplegain.agents.decision import aggregate_votes, offline_vote
from triplegain.errors import LLMBudgetExceeded
from triplegain.llm.gateway import LLMGateway
from triplegain.llm.models import Answer, Prompt, ProviderConfig
from triplegain.llm.untrusted import quote_untrusted, untrusted_rule
from triplegain.models.analysis import AgentReport, RegimeAssessment, SentimentReport, TechnicalReport
from triplegain.models.decision import ModelVote, TradingSignal
from triplegain.models.enums import Action
from triplegain.models.market import MarketSnapshot
from triplegain.settings import Settings

AGENT = "trading_decision"
NEWS_TAG = "news_summary"
REASONING_CHARS = 300

DECISION_SYSTEM_PROMPT = """You are one of several models voting on one spot crypto trade (paper trading).
Decide from the technical analysis and market regime you are given. Rules:
- BUY or SELL only with confidence of at least {min_confidence}; otherwise HOLD.
- HOLD is fine when the signals are mixed.
- Every BUY or SELL needs entry_price and stop_loss; the reward-to-risk ratio must be at least {min_rr}.
- Size the position (position_size_pct, 1 to 100 percent of available equity) with the regime in mind.
- SELL closes an open long; the account cannot short. CLOSE_LONG closes a long explicitly.
A deterministic risk engine checks every trade afterwards and can veto it; you cannot change its limits.
""" + untrusted_rule(NEWS_TAG)


class ModelAnswer(BaseModel):
    """What each model must answer (its JSON schema goes into the prompt)."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["BUY", "SELL", "HOLD", "CLOSE_LONG", "CLOSE_SHORT"]
    confidence: float = Field(ge=0, le=1)
    entry_price: Decimal | None = Field(None, gt=0)
    stop_loss: Decimal | None = Field(None, gt=0)
    take_profit: Decimal | None = Field(None, gt=0)
    position_size_pct: Decimal = Field(Decimal(0), ge=0, le=100)
    reasoning: str = Field("", description=f"Why, in at most {REASONING_CHARS} characters")

    @field_validator("action", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("reasoning")
    @classmethod
    def _short(cls, value: str) -> str:
        return value[:REASONING_CHARS]


TECHNICAL_FACTS = {
    "trend_direction",
    "trend_strength",
    "momentum_score",
    "bias",
    "confidence",
    "primary_signal",
    "rsi_signal",
    "macd_signal",
    "warnings",
    "support_levels",
    "resistance_levels",
}
REGIME_FACTS = {"regime", "confidence", "volatility", "trend_strength", "parameters"}


def decision_prompt(
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    regime: RegimeAssessment,
    settings: Settings,
    sentiment: SentimentReport | None = None,
    reports: Mapping[str, AgentReport] | None = None,
) -> Prompt:
    """The same question for every voter: the symbol, its price, and the agents' findings as data (the
    registered agents' reports under their names)."""
    system = DECISION_SYSTEM_PROMPT.format(
        min_confidence=settings.decision.offline.min_action_confidence, min_rr=settings.risk.min_risk_reward
    )
    facts = {
        "symbol": snapshot.symbol,
        "as_of": snapshot.timestamp.isoformat(),
        "price": str(snapshot.current_price),
        "technical_analysis": technical.model_dump(mode="json", include=TECHNICAL_FACTS),
        "atr": technical.indicators.atr,
        "regime": regime.model_dump(mode="json", include=REGIME_FACTS),
    }
    for name, report in (reports or {}).items():
        facts[name] = report.model_dump(mode="json", exclude={"agent_name", "symbol", "timestamp"})
    news = ""
    if sentiment is not None:
        facts["sentiment"] = sentiment.model_dump(
            mode="json", include={"bias", "overall_score", "confidence", "fear_greed"}
        )
        written = {"key_events": sentiment.key_events[:3], "narratives": sentiment.narratives[:2]}
        news = "\nWhat the sentiment models wrote about the news:\n" + quote_untrusted(written, NEWS_TAG)
    return Prompt(system=system, user="Market facts (JSON):\n" + json.dumps(facts, indent=1) + news)


def vote_from_answer(config: ProviderConfig, answer: Answer[ModelAnswer]) -> ModelVote:
    """A model's answer as its vote (ValueError when a BUY/SELL lacks entry or stop)."""
    a, usage = answer.value, answer.usage
    return ModelVote(
        model=config.name,
        provider=f"{config.kind}:{config.model}",
        action=Action(a.action),
        confidence=a.confidence,
        entry_price=a.entry_price,
        stop_loss=a.stop_loss,
        take_profit=a.take_profit,
        position_size_pct=a.position_size_pct,
        reasoning=a.reasoning,
        latency_ms=usage.latency_ms,
        tokens_used=usage.tokens_in + usage.tokens_out,
        cost_usd=usage.cost_usd,
    )


def abstention(config: ProviderConfig, why: str) -> ModelVote:
    """A model that gave no usable vote."""
    return ModelVote(
        model=config.name,
        provider=f"{config.kind}:{config.model}",
        action=Action.HOLD,
        confidence=0.0,
        reasoning="abstained",
        error=why[:500],
    )


async def collect_votes(
    gateway: LLMGateway, models: list[ProviderConfig], prompt: Prompt, timeout_seconds: float
) -> list[ModelVote]:
    """Every model's vote, in configured order; those not back within the timeout abstain."""
    outcomes = await gateway.ask_each(AGENT, models, prompt, ModelAnswer, timeout_seconds)
    return [_vote(outcome, config, timeout_seconds) for outcome, config in zip(outcomes, models, strict=True)]


def _vote(
    outcome: Answer[ModelAnswer] | BaseException | None, config: ProviderConfig, timeout: float
) -> ModelVote:
    if outcome is None:
        return abstention(config, f"no answer within the {timeout:g} s decision timeout")
    if isinstance(outcome, LLMBudgetExceeded):
        return abstention(config, f"budget: {outcome}")
    if isinstance(outcome, BaseException):
        return abstention(config, str(outcome))
    try:
        return vote_from_answer(config, outcome)
    except (ValidationError, ValueError) as e:
        return abstention(config, f"unusable vote: {' '.join(str(e).split())[:300]}")


async def decide_with_models(
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    regime: RegimeAssessment,
    settings: Settings,
    gateway: LLMGateway,
    models: list[ProviderConfig],
    sentiment: SentimentReport | None = None,
    reports: Mapping[str, AgentReport] | None = None,
) -> TradingSignal:
    """The models' aggregated vote; the offline model only without models or once the budget is spent."""
    prompt = decision_prompt(snapshot, technical, regime, settings, sentiment, reports)
    votes = await collect_votes(gateway, models, prompt, settings.decision.timeout_seconds)
    if votes and all(v.error and v.error.startswith("budget:") for v in votes):
        offline = offline_vote(snapshot, technical, regime, settings)
        note = offline.model_copy(
            update={"reasoning": f"LLM budget spent, offline model: {offline.reasoning}"[:300]}
        )
        return aggregate_votes(
            snapshot.symbol, snapshot.timestamp, [note], 1, technical, regime, settings.decision
        )
    return aggregate_votes(
        snapshot.symbol, snapshot.timestamp, votes, len(models), technical, regime, settings.decision
    )
