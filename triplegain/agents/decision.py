"""Trading decision: model votes aggregated into one signal (reference spec 4.4).

The aggregator is general over N voters (quorum, HOLD when the winning share is at or below
`min_consensus`, agreement boosts, prices and size averaged over the agreeing models). Offline, one
deterministic model votes; every output names it, so nobody mistakes it for an LLM.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import fmean
from typing import Any

from triplegain.models.analysis import RegimeAssessment, TechnicalReport
from triplegain.models.decision import DIRECTIONAL, ModelVote, TradingSignal
from triplegain.models.enums import Action, AgreementType, Bias, Regime
from triplegain.models.market import MarketSnapshot
from triplegain.settings import DecisionSettings, Settings

OFFLINE_MODEL = "offline"
OFFLINE_DECIDED_BY = "offline-deterministic"
_AGREES = {
    Action.BUY: {Regime.TRENDING_BULL, Regime.VOLATILE_BULL, Regime.BREAKOUT_POTENTIAL},
    Action.SELL: {Regime.TRENDING_BEAR, Regime.VOLATILE_BEAR},
}
_PRICED = DIRECTIONAL | {Action.CLOSE_LONG, Action.CLOSE_SHORT}


def offline_vote(
    snapshot: MarketSnapshot, technical: TechnicalReport, regime: RegimeAssessment, settings: Settings
) -> ModelVote:
    """The deterministic offline model: direction from the technical bias, confidence from the evidence
    (the share of agreeing votes, plus `regime_bonus` when the regime agrees), and a trade only when its
    expected edge clears the round trip's cost."""
    s = settings.decision.offline
    action = {Bias.LONG: Action.BUY, Bias.SHORT: Action.SELL}.get(technical.bias, Action.HOLD)
    if action is Action.HOLD:
        return _hold(f"technical bias {technical.bias}: nothing to do", technical.confidence)
    if regime.regime is Regime.CHOPPY:
        return _hold(f"{action} suggested but the regime is choppy: stay out", technical.confidence)
    reasons = [f"{technical.confidence:.0%} of the technical evidence {technical.bias}"]
    confidence = technical.confidence
    if regime.regime in _AGREES[action]:
        confidence += s.regime_bonus
        reasons.append(f"regime {regime.regime} agrees")
    confidence = round(min(confidence, s.max_confidence), 4)
    atr = technical.indicators.atr
    if confidence < s.min_action_confidence or atr is None:
        return _hold(
            f"{action} too weak ({confidence:.2f} < {s.min_action_confidence}): " + ", ".join(reasons),
            confidence,
        )
    stop_pct, reward_pct = _distances_pct(snapshot, Decimal(repr(atr)), regime, settings)
    p = win_probability(technical.trend_strength, stop_pct, reward_pct, s.evidence_edge)
    edge, cost = expected_edge_pct(p, stop_pct, reward_pct, settings)
    reasons.append(f"expected edge {edge:+.2f}% after a {cost:.2f}% round trip (win chance {p:.2f})")
    if edge <= 0:
        return _hold(
            f"{action} not worth its cost: " + ", ".join(reasons) + f" (stop {stop_pct:.2f}%, target "
            f"{reward_pct:.2f}%)",
            confidence,
        )
    return _directional_vote(action, confidence, snapshot, stop_pct, reward_pct, regime, settings, reasons)


def win_probability(
    net_share: float, stop_pct: Decimal, reward_pct: Decimal, evidence_edge: float
) -> Decimal:
    """The chance of reaching the target before the stop: a driftless market's stop / (stop + target),
    raised by `evidence_edge` times the net share of agreeing evidence (at most 1)."""
    neutral = stop_pct / (stop_pct + reward_pct)
    return min(Decimal(1), neutral + Decimal(repr(evidence_edge)) * Decimal(repr(net_share)))


def expected_edge_pct(
    p: Decimal, stop_pct: Decimal, reward_pct: Decimal, settings: Settings
) -> tuple[Decimal, Decimal]:
    """The expected result of a trade in percent of its size, given the chance `p` of reaching the target
    before the stop, net of the round trip (fee and worst slippage, both legs); and that cost."""
    cost = 2 * (settings.broker.fee_pct + settings.broker.max_slippage_pct)
    return p * reward_pct - (1 - p) * stop_pct - cost, cost


def _distances_pct(
    snapshot: MarketSnapshot, atr: Decimal, regime: RegimeAssessment, settings: Settings
) -> tuple[Decimal, Decimal]:
    """Stop distance from ATR (bounded by the risk limits) and the target's at the reward/risk ratio."""
    s, risk = settings.decision.offline, settings.risk
    stop_pct = atr * s.stop_atr_multiplier * regime.parameters.stop_loss_multiplier / snapshot.current_price
    stop_pct = min(max(stop_pct * 100, risk.min_stop_pct), risk.max_stop_pct)
    return stop_pct, stop_pct * max(s.reward_risk, risk.min_risk_reward)


def _directional_vote(
    action: Action,
    confidence: float,
    snapshot: MarketSnapshot,
    stop_pct: Decimal,
    reward_pct: Decimal,
    regime: RegimeAssessment,
    settings: Settings,
    reasons: list[str],
) -> ModelVote:
    """Entry at the market, the stop and the target at their distances."""
    s = settings.decision.offline
    entry = snapshot.current_price
    distance, reward = entry * stop_pct / 100, entry * reward_pct / 100
    sign = 1 if action is Action.BUY else -1
    quantum = Decimal(1).scaleb(-settings.market.symbol_specs[snapshot.symbol].price_decimals)
    return ModelVote(
        model=OFFLINE_MODEL,
        provider="offline",
        action=action,
        confidence=confidence,
        entry_price=entry,
        stop_loss=(entry - sign * distance).quantize(quantum, ROUND_HALF_EVEN),
        take_profit=(entry + sign * reward).quantize(quantum, ROUND_HALF_EVEN),
        position_size_pct=s.position_size_pct * regime.parameters.position_size_multiplier,
        reasoning=f"{'; '.join(reasons)}; stop {stop_pct:.2f}% away"[:300],
    )


