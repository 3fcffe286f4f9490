"""Agent tasks: technical analysis, regime detection and the trading decision, one task each."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain.cycle import decision_step, regime_step, technical_step
from triplegain.models.analysis import RegimeAssessment, RegimeState, TechnicalReport
from triplegain.models.decision import TradingSignal
from triplegain.models.market import MarketSnapshot
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
