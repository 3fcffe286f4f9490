"""Regime-detection agent: seven regimes from indicators, with per-symbol hysteresis (reference spec 4.2).

Classification, first match wins: volatile (ATR well above its baseline), trending (ADX above the trend
threshold with price and directional movement on the same side), breakout potential (a Bollinger squeeze
without a trend), choppy (high choppiness index), otherwise ranging. Hysteresis: the first detection is
accepted; a change needs `change_periods` consecutive detections of the same new regime, each with
confidence at least `min_change_confidence`.
"""

from __future__ import annotations

from datetime import datetime

from triplegain.models.analysis import Indicators, RegimeAssessment, RegimeState
from triplegain.models.enums import Regime
from triplegain.models.market import MarketSnapshot
from triplegain.settings import RegimeSettings, TechnicalSettings

MODEL = "indicator-rules"
_BASE_CONFIDENCE = 0.5  # a rule that holds exactly at its thresholds is a coin flip
_ADX_FULL_TREND = 50.0  # ADX at which a trend counts as fully strong
# Descriptive labels only (they reach reports, never a trading rule): ATR and volume ratios per band.
_VOLATILITY_BANDS = ((2.5, "extreme"), (1.5, "high"), (0.6, "normal"))
_VOLUME_BANDS = ((3.0, "spike"), (1.2, "increasing"), (0.8, "stable"))


def assess_regime(
    snapshot: MarketSnapshot,
    indicators: Indicators,
    previous: RegimeState | None,
    settings: RegimeSettings,
    technical: TechnicalSettings,
) -> RegimeAssessment:
    """The confirmed regime for one symbol, given what this cycle detects and the symbol's last state."""
    detected = detect_regime(indicators, settings, technical)
    if detected is None:
        return fallback_assessment(snapshot, indicators, previous, settings, MODEL)
    return assessment_from(snapshot, indicators, previous, detected, settings, MODEL)


def assessment_from(
    snapshot: MarketSnapshot,
    indicators: Indicators,
    previous: RegimeState | None,
    detected: tuple[Regime, float, str],
    settings: RegimeSettings,
    model: str,
) -> RegimeAssessment:
    """A detection (by the rules or by a model) through the hysteresis, as an assessment."""
    regime, confidence, why = detected
    state = next_state(previous, regime, confidence, snapshot.timestamp, settings)
    held = state.regime != regime
    reasoning = (
        why if not held else f"{why}; holding {state.regime} until confirmed ({state.candidate_count}x)"
    )
    return RegimeAssessment(
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        regime=state.regime,
        confidence=state.confidence,
        detected_regime=regime,
        detected_confidence=confidence,
        volatility=_volatility(indicators),
        trend_strength=min(1.0, (indicators.adx or 0.0) / _ADX_FULL_TREND),
        volume_profile=_volume_profile(indicators),
        choppiness=indicators.choppiness if indicators.choppiness is not None else 50.0,
        adx_value=indicators.adx,
        parameters=settings.parameters[state.regime],
        state=state,
        reasoning=reasoning[:300].ljust(10),
        model_used=model,
    )


def detect_regime(
    ind: Indicators, s: RegimeSettings, technical: TechnicalSettings
) -> tuple[Regime, float, str] | None:
    """What the indicators alone say, with a confidence; None when the needed indicators are missing.

    The confidence says how clearly the rule holds: 0.5 exactly at its thresholds, rising to 1.0 as every
    condition of the rule is past its threshold by its full scale (`*_clear` settings)."""
    if ind.adx is None or ind.plus_di is None or ind.minus_di is None or ind.atr is None:
        return None
    anchor = ind.ema.get(technical.long_ema) or ind.ema.get(technical.slow_ema) or ind.price
    above = ind.price > anchor
    if ind.atr_baseline and ind.atr / ind.atr_baseline >= s.volatile_atr_ratio:
        ratio = ind.atr / ind.atr_baseline
        regime = Regime.VOLATILE_BULL if above else Regime.VOLATILE_BEAR
        clarity = _past(ratio - s.volatile_atr_ratio, s.atr_ratio_clear)
        return (
            regime,
            _confidence(clarity),
            f"ATR {ratio:.1f}x normal, price {'above' if above else 'below'} EMA",
        )
    spread = abs(ind.plus_di - ind.minus_di) / (ind.plus_di + ind.minus_di or 1)
    if ind.adx >= s.adx_trending:
        clarity = (_past(ind.adx - s.adx_trending, s.adx_clear) + _past(spread, s.di_spread_clear)) / 2
        if above and ind.plus_di > ind.minus_di:
            why = f"ADX {ind.adx:.1f} with price above EMA and +DI leading by {spread:.0%}"
            return Regime.TRENDING_BULL, _confidence(clarity), why
        if not above and ind.minus_di > ind.plus_di:
            why = f"ADX {ind.adx:.1f} with price below EMA and -DI leading by {spread:.0%}"
            return Regime.TRENDING_BEAR, _confidence(clarity), why
    if ind.bb_width_rank is not None and ind.bb_width_rank <= s.squeeze_rank and ind.adx < s.adx_ranging:
        squeeze = 1 - ind.bb_width_rank / s.squeeze_rank if s.squeeze_rank else 1.0
        clarity = (squeeze + _past(s.adx_ranging - ind.adx, s.adx_clear)) / 2
        why = f"Bollinger squeeze (width rank {ind.bb_width_rank:.2f}) without a trend (ADX {ind.adx:.1f})"
        return Regime.BREAKOUT_POTENTIAL, _confidence(clarity), why
    if ind.choppiness is not None and ind.choppiness >= s.choppiness_choppy:
        clarity = _past(ind.choppiness - s.choppiness_choppy, s.choppiness_clear)
        return Regime.CHOPPY, _confidence(clarity), f"choppiness {ind.choppiness:.1f}"
    clarity = _past(s.adx_trending - ind.adx, s.adx_clear)
    return Regime.RANGING, _confidence(clarity), f"ADX {ind.adx:.1f} shows no trend"


