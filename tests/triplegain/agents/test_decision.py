from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.triplegain.factories import AT, indicators, regime, snapshot, technical, vote
from triplegain.agents.decision import (
    OFFLINE_DECIDED_BY,
    aggregate_votes,
    expected_edge_pct,
    offline_vote,
    win_probability,
)
from triplegain.models.decision import ModelVote
from triplegain.models.enums import Action, AgreementType, Bias, Regime
from triplegain.settings import DecisionSettings, load_settings

D = DecisionSettings()


def aggregate(
    votes: list[ModelVote], configured: int | None = None, settings: DecisionSettings = D
) -> object:
    n = configured if configured is not None else len(votes)
    return aggregate_votes("BTC/USDT", AT, votes, n, technical(), regime(), settings)


def test_quorum_not_reached_holds() -> None:
    votes = [vote(Action.BUY, model="a"), vote(Action.BUY, model="b"), vote(Action.BUY, model="c")]
    abstained = vote(Action.HOLD, model="d").model_copy(update={"error": "timeout"})

    signal = aggregate([*votes, abstained], configured=6)

    assert signal.action is Action.HOLD  # type: ignore[attr-defined]
    assert signal.agreement is AgreementType.INSUFFICIENT_QUORUM  # type: ignore[attr-defined]
    assert signal.confidence == 0.0  # type: ignore[attr-defined]


def test_decided_by_names_only_the_voters_whose_votes_counted() -> None:
    counted = vote(Action.BUY, model="a")
    gone = [vote(Action.HOLD, model=m).model_copy(update={"error": "timeout"}) for m in ("b", "c")]

    some = aggregate([counted, *gone], configured=3)
    none = aggregate(gone, configured=3)

    assert some.decided_by == "a"  # type: ignore[attr-defined]
    assert none.decided_by == "quorum-rule: every model abstained (b,c)"  # type: ignore[attr-defined]


def test_quorum_scales_to_the_configured_models() -> None:
    signal = aggregate([vote(Action.BUY, model="a"), vote(Action.BUY, model="b")], configured=2)

    assert signal.action is Action.BUY  # type: ignore[attr-defined]


def test_three_way_tie_holds() -> None:
    votes = [vote(a, model=f"{a}{i}") for a in (Action.BUY, Action.SELL, Action.HOLD) for i in range(2)]

    signal = aggregate(votes)

    assert signal.action is Action.HOLD and signal.agreement is AgreementType.NO_CONSENSUS  # type: ignore[attr-defined]


def test_three_three_split_holds() -> None:
    votes = [vote(Action.BUY, model=f"b{i}") for i in range(3)] + [
        vote(Action.SELL, model=f"s{i}") for i in range(3)
    ]

    assert aggregate(votes).action is Action.HOLD  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("buys", "agreement", "boost"),
    [
        (6, AgreementType.UNANIMOUS, 0.15),
        (5, AgreementType.STRONG_MAJORITY, 0.10),
        (4, AgreementType.MAJORITY, 0.05),
    ],
)
def test_agreement_boosts_mean_confidence_of_the_agreeing(
    buys: int, agreement: AgreementType, boost: float
) -> None:
    votes = [vote(Action.BUY, confidence=0.6 + 0.02 * i, model=f"b{i}") for i in range(buys)]
    votes += [vote(Action.HOLD, confidence=0.9, model=f"h{i}") for i in range(6 - buys)]

    signal = aggregate(votes)

    mean = sum(0.6 + 0.02 * i for i in range(buys)) / buys
    assert signal.agreement is agreement  # type: ignore[attr-defined]
    assert signal.confidence == pytest.approx(mean + boost, abs=1e-4)  # type: ignore[attr-defined]


def test_levels_and_size_are_averaged_over_the_agreeing_models() -> None:
    a = vote(Action.BUY, model="a", entry_price=Decimal(100), stop_loss=Decimal(96), take_profit=Decimal(110))
    a = a.model_copy(update={"position_size_pct": Decimal(10)})
    b = vote(Action.BUY, model="b", entry_price=Decimal(102), stop_loss=Decimal(98), take_profit=Decimal(114))
    b = b.model_copy(update={"position_size_pct": Decimal(20)})

    signal = aggregate([a, b, vote(Action.HOLD, model="c")], configured=3)

    assert (signal.entry_price, signal.stop_loss, signal.take_profit) == (101, 97, 112)  # type: ignore[attr-defined]
    assert signal.position_size_pct == 15  # type: ignore[attr-defined]
    assert signal.agreeing_models == ["a", "b"]  # type: ignore[attr-defined]


def test_single_vote_gets_no_agreement_boost() -> None:
    signal = aggregate([vote(Action.BUY, confidence=0.7)])

    assert signal.confidence == 0.7  # type: ignore[attr-defined]


