"""Conflicts between agents, per symbol (reference spec 3.9, with the planned third kind).

- ta_sentiment: TA and sentiment point opposite ways and their confidences are within
  `invoke_llm_threshold` (further apart, the stronger side simply prevails);
- choppy_regime: a trade proposed while the regime is choppy;
- regime_change: the regime has just turned against a position that is open on the symbol.
Every check looks only at the signal's own symbol: a BTC conflict never involves XRP data.
"""

from __future__ import annotations

from triplegain.models.analysis import RegimeAssessment, SentimentReport, TechnicalReport
from triplegain.models.conflicts import Conflict, ConflictType
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import BEARISH_SENTIMENT, BULLISH_SENTIMENT, Action, Bias, Regime
from triplegain.models.trading import Position
from triplegain.settings import ConflictSettings

_AGAINST_LONGS = frozenset({Regime.TRENDING_BEAR, Regime.VOLATILE_BEAR, Regime.CHOPPY})


def detect_conflicts(
    signal: TradingSignal,
    technical: TechnicalReport | None,
    regime: RegimeAssessment | None,
    sentiment: SentimentReport | None,
    open_positions: list[Position],
    s: ConflictSettings,
) -> list[Conflict]:
    """Every conflict around `signal`, using only data of its own symbol."""
    symbol = signal.symbol
    technical = technical if technical is not None and technical.symbol == symbol else None
    regime = regime if regime is not None and regime.symbol == symbol else None
    sentiment = sentiment if sentiment is not None and sentiment.symbol == symbol else None
    found = []
    if s.ta_sentiment and technical is not None and sentiment is not None:
        found += _ta_sentiment(symbol, technical, sentiment, s)
    if (
        s.choppy_regime
        and regime is not None
        and regime.regime is Regime.CHOPPY
        and signal.action is not Action.HOLD
    ):
        found.append(_choppy(signal, regime))
    longs = [p for p in open_positions if p.symbol == symbol]
    if s.regime_change and regime is not None and longs and _just_turned_against_longs(regime):
        found.append(_regime_change(signal, regime, len(longs)))
    return found


def _choppy(signal: TradingSignal, regime: RegimeAssessment) -> Conflict:
    return Conflict(
        type=ConflictType.CHOPPY_REGIME,
        symbol=signal.symbol,
        agents_involved=["regime_detection", "trading_decision"],
        description=f"{signal.action} proposed in a choppy regime",
        details={
            "regime": regime.regime.value,
            "proposed_action": signal.action.value,
            "recommendation": "Avoid trading in choppy regime",
        },
        fallback="abort",
    )


def _regime_change(signal: TradingSignal, regime: RegimeAssessment, longs: int) -> Conflict:
    return Conflict(
        type=ConflictType.REGIME_CHANGE,
        symbol=signal.symbol,
        agents_involved=["regime_detection", "coordinator"],
        description=f"regime turned {regime.regime} with {longs} long position(s) open",
        details={
            "regime": regime.regime.value,
            "open_positions": float(longs),
            "proposed_action": signal.action.value,
        },
        fallback="wait",
    )


def _ta_sentiment(
    symbol: str, ta: TechnicalReport, sentiment: SentimentReport, s: ConflictSettings
) -> list[Conflict]:
    opposed = (ta.bias is Bias.LONG and sentiment.bias in BEARISH_SENTIMENT) or (
        ta.bias is Bias.SHORT and sentiment.bias in BULLISH_SENTIMENT
    )
    gap = abs(ta.confidence - sentiment.confidence)
    if not opposed or gap >= s.invoke_llm_threshold:
        return []
    return [
        Conflict(
            type=ConflictType.TA_SENTIMENT,
            symbol=symbol,
            agents_involved=["technical_analysis", "sentiment_analysis"],
            description=f"TA is {ta.bias} but sentiment is {sentiment.bias}, with similar confidence",
            details={
                "ta_bias": ta.bias.value,
                "ta_confidence": ta.confidence,
                "sent_bias": sentiment.bias.value,
                "sent_confidence": sentiment.confidence,
                "confidence_diff": round(gap, 4),
            },
            fallback="wait",
        )
    ]


def _just_turned_against_longs(regime: RegimeAssessment) -> bool:
    """The regime changed in this very assessment (not a first detection), to one that hurts a long."""
    state = regime.state
    changed_now = state.previous is not None and state.periods == 1 and state.since == regime.timestamp
    return changed_now and regime.regime in _AGAINST_LONGS and state.previous not in _AGAINST_LONGS
