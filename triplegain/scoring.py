"""Shadow scoring of every model's votes (reference spec 4.4's A/B outcomes) into a leaderboard.

Each vote is scored on the price 1, 4 and 24 hours after the decision, whether or not the consensus followed
it. A BUY is correct when the 4-hour price is above the decision price, a SELL when it is below, a HOLD or
CLOSE when it stayed within +/-2%. The outcome of a directional vote is the move in its favour, in percent
(a BUY gains when the price rises, a SELL when it falls); HOLD and CLOSE votes have no directional outcome.
Votes whose later price is not known yet are left unscored at that horizon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from triplegain.models.enums import Action

HORIZONS = (1, 4, 24)
JUDGED_AT = 4  # hours: the horizon that decides right or wrong
HOLD_BAND_PCT = 2.0
PriceAt = Callable[[str, datetime], float | None]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ScoredVote(BaseModel):
    """One vote as the shadow scorer saw it."""

    model_config = _FROZEN

    at: AwareDatetime
    symbol: str
    model: str
    action: Action
    price: float = Field(gt=0)
    moves_pct: dict[int, float] = Field(default_factory=dict, description="Hours -> price change in percent")

    @property
    def correct(self) -> bool | None:
        """Right or wrong at the 4-hour horizon; None while that price is unknown."""
        move = self.moves_pct.get(JUDGED_AT)
        if move is None:
            return None
        if self.action is Action.BUY:
            return move > 0
        if self.action is Action.SELL:
            return move < 0
        return abs(move) <= HOLD_BAND_PCT

    def outcome_pct(self, hours: int) -> float | None:
        """The move in the vote's favour after `hours` (directional votes only)."""
        move = self.moves_pct.get(hours)
        if move is None or self.action not in (Action.BUY, Action.SELL):
            return None
        return move if self.action is Action.BUY else -move


class ModelScore(BaseModel):
    """One model's line of the leaderboard."""

    model_config = _FROZEN

    model: str
    votes: int
    actions: dict[str, int]
    scored: int = Field(description="Votes whose 4-hour price is known")
    accuracy_pct: float | None = Field(description="Share of scored votes that were right")
    mean_outcome_pct: dict[int, float | None] = Field(
        description="Hours -> mean move in favour, directional votes"
    )


def score_vote(
    at: datetime, symbol: str, model: str, action: Action, price: float, price_at: PriceAt
) -> ScoredVote:
    """Look up the later prices of one vote."""
    moves = {}
    for hours in HORIZONS:
        later = price_at(symbol, at + timedelta(hours=hours))
        if later is not None and price > 0:
            moves[hours] = (later / price - 1) * 100
    return ScoredVote(at=at, symbol=symbol, model=model, action=action, price=price, moves_pct=moves)


@dataclass
class _Line:
    """One model's running sums: what its leaderboard row is computed from."""

    votes: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    right: int = 0
    outcome_sums: dict[int, float] = field(default_factory=lambda: dict.fromkeys(HORIZONS, 0.0))
    outcome_counts: dict[int, int] = field(default_factory=lambda: dict.fromkeys(HORIZONS, 0))


class Leaderboard:
    """The leaderboard kept as votes are scored: running sums per model, so its memory stays the same
    however many votes it has seen (a backtest of years scores each vote once its horizons have closed and
    keeps none)."""

    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}  # in the order models first voted

    def add(self, vote: ScoredVote) -> None:
        """Count one scored vote."""
        line = self._lines.setdefault(vote.model, _Line())
        line.votes += 1
        line.actions[vote.action.value] = line.actions.get(vote.action.value, 0) + 1
        correct = vote.correct
        if correct is not None:
            line.judged += 1
            line.right += correct
        for hours in HORIZONS:
            outcome = vote.outcome_pct(hours)
            if outcome is not None:
                # in vote order from 0, as sum() over the list adds them: the same mean to the last bit
                line.outcome_sums[hours] += outcome
                line.outcome_counts[hours] += 1

    def rows(self) -> list[ModelScore]:
        """Models ranked by accuracy (then by mean 4-hour outcome); models without scored votes last."""
        rows = [
            ModelScore(
                model=model,
                votes=line.votes,
                actions=dict(line.actions),
                scored=line.judged,
                accuracy_pct=line.right / line.judged * 100 if line.judged else None,
                mean_outcome_pct={
                    h: line.outcome_sums[h] / line.outcome_counts[h] if line.outcome_counts[h] else None
                    for h in HORIZONS
                },
            )
            for model, line in self._lines.items()
        ]
        return sorted(
            rows,
            key=lambda r: (
                r.accuracy_pct is None,
                -(r.accuracy_pct or 0),
                -(r.mean_outcome_pct.get(JUDGED_AT) or 0),
            ),
        )


def leaderboard(votes: Iterable[ScoredVote]) -> list[ModelScore]:
    """Models ranked by accuracy (then by mean 4-hour outcome); models without scored votes last."""
    board = Leaderboard()
    for vote in votes:
        board.add(vote)
    return board.rows()
