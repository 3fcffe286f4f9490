"""The coordinator task is the domain's coordinator, whether called directly or run by Prefect's engine
(where a retry must repeat it exactly)."""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.coordination import coordinate
from triplegain import coordinator
from triplegain.cycle import analyze_symbol, cycle_id_for
from triplegain.cycle_types import CoordinationInput, fresh_account
from triplegain.market import ReplaySource
from triplegain.settings import Settings

BUYING_HOUR = datetime(2024, 6, 30, 20, tzinfo=UTC)  # the offline model buys BTC here


def request(replay: ReplaySource, settings: Settings) -> CoordinationInput:
    analyses = [analyze_symbol(replay, s, BUYING_HOUR, None, settings) for s in settings.market.symbols]
    return CoordinationInput(cycle_id_for(BUYING_HOUR), BUYING_HOUR, fresh_account(settings), analyses)


def test_the_task_runs_the_domain_coordinator(replay: ReplaySource, settings: Settings) -> None:
    through_engine = coordinate(request(replay, settings), settings)
    direct = coordinator.coordinate(request(replay, settings), settings)

    assert coordinate.name == "coordinate"
    assert through_engine.outcomes == direct.outcomes and through_engine.portfolio == direct.portfolio
    assert through_engine.outcomes[0].execution is not None  # it traded, so the equality says something
