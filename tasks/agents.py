"""Agent tasks: technical analysis, regime detection and the trading decision, one task each."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain.agents.llm_analysis import regime_with_model, technical_with_model
from triplegain.agents.llm_decision import decide_with_models
from triplegain.agents.registry import agent_named
from triplegain.agents.sentiment import assess_sentiment
from triplegain.cycle import decision_step, regime_step, technical_step
from triplegain.llm.gateway import LLMGateway
from triplegain.llm.models import ProviderConfig
from triplegain.models.analysis import (
    AgentReport,
    RegimeAssessment,
    RegimeState,
    SentimentReport,
    TechnicalReport,
)
from triplegain.models.decision import TradingSignal
from triplegain.models.market import MarketSnapshot
from triplegain.news import Headline
from triplegain.settings import Settings


@task(name="technical-analysis", cache_policy=NO_CACHE)
def analyze_technicals(snapshot: MarketSnapshot, settings: Settings) -> TechnicalReport:
    """Indicators and the technical report."""
    return technical_step(snapshot, settings)


@task(name="regime-detection", cache_policy=NO_CACHE)
def assess_regime(
    snapshot: MarketSnapshot, technical: TechnicalReport, previous: RegimeState | None, settings: Settings
) -> RegimeAssessment:
    """The regime, continuing the symbol's hysteresis."""
    return regime_step(snapshot, technical, previous, settings)


@task(name="trading-decision", cache_policy=NO_CACHE)
def decide(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> TradingSignal:
    """The models' votes aggregated into a signal."""
    return decision_step(snapshot, technical, regime, settings)


@task(name="analysis-agent", task_run_name="{name}-{symbol}", cache_policy=NO_CACHE)
def run_agent(
    name: str,
    symbol: str,
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    regime: RegimeAssessment,
    settings: Settings,
) -> AgentReport:
    """One registered analysis agent (`triplegain.agents.registry`) on one symbol."""
    return agent_named(name).analyze(snapshot, technical, regime, settings)


@task(name="technical-analysis-llm", cache_policy=NO_CACHE)
async def analyze_technicals_with_llm(
    snapshot: MarketSnapshot, settings: Settings, gateway: LLMGateway, config: ProviderConfig
) -> TechnicalReport:
    """The technical analysis asked of `llm.technical_model`, with the reference's fallbacks (the offline
    report is computed first: its indicators, levels, and the parse-failure fallback)."""
    offline = technical_step(snapshot, settings)
    return await technical_with_model(snapshot, offline, settings, gateway, config)


@task(name="regime-detection-llm", cache_policy=NO_CACHE)
async def assess_regime_with_llm(
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    previous: RegimeState | None,
    settings: Settings,
    gateway: LLMGateway,
    config: ProviderConfig,
) -> RegimeAssessment:
    """The regime asked of `llm.regime_model`, through the symbol's hysteresis, with its fallbacks."""
    offline = regime_step(snapshot, technical, previous, settings)
    return await regime_with_model(snapshot, technical, previous, offline, settings, gateway, config)


@task(name="trading-decision-llm", cache_policy=NO_CACHE)
async def decide_with_llms(
    snapshot: MarketSnapshot,
    technical: TechnicalReport,
    regime: RegimeAssessment,
    settings: Settings,
    gateway: LLMGateway,
    models: list[ProviderConfig],
    sentiment: SentimentReport | None = None,
    reports: dict[str, AgentReport] | None = None,
) -> TradingSignal:
    """The configured models vote in parallel (each call an ask-llm task) and the votes are aggregated.

    The gateway is the run's in-process keeper of breakers, budget and call records; it holds no client
    or connection (each ask-llm task opens and closes its own), which is why it may be passed here.
    """
    return await decide_with_models(
        snapshot, technical, regime, settings, gateway, models, sentiment, reports
    )


@task(name="sentiment-analysis", task_run_name="sentiment-{symbol}", cache_policy=NO_CACHE)
async def assess_sentiment_with_llms(
    gateway: LLMGateway,
    models: list[ProviderConfig],
    symbol: str,
    headlines: list[Headline],
    at: datetime,
    settings: Settings,
) -> SentimentReport | None:
    """The configured models rate the symbol's headlines; None without headlines or budget."""
    return await assess_sentiment(gateway, models, symbol, headlines, at, settings.sentiment)
