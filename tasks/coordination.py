"""The coordinator task: exits, risk checks and paper execution for every symbol."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain.control import StateChange
from triplegain.coordinator import AccountState, Coordination, SymbolAnalysis, coordinate
from triplegain.degradation import HealthOutcome
from triplegain.models.conflicts import Resolution
from triplegain.rebalance import RebalanceTrade
from triplegain.settings import Settings


@task(name="coordinate", cache_policy=NO_CACHE)
def coordinate_signals(
    cycle_id: str,
    at: datetime,
    account: AccountState,
    analyses: list[SymbolAnalysis],
    settings: Settings,
    notices: list[str],
    resolutions: list[Resolution],
    state_changes: list[StateChange],
    health: list[HealthOutcome] | None = None,
    rebalance: list[RebalanceTrade] | None = None,
) -> Coordination:
    """Risk engine and broker over the cycle's signals (and a DCA batch's trades); deterministic, so a
    retry repeats it exactly."""
    return coordinate(
        cycle_id,
        at,
        account,
        analyses,
        settings,
        notices,
        resolutions,
        state_changes,
        health or [],
        rebalance or [],
    )
