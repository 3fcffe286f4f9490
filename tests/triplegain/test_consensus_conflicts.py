from datetime import timedelta
from decimal import Decimal

import pytest

from tests.triplegain.factories import AT, regime, technical, vote
from triplegain.agents.decision import aggregate_votes
from triplegain.conflicts import ConflictType, detect_conflicts
from triplegain.consensus import apply_consensus, consensus_multiplier, multiplier_for
from triplegain.models.analysis import RegimeState, SentimentReport
from triplegain.models.enums import Action, Bias, Regime, SentimentBias
from triplegain.models.trading import Position
from triplegain.settings import ConflictSettings, ConsensusSettings, DecisionSettings

C, K = ConsensusSettings(), ConflictSettings()


def signal(action: Action = Action.BUY, symbol: str = "BTC/USDT", confidence: float = 0.7) -> object:
    v = vote(action, confidence=confidence)
    return aggregate_votes(
        symbol, AT, [v], 1, technical(symbol=symbol), regime(symbol=symbol), DecisionSettings()
    )


def sentiment(bias: SentimentBias, confidence: float = 0.3, symbol: str = "BTC/USDT") -> SentimentReport:
    return SentimentReport(
        symbol=symbol,
        timestamp=AT,
        valid_until=AT + timedelta(hours=1),
        bias=bias,
        overall_score=0.0,
        confidence=confidence,
        fear_greed="neutral",
        reasoning="test",
        model_used="test",
    )


@pytest.mark.parametrize(
    ("ratio", "expected"), [(1.0, 1.30), (2 / 3, 1.10), (0.66, 1.096), (0.5, 1.0), (0.0, 0.85)]
)
def test_reference_multipliers(ratio: float, expected: float) -> None:
    assert multiplier_for(ratio, C) == pytest.approx(expected, abs=1e-3)


def test_full_agreement_boosts_and_caps_at_one() -> None:
    s = signal(confidence=0.9)
    m = consensus_multiplier(
        s, technical(Bias.LONG), regime(Regime.TRENDING_BULL), sentiment(SentimentBias.BULLISH), C
    )  # type: ignore[arg-type]

    boosted = apply_consensus(s, m)  # type: ignore[arg-type]

    assert m == pytest.approx(1.3) and boosted.confidence == 1.0 and boosted.consensus_multiplier == m


def test_regime_labels_are_mapped_so_regime_can_agree() -> None:
    m = consensus_multiplier(signal(), technical(Bias.SHORT), regime(Regime.BREAKOUT_POTENTIAL), None, C)  # type: ignore[arg-type]

    assert m == 1.0  # 1 of 2 agree: neutral (the reference's labels never matched, so regime never agreed)


def test_disagreement_penalises() -> None:
    m = consensus_multiplier(signal(), technical(Bias.SHORT), regime(Regime.TRENDING_BEAR), None, C)  # type: ignore[arg-type]

    assert m == pytest.approx(0.85)


def test_a_mismatched_symbol_never_counts() -> None:
    xrp = technical(Bias.SHORT, symbol="XRP/USDT")

    assert consensus_multiplier(signal(), xrp, regime(symbol="XRP/USDT"), None, C) == 1.0  # type: ignore[arg-type]


def test_hold_is_not_scaled() -> None:
    assert consensus_multiplier(signal(Action.HOLD), technical(), regime(), None, C) == 1.0  # type: ignore[arg-type]


def test_ta_against_sentiment_with_close_confidence_is_a_conflict() -> None:
    [c] = detect_conflicts(
        signal(), technical(Bias.LONG), regime(), sentiment(SentimentBias.BEARISH, 0.3), [], K
    )  # type: ignore[arg-type]

    assert c.type is ConflictType.TA_SENTIMENT and c.fallback == "wait"
    assert c.details["confidence_diff"] == pytest.approx(0.05)


def test_ta_against_much_more_confident_sentiment_is_no_conflict() -> None:
    assert (
        detect_conflicts(
            signal(), technical(Bias.LONG), None, sentiment(SentimentBias.VERY_BEARISH, 0.9), [], K
        )
        == []
    )  # type: ignore[arg-type]


def test_trade_in_a_choppy_regime_is_a_conflict_but_hold_is_not() -> None:
    [c] = detect_conflicts(signal(), technical(), regime(Regime.CHOPPY), None, [], K)  # type: ignore[arg-type]

    assert c.type is ConflictType.CHOPPY_REGIME and c.fallback == "abort"
    assert detect_conflicts(signal(Action.HOLD), technical(), regime(Regime.CHOPPY), None, [], K) == []  # type: ignore[arg-type]


def test_regime_turning_against_an_open_long_is_a_conflict() -> None:
    turned = regime(Regime.TRENDING_BEAR).model_copy(
        update={
            "state": RegimeState(
                regime=Regime.TRENDING_BEAR, confidence=0.8, since=AT, periods=1, previous=Regime.RANGING
            )
        }
    )
    long = Position(
        id="p", symbol="BTC/USDT", size=Decimal(1), entry_price=Decimal(100), opened_at=AT, cycle_id="c"
    )

    [c] = detect_conflicts(signal(Action.HOLD), technical(), turned, None, [long], K)  # type: ignore[arg-type]
    first_detection = turned.model_copy(update={"state": turned.state.model_copy(update={"previous": None})})

    assert c.type is ConflictType.REGIME_CHANGE
    assert detect_conflicts(signal(Action.HOLD), technical(), first_detection, None, [long], K) == []  # type: ignore[arg-type]


def test_a_btc_conflict_never_uses_xrp_data() -> None:
    xrp_sentiment = sentiment(SentimentBias.BEARISH, 0.3, symbol="XRP/USDT")
    xrp_regime = regime(Regime.CHOPPY, symbol="XRP/USDT")

    assert detect_conflicts(signal(), technical(Bias.LONG), xrp_regime, xrp_sentiment, [], K) == []  # type: ignore[arg-type]


def test_each_detection_can_be_switched_off() -> None:
    off = ConflictSettings(choppy_regime=False)

    assert detect_conflicts(signal(), technical(), regime(Regime.CHOPPY), None, [], off) == []  # type: ignore[arg-type]
