"""The models' leaderboard from the votes of paper or live runs (`triplegain leaderboard`).

Every stored vote is scored on the price 1, 4 and 24 hours after its cycle (`triplegain.scoring`), with the
configured market source; votes whose later prices are not there yet stay unscored.

    from flows.leaderboard import model_leaderboard
    model_leaderboard(days=30)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flows.settings import load_run_settings
from triplegain.market import shared_source
from triplegain.scoring import ModelScore, leaderboard, score_vote
from triplegain.storage import engine_for, unit_of_work
from triplegain.storage.cycles import recent_votes

HOUR = timedelta(hours=1)


def model_leaderboard(days: int = 30, config_file: str | None = None) -> list[ModelScore]:
    """The votes of the newest `days` days of cycles, scored and ranked (no Prefect server needed)."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    settings = load_run_settings(config_file)
    with unit_of_work(engine_for(settings)) as session:
        votes = recent_votes(session, days)
    if not votes:
        return []
    source = shared_source(settings.market)
    first = min(at for at, *_ in votes)
    last = max(at for at, *_ in votes) + timedelta(hours=24)
    hours = int((last - first) / HOUR) + 2
    closes: dict[str, dict[datetime, float]] = {}
    for symbol in {symbol for _, symbol, *_ in votes}:
        candles = source.candles(symbol, last, hours)
        closes[symbol] = {candles.open_time(i) + HOUR: float(candles.close[i]) for i in range(len(candles))}
    scored = [score_vote(*vote, lambda symbol, at: closes.get(symbol, {}).get(at)) for vote in votes]
    return leaderboard(scored)
