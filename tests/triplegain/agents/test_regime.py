from datetime import timedelta

import pytest

from tests.triplegain.factories import AT, indicators, snapshot
from tests.triplegain.synthetic import BUILDERS
from triplegain.agents.regime import assess_regime, detect_regime, next_state
from triplegain.indicators import compute_indicators
from triplegain.models.analysis import RegimeState
from triplegain.models.enums import EntryStrictness, Regime
from triplegain.settings import RegimeSettings, TechnicalSettings, load_settings

S, T = RegimeSettings(), TechnicalSettings()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"adx": 35.0, "plus_di": 30.0, "minus_di": 10.0, "price": 110.0}, Regime.TRENDING_BULL),
        ({"adx": 35.0, "plus_di": 10.0, "minus_di": 30.0, "price": 90.0}, Regime.TRENDING_BEAR),
        ({"atr": 2.5, "atr_baseline": 1.0, "price": 110.0}, Regime.VOLATILE_BULL),
        ({"atr": 2.5, "atr_baseline": 1.0, "price": 90.0}, Regime.VOLATILE_BEAR),
        ({"adx": 15.0, "bb_width_rank": 0.05}, Regime.BREAKOUT_POTENTIAL),
        ({"adx": 22.0, "choppiness": 70.0}, Regime.CHOPPY),
        ({"adx": 12.0}, Regime.RANGING),
    ],
)
def test_detects_each_of_the_seven_regimes(overrides: dict[str, float], expected: Regime) -> None:
    detected = detect_regime(indicators(**overrides), S, T)

    assert detected is not None and detected[0] is expected
    assert 0.5 <= detected[1] <= 1.0


@pytest.mark.parametrize("expected", list(BUILDERS))
def test_each_regime_is_entered_and_confirmed_on_a_series_built_for_it(expected: Regime) -> None:
    settings = load_settings()
    candles = BUILDERS[expected]()
    other = Regime.TRENDING_BULL if expected is not Regime.TRENDING_BULL else Regime.RANGING
    state = RegimeState(regime=other, confidence=0.8, since=AT, periods=5)
    confirmed = []
    for back in (2, 1, 0):
        window = candles.slice(0, len(candles) - back)
        snap = snapshot().model_copy(update={"candles": window})
        ind = compute_indicators(window, settings.indicators)
        assessment = assess_regime(snap, ind, state, settings.regime, settings.technical)
        state = assessment.state
        confirmed.append(assessment.regime)

    assert confirmed == [other, expected, expected]  # held once, confirmed at the second detection
    assert state.previous is other and assessment.detected_confidence >= settings.regime.min_change_confidence


@pytest.mark.parametrize(
    ("weaker", "stronger"),
    [
        ({"adx": 27.0, "plus_di": 22.0, "minus_di": 18.0}, {"adx": 35.0, "plus_di": 30.0, "minus_di": 10.0}),
        ({"choppiness": 63.0}, {"choppiness": 70.0}),
        ({"adx": 18.0, "bb_width_rank": 0.09}, {"adx": 10.0, "bb_width_rank": 0.01}),
        ({"atr": 2.1}, {"atr": 3.0}),
    ],
)
def test_the_clearer_the_rule_holds_the_higher_the_confidence(
    weaker: dict[str, float], stronger: dict[str, float]
) -> None:
    base = {"price": 110.0, "atr_baseline": 1.0}
    low = detect_regime(indicators(**(base | weaker)), S, T)
    high = detect_regime(indicators(**(base | stronger)), S, T)

    assert low is not None and high is not None and low[0] is high[0]
    assert low[1] < high[1]


def test_first_detection_is_accepted() -> None:
    state = next_state(None, Regime.CHOPPY, 0.55, AT, S)

    assert state.regime is Regime.CHOPPY and state.periods == 1


def test_change_needs_two_confident_detections() -> None:
    start = next_state(None, Regime.RANGING, 0.8, AT, S)

    once = next_state(start, Regime.TRENDING_BULL, 0.75, AT + timedelta(hours=1), S)
    twice = next_state(once, Regime.TRENDING_BULL, 0.75, AT + timedelta(hours=2), S)

    assert (
        once.regime is Regime.RANGING and once.candidate is Regime.TRENDING_BULL and once.candidate_count == 1
    )
    assert twice.regime is Regime.TRENDING_BULL and twice.since == AT + timedelta(hours=2)


def test_low_confidence_detection_does_not_count_and_resets_the_candidate() -> None:
    start = next_state(None, Regime.RANGING, 0.8, AT, S)
    once = next_state(start, Regime.TRENDING_BULL, 0.75, AT, S)

    weak = next_state(once, Regime.TRENDING_BULL, 0.6, AT, S)
    again = next_state(weak, Regime.TRENDING_BULL, 0.75, AT, S)

    assert weak.regime is Regime.RANGING and weak.candidate is None
    assert again.regime is Regime.RANGING and again.candidate_count == 1


def test_interrupted_candidate_starts_over() -> None:
    start = next_state(None, Regime.RANGING, 0.8, AT, S)
    a = next_state(start, Regime.TRENDING_BULL, 0.75, AT, S)

    b = next_state(a, Regime.TRENDING_BEAR, 0.75, AT, S)

    assert b.regime is Regime.RANGING and b.candidate is Regime.TRENDING_BEAR and b.candidate_count == 1


def test_same_regime_counts_periods_and_keeps_since() -> None:
    start = next_state(None, Regime.RANGING, 0.8, AT, S)

    later = next_state(start, Regime.RANGING, 0.7, AT + timedelta(hours=1), S)

    assert later.periods == 2 and later.since == AT and later.confidence == 0.7


def test_assessment_carries_parameters_of_the_confirmed_regime() -> None:
    previous = next_state(None, Regime.RANGING, 0.9, AT, S)
    trending = indicators(adx=45.0, plus_di=30.0, minus_di=10.0, price=110.0)

    held = assess_regime(snapshot(), trending, previous, S, T)

    assert held.regime is Regime.RANGING and held.detected_regime is Regime.TRENDING_BULL
    assert held.parameters.entry_strictness is EntryStrictness.STRICT
    assert "holding ranging until confirmed" in held.reasoning


def test_missing_indicators_fall_back_to_choppy_at_zero_confidence() -> None:
    result = assess_regime(snapshot(), indicators(adx=None), None, S, T)

    assert result.regime is Regime.CHOPPY and result.confidence == 0.0
    assert result.parameters.position_size_multiplier == S.parameters[Regime.CHOPPY].position_size_multiplier
    assert result.parameters.entry_strictness is EntryStrictness.VERY_STRICT
