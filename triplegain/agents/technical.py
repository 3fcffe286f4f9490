"""Technical-analysis agent: indicators and the multi-timeframe evidence to a technical report (spec 4.1).

Offline, the bias, confidence and strength come from the evidence (`triplegain.agents.evidence`): four
indicator families voting on 1h, 4h and 1d. The confidence is the share of the twelve votes that agree with
the bias, so it varies from hour to hour with what the market shows, and means how much evidence agrees.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from triplegain.agents.evidence import Evidence, gather_evidence
from triplegain.indicators import TaSeries
from triplegain.models.analysis import Indicators, TechnicalReport
from triplegain.models.enums import Bias, TrendDirection
from triplegain.models.market import MarketSnapshot, to_decimal
from triplegain.settings import IndicatorSettings, TechnicalSettings

MODEL = "indicator-evidence"


def analyze_technicals(
    snapshot: MarketSnapshot,
    indicators: Indicators,
    settings: TechnicalSettings,
    periods: IndicatorSettings | None = None,
    series: TaSeries | None = None,
) -> TechnicalReport:
    """Bias, trend, momentum and key levels for one symbol from its indicators and the evidence
    (`series`: TA-Lib's outputs on the snapshot's candles, shared with the indicators)."""
    evidence = gather_evidence(snapshot.candles, periods or IndicatorSettings(), settings, series)
    bias = evidence.bias(settings)
    support, resistance = _levels(snapshot, settings.level_window)
    trend = _trend(indicators, settings)
    primary = _primary(bias, evidence, settings)
    return TechnicalReport(
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        trend_direction=trend,
        trend_strength=evidence.strength(),
        timeframe_alignment=evidence.alignment(),
        momentum_score=_momentum(indicators),
        rsi_signal=_rsi_signal(indicators.rsi, settings),
        macd_signal=_macd_signal(indicators),
        resistance_levels=[resistance],
        support_levels=[support],
        current_position=_position(snapshot.current_price, support, resistance, settings.near_level_pct),
        primary_signal=primary,
        secondary_signals=_secondary(indicators, settings),
        warnings=_warnings(snapshot, indicators),
        bias=bias,
        confidence=evidence.confidence(bias),
        reasoning=f"{primary}; {evidence.summary()}"[:500],
        model_used=MODEL,
        indicators=indicators,
    )


def _primary(bias: Bias, evidence: Evidence, s: TechnicalSettings) -> str:
    long, short = evidence.count(1), evidence.count(-1)
    tally = f"{long} of {evidence.total} votes long, {short} short"
    if bias is Bias.NEUTRAL:
        return f"{tally}: neutral (a bias needs {s.min_net_votes} more on one side)"
    return f"{tally}: {bias}"


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