@given(
    actions=st.lists(
        st.sampled_from([Action.BUY, Action.SELL, Action.HOLD, Action.CLOSE_LONG]), min_size=1, max_size=9
    ),
    confidences=st.lists(st.floats(min_value=0, max_value=1), min_size=9, max_size=9),
)
def test_aggregation_rules_hold_for_any_votes(actions: list[Action], confidences: list[float]) -> None:
    votes = [
        vote(a, confidence=c, model=f"m{i}")
        for i, (a, c) in enumerate(zip(actions, confidences, strict=False))
    ]

    signal = aggregate(votes)

    counts = {a: actions.count(a) for a in set(actions)}
    top = max(counts.values())
    assert 0 <= signal.confidence <= 1  # type: ignore[attr-defined]
    if top / len(actions) <= 0.5:
        assert signal.action is Action.HOLD  # type: ignore[attr-defined]
    else:
        assert counts[signal.action] == top  # type: ignore[attr-defined]
    assert sum(signal.votes.values()) == len(actions)  # type: ignore[attr-defined]


def test_offline_model_buys_on_a_confident_long_and_names_itself() -> None:
    settings = load_settings(decision={"offline": {"evidence_edge": 1.0}})
    long = technical(Bias.LONG, indicators(atr=1.0), confidence=0.7, strength=0.5)

    v = offline_vote(snapshot(price="100"), long, regime(Regime.TRENDING_BULL), settings)

    assert v.action is Action.BUY and v.model == "offline" and v.provider == "offline"
    assert v.confidence == pytest.approx(0.8)  # 70% of the evidence, and the regime agrees
    assert v.stop_loss is not None and v.take_profit is not None and v.entry_price == 100
    stop_pct = (100 - v.stop_loss) / 100 * 100
    assert settings.risk.min_stop_pct <= stop_pct <= settings.risk.max_stop_pct
    assert (v.take_profit - 100) / (100 - v.stop_loss) >= settings.risk.min_risk_reward
    assert "expected edge +" in v.reasoning and "round trip" in v.reasoning
    signal = aggregate_votes("BTC/USDT", AT, [v], 1, technical(), regime(), settings.decision)
    assert signal.decided_by == OFFLINE_DECIDED_BY


def test_by_default_no_evidence_pays_for_the_round_trip(default_decisions: None) -> None:
    settings = load_settings()
    unanimous = technical(Bias.LONG, indicators(atr=2.0), confidence=1.0, strength=1.0)

    v = offline_vote(snapshot(price="100"), unanimous, regime(Regime.TRENDING_BULL), settings)

    assert v.action is Action.HOLD
    assert (
        "not worth its cost" in v.reasoning and "expected edge -0.72% after a 0.72% round trip" in v.reasoning
    )


def test_expected_edge_by_hand() -> None:
    settings = load_settings()
    p = win_probability(0.5, Decimal(2), Decimal(4), 0.2)  # 2 / (2 + 4) + 0.2 * 0.5

    edge, cost = expected_edge_pct(p, Decimal(2), Decimal(4), settings)

    assert float(p) == pytest.approx(1 / 3 + 0.1)
    assert cost == Decimal("0.72")  # (0.26% fee + 0.1% slippage) on both legs
    assert float(edge) == pytest.approx((1 / 3 + 0.1) * 4 - (2 / 3 - 0.1) * 2 - 0.72)  # +0.28%


@pytest.mark.parametrize(("atr", "action"), [(0.2, Action.HOLD), (2.0, Action.BUY)])
def test_the_edge_gate_trades_only_a_move_worth_its_cost(atr: float, action: Action) -> None:
    """The same evidence: a tight stop (0.5%) cannot pay a 0.72% round trip, a wide one (4.8%) can."""
    settings = load_settings(decision={"offline": {"evidence_edge": 0.2}})
    unanimous = technical(Bias.LONG, indicators(atr=atr), confidence=1.0, strength=1.0)

    v = offline_vote(snapshot(price="100"), unanimous, regime(Regime.TRENDING_BULL), settings)

    assert v.action is action
    assert ("not worth its cost" in v.reasoning) is (action is Action.HOLD)


def test_offline_model_holds_when_weak_neutral_or_choppy() -> None:
    settings = load_settings(decision={"offline": {"evidence_edge": 1.0}})

    weak = offline_vote(snapshot(), technical(Bias.LONG), regime(Regime.RANGING), settings)
    neutral = offline_vote(snapshot(), technical(Bias.NEUTRAL), regime(Regime.TRENDING_BULL), settings)
    choppy = offline_vote(snapshot(), technical(Bias.LONG), regime(Regime.CHOPPY), settings)

    assert weak.action is neutral.action is choppy.action is Action.HOLD
    assert "too weak" in weak.reasoning and "choppy" in choppy.reasoning


def test_offline_sell_puts_the_stop_above() -> None:
    settings = load_settings(decision={"offline": {"evidence_edge": 1.0}})
    short = technical(Bias.SHORT, indicators(atr=1.0), confidence=0.7, strength=0.5)

    v = offline_vote(snapshot(), short, regime(Regime.TRENDING_BEAR), settings)

    assert v.action is Action.SELL
    assert v.stop_loss is not None and v.take_profit is not None
    assert v.stop_loss > 100 > v.take_profit


def test_directional_vote_without_prices_is_invalid() -> None:
    with pytest.raises(ValueError, match="needs entry_price and stop_loss"):
        ModelVote(model="x", provider="y", action=Action.BUY, confidence=0.9, reasoning="r")
