"""Shadow scoring: each vote judged on its 4-hour move, outcomes at 1/4/24 h, the leaderboard's order."""

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.models.enums import Action
from triplegain.scoring import leaderboard, score_vote

T = datetime(2024, 6, 1, tzinfo=UTC)
PRICES = {1: 101.0, 4: 103.0, 24: 97.0}  # hours after T -> price


def price_at(symbol: str, at: datetime) -> float | None:
    return PRICES.get(int((at - T) / timedelta(hours=1)))


def test_a_vote_is_judged_at_four_hours_and_measured_at_each_horizon() -> None:
    buy = score_vote(T, "BTC/USDT", "m", Action.BUY, 100.0, price_at)
    sell = score_vote(T, "BTC/USDT", "m", Action.SELL, 100.0, price_at)
    hold = score_vote(T, "BTC/USDT", "m", Action.HOLD, 100.0, price_at)

    assert buy.moves_pct == pytest.approx({1: 1.0, 4: 3.0, 24: -3.0})
    assert buy.correct is True and sell.correct is False and hold.correct is False  # 3% is outside +/-2%
    assert buy.outcome_pct(24) == pytest.approx(-3.0) and sell.outcome_pct(24) == pytest.approx(3.0)
    assert hold.outcome_pct(4) is None


def test_an_unknown_later_price_leaves_the_vote_unscored() -> None:
    late = score_vote(T + timedelta(hours=30), "BTC/USDT", "m", Action.BUY, 100.0, price_at)

    assert late.moves_pct == {} and late.correct is None


def test_the_leaderboard_ranks_by_accuracy_then_outcome() -> None:
    votes = [
        score_vote(T, "BTC/USDT", "bear", Action.SELL, 100.0, price_at),
        score_vote(T, "BTC/USDT", "bull", Action.BUY, 100.0, price_at),
        score_vote(T, "BTC/USDT", "bull", Action.HOLD, 102.0, price_at),  # 103 vs 102: within 2%, right
        score_vote(T + timedelta(hours=30), "BTC/USDT", "late", Action.BUY, 100.0, price_at),
    ]

    board = leaderboard(votes)

    assert [r.model for r in board] == ["bull", "bear", "late"]
    bull = board[0]
    assert (bull.votes, bull.scored, bull.accuracy_pct) == (2, 2, 100.0)
    assert bull.actions == {"BUY": 1, "HOLD": 1} and bull.mean_outcome_pct[4] == pytest.approx(3.0)
    assert board[1].accuracy_pct == 0.0 and board[2].accuracy_pct is None
