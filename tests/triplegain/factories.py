"""Small builders for domain values used across tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from triplegain.models.analysis import Indicators, RegimeAssessment, RegimeState, TechnicalReport
from triplegain.models.decision import ModelVote
from triplegain.models.enums import Action, Bias, Regime, Side, TrendDirection
from triplegain.models.market import CandleSeries, MarketSnapshot
from triplegain.rebalance import Allocation, RebalanceDecision, RebalanceTrade
from triplegain.settings import RegimeSettings

AT = datetime(2024, 6, 1, 12, tzinfo=UTC)


def indicators(**overrides: Any) -> Indicators:
    base: dict[str, Any] = {
        "price": 100.0,
        "rsi": 50.0,
        "macd": 0.0,
        "macd_signal": 0.0,
        "macd_hist": 0.0,
        "macd_hist_prev": 0.0,
        "ema": {9: 100.0, 21: 100.0, 50: 100.0, 200: 100.0},
        "sma": {20: 100.0, 50: 100.0, 200: 100.0},
        "atr": 1.0,
        "atr_mean": 1.0,
        "atr_baseline": 1.0,
        "adx": 22.0,
        "plus_di": 20.0,
        "minus_di": 20.0,
        "bb_width_rank": 0.5,
        "choppiness": 50.0,
        "volume_ratio": 1.0,
    }
    return Indicators(**(base | overrides))


def candles(
    n: int = 100, price: float = 100.0, start: datetime = datetime(2024, 5, 28, tzinfo=UTC)
) -> CandleSeries:
    ts = int(start.timestamp()) + np.arange(n, dtype=np.int64) * 3600
    close = np.full(n, price)
    return CandleSeries(ts, close.copy(), close + 1, close - 1, close.copy(), np.full(n, 10.0))


def snapshot(symbol: str = "BTC/USDT", price: str = "100", at: datetime = AT, n: int = 100) -> MarketSnapshot:
    series = candles(n, float(price), start=datetime.fromtimestamp(at.timestamp() - n * 3600, tz=UTC))
    return MarketSnapshot(
        symbol=symbol,
        timestamp=at,
        last_candle_at=series.open_time(-1),
        current_price=Decimal(price),
        candles=series,
        source="test",
        missing_candles=0,
        zero_volume_candles=0,
    )


def technical(
    bias: Bias = Bias.LONG,
    ind: Indicators | None = None,
    symbol: str = "BTC/USDT",
    confidence: float = 0.25,
    strength: float = 0.5,
) -> TechnicalReport:
    return TechnicalReport(
        symbol=symbol,
        timestamp=AT,
        trend_direction=TrendDirection.NEUTRAL,
        trend_strength=strength,
        momentum_score=0.0,
        rsi_signal="neutral",
        macd_signal="neutral",
        current_position="mid_range",
        primary_signal="test",
        bias=bias,
        confidence=confidence,
        reasoning="test report",
        model_used="test",
        indicators=ind or indicators(),
    )


def regime(kind: Regime = Regime.TRENDING_BULL, symbol: str = "BTC/USDT") -> RegimeAssessment:
    return RegimeAssessment(
        symbol=symbol,
        timestamp=AT,
        regime=kind,
        confidence=0.8,
        detected_regime=kind,
        detected_confidence=0.8,
        volatility="normal",
        trend_strength=0.5,
        volume_profile="stable",
        parameters=RegimeSettings().parameters[kind],
        state=RegimeState(regime=kind, confidence=0.8, since=AT, periods=1),
        reasoning="test regime",
        model_used="test",
    )


def vote(action: Action, confidence: float = 0.7, model: str = "m", **prices: Any) -> ModelVote:
    if action in (Action.BUY, Action.SELL) and not prices:
        prices = {
            "entry_price": Decimal(100),
            "stop_loss": Decimal(98) if action is Action.BUY else Decimal(102),
        }
    return ModelVote(
        model=model,
        provider="fake",
        action=action,
        confidence=confidence,
        reasoning=f"{model} says",
        **prices,
    )


def rebalance_decision(at: datetime = AT) -> RebalanceDecision:
    """A rebalance that buys 100 USD of BTC: the one trade of a DCA plan's batches (`decision.trades`)."""
    trade = RebalanceTrade(symbol="BTC/USDT", side=Side.BUY, amount_usd=Decimal(100))
    return RebalanceDecision(
        at=at,
        allocation=Allocation(equity_usd=Decimal(1), assets=[]),
        action="rebalance",
        reason="r",
        trades=[trade],
    )