def _hold(reasoning: str, confidence: float) -> ModelVote:
    return ModelVote(
        model=OFFLINE_MODEL,
        provider="offline",
        action=Action.HOLD,
        confidence=confidence,
        reasoning=reasoning[:300],
    )


def aggregate_votes(
    symbol: str,
    timestamp: datetime,
    votes: Sequence[ModelVote],
    configured_models: int,
    technical: TechnicalReport,
    regime: RegimeAssessment,
    settings: DecisionSettings,
) -> TradingSignal:
    """Combine the models' votes: quorum, majority, boosts, averaged levels (reference spec 4.4)."""
    valid = [v for v in votes if not v.abstained]
    counts = Counter(v.action for v in valid)
    base = _signal_fields(symbol, timestamp, votes, counts, configured_models, technical, regime)
    quorum = max(1, min(settings.min_quorum, configured_models))
    if len(valid) < quorum:
        why = f"{len(valid)} valid vote(s) of {configured_models}, quorum {quorum}: HOLD"
        return _hold_signal(base, AgreementType.INSUFFICIENT_QUORUM, 0.0, why)
    winner, top = counts.most_common(1)[0]
    strength = top / len(valid)
    if strength <= settings.min_consensus:
        return _hold_signal(base, AgreementType.NO_CONSENSUS, strength, f"no majority ({dict(counts)}): HOLD")
    agreeing = [v for v in valid if v.action is winner]
    agreement, boost = _agreement(strength, len(valid), settings)
    confidence = min(1.0, fmean(v.confidence for v in agreeing) + boost)
    return TradingSignal(
        **base,
        action=winner,
        confidence=round(confidence, 4),
        agreement=agreement,
        consensus_strength=strength,
        agreeing_models=[v.model for v in agreeing],
        reasoning=f"{top}/{len(valid)} for {winner} ({agreement}): "
        + " | ".join(v.reasoning for v in agreeing)[:400],
        **(_levels(agreeing) if winner in _PRICED else {}),
    )


def _signal_fields(
    symbol: str,
    timestamp: datetime,
    votes: Sequence[ModelVote],
    counts: Counter[Action],
    configured_models: int,
    technical: TechnicalReport,
    regime: RegimeAssessment,
) -> dict[str, Any]:
    """What every signal of these votes says, whatever it decides."""
    return {
        "symbol": symbol,
        "timestamp": timestamp,
        "votes": dict(counts),
        "total_models": configured_models,
        "model_votes": list(votes),
        "decided_by": _decided_by(votes),
        "regime": regime.regime.value,
        "ta_bias": technical.bias.value,
        "total_cost_usd": sum((v.cost_usd for v in votes), Decimal(0)),
    }


def _agreement(strength: float, valid: int, s: DecisionSettings) -> tuple[AgreementType, float]:
    """Agreement type and boost; a single valid vote agrees only with itself, so it earns no boost.

    The share is compared at two decimals, as the reference's table reads: 4 of 6 (0.667) is a majority
    at 0.67, 5 of 6 (0.833) a strong majority at 0.83.
    """
    strength = round(strength, 2)
    if strength >= 1.0:
        kind, boost = AgreementType.UNANIMOUS, s.unanimous_boost
    elif strength >= s.strong_majority:
        kind, boost = AgreementType.STRONG_MAJORITY, s.strong_majority_boost
    elif strength >= s.majority:
        kind, boost = AgreementType.MAJORITY, s.majority_boost
    else:
        kind, boost = AgreementType.SPLIT, 0.0
    return kind, boost if valid > 1 else 0.0


def _levels(agreeing: list[ModelVote]) -> dict[str, Decimal | None]:
    def mean(values: list[Decimal | None]) -> Decimal | None:
        present = [v for v in values if v is not None]
        return sum(present, Decimal(0)) / len(present) if present else None

    return {
        "entry_price": mean([v.entry_price for v in agreeing]),
        "stop_loss": mean([v.stop_loss for v in agreeing]),
        "take_profit": mean([v.take_profit for v in agreeing]),
        "position_size_pct": mean([v.position_size_pct for v in agreeing]) or Decimal(0),
    }


def _hold_signal(
    base: dict[str, object], agreement: AgreementType, strength: float, why: str
) -> TradingSignal:
    return TradingSignal.model_validate(
        {
            **base,
            "action": Action.HOLD,
            "confidence": 0.0,
            "agreement": agreement,
            "consensus_strength": strength,
            "reasoning": why,
        }
    )


def _decided_by(votes: Sequence[ModelVote]) -> str:
    """The voters whose votes counted; when every one abstained, that the quorum rule decided (HOLD)."""
    counted = sorted({v.model for v in votes if not v.abstained})
    if counted == [OFFLINE_MODEL]:
        return OFFLINE_DECIDED_BY
    if counted:
        return ",".join(counted)
    return (
        f"quorum-rule: every model abstained ({','.join(sorted({v.model for v in votes})) or 'none asked'})"
    )
