"""The coordinator task: exits, risk checks and paper execution for every symbol."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from triplegain import coordinator
from triplegain.cycle_types import Coordination, CoordinationInput
from triplegain.settings import Settings


@task(name="coordinate", cache_policy=NO_CACHE)
def coordinate(request: CoordinationInput, settings: Settings) -> Coordination:
    """Risk engine and broker over the run's signals (and a DCA batch's trades); deterministic, so a retry
    repeats it exactly."""
    return coordinator.coordinate(request, settings)
