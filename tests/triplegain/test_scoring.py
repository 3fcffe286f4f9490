"""Shadow scoring: each vote judged on its 4-hour move, outcomes at 1/4/24 h, the leaderboard's order."""

from datetime import UTC, datetime, timedelta

import pytest

from triplegain.models.enums import Action
from triplegain.scoring import Leaderboard, leaderboard, score_vote

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


def test_a_running_leaderboard_keeps_one_line_per_model_and_means_as_exact_as_a_list() -> None:
    # A backtest of years scores its votes as they close and keeps none: the board must not grow with
    # them, and its means must be the list's own (sum() in vote order), to the last bit.
    prices = {h: 100.0 + (h * 7919 % 13) / 3 for h in range(2000)}

    def drifting(symbol: str, at: datetime) -> float | None:
        return prices.get(int((at - T) / timedelta(hours=1)))

    actions = [Action.BUY, Action.SELL, Action.HOLD]
    votes = [
        score_vote(T + timedelta(hours=i), "BTC/USDT", f"m{i % 2}", actions[i % 3], prices[i], drifting)
        for i in range(1900)
    ]
    board = Leaderboard()
    for vote in votes:
        board.add(vote)

    assert len(board.rows()) == 2  # one line per model, not per vote
    m0 = [v for v in votes if v.model == "m0"]
    outcomes = [o for v in m0 if (o := v.outcome_pct(24)) is not None]
    row = next(r for r in board.rows() if r.model == "m0")
    assert row.votes == 950 and row.mean_outcome_pct[24] == sum(outcomes) / len(outcomes)
