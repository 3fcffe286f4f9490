"""Technical-analysis agent: indicators to a technical report (reference spec 4.1).

Offline it applies the reference's indicator heuristic: RSI above 60 with a positive MACD histogram is
long, RSI below 40 with a negative histogram is short, anything else neutral, at a fixed low confidence.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from triplegain.models.analysis import Indicators, TechnicalReport
from triplegain.models.enums import Bias, TrendDirection
from triplegain.models.market import MarketSnapshot, to_decimal
from triplegain.settings import TechnicalSettings

MODEL = "indicator-heuristic"


def analyze_technicals(
    snapshot: MarketSnapshot, indicators: Indicators, settings: TechnicalSettings
) -> TechnicalReport:
    """Bias, trend, momentum and key levels for one symbol from its indicators."""
    bias, primary = _heuristic_bias(indicators, settings)
    support, resistance = _levels(snapshot, settings.level_window)
    warnings = _warnings(snapshot, indicators)
    trend = _trend(indicators, settings)
    confidence = settings.heuristic_confidence if indicators.rsi is not None else 0.0
    return TechnicalReport(
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        trend_direction=trend,
        trend_strength=settings.heuristic_strength,
        timeframe_alignment=[f"1h:{trend}"],
        momentum_score=_momentum(indicators),
        rsi_signal=_rsi_signal(indicators.rsi, settings),
        macd_signal=_macd_signal(indicators),
        resistance_levels=[resistance],
        support_levels=[support],
        current_position=_position(snapshot.current_price, support, resistance, settings.near_level_pct),
        primary_signal=primary,
        secondary_signals=_secondary(indicators, settings),
        warnings=warnings,
        bias=bias,
        confidence=confidence,
        reasoning=f"{primary}; trend {trend} on 1h"[:500],
        model_used=MODEL,
        indicators=indicators,
    )


def _heuristic_bias(ind: Indicators, s: TechnicalSettings) -> tuple[Bias, str]:
    if ind.rsi is None or ind.macd_hist is None:
        return Bias.NEUTRAL, "not enough history for RSI and MACD: neutral"
    if ind.rsi > s.rsi_long_above and ind.macd_hist > 0:
        return Bias.LONG, f"RSI {ind.rsi:.1f} above {s.rsi_long_above:g} with a positive MACD histogram: long"
    if ind.rsi < s.rsi_short_below and ind.macd_hist < 0:
        return (
            Bias.SHORT,
            f"RSI {ind.rsi:.1f} below {s.rsi_short_below:g} with a negative MACD histogram: short",
        )
    return (
        Bias.NEUTRAL,
        f"RSI {ind.rsi:.1f} and MACD histogram {ind.macd_hist:+.4g} disagree or are mild: neutral",
    )


def _trend(ind: Indicators, s: TechnicalSettings) -> TrendDirection:
    fast, slow = ind.ema.get(s.fast_ema), ind.ema.get(s.slow_ema)
    if fast is None or slow is None:
        return TrendDirection.NEUTRAL
    if ind.price > slow and fast > slow:
        return TrendDirection.BULLISH
    if ind.price < slow and fast < slow:
        return TrendDirection.BEARISH
    return TrendDirection.NEUTRAL


def _momentum(ind: Indicators) -> float:
    return 0.0 if ind.rsi is None else float(np.clip((ind.rsi - 50) / 50, -1, 1))


def _rsi_signal(rsi: float | None, s: TechnicalSettings) -> str:
    if rsi is not None and rsi < s.rsi_oversold:
        return "oversold"
    if rsi is not None and rsi > s.rsi_overbought:
        return "overbought"
    return "neutral"


def _macd_signal(ind: Indicators) -> str:
    hist, prev = ind.macd_hist, ind.macd_hist_prev
    if hist is None:
        return "neutral"
    if prev is not None and hist > 0 >= prev:
        return "bullish_cross"
    if prev is not None and hist < 0 <= prev:
        return "bearish_cross"
    return "bullish" if hist > 0 else "bearish" if hist < 0 else "neutral"


def _levels(snapshot: MarketSnapshot, window: int) -> tuple[Decimal, Decimal]:
    candles = snapshot.candles
    return to_decimal(np.min(candles.low[-window:])), to_decimal(np.max(candles.high[-window:]))


def _position(price: Decimal, support: Decimal, resistance: Decimal, near_pct: float) -> str:
    near = Decimal(str(near_pct)) / 100
    if price <= support * (1 + near):
        return "near_support"
    if price >= resistance * (1 - near):
        return "near_resistance"
    return "mid_range"


def _secondary(ind: Indicators, s: TechnicalSettings) -> list[str]:
    signals = []
    long_ema = ind.ema.get(s.long_ema)
    if long_ema is not None:
        signals.append(f"price {'above' if ind.price > long_ema else 'below'} EMA{s.long_ema}")
    if ind.adx is not None:
        signals.append(f"ADX {ind.adx:.1f}")
    if ind.volume_ratio is not None:
        signals.append(f"volume {ind.volume_ratio:.2f}x its average")
    return signals


def _warnings(snapshot: MarketSnapshot, ind: Indicators) -> list[str]:
    warnings = []
    if snapshot.missing_candles:
        warnings.append(f"{snapshot.missing_candles} hourly candles missing in the window (exchange outage)")
    if snapshot.zero_volume_candles:
        warnings.append(f"{snapshot.zero_volume_candles} zero-volume candles in the window")
    missing = [
        name for name in ("rsi", "macd_hist", "atr", "adx", "choppiness") if getattr(ind, name) is None
    ]
    if missing:
        warnings.append(f"not enough history for {', '.join(missing)}")
    return warnings