def next_state(
    previous: RegimeState | None, regime: Regime, confidence: float, at: datetime, s: RegimeSettings
) -> RegimeState:
    """Apply the hysteresis: accept the first detection; change only after repeated confident detections."""
    if previous is None:
        return RegimeState(regime=regime, confidence=confidence, since=at, periods=1)
    if regime == previous.regime:
        return RegimeState(
            regime=regime,
            confidence=confidence,
            since=previous.since,
            periods=previous.periods + 1,
            previous=previous.previous,
        )
    if confidence < s.min_change_confidence:
        return previous.model_copy(
            update={"periods": previous.periods + 1, "candidate": None, "candidate_count": 0}
        )
    count = previous.candidate_count + 1 if previous.candidate == regime else 1
    if count >= s.change_periods:
        return RegimeState(
            regime=regime, confidence=confidence, since=at, periods=1, previous=previous.regime
        )
    return previous.model_copy(
        update={"periods": previous.periods + 1, "candidate": regime, "candidate_count": count}
    )


def fallback_assessment(
    snapshot: MarketSnapshot, ind: Indicators, previous: RegimeState | None, s: RegimeSettings, model: str
) -> RegimeAssessment:
    """Reference fallback without indicators: choppy at confidence 0, the most cautious parameters."""
    state = RegimeState(regime=Regime.CHOPPY, confidence=0.0, since=snapshot.timestamp, periods=1)
    if previous is not None and previous.regime == Regime.CHOPPY:
        state = state.model_copy(update={"since": previous.since, "periods": previous.periods + 1})
    return RegimeAssessment(
        symbol=snapshot.symbol,
        timestamp=snapshot.timestamp,
        regime=Regime.CHOPPY,
        confidence=0.0,
        detected_regime=Regime.CHOPPY,
        detected_confidence=0.0,
        volatility="normal",
        trend_strength=0.0,
        volume_profile=_volume_profile(ind),
        adx_value=ind.adx,
        parameters=s.parameters[Regime.CHOPPY],
        state=state,
        reasoning="not enough history for ADX/ATR: fallback to choppy, the most cautious regime",
        model_used=model,
    )


def _past(excess: float, scale: float) -> float:
    """How far past its threshold a condition is, as a share of its full scale (0 to 1)."""
    return min(1.0, max(0.0, excess / scale)) if scale > 0 else 1.0


def _confidence(clarity: float) -> float:
    """0.5 at the thresholds, 1.0 when the rule holds by its full scale."""
    return round(_BASE_CONFIDENCE + (1 - _BASE_CONFIDENCE) * clarity, 4)


def _band(ratio: float | None, bands: tuple[tuple[float, str], ...], below: str, unknown: str) -> str:
    if ratio is None:
        return unknown
    return next((label for floor, label in bands if ratio >= floor), below)


def _volatility(ind: Indicators) -> str:
    ratio = ind.atr / ind.atr_baseline if ind.atr is not None and ind.atr_baseline else None
    return _band(ratio, _VOLATILITY_BANDS, "low", "normal")


def _volume_profile(ind: Indicators) -> str:
    return _band(ind.volume_ratio, _VOLUME_BANDS, "decreasing", "stable")
