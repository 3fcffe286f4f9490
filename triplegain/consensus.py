"""Consensus: how far the analysis agents agree with a signal scales its confidence (reference spec 3.8).

Each agent that has something to say for the signal's own symbol counts once: TA agrees with BUY when its
bias is long, the regime when it is one of `buy_regimes`, sentiment when bullish or very bullish (and the
mirror for SELL). With ratio = agreeing / counted:
    ratio >= high:        1 + (ratio - 0.5) * 2 * max_confidence_boost       (1.0 -> 1.30, 2/3 -> 1.10)
    low <= ratio < high:  1.0
    ratio < low:          (1 - max_confidence_penalty) + ratio * (max_confidence_penalty / low)   (0 -> 0.85)
"""

from __future__ import annotations

from triplegain.models.analysis import RegimeAssessment, SentimentReport, TechnicalReport
from triplegain.models.decision import TradingSignal
from triplegain.models.enums import BEARISH_SENTIMENT, BULLISH_SENTIMENT, Action, Bias
from triplegain.settings import ConsensusSettings


def consensus_multiplier(
    signal: TradingSignal,
    technical: TechnicalReport | None,
    regime: RegimeAssessment | None,
    sentiment: SentimentReport | None,
    s: ConsensusSettings,
) -> float:
    """The confidence multiplier for `signal`; 1.0 for HOLD, or when no agent speaks for its symbol."""
    if signal.action not in (Action.BUY, Action.SELL):
        return 1.0
    buy = signal.action is Action.BUY
    votes = []
    if technical is not None and technical.symbol == signal.symbol:
        votes.append(technical.bias is (Bias.LONG if buy else Bias.SHORT))
    if regime is not None and regime.symbol == signal.symbol:
        votes.append(regime.regime in (s.buy_regimes if buy else s.sell_regimes))
    if sentiment is not None and sentiment.symbol == signal.symbol:
        votes.append(sentiment.bias in (BULLISH_SENTIMENT if buy else BEARISH_SENTIMENT))
    if not votes:
        return 1.0
    return multiplier_for(sum(votes) / len(votes), s)


def multiplier_for(ratio: float, s: ConsensusSettings) -> float:
    """The reference's piecewise formula."""
    if ratio >= s.high_agreement_threshold:
        return 1 + (ratio - 0.5) * 2 * s.max_confidence_boost
    if ratio >= s.low_agreement_threshold:
        return 1.0
    return (1 - s.max_confidence_penalty) + ratio * (s.max_confidence_penalty / s.low_agreement_threshold)


def apply_consensus(signal: TradingSignal, multiplier: float) -> TradingSignal:
    """The signal with its confidence scaled (capped at 1) and the multiplier recorded."""
    return signal.model_copy(
        update={
            "confidence": round(min(1.0, signal.confidence * multiplier), 4),
            "consensus_multiplier": multiplier,
        }
    )
